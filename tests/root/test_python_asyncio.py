# SPDX-License-Identifier: Apache-2.0
"""Root tier: asyncio loops on Debian's stripped /usr/bin/python3.11 and on
every pyenv CPython 3.9-3.13, blocked by time.sleep, a synchronous socket
round trip with a timeout (poll() wait) and a CPU spin, each found on the loop
thread within 2 ms; once more with the loop in a non-main thread; and uvloop
with /usr/bin/python3.11.

Ground truth: the workload's time.monotonic_ns() and threading.get_native_id().
"""
import os
import sys
import unittest

import swtest
from swtest import SYS_PYTHON, workload

INTERPRETERS = []
if os.access(SYS_PYTHON, os.X_OK):
    INTERPRETERS.append(("debian-" + os.path.basename(SYS_PYTHON), SYS_PYTHON))
PYENV = swtest.pyenv_pythons()
INTERPRETERS += [("pyenv-" + label, exe) for label, exe in PYENV]


class AsyncioCase(swtest.Checks):
    """One interpreter + options; subclasses set python, args, expect_kinds."""
    python = None
    args = []
    script = "py_asyncio.py"
    expect_kinds = ["sleep", "socket", "cpu"]
    roles = ("asyncio",)

    @classmethod
    def setUpClass(cls):
        cls.sc = swtest.run_scenario([[cls.python, workload(cls.script)] + list(cls.args)],
                                      threshold_ms=50)
        cls.w = cls.sc.workloads[0]
        cls.pid = cls.w.pid
        cls.loop_tid = cls.w.ready.get("loop_tid")
        cls.blocks = cls.w.blocks()
        cls.incidents = cls.sc.agent.incidents(pid=cls.pid)
        cls.pairs = swtest.match_blocks(cls.blocks, cls.incidents)
        swtest.log("%s %s %s: pid %d loop tid %s\n%s"
                   % (cls.__name__, cls.python, " ".join(cls.args), cls.pid, cls.loop_tid,
                      swtest.block_table(cls.pairs)))

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent)
        self.assertJsonOnly(self.sc.agent)

    def test_process_line(self):
        self.assertProcessLine(self.sc.process_lines.get(self.pid), self.pid, "python",
                               version=self.w.ready["version"], exe=self.w.ready["exe"])

    def test_workload_ground_truth(self):
        self.assertEqual([b["kind"] for b in self.blocks], self.expect_kinds)
        self.assertTrue(all(b["tid"] == self.loop_tid for b in self.blocks))

    def test_blocks_found_on_loop_thread(self):
        self.assertBlocksFound(self.pairs, context="%s %s pid %d loop tid %d"
                               % (self.python, " ".join(self.args), self.pid, self.loop_tid))
        for b, i in self.pairs:
            self.assertIn(i.get("role"), self.roles, "role: expected one of %s, got %r in %s"
                          % (self.roles, i.get("role"), swtest.incident_str(i)))
            self.assertEqual(i.get("runtime"), "python", swtest.incident_str(i))

    def test_patterns_named(self):
        self.assertPatterns(self.pairs, "python", swtest.block_table(self.pairs))

    def test_no_unexplained_incidents(self):
        self.assertNoUnexplained(self.pairs, self.incidents)

    def test_ongoing_lines_consistent(self):
        self.assertOngoingConsistent(self.incidents)

    def test_loop_has_summaries(self):
        sums = self.sc.agent.summaries(self.pid, tid=self.loop_tid)
        self.assertTrue(sums, "no loop_summary for loop tid %s; summaries seen for tids %s"
                        % (self.loop_tid,
                           sorted({s.get("tid") for s in self.sc.agent.summaries(self.pid)})))
        self.assertGreater(sum(int(s.get("iterations", 0)) for s in sums), 10)


class LoopThreadCase(AsyncioCase):
    args = ["--loop-thread"]

    def test_loop_not_main_thread(self):
        self.assertNotEqual(self.loop_tid, self.pid)
        main = [i for i in self.incidents if i.get("tid") == self.pid]
        self.assertEqual(main, [], "incidents on the joining main thread:\n%s"
                         % "\n".join(swtest.incident_str(i) for i in main))


class UvloopCase(AsyncioCase):
    script = "py_uvloop.py"
    expect_kinds = ["sleep"]
    roles = ("asyncio", "loop")


def _ident(s):
    return "".join(c if c.isalnum() else "_" for c in s)


for label, exe in INTERPRETERS:
    name = "Asyncio_" + _ident(label)
    globals()[name] = type(name, (AsyncioCase,), {"python": exe})

_thread_pys = [INTERPRETERS[0]] if INTERPRETERS else []
if len(INTERPRETERS) > 1:
    _thread_pys.append(INTERPRETERS[-1])  # newest pyenv build too
for label, exe in _thread_pys:
    name = "LoopThread_" + _ident(label)
    globals()[name] = type(name, (LoopThreadCase,), {"python": exe})

if os.access(SYS_PYTHON, os.X_OK):
    globals()["Uvloop_debian_python3_11"] = type("Uvloop_debian_python3_11", (UvloopCase,),
                                                 {"python": SYS_PYTHON})


class Inventory(unittest.TestCase):
    def test_interpreters_found(self):
        print("interpreters under test: %s" % ", ".join("%s (%s)" % p for p in INTERPRETERS),
              flush=True)
        self.assertTrue(os.access(SYS_PYTHON, os.X_OK), "%s not found" % SYS_PYTHON)
        if not PYENV:
            msg = "no pyenv CPython 3.9-3.13 under /root/.pyenv/versions"
            if swtest.CI:
                self.fail(msg + " (SW_CI=1)")
            print("WARNING: " + msg, flush=True)

    def test_uvloop_importable(self):
        import subprocess
        r = subprocess.run([SYS_PYTHON, "-c", "import uvloop"], capture_output=True)
        self.assertEqual(r.returncode, 0, "uvloop not importable by %s: %s"
                         % (SYS_PYTHON, r.stderr.decode(errors="replace")))


GENERATED = [c for n, c in sorted(globals().items())
             if isinstance(c, type) and issubclass(c, AsyncioCase) and c.python]


def load_tests(loader, standard_tests, pattern):
    """Only the generated per-interpreter classes and Inventory: the base
    classes are templates."""
    suite = unittest.TestSuite()
    suite.addTests(loader.loadTestsFromTestCase(Inventory))
    for c in GENERATED:
        suite.addTests(loader.loadTestsFromTestCase(c))
    return suite

if __name__ == "__main__":
    swtest.main("test_python_asyncio")
