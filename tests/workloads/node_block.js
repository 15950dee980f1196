// SPDX-License-Identifier: Apache-2.0
// Node workload: the main thread blocks on a known schedule.
//
//   node node_block.js [--schedule spin:80,spin:150,spin:300,execSync:200,sleep:120]
//                      [--gap-ms 400] [--tick-ms 5]
//
// Block kinds:
//   spin:MS      busy loop on process.hrtime (on CPU)
//   execSync:MS  child_process.execSync('sleep S'): a nested libuv loop on
//                another epoll fd, which must count as busy time
//   sleep:MS     Atomics.wait on a SharedArrayBuffer (futex, off CPU)
//
// stdout, one JSON object per line:
//   {"event":"ready","pid":..,"tid":..,"version":"v20..","exe":".."}
//   (after the line "go" on stdin)
//   {"event":"block","kind":..,"ms":..,"tid":..,"start_ns":..,"end_ns":..}  per block
//   {"event":"done","eld_max_ns":..,"eld_count":..}
// Between blocks the loop ticks every --tick-ms (setInterval) for --gap-ms.
// perf_hooks.monitorEventLoopDelay({resolution: 1}) runs from "go" to "done".
// Stays alive until stdin closes or SIGTERM.
'use strict';
const { execSync } = require('child_process');
const { monitorEventLoopDelay } = require('perf_hooks');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), {
  schedule: 'spin:80,spin:150,spin:300,execSync:200,sleep:120',
  gapMs: 400,
  tickMs: 5,
  title: '', // process.title: the kernel cuts the comm at 15 bytes, maybe inside a character
});
if (args.title) process.title = args.title;
const schedule = sw.parseSchedule(args.schedule);
const TID = sw.tid();
let ticks = 0;
setInterval(() => { ticks++; }, args.tickMs);

// One block; returns its ground truth (swlib.measure).
function block(kind, ms) {
  switch (kind) {
    case 'spin':
      return sw.spin(ms);
    case 'execSync':
      return sw.measure(() => execSync(`sleep ${ms / 1000}`, { stdio: 'ignore' }));
    case 'sleep': {
      const ia = new Int32Array(new SharedArrayBuffer(4));
      return sw.measure(() => Atomics.wait(ia, 0, 0, ms));
    }
    default:
      throw new Error(`unknown block kind ${kind}`);
  }
}

async function run() {
  // V8 compiles code at its first run: the first block would otherwise begin
  // with compiling the timer, promise and block paths, after the loop's wait
  // returned and before the block's first clock read (0.3-0.9 ms measured, 5
  // ms once under load), which the agent rightly counts and the ground truth
  // cannot see. So the same path runs once with empty blocks first. Not
  // execSync's: spawning even `sleep 0` blocks in read() until the child
  // execs, an incident of its own on a loaded machine (57.9 ms measured);
  // the code inside measure() runs inside the block's window anyway.
  for (const kind of new Set(schedule.map((b) => b.kind))) {
    await sw.sleep(1);
    block(kind === 'execSync' ? 'spin' : kind, 0);
  }
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  for (const { kind, ms } of schedule) {
    await sw.sleep(args.gapMs);
    // Runs in a timer callback: right after the loop's wait returned.
    const truth = block(kind, ms);
    const after = await sw.after(truth);
    // Printed from a later iteration: a pipe write (and waking the reader)
    // must not lengthen the blocked one past the ground truth.
    await sw.sleep(20);
    sw.emit({ event: 'block', kind, ms, tid: TID, ...truth, ...after });
  }
  await sw.sleep(args.gapMs);
  eld.disable();
  sw.emit({ event: 'done', eld_max_ns: eld.max, eld_count: eld.count, ticks });
}

sw.watchStdin(() => { run().catch((e) => { console.error(e); process.exit(3); }); });
process.on('SIGTERM', () => process.exit(0));
sw.emit({ event: 'ready', pid: process.pid, tid: TID, version: process.version, exe: process.execPath });
