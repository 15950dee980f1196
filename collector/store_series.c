// SPDX-License-Identifier: Apache-2.0
/* Loop series by (agent, pid, tid): cumulative histogram and counters, and
 * the gauges of the last reporting interval. */
#include "store_internal.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int sw_series__init(struct sw_series *t, size_t cap)
{
	t->cap = cap;
	t->hmask = sw_hash_mask(cap);
	t->v = calloc(cap, sizeof(*t->v));
	t->htab = calloc(t->hmask + 1, sizeof(*t->htab));
	return t->v && t->htab ? 0 : -ENOMEM;
}

void sw_series__fini(struct sw_series *t)
{
	for (size_t i = 0; t->v && i < t->n; i++)
		free(t->v[i]);
	free(t->v);
	free(t->htab);
	memset(t, 0, sizeof(*t));
}

/* By what the series is to Prometheus, (host, pid, tid), not by agent: a
 * restarted agent's series of the same thread lands in the chain of the
 * old one, which is how a duplicate label set is caught at creation. */
static uint64_t loop_key(const struct sw_agent *a, uint32_t pid, uint32_t tid)
{
	return sw_hash_mix(sw_hash_str(a->v.host) ^ (((uint64_t)pid << 32) | tid));
}

struct sw_loop *sw_series__find(const struct sw_series *t, const struct sw_agent *a, uint32_t pid,
				uint32_t tid)
{
	struct sw_loop *l = t->htab[loop_key(a, pid, tid) & t->hmask];

	for (; l; l = l->hnext)
		if (l->agent == a && l->v.pid == pid && l->v.tid == tid)
			return l;
	return NULL;
}

struct sw_loop *sw_series__find_other(const struct sw_series *t, const struct sw_agent *a,
				      uint32_t pid, uint32_t tid)
{
	struct sw_loop *l = t->htab[loop_key(a, pid, tid) & t->hmask];

	for (; l; l = l->hnext)
		if (l->agent != a && !l->shadow && l->v.pid == pid && l->v.tid == tid &&
		    strcmp(l->agent->v.host, a->v.host) == 0)
			return l;
	return NULL;
}

size_t sw_series__index(const struct sw_series *t, const struct sw_loop *l)
{
	size_t i = 0;

	while (i < t->n && t->v[i] != l)
		i++;
	return i;
}

struct sw_loop *sw_series__add(struct sw_series *t, struct sw_agent *a, uint32_t pid, uint32_t tid)
{
	struct sw_loop *l;
	size_t h;

	if (t->n >= t->cap || !(l = calloc(1, sizeof(*l))))
		return NULL;
	l->agent = a;
	l->v.host = a->v.host;
	l->v.agent = a->v.id;
	l->v.pid = pid;
	l->v.tid = tid;
	l->hkey = loop_key(a, pid, tid);
	h = l->hkey & t->hmask;
	l->hnext = t->htab[h];
	t->htab[h] = l;
	t->v[t->n++] = l;
	return l;
}

void sw_series__remove_at(struct sw_series *t, size_t i)
{
	struct sw_loop *l = t->v[i], **pp;

	for (pp = &t->htab[l->hkey & t->hmask]; *pp; pp = &(*pp)->hnext) {
		if (*pp == l) {
			*pp = l->hnext;
			break;
		}
	}
	t->v[i] = t->v[--t->n];
	free(l);
}

/* Middle of a bucket, clamped to the interval's exact maximum: in the top
 * bucket of an interval the middle may lie above every value recorded. */
static double bucket_value(uint32_t idx, uint64_t max_ns)
{
	uint64_t mid = sw_hist_bucket_mid(idx);

	if (max_ns && mid > max_ns)
		mid = max_ns;
	return (double)mid;
}

void sw_series__prep(struct sw_loop_prep *lp, const Stallwatch__V1__LoopSummary *ls,
		     struct sw_hist *d)
{
	double sum = 0, sq = 0, mean, v;
	bool first = true;

	memset(lp, 0, sizeof(*lp));
	lp->ready = true;
	sw_hist_reset(d);
	for (size_t i = 0; i < ls->n_buckets; i++)
		/* indexes were validated by the decoder; a bad one is skipped, not trusted */
		(void)sw_hist_add_bucket(d, ls->buckets[i]->index, ls->buckets[i]->count);
	d->max_ns = ls->max_busy_ns;

	/* OTel nodejs.eventloop.delay.* are over the interval: from the delta */
	lp->total = d->total;
	lp->max_ns = (double)ls->max_busy_ns;
	if (d->total) {
		for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++) {
			if (!d->counts[i])
				continue;
			v = bucket_value(i, d->max_ns);
			if (first) {
				lp->min_ns = v;
				first = false;
			}
			sum += v * (double)d->counts[i];
		}
		mean = sum / (double)d->total;
		for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++) {
			if (!d->counts[i])
				continue;
			v = bucket_value(i, d->max_ns) - mean;
			sq += v * v * (double)d->counts[i];
		}
		lp->mean_ns = mean;
		lp->stddev_ns = sqrt(sq / (double)d->total);
		lp->p50_ns = (double)sw_hist_quantile(d, 0.50);
		lp->p90_ns = (double)sw_hist_quantile(d, 0.90);
		lp->p99_ns = (double)sw_hist_quantile(d, 0.99);
		if (!ls->max_busy_ns) {
			/* an agent that did not send the exact max: top bucket */
			for (uint32_t i = SW_HIST_NBUCKETS; i-- > 0;) {
				if (d->counts[i]) {
					lp->max_ns = (double)sw_hist_bucket_mid(i);
					break;
				}
			}
		}
		/* _sum of the exported histogram: consistent with its buckets
		 * (each value within 0.8 % of its bucket's middle) */
		lp->sum_ns = (uint64_t)sum;
	}
	if (ls->cpu_split) {
		lp->cpu_share = ls->busy_ns ? (double)ls->oncpu_ns / (double)ls->busy_ns : 0;
		if (lp->cpu_share > 1)
			lp->cpu_share = 1;
	}
	/* libuv's ELU: active / (active + idle) of the interval */
	if (ls->busy_ns + ls->idle_ns)
		lp->utilization = (double)ls->busy_ns / (double)(ls->busy_ns + ls->idle_ns);
}

void sw_series__apply(struct sw_loop *l, const Stallwatch__V1__LoopSummary *ls,
		      const struct sw_loop_prep *lp)
{
	/* the delta's buckets one by one, not sw_hist_merge of a whole
	 * histogram: a summary has ~400 of the 1730, and this runs under the
	 * store lock. The same sums: sw_hist_add_bucket skips what prep did. */
	for (size_t i = 0; i < ls->n_buckets; i++)
		(void)sw_hist_add_bucket(&l->v.hist, ls->buckets[i]->index, ls->buckets[i]->count);
	if (ls->max_busy_ns > l->v.hist.max_ns)
		l->v.hist.max_ns = ls->max_busy_ns;
	l->v.iterations += ls->iterations;
	l->v.busy_ns += ls->busy_ns;
	l->v.idle_ns += ls->idle_ns;

	l->v.interval_iterations = lp->total;
	l->v.min_ns = lp->min_ns;
	l->v.max_ns = lp->max_ns;
	l->v.mean_ns = lp->mean_ns;
	l->v.stddev_ns = lp->stddev_ns;
	l->v.p50_ns = lp->p50_ns;
	l->v.p90_ns = lp->p90_ns;
	l->v.p99_ns = lp->p99_ns;
	l->v.hist_sum_ns += lp->sum_ns;
	if (ls->cpu_split) {
		l->v.have_split = true;
		l->v.oncpu_ns += ls->oncpu_ns;
		l->v.offcpu_ns += ls->offcpu_ns;
		l->v.runq_ns += ls->runq_ns;
		l->v.cpu_share = lp->cpu_share;
	}
	l->v.utilization = lp->utilization;
}
