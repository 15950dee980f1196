# SPDX-License-Identifier: Apache-2.0
"""Root tier: event-loop utilization as libuv defines it.

A Node loop runs a steady duty cycle (a 3 ms spin every 10 ms) for 4 s and
measures its own utilization with performance.eventLoopUtilization(), which
reads libuv's idle-time metric. The agent's per-second summaries that lie
wholly inside that window must agree with it within 0.05 (absolute), and
their iteration counts must be those of the timer (about 100 per second).

Node's figure is taken over each summary's own interval: the workload samples
its cumulative idle time at every tick, and the test interpolates it at the
interval's ends. Over the whole window instead, one second of a loaded
machine can differ from the 4 s mean by more than 0.05 (0.342 vs 0.399, one
run with a CPU hog), though both measured right.
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

    def idle_ms_at(self, t_ns):
        """Node's cumulative idle time at t_ns, linear between two ticks (a
        tick is 10 ms apart: at most 7 ms of idle to misplace, 0.014 of a
        1 s interval's utilization at worst over both ends)."""
        pts = self.done["idle_samples"]
        for (t0, i0), (t1, i1) in zip(pts, pts[1:]):
            if t0 <= t_ns <= t1:
                return i0 + (i1 - i0) * (t_ns - t0) / (t1 - t0)
        raise AssertionError("%d outside the workload's samples" % t_ns)

    def test_utilization_matches_node(self):
        elu = float(self.done["elu"])
        self.assertGreater(elu, 0.15, "the workload's own ELU %.3f: duty cycle did not run" % elu)
        self.assertGreaterEqual(len(self.inside), 2, self.sc.agent.describe())
        for s in self.inside:
            lo, hi = int(s["start_ns"]), int(s["end_ns"])
            idle = self.idle_ms_at(hi) - self.idle_ms_at(lo)
            node = 1 - idle * 1e6 / (hi - lo)
            swtest.log("interval %d..%d: agent %.4f, Node %.4f" % (lo, hi, float(s["utilization"]),
                                                                   node))
            # measured over the same interval: within 0.0024 (three 1 s
            # intervals, 2026-11-22, other builds running); the interpolation
            # between ticks can add up to 0.014 (idle_ms_at)
            self.assertAlmostEqual(float(s["utilization"]), node, delta=0.05,
                                   msg="agent %.4f vs Node ELU %.4f over the same interval (%.4f "
                                   "over the whole run): %s"
                                   % (float(s["utilization"]), node, elu, s))

    def test_iterations_follow_the_timer(self):
        self.assertGreaterEqual(len(self.inside), 2, self.sc.agent.describe())
        for s in self.inside:
            # per second the machine gave: a vCPU taken by the hypervisor
            # (steal time, swtest.StealWatch) stops the timer too (a 213 ms
            # stall and 24 iterations/s were seen once in a soak)
            # (the steal of the busiest vCPU, which may not be the loop's:
            # it only ever lowers the floor, never raises the ceiling)
            st = swtest.steal.steal_ns(int(s["start_ns"]), int(s["end_ns"]))
            secs = float(s["interval_ms"]) / 1000
            per_s = int(s["iterations"]) / secs
            per_given_s = int(s["iterations"]) / max(secs - st / 1e9, 1e-3)
            # a 10 ms timer: ~100 iterations/s (libuv may coalesce or add a few)
            self.assertTrue(70 <= per_given_s and per_s <= 130,
                            "%.1f iterations/s (%.1f ms of steal time): %s"
                            % (per_s, st / 1e6, s))
            self.assertGreaterEqual(float(s["p50_ms"]), 3.0 * 0.98, s)


if __name__ == "__main__":
    swtest.main("test_elu")
