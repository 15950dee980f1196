// SPDX-License-Identifier: Apache-2.0
// Node workload: a loop that is already stuck when the agent attaches.
//
//   node node_stuck.js [--ms 3000] [--delay-ms 10]
//
// Prints ready, then (--delay-ms later) spins the main thread for --ms
// without waiting for "go": with a short delay the harness attaches while it
// spins; with a long one, before. The block's line comes from a later
// iteration; after that the loop has nothing to do (no timer, only stdin):
// it sleeps in epoll_pwait until stdin closes or SIGTERM.
'use strict';
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { ms: 3000, delayMs: 10 });
const TID = sw.tid();
sw.watchStdin(null);
sw.emit({ event: 'ready', pid: process.pid, tid: TID });
setTimeout(() => {
  const truth = sw.spin(args.ms);
  sw.after(truth).then((after) => setTimeout(
    () => sw.emit({ event: 'block', kind: 'spin', ms: args.ms, tid: TID, ...truth, ...after }), 20));
}, args.delayMs);
