#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every query of dashboards/*.json, run by a real Prometheus against a real
collector.

The collector is fed the hand-encoded batches of test_collector_ingest.py
(a Node loop, a CPython process with a GilSummary and a GIL-blamed
incident) once every half second, so counters grow; Debian's prometheus
scrapes it every second. Each panel query, with the dashboard variables set
to "All", must be accepted by Prometheus, and the GIL row's queries must
return series of the CPython process. The variables' label_values() queries
must list it too.

Needs no root and no BPF; exits 77 (skip) without /usr/bin/prometheus,
unless SW_CI=1. Env: SW_BUILD, SW_SOURCE as the other root tests.
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_collector_ingest as ci  # noqa: E402  (the frame builders)

PY_PID = 4243  # ci.batch(..., 4242) adds the CPython process as pid + 1
RATE = "10s"   # $__rate_interval: a few 1 s scrapes


def prom_query(port, expr):
    q = urllib.parse.urlencode({"query": expr})
    st, body = ci.http_get(port, "/api/v1/query?" + q)
    return st, json.loads(body) if body.startswith("{") else body


def gil_rate_ready(port):
    """Prometheus is up (it answers in plain text while it starts) and holds
    a growing GIL counter."""
    st, r = prom_query(port, "rate(stallwatch_python_gil_wait_seconds_total[%s]) > 0" % RATE)
    return st == 200 and isinstance(r, dict) and r.get("data", {}).get("result")


def prom_series(port, selector):
    q = urllib.parse.urlencode({"match[]": selector})
    st, body = ci.http_get(port, "/api/v1/series?" + q)
    assert st == 200, (selector, st, body)
    return json.loads(body)["data"]


def expand(expr):
    """Grafana's variables, as the dashboard's defaults ("All") set them."""
    for var in ("host", "runtime", "pid"):
        expr = expr.replace("$" + var, ".*")
    return expr.replace("$__rate_interval", RATE)


def feeder(lport, stop):
    sock = socket.create_connection(("127.0.0.1", lport))
    seq = 1
    try:
        while not stop.is_set():
            sock.sendall(ci.frame(ci.batch(seq, "dash-host", 4242)))
            seq += 1
            stop.wait(0.5)
    finally:
        sock.close()


def main():
    prom = shutil.which("prometheus")
    if not prom:
        print("SKIP: prometheus not installed (apt-get install prometheus)")
        return 1 if os.environ.get("SW_CI") == "1" else 77
    if not os.access(ci.BIN, os.X_OK):
        print("FAIL: %s not built" % ci.BIN)
        return 1
    dashboards = sorted(glob.glob(os.path.join(ci.SOURCE, "dashboards", "*.json")))
    assert dashboards, "no dashboards/*.json under " + ci.SOURCE

    lport, hport, pport = ci.free_port(), ci.free_port(), ci.free_port()
    work = tempfile.mkdtemp(prefix="sw-dash-")
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: stallwatch\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % hport)
    coll = subprocess.Popen([ci.BIN, "--listen", "127.0.0.1:%d" % lport,
                             "--http", "127.0.0.1:%d" % hport],
                            stderr=subprocess.DEVNULL)
    prom_p = None
    prom_log = open(os.path.join(work, "prometheus.log"), "w+")
    stop = threading.Event()
    feed = None
    try:
        ci.wait_for("collector /healthz", lambda: ci._try(
            lambda: ci.http_get(hport, "/healthz") == (200, "ok\n")))
        feed = threading.Thread(target=feeder, args=(lport, stop), daemon=True)
        feed.start()
        prom_p = subprocess.Popen([prom, "--config.file", os.path.join(work, "prometheus.yml"),
                                   "--storage.tsdb.path", os.path.join(work, "data"),
                                   "--web.listen-address", "127.0.0.1:%d" % pport],
                                  stdout=subprocess.DEVNULL, stderr=prom_log)
        # a rate over RATE needs a few scrapes of growing counters
        ci.wait_for("Prometheus to hold a GIL rate",
                    lambda: ci._try(lambda: gil_rate_ready(pport)), timeout=60)

        checked = gil_checked = 0
        for path in dashboards:
            d = json.load(open(path))
            for v in d.get("templating", {}).get("list", []):
                if v.get("type") != "query":
                    continue
                m = re.fullmatch(r"label_values\((.*), *(\w+)\)", v["query"]["query"])
                assert m, (path, v["name"], v["query"]["query"])
                sel, label = expand(m.group(1)), m.group(2)
                got = {s.get(label) for s in prom_series(pport, sel)}
                want = {"host": "dash-host", "runtime": "python", "pid": str(PY_PID)}[label]
                assert want in got, (path, v["name"], sel, got)
            for p in d["panels"]:
                for t in p.get("targets", []):
                    expr = expand(t["expr"])
                    st, r = prom_query(pport, expr)
                    assert st == 200 and r.get("status") == "success", (
                        path, p["title"], expr, st, r)
                    checked += 1
                    if "python_gil" not in expr:
                        continue
                    pids = {s["metric"].get("pid") for s in r["data"]["result"]}
                    assert str(PY_PID) in pids, (p["title"], expr, r["data"]["result"])
                    gil_checked += 1
        assert gil_checked >= 8, gil_checked
        print("PASS test_dashboard_queries (%d queries, %d on GIL series)" % (
            checked, gil_checked))
        return 0
    except BaseException:
        prom_log.seek(0)
        sys.stderr.write("prometheus log (tail):\n" + prom_log.read()[-3000:])
        raise
    finally:
        stop.set()
        if feed:
            feed.join(timeout=5)
        for p in (prom_p, coll):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        prom_log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
