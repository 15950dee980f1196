# SPDX-License-Identifier: Apache-2.0
#
# Tight event-loop workload: a 1-byte ping-pong over a socketpair inside one
# asyncio process, so every loop iteration wakes from epoll with an event.
# Used to time the cost the agent adds per loop iteration.
#   python3.11 py_pingpong.py [--seconds 5] [--loop asyncio|uvloop]
# Prints {"event":"ready","pid":..}, waits for one line on stdin (the bench
# attaches the agent meanwhile), runs, prints {"event":"result",...}, exits.
import argparse
import asyncio
import json
import os
import socket
import sys
import time


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport

    def data_received(self, data):
        self.t.write(data)


class Pinger(asyncio.Protocol):
    def __init__(self, seconds, done):
        self.seconds, self.done, self.n = seconds, done, 0

    def connection_made(self, transport):
        self.t = transport

    def start(self):
        self.t0 = time.perf_counter_ns()
        self.t.write(b"x")

    def data_received(self, data):
        self.n += 1
        if (self.n & 1023) == 0 and time.perf_counter_ns() - self.t0 >= self.seconds * 1e9:
            self.done.set_result(time.perf_counter_ns() - self.t0)
            return
        self.t.write(b"x")


async def run(seconds):
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    await loop.connect_accepted_socket(Echo, a)
    done = loop.create_future()
    _, p = await loop.connect_accepted_socket(lambda: Pinger(seconds, done), b)
    p.start()
    ns = await done
    return p.n, ns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    a = ap.parse_args()
    if a.loop == "uvloop":
        import uvloop
        uvloop.install()
    print(json.dumps({"event": "ready", "pid": os.getpid()}), flush=True)
    sys.stdin.readline()
    n, ns = asyncio.run(run(a.seconds))
    print(json.dumps({"event": "result", "roundtrips": n, "seconds": ns / 1e9,
                      "ns_per_roundtrip": ns / n}), flush=True)


if __name__ == "__main__":
    main()
