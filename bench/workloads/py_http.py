# SPDX-License-Identifier: Apache-2.0
#
# Minimal Python asyncio HTTP service for the stallwatch demo and benchmarks.
#   python3.11 py_http.py [--port N] [--app aiohttp|fastapi] [--loop asyncio|uvloop]
# Routes:
#   GET /            healthy: "ok"
#   GET /block?ms=N  blocks the event loop: time.sleep inside an async handler
#   GET /spin?ms=N   blocks it with a CPU spin instead
# Prints {"event":"ready","pid":..,"port":..} on stdout once listening.
# Uses Debian's python3-aiohttp / python3-fastapi / python3-uvicorn, so run it
# with /usr/bin/python3.11, not a pyenv python.
import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time


def spin(ms):
    end = time.perf_counter() + ms / 1000.0
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def ready(port):
    sys.stdout.write(json.dumps({"event": "ready", "pid": os.getpid(), "port": port,
                                 "runtime": "python"}) + "\n")
    sys.stdout.flush()


def listen_socket(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted sockets inherit it: no Nagle + delayed-ACK 40 ms stalls
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind((host, port))
    s.listen(1024)
    s.setblocking(False)
    return s


async def run_aiohttp(sock):
    from aiohttp import web

    async def healthy(_req):
        return web.Response(text="ok\n")

    async def block(req):
        ms = float(req.query.get("ms", "100"))
        time.sleep(ms / 1000.0)  # the bug being demonstrated: a sync sleep on the loop
        return web.Response(text=f"blocked {ms:g} ms\n")

    async def spin_route(req):
        ms = float(req.query.get("ms", "100"))
        spin(ms)
        return web.Response(text=f"spun {ms:g} ms\n")

    app = web.Application()
    app.add_routes([web.get("/", healthy), web.get("/block", block),
                    web.get("/spin", spin_route)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    ready(sock.getsockname()[1])
    await asyncio.Event().wait()


async def run_fastapi(sock):
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    @app.get("/", response_class=PlainTextResponse)
    async def healthy():
        return "ok\n"

    @app.get("/block", response_class=PlainTextResponse)
    async def block(ms: float = 100):
        time.sleep(ms / 1000.0)  # the bug being demonstrated: a sync sleep on the loop
        return f"blocked {ms:g} ms\n"

    @app.get("/spin", response_class=PlainTextResponse)
    async def spin_route(ms: float = 100):
        spin(ms)
        return f"spun {ms:g} ms\n"

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    # uvicorn installs its own handlers only in serve(); started flips once bound
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.01)
    ready(sock.getsockname()[1])
    await task


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--app", choices=["aiohttp", "fastapi"], default="aiohttp")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    a = ap.parse_args()
    if a.loop == "uvloop":
        import uvloop
        uvloop.install()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = listen_socket(a.host, a.port)
    try:
        asyncio.run(run_aiohttp(sock) if a.app == "aiohttp" else run_fastapi(sock))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
