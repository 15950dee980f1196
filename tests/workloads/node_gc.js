// SPDX-License-Identifier: Apache-2.0
// Pattern node.gc: an allocation-heavy handler whose objects live just long
// enough to be expensive, so that V8's collector, not the handler's own
// code, takes most of the blocked time.
//
//   node node_gc.js [--records 1000000] [--window 100000]
//
// GET /dedup reads a batch of --records events and drops duplicates by
// keeping the last --window of them in a ring (a sliding dedup window, a
// moving aggregate): every event is a fresh object that survives a few
// scavenges, so each scavenge copies the whole window. About half of what
// is allocated is still alive at each scavenge, under the survival rate
// at which V8 would pretenure the allocation site (and stop scavenging it):
// measured 73-85 % of the block in GC pauses, where a handler that keeps
// everything (a tree) gets pretenured after its first request and a handler
// that keeps nothing is not slowed by GC at all. Ground truth:
// swlib.serve(), plus gc_ns: the time of V8's GC pauses inside the block,
// from PerformanceObserver 'gc' entries (perf_hooks; startTime and duration
// are on performance.now()'s clock, read around the block too).
'use strict';
const { PerformanceObserver, performance } = require('perf_hooks');
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { records: 1000000, window: 100000 });
const ring = new Array(args.window).fill(null);
let pos = 0;

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

// one batch: every event a new object (and its tags array); a duplicate is
// an id the window slot still holds
function dedup(n, batch) {
  let dups = 0;
  for (let i = 0; i < n; i++) {
    const ev = { id: i % 250007, tags: [batch, i], prev: null };
    const old = ring[pos];
    if (old !== null && old.id === ev.id) dups++;
    ring[pos] = ev;
    pos = (pos + 1) % ring.length;
  }
  return dups;
}

let batches = 0;
sw.serve({
  '/dedup': {
    kind: 'gc',
    handler() {
      let dups;
      const p0 = performance.now();
      const truth = sw.measure(() => { dups = dedup(args.records, batches++); });
      const p1 = performance.now();
      // the observer's entries arrive after the block: read at print time
      return { truth, reply: `${dups} duplicates\n`, gc: () => gcInside(p0, p1) };
    },
  },
}, { ready: { window: args.window } });
