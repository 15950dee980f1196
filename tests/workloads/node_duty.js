// SPDX-License-Identifier: Apache-2.0
// Node workload: a steady duty cycle, for event-loop utilization.
//
//   node node_duty.js [--period-ms 10] [--work-ms 3] [--seconds 4]
//
// After "go", a timer every --period-ms spins --work-ms, for --seconds.
// Ground truth is Node's own performance.eventLoopUtilization() over that
// window (libuv's idle-time metric, the definition the agent follows):
//   {"event":"done","elu":..,"start_ns":..,"end_ns":..,"active_ms":..,"idle_ms":..}
'use strict';
const { performance } = require('perf_hooks');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { periodMs: 10, workMs: 3, seconds: 4 });
const TID = sw.tid();

function run() {
  const start = sw.now();
  const elu0 = performance.eventLoopUtilization();
  const t = setInterval(() => sw.spinFor(args.workMs), args.periodMs);
  setTimeout(() => {
    clearInterval(t);
    const elu = performance.eventLoopUtilization(elu0);
    const end = sw.now();
    setTimeout(() => sw.emit({ event: 'done', tid: TID, elu: elu.utilization, start_ns: start,
                               end_ns: end, active_ms: elu.active, idle_ms: elu.idle }), 20);
  }, args.seconds * 1000);
}

sw.watchStdin(run);
sw.emit({ event: 'ready', pid: process.pid, tid: TID });
