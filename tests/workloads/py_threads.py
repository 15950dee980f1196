# SPDX-License-Identifier: Apache-2.0
"""Workload: threads that say who they are, for reading an interpreter from
outside (tests/root/test_python_layout.py).

    python3 py_threads.py [--switch-interval 0.007] [--idle 3] [--spin 2]

Sets sys.setswitchinterval, starts --idle threads waiting on an Event and
--spin threads that keep the GIL busy (so it changes hands), then prints one
line: {"event": "ready", "pid", "switch_interval_us", "threads": [{"ident",
"native_id"}, ...]} (the main thread included) and stays until stdin closes.
Runs on CPython 3.9+ with the standard library only.
"""
import argparse
import json
import os
import sys
import threading


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--switch-interval", type=float, default=0.007)
    ap.add_argument("--idle", type=int, default=3)
    ap.add_argument("--spin", type=int, default=2)
    a = ap.parse_args()
    sys.setswitchinterval(a.switch_interval)
    stop = threading.Event()
    ids = []
    lock = threading.Lock()
    started = threading.Semaphore(0)

    def me():
        with lock:
            ids.append({"ident": threading.get_ident(), "native_id": threading.get_native_id()})
        started.release()

    def idle():
        me()
        stop.wait()

    def spin():
        me()
        n = 0
        while not stop.is_set():
            n += 1  # pure bytecode: holds the GIL until asked to drop it

    threads = [threading.Thread(target=idle, daemon=True) for _ in range(a.idle)]
    threads += [threading.Thread(target=spin, daemon=True) for _ in range(a.spin)]
    for t in threads:
        t.start()
    for _ in threads:
        started.acquire()
    me()
    sys.stdout.write(json.dumps({"event": "ready", "pid": os.getpid(),
                                 "switch_interval_us": round(sys.getswitchinterval() * 1e6),
                                 "threads": ids}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the harness closes it (or kills us)
    stop.set()


if __name__ == "__main__":
    main()
