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

// The calling thread's run-queue wait so far (ns): field 2 of
// /proc/thread-self/schedstat, the kernel's sched_info.run_delay, which is
// brought up to date each time the thread gets a CPU, so it is exact when the
// thread reads it. One fd per thread (a worker loads its own copy of this
// module), read with pread: one syscall, no allocation.
let rdFd = null;
const rdBuf = Buffer.alloc(128);
function runDelay() {
  if (rdFd === null) rdFd = fs.openSync('/proc/thread-self/schedstat', 'r');
  const n = fs.readSync(rdFd, rdBuf, 0, rdBuf.length, 0);
  return BigInt(rdBuf.toString('latin1', 0, n).split(' ')[1]);
}

// Ground truth of a block: fn() between two CLOCK_MONOTONIC reads, and the
// time the thread waited for a CPU in between (runq_ns). The agent's block
// starts at the loop's wait return, a little before start_ns: a preemption
// there is in the agent's run-queue time and not in runq_ns, which is how the
// tests tell it from a measurement error (tests/root/swtest.py).
function measure(fn) {
  const start = now();
  const rd0 = runDelay();
  fn();
  const rd1 = runDelay();
  const end = now();
  const truth = { start_ns: start, end_ns: end, runq_ns: rd1 - rd0 };
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

module.exports = { now, tid, line, emit, spin, spinFor, measure, after, parseSchedule, parseArgs, sleep, watchStdin, stdinIsPipe };
