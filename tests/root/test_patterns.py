# SPDX-License-Identifier: Apache-2.0
"""Root tier: each Node anti-pattern of issue 6 §3, committed by a real
request handler of a small node:http service (tests/workloads/node_*.js),
named by the agent (issue 6 §5).

For every block the workload reports (its own CLOCK_MONOTONIC window, its
thread's CPU clock and run-queue wait), the final incident that overlaps it
on the loop thread must:
- carry the pattern of the table (node.large_json, node.sync_crypto,
  node.sync_zlib, node.sync_fs, node.sync_child, node.regex, node.gc,
  node.cpu_bound_callback);
- have the culprit in its stack: Builtins_JsonParse, a pbkdf2 frame, a zlib
  deflate frame, an irregexp/RegExp frame, V8's heap (GC) frames, the JS
  function countPrimes named from the perf map;
- split on/off CPU within 10 % of the workload's own split (split_mismatch);
- name the file (fs) and the child's command line (execSync).
And no other incident: 20 healthy requests precede the mistakes.
"""
import os
import unittest

import swtest
from swtest import NODE, workload

THRESHOLD_MS = 50
BIG_FILE_MB = 256


def _big_json(mb=14):
    items, size, i = [], 0, 0
    while size < mb * 1e6:
        s = '{"id":%d,"sku":"sku-%d","qty":%d,"price":%.2f,"tags":["a","b"]}' % (
            i, i % 9973, i % 17, (i * 7919) % 100003 / 100)
        items.append(s)
        size += len(s) + 1
        i += 1
    return ('{"items":[' + ",".join(items) + "]}").encode()


class NodePatternCase(swtest.PatternChecks):
    """argv, requests, pattern and culprit frames; subclasses add target
    checks. Each block's incident is checked separately and every failure
    names the block."""
    argv = None
    requests = []
    pattern = None
    body_receive = False    # a block receiving the request body is expected
    culprit = None          # (regex, what) that must be in the stack
    before = None
    agent_extra = ()

    @classmethod
    def setUpClass(cls):
        cls.r = swtest.PatternRun(cls.argv, cls.requests, threshold_ms=THRESHOLD_MS,
                                  before=cls.before, agent_extra=cls.agent_extra)
        cls.pairs = cls.r.pairs

    @classmethod
    def judged(cls):
        """The blocks whose pattern is asserted (all of them by default)."""
        return cls.pairs

    def each(self, check):
        """Run check(b, i) on every judged block that has an incident and
        fail once with every block's failure."""
        problems = []
        for b, i in self.judged():
            if i is None:
                continue  # test_incident_per_block says so
            try:
                check(b, i)
            except AssertionError as e:
                problems.append(str(e))
        if problems:
            self.fail("%d of %d blocks:\n%s" % (len(problems), len(self.judged()),
                                                "\n".join(problems)))

    def test_agent_exit_clean(self):
        self.assertCleanExit(self.r.agent)
        self.assertJsonOnly(self.r.agent)

    def test_workload_truth(self):
        """The workload committed its mistake: one block per request, on the
        loop thread, long enough to be an incident."""
        self.assertEqual(len(self.r.blocks), len(self.requests),
                         "ground-truth blocks: %d for %d requests\n%s"
                         % (len(self.r.blocks), len(self.requests), self.r.w.out.text()))
        for b in self.r.blocks:
            self.assertEqual(b["tid"], self.r.pid, "block not on the main thread: %s" % b)
            self.assertGreater(b["end_ns"] - b["start_ns"], 2 * THRESHOLD_MS * 1e6,
                               "block shorter than twice the threshold: the workload did not "
                               "block enough on this machine to test anything: %s" % b)
            self.assertIn("oncpu_ns", b)

    def test_incident_per_block(self):
        missing = [b for b, i in self.pairs if i is None]
        self.assertFalse(missing, "blocks with no final incident overlapping them on tid %d:\n%s"
                         % (self.r.pid, swtest.block_table(self.pairs)))
        for b, i in self.pairs:
            why = swtest.block_mismatch(b, i)
            if why:  # the handler's surroundings are in the agent's block: shown, not failed
                swtest.log("NOTE: " + why)

    def test_pattern(self):
        self.each(lambda b, i: self.assertPattern(b, i, self.pattern))

    def test_stack_has_culprit(self):
        if not self.culprit:
            self.skipTest("no culprit frame for this pattern")
        self.each(lambda b, i: self.assertStackHas(b, i, *self.culprit))

    def test_split_on_off_cpu(self):
        self.each(self.assertSplit)

    def test_no_false_incident(self):
        used = {id(i) for _, i in self.pairs if i is not None}
        extra = [i for i in self.r.incidents if i.get("ongoing") is False
                 and id(i) not in used and not swtest.starved(i)]
        for i in list(extra):
            p = swtest.gc_explains(i, getattr(self.r, "gc_pauses", []), self.r.pid)
            if p:
                swtest.log("NOTE: incident explained by a %.1f ms GC pause the workload saw: %s"
                           % ((p["end_ns"] - p["start_ns"]) / 1e6, swtest.incident_str(i)))
                extra.remove(i)
            elif self.body_receive and any("llhttp" in f for f in i.get("stack") or []):
                # a real block, before the handler's clock starts: node
                # copying a 14 MB request body out of llhttp (once 102 ms,
                # 33 of them in the run queue)
                swtest.log("NOTE: incident in node's receipt of the request body: %s"
                           % swtest.incident_str(i))
                extra.remove(i)
        self.assertEqual(extra, [], "incidents that match no block (20 healthy requests and "
                         "the mistakes) nor a GC pause of the runtime:\n%s"
                         % "\n".join(swtest.incident_str(i) for i in extra))


class LargeJson(NodePatternCase):
    argv = [NODE, workload("node_large_json.js")]
    requests = [("POST", "/orders", _big_json())] * 2
    body_receive = True  # the 14 MB body's receipt may block on its own
    pattern = "node.large_json"
    culprit = (r"Builtins_JsonParse|JsonParser", "V8's JSON parser (Builtins_JsonParse)")


class SyncCrypto(NodePatternCase):
    argv = [NODE, workload("node_sync_crypto.js")]
    requests = [("POST", "/login?iter=200000", b"hunter2")] * 2
    pattern = "node.sync_crypto"
    culprit = (r"pbkdf2", "pbkdf2 (PKCS5_PBKDF2_HMAC, node::crypto::PBKDF2...)")


class SyncZlib(NodePatternCase):
    argv = [NODE, workload("node_sync_zlib.js"), "--mb", "10"]
    requests = [("GET", "/export", None)] * 2
    pattern = "node.sync_zlib"
    culprit = (r"deflate|longest_match", "zlib's deflate")


class ColdFileCase:
    """A case whose handler reads a big file (path), dropped from the page
    cache before each request so the read waits for the disk; the file's
    path must be behind a syscall of each incident. Mixed in before the
    runtime's case class (SyncFs here, SyncFile in test_patterns_python)."""
    path = None

    @classmethod
    def setUpClass(cls):
        swtest.make_big_file(cls.path, BIG_FILE_MB)
        cls.before = staticmethod(lambda: swtest.evict_file(cls.path))
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            os.unlink(cls.path)
        except OSError:
            pass

    def test_file_path(self):
        self.each(lambda b, i: self.assertSyscallTarget(b, i, "file", want_target=b["path"]))


class SyncFs(ColdFileCase, NodePatternCase):
    path = "/var/tmp/swtest-patterns-node.bin"
    argv = [NODE, workload("node_sync_fs.js"), "--file", path]
    requests = [("GET", "/download", None)] * 2
    pattern = "node.sync_fs"
    culprit = (r"uv_fs_read|uv__fs_read|node::fs::", "libuv's synchronous read under node::fs")


class SyncChild(NodePatternCase):
    argv = [NODE, workload("node_sync_child.js"), "--cmd", "sleep 0.3"]
    requests = [("GET", "/convert", None)] * 2
    pattern = "node.sync_child"
    culprit = (r"SyncProcessRunner|uv_spawn", "node's SyncProcessRunner (execSync's nested loop)")

    def test_child_command(self):
        def check(b, i):
            hit = [s for s in i.get("syscalls") or [] if b["cmd"] in str(s.get("target", ""))]
            if not hit:
                self.fail("%s block at %d: no syscall names the child %r; syscalls: %s"
                          % (b["kind"], b["start_ns"], b["cmd"], swtest.syscalls_str(i)))
        self.each(check)


class Regex(NodePatternCase):
    argv = [NODE, workload("node_regex.js"), "--target-ms", "250"]
    pattern = "node.regex"
    culprit = (r"RegExp|Irregexp", "V8's regular expression engine (Builtins_RegExp*, "
               "irregexp)")

    @classmethod
    def setUpClass(cls):
        # the input's length comes from the workload's own calibration (its
        # ready line): PatternRun sends the requests after on_started
        cls.requests = []

        def started(w):
            cls.requests[:] = [("GET", "/signup?user=%s!" % ("a" * int(w.ready["n"])), None)] * 2
        cls.r = swtest.PatternRun(cls.argv, cls.requests, threshold_ms=THRESHOLD_MS,
                                  on_started=started)
        cls.pairs = cls.r.pairs


class Gc(NodePatternCase):
    # a sliding dedup window: every record survives a few scavenges
    argv = [NODE, workload("node_gc.js"), "--records", "1000000", "--window", "100000"]
    requests = [("GET", "/dedup", None)] * 3
    pattern = "node.gc"
    culprit = (r"v8::internal::(Heap::|Scavenger|MarkCompact|MinorMarkCompact|MarkingVisitor|"
               r"ConcurrentMarking|GCTracer)", "V8's garbage collector (v8::internal::Heap...)")
    GC_SHARE = 0.5

    @classmethod
    def judged(cls):
        """Only the blocks in which GC really took most of the time (gc_ns of
        the workload's PerformanceObserver): V8 decides when it collects."""
        return [(b, i) for b, i in cls.pairs
                if b.get("gc_ns", 0) >= cls.GC_SHARE * (b["end_ns"] - b["start_ns"])]

    def test_workload_truth(self):
        super().test_workload_truth()
        shares = ["%.2f" % (b.get("gc_ns", 0) / (b["end_ns"] - b["start_ns"]))
                  for b in self.r.blocks]
        swtest.log("GC share of each block (workload's PerformanceObserver): %s" % shares)
        self.assertTrue(self.judged(), "no block in which V8's GC took >= %.0f%% of the time "
                        "(shares %s): the workload did not make GC dominate"
                        % (self.GC_SHARE * 100, shares))


class CpuCallback(NodePatternCase):
    argv = [NODE, "--perf-basic-prof-only-functions", workload("node_cpu_callback.js")]
    requests = [("GET", "/primes?n=3000000", None)] * 2
    pattern = "node.cpu_bound_callback"
    culprit = (r"countPrimes", "the JS function countPrimes (named from /tmp/perf-PID.map)")

    @classmethod
    def tearDownClass(cls):
        try:
            os.unlink("/tmp/perf-%d.map" % cls.r.pid)
        except (OSError, AttributeError):
            pass


CASES = (LargeJson, SyncCrypto, SyncZlib, SyncFs, SyncChild, Regex, Gc, CpuCallback)


def load_tests(loader, standard_tests, pattern):
    suite = unittest.TestSuite()
    only = os.environ.get("SW_ONLY")  # SW_ONLY=Regex,Gc: a subset while debugging
    for c in CASES:
        if not only or c.__name__ in only.split(","):
            suite.addTests(loader.loadTestsFromTestCase(c))
    return suite


if __name__ == "__main__":
    swtest.main("test_patterns")
