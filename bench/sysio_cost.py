# SPDX-License-Identifier: Apache-2.0
"""What bpf/sysio.bpf.c costs a loop thread per syscall (docs/PERFORMANCE.md,
"sysio"). Runs bench/workloads/py_syscalls.py (asyncio, getppid() in a loop)
without the agent, with the agent --no-syscalls, with it (every syscall of a
busy stretch counted) and with --syscalls-gated (counted only once the
stretch is threshold/4 old), alternating, and prints medians of the
in-process ns per syscall and, from kernel.bpf_stats_enabled, the in-kernel
run time per invocation of sysio_enter/sysio_exit over the measured window.

    python3 bench/sysio_cost.py --agent BUILD/stallwatch-agent [--rounds 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3.11"
VARIANTS = {"off": None, "no-syscalls": ["--no-syscalls"], "counted": [],
            "gated": ["--syscalls-gated"]}


def progs():
    out = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                                    text=True, check=True).stdout)
    return {p["name"]: (p.get("run_cnt", 0), p.get("run_time_ns", 0)) for p in out
            if p.get("name") in ("sysio_enter", "sysio_exit")}


def run(agent, mode, n, reps, extra, bystander=False):
    other = None
    w = subprocess.Popen([PY, os.path.join(HERE, "workloads", "py_syscalls.py"), "--mode", mode,
                          "--n", str(n), "--reps", str(reps)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    ready = json.loads(w.stdout.readline())
    target = ready["pid"]
    if bystander:
        # the agent watches another loop: the workload is a bystander
        other = subprocess.Popen([PY, "-c", "import asyncio; asyncio.run(asyncio.sleep(3600))"])
        time.sleep(0.5)
        target = other.pid
    ag = None
    if extra is not None:
        ag = subprocess.Popen([agent, "--pid", str(target), "--json", "--interval", "100"]
                              + extra, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in ag.stdout:
            if '"kind":"process"' in line:
                break
        time.sleep(1.0)
    p0 = progs()
    w.stdin.write("go\n")
    w.stdin.flush()
    res = json.loads(w.stdout.readline())
    p1 = progs()
    w.stdin.close()
    w.wait()
    if ag:
        ag.terminate()
        ag.wait()
    if other:
        other.kill()
        other.wait()
    bpf = {k: ((p1[k][1] - p0.get(k, (0, 0))[1]) / max(1, p1[k][0] - p0.get(k, (0, 0))[0]))
           for k in p1}
    return statistics.median(res["ns_per_syscall"]), bpf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-stats", action="store_true",
                    help="leave kernel.bpf_stats_enabled alone: its clock reads add to the "
                    "in-process figures")
    ap.add_argument("--modes", default="long,short,bystander")
    a = ap.parse_args()
    old = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("0" if a.no_stats else "1")
    try:
        sizes = {"long": 300000, "short": 50000, "bystander": 300000}
        for mode in a.modes.split(","):
            n = sizes[mode]
            ns = {v: [] for v in VARIANTS}
            bpf = {v: [] for v in VARIANTS}
            for _ in range(a.rounds):
                for v, extra in VARIANTS.items():
                    x, b = run(a.agent, "long" if mode == "bystander" else mode, n, 5, extra,
                               bystander=mode == "bystander")
                    ns[v].append(x)
                    bpf[v].append(b)
            base = statistics.median(ns["off"])
            print(f"{mode}: ns per getppid() in-process, median of {a.rounds} rounds")
            for v in VARIANTS:
                m = statistics.median(ns[v])
                kern = ""
                if v in ("counted", "gated") and not a.no_stats:
                    e = statistics.median(b.get("sysio_enter", 0) for b in bpf[v])
                    x = statistics.median(b.get("sysio_exit", 0) for b in bpf[v])
                    kern = f"  bpf run time/invocation: enter {e:.0f} ns, exit {x:.0f} ns"
                print(f"  {v:12s} {m:7.1f} ns  ({m - base:+.1f}){kern}")
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(old)


if __name__ == "__main__":
    sys.exit(main())
