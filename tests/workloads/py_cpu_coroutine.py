# SPDX-License-Identifier: Apache-2.0
"""Pattern python.cpu_bound_coroutine: pure-Python computing in a coroutine.

    python3 py_cpu_coroutine.py

GET /primes?n=N (default 150000) counts the primes below N by trial division
in count_primes(), on the loop thread, never awaiting. Standard library only
(swserve.py): runs on every CPython 3.9-3.13. The cgroup test runs it too,
with a small n under a CPU quota (cpu_starvation). Ground truth:
swtruth.Block; the block line names count_primes's frame and its lines.
"""
import swserve
import swtruth


def count_primes(n):
    count = 0
    for i in range(2, n):
        d = 2
        while d * d <= i:
            if i % d == 0:
                break
            d += 1
        else:
            count += 1
    return count


async def primes(query, body):
    n = int(query.get("n", "150000"))
    with swtruth.Block() as t:
        c = count_primes(n)
    return ("%d primes below %d\n" % (c, n)).encode(), {
        "kind": "cpu_coroutine", "n": n, **t.fields(), **swtruth.where(count_primes)}


swserve.run({"/primes": primes})
