// SPDX-License-Identifier: Apache-2.0
/* Each sink on its own: JSON lines exactly, the human line shapes the root
 * tests parse, and protobuf batches round-tripped through the collector's
 * decoder (frame + stallwatch__v1__batch__unpack). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "frame.h"
#include "sink.h"
#include "stallwatch.pb-c.h"

static char *buf;
static size_t buflen;
static FILE *out;

static void open_out(void)
{
	out = open_memstream(&buf, &buflen);
	cr_assert_not_null(out);
}

static void close_out(void)
{
	if (out)
		fclose(out);
	free(buf);
	out = NULL;
	buf = NULL;
}

static const struct sw_proc_info proc = {
    .pid = 4242,
    .runtime = SW_RT_NODE,
    .version = "20.20.2",
    .exe = "/usr/bin/node",
    .comm = "node",
    .cgroup = "/system.slice/app.service",
    .service = "checkout-api",
    .container_id = "4c01db0b339c5f2b8ec3fa81e61e4c8b4b1ed1a6c7f47a1c6a66d4e4e1d2f7a9",
    .container_name = "api",
    .pod_uid = "8f1c2a4e-7d3b-4c5a-9e6f-0a1b2c3d4e5f",
    .pod_name = "checkout-7d9f-xk2p",
    .start_ticks = 987654321,
};

/* Fields 20-25 of ProcessInfo as proc has them, decoded from the wire. */
static void assert_identity(const Stallwatch__V1__ProcessInfo *m)
{
	cr_assert_str_eq(m->service, "checkout-api");
	cr_assert_str_eq(m->container_id, proc.container_id);
	cr_assert_str_eq(m->container_name, "api");
	cr_assert_str_eq(m->pod_uid, "8f1c2a4e-7d3b-4c5a-9e6f-0a1b2c3d4e5f");
	cr_assert_str_eq(m->pod_name, "checkout-7d9f-xk2p");
	cr_assert_eq(m->start_ticks, 987654321ull);
}

static struct sw_incident_rec incident(void)
{
	struct sw_incident_rec inc = {
	    .pid = 4242,
	    .tid = 4243,
	    .thread = "node",
	    .role = "main",
	    .runtime = "node",
	    .start_ns = 5000000000ull,
	    .dur_ns = 83343000ull,
	    .diag = true,
	    .oncpu_ns = 80000000ull,
	    .offcpu_ns = 3343000ull,
	    .runq_ns = 1000000ull,
	    .switches = 3,
	    .top_syscall = "read",
	    .top_syscall_ns = 3000000ull,
	    .verdict = {"node.cpu_bound_callback", "synchronous CPU work", "move it to a worker"},
	};
	return inc;
}

TestSuite(sink_json, .init = open_out, .fini = close_out);

Test(sink_json, identity_absent_when_empty)
{
	struct sw_sink *s = sw_sink_json__new(out);
	struct sw_proc_info bare = {
	    .pid = 7, .runtime = SW_RT_PYTHON, .exe = "/usr/bin/python3", .comm = "python3",
	    .service = "python3", .start_ticks = 5,
	};

	cr_assert_not_null(s);
	s->ops->process(s, &bare);
	sw_sink__free(s);
	fflush(out);
	cr_assert_str_eq(buf, "{\"kind\":\"process\",\"pid\":7,\"runtime\":\"python\",\"version\":"
			      "\"\",\"exe\":\"/usr/bin/python3\",\"comm\":\"python3\",\"container\":"
			      "\"\",\"service\":\"python3\",\"start_ticks\":5}\n");
}

Test(sink_json, lines_are_exact)
{
	struct sw_sink *s = sw_sink_json__new(out);
	struct sw_incident_rec inc = incident();
	struct sw_hist hist;
	struct sw_summary_rec sum = {
	    .pid = 4242,
	    .tid = 4243,
	    .thread = "node",
	    .role = "main",
	    .runtime = "node",
	    .start_ns = 1000000000ull,
	    .end_ns = 11000000000ull,
	    .iterations = 2,
	    .busy_ns = 2500000000ull,
	    .idle_ns = 7500000000ull,
	    .max_ns = 2000000000ull,
	    .hist = &hist,
	};

	cr_assert_not_null(s);
	sw_hist_reset(&hist);
	s->ops->process(s, &proc);
	s->ops->process_gone(s, 4242, true);
	s->ops->incident(s, &inc);
	inc.diag = false;
	inc.ongoing = true;
	inc.start_unknown = true;
	s->ops->incident(s, &inc);
	s->ops->summary(s, &sum);
	sw_sink__free(s);
	fflush(out);
	cr_assert_str_eq(
	    buf,
	    "{\"kind\":\"process\",\"pid\":4242,\"runtime\":\"node\",\"version\":\"20.20.2\","
	    "\"exe\":\"/usr/bin/node\",\"comm\":\"node\",\"container\":\"/system.slice/"
	    "app.service\",\"service\":\"checkout-api\",\"container_id\":"
	    "\"4c01db0b339c5f2b8ec3fa81e61e4c8b4b1ed1a6c7f47a1c6a66d4e4e1d2f7a9\","
	    "\"container_name\":\"api\",\"pod_uid\":\"8f1c2a4e-7d3b-4c5a-9e6f-0a1b2c3d4e5f\","
	    "\"pod\":\"checkout-7d9f-xk2p\",\"start_ticks\":987654321}\n"
	    "{\"kind\":\"process_exec\",\"pid\":4242}\n"
	    "{\"kind\":\"incident\",\"pid\":4242,\"tid\":4243,\"thread\":\"node\",\"role\":"
	    "\"main\","
	    "\"runtime\":\"node\",\"start_ns\":5000000000,\"duration_ms\":83.343,\"ongoing\":false,"
	    "\"pattern\":\"node.cpu_bound_callback\",\"summary\":\"synchronous CPU work\",\"advice\":\"move it to "
	    "a "
	    "worker\",\"oncpu_ms\":80.000,\"offcpu_ms\":3.343,\"runq_ms\":1.000,\"switches\":3,"
	    "\"top_syscall\":\"read\",\"top_syscall_ms\":3.000}\n"
	    "{\"kind\":\"incident\",\"pid\":4242,\"tid\":4243,\"thread\":\"node\",\"role\":"
	    "\"main\","
	    "\"runtime\":\"node\",\"start_ns\":5000000000,\"duration_ms\":83.343,\"ongoing\":true,"
	    "\"start_before_attach\":true,\"pattern\":\"node.cpu_bound_callback\",\"summary\":\"synchronous CPU "
	    "work\",\"advice\":\"move it to a worker\"}\n"
	    "{\"kind\":\"loop_summary\",\"pid\":4242,\"tid\":4243,\"thread\":\"node\",\"role\":"
	    "\"main\",\"runtime\":\"node\",\"start_ns\":1000000000,\"end_ns\":11000000000,"
	    "\"interval_ms\":10000.000,\"iterations\":2,\"busy_ms\":2500.000,\"idle_ms\":7500.000,"
	    "\"p50_ms\":0.000,\"p90_ms\":0.000,\"p99_ms\":0.000,\"max_ms\":2000.000,"
	    "\"utilization\":0.2500}\n",
	    "got:\n%s", buf);
}

/* The health line iterates the X-macro list: its shape is checked, not its
 * length, so a new counter does not break this test. */

Test(sink_json, health_names_every_counter)
{
	struct sw_sink *s = sw_sink_json__new(out);
	struct sw_health h = {0};
	char want[64];

	h.v[SW_HEALTH_lost_events] = 7;
	s->ops->health(s, &h);
	sw_sink__free(s);
	fflush(out);
	cr_assert(!strncmp(buf, "{\"kind\":\"health\",", 17), "%s", buf);
	for (int i = 0; i < SW_HEALTH__COUNT; i++) {
		snprintf(want, sizeof(want), "\"%s\":%d", sw_health_names[i],
			 i == SW_HEALTH_lost_events ? 7 : 0);
		cr_assert_not_null(strstr(buf, want), "%s missing in %s", want, buf);
	}
}

TestSuite(sink_human, .init = open_out, .fini = close_out);

Test(sink_human, line_formats)
{
	struct sw_incident_rec inc = incident();
	struct sw_health h = {0};
	struct sw_sink *s;
	struct sw_hist hist;
	struct sw_summary_rec sum = {
	    .pid = 4242,
	    .tid = 4243,
	    .thread = "node",
	    .role = "main",
	    .runtime = "node",
	    .start_ns = 0,
	    .end_ns = 1000000000ull,
	    .iterations = 12,
	    .busy_ns = 500000000ull,
	    .max_ns = 83343000ull,
	    .hist = &hist,
	};

	setenv("TZ", "UTC", 1);
	tzset();
	/* mono 5 s + offset = 1970-01-01 01:02:08.000 UTC */
	s = sw_sink_human__new(out, 3723000000000ll);
	cr_assert_not_null(s);
	sw_hist_reset(&hist);
	/* a tenth of the block or more: the syscall is named */
	inc.top_syscall_ns = 30000000ull;
	s->ops->process(s, &proc);
	s->ops->process_gone(s, 4242, false);
	s->ops->incident(s, &inc);
	inc.ongoing = true;
	s->ops->incident(s, &inc);
	s->ops->summary(s, &sum);
	s->ops->health(s, &h); /* no loss: nothing said */
	h.v[SW_HEALTH_reconnects] = 2;
	s->ops->health(s, &h); /* reconnects are not loss */
	h.v[SW_HEALTH_lost_events] = 7;
	s->ops->health(s, &h);
	sw_sink__free(s);
	fflush(out);
	cr_assert_str_eq(
	    buf,
	    "attached to pid 4242: node 20.20.2 (/usr/bin/node)\n"
	    "    service checkout-api, container api 4c01db0b339c, pod checkout-7d9f-xk2p\n"
	    "pid 4242 exited\n"
	    "01:02:08.000 BLOCK    node pid 4242 tid 4243 (main, node) loop blocked 83.3 ms "
	    "[on-CPU 80 ms, off-CPU 3 ms in read, run-queue 1 ms]\n"
	    "    node.cpu_bound_callback: synchronous CPU work\n"
	    "    fix: move it to a worker\n"
	    "01:02:08.000 BLOCKED  node pid 4242 tid 4243 (main, node) stuck for 83 ms so far: "
	    "synchronous CPU work\n"
	    "loop node pid 4242 tid 4243 (main): 12 iterations, delay p50 0.000 p99 0.000 max "
	    "83.3 ms, utilization 50.0%\n"
	    "agent health: lost_events 7\n",
	    "got:\n%s", buf);
}

/* ---- proto ---- */

struct capture {
	uint8_t *frames[8];
	size_t lens[8];
	int n;
	uint8_t *hello;
	size_t hello_len;
};

static void cap_queue(void *ctx, uint8_t *frame, size_t len)
{
	struct capture *c = ctx;

	cr_assert_lt(c->n, 8);
	c->frames[c->n] = frame;
	c->lens[c->n++] = len;
}

static void cap_hello(void *ctx, uint8_t *frame, size_t len)
{
	struct capture *c = ctx;

	free(c->hello);
	c->hello = frame;
	c->hello_len = len;
}

static void cap_free(struct capture *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->frames[i]);
	free(c->hello);
}

static Stallwatch__V1__Batch *unpack(const uint8_t *frame, size_t len)
{
	struct sw_frame_hdr h;
	const uint8_t *msg;
	size_t msg_len;
	bool owned;
	Stallwatch__V1__Batch *b;

	cr_assert_geq(len, SW_FRAME_HDR_LEN);
	cr_assert_eq(sw_frame_parse_hdr(frame, &h), 0);
	cr_assert_eq(h.len, len - SW_FRAME_HDR_LEN);
	cr_assert_eq(sw_frame_payload(&h, frame + SW_FRAME_HDR_LEN, &msg, &msg_len, &owned), 0);
	b = stallwatch__v1__batch__unpack(NULL, msg_len, msg);
	if (owned)
		free((void *)msg);
	cr_assert_not_null(b, "the batch does not decode");
	return b;
}

Test(sink_proto, batch_round_trip)
{
	struct capture cap = {0};
	const struct sw_sink_frames fo = {cap_queue, cap_hello, &cap};
	struct sw_sink *s = sw_sink_proto__new(&fo, 50000000ull, 12345);
	struct sw_incident_rec inc = incident();
	struct sw_health h = {0};
	struct sw_hist hist;
	struct sw_summary_rec sum = {
	    .pid = 4242,
	    .tid = 4243,
	    .thread = "node",
	    .role = "main",
	    .runtime = "node",
	    .start_ns = 1,
	    .end_ns = 2,
	    .iterations = 3,
	    .busy_ns = 4,
	    .idle_ns = 5,
	    .max_ns = 6,
	    .hist = &hist,
	};
	Stallwatch__V1__Batch *b;

	cr_assert_not_null(s);
	sw_hist_reset(&hist);
	sw_hist_record(&hist, 1000000);
	sw_hist_record(&hist, 1000000);
	sw_hist_record(&hist, 90000000);
	s->ops->process(s, &proc);
	s->ops->incident(s, &inc);
	s->ops->summary(s, &sum);
	h.v[SW_HEALTH_lost_events] = 9;
	s->ops->health(s, &h);
	cr_assert_eq(cap.n, 0, "nothing is sent before flush");
	s->ops->flush(s);
	cr_assert_eq(cap.n, 1);
	s->ops->flush(s);
	cr_assert_eq(cap.n, 1, "an empty flush sends nothing");

	b = unpack(cap.frames[0], cap.lens[0]);
	cr_assert_eq(b->seq, 1);
	cr_assert_null(b->hello, "the hello goes only first on a connection");
	cr_assert_eq(b->n_processes, 1);
	cr_assert_eq(b->processes[0]->pid, 4242);
	cr_assert_str_eq(b->processes[0]->runtime, "node");
	cr_assert_str_eq(b->processes[0]->runtime_version, "20.20.2");
	cr_assert_str_eq(b->processes[0]->container, "/system.slice/app.service");
	assert_identity(b->processes[0]);
	cr_assert_eq(b->n_incidents, 1);
	cr_assert_eq(b->incidents[0]->tid, 4243);
	cr_assert_eq(b->incidents[0]->duration_ns, 83343000ull);
	cr_assert_str_eq(b->incidents[0]->pattern, "node.cpu_bound_callback");
	cr_assert_str_eq(b->incidents[0]->top_syscall, "read");
	cr_assert_eq(b->incidents[0]->switches, 3);
	cr_assert_eq(b->n_loops, 1);
	cr_assert_eq(b->loops[0]->iterations, 3);
	cr_assert_eq(b->loops[0]->n_buckets, 2, "one bucket per non-empty histogram bucket");
	cr_assert_eq(b->loops[0]->buckets[0]->count + b->loops[0]->buckets[1]->count, 3);
	cr_assert_not_null(b->health);
	cr_assert_eq(b->health->n_counters, SW_HEALTH__COUNT);
	for (size_t i = 0; i < b->health->n_counters; i++)
		if (!strcmp(b->health->counters[i]->key, "lost_events"))
			cr_assert_eq(b->health->counters[i]->value, 9);
	stallwatch__v1__batch__free_unpacked(b, NULL);

	/* the hello carries the live processes */
	cr_assert_not_null(cap.hello);
	b = unpack(cap.hello, cap.hello_len);
	cr_assert_not_null(b->hello);
	cr_assert_eq(b->hello->threshold_ms, 50);
	cr_assert_eq(b->hello->mono_to_unix_ns, 12345);
	cr_assert_eq(b->n_processes, 1);
	assert_identity(b->processes[0]);
	stallwatch__v1__batch__free_unpacked(b, NULL);

	/* gone: an exited ProcessInfo in the next batch, none in the hello */
	s->ops->process_gone(s, 4242, false);
	s->ops->flush(s);
	cr_assert_eq(cap.n, 2);
	b = unpack(cap.frames[1], cap.lens[1]);
	cr_assert_eq(b->seq, 2);
	cr_assert_eq(b->n_processes, 1);
	cr_assert(b->processes[0]->exited);
	assert_identity(b->processes[0]); /* the collector finds its series by them */
	stallwatch__v1__batch__free_unpacked(b, NULL);
	b = unpack(cap.hello, cap.hello_len);
	cr_assert_eq(b->n_processes, 0);
	stallwatch__v1__batch__free_unpacked(b, NULL);

	sw_sink__free(s);
	cap_free(&cap);
}

Test(sink_proto, pending_items_are_bounded_and_counted)
{
	struct capture cap = {0};
	const struct sw_sink_frames fo = {cap_queue, cap_hello, &cap};
	struct sw_sink *s = sw_sink_proto__new(&fo, 50000000ull, 0);
	struct sw_incident_rec inc = incident();
	Stallwatch__V1__Batch *b;

	for (int i = 0; i < SW_BATCH_MAX_ITEMS + 5; i++)
		s->ops->incident(s, &inc);
	cr_assert_eq(s->ops->lost(s), 5);
	s->ops->flush(s);
	b = unpack(cap.frames[0], cap.lens[0]);
	cr_assert_eq(b->n_incidents, SW_BATCH_MAX_ITEMS);
	stallwatch__v1__batch__free_unpacked(b, NULL);
	sw_sink__free(s);
	cap_free(&cap);
}

/* ---- the process as a whole: exits, memory growth, the busy split ---- */

static struct sw_exit_rec exit_rec(void)
{
	struct sw_exit_rec ex = {
	    .pid = 4242,
	    .runtime = "node",
	    .comm = "node",
	    .ts_ns = 5000000000ull,
	    .known = true,
	    .status = 1,
	    .uncaught = true,
	    .from_promise = true,
	    .stderr_tail = "Error: boom\n",
	    .verdict = {.pattern = "node.unhandled_rejection", .summary = "died", .advice = "catch"},
	};
	return ex;
}

static const struct sw_memory_rec mem_rec = {
    .pid = 4242,
    .runtime = "python",
    .comm = "python3",
    .ts_ns = 7000000000ull,
    .window_s = 60,
    .rate_bps = 102400.4,
    .r2 = 0.9876,
    .rss_start = 1000000,
    .rss_end = 7144000,
    .verdict = {.pattern = "memory_growth", .summary = "grew", .advice = "tracemalloc"},
};

Test(sink_json, exit_memory_and_split_lines)
{
	struct sw_sink *s = sw_sink_json__new(out);
	struct sw_exit_rec ex = exit_rec();
	struct sw_hist hist;
	struct sw_summary_rec sum = {
	    .pid = 4242, .tid = 4242, .thread = "node", .role = "main", .runtime = "node",
	    .start_ns = 0, .end_ns = 1000000000ull, .iterations = 2, .busy_ns = 400000000ull,
	    .idle_ns = 600000000ull, .hist = &hist, .rss_bytes = 52428800, .diag = true,
	    .oncpu_ns = 40000000ull, .offcpu_ns = 350000000ull, .runq_ns = 10000000ull,
	};

	sw_hist_reset(&hist);
	s->ops->process_exit(s, &ex);
	ex.signal = 9;
	ex.status = 0;
	ex.in_incident = true;
	ex.blocked_ns = 1500000000ull;
	ex.stderr_tail = NULL;
	ex.verdict.pattern = "killed";
	s->ops->process_exit(s, &ex);
	s->ops->memory(s, &mem_rec);
	s->ops->summary(s, &sum);
	sw_sink__free(s);
	fflush(out);
	cr_assert_str_eq(
	    buf,
	    "{\"kind\":\"process_exit\",\"pid\":4242,\"runtime\":\"node\",\"comm\":\"node\","
	    "\"ts_ns\":5000000000,\"exit_known\":true,\"exit_code\":1,\"in_incident\":false,"
	    "\"pattern\":\"node.unhandled_rejection\",\"summary\":\"died\",\"advice\":\"catch\","
	    "\"stderr_tail\":\"Error: boom\\n\"}\n"
	    "{\"kind\":\"process_exit\",\"pid\":4242,\"runtime\":\"node\",\"comm\":\"node\","
	    "\"ts_ns\":5000000000,\"exit_known\":true,\"signal\":9,\"signal_name\":\"SIGKILL\","
	    "\"core_dumped\":false,\"in_incident\":true,\"blocked_ms\":1500.000,"
	    "\"pattern\":\"killed\",\"summary\":\"died\",\"advice\":\"catch\"}\n"
	    "{\"kind\":\"memory_growth\",\"pid\":4242,\"runtime\":\"python\",\"comm\":\"python3\","
	    "\"ts_ns\":7000000000,\"window_s\":60.0,\"rate_bytes_per_s\":102400,"
	    "\"rss_start\":1000000,\"rss_end\":7144000,\"r2\":0.988,\"pattern\":\"memory_growth\","
	    "\"summary\":\"grew\",\"advice\":\"tracemalloc\"}\n"
	    "{\"kind\":\"loop_summary\",\"pid\":4242,\"tid\":4242,\"thread\":\"node\",\"role\":"
	    "\"main\",\"runtime\":\"node\",\"start_ns\":0,\"end_ns\":1000000000,"
	    "\"interval_ms\":1000.000,\"iterations\":2,\"busy_ms\":400.000,\"idle_ms\":600.000,"
	    "\"p50_ms\":0.000,\"p90_ms\":0.000,\"p99_ms\":0.000,\"max_ms\":0.000,"
	    "\"utilization\":0.4000,\"rss_bytes\":52428800,\"oncpu_ms\":40.000,"
	    "\"offcpu_ms\":350.000,\"runq_ms\":10.000,\"cpu_share\":0.1000,\"bound\":\"io\"}\n",
	    "got:\n%s", buf);
}

Test(sink_proto, exit_memory_and_split_round_trip)
{
	struct capture cap = {0};
	const struct sw_sink_frames fo = {cap_queue, cap_hello, &cap};
	struct sw_sink *s = sw_sink_proto__new(&fo, 50000000ull, 0);
	struct sw_exit_rec ex = exit_rec();
	struct sw_hist hist;
	struct sw_summary_rec sum = {
	    .pid = 4242, .tid = 4242, .thread = "node", .role = "main", .runtime = "node",
	    .hist = &hist, .rss_bytes = 777, .diag = true, .oncpu_ns = 1, .offcpu_ns = 2,
	    .runq_ns = 3,
	};
	Stallwatch__V1__Batch *b;

	sw_hist_reset(&hist);
	s->ops->process(s, &proc);
	s->ops->summary(s, &sum);
	s->ops->memory(s, &mem_rec);
	s->ops->process_exit(s, &ex);
	s->ops->flush(s);
	cr_assert_eq(cap.n, 1);
	b = unpack(cap.frames[0], cap.lens[0]);
	cr_assert_eq(b->n_processes, 2);
	cr_assert_not(b->processes[0]->exited);
	cr_assert(b->processes[1]->exited);
	cr_assert(b->processes[1]->exit_known);
	cr_assert_eq(b->processes[1]->exit_code, 1);
	cr_assert(b->processes[1]->exit_uncaught);
	cr_assert(b->processes[1]->exit_from_promise);
	cr_assert_str_eq(b->processes[1]->exit_pattern, "node.unhandled_rejection");
	cr_assert_str_eq(b->processes[1]->exit_stderr, "Error: boom\n");
	assert_identity(b->processes[1]);
	cr_assert_eq(b->n_loops, 1);
	cr_assert_eq(b->loops[0]->rss_bytes, 777);
	cr_assert(b->loops[0]->cpu_split);
	cr_assert_eq(b->loops[0]->oncpu_ns + b->loops[0]->offcpu_ns + b->loops[0]->runq_ns, 6);
	cr_assert_eq(b->n_memory, 1);
	cr_assert_float_eq(b->memory[0]->rate_bytes_per_s, 102400.4, 1e-9);
	cr_assert_eq(b->memory[0]->rss_end, 7144000);
	stallwatch__v1__batch__free_unpacked(b, NULL);
	/* gone from the hello */
	b = unpack(cap.hello, cap.hello_len);
	cr_assert_eq(b->n_processes, 0);
	stallwatch__v1__batch__free_unpacked(b, NULL);
	/* an exec is marked as one, not an exit */
	s->ops->process(s, &proc);
	s->ops->process_gone(s, 4242, true);
	s->ops->flush(s);
	b = unpack(cap.frames[1], cap.lens[1]);
	cr_assert_eq(b->n_processes, 2);
	cr_assert_str_eq(b->processes[1]->exit_pattern, "exec");
	stallwatch__v1__batch__free_unpacked(b, NULL);
	sw_sink__free(s);
	cap_free(&cap);
}

Test(sink_human, exit_and_memory_lines)
{
	struct sw_exit_rec ex = exit_rec();
	struct sw_sink *s;

	setenv("TZ", "UTC", 1);
	tzset();
	s = sw_sink_human__new(out, 3723000000000ll);
	cr_assert_not_null(s);
	s->ops->process_exit(s, &ex);
	s->ops->memory(s, &mem_rec);
	sw_sink__free(s);
	fflush(out);
	cr_assert_str_eq(buf,
			 "01:02:08.000 EXIT     node pid 4242 (node) died\n"
			 "    node.unhandled_rejection\n"
			 "    fix: catch\n"
			 "01:02:10.000 MEMORY   python pid 4242 (python3) grew\n"
			 "    memory_growth\n"
			 "    fix: tracemalloc\n",
			 "got:\n%s", buf);
}

/* The three longest syscalls under a final incident's line, with what was
 * behind each; "other" and "none" say nothing the target does not. */
Test(sink_human, syscall_lines)
{
	struct sw_incident_rec inc = incident();
	struct sw_diag_syscalls sys = {
	    .n = 4,
	    .s = {
		{.name = "recvfrom", .count = 1, .total_ns = 200300000ull, .fd = 9,
		 .kind = SW_FD_TCP, .port = 5432, .target = "127.0.0.1:5432"},
		{.name = "epoll_pwait", .count = 2, .total_ns = 30000000ull, .fd = 19,
		 .kind = SW_FD_OTHER, .target = "/bin/sh -c sleep 0.3"},
		{.name = "clock_nanosleep", .count = 1, .total_ns = 1000000ull, .fd = -1},
		{.name = "read", .count = 4, .total_ns = 100000ull, .fd = 3, .kind = SW_FD_FILE,
		 .target = "/etc/services"},
	    },
	};
	struct sw_sink *s;

	setenv("TZ", "UTC", 1);
	tzset();
	s = sw_sink_human__new(out, 3723000000000ll);
	cr_assert_not_null(s);
	inc.sys = &sys;
	s->ops->incident(s, &inc);
	inc.ongoing = true; /* the short refresh line lists none */
	s->ops->incident(s, &inc);
	sw_sink__free(s);
	fflush(out);
	cr_assert_str_eq(
	    buf,
	    "01:02:08.000 BLOCK    node pid 4242 tid 4243 (main, node) loop blocked 83.3 ms "
	    "[on-CPU 80 ms, off-CPU 3 ms, run-queue 1 ms]\n"
	    "    node.cpu_bound_callback: synchronous CPU work\n"
	    "    fix: move it to a worker\n"
	    "    waited: recvfrom x1 200.3 ms on tcp 127.0.0.1:5432\n"
	    "           epoll_pwait x2 30.0 ms on /bin/sh -c sleep 0.3\n"
	    "           clock_nanosleep x1 1.0 ms\n"
	    "01:02:08.000 BLOCKED  node pid 4242 tid 4243 (main, node) stuck for 83 ms so far: "
	    "synchronous CPU work\n");
}
