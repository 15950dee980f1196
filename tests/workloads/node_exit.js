// SPDX-License-Identifier: Apache-2.0
// Node workload: a process that ends in a chosen way, on "go".
//
//   node node_exit.js --mode reject-error|reject-value|uncaught|clean|block
//
//   reject-error  an async function throws an Error nobody awaits: Node >= 15
//                 dies of the unhandled rejection (exit status 1); its stderr
//                 is the same as an uncaught throw's
//   reject-value  Promise.reject("plain"): the UnhandledPromiseRejection text
//   uncaught      a timer callback throws (exit status 1, not a rejection)
//   clean         process.exit(0)
//   block         spins the main thread until killed (prints "blocking")
// Prints ready first, and {"event":"ending", ...} with the truth just
// before it ends.
'use strict';
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { mode: 'clean' });
const TID = sw.tid();
// keep the loop alive until the end we chose
const keep = setInterval(() => {}, 1000);

async function fetchUser() {
  await null;
  throw new Error('db down: fetchUser');
}

function end() {
  sw.emit({ event: 'ending', mode: args.mode, tid: TID, ts_ns: sw.now() });
  switch (args.mode) {
    case 'reject-error':
      fetchUser(); // not awaited, no .catch()
      break;
    case 'reject-value':
      Promise.reject('plain');
      break;
    case 'uncaught':
      setTimeout(() => { throw new Error('bad callback'); }, 1);
      break;
    case 'clean':
      clearInterval(keep);
      process.exit(0);
      break;
    case 'block':
      sw.emit({ event: 'blocking', tid: TID, start_ns: sw.now() });
      for (;;) { /* until SIGKILL */ }
    default:
      throw new Error(`unknown mode ${args.mode}`);
  }
}

sw.watchStdin(end, { exitOnEof: false });
sw.emit({ event: 'ready', pid: process.pid, tid: TID, version: process.version });
