# SPDX-License-Identifier: Apache-2.0
"""Re-record tests/fixtures/loops/*.rec: what agent/loops.c reads in a real
run (the agent's hidden --record), replayed by tests/unit/test_loops.c.

    sudo SW_BUILD=build python3 tests/root/record_loops_fixtures.py

Each recording gets the workload's ground truth as "# truth" comment lines
(the reader skips comments; the test reads them). Not a test itself: the
root tier does not run it.
"""
import os

import swtest
from swtest import NODE, SYS_PYTHON, workload

OUT = os.path.join(swtest.SOURCE, "tests", "fixtures", "loops")

SCENARIOS = [
    # one spin (on CPU) and one Atomics.wait (off CPU) on Node's main thread
    ("node_block.rec", [NODE, workload("node_block.js"), "--schedule", "spin:150,sleep:120",
                        "--gap-ms", "300"]),
    # one time.sleep() and one busy loop on the asyncio thread
    ("py_asyncio.rec", [SYS_PYTHON, workload("py_asyncio.py"), "--schedule", "sleep:150,cpu:120",
                        "--gap-ms", "300"]),
]


def main():
    for name, argv in SCENARIOS:
        path = os.path.join(OUT, name)
        tmp = path + ".tmp"
        sc = swtest.run_scenario([argv], threshold_ms=50, agent_extra=("--record", tmp))
        w = sc.workloads[0]
        with open(tmp) as f:
            body = f.read()
        with open(path, "w") as f:
            f.write("# %s, agent --threshold-ms 50 --interval 1\n" % " ".join(
                os.path.basename(a) for a in argv))
            for b in w.blocks():
                f.write("# truth kind=%s tid=%d start_ns=%d end_ns=%d\n"
                        % (b["kind"], b["tid"], b["start_ns"], b["end_ns"]))
            f.write(body)
        os.unlink(tmp)
        swtest.log("%s: %d lines, %d bytes" % (path, body.count("\n"), len(body)))


if __name__ == "__main__":
    main()
