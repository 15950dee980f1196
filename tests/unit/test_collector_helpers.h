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
#include <criterion/criterion.h>
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

/* ---- reading an exposition ---- */

/*
 * The next sample line of text at or after *at whose metric is name (the
 * line goes on with '{' or ' '; a name that holds its '{' is a prefix) and
 * that contains needle (NULL: any); NULL when none. *at moves past it.
 */
static inline const char *t_next_line(const char **at, const char *name, const char *needle,
				      size_t *len)
{
	size_t n = strlen(name);

	for (const char *p = *at; p && *p;) {
		const char *e = strchr(p, '\n');

		if (!e)
			break;
		*at = e + 1;
		if (!strncmp(p, name, n) && (strchr(name, '{') || p[n] == '{' || p[n] == ' ') &&
		    (!needle || memmem(p, (size_t)(e - p), needle, strlen(needle)))) {
			*len = (size_t)(e - p);
			return p;
		}
		p = e + 1;
	}
	return NULL;
}

static inline int t_count_lines(const char *text, const char *name, const char *needle)
{
	const char *at = text;
	size_t len;
	int c = 0;

	while (t_next_line(&at, name, needle, &len))
		c++;
	return c;
}

/* The value of the first such line; fails the test when there is none. */
static inline double t_value_of(const char *text, const char *name, const char *needle)
{
	const char *at = text, *p;
	size_t len;

	p = t_next_line(&at, name, needle, &len);
	if (!p)
		cr_assert_fail("no line %s ... %s in:\n%s", name, needle ? needle : "", text);
	return strtod((const char *)memrchr(p, ' ', len) + 1, NULL);
}

#endif
