# SPDX-License-Identifier: Apache-2.0
"""Pattern python.sync_http_in_async: requests.get in an aiohttp handler.

    python3.11 py_sync_http.py [--delay-ms 300]

GET /proxy fetches /slow from a backend with requests.get, a synchronous
HTTP client, inside an aiohttp handler: the loop thread waits in the
socket's recv until the backend answers. The fix: aiohttp's ClientSession
or httpx.AsyncClient. The backend (standard library http.server, answering
--delay-ms after each request) is a child process started here; its port is
in the ready line (backend_port). Needs aiohttp and requests (Debian
python3-aiohttp, python3-requests). Ground truth: swtruth.Block; the block
line has the backend's port and the handler's frame (swtruth.where).
"""
import argparse
import os
import subprocess
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--delay-ms", type=float, default=300)
p.add_argument("--backend", action="store_true", help=argparse.SUPPRESS)
args = p.parse_args()


def backend():
    """Child: answer GET /slow after --delay-ms; exit when our stdin closes."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            time.sleep(args.delay_ms / 1000.0)
            body = b'{"price": 42}\n'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()

    def parent_watch():
        try:
            while sys.stdin.buffer.read(1024):
                pass
        finally:
            os._exit(0)
    threading.Thread(target=parent_watch, daemon=True).start()
    srv.serve_forever()


if args.backend:
    backend()
    sys.exit(0)

import requests  # noqa: E402
from aiohttp import web  # noqa: E402

import swserve  # noqa: E402
import swtruth  # noqa: E402

child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--backend",
                          "--delay-ms", str(args.delay_ms)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
BACKEND_PORT = int(child.stdout.readline())
URL = "http://127.0.0.1:%d/slow" % BACKEND_PORT
session = requests.Session()  # a kept-alive connection, as a client object in a service is


async def healthy(request):
    return web.Response(text="ok\n")


async def proxy(request):
    with swtruth.Block() as t:
        r = session.get(URL, timeout=5)  # MISTAKE: blocks the loop
    swserve.emit_block_later({"kind": "sync_http", "delay_ms": args.delay_ms,
                              "peer_port": BACKEND_PORT, **t.fields(),
                              **swtruth.where(proxy, "MISTAKE")})
    return web.Response(text="price %s\n" % r.json()["price"])


async def main():
    app = web.Application()
    app.add_routes([web.get("/", healthy), web.get("/proxy", proxy)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    swserve.exit_with_stdin()
    swserve.ready(port, backend_port=BACKEND_PORT)
    await asyncio.Event().wait()


import asyncio  # noqa: E402

asyncio.run(main())
