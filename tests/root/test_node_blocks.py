# SPDX-License-Identifier: Apache-2.0
"""Root tier: the agent finds every block of node_block.js on the main thread.

Ground truth: the workload's own process.hrtime.bigint() around each block.
- each block (spins 80/150/300 ms, execSync('sleep 0.2'), Atomics.wait 120 ms)
  is a final incident on tid == pid, start and duration within 2 ms;
- no final incident that matches no block (threshold 50 ms);
- ongoing lines end in exactly one final line;
- the agent's largest busy stretch agrees with monitorEventLoopDelay's max
  within 5 %.
"""
import unittest

import swtest
from swtest import NODE, workload


class NodeBlocks(swtest.Checks):
    sc = None

    @classmethod
    def setUpClass(cls):
        cls.sc = swtest.run_scenario([[NODE, workload("node_block.js")]], threshold_ms=50)
        cls.w = cls.sc.workloads[0]
        cls.pid = cls.w.pid
        cls.blocks = cls.w.blocks()
        cls.done = cls.sc.done[cls.pid]
        cls.incidents = cls.sc.agent.incidents(pid=cls.pid)
        cls.pairs = swtest.match_blocks(cls.blocks, cls.incidents)
        swtest.log("blocks vs incidents:\n" + swtest.block_table(cls.pairs))

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent)
        self.assertJsonOnly(self.sc.agent)

    def test_process_line(self):
        self.assertProcessLine(self.sc.process_lines.get(self.pid), self.pid, "node",
                               version=self.w.ready["version"], exe=self.w.ready["exe"])

    def test_workload_ran_schedule(self):
        kinds = [b["kind"] for b in self.blocks]
        self.assertEqual(kinds, ["spin", "spin", "spin", "execSync", "sleep"])
        for b in self.blocks:
            self.assertEqual(b["tid"], self.pid, "node main thread tid must be the pid")

    def test_blocks_found_on_main_thread(self):
        self.assertBlocksFound(self.pairs, context="node_block.js pid %d" % self.pid)
        for b, i in self.pairs:
            self.assertEqual(i.get("role"), "main", "role of %s: expected 'main', got %r"
                             % (swtest.incident_str(i), i.get("role")))
            self.assertEqual(i.get("runtime"), "node", swtest.incident_str(i))

    def test_patterns_named(self):
        self.assertPatterns(self.pairs, "node", swtest.block_table(self.pairs))

    def test_no_unexplained_incidents(self):
        self.assertNoUnexplained(self.pairs, self.incidents,
                                 context="node_block.js pid %d, threshold 50 ms" % self.pid)

    def test_ongoing_lines_consistent(self):
        self.assertOngoingConsistent(self.incidents)

    def _eld_max_ms(self):
        eld = self.done.get("eld_max_ns")
        self.assertIsNotNone(eld, "workload done line has no eld_max_ns: %s" % self.done)
        self.assertGreater(eld, 0, "monitorEventLoopDelay recorded nothing: %s" % self.done)
        return eld / 1e6

    def test_max_incident_agrees_with_eld(self):
        eld = self._eld_max_ms()
        finals = [i for i in self.incidents if i.get("ongoing") is False and i.get("tid") == self.pid]
        self.assertTrue(finals, "no final incident on the main thread")
        top = max(float(i["duration_ms"]) for i in finals)
        self.assertLessEqual(abs(top - eld), 0.05 * eld,
                             "largest incident %.3f ms vs monitorEventLoopDelay max %.3f ms: "
                             "differ by %.1f %% (> 5 %%)" % (top, eld, 100 * abs(top - eld) / eld))

    def test_summary_max_agrees_with_eld(self):
        eld = self._eld_max_ms()
        sums = self.sc.agent.summaries(self.pid, tid=self.pid)
        self.assertTrue(sums, "no loop_summary for the main thread (pid %d)\n%s"
                        % (self.pid, self.sc.agent.describe()))
        top = max(float(s.get("max_ms", 0)) for s in sums)
        self.assertLessEqual(abs(top - eld), 0.05 * eld,
                             "max of loop_summary.max_ms %.3f ms vs monitorEventLoopDelay max "
                             "%.3f ms: differ by %.1f %% (> 5 %%)"
                             % (top, eld, 100 * abs(top - eld) / eld))
        for s in sums:
            self.assertEqual(s.get("role"), "main", "summary role: %s" % s)


if __name__ == "__main__":
    swtest.main("test_node_blocks")
