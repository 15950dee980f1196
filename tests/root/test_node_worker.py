# SPDX-License-Identifier: Apache-2.0
"""Root tier: blocks in a worker_threads worker are found on the worker's tid
with role "worker"; the main loop (healthy, ticking every 5 ms) has none.

Ground truth: the worker's own process.hrtime.bigint() and /proc/thread-self.
"""
import unittest

import swtest
from swtest import NODE, workload


class NodeWorker(swtest.Checks):
    @classmethod
    def setUpClass(cls):
        cls.sc = swtest.run_scenario([[NODE, workload("node_worker.js")]], threshold_ms=50)
        cls.w = cls.sc.workloads[0]
        cls.pid = cls.w.pid
        cls.worker_tid = cls.w.ready["worker_tid"]
        cls.blocks = cls.w.blocks()
        cls.incidents = cls.sc.agent.incidents(pid=cls.pid)
        cls.pairs = swtest.match_blocks(cls.blocks, cls.incidents)
        swtest.log("main tid %d, worker tid %d\n%s"
                   % (cls.pid, cls.worker_tid, swtest.block_table(cls.pairs)))

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent)
        self.assertJsonOnly(self.sc.agent)

    def test_workload_ground_truth(self):
        self.assertNotEqual(self.worker_tid, self.pid)
        self.assertEqual([b["tid"] for b in self.blocks], [self.worker_tid] * 2)

    def test_worker_blocks_found(self):
        self.assertBlocksFound(self.pairs, context="node_worker.js pid %d worker tid %d"
                               % (self.pid, self.worker_tid))
        for b, i in self.pairs:
            self.assertEqual(i.get("role"), "worker", "role: expected 'worker', got %r in %s"
                             % (i.get("role"), swtest.incident_str(i)))

    def test_none_on_main_thread(self):
        main = [i for i in self.incidents if i.get("tid") == self.pid]
        self.assertEqual(main, [], "incidents on the healthy main thread (tid %d):\n%s"
                         % (self.pid, "\n".join(swtest.incident_str(i) for i in main)))

    def test_no_unexplained_incidents(self):
        self.assertNoUnexplained(self.pairs, self.incidents)

    def test_ongoing_lines_consistent(self):
        self.assertOngoingConsistent(self.incidents)

    def test_worker_has_summaries(self):
        sums = self.sc.agent.summaries(self.pid, tid=self.worker_tid)
        self.assertTrue(sums, "no loop_summary for worker tid %d; summaries seen for tids %s"
                        % (self.worker_tid,
                           sorted({s.get("tid") for s in self.sc.agent.summaries(self.pid)})))
        self.assertTrue(all(s.get("role") == "worker" for s in sums),
                        "worker summaries with a role other than 'worker': %s"
                        % [s.get("role") for s in sums])
        top = max(float(s.get("max_ms", 0)) for s in sums)
        truth = max(b["end_ns"] - b["start_ns"] for b in self.blocks) / 1e6
        self.assertGreaterEqual(top, truth * 0.98,
                                "worker summaries' max_ms %.3f < longest worker block %.3f ms"
                                % (top, truth))


if __name__ == "__main__":
    swtest.main("test_node_worker")
