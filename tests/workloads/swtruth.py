# SPDX-License-Identifier: Apache-2.0
"""Ground truth of a block, measured inside a Python workload.

    with swtruth.Block() as t:
        time.sleep(0.2)
    emit({"event": "block", ..., **t.fields()})

start_ns/end_ns are time.monotonic_ns() (CLOCK_MONOTONIC, the agent's clock)
around the block; oncpu_ns the time the thread ran in between
(time.thread_time_ns(): CLOCK_THREAD_CPUTIME_ID, user and system); runq_ns
the time it waited for a CPU in between:
the kernel's sched_info.run_delay (field 2 of /proc/thread-self/schedstat),
brought up to date each time the thread gets a CPU, so exact when the thread
reads it itself. The agent's block starts at the loop's wait return, a little
before start_ns; a preemption there is in the agent's run-queue time but not
in runq_ns, which is how tests/root/swtest.py tells it from an error.
"""
import gc
import inspect
import os
import threading
import time

_local = threading.local()


def run_delay_ns():
    """This thread's run-queue wait so far; one pread on a per-thread fd."""
    fd = getattr(_local, "fd", None)
    if fd is None:
        fd = _local.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
    return int(os.pread(fd, 128, 0).split()[1])


class GcClock:
    """Time the cyclic collector ran on this process, from gc.callbacks
    (start/stop of every collection, on the thread that collects):
    CLOCK_MONOTONIC and the collecting thread's CPU time. Install once;
    Block reads it when one is installed."""
    installed = None

    def __init__(self):
        self.total_ns = 0
        self.collections = 0
        self._t0 = None
        gc.callbacks.append(self._cb)
        GcClock.installed = self

    def _cb(self, phase, info):
        if phase == "start":
            self._t0 = time.monotonic_ns()
        elif self._t0 is not None:
            self.total_ns += time.monotonic_ns() - self._t0
            self.collections += 1
            self._t0 = None


class Block:
    def __enter__(self):
        g = GcClock.installed
        self._gc0 = (g.total_ns, g.collections) if g else None
        self.start_ns = time.monotonic_ns()
        self._rd0 = run_delay_ns()
        self._cpu0 = time.thread_time_ns()
        return self

    def __exit__(self, *exc):
        cpu1 = time.thread_time_ns()
        rd1 = run_delay_ns()
        self.end_ns = time.monotonic_ns()
        self.runq_ns = rd1 - self._rd0
        self.oncpu_ns = cpu1 - self._cpu0
        if self._gc0 is not None:
            g = GcClock.installed
            self.gc_ns = g.total_ns - self._gc0[0]
            self.gc_collections = g.collections - self._gc0[1]
        return False

    def fields(self):
        f = {"start_ns": self.start_ns, "end_ns": self.end_ns, "runq_ns": self.runq_ns,
             "oncpu_ns": self.oncpu_ns}
        if self._gc0 is not None:
            f["gc_ns"] = self.gc_ns
            f["gc_collections"] = self.gc_collections
        return f


def where(func, marker=None):
    """Ground truth of a Python frame: {"func", "file", "first", "last",
    "line"} of func as the interpreter sees it (co_filename, the lines of its
    source), "line" being the line that holds the comment `# <marker>` (the
    blocking call) or None. The test expects the frame `func (file:line)`."""
    code = func.__code__
    lines, first = inspect.getsourcelines(func)
    line = None
    if marker:
        for k, text in enumerate(lines):
            if "# " + marker in text:
                line = first + k
                break
        if line is None:
            raise ValueError("no '# %s' comment in %s" % (marker, code.co_name))
    return {"func": code.co_name, "file": code.co_filename, "first": first,
            "last": first + len(lines) - 1, "line": line}
