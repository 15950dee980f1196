# SPDX-License-Identifier: Apache-2.0
"""Workload: the line tables of many code objects with CPython's own answer
for every instruction, to check the frame reader's decoders
(tests/root/test_pyframes.py, sw-pyframes --lines).

    python3 py_linetables.py [--max 3000]

Prints one JSON line per code object of a few stdlib packages (asyncio,
json, threading, collections, email, http, unittest) and this file:
{"name", "first": co_firstlineno, "table": hex of co_lnotab (3.9) or
co_linetable (3.10+), "want": [[addrq, PyCode_Addr2Line(code, addrq)], ...]}
for addrq from -2 over every 2-byte code unit. PyCode_Addr2Line is called
through ctypes: it is the C function tracebacks use.
Runs on CPython 3.9+ with the standard library only.
"""
import argparse
import ctypes
import importlib
import json
import sys
import types

addr2line = ctypes.pythonapi.PyCode_Addr2Line
addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
addr2line.restype = ctypes.c_int
MODULES = ["asyncio", "asyncio.base_events", "asyncio.tasks", "json", "json.decoder",
           "threading", "collections", "email.message", "http.client", "unittest.case"]


def codes_of(co):
    yield co
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            yield from codes_of(c)


def module_codes(mod):
    for obj in vars(mod).values():
        fns = []
        if isinstance(obj, types.FunctionType):
            fns.append(obj)
        elif isinstance(obj, type):
            fns += [v for v in vars(obj).values() if isinstance(v, types.FunctionType)]
        for f in fns:
            if f.__module__ == mod.__name__:
                yield from codes_of(f.__code__)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max", type=int, default=3000)
    a = ap.parse_args()
    seen, n = set(), 0
    mods = [importlib.import_module(m) for m in MODULES] + [sys.modules[__name__]]
    for mod in mods:
        for co in module_codes(mod):
            if id(co) in seen or n >= a.max:
                continue
            seen.add(id(co))
            n += 1
            table = co.co_lnotab if sys.version_info < (3, 10) else co.co_linetable
            want = [[q, addr2line(co, q)] for q in range(-2, len(co.co_code), 2)]
            sys.stdout.write(json.dumps({"name": co.co_name, "first": co.co_firstlineno,
                                         "table": table.hex(), "want": want}) + "\n")


if __name__ == "__main__":
    main()
