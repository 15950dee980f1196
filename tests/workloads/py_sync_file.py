# SPDX-License-Identifier: Apache-2.0
"""Pattern python.sync_io_in_async: a blocking file read in a coroutine.

    python3 py_sync_file.py --file PATH

GET /download reads the whole of --file with open().read() on the loop
thread (instead of run_in_executor or aiofiles). The test evicts the file
from the page cache before each request, so the read waits for the disk.
Standard library only (swserve.py): runs on every CPython 3.9-3.13. Ground
truth: swtruth.Block; the block line has the path and the handler's frame.
"""
import argparse

import swserve
import swtruth

p = argparse.ArgumentParser()
p.add_argument("--file", required=True)
args = p.parse_args()


async def download(query, body):
    with swtruth.Block() as t:
        with open(args.file, "rb") as f:
            data = f.read()  # MISTAKE: blocks the loop
    return ("%d bytes\n" % len(data)).encode(), {
        "kind": "sync_file", "path": args.file, "bytes": len(data), **t.fields(),
        **swtruth.where(download, "MISTAKE")}


swserve.run({"/download": download})
