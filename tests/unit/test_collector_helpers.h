/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Builders of protobuf batches for the collector's unit tests: the tests
 * speak the real wire types (protobuf-c structs, common/frame.c framing),
 * so a drift of the .proto breaks them at compile time.
 */
#ifndef SW_TEST_COLLECTOR_HELPERS_H
#define SW_TEST_COLLECTOR_HELPERS_H

#include "frame.h"
#include "histogram.h"
#include "stallwatch.pb-c.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MS (1000000ull)

/* One LoopSummary with up to 8 buckets; buckets point into the struct. */
struct t_loop {
	Stallwatch__V1__LoopSummary ls;
	Stallwatch__V1__HistBucket b[8];
	Stallwatch__V1__HistBucket *bp[8];
};

static inline void t_loop_init(struct t_loop *t, uint32_t pid, uint32_t tid, const char *runtime)
{
	stallwatch__v1__loop_summary__init(&t->ls);
	t->ls.pid = pid;
	t->ls.tid = tid;
	t->ls.thread = (char *)(pid == tid ? "node" : "worker");
	t->ls.role = (char *)(pid == tid ? "main" : "worker");
	t->ls.runtime = (char *)runtime;
	t->ls.hist_schema = SW_HIST_SCHEMA;
	t->ls.buckets = t->bp;
	t->ls.n_buckets = 0;
}

/* count iterations of ns each, into the bucket that sw_hist_bucket() picks */
static inline void t_loop_add(struct t_loop *t, uint64_t ns, uint64_t count)
{
	size_t i = t->ls.n_buckets++;

	stallwatch__v1__hist_bucket__init(&t->b[i]);
	t->b[i].index = sw_hist_bucket(ns);
	t->b[i].count = count;
	t->bp[i] = &t->b[i];
	t->ls.iterations += count;
	t->ls.busy_ns += ns * count;
	if (ns > t->ls.max_busy_ns)
		t->ls.max_busy_ns = ns;
}

static inline void t_incident(Stallwatch__V1__Incident *in, uint32_t pid, uint32_t tid,
			      uint64_t start_ns, uint64_t dur_ns, int ongoing)
{
	stallwatch__v1__incident__init(in);
	in->pid = pid;
	in->tid = tid;
	in->thread = (char *)"node";
	in->role = (char *)"main";
	in->runtime = (char *)"node";
	in->start_ns = start_ns;
	in->duration_ns = dur_ns;
	in->ongoing = ongoing;
	/* 90 % on CPU: common/rules.c says cpu-sync */
	in->oncpu_ns = dur_ns * 9 / 10;
	in->offcpu_ns = dur_ns / 10;
	in->pattern = (char *)"something-the-agent-thought";
}

/* Pack b and frame it; *len set; caller frees. */
static inline uint8_t *t_frame(const Stallwatch__V1__Batch *b, int zlib, size_t *len)
{
	size_t n = stallwatch__v1__batch__get_packed_size(b);
	uint8_t *msg = malloc(n ? n : 1), *out = NULL;

	if (!msg)
		return NULL;
	stallwatch__v1__batch__pack(b, msg);
	if (sw_frame_encode(msg, n, zlib, &out, len))
		out = NULL;
	free(msg);
	return out;
}

#endif
