// SPDX-License-Identifier: Apache-2.0
/* Stacks without root: frame names, perf maps, the Python splice and the
 * aggregation of samples into an incident's stacks; the unwinder on this
 * process's own stack. */
#define _GNU_SOURCE /* ucontext's REG_* */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "perfmap.h"
#include "stacks.h"
#include "unwind.h"
#include <sys/syscall.h>
#include <ucontext.h>
#include "bpf/stacks.h"
#include "target_io.h"

static void fmt_is(const char *sym, const char *want)
{
	char out[256];

	sw_unwind_format_symbol(sym, out, sizeof(out));
	cr_assert_str_eq(out, want, "%s -> %s, want %s", sym, out, want);
}

Test(frames, demangled_without_params_and_return_type)
{
	fmt_is("_ZN2v88internal10JsonParserIhE9ParseJsonEv",
	       "v8::internal::JsonParser<unsigned char>::ParseJson");
	/* a template member function's demangled name starts with its return type */
	fmt_is("_ZN2v88internal10JsonParserIhE14ParseJsonValueILb0EEENS0_6HandleINS0_6ObjectEEEv",
	       "v8::internal::JsonParser<unsigned char>::ParseJsonValue<false>");
	fmt_is("_ZN2v88internal12_GLOBAL__N_16InvokeEPNS0_7IsolateERKNS1_12InvokeParamsE",
	       "v8::internal::(anonymous namespace)::Invoke");
	fmt_is("_ZN4node6crypto12PBKDF2Traits10DeriveBitsEPNS_11EnvironmentERKNS0_12PBKDF2ConfigEPNS0_"
	       "10ByteSourceE",
	       "node::crypto::PBKDF2Traits::DeriveBits");
	fmt_is("_ZNK1A3getEv", "A::get");
	fmt_is("_Z3fooi.cold", "foo");
}

Test(frames, operators_keep_their_brackets)
{
	fmt_is("_ZN1AltERKS_", "A::operator<");
	fmt_is("_ZN1AclEv", "A::operator()");
}

Test(frames, c_names_and_bad_manglings_are_copied)
{
	fmt_is("Builtins_JsonParse", "Builtins_JsonParse");
	fmt_is("deflate_slow", "deflate_slow");
	fmt_is("_Znot_a_mangling", "_Znot_a_mangling");
	/* GCC's clones are the function people wrote */
	fmt_is("deflate.part.0", "deflate");
	fmt_is("sw_leaf.constprop.0", "sw_leaf");
	fmt_is("f.isra.0.cold", "f");
	fmt_is("g.lto_priv.0", "g");
	fmt_is("h.cold", "h");
	/* other dots are part of the name */
	fmt_is("str.5", "str.5");
	fmt_is("a.b", "a.b");
	fmt_is(".hidden", ".hidden");
	fmt_is("x.part", "x");
	fmt_is("x.0", "x.0");
	char small[8];
	sw_unwind_format_symbol("Builtins_JsonParse", small, sizeof(small));
	cr_assert_str_eq(small, "Builtin");
}

Test(frames, perfmap_path_is_the_targets_view)
{
	char p[128];

	sw_unwind_perfmap_path(4242, 7, p, sizeof(p));
	cr_assert_str_eq(p, "/proc/4242/root/tmp/perf-7.map");
}

static struct sw_perfmap *map_of(const char *text)
{
	struct sw_perfmap *m = sw_perfmap__new("/nonexistent");
	FILE *f = fmemopen((void *)text, strlen(text), "r");

	cr_assert(m && f);
	cr_assert_eq(sw_perfmap__load_stream(m, f), 0);
	fclose(f);
	return m;
}

Test(perfmap, lookup)
{
	struct sw_perfmap *m = map_of("7f0000001000 100 JS:*parseBig /app/x.js:3:1\n"
				      "7f0000000800 40 Builtin:ArgumentsAdaptorTrampoline\n"
				      "7f0000002000 20 LazyCompile:~handler /app/y.js:10:20\n");

	cr_assert_eq(sw_perfmap__entries(m), 3);
	cr_assert_str_eq(sw_perfmap__lookup(m, 0x7f0000001000), "JS:*parseBig /app/x.js:3:1");
	cr_assert_str_eq(sw_perfmap__lookup(m, 0x7f00000010ff), "JS:*parseBig /app/x.js:3:1");
	cr_assert_null(sw_perfmap__lookup(m, 0x7f0000001100)); /* end is exclusive */
	cr_assert_str_eq(sw_perfmap__lookup(m, 0x7f0000000820), "Builtin:ArgumentsAdaptorTrampoline");
	cr_assert_str_eq(sw_perfmap__lookup(m, 0x7f0000002010), "LazyCompile:~handler /app/y.js:10:20");
	cr_assert_null(sw_perfmap__lookup(m, 0x10));
	cr_assert_null(sw_perfmap__lookup(m, 0x7f0000003000));
	sw_perfmap__free(m);
}

Test(perfmap, later_entry_wins_and_bad_lines_are_counted)
{
	/* code freed and reused: the later line names what runs there now */
	struct sw_perfmap *m = map_of("1000 100 old\n"
				      "garbage line\n"
				      "1000 0 empty\n"
				      "1080 10 new\n"
				      "2000 10\n"
				      "3000 10 cut-without-newline");

	cr_assert_eq(sw_perfmap__entries(m), 2);
	cr_assert_eq(sw_perfmap__bad_lines(m), 3);
	cr_assert_str_eq(sw_perfmap__lookup(m, 0x1084), "new");
	cr_assert_str_eq(sw_perfmap__lookup(m, 0x1010), "old");
	/* a last line still being written is left for the next refresh */
	cr_assert_null(sw_perfmap__lookup(m, 0x3004));
	sw_perfmap__free(m);
}

Test(perfmap, refresh_reads_what_was_appended)
{
	char path[] = "/tmp/sw-perfmap-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	struct sw_perfmap *m = sw_perfmap__new(path);

	cr_assert(f && m);
	fputs("1000 10 first\n2000 1", f);
	fflush(f);
	cr_assert_eq(sw_perfmap__refresh(m), 0);
	cr_assert_eq(sw_perfmap__entries(m), 1);
	fputs("0 second\n", f);
	fflush(f);
	cr_assert_eq(sw_perfmap__refresh(m), 0);
	cr_assert_eq(sw_perfmap__entries(m), 2);
	cr_assert_str_eq(sw_perfmap__lookup(m, 0x2001), "second");
	cr_assert_str_eq(sw_perfmap__lookup(m, 0x1001), "first");
	fclose(f);
	unlink(path);
	sw_perfmap__free(m);
	m = sw_perfmap__new("/nonexistent/perf-1.map");
	cr_assert_eq(sw_perfmap__refresh(m), -ENOENT);
	sw_perfmap__free(m);
}

static void py_frame(struct sw_py_stack *s, const char *func, const char *file, uint32_t line,
		     bool entry)
{
	struct sw_py_frame *f = &s->f[s->n++];

	snprintf(f->func, sizeof(f->func), "%s", func);
	snprintf(f->file, sizeof(f->file), "%s", file);
	f->line = line;
	f->entry = entry;
}

/* native: 1 = clock_nanosleep, 2 = evaluator, 3 = a C call (PyObject_Call),
 * 4 = evaluator, 5 = main */
static const uint64_t pcs[] = { 1, 2, 3, 4, 5 };
static const bool ret[] = { false, true, true, true, true };
static const bool eval[] = { false, true, false, true, false };

static void frames_are(const struct sw_stk_frame *f, uint32_t n, const char *const *want,
		       uint32_t nwant)
{
	char buf[64];

	cr_assert_eq(n, nwant, "%u frames, want %u", n, nwant);
	for (uint32_t i = 0; i < n; i++) {
		const char *got = f[i].py;

		if (!got) {
			snprintf(buf, sizeof(buf), "pc%llu", (unsigned long long)f[i].pc);
			got = buf;
		}
		cr_assert_str_eq(got, want[i], "frame %u: %s, want %s", i, got, want[i]);
	}
}

Test(splice, python_311_entry_frames)
{
	static struct sw_py_stack py;
	struct sw_stk_frame out[32];
	/* 3.11+: one evaluator call runs several frames, up to its entry */
	const char *want[] = { "pc1",
			       "blocker (/app/a.py:12)",
			       "handle (/app/a.py:30)",
			       "pc3",
			       "main (/app/a.py:40)",
			       "<module> (/app/a.py)",
			       "pc5" };
	uint32_t n;

	memset(&py, 0, sizeof(py));
	py_frame(&py, "blocker", "/app/a.py", 12, false);
	py_frame(&py, "handle", "/app/a.py", 30, true);
	py_frame(&py, "main", "/app/a.py", 40, false);
	py_frame(&py, "<module>", "/app/a.py", 0, true);
	n = sw_stacks_splice(pcs, ret, eval, 5, &py, out, 32);
	frames_are(out, n, want, 7);
	cr_assert(!out[0].is_return && out[3].is_return);
	sw_stk_frames_free(out, n);
}

Test(splice, python_39_every_frame_an_entry_and_leftovers_outermost)
{
	static struct sw_py_stack py;
	struct sw_stk_frame out[32];
	const char *want[] = { "pc1", "f (/a.py:1)", "pc3", "g (/a.py:2)", "pc5", "h (/a.py:3)" };
	uint32_t n;

	memset(&py, 0, sizeof(py));
	py_frame(&py, "f", "/a.py", 1, true);
	py_frame(&py, "g", "/a.py", 2, true);
	/* the native unwind stopped before h's evaluator: h goes outermost */
	py_frame(&py, "h", "/a.py", 3, true);
	n = sw_stacks_splice(pcs, ret, eval, 5, &py, out, 32);
	frames_are(out, n, want, 6);
	sw_stk_frames_free(out, n);
}

Test(splice, no_python_frames_keeps_native_and_max_is_kept)
{
	static struct sw_py_stack py;
	struct sw_stk_frame out[32];
	const char *want[] = { "pc1", "pc2", "pc3", "pc4", "pc5" };
	const char *want3[] = { "pc1", "x (/x.py:1)", "pc3" };
	uint32_t n;

	n = sw_stacks_splice(pcs, ret, eval, 5, NULL, out, 32);
	frames_are(out, n, want, 5);
	memset(&py, 0, sizeof(py));
	py_frame(&py, "x", "/x.py", 1, true);
	py_frame(&py, "y", "/x.py", 2, true);
	n = sw_stacks_splice(pcs, ret, eval, 5, &py, out, 3);
	frames_are(out, n, want3, 3);
	sw_stk_frames_free(out, n);
}

#define S(...) ((const char *const[]){ __VA_ARGS__ })
#define NF(...) (uint32_t)(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(char *))

Test(aggregate, heaviest_first_and_shares)
{
	/* JSON.parse sampled on CPU: the leaf varies, the parser is always there */
	struct sw_stk_agg s[] = {
		{ S("ParseJsonValue", "ParseJson", "main"), 3, 10, -1 },
		{ S("ParseJsonValue", "ParseJson", "main"), 3, 10, -1 },
		{ S("BuildJsonObject", "ParseJsonValue", "ParseJson", "main"), 4, 10, -1 },
		{ S("Scavenge", "ParseJson", "main"), 3, 10, -1 },
		{ S("clock_nanosleep", "main"), 2, 15, -1 },
	};
	struct sw_diag_stacks d;
	struct sw_stk_group all[8];
	size_t n_all;

	sw_stacks_aggregate(s, 5, &d, all, &n_all);
	cr_assert_eq(d.samples, 5);
	cr_assert_eq(d.weight_ns, 55);
	cr_assert_eq(d.n_stacks, 4);
	cr_assert_eq(n_all, 4);
	cr_assert_eq(d.stacks[0].weight_ns, 20);
	cr_assert_eq(d.stacks[0].samples, 2);
	cr_assert_str_eq(d.stacks[0].frames[0], "ParseJsonValue");
	cr_assert_eq(d.stacks[1].weight_ns, 15);
	cr_assert_str_eq(d.stacks[1].frames[0], "clock_nanosleep");
	cr_assert_eq(d.n_top, 3);
	cr_assert_str_eq(d.top[0].frame, "ParseJsonValue");
	cr_assert_float_eq(d.top[0].share, 30.0 / 55, 1e-9);
	cr_assert_str_eq(d.top[1].frame, "ParseJson");
	cr_assert_float_eq(d.top[1].share, 40.0 / 55, 1e-9);
	cr_assert_float_eq(d.top[2].share, 1.0, 1e-9);
	cr_assert(d.gc_share < 0);
	cr_assert_null(d.note);
}

Test(aggregate, the_stack_is_the_hot_path)
{
	/* V8's collector in 70 % of the samples, each in another leaf; the
	 * JS caller alone in 30 %, all with one stack: the heaviest exact
	 * stack is the JS one, the stack people need is the collector's */
	struct sw_stk_agg s[] = {
		{ S("[jit]", "main"), 2, 10, -1 },
		{ S("[jit]", "main"), 2, 10, -1 },
		{ S("[jit]", "main"), 2, 10, -1 },
		{ S("Scavenge1", "Heap::CollectGarbage", "Heap::AllocateRaw", "[jit]", "main"), 5, 10, -1 },
		{ S("Scavenge2", "Heap::CollectGarbage", "Heap::AllocateRaw", "[jit]", "main"), 5, 10, -1 },
		{ S("Mark", "Heap::CollectGarbage", "Heap::AllocateRaw", "[jit]", "main"), 5, 10, -1 },
		{ S("Sweep", "Heap::CollectGarbage", "Heap::AllocateRaw", "[jit]", "main"), 5, 10, -1 },
		{ S("Scavenge1", "Heap::CollectGarbage", "Heap::AllocateRaw", "[jit]", "main"), 5, 10, -1 },
		{ S("Evacuate", "Heap::CollectGarbage", "Heap::AllocateRaw", "[jit]", "main"), 5, 10, -1 },
		{ S("Mark", "Heap::CollectGarbage", "Heap::AllocateRaw", "[jit]", "main"), 5, 10, -1 },
	};
	struct sw_diag_stacks d;

	sw_stacks_aggregate(s, 10, &d, NULL, NULL);
	cr_assert_eq(d.stacks[0].n_frames, 5);
	cr_assert_str_eq(d.stacks[0].frames[1], "Heap::CollectGarbage");
	/* of the collector's leaves, the heaviest: Scavenge1 and Mark tie at
	 * 20, the first seen wins */
	cr_assert_str_eq(d.stacks[0].frames[0], "Scavenge1");
	cr_assert_eq(d.stacks[0].weight_ns, 20);
	/* then by weight: the JS stack */
	cr_assert_str_eq(d.stacks[1].frames[0], "[jit]");
	cr_assert_eq(d.stacks[1].weight_ns, 30);
	/* the top frames begin where a quarter of the time is: not at the
	 * 20 % leaf but at the collector, in 70 % */
	cr_assert_str_eq(d.top[0].frame, "Heap::CollectGarbage");
	cr_assert_float_eq(d.top[0].share, 0.7, 1e-9);
	cr_assert_str_eq(d.top[1].frame, "Heap::AllocateRaw");
}

Test(aggregate, samples_that_stop_outweigh_callees)
{
	/* 60 % in the caller itself, 40 % spread over two callees */
	struct sw_stk_agg s[] = {
		{ S("parse", "main"), 2, 30, -1 },
		{ S("parse", "main"), 2, 30, -1 },
		{ S("alloc", "parse", "main"), 3, 20, -1 },
		{ S("hash", "parse", "main"), 3, 20, -1 },
	};
	struct sw_diag_stacks d;

	sw_stacks_aggregate(s, 4, &d, NULL, NULL);
	cr_assert_eq(d.stacks[0].n_frames, 2);
	cr_assert_str_eq(d.stacks[0].frames[0], "parse");
}

Test(aggregate, gc_share_and_deep_stacks_are_cut)
{
	static const char *deep[100];
	struct sw_stk_agg s[3];
	struct sw_diag_stacks d;

	for (int i = 0; i < 100; i++)
		deep[i] = i == 0 ? "leaf" : "frame";
	s[0] = (struct sw_stk_agg){ deep, 100, 30, 1 };
	s[1] = (struct sw_stk_agg){ deep, 100, 10, 0 };
	s[2] = (struct sw_stk_agg){ S("x"), 1, 60, -1 };
	sw_stacks_aggregate(s, 3, &d, NULL, NULL);
	cr_assert_float_eq(d.gc_share, 0.75, 1e-9); /* of the weight where it was read */
	cr_assert_eq(d.n_stacks, 2);
	cr_assert_str_eq(d.stacks[0].frames[0], "x");
	cr_assert_eq(d.stacks[1].n_frames, SW_DIAG_FRAMES);
	cr_assert_str_eq(d.stacks[1].frames[SW_DIAG_FRAMES - 1], "[truncated]");
	cr_assert_str_eq(d.stacks[1].frames[0], "leaf");
}

Test(aggregate, nothing_sampled)
{
	struct sw_diag_stacks d;

	sw_stacks_aggregate(NULL, 0, &d, NULL, NULL);
	cr_assert_eq(d.n_stacks, 0);
	cr_assert_eq(d.samples, 0);
	cr_assert(d.gc_share < 0);
}

/*
 * The unwinder on a live stack: this process's own, from getcontext(), with
 * no frame pointers (the test is built -O2, -fomit-frame-pointer): libdw
 * must walk it from .eh_frame and name our static functions from .symtab.
 */

struct self_stack {
	uint64_t regs[SW_STK_NREGS];
	uint8_t copy[2048];
	uint64_t base;
};

static void regs_of(const ucontext_t *uc, uint64_t *r)
{
	const greg_t *g = uc->uc_mcontext.gregs;

	r[0] = (uint64_t)g[REG_RAX];
	r[1] = (uint64_t)g[REG_RDX];
	r[2] = (uint64_t)g[REG_RCX];
	r[3] = (uint64_t)g[REG_RBX];
	r[4] = (uint64_t)g[REG_RSI];
	r[5] = (uint64_t)g[REG_RDI];
	r[6] = (uint64_t)g[REG_RBP];
	r[7] = (uint64_t)g[REG_RSP];
	for (int i = 0; i < 8; i++)
		r[8 + i] = (uint64_t)g[REG_R8 + i];
	r[16] = (uint64_t)g[REG_RIP];
}

/* Byte by byte and uninstrumented: the bytes above sp span callers' frames,
 * whose redzones ASan would report as an underflow of this one's. */
__attribute__((no_sanitize_address)) static void copy_raw(void *dst, uintptr_t src, size_t n)
{
	const volatile unsigned char *s = (const volatile unsigned char *)src;
	unsigned char *d = dst;

	for (size_t i = 0; i < n; i++)
		d[i] = s[i];
}

__attribute__((noinline)) static int sw_test_unwind_leaf(struct self_stack *st)
{
	ucontext_t uc;

	if (getcontext(&uc))
		return -1;
	regs_of(&uc, st->regs);
	/* what BPF would copy: bytes from sp up (here 2 KiB of it; callers
	 * above are read live, as from a target) */
	st->base = st->regs[SW_STK_REG_SP];
	copy_raw(st->copy, (uintptr_t)st->base, sizeof(st->copy));
	return 0;
}

__attribute__((noinline)) static int sw_test_unwind_caller(struct self_stack *st)
{
	int r = sw_test_unwind_leaf(st);

	__asm__ volatile("" ::: "memory"); /* not a tail call */
	return r;
}

Test(unwind, own_stack_from_cfi)
{
	static struct self_stack st;
	struct sw_unwind *u = sw_unwind__new(sw_tio_default());
	uint64_t pcs[SW_UNWIND_MAX_FRAMES];
	bool ret[SW_UNWIND_MAX_FRAMES];
	char name[256];
	bool leaf = false, caller = false;
	int n;

	cr_assert_not_null(u);
	cr_assert_eq(sw_test_unwind_caller(&st), 0);
	n = sw_unwind__stack(u, (uint32_t)getpid(), (uint32_t)syscall(SYS_gettid), st.regs, st.base,
			     st.copy, sizeof(st.copy), pcs, ret, SW_UNWIND_MAX_FRAMES);
	cr_assert_gt(n, 3, "unwound %d frames", n);
	for (int i = 0; i < n; i++) {
		sw_unwind__name(u, (uint32_t)getpid(), pcs[i], ret[i], name, sizeof(name));
		cr_log_info("frame %d: %s", i, name);
		/* the compiler may clone them (".constprop.0"): named as written */
		if (!strcmp(name, "sw_test_unwind_leaf"))
			leaf = i == 0;
		if (!strcmp(name, "sw_test_unwind_caller"))
			caller = leaf && i == 1;
	}
	cr_assert(leaf && caller, "expected the leaf then its caller innermost");
	cr_assert(!strncmp(sw_unwind__symbol(u, (uint32_t)getpid(), pcs[0], ret[0]),
			   "sw_test_unwind_leaf", 19));
	cr_assert(!sw_unwind__unnamed_jit(u, (uint32_t)getpid()));
	sw_unwind__free(u);
}
