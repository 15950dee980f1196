# SPDX-License-Identifier: Apache-2.0
"""TLS and token fixtures for the collector's HTTP port (test_http_auth,
test_lockout, test_prometheus): a throwaway CA and a server certificate for
127.0.0.1 made at test time with the openssl CLI (Debian's `openssl`,
scripts/install-deps.sh), a bearer token file, a collector started with
them, and HTTPS requests verified against that CA."""
import http.client
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time

import swtest

OPENSSL = shutil.which("openssl")


def need_openssl(name):
    """Skip (77), or fail under SW_CI=1, without the openssl CLI."""
    if OPENSSL:
        return
    msg = "%s: no openssl CLI to make the test CA (apt-get install openssl)" % name
    print("%s: %s" % ("FAIL" if swtest.CI else "SKIP", msg), flush=True)
    sys.exit(1 if swtest.CI else swtest.SKIP)


def _openssl(*args, cwd):
    p = subprocess.run([OPENSSL] + list(args), cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    if p.returncode:
        raise RuntimeError("openssl %s: rc %d\n%s" % (" ".join(args), p.returncode, p.stderr))


class Pki:
    """In `work`: ca.pem (a CA), server.pem + server.key (signed by it, SAN
    IP:127.0.0.1 and DNS:localhost, serverAuth), other-ca.pem (a CA that
    signed nothing of ours) and other.key (a key that is not the server's).
    P-256 keys: made in milliseconds, spoken by GnuTLS, Go and Python."""

    def __init__(self, work):
        self.dir = work
        os.makedirs(work, exist_ok=True)
        j = lambda n: os.path.join(work, n)  # noqa: E731
        self.ca, self.ca_key = j("ca.pem"), j("ca.key")
        self.cert, self.key = j("server.pem"), j("server.key")
        self.other_ca, self.other_key = j("other-ca.pem"), j("other.key")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for pem, key, cn in ((self.ca, self.ca_key, "stallwatch test CA"),
                             (self.other_ca, self.other_key, "someone else's CA")):
            _openssl("req", "-x509", *ec, "-keyout", key, "-out", pem, "-days", "2",
                     "-subj", "/CN=%s" % cn,
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=work)
        with open(j("server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n")
        _openssl("req", *ec, "-keyout", self.key, "-out", j("server.csr"),
                 "-subj", "/CN=127.0.0.1", cwd=work)
        _openssl("x509", "-req", "-in", j("server.csr"), "-CA", self.ca, "-CAkey", self.ca_key,
                 "-set_serial", "0x%x" % secrets.randbits(63), "-days", "2",
                 "-extfile", j("server.ext"), "-out", self.cert, cwd=work)
        for k in (self.key, self.ca_key, self.other_key):
            os.chmod(k, 0o600)

    def context(self, ca=None):
        """A client context that verifies the server against `ca` (ours by
        default) and its name (127.0.0.1, an IP SAN)."""
        return ssl.create_default_context(cafile=ca or self.ca)


def token_file(work, name="http-token", token=None, mode=0o600):
    token = token or secrets.token_hex(24)
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, mode)
    return path, token


def request(port, path, token=None, ctx=None, method="GET", body=None, src=None, timeout=10,
            auth=None):
    """(status, headers dict with lower-case names, body text). HTTPS when
    ctx is given, verified by it against 127.0.0.1."""
    kw = {"timeout": timeout}
    if src:
        kw["source_address"] = (src, 0)
    if ctx:
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, **kw)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, **kw)
    headers = {}
    if auth is not None:
        headers["Authorization"] = auth
    elif token:
        headers["Authorization"] = "Bearer " + token
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()


def parse_metrics(text):
    """{name{labels}: value} of an exposition, the keys as written."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


UNAUTHORIZED = 'stallwatch_collector_http_requests_refused_total{reason="unauthorized"}'
TLS_FAILED = "stallwatch_collector_http_tls_handshake_failures_total"


class HttpCollector:
    """A collector whose HTTP port may need a token (token_path) and speak
    HTTPS (pki): up when its /healthz answers the way it should."""

    def __init__(self, token=None, token_path=None, pki=None, extra=(), src=None):
        self.listen, self.http = swtest.free_port(), swtest.free_port()
        self.token, self.pki, self.src = token, pki, src
        self.ctx = pki.context() if pki else None
        self.argv = [swtest.COLLECTOR, "--listen", "127.0.0.1:%d" % self.listen,
                     "--http", "127.0.0.1:%d" % self.http]
        if token_path:
            self.argv += ["--http-token-file", token_path]
        if pki:
            self.argv += ["--http-tls-cert", pki.cert, "--http-tls-key", pki.key]
        self.argv += list(extra)
        swtest.log(" ".join(self.argv))
        self.p = swtest.spawn(self.argv, stdin=subprocess.DEVNULL)
        self.err = swtest.Lines(self.p.stderr, "collector:stderr")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                break
            try:
                if self.get("/healthz", token=None)[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        raise RuntimeError("collector did not come up (rc %s): %s"
                           % (self.p.poll(), self.err.text()))

    def get(self, path, token="", **kw):
        """token "" (default): the collector's own; None: none."""
        src = kw.pop("src", self.src)
        return request(self.http, path, token=self.token if token == "" else token,
                       ctx=self.ctx, src=src, **kw)

    def metrics(self):
        st, _, text = self.get("/metrics")
        assert st == 200, (st, text[:200])
        return parse_metrics(text)

    def stop(self):
        swtest.kill_proc(self.p, swtest.signal.SIGTERM)
        self.err.join()


def client_hello(ctx=None):
    """The bytes of a TLS ClientHello, for a client that trickles them."""
    ctx = ctx or ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        o.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def raw_exchange(port, data, timeout=5):
    """Send bytes on a plain TCP connection; what comes back until EOF."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    try:
        s.sendall(data)
        got = b""
        while True:
            try:
                b = s.recv(4096)
            except ConnectionResetError:
                break
            if not b:
                break
            got += b
        return got
    finally:
        s.close()
