# SPDX-License-Identifier: Apache-2.0
"""Workload: an asyncio service whose memory leaks steadily, or breathes.

    python3 py_mem.py --mode leak|sawtooth [--kb-per-s 512] [--seconds 60]

leak      every 100 ms a handler keeps a chunk in a module-level list (the
          classic unbounded cache): RSS grows by --kb-per-s.
sawtooth  a healthy service: every 100 ms it makes garbage in reference
          cycles (only the cyclic GC frees them) at 4x that rate, and a
          gc.collect() every 5 s frees it all; the chunks are 256 KiB, above
          glibc's mmap threshold, so the memory really goes back to the
          kernel and RSS falls: a sawtooth.
Prints ready, then once a second {"event":"rss","t_ns":...,"rss":...}, the
process's own /proc/self/statm resident size (the ground truth the agent's
slope is compared with), until --seconds have passed or stdin closes.
"""
import argparse
import asyncio
import gc
import json
import os
import sys
import threading
import time

CHUNK = 256 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
kept = []


def emit(o):
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class Node:
    def __init__(self, payload):
        self.payload = payload
        self.me = self  # a cycle: refcounting alone never frees it


async def main(a):
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_reader(0, lambda: done.set() if not os.read(0, 4096) else None)
    gc.disable()  # the collections come when the workload says, as a sawtooth
    emit({"event": "ready", "pid": os.getpid(), "tid": threading.get_native_id()})
    per_tick = a.kb_per_s * 1024 / 10
    owed = 0.0
    start = time.monotonic()
    next_rss = start
    next_gc = start + 5
    while not done.is_set() and time.monotonic() - start < a.seconds:
        if a.mode == "leak":
            owed += per_tick
            while owed >= CHUNK:
                kept.append(b"\x01" * CHUNK)  # written: resident
                owed -= CHUNK
        else:
            owed += per_tick * 4
            while owed >= CHUNK:
                Node(b"\x01" * CHUNK)
                owed -= CHUNK
            if time.monotonic() >= next_gc:
                gc.collect()
                next_gc += 5
        now = time.monotonic()
        if now >= next_rss:
            emit({"event": "rss", "t_ns": time.monotonic_ns(), "rss": rss()})
            next_rss += 1
        try:
            await asyncio.wait_for(done.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
    emit({"event": "done"})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["leak", "sawtooth"], required=True)
    p.add_argument("--kb-per-s", type=float, default=512)
    p.add_argument("--seconds", type=float, default=60)
    asyncio.run(main(p.parse_args()))
