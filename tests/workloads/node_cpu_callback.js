// SPDX-License-Identifier: Apache-2.0
// Pattern node.cpu_bound_callback: plain JavaScript computing in a handler.
//
//   node [--perf-basic-prof-only-functions] node_cpu_callback.js
//
// GET /primes?n=N (default 3000000) counts the primes below N by trial
// division in countPrimes(), on the loop, instead of a worker_thread. No
// JSON, crypto, zlib, regex or GC of note: only JIT code. Ground truth:
// swlib.serve(); the function's name is in the block line (run with a perf
// map, its frame can be named).
'use strict';
const sw = require('./swlib');

function countPrimes(n) {
  let count = 0;
  for (let i = 2; i < n; i++) {
    let prime = true;
    for (let d = 2; d * d <= i; d++) {
      if (i % d === 0) { prime = false; break; }
    }
    if (prime) count++;
  }
  return count;
}

sw.serve({
  '/primes': {
    kind: 'cpu_callback',
    handler(url) {
      const n = Number(url.searchParams.get('n') || '3000000');
      let c;
      const truth = sw.measure(() => { c = countPrimes(n); });
      return { truth, reply: `${c} primes below ${n}\n`, func: 'countPrimes' };
    },
  },
});
