// SPDX-License-Identifier: Apache-2.0
// Shared helpers for the Node workloads: JSON lines with exact (BigInt)
// CLOCK_MONOTONIC nanoseconds, thread ids, busy spins and a schedule parser.
'use strict';
const fs = require('fs');
const { performance } = require('perf_hooks');

// process.hrtime.bigint() is uv_hrtime(): CLOCK_MONOTONIC, the agent's clock.
const now = () => process.hrtime.bigint();

// "PID/task/TID" for the calling thread, main or worker.
function tid() {
  const link = fs.readlinkSync('/proc/thread-self');
  return Number(link.split('/').pop());
}

// One JSON object per line. BigInts are written as plain JSON integers, so
// nanosecond timestamps survive without rounding.
function line(obj) {
  return JSON.stringify(obj, (k, v) => (typeof v === 'bigint' ? `__BIG__${v}` : v))
    .replace(/"__BIG__(-?\d+)"/g, '$1') + '\n';
}
function emit(obj) {
  // stdout on a pipe is synchronous on Linux; a file or tty too.
  process.stdout.write(line(obj));
}

// The calling thread's own scheduler counters so far (ns), from
// /proc/thread-self/schedstat: field 1 is its on-CPU time (se.sum_exec_runtime,
// what CLOCK_THREAD_CPUTIME_ID reads; measured equal to it within 5 us when the
// thread reads it itself, Node 20 has no per-thread CPU clock before
// process.threadCpuUsage in 23.9), field 2 its run-queue wait
// (sched_info.run_delay, brought up to date each time the thread gets a CPU).
// One fd per thread (a worker loads its own copy of this module), read with
// pread: one syscall, no allocation but the string.
let rdFd = null;
const rdBuf = Buffer.alloc(128);
function schedstat() {
  if (rdFd === null) rdFd = fs.openSync('/proc/thread-self/schedstat', 'r');
  const n = fs.readSync(rdFd, rdBuf, 0, rdBuf.length, 0);
  const f = rdBuf.toString('latin1', 0, n).split(' ');
  return { oncpu: BigInt(f[0]), runq: BigInt(f[1]) };
}

// Ground truth of a block: fn() between two CLOCK_MONOTONIC reads, the time
// the thread waited for a CPU in between (runq_ns) and the time it ran
// (oncpu_ns); the rest of the window it slept (off CPU). The agent's block
// starts at the loop's wait return, a little before start_ns: a preemption
// there is in the agent's run-queue time and not in runq_ns, which is how the
// tests tell it from a measurement error (tests/root/swtest.py).
function measure(fn) {
  const start = now();
  const s0 = schedstat();
  fn();
  const s1 = schedstat();
  const end = now();
  // oncpu_src: the running thread's sum_exec_runtime is brought up to date
  // at a tick or a switch, so each read may lag one tick (tests allow it)
  const truth = { start_ns: start, end_ns: end, runq_ns: s1.runq - s0.runq,
                  oncpu_ns: s1.oncpu - s0.oncpu, oncpu_src: 'schedstat' };
  // for after(): not enumerable, so not printed
  Object.defineProperty(truth, 'idle_end', { value: loopIdleNs() });
  return truth;
}

// libuv's idle time of this thread's loop so far, in ns (a double): the time
// inside its polls with a timeout (uv_metrics_idle_time, what
// performance.eventLoopUtilization() reads).
function loopIdleNs() {
  return performance.eventLoopUtilization().idle * 1e6;
}

// How long the loop was not waiting since the block's end (after_busy_ns):
// an upper bound of the work the runtime still did (GC, handle cleanup, a
// preemption) between the block's last clock read and the poll that ends
// the block for the agent. Resolved from a setImmediate callback, which
// libuv runs in the check phase right after that poll: the bound then adds
// only that poll (timeout 0 while an immediate is pending) and a dispatch;
// read from a timer 20 ms later it would also count the ticks and pre-polls
// in between (0.5-1 ms measured).
function after(truth) {
  return new Promise((resolve) => setImmediate(() => {
    const busy = Number(now() - truth.end_ns) - (loopIdleNs() - truth.idle_end);
    resolve({ after_busy_ns: Math.max(0, Math.round(busy)) });
  }));
}

function spinFor(ms) {
  const until = now() + BigInt(Math.round(ms * 1e6));
  while (now() < until) { /* busy */ }
}

// A busy block of ms; its ground truth.
function spin(ms) {
  return measure(() => spinFor(ms));
}

// "spin:80,spin:150,execSync:200" -> [{kind:'spin', ms:80}, ...]
function parseSchedule(text) {
  if (!text) return [];
  return text.split(',').filter(Boolean).map((item) => {
    const [kind, ms] = item.split(':');
    if (!kind || !(Number(ms) >= 0)) throw new Error(`bad schedule item: ${item}`);
    return { kind, ms: Number(ms) };
  });
}

// --name value / --flag parser, nothing more.
function parseArgs(argv, defaults) {
  const out = Object.assign({}, defaults);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument: ${a}`);
    const key = a.slice(2).replace(/-([a-z])/g, (m, c) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option: ${a}`);
    if (typeof defaults[key] === 'boolean') { out[key] = true; continue; }
    if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
    const v = argv[++i];
    out[key] = typeof defaults[key] === 'number' ? Number(v) : v;
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Calls onGo() on the line "go"; exits when stdin closes (the harness died or
// is done with us). Only when stdin is a pipe or a file: a server started from
// a terminal or with </dev/null keeps running until SIGTERM.
function watchStdin(onGo, { exitOnEof = true } = {}) {
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (l === 'go' && onGo) { const f = onGo; onGo = null; f(); }
    }
  });
  process.stdin.on('end', () => { if (exitOnEof) process.exit(0); });
  process.stdin.on('error', () => { if (exitOnEof) process.exit(0); });
}

function stdinIsPipe() {
  try { return fs.fstatSync(0).isFIFO() || fs.fstatSync(0).isSocket(); } catch (e) { return false; }
}

// V8's own GC pauses of GC_REPORT_MS or more, printed as ground truth
// {"event":"gc","start_ns","end_ns","gc_kind"} (CLOCK_MONOTONIC): a pause
// after a handler (freeing its 256 MB buffer, measured 52 ms under load) is
// a real stall of the loop that no handler's block contains. The entries
// are on performance.now()'s clock, which is uv_hrtime() less a constant.
const GC_REPORT_MS = 10;
function watchGc() {
  const { PerformanceObserver, performance } = require('perf_hooks');
  const off = now() - BigInt(Math.round(performance.now() * 1e6));
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration < GC_REPORT_MS) continue;
      const s = off + BigInt(Math.round(e.startTime * 1e6));
      emit({ event: 'gc', start_ns: s, end_ns: s + BigInt(Math.round(e.duration * 1e6)),
             gc_kind: e.detail ? e.detail.kind : 0 });
    }
  }).observe({ entryTypes: ['gc'] });
}

// The service of a pattern workload (tests/workloads/node_*.js besides the
// older ones): node:http on 127.0.0.1, GET / answers "ok" (the healthy
// request), every other route is a real request handler that commits one
// mistake. A handler gets (url, body Buffer) once the whole request is in,
// in the 'end' callback as Express's body parsers would, and returns
// { truth, reply, ...fields }: truth from measure() around its synchronous
// work. The ground-truth line {"event":"block","kind":..,"tid":..,truth,
// after_busy_ns,..fields} is printed from a later iteration, after the
// response, so that writing it does not lengthen the blocked one.
//   ready: {"event":"ready","pid","tid","port","runtime":"node","version","exe",..ready}
// Exits when stdin (a pipe) closes, or on SIGTERM/SIGINT.
function serve(routes, { port = 0, ready = {} } = {}) {
  const http = require('http');
  const TID = tid();
  spin(0); // compiled before the first measured block (see node_block.js)
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const route = routes[url.pathname];
      if (url.pathname === '/' || !route) {
        res.writeHead(route || url.pathname === '/' ? 200 : 404, { 'content-type': 'text/plain' });
        res.end(url.pathname === '/' ? 'ok\n' : 'not found\n');
        return;
      }
      let r;
      try {
        r = route.handler(url, Buffer.concat(chunks));
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${e}\n`);
        return;
      }
      const { truth, reply, ...fields } = r;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(reply);
      after(truth).then(async (a) => {
        await sleep(20);
        // a field given as a function is what is known only later (GC
        // entries of a PerformanceObserver): evaluated now, its object merged
        let extra = {};
        for (const [k, v] of Object.entries(fields)) {
          if (typeof v === 'function') { Object.assign(extra, v()); delete fields[k]; }
        }
        emit({ event: 'block', kind: route.kind, ms: Number(truth.end_ns - truth.start_ns) / 1e6,
               tid: TID, ...truth, ...a, ...fields, ...extra });
      });
    });
  });
  server.keepAliveTimeout = 30000;
  watchGc();
  server.listen(port, '127.0.0.1', () => {
    emit({ event: 'ready', pid: process.pid, tid: TID, port: server.address().port,
           runtime: 'node', version: process.version, exe: process.execPath, ...ready });
  });
  if (stdinIsPipe()) watchStdin(null);
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
  return server;
}

module.exports = { now, tid, line, emit, spin, spinFor, measure, after, parseSchedule, parseArgs, sleep, watchStdin, stdinIsPipe, serve };
