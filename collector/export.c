// SPDX-License-Identifier: Apache-2.0
#include "export.h"
#include "clock.h"
#include "procrules.h"
#include "rules.h"
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ---- */

/* Room for want bytes in all (the text and its NUL); false on OOM, which
 * sticks: an incomplete text is never served. */
static bool buf_reserve(struct sw_buf *b, size_t want)
{
	size_t ncap;
	char *np;

	if (b->oom)
		return false;
	if (b->p && want <= b->cap)
		return true;
	ncap = b->cap ? b->cap : 16384;
	while (ncap < want)
		ncap *= 2;
	np = realloc(b->p, ncap);
	if (!np) {
		b->oom = true;
		return false;
	}
	b->p = np;
	b->cap = ncap;
	return true;
}

void sw_buf__printf(struct sw_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = b->cap - b->len;

		if (b->oom)
			return;
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && (size_t)n < room) {
			b->len += n;
			return;
		}
		if (!buf_reserve(b, b->len + n + 1))
			return;
	}
}

/* n bytes of s, no format: most of an exposition is copied, not printed */
static void sw_buf__put(struct sw_buf *b, const char *s, size_t n)
{
	if (!buf_reserve(b, b->len + n + 1))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void sw_buf__free(struct sw_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- Prometheus text ---- */

/* le bounds of the exported histogram: the OTel/Prometheus-style coarse
 * buckets from 100 us to 60 s. The strings are what goes on the wire, the
 * ns are handed to sw_hist_count_le(). */
static const struct {
	const char *le;
	uint64_t ns;
} le_bounds[] = {
    {"0.0001", 100000ull},  {"0.00025", 250000ull}, {"0.0005", 500000ull},  {"0.001", 1000000ull},
    {"0.0025", 2500000ull}, {"0.005", 5000000ull},  {"0.01", 10000000ull},  {"0.025", 25000000ull},
    {"0.05", 50000000ull},  {"0.1", 100000000ull},  {"0.25", 250000000ull}, {"0.5", 500000000ull},
    {"1", 1000000000ull},   {"2.5", 2500000000ull}, {"5", 5000000000ull},   {"10", 10000000000ull},
    {"30", 30000000000ull}, {"60", 60000000000ull},
};

#define NLE (sizeof(le_bounds) / sizeof(le_bounds[0]))

/* Label values: backslash, double quote and line feed are escaped
 * (exposition format 0.0.4); anything else goes as is (UTF-8). */
static void put_escaped(struct sw_buf *b, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '"')
			esc = "\\\"";
		else if (*s == '\n')
			esc = "\\n";
		if (!esc)
			continue;
		sw_buf__printf(b, "%.*s%s", (int)(s - run), run, esc);
		run = s + 1;
	}
	sw_buf__printf(b, "%s", run);
}

static void put_label(struct sw_buf *b, bool first, const char *name, const char *value)
{
	sw_buf__printf(b, "%s%s=\"", first ? "" : ",", name);
	put_escaped(b, value);
	sw_buf__printf(b, "\"");
}

/* "node.x" patterns are a Node loop's, "python.x" a Python loop's; the
 * others (unknown, cpu_starvation) any loop's. */
static bool pattern_applies(const char *pattern, const char *runtime)
{
	const char *dot = strchr(pattern, '.');
	size_t n;

	if (!dot)
		return true;
	n = (size_t)(dot - pattern);
	return strlen(runtime) == n && strncmp(pattern, runtime, n) == 0;
}

/* An optional label: an empty value is no label to Prometheus, and not
 * writing it keeps the exposition short. */
static void put_label_opt(struct sw_buf *b, const char *name, const char *value)
{
	if (value[0])
		put_label(b, false, name, value);
}

/* name{host,service,runtime[,runtime_version][,container_id][,container]
 * [,pod_uid][,pod],pid: who a process is in a fleet (docs/METRICS.md) */
static void put_ident(struct sw_buf *b, const char *name, const char *host,
		      const struct sw_ident *id, const char *runtime, uint32_t pid)
{
	char num[16];

	sw_buf__printf(b, "%s{", name);
	put_label(b, true, "host", host);
	put_label(b, false, "service", id->service);
	put_label(b, false, "runtime", runtime);
	put_label_opt(b, "runtime_version", id->runtime_version);
	put_label_opt(b, "container_id", id->container_id);
	put_label_opt(b, "container", id->container);
	put_label_opt(b, "pod_uid", id->pod_uid);
	put_label_opt(b, "pod", id->pod);
	snprintf(num, sizeof(num), "%" PRIu32, pid);
	put_label(b, false, "pid", num);
}

/*
 * The label set of every loop, written once per scrape: a loop has up to
 * 61 lines, and formatting its 8 to 12 labels again for each was 60 % of a
 * scrape's time at 50,000 series (bench/ingest.py). off[i], len[i] locate
 * loop i's "host=..,...,role=.." in text. Built and used under the store
 * lock.
 */
struct loop_labels {
	struct sw_buf text;
	size_t *off, *len;
};

static int loop_labels_build(struct sw_store *s, struct loop_labels *ll)
{
	size_t n = sw_store__nloops(s);
	char num[16];

	memset(ll, 0, sizeof(*ll));
	ll->off = calloc(n ? n : 1, sizeof(*ll->off));
	ll->len = calloc(n ? n : 1, sizeof(*ll->len));
	if (!ll->off || !ll->len)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct sw_loop_view *l = sw_store__loop(s, i);

		ll->off[i] = ll->text.len;
		if (!l->scrape_show)
			continue;
		put_ident(&ll->text, "", l->host, &l->id, l->runtime, l->pid);
		snprintf(num, sizeof(num), "%" PRIu32, l->tid);
		put_label(&ll->text, false, "tid", num);
		put_label(&ll->text, false, "role", l->role);
		ll->len[i] = ll->text.len - ll->off[i];
	}
	return ll->text.oom ? -ENOMEM : 0;
}

static void loop_labels_free(struct loop_labels *ll)
{
	sw_buf__free(&ll->text);
	free(ll->off);
	free(ll->len);
}

/* name{<ident>,tid=..,role=..[,k=v][,k2=v2]} of loop i */
static void put_loop_series(struct sw_buf *b, const char *name, const struct loop_labels *ll,
			    size_t i, const char *k, const char *v, const char *k2, const char *v2)
{
	sw_buf__put(b, name, strlen(name));
	/* the cached text begins with put_ident's "{" */
	sw_buf__put(b, ll->text.p + ll->off[i], ll->len[i]);
	if (k)
		put_label(b, false, k, v);
	if (k2)
		put_label(b, false, k2, v2);
	sw_buf__put(b, "} ", 2);
}

static void put_family(struct sw_buf *b, const char *name, const char *type, const char *help)
{
	sw_buf__printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* seconds from ns: 15 significant digits keep ns over 11 days of busy time */
static void put_seconds(struct sw_buf *b, double ns) { sw_buf__printf(b, "%.15g\n", ns / 1e9); }

static void put_u64(struct sw_buf *b, uint64_t v) { sw_buf__printf(b, "%" PRIu64 "\n", v); }

static bool is_node(const struct sw_loop_view *l) { return strcmp(l->runtime, "node") == 0; }

static const struct {
	const char *suffix;
	size_t off;
	const char *help;
} delay_gauges[] = {
    {"min", offsetof(struct sw_loop_view, min_ns), "Shortest loop iteration busy time"},
    {"max", offsetof(struct sw_loop_view, max_ns), "Longest loop iteration busy time"},
    {"mean", offsetof(struct sw_loop_view, mean_ns), "Mean loop iteration busy time"},
    {"stddev", offsetof(struct sw_loop_view, stddev_ns),
     "Standard deviation of loop iteration busy time"},
    {"p50", offsetof(struct sw_loop_view, p50_ns), "Median loop iteration busy time"},
    {"p90", offsetof(struct sw_loop_view, p90_ns), "90th percentile of loop iteration busy time"},
    {"p99", offsetof(struct sw_loop_view, p99_ns), "99th percentile of loop iteration busy time"},
};

static double view_double(const struct sw_loop_view *l, size_t off)
{
	double v;

	memcpy(&v, (const char *)l + off, sizeof(v));
	return v;
}

/* Loop i, or NULL when this scrape does not show it (gone, and this
 * scraper has seen its final values). */
static const struct sw_loop_view *shown_loop(struct sw_store *s, size_t i)
{
	const struct sw_loop_view *l = sw_store__loop(s, i);

	return l->scrape_show ? l : NULL;
}

static bool is_max_gauge(size_t g)
{
	return delay_gauges[g].off == offsetof(struct sw_loop_view, max_ns);
}

/*
 * Value of delay gauge g of loop l, or false when the series is left out.
 * The max is the longest iteration reported since this scraper's previous
 * scrape, or the block in progress if longer (sw_store__scrape_begin):
 * every block is in some scrape of every scraper. The others describe the
 * iterations that ended in the agent's last interval; with none, 0 would
 * read as "no delay", which nobody measured.
 */
static bool delay_gauge(const struct sw_loop_view *l, size_t g, double *v)
{
	if (is_max_gauge(g)) {
		*v = l->scrape_max_ns;
		return l->scrape_max_valid;
	}
	*v = view_double(l, delay_gauges[g].off);
	return l->interval_iterations != 0;
}

static void export_loops(struct sw_store *s, const struct loop_labels *ll, struct sw_buf *b)
{
	size_t n = sw_store__nloops(s), npat = sw_store__npatterns();
	uint64_t le_ns[NLE], cum[NLE];
	char name[96], help[200];

	for (size_t k = 0; k < NLE; k++)
		le_ns[k] = le_bounds[k].ns;
	put_family(b, "stallwatch_eventloop_delay_seconds", "histogram",
		   "Busy time per event loop iteration: what a callback queued behind it waits");
	for (size_t i = 0; i < n; i++) {
		const struct sw_loop_view *l = shown_loop(s, i);

		if (!l)
			continue;

		sw_hist_counts_le(&l->hist, le_ns, NLE, cum);
		for (size_t k = 0; k < NLE; k++) {
			put_loop_series(b, "stallwatch_eventloop_delay_seconds_bucket", ll, i, "le",
					le_bounds[k].le, NULL, NULL);
			put_u64(b, cum[k]);
		}
		put_loop_series(b, "stallwatch_eventloop_delay_seconds_bucket", ll, i, "le", "+Inf",
				NULL, NULL);
		put_u64(b, l->hist.total);
		put_loop_series(b, "stallwatch_eventloop_delay_seconds_sum", ll, i, NULL, NULL, NULL,
				NULL);
		put_seconds(b, (double)l->hist_sum_ns);
		put_loop_series(b, "stallwatch_eventloop_delay_seconds_count", ll, i, NULL, NULL, NULL,
				NULL);
		put_u64(b, l->hist.total);
	}

	for (int node = 0; node < 2; node++) {
		const char *prefix = node ? "nodejs" : "stallwatch";

		for (size_t g = 0; g < sizeof(delay_gauges) / sizeof(delay_gauges[0]); g++) {
			/* the percentiles of all loops come from the histogram;
			 * Node's OTel gauges stay for the dashboards built on them */
			if (!node && !is_max_gauge(g))
				continue;
			snprintf(name, sizeof(name), "%s_eventloop_delay_%s_seconds", prefix,
				 delay_gauges[g].suffix);
			snprintf(help, sizeof(help), "%s%s, %s", delay_gauges[g].help,
				 node ? " (Node loops)" : "",
				 is_max_gauge(g) ? "or block in progress, since this scraper's previous "
						   "scrape"
						 : "agent's last reporting interval");
			put_family(b, name, "gauge", help);
			for (size_t i = 0; i < n; i++) {
				const struct sw_loop_view *l = shown_loop(s, i);
				double v;

				if (!l || (node && !is_node(l)) ||
				    !delay_gauge(l, g, &v))
					continue;
				put_loop_series(b, name, ll, i, NULL, NULL, NULL, NULL);
				put_seconds(b, v);
			}
		}
		snprintf(name, sizeof(name), "%s_eventloop_utilization_ratio", prefix);
		put_family(
		    b, name, "gauge",
		    node ? "Event loop utilization (Node loops), last reporting interval"
			 : "Event loop utilization busy/(busy+idle), last reporting interval");
		for (size_t i = 0; i < n; i++) {
			const struct sw_loop_view *l = shown_loop(s, i);

			if (!l || (node && !is_node(l)))
				continue;
			put_loop_series(b, name, ll, i, NULL, NULL, NULL, NULL);
			sw_buf__printf(b, "%.15g\n", l->utilization);
		}
		snprintf(name, sizeof(name), "%s_eventloop_time_seconds_total", prefix);
		put_family(b, name, "counter",
			   node ? "Event loop time by state (Node loops)"
				: "Event loop time by state: active (busy) or idle (in its poll)");
		for (size_t i = 0; i < n; i++) {
			const struct sw_loop_view *l = shown_loop(s, i);
			const char *key = node ? "nodejs_eventloop_state" : "state";

			if (!l || (node && !is_node(l)))
				continue;
			put_loop_series(b, name, ll, i, key, "active", NULL, NULL);
			put_seconds(b, (double)l->busy_ns);
			put_loop_series(b, name, ll, i, key, "idle", NULL, NULL);
			put_seconds(b, (double)l->idle_ns);
		}
	}

	put_family(b, "stallwatch_eventloop_iterations_total", "counter", "Event loop iterations");
	for (size_t i = 0; i < n; i++) {
		const struct sw_loop_view *l = shown_loop(s, i);

		if (!l)
			continue;
		put_loop_series(b, "stallwatch_eventloop_iterations_total", ll, i, NULL, NULL, NULL,
				NULL);
		put_u64(b, l->iterations);
	}

	/* every pattern a loop can have, zeros included: rate() needs the series
	 * to exist before the first incident, and the pattern set is bounded
	 * (a Node loop gets no python.* series and the other way round) */
	put_family(b, "stallwatch_eventloop_blocked_total", "counter",
		   "Blocked-loop incidents that ended, by pattern");
	for (size_t i = 0; i < n; i++) {
		const struct sw_loop_view *l = shown_loop(s, i);

		if (!l)
			continue;
		for (size_t p = 0; p < npat; p++) {
			if (!pattern_applies(sw_rule_patterns[p], l->runtime) && !l->blocked[p])
				continue;
			put_loop_series(b, "stallwatch_eventloop_blocked_total", ll, i, "pattern",
					sw_rule_patterns[p], NULL, NULL);
			put_u64(b, l->blocked[p]);
		}
	}
	put_family(b, "stallwatch_eventloop_blocked_seconds_total", "counter",
		   "Time spent in blocked-loop incidents that ended, by pattern");
	for (size_t i = 0; i < n; i++) {
		const struct sw_loop_view *l = shown_loop(s, i);

		if (!l)
			continue;
		for (size_t p = 0; p < npat; p++) {
			if (!pattern_applies(sw_rule_patterns[p], l->runtime) && !l->blocked[p])
				continue;
			put_loop_series(b, "stallwatch_eventloop_blocked_seconds_total", ll, i,
					"pattern", sw_rule_patterns[p], NULL, NULL);
			put_seconds(b, (double)l->blocked_ns[p]);
		}
	}
	put_family(b, "stallwatch_eventloop_blocked_ongoing_seconds", "gauge",
		   "Length of the block in progress, 0 when none");
	for (size_t i = 0; i < n; i++) {
		const struct sw_loop_view *l = shown_loop(s, i);

		if (!l)
			continue;
		put_loop_series(b, "stallwatch_eventloop_blocked_ongoing_seconds", ll, i, NULL, NULL,
				NULL, NULL);
		put_seconds(b, (double)l->ongoing_ns);
	}
}

/* name{<ident>[,k=v]} */
static void put_proc_series_kv(struct sw_buf *b, const char *name, const struct sw_proc_view *p,
			       const char *k, const char *v)
{
	put_ident(b, name, p->host, &p->id, p->runtime, p->pid);
	if (k)
		put_label(b, false, k, v);
	sw_buf__printf(b, "} ");
}

static void put_proc_series(struct sw_buf *b, const char *name, const struct sw_proc_view *p)
{
	put_proc_series_kv(b, name, p, NULL, NULL);
}

/* The busy-time split and the process-wide figures (docs/METRICS.md). */
static void export_processes(struct sw_store *s, const struct loop_labels *ll,
			     struct sw_buf *b)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} split[] = {
	    {"stallwatch_eventloop_oncpu_seconds_total",
	     "Busy loop time spent running on a CPU", offsetof(struct sw_loop_view, oncpu_ns)},
	    {"stallwatch_eventloop_offcpu_seconds_total",
	     "Busy loop time spent sleeping in the kernel (I/O, locks, sleeps)",
	     offsetof(struct sw_loop_view, offcpu_ns)},
	    {"stallwatch_eventloop_runq_seconds_total",
	     "Busy loop time spent runnable, waiting for a CPU", offsetof(struct sw_loop_view, runq_ns)},
	};
	size_t n = sw_store__nloops(s), np = sw_store__nprocs(s), nc = sw_store__nexit_causes();
	struct sw_proc_view pv;
	uint64_t v;

	for (size_t k = 0; k < sizeof(split) / sizeof(split[0]); k++) {
		put_family(b, split[k].name, "counter", split[k].help);
		for (size_t i = 0; i < n; i++) {
			const struct sw_loop_view *l = shown_loop(s, i);

			if (!l || !l->have_split)
				continue;
			memcpy(&v, (const char *)l + split[k].off, sizeof(v));
			put_loop_series(b, split[k].name, ll, i, NULL, NULL, NULL, NULL);
			put_seconds(b, (double)v);
		}
	}
	put_family(b, "stallwatch_eventloop_cpu_share_ratio", "gauge",
		   "On-CPU share of the loop's busy time, last reporting interval (below 0.2: "
		   "I/O-bound)");
	for (size_t i = 0; i < n; i++) {
		const struct sw_loop_view *l = shown_loop(s, i);

		if (!l || !l->have_split)
			continue;
		put_loop_series(b, "stallwatch_eventloop_cpu_share_ratio", ll, i, NULL, NULL, NULL, NULL);
		sw_buf__printf(b, "%.6g\n", l->cpu_share);
	}

	put_family(b, "stallwatch_process_resident_bytes", "gauge",
		   "Resident size of the process at its last loop summary");
	for (size_t i = 0; i < np; i++) {
		sw_store__proc(s, i, &pv);
		if (!pv.scrape_show || !pv.rss_bytes || pv.exited)
			continue;
		put_proc_series(b, "stallwatch_process_resident_bytes", &pv);
		put_u64(b, pv.rss_bytes);
	}
	put_family(b, "stallwatch_process_memory_growth_bytes_per_second", "gauge",
		   "Rate of the last steady resident-size growth found (memory_growth)");
	for (size_t i = 0; i < np; i++) {
		sw_store__proc(s, i, &pv);
		if (!pv.scrape_show || !pv.have_growth || pv.exited)
			continue;
		put_proc_series(b, "stallwatch_process_memory_growth_bytes_per_second", &pv);
		sw_buf__printf(b, "%.6g\n", pv.growth_bps);
	}
	/* every cause of a (host, service, runtime) that had an exit, zeros
	 * included: the set is bounded, and increase() needs the 0 before */
	put_family(b, "stallwatch_process_exits_total", "counter",
		   "Watched processes that exited, by host, service, runtime and cause");
	for (size_t r = 0; r < sw_store__nexit_rows(s); r++) {
		const struct sw_exit_row *row = sw_store__exit_row(s, r);

		for (size_t c = 0; c < nc; c++) {
			sw_buf__printf(b, "stallwatch_process_exits_total{");
			put_label(b, true, "host", row->host);
			put_label(b, false, "service", row->service);
			put_label(b, false, "runtime", row->runtime);
			put_label(b, false, "cause", sw_exit_patterns[c]);
			sw_buf__printf(b, "} ");
			put_u64(b, row->n[c]);
		}
	}
}

/* ---- GIL contention of CPython processes (docs/METRICS.md) ---- */

/* Counters of a process: exported from its first measured interval until
 * the process entry expires (5 min after its exit, like the loop series),
 * so that a scrape sees the last increments. */
static const struct {
	const char *name, *help;
	size_t off;
	bool seconds; /* ns in the view */
} gil_counters[] = {
    {"stallwatch_python_gil_wait_seconds_total",
     "Thread time spent waiting for the GIL (futex waits on its cond and mutex), all threads",
     offsetof(struct sw_gil_view, wait_ns), true},
    {"stallwatch_python_gil_hold_seconds_total",
     "Thread time holding the GIL (sampled), all threads", offsetof(struct sw_gil_view, hold_ns),
     true},
    {"stallwatch_python_gil_acquisitions_total",
     "Contended GIL acquisitions: waits ended by the holder's release",
     offsetof(struct sw_gil_view, acquisitions), false},
    {"stallwatch_python_gil_drop_requests_total",
     "GIL drop requests: waits that timed out after the switch interval while one holder kept it",
     offsetof(struct sw_gil_view, drop_requests), false},
    {"stallwatch_python_gil_forced_switches_total",
     "Times a GIL holder had to hand it over on a waiter's drop request",
     offsetof(struct sw_gil_view, forced_switches), false},
    {"stallwatch_python_gil_switches_total", "Changes of the GIL's holder",
     offsetof(struct sw_gil_view, switches), false},
    {"stallwatch_python_gil_intervals_total", "Reporting intervals of GIL measurement",
     offsetof(struct sw_gil_view, intervals), false},
};

static uint64_t gil_u64(const struct sw_gil_view *g, size_t off)
{
	uint64_t v;

	memcpy(&v, (const char *)g + off, sizeof(v));
	return v;
}


/* Gauges of the last measured interval: only while the process lives and
 * its GIL is measured (a process gone or not measurable has no
 * utilization, and 0 would read as "idle"). */
static bool gil_gauges(const struct sw_gil_view *g, const struct sw_proc_view *pv)
{
	return g && g->measured && !pv->exited && pv->scrape_show;
}

enum gil_gauge { GG_UTIL, GG_CONTENTION, GG_WAITING, GG_SWITCH_INTERVAL, GG_LOOP_SHARE, GG__N };

static const struct {
	const char *name, *help;
} gil_gauges_def[GG__N] = {
    [GG_UTIL] = {"stallwatch_python_gil_utilization_ratio",
		 "Share of the holder samples that found the GIL held, last reporting interval"},
    [GG_CONTENTION] = {"stallwatch_python_gil_contention_ratio",
		       "Share of the time threads wanted the GIL spent waiting for it, "
		       "wait/(wait+hold), last reporting interval"},
    [GG_WAITING] = {"stallwatch_python_gil_waiting_threads",
		    "Threads that waited at least 5 % of the last reporting interval for the GIL"},
    [GG_SWITCH_INTERVAL] = {"stallwatch_python_gil_switch_interval_seconds",
			    "The process's switch interval (sys.getswitchinterval()), read from "
			    "its GIL"},
    [GG_LOOP_SHARE] = {"stallwatch_python_gil_loop_wait_share_ratio",
		       "Share of the last reporting interval the event loop thread waited for the "
		       "GIL (0 when it did not; absent in a process with no loop thread)"},
};

/* Value of gauge k, false when the series is left out. */
static bool gil_gauge(const struct sw_gil_view *g, enum gil_gauge k, double *v)
{
	switch (k) {
	case GG_UTIL:
		*v = g->utilization;
		return true;
	case GG_CONTENTION:
		*v = g->contention;
		return true;
	case GG_WAITING:
		*v = g->waiting_threads;
		return true;
	case GG_SWITCH_INTERVAL:
		*v = (double)g->switch_interval_us / 1e6;
		return g->switch_interval_us != 0; /* 0: not read */
	case GG_LOOP_SHARE:
		/* 0 in an interval the loop did not wait: a gap in the series
		 * would read as "no data" on the dashboard */
		*v = g->loop_wait_share;
		return g->have_loop;
	default:
		return false;
	}
}

static void export_gil(struct sw_store *s, struct sw_buf *b)
{
	size_t np = sw_store__nprocs(s);
	struct sw_proc_view pv;

	put_family(b, "stallwatch_python_gil_measured", "gauge",
		   "1 while the process's GIL is measured, 0 when the agent cannot (free-threaded "
		   "build, a CPython version not in its table)");
	for (size_t i = 0; i < np; i++) {
		const struct sw_gil_view *g = sw_store__gil(s, i);

		sw_store__proc(s, i, &pv);
		if (!g || pv.exited || !pv.scrape_show)
			continue;
		put_proc_series_kv(b, "stallwatch_python_gil_measured", &pv, NULL, NULL);
		sw_buf__printf(b, "%d\n", g->measured ? 1 : 0);
	}
	for (size_t k = 0; k < sizeof(gil_counters) / sizeof(gil_counters[0]); k++) {
		put_family(b, gil_counters[k].name, "counter", gil_counters[k].help);
		for (size_t i = 0; i < np; i++) {
			const struct sw_gil_view *g = sw_store__gil(s, i);
			uint64_t v;

			if (!g || !g->have_data)
				continue;
			sw_store__proc(s, i, &pv);
			if (!pv.scrape_show)
				continue;
			v = gil_u64(g, gil_counters[k].off);
			put_proc_series_kv(b, gil_counters[k].name, &pv, NULL, NULL);
			if (gil_counters[k].seconds)
				put_seconds(b, (double)v);
			else
				put_u64(b, v);
		}
	}
	/* both patterns from 0: rate() needs the series before the first one */
	put_family(b, "stallwatch_python_gil_flagged_intervals_total", "counter",
		   "Reporting intervals the GIL rules flagged, by pattern");
	for (size_t i = 0; i < np; i++) {
		const struct sw_gil_view *g = sw_store__gil(s, i);

		if (!g || !g->have_data)
			continue;
		sw_store__proc(s, i, &pv);
		if (!pv.scrape_show)
			continue;
		for (int p = 0; p < SW_GIL_NPATTERNS; p++) {
			put_proc_series_kv(b, "stallwatch_python_gil_flagged_intervals_total", &pv,
				       "pattern", sw_gil_patterns[p]);
			put_u64(b, g->flagged[p]);
		}
	}
	for (int k = 0; k < GG__N; k++) {
		put_family(b, gil_gauges_def[k].name, "gauge", gil_gauges_def[k].help);
		for (size_t i = 0; i < np; i++) {
			const struct sw_gil_view *g = sw_store__gil(s, i);
			double v;

			sw_store__proc(s, i, &pv);
			if (!gil_gauges(g, &pv) || !gil_gauge(g, (enum gil_gauge)k, &v))
				continue;
			put_proc_series_kv(b, gil_gauges_def[k].name, &pv, NULL, NULL);
			sw_buf__printf(b, "%.15g\n", v);
		}
	}
	/* per thread name, at most SW_GIL_THREAD_NAMES + "other" per process */
	for (int hold = 0; hold < 2; hold++) {
		const char *name = hold ? "stallwatch_python_gil_thread_hold_seconds_total"
					: "stallwatch_python_gil_thread_wait_seconds_total";

		put_family(b, name, "counter",
			   hold ? "Time threads of this name held the GIL (sampled); past 16 names "
				  "per process, thread=\"other\""
				: "Time threads of this name waited for the GIL; past 16 names per "
				  "process, thread=\"other\"");
		for (size_t i = 0; i < np; i++) {
			const struct sw_gil_view *g = sw_store__gil(s, i);

			if (!g || !g->have_data)
				continue;
			sw_store__proc(s, i, &pv);
			if (!pv.scrape_show)
				continue;
			for (uint32_t t = 0; t <= g->n_names; t++) {
				const struct sw_gil_name_view *n =
				    t < g->n_names ? &g->names[t] : &g->other;

				if (t == g->n_names && !g->have_other)
					continue;
				put_proc_series_kv(b, name, &pv, "thread", n->thread);
				put_seconds(b, (double)(hold ? n->hold_ns : n->wait_ns));
			}
		}
	}
}

static void export_agents(struct sw_store *s, struct sw_buf *b)
{
	size_t n = sw_store__nagents(s);

	put_family(b, "stallwatch_agent_up", "gauge", "1 while the agent is connected");
	for (size_t i = 0; i < n; i++) {
		const struct sw_agent_view *a = sw_store__agent(s, i);

		if (a->replaced)
			continue;
		sw_buf__printf(b, "stallwatch_agent_up{");
		put_label(b, true, "host", a->host);
		put_label(b, false, "agent", a->id);
		sw_buf__printf(b, "} %d\n", a->up ? 1 : 0);
	}
	for (int c = 0; c < SW_HEALTH__COUNT; c++) {
		char name[96];

		snprintf(name, sizeof(name), "stallwatch_agent_%s_total", sw_health_names[c]);
		put_family(b, name, "counter", sw_health_help[c]);
		for (size_t i = 0; i < n; i++) {
			const struct sw_agent_view *a = sw_store__agent(s, i);

			/* before its first report a zero would be a guess */
			if (!a->have_health || a->replaced)
				continue;
			sw_buf__printf(b, "%s{", name);
			put_label(b, true, "host", a->host);
			/* two agents on one host must not make duplicate series */
			put_label(b, false, "agent", a->id);
			sw_buf__printf(b, "} %" PRIu64 "\n", a->health[c]);
		}
	}
}

/* The ingest side's holds of the store lock (store.h): what a scrape may
 * have waited for, each at most about one slice of a batch. */
static void export_holds(const struct sw_store *s, struct sw_buf *b)
{
	struct sw_store_holds h;

	sw_store__holds(s, &h);
	put_family(b, "stallwatch_collector_store_lock_hold_seconds", "histogram",
		   "Time the ingest side (batches in slices, connections, expiry) held the "
		   "store lock, each hold: how long a scrape may wait for it");
	for (int i = 0; i < SW_STORE_HOLD_BUCKETS; i++)
		sw_buf__printf(b,
			       "stallwatch_collector_store_lock_hold_seconds_bucket{le=\"%g\"} %" PRIu64
			       "\n",
			       (double)sw_store_hold_le_ns[i] / 1e9, h.le[i]);
	sw_buf__printf(b,
		       "stallwatch_collector_store_lock_hold_seconds_bucket{le=\"+Inf\"} %" PRIu64
		       "\n",
		       h.count);
	sw_buf__printf(b, "stallwatch_collector_store_lock_hold_seconds_sum ");
	put_seconds(b, (double)h.sum_ns);
	sw_buf__printf(b, "stallwatch_collector_store_lock_hold_seconds_count %" PRIu64 "\n",
		       h.count);
	put_family(b, "stallwatch_collector_store_lock_hold_max_seconds", "gauge",
		   "Longest hold of the store lock by the ingest side since the collector started");
	sw_buf__printf(b, "stallwatch_collector_store_lock_hold_max_seconds ");
	put_seconds(b, (double)h.max_ns);
}

static void export_collector(struct sw_store *s, const struct sw_ingest_stats *in,
			     uint64_t now_ns, struct sw_buf *b)
{
	struct sw_ingest_stats zero = {0};
	struct sw_store_counters c;

	if (!in)
		in = &zero;
	sw_store__counters(s, &c);
	put_family(b, "stallwatch_collector_connections", "gauge", "Open agent connections");
	sw_buf__printf(b, "stallwatch_collector_connections %" PRIu64 "\n", in->connections);
	put_family(b, "stallwatch_collector_connections_refused_total", "counter",
		   "Agent connections closed at accept: no memory for their decoder or TLS session (at the "
		   "cap the listener stops accepting instead)");
	sw_buf__printf(b, "stallwatch_collector_connections_refused_total %" PRIu64 "\n",
		       in->refused);
	put_family(b, "stallwatch_collector_connections_closed_total", "counter",
		   "Agent connections the collector closed by its own rules, by reason "
		   "(deadlines, per-peer cap, frame memory, authentication, identity, failed TLS "
		   "handshakes)");
	for (int r = 0; r < SW_CLOSE__COUNT; r++)
		sw_buf__printf(b,
			       "stallwatch_collector_connections_closed_total{reason=\"%s\"} %" PRIu64
			       "\n",
			       sw_close_reason__name(r), in->closed[r]);
	put_family(b, "stallwatch_collector_accept_paused_total", "counter",
		   "Times the agent listener stopped accepting at the connection cap");
	sw_buf__printf(b, "stallwatch_collector_accept_paused_total %" PRIu64 "\n",
		       in->accept_paused);
	put_family(b, "stallwatch_collector_frame_bytes", "gauge",
		   "Bytes of unfinished agent frames held (--frame-memory bounds them)");
	sw_buf__printf(b, "stallwatch_collector_frame_bytes %" PRIu64 "\n", in->frame_bytes);
	put_family(b, "stallwatch_collector_http_closed_total", "counter",
		   "HTTP connections refused over the per-address or total limit, cut "
		   "without a complete request in time, or answered 400 and closed for a query "
		   "of more than 32 arguments, by reason");
	sw_buf__printf(b,
		       "stallwatch_collector_http_closed_total{reason=\"limit\"} %" PRIu64 "\n",
		       in->http_refused);
	sw_buf__printf(b,
		       "stallwatch_collector_http_closed_total{reason=\"header_timeout\"} %" PRIu64
		       "\n",
		       in->http_header_timeouts);
	sw_buf__printf(b,
		       "stallwatch_collector_http_closed_total{reason=\"too_many_args\"} %" PRIu64
		       "\n",
		       in->http_too_many_args);
	put_family(b, "stallwatch_collector_http_requests_refused_total", "counter",
		   "HTTP requests refused, by reason: unauthorized (answered 401: no bearer token "
		   "or a wrong one, with --http-token-file)");
	sw_buf__printf(b,
		       "stallwatch_collector_http_requests_refused_total{reason=\"unauthorized\"} "
		       "%" PRIu64 "\n",
		       in->http_unauthorized);
	put_family(b, "stallwatch_collector_http_tls_handshake_failures_total", "counter",
		   "TLS handshakes on the HTTP port that failed (with --http-tls-cert): a plaintext "
		   "request, a client that did not trust the certificate, or one that hung up or "
		   "was cut by the header deadline before finishing");
	sw_buf__printf(b, "stallwatch_collector_http_tls_handshake_failures_total %" PRIu64 "\n",
		       in->http_tls_failed);
	put_family(b, "stallwatch_collector_log_suppressed_total", "counter",
		   "Log lines not written by the per-site rate limit");
	sw_buf__printf(b, "stallwatch_collector_log_suppressed_total %" PRIu64 "\n",
		       in->log_suppressed);
	put_family(b, "stallwatch_collector_frames_total", "counter", "Frames decoded");
	sw_buf__printf(b, "stallwatch_collector_frames_total %" PRIu64 "\n", in->frames);
	put_family(b, "stallwatch_collector_bad_frames_total", "counter",
		   "Connections closed for bad bytes, by reason");
	for (int r = SW_BAD_NONE + 1; r < SW_BAD__COUNT; r++)
		sw_buf__printf(b,
			       "stallwatch_collector_bad_frames_total{reason=\"%s\"} %" PRIu64 "\n",
			       sw_bad_reason__name(r), in->bad[r]);
	put_family(b, "stallwatch_collector_series_dropped_total", "counter",
		   "Series refused: by a cap (--max-loops), or because another live agent "
		   "reports the same process (duplicate)");
	sw_buf__printf(b, "stallwatch_collector_series_dropped_total{reason=\"cap\"} %" PRIu64 "\n",
		       c.series_dropped);
	sw_buf__printf(b,
		       "stallwatch_collector_series_dropped_total{reason=\"duplicate\"} %" PRIu64
		       "\n",
		       c.series_duplicate);
	put_family(b, "stallwatch_collector_loops", "gauge", "Loop-thread series held");
	sw_buf__printf(b, "stallwatch_collector_loops %zu\n", sw_store__nloops(s));
	put_family(b, "stallwatch_collector_loops_limit", "gauge",
		   "Cap on loop-thread series and on processes (--max-loops)");
	sw_buf__printf(b, "stallwatch_collector_loops_limit %zu\n", sw_store__max_loops(s));
	put_family(b, "stallwatch_collector_duplicate_loops", "gauge",
		   "Loop series held back because another live agent reports the same thread "
		   "(seconds during an overlapping agent restart; more: two agents on one process)");
	sw_buf__printf(b, "stallwatch_collector_duplicate_loops %zu\n", sw_store__nshadow_loops(s));
	put_family(b, "stallwatch_collector_scrapers", "gauge",
		   "Clients of /metrics (address and User-Agent) seen in the last 10 minutes");
	sw_buf__printf(b, "stallwatch_collector_scrapers %zu\n", sw_store__nscrapers(s, now_ns));
	put_family(b, "stallwatch_collector_incidents_dropped_total", "counter",
		   "Incidents evicted from the bounded incident list");
	sw_buf__printf(b, "stallwatch_collector_incidents_dropped_total %" PRIu64 "\n",
		       c.incidents_dropped);
	put_family(b, "stallwatch_collector_batches_gap_total", "counter",
		   "Batches an agent evicted, seen as gaps in seq");
	sw_buf__printf(b, "stallwatch_collector_batches_gap_total %" PRIu64 "\n", c.batches_gap);
	put_family(b, "stallwatch_collector_batches_duplicate_total", "counter",
		   "Batches an agent resent after a reconnect that were applied before: dropped");
	sw_buf__printf(b, "stallwatch_collector_batches_duplicate_total %" PRIu64 "\n",
		       c.batches_duplicate);
	export_holds(s, b);
}

int sw_export__scrape(struct sw_store *s, const struct sw_ingest_stats *ingest, const char *who,
		      struct sw_buf *out)
{
	uint64_t now = sw_mono_ns();
	int slot;

	struct loop_labels ll;
	int err;

	sw_store__lock(s);
	slot = sw_store__scrape_begin(s, who);
	err = loop_labels_build(s, &ll);
	if (!err) {
		export_loops(s, &ll, out);
		export_processes(s, &ll, out);
		export_gil(s, out);
		export_agents(s, out);
		export_collector(s, ingest, now, out);
	}
	/* an export that failed is not the scraper's scrape of what is gone */
	if (!err && !out->oom)
		sw_store__scrape_end(s, slot, now);
	sw_store__unlock(s);
	loop_labels_free(&ll);
	return err || out->oom ? -ENOMEM : 0;
}

int sw_export__metrics(struct sw_store *s, const struct sw_ingest_stats *ingest, struct sw_buf *out)
{
	return sw_export__scrape(s, ingest, NULL, out);
}

/* ---- incidents JSON ---- */

static bool incident_selected(const struct sw_incident_query *q,
			      const struct sw_incident_view *in)
{
	uint64_t ms = in->start_unix_ns / 1000000;

	if (!q)
		return true;
	if (q->have_pid && in->pid != q->pid)
		return false;
	if (q->have_from && ms < q->from_unix_ms)
		return false;
	return !(q->have_to && ms > q->to_unix_ms);
}

static int cmp_newest_first(const void *pa, const void *pb)
{
	const struct sw_incident_view *a = *(const struct sw_incident_view *const *)pa;
	const struct sw_incident_view *b = *(const struct sw_incident_view *const *)pb;

	if (a->start_unix_ns != b->start_unix_ns)
		return a->start_unix_ns < b->start_unix_ns ? 1 : -1;
	if (a->start_ns != b->start_ns)
		return a->start_ns < b->start_ns ? 1 : -1;
	return 0;
}

static int add(json_object *o, const char *k, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, k, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* "stack" (innermost first), "stack_samples", "gc_share", "stack_note",
 * "syscalls": as the agent's JSON lines name them. */
static int diag_json(json_object *o, const struct sw_incident_view *in)
{
	json_object *a;
	int err = 0;

	if (in->stack[0]) {
		const char *p = in->stack, *nl;

		if (add(o, "stack", a = json_object_new_array()))
			return -ENOMEM;
		for (; *p && (nl = strchr(p, '\n')); p = nl + 1)
			err |= json_object_array_add(
			    a, json_object_new_string_len(p, (int)(nl - p)));
		err |= add(o, "stack_samples", json_object_new_int64(in->stack_samples));
	}
	if (in->gc_share >= 0)
		err |= add(o, "gc_share", json_object_new_double(in->gc_share));
	if (in->stack_note[0])
		err |= add(o, "stack_note", json_object_new_string(in->stack_note));
	if (!in->n_sys)
		return err;
	if (add(o, "syscalls", a = json_object_new_array()))
		return -ENOMEM;
	for (uint32_t i = 0; i < in->n_sys; i++) {
		const struct sw_diag_syscall *c = &in->sys[i];
		json_object *so = json_object_new_object();

		if (!so || json_object_array_add(a, so)) {
			json_object_put(so);
			return -ENOMEM;
		}
		err |= add(so, "name", json_object_new_string(c->name));
		err |= add(so, "count", json_object_new_uint64(c->count));
		err |= add(so, "total_ms", json_object_new_double((double)c->total_ns / 1e6));
		if (c->fd >= 0)
			err |= add(so, "fd", json_object_new_int(c->fd));
		if (c->kind != SW_FD_NONE)
			err |= add(so, "fd_kind", json_object_new_string(sw_fd_kind_name(c->kind)));
		if (c->target[0])
			err |= add(so, "target", json_object_new_string(c->target));
		if (c->port)
			err |= add(so, "port", json_object_new_int(c->port));
	}
	return err;
}

/* "gil": as the agent's JSON lines name it, when the agent measured it */
static int incident_gil_json(json_object *o, const struct sw_incident_view *in)
{
	json_object *g, *a;
	const char *p = in->gil_holder_stack, *nl;
	int err = 0;

	if (!in->have_gil)
		return 0;
	if (add(o, "gil", g = json_object_new_object()))
		return -ENOMEM;
	err |= add(g, "wait_ms", json_object_new_double((double)in->gil_wait_ns / 1e6));
	err |= add(g, "drop_requests", json_object_new_int64(in->gil_drop_requests));
	if (in->gil_holder_tid) {
		err |= add(g, "holder_tid", json_object_new_int64(in->gil_holder_tid));
		err |= add(g, "holder", json_object_new_string(in->gil_holder));
	}
	if (add(g, "holder_stack", a = json_object_new_array()))
		return -ENOMEM;
	for (; *p && (nl = strchr(p, '\n')); p = nl + 1)
		err |= json_object_array_add(a, json_object_new_string_len(p, (int)(nl - p)));
	return err;
}

static json_object *incident_json(const struct sw_incident_view *in)
{
	json_object *o = json_object_new_object();
	int err = 0;

	if (!o)
		return NULL;
	err |= add(o, "host", json_object_new_string(in->host));
	err |= add(o, "agent", json_object_new_string(in->agent));
	err |= add(o, "pid", json_object_new_int64(in->pid));
	err |= add(o, "tid", json_object_new_int64(in->tid));
	err |= add(o, "thread", json_object_new_string(in->thread));
	err |= add(o, "role", json_object_new_string(in->role));
	err |= add(o, "runtime", json_object_new_string(in->runtime));
	err |= add(o, "start_ns", json_object_new_uint64(in->start_ns));
	err |=
	    add(o, "start_unix_ms", json_object_new_int64((int64_t)(in->start_unix_ns / 1000000)));
	err |= add(o, "duration_ms", json_object_new_double((double)in->duration_ns / 1e6));
	err |= add(o, "ongoing", json_object_new_boolean(in->ongoing));
	err |= add(o, "start_before_attach", json_object_new_boolean(in->start_unknown));
	err |= add(o, "pattern", json_object_new_string(in->pattern));
	err |= add(o, "summary", json_object_new_string(in->summary));
	err |= add(o, "advice", json_object_new_string(in->advice));
	err |= add(o, "oncpu_ms", json_object_new_double((double)in->oncpu_ns / 1e6));
	err |= add(o, "offcpu_ms", json_object_new_double((double)in->offcpu_ns / 1e6));
	err |= add(o, "runq_ms", json_object_new_double((double)in->runq_ns / 1e6));
	err |= add(o, "top_syscall", json_object_new_string(in->top_syscall));
	err |= diag_json(o, in);
	err |= incident_gil_json(o, in);
	if (err) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* root as one line of JSON text with its newline, in a malloc'd *json. */
static int json_text(json_object *root, char **json, size_t *len)
{
	size_t tlen;
	const char *txt = json_object_to_json_string_length(root, JSON_C_TO_STRING_PLAIN, &tlen);

	*json = txt ? malloc(tlen + 2) : NULL;
	if (!*json)
		return -ENOMEM;
	memcpy(*json, txt, tlen);
	(*json)[tlen] = '\n';
	(*json)[tlen + 1] = '\0';
	*len = tlen + 1;
	return 0;
}

int sw_export__incidents(struct sw_store *s, const struct sw_incident_query *q, char **json,
			 size_t *len)
{
	const struct sw_incident_view **v = NULL;
	json_object *root = NULL, *arr = NULL, *o;
	size_t n, k = 0;
	int err = 0;

	*json = NULL;
	root = json_object_new_object();
	arr = json_object_new_array();
	if (!root || !arr) {
		json_object_put(arr);
		err = -ENOMEM;
		goto cleanup;
	}
	if (json_object_object_add(root, "incidents", arr)) {
		json_object_put(arr);
		err = -ENOMEM;
		goto cleanup;
	}

	sw_store__lock(s);
	n = sw_store__nincidents(s);
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		sw_store__unlock(s);
		err = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++) {
		const struct sw_incident_view *in = sw_store__incident(s, i);

		if (!incident_selected(q, in))
			continue;
		v[k++] = in;
	}
	/* insertion order is arrival order; agents' clocks and batching make
	 * it differ from start order, which is what people read */
	qsort(v, k, sizeof(*v), cmp_newest_first);
	if (q && q->limit && k > q->limit)
		k = q->limit;
	for (size_t i = 0; i < k; i++) {
		o = incident_json(v[i]);
		if (!o || json_object_array_add(arr, o)) {
			json_object_put(o);
			sw_store__unlock(s);
			err = -ENOMEM;
			goto cleanup;
		}
	}
	sw_store__unlock(s);

	err = json_text(root, json, len);
cleanup:
	free(v);
	json_object_put(root);
	return err;
}

/* ---- GIL JSON (GET /api/gil) ---- */

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static int gil_thread_json(json_object *arr, const struct sw_gil_thread_view *t,
			   uint64_t interval_ns)
{
	json_object *o = json_object_new_object(), *st;
	const char *p = t->stack, *nl;
	int err = 0;

	if (!o || json_object_array_add(arr, o)) {
		json_object_put(o);
		return -ENOMEM;
	}
	err |= add(o, "tid", json_object_new_int64(t->tid));
	err |= add(o, "thread", json_object_new_string(t->thread));
	err |= add(o, "loop", json_object_new_boolean(t->loop));
	err |= add(o, "wait_ms", json_object_new_double(ms(t->wait_ns)));
	err |= add(o, "hold_ms", json_object_new_double(ms(t->hold_ns)));
	err |= add(o, "acquisitions", json_object_new_uint64(t->acquisitions));
	err |= add(o, "drop_requests", json_object_new_uint64(t->drop_requests));
	err |= add(o, "forced_switches", json_object_new_uint64(t->forced_switches));
	err |= add(o, "wait_share", json_object_new_double(sw_gil_share(t->wait_ns, interval_ns)));
	err |= add(o, "hold_share", json_object_new_double(sw_gil_share(t->hold_ns, interval_ns)));
	if (add(o, "stack", st = json_object_new_array()))
		return -ENOMEM;
	for (; *p && (nl = strchr(p, '\n')); p = nl + 1)
		err |= json_object_array_add(st, json_object_new_string_len(p, (int)(nl - p)));
	return err;
}

/* Field names as the agent's {"kind":"gil"} line has them. */
static json_object *gil_proc_json(const struct sw_proc_view *pv, const struct sw_gil_view *g)
{
	json_object *o = json_object_new_object(), *arr;
	int err = 0;

	if (!o)
		return NULL;
	err |= add(o, "host", json_object_new_string(pv->host));
	err |= add(o, "pid", json_object_new_int64(pv->pid));
	err |= add(o, "comm", json_object_new_string(pv->comm));
	if (g->version[0])
		err |= add(o, "version", json_object_new_string(g->version));
	err |= add(o, "exited", json_object_new_boolean(pv->exited));
	err |= add(o, "measured", json_object_new_boolean(g->measured));
	if (!g->measured)
		err |= add(o, "note", json_object_new_string(g->note));
	if (!g->have_data)
		goto out;
	err |= add(o, "interval_ms", json_object_new_double(ms(g->interval_ns)));
	err |= add(o, "switch_interval_ms",
		   json_object_new_double((double)g->switch_interval_us / 1e3));
	err |= add(o, "utilization", json_object_new_double(g->utilization));
	err |= add(o, "contention", json_object_new_double(g->contention));
	err |= add(o, "waiting_threads", json_object_new_int64(g->waiting_threads));
	err |= add(o, "threads_omitted", json_object_new_int64(g->threads_omitted));
	if (g->loop_tid) {
		err |= add(o, "loop_tid", json_object_new_int64(g->loop_tid));
		err |= add(o, "loop_wait_share", json_object_new_double(g->loop_wait_share));
	}
	if (g->pattern) {
		err |= add(o, "pattern", json_object_new_string(g->pattern));
		err |= add(o, "summary", json_object_new_string(g->summary));
		err |= add(o, "advice", json_object_new_string(g->advice ? g->advice : ""));
	} else if (json_object_object_add(o, "pattern", NULL)) { /* JSON null */
		err = -ENOMEM;
	}
	if (add(o, "threads", arr = json_object_new_array()))
		goto fail;
	for (uint32_t i = 0; i < g->n_last; i++)
		err |= gil_thread_json(arr, &g->last[i], g->interval_ns);
out:
	if (!err)
		return o;
fail:
	json_object_put(o);
	return NULL;
}

int sw_export__gil(struct sw_store *s, bool have_pid, uint32_t pid, char **json, size_t *len)
{
	json_object *root = json_object_new_object(), *arr = json_object_new_array(), *o;
	struct sw_proc_view pv;
	int err = 0;

	*json = NULL;
	if (!root || !arr || json_object_object_add(root, "processes", arr)) {
		json_object_put(arr);
		json_object_put(root);
		return -ENOMEM;
	}
	sw_store__lock(s);
	for (size_t i = 0; i < sw_store__nprocs(s) && !err; i++) {
		const struct sw_gil_view *g = sw_store__gil(s, i);

		if (!g)
			continue;
		sw_store__proc(s, i, &pv);
		if (have_pid && pv.pid != pid)
			continue;
		o = gil_proc_json(&pv, g);
		if (!o || json_object_array_add(arr, o)) {
			json_object_put(o);
			err = -ENOMEM;
		}
	}
	sw_store__unlock(s);
	if (err)
		goto cleanup;
	err = json_text(root, json, len);
cleanup:
	json_object_put(root);
	return err;
}

int sw_export__folded(struct sw_store *s, const struct sw_incident_query *q, char **txt,
		      size_t *len)
{
	struct sw_buf b = {0};
	size_t n;

	*txt = NULL;
	*len = 0;
	sw_store__lock(s);
	n = sw_store__nincidents(s);
	for (size_t i = 0; i < n; i++) {
		const struct sw_incident_view *in = sw_store__incident(s, i);
		const char *p = in->folded, *nl;

		/* an ongoing incident's stacks come again, whole, when it ends */
		if (in->ongoing || !incident_selected(q, in))
			continue;
		for (; *p && (nl = strchr(p, '\n')); p = nl + 1)
			sw_buf__printf(&b, "%s;%.*s\n", in->thread[0] ? in->thread : "?",
				       (int)(nl - p), p);
	}
	sw_store__unlock(s);
	if (!b.p)
		sw_buf__printf(&b, "%s", ""); /* an empty answer is still a string */
	if (b.oom || !b.p) {
		sw_buf__free(&b);
		return -ENOMEM;
	}
	*txt = b.p;
	*len = b.len;
	return 0;
}
