/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What leaves the collector: the Prometheus text exposition (format 0.0.4)
 * of docs/METRICS.md, and the incident list as JSON. Pure functions of the
 * store and of the ingest counters, so tests check the text without a
 * socket; http.c only routes.
 */
#ifndef SW_COLLECTOR_EXPORT_H
#define SW_COLLECTOR_EXPORT_H

#include "store.h"
#include "listener.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing text buffer; p is NUL-terminated, owned by the caller. */
struct sw_buf {
	char *p;
	size_t len, cap;
	bool oom; /* an append failed: the text is incomplete */
};

void sw_buf__printf(struct sw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sw_buf__free(struct sw_buf *b);

/* The text for GET /metrics by scraper `who` (its address and User-Agent:
 * what it is shown depends on its previous scrape, store.h "Scrapers").
 * ingest may be NULL (its counters are then 0). Returns 0 or -ENOMEM;
 * out->p must be freed either way. */
int sw_export__scrape(struct sw_store *s, const struct sw_ingest_stats *ingest, const char *who,
		      struct sw_buf *out);
/* The same for one anonymous scraper (tests, tools). */
int sw_export__metrics(struct sw_store *s, const struct sw_ingest_stats *ingest,
		       struct sw_buf *out);

struct sw_incident_query {
	size_t limit; /* 0: all */
	bool have_pid;
	uint32_t pid;
	/* incidents that started in [from, to], unix milliseconds */
	bool have_from, have_to;
	uint64_t from_unix_ms, to_unix_ms;
};

/* {"incidents":[...]} newest first by start; *json is malloc'ed.
 * Returns 0 or -ENOMEM. */
int sw_export__incidents(struct sw_store *s, const struct sw_incident_query *q, char **json,
			 size_t *len);

/* {"processes":[...]}: each CPython process's last GIL interval as this
 * collector judged it (verdict, summary, advice) and its busiest threads
 * with their Python stacks; only pid's when have_pid. *json is malloc'ed.
 * Returns 0 or -ENOMEM. */
int sw_export__gil(struct sw_store *s, bool have_pid, uint32_t pid, char **json, size_t *len);

/* The blocked time of the incidents q selects as folded stacks, one line
 * per stack: "comm;outermost;...;innermost weight_us" (flamegraph.pl,
 * speedscope), "comm" being the thread's name. 0 or -ENOMEM. */
int sw_export__folded(struct sw_store *s, const struct sw_incident_query *q, char **txt,
		      size_t *len);

#endif
