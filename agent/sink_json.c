// SPDX-License-Identifier: Apache-2.0
/* JSON lines: one object per line, keys in a fixed order (tests and users
 * parse them; the order and the number formats are part of the output). */
#include <stdlib.h>
#include <json-c/json.h>
#include "sink.h"

struct sink_json {
	struct sw_sink base;
	FILE *out;
};

static void emit(struct sink_json *j, json_object *o)
{
	fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						    JSON_C_TO_STRING_NOSLASHESCAPE),
	      j->out);
	fputc('\n', j->out);
	fflush(j->out);
	json_object_put(o);
}

static void jadd_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

static void jadd_nonempty(json_object *o, const char *k, const char *v)
{
	if (v && *v)
		jadd_str(o, k, v);
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
static json_object *loop_obj(const char *kind, uint32_t pid, uint32_t tid, const char *thread,
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

static void json_process(struct sw_sink *s, const struct sw_proc_info *pi)
{
	json_object *o = json_object_new_object();

	jadd_str(o, "kind", "process");
	jadd_u64(o, "pid", (uint64_t)pi->pid);
	jadd_str(o, "runtime", sw_runtime_name(pi->runtime));
	jadd_str(o, "version", pi->version);
	jadd_str(o, "exe", pi->exe);
	jadd_str(o, "comm", pi->comm);
	jadd_str(o, "container", pi->cgroup);
	/* identity (docs/METRICS.md, Labels): absent rather than "" */
	jadd_nonempty(o, "service", pi->service);
	jadd_nonempty(o, "container_id", pi->container_id);
	jadd_nonempty(o, "container_name", pi->container_name);
	jadd_nonempty(o, "pod_uid", pi->pod_uid);
	jadd_nonempty(o, "pod", pi->pod_name);
	jadd_u64(o, "start_ticks", pi->start_ticks);
	emit((struct sink_json *)s, o);
}

static void json_process_gone(struct sw_sink *s, uint32_t pid, bool exec)
{
	json_object *o = json_object_new_object();

	jadd_str(o, "kind", exec ? "process_exec" : "process_exit");
	jadd_u64(o, "pid", pid);
	emit((struct sink_json *)s, o);
}

static void json_process_exit(struct sw_sink *s, const struct sw_exit_rec *ex)
{
	json_object *o = json_object_new_object();
	char sbuf[24];

	jadd_str(o, "kind", "process_exit");
	jadd_u64(o, "pid", ex->pid);
	jadd_str(o, "runtime", ex->runtime);
	jadd_str(o, "comm", ex->comm);
	jadd_u64(o, "ts_ns", ex->ts_ns);
	json_object_object_add(o, "exit_known", json_object_new_boolean(ex->known));
	if (ex->known && ex->signal) {
		jadd_u64(o, "signal", ex->signal);
		jadd_str(o, "signal_name", sw_signal_name(ex->signal, sbuf, sizeof(sbuf)));
		json_object_object_add(o, "core_dumped", json_object_new_boolean(ex->core));
	} else if (ex->known) {
		jadd_u64(o, "exit_code", ex->status);
	}
	json_object_object_add(o, "in_incident", json_object_new_boolean(ex->in_incident));
	if (ex->in_incident)
		jadd_ms(o, "blocked_ms", ex->blocked_ns);
	jadd_str(o, "pattern", ex->verdict.pattern);
	jadd_str(o, "summary", ex->verdict.summary);
	jadd_str(o, "advice", ex->verdict.advice);
	if (ex->stderr_tail && ex->stderr_tail[0])
		jadd_str(o, "stderr_tail", ex->stderr_tail);
	emit((struct sink_json *)s, o);
}

static void json_memory(struct sw_sink *s, const struct sw_memory_rec *m)
{
	json_object *o = json_object_new_object();

	jadd_str(o, "kind", "memory_growth");
	jadd_u64(o, "pid", m->pid);
	jadd_str(o, "runtime", m->runtime);
	jadd_str(o, "comm", m->comm);
	jadd_u64(o, "ts_ns", m->ts_ns);
	jadd_fixed(o, "window_s", m->window_s, 1);
	jadd_fixed(o, "rate_bytes_per_s", m->rate_bps, 0);
	jadd_u64(o, "rss_start", m->rss_start);
	jadd_u64(o, "rss_end", m->rss_end);
	jadd_fixed(o, "r2", m->r2, 3);
	jadd_str(o, "pattern", m->verdict.pattern);
	jadd_str(o, "summary", m->verdict.summary);
	jadd_str(o, "advice", m->verdict.advice);
	emit((struct sink_json *)s, o);
}

/* "stack": the heaviest stack's frames, innermost first; "stack_share":
 * its top frames with the share of all samples each appears in; "stacks":
 * every distinct stack kept, with its weight. */
static void json_stacks(json_object *o, const struct sw_diag_stacks *st)
{
	json_object *a, *arr;

	if (!st || !st->n_stacks)
		return;
	a = json_object_new_array();
	for (uint32_t i = 0; i < st->stacks[0].n_frames; i++)
		json_object_array_add(a, json_object_new_string(st->stacks[0].frames[i]));
	json_object_object_add(o, "stack", a);
	arr = json_object_new_array();
	for (uint32_t i = 0; i < st->n_top; i++) {
		json_object *f = json_object_new_object();

		jadd_str(f, "frame", st->top[i].frame);
		jadd_fixed(f, "share", st->top[i].share, 3);
		json_object_array_add(arr, f);
	}
	json_object_object_add(o, "stack_share", arr);
	jadd_u64(o, "stack_samples", st->samples);
	arr = json_object_new_array();
	for (uint32_t k = 0; k < st->n_stacks; k++) {
		json_object *so = json_object_new_object();

		a = json_object_new_array();
		for (uint32_t i = 0; i < st->stacks[k].n_frames; i++)
			json_object_array_add(a, json_object_new_string(st->stacks[k].frames[i]));
		json_object_object_add(so, "frames", a);
		jadd_ms(so, "weight_ms", st->stacks[k].weight_ns);
		jadd_u64(so, "samples", st->stacks[k].samples);
		json_object_array_add(arr, so);
	}
	json_object_object_add(o, "stacks", arr);
	if (st->gc_share >= 0)
		jadd_fixed(o, "gc_share", st->gc_share, 3);
	if (st->note)
		jadd_str(o, "stack_note", st->note);
}

/* "syscalls": [{name, count, total_ms, fd, fd_kind, target, port}] */
static void json_syscalls(json_object *o, const struct sw_diag_syscalls *sys)
{
	json_object *arr;

	if (!sys || !sys->n)
		return;
	arr = json_object_new_array();
	for (uint32_t i = 0; i < sys->n; i++) {
		const struct sw_diag_syscall *c = &sys->s[i];
		json_object *so = json_object_new_object();

		jadd_str(so, "name", c->name);
		jadd_u64(so, "count", c->count);
		jadd_ms(so, "total_ms", c->total_ns);
		if (c->fd >= 0)
			json_object_object_add(so, "fd", json_object_new_int(c->fd));
		if (c->kind != SW_FD_NONE)
			jadd_str(so, "fd_kind", sw_fd_kind_name(c->kind));
		if (c->target[0])
			jadd_str(so, "target", c->target);
		if (c->port)
			jadd_u64(so, "port", c->port);
		json_object_array_add(arr, so);
	}
	json_object_object_add(o, "syscalls", arr);
	if (sys->dropped)
		jadd_u64(o, "syscalls_dropped", sys->dropped);
}

static json_object *frames_arr(const char (*frames)[SW_GIL_FRAME_LEN], uint32_t n)
{
	json_object *a = json_object_new_array();

	for (uint32_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(frames[i]));
	return a;
}

static void json_incident(struct sw_sink *s, const struct sw_incident_rec *inc)
{
	json_object *o =
	    loop_obj("incident", inc->pid, inc->tid, inc->thread, inc->role, inc->runtime);

	jadd_u64(o, "start_ns", inc->start_ns);
	jadd_ms(o, "duration_ms", inc->dur_ns);
	json_object_object_add(o, "ongoing", json_object_new_boolean(inc->ongoing));
	if (inc->start_unknown)
		json_object_object_add(o, "start_before_attach", json_object_new_boolean(true));
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
	json_stacks(o, inc->stacks);
	json_syscalls(o, inc->sys);
	if (inc->gil) {
		json_object *g = json_object_new_object();

		jadd_ms(g, "wait_ms", inc->gil->wait_ns);
		jadd_u64(g, "drop_requests", inc->gil->drop_requests);
		jadd_u64(g, "holder_tid", inc->gil->holder_tid);
		jadd_str(g, "holder", inc->gil->holder);
		json_object_object_add(g, "holder_stack",
				       frames_arr((const char(*)[SW_GIL_FRAME_LEN])inc->gil->frames,
						  inc->gil->n_frames));
		json_object_object_add(o, "gil", g);
	}
	emit((struct sink_json *)s, o);
}

/* One line per thread, then one for the process (common/gil.h). */
static void json_gil(struct sw_sink *s, const struct sw_gil_rec *g)
{
	struct sink_json *j = (struct sink_json *)s;
	json_object *o;

	if (g->note) {
		o = json_object_new_object();
		jadd_str(o, "kind", "gil");
		jadd_u64(o, "pid", g->pid);
		jadd_str(o, "comm", g->comm);
		json_object_object_add(o, "measured", json_object_new_boolean(false));
		jadd_str(o, "note", g->note);
		emit(j, o);
		return;
	}
	for (uint32_t i = 0; i < g->n_threads; i++) {
		const struct sw_gil_thread_rec *t = &g->threads[i];

		o = json_object_new_object();
		jadd_str(o, "kind", "gil_summary");
		jadd_u64(o, "pid", g->pid);
		jadd_u64(o, "tid", t->tid);
		jadd_str(o, "thread", t->thread);
		json_object_object_add(o, "loop", json_object_new_boolean(t->loop));
		jadd_ms(o, "wait_ms", t->wait_ns);
		jadd_ms(o, "hold_ms", t->hold_ns);
		jadd_u64(o, "acquisitions", t->acquisitions);
		jadd_u64(o, "drop_requests", t->drop_requests);
		jadd_u64(o, "forced_switches", t->forced_switches);
		jadd_ms(o, "interval_ms", g->interval_ns);
		jadd_fixed(o, "wait_share", sw_gil_share(t->wait_ns, g->interval_ns), 4);
		jadd_fixed(o, "hold_share", sw_gil_share(t->hold_ns, g->interval_ns), 4);
		jadd_u64(o, "hold_samples", t->hold_samples);
		jadd_ms(o, "switch_wait_ms", t->switch_wait_ns);
		jadd_ms(o, "caused_wait_ms", t->caused_wait_ns);
		json_object_object_add(
		    o, "stack",
		    frames_arr((const char(*)[SW_GIL_FRAME_LEN])t->frames, t->n_frames));
		emit(j, o);
	}
	o = json_object_new_object();
	jadd_str(o, "kind", "gil");
	jadd_u64(o, "pid", g->pid);
	jadd_str(o, "comm", g->comm);
	jadd_str(o, "version", g->version);
	json_object_object_add(o, "measured", json_object_new_boolean(true));
	jadd_u64(o, "ts_ns", g->ts_ns);
	jadd_ms(o, "interval_ms", g->interval_ns);
	jadd_fixed(o, "switch_interval_ms", (double)g->switch_interval_us / 1e3, 3);
	jadd_u64(o, "samples", g->samples);
	jadd_u64(o, "held_samples", g->held_samples);
	jadd_fixed(o, "utilization", g->utilization, 4);
	jadd_fixed(o, "contention", g->contention, 4);
	jadd_u64(o, "waiting_threads", g->waiting_threads);
	jadd_u64(o, "switches", g->switches);
	jadd_u64(o, "loop_tid", g->loop_tid);
	jadd_fixed(o, "loop_wait_share", g->loop_wait_share, 4);
	jadd_u64(o, "threads", g->n_threads);
	jadd_u64(o, "threads_omitted", g->threads_omitted);
	if (g->n_threads && g->threads[g->top_holder].hold_ns) {
		jadd_u64(o, "top_holder_tid", g->threads[g->top_holder].tid);
		jadd_str(o, "top_holder", g->threads[g->top_holder].thread);
	}
	if (g->flagged) {
		jadd_str(o, "pattern", g->verdict.pattern);
		jadd_str(o, "summary", g->verdict.summary);
		jadd_str(o, "advice", g->verdict.advice);
	} else {
		json_object_object_add(o, "pattern", NULL);
	}
	emit(j, o);
}

static void json_summary(struct sw_sink *s, const struct sw_summary_rec *sum)
{
	json_object *o =
	    loop_obj("loop_summary", sum->pid, sum->tid, sum->thread, sum->role, sum->runtime);
	uint64_t elapsed = sw_summary_elapsed(sum);

	jadd_u64(o, "start_ns", sum->start_ns);
	jadd_u64(o, "end_ns", sum->end_ns);
	jadd_ms(o, "interval_ms", elapsed);
	jadd_u64(o, "iterations", sum->iterations);
	jadd_ms(o, "busy_ms", sum->busy_ns);
	jadd_ms(o, "idle_ms", sum->idle_ns);
	jadd_ms(o, "p50_ms", sw_hist_quantile(sum->hist, 0.5));
	jadd_ms(o, "p90_ms", sw_hist_quantile(sum->hist, 0.9));
	jadd_ms(o, "p99_ms", sw_hist_quantile(sum->hist, 0.99));
	jadd_ms(o, "max_ms", sum->max_ns);
	jadd_fixed(o, "utilization", sw_summary_utilization(sum), 4);
	if (sum->rss_bytes)
		jadd_u64(o, "rss_bytes", sum->rss_bytes);
	if (sum->diag) {
		jadd_ms(o, "oncpu_ms", sum->oncpu_ns);
		jadd_ms(o, "offcpu_ms", sum->offcpu_ns);
		jadd_ms(o, "runq_ms", sum->runq_ns);
		jadd_fixed(o, "cpu_share", sw_summary_cpu_share(sum), 4);
		jadd_str(o, "bound", sw_loop_bound(sum->busy_ns, sum->oncpu_ns, sum->runq_ns));
	}
	emit((struct sink_json *)s, o);
}

static void json_health(struct sw_sink *s, const struct sw_health *h)
{
	json_object *o = json_object_new_object();

	jadd_str(o, "kind", "health");
	for (int i = 0; i < SW_HEALTH__COUNT; i++)
		jadd_u64(o, sw_health_names[i], h->v[i]);
	emit((struct sink_json *)s, o);
}

static void json_free(struct sw_sink *s) { free(s); }

static const struct sw_sink_ops json_ops = {
    .name = "json",
    .process = json_process,
    .process_gone = json_process_gone,
    .process_exit = json_process_exit,
    .memory = json_memory,
    .incident = json_incident,
    .summary = json_summary,
    .gil = json_gil,
    .health = json_health,
    .free = json_free,
};

struct sw_sink *sw_sink_json__new(FILE *out)
{
	struct sink_json *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->base.ops = &json_ops;
	j->out = out;
	return &j->base;
}
