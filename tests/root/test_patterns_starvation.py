# SPDX-License-Identifier: Apache-2.0
"""Root tier: cpu_starvation (issue 6 §3, §5). A CPU-bound coroutine
(py_cpu_coroutine.py, ~25 ms of CPU per request: half the threshold, so the
block exists only because of the quota, which is what cpu_starvation means;
more than twice the quota) in a cgroup with a CPU
quota of 5 ms per 100 ms (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us where
the cpu controller is v1's): the loop is runnable but throttled most of each
block. Ground truth: the workload's own run-queue wait (run_delay) and CPU
clock, and the group's cpu.stat throttled time. The cgroup is removed after.

Asserts, per block: the workload was starved (its run-queue wait is at least
half of the block, the group was throttled); the incident is cpu_starvation;
its on/off-CPU split agrees with the workload's within 10 %.
"""
import unittest

import swtest
from swtest import SYS_PYTHON, workload
from test_patterns import NodePatternCase, THRESHOLD_MS

QUOTA_US, PERIOD_US = 5000, 100000


class CpuStarvation(NodePatternCase):
    argv = [SYS_PYTHON, workload("py_cpu_coroutine.py")]
    requests = [("GET", "/primes?n=25000", None)] * 3
    pattern = "cpu_starvation"
    culprit = (r"^count_primes \(", "the coroutine that wanted the CPU, count_primes (file:line)")

    @classmethod
    def setUpClass(cls):
        cls.cg = swtest.CpuQuota(QUOTA_US, PERIOD_US)
        swtest.log("cgroup v%d %s: quota %d us per %d us" % (cls.cg.version, cls.cg.path,
                                                             QUOTA_US, PERIOD_US))
        cls.throttled = [None, None]

        def started(w):
            cls.cg.add(w.pid)
            cls.throttled[0] = cls.cg.throttled_ns()
        try:
            cls.r = swtest.PatternRun(cls.argv, cls.requests, threshold_ms=THRESHOLD_MS,
                                      on_started=started, healthy=5)
            cls.throttled[1] = cls.cg.throttled_ns()
        finally:
            cls.cg.remove()
        cls.pairs = cls.r.pairs

    def test_workload_truth(self):
        self.assertEqual(len(self.r.blocks), len(self.requests),
                         "ground-truth blocks: %d for %d requests\n%s"
                         % (len(self.r.blocks), len(self.requests), self.r.w.out.text()))
        thr = self.throttled[1] - self.throttled[0]
        swtest.log("group throttled %.1f ms while the requests ran" % (thr / 1e6))
        self.assertGreater(thr, 0, "cpu.stat: the group was never throttled")
        for b in self.r.blocks:
            dur = b["end_ns"] - b["start_ns"]
            self.assertGreater(dur, 2 * THRESHOLD_MS * 1e6, "block too short to test: %s" % b)
            self.assertGreaterEqual(b["runq_ns"] * 2, dur, "the workload was not starved: "
                                    "run-queue wait %.1f of %.1f ms: %s"
                                    % (b["runq_ns"] / 1e6, dur / 1e6, b))


def load_tests(loader, standard_tests, pattern):
    suite = unittest.TestSuite()
    suite.addTests(loader.loadTestsFromTestCase(CpuStarvation))
    return suite


if __name__ == "__main__":
    swtest.main("test_patterns_starvation")
