// SPDX-License-Identifier: Apache-2.0
// Pattern node.sync_zlib: zlib.gzipSync of a large buffer in a handler.
//
//   node node_sync_zlib.js [--mb 10]
//
// GET /export: gzips a report of --mb MB (built at start, text that
// compresses like a CSV export) with gzipSync on the loop instead of
// zlib.gzip or a stream. Ground truth: swlib.serve().
'use strict';
const zlib = require('zlib');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { mb: 10 });
const rows = [];
let size = 0;
for (let i = 0; size < args.mb * 1e6; i++) {
  const r = `${i},user${i % 9973},${(i * 7919) % 100003},${Math.sin(i).toFixed(6)}\n`;
  rows.push(r);
  size += r.length;
}
const report = Buffer.from(rows.join(''));

sw.serve({
  '/export': {
    kind: 'sync_zlib',
    handler() {
      let gz;
      const truth = sw.measure(() => { gz = zlib.gzipSync(report); });
      return { truth, reply: `${gz.length} bytes gzipped\n`, bytes: report.length };
    },
  },
}, { ready: { bytes: report.length } });
