/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's store: what every agent told us, folded per loop thread,
 * plus a bounded list of blocked-loop incidents. Written by the listener
 * thread, read by the HTTP thread; one mutex guards all of it.
 *
 * What is pure per-message work (an interval's gauges, an incident's
 * copies and the rules' verdict, a GIL summary's verdict) is done without
 * the mutex. A batch as small as an agent's (store.c, SW_STORE_WHOLE_*) is
 * judged whole first, then applied in one hold: a scrape sees all of it or
 * none. A bigger one is applied message by message, in the order
 * processes, loops, memory, GIL, incidents, health, holding the mutex for
 * at most about SW_STORE_SLICE_NS at a time and letting a waiting reader
 * in between slices: a scrape then sees each message applied entirely or
 * not at all, and the batch's messages applied up to some point, the store
 * as it would be had the agent sent the batch as smaller ones. Counters
 * only grow; an incident and its loop's blocked counters change in one
 * slice; the batch's seq and its batches_total count are taken in the
 * first slice, and the batch is acknowledged (sw_store__apply_ack returns)
 * once all of it is applied.
 *
 * This facade (store.c) holds the mutex and applies batches; the stores
 * behind it are one file each, with hashed lookups: store_agents.c (by id),
 * store_procs.c (by agent and pid), store_series.c (by agent, pid and tid),
 * store_incidents.c (by agent, pid, tid and start). store_internal.h joins
 * them; nothing outside store*.c includes it.
 *
 * Everything is bounded: loop series by max_loops, processes by max_loops,
 * incidents by max_incidents, agents by SW_STORE_MAX_AGENTS. What is refused
 * is counted. Every string from an agent is stored through common/utf8.h:
 * valid UTF-8, cut between characters.
 */
#ifndef SW_COLLECTOR_STORE_H
#define SW_COLLECTOR_STORE_H

#include "health.h"
#include "histogram.h"
#include "stallwatch.pb-c.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "diag.h"
#include "gil.h"

/* Room for the pattern ids of common/rules.c (16 today); checked at __new. */
#define SW_STORE_MAX_PATTERNS 24
/* Agents outlive their connection by the expiry period; a peer cycling
 * through agent ids must not grow the table without end. */
#define SW_STORE_MAX_AGENTS 1024
/* Series of a process that exited or of an agent that went away leave
 * the exposition once every scraper has scraped them after their final
 * data (see Scrapers below), and the store at the latest this long after:
 * a collector nobody scrapes must not fill --max-loops with pid churn. */
#define SW_STORE_EXPIRE_NS (300ull * 1000000000ull)

#define SW_NAME_LEN 128 /* host names (HOST_NAME_MAX is 64), agent ids */
#define SW_SHORT_LEN 32 /* comm (15), role, runtime, syscall names */
#define SW_LABEL_LEN 64 /* service, container and pod names */

/*
 * Who a process is, for a fleet (docs/METRICS.md, Labels): from its
 * ProcessInfo, "" when unknown (an empty label is no label). The series of
 * a process and of its loops carry all of it.
 */
struct sw_ident {
	char service[SW_LABEL_LEN]; /* never "": the comm when nothing better */
	char runtime_version[SW_SHORT_LEN];
	char container_id[16]; /* the first 12 hex digits, as docker ps shows */
	char container[SW_LABEL_LEN];
	char pod_uid[40];
	char pod[SW_LABEL_LEN];
};

/*
 * Scrapers: a client of GET /metrics, told apart by its address and
 * User-Agent (two Prometheus of an HA pair, a curl beside them). What one
 * scrape shows depends on the scraper's previous one, so that no value is
 * lost to it: the worst block since then, and a gone process's final
 * values once. Up to SW_STORE_SCRAPERS are tracked; one not seen for
 * SW_SCRAPER_FORGET_NS no longer holds gone series back.
 */
#define SW_STORE_SCRAPERS 8
#define SW_SCRAPER_FORGET_NS (600ull * 1000000000ull)

struct sw_store_opts {
	size_t max_loops;
	size_t max_incidents;
	uint64_t expire_ns; /* 0: SW_STORE_EXPIRE_NS */
};

/* Read-only views, valid only between sw_store__lock() and __unlock(). */
struct sw_loop_view {
	const char *host;
	const char *agent;
	char runtime[SW_SHORT_LEN]; /* one of node, python, native */
	char role[SW_SHORT_LEN];    /* one of main, worker, asyncio, loop */
	char comm[SW_SHORT_LEN];
	char thread[SW_SHORT_LEN];
	struct sw_ident id; /* its process's */
	uint32_t pid, tid;

	/* for the scrape in progress (sw_store__scrape_begin): whether this
	 * scraper sees the series, and the longest iteration (or block in
	 * progress) reported since its previous scrape */
	bool scrape_show;
	bool scrape_max_valid;
	double scrape_max_ns;

	/* cumulative since the series was created */
	struct sw_hist hist;
	uint64_t hist_sum_ns; /* sum of bucket middles: the histogram's _sum */
	uint64_t iterations;
	uint64_t busy_ns;
	uint64_t idle_ns;
	uint64_t blocked[SW_STORE_MAX_PATTERNS];    /* ended incidents by pattern */
	uint64_t blocked_ns[SW_STORE_MAX_PATTERNS]; /* their duration */

	/* last reporting interval: iterations in its histogram, and gauges
	 * computed from it (the nodejs_eventloop_delay_* of OTel). With
	 * interval_iterations 0 the gauges are 0 and are not exported
	 * (docs/METRICS.md): 0 would read as "no delay". */
	uint64_t interval_iterations;
	double min_ns, max_ns, mean_ns, stddev_ns, p50_ns, p90_ns, p99_ns;
	double utilization;
	uint64_t ongoing_ns; /* block in progress, 0 when none */

	/* busy time split by sched_switch, cumulative; only while the agent
	 * sends it (cpu_split) */
	bool have_split;
	uint64_t oncpu_ns, offcpu_ns, runq_ns;
	double cpu_share; /* on-CPU / busy, last interval */

	uint64_t stale_since_ns; /* 0 while live */
};

/* A process: its resident size and memory growth (copied out). */
struct sw_proc_view {
	char host[SW_NAME_LEN];
	char runtime[SW_SHORT_LEN];
	char comm[SW_SHORT_LEN];
	struct sw_ident id;
	uint32_t pid;
	bool scrape_show; /* the scrape in progress shows its series */
	uint64_t rss_bytes; /* last LoopSummary's, 0: unknown */
	bool have_growth;   /* a MemoryGrowth came for it */
	double growth_bps, growth_window_s;
	bool exited;
};

/*
 * GIL contention of a CPython process (GilSummary, common/gil.h): counters
 * summed over the intervals the agent sent, and the last interval's figures
 * re-judged by sw_gil_judge. Per thread name, at most SW_GIL_THREAD_NAMES
 * names per process; threads of any other name (and of the name "other")
 * are summed in `other`, so the series of one process stay bounded however
 * many threads come and go.
 */
#define SW_GIL_THREAD_NAMES 16
#define SW_GIL_OTHER_THREADS "other"
#define SW_GIL_UNNAMED_THREAD "unnamed"
/* sw_gil_patterns[i] is the pattern of flagged[i] */
#define SW_GIL_NPATTERNS 2
extern const char *const sw_gil_patterns[SW_GIL_NPATTERNS];

struct sw_gil_name_view {
	char thread[SW_SHORT_LEN];
	uint64_t wait_ns, hold_ns;
};

/* The last interval's threads kept for GET /api/gil, as the agent ordered
 * them (busiest first), each with the start of its Python stack. */
#define SW_GIL_API_THREADS 8
#define SW_GIL_API_STACK 1024

struct sw_gil_thread_view {
	uint32_t tid;
	char thread[SW_SHORT_LEN];
	bool loop;
	uint64_t wait_ns, hold_ns, acquisitions, drop_requests, forced_switches;
	char stack[SW_GIL_API_STACK]; /* innermost first, '\n'-separated, whole frames */
};

struct sw_gil_view {
	bool measured;	/* the last summary carried measurements (no note) */
	bool have_data; /* at least one measured interval: counters exist */
	char note[256]; /* why not measured, when !measured */
	char version[SW_SHORT_LEN];
	/* cumulative over measured intervals */
	uint64_t intervals;
	uint64_t wait_ns, hold_ns, acquisitions, drop_requests, forced_switches, switches;
	uint64_t flagged[SW_GIL_NPATTERNS]; /* intervals judged so, by pattern */
	uint32_t n_names;
	struct sw_gil_name_view names[SW_GIL_THREAD_NAMES];
	bool have_other;
	struct sw_gil_name_view other;
	/* the last measured interval */
	uint64_t interval_ns, switch_interval_us;
	uint32_t threads, threads_omitted;
	double utilization, contention;
	uint32_t waiting_threads;
	uint32_t loop_tid; /* 0: no loop thread waited */
	double loop_wait_share;
	bool have_loop; /* a loop thread was reported in some interval */
	const char *pattern; /* static, NULL when not flagged */
	char summary[512];
	const char *advice; /* static, NULL when not flagged */
	uint32_t n_last;
	struct sw_gil_thread_view last[SW_GIL_API_THREADS];
};

struct sw_agent_view {
	char id[SW_NAME_LEN];
	char host[SW_NAME_LEN];
	char version[SW_SHORT_LEN];
	bool up; /* at least one open connection */
	/* down, and a new agent of its host connected since: a restart, not
	 * an agent down (its series leave the exposition) */
	bool replaced;
	bool have_health;
	uint64_t health[SW_HEALTH__COUNT]; /* common/health.h, cumulative */
};

/* Per incident, inline so the ring of incidents stays one allocation. */
#define SW_INCIDENT_STACK_LEN 2048
#define SW_INCIDENT_FOLDED_LEN 4096
#define SW_INCIDENT_SYSCALLS 8

struct sw_incident_view {
	char host[SW_NAME_LEN];
	char agent[SW_NAME_LEN];
	char thread[SW_SHORT_LEN];
	char role[SW_SHORT_LEN];
	char runtime[SW_SHORT_LEN];
	char top_syscall[SW_SHORT_LEN];
	uint32_t pid, tid;
	uint64_t start_ns; /* agent's CLOCK_MONOTONIC */
	uint64_t start_unix_ns;
	uint64_t duration_ns;
	uint64_t oncpu_ns, offcpu_ns, runq_ns, top_syscall_ns;
	bool ongoing;
	bool start_unknown; /* began before the agent attached: a lower bound */
	/* re-derived by common/rules.c from the facts below */
	const char *pattern; /* static */
	char summary[256];
	char advice[512];
	/* what blocked it, bounded copies (common/diag.h) */
	char stack[SW_INCIDENT_STACK_LEN];   /* stacks[0], frames innermost first, '\n'-separated */
	char folded[SW_INCIDENT_FOLDED_LEN]; /* every stack kept: "outer;...;inner weight_us\n" */
	char stack_note[128];
	uint32_t stack_samples;
	double gc_share; /* <0: not read */
	uint32_t n_sys;
	struct sw_diag_syscall sys[SW_INCIDENT_SYSCALLS];
	/* CPython: the loop's GIL waits in the block, and who held the GIL
	 * (Incident 28-32); have_gil false when the agent did not measure */
	bool have_gil;
	uint64_t gil_wait_ns;
	uint32_t gil_drop_requests;
	uint32_t gil_holder_tid;
	char gil_holder[SW_SHORT_LEN];
	char gil_holder_stack[SW_INCIDENT_STACK_LEN]; /* innermost first, '\n'-separated */
};

struct sw_store_counters {
	uint64_t series_dropped;   /* refused by a cap */
	uint64_t series_duplicate; /* refused: another live agent has that process */
	uint64_t incidents_dropped;
	uint64_t batches_gap;
	uint64_t batches;
	uint64_t batches_duplicate; /* resent by an acking agent, applied before: dropped */
};

/*
 * How long the ingest side (batches, connections, ticks) held the store
 * lock, each hold: a histogram by the upper bounds sw_store_hold_le_ns
 * (cumulative counts, as Prometheus has them), its sum and the longest.
 */
#define SW_STORE_SLICE_NS 1000000ull /* a batch yields the lock past this */
#define SW_STORE_HOLD_BUCKETS 12
extern const uint64_t sw_store_hold_le_ns[SW_STORE_HOLD_BUCKETS];

struct sw_store_holds {
	uint64_t count, sum_ns, max_ns;
	uint64_t le[SW_STORE_HOLD_BUCKETS]; /* holds of at most sw_store_hold_le_ns[i] */
	/* incidents judged again under the lock because their process's
	 * runtime or the agent's threshold changed after they were judged
	 * without it (only another writer could; there is none) */
	uint64_t judged_locked;
};

struct sw_store;

/* Returns NULL with errno set (EINVAL, ENOMEM). */
struct sw_store *sw_store__new(const struct sw_store_opts *opts);
void sw_store__free(struct sw_store *s);

/*
 * A connection of agent `id` identified itself (hello may be NULL when the
 * peer sent none: the listener then names it after the peer address).
 * A Hello is applied as sw_store__apply applies one: only the fields it sets.
 * Returns 0, -ENOSPC when the agent table is full, or -ENOMEM.
 */
int sw_store__agent_up(struct sw_store *s, const char *id, const Stallwatch__V1__Hello *hello,
		       uint64_t now_ns);
/* That connection closed: at zero connections the agent's series go stale. */
void sw_store__agent_down(struct sw_store *s, const char *id, uint64_t now_ns);

/*
 * Fold one batch (already validated by sw_batch__validate: hist schema and
 * bucket indexes) of agent id into the store. Returns 0 or -ENOENT if the
 * agent is not known (sw_store__agent_up first).
 */
int sw_store__apply(struct sw_store *s, const char *id, const Stallwatch__V1__Batch *b,
		    uint64_t now_ns);
/*
 * The same, for a connection that acknowledges (Hello.acks): a numbered
 * batch at or below what this agent's run has had applied is dropped and
 * counted (batches_duplicate), not applied twice. *ack is then the seq to
 * acknowledge: the highest of the run known applied (or counted as a gap),
 * 0 when the agent does not ack. Returns 0 or -ENOENT.
 */
int sw_store__apply_ack(struct sw_store *s, const char *id, const Stallwatch__V1__Batch *b,
			uint64_t now_ns, uint64_t *ack);

/* Remove the series of gone processes and agents that every scraper has
 * seen since they went, or that are stale for longer than the expiry. */
void sw_store__tick(struct sw_store *s, uint64_t now_ns);

/*
 * A scrape by `who` (NULL: an anonymous one, e.g. a unit test) begins:
 * sets every view's scrape_* fields for it. Returns its slot for
 * sw_store__scrape_end. Both need the lock held, across the export.
 */
int sw_store__scrape_begin(struct sw_store *s, const char *who);
void sw_store__scrape_end(struct sw_store *s, int slot, uint64_t now_ns);
size_t sw_store__nscrapers(const struct sw_store *s, uint64_t now_ns);
/* Loop series held back because another live agent reports their thread. */
size_t sw_store__nshadow_loops(const struct sw_store *s);
size_t sw_store__max_loops(const struct sw_store *s);

/* For readers (the HTTP thread): a batch being applied lets one that waits
 * in at its next slice. */
void sw_store__lock(struct sw_store *s);
void sw_store__unlock(struct sw_store *s);
/* The rest need the lock held. */
void sw_store__holds(const struct sw_store *s, struct sw_store_holds *h);
size_t sw_store__nloops(const struct sw_store *s);
const struct sw_loop_view *sw_store__loop(const struct sw_store *s, size_t i);
size_t sw_store__nagents(const struct sw_store *s);
const struct sw_agent_view *sw_store__agent(const struct sw_store *s, size_t i);
/* i = 0 is the most recently inserted incident */
size_t sw_store__nincidents(const struct sw_store *s);
const struct sw_incident_view *sw_store__incident(const struct sw_store *s, size_t i);
void sw_store__counters(const struct sw_store *s, struct sw_store_counters *c);
size_t sw_store__nprocs(const struct sw_store *s);
void sw_store__proc(const struct sw_store *s, size_t i, struct sw_proc_view *out);
/* Process i's GIL figures, NULL when no GilSummary came for it. */
const struct sw_gil_view *sw_store__gil(const struct sw_store *s, size_t i);
/* Process exits by host, service, runtime ("node", "python", "native") and
 * cause (an index into sw_exit_patterns, common/procrules.h), cumulative
 * since the collector started, judged again by common/procrules.c. Rows
 * of (host, service, runtime) are bounded by --max-loops. */
#define SW_STORE_RUNTIMES 3
#define SW_STORE_MAX_EXIT_CAUSES 16
extern const char *const sw_store_runtimes[SW_STORE_RUNTIMES];
struct sw_exit_row {
	char host[SW_NAME_LEN];
	char service[SW_LABEL_LEN];
	const char *runtime; /* static */
	uint64_t n[SW_STORE_MAX_EXIT_CAUSES];
};
size_t sw_store__nexit_rows(const struct sw_store *s);
const struct sw_exit_row *sw_store__exit_row(const struct sw_store *s, size_t i);
size_t sw_store__nexit_causes(void);

/* Number of pattern ids and the index of one ("blocked" for unknown ids). */
size_t sw_store__npatterns(void);
size_t sw_store__pattern_index(const char *pattern);

#endif
