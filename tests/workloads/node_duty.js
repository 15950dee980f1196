// SPDX-License-Identifier: Apache-2.0
// Node workload: a steady duty cycle, for event-loop utilization.
//
//   node node_duty.js [--period-ms 10] [--work-ms 3] [--seconds 4]
//
// After "go", a timer every --period-ms spins --work-ms, for --seconds.
// Ground truth is Node's own performance.eventLoopUtilization() (libuv's
// idle-time metric, the definition the agent follows), over the window and
// as samples of the loop's cumulative idle time at every tick, so that a test
// can compute it over any interval of the agent's:
//   {"event":"done","elu":..,"start_ns":..,"end_ns":..,"active_ms":..,"idle_ms":..,
//    "idle_samples":[[mono_ns, idle_ms], ...]}
'use strict';
const { performance } = require('perf_hooks');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { periodMs: 10, workMs: 3, seconds: 4 });
const TID = sw.tid();

function run() {
  const start = sw.now();
  const elu0 = performance.eventLoopUtilization();
  // taken first thing in the callback, just after the loop's wait returned:
  // the idle total is then exact up to that moment
  const samples = [[start, elu0.idle]];
  const t = setInterval(() => {
    samples.push([sw.now(), performance.eventLoopUtilization().idle]);
    sw.spinFor(args.workMs);
  }, args.periodMs);
  setTimeout(() => {
    clearInterval(t);
    const elu = performance.eventLoopUtilization(elu0);
    const end = sw.now();
    samples.push([end, performance.eventLoopUtilization().idle]);
    setTimeout(() => sw.emit({ event: 'done', tid: TID, elu: elu.utilization, start_ns: start,
                               end_ns: end, active_ms: elu.active, idle_ms: elu.idle,
                               idle_samples: samples }), 20);
  }, args.seconds * 1000);
}

sw.watchStdin(run);
sw.emit({ event: 'ready', pid: process.pid, tid: TID });
