// SPDX-License-Identifier: Apache-2.0
/*
 * GIL contention from the agent's record to the collector's text: the
 * protobuf sink encodes struct sw_gil_rec and an incident's GIL blame, the
 * collector's decoder checks the batch, the store folds it (re-judged by
 * common/gil.c) and the exporter prints it. The expected numbers are the
 * record's, worked out by hand below.
 */
#define _GNU_SOURCE
#include "decoder.h"
#include "export.h"
#include "frame.h"
#include "sink.h"
#include "store.h"
#include "test_collector_helpers.h"
#include "test_exposition.h"
#include "utf8.h"
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>

#define NOW (1000ull * 1000000000ull)
#define AGENT "py-1:9"

static void teardown(void);
TestSuite(gil_wire, .fini = teardown);

struct capture {
	uint8_t *frames[4];
	size_t lens[4];
	int n;
};

static void cap_queue(void *ctx, uint8_t *frame, size_t len)
{
	struct capture *c = ctx;

	cr_assert_lt(c->n, 4);
	c->frames[c->n] = frame;
	c->lens[c->n++] = len;
}

static void cap_hello(void *ctx, uint8_t *frame, size_t len)
{
	(void)ctx;
	(void)len;
	free(frame);
}

static const struct sw_proc_info proc = {
    .pid = 500,
    .runtime = SW_RT_PYTHON,
    .version = "3.11.2",
    .exe = "/usr/bin/python3.11",
    .comm = "python3",
};

/* The loop (tid 500) waited 300 ms of 1 s for the GIL, held by "worker"
 * (tid 501) 600 ms in spin(); a third thread slept. */
static struct sw_gil_thread_rec threads[3];

static struct sw_gil_rec gil_rec(void)
{
	struct sw_gil_rec g = {
	    .pid = 500,
	    .comm = "python3",
	    .version = "3.11.2",
	    .ts_ns = 9 * 1000000000ull,
	    .interval_ns = 1000 * MS,
	    .switch_interval_us = 5000,
	    .samples = 100,
	    .held_samples = 80,
	    .switches = 120,
	    .n_threads = 3,
	    .threads = threads,
	    .threads_omitted = 2,
	};

	memset(threads, 0, sizeof(threads));
	threads[0] = (struct sw_gil_thread_rec){.tid = 500,
						.thread = "python3",
						.loop = true,
						.wait_ns = 300 * MS,
						.hold_ns = 100 * MS,
						.hold_samples = 10,
						.acquisitions = 5};
	threads[1] = (struct sw_gil_thread_rec){.tid = 501,
						.thread = "worker",
						.wait_ns = 50 * MS,
						.hold_ns = 600 * MS,
						.hold_samples = 60,
						.acquisitions = 40,
						.drop_requests = 45,
						.forced_switches = 35,
						.switch_wait_ns = 2 * MS,
						.caused_wait_ns = 290 * MS,
						.n_frames = 2};
	snprintf(threads[1].frames[0], SW_GIL_FRAME_LEN, "spin (w.py:12)");
	snprintf(threads[1].frames[1], SW_GIL_FRAME_LEN, "run (threading.py:975)");
	threads[2] = (struct sw_gil_thread_rec){.tid = 502, .thread = ""};
	sw_gil_judge(&g);
	return g;
}

static struct sw_gil_blame blame = {
    .wait_ns = 250 * MS,
    .drop_requests = 12,
    .holder_tid = 501,
    .holder = "worker",
    .n_frames = 2,
    .frames = {"spin (w.py:12)", "run (threading.py:975)"},
};

static struct sw_incident_rec incident(uint64_t start_ns, const struct sw_gil_blame *gb)
{
	struct sw_incident_rec inc = {
	    .pid = 500,
	    .tid = 500,
	    .thread = "python3",
	    .role = "asyncio",
	    .runtime = "python",
	    .start_ns = start_ns,
	    .dur_ns = 300 * MS,
	    .diag = true,
	    .oncpu_ns = 20 * MS,
	    .offcpu_ns = 280 * MS,
	    .top_syscall = "futex",
	    .top_syscall_ns = 250 * MS,
	    .gil = gb,
	    .verdict = {"blocked", "x", "y"},
	};
	return inc;
}

static Stallwatch__V1__Batch *unpack(const uint8_t *frame, size_t len)
{
	struct sw_frame_hdr h;
	const uint8_t *msg;
	size_t msg_len;
	bool owned;
	Stallwatch__V1__Batch *b;

	cr_assert_eq(sw_frame_parse_hdr(frame, &h), 0);
	cr_assert_eq(h.len, len - SW_FRAME_HDR_LEN);
	cr_assert_eq(sw_frame_payload(&h, frame + SW_FRAME_HDR_LEN, &msg, &msg_len, &owned), 0);
	b = stallwatch__v1__batch__unpack(NULL, msg_len, msg);
	if (owned)
		free((void *)msg);
	cr_assert_not_null(b);
	return b;
}

/* One batch through the sink: the process, one GIL interval, an incident
 * blamed on the GIL and one without GIL data. */
static Stallwatch__V1__Batch *encode(void)
{
	struct capture cap = {0};
	const struct sw_sink_frames fo = {cap_queue, cap_hello, &cap};
	struct sw_sink *s = sw_sink_proto__new(&fo, 50 * MS, 0);
	struct sw_gil_rec g = gil_rec();
	struct sw_incident_rec with = incident(5000 * MS, &blame);
	struct sw_incident_rec without = incident(7000 * MS, NULL);
	Stallwatch__V1__Batch *b;

	cr_assert_not_null(s);
	s->ops->process(s, &proc);
	s->ops->gil(s, &g);
	s->ops->incident(s, &with);
	s->ops->incident(s, &without);
	s->ops->flush(s);
	cr_assert_eq(cap.n, 1);
	cr_assert_eq(s->ops->lost(s), 0);
	b = unpack(cap.frames[0], cap.lens[0]);
	free(cap.frames[0]);
	sw_sink__free(s);
	return b;
}

Test(gil_wire, sink_encodes_every_field)
{
	Stallwatch__V1__Batch *b = encode();
	const Stallwatch__V1__GilSummary *g;
	const Stallwatch__V1__GilThread *w;
	const Stallwatch__V1__Incident *in;

	cr_assert_eq(b->n_gil, 1);
	g = b->gil[0];
	cr_assert_eq(g->pid, 500);
	cr_assert_eq(g->ts_ns, 9 * 1000000000ull);
	cr_assert_eq(g->interval_ns, 1000 * MS);
	cr_assert_eq(g->switch_interval_us, 5000);
	cr_assert_eq(g->samples, 100);
	cr_assert_eq(g->held_samples, 80);
	cr_assert_eq(g->switches, 120);
	cr_assert_eq(g->threads_omitted, 2);
	cr_assert_str_eq(g->note, "");
	cr_assert_str_eq(g->comm, "python3");
	cr_assert_str_eq(g->version, "3.11.2");
	/* the agent's verdict goes along, though the collector judges again */
	cr_assert_str_eq(g->pattern, SW_GIL_PATTERN_LOOP);
	cr_assert(strstr(g->summary, "held most by thread worker (tid 501) in spin (w.py:12)"),
		  "%s", g->summary);
	cr_assert(strstr(g->advice, "ProcessPoolExecutor"));
	cr_assert_eq(g->n_threads, 3);
	cr_assert(g->threads[0]->loop);
	cr_assert_str_eq(g->threads[0]->name, "python3");
	cr_assert_eq(g->threads[0]->n_stack, 0);
	w = g->threads[1];
	cr_assert_eq(w->tid, 501);
	cr_assert_str_eq(w->name, "worker");
	cr_assert_not(w->loop);
	cr_assert_eq(w->wait_ns, 50 * MS);
	cr_assert_eq(w->hold_ns, 600 * MS);
	cr_assert_eq(w->hold_samples, 60);
	cr_assert_eq(w->acquisitions, 40);
	cr_assert_eq(w->drop_requests, 45);
	cr_assert_eq(w->forced_switches, 35);
	cr_assert_eq(w->switch_wait_ns, 2 * MS);
	cr_assert_eq(w->caused_wait_ns, 290 * MS);
	cr_assert_eq(w->n_stack, 2);
	cr_assert_str_eq(w->stack[0], "spin (w.py:12)");
	cr_assert_str_eq(w->stack[1], "run (threading.py:975)");
	cr_assert_str_eq(g->threads[2]->name, "");

	cr_assert_eq(b->n_incidents, 2);
	in = b->incidents[0];
	cr_assert_eq(in->gil_wait_ns, 250 * MS);
	cr_assert_eq(in->gil_drop_requests, 12);
	cr_assert_eq(in->gil_holder_tid, 501);
	cr_assert_str_eq(in->gil_holder, "worker");
	cr_assert_eq(in->n_gil_holder_stack, 2);
	cr_assert_str_eq(in->gil_holder_stack[0], "spin (w.py:12)");
	in = b->incidents[1];
	cr_assert_eq(in->gil_wait_ns, 0);
	cr_assert_eq(in->gil_holder_tid, 0);
	cr_assert_str_eq(in->gil_holder, "");
	cr_assert_eq(in->n_gil_holder_stack, 0);
	cr_assert_eq(sw_batch__validate(b), SW_BAD_NONE);
	stallwatch__v1__batch__free_unpacked(b, NULL);
}

Test(gil_wire, a_process_not_measured_says_why_and_nothing_else)
{
	struct capture cap = {0};
	const struct sw_sink_frames fo = {cap_queue, cap_hello, &cap};
	struct sw_sink *s = sw_sink_proto__new(&fo, 50 * MS, 0);
	struct sw_gil_rec g = {.pid = 77, .comm = "python3.13t", .note = "free-threaded build"};
	Stallwatch__V1__Batch *b;

	sw_gil_judge(&g);
	s->ops->gil(s, &g);
	s->ops->flush(s);
	b = unpack(cap.frames[0], cap.lens[0]);
	cr_assert_eq(b->n_gil, 1);
	cr_assert_str_eq(b->gil[0]->note, "free-threaded build");
	cr_assert_str_eq(b->gil[0]->pattern, "");
	cr_assert_eq(b->gil[0]->n_threads, 0);
	stallwatch__v1__batch__free_unpacked(b, NULL);
	free(cap.frames[0]);
	sw_sink__free(s);
}

Test(gil_wire, pending_summaries_are_bounded_and_counted)
{
	struct capture cap = {0};
	const struct sw_sink_frames fo = {cap_queue, cap_hello, &cap};
	struct sw_sink *s = sw_sink_proto__new(&fo, 50 * MS, 0);
	struct sw_gil_rec g = gil_rec();
	Stallwatch__V1__Batch *b;

	for (int i = 0; i < SW_BATCH_MAX_ITEMS + 3; i++)
		s->ops->gil(s, &g);
	cr_assert_eq(s->ops->lost(s), 3);
	s->ops->flush(s);
	b = unpack(cap.frames[0], cap.lens[0]);
	cr_assert_eq(b->n_gil, SW_BATCH_MAX_ITEMS);
	stallwatch__v1__batch__free_unpacked(b, NULL);
	free(cap.frames[0]);
	sw_sink__free(s);
}

/* ---- through the collector ---- */

static struct sw_store *st;
static struct sw_buf text;

static void teardown(void)
{
	sw_buf__free(&text);
	sw_store__free(st);
	st = NULL;
}

static double value_of(const char *name, const char *needle)
{
	return t_value_of(text.p, name, needle);
}

static bool has_line(const char *name, const char *needle)
{
	return t_count_lines(text.p, name, needle) > 0;
}

static void apply(const Stallwatch__V1__Batch *b)
{
	cr_assert_eq(sw_batch__validate(b), SW_BAD_NONE);
	cr_assert_eq(sw_store__apply(st, AGENT, b, NOW), 0);
}

static void new_store(void)
{
	struct sw_store_opts o = {.max_loops = 16, .max_incidents = 16};

	st = sw_store__new(&o);
	cr_assert_not_null(st);
	cr_assert_eq(sw_store__agent_up(st, AGENT, NULL, NOW), 0);
}

static void export(void)
{
	sw_buf__free(&text);
	cr_assert_eq(sw_export__metrics(st, NULL, &text), 0);
}

#define P500 "{host=\"" AGENT "\",service=\"python3\",runtime=\"python\",runtime_version=\"3.11.2\",pid=\"500\""

Test(gil_wire, two_intervals_summed_and_the_last_one_judged_again)
{
	Stallwatch__V1__Batch *b = encode();
	Stallwatch__V1__ProcessInfo **procs = b->processes;
	size_t n_procs = b->n_processes;

	new_store();
	/* the agent's verdict is not what the collector exports: make it lie */
	free(b->gil[0]->pattern);
	b->gil[0]->pattern = strdup(SW_GIL_PATTERN_CONTENTION);
	apply(b);
	b->processes = NULL; /* the second interval, alone */
	b->n_processes = 0;
	apply(b);
	export();
	/* 300 + 50 ms of wait, 100 + 600 of hold per interval, two intervals */
	cr_assert_float_eq(value_of("stallwatch_python_gil_wait_seconds_total", P500), 0.7, 1e-9);
	cr_assert_float_eq(value_of("stallwatch_python_gil_hold_seconds_total", P500), 1.4, 1e-9);
	cr_assert_eq(value_of("stallwatch_python_gil_acquisitions_total", P500), 90);
	cr_assert_eq(value_of("stallwatch_python_gil_drop_requests_total", P500), 90);
	cr_assert_eq(value_of("stallwatch_python_gil_forced_switches_total", P500), 70);
	cr_assert_eq(value_of("stallwatch_python_gil_switches_total", P500), 240);
	cr_assert_eq(value_of("stallwatch_python_gil_intervals_total", P500), 2);
	cr_assert_eq(value_of("stallwatch_python_gil_flagged_intervals_total",
			      "pattern=\"python.loop_starved_by_gil\""),
		     2);
	cr_assert_eq(value_of("stallwatch_python_gil_flagged_intervals_total",
			      "pattern=\"python.gil_contention\""),
		     0);
	cr_assert_eq(value_of("stallwatch_python_gil_measured", P500), 1);
	cr_assert_float_eq(value_of("stallwatch_python_gil_utilization_ratio", P500), 0.8, 1e-9);
	/* 350 ms of wait over 2 threads that took part x 1 s */
	cr_assert_float_eq(value_of("stallwatch_python_gil_contention_ratio", P500), 0.175, 1e-9);
	/* 300 and 50 ms of 1 s are at least 5 %; 0 is not */
	cr_assert_eq(value_of("stallwatch_python_gil_waiting_threads", P500), 2);
	cr_assert_float_eq(value_of("stallwatch_python_gil_switch_interval_seconds", P500), 0.005,
			   1e-12);
	cr_assert_float_eq(value_of("stallwatch_python_gil_loop_wait_share_ratio", P500), 0.3, 1e-9);
	cr_assert_float_eq(
	    value_of("stallwatch_python_gil_thread_wait_seconds_total", P500 ",thread=\"worker\"}"),
	    0.1, 1e-9);
	cr_assert_float_eq(
	    value_of("stallwatch_python_gil_thread_hold_seconds_total", P500 ",thread=\"worker\"}"),
	    1.2, 1e-9);
	cr_assert_float_eq(value_of("stallwatch_python_gil_thread_wait_seconds_total",
				    P500 ",thread=\"python3\"}"),
			   0.6, 1e-9);
	/* a thread without a name still gets a label value */
	cr_assert_eq(value_of("stallwatch_python_gil_thread_hold_seconds_total",
			      P500 ",thread=\"unnamed\"}"),
		     0);
	cr_assert_not(
	    has_line("stallwatch_python_gil_thread_wait_seconds_total", "thread=\"other\""));
	/* an interval the loop did not wait: its share is 0, not a gap */
	for (size_t i = 0; i < b->gil[0]->n_threads; i++)
		if (b->gil[0]->threads[i]->loop)
			b->gil[0]->threads[i]->wait_ns = 0;
	apply(b);
	export();
	cr_assert_float_eq(value_of("stallwatch_python_gil_loop_wait_share_ratio", P500), 0, 1e-12);
	b->processes = procs; /* the unpacker's, freed with the batch */
	b->n_processes = n_procs;
	stallwatch__v1__batch__free_unpacked(b, NULL);
}

Test(gil_wire, incidents_carry_the_holder)
{
	Stallwatch__V1__Batch *b = encode();
	json_object *root, *arr, *o, *g, *v;
	char *json = NULL;
	size_t len;

	new_store();
	apply(b);
	cr_assert_eq(sw_export__incidents(st, NULL, &json, &len), 0);
	root = json_tokener_parse(json);
	cr_assert_not_null(root, "%s", json);
	cr_assert(json_object_object_get_ex(root, "incidents", &arr));
	cr_assert_eq(json_object_array_length(arr), 2);
	/* newest first: the one without GIL data */
	o = json_object_array_get_idx(arr, 0);
	cr_assert_not(json_object_object_get_ex(o, "gil", &g), "%s", json);
	o = json_object_array_get_idx(arr, 1);
	cr_assert(json_object_object_get_ex(o, "gil", &g), "%s", json);
	cr_assert(json_object_object_get_ex(g, "wait_ms", &v));
	cr_assert_float_eq(json_object_get_double(v), 250, 1e-9);
	cr_assert(json_object_object_get_ex(g, "drop_requests", &v));
	cr_assert_eq(json_object_get_int(v), 12);
	cr_assert(json_object_object_get_ex(g, "holder_tid", &v));
	cr_assert_eq(json_object_get_int(v), 501);
	cr_assert(json_object_object_get_ex(g, "holder", &v));
	cr_assert_str_eq(json_object_get_string(v), "worker");
	cr_assert(json_object_object_get_ex(g, "holder_stack", &v));
	cr_assert_eq(json_object_array_length(v), 2);
	cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(v, 0)), "spin (w.py:12)");
	cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(v, 1)),
			 "run (threading.py:975)");
	json_object_put(root);
	free(json);
	stallwatch__v1__batch__free_unpacked(b, NULL);
}

Test(gil_wire, thread_names_are_capped_per_process)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};
	Stallwatch__V1__GilSummary gs = STALLWATCH__V1__GIL_SUMMARY__INIT, *gp[1] = {&gs};
	Stallwatch__V1__GilThread t[SW_GIL_MAX_THREADS], *tp[SW_GIL_MAX_THREADS];
	char names[SW_GIL_MAX_THREADS][16];
	int other = 0, named = 0;

	new_store();
	pi.pid = 600;
	pi.runtime = "python";
	pi.comm = "pool";
	/* 40 names, each waiting 1 ms more than the last, plus one called
	 * "other": 16 keep their own series, the rest are summed in "other" */
	for (int i = 0; i < 41; i++) {
		stallwatch__v1__gil_thread__init(&t[i]);
		snprintf(names[i], sizeof(names[i]), i == 40 ? "other" : "w-%d", i);
		t[i].tid = 600 + i;
		t[i].name = names[i];
		t[i].wait_ns = (uint64_t)(i + 1) * MS;
		tp[i] = &t[i];
	}
	gs.pid = 600;
	gs.interval_ns = 1000 * MS;
	gs.threads = tp;
	gs.n_threads = 41;
	b.processes = pp;
	b.n_processes = 1;
	b.gil = gp;
	b.n_gil = 1;
	apply(&b);
	export();
	for (char *p = text.p; (p = strstr(p, "stallwatch_python_gil_thread_wait_seconds_total{"));
	     p++) {
		if (strstr(p, "thread=\"other\"") < strchr(p, '\n'))
			other++;
		else
			named++;
	}
	cr_assert_eq(named, SW_GIL_THREAD_NAMES);
	cr_assert_eq(other, 1, "one series for every name past the cap");
	/* w-16 .. w-39 (17 .. 40 ms) and "other" (41 ms) */
	cr_assert_float_eq(
	    value_of("stallwatch_python_gil_thread_wait_seconds_total", "thread=\"other\""),
	    (24 * (17 + 40) / 2 + 41) / 1000.0, 1e-9);
	cr_assert_float_eq(
	    value_of("stallwatch_python_gil_thread_wait_seconds_total", "thread=\"w-15\""), 0.016,
	    1e-9);
	/* no holder samples and no loop: the gauges say so, not a guess */
	cr_assert_eq(value_of("stallwatch_python_gil_utilization_ratio", "pid=\"600\""), 0);
	cr_assert_not(has_line("stallwatch_python_gil_loop_wait_share_ratio", "pid=\"600\""));
	cr_assert_not(has_line("stallwatch_python_gil_switch_interval_seconds", "pid=\"600\""));
}

/* A Python process (py313t) whose GIL the agent cannot measure, and why. */
static void apply_unmeasured(uint32_t pid, const char *note)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};
	Stallwatch__V1__GilSummary gs = STALLWATCH__V1__GIL_SUMMARY__INIT, *gp[1] = {&gs};

	pi.pid = pid;
	pi.runtime = "python";
	pi.comm = "py313t";
	gs.pid = pid;
	gs.note = (char *)note;
	b.processes = pp;
	b.n_processes = 1;
	b.gil = gp;
	b.n_gil = 1;
	apply(&b);
}

Test(gil_wire, exit_and_not_measured)
{
	Stallwatch__V1__Batch *b = encode();

	new_store();
	apply(b);
	/* pid 700 cannot be measured; pid 500 exits */
	apply_unmeasured(700, "free-threaded build: no GIL to measure");
	export();
	cr_assert_eq(value_of("stallwatch_python_gil_measured", "pid=\"700\""), 0);
	cr_assert_not(has_line("stallwatch_python_gil_wait_seconds_total", "pid=\"700\""));
	cr_assert_not(has_line("stallwatch_python_gil_utilization_ratio", "pid=\"700\""));

	{
		Stallwatch__V1__Batch b2 = STALLWATCH__V1__BATCH__INIT;
		Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT,
					    *pp[1] = {&pi};

		pi.pid = 500;
		pi.runtime = "python";
		pi.comm = "py313t";
		pi.exited = true;
		pi.exit_known = true;
		b2.processes = pp;
		b2.n_processes = 1;
		apply(&b2);
	}
	export();
	/* the gauges go with the process, the counters stay until it expires */
	cr_assert_not(has_line("stallwatch_python_gil_utilization_ratio", "pid=\"500\""));
	cr_assert_not(has_line("stallwatch_python_gil_measured", "pid=\"500\""));
	cr_assert_float_eq(value_of("stallwatch_python_gil_wait_seconds_total", "pid=\"500\""),
			   0.35, 1e-9);
	sw_store__tick(st, NOW + SW_STORE_EXPIRE_NS);
	export();
	cr_assert_not(has_line("stallwatch_python_gil_wait_seconds_total", "pid=\"500\""));
	cr_assert_not(has_line("stallwatch_python_gil_thread_wait_seconds_total", "pid=\"500\""));
	stallwatch__v1__batch__free_unpacked(b, NULL);
}

/* ---- what the decoder refuses, what the store cleans ---- */

static int decoded;

static void count(void *ctx, const Stallwatch__V1__Batch *b)
{
	(void)ctx;
	(void)b;
	decoded++;
}

/* A GilSummary of nt threads, the first with nf frames, through a decoder. */
static enum sw_bad_reason feed_gil(size_t nt, size_t nf, uint64_t samples, uint64_t held)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__GilSummary gs = STALLWATCH__V1__GIL_SUMMARY__INIT, *gp[1] = {&gs};
	Stallwatch__V1__GilThread t[SW_GIL_MAX_THREADS + 1], *tp[SW_GIL_MAX_THREADS + 1];
	char *frames[SW_GIL_STACK_FRAMES + 1];
	struct sw_decoder *d = sw_decoder__new();
	enum sw_bad_reason r;
	uint8_t *f;
	size_t len;

	for (size_t i = 0; i < nf; i++)
		frames[i] = (char *)"f (x.py:1)";
	for (size_t i = 0; i < nt; i++) {
		stallwatch__v1__gil_thread__init(&t[i]);
		t[i].tid = (uint32_t)i + 1;
		tp[i] = &t[i];
	}
	t[0].stack = frames;
	t[0].n_stack = nf;
	gs.pid = 1;
	gs.samples = samples;
	gs.held_samples = held;
	gs.threads = tp;
	gs.n_threads = nt;
	b.gil = gp;
	b.n_gil = 1;
	f = t_frame(&b, 1, &len);
	cr_assert_not_null(f);
	cr_assert_not_null(d);
	r = sw_decoder__feed(d, f, len, count, NULL, NULL);
	sw_decoder__free(d);
	free(f);
	return r;
}

Test(gil_wire, decoder_keeps_the_bounds_of_gil_h)
{
	decoded = 0;
	cr_assert_eq(feed_gil(SW_GIL_MAX_THREADS, SW_GIL_STACK_FRAMES, 100, 100), SW_BAD_NONE);
	cr_assert_eq(decoded, 1);
	/* over the counts: the decode budget refuses them before unpacking
	 * (collector/budget.c keeps gil.h's bounds) */
	cr_assert_eq(feed_gil(SW_GIL_MAX_THREADS + 1, 1, 100, 50), SW_BAD_TOO_MANY);
	cr_assert_eq(feed_gil(2, SW_GIL_STACK_FRAMES + 1, 100, 50), SW_BAD_TOO_MANY);
	cr_assert_eq(feed_gil(2, 1, 100, 101), SW_BAD_GIL, "more held samples than samples");
	cr_assert_eq(decoded, 1, "a refused batch reaches no store");
	cr_assert_str_eq(sw_bad_reason__name(SW_BAD_GIL), "bad_gil");
}

Test(gil_wire, agent_strings_become_valid_utf8)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};
	Stallwatch__V1__GilSummary gs = STALLWATCH__V1__GIL_SUMMARY__INIT, *gp[1] = {&gs};
	Stallwatch__V1__GilThread t, *tp[1] = {&t};
	Stallwatch__V1__Incident in, *ip[1] = {&in};
	char *stack[1] = {(char *)"spin\xff (w.py:1)"};
	json_object *root;
	char *json = NULL;
	size_t len;

	new_store();
	pi.pid = 800;
	pi.runtime = "python";
	pi.comm = "py";
	stallwatch__v1__gil_thread__init(&t);
	t.tid = 801;
	t.name = (char *)"w\xc3\x28\"x\"\n";
	t.wait_ns = MS;
	gs.pid = 800;
	gs.interval_ns = 1000 * MS;
	gs.threads = tp;
	gs.n_threads = 1;
	t_incident(&in, 800, 800, 100 * MS, 200 * MS, 0);
	in.runtime = (char *)"python";
	in.gil_wait_ns = 150 * MS;
	in.gil_holder_tid = 801;
	in.gil_holder = (char *)"w\xc3\x28";
	in.gil_holder_stack = stack;
	in.n_gil_holder_stack = 1;
	b.processes = pp;
	b.n_processes = 1;
	b.gil = gp;
	b.n_gil = 1;
	b.incidents = ip;
	b.n_incidents = 1;
	apply(&b);
	export();
	/* U+FFFD for the bad byte, the quote and line feed escaped */
	cr_assert_float_eq(value_of("stallwatch_python_gil_thread_wait_seconds_total",
				    "thread=\"w\xef\xbf\xbd(\\\"x\\\"\\n\"}"),
			   0.001, 1e-12, "%s", text.p);
	cr_assert(sw_utf8_valid(text.p, text.len));
	cr_assert_eq(sw_export__incidents(st, NULL, &json, &len), 0);
	root = json_tokener_parse(json);
	cr_assert_not_null(root, "%s", json);
	cr_assert(strstr(json, "\"holder\":\"w\xef\xbf\xbd(\""), "%s", json);
	cr_assert(strstr(json, "\"holder_stack\":[\"spin\xef\xbf\xbd (w.py:1)\"]"), "%s", json);
	json_object_put(root);
	free(json);
}

/* ---- GET /api/gil ---- */

static json_object *gil_api(bool have_pid, uint32_t pid)
{
	json_object *root, *arr;
	char *json = NULL;
	size_t len;

	cr_assert_eq(sw_export__gil(st, have_pid, pid, &json, &len), 0);
	cr_assert_eq(len, strlen(json));
	root = json_tokener_parse(json);
	cr_assert_not_null(root, "%s", json);
	free(json);
	cr_assert(json_object_object_get_ex(root, "processes", &arr));
	json_object_get(arr);
	json_object_put(root);
	return arr;
}

static json_object *field(json_object *o, const char *k)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s in %s", k,
		  json_object_to_json_string(o));
	return v;
}

Test(gil_wire, api_gil_gives_the_verdict_and_the_threads)
{
	Stallwatch__V1__Batch *b = encode();
	json_object *arr, *p, *t, *v;

	new_store();
	apply(b);
	apply_unmeasured(700, "free-threaded build");

	arr = gil_api(false, 0);
	cr_assert_eq(json_object_array_length(arr), 2);
	json_object_put(arr);
	arr = gil_api(true, 700);
	cr_assert_eq(json_object_array_length(arr), 1);
	p = json_object_array_get_idx(arr, 0);
	cr_assert_not(json_object_get_boolean(field(p, "measured")));
	cr_assert_str_eq(json_object_get_string(field(p, "note")), "free-threaded build");
	cr_assert_not(json_object_object_get_ex(p, "threads", &v));
	json_object_put(arr);

	arr = gil_api(true, 500);
	cr_assert_eq(json_object_array_length(arr), 1);
	p = json_object_array_get_idx(arr, 0);
	cr_assert(json_object_get_boolean(field(p, "measured")));
	cr_assert_str_eq(json_object_get_string(field(p, "version")), "3.11.2");
	cr_assert_float_eq(json_object_get_double(field(p, "utilization")), 0.8, 1e-9);
	cr_assert_float_eq(json_object_get_double(field(p, "switch_interval_ms")), 5, 1e-9);
	cr_assert_eq(json_object_get_int(field(p, "loop_tid")), 500);
	cr_assert_float_eq(json_object_get_double(field(p, "loop_wait_share")), 0.3, 1e-9);
	cr_assert_eq(json_object_get_int(field(p, "threads_omitted")), 2);
	cr_assert_str_eq(json_object_get_string(field(p, "pattern")), SW_GIL_PATTERN_LOOP);
	cr_assert(strstr(json_object_get_string(field(p, "summary")),
			 "held most by thread worker (tid 501) in spin (w.py:12)"));
	cr_assert(strstr(json_object_get_string(field(p, "advice")), "ProcessPoolExecutor"));
	v = field(p, "threads");
	cr_assert_eq(json_object_array_length(v), 3);
	t = json_object_array_get_idx(v, 1);
	cr_assert_eq(json_object_get_int(field(t, "tid")), 501);
	cr_assert_str_eq(json_object_get_string(field(t, "thread")), "worker");
	cr_assert_float_eq(json_object_get_double(field(t, "hold_ms")), 600, 1e-9);
	cr_assert_float_eq(json_object_get_double(field(t, "hold_share")), 0.6, 1e-9);
	cr_assert_eq(json_object_get_int(field(t, "drop_requests")), 45);
	cr_assert_eq(json_object_array_length(field(t, "stack")), 2);
	cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(field(t, "stack"), 1)),
			 "run (threading.py:975)");
	cr_assert(json_object_get_boolean(field(json_object_array_get_idx(v, 0), "loop")));
	json_object_put(arr);

	/* a quiet interval: no verdict, pattern null */
	b->gil[0]->threads[0]->wait_ns = 0;
	b->gil[0]->threads[1]->wait_ns = 0;
	apply(b);
	arr = gil_api(true, 500);
	p = json_object_array_get_idx(arr, 0);
	cr_assert(json_object_object_get_ex(p, "pattern", &v));
	cr_assert_null(v, "pattern must be null: %s", json_object_to_json_string(p));
	cr_assert_not(json_object_object_get_ex(p, "summary", &v));
	json_object_put(arr);
	stallwatch__v1__batch__free_unpacked(b, NULL);
}
