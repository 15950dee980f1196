// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <string.h>
#include "rules.h"

#define MS 1000000ull

static const char *classify(const char *rt, uint64_t dur, uint64_t on, uint64_t off, uint64_t rq,
			    const char *sys)
{
	struct sw_incident_facts f = { .runtime = rt, .duration_ns = dur, .oncpu_ns = on,
				       .offcpu_ns = off, .runq_ns = rq, .top_syscall = sys,
				       .top_syscall_ns = off };
	struct sw_verdict v;

	sw_rules_classify(&f, &v);
	cr_assert_not_null(v.summary);
	cr_assert_not_null(v.advice);
	return v.pattern;
}

Test(rules, cpu_bound)
{
	cr_assert_str_eq(classify("node", 200 * MS, 195 * MS, 0, 5 * MS, ""), "cpu-sync");
	cr_assert_str_eq(classify("python", 120 * MS, 118 * MS, 0, 0, NULL), "cpu-sync");
	/* preempted for a third of it on a busy machine: still CPU work */
	cr_assert_str_eq(classify("python", 120 * MS, 79 * MS, 0, 41 * MS, NULL), "cpu-sync");
}

Test(rules, sleeps)
{
	cr_assert_str_eq(classify("python", 150 * MS, 1 * MS, 149 * MS, 0, "clock_nanosleep"),
			 "sleep-in-async");
	cr_assert_str_eq(classify("python", 150 * MS, 1 * MS, 149 * MS, 0, "select (sleep)"),
			 "sleep-in-async");
}

Test(rules, sync_io_and_child)
{
	cr_assert_str_eq(classify("python", 200 * MS, 2 * MS, 198 * MS, 0, "poll"), "sync-io");
	cr_assert_str_eq(classify("node", 200 * MS, 2 * MS, 198 * MS, 0, "read"), "sync-io");
	cr_assert_str_eq(classify("node", 200 * MS, 3 * MS, 197 * MS, 0, "epoll_pwait"),
			 "sync-child");
}

Test(rules, starved)
{
	cr_assert_str_eq(classify("node", 100 * MS, 30 * MS, 0, 70 * MS, ""), "cpu-starved");
}

Test(rules, unknown_split_is_only_blocked)
{
	/* no diagnosis at all: never guess from the duration */
	cr_assert_str_eq(classify("node", 100 * MS, 0, 0, 0, NULL), "blocked");
	/* half on, half off in an unknown syscall */
	cr_assert_str_eq(classify("node", 100 * MS, 50 * MS, 50 * MS, 0, "ioctl"), "blocked");
}

Test(rules, every_pattern_is_declared)
{
	const char *seen[] = { "blocked", "cpu-sync", "sleep-in-async", "sync-io", "sync-child",
			       "cpu-starved" };

	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
		bool found = false;

		for (const char *const *p = sw_rule_patterns; *p; p++)
			found |= !strcmp(*p, seen[i]);
		cr_assert(found, "%s missing from sw_rule_patterns", seen[i]);
	}
}
