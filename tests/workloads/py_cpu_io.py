# SPDX-License-Identifier: Apache-2.0
"""Workload: an asyncio loop whose callbacks are CPU-bound or I/O-bound.

    python3 py_cpu_io.py --mode cpu|io [--seconds 8]

Every 40 ms a callback runs on the loop thread:
  cpu  computes for 25 ms, then waits 1 ms in a blocking read;
  io   computes for 2 ms, then waits 20 ms in a blocking read (a pipe fed
       by a helper thread 20 ms later: a synchronous call to a slow peer).
Each callback prints {"event":"cb","start_ns","end_ns","cpu_ns"}: its wall
time (CLOCK_MONOTONIC) and its thread CPU time (CLOCK_THREAD_CPUTIME_ID), the
ground truth of the on-CPU share. Prints ready first, done at the end.
"""
import argparse
import asyncio
import json
import os
import sys
import threading
import time


def emit(o):
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()


def spin_cpu(ms):
    end = time.thread_time_ns() + int(ms * 1e6)
    x = 0
    while time.thread_time_ns() < end:
        x += 1
    return x


class SlowPeer:
    """A pipe written by a thread `ms` after each request."""

    def __init__(self):
        self.r, self.w = os.pipe()
        self.req = threading.Semaphore(0)
        self.delay = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            self.req.acquire()
            time.sleep(self.delay)
            os.write(self.w, b"x")

    def call(self, ms):
        self.delay = ms / 1000
        self.req.release()
        return os.read(self.r, 1)  # blocks the loop thread


async def main(a):
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_reader(0, lambda: done.set() if not os.read(0, 4096) else None)
    peer = SlowPeer()
    cpu_ms, io_ms = (25, 1) if a.mode == "cpu" else (2, 20)
    emit({"event": "ready", "pid": os.getpid(), "tid": threading.get_native_id()})
    start = time.monotonic()

    def callback():
        t0, c0 = time.monotonic_ns(), time.thread_time_ns()
        spin_cpu(cpu_ms)
        peer.call(io_ms)
        c1, t1 = time.thread_time_ns(), time.monotonic_ns()
        emit({"event": "cb", "start_ns": t0, "end_ns": t1, "cpu_ns": c1 - c0})

    while not done.is_set() and time.monotonic() - start < a.seconds:
        loop.call_soon(callback)
        try:
            await asyncio.wait_for(done.wait(), 0.040)
        except asyncio.TimeoutError:
            pass
    emit({"event": "done"})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["cpu", "io"], required=True)
    p.add_argument("--seconds", type=float, default=8)
    asyncio.run(main(p.parse_args()))
