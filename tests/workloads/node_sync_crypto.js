// SPDX-License-Identifier: Apache-2.0
// Pattern node.sync_crypto: crypto.pbkdf2Sync in a login handler.
//
//   node node_sync_crypto.js
//
// POST /login?iter=N (default 200000): derives the password hash with
// pbkdf2Sync (sha512) on the loop instead of crypto.pbkdf2 on the
// threadpool. Ground truth: swlib.serve().
'use strict';
const crypto = require('crypto');
const sw = require('./swlib');

sw.serve({
  '/login': {
    kind: 'sync_crypto',
    handler(url, body) {
      const iter = Number(url.searchParams.get('iter') || '200000');
      let key;
      const truth = sw.measure(() => {
        key = crypto.pbkdf2Sync(body.toString() || 'password', 'salt', iter, 64, 'sha512');
      });
      return { truth, reply: `${key.toString('hex').slice(0, 16)}\n`, iter };
    },
  },
});
