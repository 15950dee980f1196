# SPDX-License-Identifier: Apache-2.0
"""uvloop workload: py_asyncio.py's schedule on a uvloop (libuv) loop.

    /usr/bin/python3.11 py_uvloop.py [--schedule sleep:150] [py_asyncio.py options]

Needs uvloop (Debian: python3-uvloop). Same JSON lines as py_asyncio.py; the
ready line has "loop":"uvloop".
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import py_asyncio  # noqa: E402

if __name__ == "__main__":
    import uvloop
    _emit = py_asyncio.emit

    def emit(obj):
        if obj.get("event") == "ready":
            obj = dict(obj, loop="uvloop", uvloop_version=uvloop.__version__)
        _emit(obj)
    py_asyncio.emit = emit
    py_asyncio.main(loop_factory=uvloop.new_event_loop, default_schedule="sleep:150")
