# SPDX-License-Identifier: Apache-2.0
"""stallwatch overhead benchmark: every figure with and without the agent.

Run through bench/run.sh (it installs deps and builds first). Needs root.

Stages (each alternates runs without/with the agent, several repetitions,
medians reported):
  http      wrk -t1 -c32 against a Node and a Python asyncio (aiohttp) server,
            the agent attached to the server; for Node also the in-process
            peer perf_hooks.monitorEventLoopDelay at 10 ms and 1 ms resolution
  loop      1-byte ping-pong inside one process (Node, asyncio): ns per loop
            iteration the agent adds
  bystander redis-server under redis-benchmark, and dd bs=1 (one read + one
            write syscall per byte), the agent attached to another process
  bpfstats  in-kernel run time per invocation of each agent BPF program
            (kernel.bpf_stats_enabled=1, separate run so it biases nothing else)
  switch    sched_switch run time for threads the agent does not track: two
            processes pinned to one CPU ping-pong a byte over pipes while the
            agent watches an idle server (bpf stats as above; run it with
            --agent of another build to compare builds)
  uprobe    cost of one uprobe hit on this machine (tracefs uprobe, no BPF)
  gil       cost of GIL measurement: a FastAPI/uvicorn service (an async
            route, and a sync `def` route run in Starlette's thread pool)
            under wrk with no agent, the agent --no-gil, the agent (GIL
            measurement on), and uprobes on every GIL release/take
            (bench/gil_uprobe); plus a second no-agent run per repetition
            whose ratio to the first is the noise of the ratios
  ingest    the collector, not the agent: samples/s per core from recorded
            agent frames replayed by bench/ingest_load, RSS at 100 and 1,000
            agents, /metrics scrape time at 10,000 and 50,000 series
            (bench/ingest.py; not in the default list: --stages ingest)

Only the standard library: runs under any python3.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import ingest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WL = os.path.join(HERE, "workloads")  # the ping-pong loops, bench only
# the HTTP servers are the root tests' and the demo's: one set, one place to fix
SERVERS = os.path.join(ROOT, "tests", "workloads")
NODE = "/usr/bin/node"
PY = "/usr/bin/python3.11"  # Debian's, where python3-aiohttp is installed
START_LOAD = "?"
START_REV = "?"
# bystander variants: the default agent, and the two switches that change
# what runs for processes it does not watch
AGENT_VARIANTS = {
    "agent": [],
    "agent-nodiag": ["--no-diag"],
    "agent-raw": ["--raw-syscalls"],
}
VARIANT_NAMES = {
    "agent": "agent attached to another process",
    "agent-nodiag": "agent --no-diag (no sched_switch program) attached to another process",
    "agent-raw": "agent --raw-syscalls (tp_btf/sys_enter+exit: a BPF program on every syscall)",
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------------
# processes

class Proc:
    """A child whose JSON stdout lines are collected by a reader thread."""

    def __init__(self, argv, stdin=False, name=None, env=None):
        self.name = name or os.path.basename(argv[0])
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  text=True, bufsize=1, env=env)
        self.lines, self.err = [], []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.err), daemon=True).start()

    def _read(self, f, into):
        for line in f:
            with self.cv:
                into.append(line.rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def objs(self):
        out = []
        with self.cv:
            lines = list(self.lines)
        for l in lines:
            try:
                o = json.loads(l)
                if isinstance(o, dict):
                    out.append(o)
            except ValueError:
                pass
        return out

    def wait_for(self, pred, timeout):
        end = time.monotonic() + timeout
        while True:
            for o in self.objs():
                if pred(o):
                    return o
            if self.p.poll() is not None:
                time.sleep(0.1)  # let the reader drain
                for o in self.objs():
                    if pred(o):
                        return o
                die(f"{self.name} exited ({self.p.returncode}) before the expected line; "
                    f"stderr: {' | '.join(self.err[-5:])}")
            left = end - time.monotonic()
            if left <= 0:
                die(f"{self.name}: timed out after {timeout}s waiting for a line; "
                    f"stderr: {' | '.join(self.err[-5:])}")
            with self.cv:
                self.cv.wait(min(left, 0.2))

    def send(self, s):
        self.p.stdin.write(s)
        self.p.stdin.flush()

    def cpu_seconds(self):
        try:
            with open(f"/proc/{self.p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return None

    def stop(self, sig=signal.SIGINT, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def start_server(argv, name):
    p = Proc(argv, name=name)
    ready = p.wait_for(lambda o: o.get("event") == "ready", 30)
    return p, ready


class Agent:
    """The agent attached to pids for the duration of a `with` block."""
    binary = None
    extra = []

    def __init__(self, pids, extra=()):
        self.pids, self.extra = pids, list(extra)

    def __enter__(self):
        argv = [Agent.binary, "--json", "--interval", "1"] + Agent.extra + self.extra
        for pid in self.pids:
            argv += ["--pid", str(pid)]
        self.proc = Proc(argv, name="stallwatch-agent")
        for pid in self.pids:
            self.proc.wait_for(lambda o, pid=pid: o.get("kind") == "process" and o.get("pid") == pid, 30)
        time.sleep(1.0)  # past the attach transient
        self.cpu0, self.t0 = self.proc.cpu_seconds(), time.monotonic()
        return self

    def __exit__(self, *exc):
        cpu1, t1 = self.proc.cpu_seconds(), time.monotonic()
        self.cpu_frac = (cpu1 - self.cpu0) / (t1 - self.t0) if cpu1 is not None else None
        self.proc.stop()
        if self.proc.p.returncode not in (0, -signal.SIGINT, 130):
            die(f"agent exited {self.proc.p.returncode}: {' | '.join(self.proc.err[-5:])}")
        return False

    def summaries(self):
        return [o for o in self.proc.objs() if o.get("kind") == "loop_summary"]


# --------------------------------------------------------------------------
# measurements

def run_wrk(port, seconds, path="/", extra=()):
    return run_wrk_full(port, seconds, path, extra)[0]


def run_wrk_full(port, seconds, path="/", extra=()):
    """(requests per second, requests completed)"""
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", *extra, f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    if not m or not n:
        die(f"cannot parse wrk output: {out!r}")
    if re.search(r"Non-2xx|Socket errors", out):
        die(f"wrk saw errors: {out!r}")
    return float(m.group(1)), int(n.group(1))


def http_get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
    if b" 200 " not in data.split(b"\r\n", 1)[0]:
        die(f"GET {path} failed: {data[:200]!r}")
    return data


def alternate(reps, variants, measure):
    """Run measure(variant) reps times for each variant, rotating the order so
    that no variant always runs first (drift and thermal effects spread out)."""
    res = {v: [] for v in variants}
    for r in range(reps):
        k = r % len(variants)
        order = variants[k:] + variants[:k]
        for v in order:
            x = measure(v)
            res[v].append(x)
            log(f"  rep {r + 1}/{reps} {v}: {x:.6g}")
    return res


def stage_http(a, rows, notes):
    servers = [
        ("Node 20 http", [NODE, os.path.join(SERVERS, "node_http.js")]),
        ("Python 3.11 aiohttp (asyncio)", [PY, os.path.join(SERVERS, "py_http.py"), "--app", "aiohttp"]),
    ]
    for label, argv in servers:
        srv, ready = start_server(argv, label)
        port, pid = ready["port"], ready["pid"]
        try:
            log(f"http: {label} pid {pid} port {port}: warm-up")
            run_wrk(port, 5)  # JIT and allocator warm-up, not counted
            variants = ["off", "agent"]
            if label.startswith("Node"):
                variants += ["eld10", "eld1"]
            agent_cpu = []

            def measure(v):
                if v.startswith("eld"):
                    http_get(port, f"/eld?res={v[3:]}")
                    try:
                        return run_wrk(port, a.wrk_seconds)
                    finally:
                        http_get(port, "/eld/p99")  # read it, as a real exporter would
                        http_get(port, "/eld?res=0")
                if v == "agent":
                    with Agent([pid]) as ag:
                        x = run_wrk(port, a.wrk_seconds)
                    agent_cpu.append(ag.cpu_frac)
                    return x
                return run_wrk(port, a.wrk_seconds)

            res = alternate(a.reps, variants, measure)
            base = res["off"]
            names = {"agent": "stallwatch agent attached",
                     "eld10": "peer: monitorEventLoopDelay 10 ms (in-process)",
                     "eld1": "peer: monitorEventLoopDelay 1 ms (in-process)"}
            for v in variants[1:]:
                rows.append(row(f"{label}: req/s, wrk -t1 -c32 -d{a.wrk_seconds}s", names[v], base, res[v]))
            if agent_cpu and None not in agent_cpu:
                notes.append(f"Agent CPU while attached to the {label} server under load: "
                             f"median {100 * statistics.median(agent_cpu):.2f} % of one core.")
        finally:
            srv.stop(signal.SIGTERM)


def vm_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def stage_incident(a, rows, notes):
    """The incident path (issue 6): stacks, syscalls and symbols are captured
    only for blocks past the threshold. Measured: the Node server's
    throughput with one pbkdf2Sync block a second, without and with the
    agent; the time from a block crossing the threshold to an incident line
    that carries its stack; the agent's RSS with a Node and a Python target
    attached and their symbol tables loaded."""
    node, nready = start_server([NODE, os.path.join(SERVERS, "node_http.js")], "node http")
    py, pready = start_server([PY, os.path.join(SERVERS, "py_http.py"), "--app", "aiohttp"],
                              "python aiohttp")
    nport, npid, pport, ppid = nready["port"], nready["pid"], pready["port"], pready["pid"]
    try:
        run_wrk(nport, 5)  # warm-up
        # one block a second of ~100 ms, whichever variant is running
        stop = threading.Event()

        def blocker():
            while not stop.wait(a.incident_period):
                try:
                    http_get(nport, "/pbkdf2?iter=%d" % a.incident_iter)
                except Exception as e:  # noqa: BLE001 - reported, not fatal
                    log(f"incident: blocker request failed: {e}")
        t = threading.Thread(target=blocker, daemon=True)
        t.start()
        agent_cpu, rss = [], []

        # the agent as it runs by default, and without each diagnosis unit:
        # which part of the incident path costs what
        extra = {"agent": [], "agent --no-syscalls": ["--no-syscalls"],
                 "agent --no-stacks": ["--no-stacks"], "agent --no-diag": ["--no-diag"]}
        variants = ["off"] + [v for v in extra if v == "agent" or a.incident_variants]

        def measure(v):
            if v != "off":
                with Agent([npid, ppid], extra[v]) as ag:
                    x = run_wrk(nport, a.wrk_seconds)
                    rss.append(vm_kb(ag.proc.p.pid, "VmHWM"))
                if v == "agent":
                    agent_cpu.append(ag.cpu_frac)
                return x
            return run_wrk(nport, a.wrk_seconds)
        res = alternate(a.reps, variants, measure)
        # What throughput cannot resolve here, the kernel's own accounting
        # can: the run time of every agent program over one such run.
        try:
            old = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
            with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
                f.write("1")
            try:
                with Agent([npid, ppid]) as ag:
                    ids = agent_prog_ids(ag.proc.p.pid)
                    def snap():
                        progs = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"],
                                                          capture_output=True, text=True,
                                                          check=True).stdout)
                        return {p["id"]: (p.get("name", "?"), p.get("run_cnt", 0),
                                          p.get("run_time_ns", 0)) for p in progs if p["id"] in ids}
                    s0, t0 = snap(), time.monotonic()
                    reqs = run_wrk(nport, a.wrk_seconds)
                    s1, t1 = snap(), time.monotonic()
            finally:
                with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
                    f.write(old)
            wall = t1 - t0
            per = sorted(((s1[i][0], s1[i][1] - s0.get(i, (0, 0, 0))[1],
                           s1[i][2] - s0.get(i, (0, 0, 0))[2]) for i in s1), key=lambda x: -x[2])
            total = sum(x[2] for x in per)
            notes.append("In-kernel cost, one incident every %g s under wrk (%.0f req/s, bpf_stats on): "
                         "the agent's programs ran %.1f ms per second of wall time (%.2f %% of one "
                         "core; %.0f ns per request): %s." % (
                             a.incident_period, reqs, total / wall / 1e6, total / wall / 1e7, total / wall / reqs,
                             ", ".join("%s %d runs %.0f ns each" % (n, c, ns / c)
                                       for n, c, ns in per if c)))
        except (OSError, subprocess.CalledProcessError) as e:
            notes.append(f"In-kernel cost: bpf_stats unavailable ({e}).")
        stop.set()
        t.join()
        for v in variants[1:]:
            rows.append(row(f"Node 20 http, one pbkdf2Sync block every {a.incident_period:g} s: req/s, wrk -t1 -c32 -d{a.wrk_seconds}s",
                            "stallwatch " + v + (" (stacks, syscalls)" if v == "agent" else ""),
                            res["off"], res[v]))
        if agent_cpu and None not in agent_cpu:
            notes.append(f"Agent CPU with one incident a second under load: median "
                         f"{100 * statistics.median(agent_cpu):.2f} % of one core.")

        # time to the stack: 400 ms blocks, the first incident line with a stack
        lat, lat_py = [], []
        with Agent([npid, ppid]) as ag:
            for k in range(a.reps):
                http_get(nport, "/block?ms=400")
                http_get(pport, "/block?ms=400")
                time.sleep(0.5)
            time.sleep(1.5)
            thr = 50.0
            firsts = {}
            for o in ag.proc.objs():
                if o.get("kind") != "incident" or "stack" not in o:
                    continue
                key = (o["pid"], o["start_ns"])
                if key not in firsts:
                    firsts[key] = o
            for (pid, _), o in firsts.items():
                d = float(o["duration_ms"]) - thr if o.get("ongoing") else None
                (lat if pid == npid else lat_py).append(d)
            rss.append(vm_kb(ag.proc.p.pid, "VmHWM"))
        for label, l in (("Node", lat), ("Python", lat_py)):
            known = [x for x in l if x is not None]
            notes.append(f"{label}: {len(l)} blocks of 400 ms got a stack; {len(known)} of them "
                         f"while ongoing, at threshold + " +
                         (", ".join(f"{x:.0f}" for x in sorted(known)) or "-") + " ms.")
        rss = [x for x in rss if x]
        if rss:
            notes.append(f"Agent peak RSS (VmHWM) with the Node and the Python server attached: "
                         f"{max(rss) / 1024:.1f} MiB (max over {len(rss)} runs).")
    finally:
        node.stop(signal.SIGTERM)
        py.stop(signal.SIGTERM)


def stage_loop(a, rows, notes):
    loads = [
        ("Node 20", [NODE, os.path.join(WL, "node_pingpong.js")]),
        ("Python 3.11 asyncio", [PY, os.path.join(WL, "py_pingpong.py")]),
    ]
    for label, argv in loads:
        ipr = []  # loop iterations per round trip, as counted by the agent

        def measure(v):
            p = Proc(argv + ["--seconds", str(a.loop_seconds)], stdin=True, name=label)
            ready = p.wait_for(lambda o: o.get("event") == "ready", 30)
            try:
                if v == "agent":
                    with Agent([ready["pid"]]) as ag:
                        p.send("go\n")
                        r = p.wait_for(lambda o: o.get("event") == "result", a.loop_seconds + 30)
                        time.sleep(1.1)  # one more summary interval
                    rt_rate = r["roundtrips"] / r["seconds"]
                    rates = [s["iterations"] / (s["interval_ms"] / 1000.0) for s in ag.summaries()
                             if s.get("pid") == ready["pid"] and s.get("iterations", 0) > 0
                             and s.get("interval_ms", 0) > 0]
                    if rates:
                        # the busiest thread's full intervals: the ping-pong loop
                        top = sorted(rates)[len(rates) // 2:]
                        ipr.append(statistics.median(top) / rt_rate)
                else:
                    p.send("go\n")
                    r = p.wait_for(lambda o: o.get("event") == "result", a.loop_seconds + 30)
                return r["ns_per_roundtrip"]
            finally:
                p.stop(signal.SIGTERM)

        log(f"loop: {label}")
        res = alternate(a.reps, ["off", "agent"], measure)
        rows.append(row(f"{label}: ns per ping-pong round trip (lower is better)",
                        "stallwatch agent attached", res["off"], res["agent"], lower_better=True))
        d = statistics.median(res["agent"]) - statistics.median(res["off"])
        if ipr:
            it = statistics.median(ipr)
            notes.append(f"{label}: the agent counted {it:.2f} loop iterations per round trip; "
                         f"added cost {d:.0f} ns per round trip = {d / it:.0f} ns per loop iteration.")
        else:
            notes.append(f"{label}: added cost {d:.0f} ns per round trip "
                         f"(the agent reported no iteration counts to convert it per iteration).")


def stage_bystander(a, rows, notes):
    # the agent watches an idle Node server; redis and dd are not traced at all
    target, ready = start_server([NODE, os.path.join(SERVERS, "node_http.js")], "idle node target")
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--daemonize", "no",
                              "--loglevel", "warning"], stdout=subprocess.DEVNULL)
    try:
        wait_port(port, 10)

        def redis_bench():
            out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q",
                                  "-n", "200000", "-t", "get,set", "-P", "1"],
                                 capture_output=True, text=True, check=True).stdout
            out = out.replace("\r", "\n")
            got = {}
            for k in ("SET", "GET"):
                m = re.findall(rf"^{k}: ([\d.]+) requests per second", out, re.M)
                if not m:
                    die(f"cannot parse redis-benchmark output: {out[-300:]!r}")
                got[k] = float(m[-1])
            return got

        redis_bench()  # warm-up
        variants = ["off"] + list(AGENT_VARIANTS)
        per = {k: {v: [] for v in variants} for k in ("SET", "GET")}

        def measure_redis(v):
            if v in AGENT_VARIANTS:
                with Agent([ready["pid"]], AGENT_VARIANTS[v]):
                    g = redis_bench()
            else:
                g = redis_bench()
            for k in g:
                per[k][v].append(g[k])
            return g["SET"] + g["GET"]

        log("bystander: redis-benchmark")
        alternate(a.reps, variants, measure_redis)
        for k in ("SET", "GET"):
            for v in variants[1:]:
                rows.append(row(f"bystander redis-server 7.0: {k} req/s, redis-benchmark -n 200000 -P 1",
                                VARIANT_NAMES[v], per[k]["off"], per[k][v]))

        def dd_once():
            out = subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=2000000"],
                                 capture_output=True, text=True, check=True,
                                 env=dict(os.environ, LC_ALL="C")).stderr
            m = re.search(r"copied, ([\d.e+-]+) s", out)
            if not m:
                die(f"cannot parse dd output: {out!r}")
            return float(m.group(1))

        def measure_dd(v):
            if v in AGENT_VARIANTS:
                with Agent([ready["pid"]], AGENT_VARIANTS[v]):
                    return dd_once()
            return dd_once()

        log("bystander: dd bs=1 (worst case)")
        res = alternate(a.reps, variants, measure_dd)
        for v in variants[1:]:
            rows.append(row("worst-case bystander: dd bs=1 count=2000000, seconds (lower is better)",
                            VARIANT_NAMES[v], res["off"], res[v], lower_better=True))
            d = statistics.median(res[v]) - statistics.median(res["off"])
            notes.append(f"dd makes 4,000,000 syscalls (a read and a write per byte); {VARIANT_NAMES[v]}: "
                         f"{d * 1e9 / 4e6:.0f} ns added per syscall of a process the agent does not watch.")
    finally:
        redis.terminate()
        redis.wait()
        target.stop(signal.SIGTERM)


def stage_bpfstats(a, rows, notes, mech):
    """In-kernel cost of each agent program, from the kernel's own run-time stats."""
    try:
        old = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    except OSError:
        notes.append("bpf stats: /proc/sys/kernel/bpf_stats_enabled missing; skipped.")
        return
    p = Proc([NODE, os.path.join(WL, "node_pingpong.js"), "--seconds", str(a.loop_seconds)],
             stdin=True, name="node pingpong")
    ready = p.wait_for(lambda o: o.get("event") == "ready", 30)
    try:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("1")
        with Agent([ready["pid"]]) as ag:
            p.send("go\n")
            p.wait_for(lambda o: o.get("event") == "result", a.loop_seconds + 30)
            progs = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                                              text=True, check=True).stdout)
            ids = agent_prog_ids(ag.proc.p.pid)
        n0 = len(mech)
        for pr in progs:
            if pr.get("id") in ids and pr.get("run_cnt"):
                mech.append((pr.get("name", "?"), pr.get("type", "?"), pr["run_cnt"],
                             pr["run_time_ns"] / pr["run_cnt"]))
        if len(mech) == n0:
            notes.append("bpf stats: no agent program with a run count was found.")
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(old)
        p.stop(signal.SIGTERM)


SWITCH_PINGPONG = """
import os, sys
n = int(sys.argv[1])
a, b = os.pipe()
c, d = os.pipe()
if os.fork() == 0:
    for _ in range(n):
        os.read(a, 1)
        os.write(d, b"x")
    os._exit(0)
for _ in range(n):
    os.write(b, b"x")
    os.read(c, 1)
os.wait()
"""


def stage_switch(a, rows, notes, mech):
    """sched_switch cost on the host's untracked threads, many switches, hot."""
    rounds = 200000
    try:
        old = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    except OSError:
        notes.append("switch: /proc/sys/kernel/bpf_stats_enabled missing; skipped.")
        return
    target, ready = start_server([NODE, os.path.join(SERVERS, "node_http.js")], "idle node target")
    cpu = str(os.cpu_count() - 1)
    per, total = [], 0
    try:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("1")
        for r in range(a.reps):
            with Agent([ready["pid"]]) as ag:
                c0, t0 = switch_stats(ag.proc.p.pid)
                subprocess.run(["taskset", "-c", cpu, sys.executable, "-c", SWITCH_PINGPONG,
                                str(rounds)], check=True)
                c1, t1 = switch_stats(ag.proc.p.pid)
            if c1 > c0:
                per.append((t1 - t0) / (c1 - c0))
                total += c1 - c0
                log(f"  rep {r + 1}/{a.reps}: {c1 - c0} switches, {per[-1]:.1f} ns each")
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(old)
        target.stop(signal.SIGTERM)
    if per:
        mech.append(("sched_switch, untracked threads only (pipe ping-pong of 2 processes pinned "
                     f"to CPU {cpu}; median of {len(per)}, range {min(per):.0f}-{max(per):.0f})",
                     "tracing", total, statistics.median(per)))
    else:
        notes.append("switch: the agent's sched_switch program counted no run.")


def switch_stats(agent_pid):
    """(run_cnt, run_time_ns) of the agent's sched_switch program."""
    ids = agent_prog_ids(agent_pid)
    progs = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                                      text=True, check=True).stdout)
    for pr in progs:
        if pr.get("id") in ids and pr.get("name") == "sched_switch":
            return pr.get("run_cnt", 0), pr.get("run_time_ns", 0)
    return 0, 0


def agent_prog_ids(pid):
    """BPF program ids the agent holds, from its fds' fdinfo (Debian's bpftool
    is built without the skeleton that would give `pids` in `prog show`)."""
    ids = set()
    d = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(d):
        try:
            with open(os.path.join(d, fd)) as f:
                m = re.search(r"^prog_id:\s+(\d+)", f.read(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    return ids


def stage_uprobe(a, rows, notes, mech):
    """Time a call to a trivial function with and without a uprobe on it."""
    src = os.path.join(HERE, "uprobe_target.c")
    binp = os.path.join(HERE, "out", "uprobe_target")
    subprocess.run(["cc", "-O2", "-Wall", "-o", binp, src], check=True)
    tfs = "/sys/kernel/tracing"
    if not os.path.exists(os.path.join(tfs, "uprobe_events")):
        subprocess.run(["mount", "-t", "tracefs", "nodev", tfs], check=False)
    if not os.path.exists(os.path.join(tfs, "uprobe_events")):
        notes.append("uprobe: tracefs not available; skipped.")
        return
    n = 200000

    def tw(path, text):
        # raw O_APPEND write: Python's "a" mode seeks, which tracefs refuses
        fd = os.open(os.path.join(tfs, path), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    with open(os.path.join(tfs, "tracing_on")) as f:
        tracing_was = f.read().strip()
    try:
        # the event is recorded in the trace buffer: keep the buffer off so the
        # figure is the trap itself, as a BPF uprobe pays it
        tw("tracing_on", "0")
        for kind, label in (("emul", "uprobe hit, first instruction emulated (push %rbp)"),
                            ("xol", "uprobe hit, first instruction single-stepped out of line")):
            off = symbol_file_offset(binp, f"sw_bench_{kind}")

            def measure(v):
                if v == "uprobe":
                    tw("uprobe_events", f"p:swbench/{kind} {binp}:0x{off:x}\n")
                    try:
                        tw(f"events/swbench/{kind}/enable", "1")
                        return run_target()
                    finally:
                        tw(f"events/swbench/{kind}/enable", "0")
                        tw("uprobe_events", f"-:swbench/{kind}\n")
                return run_target()

            def run_target():
                out = subprocess.run([binp, kind, str(n)], capture_output=True, text=True,
                                     check=True).stdout
                return float(out.split()[0])  # ns per call

            log(f"uprobe: cost of one hit ({kind})")
            res = alternate(a.reps, ["off", "uprobe"], measure)
            d = statistics.median(res["uprobe"]) - statistics.median(res["off"])
            mech.append((label + " (tracefs probe, no BPF program)", "uprobe", n * a.reps, d))
    finally:
        tw("tracing_on", tracing_was)


def symbol_file_offset(path, sym):
    nm = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout
    m = re.search(rf"^([0-9a-f]+) [Tt] {sym}$", nm, re.M)
    if not m:
        die(f"{sym} not found in {path}")
    addr = int(m.group(1), 16)
    ph = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, check=True).stdout
    for l in ph.splitlines():
        f = l.split()
        if f and f[0] == "LOAD":
            off, vaddr, filesz = int(f[1], 16), int(f[2], 16), int(f[4], 16)
            if vaddr <= addr < vaddr + filesz:
                return addr - vaddr + off
    die(f"no LOAD segment holds {sym} in {path}")


# --------------------------------------------------------------------------
# gil: the cost of GIL measurement

GIL_ROUTES = [
    ("/async", "async def route: a little work, two awaited backend round trips (loop thread only)"),
    ("/sync", "def route in Starlette's thread pool: the same work, blocking backend calls "
              "(the GIL changes hands between threads)"),
]

# wrk's default 2 s timeout counts as a socket error, which fails the run: 32
# threads queueing for the GIL on a loaded 2-core VM went past it once (1.76 s
# max latency, 28 timeouts). A request that slow is still a request served.
GIL_WRK = ("--timeout", "10s")


def agent_has(flag):
    out = subprocess.run([Agent.binary, "--help"], capture_output=True, text=True).stdout
    return flag in out


class LineMark:
    """The objects a Proc printed between two marks (by line count)."""

    def __init__(self, proc):
        self.proc = proc
        with proc.cv:
            self.i0 = len(proc.lines)

    def objs(self):
        with self.proc.cv:
            lines = self.proc.lines[self.i0:]
        out = []
        for l in lines:
            try:
                o = json.loads(l)
            except ValueError:
                continue
            if isinstance(o, dict):
                out.append(o)
        return out


def gil_counts(objs, pid):
    """The agent's GIL lines of one window: events per second of the
    process-level intervals they cover (their interval_ms), and the process
    lines' contention. None when the agent printed no gil line."""
    # an interval's thread lines come before its process line: those after
    # the last process line belong to an interval not complete in the window
    last = max((i for i, o in enumerate(objs) if o.get("kind") == "gil" and o.get("pid") == pid),
               default=-1)
    objs = objs[:last + 1]
    procs = [o for o in objs if o.get("kind") == "gil" and o.get("pid") == pid
             and o.get("interval_ms")]
    threads = [o for o in objs if o.get("kind") == "gil_summary" and o.get("pid") == pid]
    unmeasured = [o for o in objs if o.get("kind") == "gil" and o.get("pid") == pid
                  and o.get("measured") is False]
    if unmeasured:
        return {"note": unmeasured[0].get("note", "not measured")}
    if not procs:
        return None
    secs = sum(o["interval_ms"] for o in procs) / 1000.0
    tot = {k: sum(o.get(k, 0) or 0 for o in threads)
           for k in ("acquisitions", "drop_requests", "forced_switches", "wait_ms")}
    return {"acq_s": tot["acquisitions"] / secs, "drop_s": tot["drop_requests"] / secs,
            "forced_s": tot["forced_switches"] / secs, "wait_share": tot["wait_ms"] / (secs * 1000.0),
            "switches_s": sum(o.get("switches", 0) or 0 for o in procs) / secs,
            "contention": statistics.median(o.get("contention", 0) or 0 for o in procs),
            "omitted": max(o.get("threads_omitted", 0) or 0 for o in procs),
            "intervals": len(procs)}


class UprobeTool:
    """bench/gil_uprobe attached to pid for the duration of a `with` block."""
    binary = None

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.proc = Proc([UprobeTool.binary, "--pid", str(self.pid)], name="gil_uprobe")
        self.proc.wait_for(lambda o: o.get("event") == "attached", 30)
        time.sleep(1.0)  # as for the agent: past the attach transient
        return self

    def counts(self):
        """Totals now (SIGUSR1: the tool prints them)."""
        n = len([o for o in self.proc.objs() if o.get("event") == "counts"])
        self.proc.p.send_signal(signal.SIGUSR1)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            got = [o for o in self.proc.objs() if o.get("event") == "counts"]
            if len(got) > n:
                return got[n]
            time.sleep(0.02)
        die(f"gil_uprobe printed no counts after SIGUSR1; stderr: {' | '.join(self.proc.err[-5:])}")

    def __exit__(self, *exc):
        self.proc.stop()
        if self.proc.p.returncode != 0:
            die(f"gil_uprobe exited {self.proc.p.returncode}: {' | '.join(self.proc.err[-5:])}")
        return False


def stage_gil(a, rows, notes, sections):
    if not os.access(UprobeTool.binary or "", os.X_OK):
        die(f"gil_uprobe {UprobeTool.binary} not found: build it (make -C BUILD gil_uprobe; "
            "bench/run.sh does) or pass --gil-uprobe")
    nogil = agent_has("--no-gil")
    variants = ["off", "agent-nogil", "agent", "uprobe"] + (["off2"] if a.gil_noise else [])
    names = {
        "off": "A: no agent",
        "agent-nogil": "B: agent --no-gil" if nogil else "B: agent (this build has no --no-gil: as C)",
        "agent": "C: agent, GIL measurement on (default)",
        "uprobe": "D: uprobes on PyEval_SaveThread + RestoreThread, uretprobe on RestoreThread "
                  "(bench/gil_uprobe), no agent",
        "off2": "A': no agent, a second time (noise of the ratio)",
    }
    extra = {"agent-nogil": ["--no-gil"] if nogil else [], "agent": []}
    srv = Proc([PY, os.path.join(WL, "py_fastapi_gil.py")], name="fastapi gil service")
    ready = srv.wait_for(lambda o: o.get("event") == "ready", 60)
    port, pid = ready["port"], ready["pid"]
    routes = [r for r, _ in GIL_ROUTES]
    res = {r: {v: [] for v in variants} for r in routes}
    cpu = {r: {v: [] for v in variants} for r in routes}   # agent / tool CPU, share of a core
    ev = {r: {v: [] for v in variants} for r in routes}    # GIL events per second
    # the service's own CPU (all its threads, user + system: the BPF programs
    # and uprobe traps that run in its context included) per request served:
    # far less sensitive than req/s to the CPU other tenants take
    scpu = {r: {v: [] for v in variants} for r in routes}
    try:
        log(f"gil: FastAPI service pid {pid} port {port}: warm-up")
        for r in routes:
            run_wrk(port, 3, r, GIL_WRK)

        def one(v, r, watcher):
            """One wrk run of route r; watcher is the agent's or the tool's Proc."""
            mark = None
            if watcher and v.startswith("agent"):
                # start on an interval boundary of the agent, so that every
                # interval it prints during the run lies inside the run
                # (the previous route's load would count otherwise)
                m0 = LineMark(watcher)
                end = time.monotonic() + 2.5
                while time.monotonic() < end and not any(
                        o.get("kind") in ("gil", "loop_summary") and o.get("pid") == pid
                        for o in m0.objs()):
                    time.sleep(0.01)
                mark = LineMark(watcher)
            c0 = watcher.cpu_seconds() if watcher else None
            s0 = srv.cpu_seconds()
            t0 = time.monotonic()
            x, n = run_wrk_full(port, a.wrk_seconds, r, GIL_WRK)
            s1 = srv.cpu_seconds()
            if s0 is not None and s1 is not None and n:
                scpu[r][v].append((s1 - s0) / n * 1e6)
            if watcher:
                c1 = watcher.cpu_seconds()
                if c0 is not None and c1 is not None:
                    cpu[r][v].append((c1 - c0) / (time.monotonic() - t0))
            if mark:
                g = gil_counts(mark.objs(), pid)
                if g is not None:
                    ev[r][v].append(g)
            res[r][v].append(x)
            return x

        def measure(v):
            tot = 0.0
            if v in extra:
                with Agent([pid], extra[v]) as ag:
                    for r in routes:
                        tot += one(v, r, ag.proc)
            elif v == "uprobe":
                with UprobeTool(pid) as tool:
                    for r in routes:
                        c0 = tool.counts()
                        tot += one(v, r, tool.proc)
                        c1 = tool.counts()
                        dt = (c1["t_ns"] - c0["t_ns"]) / 1e9
                        hits = sum(c1[k] - c0[k] for k in ("saves", "restores", "returns"))
                        ev[r][v].append({"hits_s": hits / dt,
                                         "takes_s": (c1["restores"] - c0["restores"]) / dt,
                                         "wait_share": (c1["wait_ns"] - c0["wait_ns"]) / (dt * 1e9),
                                         "dropped": c1["dropped"]})
            else:
                for r in routes:
                    tot += one(v, r, None)
            return tot

        log("gil: " + ", ".join(names[v] for v in variants))
        alternate(a.reps, variants, measure)
        if a.gil_bpfstats:
            gil_bpfstats(a, port, pid, routes, extra, notes)
    finally:
        srv.stop(signal.SIGTERM)

    desc = dict(GIL_ROUTES)
    for r in routes:
        for v in variants[1:]:
            rows.append(row(f"FastAPI/uvicorn GET {r}: req/s, wrk -t1 -c32 -d{a.wrk_seconds}s",
                            names[v], res[r]["off"], res[r][v]))
        rows.append(row(f"FastAPI/uvicorn GET {r}: req/s", "C against B: the GIL measurement alone",
                        res[r]["agent-nogil"], res[r]["agent"]))
        if all(len(scpu[r][v]) == len(res[r][v]) for v in variants):
            for v in variants[1:]:
                rows.append(row(f"FastAPI/uvicorn GET {r}: service CPU µs per request (lower is better)",
                                names[v], scpu[r]["off"], scpu[r][v], lower_better=True))
            rows.append(row(f"FastAPI/uvicorn GET {r}: service CPU µs per request",
                            "C against B: the GIL measurement alone",
                            scpu[r]["agent-nogil"], scpu[r]["agent"], lower_better=True))
    sections.append(gil_section(a, variants, names, routes, desc, res, cpu, ev, scpu))


def gil_section(a, variants, names, routes, desc, res, cpu, ev, scpu):
    out = ["## GIL measurement: per configuration\n",
           f"{a.reps} repetitions of {' '.join(names[v].split(':')[0] for v in variants)} "
           "(rotated), every configuration attached anew for each repetition, both routes "
           f"run back to back under it (wrk -t1 -c32 -d{a.wrk_seconds}s each).\n"]
    for r in routes:
        out.append(f"### GET {r}: {desc[r]}\n")
        out.append("| configuration | req/s median | spread | paired ratio to A, median | its range | "
                   "service CPU µs/request, median (spread) | paired ratio to A | "
                   "agent / tool CPU (% of a core) | GIL events as the mechanism counts them |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        base = res[r]["off"]
        for v in variants:
            xs = res[r][v]
            ratios = [o / b for o, b in zip(xs, base)]
            c = cpu[r][v]
            cs = f"{100 * statistics.median(c):.2f} ({100 * min(c):.2f}–{100 * max(c):.2f})" if c else "—"
            e = ev[r][v]
            if v == "uprobe" and e:
                es = (f"{statistics.median(x['hits_s'] for x in e):,.0f} probe hits/s "
                      f"({statistics.median(x['takes_s'] for x in e):,.0f} takes/s; threads waiting in RestoreThread: "
                      f"{statistics.median(x['wait_share'] for x in e):.2f} on average; "
                      f"dropped {max(x['dropped'] for x in e)})")
            elif e and all("note" in x for x in e):
                es = "not measured: " + e[0]["note"]
            elif e:
                e = [x for x in e if "note" not in x]
                es = (f"acquisitions {statistics.median(x['acq_s'] for x in e):,.0f}/s, "
                      f"drop requests {statistics.median(x['drop_s'] for x in e):,.1f}/s, "
                      f"forced switches {statistics.median(x['forced_s'] for x in e):,.1f}/s, "
                      f"switches {statistics.median(x['switches_s'] for x in e):,.0f}/s, "
                      f"contention {statistics.median(x['contention'] for x in e):.3f}" +
                      (f" (up to {max(x['omitted'] for x in e)} threads omitted from the lines)"
                       if any(x['omitted'] for x in e) else ""))
            else:
                es = "—" if v != "agent" else "no gil line from the agent"
            sc, sb = scpu[r][v], scpu[r]["off"]
            if sc and len(sc) == len(sb):
                sr = [o / b for o, b in zip(sc, sb)]
                ss = (f"{statistics.median(sc):.1f} ({min(sc):.1f}–{max(sc):.1f})",
                      f"{statistics.median(sr):.4f} ({min(sr):.4f}–{max(sr):.4f})")
            else:
                ss = ("—", "—")
            out.append(f"| {names[v]} | {fmt(statistics.median(xs))} | {fmt(min(xs))}–{fmt(max(xs))} | "
                       f"{statistics.median(ratios):.4f} | {min(ratios):.4f}–{max(ratios):.4f} | "
                       f"{ss[0]} | {ss[1]} | {cs} | {es} |")
        out.append("")
    return "\n".join(out)


def gil_bpfstats(a, port, pid, routes, extra, notes):
    """In-kernel run time of the agent's programs and of gil_uprobe's, one
    run each with kernel.bpf_stats_enabled=1 (separate: it slows every
    program it accounts)."""
    try:
        old = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    except OSError:
        notes.append("gil: bpf_stats unavailable; in-kernel run times skipped.")
        return

    def snap(ids):
        progs = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                                          text=True, check=True).stdout)
        return {p["id"]: (p.get("name", "?"), p.get("run_cnt", 0), p.get("run_time_ns", 0))
                for p in progs if p["id"] in ids}

    def run(label, holder_pid):
        ids = agent_prog_ids(holder_pid)
        for r in routes:
            s0, t0 = snap(ids), time.monotonic()
            reqs = run_wrk(port, a.wrk_seconds, r, GIL_WRK)
            s1, t1 = snap(ids), time.monotonic()
            wall = t1 - t0
            per = sorted(((s1[i][0], s1[i][1] - s0.get(i, ("", 0, 0))[1],
                           s1[i][2] - s0.get(i, ("", 0, 0))[2]) for i in s1), key=lambda x: -x[2])
            per = [x for x in per if x[1]]
            total = sum(x[2] for x in per)
            notes.append(f"bpf_stats, {label}, GET {r} at {reqs:,.0f} req/s: all its programs "
                         f"{total / wall / 1e6:.2f} ms per s of wall time ({total / wall / 1e7:.3f} % of a "
                         f"core, {total / wall / reqs:,.0f} ns per request): " +
                         ", ".join(f"{n} {c / wall:,.0f}/s × {ns / c:,.0f} ns" for n, c, ns in per[:10]) +
                         ("" if per else "no program ran"))

    try:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("1")
        log("gil: bpf_stats runs (agent, gil_uprobe)")
        with Agent([pid], extra["agent"]) as ag:
            run("agent (GIL measurement on)", ag.proc.p.pid)
        with UprobeTool(pid) as tool:
            run("gil_uprobe (the BPF part only: the trap of each hit is not in it)", tool.proc.p.pid)
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(old)


# --------------------------------------------------------------------------
# helpers and report

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    die(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def row(what, variant, base, other, lower_better=False):
    mb, mo = statistics.median(base), statistics.median(other)
    # change: median of the per-repetition ratios; each pair ran back to back,
    # so slow drift of the machine (other tenants, thermal) cancels in it
    change = (statistics.median(o / b for o, b in zip(other, base)) - 1) * 100
    cost = change if lower_better else -change
    return dict(what=what, variant=variant, base=mb, other=mo, change=change, cost=cost,
                n=len(base), spread=(min(base), max(base)), spread_o=(min(other), max(other)))


def fmt(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 1:
        return f"{x:.3f}"
    return f"{x:.4g}"


def report(a, rows, notes, mech, started, stages, sections=()):
    k = os.uname()
    cpu = "?"
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = []
    out.append("# stallwatch overhead benchmark\n")
    out.append(f"- date (UTC): {started}")
    out.append(f"- machine: {os.cpu_count()} vCPU ({cpu}), kernel {k.release}, {k.machine}")
    out.append(f"- stallwatch commit at start: {START_REV}")
    out.append(f"- node {subprocess.run([NODE, '--version'], capture_output=True, text=True).stdout.strip()}, "
               f"{subprocess.run([PY, '--version'], capture_output=True, text=True).stdout.strip()}")
    out.append(f"- command: `sudo ./bench/run.sh` (stages: {', '.join(stages)}; {a.reps} repetitions "
               f"per variant, alternating order; medians; wrk {a.wrk_seconds} s, loop {a.loop_seconds} s)")
    out.append(f"- 1-min load average at start: {START_LOAD}, at end: "
               f"{open('/proc/loadavg').read().split()[0]} (other work on the machine adds noise)")
    out.append(f"- agent: `{' '.join([os.path.relpath(Agent.binary, ROOT), '--json', '--interval', '1'] + Agent.extra)} --pid PID`\n")
    if rows:
        out.append("| workload and metric | variant | without (median) | with (median) | change | cost | runs | spread without | spread with |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            out.append(f"| {r['what']} | {r['variant']} | {fmt(r['base'])} | {fmt(r['other'])} | "
                       f"{r['change']:+.2f} % | {r['cost']:+.2f} % | {r['n']} | "
                       f"{fmt(r['spread'][0])}–{fmt(r['spread'][1])} | "
                       f"{fmt(r['spread_o'][0])}–{fmt(r['spread_o'][1])} |")
        out.append("\n`change` is the median of the per-repetition ratios with/without (each pair ran "
                   "back to back, so slow drift of the machine cancels); `cost` is the same change "
                   "expressed as a loss for the measured workload (throughput lost, or time added); "
                   "a negative cost means that variant measured faster, i.e. the effect is below "
                   "this machine's noise, which the spreads show.\n")
    if mech:
        out.append("## Mechanisms\n")
        out.append("| program / mechanism | type | invocations | ns per invocation |")
        out.append("|---|---|---:|---:|")
        for name, typ, cnt, ns in mech:
            out.append(f"| {name} | {typ} | {cnt:,} | {ns:,.0f} |")
        out.append("")
    out.extend(sections)
    if notes:
        out.append("## Notes\n")
        out.extend(f"- {n}" for n in notes)
        out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", default=os.path.join(ROOT, "build", "stallwatch-agent"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--loop-seconds", type=int, default=5)
    ap.add_argument("--stages", default="http,loop,incident,bystander,bpfstats,switch,uprobe,gil")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "results.md"))
    ap.add_argument("--agent-arg", action="append", default=[], help="extra agent argument")
    ap.add_argument("--incident-iter", type=int, default=100000,
                    help="pbkdf2Sync iterations of the incident stage's block (~100 ms here)")
    ap.add_argument("--incident-period", type=float, default=1.0,
                    help="incident stage: seconds between blocks (default one a second)")
    ap.add_argument("--incident-variants", action="store_true",
                    help="incident stage: also the agent without syscalls, stacks, diagnosis")
    ap.add_argument("--gil-uprobe", default=None,
                    help="gil stage: the gil_uprobe tool (default: bench/gil_uprobe next to the agent's build)")
    ap.add_argument("--no-gil-noise", dest="gil_noise", action="store_false",
                    help="gil stage: skip the second no-agent configuration (A') that measures the noise")
    ap.add_argument("--no-gil-bpfstats", dest="gil_bpfstats", action="store_false",
                    help="gil stage: skip the bpf_stats runs")
    ingest.add_args(ap)
    a = ap.parse_args()
    if os.geteuid() != 0:
        die("must run as root: the agent loads BPF programs (run it from a root shell, or: sudo ./bench/run.sh)")
    if not os.access(a.agent, os.X_OK):
        die(f"agent binary {a.agent} not found: build first (cmake -S . -B build && cmake --build build)")
    stages = [s for s in a.stages.split(",") if s]
    need = (("wrk", "wrk"), ("redis-server", "redis-server"), ("redis-benchmark", "redis-tools"),
            ("bpftool", "bpftool"), ("cc", "build-essential"))
    if stages == ["ingest"]:
        need = ()  # the agent only records; the rest is the collector and ingest_load
    for tool, pkg in need:
        if subprocess.run(["sh", "-c", f"command -v {tool} || test -x /usr/sbin/{tool}"],
                          capture_output=True).returncode:
            die(f"{tool} not found: install {pkg} (./scripts/install-deps.sh)")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    Agent.binary, Agent.extra = os.path.abspath(a.agent), a.agent_arg
    UprobeTool.binary = os.path.abspath(a.gil_uprobe or os.path.join(
        os.path.dirname(Agent.binary), "bench", "gil_uprobe"))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)

    global START_LOAD, START_REV
    START_LOAD = open("/proc/loadavg").read().split()[0]
    START_REV = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                               capture_output=True, text=True).stdout.strip() or "?"
    started = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    rows, notes, mech, sections = [], [], [], []
    for s in stages:
        if s == "http":
            stage_http(a, rows, notes)
        elif s == "loop":
            stage_loop(a, rows, notes)
        elif s == "incident":
            stage_incident(a, rows, notes)
        elif s == "bystander":
            stage_bystander(a, rows, notes)
        elif s == "bpfstats":
            stage_bpfstats(a, rows, notes, mech)
        elif s == "switch":
            stage_switch(a, rows, notes, mech)
        elif s == "uprobe":
            stage_uprobe(a, rows, notes, mech)
        elif s == "gil":
            stage_gil(a, rows, notes, sections)
        elif s == "ingest":
            ingest.stage_ingest(a, rows, notes, sections)
        else:
            die(f"unknown stage {s!r} (http, loop, incident, bystander, bpfstats, switch, uprobe, gil, ingest)")
    md = report(a, rows, notes, mech, started, stages, sections)
    with open(a.out, "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
