# SPDX-License-Identifier: Apache-2.0
"""Workload: a Python process that becomes Node (execve) while watched.

    python3 exec_into_node.py NODE_ARGS...

Prints {"event":"ready",..} as Python; on the line "go" it execs
`node NODE_ARGS...` in the same pid, which then speaks the usual protocol
(its own ready line, another "go", blocks, done).
"""
import json
import os
import shutil
import sys
import threading

node = shutil.which("node") or "/usr/bin/node"
print(json.dumps({"event": "ready", "pid": os.getpid(), "tid": threading.get_native_id(),
                  "runtime": "python"}), flush=True)
buf = b""
while b"go\n" not in buf:
    chunk = os.read(0, 1)  # byte by byte: nothing after "go" is swallowed before exec
    if not chunk:
        sys.exit(0)
    buf += chunk
os.execv(node, [node] + sys.argv[1:])
