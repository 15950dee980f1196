# SPDX-License-Identifier: Apache-2.0
"""Root tier: the ways of attaching that a fresh or odd machine needs.

- tracefs not mounted (a private mount namespace where it is unmounted): the
  agent mounts it for the per-syscall tracepoints and measures as usual;
- --raw-syscalls (tp_btf/sys_enter, no tracefs at all) measures the same;
- the target execs a new program while watched (Python -> Node, same pid):
  the agent says so, re-identifies it and measures the new program's loop.
Each block within 2 ms of the workload's own CLOCK_MONOTONIC timestamps.
"""
import time
import unittest

import swtest
from swtest import NODE, SYS_PYTHON, workload

SCHEDULE = "spin:90,execSync:150"


class Modes(swtest.Checks):
    def check_run(self, agent, w, nblocks):
        blocks = w.blocks()
        self.assertEqual(len(blocks), nblocks, blocks)
        pairs = swtest.match_blocks(blocks, agent.incidents(pid=w.pid))
        table = swtest.block_table(pairs)
        for b, i in pairs:
            self.assertIsNotNone(i, "block not found\n%s\n%s" % (table, agent.describe()))
            self.assertIsNone(swtest.block_mismatch(b, i), table)
            self.assertEqual(i["tid"], w.pid)

    def scenario(self, wrapper=(), extra=()):
        w = swtest.Workload([NODE, workload("node_block.js"), "--schedule", SCHEDULE])
        agent = swtest.Agent([w.pid], extra=list(extra) + ["-v"], wrapper=wrapper)
        try:
            agent.wait_attached()
            time.sleep(0.5)
            w.go()
            w.wait_done(30)
            time.sleep(0.5)
            self.assertEqual(agent.stop(), 0, agent.describe())
            self.check_run(agent, w, 2)
            return agent
        finally:
            w.stop()
            agent.stop()

    def test_tracefs_unmounted(self):
        # in a private mount namespace nothing leaks to the host's mounts
        script = ("umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug "
                  "2>/dev/null; test ! -e /sys/kernel/tracing/events || exit 99; exec \"$@\"")
        agent = self.scenario(wrapper=["unshare", "-m", "--propagation", "private",
                                       "sh", "-c", script, "sh"])
        self.assertIn("attached with syscall tracepoints", agent.err.text())

    def test_raw_syscalls(self):
        agent = self.scenario(extra=["--raw-syscalls"])
        self.assertIn("attached with raw syscall tracepoints", agent.err.text())

    def test_exec_while_watched(self):
        w = swtest.Workload([SYS_PYTHON, workload("exec_into_node.py"), workload("node_block.js"),
                             "--schedule", SCHEDULE])
        agent = swtest.Agent([w.pid])
        try:
            first = agent.wait_attached()[w.pid]
            self.assertEqual(first["runtime"], "python")
            time.sleep(0.3)
            w.go()  # python execs node here
            node_ready = w.out.wait_for(lambda o: o.get("event") == "ready"
                                        and "version" in o, 30)
            self.assertIsNotNone(node_ready, w.out.text())
            self.assertEqual(node_ready["pid"], w.pid, "exec keeps the pid")
            again = agent.out.wait_for(lambda o: o.get("kind") == "process"
                                       and o.get("runtime") == "node", 10)
            self.assertIsNotNone(again, "no new process line after exec\n" + agent.describe())
            self.assertTrue(agent.lines("process_exec", pid=w.pid), agent.describe())
            time.sleep(0.5)
            w.go()
            w.wait_done(30)
            time.sleep(0.5)
            self.assertEqual(agent.stop(), 0, agent.describe())
            self.check_run(agent, w, 2)
            for i in agent.incidents(pid=w.pid):
                self.assertEqual(i["runtime"], "node", i)
        finally:
            w.stop()
            agent.stop()


if __name__ == "__main__":
    swtest.main("test_attach_modes")
