/* SPDX-License-Identifier: Apache-2.0 */
/* User-space side of the log-linear histogram: bounds, merging, percentiles. */
#ifndef SW_HISTOGRAM_H
#define SW_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>
#include "hist_bucket.h"

struct sw_hist {
	uint64_t counts[SW_HIST_NBUCKETS];
	uint64_t total;
	uint64_t max_ns; /* exact maximum seen, 0 if none */
};

/* [lower, upper) of bucket idx, in ns. The overflow bucket's upper is
 * UINT64_MAX; the underflow bucket's lower is 0. */
void sw_hist_bounds(uint32_t idx, uint64_t *lower, uint64_t *upper);
/* Representative value of a bucket: its middle (exact max for the top one). */
uint64_t sw_hist_bucket_mid(uint32_t idx);

void sw_hist_reset(struct sw_hist *h);
void sw_hist_record(struct sw_hist *h, uint64_t ns);
int sw_hist_add_bucket(struct sw_hist *h, uint32_t idx, uint64_t count);
void sw_hist_merge(struct sw_hist *dst, const struct sw_hist *src);

/*
 * q in [0, 1]. Returns the middle of the bucket holding the q-th value,
 * clamped to max_ns when that is known; 0 for an empty histogram.
 */
uint64_t sw_hist_quantile(const struct sw_hist *h, double q);

/* Cumulative count of values whose bucket upper bound is <= le_ns; for
 * Prometheus-style coarse "le" buckets. A bucket straddling le_ns counts
 * as above it, so the error is at most one fine bucket (1.6 %). */
uint64_t sw_hist_count_le(const struct sw_hist *h, uint64_t le_ns);
/* The same for n bounds at once, le_ns ascending: one pass over the
 * buckets (the exporter's 18 `le` of every loop at every scrape). */
void sw_hist_counts_le(const struct sw_hist *h, const uint64_t *le_ns, size_t n, uint64_t *out);

#endif
