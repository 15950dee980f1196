# SPDX-License-Identifier: Apache-2.0
"""Root tier: text from a target is always valid UTF-8.

A Node app that sets a non-ASCII process.title gets its comm cut by the
kernel at 15 bytes, inside a character ("Xзаказы-сервер" becomes "Xзаказы-"
and the first byte of "с"); a Python loop thread gets a non-ASCII OS name cut
the same way. Both block their loop once, the agent streams to a collector,
and then:
- every line of the agent's --json output is UTF-8 JSON (swtest.Lines is
  strict), and the process and incident lines name the target by what the
  kernel kept, cut on a character boundary, a bad sequence as U+FFFD;
- the collector's /metrics is UTF-8 and passes `promtool check metrics`
  (Prometheus's own parser), and its comm label is the Node name;
- /api/incidents is UTF-8 JSON with the same names.
"""
import shutil
import subprocess
import time
import unittest

import swtest
from swtest import (NODE, SYS_PYTHON, Collector, free_port, http_get, incidents, metrics,
                    series, wait_for, workload)

TITLE = "Xзаказы-сервер"        # the kernel keeps 15 bytes: "Xзаказы-" + 0xd1
THREAD = "Yцикл-событий"        # 15 bytes: "Yцикл-со" + 0xd0


def kept(name):
    """What a target's name may be reported as: the kernel's 15 bytes, a cut
    character replaced by U+FFFD or dropped, and a name of this form is a
    prefix of the original once that U+FFFD is gone."""
    raw = name.encode()[:15]
    return raw.decode("utf-8", "replace")


class Utf8(swtest.Checks):
    @classmethod
    def setUpClass(cls):
        cls.listen, cls.http = free_port(), free_port()
        cls.collector = Collector(cls.listen, cls.http)
        cls.sc = swtest.Run()
        try:
            cls.node, cls.py = cls.sc.attach([
                [NODE, workload("node_block.js"), "--schedule", "spin:120", "--title", TITLE],
                [SYS_PYTHON, workload("py_asyncio.py"), "--loop-thread", "--schedule", "cpu:120",
                 "--thread-name", THREAD],
            ], agent_extra=["--collector", "127.0.0.1:%d" % cls.listen])
            time.sleep(0.5)
            for w in (cls.node, cls.py):
                w.go()
            for w in (cls.node, cls.py):
                w.wait_done(30)
            cls.py_tid = cls.py.blocks()[0]["tid"]
            cls.node_tid = cls.node.blocks()[0]["tid"]
            cls.api = {w.pid: wait_for(lambda w=w: [i for i in incidents(cls.http, w.pid)
                                                     if not i["ongoing"]], 15)
                       for w in (cls.node, cls.py)}
            time.sleep(1.5)  # a summary interval: the loop series carry the names
            cls.metrics_text = http_get(cls.http, "/metrics")  # strict UTF-8 decode
            cls.metrics = metrics(cls.http)
            cls.sc.rc = cls.sc.agent.stop()
        finally:
            cls.sc.close()
            cls.collector.stop()

    def assertKept(self, got, name, what):
        self.assertIn(got, (kept(name), kept(name).rstrip("\ufffd")),
                      "%s: %r, expected the kernel's cut of %r on a character boundary"
                      % (what, got, name))
        self.assertTrue(name.startswith(got.rstrip("\ufffd")), (what, got))

    def test_kernel_cut_inside_a_character(self):
        # the premise: otherwise this test proves nothing
        for name in (TITLE, THREAD):
            with self.assertRaises(UnicodeDecodeError):
                name.encode()[:15].decode("utf-8")

    def test_agent_json_lines(self):
        self.assertCleanExit(self.sc.agent)
        self.assertJsonOnly(self.sc.agent)
        self.assertKept(self.sc.process_lines[self.node.pid]["comm"], TITLE,
                        "node process line comm")
        for w, tid, name in ((self.node, self.node_tid, TITLE), (self.py, self.py_tid, THREAD)):
            inc = [i for i in self.sc.agent.incidents(pid=w.pid, final=True) if i["tid"] == tid]
            self.assertTrue(inc, self.sc.agent.describe())
            self.assertKept(inc[0]["thread"], name, "incident thread of pid %d" % w.pid)

    def test_collector_api(self):
        for w, tid, name in ((self.node, self.node_tid, TITLE), (self.py, self.py_tid, THREAD)):
            mine = [i for i in self.api[w.pid] if i["tid"] == tid]
            self.assertTrue(mine, self.api[w.pid])
            self.assertKept(mine[0]["thread"], name, "/api/incidents thread of pid %d" % w.pid)

    def test_collector_metrics_labels(self):
        it = series(self.metrics, "stallwatch_eventloop_iterations_total", pid=self.node.pid,
                    tid=self.node_tid)
        self.assertEqual(len(it), 1, it)
        # the service label is the comm when nothing names the service
        self.assertKept(dict(next(iter(it)))["service"], TITLE, "service label")

    def test_promtool_accepts_metrics(self):
        promtool = shutil.which("promtool")
        if not promtool:
            if swtest.CI:
                self.fail("promtool not found: scripts/install-deps.sh installs Debian's "
                          "prometheus package, which has it")
            self.skipTest("promtool not installed")
        p = subprocess.run([promtool, "check", "metrics"], input=self.metrics_text.encode(),
                           capture_output=True, timeout=60)
        # promtool also lints (exit 3 for lint problems only would still be
        # a parse success); a parse error is exit 1 with "error" in its text
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        self.assertNotIn("error while linting", out, out)
        self.assertNotIn("invalid", out.lower(), out)


if __name__ == "__main__":
    swtest.main("test_utf8")
