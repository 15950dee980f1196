# SPDX-License-Identifier: Apache-2.0
"""Root tier: what the loop waited on (bpf/sysio.bpf.c, agent/sysio.c).

Real processes block on purpose and report their own truth:
  - Python asyncio (Debian's /usr/bin/python3.11): a blocking recv() from a
    local TCP server on a free port (peer 127.0.0.1:<port>, one recvfrom,
    its time within TOL of the workload's clock around that one call), the
    same with a timeout (poll on the socket, the fd from the pollfd); a
    run of pread() of a known file (the path, the exact number of calls);
    time.sleep (one clock_nanosleep, no fd);
  - Node 20: execSync('sleep 0.3') (the child's command line names the
    wait), fs.readFileSync of a 192 MiB file (read on its path);
  - --no-syscalls: no "syscalls" in any incident; the human sink prints
    the top three under the incident line.
"""
import os
import tempfile
import unittest

import swtest
from swtest import NODE, SYS_PYTHON, workload

# a syscall's time against the workload's clock around it: the clock reads
# and the interpreter's call overhead (tens of µs), plus a preemption
TOL_NS = 2_000_000


def syscalls(i):
    return i.get("syscalls") or []


def sys_str(i):
    return "\n".join("  %s x%s %s ms fd=%s %s %s" % (s.get("name"), s.get("count"),
                                                       s.get("total_ms"), s.get("fd"),
                                                       s.get("fd_kind"), s.get("target"))
                     for s in syscalls(i)) or "  (no syscalls)"


def overlaps(test, b, i):
    """The incident is the block's: their spans overlap. How well the agent
    times blocks is the other root tests' subject (swtest.block_mismatch);
    here it is what the block waited on."""
    start = int(i["start_ns"])
    end = start + int(float(i["duration_ms"]) * 1e6)
    test.assertTrue(start <= b["end_ns"] and end >= b["start_ns"],
                    "incident %s does not overlap the %s block %d..%d"
                    % (swtest.incident_str(i), b["kind"], b["start_ns"], b["end_ns"]))


def find(i, name, **match):
    return [s for s in syscalls(i) if s.get("name") == name
            and all(s.get(k) == v for k, v in match.items())]


class PythonSysio(swtest.Checks):
    """--syscalls always: every call of the stretch is counted."""
    schedule = "recv:200,precv:150,read:120,sleep:150"
    agent_extra = ("--syscalls", "always")

    @classmethod
    def setUpClass(cls):
        fd, cls.path = tempfile.mkstemp(prefix="sw-sysio-", suffix=".bin")
        os.write(fd, os.urandom(8 << 20))
        os.close(fd)
        cls.sc = swtest.run_scenario([[SYS_PYTHON, workload("py_sysio.py"), "--file", cls.path,
                                       "--schedule", cls.schedule]],
                                     threshold_ms=50, agent_extra=cls.agent_extra)
        cls.w = cls.sc.workloads[0]
        cls.blocks = {b["kind"]: b for b in cls.w.blocks()}
        cls.incidents = cls.sc.agent.incidents(pid=cls.w.pid)
        cls.pairs = dict((b["kind"], i) for b, i in
                         swtest.match_blocks(cls.w.blocks(), cls.incidents))
        for k, i in cls.pairs.items():
            swtest.log("%s: %s\n%s" % (k, i and swtest.incident_str(i), i and sys_str(i)))

    @classmethod
    def tearDownClass(cls):
        os.unlink(cls.path)

    def incident(self, kind):
        i = self.pairs.get(kind)
        self.assertIsNotNone(i, "no final incident for the %s block %s" % (kind, self.blocks.get(kind)))
        overlaps(self, self.blocks[kind], i)
        return i

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent)
        self.assertJsonOnly(self.sc.agent)

    def test_recv_peer_and_time(self):
        b, i = self.blocks["recv"], self.incident("recv")
        got = find(i, "recvfrom")
        self.assertEqual(len(got), 1, sys_str(i))
        s = got[0]
        self.assertEqual(s["count"], 1, sys_str(i))
        self.assertEqual(s.get("fd_kind"), "tcp", sys_str(i))
        self.assertEqual(s.get("port"), b["port"], sys_str(i))
        self.assertEqual(s.get("target"), "127.0.0.1:%d" % b["port"], sys_str(i))
        d = float(s["total_ms"]) * 1e6 - b["recv_ns"]
        # a preemption between the return and the workload's clock read is
        # in its time, not the syscall's: bounded by its run-queue wait
        self.assertTrue(-TOL_NS - b["runq_ns"] <= d <= TOL_NS, "recvfrom %s ms, workload's recv %.3f ms\n%s"
                        % (s["total_ms"], b["recv_ns"] / 1e6, sys_str(i)))
        # the longest first
        self.assertEqual(syscalls(i)[0]["name"], "recvfrom", sys_str(i))
        # the connect and send before it, on the same socket, take its class
        for name in ("connect", "sendto"):
            for c in find(i, name):
                self.assertEqual(c.get("target"), s["target"], sys_str(i))

    def test_poll_on_socket_names_the_peer(self):
        # socket with a timeout: the wait is poll() on it, the fd is read
        # from the pollfd array
        b, i = self.blocks["precv"], self.incident("precv")
        got = find(i, "poll", target="127.0.0.1:%d" % b["port"])
        self.assertEqual(len(got), 1, sys_str(i))
        s = got[0]
        self.assertEqual(s.get("fd_kind"), "tcp", sys_str(i))
        self.assertEqual(s.get("port"), b["port"], sys_str(i))
        # the poll before the recv: at least the workload's recv, at most
        # its whole block
        self.assertGreaterEqual(float(s["total_ms"]) * 1e6, b["recv_ns"] * 0.9 - TOL_NS,
                                sys_str(i))
        self.assertLessEqual(float(s["total_ms"]) * 1e6, b["end_ns"] - b["start_ns"] + TOL_NS,
                             sys_str(i))
        self.assertEqual(syscalls(i)[0]["name"], "poll", sys_str(i))

    def test_file_read_path_and_count(self):
        b, i = self.blocks["read"], self.incident("read")
        got = find(i, "pread64", target=b["path"])
        self.assertEqual(len(got), 1, sys_str(i))
        s = got[0]
        self.assertEqual(s["count"], b["reads"], sys_str(i))
        self.assertEqual(s.get("fd_kind"), "file", sys_str(i))
        self.assertEqual(s.get("target"), b["path"], sys_str(i))
        self.assertLessEqual(float(s["total_ms"]), float(i["duration_ms"]), sys_str(i))

    def test_sleep_has_no_fd(self):
        b, i = self.blocks["sleep"], self.incident("sleep")
        got = find(i, "clock_nanosleep")
        self.assertEqual(len(got), 1, sys_str(i))
        s = got[0]
        self.assertEqual(s["count"], 1, sys_str(i))
        self.assertNotIn("fd", s)
        self.assertNotIn("fd_kind", s)
        d = float(s["total_ms"]) * 1e6 - b["sleep_ns"]
        self.assertTrue(-TOL_NS - b["runq_ns"] <= d <= TOL_NS, "clock_nanosleep %s ms, workload's %.3f ms"
                        % (s["total_ms"], b["sleep_ns"] / 1e6))

    def test_ongoing_lines_name_the_wait(self):
        # the 200 ms recv is seen while it lasts: in flight, classified
        # from /proc
        b = self.blocks["recv"]
        ong = [o for o in self.incidents if o.get("ongoing") is True
               and abs(int(o["start_ns"]) - int(self.pairs["recv"]["start_ns"])) == 0]
        self.assertTrue(ong, "no ongoing line for the recv block")
        self.assertTrue(any(s.get("target") == "127.0.0.1:%d" % b["port"]
                            for o in ong for s in syscalls(o) if s.get("name") == "recvfrom"),
                        "\n".join(sys_str(o) for o in ong))


class PythonSysioOnDemand(PythonSysio):
    """--syscalls blocked: the programs are attached by the first block (the
    sleep, seeded in flight from /proc and loopmon's sleep start) and stay
    for the next ones, which are then counted whole."""
    schedule = "sleep:150,recv:200,precv:150,read:120"
    agent_extra = ("--syscalls", "blocked")


class NodeSysio(swtest.Checks):
    @classmethod
    def setUpClass(cls):
        fd, cls.path = tempfile.mkstemp(prefix="sw-sysio-", suffix=".bin")
        chunk = os.urandom(1 << 20)
        for _ in range(192):
            os.write(fd, chunk)
        os.close(fd)
        cls.sc = swtest.run_scenario([[NODE, workload("node_sysio.js"), "--file", cls.path]],
                                     threshold_ms=50)
        cls.w = cls.sc.workloads[0]
        cls.blocks = {b["kind"]: b for b in cls.w.blocks()}
        cls.incidents = cls.sc.agent.incidents(pid=cls.w.pid)
        cls.pairs = dict((b["kind"], i) for b, i in
                         swtest.match_blocks(cls.w.blocks(), cls.incidents))
        for k, i in cls.pairs.items():
            swtest.log("%s: %s\n%s" % (k, i and swtest.incident_str(i), i and sys_str(i)))

    @classmethod
    def tearDownClass(cls):
        os.unlink(cls.path)

    def incident(self, kind):
        i = self.pairs.get(kind)
        self.assertIsNotNone(i, "no final incident for the %s block" % kind)
        overlaps(self, self.blocks[kind], i)
        return i

    def test_execsync_names_the_child(self):
        b, i = self.blocks["execSync"], self.incident("execSync")
        named = [s for s in syscalls(i) if b["cmd"] in (s.get("target") or "")]
        self.assertTrue(named, "no syscall names the child %r\n%s" % (b["cmd"], sys_str(i)))
        top = syscalls(i)[0]
        self.assertIn(b["cmd"], top.get("target") or "", "the longest wait is not the child's\n"
                      + sys_str(i))
        self.assertLessEqual(float(top["total_ms"]) * 1e6,
                             b["end_ns"] - b["start_ns"] + TOL_NS, sys_str(i))

    def test_readfilesync_read_on_path(self):
        b, i = self.blocks["readFile"], self.incident("readFile")
        got = find(i, "read", target=b["path"])
        self.assertEqual(len(got), 1, sys_str(i))
        s = got[0]
        self.assertEqual(s.get("fd_kind"), "file", sys_str(i))
        self.assertGreaterEqual(s["count"], 1)
        self.assertLessEqual(float(s["total_ms"]) * 1e6, b["end_ns"] - b["start_ns"] + TOL_NS)
        self.assertEqual(syscalls(i)[0]["name"], "read", sys_str(i))


class Switches(swtest.Checks):
    def test_no_syscalls_and_human_lines(self):
        args = [SYS_PYTHON, workload("py_sysio.py"), "--schedule", "sleep:150"]
        sc = swtest.run_scenario([args], threshold_ms=50, agent_extra=["--no-syscalls"])
        inc = sc.agent.incidents(pid=sc.workloads[0].pid, final=True)
        self.assertTrue(inc, sc.agent.describe())
        self.assertTrue(all("syscalls" not in i for i in inc), sc.agent.describe())

        # the human sink: the top syscalls under the incident line
        w = swtest.Workload(args)
        p = swtest.spawn([swtest.AGENT, "--pid", str(w.pid), "--threshold-ms", "50",
                          "--duration", str(swtest.SAFETY_DURATION)],
                         stdin=swtest.subprocess.DEVNULL)
        out = swtest.Lines(p.stdout, "agent-human")
        try:
            deadline = swtest.time.monotonic() + swtest.ATTACH_TIMEOUT
            while "attached to pid" not in out.text() and swtest.time.monotonic() < deadline:
                swtest.time.sleep(0.1)
            swtest.time.sleep(0.5)
            w.go()
            w.wait_done(30)
            swtest.time.sleep(0.5)
        finally:
            swtest.kill_proc(p, swtest.signal.SIGINT)
            w.stop()
        out.join()
        text = out.text()
        m = swtest.re.search(r"\n    waited: clock_nanosleep x1 (\d+\.\d) ms\n", text)
        self.assertIsNotNone(m, text)
        truth = [b for b in w.blocks() if b["kind"] == "sleep"]
        self.assertEqual(len(truth), 1, w.out.text())
        d = float(m.group(1)) * 1e6 - truth[0]["sleep_ns"]
        # printed to 0.1 ms
        self.assertTrue(-TOL_NS - truth[0]["runq_ns"] - 50_000 <= d <= TOL_NS + 50_000, text)


if __name__ == "__main__":
    swtest.main()
