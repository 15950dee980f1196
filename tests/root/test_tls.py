#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Root tier: TLS on the agent -> collector stream (issue 9, part 4;
common/tls.c, docs/DESIGN.md "Wire protocol").

A throwaway PKI is made at test time with the openssl CLI in a temp dir:
CA A, a collector certificate it signs (SAN IP:127.0.0.1 and DNS:localhost,
serverAuth), an agent client certificate it signs (clientAuth), and an
unrelated CA B. Then, with a collector on --tls-cert/--tls-key/--tls-client-ca:

- a real agent attached to a real Node workload (tests/workloads/
  node_block.js) streams over TLS with its client certificate: every block
  the workload reports (its own clock) is an incident in the collector's
  /api/incidents, the collector holds exactly the agent's final incidents,
  and acks come back through TLS (batches_acked > 0 in the agent's health);
- a plaintext client sending a real frame to the TLS port is closed and
  counted tls_handshake, a port probe (connect, close) is not;
- an agent that trusts CA B refuses the collector: one warning line however
  many retries, nothing delivered, the collector counts the failures;
- an agent without a client certificate is refused by the collector: one
  warning line on the agent, counted tls_handshake on the collector;
- an agent with --tls to a plaintext collector: one warning saying to
  check the collector's TLS, its ClientHellos counted as bad frames there;
- bad files are one line and exit 2 on both sides; a collector without TLS
  on a non-loopback address warns at start that the stream is unencrypted.

Ports 47100-47199 (the range this test was given). Every wait is for a
condition with a generous bound; no timing is asserted.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

import swtest
import swtls
from swtest import NODE, Lines, kill_proc, spawn, until, workload, overlap_incident

COLLECTOR = os.path.join(swtest.BUILD, "stallwatch-collector")
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
PORTS = iter(range(47100, 47200))


def log(msg):
    swtest.log("tls: " + msg)


def port():
    """The next free port of our range."""
    for p in PORTS:
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port left in 47100-47199")


def ossl(*args, cwd):
    r = subprocess.run([OPENSSL] + list(args), cwd=cwd, capture_output=True, timeout=60)
    if r.returncode:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode()))


class PKI:
    """CA A with a server and a client certificate, and an unrelated CA B."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="swtest-tls-")
        d = self.dir
        for ca in ("ca_a", "ca_b"):
            ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2",
                 "-subj", "/CN=stallwatch test %s" % ca,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                     "extendedKeyUsage=serverAuth\n"),
                          ("client", "extendedKeyUsage=clientAuth\n")):
            with open(os.path.join(d, name + ".ext"), "w") as f:
                f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" + ext)
            ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", name + ".key", "-out", name + ".csr",
                 "-subj", "/CN=stallwatch test %s" % name, cwd=d)
            ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca_a.pem", "-CAkey", "ca_a.key",
                 "-CAcreateserial", "-out", name + ".pem", "-days", "2",
                 "-extfile", name + ".ext", cwd=d)
        # the agents' shared token (--token-file), and a wrong one
        for name, tok in (("token", "stallwatch-tls-test-token-0123456789"),
                          ("wrong_token", "stallwatch-tls-test-token-012345678X")):
            with open(os.path.join(d, name), "w") as f:
                f.write(tok + "\n")
        for f in os.listdir(d):
            if f.endswith("token"):
                os.chmod(os.path.join(d, f), 0o600)
        for f in os.listdir(d):
            if f.endswith(".key"):
                os.chmod(os.path.join(d, f), 0o600)

    def __getitem__(self, name):
        return os.path.join(self.dir, name)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def http_get(hport, path, timeout=10):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (hport, path), timeout=timeout) as r:
        return r.read().decode()


class Collector:
    def __init__(self, *extra, listen_host="127.0.0.1"):
        self.listen, self.http = port(), port()
        self.argv = [COLLECTOR, "--listen", "%s:%d" % (listen_host, self.listen),
                     "--http", "127.0.0.1:%d" % self.http] + list(extra)
        log(" ".join(self.argv))
        self.p = spawn(self.argv, stdin=subprocess.DEVNULL)
        self.err = Lines(self.p.stderr, "collector:stderr")
        until("collector /healthz", self._up, 20)

    def _up(self):
        if self.p.poll() is not None:
            raise AssertionError("collector exited %d: %s" % (self.p.returncode,
                                                             self.err.text()))
        try:
            return http_get(self.http, "/healthz", 2).strip() == "ok"
        except OSError:
            return False

    def metrics(self):
        out = {}
        for line in http_get(self.http, "/metrics").splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def closed(self, reason):
        return self.metrics().get(
            'stallwatch_collector_connections_closed_total{reason="%s"}' % reason, 0)

    def incidents(self, pid):
        doc = json.loads(http_get(self.http, "/api/incidents?pid=%d" % pid))
        return [i for i in doc["incidents"] if not i["ongoing"]]

    def stop(self):
        kill_proc(self.p, swtest.signal.SIGTERM)
        self.err.join()
        # a sanitizer build reports at exit (leaks) on stderr
        bad = [m for m in swtest.CRASH_MARKERS if m in self.err.text()]
        if bad or "LeakSanitizer" in self.err.text():
            raise AssertionError("collector %s: %s\n%s" % (bad, self.argv,
                                                            swtest._tail(self.err.text(), 40)))


def hello_frame(agent_id):
    """A real frame: a Batch holding only a Hello (field 2, agent_id field 1)."""
    aid = agent_id.encode()
    hello = bytes([0x0A, len(aid)]) + aid
    batch = bytes([0x12, len(hello)]) + hello
    return b"SW\x01\x00" + len(batch).to_bytes(4, "big") + batch


def agent_warnings(agent):
    return [l for l in agent.err.text().splitlines()
            if "warning: collector" in l and "retrying" in l]


class TLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = PKI()
        p = cls.pki
        # TLS with client certificates and the token, as a fleet beyond
        # loopback would run it
        cls.c = Collector("--tls-cert", p["server.pem"], "--tls-key", p["server.key"],
                          "--tls-client-ca", p["ca_a.pem"], "--handshake-timeout", "10",
                          "--token-file", p["token"])
        # one idle Node process for the refused agents to watch
        cls.idle = swtest.Workload([NODE, workload("node_block_cmd.js")])

    @classmethod
    def tearDownClass(cls):
        cls.idle.stop()
        cls.c.stop()
        cls.pki.remove()

    def agent(self, pid, *tls, interval=1, token="token"):
        return swtest.Agent([pid], threshold_ms=50, interval=interval,
                            extra=["--collector", "127.0.0.1:%d" % self.c.listen,
                                   "--token-file", self.pki[token]] + list(tls))

    def test_agent_streams_over_tls(self):
        p, c = self.pki, self.c
        before = c.closed("tls_handshake")
        w = swtest.Workload([NODE, workload("node_block.js"), "--schedule",
                             "spin:120,sleep:150,spin:200", "--gap-ms", "300"])
        a = None
        try:
            a = self.agent(w.pid, "--tls-ca", p["ca_a.pem"], "--tls-cert", p["client.pem"],
                           "--tls-key", p["client.key"])
            a.wait_attached()
            w.go()
            w.wait_done(60)
            truth = [b for b in w.blocks() if b["ms"] >= 50]
            self.assertEqual(len(truth), 3, w.blocks())

            def held():
                incs = c.incidents(w.pid)
                return incs if all(overlap_incident(b, incs) for b in truth) else None
            incs = until("the workload's 3 blocks at the collector", held, 60)
            # acks come back through TLS: the hello's and the batches'
            h = until("an acked batch in the agent's health",
                      lambda: [o for o in a.lines("health") if o.get("batches_acked", 0) > 0],
                      30)[-1]
            mine = a.incidents(pid=w.pid, final=True)
            self.assertEqual(sorted(i["start_ns"] for i in mine),
                             sorted(i["start_ns"] for i in incs),
                             "the collector holds exactly the agent's final incidents\n"
                             + a.describe())
            for b in truth:
                i = overlap_incident(b, incs)
                log("block %s %d ms at %d: collector incident %.1f ms at %s"
                    % (b["kind"], b["ms"], b["start_ns"], i["duration_ms"], i["start_ns"]))
            log("agent health: batches_sent %d, acked %d, resent %d, reconnects %d"
                % (h["batches_sent"], h["batches_acked"], h["batches_resent"], h["reconnects"]))
            self.assertEqual(h["reconnects"], 0, a.describe())
            self.assertEqual(agent_warnings(a), [], a.describe())
            self.assertEqual(c.closed("tls_handshake"), before)
        finally:
            if a:
                a.stop()
            w.stop()
        self.assertEqual(a.rc, 0, a.describe())
        self.assertEqual(a.crash_markers(), [])

    def test_plaintext_client_is_closed_and_counted(self):
        c = self.c
        before = c.closed("tls_handshake")
        conns0 = c.metrics()["stallwatch_collector_connections"]
        # a port probe: connect and close, no byte. Not a TLS failure.
        socket.create_connection(("127.0.0.1", c.listen), 5).close()
        # a plaintext agent: a real hello frame where a ClientHello belongs
        s = socket.create_connection(("127.0.0.1", c.listen), 5)
        try:
            s.sendall(hello_frame("plaintext-agent"))
            s.settimeout(20)
            try:
                got = s.recv(4096)
                # a TLS alert may come first; then the end
                while got:
                    self.assertEqual(got[:1], b"\x15", "not a TLS alert: %r" % got)
                    got = s.recv(4096)
            except ConnectionResetError:
                pass
        finally:
            s.close()
        until("one tls_handshake close", lambda: c.closed("tls_handshake") == before + 1, 20)
        until("both connections gone",
              lambda: c.metrics()["stallwatch_collector_connections"] == conns0, 20)
        self.assertEqual(c.closed("tls_handshake"), before + 1, "the probe is not counted")
        lines = [l for l in c.err.text().splitlines() if "TLS handshake failed" in l]
        log("collector: %s" % lines[-1])
        # nothing of it applied: no agent of that name anywhere
        self.assertNotIn("plaintext-agent", http_get(c.http, "/metrics"))

    def refused(self, tls_args, expect_in_line, min_failures=3):
        """An agent the handshake fails for: one warning line however many
        retries, nothing delivered, each failure counted by the collector."""
        c = self.c
        before = c.closed("tls_handshake")
        n_lines = len(c.err.text().splitlines())
        conns0 = c.metrics()["stallwatch_collector_connections"]
        a = self.agent(self.idle.pid, *tls_args)
        try:
            a.wait_attached()
            # retries come at 0.5, 1, 2 s backoff: min_failures of them
            n = until("%d failed handshakes at the collector" % min_failures,
                      lambda: (lambda n: n if n >= before + min_failures else None)(
                          c.closed("tls_handshake")), 60) - before
            warns = agent_warnings(a)
            log("%d failed handshakes, agent said %d line(s): %s"
                % (n, len(warns), warns[0] if warns else None))
            self.assertEqual(len(warns), 1, a.describe())
            self.assertIn(expect_in_line, warns[0])
            self.assertEqual(c.incidents(self.idle.pid), [])
            health = a.lines("health")
            self.assertTrue(health, a.describe())
            self.assertEqual(health[-1]["batches_acked"], 0)
            self.assertEqual(health[-1]["reconnects"], 0)
            self.assertIsNone(a.p.poll(), "the agent goes on measuring\n" + a.describe())
        finally:
            a.stop()
        # its last attempt closed and counted before the next test reads
        until("the agent's connections gone",
              lambda: c.metrics()["stallwatch_collector_connections"] == conns0, 20)
        # this agent's failures as the collector logged them (the last may
        # be its exit inside a handshake)
        mine = [l for l in c.err.text().splitlines()[n_lines:] if "TLS handshake failed" in l]
        log("collector: %s" % mine[0])
        return mine

    def test_agent_trusting_another_ca_refuses_the_collector(self):
        p = self.pki
        self.refused(["--tls-ca", p["ca_b.pem"], "--tls-cert", p["client.pem"],
                      "--tls-key", p["client.key"]],
                     "the server's certificate is not trusted")

    def test_agent_with_the_wrong_name_refuses_the_collector(self):
        p = self.pki
        self.refused(["--tls-ca", p["ca_a.pem"], "--tls-server-name", "collector.invalid",
                      "--tls-cert", p["client.pem"], "--tls-key", p["client.key"]],
                     "does not match")

    def test_agent_without_a_client_certificate_is_refused(self):
        lines = self.refused(["--tls-ca", self.pki["ca_a.pem"]], "--tls-cert")
        self.assertTrue([l for l in lines if "sent no certificate" in l], lines)

    def test_wrong_token_is_refused_through_tls(self):
        # the collector's refusal (Ack.refused) is an ack like any: it must
        # reach the agent through TLS, or the agent could not say why
        p, c = self.pki, self.c
        before = c.closed("unauthenticated")
        a = self.agent(self.idle.pid, "--tls-ca", p["ca_a.pem"], "--tls-cert", p["client.pem"],
                       "--tls-key", p["client.key"], token="wrong_token")
        try:
            a.wait_attached()
            until("the agent says why it was refused",
                  lambda: "token is missing or wrong" in a.err.text(), 60)
            until("unauthenticated counted",
                  lambda: c.closed("unauthenticated") >= before + 1, 20)
            self.assertEqual(c.incidents(self.idle.pid), [])
            self.assertNotIn("TLS", a.err.text(), a.describe())
            log("agent: %s" % [l for l in a.err.text().splitlines() if "refused" in l][0])
        finally:
            a.stop()

    def test_tls_agent_to_a_plaintext_collector(self):
        # the misconfiguration the other way round: the collector reads a
        # ClientHello as a bad frame, the agent says what to check
        plain = Collector()
        a = swtest.Agent([self.idle.pid], threshold_ms=50, interval=1,
                         extra=["--collector", "127.0.0.1:%d" % plain.listen,
                                "--tls-ca", self.pki["ca_a.pem"]])
        try:
            a.wait_attached()
            key = 'stallwatch_collector_bad_frames_total{reason="bad_magic"}'
            until("2 ClientHellos refused as bad frames",
                  lambda: plain.metrics().get(key, 0) >= 2, 60)
            warns = agent_warnings(a)
            log("agent said %d line(s): %s" % (len(warns), warns[0] if warns else None))
            self.assertEqual(len(warns), 1, a.describe())
            self.assertIn("does the collector run with --tls-cert?", warns[0])
            self.assertEqual(plain.incidents(self.idle.pid), [])
        finally:
            a.stop()
            plain.stop()

    def test_bad_files(self):
        p = self.pki
        with open(os.path.join(p.dir, "garbage.pem"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        cases = [
            ([COLLECTOR, "--tls-cert", p["missing.pem"], "--tls-key", p["server.key"]],
             "--tls-cert %s: cannot open it" % p["missing.pem"]),
            ([COLLECTOR, "--tls-cert", p["server.pem"], "--tls-key", p["client.key"]],
             "is not the key of the certificate"),
            ([COLLECTOR, "--tls-cert", p["garbage.pem"], "--tls-key", p["server.key"]],
             "--tls-cert %s: no PEM certificate" % p["garbage.pem"]),
            ([COLLECTOR, "--tls-cert", p["server.pem"]], "go together"),
            ([COLLECTOR, "--tls-client-ca", p["ca_a.pem"]], "needs TLS"),
            ([swtest.AGENT, "--pid", "1", "--collector", "127.0.0.1:1", "--tls-ca",
              p["garbage.pem"]], "--tls-ca %s: no PEM certificate" % p["garbage.pem"]),
            ([swtest.AGENT, "--pid", "1", "--collector", "127.0.0.1:1", "--tls-cert",
              p["client.pem"], "--tls-key", p["server.csr"]], "--tls-key %s: no usable"
             % p["server.csr"]),
            ([swtest.AGENT, "--pid", "1", "--tls"], "give --collector"),
        ]
        for argv, want in cases:
            r = subprocess.run(argv, capture_output=True, timeout=30,
                               stdin=subprocess.DEVNULL)
            err = r.stderr.decode().strip().splitlines()
            self.assertEqual(r.returncode, 2, (argv, err))
            self.assertEqual(len(err), 1, (argv, err))
            self.assertIn(want, err[0], argv)
            log("%s -> %s" % (os.path.basename(argv[0]), err[0]))

    def test_unencrypted_warning_beyond_loopback(self):
        p = self.pki
        seen = {}
        for name, host, extra in (("plain on 0.0.0.0", "0.0.0.0", ()),
                                  ("plain on loopback", "127.0.0.1", ()),
                                  ("TLS on 0.0.0.0", "0.0.0.0",
                                   ("--tls-cert", p["server.pem"], "--tls-key", p["server.key"]))):
            c = Collector(*extra, listen_host=host)
            c.stop()
            seen[name] = [l for l in c.err.text().splitlines() if "not encrypted" in l]
        log("start warnings: %s" % seen)
        self.assertEqual(len(seen["plain on 0.0.0.0"]), 1, seen)
        self.assertEqual(seen["plain on loopback"], [])
        self.assertEqual(seen["TLS on 0.0.0.0"], [])


if __name__ == "__main__":
    swtls.need_openssl("test_tls.py")  # skip, or fail under SW_CI=1, without it
    swtest.main()
