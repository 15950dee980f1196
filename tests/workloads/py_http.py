# SPDX-License-Identifier: Apache-2.0
"""Small asyncio HTTP/1.1 server (streams, stdlib only) for tests, demo, benchmarks.

    python3 py_http.py [--port 0] [--host 127.0.0.1] [--uvloop] [--loop-thread]

Routes:
  GET /            200 "ok\\n" (healthy)
  GET /block?ms=N  time.sleep(N/1000) on the loop thread, then 200; prints a
                   {"event":"block","kind":"sleep",..} ground-truth line
  GET /cpu?ms=N    busy loop N ms on the loop thread, then 200 (kind "cpu")
  GET /json        a small JSON body
stdout: {"event":"ready","pid":..,"tid":<loop thread>,"port":..,..} then block lines.
Keep-alive is supported (wrk, ab -k). Exits on SIGTERM/SIGINT, or when stdin
(if it is a pipe) closes.
"""
import argparse
import asyncio
import json
import os
import platform
import signal
import stat
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

_lock = threading.Lock()


def emit(obj):
    with _lock:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def respond(writer, status, body, ctype="text/plain", keep_alive=True):
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
    head = ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            "Connection: %s\r\n\r\n" % (status, reason, ctype, len(body),
                                         "keep-alive" if keep_alive else "close"))
    writer.write(head.encode() + body)


def handle_request(method, target, state):
    url = urlsplit(target)
    q = parse_qs(url.query)
    state["requests"] += 1
    if url.path in ("/block", "/cpu"):
        try:
            ms = float(q.get("ms", ["100"])[0])
        except ValueError:
            return 400, b"bad ms\n", "text/plain"
        tid = threading.get_native_id()
        start = time.monotonic_ns()
        if url.path == "/block":
            time.sleep(ms / 1000.0)
            kind = "sleep"
        else:
            until = start + int(ms * 1e6)
            while time.monotonic_ns() < until:
                pass
            kind = "cpu"
        end = time.monotonic_ns()
        emit({"event": "block", "kind": kind, "ms": ms, "tid": tid,
              "start_ns": start, "end_ns": end})
        return 200, ("blocked %g ms\n" % ms).encode(), "text/plain"
    if url.path == "/json":
        return 200, (json.dumps({"ok": True, "requests": state["requests"],
                                 "pid": os.getpid()}) + "\n").encode(), "application/json"
    if url.path == "/":
        return 200, b"ok\n", "text/plain"
    return 404, b"not found\n", "text/plain"


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
            status, body, ctype = handle_request(method, target, state)
            respond(writer, status, body, ctype, keep)
            await writer.drain()
            if not keep:
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


async def amain(args):
    state = {"requests": 0}
    server = await asyncio.start_server(lambda r, w: serve_conn(r, w, state),
                                        args.host, args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    ready = {"event": "ready", "pid": os.getpid(), "tid": threading.get_native_id(),
             "port": port, "version": platform.python_version(), "exe": sys.executable,
             "loop": "uvloop" if args.uvloop else "asyncio"}
    emit(ready)
    await asyncio.Event().wait()


def stdin_is_pipe():
    try:
        m = os.fstat(0).st_mode
        return stat.S_ISFIFO(m) or stat.S_ISSOCK(m)
    except OSError:
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--uvloop", action="store_true")
    p.add_argument("--loop-thread", action="store_true")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    signal.signal(signal.SIGINT, lambda *a: os._exit(0))
    if stdin_is_pipe():
        def watch():
            try:
                while sys.stdin.buffer.read1(4096) if hasattr(sys.stdin.buffer, "read1") else sys.stdin.buffer.read(1):
                    pass
            finally:
                os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    if args.uvloop:
        import uvloop
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def run():
        loop = factory()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(amain(args))

    if args.loop_thread:
        t = threading.Thread(target=run, name="asyncio-loop", daemon=True)
        t.start()
        while t.is_alive():
            t.join(1.0)
    else:
        run()


if __name__ == "__main__":
    main()
