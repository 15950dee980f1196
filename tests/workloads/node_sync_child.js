// SPDX-License-Identifier: Apache-2.0
// Pattern node.sync_child: child_process.execSync in a handler.
//
//   node node_sync_child.js [--cmd 'sleep 0.3']
//
// GET /convert: runs --cmd with execSync (a nested libuv loop waiting for
// the child) instead of exec/spawn. Ground truth: swlib.serve(); the command
// is in the block line.
'use strict';
const { execSync } = require('child_process');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { cmd: 'sleep 0.3' });

sw.serve({
  '/convert': {
    kind: 'sync_child',
    handler() {
      const truth = sw.measure(() => execSync(args.cmd, { stdio: 'ignore' }));
      return { truth, reply: 'converted\n', cmd: args.cmd };
    },
  },
});
