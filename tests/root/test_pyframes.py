# SPDX-License-Identifier: Apache-2.0
"""Root tier: the Python frame reader (agent/runtime/pyframes.c) against live
interpreters: every pyenv CPython 3.9-3.13 and Debian's stripped
/usr/bin/python3.11.

py_frames.py blocks its asyncio loop thread in os.read() under a known
chain (a task coroutine, an awaited coroutine, a map() call back into
Python, a method, functions named in UCS1, UCS2 and UCS4) and prints
CPython's own view of that thread's stack (sys._current_frames()). From
outside, tests/tools/sw-pyframes PID TID must give the same frames in the
same order: function (co_qualname on 3.11+, co_name before), file, line;
and each function of the chain must be at the line it recorded of itself.
Entry flags: every frame on 3.9/3.10; on 3.11+ the frame map() called
(via_c), the task's coroutine and the thread's outermost frame are entries,
the plain Python-to-Python calls under via_c are not.

Then the workload runs gc.collect() over a big cyclic heap, timing each
collection with gc.callbacks ("start"/"stop", CLOCK_MONOTONIC) while
sw-pyframes --watch reads the thread every few ms: a read made wholly
inside a collection must say gc_collecting, one made wholly outside (1 ms
clear of any) must not.

The line-table decoders are also checked against CPython's own
PyCode_Addr2Line on every instruction of ~700 stdlib code objects per
interpreter (py_linetables.py).

Also: a version not in the table (pyenv 3.8, when installed) is refused
with a note naming it, and the cost of one read of a 30-deep stack is
printed (not asserted: the machine is shared), with the number of
process_vm_readv calls it took.
"""
import json
import os
import select
import subprocess
import time
import unittest

import swtest
from swtest import SYS_PYTHON, workload

TOOL = os.path.join(swtest.BUILD, "tests", "sw-pyframes")
WANT_MINORS = [(3, 9), (3, 10), (3, 11), (3, 12), (3, 13)]
CLEAR_NS = 1_000_000  # a read this far from any collection is "outside"


def missing(test, what):
    if swtest.CI:
        test.fail("%s (SW_CI=1)" % what)
    test.skipTest(what)


def read_event(p, want, timeout):
    """The next JSON line of p whose event is want."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        line = p.stdout.readline()
        if not line:
            break
        ev = json.loads(line)
        if ev.get("event") == want:
            return ev
    err = p.stderr.read(3000).decode("replace") if p.poll() is not None else ""
    raise AssertionError("no %r event from the workload in %ss; stderr: %s" % (want, timeout, err))


def tool(*args, timeout=60):
    r = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    return r


class PyFrames(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pyenv = {}
        for label, exe in swtest.pyenv_pythons():
            major, minor = (int(x) for x in label.split(".")[:2])
            cls.pyenv[(major, minor)] = (label, exe)

    def setUp(self):
        if not os.access(TOOL, os.X_OK):
            self.fail("helper not built: %s (SW_BUILD=%s)" % (TOOL, swtest.BUILD))

    def check_stack(self, python, minor, blocked):
        label = "%s (%s)" % (python, blocked["version"])
        r = tool(blocked["pid"], blocked["tid"], "--scan-tid")
        self.assertEqual(r.returncode, 0, "%s: sw-pyframes: %s %s" % (label, r.stdout, r.stderr))
        got = json.loads(r.stdout)
        want = blocked["frames"]
        strip = [{k: f[k] for k in ("func", "file", "line")} for f in got["frames"]]
        self.assertEqual(strip, want, "%s: the frames, innermost first, as CPython sees them"
                         % label)
        self.assertFalse(got["truncated"], label)
        # struct pthread's tid: glibc 2.36 (Debian 12) keeps it at 720; the
        # scan must find it without libc's descriptor, and on 3.9/3.10 the
        # reader must have taken it from the descriptor
        self.assertEqual(got["scan_pthread_tid"], 720, "%s: tid offset by scan" % label)
        if minor <= 10:
            self.assertEqual(got["addrs"]["pthread_tid"], 720,
                             "%s: _thread_db_pthread_tid of the libc it maps" % label)
        self.assertFalse(got["gc_collecting"], "%s: no collection while blocked" % label)
        by_func = {f["func"]: f for f in got["frames"]}
        for func, line in blocked["calls"].items():
            self.assertIn(func, by_func, "%s: %s in the stack" % (label, func))
            self.assertEqual(by_func[func]["line"], line, "%s: %s at the line of its call"
                             % (label, func))
        self.assertEqual(got["frames"][0]["func"], "blocking_read")
        # names in UCS1 (façade), UCS2 (処理), UCS4 (𠀀) come out as UTF-8
        for func in ("処理", "𠀀_deep", "Blocker.façade" if minor >= 11 else "façade"):
            self.assertIn(func, by_func, label)
        entries = [f["entry"] for f in got["frames"]]
        if minor <= 10:
            self.assertTrue(all(entries), "%s: every 3.9/3.10 frame is an evaluator call"
                            % label)
        else:
            ent = {f["func"]: f["entry"] for f in got["frames"]}
            for func in ("blocking_read", "𠀀_deep", "処理", "Blocker.façade"):
                self.assertFalse(ent[func], "%s: %s, a Python call, is inlined" % (label, func))
            self.assertTrue(ent["via_c"], "%s: via_c, called from C (map), is an entry" % label)
            task = [f for f in got["frames"] if f["func"].endswith("<locals>.task")]
            self.assertEqual(len(task), 1, label)
            self.assertTrue(task[0]["entry"], "%s: the task's coroutine, sent from C" % label)
            self.assertTrue(entries[-1], "%s: the thread's first frame" % label)
        print("  %s: %d frames equal to CPython's view, %d entries, %d process_vm_readv calls"
              % (label, len(strip), sum(entries), got["mem_reads"]), flush=True)

    def check_gc(self, p, blocked, label):
        p.stdin.write(b"go\n")
        p.stdin.flush()
        ready = read_event(p, "gc_ready", 120)
        w = subprocess.Popen([TOOL, str(blocked["pid"]), str(blocked["tid"]), "--watch",
                              "100000", "--every-ms", "3"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            done = read_event(p, "gc", 300)
        finally:
            w.kill()
            out, err = w.communicate(timeout=30)
        samples = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        ivs = done["intervals"]
        self.assertTrue(ivs and all(b > a for a, b in ivs), "%s: gc intervals %s" % (label, ivs))
        inside, outside, errs = [], [], []
        for s in samples:
            if s["err"]:
                errs.append(s)
                continue
            if any(a <= s["t0"] and s["t1"] <= b for a, b in ivs):
                inside.append(s)
            elif all(s["t1"] < a - CLEAR_NS or s["t0"] > b + CLEAR_NS for a, b in ivs):
                outside.append(s)
        # -EAGAIN is the only error a stable loop thread may give (the
        # callbacks push and pop frames at each collection's edges)
        self.assertTrue(all(s["err"] == -11 for s in errs), "%s: %s" % (label, errs[:5]))
        self.assertGreaterEqual(len(inside), 3, "%s: reads inside a collection (collect %s ms)"
                                % (label, ready["collect_ms"]))
        self.assertGreaterEqual(len(outside), 3, label)
        bad_in = [s for s in inside if not s["gc_collecting"]]
        bad_out = [s for s in outside if s["gc_collecting"]]
        self.assertEqual(bad_in, [], "%s: gc_collecting false inside a collection" % label)
        self.assertEqual(bad_out, [], "%s: gc_collecting true outside collections" % label)
        for s in inside:
            if s["top"] == "gc_phase":
                self.assertEqual(s["line"], done["line"], "%s: the gc.collect() line" % label)
        print("  %s: gc %d collections of %s ms: %d reads inside (all collecting), %d outside "
              "(none), %d EAGAIN" % (label, len(ivs), ready["collect_ms"], len(inside),
                                     len(outside), len(errs)), flush=True)

    def run_python(self, python, minor):
        p = swtest.spawn([python, workload("py_frames.py"), "--rounds", "4"])
        try:
            blocked = read_event(p, "blocked", 60)
            label = "%s (%s)" % (python, blocked["version"])
            self.check_stack(python, minor, blocked)
            self.check_gc(p, blocked, label)
        finally:
            swtest.kill_proc(p)

    def test_debian_stripped_python311(self):
        if not os.access(SYS_PYTHON, os.X_OK):
            missing(self, "%s not installed" % SYS_PYTHON)
        self.run_python(SYS_PYTHON, 11)

    def test_pyenv(self):
        for mm in WANT_MINORS:
            with self.subTest(python="%d.%d" % mm):
                if mm not in self.pyenv:
                    missing(self, "no pyenv CPython %d.%d under /root/.pyenv/versions" % mm)
                self.run_python(self.pyenv[mm][1], mm[1])

    def test_line_tables_match_cpython(self):
        """The decoders against PyCode_Addr2Line, every instruction of ~700
        code objects per interpreter (py_linetables.py calls it via ctypes)."""
        pythons = [("%d.%d" % mm, self.pyenv[mm][1]) for mm in WANT_MINORS if mm in self.pyenv]
        if os.access(SYS_PYTHON, os.X_OK):
            pythons.append(("3.11", SYS_PYTHON))
        if len(pythons) < 6:
            missing(self, "not every CPython 3.9-3.13 is installed")
        for ver, python in pythons:
            with self.subTest(python=python):
                gen = subprocess.run([python, workload("py_linetables.py")], capture_output=True,
                                     timeout=300)
                self.assertEqual(gen.returncode, 0, gen.stderr.decode("replace")[-2000:])
                r = subprocess.run([TOOL, "--lines", ver], input=gen.stdout,
                                   capture_output=True, timeout=300)
                self.assertEqual(r.returncode, 0, r.stderr.decode("replace"))
                res = json.loads(r.stdout)
                self.assertGreater(res["codes"], 300, python)
                self.assertEqual(res["mismatches"], 0, "%s: %s" % (python, res["first"]))
                print("  %s: %d code objects, %d instructions, lines equal to "
                      "PyCode_Addr2Line" % (python, res["codes"], res["checked"]), flush=True)

    def test_version_not_in_table(self):
        exe = "/root/.pyenv/versions/3.8.18/bin/python3.8"
        if not os.access(exe, os.X_OK):
            self.skipTest("no pyenv 3.8.18 to stand for a version outside the table")
        p = swtest.spawn([exe, "-c", "import sys, threading; print(threading.get_native_id(), "
                          "flush=True); sys.stdin.read()"])
        try:
            tid = int(p.stdout.readline())
            r = tool(p.pid, tid)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("3.8.18", r.stderr)
            self.assertIn("older than the layout table (3.9 to 3.13)", r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            print("  3.8.18: %s" % r.stderr.strip(), flush=True)
        finally:
            swtest.kill_proc(p)

    def test_a_deep_stack_is_truncated(self):
        python = self.pyenv.get((3, 12), (None, SYS_PYTHON))[1]
        if not os.access(python, os.X_OK):
            missing(self, "%s not installed" % python)
        p = swtest.spawn([python, workload("py_frames.py"), "--pad", "150"])
        try:
            blocked = read_event(p, "blocked", 60)
            self.assertGreater(len(blocked["frames"]), 128)
            r = tool(blocked["pid"], blocked["tid"])
            self.assertEqual(r.returncode, 0, r.stderr)
            got = json.loads(r.stdout)
            self.assertTrue(got["truncated"])
            self.assertEqual(len(got["frames"]), 128, "SW_PY_MAX_FRAMES, innermost first")
            self.assertEqual([f["func"] for f in got["frames"]],
                             [f["func"] for f in blocked["frames"][:128]])
        finally:
            swtest.kill_proc(p)

    def test_cost_of_a_30_deep_read(self):
        """Printed, not asserted as a time: the figure for docs."""
        for mm in [(3, 9), (3, 11), (3, 13)]:
            if mm not in self.pyenv:
                continue
            python = self.pyenv[mm][1]
            # 17-18 frames of the chain + 12 of pad(): 29-30
            p = swtest.spawn([python, workload("py_frames.py"), "--pad", "12"])
            try:
                blocked = read_event(p, "blocked", 60)
                r = tool(blocked["pid"], blocked["tid"], "--bench", "2000")
                self.assertEqual(r.returncode, 0, r.stderr)
                got = json.loads(r.stdout)
                self.assertEqual(len(got["frames"]), len(blocked["frames"]))
                print("  %s: %d frames: %.1f us a read, %d process_vm_readv calls"
                      % (blocked["version"], len(got["frames"]), got["ns_per_read"] / 1000,
                         got["mem_reads_per_read"]), flush=True)
                if mm >= (3, 11):
                    # frames of one evaluator call share pages, code objects
                    # are read together: far fewer calls than frames
                    self.assertLess(got["mem_reads_per_read"], len(got["frames"]) // 2)
            finally:
                swtest.kill_proc(p)


if __name__ == "__main__":
    swtest.main()
