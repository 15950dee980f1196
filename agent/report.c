// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include "clock.h"
#include "frame.h"
#include "log.h"
#include "report.h"
#include "stallwatch.pb-c.h"
#include "stream.h"

/* Bounds the batch built between flushes; beyond it items are counted lost
 * rather than growing memory without limit while the loop is very noisy. */
#define SW_BATCH_MAX_ITEMS 4096

struct sw_report {
	bool json;
	struct sw_stream *stream;
	uint64_t threshold_ns;
	int64_t mono_to_unix_ns;
	uint64_t seq;
	/* pending batch */
	Stallwatch__V1__ProcessInfo **procs;
	size_t n_procs;
	Stallwatch__V1__LoopSummary **loops;
	size_t n_loops;
	Stallwatch__V1__Incident **incs;
	size_t n_incs;
	Stallwatch__V1__AgentHealth health;
	Stallwatch__V1__AgentHealth__CountersEntry health_kv[SW_HEALTH__COUNT];
	Stallwatch__V1__AgentHealth__CountersEntry *health_kvp[SW_HEALTH__COUNT];
	bool have_health;
	uint64_t lost;
	/* every live process, re-sent in each connection's hello batch */
	struct sw_proc_info *known;
	size_t n_known;
};

static char *dup_str(const char *s)
{
	return strdup(s ? s : "");
}

static void emit_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stdout);
	json_object_put(o);
}

static void jadd_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

static void jadd_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

/* A double printed with a fixed number of decimals: json-c would print
 * 83.343000000000004 for 83.343. */
static void jadd_fixed(json_object *o, const char *k, double v, int decimals)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.*f", decimals, v);
	json_object_object_add(o, k, json_object_new_double_s(v, buf));
}

/* ms with µs precision: enough for the 2 ms tolerance, short to read */
static void jadd_ms(json_object *o, const char *k, uint64_t ns)
{
	jadd_fixed(o, k, (double)ns / 1e6, 3);
}

/* The fields that name a loop thread, first in every line about one. */
static json_object *json_loop_obj(const char *kind, uint32_t pid, uint32_t tid, const char *thread,
				  const char *role, const char *runtime)
{
	json_object *o = json_object_new_object();

	jadd_str(o, "kind", kind);
	jadd_u64(o, "pid", pid);
	jadd_u64(o, "tid", tid);
	jadd_str(o, "thread", thread);
	jadd_str(o, "role", role);
	jadd_str(o, "runtime", runtime);
	return o;
}

static void human_time(struct sw_report *r, uint64_t mono_ns, char *buf, size_t len)
{
	uint64_t unix_ns = mono_ns + (uint64_t)r->mono_to_unix_ns;
	time_t t = (time_t)(unix_ns / 1000000000ull);
	struct tm tm;

	localtime_r(&t, &tm);
	snprintf(buf, len, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(unix_ns / 1000000ull % 1000));
}

struct sw_report *sw_report__new(bool json, struct sw_stream *stream, uint64_t threshold_ns)
{
	struct sw_report *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->json = json;
	r->stream = stream;
	r->threshold_ns = threshold_ns;
	r->mono_to_unix_ns = (int64_t)(sw_realtime_ns() - sw_mono_ns());
	r->procs = calloc(SW_BATCH_MAX_ITEMS, sizeof(*r->procs));
	r->loops = calloc(SW_BATCH_MAX_ITEMS, sizeof(*r->loops));
	r->incs = calloc(SW_BATCH_MAX_ITEMS, sizeof(*r->incs));
	if (!r->procs || !r->loops || !r->incs) {
		sw_report__free(r);
		return NULL;
	}
	return r;
}

static void free_proc(Stallwatch__V1__ProcessInfo *p)
{
	free(p->runtime);
	free(p->runtime_version);
	free(p->exe);
	free(p->comm);
	free(p->container);
	free(p);
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

static void free_inc(Stallwatch__V1__Incident *i)
{
	free(i->thread);
	free(i->runtime);
	free(i->role);
	free(i->pattern);
	free(i->advice);
	free(i->top_syscall);
	free(i);
}

static void clear_pending(struct sw_report *r)
{
	for (size_t i = 0; i < r->n_procs; i++)
		free_proc(r->procs[i]);
	for (size_t i = 0; i < r->n_loops; i++)
		free_loop(r->loops[i]);
	for (size_t i = 0; i < r->n_incs; i++)
		free_inc(r->incs[i]);
	r->n_procs = r->n_loops = r->n_incs = 0;
}

void sw_report__free(struct sw_report *r)
{
	if (!r)
		return;
	clear_pending(r);
	free(r->procs);
	free(r->loops);
	free(r->incs);
	free(r->known);
	free(r);
}

static Stallwatch__V1__ProcessInfo *proc_msg(const struct sw_proc_info *pi, bool exited)
{
	Stallwatch__V1__ProcessInfo *p = malloc(sizeof(*p));

	if (!p)
		return NULL;
	stallwatch__v1__process_info__init(p);
	p->pid = (uint32_t)pi->pid;
	p->runtime = dup_str(sw_runtime_name(pi->runtime));
	p->runtime_version = dup_str(pi->version);
	p->exe = dup_str(pi->exe);
	p->comm = dup_str(pi->comm);
	p->container = dup_str(pi->cgroup);
	p->exited = exited;
	if (!p->runtime || !p->runtime_version || !p->exe || !p->comm || !p->container) {
		free_proc(p);
		return NULL;
	}
	return p;
}

static void queue_proc(struct sw_report *r, const struct sw_proc_info *pi, bool exited)
{
	Stallwatch__V1__ProcessInfo *p;

	if (!r->stream)
		return;
	if (r->n_procs >= SW_BATCH_MAX_ITEMS || !(p = proc_msg(pi, exited))) {
		r->lost++;
		return;
	}
	r->procs[r->n_procs++] = p;
}

/* The first batch of every connection: hello plus the live processes, so a
 * restarted collector learns them again. */
static void update_hello(struct sw_report *r)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Hello h = STALLWATCH__V1__HELLO__INIT;
	Stallwatch__V1__ProcessInfo **ps;
	char host[256] = "", id[300];
	uint8_t *buf = NULL, *frame = NULL;
	size_t len, flen, n = 0;

	if (!r->stream)
		return;
	gethostname(host, sizeof(host) - 1);
	snprintf(id, sizeof(id), "%s:%d", host, (int)getpid());
	h.agent_id = id;
	h.hostname = host;
	h.version = SW_VERSION;
	h.start_unix_ns = sw_realtime_ns();
	h.threshold_ms = (uint32_t)(r->threshold_ns / 1000000);
	h.mono_to_unix_ns = (uint64_t)r->mono_to_unix_ns;
	b.hello = &h;
	ps = calloc(r->n_known + 1, sizeof(*ps));
	if (!ps)
		goto cleanup;
	for (size_t i = 0; i < r->n_known; i++)
		if ((ps[n] = proc_msg(&r->known[i], false)))
			n++;
	b.processes = ps;
	b.n_processes = n;
	len = stallwatch__v1__batch__get_packed_size(&b);
	buf = malloc(len ? len : 1);
	if (!buf)
		goto cleanup;
	stallwatch__v1__batch__pack(&b, buf);
	if (sw_frame_encode(buf, len, true, &frame, &flen) == 0)
		sw_stream__set_hello(r->stream, frame, flen);
cleanup:
	for (size_t i = 0; i < n; i++)
		free_proc(ps[i]);
	free(ps);
	free(buf);
}

void sw_report__process(struct sw_report *r, const struct sw_proc_info *pi)
{
	struct sw_proc_info *k;
	json_object *o;

	k = realloc(r->known, (r->n_known + 1) * sizeof(*k));
	if (k) {
		r->known = k;
		r->known[r->n_known++] = *pi;
	}
	queue_proc(r, pi, false);
	update_hello(r);
	if (r->json) {
		o = json_object_new_object();
		jadd_str(o, "kind", "process");
		jadd_u64(o, "pid", (uint64_t)pi->pid);
		jadd_str(o, "runtime", sw_runtime_name(pi->runtime));
		jadd_str(o, "version", pi->version);
		jadd_str(o, "exe", pi->exe);
		jadd_str(o, "comm", pi->comm);
		jadd_str(o, "container", pi->cgroup);
		emit_json(o);
		return;
	}
	printf("attached to pid %d: %s %s (%s)%s\n", pi->pid, sw_runtime_name(pi->runtime),
	       pi->version[0] ? pi->version : "(version unknown)", pi->exe,
	       pi->runtime == SW_RT_NATIVE ? ": not Node.js or Python; measuring its epoll loops"
					   : "");
	fflush(stdout);
}

void sw_report__process_gone(struct sw_report *r, uint32_t pid, bool exec)
{
	json_object *o;

	for (size_t i = 0; i < r->n_known; i++) {
		if ((uint32_t)r->known[i].pid != pid)
			continue;
		queue_proc(r, &r->known[i], true);
		r->known[i] = r->known[--r->n_known];
		break;
	}
	update_hello(r);
	if (r->json) {
		o = json_object_new_object();
		jadd_str(o, "kind", exec ? "process_exec" : "process_exit");
		jadd_u64(o, "pid", pid);
		emit_json(o);
		return;
	}
	printf("pid %u %s\n", pid, exec ? "exec'd a new program; re-identifying" : "exited");
	fflush(stdout);
}

void sw_report__incident(struct sw_report *r, const struct sw_incident_rec *inc)
{
	Stallwatch__V1__Incident *m;
	json_object *o;
	char t[32];

	if (r->stream) {
		m = malloc(sizeof(*m));
		if (!m || r->n_incs >= SW_BATCH_MAX_ITEMS) {
			free(m);
			r->lost++;
		} else {
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
			if (!m->thread || !m->runtime || !m->role || !m->pattern || !m->advice ||
			    !m->top_syscall) {
				free_inc(m);
				r->lost++;
			} else {
				r->incs[r->n_incs++] = m;
			}
		}
	}
	if (r->json) {
		o = json_loop_obj("incident", inc->pid, inc->tid, inc->thread, inc->role,
				  inc->runtime);
		jadd_u64(o, "start_ns", inc->start_ns);
		jadd_ms(o, "duration_ms", inc->dur_ns);
		json_object_object_add(o, "ongoing", json_object_new_boolean(inc->ongoing));
		if (inc->start_unknown)
			json_object_object_add(o, "start_before_attach",
					       json_object_new_boolean(true));
		jadd_str(o, "pattern", inc->verdict.pattern);
		jadd_str(o, "summary", inc->verdict.summary);
		jadd_str(o, "advice", inc->verdict.advice);
		if (inc->diag) {
			jadd_ms(o, "oncpu_ms", inc->oncpu_ns);
			jadd_ms(o, "offcpu_ms", inc->offcpu_ns);
			jadd_ms(o, "runq_ms", inc->runq_ns);
			jadd_u64(o, "switches", inc->switches);
			jadd_str(o, "top_syscall", inc->top_syscall);
			jadd_ms(o, "top_syscall_ms", inc->top_syscall_ns);
		}
		emit_json(o);
		return;
	}
	human_time(r, inc->start_ns, t, sizeof(t));
	if (inc->ongoing) {
		/* refreshed every half second while it lasts: one short line */
		printf("%s BLOCKED  %s pid %u tid %u (%s, %s) stuck for %s%.0f ms so far%s%s\n", t,
		       inc->runtime, inc->pid, inc->tid, inc->role, inc->thread,
		       inc->start_unknown ? "at least " : "", (double)inc->dur_ns / 1e6,
		       strcmp(inc->verdict.pattern, "blocked") ? ": " : "",
		       strcmp(inc->verdict.pattern, "blocked") ? inc->verdict.summary : "");
		fflush(stdout);
		return;
	}
	printf("%s BLOCK    %s pid %u tid %u (%s, %s) loop blocked %s%.1f ms%s", t, inc->runtime,
	       inc->pid, inc->tid, inc->role, inc->thread, inc->start_unknown ? "at least " : "",
	       (double)inc->dur_ns / 1e6,
	       inc->start_unknown ? " (it was blocked when the agent attached)" : "");
	/* name the syscall only when the sleep in it is a real part of the block */
	if (inc->diag) {
		bool name_it = inc->top_syscall[0] && inc->top_syscall_ns * 10 >= inc->dur_ns;

		printf(" [on-CPU %.0f ms, off-CPU %.0f ms%s%s, run-queue %.0f ms]",
		       (double)inc->oncpu_ns / 1e6, (double)inc->offcpu_ns / 1e6,
		       name_it ? " in " : "", name_it ? inc->top_syscall : "",
		       (double)inc->runq_ns / 1e6);
	}
	printf("\n    %s: %s\n    fix: %s\n", inc->verdict.pattern, inc->verdict.summary,
	       inc->verdict.advice);
	fflush(stdout);
}

void sw_report__summary(struct sw_report *r, const struct sw_summary_rec *s)
{
	uint64_t elapsed = s->end_ns > s->start_ns ? s->end_ns - s->start_ns : 0;
	double util = elapsed ? (double)s->busy_ns / (double)elapsed : 0;
	uint64_t p50 = sw_hist_quantile(s->hist, 0.5), p90 = sw_hist_quantile(s->hist, 0.9);
	uint64_t p99 = sw_hist_quantile(s->hist, 0.99);
	Stallwatch__V1__LoopSummary *m;
	json_object *o;
	size_t nb = 0;

	if (util > 1)
		util = 1;
	if (r->stream) {
		m = calloc(1, sizeof(*m));
		if (!m || r->n_loops >= SW_BATCH_MAX_ITEMS) {
			free(m);
			r->lost++;
			goto out;
		}
		stallwatch__v1__loop_summary__init(m);
		for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++)
			nb += s->hist->counts[i] != 0;
		m->buckets = calloc(nb ? nb : 1, sizeof(*m->buckets));
		m->thread = dup_str(s->thread);
		m->role = dup_str(s->role);
		m->runtime = dup_str(s->runtime);
		if (!m->buckets || !m->thread || !m->role || !m->runtime) {
			free_loop(m);
			r->lost++;
			goto out;
		}
		for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++) {
			Stallwatch__V1__HistBucket *b;

			if (!s->hist->counts[i])
				continue;
			b = malloc(sizeof(*b));
			if (!b) {
				free_loop(m);
				r->lost++;
				goto out;
			}
			stallwatch__v1__hist_bucket__init(b);
			b->index = i;
			b->count = s->hist->counts[i];
			m->buckets[m->n_buckets++] = b;
		}
		m->pid = s->pid;
		m->tid = s->tid;
		m->interval_start_ns = s->start_ns;
		m->interval_end_ns = s->end_ns;
		m->iterations = s->iterations;
		m->busy_ns = s->busy_ns;
		m->idle_ns = s->idle_ns;
		m->max_busy_ns = s->max_ns;
		m->hist_schema = SW_HIST_SCHEMA;
		r->loops[r->n_loops++] = m;
	}
out:
	if (r->json) {
		o = json_loop_obj("loop_summary", s->pid, s->tid, s->thread, s->role, s->runtime);
		jadd_u64(o, "start_ns", s->start_ns);
		jadd_u64(o, "end_ns", s->end_ns);
		jadd_ms(o, "interval_ms", elapsed);
		jadd_u64(o, "iterations", s->iterations);
		jadd_ms(o, "busy_ms", s->busy_ns);
		jadd_ms(o, "idle_ms", s->idle_ns);
		jadd_ms(o, "p50_ms", p50);
		jadd_ms(o, "p90_ms", p90);
		jadd_ms(o, "p99_ms", p99);
		jadd_ms(o, "max_ms", s->max_ns);
		jadd_fixed(o, "utilization", util, 4);
		emit_json(o);
		return;
	}
	printf("loop %s pid %u tid %u (%s): %llu iterations, delay p50 %.3f p99 %.3f max %.1f ms, "
	       "utilization %.1f%%\n",
	       s->runtime, s->pid, s->tid, s->role, (unsigned long long)s->iterations, p50 / 1e6,
	       p99 / 1e6, s->max_ns / 1e6, util * 100);
	fflush(stdout);
}

void sw_report__health(struct sw_report *r, const struct sw_health *h)
{
	struct sw_health all = *h;
	bool loss = false;
	json_object *o;

	all.v[SW_HEALTH_lost_events] += r->lost;
	if (r->stream) {
		/* the map entries point into r->health_kv, rebuilt each time */
		r->health = (Stallwatch__V1__AgentHealth)STALLWATCH__V1__AGENT_HEALTH__INIT;
		for (int i = 0; i < SW_HEALTH__COUNT; i++) {
			Stallwatch__V1__AgentHealth__CountersEntry *e = &r->health_kv[i];

			stallwatch__v1__agent_health__counters_entry__init(e);
			e->key = (char *)sw_health_names[i];
			e->value = all.v[i];
			r->health_kvp[i] = e;
		}
		r->health.counters = r->health_kvp;
		r->health.n_counters = SW_HEALTH__COUNT;
		r->have_health = true;
	}
	if (r->json) {
		o = json_object_new_object();
		jadd_str(o, "kind", "health");
		for (int i = 0; i < SW_HEALTH__COUNT; i++)
			jadd_u64(o, sw_health_names[i], all.v[i]);
		emit_json(o);
		return;
	}
	/* people need to hear about loss, not about its absence */
	for (int i = 0; i < SW_HEALTH__COUNT; i++)
		loss |= all.v[i] && i != SW_HEALTH_reconnects && i != SW_HEALTH_batches_sent;
	if (!loss)
		return;
	printf("agent health:");
	for (int i = 0, first = 1; i < SW_HEALTH__COUNT; i++) {
		if (!all.v[i] || i == SW_HEALTH_reconnects || i == SW_HEALTH_batches_sent)
			continue;
		printf("%s %s %llu", first ? "" : ",", sw_health_names[i],
		       (unsigned long long)all.v[i]);
		first = 0;
	}
	printf("\n");
	fflush(stdout);
}

void sw_report__flush(struct sw_report *r)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	uint8_t *buf, *frame;
	size_t len, flen;

	if (!r->stream)
		return;
	if (!r->n_procs && !r->n_loops && !r->n_incs && !r->have_health)
		return;
	b.seq = ++r->seq;
	b.processes = r->procs;
	b.n_processes = r->n_procs;
	b.loops = r->loops;
	b.n_loops = r->n_loops;
	b.incidents = r->incs;
	b.n_incidents = r->n_incs;
	b.health = r->have_health ? &r->health : NULL;
	b.sent_unix_ns = sw_realtime_ns();
	len = stallwatch__v1__batch__get_packed_size(&b);
	buf = malloc(len ? len : 1);
	if (!buf) {
		r->lost++;
		goto out;
	}
	stallwatch__v1__batch__pack(&b, buf);
	if (sw_frame_encode(buf, len, true, &frame, &flen) == 0)
		sw_stream__queue(r->stream, frame, flen);
	else
		r->lost++;
	free(buf);
out:
	clear_pending(r);
	r->have_health = false;
}
