// SPDX-License-Identifier: Apache-2.0
// Node workload for the syscalls of a block (tests/root/test_sysio.py).
//
//   node node_sysio.js --file PATH [--schedule execSync:300,readFile:0]
//
// Block kinds, on the main loop thread:
//   execSync:MS  child_process.execSync('sleep MS/1000'): a nested libuv
//                loop waits for the child; truth: the command line
//   readFile:0   fs.readFileSync(--file): one big read of a regular file;
//                truth: the path, the file size
// stdout: ready / block / done JSON lines (swlib.js), truth from measure().
'use strict';
const { execSync } = require('child_process');
const fs = require('fs');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), {
  schedule: 'execSync:300,readFile:0',
  file: '',
  gapMs: 400,
});
const schedule = sw.parseSchedule(args.schedule);
const TID = sw.tid();
setInterval(() => {}, 5);

function block(kind, ms) {
  switch (kind) {
    case 'execSync': {
      const cmd = `sleep ${ms / 1000}`;
      // fields added, not spread: after() needs measure()'s hidden idle_end
      return Object.assign(sw.measure(() => execSync(cmd, { stdio: 'ignore' })), { cmd });
    }
    case 'readFile': {
      let size = 0;
      const truth = sw.measure(() => { size = fs.readFileSync(args.file).length; });
      return Object.assign(truth, { path: args.file, size });
    }
    default:
      throw new Error(`unknown block kind ${kind}`);
  }
}

async function run() {
  // the block paths once before measuring: lazy compilation is not the block
  execSync('true', { stdio: 'ignore' });
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
sw.emit({ event: 'ready', pid: process.pid, tid: TID, loop_tid: TID, version: process.version,
  exe: process.execPath });
