// SPDX-License-Identifier: Apache-2.0
/*
 * sw-pyframes: the Python stack of one thread, read from outside by the
 * frame reader (agent/runtime/pyframes.c), for tests/root/test_pyframes.py
 * and for recording fixtures.
 *
 *   sw-pyframes PID TID [--record IMAGE] [--bench N] [--scan-tid]
 *   sw-pyframes PID TID --watch N [--every-ms MS]
 *   sw-pyframes --lines MAJOR.MINOR < tables.jsonl
 *
 * Prints one JSON object: the frames innermost first (func, file, line,
 * entry), gc_collecting, truncated, the error of the read (0 or -errno and
 * its name), the addresses the reader found (to replay a recording), and
 * what one read cost: memory reads (process_vm_readv calls) and, with
 * --bench N, the mean wall time of N reads after the first.
 *
 * --scan-tid: also find struct pthread's tid offset without libc's help
 * (scan_pthread_tid, -1 when it cannot).
 * --watch: N reads MS apart (default 5), one JSON line each: CLOCK_MONOTONIC
 * ns before and after the read (t0, t1), err, gc_collecting, the number of
 * frames and the innermost (top, line).
 *
 * --lines: the line-table decoders against CPython's own PyCode_Addr2Line
 * (tests/workloads/py_linetables.py prints the tables and its answers):
 * prints {"codes", "checked", "mismatches", "first": [...]}.
 *
 * Exit 0 when the stack was read, 2 when the read failed (the JSON says
 * why), 1 with one line on stderr for bad usage or a process that is not
 * Python.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>
#include "discovery.h"
#include "runtime/python.h"
#include "runtime/pyframes.h"
#include "target_io.h"

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static long parse_pos(const char *what, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v <= 0) {
		fprintf(stderr, "sw-pyframes: bad %s '%s': a positive number\n", what, s);
		exit(1);
	}
	return v;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int check_lines(const char *ver)
{
	const struct sw_py_layout *L;
	unsigned major, minor;
	unsigned long long codes = 0, checked = 0, bad = 0;
	static char line[1 << 22];
	static uint8_t table[1 << 20];

	if (sscanf(ver, "%u.%u", &major, &minor) != 2 || !(L = sw_python_layout(major, minor))) {
		fprintf(stderr, "sw-pyframes: no layout for '%s'\n", ver);
		return 1;
	}
	printf("{\"first\":[");
	while (fgets(line, sizeof(line), stdin)) {
		json_object *o = json_tokener_parse(line), *v, *want;
		const char *hex;
		size_t n = 0;
		int first;

		if (!o || !json_object_object_get_ex(o, "table", &v) ||
		    !(hex = json_object_get_string(v)) ||
		    !json_object_object_get_ex(o, "first", &v) ||
		    !json_object_object_get_ex(o, "want", &want)) {
			fprintf(stderr, "sw-pyframes: bad line: %.80s\n", line);
			json_object_put(o);
			return 1;
		}
		first = json_object_get_int(v);
		for (; hex[0] && hex[1] && n < sizeof(table); hex += 2)
			table[n++] = (uint8_t)(hexval(hex[0]) << 4 | hexval(hex[1]));
		codes++;
		for (size_t i = 0; i < json_object_array_length(want); i++) {
			json_object *pair = json_object_array_get_idx(want, i);
			int q = json_object_get_int(json_object_array_get_idx(pair, 0));
			int w = json_object_get_int(json_object_array_get_idx(pair, 1));
			int got = sw_py_addr2line(L, table, (uint32_t)n, first, q);

			checked++;
			if (got != w && bad++ < 10) {
				json_object *name = NULL;

				json_object_object_get_ex(o, "name", &name);
				printf("%s{\"name\":\"%s\",\"addrq\":%d,\"want\":%d,\"got\":%d}",
				       bad > 1 ? "," : "", json_object_get_string(name), q, w, got);
			}
		}
		json_object_put(o);
	}
	printf("],\"codes\":%llu,\"checked\":%llu,\"mismatches\":%llu}\n", codes, checked, bad);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"record", required_argument, NULL, 'r'},
	    {"bench", required_argument, NULL, 'b'},
	    {"watch", required_argument, NULL, 'w'},
	    {"every-ms", required_argument, NULL, 'e'},
	    {"scan-tid", no_argument, NULL, 's'},
	    {"lines", required_argument, NULL, 'l'},
	    {},
	};
	static struct sw_py_stack st;
	const char *record = NULL;
	struct sw_tio *live, *t;
	struct sw_pyframes *r;
	struct sw_proc_info pi;
	struct sw_py_addrs a = {0};
	uint64_t reads0, reads1, t0, bench_ns = 0, bench_reads = 0;
	long bench = 0, watch = 0, every_ms = 5, pid, tid;
	int32_t scanned = -1;
	bool scan = false;
	int c, err, ret = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			record = optarg;
			break;
		case 'b':
			bench = parse_pos("--bench count", optarg);
			break;
		case 'w':
			watch = parse_pos("--watch count", optarg);
			break;
		case 'e':
			every_ms = parse_pos("--every-ms", optarg);
			break;
		case 's':
			scan = true;
			break;
		case 'l':
			return check_lines(optarg);
		default:
			return 1;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: sw-pyframes PID TID [--record IMAGE] [--bench N]\n");
		return 1;
	}
	pid = parse_pos("pid", argv[optind]);
	tid = parse_pos("tid", argv[optind + 1]);
	live = sw_tio__new_proc(NULL);
	t = record && live ? sw_tio__new_recorder(live) : live;
	if (!t) {
		fprintf(stderr, "sw-pyframes: out of memory\n");
		return 1;
	}
	r = sw_pyframes__new(t);
	if (r && record)
		sw_pyframes__exact_reads(r, true); /* just the objects, not their pages */
	err = sw_discover_process((pid_t)pid, &pi);
	if (err || !r) {
		fprintf(stderr, "sw-pyframes: pid %ld: %s\n", pid, strerror(err ? -err : ENOMEM));
		ret = 1;
		goto out;
	}
	err = sw_pyframes__add_process(r, &pi);
	if (err) {
		const char *note = sw_pyframes__note(r, (uint32_t)pid);

		fprintf(stderr, "sw-pyframes: %s\n", note ? note : strerror(-err));
		ret = 1;
		goto out;
	}
	sw_pyframes__addrs(r, (uint32_t)pid, &a);
	if (scan)
		sw_pyframes__pthread_tid_scan(t, (pid_t)pid, sw_python_layout_of(&pi), a.runtime,
					      &scanned);
	for (long i = 0; i < watch; i++) {
		struct timespec pause = {.tv_sec = every_ms / 1000,
					 .tv_nsec = (every_ms % 1000) * 1000000L};
		uint64_t w0 = now_ns(), w1;

		err = sw_pyframes__read(r, (uint32_t)pid, (uint32_t)tid, &st);
		w1 = now_ns();
		printf("{\"t0\":%llu,\"t1\":%llu,\"err\":%d,\"gc_collecting\":%s,\"n\":%u,\"top\":",
		       (unsigned long long)w0, (unsigned long long)w1, err,
		       st.gc_collecting ? "true" : "false", st.n);
		json_str(st.n ? st.f[0].func : "");
		printf(",\"line\":%u}\n", st.n ? st.f[0].line : 0);
		fflush(stdout);
		nanosleep(&pause, NULL);
	}
	if (watch)
		goto out;
	reads0 = t->mem_calls;
	err = sw_pyframes__read(r, (uint32_t)pid, (uint32_t)tid, &st);
	reads1 = t->mem_calls;
	if (record) {
		int e = sw_tio__save_image(t, record);

		if (e) {
			fprintf(stderr, "sw-pyframes: saving %s: %s\n", record, strerror(-e));
			ret = 1;
			goto out;
		}
	}
	if (bench) {
		static struct sw_py_stack b;

		bench_reads = t->mem_calls;
		t0 = now_ns();
		for (long i = 0; i < bench; i++)
			sw_pyframes__read(r, (uint32_t)pid, (uint32_t)tid, &b);
		bench_ns = (now_ns() - t0) / (uint64_t)bench;
		bench_reads = (t->mem_calls - bench_reads) / (uint64_t)bench;
	}
	printf("{\"pid\":%ld,\"tid\":%ld,\"version\":", pid, tid);
	json_str(pi.version);
	printf(",\"err\":%d,\"error\":", err);
	json_str(err ? strerror(-err) : "");
	printf(",\"gc_collecting\":%s,\"truncated\":%s,\"frames\":[",
	       st.gc_collecting ? "true" : "false", st.truncated ? "true" : "false");
	for (uint32_t i = 0; i < st.n; i++) {
		printf("%s{\"func\":", i ? "," : "");
		json_str(st.f[i].func);
		printf(",\"file\":");
		json_str(st.f[i].file);
		printf(",\"line\":%u,\"entry\":%s}", st.f[i].line,
		       st.f[i].entry ? "true" : "false");
	}
	printf("],\"addrs\":{\"runtime\":%llu,\"code_type\":%llu,\"unicode_type\":%llu,"
	       "\"bytes_type\":%llu,\"pthread_tid\":%d},\"mem_reads\":%llu,\"ns_per_read\":%llu,"
	       "\"mem_reads_per_read\":%llu,\"scan_pthread_tid\":%d}\n",
	       (unsigned long long)a.runtime, (unsigned long long)a.code_type,
	       (unsigned long long)a.unicode_type, (unsigned long long)a.bytes_type, a.pthread_tid,
	       (unsigned long long)(reads1 - reads0), (unsigned long long)bench_ns,
	       (unsigned long long)bench_reads, scanned);
	if (err)
		ret = 2;
out:
	sw_pyframes__free(r);
	sw_tio__free(t);
	return ret;
}
