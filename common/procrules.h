/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rules about a process as a whole, beside common/rules.c (one blocked
 * stretch): why it exited, and what steady memory growth means for it.
 * Pure, shared by the agent (its own output) and the collector.
 */
#ifndef SW_PROCRULES_H
#define SW_PROCRULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sw_exit_facts {
	const char *runtime; /* "node", "python", "native" */
	bool known;	     /* the kernel's exit code was seen (else: found gone in /proc) */
	uint32_t status;     /* exit status, when signal is 0 */
	uint32_t signal;     /* killing signal, 0 for none */
	bool core;
	bool in_incident;    /* its loop was blocked (>= threshold) when it died */
	uint64_t blocked_ns; /* that block's length */
	bool uncaught;	     /* Node reported an uncaught exception */
	bool from_promise;   /* ... raised by a rejected promise */
	const char *stderr_tail; /* its last writes to fd 2, NULL or "" if none */
};

struct sw_proc_verdict {
	const char *pattern; /* stable id, never NULL */
	char summary[512];
	const char *advice;
};

/* Exit patterns, also the values of the collector's cause label. */
#define SW_EXIT_PATTERNS(X)                                                                         \
	X(exit_ok, "exited normally (status 0)")                                                    \
	X(exit_error, "exited with a non-zero status")                                              \
	X(node_unhandled_rejection, "node.unhandled_rejection")                                     \
	X(node_uncaught_exception, "node.uncaught_exception")                                       \
	X(python_uncaught_exception, "python.uncaught_exception")                                   \
	X(killed, "killed by SIGKILL")                                                              \
	X(terminated, "stopped by a termination signal")                                           \
	X(crashed, "crashed (a fault or abort signal)")                                             \
	X(unknown, "gone, exit code not seen")

/* Sent as the exit pattern of a process that exec'd: not an exit. */
#define SW_EXEC_PATTERN "exec"

/* The pattern id of each (the dotted names for the runtime ones). */
extern const char *const sw_exit_patterns[];

void sw_exit_classify(const struct sw_exit_facts *f, struct sw_proc_verdict *v);

/* Steady RSS growth found by common/memgrowth.h. */
struct sw_memgrowth_facts {
	const char *runtime;
	double window_s, rate_bps;
	uint64_t rss_start, rss_end;
};

#define SW_MEMGROWTH_PATTERN "memory_growth"

void sw_memgrowth_classify(const struct sw_memgrowth_facts *f, struct sw_proc_verdict *v);

/*
 * CPU- or I/O-bound, from one interval's busy time of a loop thread split by
 * sched_switch. The line the Node and Python guides draw is 10-20 % CPU for
 * I/O-bound work; the share judged is the time the loop wanted a CPU (on it,
 * or runnable in the run queue: a starved CPU-bound loop is still
 * CPU-bound) over its busy time:
 *   "io"    below SW_BOUND_IO_MAX (0.2): waits dominate its busy time;
 *   "cpu"   at or above SW_BOUND_CPU_MIN (0.8): computation dominates;
 *   "mixed" between;
 *   "idle"  busy less than SW_BOUND_MIN_BUSY_NS (10 ms) in the interval:
 *           too little to judge.
 */
#define SW_BOUND_IO_MAX 0.2
#define SW_BOUND_CPU_MIN 0.8
#define SW_BOUND_MIN_BUSY_NS 10000000ull

const char *sw_loop_bound(uint64_t busy_ns, uint64_t oncpu_ns, uint64_t runq_ns);

/* "SIGKILL" for 9, "signal 77" for one without a name; buf holds 24. */
const char *sw_signal_name(uint32_t sig, char *buf, size_t len);

#endif
