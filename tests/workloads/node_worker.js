// SPDX-License-Identifier: Apache-2.0
// Node workload: a worker_threads worker blocks, the main loop stays healthy.
//
//   node node_worker.js [--schedule spin:120,spin:250] [--gap-ms 400]
//                       [--tick-ms 5] [--late]
//
// Without --late the worker is started before "ready" and its tid is in the
// ready line; with --late it is started only after "go" (a thread that
// appears while the agent is attached) and announced by a "worker" line.
//
// stdout:
//   {"event":"ready","pid":..,"tid":<main>,"worker_tid":<worker or null>,..}
//   {"event":"worker","tid":..}                                (always, once the worker runs)
//   {"event":"block","kind":"spin|sleep","ms":..,"tid":<worker>,"start_ns":..,"end_ns":..}
//   {"event":"done","main_ticks":..,"main_max_gap_ns":..}
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const sw = require('./swlib');

if (!isMainThread) {
  // ---- worker: its own libuv loop, ticking, blocking on command ----
  const TID = sw.tid();
  setInterval(() => {}, workerData.tickMs);
  parentPort.on('message', async (msg) => {
    if (msg !== 'go') return;
    // the timer, promise and block paths run once before the first measured
    // block, so that it does not begin with their compilation (node_block.js)
    await sw.sleep(1);
    sw.spin(0);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 0);
    for (const { kind, ms } of workerData.schedule) {
      await sw.sleep(workerData.gapMs);
      let truth;
      if (kind === 'spin') {
        truth = sw.spin(ms);
      } else if (kind === 'sleep') {
        const ia = new Int32Array(new SharedArrayBuffer(4));
        truth = sw.measure(() => Atomics.wait(ia, 0, 0, ms));
      } else {
        throw new Error(`unknown block kind ${kind}`);
      }
      const after = await sw.after(truth);
      // BigInt survives structured clone. Posted from a later iteration.
      await sw.sleep(20);
      parentPort.postMessage({ event: 'block', kind, ms, tid: TID, ...truth, ...after });
    }
    await sw.sleep(workerData.gapMs);
    parentPort.postMessage({ event: 'worker_done' });
  });
  parentPort.postMessage({ event: 'worker', tid: TID });
  return;
}

// ---- main thread ----
const args = sw.parseArgs(process.argv.slice(2), {
  schedule: 'spin:120,spin:250',
  gapMs: 400,
  tickMs: 5,
  late: false,
});
const schedule = sw.parseSchedule(args.schedule);
const TID = sw.tid();

// The main loop's own view of its health: the largest gap between ticks.
let ticks = 0;
let last = sw.now();
let maxGap = 0n;
setInterval(() => {
  const t = sw.now();
  if (t - last > maxGap) maxGap = t - last;
  last = t;
  ticks++;
}, args.tickMs);

function startWorker() {
  return new Promise((resolve) => {
    const w = new Worker(__filename, {
      workerData: { schedule, gapMs: args.gapMs, tickMs: args.tickMs },
    });
    w.on('message', (m) => {
      if (m.event === 'worker') { sw.emit(m); resolve([w, m.tid]); }
      else if (m.event === 'block') sw.emit(m);
      else if (m.event === 'worker_done') {
        sw.emit({ event: 'done', main_ticks: ticks, main_max_gap_ns: maxGap });
      }
    });
    w.on('error', (e) => { console.error(e); process.exit(3); });
  });
}

async function main() {
  let worker = null;
  let workerTid = null;
  if (!args.late) [worker, workerTid] = await startWorker();
  sw.watchStdin(async () => {
    if (!worker) [worker] = await startWorker();
    ticks = 0; maxGap = 0n; last = sw.now();
    worker.postMessage('go');
  });
  process.on('SIGTERM', () => process.exit(0));
  sw.emit({ event: 'ready', pid: process.pid, tid: TID, worker_tid: workerTid,
            version: process.version, exe: process.execPath });
}
main();
