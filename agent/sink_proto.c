// SPDX-License-Identifier: Apache-2.0
/* Protobuf batches for the collector: records are converted as they come,
 * held (bounded) until flush packs them into one framed Batch. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "clock.h"
#include "frame.h"
#include "diag_proto.h"
#include "sink.h"
#include "stallwatch.pb-c.h"
#include "stream.h"

struct sink_proto {
	struct sw_sink base;
	struct sw_sink_frames out;
	uint64_t threshold_ns;
	int64_t mono_to_unix_ns;
	uint64_t seq;
	/* constant for the run: the collector tells runs under one id apart */
	uint64_t start_unix_ns;
	uint64_t acked;		  /* the highest seq a collector acknowledged */
	struct sw_stream *stream; /* with a stream: acks are read, hello built */
	/* pending batch */
	Stallwatch__V1__ProcessInfo **procs;
	size_t n_procs;
	Stallwatch__V1__LoopSummary **loops;
	size_t n_loops;
	Stallwatch__V1__Incident **incs;
	size_t n_incs;
	Stallwatch__V1__MemoryGrowth **mems;
	size_t n_mems;
	Stallwatch__V1__GilSummary **gils;
	size_t n_gils;
	Stallwatch__V1__AgentHealth health;
	Stallwatch__V1__AgentHealth__CountersEntry health_kv[SW_HEALTH__COUNT];
	Stallwatch__V1__AgentHealth__CountersEntry *health_kvp[SW_HEALTH__COUNT];
	bool have_health;
	uint64_t lost;
	/* every live process, re-sent in each connection's hello batch */
	struct sw_proc_info *known;
	size_t n_known;
};

static char *dup_str(const char *s) { return strdup(s ? s : ""); }

static void free_proc(Stallwatch__V1__ProcessInfo *p)
{
	free(p->runtime);
	free(p->runtime_version);
	free(p->exe);
	free(p->comm);
	free(p->container);
	free(p->service);
	free(p->container_id);
	free(p->container_name);
	free(p->pod_uid);
	free(p->pod_name);
	free(p->exit_stderr);
	free(p->exit_pattern);
	free(p->exit_summary);
	free(p->exit_advice);
	free(p);
}

static void free_mem(Stallwatch__V1__MemoryGrowth *m)
{
	free(m->runtime);
	free(m->summary);
	free(m->advice);
	free(m);
}

static void free_loop(Stallwatch__V1__LoopSummary *l)
{
	for (size_t i = 0; i < l->n_buckets; i++)
		free(l->buckets[i]);
	free(l->buckets);
	free(l->thread);
	free(l->role);
	free(l->runtime);
	free(l);
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static void free_gil(Stallwatch__V1__GilSummary *g)
{
	for (size_t i = 0; g->threads && i < g->n_threads; i++) {
		Stallwatch__V1__GilThread *t = g->threads[i];

		if (!t)
			continue;
		free(t->name);
		free_strv(t->stack, t->n_stack);
		free(t);
	}
	free(g->threads);
	free(g->note);
	free(g->pattern);
	free(g->summary);
	free(g->advice);
	free(g->comm);
	free(g->version);
	free(g);
}

static void free_inc(Stallwatch__V1__Incident *i)
{
	free(i->thread);
	free(i->runtime);
	free(i->role);
	free(i->pattern);
	free(i->advice);
	if (i->summary != protobuf_c_empty_string)
		free(i->summary);
	free(i->top_syscall);
	if (i->gil_holder != protobuf_c_empty_string) /* the init default, when not measured */
		free(i->gil_holder);
	free_strv(i->gil_holder_stack, i->n_gil_holder_stack);
	sw_diag_proto_free(i);
	free(i);
}

static void clear_pending(struct sink_proto *p)
{
	for (size_t i = 0; i < p->n_procs; i++)
		free_proc(p->procs[i]);
	for (size_t i = 0; i < p->n_loops; i++)
		free_loop(p->loops[i]);
	for (size_t i = 0; i < p->n_incs; i++)
		free_inc(p->incs[i]);
	for (size_t i = 0; i < p->n_mems; i++)
		free_mem(p->mems[i]);
	for (size_t i = 0; i < p->n_gils; i++)
		free_gil(p->gils[i]);
	p->n_procs = p->n_loops = p->n_incs = p->n_mems = p->n_gils = 0;
}

static Stallwatch__V1__ProcessInfo *proc_msg(const struct sw_proc_info *pi, bool exited)
{
	Stallwatch__V1__ProcessInfo *m = malloc(sizeof(*m));

	if (!m)
		return NULL;
	stallwatch__v1__process_info__init(m);
	m->pid = (uint32_t)pi->pid;
	m->runtime = dup_str(sw_runtime_name(pi->runtime));
	m->runtime_version = dup_str(pi->version);
	m->exe = dup_str(pi->exe);
	m->comm = dup_str(pi->comm);
	m->container = dup_str(pi->cgroup);
	m->service = dup_str(pi->service);
	m->container_id = dup_str(pi->container_id);
	m->container_name = dup_str(pi->container_name);
	m->pod_uid = dup_str(pi->pod_uid);
	m->pod_name = dup_str(pi->pod_name);
	m->start_ticks = pi->start_ticks;
	m->exited = exited;
	m->exit_stderr = dup_str("");
	m->exit_pattern = dup_str("");
	m->exit_summary = dup_str("");
	m->exit_advice = dup_str("");
	if (!m->runtime || !m->runtime_version || !m->exe || !m->comm || !m->container ||
	    !m->service || !m->container_id || !m->container_name || !m->pod_uid ||
	    !m->pod_name || !m->exit_stderr || !m->exit_pattern || !m->exit_summary ||
	    !m->exit_advice) {
		free_proc(m);
		return NULL;
	}
	return m;
}

static void queue_proc(struct sink_proto *p, const struct sw_proc_info *pi, bool exited)
{
	Stallwatch__V1__ProcessInfo *m;

	if (p->n_procs >= SW_BATCH_MAX_ITEMS || !(m = proc_msg(pi, exited))) {
		p->lost++;
		return;
	}
	p->procs[p->n_procs++] = m;
}

/* The first batch of every connection: hello plus the live processes, so a
 * restarted collector learns them again. */
static void update_hello(struct sink_proto *p)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Hello h = STALLWATCH__V1__HELLO__INIT;
	Stallwatch__V1__ProcessInfo **ps;
	char host[256] = "", id[300];
	uint8_t *buf = NULL, *frame = NULL;
	size_t len, flen, n = 0;

	gethostname(host, sizeof(host) - 1);
	snprintf(id, sizeof(id), "%s:%d", host, (int)getpid());
	h.agent_id = id;
	h.hostname = host;
	h.version = SW_VERSION;
	h.start_unix_ns = p->start_unix_ns;
	/* the stream reads acks and resends: dedup by seq is safe for it */
	h.acks = p->stream != NULL;
	h.acked_seq = p->acked;
	h.threshold_ms = (uint32_t)(p->threshold_ns / 1000000);
	h.mono_to_unix_ns = (uint64_t)p->mono_to_unix_ns;
	if (p->stream) {
		const uint8_t *tok, *session;
		size_t toklen;

		sw_stream__credentials(p->stream, &tok, &toklen, &session);
		h.token.data = (uint8_t *)tok;
		h.token.len = toklen;
		h.session.data = (uint8_t *)session;
		h.session.len = SW_SESSION_LEN;
	}
	b.hello = &h;
	ps = calloc(p->n_known + 1, sizeof(*ps));
	if (!ps)
		goto cleanup;
	for (size_t i = 0; i < p->n_known; i++)
		if ((ps[n] = proc_msg(&p->known[i], false)))
			n++;
	b.processes = ps;
	b.n_processes = n;
	len = stallwatch__v1__batch__get_packed_size(&b);
	buf = malloc(len ? len : 1);
	if (!buf)
		goto cleanup;
	stallwatch__v1__batch__pack(&b, buf);
	if (sw_frame_encode(buf, len, true, &frame, &flen) == 0)
		p->out.set_hello(p->out.ctx, frame, flen);
cleanup:
	for (size_t i = 0; i < n; i++)
		free_proc(ps[i]);
	free(ps);
	free(buf);
}

static void proto_process(struct sw_sink *s, const struct sw_proc_info *pi)
{
	struct sink_proto *p = (struct sink_proto *)s;
	struct sw_proc_info *k;

	k = realloc(p->known, (p->n_known + 1) * sizeof(*k));
	if (k) {
		p->known = k;
		p->known[p->n_known++] = *pi;
	}
	queue_proc(p, pi, false);
	update_hello(p);
}

static void proto_process_gone(struct sw_sink *s, uint32_t pid, bool exec)
{
	struct sink_proto *p = (struct sink_proto *)s;

	/* an exec'd process is announced again by process(); the collector
	 * must not count its exec as an exit */
	for (size_t i = 0; i < p->n_known; i++) {
		if ((uint32_t)p->known[i].pid != pid)
			continue;
		queue_proc(p, &p->known[i], true);
		if (exec && p->n_procs && p->procs[p->n_procs - 1]->pid == pid) {
			free(p->procs[p->n_procs - 1]->exit_pattern);
			p->procs[p->n_procs - 1]->exit_pattern = dup_str(SW_EXEC_PATTERN);
		}
		p->known[i] = p->known[--p->n_known];
		break;
	}
	update_hello(p);
}

static void proto_process_exit(struct sw_sink *s, const struct sw_exit_rec *ex)
{
	struct sink_proto *p = (struct sink_proto *)s;
	Stallwatch__V1__ProcessInfo *m = NULL;
	size_t i;

	for (i = 0; i < p->n_known; i++)
		if ((uint32_t)p->known[i].pid == ex->pid)
			break;
	if (i == p->n_known)
		return; /* never announced: nothing to say it ended */
	if (p->n_procs >= SW_BATCH_MAX_ITEMS || !(m = proc_msg(&p->known[i], true)))
		goto lost;
	m->exit_known = ex->known;
	m->exit_code = ex->status;
	m->exit_signal = ex->signal;
	m->exit_core = ex->core;
	m->exit_in_incident = ex->in_incident;
	m->exit_blocked_ns = ex->blocked_ns;
	m->exit_uncaught = ex->uncaught;
	m->exit_from_promise = ex->from_promise;
	free(m->exit_stderr);
	free(m->exit_pattern);
	free(m->exit_summary);
	free(m->exit_advice);
	m->exit_stderr = dup_str(ex->stderr_tail);
	m->exit_pattern = dup_str(ex->verdict.pattern);
	m->exit_summary = dup_str(ex->verdict.summary);
	m->exit_advice = dup_str(ex->verdict.advice);
	if (!m->exit_stderr || !m->exit_pattern || !m->exit_summary || !m->exit_advice) {
		free_proc(m);
		goto lost;
	}
	p->procs[p->n_procs++] = m;
	goto out;
lost:
	p->lost++;
out:
	p->known[i] = p->known[--p->n_known];
	update_hello(p);
}

static void proto_memory(struct sw_sink *s, const struct sw_memory_rec *mr)
{
	struct sink_proto *p = (struct sink_proto *)s;
	Stallwatch__V1__MemoryGrowth *m;

	m = malloc(sizeof(*m));
	if (!m || p->n_mems >= SW_BATCH_MAX_ITEMS) {
		free(m);
		p->lost++;
		return;
	}
	stallwatch__v1__memory_growth__init(m);
	m->pid = mr->pid;
	m->runtime = dup_str(mr->runtime);
	m->summary = dup_str(mr->verdict.summary);
	m->advice = dup_str(mr->verdict.advice);
	m->ts_ns = mr->ts_ns;
	m->window_s = mr->window_s;
	m->rate_bytes_per_s = mr->rate_bps;
	m->rss_start = mr->rss_start;
	m->rss_end = mr->rss_end;
	m->r2 = mr->r2;
	if (!m->runtime || !m->summary || !m->advice) {
		free_mem(m);
		p->lost++;
		return;
	}
	p->mems[p->n_mems++] = m;
}

/* n strings of a char[][SW_GIL_FRAME_LEN], as a repeated string; 0 or -1. */
static int frames_msg(char ***out, size_t *n_out, const char (*frames)[SW_GIL_FRAME_LEN],
		      uint32_t n)
{
	char **v;

	*out = NULL;
	*n_out = 0;
	if (n > SW_GIL_STACK_FRAMES)
		n = SW_GIL_STACK_FRAMES;
	if (!n)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -1;
	*out = v;
	for (uint32_t i = 0; i < n; i++) {
		/* a frame the reader filled to the brim has no NUL */
		v[i] = strndup(frames[i], SW_GIL_FRAME_LEN - 1);
		if (!v[i])
			return -1; /* the caller frees what is there */
		(*n_out)++;
	}
	return 0;
}

/* The loop's GIL waits within the block (Incident 28-32); g NULL: not
 * measured, the fields stay proto3's empty defaults. 0 or -1. */
static int incident_gil(Stallwatch__V1__Incident *m, const struct sw_gil_blame *g)
{
	if (!g)
		return 0;
	m->gil_wait_ns = g->wait_ns;
	m->gil_drop_requests = g->drop_requests;
	m->gil_holder_tid = g->holder_tid;
	m->gil_holder = strndup(g->holder, sizeof(g->holder) - 1);
	if (!m->gil_holder)
		return -1;
	return frames_msg(&m->gil_holder_stack, &m->n_gil_holder_stack, g->frames, g->n_frames);
}

static void proto_incident(struct sw_sink *s, const struct sw_incident_rec *inc)
{
	struct sink_proto *p = (struct sink_proto *)s;
	Stallwatch__V1__Incident *m;

	m = malloc(sizeof(*m));
	if (!m || p->n_incs >= SW_BATCH_MAX_ITEMS) {
		free(m);
		p->lost++;
		return;
	}
	stallwatch__v1__incident__init(m);
	m->pid = inc->pid;
	m->tid = inc->tid;
	m->thread = dup_str(inc->thread);
	m->runtime = dup_str(inc->runtime);
	m->role = dup_str(inc->role);
	m->pattern = dup_str(inc->verdict.pattern);
	m->advice = dup_str(inc->verdict.advice);
	m->top_syscall = dup_str(inc->top_syscall);
	m->start_ns = inc->start_ns;
	m->duration_ns = inc->dur_ns;
	m->ongoing = inc->ongoing;
	m->oncpu_ns = inc->oncpu_ns;
	m->offcpu_ns = inc->offcpu_ns;
	m->runq_ns = inc->runq_ns;
	m->top_syscall_ns = inc->top_syscall_ns;
	m->switches = inc->switches;
	m->start_unknown = inc->start_unknown;
	m->summary = dup_str(inc->verdict.summary);
	if (!m->thread || !m->runtime || !m->role || !m->pattern || !m->advice || !m->top_syscall ||
	    !m->summary || incident_gil(m, inc->gil) ||
	    sw_diag_to_proto(m, inc->stacks, inc->sys)) {
		free_inc(m);
		p->lost++;
		return;
	}
	p->incs[p->n_incs++] = m;
}

static void proto_summary(struct sw_sink *s, const struct sw_summary_rec *sum)
{
	struct sink_proto *p = (struct sink_proto *)s;
	Stallwatch__V1__LoopSummary *m;
	size_t nb = 0;

	m = calloc(1, sizeof(*m));
	if (!m || p->n_loops >= SW_BATCH_MAX_ITEMS) {
		free(m);
		p->lost++;
		return;
	}
	stallwatch__v1__loop_summary__init(m);
	for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++)
		nb += sum->hist->counts[i] != 0;
	m->buckets = calloc(nb ? nb : 1, sizeof(*m->buckets));
	m->thread = dup_str(sum->thread);
	m->role = dup_str(sum->role);
	m->runtime = dup_str(sum->runtime);
	if (!m->buckets || !m->thread || !m->role || !m->runtime)
		goto fail;
	for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++) {
		Stallwatch__V1__HistBucket *b;

		if (!sum->hist->counts[i])
			continue;
		b = malloc(sizeof(*b));
		if (!b)
			goto fail;
		stallwatch__v1__hist_bucket__init(b);
		b->index = i;
		b->count = sum->hist->counts[i];
		m->buckets[m->n_buckets++] = b;
	}
	m->pid = sum->pid;
	m->tid = sum->tid;
	m->interval_start_ns = sum->start_ns;
	m->interval_end_ns = sum->end_ns;
	m->iterations = sum->iterations;
	m->busy_ns = sum->busy_ns;
	m->idle_ns = sum->idle_ns;
	m->max_busy_ns = sum->max_ns;
	m->hist_schema = SW_HIST_SCHEMA;
	m->rss_bytes = sum->rss_bytes;
	m->cpu_split = sum->diag;
	m->oncpu_ns = sum->oncpu_ns;
	m->offcpu_ns = sum->offcpu_ns;
	m->runq_ns = sum->runq_ns;
	p->loops[p->n_loops++] = m;
	return;
fail:
	free_loop(m);
	p->lost++;
}

static Stallwatch__V1__GilThread *gil_thread_msg(const struct sw_gil_thread_rec *t)
{
	Stallwatch__V1__GilThread *m = malloc(sizeof(*m));

	if (!m)
		return NULL;
	stallwatch__v1__gil_thread__init(m);
	m->tid = t->tid;
	m->loop = t->loop;
	m->wait_ns = t->wait_ns;
	m->hold_ns = t->hold_ns;
	m->hold_samples = t->hold_samples;
	m->acquisitions = t->acquisitions;
	m->drop_requests = t->drop_requests;
	m->forced_switches = t->forced_switches;
	m->switch_wait_ns = t->switch_wait_ns;
	m->caused_wait_ns = t->caused_wait_ns;
	m->name = strndup(t->thread, sizeof(t->thread) - 1);
	if (!m->name || frames_msg(&m->stack, &m->n_stack, t->frames, t->n_frames)) {
		free(m->name);
		free_strv(m->stack, m->n_stack);
		free(m);
		return NULL;
	}
	return m;
}

/* One GilSummary per process and interval; its threads are bounded by the
 * agent (SW_GIL_MAX_THREADS, the rest in threads_omitted), the summaries by
 * SW_BATCH_MAX_ITEMS like every other item. */
static void proto_gil(struct sw_sink *s, const struct sw_gil_rec *g)
{
	struct sink_proto *p = (struct sink_proto *)s;
	uint32_t nt = g->n_threads < SW_GIL_MAX_THREADS ? g->n_threads : SW_GIL_MAX_THREADS;
	Stallwatch__V1__GilSummary *m;

	m = calloc(1, sizeof(*m));
	if (!m || p->n_gils >= SW_BATCH_MAX_ITEMS) {
		free(m);
		p->lost++;
		return;
	}
	stallwatch__v1__gil_summary__init(m);
	m->pid = g->pid;
	m->ts_ns = g->ts_ns;
	m->interval_ns = g->interval_ns;
	m->switch_interval_us = g->switch_interval_us;
	m->samples = g->samples;
	/* the collector refuses a summary with more held samples than
	 * samples (bad_gil) and the connection with it: never send one */
	m->held_samples = g->held_samples < g->samples ? g->held_samples : g->samples;
	m->switches = g->switches;
	/* threads cut here were not omitted by the agent: count them too */
	m->threads_omitted = g->threads_omitted + (g->n_threads - nt);
	m->note = dup_str(g->note);
	m->pattern = dup_str(g->flagged ? g->verdict.pattern : NULL);
	m->summary = dup_str(g->flagged ? g->verdict.summary : NULL);
	m->advice = dup_str(g->flagged ? g->verdict.advice : NULL);
	m->comm = strndup(g->comm, sizeof(g->comm) - 1);
	m->version = dup_str(g->version);
	m->threads = calloc(nt ? nt : 1, sizeof(*m->threads));
	if (!m->note || !m->pattern || !m->summary || !m->advice || !m->comm || !m->version ||
	    !m->threads)
		goto fail;
	for (uint32_t i = 0; i < nt; i++) {
		if (!(m->threads[i] = gil_thread_msg(&g->threads[i])))
			goto fail;
		m->n_threads++;
	}
	p->gils[p->n_gils++] = m;
	return;
fail:
	free_gil(m);
	p->lost++;
}

static void proto_health(struct sw_sink *s, const struct sw_health *h)
{
	struct sink_proto *p = (struct sink_proto *)s;

	/* the map entries point into p->health_kv, rebuilt each time */
	p->health = (Stallwatch__V1__AgentHealth)STALLWATCH__V1__AGENT_HEALTH__INIT;
	for (int i = 0; i < SW_HEALTH__COUNT; i++) {
		Stallwatch__V1__AgentHealth__CountersEntry *e = &p->health_kv[i];

		stallwatch__v1__agent_health__counters_entry__init(e);
		e->key = (char *)sw_health_names[i];
		e->value = h->v[i];
		p->health_kvp[i] = e;
	}
	p->health.counters = p->health_kvp;
	p->health.n_counters = SW_HEALTH__COUNT;
	p->have_health = true;
}

static void proto_flush(struct sw_sink *s)
{
	struct sink_proto *p = (struct sink_proto *)s;
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	uint8_t *buf, *frame;
	size_t len, flen;
	uint32_t nfinal = 0;

	if (!p->n_procs && !p->n_loops && !p->n_incs && !p->n_mems && !p->n_gils && !p->have_health)
		return;
	b.seq = ++p->seq;
	b.processes = p->procs;
	b.n_processes = p->n_procs;
	b.loops = p->loops;
	b.n_loops = p->n_loops;
	b.incidents = p->incs;
	b.n_incidents = p->n_incs;
	b.memory = p->mems;
	b.n_memory = p->n_mems;
	b.gil = p->gils;
	b.n_gil = p->n_gils;
	b.health = p->have_health ? &p->health : NULL;
	b.sent_unix_ns = sw_realtime_ns();
	len = stallwatch__v1__batch__get_packed_size(&b);
	buf = malloc(len ? len : 1);
	if (!buf) {
		p->lost++;
		goto out;
	}
	stallwatch__v1__batch__pack(&b, buf);
	for (size_t i = 0; i < p->n_incs; i++)
		nfinal += !p->incs[i]->ongoing;
	if (sw_frame_encode(buf, len, true, &frame, &flen) != 0)
		p->lost++;
	else if (p->out.queue_seq)
		p->out.queue_seq(p->out.ctx, b.seq, nfinal, frame, flen);
	else
		p->out.queue(p->out.ctx, frame, flen);
	free(buf);
out:
	clear_pending(p);
	p->have_health = false;
}

static uint64_t proto_lost(const struct sw_sink *s) { return ((const struct sink_proto *)s)->lost; }

static void proto_free(struct sw_sink *s)
{
	struct sink_proto *p = (struct sink_proto *)s;

	if (p->stream)
		sw_stream__set_hello_fn(p->stream, NULL, NULL);
	clear_pending(p);
	free(p->procs);
	free(p->loops);
	free(p->incs);
	free(p->mems);
	free(p->gils);
	free(p->known);
	free(p);
}

static const struct sw_sink_ops proto_ops = {
    .name = "proto",
    .process = proto_process,
    .process_gone = proto_process_gone,
    .process_exit = proto_process_exit,
    .memory = proto_memory,
    .incident = proto_incident,
    .summary = proto_summary,
    .gil = proto_gil,
    .health = proto_health,
    .flush = proto_flush,
    .lost = proto_lost,
    .free = proto_free,
};

struct sw_sink *sw_sink_proto__new(const struct sw_sink_frames *out, uint64_t threshold_ns,
				   int64_t mono_to_unix_ns)
{
	struct sink_proto *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->base.ops = &proto_ops;
	p->out = *out;
	p->threshold_ns = threshold_ns;
	p->mono_to_unix_ns = mono_to_unix_ns;
	p->start_unix_ns = sw_realtime_ns();
	p->procs = calloc(SW_BATCH_MAX_ITEMS, sizeof(*p->procs));
	p->loops = calloc(SW_BATCH_MAX_ITEMS, sizeof(*p->loops));
	p->incs = calloc(SW_BATCH_MAX_ITEMS, sizeof(*p->incs));
	p->mems = calloc(SW_BATCH_MAX_ITEMS, sizeof(*p->mems));
	p->gils = calloc(SW_BATCH_MAX_ITEMS, sizeof(*p->gils));
	if (!p->procs || !p->loops || !p->incs || !p->mems || !p->gils) {
		proto_free(&p->base);
		return NULL;
	}
	return &p->base;
}

static void stream_queue(void *ctx, uint8_t *frame, size_t len)
{
	sw_stream__queue(ctx, frame, len);
}

static void stream_set_hello(void *ctx, uint8_t *frame, size_t len)
{
	sw_stream__set_hello(ctx, frame, len);
}

static void stream_queue_seq(void *ctx, uint64_t seq, uint32_t incidents, uint8_t *frame,
			     size_t len)
{
	sw_stream__queue_seq(ctx, seq, incidents, frame, len);
}

/* At each connection: the hello with what was acknowledged so far. */
static void stream_hello(void *ctx, uint64_t acked_seq)
{
	struct sink_proto *p = ctx;

	p->acked = acked_seq;
	update_hello(p);
}

struct sw_sink *sw_sink_proto__new_stream(struct sw_stream *stream, uint64_t threshold_ns,
					  int64_t mono_to_unix_ns)
{
	const struct sw_sink_frames out = {
	    .queue = stream_queue,
	    .set_hello = stream_set_hello,
	    .ctx = stream,
	    .queue_seq = stream_queue_seq,
	};
	struct sw_sink *s = sw_sink_proto__new(&out, threshold_ns, mono_to_unix_ns);
	struct sink_proto *p = (struct sink_proto *)s;

	if (!s)
		return NULL;
	p->stream = stream;
	sw_stream__set_hello_fn(stream, stream_hello, p);
	return s;
}
