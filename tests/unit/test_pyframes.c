// SPDX-License-Identifier: Apache-2.0
/*
 * The Python frame reader (agent/runtime/pyframes.c) replayed on memory
 * recorded from live interpreters (tests/fixtures/python/frames-*: 3.9.18,
 * Debian's stripped 3.11.2, 3.13.0; tests/root/record_pyframes_fixtures.py
 * made them): the stack must be CPython's own view of the blocked thread,
 * recorded by the workload next to the image. Then the same memory
 * corrupted: a cycle, a pointer into nothing, an object of the wrong type,
 * an instruction outside its code, random bytes: an error, never a crash or
 * a made-up frame.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/pyframes.h"
#include "runtime/python.h"
#include "target_io.h"

struct rec {
	json_object *tool, *truth; /* the two lines of the .txt */
	uint32_t pid, tid;
	struct sw_py_addrs a;
	struct sw_proc_info pi;
};

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	cr_assert_not_null(f, "open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

static uint64_t u64_of(json_object *o, const char *key)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, key, &v), "no %s", key);
	return (uint64_t)json_object_get_int64(v);
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "no %s", key);
	return v;
}

static void load_rec(const char *name, struct rec *r)
{
	char path[512], *txt, *nl;
	json_object *addrs;

	snprintf(path, sizeof(path), "%s/python/%s.txt", SW_FIXTURES, name);
	txt = slurp(path, NULL);
	nl = strchr(txt, '\n');
	cr_assert_not_null(nl);
	*nl = '\0';
	r->tool = json_tokener_parse(txt);
	r->truth = nl[1] ? json_tokener_parse(nl + 1) : NULL;
	free(txt);
	cr_assert_not_null(r->tool, "%s: line 1 is JSON", name);
	r->pid = (uint32_t)u64_of(r->tool, "pid");
	r->tid = (uint32_t)u64_of(r->tool, "tid");
	addrs = get(r->tool, "addrs");
	r->a.runtime = u64_of(addrs, "runtime");
	r->a.code_type = u64_of(addrs, "code_type");
	r->a.unicode_type = u64_of(addrs, "unicode_type");
	r->a.bytes_type = u64_of(addrs, "bytes_type");
	r->a.pthread_tid = (int32_t)u64_of(addrs, "pthread_tid");
	memset(&r->pi, 0, sizeof(r->pi));
	r->pi.pid = (pid_t)r->pid;
	r->pi.runtime = SW_RT_PYTHON;
	snprintf(r->pi.version, sizeof(r->pi.version), "%s",
		 json_object_get_string(get(r->tool, "version")));
}

static void free_rec(struct rec *r)
{
	json_object_put(r->tool);
	json_object_put(r->truth);
}

static struct sw_tio *image(const char *name)
{
	struct sw_tio *t = sw_tio__new_fixture(NULL);
	char path[512];

	cr_assert_not_null(t);
	snprintf(path, sizeof(path), "%s/python/%s.mem", SW_FIXTURES, name);
	cr_assert_eq(sw_tio__load_image(t, path), 0, "load %s", path);
	return t;
}

/* A reader on t with the recording's process added; *st filled by a read.
 * may_fail_add: corrupted memory may already fail the add. */
static int read_any(struct sw_tio *t, const struct rec *r, struct sw_py_stack *st,
		    bool may_fail_add)
{
	struct sw_pyframes *pf = sw_pyframes__new(t);
	int err;

	cr_assert_not_null(pf);
	err = sw_pyframes__add_process_at(pf, &r->pi, &r->a);
	if (err && may_fail_add) {
		cr_assert_not_null(sw_pyframes__note(pf, r->pid), "a failed add says why");
		st->n = 0;
	} else {
		cr_assert_eq(err, 0, "%s", sw_pyframes__note(pf, r->pid));
		err = sw_pyframes__read(pf, r->pid, r->tid, st);
	}
	sw_pyframes__free(pf);
	return err;
}

static int read_once(struct sw_tio *t, const struct rec *r, struct sw_py_stack *st)
{
	return read_any(t, r, st, false);
}

static struct sw_py_stack st;

static void replay(const char *name, unsigned minor)
{
	struct rec r;
	struct sw_tio *t = image(name);
	json_object *want, *calls;
	size_t n;

	load_rec(name, &r);
	cr_assert_not_null(r.truth, "%s: the workload's view on line 2", name);
	cr_assert_eq(read_once(t, &r, &st), 0, "%s: read", name);
	want = get(r.truth, "frames");
	n = json_object_array_length(want);
	cr_assert_eq(st.n, n, "%s: %u frames, CPython saw %zu", name, st.n, n);
	cr_assert_not(st.truncated);
	cr_assert_not(st.gc_collecting);
	for (size_t i = 0; i < n; i++) {
		json_object *w = json_object_array_get_idx(want, i);

		cr_assert_str_eq(st.f[i].func, json_object_get_string(get(w, "func")), "%s #%zu",
				 name, i);
		cr_assert_str_eq(st.f[i].file, json_object_get_string(get(w, "file")), "%s #%zu",
				 name, i);
		cr_assert_eq(st.f[i].line, (uint32_t)u64_of(w, "line"), "%s #%zu %s", name, i,
			     st.f[i].func);
	}
	/* each function of the chain at the line it recorded of itself */
	calls = get(r.truth, "calls");
	json_object_object_foreach(calls, func, line)
	{
		bool found = false;

		for (uint32_t i = 0; i < st.n; i++)
			if (!strcmp(st.f[i].func, func)) {
				found = true;
				cr_assert_eq(st.f[i].line, (uint32_t)json_object_get_int(line),
					     "%s: %s", name, func);
			}
		cr_assert(found, "%s: %s in the stack", name, func);
	}
	/* UCS1, UCS2 and UCS4 names, as UTF-8 */
	cr_assert_str_eq(st.f[0].func, "blocking_read");
	cr_assert_str_eq(st.f[1].func, "\xf0\xa0\x80\x80_deep", "U+20000, a UCS4 str");
	cr_assert_str_eq(st.f[2].func, "\xe5\x87\xa6\xe7\x90\x86", "処理, a UCS2 str");
	cr_assert_str_eq(st.f[3].func,
			 minor >= 11 ? "Blocker.fa\xc3\xa7"
				       "ade"
				     : "fa\xc3\xa7"
				       "ade",
			 "a UCS1 str, qualname from 3.11");
	/* entries: all on 3.9/3.10; on 3.11+ map()'s callee and the first
	 * frame, not the inlined Python calls */
	for (uint32_t i = 0; i < 4; i++)
		cr_assert_eq(st.f[i].entry, minor <= 10, "%s #%u entry", name, i);
	cr_assert_str_eq(st.f[4].func, "via_c");
	cr_assert(st.f[4].entry);
	cr_assert(st.f[st.n - 1].entry);
	sw_tio__free(t);
	free_rec(&r);
}

Test(pyframes, replays_cpython_3_9_18) { replay("frames-3.9.18", 9); }
Test(pyframes, replays_debian_stripped_3_11_2) { replay("frames-3.11.2", 11); }
Test(pyframes, replays_cpython_3_13_0) { replay("frames-3.13.0", 13); }

Test(pyframes, reads_gc_collecting)
{
	struct rec r;
	struct sw_tio *t = image("frames-3.11.2-gc");

	load_rec("frames-3.11.2-gc", &r);
	cr_assert_eq(read_once(t, &r, &st), 0);
	cr_assert(st.gc_collecting, "recorded inside gc.collect()");
	cr_assert_geq(st.n, 10);
	cr_assert(!strcmp(st.f[0].func, "gc_phase") || strstr(st.f[0].func, "cb"), "%s",
		  st.f[0].func);
	sw_tio__free(t);
	free_rec(&r);
}

Test(pyframes, what_is_not_read_says_why)
{
	struct sw_tio *t = image("frames-3.11.2");
	struct sw_pyframes *pf = sw_pyframes__new(t);
	struct rec r;
	struct sw_proc_info new = {.pid = 99, .runtime = SW_RT_PYTHON, .version = "3.14.0"};
	struct sw_py_addrs a = {.pthread_tid = -1};
	const char *note;

	load_rec("frames-3.11.2", &r);
	cr_assert_eq(sw_pyframes__add_process_at(pf, &new, &a), -ENOTSUP);
	note = sw_pyframes__note(pf, 99);
	cr_assert_not_null(note);
	cr_assert_not_null(strstr(note, "3.14.0"), "%s", note);
	cr_assert_not_null(strstr(note, "py-layout-dwarf.sh"), "says what to do: %s", note);
	cr_assert_eq(sw_pyframes__read(pf, 99, 99, &st), -ENOTSUP);
	cr_assert_eq(sw_pyframes__read(pf, 12345, 1, &st), -ESRCH);
	cr_assert_eq(sw_pyframes__add_process_at(pf, &r.pi, &r.a), 0);
	cr_assert_null(sw_pyframes__note(pf, r.pid));
	cr_assert_eq(sw_pyframes__read(pf, r.pid, r.tid + 100000, &st), -ENOENT,
		     "not a thread with a Python state");
	cr_assert_eq(st.n, 0);
	cr_assert_eq(sw_pyframes__read(pf, r.pid, r.tid, &st), 0, "the map still works");
	{
		struct sw_pyframes_stats s;

		sw_pyframes__stats(pf, &s);
		cr_assert_eq(s.reads, 4);
		cr_assert_eq(s.ok, 1);
		cr_assert_eq(s.no_python, 1);
		cr_assert_eq(s.other, 2, "-ENOTSUP and -ESRCH");
		cr_assert_eq(s.thread_maps, 1, "the unknown tid mapped the threads once: %llu",
			     (unsigned long long)s.thread_maps);
	}
	/* a wrong _PyRuntime is refused when added, with a note */
	a = r.a;
	a.runtime += 64;
	cr_assert_neq(sw_pyframes__add_process_at(pf, &r.pi, &a), 0);
	cr_assert_not_null(sw_pyframes__note(pf, r.pid));
	sw_pyframes__free(pf);
	sw_tio__free(t);
	free_rec(&r);
}

Test(pyframes, an_interpreter_still_starting_is_read_once_it_has_started)
{
	const struct sw_py_layout *L = sw_python_layout(3, 11);
	struct sw_tio *t = image("frames-3.11.2");
	struct sw_pyframes *pf = sw_pyframes__new(t);
	uint64_t main_at, interp, zero = 0;
	struct rec r;

	load_rec("frames-3.11.2", &r);
	main_at = r.a.runtime + (uint64_t)L->runtime.interpreters_main;
	cr_assert_eq(sw_tio__read_u64(t, 1, main_at, &interp), 0);
	cr_assert_eq(sw_tio__add_segment(t, main_at, &zero, 8), 0); /* not yet */
	cr_assert_eq(sw_pyframes__add_process_at(pf, &r.pi, &r.a), 0);
	cr_assert_not_null(strstr(sw_pyframes__note(pf, r.pid), "no main interpreter yet"));
	cr_assert_eq(sw_pyframes__read(pf, r.pid, r.tid, &st), -EAGAIN);
	/* started (16 bytes: an image keeps a copy equal to an older one once) */
	{
		uint64_t started[2] = {interp, 0};

		cr_assert_eq(sw_tio__add_segment(t, main_at, started, sizeof(started)), 0);
	}
	cr_assert_eq(sw_pyframes__read(pf, r.pid, r.tid, &st), 0);
	cr_assert_null(sw_pyframes__note(pf, r.pid));
	cr_assert_str_eq(st.f[0].func, "blocking_read");
	sw_pyframes__free(pf);
	sw_tio__free(t);
	free_rec(&r);
}

/* ---- corruption ---- */

/* The innermost frame's address, walked by hand through the layout. */
static uint64_t top_frame(struct sw_tio *t, const struct rec *r, const struct sw_py_layout *L,
			  uint64_t *tstate)
{
	struct sw_py_thread th[16];
	uint64_t f = 0, cf;
	size_t n;

	cr_assert_eq(sw_python_threads(t, 1, L, r->a.runtime, th, 16, &n), 0);
	*tstate = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t tid = th[i].native_id;

		if (!tid)
			cr_assert_eq(sw_tio__read_mem(t, 1, th[i].thread_id + 720, &tid, 4), 0);
		if (tid == r->tid)
			*tstate = th[i].tstate;
	}
	cr_assert_neq(*tstate, 0);
	if (L->tstate.cframe != SW_PY_NONE) {
		cr_assert_eq(sw_tio__read_u64(t, 1, *tstate + (uint64_t)L->tstate.cframe, &cf), 0);
		cr_assert_eq(sw_tio__read_u64(t, 1, cf + (uint64_t)L->cframe_current_frame, &f), 0);
	} else {
		int32_t off =
		    L->tstate.frame != SW_PY_NONE ? L->tstate.frame : L->tstate.current_frame;

		cr_assert_eq(sw_tio__read_u64(t, 1, *tstate + (uint64_t)off, &f), 0);
	}
	return f;
}

/* Overwrite 8 bytes at addr inside a recorded segment of len bytes at seg. */
static void poke(struct sw_tio *t, uint64_t seg, size_t len, uint64_t addr, uint64_t v)
{
	uint8_t buf[512];

	cr_assert_leq(len, sizeof(buf));
	cr_assert_eq(sw_tio__read_mem(t, 1, seg, buf, len), 0, "segment at 0x%llx",
		     (unsigned long long)seg);
	memcpy(buf + (addr - seg), &v, 8);
	cr_assert_eq(sw_tio__add_segment(t, seg, buf, len), 0); /* the newer copy wins */
}

static size_t frame_len(const struct sw_py_layout *L)
{
	/* what the reader reads of a frame (recorded object by object) */
	size_t len = (size_t)L->frame.instr + 8;

	if ((size_t)L->frame.previous + 8 > len)
		len = (size_t)L->frame.previous + 8;
	if ((size_t)L->frame.code + 8 > len)
		len = (size_t)L->frame.code + 8;
	if (L->frame.owner != SW_PY_NONE && (size_t)L->frame.owner + 1 > len)
		len = (size_t)L->frame.owner + 1;
	return len;
}

static void corrupt(const char *name, unsigned minor)
{
	const struct sw_py_layout *L = sw_python_layout(3, minor);
	size_t flen = frame_len(L);
	uint64_t ts, f, f2, code;
	struct sw_tio *t;
	struct rec r;

	load_rec(name, &r);
	t = image(name);
	f = top_frame(t, &r, L, &ts);
	cr_assert_eq(sw_tio__read_u64(t, 1, f + (uint64_t)L->frame.previous, &f2), 0);
	sw_tio__free(t);

	/* the second frame points back at the first: a cycle */
	t = image(name);
	poke(t, f2, flen, f2 + (uint64_t)L->frame.previous, f);
	cr_assert_eq(read_once(t, &r, &st), -EAGAIN, "%s: cycle", name);
	cr_assert_eq(st.n, 0, "nothing half-read is returned");
	sw_tio__free(t);

	/* the first frame's previous leads nowhere */
	t = image(name);
	poke(t, f, flen, f + (uint64_t)L->frame.previous, 0x7f0000000000ull);
	cr_assert_eq(read_once(t, &r, &st), -EFAULT, "%s: unmapped", name);
	sw_tio__free(t);

	/* misaligned, or in kernel space */
	t = image(name);
	poke(t, f, flen, f + (uint64_t)L->frame.previous, f + 3);
	cr_assert_eq(read_once(t, &r, &st), -EAGAIN, "%s: misaligned", name);
	sw_tio__free(t);
	t = image(name);
	poke(t, f, flen, f + (uint64_t)L->frame.previous, 0xffff888000000000ull);
	cr_assert_eq(read_once(t, &r, &st), -EAGAIN, "%s: kernel address", name);
	sw_tio__free(t);

	/* the code pointer at an object that is not a code object */
	t = image(name);
	poke(t, f, flen, f + (uint64_t)L->frame.code, ts);
	cr_assert_neq(read_once(t, &r, &st), 0, "%s: code -> tstate", name);
	sw_tio__free(t);

	/* the instruction outside its code (3.11+), f_lasti < -1 (3.9) */
	t = image(name);
	cr_assert_eq(sw_tio__read_u64(t, 1, f + (uint64_t)L->frame.code, &code), 0);
	if (L->frame_kind == SW_PY_FRAME_INTERP)
		poke(t, f, flen, f + (uint64_t)L->frame.instr, code + 0x100000);
	else
		poke(t, f, flen, f + (uint64_t)L->frame.instr, 0xfffffff0u);
	cr_assert_eq(read_once(t, &r, &st), -EAGAIN, "%s: instr", name);
	sw_tio__free(t);
	free_rec(&r);
}

Test(pyframes, corrupt_chains_fail_3_9) { corrupt("frames-3.9.18", 9); }
Test(pyframes, corrupt_chains_fail_3_11) { corrupt("frames-3.11.2", 11); }
Test(pyframes, corrupt_chains_fail_3_13) { corrupt("frames-3.13.0", 13); }

/* Random bytes anywhere in the recording: whatever the read says, it must
 * not crash, loop or return strings that are not terminated. */
static void fuzz(const char *name)
{
	size_t len, off = 16;
	char path[512], *img;
	uint32_t count;
	struct rec r;
	unsigned seed = 12345;
	int ok = 0, failed = 0;

	load_rec(name, &r);
	snprintf(path, sizeof(path), "%s/python/%s.mem", SW_FIXTURES, name);
	img = slurp(path, &len);
	memcpy(&count, img + 12, 4);
	for (int round = 0; round < 300; round++) {
		struct sw_tio *t = sw_tio__new_fixture(NULL);
		uint32_t victim = (uint32_t)rand_r(&seed) % count;
		size_t o = off;
		int err;

		for (uint32_t i = 0; i < count; i++) {
			uint64_t h[2];
			uint8_t *b;

			memcpy(h, img + o, 16);
			b = malloc(h[1] ? h[1] : 1);
			cr_assert_not_null(b);
			memcpy(b, img + o + 16, h[1]);
			/* one to three random bytes in one segment a round */
			if (h[1] && i == victim)
				for (int k = 0, m = 1 + rand_r(&seed) % 3; k < m; k++)
					b[(size_t)rand_r(&seed) % h[1]] = (uint8_t)rand_r(&seed);
			cr_assert_eq(sw_tio__add_segment(t, h[0], b, h[1]), 0);
			free(b);
			o += 16 + h[1];
		}
		err = read_any(t, &r, &st, true);
		if (!err) {
			ok++;
			cr_assert_leq(st.n, SW_PY_MAX_FRAMES);
			for (uint32_t i = 0; i < st.n; i++)
				cr_assert(memchr(st.f[i].func, 0, sizeof(st.f[i].func)) &&
					  memchr(st.f[i].file, 0, sizeof(st.f[i].file)));
		} else {
			failed++;
			cr_assert_eq(st.n, 0);
		}
		sw_tio__free(t);
	}
	cr_log_info("%s: %d reads of corrupted memory succeeded, %d failed", name, ok, failed);
	cr_assert_gt(failed, 0, "corruption is noticed");
	free(img);
	free_rec(&r);
}

Test(pyframes, random_corruption_never_crashes_3_9) { fuzz("frames-3.9.18"); }
Test(pyframes, random_corruption_never_crashes_3_11) { fuzz("frames-3.11.2"); }
Test(pyframes, random_corruption_never_crashes_3_13) { fuzz("frames-3.13.0"); }
