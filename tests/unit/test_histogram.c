// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include "histogram.h"

static struct sw_hist *h;

static void setup(void)
{
	h = calloc(1, sizeof(*h));
}

static void teardown(void)
{
	free(h);
}

TestSuite(histogram, .init = setup, .fini = teardown);

/* Every value from 10 us to 60 s lies in a bucket whose middle is within
 * 2 % of it: the accuracy requirement, checked densely. */
Test(histogram, relative_error_under_2_percent_from_10us_to_60s)
{
	double worst = 0;

	for (double v = 10e3; v <= 60e9; v *= 1.0007) {
		uint64_t ns = (uint64_t)v, lo, hi;
		uint32_t b = sw_hist_bucket(ns);

		sw_hist_bounds(b, &lo, &hi);
		cr_assert(ns >= lo && ns < hi, "%llu not in bucket %u [%llu,%llu)",
			  (unsigned long long)ns, b, (unsigned long long)lo, (unsigned long long)hi);
		double err = fabs((double)sw_hist_bucket_mid(b) - (double)ns) / (double)ns;
		if (err > worst)
			worst = err;
		cr_assert((double)(hi - lo) / (double)lo <= 0.0157, "bucket %u too wide", b);
	}
	cr_assert(worst <= 0.02, "worst relative error %f", worst);
	cr_assert(worst > 0.005, "suspiciously exact: %f", worst);
}

Test(histogram, buckets_are_contiguous_and_monotonic)
{
	uint64_t lo, hi, prev_hi = 0;

	for (uint32_t b = 0; b < SW_HIST_NBUCKETS - 1; b++) {
		sw_hist_bounds(b, &lo, &hi);
		cr_assert_eq(lo, prev_hi, "gap before bucket %u", b);
		cr_assert(hi > lo);
		cr_assert_eq(sw_hist_bucket(lo), b);
		cr_assert_eq(sw_hist_bucket(hi - 1), b);
		prev_hi = hi;
	}
}

Test(histogram, underflow_and_overflow)
{
	cr_assert_eq(sw_hist_bucket(0), 0);
	cr_assert_eq(sw_hist_bucket(1023), 0);
	cr_assert_eq(sw_hist_bucket(1024), 1);
	cr_assert_eq(sw_hist_bucket(UINT64_MAX), SW_HIST_NBUCKETS - 1);
	cr_assert_eq(sw_hist_bucket(200ull * 1000000000ull), SW_HIST_NBUCKETS - 1);
	cr_assert_lt(sw_hist_bucket(60ull * 1000000000ull), SW_HIST_NBUCKETS - 1);
}

Test(histogram, msb_matches_builtin)
{
	for (int i = 0; i < 64; i++) {
		uint64_t v = 1ull << i;

		cr_assert_eq(sw_hist_msb(v), (uint32_t)i);
		cr_assert_eq(sw_hist_msb(v | (v >> 1) | 1), (uint32_t)(63 - __builtin_clzll(v | 1)));
	}
}

Test(histogram, percentiles_of_known_distribution)
{
	/* 1..1000 ms, one each: p50 = 500 ms, p90 = 900, p99 = 990, max 1000 */
	for (uint64_t ms = 1; ms <= 1000; ms++)
		sw_hist_record(h, ms * 1000000ull);
	cr_assert_eq(h->total, 1000);
	cr_assert(fabs((double)sw_hist_quantile(h, 0.5) / 500e6 - 1) < 0.02);
	cr_assert(fabs((double)sw_hist_quantile(h, 0.9) / 900e6 - 1) < 0.02);
	cr_assert(fabs((double)sw_hist_quantile(h, 0.99) / 990e6 - 1) < 0.02);
	cr_assert_eq(sw_hist_quantile(h, 1.0), 1000000000ull, "max is exact");
	cr_assert_eq(h->max_ns, 1000000000ull);
}

Test(histogram, empty_and_single)
{
	cr_assert_eq(sw_hist_quantile(h, 0.99), 0);
	sw_hist_record(h, 123456789);
	/* the middle of its bucket, or the exact max when the middle is above */
	cr_assert(fabs((double)sw_hist_quantile(h, 0.0) / 123456789.0 - 1) < 0.008);
	cr_assert_leq(sw_hist_quantile(h, 0.5), 123456789);
	cr_assert_eq(sw_hist_quantile(h, 1.0), sw_hist_quantile(h, 0.5));
}

Test(histogram, merge_and_count_le)
{
	struct sw_hist *b = calloc(1, sizeof(*b));

	for (int i = 0; i < 10; i++)
		sw_hist_record(h, 2000000); /* 2 ms */
	for (int i = 0; i < 5; i++)
		sw_hist_record(b, 300000000); /* 300 ms */
	sw_hist_merge(h, b);
	cr_assert_eq(h->total, 15);
	cr_assert_eq(h->max_ns, 300000000);
	cr_assert_eq(sw_hist_count_le(h, 1000000), 0);
	cr_assert_eq(sw_hist_count_le(h, 2500000), 10);
	cr_assert_eq(sw_hist_count_le(h, 250000000), 10);
	cr_assert_eq(sw_hist_count_le(h, 500000000), 15);
	cr_assert_eq(sw_hist_add_bucket(h, SW_HIST_NBUCKETS, 1), -ERANGE);
	free(b);
}

/* The exporter's one-pass cumulative counts equal the per-bound ones. */
Test(histogram, counts_le_in_one_pass_equal_count_le)
{
	static const uint64_t le[] = {100000ull,     250000ull,     1000000ull,  5000000ull,
				      100000000ull, 2500000000ull, 60000000000ull};
	uint64_t out[sizeof(le) / sizeof(le[0])];
	uint64_t v = 1000;

	for (int i = 0; i < 5000; i++) {
		cr_assert_eq(sw_hist_add_bucket(h, sw_hist_bucket(v), 1), 0);
		v = v * 1103515245ull % 120000000000ull + 1;
	}
	sw_hist_counts_le(h, le, sizeof(le) / sizeof(le[0]), out);
	for (size_t k = 0; k < sizeof(le) / sizeof(le[0]); k++)
		cr_assert_eq(out[k], sw_hist_count_le(h, le[k]), "le %llu",
			     (unsigned long long)le[k]);
	cr_assert_lt(out[0], out[6]);
}
