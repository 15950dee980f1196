# SPDX-License-Identifier: Apache-2.0
"""FastAPI on uvicorn with the two kinds of route a real service has, for the
bench's `gil` stage (the cost of GIL measurement).

    python3.11 py_fastapi_gil.py [--port 0]

  GET /async  `async def`: a little work (build and serialize a small dict)
              and a "backend call": 64 bytes written to and read back from
              an in-process echo server over a Unix socket, awaited twice.
              Runs on the loop thread; the GIL is released around every
              epoll_wait, send and recv, and taken back uncontended.
  GET /sync   the same work as a plain `def`: Starlette runs it in anyio's
              thread pool (up to 40 threads), the backend call is a blocking
              socket in each worker thread. The GIL changes hands between
              the loop thread and the workers on every request: contended
              takes, futex waits, drop requests.

The echo server runs on the loop thread, as a local cache or database proxy
would. stdout: {"event":"ready","pid":..,"port":..,"threads":..}. Exits on
SIGTERM/SIGINT.
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import threading

PAYLOAD = b"x" * 64


def work(n):
    """The request's own CPU work: a small JSON document, as a handler builds."""
    doc = {"id": n, "items": [{"k": i, "v": i * i} for i in range(8)], "ok": True}
    return json.dumps(doc, separators=(",", ":"))


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport

    def data_received(self, data):
        self.t.write(data)


async def main(args):
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    loop = asyncio.get_running_loop()
    addr = "\0swbench-gil-%d" % os.getpid()  # abstract: nothing to clean up
    await loop.create_unix_server(Echo, addr)
    pool = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await asyncio.open_unix_connection(addr))
    local = threading.local()
    count = [0]

    async def backend_async():
        r, w = await pool.get()
        try:
            w.write(PAYLOAD)
            await w.drain()
            return await r.readexactly(len(PAYLOAD))
        finally:
            pool.put_nowait((r, w))

    def backend_sync():
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(addr)
        s.sendall(PAYLOAD)
        got = b""
        while len(got) < len(PAYLOAD):
            b = s.recv(len(PAYLOAD) - len(got))
            if not b:
                raise ConnectionError("echo server closed")
            got += b
        return got

    app = FastAPI()

    @app.get("/async", response_class=PlainTextResponse)
    async def route_async():
        count[0] += 1
        body = work(count[0])
        await backend_async()
        await backend_async()
        return body

    @app.get("/sync", response_class=PlainTextResponse)
    def route_sync():
        count[0] += 1  # not exact under threads: only a payload
        body = work(count[0])
        backend_sync()
        backend_sync()
        return body

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    sock.setblocking(False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.01)
    # uvicorn's graceful shutdown waits for connections: exit at once instead
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
        signal.signal(sig, lambda *a: os._exit(0))
    print(json.dumps({"event": "ready", "pid": os.getpid(), "port": sock.getsockname()[1],
                      "threads": threading.active_count()}), flush=True)
    await task


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    asyncio.run(main(p.parse_args()))
