# SPDX-License-Identifier: Apache-2.0
"""Root tier: a block is reported when it ends, even if the loop then sleeps.

An idle server may not wake for minutes after its last request. The end of
its last block must not wait for that: the agent closes an iteration when the
loop enters its wait, not when it leaves it. The workloads block once (Node:
a spin; Python: time.sleep in a coroutine) and then have nothing to do; the
final incident must come out within 2 s, within 2 ms of the ground truth
(swtest.block_mismatch: preemption the agent measured outside the
workload's own window is accounted for).
"""
import time
import unittest

import swtest
from swtest import NODE, SYS_PYTHON, workload


class IdleAfterBlock(swtest.Checks):
    argv = None

    def run_one(self, argv):
        w = swtest.Workload(argv)
        agent = swtest.Agent([w.pid])
        try:
            agent.wait_attached()
            b = w.wait_event("block", 30)
            got = agent.out.wait_for(lambda o: o.get("kind") == "incident"
                                     and o["ongoing"] is False and o["tid"] == b["tid"], 2.0)
            self.assertIsNotNone(got, "no final incident within 2 s of the block's end while "
                                 "the loop sleeps\n%s" % agent.describe())
            self.assertIsNone(swtest.block_mismatch(b, got), swtest.block_table([(b, got)]))
            self.assertFalse(got.get("start_before_attach", False), got)
            self.assertEqual(agent.stop(), 0, agent.describe())
        finally:
            w.stop()
            agent.stop()

    def test_node(self):
        self.run_one([NODE, workload("node_stuck.js"), "--ms", "200", "--delay-ms", "2000"])

    def test_python(self):
        self.run_one([SYS_PYTHON, workload("py_idle_block.py"), "--ms", "200",
                      "--delay-ms", "2000"])


if __name__ == "__main__":
    swtest.main("test_idle_after_block")
