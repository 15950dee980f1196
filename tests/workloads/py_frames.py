# SPDX-License-Identifier: Apache-2.0
"""Workload: an asyncio loop thread that blocks in a known Python stack, then
runs the cyclic GC over a big heap, for reading its frames from outside
(tests/root/test_pyframes.py).

    python3 py_frames.py [--rounds 5] [--pad 0]

The loop thread runs a task, handler(), that awaits a coroutine which calls
through map() (a C call back into Python), a class method, functions with
non-ASCII names (UCS1, UCS2 and UCS4 str) down to blocking_read(), which
(--pad N puts N more frames of pad() under inner())
blocks in os.read() on a pipe. While it blocks, a helper thread takes
CPython's own view of that thread's stack (sys._current_frames(), innermost
first: co_qualname on 3.11+, else co_name; co_filename; f_lineno) and prints

  {"event": "blocked", "pid", "tid" (native id of the loop thread),
   "version", "frames": [{"func", "file", "line"}, ...],
   "calls": {function: line of the call it is blocked in}}

"calls" is what each function of the chain recorded of itself
(sys._getframe().f_lineno on the line of the call). On "go" from stdin the
read returns; the loop thread builds a heap of reference cycles and prints
{"event": "gc_ready", "collect_ms"}; it then runs --rounds of gc.collect()
with time.sleep() between them, gc.callbacks timing each collection with
CLOCK_MONOTONIC, and prints {"event": "gc", "intervals": [[start_ns,
stop_ns], ...], "func", "line"} (the function and line of the gc.collect()
call), then stays until stdin closes.
Runs on CPython 3.9+ with the standard library only.
"""
import argparse
import asyncio
import gc
import json
import os
import sys
import threading
import time

CALLS = {}
QUALNAME = sys.version_info >= (3, 11)


def here(name):
    """The line of the caller's current statement, recorded under name."""
    CALLS[name] = sys._getframe(1).f_lineno


def blocking_read(fd):
    here("blocking_read"); return os.read(fd, 1)  # noqa: E702 (same line: the call's)


def 𠀀_deep(fd):
    here("𠀀_deep"); return blocking_read(fd)  # noqa: E702


def 処理(fd):
    here("処理"); return 𠀀_deep(fd)  # noqa: E702


class Blocker:
    def façade(self, fd):
        here("Blocker.façade" if QUALNAME else "façade"); return 処理(fd)  # noqa: E702


def via_c(fd):
    here("via_c"); return Blocker().façade(fd)  # noqa: E702


def pad(n, fd):
    """n more frames (--pad), for measuring deeper stacks."""
    if n == 0:
        return list(map(via_c, [fd]))
    return pad(n - 1, fd)


async def inner(fd, npad):
    await asyncio.sleep(0)
    here("inner"); return pad(npad, fd) if npad else list(map(via_c, [fd]))  # noqa: E702


async def handler(fd, npad=0):
    here("handler"); return await inner(fd, npad)  # noqa: E702


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def snapshot(ident):
    """CPython's view of thread ident's stack, innermost first."""
    frames = []
    f = sys._current_frames().get(ident)
    while f is not None:
        co = f.f_code
        frames.append({"func": co.co_qualname if QUALNAME else co.co_name,
                       "file": co.co_filename, "line": f.f_lineno})
        f = f.f_back
    return frames


def gc_phase(rounds):
    intervals = []

    def cb(phase, info):
        if phase == "start":
            intervals.append([time.monotonic_ns(), 0])
        elif intervals:
            intervals[-1][1] = time.monotonic_ns()

    gc.disable()  # only the collections we run
    heap = []
    for i in range(600_000):
        a = [i]
        a.append(a)  # a cycle: the collector must traverse it, it stays alive
        heap.append(a)
    t0 = time.monotonic()
    gc.collect()
    collect_ms = (time.monotonic() - t0) * 1000
    gc.callbacks.append(cb)
    emit({"event": "gc_ready", "collect_ms": round(collect_ms, 1)})
    time.sleep(0.5)
    line = 0
    for _ in range(rounds):
        line = sys._getframe().f_lineno; gc.collect()  # noqa: E702
        time.sleep(0.25)
    gc.callbacks.remove(cb)
    emit({"event": "gc", "intervals": intervals, "func": "gc_phase", "line": line})
    return heap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pad", type=int, default=0)
    a = ap.parse_args()
    rfd, wfd = os.pipe()
    about_to_block = threading.Event()
    info = {}

    def loop_thread():
        info["ident"] = threading.get_ident()
        info["tid"] = threading.get_native_id()

        async def task():
            about_to_block.set()
            await handler(rfd, a.pad)
            gc_phase(a.rounds)

        asyncio.run(task())

    t = threading.Thread(target=loop_thread, name="loop", daemon=True)
    t.start()
    about_to_block.wait()
    # the stack stops changing once blocking_read is on top (os.read is C)
    deadline = time.monotonic() + 10
    frames = []
    while time.monotonic() < deadline:
        frames = snapshot(info["ident"])
        if frames and frames[0]["func"] == "blocking_read" and "blocking_read" in CALLS:
            break
        time.sleep(0.01)
    time.sleep(0.05)
    frames = snapshot(info["ident"])
    emit({"event": "blocked", "pid": os.getpid(), "tid": info["tid"],
          "version": "%d.%d.%d" % sys.version_info[:3], "frames": frames, "calls": CALLS})
    for line in sys.stdin:
        if line.strip() == "go":
            os.write(wfd, b"x")
            break
    t.join()
    sys.stdin.read()  # until the harness closes it (or kills us)


if __name__ == "__main__":
    main()
