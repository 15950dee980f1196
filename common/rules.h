/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rules module: from what was measured about one blocked stretch of an
 * event loop to a named anti-pattern and the fix. One module, linked into the
 * standalone agent (for its own output) and into the collector (which
 * re-derives the verdict so that every agent version is judged the same).
 *
 * The evidence, strongest first: the frames the stack samples spent their
 * weight in (JSON.parse, pbkdf2, deflate, the V8 or CPython GC, a DB or HTTP
 * driver's files), then the syscalls and the fd behind them (a TCP peer on
 * :5432, a regular file, a child process), then the on/off-CPU split. The
 * summary and the advice name what was seen in *this* incident: the frame,
 * the peer, the path, the time.
 */
#ifndef SW_RULES_H
#define SW_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include "diag.h"

struct sw_incident_facts {
	const char *runtime; /* "node", "python", "native" */
	uint64_t duration_ns;
	bool ongoing;
	/* split of duration_ns; all 0 when not measured */
	uint64_t oncpu_ns;
	uint64_t offcpu_ns;
	uint64_t runq_ns;
	/* the blocked-loop threshold in use; 0 when unknown */
	uint64_t threshold_ns;
	const char *top_syscall; /* NULL or "" when unknown */
	uint64_t top_syscall_ns;
	/* what blocked it; NULL when not known */
	const struct sw_diag_stacks *stacks;
	const struct sw_diag_syscalls *sys;
	/* CPython: the loop thread's futex waits for the GIL in the stretch,
	 * and the thread that held it (name "" and tid 0 when not known; its
	 * innermost Python frame, NULL when not read) */
	uint64_t gil_wait_ns;
	const char *gil_holder;
	uint32_t gil_holder_tid;
	const char *gil_holder_frame;
};

struct sw_verdict {
	const char *pattern; /* stable id from sw_rule_patterns, never NULL */
	char summary[256];   /* one line for people: what was seen */
	char advice[512];    /* the fix, one or two sentences fitting this incident */
};

/* Fill v from f. Always succeeds; "unknown" is the verdict when the facts
 * do not point at one pattern (its summary says what was seen). */
void sw_rules_classify(const struct sw_incident_facts *f, struct sw_verdict *v);

/* All pattern ids, NULL-terminated, "unknown" first: the collector
 * pre-declares one series per pattern so label values stay bounded. */
extern const char *const sw_rule_patterns[];

/* Database ports the sync-driver rule recognises (PostgreSQL 5432, MySQL
 * 3306, Redis 6379, MongoDB 27017, ...). */
bool sw_rules_db_port(unsigned port);
/* Ports that speak HTTP by convention (80, 443, 8080, ...). */
bool sw_rules_http_port(unsigned port);

#endif
