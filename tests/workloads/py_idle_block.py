# SPDX-License-Identifier: Apache-2.0
"""Workload: an asyncio loop blocks once, then has nothing to do.

    python3 py_idle_block.py [--ms 200] [--delay-ms 1500]

Prints ready; --delay-ms later a coroutine calls time.sleep(--ms) on the
loop; its block line is printed from a later iteration; then the loop waits
in epoll with no timeout (no timers, no I/O) until SIGTERM or stdin closes.
"""
import argparse
import asyncio
import json
import os
import sys
import threading
import time

import swtruth


def emit(o):
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()


async def main(a):
    loop = asyncio.get_running_loop()
    tid = threading.get_native_id()
    done = asyncio.Event()
    loop.add_reader(0, lambda: done.set() if not os.read(0, 4096) else None)
    emit({"event": "ready", "pid": os.getpid(), "tid": tid})
    await asyncio.sleep(a.delay_ms / 1000)
    with swtruth.Block() as t:
        time.sleep(a.ms / 1000)
    await asyncio.sleep(0.02)
    emit({"event": "block", "kind": "sleep", "ms": a.ms, "tid": tid, **t.fields()})
    await done.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--ms", type=int, default=200)
    ap.add_argument("--delay-ms", type=int, default=1500)
    try:
        asyncio.run(main(ap.parse_args()))
    except KeyboardInterrupt:
        pass
