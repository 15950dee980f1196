/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Clocks in nanoseconds. CLOCK_MONOTONIC is the clock of bpf_ktime_get_ns(),
 * of Node's process.hrtime and of Python's time.monotonic_ns(): every *_ns
 * time that crosses the agent is on it.
 */
#ifndef SW_CLOCK_H
#define SW_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t sw_clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t sw_mono_ns(void)
{
	return sw_clock_ns(CLOCK_MONOTONIC);
}

static inline uint64_t sw_realtime_ns(void)
{
	return sw_clock_ns(CLOCK_REALTIME);
}

#endif
