# SPDX-License-Identifier: Apache-2.0
"""Root tier: the CPython layout table (agent/runtime/python.c) against
reality, on Debian's stripped /usr/bin/python3.11 and every pyenv CPython
3.9-3.13.

For each interpreter, tests/tools/sw-pylayout reads a live py_threads.py from
outside through the table: exported _PyRuntime + load bias -> main
interpreter -> its threads -> thread_id / native_thread_id, and the GIL. It
must find exactly the threads the workload lists (native ids from 3.11,
pthread idents before), the switch interval the workload set (7000 us, not
the 5000 default), locked 0 or 1, a last holder among the threads, and a
switch_number that grows while two threads fight for the GIL.

For each pyenv build (they carry DWARF), scripts/py-layout-dwarf.sh prints
every offset of the row as gdb computes it, and it must equal the table's
(sw-pylayout --dump), key by key.

Missing interpreters, gdb or the helper fail under SW_CI=1 and skip otherwise.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

import swtest
from swtest import SYS_PYTHON, workload

HELPER = os.path.join(swtest.BUILD, "tests", "sw-pylayout")
DWARF = os.path.join(swtest.SOURCE, "scripts", "py-layout-dwarf.sh")
WANT_MINORS = [(3, 9), (3, 10), (3, 11), (3, 12), (3, 13)]
SWITCH_US = 7000


def missing(test, what):
    if swtest.CI:
        test.fail("%s (SW_CI=1)" % what)
    test.skipTest(what)


def pyenv_by_minor():
    out = {}
    for label, exe in swtest.pyenv_pythons():
        major, minor = (int(x) for x in label.split(".")[:2])
        out[(major, minor)] = (label, exe)
    return out


def libpython(label):
    major_minor = ".".join(label.split(".")[:2])
    p = "/root/.pyenv/versions/%s/lib/libpython%s.so.1.0" % (label, major_minor)
    return p if os.path.exists(p) else None


class Layout(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pyenv = pyenv_by_minor()
        print("interpreters: debian %s; pyenv %s" % (
            SYS_PYTHON if os.access(SYS_PYTHON, os.X_OK) else "(missing)",
            ", ".join(l for l, _ in cls.pyenv.values()) or "(none)"), flush=True)

    def setUp(self):
        if not os.access(HELPER, os.X_OK):
            self.fail("helper not built: %s (SW_BUILD=%s)" % (HELPER, swtest.BUILD))

    def read_live(self, python):
        """Start py_threads.py under python, read it twice with the helper."""
        p = swtest.spawn([python, workload("py_threads.py"), "--switch-interval",
                          str(SWITCH_US / 1e6)])
        try:
            line = p.stdout.readline().decode()
            self.assertTrue(line, "%s: no ready line; stderr: %s"
                            % (python, p.stderr.read(2000).decode("replace") if p.poll() is not None else ""))
            ready = json.loads(line)
            reads = []
            for _ in range(2):
                r = subprocess.run([HELPER, "--pid", str(ready["pid"])], capture_output=True,
                                   text=True, timeout=30)
                self.assertEqual(r.returncode, 0, "%s: sw-pylayout failed: %s"
                                 % (python, r.stderr.strip()))
                reads.append(json.loads(r.stdout))
                time.sleep(0.2)
            return ready, reads
        finally:
            swtest.kill_proc(p)

    def check(self, python, minor):
        ready, (first, second) = self.read_live(python)
        label = "%s (%s)" % (python, first["version"])
        self.assertEqual(ready["switch_interval_us"], SWITCH_US)
        want_native = sorted(t["native_id"] for t in ready["threads"])
        want_ident = sorted(t["ident"] for t in ready["threads"])
        got_ident = sorted(t["thread_id"] for t in first["threads"])
        got_native = sorted(t["native_id"] for t in first["threads"])
        self.assertEqual(got_ident, want_ident, "%s: thread_id of every thread" % label)
        if minor >= 11:
            self.assertEqual(got_native, want_native,
                             "%s: native_thread_id of every thread" % label)
        else:
            # no native_thread_id in PyThreadState before 3.11
            self.assertEqual(set(got_native), {0}, label)
        gil = first["gil"]
        self.assertEqual(gil["interval_us"], SWITCH_US,
                         "%s: the GIL's interval is what sys.setswitchinterval set" % label)
        for g in (first["gil"], second["gil"]):
            self.assertIn(g["locked"], (0, 1), "%s: locked" % label)
            self.assertIn(g["last_holder"], {t["tstate"] for t in first["threads"]},
                          "%s: last_holder is one of the thread states" % label)
        # two spinning threads force a switch every interval: 200 ms apart
        # is ~28 switches; a wrong offset would not count up like that
        self.assertGreater(second["gil"]["switch_number"], first["gil"]["switch_number"],
                           "%s: switch_number grows while the GIL changes hands" % label)
        self.assertEqual(first["mem_faults"], 0, label)
        print("  %s: %d threads, interval %d us, switch_number %d -> %d"
              % (label, len(got_ident), gil["interval_us"], first["gil"]["switch_number"],
                 second["gil"]["switch_number"]), flush=True)

    def test_debian_stripped_python311(self):
        if not os.access(SYS_PYTHON, os.X_OK):
            missing(self, "%s not installed" % SYS_PYTHON)
        self.check(SYS_PYTHON, 11)

    def test_pyenv_live(self):
        for mm in WANT_MINORS:
            with self.subTest(python="%d.%d" % mm):
                if mm not in self.pyenv:
                    missing(self, "no pyenv CPython %d.%d under /root/.pyenv/versions" % mm)
                self.check(self.pyenv[mm][1], mm[1])

    def test_rows_match_dwarf(self):
        if not shutil.which("gdb"):
            missing(self, "gdb not installed: cannot read the pyenv builds' DWARF")
        for mm in WANT_MINORS:
            with self.subTest(python="%d.%d" % mm):
                if mm not in self.pyenv:
                    missing(self, "no pyenv CPython %d.%d under /root/.pyenv/versions" % mm)
                label = self.pyenv[mm][0]
                lib = libpython(label)
                self.assertIsNotNone(lib, "pyenv %s has no libpython (built without "
                                     "--enable-shared?)" % label)
                ver = "%d.%d" % mm
                dw = subprocess.run(["sh", DWARF, lib, ver], capture_output=True, text=True,
                                    timeout=120)
                tab = subprocess.run([HELPER, "--dump", ver], capture_output=True, text=True,
                                     timeout=30)
                self.assertEqual(tab.returncode, 0, tab.stderr)
                parse = lambda s: dict(l.split("=", 1) for l in s.splitlines() if "=" in l)
                got, want = parse(tab.stdout), parse(dw.stdout)
                self.assertTrue(want, "%s: gdb printed no offsets: %s %s"
                                % (label, dw.stdout[-500:], dw.stderr[-500:]))
                odd = [l for l in dw.stdout.splitlines() if l and "=" not in l]
                self.assertEqual(odd, [], "%s: gdb could not evaluate some fields" % label)
                self.assertEqual(got, want, "%s: table row vs DWARF" % label)
                print("  %s: %d offsets equal to DWARF" % (label, len(got)), flush=True)


if __name__ == "__main__":
    swtest.main()
