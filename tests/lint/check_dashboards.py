#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Static checks of dashboards/*.json and dashboards/stallwatch-alerts.yml.

Needs neither root nor a running Prometheus (tests/root/ has the tests that
run every query against one); catches what an import into Grafana or a
Prometheus reload would show too late:

- each dashboard: schemaVersion >= 38, a unique uid, a `datasource`
  variable (type datasource, query prometheus) used by every panel and
  target, the `host`, `service`, `runtime` (and `pid` where a dashboard
  declares it) variables as multi-value label_values() queries with
  includeAll and allValue ".*", unique panel ids, links that carry the
  variables;
- each query: every metric name is one of the collector's (the contract of
  issue 8, docs/METRICS.md, kept in CONTRACT below; agent counters from
  common/health.h), selectors of per-process series filter on the
  dashboard's variables with =~, and the legend names every label of the
  outermost aggregation's grouping and no label the query cannot have, so
  no two series share a legend;
- PromQL syntax: every expression, variables resolved ($host... -> ".*",
  $__rate_interval -> 1m, $__interval -> 30s, $__range -> 1h), goes into a
  temporary rule file as a recording rule for `promtool check rules`, as
  does the left side of every alert (each alert is "<query> <op> <number>");
  then `promtool check rules` on the alert file and `promtool check config`
  on the scrape config.

Prints one line per problem and exits 1; exits 77 (skip) without promtool
unless SW_CI=1. Usage: check_dashboards.py [DASHBOARD_DIR] (default: the
repository's dashboards/); check_dashboards.py --self-test runs the checks on
a copy of dashboards/ with known faults and fails unless each is reported.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))

# ---------------------------------------------------------------- contract
# What the collector exports after issue 8 (docs/METRICS.md). Kinds say
# which identity labels a series has, hence which variables filter it.
LOOP, PROC, EXITS, AGENT, COLLECTOR, PROM = "loop", "proc", "exits", "agent", "collector", "prom"
IDENTITY = ["host", "service", "runtime", "runtime_version", "container_id", "container",
            "pod_uid", "pod", "pid"]
KIND_LABELS = {
    LOOP: IDENTITY + ["tid", "role"],
    PROC: IDENTITY,
    EXITS: ["host", "service", "runtime", "cause"],
    AGENT: ["host", "agent"],
    COLLECTOR: [],
    PROM: [],
}
# Prometheus adds these to every scraped series.
TARGET_LABELS = ["job", "instance"]

CONTRACT = {}


def _add(kind, names, extra=()):
    for n in names.split():
        CONTRACT[n] = (kind, list(extra))


for _h in ("bucket", "sum", "count"):
    _add(LOOP, "stallwatch_eventloop_delay_seconds_" + _h, ["le"] if _h == "bucket" else [])
_add(LOOP, """stallwatch_eventloop_delay_max_seconds stallwatch_eventloop_utilization_ratio
    stallwatch_eventloop_iterations_total stallwatch_eventloop_blocked_ongoing_seconds
    stallwatch_eventloop_oncpu_seconds_total stallwatch_eventloop_offcpu_seconds_total
    stallwatch_eventloop_runq_seconds_total stallwatch_eventloop_cpu_share_ratio
    nodejs_eventloop_utilization_ratio""")
_add(LOOP, "stallwatch_eventloop_time_seconds_total", ["state"])
_add(LOOP, "nodejs_eventloop_time_seconds_total", ["nodejs_eventloop_state"])
_add(LOOP, "stallwatch_eventloop_blocked_total stallwatch_eventloop_blocked_seconds_total",
     ["pattern"])
_add(LOOP, " ".join("nodejs_eventloop_delay_%s_seconds" % s
                    for s in ("min", "max", "mean", "stddev", "p50", "p90", "p99")))
_add(PROC, """stallwatch_process_resident_bytes stallwatch_process_memory_growth_bytes_per_second
    stallwatch_python_gil_wait_seconds_total stallwatch_python_gil_hold_seconds_total
    stallwatch_python_gil_acquisitions_total stallwatch_python_gil_drop_requests_total
    stallwatch_python_gil_forced_switches_total stallwatch_python_gil_switches_total
    stallwatch_python_gil_intervals_total stallwatch_python_gil_waiting_threads
    stallwatch_python_gil_switch_interval_seconds stallwatch_python_gil_measured
    stallwatch_python_gil_utilization_ratio stallwatch_python_gil_contention_ratio
    stallwatch_python_gil_loop_wait_share_ratio""")
_add(PROC, "stallwatch_python_gil_flagged_intervals_total", ["pattern"])
_add(PROC, """stallwatch_python_gil_thread_wait_seconds_total
    stallwatch_python_gil_thread_hold_seconds_total""", ["thread"])
_add(EXITS, "stallwatch_process_exits_total")
_add(AGENT, "stallwatch_agent_up")
_add(COLLECTOR, """stallwatch_collector_connections stallwatch_collector_connections_refused_total
    stallwatch_collector_frames_total stallwatch_collector_incidents_dropped_total
    stallwatch_collector_batches_gap_total stallwatch_collector_batches_duplicate_total
    stallwatch_collector_loops
    stallwatch_collector_loops_limit stallwatch_collector_scrapers
    stallwatch_collector_duplicate_loops""")
_add(COLLECTOR, """stallwatch_collector_bad_frames_total stallwatch_collector_series_dropped_total
    stallwatch_collector_connections_closed_total""", ["reason"])
_add(PROM, "up")


def load_agent_counters():
    """stallwatch_agent_<name>_total for every X(name, ...) of common/health.h,
    the one list the agent and collector iterate."""
    path = os.path.join(SOURCE, "common", "health.h")
    try:
        text = open(path).read()
    except OSError as e:
        return "cannot read %s: %s" % (path, e)
    names = re.findall(r"^\s*X\((\w+),", text, re.M)
    if not names:
        return "no X(name, help) lines in %s" % path
    for n in names:
        CONTRACT["stallwatch_agent_%s_total" % n] = (AGENT, [])
    return None


# ---------------------------------------------------------------- PromQL
class ParseError(Exception):
    pass


AGGS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
KEEP_INPUT_LABELS = {"topk", "bottomk", "limitk", "limit_ratio"}
SET_OPS = {"and", "or", "unless"}
CMP_OPS = {"==", "!=", ">", "<", ">=", "<="}
PREC = [("or",), ("and", "unless"), ("==", "!=", ">", "<", ">=", "<="), ("+", "-"),
        ("*", "/", "%", "atan2"), ("^",)]
TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<dur>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+|[iI]nf|[nN]a[nN])(?![\w.])
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<id>[a-zA-Z_][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|==|!=|<=|>=|[-+*/%^<>=(){}\[\],:@])
""", re.X)
ALL = None  # label set unknown: a raw selector, all its labels


class Expr:
    def __init__(self, labels, scalar=False):
        self.labels = labels   # set of label names, or ALL
        self.scalar = scalar


def tokenize(s):
    out, i = [], 0
    while i < len(s):
        m = TOKEN.match(s, i)
        if not m:
            raise ParseError("unexpected %r at %d" % (s[i:i + 10], i))
        i = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    out.append(("eof", ""))
    return out


class Parser:
    """Just enough PromQL to know each expression's metric names, its
    selectors' matchers and the label set of its result."""

    def __init__(self, text):
        self.t = tokenize(text)
        self.i = 0
        self.selectors = []   # (metric, {label: (op, value)})

    def peek(self, k=0):
        return self.t[self.i + k]

    def take(self, want=None):
        tok = self.t[self.i]
        if want is not None and tok[1] != want:
            raise ParseError("expected %r, got %r" % (want, tok[1]))
        self.i += 1
        return tok

    def parse(self):
        e = self.expr(0)
        if self.peek()[0] != "eof":
            raise ParseError("trailing %r" % self.peek()[1])
        return e

    def expr(self, level):
        if level == len(PREC):
            return self.unary()
        lhs = self.expr(level + 1)
        while self.peek()[1] in PREC[level] and self.peek()[0] in ("op", "id"):
            op = self.take()[1]
            bool_ = False
            if self.peek()[1] == "bool":
                self.take()
                bool_ = True
            on = ign = None
            group = None
            if self.peek()[1] in ("on", "ignoring"):
                kind = self.take()[1]
                names = self.labels()
                on, ign = (names, None) if kind == "on" else (None, names)
            if self.peek()[1] in ("group_left", "group_right"):
                gk = self.take()[1]
                gl = self.labels() if self.peek()[1] == "(" else []
                group = (gk, gl)
            # ^ is right-associative
            rhs = self.expr(level if op == "^" else level + 1)
            lhs = self.binary(op, lhs, rhs, bool_, on, ign, group)
        return lhs

    @staticmethod
    def binary(op, lhs, rhs, bool_, on, ign, group):
        if lhs.scalar and rhs.scalar:
            return Expr(set(), True)
        if lhs.scalar:
            return Expr(rhs.labels)
        if rhs.scalar:
            return Expr(lhs.labels)
        if op in SET_OPS:
            if op == "or":
                if lhs.labels is ALL or rhs.labels is ALL:
                    return Expr(ALL)
                return Expr(lhs.labels | rhs.labels)
            return Expr(lhs.labels)
        if group:
            side = lhs if group[0] == "group_left" else rhs
            if side.labels is ALL:
                return Expr(ALL)
            return Expr(side.labels | set(group[1]))
        if op in CMP_OPS and not bool_:
            return Expr(lhs.labels)   # a filter: the left side's series
        if on is not None:
            return Expr(set(on))
        if lhs.labels is ALL:
            return Expr(ALL)
        return Expr(lhs.labels - set(ign or []))

    def unary(self):
        if self.peek()[1] in ("-", "+"):
            self.take()
            return self.unary()
        return self.postfix(self.primary())

    def postfix(self, e):
        while True:
            v = self.peek()[1]
            if v == "[":
                self.take()
                self.take_dur()
                if self.peek()[1] == ":":
                    self.take()
                    if self.peek()[1] != "]":
                        self.take_dur()
                self.take("]")
            elif v == "offset":
                self.take()
                if self.peek()[1] == "-":
                    self.take()
                self.take_dur()
            elif v == "@":
                self.take()
                self.take()
                if self.peek()[1] == "(":
                    self.take("(")
                    self.take(")")
            else:
                return e

    def take_dur(self):
        k, v = self.take()
        if k not in ("dur", "num"):
            raise ParseError("expected a duration, got %r" % v)

    def labels(self):
        self.take("(")
        names = []
        while self.peek()[1] != ")":
            k, v = self.take()
            if k != "id":
                raise ParseError("expected a label name, got %r" % v)
            names.append(v)
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return names

    def args(self):
        self.take("(")
        out = []
        while self.peek()[1] != ")":
            out.append(self.expr(0))
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return out

    def primary(self):
        k, v = self.peek()
        if k in ("num", "dur"):
            self.take()
            return Expr(set(), True)
        if k == "str":
            self.take()
            return Expr(set(), True)
        if v == "(":
            self.take()
            e = self.expr(0)
            self.take(")")
            return e
        if v == "{":
            return self.selector(None)
        if k != "id":
            raise ParseError("unexpected %r" % v)
        if v in AGGS and self.peek(1)[1] in ("(", "by", "without"):
            return self.aggregation()
        if self.peek(1)[1] == "(":
            return self.call()
        self.take()
        return self.selector(v)

    def aggregation(self):
        op = self.take()[1]
        grouping = None
        if self.peek()[1] in ("by", "without"):
            grouping = (self.take()[1], self.labels())
        args = self.args()
        if self.peek()[1] in ("by", "without"):
            grouping = (self.take()[1], self.labels())
        if not args:
            raise ParseError("%s() without an argument" % op)
        inner = args[-1]
        if op in KEEP_INPUT_LABELS:
            return Expr(inner.labels)
        if grouping is None:
            return Expr(set())
        kind, names = grouping
        if kind == "by":
            return Expr(set(names))
        if inner.labels is ALL:
            return Expr(ALL)
        return Expr(inner.labels - set(names))

    def call(self):
        fn = self.take()[1]
        args = self.args()
        vec = [a for a in args if not a.scalar]
        if fn in ("time", "pi", "scalar") or fn.startswith("day_") or \
                (fn in ("hour", "minute", "month", "year", "days_in_month",
                        "day_of_week", "day_of_month", "day_of_year") and not vec):
            return Expr(set(), True)
        if fn == "vector":
            return Expr(set())
        if fn in ("absent", "absent_over_time"):
            return Expr(set())
        if not vec:
            raise ParseError("%s() without a vector argument" % fn)
        labels = vec[0].labels
        if fn == "histogram_quantile":
            return Expr(ALL if labels is ALL else labels - {"le"})
        if fn in ("label_replace", "label_join"):
            return Expr(ALL if labels is ALL else labels | {"?"})
        return Expr(labels)

    def selector(self, metric):
        matchers = {}
        if self.peek()[1] == "{":
            self.take()
            while self.peek()[1] != "}":
                k, name = self.take()
                if k != "id":
                    raise ParseError("expected a label name, got %r" % name)
                op = self.take()[1]
                if op not in ("=", "!=", "=~", "!~"):
                    raise ParseError("bad matcher operator %r" % op)
                k, val = self.take()
                if k != "str":
                    raise ParseError("expected a string, got %r" % val)
                matchers[name] = (op, val[1:-1])
                if self.peek()[1] == ",":
                    self.take()
            self.take("}")
        names = [metric] if metric else []
        if "__name__" in matchers:
            op, val = matchers["__name__"]
            names = val.split("|") if op in ("=", "=~") else []
        self.selectors.append((names, matchers))
        return Expr(ALL)


# ---------------------------------------------------------------- checks
TIME_VARS = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "1h"}
LABEL_VARS = ("host", "service", "runtime", "pid")
DS = {"type": "prometheus", "uid": "${datasource}"}
LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_]\w*)\s*\}\}")


def resolve_time(expr):
    for k in sorted(TIME_VARS, key=len, reverse=True):
        expr = expr.replace(k, TIME_VARS[k])
    return expr


def resolve_all(expr):
    expr = resolve_time(expr)
    for v in LABEL_VARS:
        expr = re.sub(r"\$\{%s(?::\w+)?\}|\$%s\b" % (v, v), ".*", expr)
    return expr


class Checker:
    def __init__(self):
        self.problems = []
        self.promql = []   # (where, resolved expression)

    def bad(self, where, msg):
        self.problems.append("%s: %s" % (where, msg))

    def query(self, where, expr, legend, dash_vars, check_legend=True, filters=True):
        """One target's expression: metric names, variable filters, legend."""
        self.promql.append((where, resolve_all(expr)))
        left = set(re.findall(r"\$\{?(\w+)", expr)) - {"__rate_interval", "__interval", "__range"}
        for v in left - set(dash_vars or []):
            self.bad(where, "uses $%s, which the dashboard does not define" % v)
        try:
            p = Parser(resolve_time(expr))
            e = p.parse()
        except ParseError as ex:
            self.bad(where, "cannot parse %r: %s" % (expr, ex))
            return
        for names, matchers in p.selectors:
            if not names:
                self.bad(where, "a selector without a metric name")
            for n in names:
                if n not in CONTRACT:
                    self.bad(where, "metric %s is not one the collector exports "
                             "(the docs/METRICS.md contract)" % n)
                    continue
                kind = CONTRACT[n][0]
                if dash_vars is None or not filters:
                    continue   # alert rules, variable queries: no filter asked
                need = []
                if kind in (LOOP, PROC, EXITS):
                    need = ["host", "service", "runtime"]
                    if kind != EXITS and "pid" in dash_vars:
                        need.append("pid")
                elif kind == AGENT:
                    need = ["host"]
                for v in need:
                    if matchers.get(v) != ("=~", "$" + v):
                        self.bad(where, '%s: selector lacks %s=~"$%s"' % (n, v, v))
        if not check_legend:
            return
        if e.scalar:
            return
        used = LEGEND_LABEL.findall(legend or "")
        if e.labels is ALL:
            self.bad(where, "the query returns its series' own label sets; aggregate "
                     "(max by (...), sum by (...)) so the legend can name each series")
            return
        # a label the query's metrics cannot carry, or that the grouping drops
        possible = set(e.labels) - {"?"}
        for lab in used:
            if lab not in possible and "?" not in e.labels:
                self.bad(where, "legend {{%s}}: the query's result has no label %s "
                         "(its labels: %s)" % (lab, lab, ", ".join(sorted(possible)) or "none"))
        for lab in sorted(possible):
            if lab not in used:
                self.bad(where, "legend %r does not name label %s of the grouping: "
                         "two series could share a legend" % (legend, lab))
        known = set(TARGET_LABELS)
        for names, _ in p.selectors:
            for n in names:
                if n not in CONTRACT:
                    return   # said above
                known |= set(KIND_LABELS[CONTRACT[n][0]]) | set(CONTRACT[n][1])
        for lab in sorted(possible - known):
            self.bad(where, "groups by %s, which none of its metrics has" % lab)

    def dashboard(self, path, uids):
        name = os.path.basename(path)
        try:
            d = json.load(open(path))
        except (OSError, ValueError) as e:
            self.bad(name, "cannot load: %s" % e)
            return
        if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 38:
            self.bad(name, "schemaVersion %r: Grafana 10 needs 38 or later" % d.get("schemaVersion"))
        uid = d.get("uid")
        if not uid:
            self.bad(name, "no uid")
        elif uid in uids:
            self.bad(name, "uid %s is also %s's" % (uid, uids[uid]))
        else:
            uids[uid] = name
        if not d.get("title"):
            self.bad(name, "no title")
        tvars = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
        ds = tvars.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            self.bad(name, "no datasource variable (name datasource, type datasource, "
                     "query prometheus)")
        want = ["host", "service", "runtime"]
        # the drill-down is per process; others may add pid
        if "pid" in tvars or uid == "stallwatch-service":
            want.append("pid")
        for v in want:
            t = tvars.get(v)
            if not t:
                self.bad(name, "no $%s variable" % v)
                continue
            w = "%s: variable %s" % (name, v)
            if t.get("type") != "query":
                self.bad(w, "type %r, not query" % t.get("type"))
            if t.get("datasource") != DS:
                self.bad(w, "datasource %r, not %r" % (t.get("datasource"), DS))
            if not (t.get("multi") and t.get("includeAll") and t.get("allValue") == ".*"):
                self.bad(w, 'needs multi, includeAll and allValue ".*" (used as =~)')
            q = t.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q or "")
            if not m or m.group(2) != v:
                self.bad(w, "query %r is not label_values(<selector>, %s)" % (q, v))
            else:
                self.query(w, m.group(1), None, list(tvars), check_legend=False,
                           filters=False)
        links = d.get("links") or []
        if not any(lk.get("includeVars") and lk.get("keepTime") for lk in links):
            self.bad(name, "no dashboard link that carries the variables and time "
                     "(includeVars, keepTime)")
        ids = set()
        ntargets = 0
        panels = []

        def walk(ps):
            for p in ps:
                panels.append(p)
                walk(p.get("panels") or [])
        walk(d.get("panels") or [])
        for p in panels:
            pw = "%s: panel %r" % (name, p.get("title"))
            pid = p.get("id")
            if pid in ids:
                self.bad(pw, "id %r used twice" % pid)
            ids.add(pid)
            if "gridPos" not in p:
                self.bad(pw, "no gridPos")
            if p.get("type") == "row":
                if p.get("datasource") not in (None, DS):
                    self.bad(pw, "row datasource %r" % p.get("datasource"))
                continue
            if p.get("datasource") != DS:
                self.bad(pw, "datasource %r, not %r" % (p.get("datasource"), DS))
            targets = p.get("targets") or []
            if not targets:
                self.bad(pw, "no targets")
            legends = []
            for t in targets:
                tw = "%s target %s" % (pw, t.get("refId"))
                ntargets += 1
                if t.get("datasource") != DS:
                    self.bad(tw, "datasource %r, not %r" % (t.get("datasource"), DS))
                if not t.get("expr"):
                    self.bad(tw, "no expr")
                    continue
                legends.append(t.get("legendFormat"))
                self.query(tw, t["expr"], t.get("legendFormat"), list(tvars))
            if p.get("type") != "table" and len(set(legends)) != len(legends):
                self.bad(pw, "two targets with the same legend %r" % legends)
            worst = any("stallwatch_eventloop_delay_max_seconds" in t.get("expr", "")
                        for t in targets)
            if worst and not (p.get("title") or "").startswith("Worst block"):
                # the integration test finds the panels every block must be on so
                self.bad(pw, "plots stallwatch_eventloop_delay_max_seconds: its title must "
                         "begin with \"Worst block\"")
            if (p.get("title") or "").startswith("Worst block") and not any(
                    re.search(r"max_over_time\(stallwatch_eventloop_delay_max_seconds\{[^}]*\}"
                              r"\[\$__(rate_interval|interval|range)\]\)", t.get("expr", ""))
                    for t in targets):
                # a window per step (or the whole range) holds every block
                self.bad(pw, "a \"Worst block\" panel must take max_over_time of "
                         "stallwatch_eventloop_delay_max_seconds over $__interval, "
                         "$__rate_interval or $__range")
        return ntargets

    def alerts(self, path):
        name = os.path.basename(path)
        try:
            import yaml
        except ImportError:
            yaml = None
        if yaml is None:
            self.bad(name, "python3-yaml is missing (apt-get install python3-yaml)")
            return 0
        try:
            doc = yaml.safe_load(open(path))
        except (OSError, yaml.YAMLError) as e:
            self.bad(name, "cannot load: %s" % e)
            return 0
        dash_names = set()
        for p in glob.glob(os.path.join(os.path.dirname(path), "*.json")):
            try:
                dj = json.load(open(p))
                dash_names |= {dj.get("uid"), dj.get("title")}
            except (OSError, ValueError):
                pass
        n = 0
        seen = set()
        for g in doc.get("groups") or []:
            for r in g.get("rules") or []:
                n += 1
                aw = "%s: alert %s" % (name, r.get("alert"))
                if not r.get("alert"):
                    self.bad(aw, "not an alerting rule")
                    continue
                if r["alert"] in seen:
                    self.bad(aw, "name used twice")
                seen.add(r["alert"])
                for k in ("expr", "for"):
                    if not r.get(k):
                        self.bad(aw, "no %s" % k)
                if (r.get("labels") or {}).get("severity") not in ("info", "warning", "critical"):
                    self.bad(aw, "labels.severity must be info, warning or critical")
                ann = r.get("annotations") or {}
                for k in ("summary", "description", "runbook"):
                    if not ann.get(k):
                        self.bad(aw, "no annotations.%s" % k)
                rb = ann.get("runbook") or ""
                if not any(x and x in rb for x in dash_names):
                    self.bad(aw, "runbook names no dashboard (uid or title)")
                expr = " ".join(str(r.get("expr", "")).split())
                m = re.fullmatch(r"(.*\S)\s*(==|!=|>=|<=|>|<)\s*(-?[0-9.]+(?:[eE][+-]?\d+)?)", expr)
                if not m:
                    self.bad(aw, "expr is not \"<query> <op> <number>\": %r" % expr)
                    continue
                left = m.group(1)
                self.promql.append((aw + " (left side)", left))
                self.query(aw, left, None, None, check_legend=False)
                try:
                    lab = Parser(left).parse().labels
                except ParseError:
                    continue
                if lab is ALL and not re.fullmatch(r"[a-z_:]+\{[^}]*\}", left):
                    self.bad(aw, "left side keeps raw label sets; aggregate by the labels "
                             "the annotations use")
                elif lab is not ALL:
                    for v in re.findall(r"\$labels\.(\w+)", json.dumps(ann)):
                        if v not in lab:
                            self.bad(aw, "annotations use $labels.%s, which the query "
                                     "drops" % v)
        return n

    def promtool(self, promtool, alert_file, scrape_file):
        def run(args):
            r = subprocess.run([promtool] + args, capture_output=True, text=True)
            return r.returncode, (r.stdout + r.stderr).strip()
        with tempfile.TemporaryDirectory(prefix="sw-dashcheck-") as tmp:
            def check(items):
                f = os.path.join(tmp, "rules.yml")
                with open(f, "w") as out:
                    out.write("groups:\n  - name: dashboards\n    rules:\n")
                    for i, (_, e) in enumerate(items):
                        out.write("      - record: check:expr_%d\n        expr: %s\n"
                                  % (i, json.dumps(e)))
                return run(["check", "rules", f])
            rc, out = check(self.promql)
            if rc:
                # one at a time, to say which expression it is
                found = False
                for w, e in self.promql:
                    rc1, out1 = check([(w, e)])
                    if rc1:
                        found = True
                        msg = out1.splitlines()[-1] if out1 else "rejected"
                        self.bad(w, "promtool: %s (%s)" % (msg.strip(), e))
                if not found:
                    self.bad("promtool", out.replace("\n", " | "))
        if alert_file:
            rc, out = run(["check", "rules", alert_file])
            if rc:
                self.bad(os.path.basename(alert_file), "promtool check rules: " +
                         out.replace("\n", " | "))
        if scrape_file:
            rc, out = run(["check", "config", scrape_file])
            if rc:
                self.bad(os.path.basename(scrape_file), "promtool check config: " +
                         out.replace("\n", " | "))


def check_dir(ddir, promtool):
    """All checks of one dashboards directory: (checker, summary)."""
    c = Checker()
    err = load_agent_counters()
    if err:
        c.bad("contract", err)
    dashboards = sorted(glob.glob(os.path.join(ddir, "*.json")))
    if not dashboards:
        c.bad(ddir, "no dashboards (*.json)")
    uids = {}
    ntargets = 0
    for path in dashboards:
        ntargets += c.dashboard(path, uids) or 0
    for want in ("stallwatch-overview", "stallwatch-service", "stallwatch-gil"):
        if want not in uids:
            c.bad(ddir, "no dashboard with uid %s" % want)
    alert_file = os.path.join(ddir, "stallwatch-alerts.yml")
    scrape_file = os.path.join(ddir, "prometheus-scrape.yml")
    nalerts = 0
    for f in (alert_file, scrape_file):
        if not os.path.exists(f):
            c.bad(ddir, "no %s" % os.path.basename(f))
    if os.path.exists(alert_file):
        nalerts = c.alerts(alert_file)
    c.promtool(promtool, alert_file if os.path.exists(alert_file) else None,
               scrape_file if os.path.exists(scrape_file) else None)
    return c, "%d dashboards, %d queries, %d alerts, %d expressions through promtool" % (
        len(dashboards), ntargets, nalerts, len(c.promql))


def _target(d, title, ref="A"):
    for p in d["panels"]:
        if p.get("title") == title:
            return next(t for t in p["targets"] if t["refId"] == ref)
    raise KeyError(title)


# A broken copy of the real files, one fault per line, each with the text
# its problem line must contain: a checker that passes everything fails here.
MUTATIONS = [
    ("stallwatch-service.json", "Worst block per loop",
     lambda t: t.update(legendFormat=t["legendFormat"].replace(" tid {{tid}}", "")),
     "does not name label tid"),
    ("stallwatch-service.json", "Utilization per loop thread",
     lambda t: t.update(legendFormat=t["legendFormat"] + " {{comm}}"),
     "has no label comm"),
    ("stallwatch-service.json", "Iterations per second",
     lambda t: t.update(expr=t["expr"].replace("stallwatch_eventloop_iterations_total",
                                               "stallwatch_eventloop_utilization")),
     "metric stallwatch_eventloop_utilization is not"),
    ("stallwatch-service.json", "Block in progress",
     lambda t: t.update(expr=t["expr"].replace(',pid=~"$pid"', "")),
     'lacks pid=~"$pid"'),
    ("stallwatch-gil.json", "GIL utilization",
     lambda t: t.update(expr="max by (service, host, pid) (rate(stallwatch_python_gil_"
                        "utilization_ratio{host=~\"$host\",service=~\"$service\","
                        "runtime=~\"$runtime\",pid=~\"$pid\"}))"),
     "expected type range vector"),
    ("stallwatch-overview.json", "Agents up",
     lambda t: t.update(expr='stallwatch_agent_up{host=~"$host"}', legendFormat="{{host}} up"),
     "returns its series' own label sets"),
    ("stallwatch-overview.json", "Loop series held vs limit",
     lambda t: t.update(datasource={"type": "prometheus", "uid": "prom"}),
     "target A: datasource"),
]


def self_test(promtool):
    """Run the checks on a broken copy and require every fault reported."""
    src = os.path.join(SOURCE, "dashboards")
    with tempfile.TemporaryDirectory(prefix="sw-dashcheck-broken-") as tmp:
        for f in os.listdir(src):
            shutil.copy(os.path.join(src, f), tmp)
        for f, title, mutate, _ in MUTATIONS:
            path = os.path.join(tmp, f)
            d = json.load(open(path))
            mutate(_target(d, title))
            json.dump(d, open(path, "w"))
        path = os.path.join(tmp, "stallwatch-alerts.yml")
        text = open(path).read()
        text = text.replace("(stallwatch_eventloop_blocked_ongoing_seconds) > 5",
                            "(stallwatch_eventloop_blocked_ongoing_seconds)", 1)
        open(path, "w").write(text)
        c, _ = check_dir(tmp, promtool)
    want = [m[3] for m in MUTATIONS] + ['StallwatchLoopStuck: expr is not "<query> <op> <number>"']
    missed = [w for w in want if not any(w in p for p in c.problems)]
    for w in missed:
        print("self-test: the broken copy's fault %r was not reported" % w)
    if missed:
        print("FAIL check_dashboards --self-test")
        return 1
    print("PASS check_dashboards --self-test: %d faults, %d problem lines" % (
        len(want), len(c.problems)))
    return 0


def main():
    args = sys.argv[1:]
    promtool = shutil.which("promtool")
    if not promtool:
        print("SKIP: promtool not found: apt-get install prometheus "
              "(scripts/install-deps.sh installs it)")
        return 1 if os.environ.get("SW_CI") == "1" else 77
    if args == ["--self-test"]:
        return self_test(promtool)
    ddir = args[0] if args else os.path.join(SOURCE, "dashboards")
    c, summary = check_dir(ddir, promtool)
    for p in c.problems:
        print(p)
    if c.problems:
        print("FAIL check_dashboards: %d problems" % len(c.problems))
        return 1
    print("PASS check_dashboards: " + summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
