/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Report: where measurements go. A fan-out over sinks (sink.h): human lines
 * or JSON lines on stdout, plus protobuf batches to the collector (through
 * stream.h) when --collector is given. The records below are what every
 * sink is given; the formats are in sink_human.c, sink_json.c, sink_proto.c.
 */
#ifndef SW_REPORT_H
#define SW_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include "diag.h"
#include "gil.h"
#include "discovery.h"
#include "health.h"
#include "histogram.h"
#include "procrules.h"
#include "rules.h"

struct sw_stream;

struct sw_incident_rec {
	uint32_t pid, tid;
	char thread[16];
	const char *role;
	const char *runtime;
	uint64_t start_ns, dur_ns;
	bool ongoing;
	bool start_unknown; /* began before the agent attached: dur is a lower bound */
	bool diag; /* the on/off-CPU split below was measured */
	uint64_t oncpu_ns, offcpu_ns, runq_ns;
	uint32_t switches;
	char top_syscall[32];
	uint64_t top_syscall_ns;
	/* what blocked it (common/diag.h); NULL when not known */
	const struct sw_diag_stacks *stacks;
	const struct sw_diag_syscalls *sys;
	/* CPython: the loop thread's GIL waits in the block; NULL when the GIL
	 * is not measured for this process */
	const struct sw_gil_blame *gil;
	struct sw_verdict verdict;
};

/* A loop thread's GIL waits within one blocked stretch, and who held it. */
struct sw_gil_blame {
	uint64_t wait_ns;
	uint32_t drop_requests;
	uint32_t holder_tid; /* the thread that held it longest while it waited; 0 unknown */
	char holder[16];
	uint32_t n_frames; /* holder's Python stack, innermost first */
	char frames[SW_GIL_STACK_FRAMES][SW_GIL_FRAME_LEN];
};

struct sw_summary_rec {
	uint32_t pid, tid;
	char thread[16];
	const char *role;
	const char *runtime;
	uint64_t start_ns, end_ns;
	uint64_t iterations, busy_ns, idle_ns, max_ns;
	const struct sw_hist *hist; /* this interval's iterations */
	uint64_t rss_bytes; /* the process's resident size at the end; 0: not read */
	/* the split of busy_ns, measured with diag (sched_switch) on */
	bool diag;
	uint64_t oncpu_ns, offcpu_ns, runq_ns;
};

/* A process exited (not an exec: sw_report__process_gone says that). */
struct sw_exit_rec {
	uint32_t pid;
	const char *runtime;
	char comm[16];
	uint64_t ts_ns;	     /* when the agent learned it */
	bool known;	     /* the kernel's exit code was seen, else gone from /proc */
	uint32_t status;     /* exit status, when signal is 0 */
	uint32_t signal;     /* killing signal, 0 for none */
	bool core;
	bool in_incident;    /* a loop of it was blocked (>= threshold) as it died */
	uint64_t blocked_ns; /* the longest such block */
	bool uncaught, from_promise; /* Node's uncaught-exception report, if seen */
	const char *stderr_tail; /* its last writes to fd 2 as text, NULL when none */
	struct sw_proc_verdict verdict;
};

/* Steady resident-size growth (common/memgrowth.h). */
struct sw_memory_rec {
	uint32_t pid;
	const char *runtime;
	char comm[16];
	uint64_t ts_ns;
	double window_s, rate_bps, r2;
	uint64_t rss_start, rss_end;
	struct sw_proc_verdict verdict;
};

/* on-CPU share of the busy time, 0 when there was none */
static inline double sw_summary_cpu_share(const struct sw_summary_rec *s)
{
	return s->busy_ns ? (double)s->oncpu_ns / (double)s->busy_ns : 0;
}

static inline uint64_t sw_summary_elapsed(const struct sw_summary_rec *s)
{
	return s->end_ns > s->start_ns ? s->end_ns - s->start_ns : 0;
}

/* busy / elapsed, at most 1: the iteration in progress at the interval's
 * start may have begun before it */
static inline double sw_summary_utilization(const struct sw_summary_rec *s)
{
	uint64_t elapsed = sw_summary_elapsed(s);
	double u = elapsed ? (double)s->busy_ns / (double)elapsed : 0;

	return u > 1 ? 1 : u;
}


struct sw_report;

struct sw_report *sw_report__new(bool json, struct sw_stream *stream, uint64_t threshold_ns);
void sw_report__free(struct sw_report *r);

void sw_report__process(struct sw_report *r, const struct sw_proc_info *pi);
/* exec: it exec'd a new program (followed by a new process record) */
void sw_report__process_gone(struct sw_report *r, uint32_t pid, bool exec);
void sw_report__process_exit(struct sw_report *r, const struct sw_exit_rec *ex);
void sw_report__memory(struct sw_report *r, const struct sw_memory_rec *m);
void sw_report__incident(struct sw_report *r, const struct sw_incident_rec *inc);
void sw_report__summary(struct sw_report *r, const struct sw_summary_rec *sum);
void sw_report__gil(struct sw_report *r, const struct sw_gil_rec *g);
void sw_report__health(struct sw_report *r, const struct sw_health *h);
/* Send what is pending to the collector as one batch (no-op standalone). */
void sw_report__flush(struct sw_report *r);

#endif
