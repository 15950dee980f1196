// SPDX-License-Identifier: Apache-2.0
/* The memory-growth rule on synthetic series: a sample a second, as the
 * agent takes them. */
#include <criterion/criterion.h>
#include <math.h>
#include "memgrowth.h"

#define MB (1024.0 * 1024)
#define N 301 /* a 300 s window at 1 Hz */

static double t[N], rss[N];
static const struct sw_memgrowth_cfg cfg = { .window_s = 300 };

/* deterministic noise in [-1, 1] */
static double noise(uint32_t i)
{
	uint32_t x = i * 2654435761u;

	x ^= x >> 13;
	x *= 0x5bd1e995;
	x ^= x >> 15;
	return (double)(x % 20001) / 10000.0 - 1.0;
}

static bool judge(struct sw_memgrowth_finding *f)
{
	return sw_memgrowth_judge(t, rss, N, &cfg, f);
}

Test(memgrowth, steady_leak_flagged_with_its_rate)
{
	struct sw_memgrowth_finding f;

	for (int i = 0; i < N; i++) {
		t[i] = i;
		rss[i] = 80 * MB + i * 100 * 1024.0; /* 100 KiB/s */
	}
	cr_assert(judge(&f));
	cr_assert_float_eq(f.rate_bps, 100 * 1024.0, 1.0);
	cr_assert_float_eq(f.window_s, 300.0, 1e-9);
	cr_assert_eq(f.rss_start, (uint64_t)(80 * MB));
	cr_assert_gt(f.r2, 0.99);
}

Test(memgrowth, noisy_leak_flagged)
{
	struct sw_memgrowth_finding f;

	/* 60 KiB/s under a 4 MB GC sawtooth (period 23 s) and page noise */
	for (int i = 0; i < N; i++) {
		t[i] = i;
		rss[i] = 60 * MB + i * 60 * 1024.0 + (i % 23) / 23.0 * 4 * MB + noise(i) * 0.5 * MB;
	}
	cr_assert(judge(&f));
	cr_assert_float_eq(f.rate_bps, 60 * 1024.0, 6 * 1024.0);
}

Test(memgrowth, gc_sawtooth_not_flagged)
{
	struct sw_memgrowth_finding f;

	/* a healthy heap: grows 20 MB in 40 s, collected back, again */
	for (int i = 0; i < N; i++) {
		t[i] = i;
		rss[i] = 100 * MB + (i % 40) / 40.0 * 20 * MB + noise(i) * MB;
	}
	cr_assert_not(judge(&f));
}

Test(memgrowth, sawtooth_with_long_period_not_flagged)
{
	struct sw_memgrowth_finding f;

	/* period 130 s: the window sees two rises and two drops */
	for (int i = 0; i < N; i++) {
		t[i] = i;
		rss[i] = 100 * MB + (i % 130) / 130.0 * 40 * MB;
	}
	cr_assert_not(judge(&f));
}

Test(memgrowth, one_step_not_flagged)
{
	struct sw_memgrowth_finding f;

	/* a cache filled once, in the middle of the window */
	for (int i = 0; i < N; i++) {
		t[i] = i;
		rss[i] = (i < 150 ? 50 : 90) * MB + noise(i) * 0.2 * MB;
	}
	cr_assert_not(judge(&f));
}

Test(memgrowth, flat_and_shrinking_not_flagged)
{
	struct sw_memgrowth_finding f;

	for (int i = 0; i < N; i++) {
		t[i] = i;
		rss[i] = 70 * MB + noise(i) * MB;
	}
	cr_assert_not(judge(&f));
	for (int i = 0; i < N; i++)
		rss[i] = 200 * MB - i * 100 * 1024.0;
	cr_assert_not(judge(&f));
}

Test(memgrowth, slow_growth_below_the_floor_not_flagged)
{
	struct sw_memgrowth_finding f;

	/* 4 KiB/s, steady: below the minimum rate */
	for (int i = 0; i < N; i++) {
		t[i] = i;
		rss[i] = 2 * MB + i * 4096.0;
	}
	cr_assert_not(judge(&f));
	/* 20 KiB/s on a 2 GB process: 6 MB over the window, 0.3 % */
	for (int i = 0; i < N; i++)
		rss[i] = 2048 * MB + i * 20 * 1024.0;
	cr_assert_not(judge(&f));
}

Test(memgrowth, streaming_reports_once_per_window)
{
	struct sw_memgrowth_cfg c = { .window_s = 20 };
	struct sw_memgrowth *m = sw_memgrowth__new(&c);
	struct sw_memgrowth_finding f;
	int found = 0, first = -1;

	cr_assert_not_null(m);
	/* 70 s of a 1 MB/s leak, a sample a second */
	for (int i = 0; i <= 70; i++) {
		if (sw_memgrowth__add(m, (uint64_t)i * 1000000000ull,
				      (uint64_t)(30 * MB + i * MB), &f)) {
			found++;
			if (first < 0)
				first = i;
			cr_assert_float_eq(f.rate_bps, MB, 1.0);
			cr_assert_float_eq(f.window_s, 20.0, 1.01);
		}
	}
	/* not before a full window, then once every window */
	cr_assert_geq(first, 19);
	cr_assert_leq(first, 20);
	cr_assert_eq(found, 3);
	sw_memgrowth__free(m);
}

Test(memgrowth, streaming_needs_a_full_window)
{
	struct sw_memgrowth_cfg c = { .window_s = 60 };
	struct sw_memgrowth *m = sw_memgrowth__new(&c);
	struct sw_memgrowth_finding f;

	cr_assert_not_null(m);
	for (int i = 0; i < 50; i++)
		cr_assert_not(sw_memgrowth__add(m, (uint64_t)i * 1000000000ull,
						(uint64_t)(30 * MB + i * MB), &f));
	sw_memgrowth__free(m);
}

/* What flagged a healthy workload once (tests/root/test_process.py): a GC
 * every 5 s freeing 12 MB, sampled once a second by a clock that drifts
 * against the workload's, judged over 20 s. No phase may flag it. */
Test(memgrowth, short_window_over_a_big_sawtooth_never_flagged)
{
	struct sw_memgrowth_cfg c = { .window_s = 20 };
	struct sw_memgrowth_finding f;
	double ts[21], rs[21];

	for (int phase = 0; phase < 50; phase++) {
		for (int drift = 0; drift < 5; drift++) {
			for (int i = 0; i <= 20; i++) {
				double tt = i * (1.0 + drift * 0.003) + phase * 0.1;
				double ph = fmod(tt, 5.0);

				ts[i] = i;
				rs[i] = 21 * MB + ph / 5.0 * 12 * MB + noise(i + phase) * 0.1 * MB;
			}
			cr_assert_not(sw_memgrowth_judge(ts, rs, 21, &c, &f),
				      "phase %d drift %d: %.0f B/s r2 %.2f", phase, drift, f.rate_bps,
				      f.r2);
		}
	}
}

Test(memgrowth, short_window_leak_under_a_sawtooth_flagged)
{
	struct sw_memgrowth_cfg c = { .window_s = 20 };
	struct sw_memgrowth_finding f;
	double ts[21], rs[21];

	/* 768 KiB/s under a 2 MB cycle: the leak test's workload with GC */
	for (int i = 0; i <= 20; i++) {
		ts[i] = i;
		rs[i] = 20 * MB + i * 768 * 1024.0 + fmod(i * 1.0, 5.0) / 5.0 * 2 * MB;
	}
	cr_assert(sw_memgrowth_judge(ts, rs, 21, &c, &f));
	cr_assert_float_eq(f.rate_bps, 768 * 1024.0, 80 * 1024.0);
}
