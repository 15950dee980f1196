// SPDX-License-Identifier: Apache-2.0
/*
 * The store applies a batch in slices, judging incidents and summarising
 * loop intervals without its lock (collector/store.h). What a batch leaves
 * must be what its input says, whatever the slices: each incident as the
 * rules judge its last copy (the first final one), its loop's counters,
 * every interval's buckets; the same exposition and /api/incidents as the
 * batch sent one message at a time; and a reader taking the lock while a
 * big batch is applied must never see an incident without its loop's count.
 */
#include "export.h"
#include "rules.h"
#include "store_internal.h"
#include "test_collector_helpers.h"
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#define NOW (1000ull * 1000000000ull)
#define MONO_TO_UNIX (1700000000ull * 1000000000ull)
#define THRESHOLD_MS 50
#define HOST "slice-host"
#define ID "slice-host:1"

/* ---- an incident batch built from an index, with everything the view keeps ---- */

#define NKEYS 300 /* > 4 of the store's judging steps (64) */
#define MAXMSG (NKEYS * 3)

struct t_inc {
	Stallwatch__V1__Incident in;
	Stallwatch__V1__Stack st[3], *stp[3];
	char *frames[3][5];
	char fbuf[3][5][64];
	Stallwatch__V1__SyscallStat sc[2], *scp[2];
	char *gil_stack[3];
	char gbuf[3][48];
};

static struct t_inc msgs[MAXMSG];
static Stallwatch__V1__Incident *msgp[MAXMSG];
static size_t nmsg;

/* pids 100..104: 100 node and 101 python by their ProcessInfo, 102 python
 * and 103 "weird" (native) by the incident alone, 104 node again */
static const char *const inc_runtime[5] = {"node", "node", "python", "weird", "node"};

static void frame_name(char *buf, size_t size, size_t key, int s, int f)
{
	switch ((key + (size_t)s) % 4) {
	case 0:
		snprintf(buf, size, "Builtins_JsonParse");
		break;
	case 1:
		snprintf(buf, size, "readFileSync (node:fs:%d)", 400 + f);
		break;
	case 2:
		/* a ';' and a newline, which folded and stack text replace, and
		 * a cut UTF-8 sequence */
		snprintf(buf, size, "handler%zu;x\n (/srv/app\xc3.js:%d)", key, 10 + f);
		break;
	default:
		snprintf(buf, size, "work_%d (/srv/app/lib.js:%zu)", f, key % 50);
		break;
	}
}

static void build_msg(struct t_inc *m, size_t key, bool ongoing, uint64_t dur_ns)
{
	uint32_t pid = 100 + (uint32_t)(key % 5);
	int nst = (int)(key % 4);

	memset(m, 0, sizeof(*m));
	t_incident(&m->in, pid, pid + (uint32_t)(key % 2), (key + 1) * 1000000000ull, dur_ns,
		   ongoing);
	m->in.runtime = (char *)inc_runtime[key % 5];
	m->in.thread = (char *)(key % 2 ? "worker-\xd0" : "main");
	m->in.role = (char *)(key % 2 ? "worker" : "main");
	if (key % 3 == 0) {
		/* off CPU, in a syscall */
		m->in.oncpu_ns = dur_ns / 10;
		m->in.offcpu_ns = dur_ns * 9 / 10;
		m->in.top_syscall = (char *)"read";
		m->in.top_syscall_ns = dur_ns * 8 / 10;
		for (int i = 0; i < 2; i++) {
			stallwatch__v1__syscall_stat__init(&m->sc[i]);
			m->sc[i].name = (char *)(i ? "futex" : "read");
			m->sc[i].count = key + (size_t)i;
			m->sc[i].total_ns = dur_ns / (2 + (uint64_t)i);
			m->sc[i].fd = i ? -1 : 7;
			m->sc[i].fd_kind = (char *)(i ? "" : "file");
			m->sc[i].target = (char *)(i ? "futex 0x7f00" : "/etc/app.conf");
			m->scp[i] = &m->sc[i];
		}
		m->in.syscalls = m->scp;
		m->in.n_syscalls = 2;
	}
	for (int s = 0; s < nst; s++) {
		stallwatch__v1__stack__init(&m->st[s]);
		for (int f = 0; f < 5; f++) {
			frame_name(m->fbuf[s][f], sizeof(m->fbuf[s][f]), key, s, f);
			m->frames[s][f] = m->fbuf[s][f];
		}
		m->st[s].frames = m->frames[s];
		m->st[s].n_frames = 5;
		m->st[s].weight_ns = dur_ns / (uint64_t)(s + 2);
		m->st[s].samples = 10 - (uint32_t)s;
		m->stp[s] = &m->st[s];
	}
	m->in.stacks = m->stp;
	m->in.n_stacks = (size_t)nst;
	m->in.stack_samples = 27;
	if (key % 6 == 1) {
		m->in.gc_share = 0.25;
		m->in.gc_share_known = true;
		m->in.stack_note = (char *)"frames of node --perf-basic-prof";
	}
	if (pid == 101 || pid == 102) {
		m->in.gil_wait_ns = dur_ns / 3;
		m->in.gil_drop_requests = 4;
		m->in.gil_holder_tid = pid + 7;
		m->in.gil_holder = (char *)"cruncher";
		for (int f = 0; f < 3; f++) {
			snprintf(m->gbuf[f], sizeof(m->gbuf[f]), "crunch_%d (/srv/app/crunch.py:%d)",
				 f, 20 + f);
			m->gil_stack[f] = m->gbuf[f];
		}
		m->in.gil_holder_stack = m->gil_stack;
		m->in.n_gil_holder_stack = 3;
	}
}

/*
 * Keys in order; some first sent ongoing, some final twice (the late copy
 * must be ignored), some only ongoing: adjacent copies of one key fall on
 * either side of a judging step's boundary now and then.
 */
static void build_incidents(void)
{
	nmsg = 0;
	for (size_t k = 0; k < NKEYS; k++) {
		uint64_t dur = (60 + k % 40) * MS + k;

		if (k % 7 == 0)
			build_msg(&msgs[nmsg++], k, true, dur / 2);
		build_msg(&msgs[nmsg++], k, k % 13 == 5, dur);
		if (k % 11 == 0)
			build_msg(&msgs[nmsg++], k, false, dur * 3);
	}
	for (size_t i = 0; i < nmsg; i++)
		msgp[i] = &msgs[i].in;
}

static Stallwatch__V1__Hello hello;
static Stallwatch__V1__ProcessInfo procs[2], *procp[2];

static struct sw_store *new_store(size_t max_incidents)
{
	struct sw_store_opts o = {.max_loops = 1024, .max_incidents = max_incidents};
	struct sw_store *st = sw_store__new(&o);
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;

	cr_assert_not_null(st);
	stallwatch__v1__hello__init(&hello);
	hello.agent_id = (char *)ID;
	hello.hostname = (char *)HOST;
	hello.mono_to_unix_ns = MONO_TO_UNIX;
	hello.threshold_ms = THRESHOLD_MS;
	cr_assert_eq(sw_store__agent_up(st, ID, &hello, NOW), 0);
	for (int i = 0; i < 2; i++) {
		stallwatch__v1__process_info__init(&procs[i]);
		procs[i].pid = 100 + (uint32_t)i;
		procs[i].comm = (char *)(i ? "python3" : "node");
		procs[i].runtime = (char *)(i ? "python" : "node");
		procp[i] = &procs[i];
	}
	b.hello = &hello;
	b.processes = procp;
	b.n_processes = 2;
	cr_assert_eq(sw_store__apply(st, ID, &b, NOW), 0);
	return st;
}

static void apply_msgs(struct sw_store *st, Stallwatch__V1__Incident **p, size_t n, uint64_t seq)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;

	b.seq = seq;
	b.incidents = p;
	b.n_incidents = n;
	cr_assert_eq(sw_store__apply(st, ID, &b, NOW), 0);
}

/* What the runtime of an incident is, from the input: its ProcessInfo's,
 * else its own as a label holds it. */
static const char *want_runtime(const Stallwatch__V1__Incident *pi)
{
	if (pi->pid == 100)
		return "node";
	if (pi->pid == 101)
		return "python";
	if (!strcmp(pi->runtime, "node") || !strcmp(pi->runtime, "python"))
		return pi->runtime;
	return "native";
}

/* The copy of each key the store must hold: the first final one, else the
 * last one; in order of first sight. */
struct want {
	size_t key_msg[NKEYS]; /* message of each key, by first sight */
	size_t nkeys;
};

static void want_of_input(struct want *w)
{
	static bool final[MAXMSG];
	size_t slot_of[NKEYS * 2];

	memset(final, 0, sizeof(final));
	w->nkeys = 0;
	for (size_t i = 0; i < nmsg; i++) {
		uint64_t k = msgs[i].in.start_ns / 1000000000ull - 1;
		size_t j;

		for (j = 0; j < w->nkeys; j++)
			if (slot_of[j] == k)
				break;
		if (j == w->nkeys) {
			slot_of[w->nkeys++] = k;
			w->key_msg[j] = i;
		} else if (!final[j]) {
			w->key_msg[j] = i;
		}
		final[j] = final[j] || !msgs[i].in.ongoing;
	}
}

/* Every field a judged view carries, and the key's. */
static void assert_same_view(const struct sw_incident_view *got,
			     const struct sw_incident_view *want)
{
	cr_assert_str_eq(got->thread, want->thread);
	cr_assert_str_eq(got->role, want->role);
	cr_assert_str_eq(got->runtime, want->runtime);
	cr_assert_str_eq(got->top_syscall, want->top_syscall);
	cr_assert_eq(got->duration_ns, want->duration_ns);
	cr_assert_eq(got->oncpu_ns, want->oncpu_ns);
	cr_assert_eq(got->offcpu_ns, want->offcpu_ns);
	cr_assert_eq(got->runq_ns, want->runq_ns);
	cr_assert_eq(got->top_syscall_ns, want->top_syscall_ns);
	cr_assert_eq(got->ongoing, want->ongoing);
	cr_assert_eq(got->start_unknown, want->start_unknown);
	cr_assert_str_eq(got->pattern, want->pattern);
	cr_assert_str_eq(got->summary, want->summary);
	cr_assert_str_eq(got->advice, want->advice);
	cr_assert_str_eq(got->stack, want->stack);
	cr_assert_str_eq(got->folded, want->folded);
	cr_assert_str_eq(got->stack_note, want->stack_note);
	cr_assert_eq(got->stack_samples, want->stack_samples);
	cr_assert_eq(got->gc_share, want->gc_share);
	cr_assert_eq(got->n_sys, want->n_sys);
	for (uint32_t i = 0; i < got->n_sys; i++) {
		cr_assert_str_eq(got->sys[i].name, want->sys[i].name);
		cr_assert_str_eq(got->sys[i].target, want->sys[i].target);
		cr_assert_eq(got->sys[i].count, want->sys[i].count);
		cr_assert_eq(got->sys[i].total_ns, want->sys[i].total_ns);
		cr_assert_eq(got->sys[i].fd, want->sys[i].fd);
		cr_assert_eq(got->sys[i].kind, want->sys[i].kind);
	}
	cr_assert_eq(got->have_gil, want->have_gil);
	cr_assert_eq(got->gil_wait_ns, want->gil_wait_ns);
	cr_assert_eq(got->gil_drop_requests, want->gil_drop_requests);
	cr_assert_eq(got->gil_holder_tid, want->gil_holder_tid);
	cr_assert_str_eq(got->gil_holder, want->gil_holder);
	cr_assert_str_eq(got->gil_holder_stack, want->gil_holder_stack);
}

static const struct sw_loop_view *loop_of(struct sw_store *st, uint32_t pid, uint32_t tid)
{
	for (size_t i = 0; i < sw_store__nloops(st); i++) {
		const struct sw_loop_view *l = sw_store__loop(st, i);

		if (l->pid == pid && l->tid == tid)
			return l;
	}
	return NULL;
}

/* The value of name{...pid="P",tid="T",...pattern="X"} in text, -1 when absent. */
static long long blocked_in(const char *text, uint32_t pid, uint32_t tid, const char *pattern)
{
	char p[32], t[32], pat[64];
	const char *line = text;

	snprintf(p, sizeof(p), ",pid=\"%u\"", pid);
	snprintf(t, sizeof(t), ",tid=\"%u\"", tid);
	snprintf(pat, sizeof(pat), ",pattern=\"%s\"}", pattern);
	for (; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		const char *end = strchr(line, '\n');
		char buf[1024];
		size_t n = end ? (size_t)(end - line) : strlen(line);

		if (n >= sizeof(buf) || strncmp(line, "stallwatch_eventloop_blocked_total{", 35))
			continue;
		memcpy(buf, line, n);
		buf[n] = 0;
		if (strstr(buf, p) && strstr(buf, t) && strstr(buf, pat))
			return atoll(strrchr(buf, ' ') + 1);
	}
	return -1;
}

Test(store_slices, an_incident_batch_holds_what_its_input_says)
{
	struct sw_store *st;
	struct sw_store_holds h0, h1;
	static struct want w;
	static struct sw_incident_view ref;
	uint64_t blocked[8][2][SW_STORE_MAX_PATTERNS] = {{{0}}};
	struct sw_buf out = {0};

	build_incidents();
	want_of_input(&w);
	st = new_store(NKEYS);
	sw_store__lock(st);
	sw_store__holds(st, &h0);
	sw_store__unlock(st);
	apply_msgs(st, msgp, nmsg, 1);

	sw_store__lock(st);
	sw_store__holds(st, &h1);
	cr_assert_eq(h1.judged_locked, 0, "every incident judged without the lock");
	/* one hold per judging step at least: the lock was dropped to judge */
	cr_assert_geq(h1.count - h0.count, (NKEYS + 63) / 64 + 1);
	cr_assert_eq(sw_store__nincidents(st), w.nkeys);
	for (size_t j = 0; j < w.nkeys; j++) {
		/* newest first: the key first seen last is at 0 */
		const struct sw_incident_view *got = sw_store__incident(st, w.nkeys - 1 - j);
		const Stallwatch__V1__Incident *pi = &msgs[w.key_msg[j]].in;
		const Stallwatch__V1__Stack *s0 = pi->n_stacks ? pi->stacks[0] : NULL;
		char stack[1024] = "";

		cr_assert_eq(got->pid, pi->pid);
		cr_assert_eq(got->tid, pi->tid);
		cr_assert_eq(got->start_ns, pi->start_ns);
		cr_assert_eq(got->start_unix_ns, pi->start_ns + MONO_TO_UNIX);
		cr_assert_str_eq(got->host, HOST);
		cr_assert_str_eq(got->agent, ID);
		cr_assert_eq(got->duration_ns, pi->duration_ns, "key %zu: the first final copy", j);
		cr_assert_eq(got->ongoing, pi->ongoing);
		cr_assert_str_eq(got->runtime, want_runtime(pi));
		/* the stack text from the input's frames, where they need no
		 * repair (key % 4 == 2 has a ';', a newline and a cut character) */
		for (size_t f = 0; s0 && f < s0->n_frames; f++) {
			strcat(stack, s0->frames[f]);
			strcat(stack, "\n");
		}
		if (j % 4 != 2)
			cr_assert_str_eq(got->stack, stack, "key %zu", j);
		cr_assert_eq(got->n_sys, pi->n_syscalls);
		/* and the whole judged view: what the rules say of that copy */
		memset(&ref, 0, sizeof(ref));
		sw_incident__judge(&ref, pi, want_runtime(pi), THRESHOLD_MS * MS);
		assert_same_view(got, &ref);
		if (!pi->ongoing) {
			size_t pat = sw_store__pattern_index(ref.pattern);

			blocked[pi->pid - 100][pi->tid - pi->pid][pat]++;
		}
	}
	/* every final incident counted once, by its verdict, in its loop */
	for (uint32_t pid = 100; pid < 105; pid++) {
		for (uint32_t d = 0; d < 2; d++) {
			const struct sw_loop_view *l = loop_of(st, pid, pid + d);

			cr_assert_not_null(l, "loop %u/%u", pid, pid + d);
			for (size_t p = 0; p < sw_store__npatterns(); p++)
				cr_assert_eq(l->blocked[p], blocked[pid - 100][d][p],
					     "loop %u/%u pattern %zu", pid, pid + d, p);
		}
	}
	sw_store__unlock(st);

	/* and so does the exposition */
	cr_assert_eq(sw_export__metrics(st, NULL, &out), 0);
	for (uint32_t pid = 100; pid < 105; pid++)
		for (uint32_t d = 0; d < 2; d++)
			for (size_t p = 0; p < sw_store__npatterns(); p++)
				if (blocked[pid - 100][d][p])
					cr_assert_eq(blocked_in(out.p, pid, pid + d,
								sw_rule_patterns[p]),
						     (long long)blocked[pid - 100][d][p]);
	sw_buf__free(&out);
	sw_store__free(st);
}

/* The text without the lines of the lock's own figures, which differ. */
#define HOLDS "stallwatch_collector_store_lock_hold"

static char *without_holds(const char *text)
{
	char *out = calloc(1, strlen(text) + 1), *o = out;

	cr_assert_not_null(out);
	while (*text) {
		const char *end = strchr(text, '\n');
		size_t n = end ? (size_t)(end - text) + 1 : strlen(text);

		/* the family's lines, its # HELP and # TYPE */
		if (strncmp(text, HOLDS, strlen(HOLDS)) &&
		    (n < 7 || strncmp(text + 7, HOLDS, strlen(HOLDS)))) {
			memcpy(o, text, n);
			o += n;
		}
		text += n;
	}
	return out;
}

Test(store_slices, one_batch_or_one_message_a_batch_export_the_same)
{
	struct sw_store *one, *each;
	struct sw_buf m1 = {0}, m2 = {0};
	char *j1, *j2, *t1, *t2;
	size_t l1, l2;

	build_incidents();
	one = new_store(NKEYS);
	each = new_store(NKEYS);
	apply_msgs(one, msgp, nmsg, 0);
	for (size_t i = 0; i < nmsg; i++)
		apply_msgs(each, &msgp[i], 1, 0);
	cr_assert_eq(sw_export__incidents(one, NULL, &j1, &l1), 0);
	cr_assert_eq(sw_export__incidents(each, NULL, &j2, &l2), 0);
	cr_assert_gt(l1, 1000);
	cr_assert_eq(l1, l2);
	cr_assert_eq(memcmp(j1, j2, l1), 0, "/api/incidents differs");
	cr_assert_eq(sw_export__metrics(one, NULL, &m1), 0);
	cr_assert_eq(sw_export__metrics(each, NULL, &m2), 0);
	t1 = without_holds(m1.p);
	t2 = without_holds(m2.p);
	cr_assert_str_eq(t1, t2, "/metrics differs");
	cr_assert(strstr(t1, "stallwatch_eventloop_blocked_total{"));
	free(j1);
	free(j2);
	free(t1);
	free(t2);
	sw_buf__free(&m1);
	sw_buf__free(&m2);
	sw_store__free(one);
	sw_store__free(each);
}

/* ---- loops: buckets folded under the lock, gauges computed without it ---- */

#define NLOOPS 600 /* > 2 of the store's summarising steps (256) */

Test(store_slices, loop_intervals_fold_every_bucket_and_their_gauges)
{
	static struct t_loop tl[2][NLOOPS];
	static Stallwatch__V1__LoopSummary *lsp[NLOOPS];
	static struct sw_hist want, delta;
	struct sw_store *st = new_store(16);
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;

	for (int r = 0; r < 2; r++) {
		for (uint32_t i = 0; i < NLOOPS; i++) {
			struct t_loop *t = &tl[r][i];

			t_loop_init(t, 100, 1000 + i, "node");
			for (uint32_t k = 0; k < 1 + (i + (uint32_t)r) % 8; k++)
				t_loop_add(t, (50000ull << ((k * 3 + i) % 20)) + i, 1 + k * (i % 5));
			t->ls.idle_ns = 1000000ull * (i % 7);
			t->ls.cpu_split = i % 2;
			t->ls.oncpu_ns = t->ls.busy_ns / 2;
			t->ls.offcpu_ns = t->ls.busy_ns / 3;
			lsp[i] = &t->ls;
		}
		b.loops = lsp;
		b.n_loops = NLOOPS;
		cr_assert_eq(sw_store__apply(st, ID, &b, NOW), 0);
	}
	sw_store__lock(st);
	for (uint32_t i = 0; i < NLOOPS; i++) {
		const struct sw_loop_view *l = loop_of(st, 100, 1000 + i);
		const Stallwatch__V1__LoopSummary *last = &tl[1][i].ls;
		uint64_t busy = 0;

		cr_assert_not_null(l);
		sw_hist_reset(&want);
		for (int r = 0; r < 2; r++) {
			const Stallwatch__V1__LoopSummary *ls = &tl[r][i].ls;

			for (size_t k = 0; k < ls->n_buckets; k++)
				sw_hist_add_bucket(&want, ls->buckets[k]->index, ls->buckets[k]->count);
			if (ls->max_busy_ns > want.max_ns)
				want.max_ns = ls->max_busy_ns;
			busy += ls->busy_ns;
		}
		cr_assert_eq(memcmp(want.counts, l->hist.counts, sizeof(want.counts)), 0,
			     "loop %u: the cumulative buckets", i);
		cr_assert_eq(l->hist.total, want.total);
		cr_assert_eq(l->hist.max_ns, want.max_ns);
		cr_assert_eq(l->busy_ns, busy);
		/* the last interval's gauges, from its own buckets */
		sw_hist_reset(&delta);
		for (size_t k = 0; k < last->n_buckets; k++)
			sw_hist_add_bucket(&delta, last->buckets[k]->index, last->buckets[k]->count);
		delta.max_ns = last->max_busy_ns;
		cr_assert_eq(l->interval_iterations, delta.total);
		cr_assert_eq(l->p50_ns, (double)sw_hist_quantile(&delta, 0.5));
		cr_assert_eq(l->p99_ns, (double)sw_hist_quantile(&delta, 0.99));
		cr_assert_eq(l->max_ns, (double)last->max_busy_ns);
		cr_assert_eq(l->utilization,
			     (double)last->busy_ns / (double)(last->busy_ns + last->idle_ns));
		cr_assert_eq(l->have_split, i % 2 == 1);
	}
	sw_store__unlock(st);
	sw_store__free(st);
}

/*
 * A summary of a new series while the cap is full is not summarised
 * without the lock (the cap will refuse it), unless the series of another
 * agent of the host, gone, makes room for it: an agent restarted. Then it
 * is summarised under the lock, and nothing of it is lost.
 */
Test(store_slices, a_summary_the_cap_made_room_for_is_folded_whole)
{
	struct sw_store_opts o = {.max_loops = 4, .max_incidents = 16};
	struct sw_store *st = sw_store__new(&o);
	Stallwatch__V1__Hello h = STALLWATCH__V1__HELLO__INIT;
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	static struct t_loop tl[2][4];
	Stallwatch__V1__LoopSummary *lsp[4];
	static struct sw_hist delta;

	cr_assert_not_null(st);
	h.hostname = (char *)HOST;
	b.hello = &h;
	b.loops = lsp;
	b.n_loops = 4;
	for (int r = 0; r < 2; r++) {
		const char *id = r ? "new:2" : "old:1";

		for (uint32_t i = 0; i < 4; i++) {
			t_loop_init(&tl[r][i], 7, 7 + i, "node");
			t_loop_add(&tl[r][i], (1 + i + 3 * (uint64_t)r) * MS, 10 + i);
			t_loop_add(&tl[r][i], (40 + i) * MS, 1 + (uint64_t)r);
			lsp[i] = &tl[r][i].ls;
		}
		cr_assert_eq(sw_store__agent_up(st, id, &h, NOW), 0);
		cr_assert_eq(sw_store__apply(st, id, &b, NOW), 0);
		if (!r)
			sw_store__agent_down(st, id, NOW + 1);
	}
	sw_store__lock(st);
	cr_assert_eq(sw_store__nloops(st), 4);
	for (uint32_t i = 0; i < 4; i++) {
		const Stallwatch__V1__LoopSummary *ls = &tl[1][i].ls;
		const struct sw_loop_view *l = loop_of(st, 7, 7 + i);

		cr_assert_not_null(l);
		cr_assert_str_eq(l->agent, "new:2", "the restarted agent's series");
		sw_hist_reset(&delta);
		for (size_t k = 0; k < ls->n_buckets; k++)
			sw_hist_add_bucket(&delta, ls->buckets[k]->index, ls->buckets[k]->count);
		delta.max_ns = ls->max_busy_ns;
		cr_assert_eq(memcmp(delta.counts, l->hist.counts, sizeof(delta.counts)), 0);
		cr_assert_eq(l->interval_iterations, delta.total);
		cr_assert_eq(l->p50_ns, (double)sw_hist_quantile(&delta, 0.5));
		cr_assert_eq(l->p99_ns, (double)sw_hist_quantile(&delta, 0.99));
		cr_assert_eq(l->max_ns, (double)ls->max_busy_ns);
	}
	sw_store__unlock(st);
	sw_store__free(st);
}

/* ---- GIL summaries: judged without the lock, folded under it ---- */

#define GPIDS 3
#define GINTERVALS 12 /* 36 summaries: over 2 of the store's steps (16) */
#define GTHREADS 20   /* more names than SW_GIL_THREAD_NAMES: some are "other" */

struct t_gil {
	Stallwatch__V1__GilSummary g;
	Stallwatch__V1__GilThread t[GTHREADS], *tp[GTHREADS];
	char name[GTHREADS][16];
	char fbuf[GTHREADS][40];
	char *stack[GTHREADS][1];
};

static void build_gil(struct t_gil *x, uint32_t pid, uint32_t iv)
{
	stallwatch__v1__gil_summary__init(&x->g);
	x->g.pid = pid;
	x->g.interval_ns = 1000 * MS;
	x->g.switch_interval_us = 5000;
	x->g.samples = 100;
	x->g.held_samples = 40 + 5 * iv;
	x->g.switches = 30 + iv;
	x->g.version = (char *)"3.11.2";
	for (uint32_t t = 0; t < GTHREADS; t++) {
		Stallwatch__V1__GilThread *th = &x->t[t];

		stallwatch__v1__gil_thread__init(th);
		th->tid = pid + 1 + t;
		/* names shift with the interval: new names keep coming */
		snprintf(x->name[t], sizeof(x->name[t]), "w%u", (t + iv) % (GTHREADS + 4));
		th->name = t == 3 ? (char *)"" : x->name[t];
		th->loop = t == 0;
		th->wait_ns = (t == 0 ? 300 + 20 * (uint64_t)iv : 10 + t) * MS;
		th->hold_ns = (t == 1 ? 500 : 5 + t) * MS;
		th->hold_samples = t == 1 ? 50 : 1;
		th->acquisitions = 3 + t;
		th->drop_requests = t % 3;
		th->forced_switches = t % 2;
		snprintf(x->fbuf[t], sizeof(x->fbuf[t]), "crunch_%u (/srv/c.py:%u)", t, iv);
		x->stack[t][0] = x->fbuf[t];
		th->stack = x->stack[t];
		th->n_stack = 1;
		x->tp[t] = th;
	}
	x->g.threads = x->tp;
	x->g.n_threads = GTHREADS;
}

Test(store_slices, gil_summaries_fold_what_their_input_says)
{
	static struct t_gil gs[GPIDS * GINTERVALS];
	static Stallwatch__V1__GilSummary *gsp[GPIDS * GINTERVALS];
	static Stallwatch__V1__ProcessInfo pi[GPIDS], *pip[GPIDS];
	static struct sw_gil_thread_rec scratch[SW_GIL_MAX_THREADS];
	static struct sw_gil_prep ref;
	struct sw_store *st = new_store(16);
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	size_t n = 0;

	for (uint32_t p = 0; p < GPIDS; p++) {
		stallwatch__v1__process_info__init(&pi[p]);
		pi[p].pid = 500 + p;
		pi[p].runtime = (char *)"python";
		pi[p].comm = (char *)"python3";
		pip[p] = &pi[p];
	}
	/* intervals of the three processes interleaved, as an agent sends them */
	for (uint32_t iv = 0; iv < GINTERVALS; iv++)
		for (uint32_t p = 0; p < GPIDS; p++) {
			build_gil(&gs[n], 500 + p, iv);
			gsp[n] = &gs[n].g;
			n++;
		}
	b.processes = pip;
	b.n_processes = GPIDS;
	b.gil = gsp;
	b.n_gil = n;
	cr_assert_eq(sw_store__apply(st, ID, &b, NOW), 0);

	sw_store__lock(st);
	for (size_t i = 0; i < sw_store__nprocs(st); i++) {
		const struct sw_gil_view *v = sw_store__gil(st, i);
		struct sw_proc_view pv;
		uint64_t wait = 0, other_wait = 0, flagged[SW_GIL_NPATTERNS] = {0};
		const struct t_gil *last = NULL;
		char names[64][SW_SHORT_LEN];
		uint64_t name_wait[64] = {0};
		uint32_t nn = 0;

		sw_store__proc(st, i, &pv);
		if (pv.pid < 500)
			continue;
		cr_assert_not_null(v, "pid %u has its GIL figures", pv.pid);
		for (size_t k = 0; k < n; k++) {
			if (gs[k].g.pid != pv.pid)
				continue;
			last = &gs[k];
			sw_gil__judge(&ref, &gs[k].g, scratch);
			for (int q = 0; q < SW_GIL_NPATTERNS; q++)
				flagged[q] += ref.rec.flagged &&
					      !strcmp(ref.rec.verdict.pattern, sw_gil_patterns[q]);
			for (uint32_t t = 0; t < GTHREADS; t++) {
				const char *nm = gs[k].t[t].name[0] ? gs[k].t[t].name : "unnamed";
				uint32_t j;

				wait += gs[k].t[t].wait_ns;
				for (j = 0; j < nn && strcmp(names[j], nm); j++)
					;
				if (j == nn && nn < SW_GIL_THREAD_NAMES)
					snprintf(names[nn++], SW_SHORT_LEN, "%s", nm);
				if (j < nn)
					name_wait[j] += gs[k].t[t].wait_ns;
				else
					other_wait += gs[k].t[t].wait_ns;
			}
		}
		cr_assert_eq(v->intervals, GINTERVALS);
		cr_assert_eq(v->wait_ns, wait);
		cr_assert_eq(v->n_names, nn);
		for (uint32_t j = 0; j < nn; j++) {
			cr_assert_str_eq(v->names[j].thread, names[j]);
			cr_assert_eq(v->names[j].wait_ns, name_wait[j], "pid %u name %s", pv.pid,
				     names[j]);
		}
		cr_assert_eq(v->have_other, other_wait != 0);
		cr_assert_eq(v->other.wait_ns, other_wait);
		for (int q = 0; q < SW_GIL_NPATTERNS; q++)
			cr_assert_eq(v->flagged[q], flagged[q]);
		/* the last interval's verdict and busiest threads */
		sw_gil__judge(&ref, &last->g, scratch);
		cr_assert_eq(v->utilization, ref.rec.utilization);
		cr_assert_eq(v->loop_tid, ref.rec.loop_tid);
		cr_assert_eq(v->loop_tid, pv.pid + 1, "the loop thread waited most");
		cr_assert_eq(v->n_last, SW_GIL_API_THREADS);
		for (uint32_t t = 0; t < SW_GIL_API_THREADS; t++) {
			char want[64];

			snprintf(want, sizeof(want), "%s\n", last->fbuf[t]);
			cr_assert_eq(v->last[t].tid, last->t[t].tid);
			cr_assert_str_eq(v->last[t].stack, want);
		}
		cr_assert(v->have_loop);
	}
	sw_store__unlock(st);
	sw_store__free(st);
}

/* ---- a small batch: judged first, applied in one hold ---- */

#define NSMALL 300

struct small_reader {
	struct sw_store *st;
	atomic_bool stop;
	size_t looks, bad;
	char why[256];
};

/* Every loop of the batches below has its process, its incident and its
 * count, or none of them: a batch as small as an agent's is seen whole. */
static void *small_reader_run(void *arg)
{
	struct small_reader *r = arg;

	while (!atomic_load(&r->stop)) {
		size_t nl, np, ni, nloops = 0;

		sw_store__lock(r->st);
		nl = sw_store__nloops(r->st);
		np = sw_store__nprocs(r->st);
		ni = sw_store__nincidents(r->st);
		for (size_t i = 0; i < nl; i++) {
			const struct sw_loop_view *l = sw_store__loop(r->st, i);
			uint64_t blocked = 0;

			if (l->pid < 1000)
				continue;
			nloops++;
			for (size_t p = 0; p < sw_store__npatterns(); p++)
				blocked += l->blocked[p];
			if (blocked != 1 && !r->bad++)
				snprintf(r->why, sizeof(r->why), "loop %u: blocked %llu", l->pid,
					 (unsigned long long)blocked);
		}
		np -= 2; /* new_store's two */
		if ((np != nloops || ni != nloops) && !r->bad++)
			snprintf(r->why, sizeof(r->why), "%zu loops, %zu processes, %zu incidents",
				 nloops, np, ni);
		r->looks++;
		sw_store__unlock(r->st);
	}
	return NULL;
}

Test(store_slices, a_batch_as_small_as_an_agents_is_seen_whole)
{
	struct sw_store *st = new_store(NSMALL);
	struct small_reader r = {.st = st};
	struct sw_store_holds h;
	pthread_t th;

	cr_assert_eq(pthread_create(&th, NULL, small_reader_run, &r), 0);
	for (uint32_t i = 0; i < NSMALL; i++) {
		Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
		Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pip = &pi;
		struct t_loop tl;
		Stallwatch__V1__LoopSummary *lsp = &tl.ls;
		struct t_inc *m = &msgs[0];
		Stallwatch__V1__Incident *ip = &m->in;

		pi.pid = 1000 + i;
		pi.runtime = (char *)"python";
		pi.comm = (char *)"python3";
		t_loop_init(&tl, 1000 + i, 1000 + i, "python");
		t_loop_add(&tl, 2 * MS, 10);
		build_msg(m, i, false, 80 * MS);
		/* the incident says node; its ProcessInfo, in the same batch,
		 * says python, and the process's runtime is what judges it */
		m->in.pid = m->in.tid = 1000 + i;
		m->in.runtime = (char *)"node";
		b.seq = 2 + i;
		b.processes = &pip;
		b.n_processes = 1;
		b.loops = &lsp;
		b.n_loops = 1;
		b.incidents = &ip;
		b.n_incidents = 1;
		cr_assert_eq(sw_store__apply(st, ID, &b, NOW), 0);
	}
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	cr_assert_eq(r.bad, 0, "%zu inconsistent looks of %zu: %s", r.bad, r.looks, r.why);
	sw_store__lock(st);
	sw_store__holds(st, &h);
	cr_assert_eq(h.judged_locked, 0, "judged with its ProcessInfo's runtime, without the lock");
	cr_assert_eq(sw_store__nincidents(st), NSMALL);
	for (size_t i = 0; i < NSMALL; i++)
		cr_assert_str_eq(sw_store__incident(st, i)->runtime, "python");
	sw_store__unlock(st);
	cr_log_info("small batches: the reader looked %zu times", r.looks);
	sw_store__free(st);
}

/* ---- a reader during a big batch ---- */

#define NBIG 4096 /* SW_BUDGET_BATCH_ITEMS: the most a frame may hold */

struct reader {
	struct sw_store *st;
	atomic_bool stop;
	size_t looks, mid_batch, bad;
	char why[256];
};

/*
 * Under the lock: each loop's blocked count is the number of its final
 * incidents held (the ring is big enough to hold them all), and nothing
 * goes backwards.
 */
static void *reader_run(void *arg)
{
	struct reader *r = arg;
	size_t last_n = 0;

	while (!atomic_load(&r->stop)) {
		uint64_t finals[4] = {0}, counted[4] = {0};
		size_t n;

		sw_store__lock(r->st);
		n = sw_store__nincidents(r->st);
		for (size_t i = 0; i < n; i++) {
			const struct sw_incident_view *v = sw_store__incident(r->st, i);

			finals[v->tid - 300] += !v->ongoing;
		}
		for (uint32_t t = 0; t < 4; t++) {
			const struct sw_loop_view *l = loop_of(r->st, 300, 300 + t);

			for (size_t p = 0; l && p < sw_store__npatterns(); p++)
				counted[t] += l->blocked[p];
			if (counted[t] != finals[t] && !r->bad++)
				snprintf(r->why, sizeof(r->why),
					 "tid %u: %llu counted, %llu final incidents held", 300 + t,
					 (unsigned long long)counted[t], (unsigned long long)finals[t]);
		}
		if (n < last_n && !r->bad++)
			snprintf(r->why, sizeof(r->why), "incidents %zu -> %zu", last_n, n);
		last_n = n;
		r->mid_batch += n > 0 && n < NBIG;
		r->looks++;
		sw_store__unlock(r->st);
	}
	return NULL;
}

Test(store_slices, a_reader_during_a_big_batch_sees_whole_messages)
{
	static struct t_inc big[NBIG];
	static Stallwatch__V1__Incident *bigp[NBIG];
	struct sw_store *st = new_store(NBIG);
	struct reader r = {.st = st};
	struct sw_store_holds h;
	pthread_t th;

	for (size_t i = 0; i < NBIG; i++) {
		build_msg(&big[i], i, false, 70 * MS);
		big[i].in.pid = 300;
		big[i].in.tid = 300 + (uint32_t)(i % 4);
		bigp[i] = &big[i].in;
	}
	cr_assert_eq(pthread_create(&th, NULL, reader_run, &r), 0);
	apply_msgs(st, bigp, NBIG, 1);
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	cr_assert_eq(r.bad, 0, "%zu inconsistent looks of %zu: %s", r.bad, r.looks, r.why);
	sw_store__lock(st);
	cr_assert_eq(sw_store__nincidents(st), NBIG);
	sw_store__holds(st, &h);
	sw_store__unlock(st);
	/* figures, not thresholds: the machine is shared */
	cr_log_info("reader: %zu looks, %zu in the middle of the batch; holds %llu, longest %.3f "
		    "ms",
		    r.looks, r.mid_batch, (unsigned long long)h.count, h.max_ns / 1e6);
	/* the histogram is cumulative and ends at the count */
	for (int i = 1; i < SW_STORE_HOLD_BUCKETS; i++)
		cr_assert_geq(h.le[i], h.le[i - 1]);
	cr_assert_leq(h.le[SW_STORE_HOLD_BUCKETS - 1], h.count);
	cr_assert_geq(h.sum_ns, h.max_ns);
	cr_assert_eq(h.judged_locked, 0);
	sw_store__free(st);
}
