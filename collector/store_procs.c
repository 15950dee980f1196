// SPDX-License-Identifier: Apache-2.0
/* Processes by (agent, pid): what ProcessInfo said, for the series of that pid. */
#include "store_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sw_procs__init(struct sw_procs *t, size_t cap)
{
	t->cap = cap;
	t->hmask = sw_hash_mask(cap);
	t->v = calloc(cap, sizeof(*t->v));
	t->htab = calloc(t->hmask + 1, sizeof(*t->htab));
	return t->v && t->htab ? 0 : -ENOMEM;
}

void sw_procs__fini(struct sw_procs *t)
{
	for (size_t i = 0; t->v && i < t->n; i++) {
		free(t->v[i]->gil);
		free(t->v[i]);
	}
	free(t->v);
	free(t->htab);
	memset(t, 0, sizeof(*t));
}

/* Keyed by the agent's address: a process entry never outlives its agent
 * (sw_store__tick frees processes before agents), so the address is unique
 * while the entry lives. */
static size_t proc_bucket(const struct sw_procs *t, const struct sw_agent *a, uint32_t pid)
{
	return sw_hash_mix((uint64_t)(uintptr_t)a ^ pid) & t->hmask;
}

struct sw_proc *sw_procs__find(const struct sw_procs *t, const struct sw_agent *a, uint32_t pid)
{
	struct sw_proc *p = t->htab[proc_bucket(t, a, pid)];

	for (; p; p = p->hnext)
		if (p->agent == a && p->pid == pid)
			return p;
	return NULL;
}

struct sw_proc *sw_procs__add(struct sw_procs *t, struct sw_agent *a, uint32_t pid)
{
	struct sw_proc *p;
	size_t h;

	if (t->n >= t->cap || !(p = calloc(1, sizeof(*p))))
		return NULL;
	p->agent = a;
	p->pid = pid;
	h = proc_bucket(t, a, pid);
	p->hnext = t->htab[h];
	t->htab[h] = p;
	t->v[t->n++] = p;
	return p;
}

void sw_procs__remove_at(struct sw_procs *t, size_t i)
{
	struct sw_proc *p = t->v[i], **pp;

	for (pp = &t->htab[proc_bucket(t, p->agent, p->pid)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == p) {
			*pp = p->hnext;
			break;
		}
	}
	t->v[i] = t->v[--t->n];
	free(p->gil);
	free(p);
}

void sw_proc__update(struct sw_proc *p, const Stallwatch__V1__ProcessInfo *pi, uint64_t now_ns)
{
	if (pi->runtime && pi->runtime[0])
		sw_utf8_copy_str(p->runtime, sizeof(p->runtime),
				 sw_store_norm_runtime(pi->runtime));
	if (pi->comm && pi->comm[0])
		sw_utf8_copy_str(p->comm, sizeof(p->comm), pi->comm);
	/* 0 means "live" in stale_since_ns */
	p->stale_since_ns = pi->exited ? (now_ns ? now_ns : 1) : 0;
}
