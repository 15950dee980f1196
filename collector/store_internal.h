/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stores behind store.c, one file each. Only store*.c include this.
 * Nothing here locks: store.c holds the store's mutex around every call,
 * but sw_series__prep, sw_incident__judge and sw_gil__judge, which touch
 * no store and are called without it.
 *
 * Each store is a dense vector (what the exporter walks, in no particular
 * order) plus a chained hash of the same entries (what a batch looks up:
 * hundreds of summaries a second against up to --max-loops series). Tables
 * are sized at creation to twice the cap, a power of two, so chains stay
 * short at the cap and nothing is ever rehashed.
 */
#ifndef SW_COLLECTOR_STORE_INTERNAL_H
#define SW_COLLECTOR_STORE_INTERNAL_H

#include "store.h"
#include "utf8.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- hashing ---- */

/* splitmix64's finaliser: cheap and mixes every input bit into the low bits
 * that a power-of-two mask keeps */
static inline uint64_t sw_hash_mix(uint64_t h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

/* FNV-1a, 64 bits: ids are short (< SW_NAME_LEN) */
static inline uint64_t sw_hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/* Bucket mask of a table for up to cap entries: load factor <= 0.5. */
static inline size_t sw_hash_mask(size_t cap)
{
	size_t n = 16;

	while (n < cap * 2)
		n <<= 1;
	return n - 1;
}

/* Label values within the bounds docs/METRICS.md promises, whatever an agent
 * of another version (or a confused peer) sends. Static strings. */
const char *sw_store_norm_runtime(const char *runtime);
const char *sw_store_norm_role(const char *role);

/* ---- agents (store_agents.c), by id ---- */

struct sw_agent {
	struct sw_agent_view v; /* first: sw_store__agent() hands out &a->v */
	struct sw_agent *hnext;
	unsigned int conns;
	uint64_t mono_to_unix_ns; /* 0 while no Hello said */
	uint64_t threshold_ns;	  /* the agent's blocked-loop threshold; 0 unknown */
	uint64_t last_seq; /* highest seq applied (or, with acks, known handled) */
	bool have_seq;
	/* the agent acks (Hello.acks): it resends, so a seq at or below
	 * last_seq is a duplicate; run_start_unix_ns tells its runs apart */
	bool acks;
	uint64_t run_start_unix_ns;
	uint64_t down_since_ns; /* 0 while connected */
	uint64_t born;		/* order of first connection (store.c), to tell a newer agent */
	uint64_t born_ns;	/* and its time */
};

struct sw_agents {
	struct sw_agent **v; /* SW_STORE_MAX_AGENTS */
	size_t n;
	struct sw_agent **htab;
	size_t hmask;
};

int sw_agents__init(struct sw_agents *t);
void sw_agents__fini(struct sw_agents *t);
/* id as stored: already through sw_utf8_copy_str() into SW_NAME_LEN */
struct sw_agent *sw_agents__find(const struct sw_agents *t, const char *id);
/* NULL with errno ENOSPC (table full) or ENOMEM. */
struct sw_agent *sw_agents__add(struct sw_agents *t, const char *id);
/* Swaps the last agent into i. */
void sw_agents__remove_at(struct sw_agents *t, size_t i);
/* The one place a Hello is applied: only the fields it sets overwrite. */
void sw_agent__hello(struct sw_agent *a, const Stallwatch__V1__Hello *h);

/* ---- processes (store_procs.c), by (agent, pid) ---- */

/* What ProcessInfo said about a pid, kept because it comes once per process
 * and the loop series of that pid may be created later. */
struct sw_proc {
	struct sw_agent *agent;
	struct sw_proc *hnext;
	uint32_t pid;
	char runtime[SW_SHORT_LEN]; /* normalized; "" until a ProcessInfo says */
	char comm[SW_SHORT_LEN];
	struct sw_ident id;
	uint64_t start_ticks;	 /* 0: not sent */
	uint64_t hkey;		 /* hash of (host, pid) it was filed under */
	uint64_t stale_since_ns; /* exited, or its agent went away */
	uint64_t gone_epoch;	 /* the store's epoch then (store.c), 0 while live */
	bool exited;
	/* another live agent holds this process: kept, not exported, until
	 * that one goes (store.c, proc_claim) */
	bool shadow;
	bool scrape_show; /* sw_store__scrape_begin's, for the scrape in progress */
	uint64_t rss_bytes;
	bool have_growth;
	double growth_bps, growth_window_s;
	bool exit_counted; /* its exit is in the exits counters */
	struct sw_gil_view *gil; /* NULL until a GilSummary for it */
};

struct sw_procs {
	struct sw_proc **v;
	size_t n, cap;
	struct sw_proc **htab;
	size_t hmask;
};

/* cap: processes are bounded like loops, a process with no loop yields no series */
int sw_procs__init(struct sw_procs *t, size_t cap);
void sw_procs__fini(struct sw_procs *t);
struct sw_proc *sw_procs__find(const struct sw_procs *t, const struct sw_agent *a, uint32_t pid);
/* The exported (not shadow) process of that pid on that host reported by
 * another agent than a (the two are filed in one hash chain), or NULL. */
struct sw_proc *sw_procs__find_other(const struct sw_procs *t, const struct sw_agent *a,
				     uint32_t pid);
size_t sw_procs__index(const struct sw_procs *t, const struct sw_proc *p);
/* NULL when the cap is reached or memory is short (the caller counts it). */
struct sw_proc *sw_procs__add(struct sw_procs *t, struct sw_agent *a, uint32_t pid);
void sw_procs__remove_at(struct sw_procs *t, size_t i);
/* Fold one ProcessInfo: the fields it sets, and whether it exited (store.c
 * marks it gone). */
void sw_proc__update(struct sw_proc *p, const Stallwatch__V1__ProcessInfo *pi);
/* The service label when no ProcessInfo named one: the comm, else "unknown". */
void sw_ident__default_service(struct sw_ident *id, const char *comm);

/* ---- GIL contention per process (store_gil.c) ---- */

/*
 * One GilSummary, in two steps as incidents are: sw_gil__judge reads the
 * summary alone, without the store lock (the threads' names as labels
 * hold them, the /api/gil views of the busiest, sw_gil_judge's verdict;
 * scratch holds SW_GIL_MAX_THREADS records, the decoder bounds the
 * threads); sw_gil__apply folds it into p (allocating its sw_gil_view)
 * under the lock. 0 or -ENOMEM.
 */
struct sw_gil_prep {
	struct sw_gil_rec rec; /* judged; its threads pointer is not kept */
	char names[SW_GIL_MAX_THREADS][SW_SHORT_LEN];
	uint32_t n_last;
	struct sw_gil_thread_view last[SW_GIL_API_THREADS];
	bool have_loop;
};

void sw_gil__judge(struct sw_gil_prep *gp, const Stallwatch__V1__GilSummary *g,
		   struct sw_gil_thread_rec *scratch);
int sw_gil__apply(struct sw_proc *p, const Stallwatch__V1__GilSummary *g,
		  const struct sw_gil_prep *gp);

/* ---- loop series (store_series.c), by (agent, pid, tid) ---- */

/* What one scraper has been shown of a loop's worst block: the longest
 * iteration of the intervals that came since its previous scrape. A slot
 * whose gen is not the scraper's belongs to a scraper gone since. */
struct sw_loop_scrape {
	uint32_t gen;
	bool pend_any;	/* a summary came since the scraper's previous scrape */
	bool pend_iter; /* ... with iterations */
	bool shown_valid;
	double pend_max_ns, shown_ns;
};

struct sw_loop {
	struct sw_loop_view v; /* first: sw_store__loop() hands out &l->v */
	struct sw_agent *agent;
	struct sw_loop *hnext;
	uint64_t hkey; /* hash of (host, pid, tid) it was filed under */
	uint64_t gone_epoch; /* the store's epoch when it went stale, 0 while live */
	bool shadow;	     /* as sw_proc's */
	uint64_t ongoing_start_ns;
	struct sw_loop_scrape sc[SW_STORE_SCRAPERS];
};

struct sw_series {
	struct sw_loop **v;
	size_t n, cap;
	struct sw_loop **htab;
	size_t hmask;
};

int sw_series__init(struct sw_series *t, size_t cap);
void sw_series__fini(struct sw_series *t);
struct sw_loop *sw_series__find(const struct sw_series *t, const struct sw_agent *a, uint32_t pid,
				uint32_t tid);
/* The exported (not shadow) series of that thread on that host from
 * another agent than a (one hash chain holds both), NULL when none. */
struct sw_loop *sw_series__find_other(const struct sw_series *t, const struct sw_agent *a,
				      uint32_t pid, uint32_t tid);
size_t sw_series__index(const struct sw_series *t, const struct sw_loop *l);
/* A new series, labels empty; NULL when the cap is reached or memory is short. */
struct sw_loop *sw_series__add(struct sw_series *t, struct sw_agent *a, uint32_t pid, uint32_t tid);
void sw_series__remove_at(struct sw_series *t, size_t i);
/*
 * One interval, in two steps so that the store lock is held only for the
 * second: sw_series__prep derives the interval's gauges from the summary
 * alone (its delta histogram in d, 14 KB of scratch: three passes over the
 * 1730 buckets and three quantiles), without the lock; sw_series__apply
 * folds the summary's buckets and counters into the series and copies the
 * gauges in, under it.
 */
struct sw_loop_prep {
	uint64_t total;	 /* iterations in the interval's histogram */
	uint64_t sum_ns; /* its sum of bucket middles */
	double min_ns, max_ns, mean_ns, stddev_ns, p50_ns, p90_ns, p99_ns;
	double utilization, cpu_share;
	bool ready; /* computed: store.c skips what the cap would refuse */
};

void sw_series__prep(struct sw_loop_prep *lp, const Stallwatch__V1__LoopSummary *ls,
		     struct sw_hist *d);
void sw_series__apply(struct sw_loop *l, const Stallwatch__V1__LoopSummary *ls,
		      const struct sw_loop_prep *lp);

/* ---- incidents (store_incidents.c), by (agent id, pid, tid, start_ns) ---- */

struct sw_incident {
	struct sw_incident_view v; /* first: sw_store__incident() hands out &in->v */
	struct sw_incident *hnext;
};

/* A ring in insertion order: ring[(head - 1 - i) % cap] is the i-th newest.
 * Keyed by the agent's id, not its struct: an incident outlives the agent
 * entry that reported it, and a late final copy must still find it. */
struct sw_incidents {
	struct sw_incident *ring;
	size_t cap, head, count;
	struct sw_incident **htab;
	size_t hmask;
	uint64_t evicted;
};

int sw_incidents__init(struct sw_incidents *t, size_t cap);
void sw_incidents__fini(struct sw_incidents *t);
struct sw_incident *sw_incidents__find(const struct sw_incidents *t, const char *agent,
				       uint32_t pid, uint32_t tid, uint64_t start_ns);
/* A new entry with its key set, over the oldest when full (counted in
 * evicted; the oldest leaves the hash with it). Never fails. */
struct sw_incident *sw_incidents__insert(struct sw_incidents *t, const char *agent, uint32_t pid,
					 uint32_t tid, uint64_t start_ns);
struct sw_incident *sw_incidents__at(const struct sw_incidents *t, size_t i);
/*
 * What the agent says of it now, runtime already resolved; re-judged by
 * common/rules.c, never by the agent's own verdict. In two steps, so that
 * the rules (a strstr per frame name) and the UTF-8 copies of the stacks
 * run without the store lock: sw_incident__judge fills the fields of v
 * that the Incident and the verdict give (not host, agent, pid, tid,
 * start_ns, start_unix_ns) from pi alone; sw_incident__set copies those
 * fields of a judged view into a stored incident, under the lock.
 * sw_incident__update is the two at once.
 */
void sw_incident__judge(struct sw_incident_view *v, const Stallwatch__V1__Incident *pi,
			const char *runtime, uint64_t threshold_ns);
void sw_incident__set(struct sw_incident *in, const struct sw_incident_view *j);
void sw_incident__update(struct sw_incident *in, const Stallwatch__V1__Incident *pi,
			 const char *runtime, uint64_t threshold_ns);

#endif
