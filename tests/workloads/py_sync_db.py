# SPDX-License-Identifier: Apache-2.0
"""Pattern python.sync_db_in_async: psycopg2, a synchronous driver, in an
async def FastAPI route.

    python3.11 py_sync_db.py --dsn 'host=127.0.0.1 port=N user=postgres dbname=postgres'
                             [--query-s 0.3]

GET /orders runs `SELECT pg_sleep(S)` (a query that takes a known time) on
one psycopg2 connection opened at start, from an `async def` route: uvicorn
runs it on the loop thread, which waits in libpq's poll() for the server's
answer. The fix: asyncpg, or run_in_executor. Needs FastAPI, uvicorn and
psycopg2 (Debian python3-fastapi, python3-uvicorn, python3-psycopg2).
Ground truth: swtruth.Block; the block line has the server's address and
port and the route's frame (swtruth.where).
"""
import argparse
import asyncio
import socket

import psycopg2
import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

import swserve
import swtruth

p = argparse.ArgumentParser()
p.add_argument("--dsn", required=True)
p.add_argument("--query-s", type=float, default=0.3)
args = p.parse_args()

conn = psycopg2.connect(args.dsn)
conn.autocommit = True
peer = socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM).getpeername()
app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
async def healthy():
    return "ok\n"


@app.get("/orders", response_class=PlainTextResponse)
async def orders():
    with swtruth.Block() as t:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(%s)", (args.query_s,))  # MISTAKE: blocks the loop
            cur.fetchall()
    swserve.emit_block_later({"kind": "sync_db", "query_s": args.query_s, "peer_addr": peer[0],
                              "peer_port": peer[1], **t.fields(),
                              **swtruth.where(orders, "MISTAKE")})
    return "orders\n"


async def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.01)
    # uvicorn's own handlers (installed in serve()) out, then back to the
    # workloads' contract: SIGTERM/SIGINT and the end of stdin exit at once
    loop = asyncio.get_running_loop()
    for sig in (swserve.signal.SIGTERM, swserve.signal.SIGINT):
        loop.remove_signal_handler(sig)
    swserve.exit_with_stdin()
    swserve.ready(sock.getsockname()[1], peer_port=peer[1])
    await task


asyncio.run(main())
