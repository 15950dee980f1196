// SPDX-License-Identifier: Apache-2.0
// Pattern node.gc: allocation-heavy handlers in a service whose heap is
// mostly a large long-lived cache, so that V8's collector, not the handler's
// own code, takes most of the blocked time.
//
//   node --max-old-space-size=256 node_gc.js [--cache 1000000] [--nodes 400000]
//
// GET /tree builds a tree of --nodes small objects that all stay alive until
// the response is sent (a request-scoped object graph: an ORM result, a
// parsed document): every scavenge copies them all, and with the heap near
// its limit the old generation is collected too. Ground truth: swlib.serve(),
// plus gc_ns: the time of V8's GC pauses inside the block, from
// PerformanceObserver 'gc' entries (perf_hooks; startTime and duration are
// on performance.now()'s clock, read around the block too).
'use strict';
const { PerformanceObserver, performance } = require('perf_hooks');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { cache: 1000000, nodes: 400000 });
const cache = [];
for (let i = 0; i < args.cache; i++) cache.push({ id: i, name: `k${i}`, v: [i] });

let gcs = []; // [start ms, duration ms, kind] on performance.now()'s clock
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push([e.startTime, e.duration, e.detail ? e.detail.kind : 0]);
  if (gcs.length > 10000) gcs = gcs.slice(-1000);
}).observe({ entryTypes: ['gc'] });

// GC pause time inside [p0, p1] (ms, performance.now()), in ns
function gcInside(p0, p1) {
  let ms = 0;
  let n = 0;
  for (const [s, d] of gcs) {
    const a = Math.max(s, p0);
    const b = Math.min(s + d, p1);
    if (b > a) { ms += b - a; n++; }
  }
  return { gc_ns: Math.round(ms * 1e6), gc_pauses: n };
}

function buildTree(n) {
  const nodes = [];
  for (let i = 0; i < n; i++) nodes.push({ parent: i ? nodes[i >> 1] : null, v: [i] });
  return nodes;
}

sw.serve({
  '/tree': {
    kind: 'gc',
    handler() {
      let tree;
      const p0 = performance.now();
      const truth = sw.measure(() => { tree = buildTree(args.nodes); });
      const p1 = performance.now();
      // the observer's entries arrive after the block: read at print time
      return { truth, reply: `${tree.length} nodes\n`, gc: () => gcInside(p0, p1) };
    },
  },
}, { ready: { cache: cache.length } });
