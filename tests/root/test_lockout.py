#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Root tier: no client can lock the others out of the collector (issue 9).

Written the way the attacks were shown:
- Agent port: 256 connections fill the cap (idle ones, a client trickling a
  frame a byte at a time, one that sent half a frame, one that sent a hello
  and went quiet), spread over addresses under the per-peer cap, each
  reconnecting at once when cut. A real agent watching tests/workloads/
  node_block.js connects while the cap is full: it must wait in the backlog
  (never accepted-and-closed), get a slot when the deadlines free them, and
  deliver every incident it printed. Every close is counted by reason.
- Per-peer cap: 20 connections from one address, 16 held, 4 closed, counted.
- HTTP port: 500 slowloris clients (one header line a second, reconnecting)
  from 127.0.0.1, then 500 from 50 addresses; a scraper from 127.0.0.2
  (bound before connect) must get /metrics and /healthz every time.
- The same over HTTPS with a token (--http-tls-cert, --http-token-file):
  the deadline and the per-IP limit act on the TCP socket under GnuTLS, so
  clients that finished the handshake and trickle headers, and clients that
  trickle the handshake itself, are cut; the scraper (HTTPS, verified, with
  the token) gets every scrape.
- Log flood: 10,000 bad connections at the default verbosity write a bounded
  number of lines; lines written + lines suppressed = 10,000 exactly, and the
  suppressed count is reported in the log and in /metrics.

Deadlines are set short (2-6 s) so that the test is quick; every wait
is for a counter or an event, with generous sanity bounds only.
"""
import http.client
import json
import os
import re
import select
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import unittest

import swtest
import swtls
from swtest import NODE, Lines, free_port, spawn, kill_proc, until, workload

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_collector_ingest import batch, frame  # noqa: E402  (hand-built frames)

COLLECTOR = os.path.join(swtest.BUILD, "stallwatch-collector")
HARNESS_IP = "127.0.0.3"  # our own scrapes: never an attacker's address
SCRAPER_IP = "127.0.0.2"
# the frame deadline below the handshake one, so that the half frame and the
# trickle are told from the silent ones
HANDSHAKE, FRAME, IDLE = 4, 2, 6
CAP, PER_PEER = 256, 16


def log(msg):
    swtest.log("lockout: " + msg)


def get(port, path, src=HARNESS_IP, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(src, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def scrape(port):
    """{name{labels}: value} of /metrics, as text keys."""
    st, text = get(port, "/metrics")
    assert st == 200, st
    return swtls.parse_metrics(text)


def closed(m, reason):
    return m.get('stallwatch_collector_connections_closed_total{reason="%s"}' % reason, 0)


class Collector:
    def __init__(self, *extra):
        self.listen, self.http = free_port(), free_port()
        self.argv = [COLLECTOR, "--listen", "127.0.0.1:%d" % self.listen,
                     "--http", "127.0.0.1:%d" % self.http] + list(extra)
        log(" ".join(self.argv))
        self.p = spawn(self.argv, stdin=None)
        self.err = Lines(self.p.stderr, "collector:stderr")
        until("collector /healthz", lambda: self._up(), 20)

    def _up(self):
        try:
            return get(self.http, "/healthz", timeout=2) == (200, "ok\n")
        except OSError:
            return False

    def metrics(self):
        return scrape(self.http)

    def peak_rss_mib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        return -1.0

    def stop(self):
        kill_proc(self.p, swtest.signal.SIGTERM)
        self.err.join()


class Herd(threading.Thread):
    """Many sockets, each from a given source address and with a behaviour,
    reconnected (after `pause` s) whenever the server closes one."""

    def __init__(self, port, slots, tick=0.25, pause=0.0, ctx=None):
        super().__init__(daemon=True)
        self.port, self.tick, self.pause = port, tick, pause
        self.slots = [{"src": src, "kind": kind, "sock": None, "sent": 0, "retry": 0.0,
                       "hs": False} for src, kind in slots]
        self.cuts = 0
        self.stopping = threading.Event()
        self.ctx = ctx  # for "https" and "tls_hello"
        self.hello = swtls.client_hello(ctx) if ctx else b""

    def _connect(self, s):
        k = socket.socket()
        k.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        k.bind((s["src"], 0))
        if s["kind"] in ("https", "tls_hello"):
            # connected before TLS wraps it (an SSLSocket still connecting
            # reads as closed); loopback connects at once
            k.settimeout(5)
            try:
                k.connect(("127.0.0.1", self.port))
            except OSError:
                k.close()
                s["retry"] = time.monotonic() + self.pause
                return
            k.setblocking(False)
            if s["kind"] == "https":
                k = self.ctx.wrap_socket(k, server_hostname="127.0.0.1",
                                         do_handshake_on_connect=False)
        else:
            k.setblocking(False)
            k.connect_ex(("127.0.0.1", self.port))
        s["sock"], s["sent"], s["hs"] = k, 0, False

    def _send(self, s, data):
        try:
            return s["sock"].send(data)
        except (BlockingIOError, OSError):
            return 0

    def _behave(self, s):
        kind = s["kind"]
        if kind == "slow":
            # a frame announcing 64 KiB, a byte at a time
            hdr = b"SW\x01\x00" + (65536).to_bytes(4, "big")
            data = hdr + b"\x0a" * 65536
            if s["sent"] < len(data):
                s["sent"] += self._send(s, data[s["sent"]:s["sent"] + 1])
        elif kind in ("half", "hello") and not s["sent"]:
            f = frame(batch(1, "lockout-%s" % kind, 7000 + (kind == "half")))
            data = f[:len(f) // 2] if kind == "half" else f
            s["sent"] = self._send(s, data)  # small: all of it or nothing
        elif kind == "tls_hello":
            # the handshake itself, a byte a tick: never finished
            if s["sent"] < len(self.hello):
                s["sent"] += self._send(s, self.hello[s["sent"]:s["sent"] + 1])
        elif kind == "https" and not s["hs"]:
            try:
                s["sock"].do_handshake()
                s["hs"] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, OSError):
                pass  # not yet; or refused, which the next recv sees
            if s["hs"]:
                s["sent"] = self._send(s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        elif kind in ("http", "https"):
            if not s["sent"]:
                s["sent"] = self._send(s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            else:
                s["sent"] += self._send(s, b"X-Slow-%d: a\r\n" % s["sent"]) and 1

    def run(self):
        while not self.stopping.is_set():
            now = time.monotonic()
            for s in self.slots:
                k = s["sock"]
                if k is None:
                    if now >= s["retry"]:
                        self._connect(s)
                    continue
                try:
                    gone = k.recv(4096) == b""
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    gone = False
                except OSError:
                    gone = True
                if gone:
                    k.close()
                    s["sock"] = None
                    s["retry"] = now + self.pause
                    self.cuts += 1
                    continue
                self._behave(s)
            self.stopping.wait(self.tick)
        for s in self.slots:
            if s["sock"] is not None:
                s["sock"].close()

    def stop(self):
        self.stopping.set()
        self.join(10)


class AgentPort(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Collector("--handshake-timeout", str(HANDSHAKE), "--frame-timeout", str(FRAME),
                          "--idle-timeout", str(IDLE), "--max-per-peer", str(PER_PEER))

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def test_per_peer_cap(self):
        before = self.c.metrics()
        socks = [socket.create_connection(("127.0.0.1", self.c.listen), 5,
                                          source_address=("127.0.0.9", 0)) for _ in range(20)]
        try:
            until("4 per_peer closes", lambda: closed(self.c.metrics(), "per_peer")
                  - closed(before, "per_peer") == 4, 30)
            m = self.c.metrics()
            self.assertEqual(m["stallwatch_collector_connections"],
                             before["stallwatch_collector_connections"] + PER_PEER)
            # 4 of them see EOF at once, the 16 others stay open
            readable, _, _ = select.select(socks, [], [], 2)
            gone = [s for s in readable if s.recv(1) == b""]
            self.assertEqual(len(gone), 4)
        finally:
            for s in socks:
                s.close()
        until("connections back", lambda: self.c.metrics()["stallwatch_collector_connections"]
              == before["stallwatch_collector_connections"], 30)

    def test_real_agent_gets_through_a_full_cap(self):
        c = self.c
        # 253 idle connections from 16 addresses (16 each, under the per-peer
        # cap), a trickling frame, a half frame, a hello then silence: 256
        slots = []
        for i in range(253):
            slots.append(("127.0.1.%d" % (1 + i // PER_PEER), "idle"))
        slots += [("127.0.1.100", "slow"), ("127.0.1.101", "half"), ("127.0.1.102", "hello")]
        before = c.metrics()
        w = swtest.Workload([NODE, workload("node_block.js"), "--schedule",
                             "spin:150,spin:200,sleep:120", "--gap-ms", "300"])
        herd = Herd(c.listen, slots)
        agent = None
        try:
            herd.start()
            until("256 connections", lambda: c.metrics()["stallwatch_collector_connections"]
                  == CAP, 60)
            m = c.metrics()
            self.assertGreaterEqual(m["stallwatch_collector_accept_paused_total"]
                                    - before["stallwatch_collector_accept_paused_total"], 1)
            t_full = time.monotonic()
            agent = swtest.Agent([w.pid], threshold_ms=50, interval=1,
                                 extra=["--collector", "127.0.0.1:%d" % c.listen])
            agent.wait_attached()
            t_att = time.monotonic()
            w.go()
            w.wait_done(60)
            truth = [b for b in w.blocks() if b["ms"] >= 50]
            self.assertEqual(len(truth), 3, w.blocks())

            def at_collector():
                st, body = get(c.http, "/api/incidents?pid=%d" % w.pid)
                incs = [i for i in json.loads(body)["incidents"] if not i["ongoing"]]
                return incs if len(incs) >= 3 else None
            # sanity bound: the handshake deadline frees the idle slots
            # after 3 s; the agent's next flush follows within 1 s
            incs = until("the agent's 3 incidents at the collector", at_collector, 90)
            t_in = time.monotonic()
            mine = agent.incidents(pid=w.pid, final=True)
            self.assertEqual(sorted(i["start_ns"] for i in mine),
                             sorted(i["start_ns"] for i in incs),
                             "the collector holds exactly what the agent sent")
            def by_reason():
                m = c.metrics()
                d = {r: closed(m, r) - closed(before, r)
                     for r in ("handshake_timeout", "frame_timeout", "idle", "per_peer")}
                # the trickle and the half frame; the hello then silence
                return (m, d) if d["frame_timeout"] >= 2 and d["idle"] >= 1 else None
            m, d = until("the frame and idle deadlines", by_reason, 60)
            log("the agent's incidents at the collector %.1f s after the cap filled "
                "(agent attached at %.1f s); closes by reason %s; herd cuts %d; accept "
                "pauses %d; collector peak RSS %.1f MiB"
                % (t_in - t_full, t_att - t_full, d, herd.cuts,
                   m["stallwatch_collector_accept_paused_total"], c.peak_rss_mib()))
            self.assertGreaterEqual(d["handshake_timeout"], 253)
            self.assertEqual(d["per_peer"], 0)
            self.assertEqual(m["stallwatch_collector_connections_refused_total"],
                             before["stallwatch_collector_connections_refused_total"],
                             "no accept-and-close at the cap")
            # bounded memory: what the trickle and the half frame hold
            self.assertLessEqual(m["stallwatch_collector_frame_bytes"], 64 << 20)
            # the agent was never cut off: one connection, no reconnect
            health = agent.lines("health")
            self.assertTrue(health, agent.describe())
            self.assertEqual(health[-1]["reconnects"], 0, agent.describe())
            self.assertGreater(health[-1]["batches_sent"], 0, agent.describe())
            self.assertNotIn("closed the connection", agent.err.text(), agent.describe())
        finally:
            herd.stop()
            if agent:
                agent.stop()
            w.stop()
        until("the herd gone", lambda: c.metrics()["stallwatch_collector_connections"] <= 1, 30)


class FrameMemory(unittest.TestCase):
    def test_unfinished_frames_stay_within_the_budget(self):
        # 24 peers each announce a 4 MiB frame and send 3 MiB of it: 72 MiB
        # against the default budget of 64 MiB. Frame deadline long, so that
        # only the budget can close them.
        c = Collector("--frame-timeout", "300", "--handshake-timeout", "300")
        socks = []
        try:
            hdr = b"SW\x01\x00" + (4 << 20).to_bytes(4, "big")
            chunk = b"\x0a" * (3 << 20)
            for i in range(24):
                s = socket.create_connection(("127.0.0.1", c.listen), 10,
                                             source_address=("127.0.3.%d" % (1 + i), 0))
                s.settimeout(30)
                try:
                    s.sendall(hdr + chunk)
                except OSError:
                    pass  # closed by the budget while we wrote: that is the point
                socks.append(s)
            # 72 MiB cannot fit 64: at least 3 of the 3 MiB frames must go
            # once the collector has read everything (21 x 3 MiB = 63 MiB fit)
            m = until("3 frame_memory closes", lambda: (lambda m: m if closed(m, "frame_memory")
                                                        >= 3 else None)(c.metrics()), 60)
            held = m["stallwatch_collector_frame_bytes"]
            log("24 x 3 MiB of unfinished 4 MiB frames: %d closed for frame_memory, %.1f MiB "
                "held, collector peak RSS %.1f MiB"
                % (closed(m, "frame_memory"), held / 2**20, c.peak_rss_mib()))
            self.assertLessEqual(held, 64 << 20)
            self.assertEqual(m["stallwatch_collector_connections"], 24 - closed(m, "frame_memory"))
        finally:
            for s in socks:
                s.close()
            c.stop()


class HttpPort(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Collector("--http-header-timeout", str(HANDSHAKE))

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def scrapes_succeed(self, tries=10):
        for i in range(tries):
            st, body = get(self.c.http, "/metrics", src=SCRAPER_IP, timeout=10)
            self.assertEqual(st, 200)
            self.assertIn("stallwatch_collector_http_closed_total", body)
            self.assertEqual(get(self.c.http, "/healthz", src=SCRAPER_IP, timeout=10),
                             (200, "ok\n"))

    def herd(self, slots, pause):
        m0 = self.c.metrics()
        h = Herd(self.c.http, slots, tick=1.0, pause=pause)
        h.start()
        return h, m0

    def test_500_slow_clients_from_one_address(self):
        h, m0 = self.herd([("127.0.0.1", "http")] * 500, pause=1.0)
        try:
            key = 'stallwatch_collector_http_closed_total{reason="%s"}'
            until("484 refused over the per-IP limit", lambda: self.c.metrics()[key % "limit"]
                  - m0[key % "limit"] >= 500 - 16, 60)
            t0 = time.monotonic()
            self.scrapes_succeed()
            log("500 slowloris from 127.0.0.1: 10/10 scrapes and 10/10 /healthz from %s "
                "in %.1f s; collector peak RSS %.1f MiB"
                % (SCRAPER_IP, time.monotonic() - t0, self.c.peak_rss_mib()))
            # the 16 it holds are cut at the header deadline, though they trickle
            until("16 header timeouts", lambda: self.c.metrics()[key % "header_timeout"]
                  - m0[key % "header_timeout"] >= 16, 60)
        finally:
            h.stop()

    def test_500_slow_clients_from_50_addresses(self):
        slots = [("127.0.2.%d" % (1 + i % 50), "http") for i in range(500)]
        h, m0 = self.herd(slots, pause=0.5)
        try:
            key = 'stallwatch_collector_http_closed_total{reason="%s"}'
            # all held at once (10 per address, 1024 slots): wait until the
            # first round is cut by the deadline, so that they were there
            until("500 header timeouts", lambda: self.c.metrics()[key % "header_timeout"]
                  - m0[key % "header_timeout"] >= 500, 90)
            t0 = time.monotonic()
            self.scrapes_succeed()
            log("500 slowloris from 50 addresses: 10/10 scrapes from %s in %.1f s; "
                "collector peak RSS %.1f MiB"
                % (SCRAPER_IP, time.monotonic() - t0, self.c.peak_rss_mib()))
            self.assertEqual(self.c.metrics()[key % "limit"], m0[key % "limit"])
        finally:
            h.stop()

    def test_idle_keepalive_is_not_a_slowloris(self):
        # A scraper's keep-alive connection is quiet between scrapes: it is
        # left to libmicrohttpd's 30 s idle timeout, not cut and counted as
        # a header timeout (which would warn at every scrape).
        c = Collector("--http-header-timeout", "2")
        try:
            k = http.client.HTTPConnection("127.0.0.1", c.http, timeout=10,
                                           source_address=("127.0.0.4", 0))
            k.request("GET", "/healthz")
            self.assertEqual(k.getresponse().read(), b"ok\n")
            sock = k.sock
            time.sleep(2 + 3)  # past the deadline and two sweeps: a sanity margin
            k.request("GET", "/healthz")
            self.assertEqual(k.getresponse().read(), b"ok\n")
            self.assertIs(k.sock, sock, "the same connection served both")
            k.close()
            key = 'stallwatch_collector_http_closed_total{reason="header_timeout"}'
            self.assertEqual(c.metrics()[key], 0)
        finally:
            c.stop()

    def test_query_edge_cases(self):
        st, _ = get(self.c.http, "/api/incidents?pid=1%00")
        self.assertEqual(st, 400)
        st, _ = get(self.c.http, "/api/incidents?pid=1%00junk")
        self.assertEqual(st, 400)
        st, _ = get(self.c.http, "/api/incidents?limit=2%20")
        self.assertEqual(st, 400)
        st, _ = get(self.c.http, "/api/incidents?pid=1&limit=2")
        self.assertEqual(st, 200)
        for n in (1000, 5000):
            st, body = get(self.c.http, "/metrics?" + "&".join("a%d=%d" % (i, i)
                                                               for i in range(n)))
            # 5000 is a 48 KB line: libmicrohttpd's 414 comes first
            self.assertIn(st, (400, 414), body)
        st, body = get(self.c.http, "/metrics?" + "&" * 20000)
        self.assertEqual(st, 400, body)


class HttpsPort(unittest.TestCase):
    """test_500_slow_clients_* over HTTPS, smaller (Python's TLS in one
    thread is the bottleneck, not the collector): 100 clients from 10
    addresses that finished the handshake and trickle headers, 40 from one
    address (16 held under --http-max-per-ip, the rest refused at accept),
    and 10 that trickle a ClientHello a byte a second."""

    @classmethod
    def setUpClass(cls):
        if not swtls.OPENSSL:
            raise unittest.SkipTest("no openssl CLI to make the test CA")
        cls.work = tempfile.mkdtemp(prefix="sw-lockout-tls-")
        cls.pki = swtls.Pki(cls.work)
        path, tok = swtls.token_file(cls.work)
        cls.c = swtls.HttpCollector(token=tok, token_path=path, pki=cls.pki, src=HARNESS_IP,
                                    extra=["--http-header-timeout", str(HANDSHAKE)])

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_slow_tls_clients(self):
        c = self.c
        slots = [("127.0.5.%d" % (1 + i % 10), "https") for i in range(100)]
        slots += [("127.0.5.100", "https")] * 40
        slots += [("127.0.5.101", "tls_hello")] * 10
        m0 = c.metrics()
        h = Herd(c.http, slots, tick=1.0, pause=0.5, ctx=self.pki.context())
        h.start()
        key = 'stallwatch_collector_http_closed_total{reason="%s"}'
        try:
            def cut():
                m = c.metrics()
                d = {r: m[key % r] - m0[key % r] for r in ("limit", "header_timeout")}
                d["tls"] = m[swtls.TLS_FAILED] - m0[swtls.TLS_FAILED]
                # the first round: all that were held cut by the deadline
                return d if d["header_timeout"] >= 100 + 16 + 10 and d["limit"] >= 24 \
                    else None
            d = until("the first round cut", cut, 90)
            t0 = time.monotonic()
            for _ in range(10):
                st, _, body = c.get("/metrics", src=SCRAPER_IP)
                self.assertEqual(st, 200)
                self.assertIn("stallwatch_collector_http_closed_total", body)
                self.assertEqual(c.get("/healthz", token=None, src=SCRAPER_IP)[0], 200)
            m = c.metrics()
            log("HTTPS: 150 slow clients: 10/10 scrapes and 10/10 /healthz from %s in %.1f s; "
                "first round %s; herd cuts %d; collector peak RSS %.1f MiB"
                % (SCRAPER_IP, time.monotonic() - t0, d, h.cuts, peak_rss_mib(c.p.pid)))
            # the ClientHello tricklers were cut mid-handshake: failed
            # handshakes too (counted when libmicrohttpd's thread sees the
            # cut, after the sweep counted it); nothing reached HTTP
            until("10 failed handshakes", lambda: c.metrics()[swtls.TLS_FAILED]
                  - m0[swtls.TLS_FAILED] >= 10, 10)
            self.assertEqual(m[swtls.UNAUTHORIZED], m0[swtls.UNAUTHORIZED])
        finally:
            h.stop()


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


class LogFlood(unittest.TestCase):
    def test_10000_bad_connections(self):
        c = Collector()  # default verbosity, as shipped
        n, workers = 10000, 4
        try:
            def flood(k):
                for _ in range(n // workers):
                    s = socket.create_connection(("127.0.0.1", c.listen), 10,
                                                 source_address=("127.0.0.%d" % (10 + k), 0))
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    s.recv(1)  # until the collector closes it
                    s.close()
            t0 = time.monotonic()
            ts = [threading.Thread(target=flood, args=(k,)) for k in range(workers)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            secs = time.monotonic() - t0
            key = 'stallwatch_collector_bad_frames_total{reason="bad_magic"}'
            until("10,000 bad frames", lambda: c.metrics()[key] == n, 30)
            # the flush after the window reports what was held back
            note = re.compile(r"\((\d+) similar lines from listener\.c:\d+ suppressed\)")

            def reported():
                lines = c.err.text().splitlines()
                sup = sum(int(m.group(1)) for m in map(note.search, lines) if m)
                return (lines, sup) if sup == c.metrics()[
                    "stallwatch_collector_log_suppressed_total"] else None
            lines, sup = until("the suppressed count reported", reported, 30)
            printed = [l for l in lines if "bad frame (bad_magic)" in l]
            log("10,000 bad connections in %.1f s: %d stderr lines (%d of them bad-frame "
                "lines), %d suppressed" % (secs, len(lines), len(printed), sup))
            self.assertEqual(len(printed) + sup, n, "every line written or counted")
            # 20 a second per site, plus one report a second: generous bound
            self.assertLessEqual(len(lines), 25 * (secs + 3) + 10, lines[:50])
            self.assertLess(len(lines), n / 10)
        finally:
            c.stop()


if __name__ == "__main__":
    swtest.main()
