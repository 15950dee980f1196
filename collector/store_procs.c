// SPDX-License-Identifier: Apache-2.0
/* Processes by (agent, pid): what ProcessInfo said, for the series of that pid. */
#include "container.h"
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

/* Filed by (host, pid), as loop series are by (host, pid, tid): the entry
 * of another agent for the same process is in the same chain. */
static uint64_t proc_key(const struct sw_agent *a, uint32_t pid)
{
	return sw_hash_mix(sw_hash_str(a->v.host) ^ pid);
}

struct sw_proc *sw_procs__find(const struct sw_procs *t, const struct sw_agent *a, uint32_t pid)
{
	struct sw_proc *p = t->htab[proc_key(a, pid) & t->hmask];

	for (; p; p = p->hnext)
		if (p->agent == a && p->pid == pid)
			return p;
	return NULL;
}

struct sw_proc *sw_procs__find_other(const struct sw_procs *t, const struct sw_agent *a,
				     uint32_t pid)
{
	struct sw_proc *p = t->htab[proc_key(a, pid) & t->hmask];

	for (; p; p = p->hnext)
		if (p->agent != a && p->pid == pid && strcmp(p->agent->v.host, a->v.host) == 0)
			return p;
	return NULL;
}

size_t sw_procs__index(const struct sw_procs *t, const struct sw_proc *p)
{
	size_t i = 0;

	while (i < t->n && t->v[i] != p)
		i++;
	return i;
}

struct sw_proc *sw_procs__add(struct sw_procs *t, struct sw_agent *a, uint32_t pid)
{
	struct sw_proc *p;
	size_t h;

	if (t->n >= t->cap || !(p = calloc(1, sizeof(*p))))
		return NULL;
	p->agent = a;
	p->pid = pid;
	p->hkey = proc_key(a, pid);
	h = p->hkey & t->hmask;
	p->hnext = t->htab[h];
	t->htab[h] = p;
	t->v[t->n++] = p;
	return p;
}

void sw_procs__remove_at(struct sw_procs *t, size_t i)
{
	struct sw_proc *p = t->v[i], **pp;

	for (pp = &t->htab[p->hkey & t->hmask]; *pp; pp = &(*pp)->hnext) {
		if (*pp == p) {
			*pp = p->hnext;
			break;
		}
	}
	t->v[i] = t->v[--t->n];
	free(p->gil);
	free(p);
}

void sw_ident__default_service(struct sw_ident *id, const char *comm)
{
	if (!id->service[0])
		sw_utf8_copy_str(id->service, sizeof(id->service),
				 comm && comm[0] ? comm : "unknown");
}

/* A label from the wire, if it says something: bounded, valid UTF-8. */
static void set_label(char *dst, size_t size, const char *src)
{
	if (src && src[0])
		sw_utf8_copy_str(dst, size, src);
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The 12 hex digits docker ps and crictl show; anything not hex is no id. */
static void set_container_id(struct sw_ident *id, const char *full)
{
	if (full && strlen(full) >= 12 && is_hex(full, 12)) {
		memcpy(id->container_id, full, 12);
		id->container_id[12] = '\0';
	}
}

void sw_proc__update(struct sw_proc *p, const Stallwatch__V1__ProcessInfo *pi)
{
	struct sw_container_ident ci;

	if (pi->runtime && pi->runtime[0])
		sw_utf8_copy_str(p->runtime, sizeof(p->runtime),
				 sw_store_norm_runtime(pi->runtime));
	if (pi->comm && pi->comm[0])
		sw_utf8_copy_str(p->comm, sizeof(p->comm), pi->comm);
	set_label(p->id.service, sizeof(p->id.service), pi->service);
	sw_ident__default_service(&p->id, p->comm);
	set_label(p->id.runtime_version, sizeof(p->id.runtime_version), pi->runtime_version);
	set_container_id(&p->id, pi->container_id);
	set_label(p->id.pod_uid, sizeof(p->id.pod_uid), pi->pod_uid);
	/* an older agent sends the cgroup path only */
	if ((!p->id.container_id[0] || !p->id.pod_uid[0]) && pi->container &&
	    sw_container_parse(pi->container, &ci)) {
		if (!p->id.container_id[0])
			set_container_id(&p->id, ci.id);
		set_label(p->id.pod_uid, sizeof(p->id.pod_uid), ci.pod_uid);
	}
	set_label(p->id.container, sizeof(p->id.container), pi->container_name);
	set_label(p->id.pod, sizeof(p->id.pod), pi->pod_name);
	if (pi->start_ticks)
		p->start_ticks = pi->start_ticks;
	p->exited = pi->exited;
}
