# SPDX-License-Identifier: Apache-2.0
"""Root tier: healthy loops raise nothing.

- idle Node and asyncio loops (a timer every 50 ms, nothing else): no
  incidents; every loop_summary of the loop thread has iterations >= 1 and
  utilization < 0.5; summary fields are self-consistent;
- node_http.js and py_http.py under load (wrk, or a Python keep-alive client
  when wrk is missing) for ~3 s at threshold 50 ms: zero incidents and more
  than 100 iterations counted.
"""
import http.client
import shutil
import subprocess
import threading
import time
import unittest

import swtest
from swtest import NODE, SYS_PYTHON, workload

LOAD_SECONDS = 3


def load(port, seconds=LOAD_SECONDS, path="/"):
    """Returns (tool, requests_done)."""
    wrk = shutil.which("wrk")
    if wrk:
        r = subprocess.run([wrk, "-t1", "-c4", "-d%ds" % seconds, "http://127.0.0.1:%d%s"
                            % (port, path)], capture_output=True, timeout=seconds + 30)
        out = r.stdout.decode(errors="replace")
        n = 0
        for line in out.splitlines():
            if "requests in" in line:
                n = int(line.split()[0])
        if r.returncode != 0 or "Non-2xx" in out or "Socket errors" in out:
            raise RuntimeError("wrk failed or saw errors: %s %s"
                               % (out, r.stderr.decode(errors="replace")))
        return "wrk", n
    done = [0]
    stop = time.monotonic() + seconds

    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            c.request("GET", path)
            c.getresponse().read()
            done[0] += 1
        c.close()
    ts = [threading.Thread(target=client) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return "python http.client", done[0]


class SummaryChecks(swtest.Checks):
    def assertSummariesSane(self, sums):
        for s in sums:
            p = [float(s.get(k, -1)) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
            self.assertTrue(all(x >= 0 for x in p), "negative or missing percentile: %s" % s)
            self.assertTrue(p[0] <= p[1] * 1.001 + 1e-6 and p[1] <= p[2] * 1.001 + 1e-6
                            and p[2] <= p[3] * 1.02 + 1e-6,
                            "percentiles not ordered p50<=p90<=p99<=max: %s" % s)
            busy, idle = float(s.get("busy_ms", -1)), float(s.get("idle_ms", -1))
            self.assertGreaterEqual(busy, 0, s)
            self.assertGreaterEqual(idle, 0, s)
            u = float(s.get("utilization", -1))
            self.assertTrue(0 <= u <= 1, "utilization out of [0,1]: %s" % s)
            if busy + idle > 0:
                self.assertAlmostEqual(u, busy / (busy + idle), delta=0.02,
                                       msg="utilization %.4f != busy/(busy+idle) %.4f: %s"
                                       % (u, busy / (busy + idle), s))


class IdleBase(SummaryChecks):
    argv = None
    runtime = None
    roles = ()
    seconds = 3.5

    @classmethod
    def setUpClass(cls):
        run = swtest.Run()
        cls.sc = run
        try:
            w = run.attach([cls.argv])[0]
            time.sleep(cls.seconds)
            run.rc = run.agent.stop()
        finally:
            run.close()
        cls.w = w
        cls.pid = w.pid
        cls.loop_tid = w.ready.get("loop_tid") or w.ready["tid"]
        cls.sums = run.agent.summaries(cls.pid, tid=cls.loop_tid)

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent)
        self.assertJsonOnly(self.sc.agent)

    def test_no_incidents(self):
        inc = self.sc.agent.incidents(pid=self.pid)
        self.assertEqual(inc, [], "incidents on an idle loop:\n%s"
                         % "\n".join(swtest.incident_str(i) for i in inc))

    def test_summaries_idle(self):
        self.assertGreaterEqual(len(self.sums), 2,
                                "expected >= 2 loop_summary lines for tid %d in %.1fs at "
                                "--interval 1, got %d\n%s" % (self.loop_tid, self.seconds,
                                                              len(self.sums),
                                                              self.sc.agent.describe()))
        for s in self.sums:
            self.assertGreaterEqual(int(s.get("iterations", 0)), 1,
                                    "idle loop ticking every 50 ms: iterations < 1 in %s" % s)
            self.assertLess(float(s.get("utilization", 1)), 0.5,
                            "idle loop: utilization >= 0.5 in %s" % s)
            self.assertIn(s.get("role"), self.roles, s)
            self.assertEqual(s.get("runtime"), self.runtime, s)
        self.assertSummariesSane(self.sums)


class IdleNode(IdleBase):
    argv = [NODE, workload("node_block.js"), "--schedule", "", "--tick-ms", "50"]
    runtime = "node"
    roles = ("main",)


class IdlePython(IdleBase):
    argv = [SYS_PYTHON, workload("py_asyncio.py"), "--schedule", "", "--tick-ms", "50"]
    runtime = "python"
    roles = ("asyncio",)


class LoadBase(SummaryChecks):
    argv = None

    @classmethod
    def setUpClass(cls):
        run = swtest.Run()
        cls.sc = run
        try:
            w = run.attach([cls.argv])[0]
            time.sleep(0.5)
            cls.tool, cls.requests = load(w.ready["port"])
            time.sleep(1.7)
            run.rc = run.agent.stop()
        finally:
            run.close()
        cls.w = w
        cls.pid = w.pid
        cls.sums = run.agent.summaries(cls.pid, tid=w.ready["tid"])
        swtest.log("%s: %s did %d requests; iterations per summary %s"
                   % (cls.__name__, cls.tool, cls.requests,
                      [s.get("iterations") for s in cls.sums]))

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.sc.agent)
        self.assertJsonOnly(self.sc.agent)

    def test_zero_incidents_under_load(self):
        self.assertGreater(self.requests, 100, "load generator did too little to mean anything")
        inc = self.sc.agent.incidents(pid=self.pid)
        # On a 2-core machine shared with wrk, the loop can wait for a CPU
        # longer than the threshold. That stall is real and the agent says so
        # (pattern cpu_starvation: the run-queue wait is most of it, measured by
        # sched_switch), but it is the machine's, not the app's: it is shown,
        # not failed on. Every other incident fails the test.
        starved = [i for i in inc if swtest.starved(i)]
        if starved:
            swtest.log("NOTE: %d run-queue stalls (the machine's, not the loop's):\n%s"
                       % (len(starved), "\n".join(swtest.incident_str(i) for i in starved)))
        inc = [i for i in inc if i not in starved]
        # Any other incident is a false one, whatever its pattern: a healthy
        # load has no code pattern to name (issue 6 §5), `unknown` included.
        self.assertEqual(inc, [], "incidents on a healthy loop under load (%d requests by %s, "
                         "threshold 50 ms), patterns %s:\n%s"
                         % (self.requests, self.tool, sorted({str(i.get("pattern")) for i in inc}),
                            "\n".join(swtest.incident_str(i) for i in inc)))

    def test_iterations_counted(self):
        n = sum(int(s.get("iterations", 0)) for s in self.sums)
        self.assertGreater(n, 100, "sum of iterations over %d summaries of tid %d: %d "
                           "(%d requests were served)" % (len(self.sums), self.w.ready["tid"], n,
                                                           self.requests))
        self.assertSummariesSane(self.sums)


class LoadNodeHttp(LoadBase):
    argv = [NODE, workload("node_http.js")]


class LoadPyHttp(LoadBase):
    argv = [SYS_PYTHON, workload("py_http.py")]


def load_tests(loader, standard_tests, pattern):
    suite = unittest.TestSuite()
    for c in (IdleNode, IdlePython, LoadNodeHttp, LoadPyHttp):
        suite.addTests(loader.loadTestsFromTestCase(c))
    return suite


if __name__ == "__main__":
    swtest.main("test_healthy")
