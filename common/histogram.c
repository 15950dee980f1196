// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <string.h>
#include "histogram.h"

void sw_hist_bounds(uint32_t idx, uint64_t *lower, uint64_t *upper)
{
	uint32_t o, s, shift;

	if (idx == 0) {
		*lower = 0;
		*upper = 1ull << SW_HIST_MIN_SHIFT;
		return;
	}
	if (idx >= SW_HIST_NBUCKETS - 1) {
		*lower = 1ull << (SW_HIST_MAX_SHIFT + 1);
		*upper = UINT64_MAX;
		return;
	}
	o = (idx - 1) / SW_HIST_SUB;
	s = (idx - 1) % SW_HIST_SUB;
	shift = o + SW_HIST_MIN_SHIFT - SW_HIST_SUB_BITS;
	*lower = ((uint64_t)(SW_HIST_SUB + s)) << shift;
	*upper = ((uint64_t)(SW_HIST_SUB + s + 1)) << shift;
}

uint64_t sw_hist_bucket_mid(uint32_t idx)
{
	uint64_t lo, hi;

	sw_hist_bounds(idx, &lo, &hi);
	if (hi == UINT64_MAX)
		return lo;
	return lo + (hi - lo) / 2;
}

void sw_hist_reset(struct sw_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void sw_hist_record(struct sw_hist *h, uint64_t ns)
{
	h->counts[sw_hist_bucket(ns)]++;
	h->total++;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

int sw_hist_add_bucket(struct sw_hist *h, uint32_t idx, uint64_t count)
{
	if (idx >= SW_HIST_NBUCKETS)
		return -ERANGE;
	h->counts[idx] += count;
	h->total += count;
	return 0;
}

void sw_hist_merge(struct sw_hist *dst, const struct sw_hist *src)
{
	for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	if (src->max_ns > dst->max_ns)
		dst->max_ns = src->max_ns;
}

uint64_t sw_hist_quantile(const struct sw_hist *h, double q)
{
	uint64_t rank, seen = 0, v;

	if (h->total == 0)
		return 0;
	if (q <= 0)
		q = 0;
	if (q >= 1)
		q = 1;
	/* nearest-rank: the smallest value with at least q*total at or below */
	rank = (uint64_t)(q * (double)h->total + 0.999999999);
	if (rank == 0)
		rank = 1;
	for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			v = sw_hist_bucket_mid(i);
			if (h->max_ns && v > h->max_ns)
				v = h->max_ns;
			return v;
		}
	}
	return h->max_ns;
}

void sw_hist_counts_le(const struct sw_hist *h, const uint64_t *le_ns, size_t n, uint64_t *out)
{
	uint64_t lo, hi, acc = 0;
	size_t k = 0;

	for (uint32_t i = 0; i < SW_HIST_NBUCKETS && k < n; i++) {
		sw_hist_bounds(i, &lo, &hi);
		while (k < n && hi > le_ns[k])
			out[k++] = acc;
		acc += h->counts[i];
	}
	while (k < n)
		out[k++] = acc;
}

uint64_t sw_hist_count_le(const struct sw_hist *h, uint64_t le_ns)
{
	uint64_t lo, hi, n = 0;

	for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++) {
		sw_hist_bounds(i, &lo, &hi);
		if (hi > le_ns)
			break;
		n += h->counts[i];
	}
	return n;
}
