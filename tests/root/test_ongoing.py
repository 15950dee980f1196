# SPDX-License-Identifier: Apache-2.0
"""Root tier: ongoing incidents, targets that die, threads that appear.

- a loop blocked 3 s (Node spin, on CPU; Python time.sleep, off CPU) shows
  >= 2 "ongoing":true lines before the final one, all with the final's tid and
  start_ns, durations growing; the final duration is within 2 ms of the truth;
- the target is SIGKILLed in the middle of a block: the agent prints
  process_exit for it and either exits by itself or keeps running; either way
  exit code 0 (after SIGINT if still running) and no crash; with a second
  target attached, a block in the survivor after the death is still found;
- threads started while the agent is attached (a Node worker, an asyncio loop
  thread) have their blocks found on their tids.
"""
import signal
import time
import unittest

import swtest
from swtest import NODE, SYS_PYTHON, workload


class OngoingBase(swtest.Checks):
    argv = None
    block_kind = None

    @classmethod
    def setUpClass(cls):
        cls.sc = swtest.run_scenario([cls.argv], threshold_ms=50)
        cls.w = cls.sc.workloads[0]
        cls.pid = cls.w.pid
        cls.blocks = cls.w.blocks()
        cls.incidents = cls.sc.agent.incidents(pid=cls.pid)
        cls.pairs = swtest.match_blocks(cls.blocks, cls.incidents)
        swtest.log("%s\n%s\nincident lines:\n%s"
                   % (cls.__name__, swtest.block_table(cls.pairs),
                      "\n".join(swtest.incident_str(i) for i in cls.incidents)))

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent)
        self.assertJsonOnly(self.sc.agent)

    def test_final_matches_truth(self):
        self.assertEqual([b["kind"] for b in self.blocks], [self.block_kind])
        self.assertBlocksFound(self.pairs)

    def test_ongoing_lines(self):
        b, final = self.pairs[0]
        self.assertIsNotNone(final, "no final incident for the 3 s block")
        key = (final["tid"], final["start_ns"])
        # order on stdout matters: ongoing lines come before the final one
        seq = self.incidents
        fidx = seq.index(final)
        before = [i for i in seq[:fidx] if i.get("ongoing") is True]
        mine = [i for i in before if (i.get("tid"), i.get("start_ns")) == key]
        others = [i for i in before if (i.get("tid"), i.get("start_ns")) != key]
        self.assertEqual(others, [], "ongoing lines with another tid/start_ns than the final "
                         "(%s, %s):\n%s" % (key[0], key[1],
                                            "\n".join(swtest.incident_str(i) for i in others)))
        self.assertGreaterEqual(len(mine), 2,
                                "expected >= 2 ongoing lines before the final one of a 3 s block "
                                "(>= 1/s), got %d:\n%s" % (len(mine), "\n".join(
                                    swtest.incident_str(i) for i in seq)))
        durs = [float(i["duration_ms"]) for i in mine]
        self.assertTrue(all(a < b for a, b in zip(durs, durs[1:])),
                        "ongoing durations do not grow: %s" % durs)
        self.assertGreaterEqual(durs[0], 50 - 0.001, "first ongoing line below threshold: %s" % durs)
        self.assertLessEqual(durs[-1], float(final["duration_ms"]),
                             "last ongoing %.3f > final %.3f" % (durs[-1], float(final["duration_ms"])))
        # at least once a second: no gap between consecutive reports > 1 s
        # (+ slack for a noisy box); measured on the reported durations
        pts = durs + [float(final["duration_ms"])]
        worst = max(b - a for a, b in zip(pts, pts[1:]))
        self.assertLessEqual(worst, 1250, "ongoing lines further apart than 1 s (+250 ms slack): "
                             "durations %s then final %.3f" % (durs, pts[-1]))

    def test_ongoing_lines_consistent(self):
        self.assertOngoingConsistent(self.incidents)


class OngoingNodeSpin(OngoingBase):
    argv = [NODE, workload("node_block.js"), "--schedule", "spin:3000"]
    block_kind = "spin"


class OngoingPythonSleep(OngoingBase):
    argv = [SYS_PYTHON, workload("py_asyncio.py"), "--schedule", "sleep:3000"]
    block_kind = "sleep"


class TargetDiesAlone(swtest.Checks):
    """The only target is killed mid-block; the agent may exit by itself."""
    argv = [NODE, workload("node_block.js"), "--schedule", "spin:6000"]

    @classmethod
    def setUpClass(cls):
        run = swtest.Run()
        cls.sc = run
        try:
            w = run.attach([cls.argv])[0]
            time.sleep(0.5)
            w.go()
            # wait until the agent sees the block in progress, then kill
            cls.ongoing = run.agent.out.wait_for(
                lambda o: o.get("kind") == "incident" and o.get("ongoing") is True
                and o.get("pid") == w.pid, 5.0)
            w.kill(signal.SIGKILL)
            cls.exit_line = run.agent.out.wait_for(
                lambda o: o.get("kind") == "process_exit" and o.get("pid") == w.pid, 10.0)
            cls.self_exit_rc = run.agent.wait_exit(5.0)
            cls.exited_by_itself = cls.self_exit_rc is not None
            run.rc = run.agent.stop()
        finally:
            run.close()
        cls.pid = w.pid
        swtest.log("%s: agent %s, rc %s" % (cls.__name__, "exited by itself" if cls.exited_by_itself
                                             else "kept running (stopped by SIGINT)", run.rc))

    def test_process_exit_line(self):
        self.assertIsNotNone(self.exit_line, "no {\"kind\":\"process_exit\",\"pid\":%d} within "
                             "10 s of SIGKILL\n%s" % (self.pid, self.sc.agent.describe()))

    def test_saw_block_before_kill(self):
        self.assertIsNotNone(self.ongoing, "no ongoing incident within 5 s of a 6 s spin\n%s"
                             % self.sc.agent.describe())

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent, context="target killed mid-run:")
        self.assertJsonOnly(self.sc.agent)

    def test_no_lines_for_dead_pid_after_exit(self):
        lines = self.sc.agent.out.objs
        if self.exit_line is None:
            self.skipTest("no process_exit line")
        idx = lines.index(self.exit_line)
        later = [o for o in lines[idx + 1:] if o.get("pid") == self.pid
                 and o.get("kind") in ("incident",) and o.get("ongoing") is True]
        self.assertEqual(later, [], "ongoing incidents for pid %d after its process_exit:\n%s"
                         % (self.pid, "\n".join(map(str, later))))


class TargetDiesOtherSurvives(swtest.Checks):
    """Two targets; one is killed mid-block; the survivor's later block is found."""

    @classmethod
    def setUpClass(cls):
        run = swtest.Run()
        cls.sc = run
        try:
            victim = swtest.Workload([NODE, workload("node_block.js"), "--schedule", "spin:6000",
                                      "--gap-ms", "300"])
            survivor = swtest.Workload([SYS_PYTHON, workload("py_asyncio.py"), "--schedule",
                                        "cpu:150", "--gap-ms", "3000"])
            run.workloads += [victim, survivor]
            run.agent = swtest.Agent([victim.pid, survivor.pid], threshold_ms=50, interval=1)
            run.process_lines = run.agent.wait_attached()
            time.sleep(0.5)
            victim.go()
            survivor.go()
            time.sleep(1.2)
            victim.kill(signal.SIGKILL)
            cls.killed_ns = time.monotonic_ns()
            survivor.wait_done(30)
            time.sleep(1.7)
            cls.alive_before_stop = run.agent.p.poll() is None
            run.rc = run.agent.stop()
        finally:
            run.close()
        cls.victim, cls.survivor = victim, survivor
        cls.blocks = survivor.blocks()
        cls.incidents = run.agent.incidents(pid=survivor.pid)
        cls.pairs = swtest.match_blocks(cls.blocks, cls.incidents)
        swtest.log("%s\n%s" % (cls.__name__, swtest.block_table(cls.pairs)))

    def test_agent_kept_running(self):
        self.assertTrue(self.alive_before_stop, "agent exited although a target was still alive"
                        "\n%s" % self.sc.agent.describe())

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent)
        self.assertJsonOnly(self.sc.agent)

    def test_process_exit_for_victim_only(self):
        exits = [o.get("pid") for o in self.sc.agent.lines("process_exit")]
        self.assertIn(self.victim.pid, exits, "no process_exit for the killed pid %d; got %s"
                      % (self.victim.pid, exits))

    def test_survivor_block_found_after_death(self):
        self.assertTrue(self.blocks and self.blocks[0]["start_ns"] > self.killed_ns,
                        "survivor's block should start after the kill")
        self.assertBlocksFound(self.pairs, context="survivor pid %d after pid %d was killed"
                               % (self.survivor.pid, self.victim.pid))
        self.assertNoUnexplained(self.pairs, self.incidents)


class ThreadsStartedWhileAttached(swtest.Checks):
    """Loop threads created after attach: a Node worker, an asyncio loop thread."""

    @classmethod
    def setUpClass(cls):
        cls.sc = swtest.run_scenario([
            [NODE, workload("node_worker.js"), "--late"],
            [SYS_PYTHON, workload("py_asyncio.py"), "--loop-thread", "--late",
             "--schedule", "sleep:150,cpu:120"],
        ], threshold_ms=50)
        cls.node, cls.py = cls.sc.workloads
        cls.results = {}
        for w in (cls.node, cls.py):
            inc = cls.sc.agent.incidents(pid=w.pid)
            pairs = swtest.match_blocks(w.blocks(), inc)
            cls.results[w.pid] = (w, inc, pairs)
            swtest.log("%s pid %d\n%s" % (w.name, w.pid, swtest.block_table(pairs)))

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent)
        self.assertJsonOnly(self.sc.agent)

    def test_ground_truth_on_new_threads(self):
        for w, inc, pairs in self.results.values():
            self.assertIsNone(w.ready.get("worker_tid") or w.ready.get("loop_tid"),
                              "the thread must not exist at ready time")
            self.assertTrue(pairs, "%s printed no blocks" % w.name)
            self.assertTrue(all(b["tid"] != w.pid for b, _ in pairs))

    def test_node_late_worker_blocks_found(self):
        w, inc, pairs = self.results[self.node.pid]
        self.assertBlocksFound(pairs, context="late worker of node pid %d" % w.pid)
        self.assertNoUnexplained(pairs, inc)
        for _, i in pairs:
            self.assertEqual(i.get("role"), "worker", swtest.incident_str(i))

    def test_python_late_loop_thread_blocks_found(self):
        w, inc, pairs = self.results[self.py.pid]
        self.assertBlocksFound(pairs, context="late asyncio thread of python pid %d" % w.pid)
        self.assertNoUnexplained(pairs, inc)


def load_tests(loader, standard_tests, pattern):
    suite = unittest.TestSuite()
    for c in (OngoingNodeSpin, OngoingPythonSleep, TargetDiesAlone, TargetDiesOtherSurvives,
              ThreadsStartedWhileAttached):
        suite.addTests(loader.loadTestsFromTestCase(c))
    return suite


if __name__ == "__main__":
    swtest.main("test_ongoing")
