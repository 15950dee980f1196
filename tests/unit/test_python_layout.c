// SPDX-License-Identifier: Apache-2.0
/*
 * The CPython layout table: consistent with itself, and the readers built
 * on it replayed on memory recorded from live interpreters
 * (tests/fixtures/python). Whether each row matches CPython's own structs
 * is checked against DWARF and live processes by
 * tests/root/test_python_layout.py.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "runtime/python.h"
#include "target_io.h"

static bool has(int32_t off) { return off != SW_PY_NONE; }

Test(python_layout, rows_are_sorted_unique_and_cite_their_sources)
{
	size_t n;
	const struct sw_py_layout *rows = sw_python_layouts(&n);
	char tag[16];

	cr_assert_geq(n, 5, "3.9 to 3.13 at least");
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(rows[i].major, 3);
		if (i)
			cr_assert_gt(rows[i].minor, rows[i - 1].minor, "sorted, one row a minor");
		snprintf(tag, sizeof(tag), "v3.%u.", rows[i].minor);
		cr_assert_not_null(rows[i].source);
		cr_assert(!strncmp(rows[i].source, tag, strlen(tag)),
			  "3.%u: the source names the tag it was read at: %s", rows[i].minor,
			  rows[i].source);
		cr_assert_not_null(strstr(rows[i].verified, "DWARF"), "3.%u: verified how?",
				   rows[i].minor);
		cr_assert_eq(sw_python_layout(3, rows[i].minor), &rows[i]);
	}
	for (unsigned m = 9; m <= 13; m++)
		cr_assert_not_null(sw_python_layout(3, m), "3.%u is covered", m);
	cr_assert_null(sw_python_layout(3, 8));
	cr_assert_null(sw_python_layout(3, 14), "no row without a build to verify it on");
	cr_assert_null(sw_python_layout(2, 7));
}

Test(python_layout, each_row_has_one_way_to_each_thing)
{
	size_t n;
	const struct sw_py_layout *rows = sw_python_layouts(&n);

	for (size_t i = 0; i < n; i++) {
		const struct sw_py_layout *L = &rows[i];
		unsigned m = L->minor;
		int paths =
		    has(L->tstate.frame) + has(L->tstate.cframe) + has(L->tstate.current_frame);

		cr_assert(has(L->runtime.interpreters_head) && has(L->runtime.interpreters_main) &&
			      has(L->interp.threads_head) && has(L->interp.runtime),
			  "3.%u: the walk to the threads", m);
		cr_assert_eq(L->runtime.interpreters_main, L->runtime.interpreters_head + 8,
			     "3.%u: head then main in struct pyinterpreters", m);
		cr_assert(has(L->tstate.next) && has(L->tstate.interp) && has(L->tstate.thread_id));
		/* PEP 684 put the GIL behind a pointer in 3.12 */
		if (m <= 11)
			cr_assert(L->gil_home == SW_PY_GIL_IN_RUNTIME && has(L->runtime.gil) &&
				      !has(L->interp.gil_ptr) && has(L->runtime.tstate_current),
				  "3.%u: one GIL in _PyRuntime, holder in gilstate", m);
		else
			cr_assert(L->gil_home == SW_PY_GIL_INTERP_POINTER && !has(L->runtime.gil) &&
				      has(L->interp.gil_ptr) && !has(L->runtime.tstate_current),
				  "3.%u: the GIL behind interp->ceval.gil", m);
		if (L->drop_home == SW_PY_DROP_INTERP_INT)
			cr_assert(has(L->interp.gil_drop_request) && !has(L->tstate.eval_breaker));
		else
			cr_assert(L->drop_home == SW_PY_DROP_TSTATE_BIT &&
				  has(L->tstate.eval_breaker) && !has(L->interp.gil_drop_request) &&
				  L->drop_bit < 64);
		cr_assert_eq(has(L->tstate.native_thread_id), m >= 11,
			     "3.%u: native_thread_id is in PyThreadState from 3.11", m);
		cr_assert_eq(paths, 1, "3.%u: exactly one path to the current frame", m);
		cr_assert_eq(has(L->tstate.cframe), has(L->cframe_current_frame));
		cr_assert_eq(L->frame_kind == SW_PY_FRAME_OBJECT, has(L->tstate.frame));
		cr_assert_eq(has(L->frame.owner), L->frame_kind == SW_PY_FRAME_INTERP);
		cr_assert(has(L->frame.code) && has(L->frame.previous) && has(L->frame.instr));
		cr_assert_eq(L->instr_kind == SW_PY_INSTR_LASTI_BYTES ||
				 L->instr_kind == SW_PY_INSTR_LASTI_UNITS,
			     L->frame_kind == SW_PY_FRAME_OBJECT);
		cr_assert_eq(has(L->code.qualname), m >= 11, "co_qualname arrived in 3.11");
		cr_assert_eq(L->bytecode_kind == SW_PY_CODE_INLINE, m >= 11);
		cr_assert_eq(L->linetable_kind == SW_PY_LOCATIONS, m >= 11);
		cr_assert(has(L->code.name) && has(L->code.filename) && has(L->code.firstlineno) &&
			  has(L->code.linetable) && has(L->code.code));
		/* the bytecode follows the code object's fixed fields */
		if (L->bytecode_kind == SW_PY_CODE_INLINE)
			cr_assert_gt(L->code.code, L->code.linetable);
		cr_assert(L->unicode_ascii_data == 48 || L->unicode_ascii_data == 40,
			  "sizeof(PyASCIIObject), 40 once wstr went (3.12, PEP 623)");
		cr_assert_eq(L->unicode_ascii_data == 40, m >= 12);
		if (L->runtime.debug_offsets)
			cr_assert_geq(m, 13, "_Py_DebugOffsets is 3.13+");
		/* what the frame reader needs */
		cr_assert(has(L->interp.gc_collecting), "3.%u: gc.collecting", m);
		cr_assert_eq(has(L->frame.is_entry), m == 11, "is_entry: 3.11 only");
		cr_assert_eq(has(L->frame.owner_cstack), m >= 12, "the C-stack shim: 3.12+");
		cr_assert_eq(has(L->code.firsttraceable), m >= 11);
		cr_assert_eq(L->unicode.compact_data, L->unicode_ascii_data + (m >= 12 ? 16 : 24),
			     "PyCompactUnicodeObject: utf8_length, utf8 (and wstr_length to 3.11)");
		cr_assert(L->unicode.length == 16 && L->unicode.state == 32 && L->bytes_size == 16);
	}
}

Test(python_layout, gil_fields_fit_their_types)
{
	size_t n;
	const struct sw_py_layout *rows = sw_python_layouts(&n);

	for (size_t i = 0; i < n; i++) {
		const struct sw_py_gil_layout *g = &rows[i].gil;
		/* (offset, size) in declaration order: unsigned long, pointer,
		 * int, unsigned long, cond, mutex, cond, mutex (glibc x86_64) */
		const int32_t off[] = {g->interval,	 g->last_holder, g->locked,
				       g->switch_number, g->cond,	 g->mutex,
				       g->switch_cond,	 g->switch_mutex};
		const int32_t size[] = {8, 8, 4, 8, 48, 40, 48, 40};

		for (int f = 0; f < 8; f++) {
			cr_assert_eq(off[f] % (size[f] >= 8 ? 8 : 4), 0, "3.%u field %d aligned",
				     rows[i].minor, f);
			if (f)
				cr_assert_geq(off[f], off[f - 1] + size[f - 1],
					      "3.%u field %d does not overlap the one before",
					      rows[i].minor, f);
		}
		cr_assert_eq(g->size, g->switch_mutex + 40);
	}
}

Test(python_layout, what_is_refused_and_said)
{
	struct sw_proc_info pi = {.pid = 7, .runtime = SW_RT_PYTHON, .version = "3.13.0"};
	char msg[256];

	cr_assert_not_null(sw_python_layout_of(&pi));
	cr_assert_not_null(
	    sw_python_layout_of(&(struct sw_proc_info){.runtime = SW_RT_PYTHON, .version = "3.11"}),
	    "the minor from a name is enough");
	pi.free_threaded = true;
	cr_assert_null(sw_python_layout_of(&pi), "a free-threaded build has another layout");
	sw_python_layout_error(&pi, msg, sizeof(msg));
	cr_assert_not_null(strstr(msg, "free-threaded"), "%s", msg);
	pi.free_threaded = false;
	strcpy(pi.version, "3.14.0");
	cr_assert_null(sw_python_layout_of(&pi));
	sw_python_layout_error(&pi, msg, sizeof(msg));
	cr_assert_str_eq(msg, "pid 7: no CPython layout for 3.14.0 (the table has 3.9 to 3.13): "
			      "the GIL and Python stacks are not read");
	pi.version[0] = '\0';
	cr_assert_null(sw_python_layout_of(&pi));
	pi.runtime = SW_RT_NODE;
	strcpy(pi.version, "3.11.7");
	cr_assert_null(sw_python_layout_of(&pi));

	cr_assert(sw_python_name_free_threaded("python3.13t"));
	cr_assert(sw_python_name_free_threaded("libpython3.13t.so.1.0"));
	cr_assert_not(sw_python_name_free_threaded("python3.13"));
	cr_assert_not(sw_python_name_free_threaded("libpython3.13.so.1.0"));
	cr_assert_not(sw_python_name_free_threaded("python3"));
}

/* ---- readers replayed on recorded memory ---- */

struct recording {
	const char *name;
	unsigned minor;
	uint64_t runtime;
	uint64_t thread_ids[4];
	uint32_t native_ids[4]; /* 0 where the version has none */
	uint64_t last_holder;
};

/* From the cpython-X.Y.Z.txt files next to the images: what sw-pylayout read, and the
 * workload's own get_ident()/get_native_id(). */
static const struct recording recordings[] = {
    {"cpython-3.11.2",
     11,
     10860352,
     {140409267640000ull, 140409259230912ull, 140409250821824ull, 140409270502080ull},
     {5859, 5860, 5861, 5857},
     11026680},
    {"cpython-3.13.0",
     13,
     139998306407616ull,
     {139998296520384ull, 139998217107136ull, 139998208714432ull, 139998307556416ull},
     {5921, 5923, 5924, 5919},
     139998306690592ull},
    {"cpython-3.9.18",
     9,
     139839145693024ull,
     {139839138027200ull, 139839129634496ull, 139839121241792ull, 139839146519424ull},
     {0, 0, 0, 0},
     94486892679712ull},
};

static struct sw_tio *load(const char *name)
{
	struct sw_tio *t = sw_tio__new_fixture(NULL);
	char path[512];

	cr_assert_not_null(t);
	snprintf(path, sizeof(path), "%s/python/%s.mem", SW_FIXTURES, name);
	cr_assert_eq(sw_tio__load_image(t, path), 0, "load %s", path);
	return t;
}

static bool same_walk(const struct sw_py_layout *a, const struct sw_py_layout *b)
{
	return a->runtime.interpreters_main == b->runtime.interpreters_main &&
	       a->runtime.debug_offsets == b->runtime.debug_offsets &&
	       a->interp.runtime == b->interp.runtime &&
	       a->interp.threads_head == b->interp.threads_head &&
	       a->tstate.next == b->tstate.next && a->tstate.thread_id == b->tstate.thread_id &&
	       a->tstate.native_thread_id == b->tstate.native_thread_id;
}

static bool in(uint64_t v, const uint64_t *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == v)
			return true;
	return false;
}

Test(python_reader, recorded_interpreters_replay)
{
	for (size_t r = 0; r < sizeof(recordings) / sizeof(recordings[0]); r++) {
		const struct recording *rec = &recordings[r];
		const struct sw_py_layout *L = sw_python_layout(3, rec->minor);
		struct sw_tio *t = load(rec->name);
		struct sw_py_thread th[8];
		struct sw_py_gil_state gil;
		size_t n;

		cr_assert_eq(sw_python_threads(t, 1, L, rec->runtime, th, 8, &n), 0, "%s",
			     rec->name);
		cr_assert_eq(n, 4, "%s: the main thread and three workers", rec->name);
		for (size_t i = 0; i < n; i++) {
			uint64_t native = th[i].native_id;
			uint64_t natives[4];

			for (int k = 0; k < 4; k++)
				natives[k] = rec->native_ids[k];
			cr_assert(in(th[i].thread_id, rec->thread_ids, 4), "%s: thread_id %llu",
				  rec->name, (unsigned long long)th[i].thread_id);
			cr_assert(in(native, natives, 4), "%s: native id %llu", rec->name,
				  (unsigned long long)native);
		}
		cr_assert_eq(sw_python_gil(t, 1, L, rec->runtime, &gil), 0);
		cr_assert_eq(gil.interval_us, 7000, "%s: sys.setswitchinterval(0.007)", rec->name);
		cr_assert(gil.locked == 0 || gil.locked == 1);
		cr_assert_eq(gil.last_holder, rec->last_holder);
		cr_assert_eq(t->mem_faults, 0);

		/* fewer slots than threads: the ones that fit, and -E2BIG */
		cr_assert_eq(sw_python_threads(t, 1, L, rec->runtime, th, 2, &n), -E2BIG);
		cr_assert_eq(n, 2);
		/* another row on this memory does not read garbage quietly
		 * (3.9 and 3.10 share every offset of this walk) */
		for (unsigned m = 9; m <= 13; m++) {
			const struct sw_py_layout *O = sw_python_layout(3, m);

			if (m == rec->minor || same_walk(L, O))
				continue;
			cr_assert_neq(sw_python_threads(t, 1, O, rec->runtime, th, 8, &n), 0,
				      "%s read as 3.%u", rec->name, m);
		}
		sw_tio__free(t);
	}
}

Test(python_reader, a_wrong_address_fails)
{
	const struct sw_py_layout *L = sw_python_layout(3, 11);
	struct sw_tio *t = load("cpython-3.11.2");
	struct sw_py_thread th[8];
	size_t n;

	cr_assert_eq(sw_python_threads(t, 1, L, 10860352 + 8, th, 8, &n), -EFAULT);
	cr_assert_eq(sw_python_threads(t, 1, L, 0x1000, th, 8, &n), -EFAULT);
	sw_tio__free(t);
}

Test(python_reader, the_313_cookie_is_checked)
{
	const struct sw_py_layout *L = sw_python_layout(3, 13);
	struct sw_tio *t = load("cpython-3.13.0");
	const uint64_t rt = 139998306407616ull;
	struct sw_py_thread th[8];
	uint8_t bad[16];
	size_t n;

	cr_assert_eq(sw_tio__read_mem(t, 1, rt, bad, sizeof(bad)), 0);
	cr_assert_eq(memcmp(bad, "xdebugpy", 8), 0);
	bad[8 + 2] ^= 0xff; /* PY_VERSION_HEX, little endian: its minor byte */
	cr_assert_eq(sw_tio__add_segment(t, rt, bad, sizeof(bad)), 0); /* newer copy wins */
	cr_assert_eq(sw_python_threads(t, 1, L, rt, th, 8, &n), -EPROTO);
	sw_tio__free(t);
}

/* A synthetic interpreter for what no recording shows: a list that loops. */
Test(python_reader, a_looping_thread_list_ends)
{
	const struct sw_py_layout *L = sw_python_layout(3, 12);
	struct sw_tio *t = sw_tio__new_fixture(NULL);
	const uint64_t rt = 0x10000, interp = 0x20000, ts = 0x30000;
	uint8_t rtm[64] = {0}, im[512] = {0}, tsm[256] = {0};

	memcpy(rtm + L->runtime.interpreters_main, &interp, 8);
	memcpy(im + L->interp.runtime, &rt, 8);
	memcpy(im + L->interp.threads_head, &ts, 8);
	memcpy(tsm + L->tstate.next, &ts, 8); /* itself */
	cr_assert_eq(sw_tio__add_segment(t, rt, rtm, sizeof(rtm)), 0);
	cr_assert_eq(sw_tio__add_segment(t, interp, im, sizeof(im)), 0);
	cr_assert_eq(sw_tio__add_segment(t, ts, tsm, sizeof(tsm)), 0);
	{
		struct sw_py_thread th[4];
		size_t n;

		cr_assert_eq(sw_python_threads(t, 1, L, rt, th, 4, &n), -ELOOP);
	}
	sw_tio__free(t);
}

Test(target_io, images_round_trip_and_reads_stay_inside_segments)
{
	struct sw_tio *a = sw_tio__new_fixture(NULL), *b = sw_tio__new_fixture(NULL);
	const uint8_t bytes[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	char path[] = "/tmp/sw-img-XXXXXX";
	uint8_t got[16];
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(sw_tio__add_segment(a, 0x1000, bytes, sizeof(bytes)), 0);
	cr_assert_eq(sw_tio__save_image(a, path), 0);
	cr_assert_eq(sw_tio__load_image(b, path), 0);
	unlink(path);
	cr_assert_eq(sw_tio__read_mem(b, 1, 0x1004, got, 8), 0);
	cr_assert_eq(memcmp(got, bytes + 4, 8), 0);
	cr_assert_eq(sw_tio__read_mem(b, 1, 0x100c, got, 8), -EFAULT, "crosses the end");
	cr_assert_eq(sw_tio__read_mem(b, 1, 0xffc, got, 8), -EFAULT, "starts before");
	cr_assert_eq(b->mem_reads, 3);
	cr_assert_eq(b->mem_faults, 2);
	cr_assert_eq(sw_tio__load_image(b, "/nonexistent"), -ENOENT);
	sw_tio__free(a);
	sw_tio__free(b);
}
