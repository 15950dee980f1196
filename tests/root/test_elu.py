# SPDX-License-Identifier: Apache-2.0
"""Root tier: event-loop utilization as libuv defines it.

A Node loop runs a steady duty cycle (a 3 ms spin every 10 ms) for 4 s and
measures its own utilization with performance.eventLoopUtilization(), which
reads libuv's idle-time metric. The agent's per-second summaries that lie
wholly inside that window must agree with it within 0.05 (absolute), and
their iteration counts must be those of the timer (about 100 per second).
"""
import unittest

import swtest
from swtest import NODE, workload


class Elu(swtest.Checks):
    @classmethod
    def setUpClass(cls):
        cls.sc = swtest.run_scenario([[NODE, workload("node_duty.js")]], threshold_ms=50,
                                     interval=1)
        cls.w = cls.sc.workloads[0]
        cls.done = cls.sc.done[cls.w.pid]
        sums = cls.sc.agent.summaries(cls.w.pid, tid=cls.w.pid)
        # the summaries whose interval lies wholly inside the duty cycle
        lo, hi = int(cls.done["start_ns"]), int(cls.done["end_ns"])
        cls.inside = [s for s in sums if int(s["start_ns"]) >= lo and int(s["end_ns"]) <= hi]

    def test_utilization_matches_node(self):
        elu = float(self.done["elu"])
        self.assertGreater(elu, 0.15, "the workload's own ELU %.3f: duty cycle did not run" % elu)
        self.assertGreaterEqual(len(self.inside), 2, self.sc.agent.describe())
        for s in self.inside:
            self.assertAlmostEqual(float(s["utilization"]), elu, delta=0.05,
                                   msg="agent %.4f vs Node ELU %.4f: %s"
                                   % (float(s["utilization"]), elu, s))

    def test_iterations_follow_the_timer(self):
        self.assertGreaterEqual(len(self.inside), 2, self.sc.agent.describe())
        for s in self.inside:
            per_s = int(s["iterations"]) / (float(s["interval_ms"]) / 1000)
            # a 10 ms timer: ~100 iterations/s (libuv may coalesce or add a few)
            self.assertTrue(70 <= per_s <= 130, "%.1f iterations/s: %s" % (per_s, s))
            self.assertGreaterEqual(float(s["p50_ms"]), 3.0 * 0.98, s)


if __name__ == "__main__":
    swtest.main("test_elu")
