// SPDX-License-Identifier: Apache-2.0
/*
 * The stores behind store.c, white-box (store_internal.h): under churn, every
 * entry is in its hash exactly once, found by its key, and what was removed
 * or evicted is found by nothing. Checked by walking every chain, so a stale
 * link is caught even where a lookup would happen to miss it.
 */
#include "store_internal.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* deterministic: a failure must reproduce */
static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1664525u + 1013904223u;
	return rnd_state >> 8;
}

#define CHAINED(htab, hmask)                                                                       \
	({                                                                                         \
		size_t _n = 0;                                                                     \
		for (size_t _b = 0; _b <= (hmask); _b++)                                           \
			for (typeof((htab)[0]) _e = (htab)[_b]; _e; _e = _e->hnext)                \
				_n++;                                                              \
		_n;                                                                                \
	})

TestSuite(store_hash);

static void check_agents(const struct sw_agents *t)
{
	cr_assert_eq(CHAINED(t->htab, t->hmask), t->n);
	for (size_t i = 0; i < t->n; i++)
		cr_assert_eq(sw_agents__find(t, t->v[i]->v.id), t->v[i], "%s", t->v[i]->v.id);
}

Test(store_hash, agents_insert_remove_reinsert)
{
	static bool live[4 * SW_STORE_MAX_AGENTS];
	struct sw_agents t = {0};
	char id[32];
	size_t k;

	cr_assert_eq(sw_agents__init(&t), 0);
	for (int round = 0; round < 20; round++) {
		/* fill up with ids not held now, some of them removed before */
		for (k = 0; t.n < SW_STORE_MAX_AGENTS; k = (k + 1) % (4 * SW_STORE_MAX_AGENTS)) {
			if (live[k] || rnd() % 4)
				continue;
			snprintf(id, sizeof(id), "host-%zu:%zu", k, k * 7);
			cr_assert_not_null(sw_agents__add(&t, id));
			live[k] = true;
		}
		cr_assert_null(sw_agents__add(&t, "no-room"));
		cr_assert_eq(errno, ENOSPC);
		check_agents(&t);
		/* remove about half, from anywhere in the vector */
		for (size_t i = 0; i < t.n;) {
			if (rnd() % 2) {
				i++;
				continue;
			}
			cr_assert_eq(sscanf(t.v[i]->v.id, "host-%zu", &k), 1);
			live[k] = false;
			sw_agents__remove_at(&t, i);
		}
		check_agents(&t);
		for (k = 0; k < 4 * SW_STORE_MAX_AGENTS; k++) {
			snprintf(id, sizeof(id), "host-%zu:%zu", k, k * 7);
			cr_assert_eq(!!sw_agents__find(&t, id), live[k], "%s", id);
		}
	}
	sw_agents__fini(&t);
}

static void check_procs(const struct sw_procs *t)
{
	cr_assert_eq(CHAINED(t->htab, t->hmask), t->n);
	for (size_t i = 0; i < t->n; i++)
		cr_assert_eq(sw_procs__find(t, t->v[i]->agent, t->v[i]->pid), t->v[i]);
}

Test(store_hash, procs_by_agent_and_pid)
{
	static struct sw_agent agents[3];
	static bool live[3][600];
	struct sw_procs t = {0};
	const size_t cap = 256;

	cr_assert_eq(sw_procs__init(&t, cap), 0);
	for (int round = 0; round < 50; round++) {
		while (t.n < cap) {
			size_t a = rnd() % 3, pid = rnd() % 600;

			if (live[a][pid])
				continue;
			cr_assert_not_null(sw_procs__add(&t, &agents[a], (uint32_t)pid));
			live[a][pid] = true;
		}
		cr_assert_null(sw_procs__add(&t, &agents[0], 9999), "over the cap");
		check_procs(&t);
		for (size_t i = 0; i < t.n;) {
			if (rnd() % 3) {
				i++;
				continue;
			}
			live[t.v[i]->agent - agents][t.v[i]->pid] = false;
			sw_procs__remove_at(&t, i);
		}
		check_procs(&t);
		for (size_t a = 0; a < 3; a++)
			for (uint32_t pid = 0; pid < 600; pid++)
				cr_assert_eq(!!sw_procs__find(&t, &agents[a], pid), live[a][pid]);
	}
	sw_procs__fini(&t);
}

static void check_series(const struct sw_series *t)
{
	cr_assert_eq(CHAINED(t->htab, t->hmask), t->n);
	for (size_t i = 0; i < t->n; i++)
		cr_assert_eq(sw_series__find(t, t->v[i]->agent, t->v[i]->v.pid, t->v[i]->v.tid),
			     t->v[i]);
}

Test(store_hash, series_by_agent_pid_tid)
{
	static struct sw_agent agents[2];
	static bool live[2][20][40];
	struct sw_series *t = calloc(1, sizeof(*t));
	const size_t cap = 300;

	cr_assert_not_null(t);
	cr_assert_eq(sw_series__init(t, cap), 0);
	for (int round = 0; round < 50; round++) {
		while (t->n < cap) {
			size_t a = rnd() % 2, pid = rnd() % 20, tid = rnd() % 40;

			if (live[a][pid][tid])
				continue;
			cr_assert_not_null(
			    sw_series__add(t, &agents[a], (uint32_t)pid, (uint32_t)tid));
			live[a][pid][tid] = true;
		}
		cr_assert_null(sw_series__add(t, &agents[0], 999, 999), "over the cap");
		check_series(t);
		for (size_t i = 0; i < t->n;) {
			if (rnd() % 2) {
				i++;
				continue;
			}
			live[t->v[i]->agent - agents][t->v[i]->v.pid][t->v[i]->v.tid] = false;
			sw_series__remove_at(t, i);
		}
		check_series(t);
		for (size_t a = 0; a < 2; a++)
			for (uint32_t pid = 0; pid < 20; pid++)
				for (uint32_t tid = 0; tid < 40; tid++)
					cr_assert_eq(!!sw_series__find(t, &agents[a], pid, tid),
						     live[a][pid][tid]);
	}
	sw_series__fini(t);
	free(t);
}

static void check_incidents(const struct sw_incidents *t)
{
	cr_assert_eq(CHAINED(t->htab, t->hmask), t->count);
	for (size_t i = 0; i < t->count; i++) {
		struct sw_incident *in = sw_incidents__at(t, i);

		cr_assert_eq(
		    sw_incidents__find(t, in->v.agent, in->v.pid, in->v.tid, in->v.start_ns), in,
		    "entry %zu", i);
	}
}

Test(store_hash, incident_ring_eviction_leaves_the_hash)
{
	struct sw_incidents t = {0};
	const size_t cap = 16, total = 5000;
	const char *agents[2] = {"h1:42", "h2:43"};

	cr_assert_eq(sw_incidents__init(&t, cap), 0);
	for (size_t k = 0; k < total; k++) {
		const char *a = agents[k % 2];
		uint32_t pid = 100 + (uint32_t)(rnd() % 4);

		cr_assert_null(sw_incidents__find(&t, a, pid, pid, k));
		cr_assert_not_null(sw_incidents__insert(&t, a, pid, pid, k));
		check_incidents(&t);
		/* what just left the ring is found by nothing */
		if (k >= cap)
			for (uint32_t p = 100; p < 104; p++)
				cr_assert_null(
				    sw_incidents__find(&t, agents[(k - cap) % 2], p, p, k - cap));
	}
	cr_assert_eq(t.count, cap);
	cr_assert_eq(t.evicted, total - cap);
	/* the same key but for the agent is another incident */
	cr_assert_null(sw_incidents__find(&t, "h3:44", 100, 100, total - 1));
	sw_incidents__fini(&t);
}
