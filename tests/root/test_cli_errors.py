# SPDX-License-Identifier: Apache-2.0
"""Root tier: the agent's command line errors are short, precise and exit
non-zero; --help works.

- --pid 999999 (no such process): one stderr line naming the pid, exit != 0;
- --pid of `sleep 100` (neither node nor python): a stderr line saying what
  it is (its name); the agent may refuse (exit != 0) or watch it as a native
  process (then SIGINT -> exit 0); never a crash;
- --threshold-ms abc: one stderr line, exit != 0;
- --service with an empty name, a bad pid, a name over 63 bytes, too many
  PID=NAME, a pid not given with --pid: one stderr line naming the value,
  exit 2, nothing on stdout;
- --help: exit 0, mentions --pid.
"""
import os
import signal
import subprocess
import time
import unittest

import swtest
from swtest import AGENT


def run_agent(args, timeout=30):
    p = subprocess.run([AGENT] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def nonblank(text):
    return [l for l in text.splitlines() if l.strip()]


def free_pid():
    pid = 999999
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    if pid < pid_max and os.path.exists("/proc/%d" % pid):
        raise unittest.SkipTest("pid 999999 exists here")
    return pid


class CliErrors(unittest.TestCase):
    def check_no_crash(self, rc, out, err):
        self.assertGreaterEqual(rc, 0, "agent killed by signal %d\nstderr:\n%s" % (-rc, err))
        for m in swtest.CRASH_MARKERS:
            self.assertNotIn(m, err + out)

    def test_pid_not_found(self):
        pid = free_pid()
        rc, out, err = run_agent(["--pid", str(pid), "--json", "--threshold-ms", "50",
                                  "--interval", "1", "--duration", "5"])
        self.check_no_crash(rc, out, err)
        self.assertNotEqual(rc, 0, "--pid %d (no such process): expected non-zero exit, got 0\n"
                            "stdout:\n%s\nstderr:\n%s" % (pid, out, err))
        lines = nonblank(err)
        self.assertEqual(len(lines), 1, "expected exactly one stderr line, got %d:\n%s"
                         % (len(lines), err))
        self.assertIn(str(pid), lines[0], "stderr line does not name pid %d: %r" % (pid, lines[0]))
        self.assertFalse([o for o in nonblank(out) if '"kind":"process"' in o.replace(" ", "")],
                         "process line printed for a pid that does not exist:\n%s" % out)

    def test_not_node_or_python(self):
        sleeper = swtest.spawn(["sleep", "100"], new_session=True)
        try:
            time.sleep(0.2)
            p = subprocess.Popen([AGENT, "--pid", str(sleeper.pid), "--json", "--threshold-ms",
                                  "50", "--interval", "1", "--duration", "30"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, start_new_session=True)
            try:
                out, err = p.communicate(timeout=8)
                refused = True
            except subprocess.TimeoutExpired:
                # still running: it watches the pid as native; stop it cleanly
                refused = False
                p.send_signal(signal.SIGINT)
                try:
                    out, err = p.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    out, err = p.communicate()
                    self.fail("agent did not exit within 20 s of SIGINT")
            rc = p.returncode
            out, err = out.decode(errors="replace"), err.decode(errors="replace")
            self.check_no_crash(rc, out, err)
            said = [l for l in nonblank(err) if "sleep" in l]
            self.assertTrue(said, "no stderr line saying what pid %d is (expected its name "
                            "'sleep'); stderr:\n%s\nstdout:\n%s" % (sleeper.pid, err, out))
            if refused:
                self.assertNotEqual(rc, 0, "agent exited by itself with 0 on a pid it did not "
                                    "watch; stderr:\n%s" % err)
            else:
                self.assertEqual(rc, 0, "SIGINT: expected exit 0, got %s; stderr:\n%s" % (rc, err))
            print("sleep target: agent %s (rc %s): %s"
                  % ("refused" if refused else "watched it", rc, said[0]), flush=True)
        finally:
            swtest.kill_proc(sleeper)

    def test_bad_threshold(self):
        rc, out, err = run_agent(["--pid", str(os.getpid()), "--json", "--threshold-ms", "abc",
                                  "--interval", "1"])
        self.check_no_crash(rc, out, err)
        self.assertNotEqual(rc, 0, "--threshold-ms abc: expected non-zero exit, got 0")
        lines = nonblank(err)
        self.assertEqual(len(lines), 1, "expected exactly one stderr line, got %d:\n%s"
                         % (len(lines), err))
        self.assertTrue("threshold" in lines[0] or "abc" in lines[0],
                        "stderr line names neither the option nor the value: %r" % lines[0])
        self.assertEqual(out.strip(), "", "stdout should be empty on a usage error: %r" % out)

    def test_bad_service(self):
        me = str(os.getpid())
        many = []
        for i in range(65):
            many += ["--service", "%d=s%d" % (100000 + i, i)]
        cases = [
            (["--service", ""], "''"),
            (["--service", me + "="], me + "="),
            (["--service", "abc=x"], "abc"),
            (["--service", "0=x"], "'0'"),
            (["--service", "=x"], "=x"),
            (["--service", "x" * 64], "x" * 64),
            (["--service", "\udcff"], "UTF-8"),
            (many, "at most 64"),
            (["--service", "424242=x"], "424242"),
        ]
        for extra, named in cases:
            with self.subTest(args=extra[:2]):
                args = ["--pid", me, "--json", "--duration", "1"] + extra
                p = subprocess.run([AGENT] + [os.fsencode(a) for a in args],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
                out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
                self.check_no_crash(p.returncode, out, err)
                self.assertEqual(p.returncode, 2, "%s: expected exit 2, got %d; stderr:\n%s"
                                 % (extra[:2], p.returncode, err))
                lines = nonblank(err)
                self.assertEqual(len(lines), 1, "expected exactly one stderr line, got %d:\n%s"
                                 % (len(lines), err))
                self.assertIn("--service", lines[0])
                self.assertIn(named, lines[0], "the line does not name %r: %r"
                              % (named, lines[0]))
                self.assertEqual(out.strip(), "", "stdout should be empty: %r" % out)

    def test_help(self):
        rc, out, err = run_agent(["--help"])
        self.check_no_crash(rc, out, err)
        self.assertEqual(rc, 0, "--help: expected exit 0, got %d\n%s%s" % (rc, out, err))
        self.assertIn("--pid", out + err, "--help output does not mention --pid:\n%s%s"
                      % (out, err))
        self.assertIn("--service", out + err, "--help output does not mention --service")


if __name__ == "__main__":
    swtest.main("test_cli_errors")
