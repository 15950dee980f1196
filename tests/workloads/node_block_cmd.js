// SPDX-License-Identifier: Apache-2.0
// Node workload: the main thread blocks when told, so that a test knows when
// no block is in flight (tests/root/test_stream_loss.py).
//
//   node node_block_cmd.js
//
// stdin, one command a line:  block MS   spin on CPU for MS ms, from a timer
//                                        callback (right after the loop's wait)
// stdout, one JSON object per line:
//   {"event":"ready","pid":..,"tid":..,"version":..,"exe":..}
//   {"event":"block","n":..,"kind":"spin","ms":..,"tid":..,"start_ns":..,"end_ns":..}
// Between blocks the loop ticks every 5 ms. Exits when stdin closes or on SIGTERM.
'use strict';
const sw = require('./swlib');

const TID = sw.tid();
let n = 0;
let queue = Promise.resolve();
setInterval(() => {}, 5);
// V8 compiles the block's path at its first run: once, empty, before any
// block the test counts (node_block.js says why)
setTimeout(() => sw.spin(0), 1);

function blockOnce(ms) {
  queue = queue.then(async () => {
    await sw.sleep(20);
    const truth = sw.spin(ms);
    const after = await sw.after(truth);
    await sw.sleep(20);
    sw.emit({ event: 'block', n: ++n, kind: 'spin', ms, tid: TID, ...truth, ...after });
  });
}

let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const l = buf.slice(0, i).trim().split(/\s+/);
    buf = buf.slice(i + 1);
    if (l[0] === 'block' && Number(l[1]) > 0) blockOnce(Number(l[1]));
  }
});
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
sw.emit({ event: 'ready', pid: process.pid, tid: TID, version: process.version, exe: process.execPath });
