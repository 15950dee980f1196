// SPDX-License-Identifier: Apache-2.0
/*
 * Writes the seed corpus of fuzz_collector.c: agent streams built with the
 * real wire types (protobuf-c, sw_frame_encode), so that the fuzzer starts
 * from frames the collector accepts and every field of the .proto is set
 * somewhere. Regenerate after a .proto change:
 *
 *   cmake --build build/fuzz --target gen_corpus    (after scripts/fuzz.sh)
 *   build/fuzz/tests/gen_corpus tests/fuzz/corpus
 *
 * Each file: 2 control bytes (see fuzz_collector.c) + the stream. The two
 * agent-node-block* seeds are not from here: they are the bytes a real
 * agent sent (tests/workloads/node_block.js, --interval 1, 5 s) to a
 * listener that saved them, behind the control bytes 00 01 and 05 01, and
 * agent-14procs is tests/fixtures/frames/agent-14procs.swf (the biggest
 * frames of a real agent watching 14 processes) behind 00 01.
 *
 *   build/fuzz/tests/gen_corpus --large DIR
 *
 * writes the seeds too big to commit, which scripts/fuzz.sh makes in its
 * build directory: the two amplification frames and the distinct-incidents
 * frame at the frame limit (SW_FRAME_MAX_RAW inflated; 70 KB, 70 KB and
 * 2.5 MB on the wire) and the biggest frame the decode budget accepts
 * (collector/budget.h).
 */
#include "frame.h"
#include "health.h"
#include "test_collector_helpers.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

struct out {
	uint8_t *p;
	size_t len, cap;
};

static void die(const char *what)
{
	fprintf(stderr, "gen_corpus: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void put(struct out *o, const void *p, size_t n)
{
	uint8_t *nb;

	/* doubling: the large seeds are millions of small pieces */
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2;
		nb = realloc(o->p, o->cap);
		if (!nb)
			die("realloc");
		o->p = nb;
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

static void put_batch(struct out *o, const Stallwatch__V1__Batch *b, int zlib)
{
	size_t n;
	uint8_t *f = t_frame(b, zlib, &n);

	if (!f)
		die("t_frame");
	put(o, f, n);
	free(f);
}

static void save(const char *dir, const char *name, struct out *o)
{
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "wb");
	if (!fp || fwrite(o->p, 1, o->len, fp) != o->len || fclose(fp))
		die(path);
	free(o->p);
	o->p = NULL;
	o->len = o->cap = 0;
}

static void start(struct out *o, uint8_t cut, uint8_t ctl)
{
	uint8_t c[2] = {cut, ctl};

	put(o, c, 2);
}

/* ---- the hostile frames of docs/RELIABILITY.md "Hostile frames", as raw
 * protobuf bytes (protobuf-c would need a struct per element) ---- */

static void put_varint(struct out *o, uint64_t v)
{
	uint8_t c;

	do {
		c = (v & 0x7f) | (v > 0x7f ? 0x80 : 0);
		put(o, &c, 1);
		v >>= 7;
	} while (v);
}

/* msg (a serialized Batch) as one zlib frame, the way the agent frames */
static void put_msg(struct out *o, struct out *msg)
{
	uint8_t *f;
	size_t n;

	if (sw_frame_encode(msg->p, msg->len, true, &f, &n))
		die("sw_frame_encode");
	put(o, f, n);
	free(f);
	free(msg->p);
	msg->p = NULL;
	msg->len = msg->cap = 0;
}

/* raw bytes of empty submessages of Batch field `field`. At
 * SW_FRAME_MAX_RAW: 16 MiB for 70 KB on the wire, 1.7 GB unpacked before
 * the budget. Each run inflates all of it (~40 ms under ASan), so the
 * committed seeds stop just past SW_BUDGET_BATCH_ITEMS, which takes the
 * same path, and only --large has the 16 MiB ones. */
static void amplification(struct out *o, unsigned field, size_t raw)
{
	struct out m = {0};
	uint8_t two[2] = {(uint8_t)(field << 3 | 2), 0};

	m.p = malloc(raw);
	if (!m.p)
		die("malloc");
	for (size_t i = 0; i < raw; i += 2)
		memcpy(m.p + i, two, 2);
	m.len = m.cap = raw;
	put_msg(o, &m);
}

/* As many distinct incidents (pid 7, tid 7, start_ns i) as SW_FRAME_MAX_RAW
 * holds: 1.6 M, 7.5 s under the store lock before the budget. */
static void distinct_incidents(struct out *o)
{
	struct out m = {0};

	for (uint64_t i = 1 << 14; m.len + 10 <= SW_FRAME_MAX_RAW; i++) {
		put(&m, "\x2a\x08\x08\x07\x10\x07\x28", 7);
		put_varint(&m, i); /* 3 bytes below 2^21 */
	}
	put_msg(o, &m);
}

/* The most the budget accepts: SW_BUDGET_BATCH_ITEMS incidents of one
 * 4-frame stack each (SW_BUDGET_MAX_STACK_FRAMES names in all). */
static void worst_accepted(struct out *o)
{
	struct out m = {0}, inc = {0}, st = {0};
	char name[64];

	for (int k = 0; k < 4; k++) {
		int n = snprintf(name, sizeof(name), "frame_%d (/srv/app/lib/m.js:%d)", k, 10 + k);

		put(&st, "\x0a", 1);
		put_varint(&st, (uint64_t)n);
		put(&st, name, (size_t)n);
	}
	put(&st, "\x10\x80\xc2\xd7\x2f\x18\x0a", 7); /* weight 100 ms, 10 samples */
	put(&m, "\x08\x01\x12\x0a\x0a\x08worst:11", 14); /* seq 1, hello agent_id */
	for (uint32_t i = 0; i < 4096; i++) {
		inc.len = 0;
		put(&inc, "\x08\xa8\x46\x10\xa8\x46\x1a\x04node\x22\x04node", 18);
		put(&inc, "\x28", 1);
		put_varint(&inc, (uint64_t)(i + 1) * 1000000000u);
		put(&inc, "\x30\x80\xb4\x89\x13\x42\x04main", 11); /* 40 ms, role */
		put(&inc, "\x9a\x01", 2); /* field 19, stacks */
		put_varint(&inc, st.len);
		put(&inc, st.p, st.len);
		put(&m, "\x2a", 1);
		put_varint(&m, inc.len);
		put(&m, inc.p, inc.len);
	}
	free(inc.p);
	free(st.p);
	put_msg(o, &m);
}

static int large(const char *dir)
{
	struct out o = {0};

	start(&o, 0, 1);
	amplification(&o, 4, SW_FRAME_MAX_RAW);
	save(dir, "amplification-loops-16mib", &o);
	start(&o, 0, 1);
	amplification(&o, 5, SW_FRAME_MAX_RAW);
	save(dir, "amplification-incidents-16mib", &o);
	start(&o, 0, 1);
	distinct_incidents(&o);
	save(dir, "distinct-incidents", &o);
	start(&o, 0, 1);
	worst_accepted(&o);
	save(dir, "worst-accepted-incidents", &o);
	return 0;
}

/* One batch with every message and most fields set. */
struct full {
	Stallwatch__V1__Batch b;
	Stallwatch__V1__Hello hello;
	Stallwatch__V1__ProcessInfo pi[2], *pp[2];
	struct t_loop l[2];
	Stallwatch__V1__LoopSummary *lp[2];
	Stallwatch__V1__Incident in[2], *ip[2];
	Stallwatch__V1__AgentHealth health;
	Stallwatch__V1__AgentHealth__CountersEntry ce[SW_HEALTH__COUNT], *cp[SW_HEALTH__COUNT];
	Stallwatch__V1__GilSummary gil[2], *gp[2];
	Stallwatch__V1__GilThread gt[2], *gtp[2];
};

static char *gil_stack[2] = {(char *)"spin (/srv/w.py:12)", (char *)"run (threading.py:975)"};

/* pid 101's GIL: the asyncio loop (105) waits on a worker (106); pid 100
 * is "not measured" (a GilSummary with a note). */
static void full_gil(struct full *f)
{
	for (int i = 0; i < 2; i++) {
		stallwatch__v1__gil_thread__init(&f->gt[i]);
		f->gt[i].tid = 105 + i;
		f->gt[i].name = (char *)(i ? "worker" : "python3");
		f->gt[i].loop = !i;
		f->gt[i].wait_ns = (i ? 50 : 300) * MS;
		f->gt[i].hold_ns = (i ? 600 : 100) * MS;
		f->gt[i].hold_samples = i ? 60 : 10;
		f->gt[i].acquisitions = 40;
		f->gt[i].drop_requests = i ? 45 : 0;
		f->gt[i].forced_switches = i ? 35 : 0;
		f->gt[i].switch_wait_ns = MS;
		f->gt[i].caused_wait_ns = i ? 290 * MS : 0;
		f->gt[i].stack = i ? gil_stack : NULL;
		f->gt[i].n_stack = i ? 2 : 0;
		f->gtp[i] = &f->gt[i];
		stallwatch__v1__gil_summary__init(&f->gil[i]);
		f->gp[i] = &f->gil[i];
	}
	f->gil[0].pid = 101;
	f->gil[0].ts_ns = 9000 * MS;
	f->gil[0].interval_ns = 1000 * MS;
	f->gil[0].switch_interval_us = 5000;
	f->gil[0].samples = 100;
	f->gil[0].held_samples = 80;
	f->gil[0].switches = 120;
	f->gil[0].threads = f->gtp;
	f->gil[0].n_threads = 2;
	f->gil[0].threads_omitted = 1;
	f->gil[0].pattern = (char *)"python.loop_starved_by_gil";
	f->gil[0].summary = (char *)"the event loop waited";
	f->gil[0].advice = (char *)"move the CPU work to processes";
	f->gil[0].comm = (char *)"python3";
	f->gil[0].version = (char *)"3.11.7";
	f->gil[1].pid = 100;
	f->gil[1].note = (char *)"not a CPython process";
	f->in[1].gil_wait_ns = 250 * MS;
	f->in[1].gil_drop_requests = 12;
	f->in[1].gil_holder_tid = 106;
	f->in[1].gil_holder = (char *)"worker";
	f->in[1].gil_holder_stack = gil_stack;
	f->in[1].n_gil_holder_stack = 2;
	f->b.gil = f->gp;
	f->b.n_gil = 2;
}

static void full_init(struct full *f, uint64_t seq, const char *exe)
{
	stallwatch__v1__batch__init(&f->b);
	stallwatch__v1__hello__init(&f->hello);
	f->hello.agent_id = (char *)"host-a:4242";
	f->hello.hostname = (char *)"host-a";
	f->hello.version = (char *)"0.1.0";
	f->hello.start_unix_ns = 1700000000ull * 1000000000ull;
	f->hello.threshold_ms = 50;
	f->hello.mono_to_unix_ns = 1699990000ull * 1000000000ull;

	for (int i = 0; i < 2; i++) {
		stallwatch__v1__process_info__init(&f->pi[i]);
		f->pi[i].pid = 100 + i;
		f->pi[i].runtime = (char *)(i ? "python" : "node");
		f->pi[i].runtime_version = (char *)(i ? "3.11.7" : "20.20.2");
		f->pi[i].exe = (char *)exe;
		f->pi[i].comm = (char *)(i ? "python3" : "node");
		f->pi[i].container = (char *)"/system.slice/app.service";
		f->pp[i] = &f->pi[i];
	}
	t_loop_init(&f->l[0], 100, 100, "node");
	t_loop_add(&f->l[0], MS, 900);
	t_loop_add(&f->l[0], 10 * MS, 9);
	t_loop_add(&f->l[0], 120 * MS, 1);
	t_loop_init(&f->l[1], 101, 105, "python");
	f->l[1].ls.role = (char *)"asyncio";
	t_loop_add(&f->l[1], 2 * MS, 50);
	for (int i = 0; i < 2; i++) {
		f->l[i].ls.interval_start_ns = seq * 1000 * MS;
		f->l[i].ls.interval_end_ns = (seq + 1) * 1000 * MS;
		f->l[i].ls.idle_ns = 500 * MS;
		f->lp[i] = &f->l[i].ls;
	}
	t_incident(&f->in[0], 100, 100, seq * 1000 * MS + 5 * MS, 120 * MS, 0);
	f->in[0].top_syscall = (char *)"futex";
	f->in[0].top_syscall_ns = 10 * MS;
	f->in[0].switches = 3;
	f->in[0].advice = (char *)"move the work off the loop";
	t_incident(&f->in[1], 101, 105, seq * 1000 * MS, 300 * MS, 1);
	f->in[1].runtime = (char *)"python";
	f->in[1].role = (char *)"asyncio";
	f->in[1].pattern = (char *)"python.blocking_sleep_in_async";
	f->in[1].offcpu_ns = 290 * MS;
	f->in[1].oncpu_ns = 10 * MS;
	f->in[1].top_syscall = (char *)"clock_nanosleep";
	f->in[1].start_unknown = 1;
	f->ip[0] = &f->in[0];
	f->ip[1] = &f->in[1];

	stallwatch__v1__agent_health__init(&f->health);
	for (int i = 0; i < SW_HEALTH__COUNT; i++) {
		stallwatch__v1__agent_health__counters_entry__init(&f->ce[i]);
		f->ce[i].key = (char *)sw_health_names[i];
		f->ce[i].value = (uint64_t)i * 7 + seq;
		f->cp[i] = &f->ce[i];
	}
	f->health.counters = f->cp;
	f->health.n_counters = SW_HEALTH__COUNT;

	f->b.seq = seq;
	f->b.hello = &f->hello;
	f->b.processes = f->pp;
	f->b.n_processes = 2;
	f->b.loops = f->lp;
	f->b.n_loops = 2;
	f->b.incidents = f->ip;
	f->b.n_incidents = 2;
	f->b.health = &f->health;
	f->b.sent_unix_ns = f->hello.start_unix_ns + seq * 1000 * MS;
	full_gil(f);
}

int main(int argc, char **argv)
{
	static char long_exe[2048];
	struct out o = {0};
	struct full f;
	const char *dir;

	if (argc == 3 && !strcmp(argv[1], "--large"))
		return large(argv[2]);
	if (argc != 2) {
		fprintf(stderr, "usage: %s [--large] DIR (writes the seed corpus of fuzz_collector there)\n",
			argv[0]);
		return 2;
	}
	dir = argv[1];
	memset(long_exe, 'x', sizeof(long_exe) - 1);
	long_exe[0] = '/';

	/* hello only, one piece */
	{
		Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
		Stallwatch__V1__Hello h = STALLWATCH__V1__HELLO__INIT;

		h.agent_id = (char *)"host-a:1";
		h.hostname = (char *)"host-a";
		h.version = (char *)"0.1.0";
		b.seq = 1;
		b.hello = &h;
		start(&o, 0, 1);
		put_batch(&o, &b, 0);
		save(dir, "hello-only", &o);
	}

	/* every field, raw, one piece; then cut in 1..12-byte pieces */
	full_init(&f, 1, "/usr/bin/node");
	start(&o, 0, 1);
	put_batch(&o, &f.b, 0);
	save(dir, "full-raw", &o);
	start(&o, 3, 2);
	put_batch(&o, &f.b, 0);
	save(dir, "full-raw-cut3", &o);

	/* compressed (a long exe makes deflate pay) */
	full_init(&f, 1, long_exe);
	start(&o, 7, 1);
	put_batch(&o, &f.b, 1);
	save(dir, "full-zlib", &o);

	/* a session: hello, then batches with a gap (seq 3 evicted by the
	 * agent), a process that exits, clock steps that expire its series */
	start(&o, 17, 7 | 0x20 | 0x40);
	full_init(&f, 1, "/usr/bin/node");
	put_batch(&o, &f.b, 0);
	for (uint64_t seq = 2; seq <= 6; seq++) {
		if (seq == 3)
			continue;
		full_init(&f, seq, "/usr/bin/node");
		f.b.hello = NULL; /* only the first batch of a connection has it */
		if (seq == 5) {
			f.pi[1].exited = 1;
			f.b.n_loops = 1;
		}
		put_batch(&o, &f.b, seq & 1);
	}
	save(dir, "session-gap-exit", &o);

	/* no hello: the agent is named after the peer address */
	full_init(&f, 9, "/usr/bin/python3");
	f.b.hello = NULL;
	start(&o, 1, 0);
	put_batch(&o, &f.b, 0);
	save(dir, "no-hello", &o);

	/* a good frame, then garbage: the connection closes, a new one starts */
	full_init(&f, 1, "/usr/bin/node");
	start(&o, 0, 1);
	put_batch(&o, &f.b, 0);
	put(&o, "GET / HTTP/1.1\r\n\r\n", 18);
	put_batch(&o, &f.b, 0);
	save(dir, "good-then-garbage", &o);

	/* a loop of another histogram scheme (SW_BAD_HIST_SCHEMA) */
	full_init(&f, 1, "/usr/bin/node");
	f.l[0].ls.hist_schema = 2;
	start(&o, 0, 1);
	put_batch(&o, &f.b, 0);
	save(dir, "bad-schema", &o);

	/* a GilSummary over the bounds of common/gil.h (SW_BAD_GIL) */
	full_init(&f, 1, "/usr/bin/python3");
	f.gil[0].held_samples = f.gil[0].samples + 1;
	start(&o, 0, 1);
	put_batch(&o, &f.b, 0);
	save(dir, "bad-gil", &o);

	/* the amplification frames, cut just past the limit that refuses
	 * them (the 16 MiB ones: --large) */
	start(&o, 0, 1);
	amplification(&o, 4, 2 * 4200);
	save(dir, "amplification-loops", &o);
	start(&o, 0, 1);
	amplification(&o, 5, 2 * 4200);
	save(dir, "amplification-incidents", &o);
	return 0;
}
