// SPDX-License-Identifier: Apache-2.0
/* Agents by id: one entry per agent id, whatever number of connections. */
#include "store_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sw_agents__init(struct sw_agents *t)
{
	t->hmask = sw_hash_mask(SW_STORE_MAX_AGENTS);
	t->v = calloc(SW_STORE_MAX_AGENTS, sizeof(*t->v));
	t->htab = calloc(t->hmask + 1, sizeof(*t->htab));
	return t->v && t->htab ? 0 : -ENOMEM;
}

void sw_agents__fini(struct sw_agents *t)
{
	for (size_t i = 0; t->v && i < t->n; i++)
		free(t->v[i]);
	free(t->v);
	free(t->htab);
	memset(t, 0, sizeof(*t));
}

static size_t agent_bucket(const struct sw_agents *t, const char *id)
{
	return sw_hash_mix(sw_hash_str(id)) & t->hmask;
}

struct sw_agent *sw_agents__find(const struct sw_agents *t, const char *id)
{
	struct sw_agent *a = t->htab[agent_bucket(t, id)];

	for (; a; a = a->hnext)
		if (strcmp(a->v.id, id) == 0)
			return a;
	return NULL;
}

struct sw_agent *sw_agents__add(struct sw_agents *t, const char *id)
{
	struct sw_agent *a;
	size_t h;

	if (t->n >= SW_STORE_MAX_AGENTS) {
		errno = ENOSPC;
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		errno = ENOMEM;
		return NULL;
	}
	sw_utf8_copy_str(a->v.id, sizeof(a->v.id), id);
	/* until a Hello names the host, the id is the best name we have */
	sw_utf8_copy_str(a->v.host, sizeof(a->v.host), a->v.id);
	h = agent_bucket(t, a->v.id);
	a->hnext = t->htab[h];
	t->htab[h] = a;
	t->v[t->n++] = a;
	return a;
}

void sw_agents__remove_at(struct sw_agents *t, size_t i)
{
	struct sw_agent *a = t->v[i], **pp;

	for (pp = &t->htab[agent_bucket(t, a->v.id)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == a) {
			*pp = a->hnext;
			break;
		}
	}
	t->v[i] = t->v[--t->n];
	free(a);
}

/*
 * A Hello comes with every connection (sw_store__agent_up) and may come
 * again inside a batch (sw_store__apply): both land here. proto3 cannot tell
 * "unset" from "empty" or 0, so only a field that is set overwrites: an
 * agent (or a copy of it) that sends a thinner Hello must not erase the host
 * name, or the clock offset that dates its incidents.
 */
void sw_agent__hello(struct sw_agent *a, const Stallwatch__V1__Hello *h)
{
	if (!h)
		return;
	if (h->hostname && h->hostname[0])
		sw_utf8_copy_str(a->v.host, sizeof(a->v.host), h->hostname);
	if (h->version && h->version[0])
		sw_utf8_copy_str(a->v.version, sizeof(a->v.version), h->version);
	if (h->mono_to_unix_ns)
		a->mono_to_unix_ns = h->mono_to_unix_ns;
	if (h->threshold_ms)
		a->threshold_ns = (uint64_t)h->threshold_ms * 1000000ull;
	if (!h->acks)
		return; /* an older agent: seq only ever counts gaps */
	if (!a->acks || a->run_start_unix_ns != h->start_unix_ns) {
		/* first sight of this run (a new agent, a collector restarted,
		 * or a new run under a reused id): what a collector acked
		 * before is handled; only the seqs above it can be gaps */
		a->acks = true;
		a->run_start_unix_ns = h->start_unix_ns;
		a->last_seq = h->acked_seq;
		a->have_seq = true;
	} else if (h->acked_seq > a->last_seq) {
		/* another collector applied those (one behind a balancer) */
		a->last_seq = h->acked_seq;
	}
}
