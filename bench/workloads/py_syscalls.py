# SPDX-License-Identifier: Apache-2.0
"""Syscall-heavy asyncio loop for the sysio cost figures (bench/sysio_cost.py).

    python3 py_syscalls.py --mode long|short --n N --reps R

long:  each rep is one callback making N getppid() calls in one busy
       stretch (a blocked stretch: sysio counts and classifies);
short: each rep runs N loop iterations of 4 getppid() calls each, every
       iteration a stretch far below any threshold (a healthy loop).
Prints {"event":"ready",...}, waits for "go" on stdin, then one
{"event":"result","ns_per_syscall":[...per rep]} line.
"""
import argparse
import asyncio
import json
import os
import sys
import threading
import time


async def main(a, go):
    await go.wait()
    out = []
    for _ in range(a.reps):
        await asyncio.sleep(0.05)
        if a.mode == "long":
            t0 = time.perf_counter_ns()
            for _ in range(a.n):
                os.getppid()
            out.append((time.perf_counter_ns() - t0) / a.n)
        else:
            t0 = time.perf_counter_ns()
            for _ in range(a.n):
                os.getppid(); os.getppid(); os.getppid(); os.getppid()
                await asyncio.sleep(0)
            out.append((time.perf_counter_ns() - t0) / (4 * a.n))
    print(json.dumps({"event": "result", "ns_per_syscall": out}), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="long")
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    loop = asyncio.new_event_loop()
    go = asyncio.Event()

    def stdin():
        sys.stdin.readline()
        loop.call_soon_threadsafe(go.set)
        sys.stdin.read()
        os._exit(0)
    threading.Thread(target=stdin, daemon=True).start()
    loop.call_soon(lambda: print(json.dumps({"event": "ready", "pid": os.getpid()}), flush=True))
    loop.run_until_complete(main(a, go))
