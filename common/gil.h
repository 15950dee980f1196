/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GIL contention of one CPython process over one reporting interval: the
 * model the agent fills (agent/gilmon.c, from bpf/gilmon.bpf.c's futex waits and
 * its own sampling of the GIL's holder), every sink prints, the collector
 * decodes from proto/ (GilSummary) and exports. The rules that judge it
 * (sw_gil_judge) are pure and shared by the agent and the collector, like
 * common/rules.c.
 *
 * Per thread, what is measured and how:
 *  - wait: time in futex waits on the GIL's cond and mutex (take_gil), and
 *    on switch_cond (drop_gil handing the GIL over on request, also given
 *    alone as switch_wait), from the syscall's enter to its exit (so a
 *    wake's run-queue delay counts);
 *  - hold: the GIL's holder, sampled from outside at a fixed rate
 *    (locked, last_holder), times the sampling period;
 *  - acquisitions: waits that ended with the holder's release (a signalled
 *    wake): contended acquisitions only. An uncontended take makes no
 *    syscall and is not seen; the process's "switches" (the GIL's own
 *    switch_number) counts every change of holder;
 *  - drop_requests: waits that timed out after the switch interval while
 *    the same holder kept the GIL, CPython's condition for asking it to
 *    drop (take_gil: timed_out && locked && switch_number unchanged);
 *  - forced_switches: times this thread, holding the GIL, had to hand it
 *    over to a waiter that had asked for it.
 */
#ifndef SW_GIL_H
#define SW_GIL_H

#include <stdbool.h>
#include <stdint.h>
#include "procrules.h"

#define SW_GIL_PATTERN_CONTENTION "python.gil_contention"
#define SW_GIL_PATTERN_LOOP "python.loop_starved_by_gil"

/* Threads reported per process per interval, the busiest first; the rest
 * are counted in threads_omitted (and in the process totals). */
#define SW_GIL_MAX_THREADS 64
/* Python frames kept of a holder's stack, innermost first. */
#define SW_GIL_STACK_FRAMES 16
#define SW_GIL_FRAME_LEN 192

struct sw_gil_thread_rec {
	uint32_t tid;
	char thread[16];
	bool loop; /* an event-loop thread the agent measures */
	uint64_t wait_ns;
	uint64_t hold_ns; /* hold_samples x the sampling period */
	uint32_t hold_samples;
	uint64_t acquisitions;
	uint64_t drop_requests;
	uint64_t forced_switches;
	uint64_t switch_wait_ns; /* part of wait: after dropping on request, for the taker */
	uint64_t caused_wait_ns; /* other threads' GIL waits while this one held it */
	/* the Python stack seen most often while it held the GIL ("func
	 * (file:line)"), innermost first; 0 frames when none was read */
	uint32_t n_frames;
	char frames[SW_GIL_STACK_FRAMES][SW_GIL_FRAME_LEN];
};

/*
 * Where sw_gil_judge draws its lines, measured on this project's machine
 * (docs/PATTERNS.md has the runs):
 *  - contention: the share of the time threads wanted the GIL that they
 *    spent waiting for it, sum(wait) / (sum(wait) + sum(hold));
 *  - a waiting thread waited at least SW_GIL_WAITER_MIN_SHARE of the
 *    interval.
 */
#define SW_GIL_CONTENTION_MIN 0.25
#define SW_GIL_WAITERS_MIN 2
#define SW_GIL_WAITER_MIN_SHARE 0.05
/* A loop thread that waited this share of the interval for the GIL. */
#define SW_GIL_LOOP_SHARE_MIN 0.10

struct sw_gil_rec {
	uint32_t pid;
	char comm[16];
	const char *version; /* "3.11.2", may be NULL */
	uint64_t ts_ns;	     /* end of the interval, CLOCK_MONOTONIC */
	uint64_t interval_ns;
	uint64_t switch_interval_us; /* sys.getswitchinterval(), read from the GIL */
	uint64_t samples, held_samples; /* holder samples taken, and with the GIL held */
	uint64_t switches;		/* changes of holder (switch_number delta) */
	uint32_t n_threads;
	struct sw_gil_thread_rec *threads; /* busiest first */
	uint32_t threads_omitted;
	/* Not measured: why, for people (a free-threaded build, a version not
	 * in the layout table...); everything else is then zero. */
	const char *note;

	/* ---- derived by sw_gil_judge ---- */
	double utilization; /* held_samples / samples */
	double contention;
	uint32_t waiting_threads;
	uint32_t loop_tid; /* the loop thread that waited most, 0: none */
	double loop_wait_share; /* its GIL wait over the interval */
	uint32_t top_holder;	/* index into threads of the thread that held most */
	bool flagged;
	struct sw_proc_verdict verdict; /* when flagged */
};

/* Fills the derived fields from the measured ones. */
void sw_gil_judge(struct sw_gil_rec *g);

/* The frame to name in a summary: the innermost one outside the standard
 * library and site-packages (the user's code that made the call), else the
 * innermost; NULL when n is 0. */
const char *sw_gil_user_frame(const char (*frames)[SW_GIL_FRAME_LEN], uint32_t n);

/* Waits over the interval, at most 1. */
double sw_gil_share(uint64_t ns, uint64_t interval_ns);

#endif
