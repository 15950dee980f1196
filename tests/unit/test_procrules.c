// SPDX-License-Identifier: Apache-2.0
/* Exit causes and the CPU/I-O line (common/procrules.c), on the stderr that
 * real runtimes print (captured with strace from Node 18.20.8, 20.20.2,
 * 22.23.3, 24.21.0 and CPython 3.11). */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include "procrules.h"

/* Node 18, Promise.reject("plain") */
static const char node18_plain[] =
    "node:internal/process/promises:288\n"
    "            triggerUncaughtException(err, true /* fromPromise */);\n"
    "            ^\n\n"
    "[UnhandledPromiseRejection: This error originated either by throwing inside of an async "
    "function without a catch block, or by rejecting a promise which was not handled with "
    ".catch(). The promise rejected with the reason \"plain\".] {\n"
    "  code: 'ERR_UNHANDLED_REJECTION'\n}\n\nNode.js v18.20.8\n";
/* Node 20 (22 and 24 alike), Promise.reject("plain") */
static const char node20_plain[] =
    "node:internal/process/promises:389\n"
    "      new UnhandledPromiseRejection(reason);\n"
    "      ^\n\n"
    "UnhandledPromiseRejection: This error originated either by throwing inside of an async "
    "function without a catch block, or by rejecting a promise which was not handled with "
    ".catch(). The promise rejected with the reason \"plain\".\n\nNode.js v20.20.2\n";
/* Node 18-24, an async function throwing new Error("boom"): the same text as
 * an uncaught throw */
static const char node_error[] =
    "/tmp/proc-exp/rej1.js:2\n"
    "async function f(){ await null; throw new Error(\"boom\"); }\n"
    "                                      ^\n\n"
    "Error: boom\n"
    "    at f (/tmp/proc-exp/rej1.js:2:39)\n\nNode.js v20.20.2\n";
static const char py_tb[] = "Traceback (most recent call last):\n"
			    "  File \"/srv/app.py\", line 9, in <module>\n"
			    "    main()\n"
			    "KeyError: 'user'\n";

static struct sw_proc_verdict judge(const char *rt, uint32_t status, uint32_t sig, bool uncaught,
				    bool from_promise, const char *tail)
{
	struct sw_exit_facts f = { .runtime = rt, .known = true, .status = status, .signal = sig,
				   .uncaught = uncaught, .from_promise = from_promise,
				   .stderr_tail = tail };
	struct sw_proc_verdict v;

	sw_exit_classify(&f, &v);
	cr_assert_not_null(v.pattern);
	cr_assert_not_null(v.advice);
	return v;
}

Test(procrules, unhandled_rejection_from_stderr_on_every_node)
{
	struct sw_proc_verdict v;

	v = judge("node", 1, 0, false, false, node18_plain);
	cr_assert_str_eq(v.pattern, "node.unhandled_rejection");
	v = judge("node", 1, 0, false, false, node20_plain);
	cr_assert_str_eq(v.pattern, "node.unhandled_rejection");
	cr_assert_not_null(strstr(v.summary, "exit status 1"), "%s", v.summary);
	cr_assert_not_null(strstr(v.advice, ".catch()"));
	cr_assert_not_null(strstr(v.advice, "unhandledRejection"));
}

Test(procrules, error_rejection_needs_the_uprobe)
{
	struct sw_proc_verdict v;

	/* the text alone is an uncaught Error: not claimed as a rejection */
	v = judge("node", 1, 0, false, false, node_error);
	cr_assert_str_eq(v.pattern, "exit_error");
	v = judge("node", 1, 0, true, true, node_error);
	cr_assert_str_eq(v.pattern, "node.unhandled_rejection");
	cr_assert_not_null(strstr(v.summary, "Error: boom"), "%s", v.summary);
	cr_assert_not_null(strstr(v.summary, "at f (/tmp/proc-exp/rej1.js:2:39)"), "%s",
			   v.summary);
	v = judge("node", 1, 0, true, false, node_error);
	cr_assert_str_eq(v.pattern, "node.uncaught_exception");
	/* a rejection handled by the program, then a clean exit */
	v = judge("node", 0, 0, true, true, NULL);
	cr_assert_str_eq(v.pattern, "exit_ok");
}

Test(procrules, python_traceback)
{
	struct sw_proc_verdict v = judge("python", 1, 0, false, false, py_tb);

	cr_assert_str_eq(v.pattern, "python.uncaught_exception");
	cr_assert_not_null(strstr(v.summary, "KeyError: 'user'"), "%s", v.summary);
	/* a Node process printing a Python-looking text is not Python */
	v = judge("node", 1, 0, false, false, py_tb);
	cr_assert_str_eq(v.pattern, "exit_error");
}

Test(procrules, signals)
{
	struct sw_exit_facts f = { .runtime = "node", .known = true, .signal = SIGKILL,
				   .in_incident = true, .blocked_ns = 2500000000ull };
	struct sw_proc_verdict v;

	sw_exit_classify(&f, &v);
	cr_assert_str_eq(v.pattern, "killed");
	cr_assert_not_null(strstr(v.summary, "SIGKILL"));
	cr_assert_not_null(strstr(v.summary, "blocked (2500 ms)"), "%s", v.summary);
	cr_assert_str_eq(judge("python", 0, SIGTERM, false, false, NULL).pattern, "terminated");
	f.signal = SIGSEGV;
	f.core = true;
	sw_exit_classify(&f, &v);
	cr_assert_str_eq(v.pattern, "crashed");
	cr_assert_not_null(strstr(v.summary, "SIGSEGV (core dumped)"), "%s", v.summary);
	/* a signal beats a rejection text: it is what ended the process */
	cr_assert_str_eq(judge("node", 0, SIGKILL, true, true, node20_plain).pattern, "killed");
}

Test(procrules, unknown_and_every_pattern_listed)
{
	struct sw_exit_facts f = { .runtime = "node" };
	struct sw_proc_verdict v;
	bool found;

	sw_exit_classify(&f, &v);
	cr_assert_str_eq(v.pattern, "unknown");
	/* every pattern the classifier returns is in the list the collector
	 * pre-declares */
	const char *seen[] = { "exit_ok", "exit_error", "node.unhandled_rejection",
			       "node.uncaught_exception", "python.uncaught_exception", "killed",
			       "terminated", "crashed", "unknown" };
	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
		found = false;
		for (size_t k = 0; sw_exit_patterns[k]; k++)
			found |= !strcmp(sw_exit_patterns[k], seen[i]);
		cr_assert(found, "%s not in sw_exit_patterns", seen[i]);
	}
}

Test(procrules, bound_lines)
{
	const uint64_t ms = 1000000;

	cr_assert_str_eq(sw_loop_bound(5 * ms, 5 * ms, 0), "idle");
	cr_assert_str_eq(sw_loop_bound(1000 * ms, 100 * ms, 0), "io");
	cr_assert_str_eq(sw_loop_bound(1000 * ms, 199 * ms, 0), "io");
	cr_assert_str_eq(sw_loop_bound(1000 * ms, 200 * ms, 0), "mixed");
	cr_assert_str_eq(sw_loop_bound(1000 * ms, 900 * ms, 0), "cpu");
	/* starved but wanting the CPU: still CPU-bound */
	cr_assert_str_eq(sw_loop_bound(1000 * ms, 500 * ms, 400 * ms), "cpu");
}

Test(procrules, memory_growth_text)
{
	struct sw_memgrowth_facts f = { .runtime = "python", .window_s = 300,
					.rate_bps = 100000, .rss_start = 50000000,
					.rss_end = 80000000 };
	struct sw_proc_verdict v;

	sw_memgrowth_classify(&f, &v);
	cr_assert_str_eq(v.pattern, "memory_growth");
	cr_assert_not_null(strstr(v.summary, "30.0 MB in 300 s"), "%s", v.summary);
	cr_assert_not_null(strstr(v.summary, "360.0 MB/h"), "%s", v.summary);
	cr_assert_not_null(strstr(v.advice, "tracemalloc"));
}
