// SPDX-License-Identifier: Apache-2.0
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "procrules.h"

const char *const sw_exit_patterns[] = {
	"exit_ok",	   "exit_error", "node.unhandled_rejection", "node.uncaught_exception",
	"python.uncaught_exception", "killed",	   "terminated", "crashed", "unknown", NULL,
};

const char *sw_signal_name(uint32_t sig, char *buf, size_t len)
{
	/* the ones a service dies of; sigabbrev_np needs glibc 2.32 */
	static const struct {
		uint32_t n;
		const char *name;
	} names[] = {
		{ SIGHUP, "SIGHUP" },	{ SIGINT, "SIGINT" },	{ SIGQUIT, "SIGQUIT" },
		{ SIGILL, "SIGILL" },	{ SIGTRAP, "SIGTRAP" }, { SIGABRT, "SIGABRT" },
		{ SIGBUS, "SIGBUS" },	{ SIGFPE, "SIGFPE" },	{ SIGKILL, "SIGKILL" },
		{ SIGUSR1, "SIGUSR1" }, { SIGSEGV, "SIGSEGV" }, { SIGUSR2, "SIGUSR2" },
		{ SIGPIPE, "SIGPIPE" }, { SIGALRM, "SIGALRM" }, { SIGTERM, "SIGTERM" },
		{ SIGXCPU, "SIGXCPU" }, { SIGXFSZ, "SIGXFSZ" }, { SIGSYS, "SIGSYS" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].n == sig)
			return names[i].name;
	snprintf(buf, len, "signal %u", sig);
	return buf;
}

static bool has(const char *s, const char *needle)
{
	return s && strstr(s, needle);
}

/*
 * What Node 18-24 print for an unhandled rejection of a non-Error value
 * (the reason of an Error rejection is printed as a plain uncaught Error:
 * only the uprobe's from_promise tells those apart):
 *   18: "triggerUncaughtException(err, true /\* fromPromise *\/)" and
 *       "[UnhandledPromiseRejection: ..." with code 'ERR_UNHANDLED_REJECTION'
 *   20, 22, 24: "new UnhandledPromiseRejection(reason)" then
 *       "UnhandledPromiseRejection: This error originated ..."
 */
static bool stderr_says_rejection(const char *s)
{
	return has(s, "ERR_UNHANDLED_REJECTION") || has(s, "UnhandledPromiseRejection") ||
	       has(s, "/* fromPromise */");
}

/* Copy the line of s starting at p (up to max chars) to out. */
static void copy_line(const char *p, char *out, size_t len, size_t max)
{
	size_t n = strcspn(p, "\n");

	if (n > max)
		n = max;
	if (n >= len)
		n = len - 1;
	memcpy(out, p, n);
	out[n] = 0;
}

/*
 * Node's fatal exception text: "<file>:<line>\n<source>\n<caret>\n\n
 * <Error: message>\n    at <frame>\n...". The message is the first line
 * after the first blank line; the call site, its first "    at " frame.
 */
static void node_error_lines(const char *s, char *msg, size_t mlen, char *at, size_t alen)
{
	const char *p, *a;

	msg[0] = at[0] = 0;
	if (!s)
		return;
	p = strstr(s, "\n\n");
	if (!p)
		return;
	p += 2;
	copy_line(p, msg, mlen, 160);
	a = strstr(p, "\n    at ");
	if (a)
		copy_line(a + 8, at, alen, 120);
}

/* The last line of a Python traceback: "ValueError: boom". */
static void python_error_line(const char *s, char *msg, size_t mlen)
{
	const char *tb = s ? strstr(s, "Traceback (most recent call last):") : NULL;
	const char *end, *start;

	msg[0] = 0;
	if (!tb)
		return;
	end = tb + strlen(tb);
	while (end > tb && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	start = end;
	while (start > tb && start[-1] != '\n')
		start--;
	copy_line(start, msg, mlen, (size_t)(end - start) < 160 ? (size_t)(end - start) : 160);
}

void sw_exit_classify(const struct sw_exit_facts *f, struct sw_proc_verdict *v)
{
	const char *rt = f->runtime ? f->runtime : "";
	char sbuf[24], msg[168], at[128], blocked[96] = "";
	const char *sig;

	if (f->in_incident)
		snprintf(blocked, sizeof(blocked), ", while its event loop was blocked (%.0f ms)",
			 (double)f->blocked_ns / 1e6);
	if (!f->known) {
		v->pattern = "unknown";
		snprintf(v->summary, sizeof(v->summary),
			 "the process is gone; its exit code was not seen");
		v->advice = "the agent saw it gone from /proc only: check the service manager's log "
			    "for its exit status";
		return;
	}
	if (f->signal) {
		sig = sw_signal_name(f->signal, sbuf, sizeof(sbuf));
		if (f->signal == SIGKILL) {
			v->pattern = "killed";
			snprintf(v->summary, sizeof(v->summary), "killed by SIGKILL%s", blocked);
			v->advice = f->in_incident
					? "a loop blocked that long fails its liveness probe: a watchdog or "
					  "the orchestrator killed it; fix the block reported before this exit"
					: "SIGKILL comes from the OOM killer (dmesg, kubectl describe pod: "
					  "OOMKilled), a memory limit, or kill -9; check memory_growth "
					  "findings and the container's memory limit";
		} else if (f->signal == SIGTERM || f->signal == SIGINT || f->signal == SIGHUP ||
			   f->signal == SIGQUIT) {
			v->pattern = "terminated";
			snprintf(v->summary, sizeof(v->summary), "stopped by %s%s", sig, blocked);
			v->advice = "a shutdown asked for by the service manager or a user; nothing to "
				    "fix unless it was not expected";
		} else {
			v->pattern = "crashed";
			snprintf(v->summary, sizeof(v->summary), "crashed with %s%s%s", sig,
				 f->core ? " (core dumped)" : "", blocked);
			v->advice = "a native fault or abort: read the core dump (coredumpctl) or the "
				    "stderr just before; suspect native addons and the runtime version";
		}
		return;
	}
	if (!strcmp(rt, "node") && f->status &&
	    ((f->uncaught && f->from_promise) || stderr_says_rejection(f->stderr_tail))) {
		v->pattern = "node.unhandled_rejection";
		node_error_lines(f->stderr_tail, msg, sizeof(msg), at, sizeof(at));
		snprintf(v->summary, sizeof(v->summary),
			 "died of an unhandled promise rejection (exit status %u)%s%s%s%s%s", f->status,
			 msg[0] ? ": " : "", msg, at[0] ? " at " : "", at, blocked);
		v->advice = "add a .catch() to that promise, or try/catch around the await that "
			    "rejected; log the rest with process.on('unhandledRejection'); Node >= 15 "
			    "exits on an unhandled rejection by default (--unhandled-rejections=throw)";
		return;
	}
	if (!strcmp(rt, "node") && f->status && f->uncaught) {
		v->pattern = "node.uncaught_exception";
		node_error_lines(f->stderr_tail, msg, sizeof(msg), at, sizeof(at));
		snprintf(v->summary, sizeof(v->summary),
			 "died of an uncaught exception (exit status %u)%s%s%s%s%s", f->status,
			 msg[0] ? ": " : "", msg, at[0] ? " at " : "", at, blocked);
		v->advice = "catch the error where it is thrown (a callback or an event handler "
			    "has no caller to catch it); process.on('uncaughtException') only to "
			    "log and exit";
		return;
	}
	if (!strcmp(rt, "python") && f->status && has(f->stderr_tail, "Traceback (most recent")) {
		v->pattern = "python.uncaught_exception";
		python_error_line(f->stderr_tail, msg, sizeof(msg));
		snprintf(v->summary, sizeof(v->summary),
			 "died of an uncaught exception (exit status %u)%s%s%s", f->status,
			 msg[0] ? ": " : "", msg, blocked);
		v->advice = "handle the exception in the task that raised it; in asyncio, a task's "
			    "exception surfaces only when awaited: add a done-callback or "
			    "loop.set_exception_handler to log it";
		return;
	}
	if (f->status == 0) {
		v->pattern = "exit_ok";
		snprintf(v->summary, sizeof(v->summary), "exited normally (status 0)%s", blocked);
		v->advice = "nothing to fix";
		return;
	}
	v->pattern = "exit_error";
	snprintf(v->summary, sizeof(v->summary), "exited with status %u%s", f->status, blocked);
	v->advice = "the program chose to exit with an error: read its log or the stderr just "
		    "before";
}

/* 12.3 MB, 512 KB: what a person reads */
static void bytes_str(double b, char *buf, size_t len)
{
	if (b >= 1e9)
		snprintf(buf, len, "%.2f GB", b / 1e9);
	else if (b >= 1e6)
		snprintf(buf, len, "%.1f MB", b / 1e6);
	else
		snprintf(buf, len, "%.0f KB", b / 1e3);
}

void sw_memgrowth_classify(const struct sw_memgrowth_facts *f, struct sw_proc_verdict *v)
{
	const char *rt = f->runtime ? f->runtime : "";
	char grew[32], rate[32], from[32], to[32];

	bytes_str((double)f->rss_end - (double)f->rss_start, grew, sizeof(grew));
	bytes_str(f->rate_bps, rate, sizeof(rate));
	bytes_str((double)f->rss_start, from, sizeof(from));
	bytes_str((double)f->rss_end, to, sizeof(to));
	v->pattern = SW_MEMGROWTH_PATTERN;
	snprintf(v->summary, sizeof(v->summary),
		 "resident memory grew steadily by %s in %.0f s (%s/s, %.1f MB/h), from %s to %s",
		 grew, f->window_s, rate, f->rate_bps * 3600 / 1e6, from, to);
	if (!strcmp(rt, "node"))
		v->advice = "compare two heap snapshots taken minutes apart (node "
			    "--heapsnapshot-signal=SIGUSR2, or the inspector) and look at what grew: "
			    "caches without a bound, listeners never removed, closures kept by timers";
	else if (!strcmp(rt, "python"))
		v->advice = "compare two tracemalloc snapshots (snapshot.compare_to(old, 'lineno')) "
			    "to find the lines that allocate; look for caches without a bound "
			    "(lru_cache(maxsize=None)), lists that only grow, tasks never awaited";
	else
		v->advice = "find what allocates without freeing (heaptrack, valgrind massif); "
			    "check caches and queues without a bound";
}

const char *sw_loop_bound(uint64_t busy_ns, uint64_t oncpu_ns, uint64_t runq_ns)
{
	double want;

	if (busy_ns < SW_BOUND_MIN_BUSY_NS)
		return "idle";
	want = (double)(oncpu_ns + runq_ns) / (double)busy_ns;
	if (want < SW_BOUND_IO_MAX)
		return "io";
	return want >= SW_BOUND_CPU_MIN ? "cpu" : "mixed";
}
