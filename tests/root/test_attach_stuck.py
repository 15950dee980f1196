# SPDX-License-Identifier: Apache-2.0
"""Root tier: attaching to a Node loop that is already stuck.

The reason an SRE attaches is often that the loop is stuck right now. The
workload starts a 3 s synchronous spin before the agent is started; the agent
must report it while it lasts (ongoing, flagged start_before_attach, its
start no earlier than the real start) and end it within 2 ms of the
workload's own end timestamp. Its duration is then a lower bound: it cannot
know when the stretch began.
"""
import time
import unittest

import swtest
from swtest import NODE, workload

SPIN_MS = 3000


class AttachStuck(swtest.Checks):
    @classmethod
    def setUpClass(cls):
        cls.w = swtest.Workload([NODE, workload("node_stuck.js"), "--ms", str(SPIN_MS)])
        try:
            time.sleep(0.4)  # the spin is under way
            cls.agent = swtest.Agent([cls.w.pid])
            cls.agent.wait_attached()
            cls.block = cls.w.wait_event("block", SPIN_MS / 1000 + 30)
            time.sleep(0.5)
            cls.rc = cls.agent.stop()
        finally:
            cls.w.stop()
            if cls.agent.rc is None:
                cls.agent.stop()

    def test_reported_while_stuck_and_after(self):
        b = self.block
        inc = [i for i in self.agent.incidents(pid=self.w.pid) if i["tid"] == b["tid"]]
        ongoing = [i for i in inc if i["ongoing"]]
        final = [i for i in inc if not i["ongoing"]]
        self.assertEqual(len(final), 1, self.agent.describe())
        self.assertGreaterEqual(len(ongoing), 2, "a stuck loop must show while stuck\n%s"
                                % self.agent.describe())
        f = final[0]
        self.assertTrue(f.get("start_before_attach"), f)
        self.assertTrue(all(i.get("start_before_attach") for i in ongoing), ongoing)
        self.assertTrue(all(i["start_ns"] == f["start_ns"] for i in ongoing), ongoing)
        # it began no earlier than the truth, and ends with it: at its next
        # wait, later than the workload's last clock read by at most what the
        # loop still did before that wait (a preemption, GC), which the
        # workload bounds from libuv's idle accounting (after_busy_ns,
        # swlib.js after()); the agent's own run-queue time cannot tell it
        # apart here, its window beginning at attach, inside the workload's
        self.assertGreaterEqual(f["start_ns"], b["start_ns"], f)
        end_ns = f["start_ns"] + f["duration_ms"] * 1e6
        after = int(b["after_busy_ns"])
        self.assertTrue(-swtest.TOL_NS <= end_ns - b["end_ns"] <= swtest.TOL_NS + after,
                        "end %.0f vs truth %d (%+.3f ms, the loop busy after the "
                        "workload's window at most %.3f ms)\n%s"
                        % (end_ns, b["end_ns"], (end_ns - b["end_ns"]) / 1e6, after / 1e6, f))
        self.assertTrue(swtest.pattern_matches("node.cpu_bound_callback", f), f)

    def test_agent_exit_clean(self):
        self.assertEqual(self.rc, 0, self.agent.describe())
        self.assertCleanExit(self.agent)


if __name__ == "__main__":
    swtest.main("test_attach_stuck")
