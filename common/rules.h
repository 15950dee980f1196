/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rules module: from what was measured about one blocked stretch of an
 * event loop to a named anti-pattern and the fix. One module, linked into the
 * standalone agent (for its own output) and into the collector (which
 * re-derives the verdict so that every agent version is judged the same).
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
	const char *top_syscall; /* NULL or "" when unknown */
	uint64_t top_syscall_ns;
	/* what blocked it; NULL when not known */
	const struct sw_diag_stacks *stacks;
	const struct sw_diag_syscalls *sys;
};

struct sw_verdict {
	const char *pattern; /* stable id, e.g. "cpu-sync", never NULL */
	const char *summary; /* one line for people */
	const char *advice;  /* the fix */
};

/* Fill v from f. Always succeeds; "blocked" is the verdict when the facts
 * do not point at one pattern. Strings are static. */
void sw_rules_classify(const struct sw_incident_facts *f, struct sw_verdict *v);

/* All pattern ids, NULL-terminated: the collector pre-declares one series
 * per pattern so label values stay bounded. */
extern const char *const sw_rule_patterns[];

#endif
