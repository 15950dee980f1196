# SPDX-License-Identifier: Apache-2.0
"""asyncio workload: the loop thread blocks on a known schedule.

    python3 py_asyncio.py [--schedule sleep:150,socket:200,cpu:120]
                          [--gap-ms 400] [--tick-ms 5] [--loop-thread] [--late]
                          [--thread-name NAME]

Python 3.9-3.13, standard library only.

Block kinds (each runs synchronously inside a coroutine on the loop thread):
  sleep:MS   time.sleep(MS/1000)
  socket:MS  a synchronous TCP round trip with a timeout (settimeout(2);
             connect; sendall; recv) to a server in a separate process that
             answers MS ms after the request: the wait in poll() is the block
  cpu:MS     a busy loop on time.monotonic_ns() for MS ms

--loop-thread runs the event loop in a non-main thread while the main thread
just joins it; --late (with --loop-thread) starts that thread only after "go".

stdout, one JSON object per line:
  {"event":"ready","pid":..,"tid":<main thread>,"loop_tid":<loop thread or null>,
   "version":"3.x.y","exe":".."}
  {"event":"loop","tid":..}                  once the loop thread runs
  {"event":"block","kind":..,"ms":..,"tid":..,"start_ns":..,"end_ns":..}
  {"event":"done"}
Timestamps are time.monotonic_ns(): CLOCK_MONOTONIC, the agent's clock.
Stays alive until stdin closes or SIGTERM.
"""
import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time

import swtruth

_out_lock = threading.Lock()


def emit(obj):
    line = json.dumps(obj, separators=(",", ":")) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def parse_schedule(text):
    out = []
    for item in (text or "").split(","):
        if not item:
            continue
        kind, _, ms = item.partition(":")
        out.append((kind, float(ms)))
    return out


# ---------------------------------------------------------------- delay server
def run_server(delay_ms):
    """Separate process: answer each request delay_ms after receiving it."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    sys.stdout.write("%d\n" % ls.getsockname()[1])
    sys.stdout.flush()

    def parent_watch():
        # our stdin is a pipe from the workload: EOF means it is gone
        try:
            while sys.stdin.buffer.read(1024):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=parent_watch, daemon=True).start()
    while True:
        conn, _ = ls.accept()
        try:
            conn.settimeout(5)
            if conn.recv(64):
                time.sleep(delay_ms / 1000.0)
                conn.sendall(b"pong")
        except OSError:
            pass
        finally:
            conn.close()


class DelayServer:
    def __init__(self, delay_ms):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--server", "--delay-ms", str(delay_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.port = int(self.proc.stdout.readline())

    def kill(self):
        try:
            self.proc.kill()
        except OSError:
            pass


# ---------------------------------------------------------------- blocks
def spin(ms):
    until = time.monotonic_ns() + int(ms * 1e6)
    while time.monotonic_ns() < until:
        pass


def socket_roundtrip(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        s.sendall(b"ping")
        data = s.recv(16)
        if data != b"pong":
            raise RuntimeError("delay server answered %r" % data)
    finally:
        s.close()


def do_block(kind, ms, servers):
    tid = threading.get_native_id()
    if kind == "sleep":
        with swtruth.Block() as t:
            time.sleep(ms / 1000.0)
    elif kind == "socket":
        port = servers[ms].port
        with swtruth.Block() as t:
            socket_roundtrip(port)
    elif kind == "cpu":
        with swtruth.Block() as t:
            spin(ms)
    else:
        raise ValueError("unknown block kind %r" % kind)
    return {"event": "block", "kind": kind, "ms": ms, "tid": tid, **t.fields()}


# ---------------------------------------------------------------- the loop
class Workload:
    def __init__(self, args, loop_factory=None):
        self.args = args
        self.schedule = parse_schedule(args.schedule)
        self.loop_factory = loop_factory or asyncio.new_event_loop
        self.servers = {}
        for kind, ms in self.schedule:
            if kind == "socket" and ms not in self.servers:
                self.servers[ms] = DelayServer(ms)
        self.loop = None
        self.go_event = None
        self.loop_started = threading.Event()
        self.go_requested = False
        self.go_lock = threading.Lock()

    async def ticker(self):
        tick = self.args.tick_ms / 1000.0
        while True:
            await asyncio.sleep(tick)

    async def main(self):
        self.go_event = asyncio.Event()
        ticker = asyncio.ensure_future(self.ticker())
        with self.go_lock:
            self.loop_started.set()
            if self.go_requested:
                self.go_event.set()
        await self.go_event.wait()
        gap = self.args.gap_ms / 1000.0
        for kind, ms in self.schedule:
            await asyncio.sleep(gap)
            # resumed by a timer right after the loop's wait returned
            ev = do_block(kind, ms, self.servers)
            # printed from a later iteration: a pipe write (and waking the
            # reader) must not lengthen the blocked one past the ground truth
            await asyncio.sleep(0.02)
            emit(ev)
        await asyncio.sleep(gap)
        emit({"event": "done"})
        await asyncio.Event().wait()  # keep ticking until we are told to go away
        ticker.cancel()

    def run_loop(self):
        if self.args.thread_name:
            # the OS name, which the kernel cuts at 15 bytes, maybe inside a
            # character (CPython does not set it itself before 3.14)
            with open("/proc/thread-self/comm", "wb") as f:
                f.write(self.args.thread_name.encode())
        if threading.current_thread() is not threading.main_thread():
            emit({"event": "loop", "tid": threading.get_native_id()})
        self.loop = self.loop_factory()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.main())

    def go(self):
        # called from the stdin thread
        with self.go_lock:
            if self.loop_started.is_set():
                self.loop.call_soon_threadsafe(self.go_event.set)
            else:
                self.go_requested = True

    def shutdown(self):
        for s in self.servers.values():
            s.kill()
        sys.stdout.flush()
        os._exit(0)

    def stdin_thread(self, on_go):
        for line in sys.stdin:
            if line.strip() == "go":
                on_go()
        self.shutdown()


def parse_args(argv, default_schedule):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--schedule", default=default_schedule)
    p.add_argument("--gap-ms", type=float, default=400)
    p.add_argument("--tick-ms", type=float, default=5)
    p.add_argument("--loop-thread", action="store_true")
    p.add_argument("--late", action="store_true")
    p.add_argument("--thread-name", help="OS name of the loop thread")
    p.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--delay-ms", type=float, default=200, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None, loop_factory=None, default_schedule="sleep:150,socket:200,cpu:120"):
    args = parse_args(sys.argv[1:] if argv is None else argv, default_schedule)
    if args.server:
        run_server(args.delay_ms)
        return
    if args.late and not args.loop_thread:
        sys.exit("--late needs --loop-thread")
    import signal
    wl = Workload(args, loop_factory)
    signal.signal(signal.SIGTERM, lambda *a: wl.shutdown())
    ready = {"event": "ready", "pid": os.getpid(), "tid": threading.get_native_id(),
             "loop_tid": None, "version": platform.python_version(), "exe": sys.executable}

    if not args.loop_thread:
        def on_go():
            wl.go()
        threading.Thread(target=wl.stdin_thread, args=(on_go,), daemon=True).start()

        # ready is printed from inside the running loop
        orig_main = wl.main

        async def main_with_ready():
            wl.loop.call_soon(lambda: emit(dict(ready, loop_tid=ready["tid"])))
            await orig_main()
        wl.main = main_with_ready
        wl.run_loop()
        return

    loop_thread = threading.Thread(target=wl.run_loop, name="asyncio-loop", daemon=True)
    loop_tid = None
    if not args.late:
        loop_thread.start()
        wl.loop_started.wait()
        loop_tid = loop_thread.native_id

    def on_go():
        if args.late and not loop_thread.is_alive():
            loop_thread.start()
        wl.go()
    threading.Thread(target=wl.stdin_thread, args=(on_go,), daemon=True).start()
    emit(dict(ready, loop_tid=loop_tid))
    while True:
        loop_thread.join(1.0) if loop_thread.is_alive() else time.sleep(1.0)


if __name__ == "__main__":
    main()
