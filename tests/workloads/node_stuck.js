// SPDX-License-Identifier: Apache-2.0
// Node workload: a loop that is already stuck when the agent attaches.
//
//   node node_stuck.js [--ms 3000]
//
// Prints ready, then (10 ms later) spins the main thread for --ms without
// waiting for "go": the harness attaches while it spins. The block's line
// comes from a later iteration. Stays alive until stdin closes or SIGTERM.
'use strict';
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { ms: 3000 });
const TID = sw.tid();
sw.watchStdin(null);
sw.emit({ event: 'ready', pid: process.pid, tid: TID });
setTimeout(() => {
  const [start, end] = sw.spin(args.ms);
  setTimeout(() => sw.emit({ event: 'block', kind: 'spin', ms: args.ms, tid: TID,
                             start_ns: start, end_ns: end }), 20);
}, 10);
