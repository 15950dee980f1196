// SPDX-License-Identifier: Apache-2.0
/*
 * GIL contention per process (GilSummary): counters summed from the
 * agent's interval deltas, per thread name within a bound, and the last
 * interval re-judged by common/gil.c, so every agent version gets this
 * collector's verdict, as incidents get common/rules.c's.
 */
#include "store_internal.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const sw_gil_patterns[SW_GIL_NPATTERNS] = {
    SW_GIL_PATTERN_CONTENTION,
    SW_GIL_PATTERN_LOOP,
};

static int pattern_index(const char *pattern)
{
	for (int i = 0; pattern && i < SW_GIL_NPATTERNS; i++)
		if (!strcmp(sw_gil_patterns[i], pattern))
			return i;
	return -1;
}

/*
 * The per-name accumulator of a thread. Names are what the label holds
 * (UTF-8, cut to SW_SHORT_LEN); the first SW_GIL_THREAD_NAMES distinct
 * names of a process keep their own series for its life, later ones go to
 * "other". A thread really named "other" goes there too: two series with
 * one label set would be a broken exposition.
 */
static void name_norm(char name[SW_SHORT_LEN], const char *raw)
{
	sw_utf8_copy_str(name, SW_SHORT_LEN, raw);
	if (!name[0])
		snprintf(name, SW_SHORT_LEN, "%s", SW_GIL_UNNAMED_THREAD);
}

/* name: through name_norm */
static struct sw_gil_name_view *name_slot(struct sw_gil_view *v, const char *name)
{
	if (strcmp(name, SW_GIL_OTHER_THREADS)) {
		for (uint32_t i = 0; i < v->n_names; i++)
			if (!strcmp(v->names[i].thread, name))
				return &v->names[i];
		if (v->n_names < SW_GIL_THREAD_NAMES) {
			struct sw_gil_name_view *n = &v->names[v->n_names++];

			memcpy(n->thread, name, sizeof(n->thread));
			return n;
		}
	}
	if (!v->have_other) {
		v->have_other = true;
		snprintf(v->other.thread, sizeof(v->other.thread), "%s", SW_GIL_OTHER_THREADS);
	}
	return &v->other;
}

/* What sw_gil_judge reads of a thread; of the stack, only the innermost
 * frame (the verdict's summary names it). */
static void thread_rec(struct sw_gil_thread_rec *r, const Stallwatch__V1__GilThread *t)
{
	r->tid = t->tid;
	sw_utf8_copy_str(r->thread, sizeof(r->thread), t->name);
	r->loop = t->loop;
	r->wait_ns = t->wait_ns;
	r->hold_ns = t->hold_ns;
	r->hold_samples = t->hold_samples;
	r->acquisitions = t->acquisitions;
	r->drop_requests = t->drop_requests;
	r->forced_switches = t->forced_switches;
	r->switch_wait_ns = t->switch_wait_ns;
	r->caused_wait_ns = t->caused_wait_ns;
	r->n_frames = 0;
	if (t->n_stack && t->stack[0]) {
		sw_utf8_copy_str(r->frames[0], sizeof(r->frames[0]), t->stack[0]);
		r->n_frames = 1;
	}
}

/* For /api/gil: the thread's figures and whole frames of its stack. */
static void thread_view(struct sw_gil_thread_view *v, const Stallwatch__V1__GilThread *t)
{
	size_t off = 0;

	v->tid = t->tid;
	sw_utf8_copy_str(v->thread, sizeof(v->thread), t->name);
	v->loop = t->loop;
	v->wait_ns = t->wait_ns;
	v->hold_ns = t->hold_ns;
	v->acquisitions = t->acquisitions;
	v->drop_requests = t->drop_requests;
	v->forced_switches = t->forced_switches;
	v->stack[0] = 0;
	for (size_t i = 0; i < t->n_stack; i++) {
		char frame[SW_GIL_FRAME_LEN];
		size_t n = sw_utf8_copy_str(frame, sizeof(frame), t->stack[i]);

		for (char *p = frame; *p; p++)
			if (*p == '\n')
				*p = ' ';
		if (off + n + 2 > sizeof(v->stack))
			break;
		memcpy(v->stack + off, frame, n);
		off += n;
		v->stack[off++] = '\n';
		v->stack[off] = 0;
	}
}

void sw_gil__judge(struct sw_gil_prep *gp, const Stallwatch__V1__GilSummary *g,
		   struct sw_gil_thread_rec *scratch)
{
	struct sw_gil_rec *rec = &gp->rec;
	size_t nt = g->n_threads;

	memset(rec, 0, sizeof(*rec));
	gp->n_last = 0;
	gp->have_loop = false;
	if (g->note && g->note[0])
		return; /* not measured: sw_gil__apply keeps only the note */
	/* the decoder refused more; kept in case a caller did not validate */
	if (nt > SW_GIL_MAX_THREADS)
		nt = SW_GIL_MAX_THREADS;
	for (size_t i = 0; i < nt; i++) {
		const Stallwatch__V1__GilThread *t = g->threads[i];

		name_norm(gp->names[i], t->name);
		thread_rec(&scratch[i], t);
		if (i < SW_GIL_API_THREADS)
			thread_view(&gp->last[i], t);
		gp->have_loop |= t->loop;
	}
	gp->n_last = nt < SW_GIL_API_THREADS ? (uint32_t)nt : SW_GIL_API_THREADS;

	rec->pid = g->pid;
	rec->interval_ns = g->interval_ns;
	rec->switch_interval_us = g->switch_interval_us;
	rec->samples = g->samples;
	rec->held_samples = g->held_samples > g->samples ? g->samples : g->held_samples;
	rec->switches = g->switches;
	rec->n_threads = (uint32_t)nt;
	rec->threads = scratch;
	rec->threads_omitted = g->threads_omitted;
	sw_gil_judge(rec);
	rec->threads = NULL; /* scratch: the next summary's */
}

int sw_gil__apply(struct sw_proc *p, const Stallwatch__V1__GilSummary *g,
		  const struct sw_gil_prep *gp)
{
	const struct sw_gil_rec *rec = &gp->rec;
	struct sw_gil_view *v = p->gil;
	uint32_t nt = rec->n_threads;
	int pat;

	if (!v) {
		v = p->gil = calloc(1, sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	if (g->version && g->version[0])
		sw_utf8_copy_str(v->version, sizeof(v->version), g->version);
	if (g->note && g->note[0]) {
		/* not measurable (free-threaded, a version not in the table):
		 * the counters of earlier intervals stay, the gauges go */
		v->measured = false;
		sw_utf8_copy_str(v->note, sizeof(v->note), g->note);
		return 0;
	}
	v->measured = v->have_data = true;
	v->note[0] = 0;
	v->intervals++;
	v->switches += g->switches;
	for (uint32_t i = 0; i < nt; i++) {
		const Stallwatch__V1__GilThread *t = g->threads[i];
		struct sw_gil_name_view *n = name_slot(v, gp->names[i]);

		v->wait_ns += t->wait_ns;
		v->hold_ns += t->hold_ns;
		v->acquisitions += t->acquisitions;
		v->drop_requests += t->drop_requests;
		v->forced_switches += t->forced_switches;
		n->wait_ns += t->wait_ns;
		n->hold_ns += t->hold_ns;
	}
	memcpy(v->last, gp->last, gp->n_last * sizeof(v->last[0]));
	v->n_last = gp->n_last;

	v->interval_ns = g->interval_ns;
	v->switch_interval_us = g->switch_interval_us;
	v->threads = nt;
	v->threads_omitted = g->threads_omitted;
	v->utilization = rec->utilization;
	v->contention = rec->contention;
	v->waiting_threads = rec->waiting_threads;
	v->loop_tid = rec->loop_tid;
	v->loop_wait_share = rec->loop_wait_share;
	v->have_loop |= gp->have_loop;
	v->pattern = NULL;
	v->advice = NULL;
	v->summary[0] = 0;
	pat = rec->flagged ? pattern_index(rec->verdict.pattern) : -1;
	if (pat >= 0) {
		v->flagged[pat]++;
		v->pattern = sw_gil_patterns[pat];
		v->advice = rec->verdict.advice; /* common/gil.c's static text */
		sw_utf8_copy_str(v->summary, sizeof(v->summary), rec->verdict.summary);
	}
	return 0;
}
