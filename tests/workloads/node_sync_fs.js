// SPDX-License-Identifier: Apache-2.0
// Pattern node.sync_fs: fs.readFileSync of a large file in a handler.
//
//   node node_sync_fs.js --file PATH
//
// GET /download: reads the whole of --file with fs.readFileSync on the loop
// (instead of fs.promises or a read stream). The test evicts the file from
// the page cache before each request, so the read waits for the disk as a
// cold read in production does. Ground truth: swlib.serve(); the path is in
// the block line.
'use strict';
const fs = require('fs');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { file: '' });
if (!args.file) {
  console.error('node_sync_fs.js: --file PATH is required (a large file to serve)');
  process.exit(2);
}

sw.serve({
  '/download': {
    kind: 'sync_fs',
    handler() {
      let data;
      const truth = sw.measure(() => { data = fs.readFileSync(args.file); });
      return { truth, reply: `${data.length} bytes\n`, path: args.file, bytes: data.length };
    },
  },
});
