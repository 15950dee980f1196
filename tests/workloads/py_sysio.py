# SPDX-License-Identifier: Apache-2.0
"""asyncio workload for the syscalls of a block (tests/root/test_sysio.py).

    python3 py_sysio.py --file PATH [--schedule recv:200,read:120,sleep:150]

Block kinds (each runs synchronously in a coroutine on the loop thread):
  recv:MS   a blocking TCP round trip without a timeout to a server in a
            separate process on a free port, which answers MS ms after the
            request: the recv() (one recvfrom syscall) is the wait;
            truth: recv_ns around that one call, port
  precv:MS  the same with a timeout (settimeout(5)): CPython waits in
            poll() on the socket (sock_call), as libpq and requests do;
            truth: recv_ns around the recv() call, port
  read:MS   os.pread() of 1 MiB chunks of --file, round and round, for MS
            ms; truth: the number of calls (one pread64 each), the path
  sleep:MS  time.sleep(MS/1000): clock_nanosleep, no fd; truth: sleep_ns

stdout, one JSON object per line:
  {"event":"ready","pid":..,"loop_tid":..}
  {"event":"block","kind":..,"ms":..,"tid":..,"start_ns":..,"end_ns":..,
   "runq_ns":.., + the kind's truth}
  {"event":"done"}
"""
import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import swtruth


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def run_server(delay_ms):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    sys.stdout.write("%d\n" % ls.getsockname()[1])
    sys.stdout.flush()

    def parent_watch():
        while sys.stdin.buffer.read(1024):
            pass
        os._exit(0)

    threading.Thread(target=parent_watch, daemon=True).start()
    while True:
        conn, _ = ls.accept()
        try:
            if conn.recv(64):
                time.sleep(delay_ms / 1000.0)
                conn.sendall(b"pong")
        finally:
            conn.close()


def recv_block(port, timeout=None):
    s = socket.create_connection(("127.0.0.1", port))
    try:
        if timeout:
            s.settimeout(timeout)
        s.sendall(b"ping")
        t0 = time.monotonic_ns()
        data = s.recv(16)
        recv_ns = time.monotonic_ns() - t0
        if data != b"pong":
            raise RuntimeError("server answered %r" % data)
    finally:
        s.close()
    return {"recv_ns": recv_ns, "port": port}


def read_block(path, ms):
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        calls, off = 0, 0
        until = time.monotonic_ns() + int(ms * 1e6)
        while time.monotonic_ns() < until:
            os.pread(fd, 1 << 20, off)
            calls += 1
            off = (off + (1 << 20)) % max(size, 1)
    finally:
        os.close(fd)
    return {"reads": calls, "path": path}


def sleep_block(ms):
    t0 = time.monotonic_ns()
    time.sleep(ms / 1000.0)
    return {"sleep_ns": time.monotonic_ns() - t0}


async def main(a, go, servers):
    await go.wait()
    for item in a.schedule.split(","):
        kind, _, ms = item.partition(":")
        ms = float(ms)
        await asyncio.sleep(0.4)
        with swtruth.Block() as t:
            if kind == "recv":
                extra = recv_block(servers[ms])
            elif kind == "precv":
                extra = recv_block(servers[ms], timeout=5)
            elif kind == "read":
                extra = read_block(a.file, ms)
            elif kind == "sleep":
                extra = sleep_block(ms)
            else:
                raise ValueError(kind)
        ev = {"event": "block", "kind": kind, "ms": ms, "tid": threading.get_native_id(),
              **t.fields(), **extra}
        await asyncio.sleep(0.02)
        emit(ev)
    await asyncio.sleep(0.4)
    emit({"event": "done"})
    await asyncio.Event().wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedule", default="recv:200,read:120,sleep:150")
    ap.add_argument("--file", default="")
    ap.add_argument("--server", action="store_true")
    ap.add_argument("--delay-ms", type=float, default=200)
    a = ap.parse_args()
    if a.server:
        run_server(a.delay_ms)
        sys.exit(0)
    servers, procs = {}, []
    for item in a.schedule.split(","):
        kind, _, ms = item.partition(":")
        if kind in ("recv", "precv") and float(ms) not in servers:
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--server",
                                  "--delay-ms", ms], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
            servers[float(ms)] = int(p.stdout.readline())
            procs.append(p)
    loop = asyncio.new_event_loop()
    go = asyncio.Event()

    def stdin():
        for line in sys.stdin:
            if line.strip() == "go":
                loop.call_soon_threadsafe(go.set)
        os._exit(0)

    threading.Thread(target=stdin, daemon=True).start()
    loop.call_soon(lambda: emit({"event": "ready", "pid": os.getpid(),
                                 "loop_tid": threading.get_native_id()}))
    loop.run_until_complete(main(a, go, servers))
