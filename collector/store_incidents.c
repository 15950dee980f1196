// SPDX-License-Identifier: Apache-2.0
/* Incidents by (agent id, pid, tid, start_ns), in a bounded ring. */
#include "rules.h"
#include "store_internal.h"
#include <errno.h>
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

void sw_incident__update(struct sw_incident *in, const Stallwatch__V1__Incident *pi,
			 const char *runtime)
{
	struct sw_incident_view *v = &in->v;
	struct sw_incident_facts f = {0};
	struct sw_verdict verdict;

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
	f.runtime = v->runtime;
	f.duration_ns = v->duration_ns;
	f.ongoing = v->ongoing;
	f.oncpu_ns = v->oncpu_ns;
	f.offcpu_ns = v->offcpu_ns;
	f.runq_ns = v->runq_ns;
	f.top_syscall = v->top_syscall;
	f.top_syscall_ns = v->top_syscall_ns;
	sw_rules_classify(&f, &verdict);
	v->pattern = verdict.pattern;
	v->summary = verdict.summary;
	v->advice = verdict.advice;
}
