# SPDX-License-Identifier: Apache-2.0
"""Re-record tests/fixtures/python/frames-*.mem: what the Python frame reader
(agent/runtime/pyframes.c) reads of a live py_frames.py whose loop thread is
blocked in a known stack, replayed by tests/unit/test_pyframes.c.

    sudo SW_BUILD=build python3 tests/root/record_pyframes_fixtures.py

sw-pyframes --record reads object by object (not whole pages), so an image
holds the objects read and nothing around them. Each frames-X.Y.Z.txt gets
the tool's JSON on its first line and the workload's own view (its "blocked"
event: sys._current_frames() and the lines each function recorded) on the
second. frames-3.11.2-gc.mem is a read made while gc.collect() ran. Not a
test itself: the root tier does not run it.
"""
import json
import os
import subprocess
import time

import swtest
from swtest import SYS_PYTHON, workload
from test_pyframes import TOOL, read_event

OUT = os.path.join(swtest.SOURCE, "tests", "fixtures", "python")

PYTHONS = [
    ("3.9.18", "/root/.pyenv/versions/3.9.18/bin/python3.9"),
    ("3.11.2", SYS_PYTHON),  # Debian's, stripped
    ("3.13.0", "/root/.pyenv/versions/3.13.0/bin/python3.13"),
]


def record(blocked, name):
    mem = os.path.join(OUT, name + ".mem")
    r = subprocess.run([TOOL, str(blocked["pid"]), str(blocked["tid"]), "--record", mem],
                       capture_output=True, text=True, timeout=60)
    return r, mem


def main():
    for version, exe in PYTHONS:
        p = swtest.spawn([exe, workload("py_frames.py"), "--rounds", "6"])
        try:
            blocked = read_event(p, "blocked", 60)
            assert blocked["version"] == version, (blocked["version"], version)
            name = "frames-" + version
            r, _ = record(blocked, name)
            assert r.returncode == 0, r.stderr
            with open(os.path.join(OUT, name + ".txt"), "w") as f:
                f.write(r.stdout.strip() + "\n" + json.dumps(blocked, ensure_ascii=False) + "\n")
            print("recorded", name, flush=True)
            if version != "3.11.2":
                continue
            p.stdin.write(b"go\n")
            p.stdin.flush()
            read_event(p, "gc_ready", 120)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                r, mem = record(blocked, name + "-gc")
                if r.returncode == 0 and json.loads(r.stdout)["gc_collecting"]:
                    with open(os.path.join(OUT, name + "-gc.txt"), "w") as f:
                        f.write(r.stdout.strip() + "\n")
                    print("recorded", name + "-gc", flush=True)
                    break
            else:
                raise SystemExit("no read inside a collection in 60 s")
        finally:
            swtest.kill_proc(p)


if __name__ == "__main__":
    main()
