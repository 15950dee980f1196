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
#include "discovery.h"
#include "health.h"
#include "histogram.h"
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
	struct sw_verdict verdict;
};

struct sw_summary_rec {
	uint32_t pid, tid;
	char thread[16];
	const char *role;
	const char *runtime;
	uint64_t start_ns, end_ns;
	uint64_t iterations, busy_ns, idle_ns, max_ns;
	const struct sw_hist *hist; /* this interval's iterations */
};

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
void sw_report__process_gone(struct sw_report *r, uint32_t pid, bool exec);
void sw_report__incident(struct sw_report *r, const struct sw_incident_rec *inc);
void sw_report__summary(struct sw_report *r, const struct sw_summary_rec *sum);
void sw_report__health(struct sw_report *r, const struct sw_health *h);
/* Send what is pending to the collector as one batch (no-op standalone). */
void sw_report__flush(struct sw_report *r);

#endif
