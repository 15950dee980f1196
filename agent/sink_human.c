// SPDX-License-Identifier: Apache-2.0
/* Human lines: what an SRE reads in a terminal. The shapes are also parsed
 * by tests (tests/root), so a change here is a change of interface. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sink.h"

struct sink_human {
	struct sw_sink base;
	FILE *out;
	int64_t mono_to_unix_ns;
};

static void wall_time(const struct sink_human *h, uint64_t mono_ns, char *buf, size_t len)
{
	uint64_t unix_ns = mono_ns + (uint64_t)h->mono_to_unix_ns;
	time_t t = (time_t)(unix_ns / 1000000000ull);
	struct tm tm;

	localtime_r(&t, &tm);
	snprintf(buf, len, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(unix_ns / 1000000ull % 1000));
}

static void human_process(struct sw_sink *s, const struct sw_proc_info *pi)
{
	struct sink_human *h = (struct sink_human *)s;

	fprintf(h->out, "attached to pid %d: %s %s (%s)%s\n", pi->pid, sw_runtime_name(pi->runtime),
		pi->version[0] ? pi->version : "(version unknown)", pi->exe,
		pi->runtime == SW_RT_NATIVE ? ": not Node.js or Python; measuring its epoll loops"
					    : "");
	/* the names the collector's series will carry; a container by its
	 * short id (docker ps) when it has no name */
	fprintf(h->out, "    service %s", pi->service[0] ? pi->service : pi->comm);
	if (pi->container_id[0])
		fprintf(h->out, ", container %s", pi->container_name[0] ? pi->container_name : "");
	if (pi->container_id[0])
		fprintf(h->out, "%s%.12s", pi->container_name[0] ? " " : "", pi->container_id);
	if (pi->pod_uid[0])
		fprintf(h->out, ", pod %s", pi->pod_name[0] ? pi->pod_name : pi->pod_uid);
	fputc('\n', h->out);
	fflush(h->out);
}

static void human_process_gone(struct sw_sink *s, uint32_t pid, bool exec)
{
	struct sink_human *h = (struct sink_human *)s;

	fprintf(h->out, "pid %u %s\n", pid,
		exec ? "exec'd a new program; re-identifying" : "exited");
	fflush(h->out);
}

static void human_process_exit(struct sw_sink *s, const struct sw_exit_rec *ex)
{
	struct sink_human *h = (struct sink_human *)s;
	char t[32];

	wall_time(h, ex->ts_ns, t, sizeof(t));
	fprintf(h->out, "%s EXIT     %s pid %u (%s) %s\n    %s\n    fix: %s\n", t, ex->runtime,
		ex->pid, ex->comm, ex->verdict.summary, ex->verdict.pattern, ex->verdict.advice);
	fflush(h->out);
}

static void human_memory(struct sw_sink *s, const struct sw_memory_rec *m)
{
	struct sink_human *h = (struct sink_human *)s;
	char t[32];

	wall_time(h, m->ts_ns, t, sizeof(t));
	fprintf(h->out, "%s MEMORY   %s pid %u (%s) %s\n    %s\n    fix: %s\n", t, m->runtime,
		m->pid, m->comm, m->verdict.summary, m->verdict.pattern, m->verdict.advice);
	fflush(h->out);
}

/* The three syscalls the loop spent most time in, and what was behind
 * each: "    waited: recvfrom x1 200.1 ms on tcp 127.0.0.1:5432" */
static void human_syscalls(struct sink_human *h, const struct sw_diag_syscalls *sys)
{
	if (!sys)
		return;
	for (uint32_t i = 0; i < sys->n && i < 3; i++) {
		const struct sw_diag_syscall *c = &sys->s[i];
		const char *kind = sw_fd_kind_name(c->kind);

		fprintf(h->out, "    %s %s x%llu %.1f ms", i ? "      " : "waited:", c->name,
			(unsigned long long)c->count, (double)c->total_ns / 1e6);
		/* "other" says nothing a target does not: an eventfd, the
		 * command line of a child a nested loop waited for */
		if (c->kind == SW_FD_OTHER || c->kind == SW_FD_NONE)
			kind = "";
		if (kind[0] || c->target[0])
			fprintf(h->out, " on %s%s%s", kind, kind[0] && c->target[0] ? " " : "",
				c->target);
		fprintf(h->out, "\n");
	}
}

/* Frames shown under a final incident: enough to see the culprit and what
 * called it, few enough for a terminal. */
#define HUMAN_FRAMES 6

/* The innermost frames of "the" stack (the hot path's), each with the share of the
 * blocked time in whose stacks it appears. */
static void human_stack(FILE *out, const struct sw_diag_stacks *st)
{
	if (!st)
		return;
	if (st->n_stacks) {
		fprintf(out, "    stack (%u sample%s, %.0f ms):\n", st->samples,
			st->samples == 1 ? "" : "s", (double)st->weight_ns / 1e6);
		for (uint32_t i = 0; i < st->n_top && i < HUMAN_FRAMES; i++)
			fprintf(out, "      %3.0f%%  %s\n", st->top[i].share * 100, st->top[i].frame);
		if (st->gc_share >= 0)
			fprintf(out, "      (Python GC running in %.0f%% of it)\n", st->gc_share * 100);
	}
	if (st->note)
		fprintf(out, "    note: %s\n", st->note);
}

static void human_incident(struct sw_sink *s, const struct sw_incident_rec *inc)
{
	struct sink_human *h = (struct sink_human *)s;
	bool named = strcmp(inc->verdict.pattern, "unknown") != 0;
	char t[32];

	wall_time(h, inc->start_ns, t, sizeof(t));
	if (inc->ongoing) {
		/* refreshed every half second while it lasts: one short line */
		bool in = inc->stacks && inc->stacks->n_stacks && inc->stacks->stacks[0].n_frames;

		fprintf(h->out,
			"%s BLOCKED  %s pid %u tid %u (%s, %s) stuck for %s%.0f ms so far%s%s%s%s\n",
			t, inc->runtime, inc->pid, inc->tid, inc->role, inc->thread,
			inc->start_unknown ? "at least " : "", (double)inc->dur_ns / 1e6,
			in ? " in " : "", in ? inc->stacks->stacks[0].frames[0] : "",
			named ? ": " : "", named ? inc->verdict.summary : "");
		fflush(h->out);
		return;
	}
	fprintf(h->out, "%s BLOCK    %s pid %u tid %u (%s, %s) loop blocked %s%.1f ms%s", t,
		inc->runtime, inc->pid, inc->tid, inc->role, inc->thread,
		inc->start_unknown ? "at least " : "", (double)inc->dur_ns / 1e6,
		inc->start_unknown ? " (it was blocked when the agent attached)" : "");
	/* name the syscall only when the sleep in it is a real part of the block */
	if (inc->diag) {
		bool name_it = inc->top_syscall[0] && inc->top_syscall_ns * 10 >= inc->dur_ns;

		fprintf(h->out, " [on-CPU %.0f ms, off-CPU %.0f ms%s%s, run-queue %.0f ms]",
			(double)inc->oncpu_ns / 1e6, (double)inc->offcpu_ns / 1e6,
			name_it ? " in " : "", name_it ? inc->top_syscall : "",
			(double)inc->runq_ns / 1e6);
	}
	fprintf(h->out, "\n");
	human_stack(h->out, inc->stacks);
	fprintf(h->out, "    %s: %s\n    fix: %s\n", inc->verdict.pattern, inc->verdict.summary,
		inc->verdict.advice);
	human_syscalls(h, inc->sys);
	if (inc->gil && inc->gil->holder_tid) {
		fprintf(h->out, "    GIL held by %s (tid %u)", inc->gil->holder, inc->gil->holder_tid);
		for (uint32_t i = 0; i < inc->gil->n_frames && i < 4; i++)
			fprintf(h->out, "%s%s", i ? " < " : ": ", inc->gil->frames[i]);
		fputc('\n', h->out);
	}
	fflush(h->out);
}

static void human_summary(struct sw_sink *s, const struct sw_summary_rec *sum)
{
	struct sink_human *h = (struct sink_human *)s;

	fprintf(h->out,
		"loop %s pid %u tid %u (%s): %llu iterations, delay p50 %.3f p99 %.3f max %.1f ms, "
		"utilization %.1f%%",
		sum->runtime, sum->pid, sum->tid, sum->role, (unsigned long long)sum->iterations,
		sw_hist_quantile(sum->hist, 0.5) / 1e6, sw_hist_quantile(sum->hist, 0.99) / 1e6,
		sum->max_ns / 1e6, sw_summary_utilization(sum) * 100);
	if (sum->diag && sum->busy_ns)
		fprintf(h->out, ", on-CPU %.0f%% of busy (%s)", sw_summary_cpu_share(sum) * 100,
			sw_loop_bound(sum->busy_ns, sum->oncpu_ns, sum->runq_ns));
	if (sum->rss_bytes)
		fprintf(h->out, ", RSS %.1f MB", (double)sum->rss_bytes / 1e6);
	fputc('\n', h->out);
	fflush(h->out);
}

/* A table per process: the threads that waited or held, busiest first. */
static void human_gil(struct sw_sink *s, const struct sw_gil_rec *g)
{
	struct sink_human *h = (struct sink_human *)s;
	double secs = (double)g->interval_ns / 1e9;

	if (g->note) {
		fprintf(h->out, "GIL      python pid %u (%s): not measured: %s\n", g->pid, g->comm,
			g->note);
		fflush(h->out);
		return;
	}
	fprintf(h->out,
		"GIL      python pid %u (%s): held %.0f%% of %.1f s, contention %.0f%%, %llu "
		"switches, switch interval %.1f ms\n",
		g->pid, g->comm, g->utilization * 100, secs, g->contention * 100,
		(unsigned long long)g->switches, (double)g->switch_interval_us / 1e3);
	fprintf(h->out, "    %-8s %-16s %8s %8s %6s %7s %7s %7s  %s\n", "tid", "thread", "wait ms",
		"hold ms", "wait%", "acq", "drops", "forced", "holding in");
	for (uint32_t i = 0; i < g->n_threads; i++) {
		const struct sw_gil_thread_rec *t = &g->threads[i];

		/* idle threads would drown the table: say how many */
		if (!t->wait_ns && !t->hold_ns && !t->loop)
			continue;
		fprintf(h->out, "    %-8u %-16s %8.1f %8.1f %5.0f%% %7llu %7llu %7llu  %s%s\n", t->tid,
			t->thread, (double)t->wait_ns / 1e6, (double)t->hold_ns / 1e6,
			sw_gil_share(t->wait_ns, g->interval_ns) * 100,
			(unsigned long long)t->acquisitions, (unsigned long long)t->drop_requests,
			(unsigned long long)t->forced_switches, t->loop ? "[loop] " : "",
			t->n_frames ? t->frames[0] : "");
	}
	if (g->flagged)
		fprintf(h->out, "    %s: %s\n    fix: %s\n", g->verdict.pattern, g->verdict.summary,
			g->verdict.advice);
	fflush(h->out);
}

/* Counters people need not hear about: they are not loss. syscalls_dropped
 * is detail an incident gives up (its shortest syscalls, said in the JSON
 * line), not a lost measurement. */
static bool quiet_counter(int i)
{
	return i == SW_HEALTH_reconnects || i == SW_HEALTH_batches_sent ||
	       i == SW_HEALTH_syscalls_dropped;
}

static void human_health(struct sw_sink *s, const struct sw_health *hl)
{
	struct sink_human *h = (struct sink_human *)s;
	bool loss = false;

	/* people need to hear about loss, not about its absence */
	for (int i = 0; i < SW_HEALTH__COUNT; i++)
		loss |= hl->v[i] && !quiet_counter(i);
	if (!loss)
		return;
	fprintf(h->out, "agent health:");
	for (int i = 0, first = 1; i < SW_HEALTH__COUNT; i++) {
		if (!hl->v[i] || quiet_counter(i))
			continue;
		fprintf(h->out, "%s %s %llu", first ? "" : ",", sw_health_names[i],
			(unsigned long long)hl->v[i]);
		first = 0;
	}
	fprintf(h->out, "\n");
	fflush(h->out);
}

static void human_free(struct sw_sink *s) { free(s); }

static const struct sw_sink_ops human_ops = {
    .name = "human",
    .process = human_process,
    .process_gone = human_process_gone,
    .process_exit = human_process_exit,
    .memory = human_memory,
    .incident = human_incident,
    .summary = human_summary,
    .gil = human_gil,
    .health = human_health,
    .free = human_free,
};

struct sw_sink *sw_sink_human__new(FILE *out, int64_t mono_to_unix_ns)
{
	struct sink_human *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->base.ops = &human_ops;
	h->out = out;
	h->mono_to_unix_ns = mono_to_unix_ns;
	return &h->base;
}
