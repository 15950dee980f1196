// SPDX-License-Identifier: Apache-2.0
// Node workload: a loop that blocks when told, for as long as it lives.
//
//   node node_block_cmd.js [--tick-ms 5] [--title NAME]
//
// Each stdin line "spin MS" (or "block MS") makes the main thread spin MS in
// a timer callback (a busy block on CPU); lines may come at any time, so a
// test can place blocks around an agent restart, or know when none is in
// flight (test_stream_loss.py). node_block.js runs one fixed schedule on
// "go" instead.
//
// stdout, one JSON object per line:
//   {"event":"ready","pid":..,"tid":..,"version":"v20..","exe":".."}
//   {"event":"block","n":..,"kind":"spin","ms":..,"tid":..,"start_ns":..,"end_ns":..,
//    "wall_end_ms":..,...}  per block, after it (swlib.measure, swlib.after);
//    start/end: CLOCK_MONOTONIC; wall_end_ms: Date.now() right after end_ns
// Between blocks the loop ticks every --tick-ms (setInterval), so it always
// has iterations. Exits when stdin closes, or on SIGTERM.
'use strict';
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { tickMs: 5, title: '' });
if (args.title) process.title = args.title;
const TID = sw.tid();
let ticks = 0;
let n = 0;
setInterval(() => { ticks++; }, args.tickMs);

// Blocks run one after the other, in the order asked.
let chain = (async () => {
  // compiled before the first measured block (see node_block.js)
  await sw.sleep(1);
  sw.spin(0);
})();

function block(ms) {
  chain = chain.then(async () => {
    // in a timer callback: right after the loop's wait returned
    await sw.sleep(1);
    const truth = sw.spin(ms);
    const wallEnd = Date.now();
    const after = await sw.after(truth);
    // printed from a later iteration: the pipe write is not the block's
    await sw.sleep(20);
    sw.emit({ event: 'block', n: ++n, kind: 'spin', ms, tid: TID, ...truth,
              wall_end_ms: wallEnd, ...after });
  }).catch((e) => { console.error(e); process.exit(3); });
}

let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const l = buf.slice(0, i).trim().split(/\s+/);
    buf = buf.slice(i + 1);
    if ((l[0] === 'spin' || l[0] === 'block') && Number(l[1]) >= 0) block(Number(l[1]));
    else if (l[0]) { console.error(`node_block_cmd: unknown command ${l.join(' ')}`); process.exit(2); }
  }
});
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
sw.emit({ event: 'ready', pid: process.pid, tid: TID, version: process.version,
          exe: process.execPath });
