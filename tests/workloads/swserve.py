# SPDX-License-Identifier: Apache-2.0
"""The service of a Python pattern workload (py_*.py that commit one
mistake each), standard library only so that it runs on every CPython
3.9-3.13: HTTP/1.1 on asyncio streams, keep-alive, every handler an
`async def` running on the loop thread as in any asyncio framework.

    swserve.run(routes, ready_extra={})

routes: {"/path": async handler(query, body) -> (reply bytes, block)}, where
block is the ground truth of the handler's blocking part:
{"kind": .., **swtruth.Block().fields(), **more}. It is printed as
{"event":"block","tid":<loop thread>,..} from a later iteration (20 ms
after the response), so that writing it does not lengthen the blocked one.
GET / answers "ok" (the healthy request).

stdout: {"event":"ready","pid","tid","loop_tid","port","runtime":"python",
"version","exe",**ready_extra} once listening. Exits on SIGTERM/SIGINT or when
stdin (a pipe) closes. The FastAPI and aiohttp workloads print the same lines
with emit() and ready() from here.
"""
import asyncio
import json
import os
import platform
import signal
import stat
import sys
import threading
from urllib.parse import parse_qs, urlsplit

_lock = threading.Lock()


def emit(obj):
    with _lock:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def ready(port, **extra):
    tid = threading.get_native_id()
    emit({"event": "ready", "pid": os.getpid(), "tid": tid, "loop_tid": tid, "port": port,
          "runtime": "python", "version": platform.python_version(), "exe": sys.executable,
          **extra})


def emit_block_later(block, delay=0.02):
    """Print a handler's ground truth from a later loop iteration."""
    ev = {"event": "block", "tid": threading.get_native_id(),
          "ms": round((block["end_ns"] - block["start_ns"]) / 1e6, 3), **block}
    asyncio.get_running_loop().call_later(delay, emit, ev)


def exit_with_stdin():
    """SIGTERM/SIGINT exit at once; so does the end of stdin when it is a pipe
    (the harness is gone)."""
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    signal.signal(signal.SIGINT, lambda *a: os._exit(0))
    try:
        m = os.fstat(0).st_mode
        pipe = stat.S_ISFIFO(m) or stat.S_ISSOCK(m)
    except OSError:
        pipe = False
    if pipe:
        def watch():
            try:
                while sys.stdin.buffer.read1(4096):
                    pass
            finally:
                os._exit(0)
        threading.Thread(target=watch, daemon=True).start()


def _respond(writer, status, body, keep_alive):
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}.get(status, "OK")
    writer.write(("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                  "Connection: %s\r\n\r\n" % (status, reason, len(body),
                                               "keep-alive" if keep_alive else "close")).encode()
                 + body)


async def _conn(reader, writer, routes):
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                break
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                break
            headers = {}
            for h in lines[1:]:
                if ":" in h:
                    k, v = h.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(n) if n else b""
            keep = headers.get("connection", "").lower() != "close" and parts[2] == "HTTP/1.1"
            url = urlsplit(parts[1])
            route = routes.get(url.path)
            if url.path == "/":
                status, reply = 200, b"ok\n"
            elif route is None:
                status, reply = 404, b"not found\n"
            else:
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                try:
                    reply, block = await route(query, body)
                    status = 200
                    if block:
                        emit_block_later(block)
                except Exception as e:  # the client sees it, the test prints it
                    status, reply = 500, ("%r\n" % e).encode()
            _respond(writer, status, reply, keep)
            await writer.drain()
            if not keep:
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


def run(routes, ready_extra=None, port=0):
    exit_with_stdin()

    async def main():
        server = await asyncio.start_server(lambda r, w: _conn(r, w, routes), "127.0.0.1", port)
        ready(server.sockets[0].getsockname()[1], **(ready_extra or {}))
        await asyncio.Event().wait()

    asyncio.run(main())
