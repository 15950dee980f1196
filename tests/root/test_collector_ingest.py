#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end test of stallwatch-collector: real sockets, real HTTP.

Two raw TCP clients: one speaks the agent protocol (frames built here by
hand-encoding the protobuf, so this test checks the wire format independently
of protobuf-c), the other sends garbage. The garbage client must be cut off,
the good one's data must show up in /metrics and /api/incidents, and the
command-line errors must be one clear line with the documented exit codes.

Needs no root and no BPF. Env: SW_BUILD = build directory (default: build/
next to the sources).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("SW_SOURCE", os.path.normpath(os.path.join(HERE, "..", "..")))
BUILD = os.environ.get("SW_BUILD", os.path.join(SOURCE, "build"))
BIN = os.path.join(BUILD, "stallwatch-collector")
MS = 1000000

# ---- protobuf wire format: varints and length-delimited fields ----


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_uint(field, n):
    return varint(field << 3 | 0) + varint(n) if n else b""


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


# common/hist_bucket.h, scheme 1
HIST_SCHEMA, SUB_BITS, MIN_SHIFT, MAX_SHIFT = 1, 6, 10, 36
NBUCKETS = 2 + (MAX_SHIFT - MIN_SHIFT + 1) * (1 << SUB_BITS)


def hist_bucket(ns):
    if ns < 1 << MIN_SHIFT:
        return 0
    m = ns.bit_length() - 1
    if m > MAX_SHIFT:
        return NBUCKETS - 1
    sub = (ns >> (m - SUB_BITS)) & ((1 << SUB_BITS) - 1)
    return 1 + (m - MIN_SHIFT) * (1 << SUB_BITS) + sub


def batch(seq, host, pid):
    hello = (f_bytes(1, "%s:999" % host) + f_bytes(2, host) + f_bytes(3, "0.1.0")
             + f_uint(6, 1700000000 * 10**9))
    proc = f_uint(1, pid) + f_bytes(2, "node") + f_bytes(5, "node")
    buckets = [(1 * MS, 90), (10 * MS, 9), (100 * MS, 1)]
    loop = (f_uint(1, pid) + f_uint(2, pid) + f_bytes(3, "node") + f_bytes(4, "main")
            + f_bytes(5, "node") + f_uint(6, 1) + f_uint(7, 1 + 1000 * MS)
            + f_uint(8, 100) + f_uint(9, 280 * MS) + f_uint(10, 720 * MS)
            + f_uint(11, 100 * MS))
    for ns, count in buckets:
        loop += f_bytes(12, f_uint(1, hist_bucket(ns)) + f_uint(2, count))
    loop += f_uint(13, HIST_SCHEMA)
    # a 1.5 s block, 90 % on CPU, its stacks in JSON.parse: the collector's
    # rules say node.large_json, whatever the agent said (field 9 is a lie)
    stack = (f_bytes(1, "v8::internal::JsonParser<unsigned char>::ParseJsonValue")
             + f_bytes(1, "Builtins_JsonParse") + f_bytes(1, "node::Start")
             + f_uint(2, 1400 * MS) + f_uint(3, 140))
    incident = (f_uint(1, pid) + f_uint(2, pid) + f_bytes(3, "node") + f_bytes(4, "node")
                + f_uint(5, 5000 * MS) + f_uint(6, 1500 * MS) + f_bytes(8, "main")
                + f_bytes(9, "node.sync_fs")
                + f_uint(11, 1350 * MS) + f_uint(12, 150 * MS)
                + f_bytes(19, stack) + f_uint(21, 140) + f_uint(22, 1400 * MS)
                + f_bytes(26, f_bytes(1, "read") + f_uint(2, 3) + f_uint(3, 2 * MS)
                          + f_uint(4, 7) + f_bytes(5, "file") + f_bytes(6, "/srv/body.json")))
    # AgentHealth.counters: map entries {1: name, 2: value} (common/health.h)
    health = (f_bytes(9, f_bytes(1, "ringbuf_drops") + f_uint(2, 4))
              + f_bytes(9, f_bytes(1, "reconnects") + f_uint(2, 2)))
    return (f_uint(1, seq) + f_bytes(2, hello) + f_bytes(3, proc) + f_bytes(4, loop)
            + f_bytes(5, incident) + f_bytes(6, health) + python_gil(pid + 1))


PY_WORKER_STACK = ["spin (/srv/work.py:12)", "run (/usr/lib/python3.11/threading.py:975)"]


def python_gil(pid):
    """A CPython process (asyncio loop + one CPU-bound thread) over a 1 s
    interval, as Batch fields: its ProcessInfo (3), its GilSummary (9) and
    a loop stall blamed on the GIL (Incident 28-32)."""
    proc = f_uint(1, pid) + f_bytes(2, "python") + f_bytes(3, "3.11.2") + f_bytes(5, "python3")
    loop = (f_uint(1, pid) + f_bytes(2, "python3") + f_uint(3, 1) + f_uint(4, 300 * MS)
            + f_uint(5, 100 * MS) + f_uint(6, 10) + f_uint(7, 5))
    worker = (f_uint(1, pid + 1) + f_bytes(2, "worker") + f_uint(4, 50 * MS)
              + f_uint(5, 600 * MS) + f_uint(6, 60) + f_uint(7, 40) + f_uint(8, 45)
              + f_uint(9, 35) + f_uint(11, 290 * MS)
              + b"".join(f_bytes(12, fr) for fr in PY_WORKER_STACK))
    # the agent's verdict (field 11) is a lie: the collector judges again
    gil = (f_uint(1, pid) + f_uint(2, 9000 * MS) + f_uint(3, 1000 * MS) + f_uint(4, 5000)
           + f_uint(5, 100) + f_uint(6, 80) + f_uint(7, 120) + f_bytes(8, loop)
           + f_bytes(8, worker) + f_bytes(11, "python.gil_contention") + f_bytes(14, "python3")
           + f_bytes(15, "3.11.2"))
    incident = (f_uint(1, pid) + f_uint(2, pid) + f_bytes(3, "python3") + f_bytes(4, "python")
                + f_uint(5, 6000 * MS) + f_uint(6, 300 * MS) + f_bytes(8, "asyncio")
                + f_uint(11, 20 * MS) + f_uint(12, 280 * MS) + f_bytes(14, "futex")
                + f_uint(15, 250 * MS) + f_uint(28, 250 * MS) + f_uint(29, 12)
                + f_uint(30, pid + 1) + f_bytes(31, "worker")
                + b"".join(f_bytes(32, fr) for fr in PY_WORKER_STACK))
    return f_bytes(3, proc) + f_bytes(9, gil) + f_bytes(5, incident)


def frame(payload):
    return b"SW" + bytes([1, 0]) + len(payload).to_bytes(4, "big") + payload


# ---- helpers ----


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, user_agent=None):
    """user_agent: a scraper of its own (the collector tells scrapers apart
    by address and User-Agent; docs/METRICS.md)"""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 headers={"User-Agent": user_agent} if user_agent else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(what, fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def metric(text, name, *needles):
    """Value of the first sample of `name` whose line holds every needle."""
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in "{ " and all(n in line for n in needles):
            return float(line.rsplit(" ", 1)[1])
    return None


def peer_closed(sock, timeout=5.0):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def run_fail(args):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=10)
    return p.returncode, p.stderr


# ---- the test ----


def main():
    if not os.access(BIN, os.X_OK):
        print("FAIL: %s not built (cmake --build build --target stallwatch-collector)" % BIN)
        return 1
    lport, hport = free_port(), free_port()
    env = dict(os.environ, SW_COLLECTOR_EXPIRE_SEC="2")
    proc = subprocess.Popen([BIN, "--listen", "127.0.0.1:%d" % lport,
                             "--http", "127.0.0.1:%d" % hport, "-v"],
                            stderr=subprocess.PIPE, text=True, env=env)
    good = bad = None
    try:
        wait_for("/healthz", lambda: _try(lambda: http_get(hport, "/healthz") == (200, "ok\n")))

        good = socket.create_connection(("127.0.0.1", lport))
        bad = socket.create_connection(("127.0.0.1", lport))
        f = frame(batch(1, "e2e-host", 4242))
        good.sendall(f[:5])  # a frame in two pieces
        bad.sendall(b"\x00garbage that is no frame at all")
        time.sleep(0.1)
        good.sendall(f[5:])

        assert peer_closed(bad), "garbage client was not disconnected"
        wait_for("the agent's loop in /metrics", lambda: _metrics_with(
            hport, "stallwatch_eventloop_iterations_total", 'host="e2e-host"'))
        # the first scrape of a scraper of its own: the delay max is the
        # longest since the scraper's previous scrape, and one that scraped
        # before the batch was applied (the wait above, when the collector
        # is slow to apply it: under ASan) is shown the 1.5 s block too
        text = http_get(hport, "/metrics", "first-look")[1]
        # the service is the comm when the agent names none; the optional
        # identity labels (runtime_version, container...) come between
        lbl = ('{host="e2e-host",service="node",runtime="node",',
               'pid="4242",tid="4242",role="main"')
        assert metric(text, "stallwatch_eventloop_iterations_total", *lbl) == 100
        assert metric(text, "stallwatch_eventloop_delay_seconds_count", *lbl) == 100
        assert metric(text, "stallwatch_eventloop_delay_seconds_bucket", *lbl, 'le="+Inf"') == 100
        assert metric(text, "stallwatch_eventloop_delay_seconds_bucket", *lbl, 'le="0.005"') == 90
        assert metric(text, "stallwatch_eventloop_delay_max_seconds", *lbl) == 0.1
        assert metric(text, "nodejs_eventloop_delay_max_seconds", *lbl) == 0.1
        assert abs(metric(text, "stallwatch_eventloop_utilization_ratio", *lbl) - 0.28) < 1e-9
        assert metric(text, "stallwatch_eventloop_blocked_total", *lbl, 'pattern="node.large_json"') == 1
        assert metric(text, "stallwatch_eventloop_blocked_seconds_total", *lbl,
                      'pattern="node.large_json"') == 1.5
        assert metric(text, "stallwatch_agent_up", 'host="e2e-host"') == 1
        assert metric(text, "stallwatch_agent_ringbuf_drops_total", 'host="e2e-host"') == 4
        assert metric(text, "stallwatch_collector_bad_frames_total", 'reason="bad_magic"') == 1
        assert metric(text, "stallwatch_collector_frames_total") == 1
        assert metric(text, "stallwatch_collector_connections") == 1

        check_gil(text, hport, 4243)
        check_promtool(text)

        st, body = http_get(hport, "/api/incidents?pid=4242")
        assert st == 200, st
        inc = json.loads(body)["incidents"]
        assert len(inc) == 1, inc
        i = inc[0]
        assert (i["host"], i["pid"], i["pattern"], i["ongoing"]) == (
            "e2e-host", 4242, "node.large_json", False), i
        assert i["stack"] == ["v8::internal::JsonParser<unsigned char>::ParseJsonValue",
                              "Builtins_JsonParse", "node::Start"], i
        assert i["syscalls"] == [{"name": "read", "count": 3, "total_ms": 2.0, "fd": 7,
                                  "fd_kind": "file", "target": "/srv/body.json"}], i
        st, body = http_get(hport, "/api/folded?pid=4242")
        assert st == 200 and body == (
            "node;node::Start;Builtins_JsonParse;"
            "v8::internal::JsonParser<unsigned char>::ParseJsonValue 1400000\n"), (st, body)
        assert http_get(hport, "/api/folded?pid=1")[1] == ""
        assert http_get(hport, "/api/folded?from=x")[0] == 400
        assert i["duration_ms"] == 1500 and i["start_unix_ms"] == 1700000000000 + 5000, i
        assert json.loads(http_get(hport, "/api/incidents?pid=1")[1])["incidents"] == []
        assert http_get(hport, "/api/incidents?limit=x")[0] == 400
        assert http_get(hport, "/nope")[0] == 404

        # the same ports again: one line, exit 1, the flag to change named
        rc, err = run_fail(["--listen", "127.0.0.1:%d" % lport, "--http", "127.0.0.1:0"])
        assert rc == 1, (rc, err)
        assert err.count("\n") == 1, err
        assert ("cannot listen on 127.0.0.1:%d: Address already in use" % lport) in err, err
        assert "--listen" in err, err
        rc, err = run_fail(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:%d" % hport])
        assert rc == 1 and "--http" in err and err.count("\n") == 1, (rc, err)
        rc, err = run_fail(["--listen", "not-an-address"])
        assert rc == 2 and err.count("\n") == 1 and "HOST:PORT" in err, (rc, err)
        for v in ("0", "65537", "12x", "-1", ""):
            rc, err = run_fail(["--max-connections", v])
            assert rc == 2 and err.count("\n") == 1 and "--max-connections" in err \
                and "1 to 65536" in err, (v, rc, err)
        check_max_connections()

        # the agent goes away: up=0 at once, its series expire (2 s here)
        good.close()
        good = None
        wait_for("stallwatch_agent_up 0", lambda: metric(
            http_get(hport, "/metrics")[1], "stallwatch_agent_up", 'host="e2e-host"') == 0)
        wait_for("series expiry", lambda: 'host="e2e-host"' not in http_get(hport, "/metrics")[1])

        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        assert rc == 0, "exit %d on SIGTERM" % rc
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        sys.stderr.write("collector stderr:\n" + proc.stderr.read())
        raise
    finally:
        for s in (good, bad):
            if s:
                s.close()
    print("PASS test_collector_ingest")
    return 0


def check_max_connections():
    """--max-connections reaches the listener: of three agents with two
    allowed, the third waits in the kernel's backlog (the listener stops
    accepting at the cap, counted), and is accepted once a slot frees."""
    lport, hport = free_port(), free_port()
    p = subprocess.Popen([BIN, "--listen", "127.0.0.1:%d" % lport, "--http", "127.0.0.1:%d" % hport,
                          "--max-connections", "2"], stderr=subprocess.PIPE, text=True)
    socks = []
    try:
        wait_for("collector up", lambda: _try(lambda: http_get(hport, "/healthz")[0] == 200))
        for _ in range(3):
            socks.append(socket.create_connection(("127.0.0.1", lport)))
        wait_for("the cap reached", lambda: metric(http_get(hport, "/metrics")[1],
                 "stallwatch_collector_accept_paused_total") == 1)
        text = http_get(hport, "/metrics")[1]
        assert metric(text, "stallwatch_collector_connections") == 2, text
        assert metric(text, "stallwatch_collector_connections_refused_total") == 0, text
        # none was accepted and closed: all three are still connected
        assert sum(peer_closed(s, 0.3) for s in socks) == 0
        # the third's frame, sent while it waits, is read once a slot frees
        socks[-1].sendall(frame(batch(1, "cap-host", 77)))
        time.sleep(0.3)
        assert metric(http_get(hport, "/metrics")[1], "stallwatch_collector_frames_total") == 0
        socks.pop(0).close()
        wait_for("the third accepted and read", lambda: metric(
            http_get(hport, "/metrics")[1], "stallwatch_collector_frames_total") == 1)
    finally:
        for s in socks:
            s.close()
        p.terminate()
        p.wait(10)


def check_gil(text, hport, pid):
    """The GilSummary of python_gil() in /metrics, and its incident's holder."""
    lbl = ('{host="e2e-host",service="python3",runtime="python",runtime_version="3.11.2",'
           'pid="%d"' % pid,)
    want = {
        "stallwatch_python_gil_wait_seconds_total": 0.35,
        "stallwatch_python_gil_hold_seconds_total": 0.7,
        "stallwatch_python_gil_acquisitions_total": 45,
        "stallwatch_python_gil_drop_requests_total": 45,
        "stallwatch_python_gil_forced_switches_total": 35,
        "stallwatch_python_gil_switches_total": 120,
        "stallwatch_python_gil_intervals_total": 1,
        "stallwatch_python_gil_measured": 1,
        "stallwatch_python_gil_utilization_ratio": 0.8,
        "stallwatch_python_gil_waiting_threads": 2,
        "stallwatch_python_gil_switch_interval_seconds": 0.005,
        "stallwatch_python_gil_loop_wait_share_ratio": 0.3,
    }
    for name, v in want.items():
        got = metric(text, name, *lbl)
        assert got is not None and abs(got - v) < 1e-9, (name, got, v)
    # 350 ms of waits over the 2 threads that took part x 1 s
    assert abs(metric(text, "stallwatch_python_gil_contention_ratio", *lbl) - 0.175) < 1e-9
    # re-judged: the loop waited 30 % of the interval, whatever the agent said
    assert metric(text, "stallwatch_python_gil_flagged_intervals_total", *lbl,
                  'pattern="python.loop_starved_by_gil"') == 1
    assert metric(text, "stallwatch_python_gil_flagged_intervals_total", *lbl,
                  'pattern="python.gil_contention"') == 0
    assert metric(text, "stallwatch_python_gil_thread_hold_seconds_total", *lbl,
                  'thread="worker"') == 0.6
    assert metric(text, "stallwatch_python_gil_thread_wait_seconds_total", *lbl,
                  'thread="python3"') == 0.3
    st, body = http_get(hport, "/api/incidents?pid=%d" % pid)
    assert st == 200, st
    inc = json.loads(body)["incidents"]
    assert len(inc) == 1, inc
    assert inc[0]["gil"] == {"wait_ms": 250, "drop_requests": 12, "holder_tid": pid + 1,
                             "holder": "worker", "holder_stack": PY_WORKER_STACK}, inc[0]
    st, body = http_get(hport, "/api/gil?pid=%d" % pid)
    assert st == 200, (st, body)
    procs = json.loads(body)["processes"]
    assert len(procs) == 1, procs
    g = procs[0]
    assert (g["host"], g["comm"], g["version"], g["measured"], g["pattern"], g["loop_tid"]) == (
        "e2e-host", "python3", "3.11.2", True, "python.loop_starved_by_gil", pid), g
    assert "held most by thread worker (tid %d) in spin" % (pid + 1) in g["summary"], g
    assert [(t["tid"], t["thread"], t["loop"], t["stack"]) for t in g["threads"]] == [
        (pid, "python3", True, []), (pid + 1, "worker", False, PY_WORKER_STACK)], g
    assert http_get(hport, "/api/gil?pid=x")[0] == 400
    assert json.loads(http_get(hport, "/api/gil?pid=1")[1]) == {"processes": []}


def check_promtool(text):
    """`promtool check metrics` (Debian's prometheus package) finds nothing
    to say about the whole exposition."""
    tool = shutil.which("promtool")
    if not tool:
        if os.environ.get("SW_CI") == "1":
            raise AssertionError("promtool not installed (apt-get install prometheus)")
        print("note: promtool not installed, exposition lint skipped")
        return
    p = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), (
        "promtool check metrics: rc %d\n%s%s" % (p.returncode, p.stdout, p.stderr))


def _try(fn):
    try:
        return fn()
    except OSError:
        return False


def _metrics_with(port, name, needle):
    st, text = http_get(port, "/metrics")
    return text if st == 200 and metric(text, name, needle) is not None else None


if __name__ == "__main__":
    sys.exit(main())
