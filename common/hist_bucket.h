/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log-linear histogram bucketing, shared by the BPF side (which counts) and
 * user space (which reads, merges and computes percentiles). It must compile
 * as BPF C and as user C, so it has no includes beyond fixed-width types.
 *
 * Scheme (HdrHistogram-like, 6 sub-bucket bits):
 *   bucket 0               v < 2^SW_HIST_MIN_SHIFT (1.024 us), underflow
 *   bucket 1 + o*64 + s    2^(m) <= v < 2^(m+1), o = m - MIN_SHIFT,
 *                          s = the 6 bits below the leading one
 *   bucket SW_HIST_NBUCKETS-1   v >= 2^(SW_HIST_MAX_SHIFT+1) (137 s), overflow
 * A bucket spans 1/64 of its octave's lower bound, so any value lies within
 * 1.6 % of its bucket's lower or upper bound and within 0.8 % of its middle:
 * the issue asks for <= 2 % from 10 us to 60 s.
 */
#ifndef SW_HIST_BUCKET_H
#define SW_HIST_BUCKET_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Bump when the scheme changes; the collector refuses summaries of another. */
#define SW_HIST_SCHEMA 1
#define SW_HIST_SUB_BITS 6
#define SW_HIST_SUB (1u << SW_HIST_SUB_BITS)
#define SW_HIST_MIN_SHIFT 10 /* 1.024 us: below the tracepoint pair's own cost */
#define SW_HIST_MAX_SHIFT 36 /* top octave [2^36, 2^37) ns = [68.7 s, 137 s) */
#define SW_HIST_OCTAVES (SW_HIST_MAX_SHIFT - SW_HIST_MIN_SHIFT + 1)
#define SW_HIST_NBUCKETS (2 + SW_HIST_OCTAVES * SW_HIST_SUB)

/* Index of the most significant set bit, v != 0; branchy on purpose: BPF has
 * no clz instruction and the verifier likes straight-line code. */
static inline __u32 sw_hist_msb(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

static inline __u32 sw_hist_bucket(__u64 ns)
{
	__u32 m, sub;

	if (ns < (1ull << SW_HIST_MIN_SHIFT))
		return 0;
	m = sw_hist_msb(ns);
	if (m > SW_HIST_MAX_SHIFT)
		return SW_HIST_NBUCKETS - 1;
	sub = (__u32)(ns >> (m - SW_HIST_SUB_BITS)) & (SW_HIST_SUB - 1);
	return 1 + (m - SW_HIST_MIN_SHIFT) * SW_HIST_SUB + sub;
}

#endif /* SW_HIST_BUCKET_H */
