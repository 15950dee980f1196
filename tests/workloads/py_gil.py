# SPDX-License-Identifier: Apache-2.0
"""GIL workload: threads that fight over the GIL, or do not, on a known plan,
each reporting its own ground truth (tests/root/test_gil.py, issue 7 §8).

    python3 py_gil.py threads [--phases cpu1,cpu2,cpu4,io] [--seconds 2]
    python3 py_gil.py native  [--call sha256|zlib|numpy] [--threads 2] [--seconds 2]
    python3 py_gil.py loop-cpu  [--seconds 3] [--tick-ms 5] [--baseline-s 0.5]
    python3 py_gil.py loop-hold [--stalls 3] [--stall-ms 250] [--gap-ms 300] [--tick-ms 5]
    (every mode: [--nice -20])

Python 3.9-3.13, standard library only (numpy for --call numpy).

Modes (each waits for "go" on stdin, then runs its plan once):
  threads    one phase after the other; each phase starts new threads,
             runs them --seconds, then parks them (blocked on an Event, no
             GIL use) until the process ends, so that everything the agent
             counts for a thread's tid happened in its phase:
               cpuN  N pure-Python CPU-bound threads ("cpu-N-k");
               io    one CPU-bound thread ("io-cpu"), one that sleeps 50 ms
                     at a time ("io-sleep"), one blocked in os.read() on a
                     pipe for the whole phase ("io-read", released after it)
  native     --threads threads in a loop of native calls that release the
             GIL (hashlib.sha256 or zlib.compress of an 8 MB buffer, numpy
             matrix products with one BLAS thread)
  loop-cpu   an asyncio loop on the main thread that ticks every --tick-ms
             (asyncio.sleep), alone for --baseline-s, then beside one
             CPU-bound thread ("loop-cpu") for --seconds
  loop-hold  the same loop beside a thread ("gil-holder") that holds the GIL
             --stall-ms at a time in one C call that does not release it
             (json.dumps of a large list, sized before "ready"), --stalls
             times, --gap-ms apart

stdout, one JSON object per line (timestamps: time.monotonic_ns(),
CLOCK_MONOTONIC, the agent's clock; tids: threading.get_native_id()):
  {"event":"ready","pid","tid","version","exe","mode","switch_interval_ms"}
  {"event":"thread","phase","role","tid","name","start_ns","end_ns",
   "cpu_ns","runq_ns","gap_ns","gaps",...}         one per thread and phase:
      start/end: the thread's measured span; cpu_ns its CPU time
      (time.thread_time_ns) and runq_ns its run-queue wait (schedstat) over
      it; gap_ns/gaps: the stretches over 200 us in which a CPU-bound
      thread did not run Python (waiting for the GIL or for a CPU)
  {"event":"phase","phase","threads":[tid..],"start_ns","end_ns"}
  {"event":"loop","tid","start_ns","end_ns","ticks","late_ns","max_late_ns",
   "base_ticks","base_late_ns","runq_ns","cpu_ns"}     loop modes: the ticks'
      lateness (resume - (sleep start + tick)) summed over the window, and
      over the baseline (loop alone); runq over the window
  {"event":"late","tid","expected_ns","resume_ns"}   each tick late >= 20 ms
  {"event":"ticks","tid","t0_ns","ticks":[[resume - t0 us, late us],..]}
      every tick of the window
  {"event":"stall","tid","name","start_ns","end_ns",func,file,first,last,line}
      loop-hold: one per json.dumps; func/line: the workload's function that
      makes the call and the line of the call
  {"event":"done"}
Stays alive until stdin closes or SIGTERM.
"""
import argparse
import asyncio
import gc
import json
import os
import platform
import signal
import sys
import threading
import time

import swtruth

GAP_NS = 200_000  # a CPU-bound thread not running Python for longer than this
LATE_NS = 20_000_000  # ticks this late are reported one by one

_out_lock = threading.Lock()


def emit(obj):
    line = json.dumps(obj, separators=(",", ":")) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def set_comm(name):
    # the OS name, which the agent reports; CPython < 3.14 does not set it
    with open("/proc/thread-self/comm", "wb") as f:
        f.write(name.encode()[:15])


class Span:
    """A thread's own measured span: wall clock, CPU time, run-queue wait."""

    def begin(self):
        self.start_ns = time.monotonic_ns()
        self._cpu0 = time.thread_time_ns()
        self._rd0 = swtruth.run_delay_ns()

    def end(self):
        cpu1 = time.thread_time_ns()
        rd1 = swtruth.run_delay_ns()
        self.end_ns = time.monotonic_ns()
        self.cpu_ns = cpu1 - self._cpu0
        self.runq_ns = rd1 - self._rd0

    def fields(self):
        return {"start_ns": self.start_ns, "end_ns": self.end_ns, "cpu_ns": self.cpu_ns,
                "runq_ns": self.runq_ns}


# ---------------------------------------------------------------- roles
def cpu_role(until_ns, out):
    """Pure Python, never a call that releases the GIL: holds it until asked
    to drop it. Every stretch over GAP_NS between two clock reads is time
    it did not run (the GIL was another thread's, or the CPU was)."""
    sp = Span()
    sp.begin()
    last = sp.start_ns
    gap_ns = gaps = loops = 0
    while True:
        n = 0
        for _ in range(40):
            n += 1
        now = time.monotonic_ns()  # no syscall, no GIL release
        d = now - last
        if d > GAP_NS:
            gap_ns += d
            gaps += 1
        last = now
        loops += 1
        if now >= until_ns:
            break
    sp.end()
    out.update(sp.fields(), gap_ns=gap_ns, gaps=gaps, loops=loops)


def sleep_role(until_ns, out):
    """Sleeps 50 ms at a time: takes the GIL only to go back to sleep."""
    sp = Span()
    sp.begin()
    wakes = 0
    late_ns = 0
    while time.monotonic_ns() < until_ns:
        t = time.monotonic_ns()
        time.sleep(0.05)
        late_ns += time.monotonic_ns() - t - 50_000_000
        wakes += 1
    sp.end()
    out.update(sp.fields(), wakes=wakes, late_ns=late_ns)


def read_role(fd, out, ready):
    """Blocked in os.read() on a pipe from before the phase starts until it
    is over: it never wants the GIL while the others run."""
    sp = Span()
    sp.begin()
    ready()
    os.read(fd, 1)
    sp.end()
    out.update(sp.fields(), wakes=1)


def native_role(call, until_ns, out):
    """A loop of native calls that release the GIL; in_call_ns: the time
    between the clock reads around them."""
    sp = Span()
    sp.begin()
    in_call = calls = 0
    while True:
        t = time.monotonic_ns()
        call()
        now = time.monotonic_ns()
        in_call += now - t
        calls += 1
        if now >= until_ns:
            break
    sp.end()
    out.update(sp.fields(), in_call_ns=in_call, calls=calls)


def make_native_call(kind):
    if kind == "sha256":
        import hashlib
        buf = os.urandom(8 << 20)
        return lambda: hashlib.sha256(buf).digest()  # releases the GIL over 2 KiB
    if kind == "zlib":
        import zlib
        buf = os.urandom(4 << 20)
        return lambda: zlib.compress(buf, 1)  # releases the GIL around deflate
    if kind == "numpy":
        # one BLAS thread per call: the GIL is what is measured, not OpenBLAS
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import numpy
        a = numpy.random.rand(300, 300)
        b = numpy.random.rand(300, 300)
        return lambda: a @ b  # matmul releases the GIL in BLAS
    raise ValueError("unknown --call %r" % kind)


# ---------------------------------------------------------------- phases
class Phase:
    """Threads started together, run, then parked until the process ends."""

    def __init__(self, name):
        self.name = name
        self.specs = []  # (thread name, role name, target, early)
        self.park = threading.Event()

    def add(self, tname, role, target, early=False):
        """target(out), once the phase starts; early: target(out, ready)
        at once, which calls ready() when in place, before the others
        start."""
        self.specs.append((tname, role, target, early))

    def run(self, after=None, timed=None):
        """after(): called once the first `timed` threads (all by default)
        are done, before waiting for the others."""
        start = threading.Event()
        outs = []
        done = threading.Semaphore(0)
        up = threading.Semaphore(0)

        def body(tname, role, target, early, out):
            set_comm(tname)
            out.update(phase=self.name, role=role, name=tname, tid=threading.get_native_id())
            if early:
                target(out, up.release)
            else:
                up.release()
                start.wait()
                target(out)
            done.release()
            self.park.wait()  # no GIL use until the process ends

        threads = []
        for tname, role, target, early in self.specs:
            out = {"event": "thread"}
            outs.append(out)
            t = threading.Thread(target=body, args=(tname, role, target, early, out), name=tname,
                                 daemon=True)
            threads.append(t)
            t.start()
        for _ in threads:
            up.acquire()
        t0 = time.monotonic_ns()
        start.set()
        timed = len(threads) if timed is None else timed
        for k in range(len(threads)):
            done.acquire()
            if after and k + 1 == timed:
                after()  # releases the blocked threads once the timed ones ended
        t1 = time.monotonic_ns()
        for o in outs:
            emit(o)
        emit({"event": "phase", "phase": self.name, "threads": [o["tid"] for o in outs],
              "start_ns": t0, "end_ns": t1})


def run_threads(a):
    for ph in a.phases.split(","):
        p = Phase(ph)
        until = lambda: time.monotonic_ns() + int(a.seconds * 1e9)  # noqa: E731
        after, timed = None, None
        if ph.startswith("cpu"):
            n = int(ph[3:])
            deadline = until()
            for k in range(n):
                p.add("cpu-%d-%d" % (n, k), "cpu", lambda out, d=deadline: cpu_role(d, out))
        elif ph == "io":
            deadline = until()
            r, w = os.pipe()
            p.add("io-cpu", "cpu", lambda out: cpu_role(deadline, out))
            p.add("io-sleep", "sleep", lambda out: sleep_role(deadline, out))
            p.add("io-read", "read", lambda out, ready: read_role(r, out, ready), early=True)

            def after(w=w):
                # the CPU and sleeping threads are done: the reader's wake
                # has nobody to wait for
                os.write(w, b"x")
            timed = 2
        else:
            raise SystemExit("unknown phase %r" % ph)
        p.run(after, timed)


def run_native(a):
    call = a.call_fn
    call()  # warm: first-call allocations are not the phase's
    p = Phase("native-" + a.call)
    deadline = time.monotonic_ns() + int(a.seconds * 1e9)
    for k in range(a.threads):
        p.add("nat-%s-%d" % (a.call, k), "native", lambda out: native_role(call, deadline, out))
    p.run()


# ---------------------------------------------------------------- loops
class Ticker:
    """The loop's own clock: each tick's lateness past its asyncio.sleep."""

    def __init__(self, tick_ms):
        self.tick_ns = int(tick_ms * 1e6)
        self.ticks = 0
        self.late_ns = 0
        self.max_late_ns = 0
        self.lates = []
        self.log = None  # [(resume_ns, late_ns)] of every tick when a list

    async def run(self, until_ns):
        tick = self.tick_ns / 1e9
        while True:
            t = time.monotonic_ns()
            await asyncio.sleep(tick)
            now = time.monotonic_ns()
            late = now - t - self.tick_ns
            self.ticks += 1
            self.late_ns += late
            self.max_late_ns = max(self.max_late_ns, late)
            if late >= LATE_NS:
                self.lates.append((t + self.tick_ns, now))
            if self.log is not None:
                self.log.append((now, late))
            if now >= until_ns:
                return


def hold_gil(obj):
    return json.dumps(obj)  # gil-hold: C encoder, never releases the GIL


def calibrate(target_ms):
    """A list whose json.dumps takes about target_ms of CPU time here (its
    wall time is that or more: a shared machine only makes it longer)."""
    def make(n):
        return [{"id": i, "name": "item-%d" % i, "price": i * 0.25, "tags": ["a", "b", "c"]}
                for i in range(n)]
    def cpu_ns(obj):
        t = time.thread_time_ns()
        hold_gil(obj)
        return max(1, time.thread_time_ns() - t)

    n = 20000
    while True:
        dt = cpu_ns(make(n))
        if dt >= 20_000_000 or n >= 1 << 24:
            break
        n *= 4
    # then at full size, until one call takes at least the target (the
    # first estimate, from a smaller list, may fall short)
    for _ in range(4):
        n = max(1, int(n * target_ms * 1.1e6 / dt))
        obj = make(n)
        dt = cpu_ns(obj)
        if dt >= target_ms * 1e6:
            break
    return obj


async def loop_main(a, go):
    loop_tid = threading.get_native_id()
    # the other thread is started now, before "go", and waits for `begin`:
    # Thread.start() waits for the new thread to run, which would block
    # the loop (for a switch interval or more, the GIL being busy)
    begin = threading.Event()
    stop = threading.Event()
    park = threading.Event()
    state = {}
    truth = []
    if a.mode == "loop-cpu":
        out = {"event": "thread", "phase": "loop-cpu", "role": "cpu", "name": "loop-cpu"}

        def worker():
            set_comm("loop-cpu")
            out["tid"] = threading.get_native_id()
            begin.wait()
            cpu_role(state["deadline"], out)
            stop.set()
            park.wait()
        threading.Thread(target=worker, name="loop-cpu", daemon=True).start()
    else:
        obj = a.obj
        where = swtruth.where(hold_gil, "gil-hold")

        def holder():
            set_comm("gil-holder")
            tid = threading.get_native_id()
            begin.wait()
            for _ in range(a.stalls):
                time.sleep(a.gap_ms / 1000.0)
                with swtruth.Block() as t:
                    hold_gil(obj)
                truth.append({"event": "stall", "tid": tid, "name": "gil-holder", **t.fields(),
                              **where})
            time.sleep(a.gap_ms / 1000.0)
            stop.set()
            park.wait()
        threading.Thread(target=holder, name="gil-holder", daemon=True).start()
    await go.wait()
    tk = Ticker(a.tick_ms)
    # baseline: the loop alone (the timer's own lateness, this machine's)
    await tk.run(time.monotonic_ns() + int(a.baseline_s * 1e9))
    base_ticks, base_late = tk.ticks, tk.late_ns
    tk = Ticker(a.tick_ms)
    tk.log = []
    sp = Span()
    sp.begin()
    if a.mode == "loop-cpu":
        deadline = state["deadline"] = time.monotonic_ns() + int(a.seconds * 1e9)
        begin.set()
        await tk.run(deadline)
        sp.end()
        while not stop.is_set():
            await asyncio.sleep(0.01)
        truth.append(out)
    else:
        begin.set()
        task = asyncio.ensure_future(tk.run(1 << 62))
        while not stop.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        sp.end()
    # printed after the window: a pipe write must not be the loop's stall
    for o in truth:
        emit(o)
    for e, r in tk.lates:
        emit({"event": "late", "tid": loop_tid, "expected_ns": e, "resume_ns": r})
    # every tick, as (resume - window start, lateness) in µs: the loop's
    # lateness over any stretch of the window (one agent interval)
    emit({"event": "ticks", "tid": loop_tid, "t0_ns": sp.start_ns,
          "ticks": [[(r - sp.start_ns) // 1000, late // 1000] for r, late in tk.log]})
    emit({"event": "loop", "tid": loop_tid, **sp.fields(), "ticks": tk.ticks,
          "tick_ns": tk.tick_ns, "late_ns": tk.late_ns, "max_late_ns": tk.max_late_ns,
          "base_ticks": base_ticks, "base_late_ns": base_late})
    emit({"event": "done"})
    await asyncio.Event().wait()


def run_loop(a, ready):
    go = None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    go = asyncio.Event()

    def on_go():
        loop.call_soon_threadsafe(go.set)
    threading.Thread(target=stdin_thread, args=(on_go,), daemon=True).start()
    loop.call_soon(lambda: emit(ready))
    loop.run_until_complete(loop_main(a, go))


# ---------------------------------------------------------------- main
def stdin_thread(on_go):
    for line in sys.stdin:
        if line.strip() == "go":
            on_go()
    sys.stdout.flush()
    os._exit(0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("threads", "native", "loop-cpu", "loop-hold"))
    p.add_argument("--phases", default="cpu1,cpu2,cpu4,io")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--call", default="sha256", choices=("sha256", "zlib", "numpy"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tick-ms", type=float, default=5)
    p.add_argument("--baseline-s", type=float, default=0.5)
    p.add_argument("--stalls", type=int, default=3)
    p.add_argument("--stall-ms", type=float, default=250)
    p.add_argument("--gap-ms", type=float, default=300)
    p.add_argument("--nice", type=int, default=0,
                   help="added to the nice value of the process (and so of its threads)")
    a = p.parse_args()
    if a.nice:
        # on a machine shared with other work, a thread preempted while it
        # is between dropping the GIL and waiting for it is neither
        # holding nor waiting: a high CPU weight keeps such preemptions rare
        os.nice(a.nice)
        # with autogroup scheduling, nice weighs only within the session:
        # the session's own group (a workload leads its session) gets it too
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(a.nice))
        except OSError:
            pass
    signal.signal(signal.SIGTERM, lambda *x: os._exit(0))
    # no collection of the cyclic GC in the middle of a measured stretch
    gc.disable()
    if a.mode == "loop-hold":
        a.obj = calibrate(a.stall_ms)
    if a.mode == "native":
        a.call_fn = make_native_call(a.call)  # numpy imported before "ready"
    ready = {"event": "ready", "pid": os.getpid(), "tid": threading.get_native_id(),
             "version": platform.python_version(), "exe": sys.executable, "mode": a.mode,
             "switch_interval_ms": sys.getswitchinterval() * 1000}
    if a.mode.startswith("loop"):
        run_loop(a, ready)
        return
    go = threading.Event()
    threading.Thread(target=stdin_thread, args=(go.set,), daemon=True).start()
    emit(ready)
    go.wait()
    if a.mode == "threads":
        run_threads(a)
    else:
        run_native(a)
    emit({"event": "done"})
    threading.Event().wait()


if __name__ == "__main__":
    main()
