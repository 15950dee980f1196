# SPDX-License-Identifier: Apache-2.0
"""Small asyncio HTTP server for the root tests, the demo and the benchmark.

    python3 py_http.py [--port 0] [--host 127.0.0.1] [--app streams|aiohttp|fastapi]
                       [--uvloop | --loop asyncio|uvloop] [--loop-thread]

The one Python HTTP service of the repo (one place to fix). --app picks the
HTTP stack on the same routes:
  streams  (default) HTTP/1.1 on asyncio streams, standard library only: runs
           under any CPython 3.9+, pyenv ones included (the root tests use it)
  aiohttp  aiohttp's web server (the benchmark); needs python3-aiohttp
  fastapi  FastAPI on uvicorn (the demo); needs python3-fastapi, python3-uvicorn
aiohttp, fastapi and uvloop are Debian packages: run those with /usr/bin/python3.11.

Routes (every handler runs on the loop thread, as `async def` code would):
  GET /                200 "ok\\n" (healthy)
  GET /block?ms=N      time.sleep(N/1000) on the loop thread (default 100), then
                       200; prints a {"event":"block","kind":"sleep",..} ground-truth line
  GET /cpu?ms=N        busy loop N ms on the loop thread, then 200 (kind "cpu")
  GET /spin?ms=N       the same as /cpu
  GET /json            a small JSON body
stdout: {"event":"ready","pid":..,"tid":<loop thread>,"port":..,"runtime":"python",
"version":..,"exe":..,"loop":..,"app":..} then block lines (written after the
blocked work, inside the same loop iteration).
Keep-alive is supported (wrk, ab -k). Exits on SIGTERM/SIGINT, or when stdin
(if it is a pipe) closes.
"""
import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import stat
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

import swtruth

_lock = threading.Lock()


def emit(obj):
    with _lock:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


# ------------------------------------------------------------------ routes
# Every --app serves the same routes with these functions; aiohttp and fastapi
# route and parse queries natively (their "/" is as cheap as the framework
# allows: it is the benchmark's request), streams through handle_request.
def block(path, ms):
    """/block, /cpu, /spin: block the loop thread ms ms, print the ground truth."""
    tid = threading.get_native_id()
    with swtruth.Block() as t:
        if path == "/block":
            time.sleep(ms / 1000.0)  # the bug being demonstrated: a sync sleep on the loop
            kind = "sleep"
        else:
            until = t.start_ns + int(ms * 1e6)
            while time.monotonic_ns() < until:
                pass
            kind = "cpu"
    emit({"event": "block", "kind": kind, "ms": ms, "tid": tid, **t.fields()})
    return ("blocked %g ms\n" % ms).encode()


BLOCK_PATHS = ("/block", "/cpu", "/spin")


def json_body(state):
    return (json.dumps({"ok": True, "requests": state["requests"],
                        "pid": os.getpid()}) + "\n").encode()


def parse_ms(value):
    """The ms query parameter (default 100), or None when it is not a number."""
    try:
        return float(value if value is not None else "100")
    except ValueError:
        return None


def handle_request(target, state):
    """The routes for --app streams: (status, body bytes, content type)."""
    url = urlsplit(target)
    state["requests"] += 1
    if url.path in BLOCK_PATHS:
        ms = parse_ms(parse_qs(url.query).get("ms", [None])[0])
        if ms is None:
            return 400, b"bad ms\n", "text/plain"
        return 200, block(url.path, ms), "text/plain"
    if url.path == "/json":
        return 200, json_body(state), "application/json"
    if url.path == "/":
        return 200, b"ok\n", "text/plain"
    return 404, b"not found\n", "text/plain"


def ready(args, port):
    emit({"event": "ready", "pid": os.getpid(), "tid": threading.get_native_id(),
          "port": port, "runtime": "python", "version": platform.python_version(),
          "exe": sys.executable, "loop": args.loop, "app": args.app})


# ------------------------------------------------------------------ --app streams
def respond(writer, status, body, ctype="text/plain", keep_alive=True):
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
    head = ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            "Connection: %s\r\n\r\n" % (status, reason, ctype, len(body),
                                         "keep-alive" if keep_alive else "close"))
    writer.write(head.encode() + body)


async def serve_conn(reader, writer, state):
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                break
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                respond(writer, 400, b"bad request\n", keep_alive=False)
                break
            method, target, version = parts
            headers = {}
            for h in lines[1:]:
                if ":" in h:
                    k, v = h.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0") or 0)
            if n:
                await reader.readexactly(n)
            keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
            status, body, ctype = handle_request(target, state)
            respond(writer, status, body, ctype, keep)
            await writer.drain()
            if not keep:
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


async def run_streams(args, sock, state):
    server = await asyncio.start_server(lambda r, w: serve_conn(r, w, state), sock=sock,
                                        backlog=1024)
    ready(args, server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


# ------------------------------------------------------------------ --app aiohttp
async def run_aiohttp(args, sock, state):
    from aiohttp import web

    async def healthy(_req):
        state["requests"] += 1
        return web.Response(text="ok\n")

    async def blocking(req):
        state["requests"] += 1
        ms = parse_ms(req.query.get("ms"))
        if ms is None:
            return web.Response(status=400, text="bad ms\n")
        return web.Response(body=block(req.path, ms), content_type="text/plain")

    async def json_route(_req):
        state["requests"] += 1
        return web.Response(body=json_body(state), content_type="application/json")

    app = web.Application()
    app.add_routes([web.get("/", healthy), web.get("/json", json_route)]
                   + [web.get(p, blocking) for p in BLOCK_PATHS])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    ready(args, sock.getsockname()[1])
    await asyncio.Event().wait()


# ------------------------------------------------------------------ --app fastapi
async def run_fastapi(args, sock, state):
    import uvicorn
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    # async def handlers: they run on the loop thread
    @app.get("/", response_class=PlainTextResponse)
    async def healthy():
        state["requests"] += 1
        return "ok\n"

    async def blocking(request: Request, ms: str = "100"):
        state["requests"] += 1
        v = parse_ms(ms)
        if v is None:
            return PlainTextResponse("bad ms\n", status_code=400)
        return PlainTextResponse(block(request.url.path, v))

    for p in BLOCK_PATHS:
        app.add_api_route(p, blocking, methods=["GET"])

    @app.get("/json")
    async def json_route():
        state["requests"] += 1
        return Response(content=json_body(state), media_type="application/json")

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    # uvicorn installs its own handlers only in serve(); started flips once bound
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.01)
    if threading.current_thread() is threading.main_thread():
        # back to this server's contract: SIGTERM/SIGINT exit at once
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
            signal.signal(sig, lambda *a: os._exit(0))
    ready(args, sock.getsockname()[1])
    await task


# ------------------------------------------------------------------ main
def listen_socket(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted sockets inherit it: no Nagle + delayed-ACK 40 ms stalls
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind((host, port))
    s.listen(1024)
    s.setblocking(False)
    return s


def stdin_is_pipe():
    try:
        m = os.fstat(0).st_mode
        return stat.S_ISFIFO(m) or stat.S_ISSOCK(m)
    except OSError:
        return False


APPS = {"streams": run_streams, "aiohttp": run_aiohttp, "fastapi": run_fastapi}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--app", choices=sorted(APPS), default="streams")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--uvloop", action="store_true", help="the same as --loop uvloop")
    p.add_argument("--loop-thread", action="store_true",
                   help="run the event loop in a non-main thread")
    args = p.parse_args()
    if args.uvloop:
        args.loop = "uvloop"
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    signal.signal(signal.SIGINT, lambda *a: os._exit(0))
    if stdin_is_pipe():
        def watch():
            try:
                while sys.stdin.buffer.read1(4096):
                    pass
            finally:
                os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    if args.loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    sock = listen_socket(args.host, args.port)
    state = {"requests": 0}

    def run():
        loop = factory()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(APPS[args.app](args, sock, state))

    if args.loop_thread:
        t = threading.Thread(target=run, name="asyncio-loop", daemon=True)
        t.start()
        while t.is_alive():
            t.join(1.0)
    else:
        run()


if __name__ == "__main__":
    main()
