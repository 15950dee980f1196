# SPDX-License-Identifier: Apache-2.0
"""Root tier: a Node loop that yields with setImmediate is healthy.

Node runs libuv with loop metrics on, so every poll with a timeout is
preceded by a zero-timeout pre-poll; while setImmediate callbacks are pending
the loop polls with timeout 0 only, once per iteration. An agent that treats
every empty zero-timeout poll as a pre-poll merges thousands of short
iterations into one "blocked" stretch. Ground truth from the workload: it ran
N immediates (one loop iteration each), each of known length.
"""
import unittest

import swtest
from swtest import NODE, workload

COUNT = 3000
WORK_US = 200


class NodeImmediate(swtest.Checks):
    @classmethod
    def setUpClass(cls):
        cls.sc = swtest.run_scenario([[NODE, workload("node_immediate.js"), "--count",
                                        str(COUNT), "--work-us", str(WORK_US)]],
                                      threshold_ms=50, interval=1)
        cls.w = cls.sc.workloads[0]
        cls.done = cls.sc.done[cls.w.pid]
        cls.sums = cls.sc.agent.summaries(cls.w.pid, tid=cls.w.pid)

    def test_no_incident(self):
        inc = self.sc.agent.incidents(pid=self.w.pid)
        self.assertEqual(inc, [], "a setImmediate chain of %d x %d us is not a blocked loop:\n%s"
                         % (COUNT, WORK_US, "\n".join(swtest.incident_str(i) for i in inc)))

    def test_one_iteration_per_immediate(self):
        self.assertEqual(self.done["immediates"], COUNT)
        total = sum(int(s["iterations"]) for s in self.sums)
        # Every immediate is an iteration. The loop idles in epoll until "go";
        # the agent seeds that wait from /proc at attach, so the iteration
        # "go" starts (which runs immediate #1) is seen from its beginning.
        # The rest of the run (the done timer, idle wake-ups) adds a handful,
        # never another thousand.
        self.assertGreaterEqual(total, COUNT, "iterations %d < %d immediates\n%s"
                                % (total, COUNT, self.sc.agent.describe()))
        self.assertLessEqual(total, COUNT + 300, "iterations %d for %d immediates\n%s"
                             % (total, COUNT, self.sc.agent.describe()))

    def test_iteration_length_is_the_callback(self):
        busiest = max(self.sums, key=lambda s: int(s["iterations"]))
        p50 = float(busiest["p50_ms"])
        max_cb_ms = int(self.done["max_callback_ns"]) / 1e6
        self.assertGreaterEqual(p50, WORK_US / 1000 * 0.98,
                                "p50 %.3f ms shorter than the %d us of work: %s"
                                % (p50, WORK_US, busiest))
        self.assertLessEqual(p50, max_cb_ms + 0.5, busiest)

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent)


if __name__ == "__main__":
    swtest.main("test_node_immediate")
