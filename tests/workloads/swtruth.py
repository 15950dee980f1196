# SPDX-License-Identifier: Apache-2.0
"""Ground truth of a block, measured inside a Python workload.

    with swtruth.Block() as t:
        time.sleep(0.2)
    emit({"event": "block", ..., **t.fields()})

start_ns/end_ns are time.monotonic_ns() (CLOCK_MONOTONIC, the agent's clock)
around the block; runq_ns is the time the thread waited for a CPU in between:
the kernel's sched_info.run_delay (field 2 of /proc/thread-self/schedstat),
brought up to date each time the thread gets a CPU, so exact when the thread
reads it itself. The agent's block starts at the loop's wait return, a little
before start_ns; a preemption there is in the agent's run-queue time but not
in runq_ns, which is how tests/root/swtest.py tells it from an error.
"""
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


class Block:
    def __enter__(self):
        self.start_ns = time.monotonic_ns()
        self._rd0 = run_delay_ns()
        return self

    def __exit__(self, *exc):
        rd1 = run_delay_ns()
        self.end_ns = time.monotonic_ns()
        self.runq_ns = rd1 - self._rd0
        return False

    def fields(self):
        return {"start_ns": self.start_ns, "end_ns": self.end_ns, "runq_ns": self.runq_ns}
