// SPDX-License-Identifier: Apache-2.0
// Pattern node.large_json: JSON.parse of a large posted body on the loop.
//
//   node node_large_json.js
//
// POST /orders with a JSON body {"items":[...]}: the handler parses the whole
// body at once (what express.json() does for any size it is allowed), which
// holds the loop for as long as V8's JsonParser runs. The fix: stream the
// parse or bound the payload size. Ground truth: swlib.serve().
'use strict';
const sw = require('./swlib');

sw.serve({
  '/orders': {
    kind: 'large_json',
    handler(url, body) {
      let doc;
      const truth = sw.measure(() => { doc = JSON.parse(body.toString('utf8')); });
      return { truth, reply: `${doc.items.length} items\n`, bytes: body.length };
    },
  },
});
