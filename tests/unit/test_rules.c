// SPDX-License-Identifier: Apache-2.0
/*
 * The rules against the pattern table: each row from the evidence it
 * names (frames, syscalls and their fd, the on/off-CPU split), with advice
 * that fits the incident (it names the path, the peer, the frame seen).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "rules.h"

#define MS 1000000ull

static struct sw_verdict v;

static const char *classify_f(const struct sw_incident_facts *f)
{
	sw_rules_classify(f, &v);
	cr_assert_not_null(v.pattern);
	cr_assert(v.summary[0], "%s: empty summary", v.pattern);
	cr_assert(v.advice[0], "%s: empty advice", v.pattern);
	return v.pattern;
}

static const char *classify(const char *rt, uint64_t dur, uint64_t on, uint64_t off, uint64_t rq,
			    const char *sys)
{
	struct sw_incident_facts f = { .runtime = rt, .duration_ns = dur, .oncpu_ns = on,
				       .offcpu_ns = off, .runq_ns = rq, .top_syscall = sys,
				       .top_syscall_ns = off };

	return classify_f(&f);
}

/* One stack of the given frames (innermost first) with all the weight. */
static void one_stack(struct sw_diag_stacks *st, uint64_t w, const char *const *frames)
{
	memset(st, 0, sizeof(*st));
	st->gc_share = -1;
	st->samples = 10;
	st->weight_ns = w;
	st->n_stacks = 1;
	st->stacks[0].weight_ns = w;
	st->stacks[0].samples = 10;
	for (; *frames; frames++)
		st->stacks[0].frames[st->stacks[0].n_frames++] = *frames;
}

static const char *node_stack(const char *const *frames)
{
	static struct sw_diag_stacks st;
	struct sw_incident_facts f = { .runtime = "node", .duration_ns = 300 * MS,
				       .oncpu_ns = 290 * MS, .offcpu_ns = 10 * MS };

	one_stack(&st, 290 * MS, frames);
	f.stacks = &st;
	return classify_f(&f);
}

Test(rules, node_frames)
{
	const char *json[] = { "v8::internal::JsonParser<unsigned char>::ParseJsonValue",
			       "Builtins_JsonParse", "[jit]", "node::Start", NULL };
	const char *crypto[] = { "sha256_block_data_order_avx2", "PKCS5_PBKDF2_HMAC",
				 "node::crypto::PBKDF2Traits::DeriveBits", "[jit]", NULL };
	const char *zlib[] = { "deflate_slow", "deflate", "node::(anonymous namespace)::ZlibContext::Work",
			       "[jit]", NULL };
	const char *regex[] = { "[jit]", "Builtins_RegExpPrototypeExec", "[jit]", NULL };
	const char *gc[] = { "v8::internal::Scavenger::ScavengeObject",
			     "v8::internal::Heap::CollectGarbage", "[jit]", NULL };
	/* GC inside a parse is the parse's: the outermost operation wins */
	const char *gc_in_json[] = { "v8::internal::Heap::CollectGarbage",
				     "v8::internal::JsonParser<unsigned char>::ParseJsonValue",
				     "Builtins_JsonParse", NULL };
	const char *plain[] = { "[jit]", "[jit]", "node::Start", NULL };

	cr_assert_str_eq(node_stack(json), "node.large_json");
	cr_assert(strstr(v.summary, "JSON.parse"), "%s", v.summary);
	cr_assert_str_eq(node_stack(crypto), "node.sync_crypto");
	cr_assert(strstr(v.advice, "crypto.pbkdf2"), "%s", v.advice);
	cr_assert_str_eq(node_stack(zlib), "node.sync_zlib");
	cr_assert_str_eq(node_stack(regex), "node.regex");
	cr_assert_str_eq(node_stack(gc), "node.gc");
	cr_assert_str_eq(node_stack(gc_in_json), "node.large_json");
	cr_assert_str_eq(node_stack(plain), "node.cpu_bound_callback");
	cr_assert(strstr(v.advice, "worker_threads"), "%s", v.advice);
}

Test(rules, node_js_culprit_named)
{
	const char *frames[] = { "[jit]", "JS:*handler /srv/app/server.js:42", "node:internal/x.js:1",
				 NULL };

	cr_assert_str_eq(node_stack(frames), "node.cpu_bound_callback");
	cr_assert(strstr(v.summary, "server.js:42"), "%s", v.summary);
}

/* A frame class below the dominance share does not name the block. */
Test(rules, node_minor_frames_do_not_dominate)
{
	static struct sw_diag_stacks st;
	const char *json[] = { "Builtins_JsonParse", NULL };
	const char *plain[] = { "[jit]", NULL };
	struct sw_incident_facts f = { .runtime = "node", .duration_ns = 300 * MS,
				       .oncpu_ns = 300 * MS };

	one_stack(&st, 50 * MS, json);
	st.n_stacks = 2;
	st.weight_ns = 300 * MS;
	st.stacks[1].weight_ns = 250 * MS;
	st.stacks[1].frames[0] = plain[0];
	st.stacks[1].n_frames = 1;
	f.stacks = &st;
	cr_assert_str_eq(classify_f(&f), "node.cpu_bound_callback");
}

/*
 * Suite run 4 and 5 (test_patterns, LargeJson): a cold 50 MB JSON.parse
 * spread its samples over more distinct stacks than the SW_DIAG_STACKS the
 * agent keeps; the kept ones held under DOMINATES of the weight while the
 * parser's frames were in 85 % of all samples (the agent's top frames).
 * The verdict goes by every sample, not by the stacks that travel.
 */
Test(rules, node_frames_spread_over_more_stacks_than_kept)
{
	static struct sw_diag_stacks st;
	static char leaf[SW_DIAG_STACKS][32];
	struct sw_incident_facts f = { .runtime = "node", .duration_ns = 300 * MS,
				       .oncpu_ns = 300 * MS };

	memset(&st, 0, sizeof(st));
	st.gc_share = -1;
	st.samples = 100;
	st.weight_ns = 300 * MS;
	st.n_stacks = SW_DIAG_STACKS;
	for (int k = 0; k < SW_DIAG_STACKS; k++) {
		snprintf(leaf[k], sizeof(leaf[k]), "v8::internal::Leaf%d", k);
		st.stacks[k].weight_ns = 9 * MS; /* 8 x 3 % = 24 % of the weight */
		st.stacks[k].samples = 3;
		st.stacks[k].frames[0] = leaf[k];
		st.stacks[k].frames[1] = "v8::internal::JsonParser<unsigned char>::ParseJson";
		st.stacks[k].frames[2] = "v8::internal::Builtin_JsonParse";
		st.stacks[k].n_frames = 3;
	}
	f.stacks = &st;
	/* the kept stacks alone: not enough to say JSON */
	cr_assert_str_eq(classify_f(&f), "node.cpu_bound_callback");
	/* what the agent counted over every sample */
	st.n_top = 2;
	st.top[0] = (struct sw_diag_share){ "v8::internal::JsonParser<unsigned char>::ParseJson",
					    0.846 };
	st.top[1] = (struct sw_diag_share){ "v8::internal::Builtin_JsonParse", 0.846 };
	cr_assert_str_eq(classify_f(&f), "node.large_json");
	cr_assert(strstr(v.summary, "85%"), "%s", v.summary);
	/* a frame in few samples does not dominate by the top frames either */
	st.top[0].share = st.top[1].share = 0.2;
	cr_assert_str_eq(classify_f(&f), "node.cpu_bound_callback");
}

static struct sw_diag_syscalls one_sys(const char *name, uint64_t ns, enum sw_fd_kind kind,
				       uint16_t port, const char *target)
{
	struct sw_diag_syscalls s = { .n = 1 };

	snprintf(s.s[0].name, sizeof(s.s[0].name), "%s", name);
	s.s[0].count = 3;
	s.s[0].total_ns = ns;
	s.s[0].fd = kind == SW_FD_NONE ? -1 : 7;
	s.s[0].kind = kind;
	s.s[0].port = port;
	snprintf(s.s[0].target, sizeof(s.s[0].target), "%s", target);
	return s;
}

Test(rules, node_syscalls)
{
	struct sw_diag_syscalls sys = one_sys("read", 250 * MS, SW_FD_FILE, 0, "/srv/big.json");
	struct sw_incident_facts f = { .runtime = "node", .duration_ns = 300 * MS,
				       .oncpu_ns = 290 * MS, .offcpu_ns = 10 * MS, .sys = &sys };

	/* a warm readFileSync is on CPU, in read(): the syscall says fs */
	cr_assert_str_eq(classify_f(&f), "node.sync_fs");
	cr_assert(strstr(v.summary, "/srv/big.json"), "%s", v.summary);
	cr_assert(strstr(v.advice, "fs.promises"), "%s", v.advice);

	sys = one_sys("wait4", 280 * MS, SW_FD_NONE, 0, "sleep 0.3");
	f.oncpu_ns = 20 * MS;
	f.offcpu_ns = 280 * MS;
	cr_assert_str_eq(classify_f(&f), "node.sync_child");
	cr_assert(strstr(v.summary, "sleep 0.3"), "%s", v.summary);
	/* an older agent: only the top syscall */
	cr_assert_str_eq(classify("node", 200 * MS, 3 * MS, 197 * MS, 0, "wait4"), "node.sync_child");
}

static const char *python_sys(struct sw_diag_syscalls *sys, const char *const *frames)
{
	static struct sw_diag_stacks st;
	struct sw_incident_facts f = { .runtime = "python", .duration_ns = 300 * MS,
				       .oncpu_ns = 5 * MS, .offcpu_ns = 295 * MS, .sys = sys };

	if (frames) {
		one_stack(&st, 295 * MS, frames);
		f.stacks = &st;
	}
	return classify_f(&f);
}

Test(rules, python_db_http_io_sleep)
{
	struct sw_diag_syscalls sys = one_sys("poll", 290 * MS, SW_FD_TCP, 5432, "127.0.0.1:5432");
	const char *user[] = { "get_order (/srv/app/routes.py:57)",
			       "run (/usr/lib/python3.11/asyncio/events.py:80)", NULL };
	const char *req[] = { "recv_into (/usr/lib/python3.11/socket.py:706)",
			      "send (/usr/lib/python3/dist-packages/requests/adapters.py:486)",
			      "fetch (/srv/app/routes.py:12)", NULL };

	cr_assert_str_eq(python_sys(&sys, user), "python.sync_db_in_async");
	cr_assert(strstr(v.summary, "127.0.0.1:5432"), "%s", v.summary);
	cr_assert(strstr(v.summary, "routes.py:57"), "the user's line: %s", v.summary);
	cr_assert(strstr(v.advice, "asyncpg"), "%s", v.advice);

	/* requests to a backend on an unconventional port: its frames say HTTP */
	sys = one_sys("recvfrom", 290 * MS, SW_FD_TCP, 39211, "127.0.0.1:39211");
	cr_assert_str_eq(python_sys(&sys, req), "python.sync_http_in_async");
	cr_assert(strstr(v.summary, "routes.py:12"), "%s", v.summary);
	/* the same without frames: only a socket */
	cr_assert_str_eq(python_sys(&sys, NULL), "python.sync_io_in_async");
	/* the port alone says HTTP */
	sys = one_sys("recvfrom", 290 * MS, SW_FD_TCP, 443, "10.0.0.8:443");
	cr_assert_str_eq(python_sys(&sys, NULL), "python.sync_http_in_async");

	sys = one_sys("read", 290 * MS, SW_FD_FILE, 0, "/var/data/report.csv");
	cr_assert_str_eq(python_sys(&sys, NULL), "python.sync_io_in_async");
	cr_assert(strstr(v.summary, "/var/data/report.csv"), "%s", v.summary);

	sys = one_sys("clock_nanosleep", 295 * MS, SW_FD_NONE, 0, "");
	cr_assert_str_eq(python_sys(&sys, user), "python.blocking_sleep_in_async");
	cr_assert(strstr(v.advice, "asyncio.sleep"), "%s", v.advice);
	/* older agents: the top syscall only */
	cr_assert_str_eq(classify("python", 150 * MS, 1 * MS, 149 * MS, 0, "select (sleep)"),
			 "python.blocking_sleep_in_async");
	cr_assert_str_eq(classify("python", 200 * MS, 2 * MS, 198 * MS, 0, "poll"),
			 "python.sync_io_in_async");
}

Test(rules, python_gc_and_cpu)
{
	static struct sw_diag_stacks st;
	const char *frames[] = { "build (/srv/app/cache.py:20)", NULL };
	struct sw_incident_facts f = { .runtime = "python", .duration_ns = 200 * MS,
				       .oncpu_ns = 198 * MS };

	one_stack(&st, 198 * MS, frames);
	st.gc_share = 0.8;
	f.stacks = &st;
	cr_assert_str_eq(classify_f(&f), "python.gc");
	st.gc_share = 0.1;
	cr_assert_str_eq(classify_f(&f), "python.cpu_bound_coroutine");
	cr_assert(strstr(v.summary, "cache.py:20"), "%s", v.summary);
	/* the GIL issue owns lock waits: no advice to use a thread */
	cr_assert(strstr(v.advice, "process pool"), "%s", v.advice);
	cr_assert(!strstr(v.advice, "to_thread"), "%s", v.advice);
}

Test(rules, python_lock_wait_is_not_sent_to_a_thread)
{
	struct sw_diag_syscalls sys = one_sys("futex", 290 * MS, SW_FD_NONE, 0, "futex 0x7f00beef");

	cr_assert_str_eq(python_sys(&sys, NULL), "unknown");
	cr_assert(strstr(v.summary, "lock"), "%s", v.summary);
	cr_assert(!strstr(v.advice, "thread"), "%s", v.advice);
}

Test(rules, cpu_bound)
{
	cr_assert_str_eq(classify("node", 200 * MS, 195 * MS, 0, 5 * MS, ""),
			 "node.cpu_bound_callback");
	cr_assert_str_eq(classify("python", 120 * MS, 118 * MS, 0, 0, NULL),
			 "python.cpu_bound_coroutine");
	/* preempted for a third of it on a busy machine: still CPU work */
	cr_assert_str_eq(classify("python", 120 * MS, 79 * MS, 0, 41 * MS, NULL),
			 "python.cpu_bound_coroutine");
}

Test(rules, starved)
{
	cr_assert_str_eq(classify("node", 100 * MS, 30 * MS, 0, 70 * MS, ""), "cpu_starvation");
	cr_assert(strstr(v.summary, "70 of 100 ms"), "%s", v.summary);
}

Test(rules, unknown_says_what_was_seen)
{
	/* no diagnosis at all: never guess from the duration */
	cr_assert_str_eq(classify("node", 100 * MS, 0, 0, 0, NULL), "unknown");
	/* half on, half off in an unknown syscall */
	cr_assert_str_eq(classify("node", 100 * MS, 50 * MS, 50 * MS, 0, "ioctl"), "unknown");
	cr_assert(strstr(v.summary, "ioctl"), "%s", v.summary);
	cr_assert(strstr(v.summary, "50 ms on CPU"), "%s", v.summary);
}

/* A path as long as the buffer is cut, not overflowed. */
Test(rules, long_target_is_cut)
{
	struct sw_diag_syscalls sys;
	char path[160];

	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = 0;
	sys = one_sys("read", 290 * MS, SW_FD_FILE, 0, path);
	cr_assert_str_eq(python_sys(&sys, NULL), "python.sync_io_in_async");
	cr_assert_lt(strlen(v.summary), sizeof(v.summary));
}

Test(rules, every_verdict_is_declared)
{
	const char *seen[] = { "unknown", "cpu_starvation", "node.large_json", "node.sync_crypto",
			       "node.sync_zlib", "node.sync_fs", "node.sync_child", "node.regex",
			       "node.gc", "node.cpu_bound_callback", "python.blocking_sleep_in_async",
			       "python.sync_db_in_async", "python.sync_http_in_async",
			       "python.sync_io_in_async", "python.cpu_bound_coroutine", "python.gc" };

	cr_assert_str_eq(sw_rule_patterns[0], "unknown", "index 0 is the catch-all");
	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
		bool found = false;

		for (const char *const *p = sw_rule_patterns; *p; p++)
			found |= !strcmp(*p, seen[i]);
		cr_assert(found, "%s missing from sw_rule_patterns", seen[i]);
	}
}

/* Starvation is the finding only when the block would not exist without
 * it; a JSON.parse that ran past the threshold on its own stays the parse,
 * and says it also waited. */
Test(rules, starvation_versus_the_code)
{
	static struct sw_diag_stacks st;
	const char *json[] = { "Builtins_JsonParse", NULL };
	struct sw_incident_facts f = { .runtime = "node", .duration_ns = 300 * MS,
				       .oncpu_ns = 120 * MS, .runq_ns = 180 * MS,
				       .threshold_ns = 50 * MS };

	one_stack(&st, 120 * MS, json);
	f.stacks = &st;
	cr_assert_str_eq(classify_f(&f), "node.large_json");
	cr_assert(strstr(v.summary, "waited 180 ms for a CPU"), "%s", v.summary);
	/* 40 ms of its own work: below the threshold, starvation made it */
	f.oncpu_ns = 40 * MS;
	f.runq_ns = 260 * MS;
	cr_assert_str_eq(classify_f(&f), "cpu_starvation");
	/* a plain CPU loop, starved, but long enough on its own */
	f.stacks = NULL;
	f.oncpu_ns = 110 * MS;
	f.runq_ns = 190 * MS;
	cr_assert_str_eq(classify_f(&f), "node.cpu_bound_callback");
	cr_assert(strstr(v.summary, "waited 190 ms for a CPU"), "%s", v.summary);
	/* no threshold known (an older agent): the run queue decides alone */
	f.threshold_ns = 0;
	cr_assert_str_eq(classify_f(&f), "cpu_starvation");
}
