#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The collector's HTTP port with --http-token-file and --http-tls-cert/
--http-tls-key (issue 9 part 4, README "Who may read the HTTP port"). Fast: no agent,
no Prometheus (test_prometheus scrapes the same setup with a real one).

- Token, plain HTTP: every path but /healthz is 401 without the token, with
  a wrong one, with another scheme; the challenge is RFC 6750's; the right
  token gets 200. Each 401 is counted in
  stallwatch_collector_http_requests_refused_total{reason="unauthorized"},
  exactly, and logged under the per-site rate limit: lines written + lines
  suppressed = 401s sent.
- HTTPS (a CA and a server certificate for 127.0.0.1 made now with openssl):
  verified against that CA by name, refused by a client trusting another;
  a plaintext request to the port gets no HTTP reply; both failed
  handshakes counted exactly; the query-argument cut still closes the
  connection (no plaintext 400 on a TLS socket); a client that completed
  the handshake and trickles its headers is cut at the header deadline.
- Bad files: one line naming the file and what to do, exit 2; a token file
  others may read is a warning, not a refusal.
"""
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import swtest
import swtls
from swtest import until
from swtls import TLS_FAILED, UNAUTHORIZED, HttpCollector

HEADER_TIMEOUT = 2
CLOSED = 'stallwatch_collector_http_closed_total{reason="%s"}'


def log(msg):
    swtest.log("http_auth: " + msg)


class Fixture:
    work = None
    pki = None


def setUpModule():
    Fixture.work = tempfile.mkdtemp(prefix="sw-http-auth-")
    t0 = time.monotonic()
    Fixture.pki = swtls.Pki(os.path.join(Fixture.work, "pki"))
    log("test CA and server certificate made in %.2f s" % (time.monotonic() - t0))


def tearDownModule():
    if Fixture.work:
        shutil.rmtree(Fixture.work, ignore_errors=True)


class TokenPlainHttp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        path, cls.token = swtls.token_file(Fixture.work, "plain-token")
        cls.c = HttpCollector(token=cls.token, token_path=path)

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def test_401_and_200(self):
        c, tok = self.c, self.token
        m0 = c.metrics()
        refused = 0
        paths = ("/metrics", "/api/incidents", "/api/folded", "/api/gil", "/nope",
                 "/metrics?x=1")
        for p in paths:
            st, h, body = c.get(p, token=None)
            self.assertEqual(st, 401, (p, body))
            self.assertEqual(h.get("www-authenticate"), 'Bearer realm="stallwatch"', p)
            refused += 1
        for auth in ("Bearer " + tok[:-1] + ("0" if tok[-1] != "0" else "1"),  # last byte
                     "Bearer " + tok[:-1],                                      # one short
                     "Bearer " + tok + "0",                                     # one long
                     "Bearer " + "x" * len(tok),
                     "Basic " + tok,
                     tok,
                     "Bearer"):
            st, h, _ = c.get("/metrics", token=None, auth=auth)
            self.assertEqual(st, 401, auth)
            self.assertEqual(h.get("www-authenticate"),
                             'Bearer realm="stallwatch", error="invalid_token"', auth)
            refused += 1
        # other methods (no body: a 401 comes before any body is read,
        # and the connection closes; unread bytes would make it a reset)
        for method, body in (("HEAD", None), ("POST", None), ("DELETE", None)):
            st, _, _ = c.get("/metrics", token=None, method=method, body=body)
            self.assertEqual(st, 401, method)
            refused += 1
        # the right token, any case of the scheme; /healthz open to all
        for auth in ("Bearer " + tok, "bearer " + tok, "BEARER  " + tok):
            st, _, body = c.get("/metrics", token=None, auth=auth)
            self.assertEqual(st, 200, auth)
            self.assertIn(UNAUTHORIZED, body)
        self.assertEqual(c.get("/api/incidents")[0], 200)
        self.assertEqual(c.get("/api/folded")[0], 200)
        self.assertEqual(c.get("/api/gil")[0], 200)
        self.assertEqual(c.get("/nope")[0], 404)
        self.assertEqual(c.get("/healthz", token=None)[:3:2], (200, "ok\n"))
        self.assertEqual(c.get("/healthz", token=None, auth="Bearer wrong")[0], 200)
        # the query-argument cut comes first, and is not a 401 as well
        st, _, body = c.get("/metrics?" + "&" * 200, token=None)
        self.assertEqual(st, 400, body)
        m1 = c.metrics()
        self.assertEqual(m1[CLOSED % "too_many_args"] - m0[CLOSED % "too_many_args"], 1)
        self.assertEqual(m1[UNAUTHORIZED] - m0[UNAUTHORIZED], refused)
        log("%d requests refused, %d counted" % (refused, m1[UNAUTHORIZED] - m0[UNAUTHORIZED]))

    def test_startup_line(self):
        lines = self.c.err.text().splitlines()
        said = [l for l in lines if "HTTP on 127.0.0.1:%d" % self.c.http in l]
        self.assertEqual(len(said), 1, lines)
        self.assertIn("need the bearer token", said[0])
        self.assertIn("plain HTTP", said[0])
        self.assertNotIn(self.token, self.c.err.text(), "the token is never logged")

    def test_refusals_logged_under_the_rate_limit(self):
        c = HttpCollector(token=self.token, token_path=swtls.token_file(
            Fixture.work, "flood-token", token=self.token)[0])
        n = 300
        try:
            t0 = time.monotonic()
            # one after the other, as fast as it answers (a 401 closes
            # its connection: libmicrohttpd reads nothing more after a
            # reply queued with the headers)
            for _ in range(n):
                self.assertEqual(swtls.request(c.http, "/metrics")[0], 401)
            secs = time.monotonic() - t0
            self.assertEqual(c.metrics()[UNAUTHORIZED], n)
            note = re.compile(r"\((\d+) similar lines from http\.c:\d+ suppressed\)")

            def reported():
                lines = c.err.text().splitlines()
                sup = sum(int(m.group(1)) for m in map(note.search, lines) if m)
                return (lines, sup) if sup == c.metrics()[
                    "stallwatch_collector_log_suppressed_total"] else None
            lines, sup = until("the suppressed count reported", reported, 30)
            printed = [l for l in lines if "401 to 127.0.0.1 for /metrics" in l]
            log("%d 401s in %.2f s: %d logged, %d suppressed" % (n, secs, len(printed), sup))
            self.assertEqual(len(printed) + sup, n)
            # 20 a second from one site (common/log.h), whatever the pace
            self.assertLessEqual(len(printed), 20 * (secs + 2))
        finally:
            c.stop()


class TokenOverHttps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        path, cls.token = swtls.token_file(Fixture.work, "tls-token")
        cls.c = HttpCollector(token=cls.token, token_path=path, pki=Fixture.pki,
                              extra=["--http-header-timeout", str(HEADER_TIMEOUT)])

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def test_https_verified_against_the_test_ca(self):
        c = self.c
        st, _, body = c.get("/metrics")
        self.assertEqual(st, 200)
        self.assertIn(TLS_FAILED, body)
        st, h, _ = c.get("/metrics", token=None)
        self.assertEqual(st, 401)
        self.assertEqual(h.get("www-authenticate"), 'Bearer realm="stallwatch"')
        self.assertEqual(c.get("/healthz", token=None)[0], 200)
        # the name is checked too: the certificate is for 127.0.0.1 and
        # localhost, not for another name
        ctx = Fixture.pki.context()
        with socket.create_connection(("127.0.0.1", c.http), 5) as s:
            with self.assertRaises(ssl.SSLCertVerificationError):
                ctx.wrap_socket(s, server_hostname="collector.example")
        st, _, _ = swtls.request(c.http, "/healthz", ctx=ctx)
        self.assertEqual(st, 200)
        with socket.create_connection(("127.0.0.1", c.http), 5) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                log("HTTPS: %s, %s" % (t.version(), t.cipher()[0]))
                self.assertIn(t.version(), ("TLSv1.2", "TLSv1.3"))

    def test_failed_handshakes_are_counted(self):
        c = self.c
        m0 = c.metrics()
        # a client that trusts another CA: it aborts the handshake
        with self.assertRaises(ssl.SSLCertVerificationError):
            swtls.request(c.http, "/healthz", ctx=Fixture.pki.context(Fixture.pki.other_ca))
        # plain HTTP to the HTTPS port: no HTTP reply of any kind
        got = swtls.raw_exchange(c.http, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertFalse(got.startswith(b"HTTP/"), got[:80])
        with self.assertRaises((http.client.HTTPException, OSError)):
            swtls.request(c.http, "/metrics", token=self.token)
        m1 = until("3 failed handshakes counted",
                   lambda: (lambda m: m if m[TLS_FAILED] - m0[TLS_FAILED] >= 3 else None)(
                       c.metrics()), 10)
        self.assertEqual(m1[TLS_FAILED] - m0[TLS_FAILED], 3)
        self.assertEqual(m1[UNAUTHORIZED], m0[UNAUTHORIZED], "none reached HTTP")
        self.assertIn("a TLS handshake failed", c.err.text())

    def test_too_many_args_closes_without_a_plaintext_reply(self):
        c = self.c
        m0 = c.metrics()
        for token in ("", None):  # with the token, and without: not a 401 too
            with self.assertRaises((http.client.HTTPException, OSError)):
                c.get("/metrics?" + "&" * 200, token=token)
        m1 = c.metrics()
        self.assertEqual(m1[CLOSED % "too_many_args"] - m0[CLOSED % "too_many_args"], 2)
        self.assertEqual(m1[TLS_FAILED], m0[TLS_FAILED])
        self.assertEqual(m1[UNAUTHORIZED], m0[UNAUTHORIZED], "counted once, as too_many_args")
        # the cut connection is not answered again (nor logged as an error)
        self.assertNotIn("internal error", c.err.text())

    def test_header_deadline_holds_over_tls(self):
        c = self.c
        m0 = c.metrics()
        ctx = Fixture.pki.context()
        t0 = time.monotonic()  # before connect: the server's clock starts after it
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", c.http), 10),
                            server_hostname="127.0.0.1")
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(0.5)
        gone = None
        i = 0
        while time.monotonic() - t0 < HEADER_TIMEOUT + 10:
            try:
                s.sendall(b"X-Slow-%d: a\r\n" % i)
                i += 1
                if s.recv(1) == b"":
                    gone = time.monotonic() - t0
                    break
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                gone = time.monotonic() - t0
                break
        s.close()
        self.assertIsNotNone(gone, "a trickling TLS client was never cut")
        self.assertGreaterEqual(gone, HEADER_TIMEOUT - 0.05)  # not before its deadline
        m1 = c.metrics()
        self.assertEqual(m1[CLOSED % "header_timeout"] - m0[CLOSED % "header_timeout"], 1)
        log("a TLS client trickling headers cut after %.1f s (deadline %d s)"
            % (gone, HEADER_TIMEOUT))

    def test_idle_keepalive_over_tls_is_not_cut(self):
        # Prometheus keeps its connection between scrapes (15 s, past the
        # 10 s deadline): quiet after a reply, it is left to the idle
        # timeout, over TLS as in plain HTTP
        c = self.c
        m0 = c.metrics()
        k = http.client.HTTPSConnection("127.0.0.1", c.http, context=Fixture.pki.context(),
                                        timeout=10)
        try:
            hdr = {"Authorization": "Bearer " + self.token}
            k.request("GET", "/metrics", headers=hdr)
            r = k.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            sock = k.sock
            time.sleep(HEADER_TIMEOUT + 3)  # past the deadline and two sweeps
            k.request("GET", "/metrics", headers=hdr)
            r = k.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            self.assertIs(k.sock, sock, "the same TLS connection served both")
        finally:
            k.close()
        m1 = c.metrics()
        self.assertEqual(m1[CLOSED % "header_timeout"], m0[CLOSED % "header_timeout"])

    def test_startup_line(self):
        said = [l for l in self.c.err.text().splitlines()
                if "HTTP on 127.0.0.1:%d" % self.c.http in l]
        self.assertEqual(len(said), 1)
        self.assertIn("HTTPS", said[0])
        self.assertIn("need the bearer token", said[0])
        self.assertNotIn("warning", said[0])


def run_collector(*args, wait=1.5):
    """(rc or None if still running after `wait` s, stderr lines)."""
    argv = [swtest.COLLECTOR, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"] + list(args)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        rc = p.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        p.terminate()
        rc = None
    err = p.communicate(timeout=10)[1]
    return rc, [l for l in err.splitlines() if l.strip()]


class BadFiles(unittest.TestCase):
    def refused(self, name, args, words):
        rc, lines = run_collector(*args)
        log("%s: rc %s: %s" % (name, rc, lines))
        self.assertEqual(rc, 2, (name, lines))
        self.assertEqual(len(lines), 1, (name, lines))
        for w in words:
            self.assertIn(w, lines[0], name)

    def test_each_bad_file_is_one_line_and_exit_2(self):
        w, pki = Fixture.work, Fixture.pki
        short = swtls.token_file(w, "short", token="tooshort")[0]
        self.refused("missing token", ["--http-token-file", w + "/nope"],
                     ["--http-token-file", w + "/nope", "No such file"])
        self.refused("short token", ["--http-token-file", short], [short, "8 bytes"])
        self.refused("cert without key", ["--http-tls-cert", pki.cert], ["--http-tls-key"])
        self.refused("key without cert", ["--http-tls-key", pki.key], ["--http-tls-cert"])
        self.refused("missing cert", ["--http-tls-cert", w + "/nope.pem", "--http-tls-key",
                                      pki.key], [w + "/nope.pem", "No such file"])
        self.refused("swapped", ["--http-tls-cert", pki.key, "--http-tls-key", pki.cert],
                     [pki.key, "swapped"])
        enc = os.path.join(w, "enc.key")
        subprocess.run([swtls.OPENSSL, "pkey", "-in", pki.key, "-out", enc, "-aes256",
                        "-passout", "pass:secret"], check=True, capture_output=True)
        self.refused("encrypted key", ["--http-tls-cert", pki.cert, "--http-tls-key", enc],
                     [enc, "encrypted"])
        # well-formed, but not the certificate's key: GnuTLS says so at start
        self.refused("mismatched key", ["--http-tls-cert", pki.cert, "--http-tls-key",
                                        pki.other_key], [pki.cert, pki.other_key, "refused"])
        damaged = os.path.join(w, "damaged.pem")
        with open(pki.cert) as f:
            text = f.read()
        with open(damaged, "w") as f:
            f.write(text.replace("\n", "\n!", 2))
        self.refused("damaged cert", ["--http-tls-cert", damaged, "--http-tls-key", pki.key],
                     [damaged, "not base64"])

    def test_loose_token_file_is_a_warning(self):
        path, _ = swtls.token_file(Fixture.work, "loose", mode=0o644)
        rc, lines = run_collector("--http-token-file", path)
        self.assertIsNone(rc, lines)
        self.assertTrue(any("warning" in l and path in l and "chmod 600" in l for l in lines),
                        lines)


if __name__ == "__main__":
    swtls.need_openssl("test_http_auth")
    swtest.main("test_http_auth")
