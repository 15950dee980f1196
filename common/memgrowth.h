/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Memory growth: is a process's resident size growing steadily, or only
 * breathing (a GC sawtooth, a cache filling once)? A pure detector over
 * (time, RSS) samples, shared by the agent (which samples /proc/PID/statm
 * once a second) and, later, the collector.
 *
 * The rule (docs/METRICS.md, "Memory growth", has the measurements behind
 * the numbers): over the last window_s seconds of samples, the
 * least-squares slope must be
 *   - material: at least min_rate_bps and at least min_rel of the window's
 *     starting size over the window, and above the noise (the line explains
 *     at least half of the variance, r2 >= 0.5);
 *   - sustained: the slopes of the window's first and second halves are
 *     each at least half of it (a single step, such as a cache warming up,
 *     gives one flat half), and the floor rises: the lowest sample of the
 *     last quarter is above the lowest of the first quarter by at least
 *     half of what the slope predicts between them (a sawtooth's floor
 *     stays put; a leak lifts it).
 * A finding is reported at most once per window while growth lasts.
 */
#ifndef SW_MEMGROWTH_H
#define SW_MEMGROWTH_H

#include <stdbool.h>
#include <stdint.h>

/* Samples kept: the window at one sample a second, at most an hour. */
#define SW_MEMGROWTH_MAX_SAMPLES 3601

struct sw_memgrowth_cfg {
	uint32_t window_s;	/* default SW_MEMGROWTH_WINDOW_S */
	double min_rate_bps;	/* default SW_MEMGROWTH_MIN_RATE */
	double min_rel;		/* default SW_MEMGROWTH_MIN_REL */
};

/* 5 minutes: several GC cycles of a busy Node or Python service (V8's
 * major GCs and CPython's generation-2 collections come every few seconds
 * to a minute under load), short enough to page on before an OOM kill. */
#define SW_MEMGROWTH_WINDOW_S 300
/* 16 KiB/s is 56 MiB an hour: below that, growth is not worth a page. */
#define SW_MEMGROWTH_MIN_RATE (16.0 * 1024)
/* Growth over the window of at least 5 % of the starting size. */
#define SW_MEMGROWTH_MIN_REL 0.05
/* The line must explain at least half of the variance of the samples: the
 * growth over the window stands out of the GC's sawtooth. */
#define SW_MEMGROWTH_MIN_R2 0.5

struct sw_memgrowth_finding {
	double window_s;	/* span of the samples judged */
	double rate_bps;	/* least-squares slope */
	double r2;		/* fit of the line */
	uint64_t rss_start, rss_end; /* first and last sample of the window */
};

struct sw_memgrowth;

/* NULL when out of memory. cfg NULL: the defaults. */
struct sw_memgrowth *sw_memgrowth__new(const struct sw_memgrowth_cfg *cfg);
void sw_memgrowth__free(struct sw_memgrowth *m);

/*
 * Add a sample (t_ns monotonic, rss in bytes) and judge the window ending
 * there. Returns true, with *out filled, when steady growth is found and
 * none was reported in the last window.
 */
bool sw_memgrowth__add(struct sw_memgrowth *m, uint64_t t_ns, uint64_t rss,
		       struct sw_memgrowth_finding *out);

/*
 * The rule alone, on n samples (t in seconds, rss in bytes) that span the
 * window: true and *out filled for steady growth. Exposed for tests.
 */
bool sw_memgrowth_judge(const double *t, const double *rss, uint32_t n,
			const struct sw_memgrowth_cfg *cfg, struct sw_memgrowth_finding *out);

#endif
