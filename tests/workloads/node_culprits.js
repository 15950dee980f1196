// SPDX-License-Identifier: Apache-2.0
// Node workload: the main thread blocks in known culprits, for the stack
// tests (tests/root/test_stacks.py).
//
//   node node_culprits.js [--schedule json:250,gzip:250,pbkdf2:250,jsfn:250]
//                         [--gap-ms 400]
//
// Block kinds (each repeats its operation until MS ms have passed, so the
// culprit holds the CPU for the whole block):
//   json:MS    JSON.parse of a ~4 MB string
//   gzip:MS    zlib.gzipSync of a 4 MB buffer
//   pbkdf2:MS  crypto.pbkdf2Sync with 20000 iterations
//   jsfn:MS    a plain JS function, stallwatchCulpritSpin, computing
//   sleep:MS   Atomics.wait (futex, off CPU)
//
// stdout: the ready/go/block/done protocol of node_block.js (swlib.js).
'use strict';
const crypto = require('crypto');
const zlib = require('zlib');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), {
  schedule: 'json:250,gzip:250,pbkdf2:250,jsfn:250',
  gapMs: 400,
});
const schedule = sw.parseSchedule(args.schedule);
const TID = sw.tid();
setInterval(() => {}, 5);

const bigJson = JSON.stringify(Array.from({ length: 60000 }, (_, i) => ({ id: i, name: `n${i}`, tags: ['a', 'b'], v: i * 1.5 })));
const gzInput = crypto.randomBytes(1 << 20).toString('hex'); // 2 MB of hex: compressible, not trivially
const deadline = (ms) => sw.now() + BigInt(Math.round(ms * 1e6));

// Named so that a perf map (--perf-basic-prof-only-functions) shows it.
function stallwatchCulpritSpin(until) {
  let x = 0;
  for (;;) {
    for (let i = 0; i < 100000; i++) x = (x * 1103515245 + 12345) % 2147483648;
    if (sw.now() >= until) return x;
  }
}

function block(kind, ms) {
  const until = deadline(ms);
  switch (kind) {
    case 'json':
      return sw.measure(() => { do JSON.parse(bigJson); while (sw.now() < until); });
    case 'gzip':
      return sw.measure(() => { do zlib.gzipSync(gzInput, { level: 9 }); while (sw.now() < until); });
    case 'pbkdf2':
      return sw.measure(() => { do crypto.pbkdf2Sync('secret', 'salt', 20000, 64, 'sha512'); while (sw.now() < until); });
    case 'jsfn':
      return sw.measure(() => stallwatchCulpritSpin(until));
    case 'sleep': {
      const ia = new Int32Array(new SharedArrayBuffer(4));
      return sw.measure(() => Atomics.wait(ia, 0, 0, ms));
    }
    default:
      throw new Error(`unknown block kind ${kind}`);
  }
}

async function run() {
  // compile the paths first (see node_block.js): short runs below the threshold
  for (const kind of new Set(schedule.map((b) => b.kind))) {
    await sw.sleep(1);
    if (kind === 'jsfn') stallwatchCulpritSpin(deadline(0));
  }
  for (const { kind, ms } of schedule) {
    await sw.sleep(args.gapMs);
    const truth = block(kind, ms);
    const after = await sw.after(truth);
    await sw.sleep(20);
    sw.emit({ event: 'block', kind, ms, tid: TID, ...truth, ...after });
  }
  await sw.sleep(args.gapMs);
  sw.emit({ event: 'done' });
}

sw.watchStdin(() => { run().catch((e) => { console.error(e); process.exit(3); }); });
process.on('SIGTERM', () => process.exit(0));
sw.emit({ event: 'ready', pid: process.pid, tid: TID, version: process.version, exe: process.execPath });
