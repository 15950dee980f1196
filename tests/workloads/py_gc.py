# SPDX-License-Identifier: Apache-2.0
"""Pattern python.gc: collector pauses of a service full of cyclic garbage.

    python3 py_gc.py [--live 1500000]

The service keeps --live objects in containers (a cache: every full
collection has to traverse them). GET /session builds a request-scoped
object graph full of reference cycles (parent <-> child, as ORM sessions and
trees make), drops it, and calls gc.collect() to "free the memory", as
services that fight their RSS do: the full collection traverses the whole
heap on the loop thread. Ground truth: swtruth.Block with swtruth.GcClock
(gc.callbacks timestamps): gc_ns is the collector's time inside the block.
Standard library only (swserve.py).
"""
import argparse
import gc

import swserve
import swtruth

p = argparse.ArgumentParser()
p.add_argument("--live", type=int, default=1500000)
p.add_argument("--nodes", type=int, default=50000)
args = p.parse_args()

# two containers per entry (the dict and its list): --live tracked objects
CACHE = [{"id": i, "tags": [i]} for i in range(args.live // 2)]
swtruth.GcClock()


class Node:
    def __init__(self, parent):
        self.parent = parent
        self.children = []
        if parent is not None:
            parent.children.append(self)


def build_session(n):
    root = Node(None)
    for i in range(1, n):
        Node(root if i % 8 == 0 else root.children[-1] if root.children else root)
    return root


async def session(query, body):
    with swtruth.Block() as t:
        build_session(args.nodes)
        gc.collect()  # MISTAKE: a full collection on the loop thread
    return b"session closed\n", {"kind": "gc", **t.fields(),
                                  **swtruth.where(session, "MISTAKE")}


swserve.run({"/session": session}, {"live": len(CACHE)})
