#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The collector under a real Prometheus, fed by real agents (issue 8 §2).

Debian's prometheus runs on loopback with its own config and data directory,
scraping the collector every SCRAPE_S (timeout 1 s) and loading the alert
rules of dashboards/*alerts*.yml. The collector serves HTTPS with a bearer
token (--http-tls-cert, --http-tls-key, --http-token-file; a throwaway CA
made at test time, swtls.py), and Prometheus scrapes it as
dashboards/prometheus-scrape.yml's commented example says: scheme https,
authorization.credentials_file, tls_config.ca_file, the certificate verified
(no insecure_skip_verify). Real agents (--interval 1: they report
faster than Prometheus scrapes, the case where interval gauges lost blocks)
watch real workloads:
  - a Node loop (node_block_cmd.js) told to block: isolated spins of
    250-400 ms a few seconds apart, one longer than the "stuck" alert's
    threshold, then, after its agent is restarted, more spins;
  - a CPython asyncio loop beside a thread that holds the GIL 250 ms at a
    time (py_gil.py loop-hold), so that the GIL panels have data;
  - a Node process that exits (node_exit.js --mode clean), for
    stallwatch_process_exits_total and the removal of its series.
Ground truth is the workloads' own: CLOCK_MONOTONIC around each block, the
exit's time, their pids, versions and OTEL_SERVICE_NAME.

Then, against Prometheus's HTTP API:
  - every PromQL expression of dashboards/*.json (panels, nested rows,
    template variables) and of the alert rules runs, with the variables
    resolved as Grafana would at "All" and the 30 s step of a one-hour view,
    as an instant and as a range query; each is accepted, and each part of
    it that selects data returns some (a filter such as `> 0`, absent() or
    unless may empty the whole; see data_parts());
  - every injected block is on the "Worst block" panels at that step, within
    STEP_S + 2 scrapes + the agent's interval of its end, at its own length,
    and in the bucket the p99 panels' histogram holds;
  - the agent restart: no label set twice in any exposition (a second
    scraper here, every SCRAPE_S / 4), one label set per loop measurement
    across the restart, the old agent's series gone within two scrapes,
    iterations flowing again within two scrapes of the new agent's first
    report, Prometheus's duplicate and out-of-order counters at 0; the
    exited process's series gone within two scrapes too;
  - `promtool check rules` on the rule files and `promtool check metrics` on
    the exposition say nothing;
  - Prometheus scraped over https, every scrape authorized: the collector
    refused no request and failed no handshake; without the token it is 401.

Root and BPF (swtest.gate); prometheus and promtool from Debian's
`prometheus` package (scripts/install-deps.sh): without them it skips, or
fails under SW_CI=1. SW_DASHBOARDS: another dashboards directory (default
$SW_SOURCE/dashboards).
"""
import glob
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import swtest
import swtls
from swtest import NODE, SYS_PYTHON, TOL_NS, log, workload

try:
    import yaml  # python3-yaml (scripts/install-deps.sh)
except ImportError:
    yaml = None

DASHBOARDS = os.environ.get("SW_DASHBOARDS") or os.path.join(swtest.SOURCE, "dashboards")

SCRAPE_S = 2            # Prometheus's scrape and rule evaluation interval
SCRAPE_TIMEOUT_S = 1
AGENT_INTERVAL_S = 1    # the agents' --interval: faster than the scrapes
STEP_S = 30             # a one-hour Grafana view's step
RANGE_S = 3600
# What Grafana puts for its built-in variables in that view: $__interval is
# the step; $__rate_interval is max($__interval + scrape, 4 x scrape).
RATE_INTERVAL_S = max(STEP_S + SCRAPE_S, 4 * SCRAPE_S)
BUILTINS = {"__rate_interval": "%ds" % RATE_INTERVAL_S, "__interval": "%ds" % STEP_S,
            "__interval_ms": str(STEP_S * 1000), "__range": "%ds" % RANGE_S,
            "__range_s": str(RANGE_S), "__range_ms": str(RANGE_S * 1000)}
SCRAPER_PERIOD_S = SCRAPE_S / 4  # our own second scraper of /metrics
SCRAPER_UA = "stallwatch-test_prometheus-second-scraper/1"

BLOCKS_BEFORE_MS = (300, 250, 400)   # before the agent restart
BLOCKS_AFTER_MS = (350, 280)         # after it
# Between blocks: more than the agent's interval and two scrapes, so that
# the samples that follow a block within that window are its alone
GAP_S = AGENT_INTERVAL_S + 2 * SCRAPE_S + 1.5
# the "stuck" alert's threshold if no rule names one (5 s, docs/METRICS.md)
DEFAULT_STUCK_S = 5.0

SERVICES = {"node": "promtest_node", "python": "promtest_py", "exit": "promtest_exit",
            "leak": "promtest_leak"}
# The agent flags steady RSS growth over this window (--memory-window, its
# minimum): the memory-growth gauge exists only once growth was found
MEMORY_WINDOW_S = 10

# Labels that describe a process rather than tell its series apart
# (docs/METRICS.md): an agent restart must not change them, else one loop's
# measurement becomes two series and rate() breaks at the restart.
ATTRIBUTE_LABELS = ("service", "runtime", "runtime_version", "container_id", "container",
                    "pod_uid", "pod", "role", "agent", "instance", "job")
# Labels that tell one loop's series of a metric apart (bucket, pattern...)
MEASUREMENT_LABELS = ("__name__", "host", "pid", "tid", "le", "pattern", "state",
                      "nodejs_eventloop_state", "thread", "cause", "reason")

# `promtool check metrics` remarks accepted, each with its reason. None yet.
PROMTOOL_METRICS_ALLOWED = {}


def wall(ns):
    """A workload's CLOCK_MONOTONIC ns as Unix time (s): Prometheus's clock."""
    return ns / 1e9 + MONO_TO_WALL


def _mono_to_wall():
    a = time.time()
    m = time.monotonic()
    b = time.time()
    return (a + b) / 2 - m


MONO_TO_WALL = _mono_to_wall()


# ------------------------------------------------------------ exposition
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def parse_exposition(text):
    """The Prometheus text format (0.0.4), parsed as Prometheus does: label
    values with their escapes (\\\\, \\", \\n). Returns ([(name, labels
    tuple sorted, value)], [problems])."""
    samples, problems, types = [], [], set()
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            f = line.split(None, 3)
            if len(f) >= 3 and f[1] == "TYPE":
                if f[2] in types:
                    problems.append("line %d: second TYPE line for %s" % (n, f[2]))
                types.add(f[2])
            continue
        try:
            samples.append(_parse_sample(line))
        except ValueError as e:
            problems.append("line %d: %s: %r" % (n, e, line))
    return samples, problems


def _parse_sample(line):
    m = METRIC_NAME.match(line)
    if not m:
        raise ValueError("no metric name")
    name, i, labels = m.group(0), m.end(), {}
    if i < len(line) and line[i] == "{":
        i += 1
        while True:
            while i < len(line) and line[i] in " \t":
                i += 1
            if i < len(line) and line[i] == "}":
                i += 1
                break
            m = LABEL_NAME.match(line, i)
            if not m:
                raise ValueError("bad label name at %d" % i)
            lname, i = m.group(0), m.end()
            if line[i:i + 2] != '="':
                raise ValueError("label %s: no =\"" % lname)
            i += 2
            val = []
            while True:
                if i >= len(line):
                    raise ValueError("unterminated value of label %s" % lname)
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    nxt = line[i + 1:i + 2]
                    if nxt not in ("\\", '"', "n"):
                        raise ValueError("bad escape \\%s in label %s" % (nxt, lname))
                    val.append("\n" if nxt == "n" else nxt)
                    i += 2
                else:
                    val.append(c)
                    i += 1
            if lname in labels:
                raise ValueError("label %s twice" % lname)
            labels[lname] = "".join(val)
            if i < len(line) and line[i] == ",":
                i += 1
            elif i < len(line) and line[i] == "}":
                i += 1
                break
            else:
                raise ValueError("expected , or } after label %s" % lname)
    rest = line[i:].split()
    if len(rest) not in (1, 2):
        raise ValueError("expected a value and an optional timestamp")
    value = float(rest[0])  # accepts NaN, +Inf, -Inf as the format does
    if len(rest) == 2:
        int(rest[1])
    return name, tuple(sorted(labels.items())), value


class Fetch:
    """What one of our scrapes saw."""

    def __init__(self, t0, t1, samples):
        self.t0, self.t1 = t0, t1  # wall time before the request and after the reply
        self.pids = set()
        self.agents = set()
        self.node_iters = None
        for name, labels, v in samples:
            d = dict(labels)
            if "pid" in d:
                self.pids.add(d["pid"])
            if name == "stallwatch_agent_up" and "agent" in d:
                self.agents.add(d["agent"])
            if name == "stallwatch_eventloop_iterations_total" and d.get("pid") == NODE_PID[0]:
                self.node_iters = v


NODE_PID = [None]  # the Node loop's pid as a string, once known


class Scraper:
    """A second scraper of the collector's /metrics (its own User-Agent, so
    the collector tracks it apart from Prometheus), every SCRAPER_PERIOD_S:
    no exposition may hold one label set twice."""

    def __init__(self, port, ctx, token):
        self.url = "https://127.0.0.1:%d/metrics" % port
        self.ctx, self.token = ctx, token
        self.fetches = []
        self.duplicates = []
        self.problems = []
        self.errors = []
        self.last_text = None
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop_ev.is_set():
            t0 = time.time()
            try:
                req = urllib.request.Request(self.url, headers={
                    "User-Agent": SCRAPER_UA, "Authorization": "Bearer " + self.token})
                with urllib.request.urlopen(req, timeout=5, context=self.ctx) as r:
                    text = r.read().decode("utf-8")
            except (OSError, UnicodeDecodeError) as e:
                with self.lock:
                    self.errors.append("%.3f: %s" % (t0, e))
                self.stop_ev.wait(SCRAPER_PERIOD_S)
                continue
            t1 = time.time()
            samples, problems = parse_exposition(text)
            seen, dups = set(), []
            for name, labels, _ in samples:
                k = (name, labels)
                if k in seen:
                    dups.append(k)
                seen.add(k)
            with self.lock:
                self.last_text = text
                self.fetches.append(Fetch(t0, t1, samples))
                self.problems += ["%.3f: %s" % (t0, p) for p in problems]
                self.duplicates += [(t0, k) for k in dups]
            self.stop_ev.wait(max(0.0, SCRAPER_PERIOD_S - (time.time() - t0)))

    def snapshot(self):
        with self.lock:
            return list(self.fetches)

    def stop(self):
        self.stop_ev.set()
        self.t.join(10)


# ------------------------------------------------------------ Prometheus
class Prometheus:
    def __init__(self, binary, work, target_port, rule_files, ca_file, token_file):
        self.port = swtest.free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        cfg = os.path.join(work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: %ds\n  scrape_timeout: %ds\n"
                    "  evaluation_interval: %ds\n" % (SCRAPE_S, SCRAPE_TIMEOUT_S, SCRAPE_S))
            f.write("rule_files:\n")
            for r in rule_files:
                f.write("  - %s\n" % json.dumps(r))
            # as dashboards/prometheus-scrape.yml's HTTPS example
            f.write("scrape_configs:\n  - job_name: stallwatch\n    scheme: https\n"
                    "    authorization:\n      type: Bearer\n      credentials_file: %s\n"
                    "    tls_config:\n      ca_file: %s\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n"
                    % (json.dumps(token_file), json.dumps(ca_file), target_port))
        self.p = swtest.spawn([binary, "--config.file", cfg,
                               "--storage.tsdb.path", os.path.join(work, "data"),
                               "--web.listen-address", "127.0.0.1:%d" % self.port],
                              stdin=subprocess.DEVNULL)
        self.out = swtest.Lines(self.p.stdout, "prometheus:stdout")
        self.err = swtest.Lines(self.p.stderr, "prometheus:stderr")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.base + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready (rc %s):\n%s"
                           % (self.p.poll(), swtest._tail(self.err.text(), 40)))

    def api(self, path, **params):
        data = urllib.parse.urlencode(params, doseq=True)
        if path.startswith(("/api/v1/query", "/api/v1/series")):
            # POST: long expressions do not make long URLs
            req = urllib.request.Request(self.base + path, data=data.encode())
        else:
            req = urllib.request.Request(self.base + path + ("?" + data if data else ""))
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            body = e.read()
        try:
            return json.loads(body)
        except ValueError:
            return {"status": "error", "error": body.decode(errors="replace")[:500]}

    def query(self, expr, at):
        return self.api("/api/v1/query", query=expr, time="%.3f" % at)

    def query_range(self, expr, start, end, step=STEP_S):
        return self.api("/api/v1/query_range", query=expr, start="%.3f" % start,
                        end="%.3f" % end, step=str(step))

    def series(self, match, start, end):
        return self.api("/api/v1/series", **{"match[]": match, "start": "%.3f" % start,
                                             "end": "%.3f" % end})

    def get(self, path):
        with urllib.request.urlopen(self.base + path, timeout=10) as r:
            return r.read().decode()

    def own_counter(self, name):
        """A counter of Prometheus's own /metrics, summed over its labels."""
        total, found = 0.0, False
        for n, _, v in parse_exposition(self.get("/metrics"))[0]:
            if n == name:
                total += v
                found = True
        return total if found else None

    def stop(self):
        swtest.kill_proc(self.p, signal.SIGTERM)


def ok_result(r):
    return r.get("status") == "success"


def result_of(r):
    return r.get("data", {}).get("result", []) if ok_result(r) else []


# ------------------------------------------------------------ PromQL text
def _scan(expr):
    """(index, char, depth) of every character outside string literals,
    depth counting (), [] and {}."""
    out, depth, i, q = [], 0, 0, None
    while i < len(expr):
        c = expr[i]
        if q:
            if c == "\\" and q != "`":
                i += 2
                continue
            if c == q:
                q = None
            i += 1
            continue
        if c in "\"'`":
            q = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        else:
            out.append((i, c, depth))
        i += 1
    return out


def strip_parens(expr):
    """expr without parentheses around all of it."""
    e = expr.strip()
    while e.startswith("(") and e.endswith(")"):
        depth = 0
        for i, c in _parens(e):
            depth += 1 if c == "(" else -1
            if depth == 0:
                break
        if i != len(e) - 1:  # the first ( closes before the end
            break
        e = e[1:-1].strip()
    return e


def _parens(expr):
    """(index, char) of the parentheses outside string literals."""
    out, i, q = [], 0, None
    while i < len(expr):
        c = expr[i]
        if q:
            if c == "\\" and q != "`":
                i += 2
                continue
            if c == q:
                q = None
        elif c in "\"'`":
            q = c
        elif c in "()":
            out.append((i, c))
        i += 1
    return out


SET_OPS = ("or", ("and", "unless"))
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
MODIFIER = re.compile(r"^\s*(bool\s+)?((on|ignoring)\s*\([^)]*\)\s*)?"
                      r"((group_left|group_right)\s*(\([^)]*\))?\s*)?")
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(Inf|NaN)$", re.I)


def split_top(expr):
    """The expression's top-level binary operator of the lowest precedence
    (PromQL: or < and, unless < comparisons), as (left, op, right), the
    right side without its bool/on/group modifiers; None if there is none.
    Binary operators are left-associative: the last one is the top."""
    chars = [(i, c) for i, c, d in _scan(expr) if d == 0]
    text = expr
    # word operators at depth 0
    words = []
    for m in re.finditer(r"\b(or|and|unless)\b", text):
        if any(i == m.start() for i, _ in chars):
            words.append((m.start(), m.end(), m.group(1)))
    for level in SET_OPS:
        names = (level,) if isinstance(level, str) else level
        hits = [w for w in words if w[2] in names]
        if hits:
            s, e, op = hits[-1]
            return text[:s], op, _strip_modifier(text[e:])
    cmp_hits = []
    idx = {i for i, _ in chars}
    i = 0
    while i < len(text):
        if i in idx:
            two = text[i:i + 2]
            if two in ("==", "!=", ">=", "<=") and i + 1 in idx:
                cmp_hits.append((i, i + 2, two))
                i += 2
                continue
            if text[i] in "<>" and text[i + 1:i + 2] != "=":
                cmp_hits.append((i, i + 1, text[i]))
            elif text[i] == "=" and text[i + 1:i + 2] == "~":
                pass
        i += 1
    if cmp_hits:
        s, e, op = cmp_hits[-1]
        return text[:s], op, _strip_modifier(text[e:])
    return None


def _strip_modifier(right):
    return right[MODIFIER.match(right).end():]


def data_parts(expr):
    """The parts of an expression that must return data (each a PromQL
    expression). A filter at the top may legitimately empty the whole: a
    comparison with a number (`x > 0.1`) filters x, absent(x) is empty while
    x exists, `a and b` / `a unless b` keep what of a b allows; x and a must
    return data, else the panel is always empty or the alert can never fire
    (with absent(), always fires). `a or b` must return data as a whole
    (`x or vector(0)` is a default). Every selector anywhere must select
    series besides (selectors())."""
    e = strip_parens(expr)
    top = split_top(e)
    if top:
        left, op, right = top
        if op == "or":
            return [e]
        if op in ("and", "unless"):
            return data_parts(left)
        if NUMBER.match(strip_parens(right)):
            return data_parts(left)
        return data_parts(left) + data_parts(right)  # vector to vector
    m = re.match(r"^(absent|absent_over_time)\s*\((.*)\)$", e, re.S)
    if m and strip_parens("(" + m.group(2) + ")") == m.group(2).strip():
        inner = m.group(2).strip()
        if m.group(1) == "absent_over_time":
            inner = "last_over_time(%s)" % inner
        return data_parts(inner)
    return [e]


TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`)'
                   r'|(?P<num>[0-9.][0-9a-zA-Z.+]*)'
                   r'|(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)'
                   r'|(?P<punct>=~|!~|!=|==|>=|<=|.))', re.S)
LIST_KEYWORDS = ("by", "without", "on", "ignoring", "group_left", "group_right")
KEYWORDS = ("and", "or", "unless", "bool", "offset", "inf", "nan", "atan2") + LIST_KEYWORDS
AGGREGATORS = ("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
               "bottomk", "topk", "quantile")


def selectors(expr):
    """The vector selectors of an expression (`name{matchers}`, `{matchers}`),
    as text: what is neither a function, a keyword, a label list of by()
    or on(), a string, a number or a duration."""
    toks = []
    for m in TOKEN.finditer(expr):
        kind = m.lastgroup
        toks.append((kind, m.group(kind), m.start(kind), m.end(kind)))
    out, i = [], 0
    while i < len(toks):
        kind, text, s, e = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else (None, None, 0, 0)
        if kind == "ident" and text.lower() in KEYWORDS:
            if text in LIST_KEYWORDS and nxt[1] == "(":
                while i < len(toks) and toks[i][1] != ")":
                    i += 1
            i += 1
            continue
        if kind == "ident" and (nxt[1] == "(" or text in AGGREGATORS):
            i += 1  # a function or an aggregation
            continue
        if kind == "punct" and text == "[":  # a range or a subquery's
            while i < len(toks) and toks[i][1] != "]":
                i += 1
            i += 1
            continue
        if (kind == "ident" and toks[i - 1][1] != "{") or (kind == "punct" and text == "{"):
            start, end = s, e
            j = i + 1 if kind == "ident" else i
            if j < len(toks) and toks[j][1] == "{":
                while j < len(toks) and toks[j][1] != "}":
                    j += 1
                end = toks[j][3] if j < len(toks) else len(expr)
                i = j
            out.append(expr[start:end])
        i += 1
    return out


def comparison_threshold(expr):
    """N of a top-level `x > N` (or >=), else None."""
    top = split_top(strip_parens(expr))
    if top and top[1] in (">", ">=") and NUMBER.match(strip_parens(top[2])):
        return float(strip_parens(top[2]))
    return None


VAR = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def resolve(expr, values):
    """Grafana's interpolation: ${var}, ${var:fmt}, [[var]], $var; values
    maps a variable to its text (a regex for multi-value ones)."""
    def sub(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in values:
            return values[name]
        raise KeyError("unknown variable $%s" % name)
    return VAR.sub(sub, expr)


# ------------------------------------------------------------ dashboards
def load_dashboards():
    """[(file, dashboard dict)]"""
    out = []
    for path in sorted(glob.glob(os.path.join(DASHBOARDS, "*.json"))):
        with open(path) as f:
            out.append((os.path.basename(path), json.load(f)))
    return out


def dashboard_panels(d):
    """Every panel, rows' nested panels included (and the old `rows`)."""
    out = []

    def walk(panels):
        for p in panels or []:
            out.append(p)
            walk(p.get("panels"))
    walk(d.get("panels"))
    for row in d.get("rows") or []:
        walk(row.get("panels"))
    return out


def dashboard_targets(d):
    """[(panel title, refId, expr)] of the Prometheus targets."""
    out = []
    for p in dashboard_panels(d):
        for t in p.get("targets") or []:
            if not t.get("expr"):
                continue
            ds = t.get("datasource") or p.get("datasource") or {}
            dtype = ds.get("type") if isinstance(ds, dict) else None
            if dtype not in (None, "prometheus"):
                raise AssertionError("panel %r target %s: datasource type %r, not prometheus"
                                     % (p.get("title"), t.get("refId"), dtype))
            out.append((p.get("title") or "", t.get("refId") or "", t["expr"]))
    return out


def template_vars(d):
    return [v for v in (d.get("templating") or {}).get("list") or []]


def var_query(v):
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query") or ""
    return q or ""


def load_rules():
    """[(file, group, name, expr, for seconds)] of dashboards/*alerts*.yml."""
    out = []
    for path in sorted(glob.glob(os.path.join(DASHBOARDS, "*alerts*.yml"))
                       + glob.glob(os.path.join(DASHBOARDS, "*alerts*.yaml"))):
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
        for g in doc.get("groups") or []:
            for r in g.get("rules") or []:
                out.append((os.path.basename(path), g.get("name"),
                            r.get("alert") or r.get("record"), str(r.get("expr")),
                            duration_s(str(r.get("for", "0s")))))
    return out


def duration_s(text):
    total = 0.0
    for n, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text):
        total += float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400,
                             "w": 604800, "y": 31536000}[unit]
    return total


def rule_files():
    return sorted(glob.glob(os.path.join(DASHBOARDS, "*alerts*.yml"))
                  + glob.glob(os.path.join(DASHBOARDS, "*alerts*.yaml")))


# ------------------------------------------------------------ the test
def tool_or_skip(name):
    path = shutil.which(name)
    if path:
        return path
    msg = ("%s not found: scripts/install-deps.sh installs Debian's prometheus package"
           % name)
    if swtest.CI:
        print("FAIL: test_prometheus: " + msg, flush=True)
        sys.exit(1)
    print("SKIP: test_prometheus: " + msg, flush=True)
    sys.exit(swtest.SKIP)


class PrometheusScenario(swtest.Checks):
    """One run of the scenario (setUpClass); each test_* checks one thing
    against the Prometheus left running."""

    @classmethod
    def setUpClass(cls):
        cls.t_begin = time.time()
        cls.prom = cls.scraper = None
        cls.work = tempfile.mkdtemp(prefix="sw-promtest-")
        try:
            cls._run()
        except BaseException:
            cls._dump()
            cls.tearDownClass()
            raise

    @classmethod
    def _dump(cls):
        if getattr(cls, "prom", None):
            log("prometheus log (tail):\n" + swtest._tail(cls.prom.err.text(), 30))
        for a in ("agent", "agent2", "agent_py"):
            if getattr(cls, a, None):
                ag = getattr(cls, a)
                log("%s: %s rc %s, stderr:\n%s" % (a, " ".join(ag.argv), ag.p.poll(),
                                                  swtest._tail(ag.err.text(), 20)))
        if getattr(cls, "collector", None):
            log("collector stderr:\n" + swtest._tail(cls.collector.err.text(), 30))

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "table", None):
            print("\nexpressions run (instant at the end, range over %ds at step %ds):\n%s"
                  % (RANGE_S, STEP_S, cls.table), flush=True)
        if cls.scraper:
            cls.scraper.stop()
        swtest.cleanup()
        shutil.rmtree(cls.work, ignore_errors=True)

    # --------------------------------------------------------- scenario
    @classmethod
    def _run(cls):
        cls.host = socket.gethostname()
        cls.rules = load_rules()
        cls.stuck_rules = [r for r in cls.rules if "blocked_ongoing_seconds" in r[3]]
        thr = [comparison_threshold(r[3]) for r in cls.stuck_rules]
        thr = [t for t in thr if t is not None]
        stuck_s = max(thr) if thr else DEFAULT_STUCK_S
        fors = [r[4] for r in cls.stuck_rules]
        # long enough for the gauge to exceed the threshold in a scrape
        # (agent interval + scrape + a rule evaluation) and for the rule's
        # `for`, when that is short enough for this test
        extra_for = max(fors) if fors and max(fors) <= 10 else 0
        cls.long_ms = int((stuck_s + AGENT_INTERVAL_S + 2 * SCRAPE_S + extra_for) * 1000)
        cls.long_ms = max(cls.long_ms, 6500)

        cls.pki = swtls.Pki(os.path.join(cls.work, "pki"))
        cls.token_path, cls.token = swtls.token_file(cls.work)
        cls.collector = swtls.HttpCollector(token=cls.token, token_path=cls.token_path,
                                            pki=cls.pki)
        cls.listen, cls.http = cls.collector.listen, cls.collector.http
        cls.scraper = Scraper(cls.http, cls.pki.context(), cls.token)
        cls.prom = Prometheus(cls.prom_bin, cls.work, cls.http, rule_files(), cls.pki.ca,
                              cls.token_path)
        coll = ["--collector", "127.0.0.1:%d" % cls.listen]

        env = ["env", "OTEL_SERVICE_NAME=%s"]
        cls.node = swtest.Workload([e % SERVICES["node"] if "%" in e else e for e in env]
                                   + [NODE, workload("node_block_cmd.js")], name="node loop")
        NODE_PID[0] = str(cls.node.pid)
        cls.py = swtest.Workload([e % SERVICES["python"] if "%" in e else e for e in env]
                                 + [SYS_PYTHON, workload("py_gil.py"), "loop-hold",
                                    "--stalls", "20", "--stall-ms", "250", "--gap-ms", "3000"],
                                 name="python gil loop")
        cls.exiting = swtest.Workload([e % SERVICES["exit"] if "%" in e else e for e in env]
                                      + [NODE, workload("node_exit.js"), "--mode", "clean"],
                                      name="exiting node")
        # an asyncio service that leaks 512 KiB/s (RSS ~20 MB): growth flagged
        cls.leak = swtest.Workload([e % SERVICES["leak"] if "%" in e else e for e in env]
                                   + [SYS_PYTHON, workload("py_mem.py"), "--mode", "leak",
                                      "--kb-per-s", "512", "--seconds", "600"],
                                   name="leaking python")
        cls.agent = swtest.Agent([cls.node.pid], interval=AGENT_INTERVAL_S, extra=coll)
        cls.agent_py = swtest.Agent([cls.py.pid, cls.exiting.pid, cls.leak.pid],
                                    interval=AGENT_INTERVAL_S,
                                    extra=coll + ["--memory-window", str(MEMORY_WINDOW_S)])
        cls.agent.wait_attached()
        cls.agent_py.wait_attached()
        cls.py.go()
        # Prometheus holds the Node loop's and the CPython process's series,
        # twice (a rate needs two samples)
        cls.wait_prom("count_over_time(stallwatch_eventloop_iterations_total{pid=\"%d\"}[1m]) >= 2"
                      % cls.node.pid)
        cls.wait_prom("count_over_time(stallwatch_python_gil_wait_seconds_total{pid=\"%d\"}[1m])"
                      " >= 2" % cls.py.pid)
        cls.t_data = time.time()

        for ms in BLOCKS_BEFORE_MS:
            cls.block(ms)
        cls.block(cls.long_ms)
        time.sleep(GAP_S)

        # the short-lived process ends (its agent stays: it watches the
        # CPython process too)
        cls.exiting.go()
        ending = cls.exiting.wait_event("ending", 20)
        cls.exit_wall = wall(ending["ts_ns"])
        cls.exiting.p.wait(timeout=20)
        # the agent's report of the exit (its JSON line and the collector's
        # frame go out together): the collector has the final data by about then
        if cls.agent_py.out.wait_for(lambda o: o.get("kind") == "process_exit"
                                     and o.get("pid") == cls.exiting.pid, 20) is None:
            raise AssertionError("the agent reported no process_exit of pid %d"
                                 % cls.exiting.pid)
        cls.t_exit_reported = time.time()

        # The agent restart. The new agent starts first and the old one gets
        # SIGTERM once the new one has connected (its agent_up is out): the
        # two overlap, as in a rolling update that surges, or a restart
        # whose new process comes up before the old one has drained. Started
        # the other way round the outcome would depend on which reaches the
        # collector first (SIGTERM then a new agent at once: either order,
        # measured both); this way the harder order is the one run, always.
        before = [f for f in cls.scraper.snapshot() if f.node_iters is not None]
        cls.iters_before = before[-1].node_iters
        cls.old_agent_id = "%s:%d" % (cls.host, cls.agent.p.pid)
        cls.agent2 = swtest.Agent([cls.node.pid], interval=AGENT_INTERVAL_S, extra=coll)
        cls.new_agent_id = "%s:%d" % (cls.host, cls.agent2.p.pid)
        t_start = time.time()
        deadline = time.monotonic() + swtest.ATTACH_TIMEOUT
        while not any(cls.new_agent_id in f.agents for f in cls.scraper.snapshot()
                      if f.t0 >= t_start):
            if time.monotonic() > deadline or cls.agent2.p.poll() is not None:
                raise AssertionError("the new agent %s never appeared in the collector's "
                                     "stallwatch_agent_up" % cls.new_agent_id)
            time.sleep(0.1)
        cls.t_sigterm = time.time()
        cls.agent.p.send_signal(signal.SIGTERM)
        rc = cls.agent.wait_exit(20)
        cls.t_old_gone = time.time()
        cls.old_agent_rc = rc
        cls.agent2.wait_attached()
        # the new agent's first report, as our scraper saw it
        cls.first_report = cls.wait_first_report()
        t1_hi = cls.first_report[1].t1
        cls.t_rate_check = t1_hi + 2 * SCRAPE_S
        time.sleep(max(0.0, cls.t_rate_check + SCRAPE_TIMEOUT_S + 0.5 - time.time()))
        cls.rate_after_restart = cls.prom.query(
            "rate(stallwatch_eventloop_iterations_total{pid=\"%d\"}[10s])" % cls.node.pid,
            cls.t_rate_check)
        cls.samples_after_restart = cls.prom.query(
            "stallwatch_eventloop_iterations_total{pid=\"%d\"}[10s]" % cls.node.pid,
            cls.t_rate_check)

        for ms in BLOCKS_AFTER_MS:
            cls.block(ms)
        # the last block's sample is in Prometheus, and one more scrape
        time.sleep(AGENT_INTERVAL_S + 2 * SCRAPE_S + 1)
        cls.t_end = time.time()
        cls.scraper.stop()
        cls.exposition = cls.scraper.last_text
        cls.blocks = cls.node.blocks()
        cls.incidents = cls.agent.incidents(pid=cls.node.pid) + \
            cls.agent2.incidents(pid=cls.node.pid)
        log("scenario: %.1f s; blocks %s ms; long block %d ms; restart: old agent %s exited "
            "%.2f s after SIGTERM (rc %s), new agent %s first seen %.2f s after SIGTERM"
            % (cls.t_end - cls.t_begin, [b["ms"] for b in cls.blocks], cls.long_ms,
               cls.old_agent_id, cls.t_old_gone - cls.t_sigterm, rc, cls.new_agent_id,
               t1_hi - cls.t_sigterm))

    @classmethod
    def wait_prom(cls, expr, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result_of(cls.prom.query(expr, time.time())):
                return
            time.sleep(0.5)
        raise AssertionError("Prometheus never held %s within %ds\nscraper errors: %s"
                             % (expr, timeout, cls.scraper.errors[-3:]))

    @classmethod
    def block(cls, ms):
        n = len(cls.node.blocks())
        time.sleep(GAP_S)
        cls.node.p.stdin.write(b"spin %d\n" % ms)
        cls.node.p.stdin.flush()
        if cls.node.out.wait_for(lambda o, n=n: len(cls.node.blocks()) > n,
                                 ms / 1000 + 30) is None:
            raise AssertionError("the node loop printed no block line for spin %d" % ms)

    @classmethod
    def wait_first_report(cls, timeout=60):
        """(last fetch without, first fetch with) the new agent's data: its
        agent_up and the Node loop's iterations counting from 0 again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fs = [f for f in cls.scraper.snapshot() if f.t0 >= cls.t_sigterm]
            for a, b in zip(fs, fs[1:]):
                if cls.new_agent_id in b.agents and b.node_iters is not None and \
                        b.node_iters < cls.iters_before:
                    return a, b
            time.sleep(0.2)
        fs = [f for f in cls.scraper.snapshot() if f.t0 >= cls.t_sigterm]
        raise AssertionError(
            "no exposition shows the new agent %s and the Node loop's iterations counting "
            "again from 0 (before the restart: %s) within %ds; seen: %s"
            % (cls.new_agent_id, cls.iters_before, timeout,
               [(round(f.t0 - cls.t_sigterm, 2), sorted(f.agents), f.node_iters)
                for f in fs[-10:]]))

    # --------------------------------------------------------- helpers
    def var_values(self, d, specific=None):
        """Each template variable of d at "All" (its allValue, else .*),
        or at the value given in specific."""
        vals = {}
        for v in template_vars(d):
            name = v.get("name")
            if v.get("type") == "datasource":
                vals[name] = "prometheus"
            elif specific and name in specific:
                vals[name] = specific[name]
            elif v.get("type") in ("custom", "interval", "constant", "textbox") and \
                    not v.get("includeAll"):
                cur = (v.get("current") or {}).get("value")
                vals[name] = cur[0] if isinstance(cur, list) and cur else (cur or v.get("query", ""))
            else:
                vals[name] = v.get("allValue") or ".*"
        return vals

    def labels_of(self, pid):
        """host, service, runtime of a process, as its series in Prometheus
        carry them (test_13 judges them; here they select its series)."""
        r = self.prom.series("{pid=\"%d\"}" % pid, self.t_begin - 60, self.t_end)
        self.assertTrue(ok_result(r) and r["data"], "no series of pid %d: %s" % (pid, r))
        m = r["data"][0]
        return {k: m[k] for k in ("host", "service", "runtime", "pid") if k in m}

    def node_values(self):
        if not hasattr(self.__class__, "_node_values"):
            self.__class__._node_values = self.labels_of(self.node.pid)
        return self.__class__._node_values

    def all_exprs(self):
        """[(source, title, expr)] of every dashboard target and rule."""
        out = []
        for fname, d in load_dashboards():
            for title, ref, expr in dashboard_targets(d):
                out.append((fname, "%s [%s]" % (title, ref), expr, d))
        for fname, group, name, expr, _ in self.rules:
            out.append((fname, "%s/%s" % (group, name), expr, None))
        return out

    def range_start(self):
        return self.t_end - RANGE_S

    def points(self, result, lo, hi):
        return [(float(t), float(v)) for s in result for t, v in s["values"]
                if lo <= float(t) <= hi]

    def own_series(self, result, want):
        """The series of a result that are the Node loop's, as far as their
        labels tell (a label the panel kept must match)."""
        return [s for s in result
                if all(s["metric"].get(k, v) == v for k, v in want.items())]

    # --------------------------------------------------------- the checks
    def test_01_dashboards_present(self):
        ds = load_dashboards()
        self.assertTrue(ds, "no dashboards/*.json in %s" % DASHBOARDS)
        self.assertTrue(rule_files(), "no alert rule file dashboards/*alerts*.yml in %s"
                        % DASHBOARDS)
        self.assertTrue(self.rules, "no rules in %s" % rule_files())

    def test_02_rules_loaded(self):
        """Prometheus loaded every rule of the files and evaluates each
        without error."""
        deadline = time.monotonic() + 3 * SCRAPE_S
        while True:
            r = self.prom.api("/api/v1/rules")
            self.assertTrue(ok_result(r), r)
            loaded = [x for g in r["data"]["groups"] for x in g["rules"]]
            if all(x.get("health") != "unknown" for x in loaded) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(sorted(x["name"] for x in loaded),
                         sorted(str(n) for _, _, n, _, _ in self.rules),
                         "the rules Prometheus loaded are not those of %s" % rule_files())
        bad = [(x["name"], x.get("health"), x.get("lastError")) for x in loaded
               if x.get("health") != "ok"]
        self.assertFalse(bad, "rules not healthy: %s" % bad)

    def test_03_every_expression(self):
        """Every panel and rule expression: accepted as an instant and as a
        range query, and each of its data parts returns data both ways."""
        rows, problems = [], []
        start, end = self.range_start(), self.t_end
        self.selector_seen = {}
        gil_checked = 0
        for src, title, expr, d in self.all_exprs():
            where = "%s: %s: %s" % (src, title, expr)
            try:
                q = resolve(expr, self.var_values(d) if d else {})
            except KeyError as e:
                problems.append("%s: %s" % (where, e))
                continue
            inst = self.prom.query(q, end)
            rng = self.prom.query_range(q, start, end)
            for kind, r in (("instant", inst), ("range", rng)):
                if not ok_result(r):
                    problems.append("%s: %s query rejected: %s" % (where, kind, r.get("error")))
            for sel in selectors(q):
                if sel not in self.selector_seen:
                    r = self.prom.series(sel, self.t_begin - 60, end)
                    self.selector_seen[sel] = len(r.get("data") or []) if ok_result(r) else -1
                if self.selector_seen[sel] <= 0:
                    problems.append("%s: its selector %s matches no series over the test"
                                    % (where, sel))
            counts = []
            for part in data_parts(q):
                pi = result_of(self.prom.query(part, end)) if part != q else result_of(inst)
                pr = result_of(self.prom.query_range(part, start, end)) if part != q \
                    else result_of(rng)
                counts.append((part, len(pi), len(pr)))
                if not pi or not pr:
                    problems.append("%s: %s returned no data (instant %d series, range %d)"
                                    % (where, "it" if part == q else "its part %s" % part,
                                       len(pi), len(pr)))
                if "stallwatch_python_gil" in part and pr:
                    # the GIL panels show the CPython process (by pid or
                    # service, where the panel keeps either label)
                    keep = [s for s in pr if "pid" in s["metric"] or "service" in s["metric"]]
                    mine = [s for s in keep if s["metric"].get("pid") == str(self.py.pid)
                            or s["metric"].get("service") == SERVICES["python"]]
                    if keep and not mine:
                        problems.append("%s: no series of the CPython process (pid %d, "
                                        "service %s): %s" % (where, self.py.pid,
                                                             SERVICES["python"],
                                                             [s["metric"] for s in keep][:5]))
                    gil_checked += 1
            rows.append((src, title, len(result_of(inst)), len(result_of(rng)), counts, q))
        out = ["%-28s %-52s %5s %5s  %s" % ("file", "panel / rule", "inst", "range",
                                            "expression; its data parts (series)")]
        for src, title, ni, nr, counts, expr in rows:
            out.append("%-28s %-52s %5d %5d  %s" % (src[:28], title[:52], ni, nr, expr))
            if len(counts) > 1 or counts[0][0] != expr:
                for part, pi, pr in counts:
                    out.append("%-28s %-52s %5d %5d    part: %s" % ("", "", pi, pr, part))
        out.append("%d expressions, %d data parts on GIL series" % (len(rows), gil_checked))
        self.__class__.table = "\n".join(out)  # printed at the end (tearDownClass)
        self.assertFalse(problems, "\n".join(problems))
        self.assertGreater(gil_checked, 0, "no expression on stallwatch_python_gil_* series")

    def test_04_template_variables(self):
        """Each variable's label_values() lists what the workloads are."""
        want = {"host": {self.host}, "service": {SERVICES["node"], SERVICES["python"]},
                "runtime": {"node", "python"}, "pid": {str(self.node.pid), str(self.py.pid)}}
        problems, n = [], 0
        start, end = self.range_start(), self.t_end
        for fname, d in load_dashboards():
            vals = self.var_values(d)
            for v in template_vars(d):
                if v.get("type") != "query":
                    continue
                n += 1
                q = resolve(var_query(v), vals)
                m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*(\w+)\s*\)\s*", q, re.S)
                if m and m.group(1):
                    r = self.prom.series(m.group(1).strip(), start, end)
                    got = {s.get(m.group(2)) for s in r.get("data") or []} - {None}
                elif m:
                    r = self.prom.api("/api/v1/label/%s/values" % m.group(2),
                                      start="%.3f" % start, end="%.3f" % end)
                    got = set(r.get("data") or [])
                else:
                    m2 = re.fullmatch(r"\s*query_result\((.*)\)\s*", q, re.S)
                    if not m2:
                        problems.append("%s: variable %s: query %r is neither label_values() "
                                        "nor query_result()" % (fname, v.get("name"), q))
                        continue
                    r = self.prom.query(m2.group(1), end)
                    got = {json.dumps(s["metric"]) for s in result_of(r)}
                if not ok_result(r):
                    problems.append("%s: variable %s: %s rejected: %s"
                                    % (fname, v.get("name"), q, r.get("error")))
                    continue
                if v.get("regex"):
                    rx = re.compile(v["regex"].strip("/"))
                    got = {(rx.search(g).group(1) if rx.groups else g) for g in got
                           if rx.search(g)}
                label = m.group(2) if m else None
                missing = want.get(label, set()) - got
                if not got or missing:
                    problems.append("%s: variable %s (%s): values %s, missing %s"
                                    % (fname, v.get("name"), q, sorted(got)[:10],
                                       sorted(missing)))
        self.assertFalse(problems, "\n".join(problems))
        self.assertGreater(n, 0, "no query variables in the dashboards")

    def block_windows(self):
        """[(block, truth s, start wall, end wall, window end)]: the window in
        which the block must reach Prometheus (the agent's interval and two
        scrapes), which ends before the next block starts (GAP_S)."""
        out = []
        bs = sorted(self.blocks, key=lambda b: b["start_ns"])
        for i, b in enumerate(bs):
            e = wall(b["end_ns"])
            w_end = e + AGENT_INTERVAL_S + 2 * SCRAPE_S
            if i + 1 < len(bs):
                self.assertLess(w_end, wall(bs[i + 1]["start_ns"]),
                                "blocks too close to tell apart: %s %s" % (b, bs[i + 1]))
            out.append((b, (b["end_ns"] - b["start_ns"]) / 1e9, wall(b["start_ns"]), e, w_end))
        return out

    def raw(self, selector):
        """{labels tuple: [(t, v)]} of every sample of the selector's series."""
        r = self.prom.query("%s[%ds]" % (selector, RANGE_S), self.t_end)
        self.assertTrue(ok_result(r), r)
        return {tuple(sorted(s["metric"].items())): [(float(t), float(v)) for t, v in s["values"]]
                for s in result_of(r)}

    def test_05_worst_block_panels(self):
        """Every injected block reaches Prometheus in the worst-block gauge,
        and every "Worst block" panel shows it at a 30 s step.

        First the gauge itself: a sample within the agent's interval and two
        scrapes of the block's end, before the next block starts, at least as
        long as the workload measured the block (less TOL_NS): that sample
        is this block's. Then each panel: at each point of its 30 s step it
        is at least the gauge's largest sample of that step (so it loses no
        sample, hence no block), and for each block it has a point within
        STEP_S + 2 scrapes + the agent's interval of the block's end that is
        at least the block's length."""
        self.assertTrue(self.blocks, "no ground-truth blocks")
        tol = TOL_NS / 1e9
        problems = []
        windows = self.block_windows()
        raws = {}
        for metric in ("stallwatch_eventloop_delay_max_seconds",
                       "nodejs_eventloop_delay_max_seconds"):
            raw = self.raw("%s{pid=\"%d\"}" % (metric, self.node.pid))
            self.assertTrue(raw, "no %s of the Node loop" % metric)
            if len(raw) > 1:
                problems.append("%s of the Node loop has %d label sets (test_09): a panel "
                                "selecting one of them misses the blocks of the others: %s"
                                % (metric, len(raw), [dict(k) for k in raw]))
            # one series, unless test_09 finds it split: then all of them
            raws[metric] = samples = sorted(x for v in raw.values() for x in v)
            for b, truth, s, e, w_end in windows:
                got = [v for t, v in samples if e <= t <= w_end]
                log("%s: block of %.3f s: samples within %.0f s of its end: %s"
                    % (metric, truth, w_end - e, got))
                if not got or max(got) < truth - tol:
                    problems.append("%s{pid=%d}: the block of %.3f s (workload's clock) ending at "
                                    "%.1f is in no sample within %.0f s of its end: %s"
                                    % (metric, self.node.pid, truth, e, w_end - e,
                                       [(round(t - e, 1), v) for t, v in samples
                                        if s - SCRAPE_S <= t <= w_end + SCRAPE_S]))
        panels = []
        for fname, d in load_dashboards():
            vals = self.var_values(d, self.node_values())
            for title, ref, expr in dashboard_targets(d):
                # the worst-block targets of such panels (a table's other
                # columns are the checks of the other tests)
                m = re.search(r"(stallwatch|nodejs)_eventloop_delay_max_seconds", expr)
                if title.startswith("Worst block") and m:
                    panels.append((fname, title, expr, resolve(expr, vals), m.group(0)))
        self.assertTrue(panels, "no panel titled \"Worst block...\" in %s" % DASHBOARDS)
        window = STEP_S + 2 * SCRAPE_S + AGENT_INTERVAL_S
        for fname, title, expr, q, metric in panels:
            r = self.prom.query_range(q, self.range_start(), self.t_end)
            self.assertTrue(ok_result(r), "%s: %s: %s: %s" % (fname, title, expr, r))
            mine = self.own_series(result_of(r), self.node_values())
            if len(mine) != 1:
                problems.append("%s: panel %r (%s): %d series of the Node loop: %s"
                                % (fname, title, expr, len(mine), [x["metric"] for x in mine]))
                continue
            pts = [(float(t), float(v)) for t, v in mine[0]["values"]]
            for p, v in pts:
                want = max([x for t, x in raws[metric] if p - STEP_S < t <= p], default=None)
                if want is not None and v < want - 1e-9:
                    problems.append("%s: panel %r (%s) at %.0f: %.4f, below the gauge's sample "
                                    "%.4f of that step: it loses samples" % (
                                        fname, title, expr, p, v, want))
            for b, truth, s, e, w_end in windows:
                near = [(t, v) for t, v in pts if e <= t <= e + window]
                log("%s: %s: block of %.3f s ending %.1f: %s" % (
                    fname, title, truth, e, ["+%.1fs: %.3f" % (t - e, v) for t, v in near]))
                if not near or max(v for _, v in near) < truth - tol:
                    problems.append(
                        "%s: panel %r (%s): block of %.3f s (workload's clock) ending at %.1f "
                        "not seen: points within %d s of its end %s" % (
                            fname, title, expr, truth, e, window,
                            ["+%.1fs: %.4f" % (t - e, v) for t, v in near]))
        if problems:
            self.fail("\n".join(problems) + "\n" + self.agent_view())

    def agent_view(self):
        pairs = [(b, swtest.overlap_incident(b, self.incidents)) for b in self.blocks]
        return "what the agents measured of each block:\n" + swtest.block_table(pairs)

    def test_06_histogram_sees_blocks(self):
        """Every block is in the delay histogram's bucket of its length: the
        count above the bucket below it grows between the last sample before
        the block and the end of its window (nothing else that long happens
        there). And the percentile panels, at quantile 1, reach that bucket
        at the 30 s step within the worst-block window."""
        tol = TOL_NS / 1e9
        sel = "stallwatch_eventloop_delay_seconds_bucket{pid=\"%d\"}" % self.node.pid
        raw, sets = {}, set()
        for k, v in self.raw(sel).items():  # label sets merged: test_09 judges them
            raw.setdefault(dict(k)["le"], []).extend(v)
            sets.add(tuple(x for x in k if x[0] != "le"))
        raw = {k: sorted(v) for k, v in raw.items()}
        les = sorted(float(le) for le in raw if le != "+Inf")
        self.assertTrue(les and "+Inf" in raw, "no delay histogram of the Node loop: %s"
                        % sorted(raw))
        windows = self.block_windows()
        problems = []
        if len(sets) > 1:
            problems.append("the Node loop's histogram has %d label sets (test_09): a panel "
                            "selecting one misses the blocks of the others: %s"
                            % (len(sets), [dict(k) for k in sets]))

        def increase(samples, t0, t1):
            """Prometheus's increase() without extrapolation: resets counted."""
            vs = [v for t, v in samples if t0 <= t <= t1]
            return sum((b - a) if b >= a else b for a, b in zip(vs, vs[1:]))

        def floor_of(truth):
            return max([le for le in les if le < truth - tol], default=0.0)

        for b, truth, s, e, w_end in windows:
            fl = floor_of(truth)
            key = [k for k in raw if k != "+Inf" and float(k) == fl]
            before = [t for t, _ in raw["+Inf"] if t < s]
            if not before:
                problems.append("no histogram sample before the block at %.1f" % s)
                continue
            t0 = before[-1]
            n_inf = increase(raw["+Inf"], t0, w_end)
            n_le = increase(raw[key[0]], t0, w_end) if key else 0.0
            log("histogram: block of %.3f s: %d iterations above %g s between %.1f s before it "
                "and %.1f s after its end" % (truth, n_inf - n_le, fl, s - t0, w_end - e))
            if n_inf - n_le < 1:
                problems.append("the block of %.3f s (workload's clock) ending at %.1f is not in "
                                "%s above le=%g within %.0f s of its end (+Inf grew %g, le %g)"
                                % (truth, e, sel, fl, w_end - e, n_inf, n_le))
        panels = []
        for fname, d in load_dashboards():
            vals = self.var_values(d, self.node_values())
            for title, ref, expr in dashboard_targets(d):
                if "histogram_quantile" in expr and "stallwatch_eventloop_delay_seconds_bucket" in expr:
                    q = re.sub(r"histogram_quantile\(\s*[^,]+,", "histogram_quantile(1,",
                               resolve(expr, vals))
                    if q not in [x[3] for x in panels]:
                        panels.append((fname, title, expr, q, resolve(expr, vals)))
        self.assertTrue(panels, "no panel plots histogram_quantile() of "
                        "stallwatch_eventloop_delay_seconds_bucket in %s" % DASHBOARDS)
        window = STEP_S + 2 * SCRAPE_S + AGENT_INTERVAL_S
        for fname, title, expr, q, as_is_q in panels:
            r = self.prom.query_range(q, self.range_start(), self.t_end)
            self.assertTrue(ok_result(r), "%s: %s: %s: %s" % (fname, title, q, r))
            mine = self.own_series(result_of(r), self.node_values())
            # what the panel plots, for the record: a percentile of
            # thousands of 5 ms ticks does not show one block; the worst-
            # block panels do
            orig = self.own_series(result_of(self.prom.query_range(
                as_is_q, self.range_start(), self.t_end)), self.node_values())
            for b, truth, s, e, w_end in windows:
                fl = floor_of(truth)
                pts = self.points(mine, e, e + window)
                log("%s: %s: block %.3f s: quantile 1 %s; as the panel plots it %s" % (
                    fname, title, truth, [round(v, 3) for _, v in pts],
                    [round(v, 4) for _, v in self.points(orig, e, e + window)]))
                if not any(v > fl for _, v in pts):
                    problems.append("%s: panel %r: the histogram misses the block of %.3f s "
                                    "ending at %.1f (bucket above %g s): histogram_quantile(1) "
                                    "points %s\n  query: %s" % (
                                        fname, title, truth, e, fl,
                                        ["+%.1fs: %.4f" % (t - e, v) for t, v in pts], q))
        self.assertFalse(problems, "\n".join(problems))

    def test_07_stuck_alert(self):
        """The "loop stuck right now" rule is true during the long block and
        Prometheus made an alert of it (pending or firing)."""
        self.assertTrue(self.stuck_rules, "no rule on stallwatch_eventloop_blocked_ongoing_seconds "
                        "(the \"loop stuck right now\" alert) in %s" % rule_files())
        long_b = [b for b in self.blocks if b["ms"] == self.long_ms]
        self.assertEqual(len(long_b), 1, self.blocks)
        s, e = wall(long_b[0]["start_ns"]), wall(long_b[0]["end_ns"])
        for fname, group, name, expr, for_s in self.stuck_rules:
            r = self.prom.query_range(expr, s, e + 2 * SCRAPE_S + AGENT_INTERVAL_S, SCRAPE_S)
            self.assertTrue(ok_result(r), r)
            self.assertTrue(self.own_series(result_of(r), self.node_values()),
                            "%s: %s/%s (%s) never true for the Node loop during its %.1f s "
                            "block: %s" % (fname, group, name, expr, (e - s),
                                           result_of(r)))
            a = self.prom.query_range("ALERTS{alertname=\"%s\"}" % name, s,
                                      e + 3 * SCRAPE_S + AGENT_INTERVAL_S, SCRAPE_S)
            states = {x["metric"].get("alertstate") for x in result_of(a)}
            log("stuck alert %s (for %ss): %s" % (name, for_s, sorted(states)))
            self.assertTrue(states, "Prometheus made no alert (pending or firing) of %s during "
                            "the %.1f s block" % (name, e - s))

    def test_08_agent_restart(self):
        """The restart: data again within two scrapes of the new agent's first
        report, a counter reset on the same label set, the old agent's
        series gone within two scrapes."""
        self.assertEqual(self.old_agent_rc, 0, "the old agent's exit after SIGTERM")
        # iterations flow again
        r = result_of(self.rate_after_restart)
        self.assertTrue(r and all(float(s["value"][1]) > 0 for s in r),
                        "rate(iterations_total[10s]) of the Node loop two scrapes after the new "
                        "agent's first report (%.1f s after SIGTERM): %s"
                        % (self.first_report[1].t1 - self.t_sigterm, r))
        t1_lo = self.first_report[0].t0
        new = [(float(t), float(v)) for s in result_of(self.samples_after_restart)
               for t, v in s["values"] if float(t) > t1_lo and float(v) < self.iters_before]
        self.assertGreaterEqual(len(new), 2, "two scrapes of the new agent's iterations by "
                                "then: %s" % result_of(self.samples_after_restart))
        self.assertGreater(new[-1][1], new[0][1], "iterations not growing: %s" % new)
        # the old agent's own series (agent label) end within two scrapes of
        # its replacement: once it has exited and its successor connected
        # (until then it may be shown down, docs/METRICS.md)
        seen = [f.t1 for f in self.scraper.snapshot()
                if f.t0 >= self.t_sigterm and self.new_agent_id in f.agents]
        self.assertTrue(seen, "our scraper never saw the new agent %s" % self.new_agent_id)
        replaced = max(self.t_old_gone, seen[0])
        r = self.prom.query("{agent=\"%s\"}[%ds]" % (self.old_agent_id, RANGE_S), self.t_end)
        self.assertTrue(ok_result(r), r)
        old = result_of(r)
        self.assertTrue(old, "no series of the old agent %s at all" % self.old_agent_id)
        last = max(float(t) for s in old for t, _ in s["values"])
        log("old agent's series: last sample %.2f s after it exited and its successor "
            "connected" % (last - replaced))
        self.assertLess(last, replaced + 2 * SCRAPE_S,
                        "the old agent's series (%s) have samples %.1f s after it exited and "
                        "its successor connected" % (self.old_agent_id, last - replaced))
        now = result_of(self.prom.query("{agent=\"%s\"}" % self.old_agent_id, self.t_end))
        self.assertFalse(now, "the old agent's series are still in Prometheus: %s" % now)
        # between the old agent's end and the new one's first report, the
        # Node loop's series were gone (not frozen at their last values)
        gap_lo, gap_hi = self.t_old_gone + 2 * SCRAPE_S, t1_lo
        if gap_hi > gap_lo:
            r = result_of(self.prom.query("{pid=\"%d\"}[%ds]" % (self.node.pid, RANGE_S),
                                          self.t_end))
            frozen = sorted({(s["metric"]["__name__"], float(t)) for s in r
                             for t, _ in s["values"] if gap_lo <= float(t) <= gap_hi})
            self.assertFalse(frozen, "the Node loop's series were scraped while no agent "
                             "watched it (%.1f-%.1f s after SIGTERM): %s"
                             % (gap_lo - self.t_sigterm, gap_hi - self.t_sigterm, frozen[:5]))
        else:
            log("NOTE: the new agent reported %.2f s after the old one exited: no gap to "
                "check for frozen series" % (t1_lo - self.t_old_gone))

    def test_09_one_series_per_measurement(self):
        """Across the whole test (restart included), a loop's measurement
        (metric, host, pid, tid and its own labels: le, pattern, state...)
        is one label set; and at no evaluation time does Prometheus hold two
        series of one measurement."""
        r = self.prom.series("{pid!=\"\"}", self.t_begin - 60, self.t_end)
        self.assertTrue(ok_result(r), r)
        groups = {}
        for s in r["data"]:
            key = tuple(s.get(k, "") for k in MEASUREMENT_LABELS)
            groups.setdefault(key, set()).add(tuple(sorted(s.items())))
        split = {k: v for k, v in groups.items() if len(v) > 1}
        self.assertTrue(groups, "no series with a pid label")
        self.assertFalse(split, "one measurement, several label sets (%d): %s" % (
            len(split), "\n".join("%s: %s" % (k, sorted(v)) for k, v in list(split.items())[:5])))
        # the metric name as a label: max_over_time() drops __name__
        by = ", ".join(["metric"] + list(MEASUREMENT_LABELS[1:]))
        expr = ("max_over_time((count by (%s) (label_replace({pid!=\"\"}, \"metric\", \"$1\", "
                "\"__name__\", \"(.+)\")))[%ds:%ds])"
                % (by, int(self.t_end - self.t_begin) + 1, SCRAPE_S))
        r = self.prom.query(expr, self.t_end)
        self.assertTrue(ok_result(r), r)
        self.assertTrue(result_of(r), "no data: " + expr)
        over = [s for s in result_of(r) if float(s["value"][1]) > 1]
        self.assertFalse(over, "%s > 1: %s" % (expr, over[:5]))

    def test_10_no_duplicates_on_any_exposition(self):
        fs = self.scraper.snapshot()
        self.assertGreater(len(fs), 10, "our scraper fetched /metrics only %d times: %s"
                           % (len(fs), self.scraper.errors[-3:]))
        self.assertFalse(self.scraper.problems, "exposition not in the text format:\n%s"
                         % "\n".join(self.scraper.problems[:10]))
        self.assertFalse(self.scraper.duplicates, "one label set twice in an exposition "
                         "(%d times): %s" % (len(self.scraper.duplicates),
                                             self.scraper.duplicates[:5]))
        self.assertFalse(self.scraper.errors, "scrapes of /metrics failed: %s"
                         % self.scraper.errors[:5])
        log("our scraper: %d expositions, no duplicates" % len(fs))

    def test_11_prometheus_counters(self):
        """Prometheus dropped nothing: no sample with a duplicate timestamp
        (two values for one series in a scrape), none out of order, and
        every scrape succeeded."""
        for name in ("prometheus_target_scrapes_sample_duplicate_timestamp_total",
                     "prometheus_target_scrapes_sample_out_of_order_total",
                     "prometheus_target_scrapes_sample_out_of_bounds_total"):
            v = self.prom.own_counter(name)
            self.assertEqual(v, 0, "%s = %s" % (name, v))
        r = self.prom.query("up{job=\"stallwatch\"}[%ds]" % RANGE_S, self.t_end)
        vals = [float(v) for s in result_of(r) for _, v in s["values"]]
        self.assertTrue(vals and all(v == 1 for v in vals),
                        "scrapes of the collector failed: up = %s" % vals)

    def test_12_exited_process(self):
        """The exited process's series end within the agent's interval and
        two scrapes of its exit; its exit is counted and visible to
        increase()."""
        pid = self.exiting.pid
        r = result_of(self.prom.query("{pid=\"%d\"}[%ds]" % (pid, RANGE_S), self.t_end))
        self.assertTrue(r, "the exiting process (pid %d) never had series" % pid)
        last = max(float(t) for s in r for t, _ in s["values"])
        log("exited pid %d: last sample %.2f s after its exit" % (pid, last - self.exit_wall))
        self.assertLess(last, self.exit_wall + AGENT_INTERVAL_S + 2 * SCRAPE_S,
                        "pid %d exited at %.1f; its series have samples until %.1f s later"
                        % (pid, self.exit_wall, last - self.exit_wall))
        self.assertFalse(result_of(self.prom.query("{pid=\"%d\"}" % pid, self.t_end)),
                         "the exited process's series are still current")
        # our scraper: after the agent reported the exit, at most the
        # exposition it may have fetched meanwhile and the one with the final
        # values show the process; and once gone, it never comes back
        after = [f for f in self.scraper.snapshot() if f.t0 > self.t_exit_reported]
        shown = [i for i, f in enumerate(after) if str(pid) in f.pids]
        self.assertTrue(shown == list(range(len(shown))) and len(shown) <= 2,
                        "our scraper saw pid %d's series in %d expositions after the agent "
                        "reported its exit (at +%s s)" % (
                            pid, len(shown), ["%.1f" % (after[i].t0 - self.t_exit_reported)
                                              for i in shown]))
        who = self.labels_of(pid)
        sel = "stallwatch_process_exits_total{host=\"%s\",service=\"%s\",runtime=\"%s\"}" % (
            who["host"], who["service"], who["runtime"])
        r = result_of(self.prom.query("%s[%ds]" % (sel, RANGE_S), self.t_end))
        grown = {s["metric"].get("cause"): float(s["values"][-1][1]) - float(s["values"][0][1])
                 for s in r}
        log("exits of %s by cause over the test: %s" % (who["service"], grown))
        counted = ["%s %s" % (s["metric"], s["value"][1]) for s in result_of(self.prom.query(
            "stallwatch_process_exits_total > 0", self.t_end))]
        self.assertEqual(sum(grown.values()), 1,
                         "%s: one exit should be an increase of 1 that increase() can see (a "
                         "series born at 1 is not): %s\nexits counted at the end: %s"
                         % (sel, {s["metric"].get("cause"): (s["values"][0], s["values"][-1])
                                  for s in r}, counted))

    def test_13_identity_labels(self):
        """The Node loop's series carry the identity of docs/METRICS.md."""
        r = result_of(self.prom.query("stallwatch_eventloop_iterations_total{pid=\"%d\"}"
                                      % self.node.pid, self.t_end))
        self.assertEqual(len(r), 1, r)
        m = r[0]["metric"]
        want = {"host": self.host, "service": SERVICES["node"], "runtime": "node",
                "runtime_version": self.node.ready["version"].lstrip("v"),
                "pid": str(self.node.pid), "tid": str(self.node.ready["tid"]), "role": "main"}
        self.assertEqual({k: m.get(k) for k in want}, want, m)

    def test_14_promtool(self):
        promtool = self.promtool_bin
        for f in rule_files():
            p = subprocess.run([promtool, "check", "rules", f], capture_output=True, text=True,
                               timeout=60)
            out = p.stdout + p.stderr
            self.assertTrue(p.returncode == 0 and "SUCCESS" in out and
                            not re.search(r"WARN|FAIL", out), "promtool check rules %s: rc %d\n%s"
                            % (f, p.returncode, out))
        self.assertTrue(self.exposition, "no exposition fetched")
        p = subprocess.run([promtool, "check", "metrics"], input=self.exposition,
                           capture_output=True, text=True, timeout=60)
        remarks = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
        left = [ln for ln in remarks if not any(k in ln for k in PROMTOOL_METRICS_ALLOWED)]
        self.assertFalse(left or (p.returncode != 0 and not remarks),
                         "promtool check metrics: rc %d\n%s" % (p.returncode, "\n".join(left)))


    def test_15_https_and_token(self):
        """Prometheus scraped https:// with the token, the certificate
        verified against the test CA: every scrape up (test_11), none
        refused by the collector, no failed handshake; without the token
        the same port says 401."""
        targets = self.prom.api("/api/v1/targets")["data"]["activeTargets"]
        ours = [t for t in targets if t["labels"].get("job") == "stallwatch"]
        self.assertEqual(len(ours), 1, targets)
        self.assertTrue(ours[0]["scrapeUrl"].startswith("https://127.0.0.1:"), ours[0])
        self.assertEqual(ours[0]["health"], "up", ours[0])
        m = swtls.parse_metrics(self.exposition)
        self.assertEqual(m[swtls.UNAUTHORIZED], 0, "the collector refused a scrape")
        self.assertEqual(m[swtls.TLS_FAILED], 0, "a TLS handshake failed")
        scrapers = m.get("stallwatch_collector_scrapers", 0)
        self.assertGreaterEqual(scrapers, 2, "Prometheus and our scraper")
        st, h, _ = swtls.request(self.http, "/metrics", ctx=self.pki.context())
        self.assertEqual((st, h.get("www-authenticate")), (401, 'Bearer realm="stallwatch"'))
        log("Prometheus scraped %s (last scrape %s s); the collector refused 0 of its "
            "scrapes" % (ours[0]["scrapeUrl"], ours[0].get("lastScrapeDuration")))


def main():
    if yaml is None:
        msg = "python3-yaml missing (scripts/install-deps.sh installs it): the rules are YAML"
        print("%s: test_prometheus: %s" % ("FAIL" if swtest.CI else "SKIP", msg), flush=True)
        sys.exit(1 if swtest.CI else swtest.SKIP)
    PrometheusScenario.prom_bin = tool_or_skip("prometheus")
    PrometheusScenario.promtool_bin = tool_or_skip("promtool")
    swtls.need_openssl("test_prometheus")
    t0 = time.monotonic()
    try:
        swtest.main("test_prometheus")
    finally:
        log("test_prometheus: %.1f s wall" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
