# SPDX-License-Identifier: Apache-2.0
"""Record what a real agent sends a collector, frame for frame, for the
decode budget (collector/budget.h, docs/RELIABILITY.md "Hostile frames").

    sudo SW_BUILD=build python3 tests/root/record_agent_frames.py OUT.swf [NODES] [SECONDS]

One agent (--interval 10, stacks and syscalls on) watches NODES Node
processes blocking on a schedule (spin, Atomics.wait, execSync, sync fs),
a Python process whose threads fight over the GIL and an asyncio loop that
blocks; this script stands where the collector would and saves the bytes.
`build/tests/sw-wirestat OUT.swf` then prints the most of every limited
field any one frame had. Not a test itself: the root tier does not run it.
"""
import os
import socket
import sys
import threading
import time

import swtest
from swtest import NODE, SYS_PYTHON, workload


def main():
    out = sys.argv[1]
    nodes = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 25
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    data = bytearray()

    def recv():
        c, _ = lsock.accept()
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            data.extend(b)

    t = threading.Thread(target=recv, daemon=True)
    t.start()
    sched = ",".join(["spin:70", "sleep:60", "execSync:80", "spin:200"] * 6)
    ws = [swtest.Workload([NODE, workload("node_block.js"), "--schedule", sched,
                           "--gap-ms", "300"]) for _ in range(nodes)]
    ws.append(swtest.Workload([SYS_PYTHON, workload("py_gil.py"), "threads",
                               "--phases", "cpu4,cpu2,io", "--seconds", "4"]))
    ws.append(swtest.Workload([SYS_PYTHON, workload("py_asyncio.py"), "--schedule",
                               ",".join(["cpu:80", "sleep:70"] * 8), "--gap-ms", "300"]))
    agent = swtest.Agent([w.pid for w in ws], interval=10, duration=None,
                         extra=("--collector", "127.0.0.1:%d" % port))
    try:
        agent.wait_attached()
        for w in ws:
            w.go()
        time.sleep(secs)
    finally:
        agent.stop()
        for w in ws:
            w.stop()
    t.join(10)
    with open(out, "wb") as f:
        f.write(data)
    print("recorded %d bytes from an agent watching %d processes to %s" % (len(data), len(ws), out))


if __name__ == "__main__":
    main()
