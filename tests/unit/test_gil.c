// SPDX-License-Identifier: Apache-2.0
/*
 * The GIL rules (common/gil.c), the incident rule for a loop stalled by the
 * GIL (common/rules.c), and which of the GIL's futexes an address is
 * (bpf/gilmon.h). The figures are from agent runs on this machine
 * (2026-11-22, pyenv 3.11.7 and Debian 3.11.2).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "bpf/gilmon.h"
#include "gil.h"
#include "rules.h"

#define MS 1000000ull

static struct sw_gil_thread_rec th(uint32_t tid, const char *name, bool loop, uint64_t wait_ms,
				   uint64_t hold_ms, uint64_t drops, const char *frame)
{
	struct sw_gil_thread_rec t = {.tid = tid, .loop = loop};

	snprintf(t.thread, sizeof(t.thread), "%s", name);
	t.wait_ns = wait_ms * MS;
	t.hold_ns = hold_ms * MS;
	t.drop_requests = drops;
	if (frame) {
		t.n_frames = 2;
		snprintf(t.frames[0], sizeof(t.frames[0]), "%s", frame);
		snprintf(t.frames[1], sizeof(t.frames[1]), "Thread.run (/usr/lib/python3.11/threading.py:975)");
	}
	return t;
}

static struct sw_gil_rec rec(struct sw_gil_thread_rec *t, uint32_t n, uint64_t interval_ms,
			     uint64_t samples, uint64_t held)
{
	struct sw_gil_rec g = {.pid = 42, .threads = t, .n_threads = n};

	g.interval_ns = interval_ms * MS;
	g.samples = samples;
	g.held_samples = held;
	g.switch_interval_us = 5000;
	return g;
}

/* Two pure-Python CPU threads (3.11.7: wait 429/461 ms, hold 670/320 ms of
 * 1020 ms, 137 drop requests): contention flagged. */
Test(gil, two_cpu_threads_contend)
{
	struct sw_gil_thread_rec t[3] = {
	    th(2, "worker-1", false, 429, 670, 62, "spin (/srv/app.py:7)"),
	    th(3, "worker-2", false, 461, 320, 75, "spin (/srv/app.py:7)"),
	    th(1, "python3", false, 0, 0, 0, NULL),
	};
	struct sw_gil_rec g = rec(t, 3, 1020, 100, 99);

	sw_gil_judge(&g);
	cr_assert(g.flagged);
	cr_assert_str_eq(g.verdict.pattern, SW_GIL_PATTERN_CONTENTION);
	cr_assert_eq(g.waiting_threads, 2);
	cr_assert_float_eq(g.contention, 890.0 / (2 * 1020), 1e-6); /* the idle main thread not counted */
	cr_assert_float_eq(g.utilization, 0.99, 1e-9);
	cr_assert_eq(g.top_holder, 0);
	cr_assert(strstr(g.verdict.summary, "44% of their time"), "%s", g.verdict.summary);
	cr_assert(strstr(g.verdict.summary, "137 drop requests"), "%s", g.verdict.summary);
	cr_assert(strstr(g.verdict.summary, "worker-1"), "%s", g.verdict.summary);
}

/* One CPU thread alone: it holds, nobody waits. */
Test(gil, one_thread_is_not_contention)
{
	struct sw_gil_thread_rec t[2] = {
	    th(2, "worker", false, 0, 990, 0, "spin (/srv/app.py:7)"),
	    th(1, "python3", false, 0, 0, 0, NULL),
	};
	struct sw_gil_rec g = rec(t, 2, 1000, 100, 99);

	sw_gil_judge(&g);
	cr_assert_not(g.flagged);
	cr_assert_float_eq(g.contention, 0, 1e-9);
}

/* Threads in numpy products (the GIL released): short waits at each
 * re-entry into Python, below the line. */
Test(gil, gil_releasing_threads_are_not_contention)
{
	struct sw_gil_thread_rec t[2] = {
	    th(2, "np-1", false, 12, 80, 1, "matmul (/srv/np.py:9)"),
	    th(3, "np-2", false, 15, 70, 2, "matmul (/srv/np.py:9)"),
	};
	struct sw_gil_rec g = rec(t, 2, 2000, 200, 15);

	sw_gil_judge(&g);
	cr_assert_not(g.flagged);
	cr_assert_eq(g.waiting_threads, 0);
}

/* An asyncio loop beside a CPU thread: the loop waited 81 % of 2 s (3.11.7,
 * 1631 ms), no iteration over 10 ms: flagged as the loop's, naming the
 * holder and its user frame rather than the standard library's. */
Test(gil, loop_beside_cpu_thread)
{
	struct sw_gil_thread_rec t[2] = {
	    th(20733, "python3", false, 0, 1928, 0, "spin (/tmp/g3.py:14)"),
	    th(20679, "python3", true, 1631, 59, 319, "EpollSelector.select (/usr/lib/python3.11/selectors.py:468)"),
	};
	struct sw_gil_rec g = rec(t, 2, 2000, 200, 198);

	sw_gil_judge(&g);
	cr_assert(g.flagged);
	cr_assert_str_eq(g.verdict.pattern, SW_GIL_PATTERN_LOOP);
	cr_assert_eq(g.loop_tid, 20679);
	cr_assert_float_eq(g.loop_wait_share, 1631.0 / 2000, 1e-6);
	cr_assert(strstr(g.verdict.summary, "tid 20733"), "%s", g.verdict.summary);
	cr_assert(strstr(g.verdict.summary, "spin (/tmp/g3.py:14)"), "%s", g.verdict.summary);
}

/* A loop that waits a little (an I/O service with a thread pool): not
 * flagged as the loop's. */
Test(gil, loop_short_waits_not_flagged)
{
	struct sw_gil_thread_rec t[2] = {
	    th(2, "pool-0", false, 5, 300, 0, NULL),
	    th(1, "python3", true, 150, 600, 3, NULL),
	};
	struct sw_gil_rec g = rec(t, 2, 2000, 200, 90);

	sw_gil_judge(&g);
	cr_assert_not(g.flagged);
	cr_assert_float_eq(g.loop_wait_share, 0.075, 1e-9);
}

/* Not measured: the note stands, nothing is judged. */
Test(gil, note_is_not_judged)
{
	struct sw_gil_thread_rec t[1] = {th(1, "python3", true, 900, 0, 0, NULL)};
	struct sw_gil_rec g = rec(t, 1, 1000, 0, 0);

	g.note = "free-threaded build";
	sw_gil_judge(&g);
	cr_assert_not(g.flagged);
}

Test(gil, user_frame_skips_the_standard_library)
{
	const char f[3][SW_GIL_FRAME_LEN] = {
	    "iterencode (/usr/lib/python3.11/json/encoder.py:258)",
	    "dumps (/root/.pyenv/versions/3.12.1/lib/python3.12/json/__init__.py:231)",
	    "hold_gil (/srv/app.py:31)",
	};

	cr_assert_str_eq(sw_gil_user_frame(f, 3), "hold_gil (/srv/app.py:31)");
	cr_assert_str_eq(sw_gil_user_frame(f, 2), f[0]);
	cr_assert_null(sw_gil_user_frame(f, 0));
}

/* A 428 ms stall of an asyncio loop, 427 ms of it in GIL waits
 * (3.11.7, json.dumps in another thread). */
Test(gil, incident_rule_names_the_holder)
{
	struct sw_incident_facts f = {
	    .runtime = "python",
	    .duration_ns = 428 * MS,
	    .offcpu_ns = 372 * MS,
	    .runq_ns = 46 * MS,
	    .oncpu_ns = 10 * MS,
	    .threshold_ns = 50 * MS,
	    .top_syscall = "futex",
	    .top_syscall_ns = 372 * MS,
	    .gil_wait_ns = 427 * MS,
	    .gil_holder = "worker",
	    .gil_holder_tid = 15476,
	    .gil_holder_frame = "holder (/tmp/g3.py:7)",
	};
	struct sw_verdict v;

	sw_rules_classify(&f, &v);
	cr_assert_str_eq(v.pattern, "python.loop_starved_by_gil");
	cr_assert(strstr(v.summary, "427 of 428 ms"), "%s", v.summary);
	cr_assert(strstr(v.summary, "worker (tid 15476)"), "%s", v.summary);
	cr_assert(strstr(v.summary, "holder (/tmp/g3.py:7)"), "%s", v.summary);
	cr_assert(strstr(v.advice, "process"), "%s", v.advice);
}

/* Some GIL wait in a block that was mostly the loop's own CPU work: the
 * code is the finding. */
Test(gil, incident_rule_needs_half_the_block)
{
	struct sw_incident_facts f = {
	    .runtime = "python",
	    .duration_ns = 200 * MS,
	    .oncpu_ns = 150 * MS,
	    .offcpu_ns = 50 * MS,
	    .threshold_ns = 50 * MS,
	    .gil_wait_ns = 50 * MS,
	};
	struct sw_verdict v;

	sw_rules_classify(&f, &v);
	cr_assert_str_neq(v.pattern, "python.loop_starved_by_gil");
}

/* The pattern is declared, so the collector pre-declares its series. */
Test(gil, pattern_is_declared)
{
	bool found = false;

	for (const char *const *p = sw_rule_patterns; *p; p++)
		found |= !strcmp(*p, "python.loop_starved_by_gil");
	cr_assert(found);
}

/* Which futex: the layout of struct _gil_runtime_state (3.9-3.13). */
Test(gil, futex_classification)
{
	struct sw_gil_proc p = {.gil = 0x7000, .last_holder = 8, .locked = 16, .switch_number = 24,
				.cond = 32, .mutex = 80, .switch_cond = 120, .switch_mutex = 168,
				.size = 208};

	cr_assert_eq(sw_gil_classify(&p, 0x7000 + 32 + 40), SW_GILF_COND); /* __g_signals[0] */
	cr_assert_eq(sw_gil_classify(&p, 0x7000 + 32 + 44), SW_GILF_COND);
	cr_assert_eq(sw_gil_classify(&p, 0x7000 + 80), SW_GILF_MUTEX);
	cr_assert_eq(sw_gil_classify(&p, 0x7000 + 120 + 40), SW_GILF_SWITCH_COND);
	cr_assert_eq(sw_gil_classify(&p, 0x7000 + 168), SW_GILF_SWITCH_MUTEX);
	cr_assert_eq(sw_gil_classify(&p, 0x7000 + 16), SW_GILF_NONE);
	cr_assert_eq(sw_gil_classify(&p, 0x7000 + 208), SW_GILF_NONE);
	cr_assert_eq(sw_gil_classify(&p, 0x6ff8), SW_GILF_NONE);
	/* FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, what glibc's condvar uses */
	cr_assert(sw_gil_futex_is_wait(9 | 128));
	cr_assert(sw_gil_futex_is_wait(0 | 128 | 256));
	cr_assert_not(sw_gil_futex_is_wait(1 | 128)); /* FUTEX_WAKE */
}
