# SPDX-License-Identifier: Apache-2.0
"""Pattern python.blocking_sleep_in_async: time.sleep in an async def handler.

    python3 py_sleep_in_async.py [--ms 300]

GET /report waits for "the report to be ready" with time.sleep, which
blocks the loop thread, instead of await asyncio.sleep. Standard library
only (swserve.py): runs on every CPython 3.9-3.13. Ground truth:
swtruth.Block; the block line names the handler's frame (swtruth.where).
"""
import argparse
import time

import swserve
import swtruth

p = argparse.ArgumentParser()
p.add_argument("--ms", type=float, default=300)
args = p.parse_args()


async def report(query, body):
    with swtruth.Block() as t:
        time.sleep(args.ms / 1000.0)  # MISTAKE: blocks the loop
    return b"report ready\n", {"kind": "sleep_in_async", "ms": args.ms, **t.fields(),
                               **swtruth.where(report, "MISTAKE")}


swserve.run({"/report": report})
