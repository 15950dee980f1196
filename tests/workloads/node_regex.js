// SPDX-License-Identifier: Apache-2.0
// Pattern node.regex: catastrophic backtracking in an input validator.
//
//   node node_regex.js [--target-ms 250]
//
// GET /signup?user=TEXT checks the user name against a pattern with a nested
// quantifier, ^([a-z0-9]+)+$: on "aaaa…a!" irregexp tries every way to split
// the a's before failing, 2^n steps. At start the workload finds the length n
// whose test takes about --target-ms on this machine and prints it in the
// ready line ("n"): the test sends "a" * n + "!". Ground truth: swlib.serve().
'use strict';
const sw = require('./swlib');

const args = sw.parseArgs(process.argv.slice(2), { targetMs: 250 });
const USER = /^([a-z0-9]+)+$/;

// time of one failing test at length n, ms
function timeAt(n) {
  const s = 'a'.repeat(n) + '!';
  const t0 = sw.now();
  USER.test(s);
  return Number(sw.now() - t0) / 1e6;
}
let n = 12;
while (timeAt(n) < 4 && n < 40) n++;
// each more character doubles the work
const t = timeAt(n);
n += Math.max(0, Math.round(Math.log2(args.targetMs / Math.max(t, 0.01))));

sw.serve({
  '/signup': {
    kind: 'regex',
    handler(url) {
      const user = url.searchParams.get('user') || '';
      let ok;
      const truth = sw.measure(() => { ok = USER.test(user); });
      return { truth, reply: ok ? 'welcome\n' : 'invalid user name\n', length: user.length };
    },
  },
}, { ready: { n } });
