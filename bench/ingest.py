# SPDX-License-Identifier: Apache-2.0
"""Bench stage `ingest`: what the collector costs per sample, per agent and per scrape.

Run through bench/run.sh --stages ingest (or bench/bench.py --stages ingest).
Four parts, each against a fresh stallwatch-collector:

  record      (only when the recording is missing, or --ingest-record) a real
              agent, --interval 1, watches tests/workloads/node_block.js and
              py_asyncio.py while both block their loops on a schedule, for
              --ingest-record-seconds; `ingest_load record` saves its frames
              to bench/out/ingest-recording.swf
  throughput  `ingest_load replay` sends the recording as --ingest-conns
              distinct agents as fast as the collector takes them;
              samples/s per core = samples folded / collector CPU seconds
              (utime+stime from /proc/PID/stat), and wall throughput. Each run
              is checked: frames_total and the sum of iterations_total grew
              by exactly what was sent, no bad frame.
  rss         100 and 1,000 agents, each one batch a second; VmRSS and VmHWM
              after a warm-up
  scrape      enough agents for ~10,000 and ~50,000 series; 50 timed GET
              /metrics each (median, p99, body size)

A sample is one number the collector folds (bench/ingest_load.c, count_batch:
a LoopSummary's counters and each histogram bucket it sends, a GilSummary's
counters and 5 per thread, an incident, a health counter). "OTel-style
points" count each LoopSummary's histogram as one point instead, as the
OpenTelemetry Collector's data points do.
"""
import http.client
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVERS = os.path.join(ROOT, "tests", "workloads")
NODE = "/usr/bin/node"
PY = "/usr/bin/python3.11"
RECORDING = os.path.join(HERE, "out", "ingest-recording.swf")
# every loop the recording holds must have its series: the default cap (1024
# loops) would refuse most agents of the 1,000-agent run, which would then
# cost nothing
MAX_LOOPS = 65536


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith(key + ":"):
                return int(l.split()[1])
    return None


class Collector:
    def __init__(self, binary, max_conns):
        self.lport, self.hport = free_port(), free_port()
        self.p = subprocess.Popen([binary, "--listen", f"127.0.0.1:{self.lport}",
                                   "--http", f"127.0.0.1:{self.hport}",
                                   "--max-loops", str(MAX_LOOPS),
                                   "--max-connections", str(max_conns),
                                   # every replayed agent comes from 127.0.0.1:
                                   # the per-address cap (16) must not apply
                                   "--max-per-peer", str(max_conns)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + 10
        while True:
            try:
                self.get("/healthz")
                break
            except OSError:
                if self.p.poll() is not None or time.monotonic() > end:
                    die(f"the collector did not start: {self.p.stderr.read()}")
                time.sleep(0.05)

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.hport, timeout=60)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200:
            raise OSError(f"GET {path}: {r.status}")
        return body

    def scrape(self):
        t = time.perf_counter()
        body = self.get("/metrics")
        return body, time.perf_counter() - t

    def metrics(self):
        """Series (non-comment lines), frames_total, bad frames, sum of iterations."""
        body = self.get("/metrics").decode()
        m = dict(series=0, frames=0, bad=0, iterations=0, refused=0, dropped=0, gap=0)
        for l in body.splitlines():
            if not l or l.startswith("#"):
                continue
            m["series"] += 1
            name, _, val = l.rpartition(" ")
            v = float(val)
            if name.startswith("stallwatch_collector_frames_total"):
                m["frames"] += int(v)
            elif name.startswith("stallwatch_collector_bad_frames_total"):
                m["bad"] += int(v)
            elif name.startswith("stallwatch_eventloop_iterations_total"):
                m["iterations"] += int(v)
            elif name.startswith("stallwatch_collector_connections_refused_total"):
                m["refused"] += int(v)
            elif name.startswith("stallwatch_collector_series_dropped_total"):
                m["dropped"] += int(v)
            elif name.startswith("stallwatch_collector_batches_gap_total"):
                m["gap"] += int(v)
        return m

    def cpu(self):
        return proc_cpu(self.p.pid)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def run_json(argv, timeout):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    objs = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode:
        die(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    return objs


def record(a, tool, out):
    """A real agent on real workloads that block; its frames saved to out."""
    secs = a.ingest_record_seconds
    n = max(2, int(secs // 2.2))
    # spin: on CPU; sleep: Atomics.wait off CPU (node); cpu and sleep (python)
    node_sched = ",".join(["spin:150", "sleep:120"] * ((n + 1) // 2))
    py_sched = ",".join(["cpu:120", "sleep:150"] * ((n + 1) // 2))
    wl = [subprocess.Popen([NODE, os.path.join(SERVERS, "node_block.js"), "--schedule", node_sched,
                            "--gap-ms", "2000", "--tick-ms", "5"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True),
          subprocess.Popen([PY, os.path.join(SERVERS, "py_asyncio.py"), "--schedule", py_sched,
                            "--gap-ms", "2000", "--tick-ms", "5"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)]
    rec = agent = None
    try:
        pids = []
        for w in wl:
            ready = json.loads(w.stdout.readline())
            if ready.get("event") != "ready":
                die(f"workload did not start: {ready}")
            pids.append(str(ready["pid"]))
        rec = subprocess.Popen([tool, "record", "--listen", "0", "--out", out],
                               stdout=subprocess.PIPE, text=True)
        port = json.loads(rec.stdout.readline())["port"]
        argv = [a.agent, "--collector", f"127.0.0.1:{port}", "--interval", "1"]
        for p in pids:
            argv += ["--pid", p]
        agent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(3)  # attached, first summaries out
        if agent.poll() is not None:
            die(f"agent exited: {agent.stderr.read()[-400:]}")
        for w in wl:
            w.stdin.write("go\n")
            w.stdin.flush()
        log(f"ingest: recording agent frames for {secs} s (node and asyncio loops blocking)")
        time.sleep(secs)
        # before the workloads go: no exit in the stream (a replayed exit
        # would end the loop's series at the first pass)
        agent.send_signal(2)
        agent.wait(20)
        res = json.loads(rec.stdout.readlines()[-1])
        rec.wait(10)
    finally:
        for p in [agent, rec] + wl:
            if p and p.poll() is None:
                p.kill()
                p.wait()
    return res


def pct(xs, q):
    """Nearest-rank percentile: of 50 values, p99 is the largest."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def wait_applied(c, frames, timeout=120):
    """Until the collector counted every frame sent; returns its metrics."""
    end = time.monotonic() + timeout
    while True:
        m = c.metrics()
        if m["frames"] >= frames or m["bad"] or time.monotonic() > end:
            return m, time.monotonic()
        time.sleep(0.05)


def check(m, sent, what, notes):
    ok = (m["frames"] == sent["frames"] and m["bad"] == 0 and m["iterations"] == sent["iterations"]
          and m["refused"] == 0 and m["dropped"] == 0)
    if not ok:
        notes.append(f"ingest {what}: NOT all applied: collector frames {m['frames']} of "
                     f"{sent['frames']} sent, iterations {m['iterations']} of {sent['iterations']}, "
                     f"bad frames {m['bad']}, refused {m['refused']}, series dropped {m['dropped']}")
    return ok


def throughput(a, tool, coll_bin, notes, mix):
    runs = []
    extra = ["--no-incidents"] if mix == "no incidents" else []
    for rep in range(a.ingest_reps):
        c = Collector(coll_bin, 1024)
        try:
            cpu0 = c.cpu()
            # --linger: the agents stay connected until we have read what
            # the collector holds (a gone agent's series leave /metrics
            # once this scraper has seen their final values)
            p = subprocess.Popen([tool, "replay", "--in", RECORDING, "--collector",
                                  f"127.0.0.1:{c.lport}", "--connections", str(a.ingest_conns),
                                  "--duration", str(a.ingest_seconds), "--linger"] + extra,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            # wall time from its "start" line: its encoding ran before it
            # connected, with the collector idle
            if json.loads(p.stdout.readline()).get("event") != "start":
                die(f"ingest_load replay did not start: {p.stderr.read()[-400:]}")
            t0 = time.monotonic()
            last = p.stdout.readline()
            if not last:
                p.wait(30)
                die(f"ingest_load replay failed: {p.stderr.read().strip()[-400:]}")
            sent = json.loads(last)
            m, t1 = wait_applied(c, sent["frames"])
            _, err = p.communicate(timeout=120)  # closes its stdin: the agents go
            if p.returncode:
                die(f"ingest_load replay failed: {err.strip()[-400:]}")
            cpu = c.cpu() - cpu0
            wall = t1 - t0
            ok = check(m, sent, f"throughput run {rep + 1} ({mix})", notes)
            r = dict(mix=mix, sent=sent, cpu=cpu, wall=wall, ok=ok,
                     per_core=sent["samples"] / cpu if cpu > 0 else float("nan"),
                     wall_rate=sent["samples"] / wall,
                     loops_core=sent["loops"] / cpu if cpu > 0 else float("nan"),
                     # OTel counts a histogram as one data point
                     dp_core=(sent["samples"] - sent["buckets"] + sent["loops"]) / cpu
                     if cpu > 0 else float("nan"),
                     batches_core=sent["frames"] / cpu if cpu > 0 else float("nan"),
                     util=cpu / wall)
            runs.append(r)
            log(f"ingest throughput run {rep + 1} ({mix}): {sent['samples']:,} samples in "
                f"{sent['frames']:,} batches, collector CPU {cpu:.2f} s over {wall:.2f} s: "
                f"{r['per_core']:,.0f} samples/s/core, {r['wall_rate']:,.0f} samples/s wall"
                f"{'' if ok else ' (NOT all applied)'}")
        finally:
            c.stop()
    return runs


def fleet(a, tool, coll_bin, nconns, seconds, scrapes, notes, what):
    """nconns agents at one batch a second each; RSS after the warm-up, scrape times."""
    c = Collector(coll_bin, max(nconns, 256))
    res = dict(conns=nconns)
    try:
        p = subprocess.Popen([tool, "replay", "--in", RECORDING, "--collector",
                              f"127.0.0.1:{c.lport}", "--connections", str(nconns),
                              "--duration", str(seconds), "--rate", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        start = json.loads(p.stdout.readline())
        if start.get("event") != "start":
            die(f"ingest_load replay did not start: {p.stderr.read()[-400:]}")
        t0 = time.monotonic()
        time.sleep(max(1, seconds - a.ingest_warm_margin))
        res["rss_kb"] = proc_status_kb(c.p.pid, "VmRSS")
        res["hwm_kb"] = proc_status_kb(c.p.pid, "VmHWM")
        res["warm_s"] = time.monotonic() - t0
        m = c.metrics()
        res["series"] = m["series"]
        if scrapes:
            # the collector's CPU per scrape, which the machine's other
            # tenants do not inflate as they do the wall time: its CPU over
            # the scrapes less its ingest CPU rate just before them
            c0, w0 = c.cpu(), time.monotonic()
            time.sleep(2)
            rate = (c.cpu() - c0) / (time.monotonic() - w0)
            times, size = [], 0
            c0, w0 = c.cpu(), time.monotonic()
            for _ in range(scrapes):
                body, dt = c.scrape()
                times.append(dt)
                size = len(body)
            cpu = c.cpu() - c0 - rate * (time.monotonic() - w0)
            res.update(scrape_med=statistics.median(times), scrape_p99=pct(times, 0.99),
                       scrape_bytes=size, scrapes=scrapes, scrape_cpu=max(cpu, 0) / scrapes,
                       ingest_cpu=rate)
        out, err = p.communicate(timeout=seconds + 120)
        if p.returncode:
            die(f"ingest_load replay failed: {err.strip()[-400:]}")
        sent = json.loads(out.splitlines()[-1])
        m, _ = wait_applied(c, sent["frames"])
        res["ok"] = check(m, sent, what, notes)
        res["sent"] = sent
        res["cpu"] = c.cpu()
        log(f"ingest {what}: {nconns} agents, {res['series']:,} series, VmRSS {res['rss_kb']:,} kB, "
            f"VmHWM {res['hwm_kb']:,} kB"
            + (f", scrape median {res['scrape_med'] * 1e3:.1f} ms p99 {res['scrape_p99'] * 1e3:.1f} ms, "
               f"CPU {res['scrape_cpu'] * 1e3:.1f} ms per scrape, {res['scrape_bytes']:,} bytes, "
               f"ingest {res['ingest_cpu'] * 100:.1f} % of a core" if scrapes else ""))
    finally:
        c.stop()
    return res


def stage_ingest(a, rows, notes, sections):
    build = os.path.dirname(os.path.abspath(a.agent))
    tool = os.path.join(build, "bench", "ingest_load")
    coll_bin = a.collector or os.path.join(build, "stallwatch-collector")
    for b in (tool, coll_bin):
        if not os.access(b, os.X_OK):
            die(f"{b} not found: build it (cmake --build BUILD --target ingest_load stallwatch-collector)")
    if a.ingest_record or not os.path.exists(RECORDING):
        res = record(a, tool, RECORDING)
        log(f"ingest: recorded {res['frames']} frames, {res['bytes']:,} bytes to {RECORDING}")
    info = run_json([tool, "info", "--in", RECORDING], 60)[-1]
    log(f"ingest: recording {info}")

    runs = []
    for mix in ("as recorded", "no incidents"):
        runs.append(throughput(a, tool, coll_bin, notes, mix))
    fleets = []
    for n in a.ingest_agents:
        fleets.append(fleet(a, tool, coll_bin, n, a.ingest_fleet_seconds, a.ingest_rss_scrapes, notes,
                            f"rss {n} agents"))
    # agents for a series count: from the first fleet's series per agent
    per_agent = (fleets[0]["series"] - 40) / fleets[0]["conns"] if fleets else None
    scrapes = []
    for target in a.ingest_series:
        if not per_agent:
            break
        n = max(1, math.ceil(target / per_agent))
        if n > 1024:
            notes.append(f"ingest scrape at {target:,} series needs {n} agents, over the store's 1,024: skipped")
            continue
        scrapes.append(fleet(a, tool, coll_bin, n, a.ingest_fleet_seconds, a.ingest_scrapes, notes,
                             f"scrape ~{target:,} series"))
    sections.extend(report(a, info, runs, fleets, scrapes))


def report(a, info, runs, fleets, scrapes):
    out = ["## Collector ingest\n"]
    out.append(f"- recording: {info['frames']} batches of a real agent (`--interval 1`, node_block.js and "
               f"py_asyncio.py blocking): {info['loops']} LoopSummaries ({info['buckets']} histogram "
               f"buckets), {info['gil']} GilSummaries ({info['gil_threads']} threads), "
               f"{info['incidents']} incidents, {info['samples']:,} samples, {info['bytes']:,} bytes "
               f"decoded")
    out.append(f"- replay: `ingest_load replay --connections {a.ingest_conns} --duration "
               f"{a.ingest_seconds}` (as fast as the collector takes them), {a.ingest_reps} runs per mix, "
               f"a fresh collector each; per core = samples / collector utime+stime\n")
    for mruns in runs:
        if not mruns:
            continue
        out.append(f"**{mruns[0]['mix']}**" + (" (`--no-incidents`: the same frames without their "
                   "incidents)" if mruns[0]["mix"] == "no incidents" else "") + "\n")
        out.append("| run | samples | batches | LoopSummaries | incidents | collector CPU s | wall s | CPU/wall | "
                   "samples/s/core | OTel-style points/s/core | batches/s/core | LoopSummaries/s/core | samples/s wall | all applied |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for i, r in enumerate(mruns):
            s = r["sent"]
            out.append(f"| {i + 1} | {s['samples']:,} | {s['frames']:,} | {s['loops']:,} | {s['incidents']:,} | "
                       f"{r['cpu']:.2f} | {r['wall']:.2f} | {r['util']:.2f} | {r['per_core']:,.0f} | {r['dp_core']:,.0f} | "
                       f"{r['batches_core']:,.0f} | {r['loops_core']:,.0f} | {r['wall_rate']:,.0f} | "
                       f"{'yes' if r['ok'] else 'NO'} |")
        med = lambda k: statistics.median(r[k] for r in mruns)
        out.append(f"| median | | | | | | | | {med('per_core'):,.0f} | {med('dp_core'):,.0f} | {med('batches_core'):,.0f} | "
                   f"{med('loops_core'):,.0f} | {med('wall_rate'):,.0f} | |\n")
    if fleets or scrapes:
        out.append("| agents (1 batch/s each) | series | VmRSS | VmHWM | /metrics median | p99 (of N) | "
                   "collector CPU per scrape | body | ingest CPU | all applied |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for f in fleets + scrapes:
            sc = (f"{f['scrape_med'] * 1e3:.1f} ms | {f['scrape_p99'] * 1e3:.1f} ms ({f['scrapes']}) | "
                  f"{f['scrape_cpu'] * 1e3:.1f} ms | {f['scrape_bytes'] / 1e6:.2f} MB | "
                  f"{f['ingest_cpu'] * 100:.1f} % of a core" if "scrape_med" in f else "| | | |")
            out.append(f"| {f['conns']:,} | {f['series']:,} | {f['rss_kb'] / 1024:.1f} MiB | "
                       f"{f['hwm_kb'] / 1024:.1f} MiB | {sc} | {'yes' if f['ok'] else 'NO'} |")
        out.append(f"\nRSS read {a.ingest_fleet_seconds - a.ingest_warm_margin} s after the agents "
                   f"started; `--max-loops {MAX_LOOPS}` so that no agent's loops are refused. "
                   f"Scrapes follow, one after the other, while the agents go on sending; "
                   f"p99 is nearest-rank (of 10 or 50: the slowest); CPU per scrape = the "
                   f"collector's CPU over the scrapes less its ingest CPU rate of the 2 s before, "
                   f"per scrape; ingest CPU = that rate.\n")
    return out


def add_args(ap):
    ap.add_argument("--collector", default=None, help="ingest: collector binary (default: next to the agent)")
    ap.add_argument("--ingest-record", action="store_true", help="ingest: record again even if the file exists")
    ap.add_argument("--ingest-record-seconds", type=int, default=20)
    ap.add_argument("--ingest-conns", type=int, default=4, help="ingest: agents of the throughput runs")
    ap.add_argument("--ingest-seconds", type=int, default=10, help="ingest: length of a throughput run")
    ap.add_argument("--ingest-reps", type=int, default=3)
    ap.add_argument("--ingest-agents", type=lambda s: [int(x) for x in s.split(",") if x],
                    default=[100, 1000], help="ingest: agents of the RSS runs")
    ap.add_argument("--ingest-series", type=lambda s: [int(x) for x in s.split(",") if x],
                    default=[10000, 50000], help="ingest: series counts of the scrape runs")
    ap.add_argument("--ingest-fleet-seconds", type=int, default=45)
    ap.add_argument("--ingest-warm-margin", type=int, default=20,
                    help="ingest: RSS and scrapes this many seconds before a fleet run ends")
    ap.add_argument("--ingest-scrapes", type=int, default=50, help="ingest: timed scrapes per scrape run")
    ap.add_argument("--ingest-rss-scrapes", type=int, default=10, help="ingest: timed scrapes per RSS run")
