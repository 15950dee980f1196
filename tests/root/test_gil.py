# SPDX-License-Identifier: Apache-2.0
"""Root tier: GIL contention of real CPython processes, measured from outside
(issue 7 §8), on Debian's stripped /usr/bin/python3.11 and pyenv
CPython 3.9, 3.12 and 3.13, one per layout of the GIL's state (3.10 and
3.11.7 with SW_GIL_ALL=1; see RUN_INTERPRETERS).

One agent per interpreter (--json, --interval 1) attached to four
tests/workloads/py_gil.py processes, each told "go" in turn so that they do
not share the CPUs while measured:
  threads    1, 2 and 4 pure-Python CPU-bound threads (one phase each): every
             thread's GIL wait share within 5 points of (N-1)/N (and within
             what its own clock says it did not run: CPython's GIL is not
             fair, the mean of the N is (N-1)/N), drop requests when N >= 2,
             none when N = 1, hold at least its CPU share. Then a CPU-bound
             thread beside one that sleeps 50 ms at a time and one blocked
             in os.read() all along: neither holds the GIL beyond its CPU
             time; the blocked one neither waits nor asks for a drop. (The
             sleeper does ask, once per wake: CPython's take_gil asks the
             holder to drop after a switch interval, whoever waits.)
  native     threads in native calls that release the GIL (numpy matrix
             products on Debian's python3-numpy, hashlib.sha256 of 8 MB on
             pyenv): never flagged, no waiting threads, contention below the
             judge's line (common/gil.h) in every interval.
  loop-cpu   an asyncio loop ticking every 5 ms beside one CPU-bound thread:
             the loop's GIL wait share between what its ticks' lateness
             allows (at least a switch interval per tick), each interval of
             the window flagged python.loop_starved_by_gil, and no incident
             but where the loop's own clock saw a tick 50 ms late.
  loop-hold  the loop beside a thread holding the GIL 100-400 ms at a time in
             json.dumps: one python.loop_starved_by_gil incident per stall,
             over the loop's own late tick, naming the holder's native tid,
             its name and the workload's function making the call (file:line).
Ground truth comes from the workload (py_gil.py): native tids, the threads'
own spans on CLOCK_MONOTONIC, CPU time, run-queue wait, the loop's ticks.
The agent's per-thread figures are summed over every gil_summary line of a
tid: a phase's threads are new threads parked (no GIL use) once the phase
is over, so all the agent counts for them happened in the phase. The
workloads and the agent run at nice -20 (their session's autogroup too,
NICE below); what run-queue time is left excuses as much wait share, said
in a NOTE.

SW_ONLY=debian,3_12: a subset of the interpreters while debugging;
SW_GIL_DUMP=DIR keeps the agent's and the workloads' lines.
"""
import math
import os
import time
import unittest

import swtest
from swtest import SYS_PYTHON, log, workload

THRESHOLD_MS = 50
PHASE_S = 2.0        # each threads/native phase
LOOP_S = 3.0         # the loop-cpu window: at least two whole 1 s intervals
SHARE_TOL = 0.05     # issue 7 §8: within 5 points
# Sampled hold (--gil-hz 100, 2 s: 200 samples): four binomial standard
# deviations at a share of 0.5 are 0.14.
HOLD_TOL = 0.15
# The workloads' nice value, for their session's autogroup too: on this
# shared machine (2 CPUs, other builds and benchmarks), a thread that has
# just dropped the GIL may be preempted before its futex wait, and is then
# neither holding nor waiting for the GIL; measured 2026-11-22 with the
# machine busy: run-queue 28 % of each of 2 CPU-bound threads at nice 0,
# their futex waits 24 % of the time instead of 50 %; at -20, 1-2 % and
# 50-51 %. What run-queue time is left excuses as much of the wait share.
NICE = -20


def _judge_line(name):
    """One of the judge's lines, read from common/gil.h: the test follows
    the thresholds the agent is built with."""
    import re
    with open(os.path.join(swtest.SOURCE, "common", "gil.h")) as f:
        m = re.search(r"^#define %s ([0-9.]+)\s*$" % name, f.read(), re.M)
    if not m:
        raise RuntimeError("no #define %s in common/gil.h" % name)
    return float(m.group(1))


CONTENTION_MIN = _judge_line("SW_GIL_CONTENTION_MIN")
WAITERS_MIN = int(_judge_line("SW_GIL_WAITERS_MIN"))
WAITER_MIN_SHARE = _judge_line("SW_GIL_WAITER_MIN_SHARE")
LOOP_SHARE_MIN = _judge_line("SW_GIL_LOOP_SHARE_MIN")
PATTERN_CONTENTION = "python.gil_contention"
PATTERN_LOOP = "python.loop_starved_by_gil"

INTERPRETERS = []
if os.access(SYS_PYTHON, os.X_OK):
    INTERPRETERS.append(("debian-" + os.path.basename(SYS_PYTHON), SYS_PYTHON, "numpy"))
INTERPRETERS += [("pyenv-" + label, exe, "sha256") for label, exe in swtest.pyenv_pythons()]

# The workloads run on one interpreter per layout of the GIL's state, not on
# all six (20 s each, and the suite must stay under 15 minutes): 3.9-3.11
# keep it in _PyRuntime.ceval (pyenv 3.9, and Debian's stripped 3.11.2 read
# through .eh_frame and _PyRuntime alone), 3.12 moved it to the interpreter,
# 3.13 added the free-threading check. Every row of the layout table, 3.10
# and 3.11.7 included, is checked against the DWARF of its build by
# test_python_layout. SW_GIL_ALL=1 runs every interpreter found.
GIL_PYENV = {"3.9", "3.12", "3.13"}


def _minor(label):
    return ".".join(label.split("-")[1].split(".")[:2])


RUN_INTERPRETERS = [p for p in INTERPRETERS
                    if os.environ.get("SW_GIL_ALL") == "1" or p[0].startswith("debian-")
                    or _minor(p[0]) in GIL_PYENV]


# ---------------------------------------------------------------- agent views
def gil_threads(agent, pid):
    return agent.lines("gil_summary", pid=pid)


def gil_procs(agent, pid):
    return [o for o in agent.lines("gil", pid=pid) if o.get("measured") is not False]


def totals(agent, pid, tid):
    """A thread's figures summed over all its gil_summary lines; None when
    the agent printed none for it."""
    ls = [o for o in gil_threads(agent, pid) if o.get("tid") == tid]
    if not ls:
        return None
    t = {"lines": len(ls), "names": sorted({str(o.get("thread")) for o in ls}),
         "loop": any(o.get("loop") is True for o in ls)}
    for k in ("wait_ms", "hold_ms", "acquisitions", "drop_requests", "forced_switches",
              "switch_wait_ms", "hold_samples", "caused_wait_ms"):
        t[k] = sum(float(o.get(k, 0) or 0) for o in ls)
    return t


def intervals(agent, pid):
    """[(gil line, [its gil_summary lines])] in order: the agent prints a
    process's thread lines, then its process line, for each interval."""
    out, pending = [], []
    for o in agent.out.all():
        if o.get("pid") != pid:
            continue
        if o.get("kind") == "gil_summary":
            pending.append(o)
        elif o.get("kind") == "gil" and o.get("measured") is not False:
            out.append((o, pending))
            pending = []
    return out


def window_of(o):
    """(start_ns, end_ns) of the interval a gil/gil_summary line covers, when
    the line says (start_ns/end_ns, or ts_ns: its end); else None."""
    if "start_ns" in o and "end_ns" in o:
        return int(o["start_ns"]), int(o["end_ns"])
    if "ts_ns" in o and "interval_ms" in o:
        e = int(o["ts_ns"])
        return e - int(float(o["interval_ms"]) * 1e6), e
    return None


def inside(o, start_ns, end_ns):
    w = window_of(o)
    return w is not None and w[0] >= start_ns and w[1] <= end_ns


def in_window(i, start_ns, end_ns):
    """The incident overlaps [start_ns, end_ns]: the workload's measured
    window, where its own clock would have seen a stall."""
    s = int(i["start_ns"])
    return s < end_ns and s + int(float(i["duration_ms"]) * 1e6) > start_ns


def fmt_totals(t):
    if t is None:
        return "no gil_summary line"
    return ("wait %.1f ms hold %.1f ms (%d samples) drops %d forced %d acq %d switch_wait "
            "%.1f ms, %d lines, thread %s%s"
            % (t["wait_ms"], t["hold_ms"], t["hold_samples"], t["drop_requests"],
               t["forced_switches"], t["acquisitions"], t["switch_wait_ms"], t["lines"],
               "/".join(t["names"]), " loop" if t["loop"] else ""))


def proc_line_str(o):
    keys = ("interval_ms", "samples", "held_samples", "utilization", "contention",
            "waiting_threads", "switches", "loop_tid", "loop_wait_share", "pattern",
            "start_ns", "end_ns", "ts_ns")
    return "{" + ", ".join("%s=%s" % (k, o.get(k)) for k in keys if k in o) + "}"


# ---------------------------------------------------------------- the case
class GilCase(swtest.Checks):
    python = SYS_PYTHON
    native = "numpy"

    @classmethod
    def setUpClass(cls):
        py, wl = cls.python, workload("py_gil.py")
        nice = ["--nice", str(NICE)]
        cls.argvs = {
            "threads": [py, wl, "threads", "--seconds", str(PHASE_S)] + nice,
            "native": [py, wl, "native", "--call", cls.native, "--seconds", str(PHASE_S)] + nice,
            "loop-cpu": [py, wl, "loop-cpu", "--seconds", str(LOOP_S)] + nice,
            "loop-hold": [py, wl, "loop-hold"] + nice,
        }
        cls.run_ = run = swtest.Run()
        cls.w = {}
        try:
            names = list(cls.argvs)
            ws = run.attach([cls.argvs[n] for n in names], threshold_ms=THRESHOLD_MS,
                            interval=1)
            cls.w = dict(zip(names, ws))
            # the agent's holder sampler must not be starved by the
            # workloads' weight (NICE): the same for its session
            try:
                with open("/proc/%d/autogroup" % run.agent.p.pid, "w") as f:
                    f.write(str(NICE))
            except OSError as e:
                log("NOTE: agent autogroup nice not set: %s" % e)
            # the GIL is measured from the agent's first interval on, which
            # its first gil line closes: the threads start after it
            for w in ws:
                if run.agent.out.wait_for(lambda o, pid=w.pid: o.get("kind") == "gil"
                                          and o.get("pid") == pid, 15) is None:
                    raise AssertionError("no gil line for pid %d within 15 s of attach\n%s"
                                         % (w.pid, run.agent.describe()))
            for n in names:  # one at a time: they do not share the CPUs
                cls.w[n].go()
                cls.w[n].wait_done(60)
            time.sleep(1.7)  # the last interval's lines out
            run.rc = run.agent.stop()
        finally:
            run.close()
        cls.agent = run.agent
        dump = os.environ.get("SW_GIL_DUMP")  # a directory: keep every line
        if dump:
            os.makedirs(dump, exist_ok=True)
            base = os.path.join(dump, cls.__name__)
            with open(base + ".agent.jsonl", "w") as f:
                f.write(run.agent.out.text() + "\n")
            for n, w in cls.w.items():
                with open("%s.%s.jsonl" % (base, n), "w") as f:
                    f.write(w.out.text() + "\n")
        for n, w in cls.w.items():
            log("%s %s: pid %d, %d gil lines, %d gil_summary lines"
                % (os.path.basename(py), n, w.pid, len(gil_procs(cls.agent, w.pid)),
                   len(gil_threads(cls.agent, w.pid))))

    def truth(self, name, event):
        return self.w[name].out.all(lambda o: o.get("event") == event)

    def one(self, name, event):
        got = self.truth(name, event)
        self.assertEqual(len(got), 1, "%s workload: %d %r lines, expected 1\n%s"
                         % (name, len(got), event, self.w[name].out.text()))
        return got[0]

    def dump(self, pid):
        return "\n".join(["gil lines of pid %d:" % pid]
                         + ["  " + proc_line_str(o) for o in gil_procs(self.agent, pid)])

    # ------------------------------------------------------------ common
    def test_agent_clean(self):
        self.assertCleanExit(self.agent)
        self.assertJsonOnly(self.agent)

    def test_measured(self):
        """Every workload measured: gil lines, none saying it could not,
        with the interpreter's version and switch interval."""
        for n, w in self.w.items():
            pid = w.pid
            nots = [o for o in self.agent.lines("gil", pid=pid) if o.get("measured") is False]
            self.assertFalse(nots, "%s (pid %d, %s %s): the agent could not measure the GIL: %s"
                             % (n, pid, self.python, w.ready["version"], nots))
            procs = gil_procs(self.agent, pid)
            self.assertTrue(procs, "%s (pid %d): no {\"kind\":\"gil\"} line\n%s"
                            % (n, pid, self.agent.describe()))
            for o in procs:
                if o.get("version") is not None:
                    self.assertEqual(str(o["version"]), w.ready["version"],
                                     "%s: gil line version: %s" % (n, proc_line_str(o)))
                self.assertAlmostEqual(float(o.get("switch_interval_ms", -1)),
                                       w.ready["switch_interval_ms"], delta=0.01,
                                       msg="%s: switch interval read from the process: %s"
                                       % (n, o))

    # ------------------------------------------------------------ case 1
    def test_cpu_threads(self):
        """N CPU-bound threads: each waits (N-1)/N of its time, within 5
        points; drop requests when N >= 2, none when N = 1."""
        w = self.w["threads"]
        si_ms = w.ready["switch_interval_ms"]
        threads = self.truth("threads", "thread")
        phases = {p["phase"]: p for p in self.truth("threads", "phase")}
        problems, rows = [], []
        for ph in ("cpu1", "cpu2", "cpu4"):
            n = int(ph[3:])
            want = (n - 1) / n
            p = phases[ph]
            mine = [t for t in threads if t["phase"] == ph]
            self.assertEqual(len(mine), n, "phase %s: %d threads reported" % (ph, len(mine)))
            hold_sum = 0.0
            waits, runqs = [], []
            runq_sum = sum(t["runq_ns"] / (t["end_ns"] - p["start_ns"]) for t in mine)
            for t in mine:
                # the span from the phase's start (the threads' start
                # signal: waits before their first clock read are theirs)
                # to the thread's last clock read
                span = t["end_ns"] - p["start_ns"]
                gap = t["gap_ns"] + (t["start_ns"] - p["start_ns"])
                a = totals(self.agent, w.pid, t["tid"])
                rows.append("%s %-8s tid %d span %.3f s: truth gap %.3f runq %.3f cpu %.3f | "
                            "agent wait %.3f hold %.3f | %s"
                            % (ph, t["name"], t["tid"], span / 1e9, gap / span,
                               t["runq_ns"] / span, t["cpu_ns"] / span,
                               a["wait_ms"] * 1e6 / span if a else math.nan,
                               a["hold_ms"] * 1e6 / span if a else math.nan, fmt_totals(a)))
                if a is None:
                    problems.append("%s %s (tid %d): no gil_summary line" % (ph, t["name"], t["tid"]))
                    continue
                ws = a["wait_ms"] * 1e6 / span
                hs = a["hold_ms"] * 1e6 / span
                hold_sum += hs
                if t["name"] not in a["names"]:
                    problems.append("%s tid %d: thread name %s, the workload's is %r"
                                    % (ph, t["tid"], a["names"], t["name"]))
                # (N-1)/N, as issue 7 §8 has it; below by as much as the
                # thread's run-queue wait, which may hide a wait for the GIL
                # (preempted after dropping it, before its futex wait);
                # and CPython's GIL is not fair: a thread whose own clock
                # says it ran less than its 1/N answers to that clock
                rq = t["runq_ns"] / span
                own = gap / span
                fair = abs(own - want) <= SHARE_TOL
                if ws > want + SHARE_TOL or ws < want - SHARE_TOL - rq:
                    if fair:
                        problems.append("%s %s (tid %d): GIL wait share %.3f, expected %.3f +- "
                                        "%.2f (%.3f lower with its run-queue share)"
                                        % (ph, t["name"], t["tid"], ws, want, SHARE_TOL, rq))
                    else:
                        log("NOTE: %s %s: GIL wait share %.3f, not %.3f +- %.2f, but the "
                            "thread's own clock says it did not run %.3f of its span (an "
                            "unfair GIL): checked against that" % (ph, t["name"], ws, want,
                                                                    SHARE_TOL, own))
                elif ws < want - SHARE_TOL:
                    log("NOTE: %s %s: GIL wait share %.3f below %.3f - %.2f, within its "
                        "run-queue share %.3f" % (ph, t["name"], ws, want, SHARE_TOL, rq))
                # the agent cannot see more waiting than the thread itself
                # saw time pass without running Python
                if ws > own + 0.03:
                    problems.append("%s %s (tid %d): GIL wait share %.3f above the share of "
                                    "its span it did not run Python, %.3f (its own clock)"
                                    % (ph, t["name"], t["tid"], ws, own))
                # nor less than that less its run-queue wait (preempted
                # while holding the GIL, or before waiting for it) and the
                # hypervisor's steal measured over its span (paravirt steal
                # is left out of a thread's CPU clock, so its own gap grows
                # by it: 17 points once on 3.13.0 with 3 points of run
                # queue, the agent's share right at (N-1)/N), within the
                # issue's 5 points: the rest of the thread's own gap is time
                # it held the GIL without running Python
                st = min(swtest.steal.steal_ns(p["start_ns"], t["end_ns"]), gap) / span
                low = (gap - t["runq_ns"]) / span - st - SHARE_TOL
                if ws < low:
                    problems.append("%s %s (tid %d): GIL wait share %.3f below %.3f: its own "
                                    "stopped share %.3f less its run-queue share %.3f and "
                                    "the steal %.3f" % (ph, t["name"], t["tid"], ws, low, own,
                                                        rq, st))
                waits.append(ws)
                runqs.append(rq)
                if n == 1 and hs < 0.9:
                    problems.append("%s %s (tid %d): alone, it held the GIL %.3f of its span"
                                    % (ph, t["name"], t["tid"], hs))
                if n == 1 and a["drop_requests"] != 0:
                    problems.append("%s %s (tid %d): %d drop requests, alone it asks none"
                                    % (ph, t["name"], t["tid"], a["drop_requests"]))
                if n >= 2 and a["drop_requests"] <= 0:
                    problems.append("%s %s (tid %d): no drop request among %d CPU-bound threads"
                                    % (ph, t["name"], t["tid"], n))
                # a drop request is a wait that timed out after the switch
                # interval: they cannot add up to more than the waits (10 %
                # off: the deadline is set a moment before the futex call)
                if a["drop_requests"] * si_ms * 0.9 > a["wait_ms"] + si_ms:
                    problems.append("%s %s (tid %d): %d drop requests of %.1f ms each exceed "
                                    "its %.1f ms of GIL wait" % (ph, t["name"], t["tid"],
                                                                 a["drop_requests"], si_ms,
                                                                 a["wait_ms"]))
                # it held the GIL at least whenever it ran (sampled)
                if hs < t["cpu_ns"] / span - HOLD_TOL:
                    problems.append("%s %s (tid %d): hold share %.3f below its CPU share %.3f"
                                    % (ph, t["name"], t["tid"], hs, t["cpu_ns"] / span))
            # a forced switch follows a drop request against the holder
            tots = [totals(self.agent, w.pid, t["tid"]) for t in mine]
            if all(tots):
                forced = sum(x["forced_switches"] for x in tots)
                drops = sum(x["drop_requests"] for x in tots)
                if forced > drops + n:
                    problems.append("%s: %d forced switches but %d drop requests"
                                    % (ph, forced, drops))
            # however unfair, the GIL is one: their mean is (N-1)/N
            if len(waits) == n:
                mean, mrq = sum(waits) / n, sum(runqs) / n
                if mean > want + SHARE_TOL or mean < want - SHARE_TOL - mrq:
                    problems.append("%s: mean GIL wait share %.3f, expected %.3f +- %.2f (%.3f "
                                    "lower with their mean run-queue share)"
                                    % (ph, mean, want, SHARE_TOL, mrq))
            # the GIL was held all along by one of them, but while a thread
            # woken to take it waited for a CPU (sampled: 10 points)
            if not 0.90 - runq_sum <= hold_sum <= 1.10:
                problems.append("%s: the threads' hold shares add up to %.3f, expected ~1 "
                                "(at least 0.9 less their run-queue share %.3f)"
                                % (ph, hold_sum, runq_sum))
        log("case 1, %s:\n%s" % (self.python, "\n".join(rows)))
        # contention flagged while 2 and 4 threads fought
        flagged = [o for o in gil_procs(self.agent, w.pid) if o.get("pattern") == PATTERN_CONTENTION]
        win = [o for o in gil_procs(self.agent, w.pid)
               if any(inside(o, phases[ph]["start_ns"], phases[ph]["end_ns"])
                      for ph in ("cpu2", "cpu4"))]
        if win:
            for o in win:
                if o.get("pattern") != PATTERN_CONTENTION:
                    problems.append("interval inside a 2- or 4-thread phase not flagged %s: %s"
                                    % (PATTERN_CONTENTION, proc_line_str(o)))
        elif len(flagged) < 2:
            problems.append("%d gil lines flagged %s over two phases of %.0f s of 2 and 4 "
                            "CPU-bound threads" % (len(flagged), PATTERN_CONTENTION, PHASE_S))
        if problems:
            self.fail("%s\n%s\n%s" % ("\n".join(problems), "\n".join(rows), self.dump(w.pid)))

    # ------------------------------------------------------------ case 2
    def test_sleeping_and_blocked_threads(self):
        """Beside a CPU-bound thread: a thread that sleeps 50 ms at a time and
        one blocked in a read hold the GIL no more than they run; the
        blocked one never asks the holder to drop it."""
        w = self.w["threads"]
        si_ms = w.ready["switch_interval_ms"]
        ts = {t["role"]: t for t in self.truth("threads", "thread") if t["phase"] == "io"}
        problems, rows = [], []
        for role in ("cpu", "sleep", "read"):
            t = ts[role]
            span = t["end_ns"] - t["start_ns"]
            a = totals(self.agent, w.pid, t["tid"])
            rows.append("io %-8s tid %d span %.3f s cpu %.4f wakes %s | %s"
                        % (t["name"], t["tid"], span / 1e9, t["cpu_ns"] / span, t.get("wakes"),
                           fmt_totals(a)))
            if role == "cpu":
                # it held the GIL but while the sleeper ran or was woken to
                # take it (its run queue), 5 points for sampling
                sl = ts["sleep"]
                sspan = sl["end_ns"] - sl["start_ns"]
                want = 0.95 - (sl["cpu_ns"] + sl["runq_ns"]) / sspan
                if a is None or a["hold_ms"] * 1e6 / span < want:
                    problems.append("the CPU-bound thread beside them held the GIL %.3f of "
                                    "its span, expected at least %.3f: %s"
                                    % (a["hold_ms"] * 1e6 / span if a else 0, want, fmt_totals(a)))
                continue
            if a is None:
                continue  # nothing to report of a thread that never waited nor held
            hs = a["hold_ms"] * 1e6 / span
            # 3 points: six 10 ms samples in 2 s
            if hs > t["cpu_ns"] / span + 0.03:
                problems.append("io %s (tid %d): hold share %.3f, but it ran %.4f of its span"
                                % (t["name"], t["tid"], hs, t["cpu_ns"] / span))
            if role == "read":
                if a["drop_requests"] != 0:
                    problems.append("io %s (tid %d), blocked in read all along: %d drop requests"
                                    % (t["name"], t["tid"], a["drop_requests"]))
                if a["wait_ms"] * 1e6 / span > 0.01:
                    problems.append("io %s (tid %d), blocked in read all along: GIL wait "
                                    "%.1f ms" % (t["name"], t["tid"], a["wait_ms"]))
            else:
                # each wake from its sleep takes the GIL from the CPU-bound
                # thread: its waits are in the sleeps' lateness
                if a["wait_ms"] * 1e6 > t["late_ns"] + 0.02 * span:
                    problems.append("io %s (tid %d): GIL wait %.1f ms, more than its sleeps "
                                    "were late, %.1f ms" % (t["name"], t["tid"], a["wait_ms"],
                                                           t["late_ns"] / 1e6))
                if a["drop_requests"] * si_ms * 0.9 > a["wait_ms"] + si_ms:
                    problems.append("io %s (tid %d): %d drop requests exceed its %.1f ms of "
                                    "waits" % (t["name"], t["tid"], a["drop_requests"],
                                               a["wait_ms"]))
        log("case 2, %s:\n%s" % (self.python, "\n".join(rows)))
        if problems:
            self.fail("%s\n%s" % ("\n".join(problems), "\n".join(rows)))

    # ------------------------------------------------------------ case 3
    def test_native_calls(self):
        """Threads in native calls that release the GIL: low contention,
        never flagged."""
        w = self.w["native"]
        problems, rows = [], []
        ts = self.truth("native", "thread")
        self.assertTrue(ts, "native workload reported no thread\n%s" % w.out.text())
        for t in ts:
            span = t["end_ns"] - t["start_ns"]
            incall = t["in_call_ns"] / span
            a = totals(self.agent, w.pid, t["tid"])
            rows.append("native %-14s tid %d span %.3f s in calls %.4f (%d) | %s"
                        % (t["name"], t["tid"], span / 1e9, incall, t["calls"], fmt_totals(a)))
            self.assertGreater(incall, 0.9, "native %s: only %.3f of its span in %s calls: the "
                               "workload did not do what the case needs" % (t["name"], incall,
                                                                           self.native))
            if a is not None and a["wait_ms"] * 1e6 / span > (1 - incall) + SHARE_TOL:
                problems.append("native %s (tid %d): GIL wait share %.3f, but it was in "
                                "GIL-releasing calls %.3f of its span"
                                % (t["name"], t["tid"], a["wait_ms"] * 1e6 / span, incall))
        for o, ths in intervals(self.agent, w.pid):
            if o.get("pattern") is not None:
                problems.append("flagged %r: %s" % (o.get("pattern"), proc_line_str(o)))
            if int(o.get("waiting_threads", 0)) >= WAITERS_MIN:
                problems.append("%d waiting threads: %s" % (o["waiting_threads"], proc_line_str(o)))
            if float(o.get("contention", 0)) >= CONTENTION_MIN:
                problems.append("contention %.3f >= %.2f: %s"
                                % (float(o["contention"]), CONTENTION_MIN, proc_line_str(o)))
        log("case 3, %s (%s):\n%s\n%s" % (self.python, self.native, "\n".join(rows),
                                          self.dump(w.pid)))
        if problems:
            self.fail("%s\n%s\n%s" % ("\n".join(problems), "\n".join(rows), self.dump(w.pid)))

    # ------------------------------------------------------------ case 4
    def test_loop_beside_cpu_thread(self):
        """The loop's GIL wait share agrees with its own lateness; flagged
        python.loop_starved_by_gil with no incident."""
        w = self.w["loop-cpu"]
        lp = self.one("loop-cpu", "loop")
        ticks = self.one("loop-cpu", "ticks")
        cpu = [t for t in self.truth("loop-cpu", "thread")][0]
        lates = self.truth("loop-cpu", "late")
        loop_tid = lp["tid"]
        self.assertEqual(loop_tid, w.ready["tid"])
        span = lp["end_ns"] - lp["start_ns"]
        base = lp["base_late_ns"] / max(1, lp["base_ticks"])
        # everything the loop waited for the GIL is in its ticks' lateness;
        # not all of the lateness is GIL wait: the timer's own (measured with
        # the loop alone) and the run-queue wait after the epoll wake
        upper = lp["late_ns"] / span
        si_ns = w.ready["switch_interval_ms"] * 1e6
        # and each tick waited at least the switch interval: the CPU-bound
        # thread never lets go of the GIL before a waiter times out and asks
        lower = max((lp["late_ns"] - lp["ticks"] * base - lp["runq_ns"]) / span,
                    lp["ticks"] * si_ns / span)
        a = totals(self.agent, w.pid, loop_tid)
        c = totals(self.agent, w.pid, cpu["tid"])
        info = ("loop tid %d span %.3f s, %d ticks, lateness share %.3f (timer's own %.3f ms a "
                "tick, run queue %.3f): GIL wait share expected in [%.3f, %.3f]; max late "
                "%.1f ms\nagent loop: %s\nagent cpu thread %d: %s\n%s"
                % (loop_tid, span / 1e9, lp["ticks"], upper, base / 1e6, lp["runq_ns"] / span,
                   lower, upper, lp["max_late_ns"] / 1e6, fmt_totals(a), cpu["tid"],
                   fmt_totals(c), self.dump(w.pid)))
        log("case 4, %s:\n%s" % (self.python, info))
        self.assertGreater(lower, 2 * LOOP_SHARE_MIN, "the CPU-bound thread did not slow the "
                           "loop enough to test anything\n" + info)
        self.assertIsNotNone(a, "no gil_summary line of the loop thread\n" + info)
        self.assertTrue(a["loop"], "the loop thread's gil_summary lines never say loop=true\n"
                        + info)
        share = a["wait_ms"] * 1e6 / span
        self.assertTrue(lower - SHARE_TOL <= share <= upper + SHARE_TOL,
                        "loop GIL wait share %.3f outside [%.3f, %.3f] (+- %.2f)\n%s"
                        % (share, lower, upper, SHARE_TOL, info))
        procs = gil_procs(self.agent, w.pid)
        win = [o for o in procs if inside(o, lp["start_ns"], lp["end_ns"])]
        if win:
            # each interval of the window: flagged, its share the ticks'
            for o in win:
                s, e = window_of(o)
                mine = [l * 1000 for r, l in ticks["ticks"] if s <= ticks["t0_ns"] + r * 1000 < e]
                late = sum(mine)
                self.assertEqual(o.get("pattern"), PATTERN_LOOP, "interval not flagged: %s\n%s"
                                 % (proc_line_str(o), info))
                self.assertEqual(o.get("loop_tid"), loop_tid, proc_line_str(o))
                self.assertLessEqual(float(o["loop_wait_share"]), late / (e - s) + SHARE_TOL,
                                     "interval %s: loop_wait_share above its ticks' lateness "
                                     "%.3f\n%s" % (proc_line_str(o), late / (e - s), info))
                self.assertGreaterEqual(float(o["loop_wait_share"]),
                                        len(mine) * si_ns / (e - s) - SHARE_TOL,
                                        "interval %s: loop_wait_share below its %d ticks' "
                                        "switch intervals\n%s" % (proc_line_str(o), len(mine), info))
        else:
            flagged = [o for o in procs if o.get("pattern") == PATTERN_LOOP
                       and o.get("loop_tid") == loop_tid]
            self.assertGreaterEqual(len(flagged), int(LOOP_S) - 1,
                                    "%d gil lines flagged %s over %.0f s (at least %d whole "
                                    "intervals)\n%s" % (len(flagged), PATTERN_LOOP, LOOP_S,
                                                        int(LOOP_S) - 1, info))
            for o in flagged:
                self.assertLessEqual(float(o["loop_wait_share"]), 1.0)
                self.assertGreaterEqual(float(o["loop_wait_share"]), LOOP_SHARE_MIN)
        # no iteration reached the threshold by the loop's own clock, so no
        # incident; a tick the machine made that late may have one
        long_ticks = [l for l in lates if l["resume_ns"] - l["expected_ns"] >= THRESHOLD_MS * 1e6]
        incs = [i for i in self.agent.incidents(pid=w.pid, final=True) if i.get("tid") == loop_tid
                and in_window(i, lp["start_ns"], lp["end_ns"])]
        for i in incs:
            s = int(i["start_ns"])
            e = s + int(float(i["duration_ms"]) * 1e6)
            if not any(min(e, l["resume_ns"]) > max(s, l["expected_ns"]) for l in long_ticks):
                self.fail("incident on the loop thread with no tick of the loop that late: "
                          "%s\nticks >= %d ms late: %s\n%s" % (swtest.incident_str(i),
                                                               THRESHOLD_MS, long_ticks, info))
        if long_ticks:
            log("NOTE: %d tick(s) of the loop were >= %d ms late (the machine): %s"
                % (len(long_ticks), THRESHOLD_MS, long_ticks))

    # ------------------------------------------------------------ case 5
    def test_loop_stalled_by_holder(self):
        """One python.loop_starved_by_gil incident per stall, naming the
        holder thread (native tid, name) and the function making the call."""
        w = self.w["loop-hold"]
        lp = self.one("loop-hold", "loop")
        loop_tid = lp["tid"]
        stalls = self.truth("loop-hold", "stall")
        lates = self.truth("loop-hold", "late")
        self.assertEqual(len(stalls), 3, w.out.text())
        incs = [i for i in self.agent.incidents(pid=w.pid, final=True) if i.get("tid") == loop_tid]
        problems, used = [], set()
        rows = []
        for b in stalls:
            dur = b["end_ns"] - b["start_ns"]
            # sized for 250 ms of CPU at startup (py_gil.py calibrate());
            # measured 99 ms once on a machine quieter than at the sizing
            self.assertGreaterEqual(dur, 1.5 * THRESHOLD_MS * 1e6, "a stall shorter than 1.5 "
                                    "times the threshold: the workload did not hold the GIL "
                                    "long enough to test anything: %s" % b)
            i = swtest.overlap_incident(dict(b, tid=loop_tid), incs)
            if i is None:
                problems.append("stall %.1f ms at %d (holder tid %d): no incident of the loop "
                                "overlaps it" % (dur / 1e6, b["start_ns"], b["tid"]))
                rows.append("stall %.1f ms at %d: -" % (dur / 1e6, b["start_ns"]))
                continue
            s = int(i["start_ns"])
            e = s + int(float(i["duration_ms"]) * 1e6)
            g = i.get("gil") or {}
            rows.append("stall %.1f ms at %d: incident %.1f ms at %+.1f ms, pattern %s, gil %s"
                        % (dur / 1e6, b["start_ns"], float(i["duration_ms"]),
                           (s - b["start_ns"]) / 1e6, i.get("pattern"), g))
            if id(i) in used:
                problems.append("stall at %d: its incident is another stall's too" % b["start_ns"])
            used.add(id(i))
            who = "stall %.1f ms at %d" % (dur / 1e6, b["start_ns"])
            # the loop's own view of it: the tick that came late across it,
            # from its due time to the coroutine's resumption
            lt = max(lates, key=lambda l: min(l["resume_ns"], b["end_ns"])
                     - max(l["expected_ns"], b["start_ns"]), default=None)
            if lt is None or min(lt["resume_ns"], b["end_ns"]) <= max(lt["expected_ns"],
                                                                       b["start_ns"]):
                problems.append("%s: the loop saw no late tick across it: %s" % (who, lates))
                continue
            lw = lt["resume_ns"] - lt["expected_ns"]
            ov = min(e, lt["resume_ns"]) - max(s, lt["expected_ns"])
            if ov < 0.9 * lw:
                problems.append("%s: the incident (%d, %.1f ms) covers %.1f ms of the %.1f ms "
                                "the loop was late (%d..%d), expected 90 %%"
                                % (who, s, float(i["duration_ms"]), ov / 1e6, lw / 1e6,
                                   lt["expected_ns"], lt["resume_ns"]))
            # and stays inside the stall: from the first wake in it, no
            # later than a tick and the switch interval after its start,
            # to its end
            slack = lp["tick_ns"] + w.ready["switch_interval_ms"] * 1e6 + swtest.TOL_NS
            if s < b["start_ns"] - slack or e > b["end_ns"] + swtest.TOL_NS:
                problems.append("%s (to %d): the incident (%d to %d) reaches beyond it"
                                % (who, b["end_ns"], s, e))
            if i.get("pattern") != PATTERN_LOOP:
                problems.append("%s: pattern %r, expected %r; summary %r\n  %s"
                                % (who, i.get("pattern"), PATTERN_LOOP, i.get("summary"),
                                   swtest.incident_str(i)))
            if not g:
                problems.append("%s: the incident has no \"gil\" object" % who)
                continue
            if g.get("holder_tid") != b["tid"]:
                problems.append("%s: holder_tid %r, the holder is %d" % (who, g.get("holder_tid"),
                                                                          b["tid"]))
            if g.get("holder") != b["name"]:
                problems.append("%s: holder %r, the holder is %r" % (who, g.get("holder"),
                                                                      b["name"]))
            if float(g.get("wait_ms", 0)) < float(i["duration_ms"]) / 2:
                problems.append("%s: GIL wait %.1f ms does not dominate the %.1f ms incident"
                                % (who, float(g.get("wait_ms", 0)), float(i["duration_ms"])))
            if int(g.get("drop_requests", 0)) < 1:
                problems.append("%s: no drop request from the loop in a %.0f ms wait"
                                % (who, float(g.get("wait_ms", 0))))
            pat = swtest.python_frame_re(b["func"], b["file"], line=b["line"])
            if swtest.find_frame(list(g.get("holder_stack") or []), pat) is None:
                problems.append("%s: holder_stack has no frame %s (%s:%d): %s"
                                % (who, b["func"], os.path.basename(b["file"]), b["line"],
                                   g.get("holder_stack")))
        # no other incident on the loop but where its own clock saw it stuck
        for i in incs:
            if id(i) in used or not in_window(i, lp["start_ns"], lp["end_ns"]):
                continue
            s = int(i["start_ns"])
            e = s + int(float(i["duration_ms"]) * 1e6)
            if not any(min(e, l["resume_ns"]) > max(s, l["expected_ns"]) for l in lates):
                problems.append("incident on the loop thread matching no stall and no late tick: "
                                "%s" % swtest.incident_str(i))
        log("case 5, %s:\n%s" % (self.python, "\n".join(rows)))
        if problems:
            self.fail("%s\n%s\nlate ticks: %s" % ("\n".join(problems), "\n".join(rows),
                                                  [(l["expected_ns"], (l["resume_ns"] -
                                                                       l["expected_ns"]) / 1e6)
                                                   for l in lates]))


def _ident(s):
    return "".join(c if c.isalnum() else "_" for c in s)


CASES = []
for label, exe, native in RUN_INTERPRETERS:
    name = "Gil_%s" % _ident(label)
    c = type(name, (GilCase,), {"python": exe, "native": native})
    globals()[name] = c
    CASES.append(c)


class Inventory(unittest.TestCase):
    def test_interpreters_found(self):
        print("interpreters under test: %s" % ", ".join("%s (%s)" % (p[0], p[1])
                                                         for p in RUN_INTERPRETERS), flush=True)
        self.assertTrue(os.access(SYS_PYTHON, os.X_OK), "%s not found" % SYS_PYTHON)
        want = {"3.9", "3.10", "3.11", "3.12", "3.13"}
        got = {".".join(p[0].split("-")[1].split(".")[:2]) for p in INTERPRETERS
               if p[0].startswith("pyenv-")}
        self.assertTrue(want <= got, "pyenv CPython missing: %s (found %s)"
                        % (sorted(want - got), sorted(got)))


def load_tests(loader, standard_tests, pattern):
    suite = unittest.TestSuite()
    suite.addTests(loader.loadTestsFromTestCase(Inventory))
    only = os.environ.get("SW_ONLY")
    for c in CASES:
        if not only or any(o.lower() in c.__name__.lower() for o in only.split(",")):
            suite.addTests(loader.loadTestsFromTestCase(c))
    return suite


if __name__ == "__main__":
    swtest.main("test_gil")
