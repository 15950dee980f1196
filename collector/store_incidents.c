// SPDX-License-Identifier: Apache-2.0
/* Incidents by (agent id, pid, tid, start_ns), in a bounded ring. */
#include "diag_proto.h"
#include "rules.h"
#include "store_internal.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sw_incidents__init(struct sw_incidents *t, size_t cap)
{
	t->cap = cap;
	t->hmask = sw_hash_mask(cap);
	t->ring = calloc(cap, sizeof(*t->ring));
	t->htab = calloc(t->hmask + 1, sizeof(*t->htab));
	return t->ring && t->htab ? 0 : -ENOMEM;
}

void sw_incidents__fini(struct sw_incidents *t)
{
	free(t->ring);
	free(t->htab);
	memset(t, 0, sizeof(*t));
}

static size_t incident_bucket(const struct sw_incidents *t, const char *agent, uint32_t pid,
			      uint32_t tid, uint64_t start_ns)
{
	uint64_t h = sw_hash_str(agent);

	h = sw_hash_mix(h ^ (((uint64_t)pid << 32) | tid));
	return sw_hash_mix(h ^ start_ns) & t->hmask;
}

struct sw_incident *sw_incidents__find(const struct sw_incidents *t, const char *agent,
				       uint32_t pid, uint32_t tid, uint64_t start_ns)
{
	struct sw_incident *in = t->htab[incident_bucket(t, agent, pid, tid, start_ns)];

	for (; in; in = in->hnext)
		if (in->v.pid == pid && in->v.tid == tid && in->v.start_ns == start_ns &&
		    strcmp(in->v.agent, agent) == 0)
			return in;
	return NULL;
}

static void unlink_incident(struct sw_incidents *t, struct sw_incident *in)
{
	struct sw_incident **pp;

	pp = &t->htab[incident_bucket(t, in->v.agent, in->v.pid, in->v.tid, in->v.start_ns)];
	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == in) {
			*pp = in->hnext;
			return;
		}
	}
}

struct sw_incident *sw_incidents__insert(struct sw_incidents *t, const char *agent, uint32_t pid,
					 uint32_t tid, uint64_t start_ns)
{
	struct sw_incident *in = &t->ring[t->head];
	size_t h;

	if (t->count == t->cap) {
		/* the oldest goes: out of the hash first, or a lookup would find
		 * the slot under its old key with new contents */
		unlink_incident(t, in);
		t->evicted++;
	} else {
		t->count++;
	}
	t->head = (t->head + 1) % t->cap;
	memset(in, 0, sizeof(*in));
	sw_utf8_copy_str(in->v.agent, sizeof(in->v.agent), agent);
	in->v.pid = pid;
	in->v.tid = tid;
	in->v.start_ns = start_ns;
	h = incident_bucket(t, in->v.agent, pid, tid, start_ns);
	in->hnext = t->htab[h];
	t->htab[h] = in;
	return in;
}

struct sw_incident *sw_incidents__at(const struct sw_incidents *t, size_t i)
{
	return &t->ring[(t->head + t->cap - 1 - i) % t->cap];
}

/* Append s to buf at *off unless it does not fit whole; false then. */
static bool put(char *buf, size_t size, size_t *off, const char *s)
{
	size_t n = strlen(s);

	if (*off + n + 1 > size)
		return false;
	memcpy(buf + *off, s, n + 1);
	*off += n;
	return true;
}

/* One folded line, "outer;...;inner weight_us\n", whole or not at all. */
static bool put_folded(char *buf, size_t size, size_t *off, const struct sw_diag_stack *s)
{
	size_t start = *off;
	char frame[256], w[32];

	for (uint32_t i = s->n_frames; i-- > 0;) {
		/* ';' separates frames and ' ' the count: neither may be in one */
		sw_utf8_copy_str(frame, sizeof(frame), s->frames[i]);
		for (char *p = frame; *p; p++)
			if (*p == ';' || *p == '\n')
				*p = ',';
		if (!put(buf, size, off, frame) || (i && !put(buf, size, off, ";")))
			goto undo;
	}
	snprintf(w, sizeof(w), " %llu\n", (unsigned long long)(s->weight_ns / 1000));
	if (put(buf, size, off, w))
		return true;
undo:
	*off = start;
	buf[start] = 0;
	return false;
}

/* Bounded copies of the diagnosis, for /api/incidents and /api/folded. */
static void keep_diag(struct sw_incident_view *v, const struct sw_diag_stacks *st,
		      const struct sw_diag_syscalls *sys, const Stallwatch__V1__Incident *pi)
{
	size_t off = 0;

	v->stack[0] = v->folded[0] = v->stack_note[0] = 0;
	v->stack_samples = 0;
	v->gc_share = pi->gc_share_known ? pi->gc_share : -1;
	v->n_sys = 0;
	if (st) {
		char frame[256];

		v->stack_samples = st->samples;
		if (st->note)
			sw_utf8_copy_str(v->stack_note, sizeof(v->stack_note), st->note);
		for (uint32_t i = 0; i < st->stacks[0].n_frames; i++) {
			sw_utf8_copy_str(frame, sizeof(frame), st->stacks[0].frames[i]);
			for (char *p = frame; *p; p++)
				if (*p == '\n')
					*p = ' ';
			if (!put(v->stack, sizeof(v->stack), &off, frame) ||
			    !put(v->stack, sizeof(v->stack), &off, "\n"))
				break;
		}
		off = 0;
		for (uint32_t k = 0; k < st->n_stacks; k++)
			if (!put_folded(v->folded, sizeof(v->folded), &off, &st->stacks[k]))
				break;
	}
	if (sys)
		for (uint32_t i = 0; i < sys->n && v->n_sys < SW_INCIDENT_SYSCALLS; i++)
			v->sys[v->n_sys++] = sys->s[i];
}

/* The loop's GIL waits and their holder (Incident 28-32). proto3 has no
 * presence: an agent that did not measure the GIL leaves them all zero. */
static void keep_gil(struct sw_incident_view *v, const Stallwatch__V1__Incident *pi)
{
	size_t off = 0;

	v->gil_wait_ns = pi->gil_wait_ns;
	v->gil_drop_requests = pi->gil_drop_requests;
	v->gil_holder_tid = pi->gil_holder_tid;
	sw_utf8_copy_str(v->gil_holder, sizeof(v->gil_holder), pi->gil_holder);
	v->gil_holder_stack[0] = 0;
	for (size_t i = 0; i < pi->n_gil_holder_stack && i < SW_GIL_STACK_FRAMES; i++) {
		char frame[SW_GIL_FRAME_LEN];

		sw_utf8_copy_str(frame, sizeof(frame), pi->gil_holder_stack[i]);
		for (char *p = frame; *p; p++)
			if (*p == '\n')
				*p = ' ';
		if (!put(v->gil_holder_stack, sizeof(v->gil_holder_stack), &off, frame) ||
		    !put(v->gil_holder_stack, sizeof(v->gil_holder_stack), &off, "\n"))
			break;
	}
	v->have_gil = v->gil_wait_ns || v->gil_holder_tid || v->gil_holder_stack[0];
}

void sw_incident__judge(struct sw_incident_view *v, const Stallwatch__V1__Incident *pi,
			const char *runtime, uint64_t threshold_ns)
{
	struct sw_incident_facts f = {0};
	struct sw_verdict verdict;
	struct sw_diag_stacks st;
	struct sw_diag_syscalls sys;
	char gil_frames[SW_GIL_STACK_FRAMES][SW_GIL_FRAME_LEN];

	sw_utf8_copy_str(v->thread, sizeof(v->thread), pi->thread);
	sw_utf8_copy_str(v->role, sizeof(v->role), sw_store_norm_role(pi->role));
	sw_utf8_copy_str(v->runtime, sizeof(v->runtime), runtime);
	sw_utf8_copy_str(v->top_syscall, sizeof(v->top_syscall), pi->top_syscall);
	v->duration_ns = pi->duration_ns;
	v->ongoing = pi->ongoing;
	v->start_unknown = pi->start_unknown;
	v->oncpu_ns = pi->oncpu_ns;
	v->offcpu_ns = pi->offcpu_ns;
	v->runq_ns = pi->runq_ns;
	v->top_syscall_ns = pi->top_syscall_ns;

	/* the agent's own verdict is ignored: every agent version is judged by
	 * this collector's rules */
	f.stacks = sw_diag_from_proto_stacks(pi, &st);
	f.sys = sw_diag_from_proto_syscalls(pi, &sys);
	keep_diag(v, f.stacks, f.sys, pi);
	keep_gil(v, pi);
	f.runtime = v->runtime;
	f.threshold_ns = threshold_ns;
	f.duration_ns = v->duration_ns;
	f.ongoing = v->ongoing;
	f.oncpu_ns = v->oncpu_ns;
	f.offcpu_ns = v->offcpu_ns;
	f.runq_ns = v->runq_ns;
	f.top_syscall = v->top_syscall;
	f.top_syscall_ns = v->top_syscall_ns;
	/* the GIL blame: the loop's waits and the holder's innermost user
	 * frame, chosen the way the agent chooses it */
	f.gil_wait_ns = v->gil_wait_ns;
	f.gil_holder = v->gil_holder;
	f.gil_holder_tid = v->gil_holder_tid;
	if (pi->n_gil_holder_stack) {
		size_t n = pi->n_gil_holder_stack < SW_GIL_STACK_FRAMES ? pi->n_gil_holder_stack
									: SW_GIL_STACK_FRAMES;

		for (size_t i = 0; i < n; i++)
			sw_utf8_copy_str(gil_frames[i], sizeof(gil_frames[i]), pi->gil_holder_stack[i]);
		f.gil_holder_frame = sw_gil_user_frame((const char(*)[SW_GIL_FRAME_LEN])gil_frames,
						       (uint32_t)n);
	}
	sw_rules_classify(&f, &verdict);
	v->pattern = verdict.pattern;
	sw_utf8_copy_str(v->summary, sizeof(v->summary), verdict.summary);
	sw_utf8_copy_str(v->advice, sizeof(v->advice), verdict.advice);
}

/* Strings by their length: a judged view's stack buffers are mostly empty
 * (a real incident's stack is ~1 KB of the 8 KB), and this runs under the
 * store lock. */
static void copy_str(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = 0;
}

#define COPY_STR(dst, src) copy_str((dst), (src), sizeof(dst))

void sw_incident__set(struct sw_incident *in, const struct sw_incident_view *j)
{
	struct sw_incident_view *v = &in->v;

	_Static_assert(sizeof(v->stack) == sizeof(j->stack), "same view");
	COPY_STR(v->thread, j->thread);
	COPY_STR(v->role, j->role);
	COPY_STR(v->runtime, j->runtime);
	COPY_STR(v->top_syscall, j->top_syscall);
	v->duration_ns = j->duration_ns;
	v->ongoing = j->ongoing;
	v->start_unknown = j->start_unknown;
	v->oncpu_ns = j->oncpu_ns;
	v->offcpu_ns = j->offcpu_ns;
	v->runq_ns = j->runq_ns;
	v->top_syscall_ns = j->top_syscall_ns;
	v->pattern = j->pattern;
	COPY_STR(v->summary, j->summary);
	COPY_STR(v->advice, j->advice);
	COPY_STR(v->stack, j->stack);
	COPY_STR(v->folded, j->folded);
	COPY_STR(v->stack_note, j->stack_note);
	v->stack_samples = j->stack_samples;
	v->gc_share = j->gc_share;
	v->n_sys = j->n_sys;
	memcpy(v->sys, j->sys, j->n_sys * sizeof(v->sys[0]));
	v->have_gil = j->have_gil;
	v->gil_wait_ns = j->gil_wait_ns;
	v->gil_drop_requests = j->gil_drop_requests;
	v->gil_holder_tid = j->gil_holder_tid;
	COPY_STR(v->gil_holder, j->gil_holder);
	COPY_STR(v->gil_holder_stack, j->gil_holder_stack);
}

void sw_incident__update(struct sw_incident *in, const Stallwatch__V1__Incident *pi,
			 const char *runtime, uint64_t threshold_ns)
{
	sw_incident__judge(&in->v, pi, runtime, threshold_ns);
}
