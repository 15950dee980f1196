// SPDX-License-Identifier: Apache-2.0
// Node workload: a healthy loop that yields with setImmediate.
//
//   node node_immediate.js [--count 3000] [--work-us 200]
//
// After "go", runs --count callbacks chained with setImmediate, each doing
// --work-us of CPU work. Every setImmediate callback runs in its own loop
// iteration (libuv's check phase), so the loop iterates --count times in a
// row, each iteration short: a correct agent sees ~count iterations and no
// blocked loop, although the loop never waits with a timeout meanwhile.
//
// stdout: {"event":"ready",..} then {"event":"done","immediates":N,
//          "start_ns":..,"end_ns":..,"max_callback_ns":..}
'use strict';
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { count: 3000, workUs: 200 });
const TID = sw.tid();

function run() {
  let n = 0;
  let maxCb = 0n;
  const start = sw.now();
  function step() {
    const s = sw.now();
    sw.spinFor(args.workUs / 1000);
    const e = sw.now();
    if (e - s > maxCb) maxCb = e - s;
    if (++n < args.count) {
      setImmediate(step);
      return;
    }
    const end = sw.now();
    // reported from a later iteration, so the pipe write is in none of them
    setTimeout(() => sw.emit({ event: 'done', immediates: n, tid: TID, start_ns: start,
                               end_ns: end, max_callback_ns: maxCb }), 50);
  }
  setImmediate(step);
}

sw.watchStdin(run);
sw.emit({ event: 'ready', pid: process.pid, tid: TID });
