#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Residuals of the agent's blocks against the workloads' ground truth.

    python3 tests/root/residuals.py BUILD/Testing/Temporary/LastTest.log ...

Reads the block tables the root tests log (swtest.block_table) and prints,
over every matched block, what swtest.block_mismatch holds to TOL_NS: the
duration and start differences once the run-queue time outside the
workload's window (gap) is taken out, here at its point estimate (agent's
run-queue time less the workload's own; block_mismatch allows more, see
RUNQ_KERNEL_EXCESS), and so is the loop's busy time after the window that a
Node workload bounds (w.after). What remains is the runtime's own work
between the loop's wait and the workload's clock reads. This is the measurement behind
TOL_NS (tests/root/swtest.py).
"""
import re
import sys

ROW = re.compile(r"^(\S+)\s+(\S+)\s+(\d+) \|\s+(\d+)\s+([\d.]+) \|\s+(\d+)\s+([\d.]+) \|\s+([-+\d.]+)\s+"
                 r"([-+\d.]+) \|\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)(?:\s+([\d.]+))? ")

def main(paths):
    seen, rows = set(), []
    for p in paths:
        for line in open(p, errors="replace"):
            m = ROW.match(line)
            if not m or m.group(12) == "None":
                continue
            key = (m.group(3), m.group(4))
            if key in seen:
                continue
            seen.add(key)
            kind = m.group(1)
            dstart, ddur = float(m.group(8)), float(m.group(9))
            runq, wrunq = float(m.group(12)), float(m.group(13))
            after = float(m.group(14) or 0)  # older logs have no w.after column
            gap = max(0.0, runq - wrunq)
            rows.append((kind, ddur - gap - after, dstart, ddur, gap, runq, wrunq, after))
    if not rows:
        print("no block tables found")
        return 1
    def q(vals, f):
        vals = sorted(vals)
        return vals[min(len(vals) - 1, int(f * len(vals)))]
    res = [r[1] for r in rows]
    st = [r[2] + r[4] for r in rows]
    print("%d blocks" % len(rows))
    print("duration - gap - busy after (ms): min %+.3f p50 %+.3f p99 %+.3f max %+.3f"
          % (min(res), q(res, .5), q(res, .99), max(res)))
    print("start + gap (ms):    min %+.3f p50 %+.3f p99 %+.3f max %+.3f"
          % (min(st), q(st, .5), q(st, .99), max(st)))
    print("blocks with a gap > 0.1 ms: %d, largest %.3f ms"
          % (sum(r[4] > 0.1 for r in rows), max(r[4] for r in rows)))
    worst = sorted(rows, key=lambda r: -abs(r[1]))[:5]
    print("largest |duration - gap|:")
    for r in worst:
        print("  %-9s ddur %+.3f gap %.3f runq %.3f workload runq %.3f busy after %.3f"
              % (r[0], r[3], r[4], r[5], r[6], r[7]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
