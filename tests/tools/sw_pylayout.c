// SPDX-License-Identifier: Apache-2.0
/*
 * sw-pylayout: the CPython layout table (agent/runtime/python.c) against
 * reality, for tests/root/test_python_layout.py.
 *
 *   sw-pylayout --dump 3.11        the row as key=value lines, the keys
 *                                  scripts/py-layout-dwarf.sh prints from DWARF
 *   sw-pylayout --pid PID [--record IMAGE]
 *                                  read the interpreter of PID through the
 *                                  table, print one JSON object; with
 *                                  --record, save every memory read as a
 *                                  fixture image (target_io.h)
 *
 * Exit 0, or 1 with one line on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "discovery.h"
#include "runtime/python.h"
#include "target_io.h"

static void kv(const char *key, int32_t v)
{
	if (v != SW_PY_NONE)
		printf("%s=%d\n", key, v);
}

static int dump(const char *ver)
{
	const struct sw_py_layout *L;
	unsigned major, minor;

	if (sscanf(ver, "%u.%u", &major, &minor) != 2 || !(L = sw_python_layout(major, minor))) {
		fprintf(stderr, "sw-pylayout: no layout for '%s'\n", ver);
		return 1;
	}
	kv("runtime.interpreters_head", L->runtime.interpreters_head);
	kv("runtime.interpreters_main", L->runtime.interpreters_main);
	kv("runtime.gil", L->runtime.gil);
	kv("runtime.tstate_current", L->runtime.tstate_current);
	kv("interp.threads_head", L->interp.threads_head);
	kv("interp.runtime", L->interp.runtime);
	kv("interp.gil_ptr", L->interp.gil_ptr);
	kv("interp.gil_drop_request", L->interp.gil_drop_request);
	kv("interp.gc_collecting", L->interp.gc_collecting);
	kv("tstate.eval_breaker", L->tstate.eval_breaker);
	kv("gil.interval", L->gil.interval);
	kv("gil.last_holder", L->gil.last_holder);
	kv("gil.locked", L->gil.locked);
	kv("gil.switch_number", L->gil.switch_number);
	kv("gil.cond", L->gil.cond);
	kv("gil.mutex", L->gil.mutex);
	kv("gil.switch_cond", L->gil.switch_cond);
	kv("gil.switch_mutex", L->gil.switch_mutex);
	kv("gil.size", L->gil.size);
	kv("tstate.next", L->tstate.next);
	kv("tstate.interp", L->tstate.interp);
	kv("tstate.thread_id", L->tstate.thread_id);
	kv("tstate.native_thread_id", L->tstate.native_thread_id);
	kv("tstate.frame", L->tstate.frame);
	kv("tstate.cframe", L->tstate.cframe);
	kv("tstate.current_frame", L->tstate.current_frame);
	kv("cframe.current_frame", L->cframe_current_frame);
	kv("frame.code", L->frame.code);
	kv("frame.previous", L->frame.previous);
	kv("frame.instr", L->frame.instr);
	kv("frame.owner", L->frame.owner);
	kv("frame.is_entry", L->frame.is_entry);
	kv("code.name", L->code.name);
	kv("code.qualname", L->code.qualname);
	kv("code.filename", L->code.filename);
	kv("code.firstlineno", L->code.firstlineno);
	kv("code.linetable", L->code.linetable);
	kv("code.code", L->code.code);
	kv("code.firsttraceable", L->code.firsttraceable);
	if (L->bytecode_kind == SW_PY_CODE_BYTES)
		kv("bytes.sval", L->bytes_sval);
	kv("unicode.ascii_data", L->unicode_ascii_data);
	kv("unicode.compact_data", L->unicode.compact_data);
	kv("unicode.length", L->unicode.length);
	kv("unicode.state", L->unicode.state);
	kv("unicode.kind_shift", L->unicode.kind_shift);
	kv("unicode.compact_bit", L->unicode.compact_bit);
	kv("unicode.ascii_bit", L->unicode.ascii_bit);
	kv("bytes.size", L->bytes_size);
	return 0;
}

#define MAX_THREADS 256

static int read_pid(pid_t pid, const char *record)
{
	struct sw_tio *live = sw_tio__new_proc(NULL), *t = live;
	struct sw_py_thread th[MAX_THREADS];
	const struct sw_py_layout *L;
	struct sw_py_gil_state gil;
	struct sw_proc_info pi;
	uint64_t runtime;
	char msg[512];
	size_t n = 0;
	int err;

	if (!live)
		return 1;
	if (record && !(t = sw_tio__new_recorder(live))) {
		sw_tio__free(live);
		return 1;
	}
	err = sw_discover_process(pid, &pi);
	if (err) {
		fprintf(stderr, "sw-pylayout: pid %d: %s\n", pid, strerror(-err));
		goto out;
	}
	L = sw_python_layout_of(&pi);
	if (!L) {
		sw_python_layout_error(&pi, msg, sizeof(msg));
		fprintf(stderr, "sw-pylayout: %s\n", msg);
		err = -ENOENT;
		goto out;
	}
	err = sw_python_runtime_addr(t, &pi, &runtime);
	if (err) {
		fprintf(stderr, "sw-pylayout: pid %d: no _PyRuntime in %s: %s\n", pid,
			pi.runtime_lib[0] ? pi.runtime_lib : pi.exe, strerror(-err));
		goto out;
	}
	err = sw_python_threads(t, pid, L, runtime, th, MAX_THREADS, &n);
	if (err) {
		fprintf(stderr,
			"sw-pylayout: pid %d: walking the threads from _PyRuntime 0x%llx: %s\n",
			pid, (unsigned long long)runtime, strerror(-err));
		goto out;
	}
	err = sw_python_gil(t, pid, L, runtime, &gil);
	if (err) {
		fprintf(stderr, "sw-pylayout: pid %d: reading the GIL: %s\n", pid, strerror(-err));
		goto out;
	}
	printf("{\"pid\":%d,\"version\":\"%s\",\"exe\":\"%s\",\"runtime_lib\":\"%s\","
	       "\"runtime_addr\":%llu,\"threads\":[",
	       pid, pi.version, pi.exe, pi.runtime_lib, (unsigned long long)runtime);
	for (size_t i = 0; i < n; i++)
		printf("%s{\"tstate\":%llu,\"thread_id\":%llu,\"native_id\":%u}", i ? "," : "",
		       (unsigned long long)th[i].tstate, (unsigned long long)th[i].thread_id,
		       th[i].native_id);
	printf("],\"gil\":{\"addr\":%llu,\"interval_us\":%llu,\"locked\":%d,\"switch_number\":%llu,"
	       "\"last_holder\":%llu},\"mem_reads\":%llu,\"mem_faults\":%llu}\n",
	       (unsigned long long)gil.addr, (unsigned long long)gil.interval_us, gil.locked,
	       (unsigned long long)gil.switch_number, (unsigned long long)gil.last_holder,
	       (unsigned long long)t->mem_reads, (unsigned long long)t->mem_faults);
	if (record) {
		err = sw_tio__save_image(t, record);
		if (err)
			fprintf(stderr, "sw-pylayout: saving %s: %s\n", record, strerror(-err));
	}
out:
	sw_tio__free(t); /* live itself, or a recorder that frees live with it */
	return err ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dump", required_argument, NULL, 'd'},
	    {"pid", required_argument, NULL, 'p'},
	    {"record", required_argument, NULL, 'r'},
	    {},
	};
	const char *record = NULL, *ver = NULL;
	long pid = 0;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			ver = optarg;
			break;
		case 'p':
			errno = 0;
			pid = strtol(optarg, &end, 10);
			if (errno || *end || pid <= 0) {
				fprintf(stderr, "sw-pylayout: bad pid '%s'\n", optarg);
				return 1;
			}
			break;
		case 'r':
			record = optarg;
			break;
		default:
			return 1;
		}
	}
	if (ver)
		return dump(ver);
	if (pid)
		return read_pid((pid_t)pid, record);
	fprintf(stderr, "usage: sw-pylayout --dump MAJOR.MINOR | --pid PID [--record IMAGE]\n");
	return 1;
}
