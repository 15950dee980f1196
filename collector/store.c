// SPDX-License-Identifier: Apache-2.0
/*
 * The store's facade: the mutex, and what a batch does across the stores
 * (a ProcessInfo relabels the series of its pid, an incident feeds the
 * counters of its loop). Each store keeps its own entries: store_agents.c,
 * store_procs.c, store_series.c, store_incidents.c.
 *
 * Writers (batches, connections, ticks: the listener thread) take apply_mu
 * for the whole call, then the mutex mu in slices (wlock/wunlock); readers
 * (the HTTP thread) take mu alone. One writer at a time is what lets a
 * batch drop mu between its slices: nothing else changes what it has
 * looked up but a reader's scrape, which removes only series of other
 * agents that are gone (promote_shadows), so a batch looks each message's
 * entries up again under mu, and keeps only its agent across slices
 * (agents are removed by sw_store__tick alone, a writer).
 */
#include "clock.h"
#include "procrules.h"
#include "rules.h"
#include "store_internal.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Pure work is done without mu in steps of this many messages: 64 judged
 * incident views are 640 KB of scratch, 256 loop summaries' gauges 24 KB,
 * 16 GIL summaries 190 KB; each step costs well under a slice (an incident
 * is judged in ~10 us). */
#define SW_STORE_PREP_INCIDENTS 64
#define SW_STORE_PREP_LOOPS 256
#define SW_STORE_PREP_GIL 16 /* 12 KB each */
/* A writer about to take mu while a reader waits for it lets the reader go
 * first, waiting at most this long for it to get there. */
#define SW_STORE_HANDOFF_NS 5000000ull

const uint64_t sw_store_hold_le_ns[SW_STORE_HOLD_BUCKETS] = {
    100000,  250000,   500000,	 1000000,   2000000,   5000000,
    10000000, 25000000, 50000000, 100000000, 250000000, 1000000000,
};

/* An incident judged without mu, with what it was judged against. */
struct sw_incident_prep {
	char runtime[SW_SHORT_LEN];
	uint64_t threshold_ns;
	struct sw_incident_view v;
};

struct sw_scraper {
	char who[SW_NAME_LEN * 2]; /* "" while the slot is free */
	uint32_t gen;		   /* changes when the slot changes hands */
	uint64_t last_ns;	   /* its latest scrape, on the listener's clock */
	uint64_t last_epoch;	   /* the store's epoch then */
};

struct sw_store {
	pthread_mutex_t mu;
	pthread_mutex_t apply_mu; /* one writer at a time (above) */
	atomic_uint readers;	  /* sw_store__lock callers waiting for mu */
	uint64_t hold_t0;	  /* when the writer took mu */
	struct sw_store_holds holds;
	/* the writer's scratch for what it does without mu (under apply_mu) */
	struct sw_incident_prep *inc_prep; /* SW_STORE_PREP_INCIDENTS */
	struct sw_loop_prep *loop_prep;	   /* SW_STORE_PREP_LOOPS, and one under mu */
	struct sw_hist *prep_hist;	   /* one interval's delta, 14 KB */
	struct sw_gil_prep *gil_prep;	   /* SW_STORE_PREP_GIL */
	uint64_t expire_ns;
	size_t max_loops;
	struct sw_agents agents;
	struct sw_procs procs;
	struct sw_series series;
	struct sw_incidents incidents;
	struct sw_store_counters ctr; /* but incidents_dropped: incidents.evicted */
	struct sw_exit_row *exit_rows; /* max_loops of them */
	size_t n_exit_rows;
	struct sw_scraper scrapers[SW_STORE_SCRAPERS];
	uint32_t scraper_gen;
	/* Counts what went stale, in order: a scraper whose last scrape saw
	 * epoch e has seen the final values of everything gone at or before
	 * e. Not a clock: tests and the listener pass their own now_ns. */
	uint64_t epoch;
	/* one GilSummary's threads for sw_gil_judge, used without mu (under
	 * apply_mu); 200 KB, not on the stack */
	struct sw_gil_thread_rec *gil_scratch;
};

const char *const sw_store_runtimes[SW_STORE_RUNTIMES] = { "node", "python", "native" };

size_t sw_store__nexit_causes(void)
{
	size_t n = 0;

	while (sw_exit_patterns[n])
		n++;
	return n;
}

static size_t runtime_index(const char *rt)
{
	for (size_t i = 0; i < SW_STORE_RUNTIMES; i++)
		if (!strcmp(rt, sw_store_runtimes[i]))
			return i;
	return SW_STORE_RUNTIMES - 1;
}

static size_t exit_cause_index(const char *pattern)
{
	for (size_t i = 0; sw_exit_patterns[i]; i++)
		if (!strcmp(sw_exit_patterns[i], pattern))
			return i;
	return sw_store__nexit_causes() - 1; /* "unknown", last */
}

static size_t npatterns;

size_t sw_store__npatterns(void)
{
	size_t n = 0;

	if (npatterns)
		return npatterns;
	while (sw_rule_patterns[n])
		n++;
	npatterns = n;
	return n;
}

size_t sw_store__pattern_index(const char *pattern)
{
	for (size_t i = 0; sw_rule_patterns[i]; i++)
		if (pattern && strcmp(sw_rule_patterns[i], pattern) == 0)
			return i;
	return 0; /* sw_rule_patterns[0] is the catch-all "unknown" */
}

/* Compared after the copy into a label-sized buffer, so that what decides is
 * exactly what a label could hold. */
const char *sw_store_norm_runtime(const char *runtime)
{
	char r[SW_SHORT_LEN];

	sw_utf8_copy_str(r, sizeof(r), runtime);
	if (strcmp(r, "node") == 0)
		return "node";
	if (strcmp(r, "python") == 0)
		return "python";
	return "native";
}

const char *sw_store_norm_role(const char *role)
{
	static const char *const roles[] = {"main", "worker", "asyncio", "loop"};
	char r[SW_SHORT_LEN];

	sw_utf8_copy_str(r, sizeof(r), role);
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(r, roles[i]) == 0)
			return roles[i];
	return "loop";
}

struct sw_store *sw_store__new(const struct sw_store_opts *opts)
{
	struct sw_store *s;
	int err = 0;

	if (!opts || opts->max_loops == 0 || opts->max_incidents == 0 ||
	    sw_store__npatterns() > SW_STORE_MAX_PATTERNS ||
	    sw_store__nexit_causes() > SW_STORE_MAX_EXIT_CAUSES) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	if ((err = pthread_mutex_init(&s->mu, NULL))) {
		free(s);
		errno = err;
		return NULL;
	}
	if ((err = pthread_mutex_init(&s->apply_mu, NULL))) {
		pthread_mutex_destroy(&s->mu);
		free(s);
		errno = err;
		return NULL;
	}
	s->expire_ns = opts->expire_ns ? opts->expire_ns : SW_STORE_EXPIRE_NS;
	s->max_loops = opts->max_loops;
	if (!(s->exit_rows = calloc(opts->max_loops, sizeof(*s->exit_rows))) ||
	    sw_agents__init(&s->agents) || sw_procs__init(&s->procs, opts->max_loops) ||
	    sw_series__init(&s->series, opts->max_loops) ||
	    sw_incidents__init(&s->incidents, opts->max_incidents) ||
	    !(s->gil_scratch = calloc(SW_GIL_MAX_THREADS, sizeof(*s->gil_scratch))) ||
	    !(s->inc_prep = calloc(SW_STORE_PREP_INCIDENTS, sizeof(*s->inc_prep))) ||
	    !(s->loop_prep = calloc(SW_STORE_PREP_LOOPS + 1, sizeof(*s->loop_prep))) ||
	    !(s->prep_hist = calloc(1, sizeof(*s->prep_hist))) ||
	    !(s->gil_prep = calloc(SW_STORE_PREP_GIL, sizeof(*s->gil_prep)))) {
		err = ENOMEM;
		goto cleanup;
	}
	return s;
cleanup:
	sw_store__free(s);
	errno = err;
	return NULL;
}

void sw_store__free(struct sw_store *s)
{
	if (!s)
		return;
	/* series and processes point at agents: they go first */
	sw_series__fini(&s->series);
	sw_procs__fini(&s->procs);
	sw_agents__fini(&s->agents);
	sw_incidents__fini(&s->incidents);
	free(s->exit_rows);
	free(s->gil_scratch);
	free(s->inc_prep);
	free(s->loop_prep);
	free(s->prep_hist);
	free(s->gil_prep);
	pthread_mutex_destroy(&s->apply_mu);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ---- the lock ---- */

/* readers decrement once they hold mu: a count left is one still waiting */
void sw_store__lock(struct sw_store *s)
{
	atomic_fetch_add_explicit(&s->readers, 1, memory_order_relaxed);
	pthread_mutex_lock(&s->mu);
	atomic_fetch_sub_explicit(&s->readers, 1, memory_order_release);
}

void sw_store__unlock(struct sw_store *s) { pthread_mutex_unlock(&s->mu); }

/*
 * A writer takes mu after any reader that waits for it: a mutex is not
 * fair, and a batch that unlocked and locked again between two slices
 * would most often take it back before the woken reader runs. The wait is
 * bounded: a reader that never comes does not stop ingest.
 */
static void wlock(struct sw_store *s)
{
	if (atomic_load_explicit(&s->readers, memory_order_acquire)) {
		uint64_t t0 = sw_mono_ns();

		while (atomic_load_explicit(&s->readers, memory_order_acquire) &&
		       sw_mono_ns() - t0 < SW_STORE_HANDOFF_NS)
			sched_yield();
	}
	pthread_mutex_lock(&s->mu);
	s->hold_t0 = sw_mono_ns();
}

static void hold_note(struct sw_store_holds *h, uint64_t ns)
{
	h->count++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
	for (int i = SW_STORE_HOLD_BUCKETS; i-- > 0 && ns <= sw_store_hold_le_ns[i];)
		h->le[i]++;
}

static void wunlock(struct sw_store *s)
{
	hold_note(&s->holds, sw_mono_ns() - s->hold_t0);
	pthread_mutex_unlock(&s->mu);
}

/* Between two messages of a batch: past the slice, let readers in. */
static void wslice(struct sw_store *s)
{
	if (sw_mono_ns() - s->hold_t0 >= SW_STORE_SLICE_NS) {
		wunlock(s);
		wlock(s);
	}
}

void sw_store__holds(const struct sw_store *s, struct sw_store_holds *h) { *h = s->holds; }

/* Agents are stored and looked up by their id as a label can hold it. */
static struct sw_agent *agent_find(struct sw_store *s, const char *id)
{
	char key[SW_NAME_LEN];

	sw_utf8_copy_str(key, sizeof(key), id);
	return sw_agents__find(&s->agents, key);
}

/* ---- gone and back ---- */

static void loop_set_gone(struct sw_store *s, struct sw_loop *l, uint64_t now_ns)
{
	if (l->v.stale_since_ns)
		return;
	l->v.stale_since_ns = now_ns ? now_ns : 1; /* 0 means "live" */
	l->gone_epoch = ++s->epoch;
}

static void loop_set_live(struct sw_loop *l)
{
	l->v.stale_since_ns = 0;
	l->gone_epoch = 0;
}

static void proc_set_gone(struct sw_store *s, struct sw_proc *p, uint64_t now_ns)
{
	if (p->stale_since_ns)
		return;
	p->stale_since_ns = now_ns ? now_ns : 1;
	p->gone_epoch = ++s->epoch;
}

static void proc_set_live(struct sw_proc *p)
{
	p->stale_since_ns = 0;
	p->gone_epoch = 0;
}

/* ---- connections ---- */

/* A newer agent on the host of one that is down: most often the same
 * agent restarted (a new pid, a new id), whichever of the two connections
 * changed first. The old one is not "down" then. */
static void agents_replaced_by(struct sw_store *s, const struct sw_agent *a)
{
	if (!a->v.host[0])
		return;
	for (size_t i = 0; i < s->agents.n; i++) {
		struct sw_agent *o = s->agents.v[i];

		if (o != a && !o->conns && o->born < a->born && !strcmp(o->v.host, a->v.host))
			o->v.replaced = true;
	}
}

/* A restart that started the new agent before stopping the old one does so
 * within this; a second agent of the host that has run longer is not the
 * first one's successor, and the first one going down is an agent down. */
#define SW_AGENT_OVERLAP_NS (60ull * 1000000000ull)

static bool agent_has_successor(const struct sw_store *s, const struct sw_agent *a,
				uint64_t now_ns)
{
	for (size_t i = 0; i < s->agents.n; i++) {
		const struct sw_agent *o = s->agents.v[i];

		if (o != a && o->conns && o->born > a->born && !strcmp(o->v.host, a->v.host) &&
		    now_ns - o->born_ns <= SW_AGENT_OVERLAP_NS)
			return true;
	}
	return false;
}

int sw_store__agent_up(struct sw_store *s, const char *id, const Stallwatch__V1__Hello *hello,
		       uint64_t now_ns)
{
	struct sw_agent *a;
	int err = 0;

	pthread_mutex_lock(&s->apply_mu);
	wlock(s);
	a = agent_find(s, id);
	if (!a) {
		a = sw_agents__add(&s->agents, id);
		if (!a) {
			err = -errno;
			/* every series of that agent is refused with it */
			if (err == -ENOSPC)
				s->ctr.series_dropped++;
			goto cleanup;
		}
		sw_agent__hello(a, hello);
		a->born = ++s->epoch;
		a->born_ns = now_ns;
		agents_replaced_by(s, a);
	}
	sw_agent__hello(a, hello);
	a->v.replaced = false;
	a->conns++;
	a->v.up = true;
	a->down_since_ns = 0;
	/* an agent that came back revives the series of its processes that
	 * live; data will follow */
	for (size_t i = 0; i < s->procs.n; i++)
		if (s->procs.v[i]->agent == a && !s->procs.v[i]->exited)
			proc_set_live(s->procs.v[i]);
	for (size_t i = 0; i < s->series.n; i++) {
		struct sw_loop *l = s->series.v[i];
		struct sw_proc *p;

		if (l->agent != a)
			continue;
		p = sw_procs__find(&s->procs, a, l->v.pid);
		if (!p || !p->exited)
			loop_set_live(l);
	}
cleanup:
	wunlock(s);
	pthread_mutex_unlock(&s->apply_mu);
	return err;
}

void sw_store__agent_down(struct sw_store *s, const char *id, uint64_t now_ns)
{
	struct sw_agent *a;

	/* 0 means "live" in stale_since_ns */
	if (!now_ns)
		now_ns = 1;
	pthread_mutex_lock(&s->apply_mu);
	wlock(s);
	a = agent_find(s, id);
	if (!a || a->conns == 0)
		goto cleanup;
	if (--a->conns)
		goto cleanup;
	a->v.up = false;
	a->down_since_ns = now_ns;
	a->v.replaced = agent_has_successor(s, a, now_ns);
	for (size_t i = 0; i < s->series.n; i++) {
		struct sw_loop *l = s->series.v[i];

		if (l->agent != a)
			continue;
		loop_set_gone(s, l, now_ns);
		/* nobody will tell us when that block ends: do not claim it goes on */
		l->v.ongoing_ns = 0;
	}
	for (size_t i = 0; i < s->procs.n; i++)
		if (s->procs.v[i]->agent == a)
			proc_set_gone(s, s->procs.v[i], now_ns);
cleanup:
	wunlock(s);
	pthread_mutex_unlock(&s->apply_mu);
}

/* ---- series labels: from the loop's own report and its ProcessInfo ---- */

static void loop_set_labels(struct sw_store *s, struct sw_loop *l, const char *runtime,
			    const char *role, const char *thread)
{
	struct sw_proc *p = sw_procs__find(&s->procs, l->agent, l->v.pid);

	sw_utf8_copy_str(l->v.runtime, sizeof(l->v.runtime),
			 p && p->runtime[0] ? p->runtime : sw_store_norm_runtime(runtime));
	sw_utf8_copy_str(l->v.role, sizeof(l->v.role), sw_store_norm_role(role));
	if (thread && thread[0])
		sw_utf8_copy_str(l->v.thread, sizeof(l->v.thread), thread);
	if (p && p->comm[0])
		sw_utf8_copy_str(l->v.comm, sizeof(l->v.comm), p->comm);
	else if (l->v.pid == l->v.tid && !l->v.comm[0])
		/* Linux: the main thread's comm is the process's comm */
		sw_utf8_copy_str(l->v.comm, sizeof(l->v.comm), l->v.thread);
	if (p)
		l->v.id = p->id;
	sw_ident__default_service(&l->v.id, l->v.comm);
}

/* A series of a gone process or of an agent gone away: it has had its
 * final data. */
static bool loop_gone(const struct sw_loop *l) { return l->v.stale_since_ns || !l->agent->conns; }

/*
 * Another agent has the series of this thread on this host: an agent
 * restarted and the old one is gone (its series make room, and the new one
 * starts from 0, a counter reset rate() handles), or it is live: two agents
 * watch the same process, or a restart started the new agent before it
 * stopped the old one. Then the new series is a shadow, counted: kept and
 * fed, never exported while the other lives (one label set is one series),
 * and exported in its place once it goes (loop_unshadow). Returns whether
 * the new series is a shadow.
 */
static bool loop_claim(struct sw_store *s, struct sw_agent *a, uint32_t pid, uint32_t tid)
{
	struct sw_loop *o = sw_series__find_other(&s->series, a, pid, tid);

	if (!o)
		return false;
	if (!loop_gone(o)) {
		s->ctr.series_duplicate++;
		return true;
	}
	sw_series__remove_at(&s->series, sw_series__index(&s->series, o));
	return false;
}

/* A shadow whose rival went takes its place: the rival's series go now
 * (a scrape must not show both). Returns l->shadow. */
static bool loop_unshadow(struct sw_store *s, struct sw_loop *l)
{
	struct sw_loop *o;

	if (!l->shadow)
		return false;
	o = sw_series__find_other(&s->series, l->agent, l->v.pid, l->v.tid);
	if (o && !loop_gone(o))
		return true;
	if (o)
		sw_series__remove_at(&s->series, sw_series__index(&s->series, o));
	l->shadow = false;
	return false;
}

/* NULL when the cap refuses the series (counted) or memory is short. */
static struct sw_loop *loop_get(struct sw_store *s, struct sw_agent *a, uint32_t pid, uint32_t tid,
				const char *runtime, const char *role, const char *thread)
{
	struct sw_loop *l = sw_series__find(&s->series, a, pid, tid);
	bool shadow;

	if (l) {
		(void)loop_unshadow(s, l);
		loop_set_labels(s, l, runtime, role, thread);
		loop_set_live(l);
		return l;
	}
	shadow = loop_claim(s, a, pid, tid);
	l = sw_series__add(&s->series, a, pid, tid);
	if (!l) {
		s->ctr.series_dropped++;
		return NULL;
	}
	l->shadow = shadow;
	loop_set_labels(s, l, runtime, role, thread);
	return l;
}

/* ---- the worst block, per scraper ---- */

/* Before an interval is folded: a slot that changed hands starts from
 * what the series shows now (the last interval's longest iteration). */
static void loop_slots_sync(struct sw_store *s, struct sw_loop *l)
{
	for (int k = 0; k < SW_STORE_SCRAPERS; k++) {
		struct sw_loop_scrape *c = &l->sc[k];

		if (c->gen == s->scrapers[k].gen)
			continue;
		memset(c, 0, sizeof(*c));
		c->gen = s->scrapers[k].gen;
		c->shown_valid = l->v.interval_iterations != 0;
		c->shown_ns = l->v.max_ns;
	}
}

/* An interval (or a block that ended) of longest iteration max_ns came:
 * every scraper sees it at its next scrape, whatever comes after. */
static void loop_slots_note(struct sw_loop *l, bool iterations, double max_ns)
{
	for (int k = 0; k < SW_STORE_SCRAPERS; k++) {
		struct sw_loop_scrape *c = &l->sc[k];

		if (iterations && (!c->pend_iter || max_ns > c->pend_max_ns))
			c->pend_max_ns = max_ns;
		c->pend_iter |= iterations;
		c->pend_any = true;
	}
}

static void proc_mark_loops(struct sw_store *s, struct sw_agent *a, uint32_t pid, bool exited,
			    uint64_t now_ns)
{
	for (size_t j = 0; j < s->series.n; j++) {
		struct sw_loop *l = s->series.v[j];

		if (l->agent != a || l->v.pid != pid)
			continue;
		if (exited) {
			loop_set_gone(s, l, now_ns);
			l->v.ongoing_ns = 0;
		} else {
			/* a late ProcessInfo: refresh labels */
			loop_set_live(l);
			loop_set_labels(s, l, l->v.runtime, l->v.role, NULL);
		}
	}
}

/* ---- batches ---- */

static bool exit_row_zero(const struct sw_exit_row *r)
{
	for (size_t c = 0; c < SW_STORE_MAX_EXIT_CAUSES; c++)
		if (r->n[c])
			return false;
	return true;
}

/* The row of (host, service, runtime), made on first use (a process of it
 * seen live: its zeros let increase() see the first exit). A full table
 * gives up a row that counted nothing yet; NULL when none (counted: those
 * exits are not exported). Rows change only with processes: a walk is
 * enough. */
static struct sw_exit_row *exit_row(struct sw_store *s, const char *host, const char *service,
				    const char *runtime)
{
	struct sw_exit_row *r = NULL;

	for (size_t i = 0; i < s->n_exit_rows; i++) {
		r = &s->exit_rows[i];
		if (r->runtime == runtime && !strcmp(r->host, host) && !strcmp(r->service, service))
			return r;
	}
	r = NULL;
	if (s->n_exit_rows < s->max_loops)
		r = &s->exit_rows[s->n_exit_rows++];
	for (size_t i = 0; !r && i < s->n_exit_rows; i++)
		if (exit_row_zero(&s->exit_rows[i]))
			r = &s->exit_rows[i];
	if (!r) {
		s->ctr.series_dropped++;
		return NULL;
	}
	memset(r, 0, sizeof(*r));
	sw_utf8_copy_str(r->host, sizeof(r->host), host);
	sw_utf8_copy_str(r->service, sizeof(r->service), service);
	r->runtime = runtime;
	return r;
}

/* Judged again here, so every agent version gets this collector's verdict
 * (an exec is sent as an exit without exit_known: "unknown"). */
static void exit_count(struct sw_store *s, const struct sw_agent *a, const struct sw_ident *id,
		       const char *runtime, const Stallwatch__V1__ProcessInfo *pi)
{
	struct sw_exit_facts f = {
		.runtime = runtime,
		.known = pi->exit_known,
		.status = pi->exit_code,
		.signal = pi->exit_signal,
		.core = pi->exit_core,
		.in_incident = pi->exit_in_incident,
		.blocked_ns = pi->exit_blocked_ns,
		.uncaught = pi->exit_uncaught,
		.from_promise = pi->exit_from_promise,
		.stderr_tail = pi->exit_stderr,
	};
	struct sw_proc_verdict v;
	struct sw_exit_row *r;

	sw_exit_classify(&f, &v);
	r = exit_row(s, a->v.host, id->service, sw_store_runtimes[runtime_index(runtime)]);
	if (r)
		r->n[exit_cause_index(v.pattern)]++;
}

static bool exec_of(const Stallwatch__V1__ProcessInfo *pi)
{
	return pi->exit_pattern && !strcmp(pi->exit_pattern, SW_EXEC_PATTERN);
}

/* Its loops' series and its own go at once: a new process has the pid. */
static void proc_forget(struct sw_store *s, struct sw_proc *p)
{
	for (size_t i = 0; i < s->series.n;) {
		struct sw_loop *l = s->series.v[i];

		if (l->agent == p->agent && l->v.pid == p->pid)
			sw_series__remove_at(&s->series, i);
		else
			i++;
	}
	sw_procs__remove_at(&s->procs, sw_procs__index(&s->procs, p));
}

/*
 * A ProcessInfo of a live process for a pid we hold: the same process (a
 * late or repeated one) or a new one that reused the pid, told by its start
 * time, or by the old one's exit (an exec is an exit too). A new one's
 * series start from 0 under the same labels: a counter reset.
 */
static bool proc_reused(const struct sw_proc *p, const Stallwatch__V1__ProcessInfo *pi)
{
	if (pi->exited)
		return false;
	if (p->start_ticks && pi->start_ticks)
		return p->start_ticks != pi->start_ticks;
	return p->exited;
}

static bool proc_gone(const struct sw_proc *p) { return p->stale_since_ns || !p->agent->conns; }

/* As loop_claim, for the process's own series: whether it is a shadow. */
static bool proc_claim(struct sw_store *s, struct sw_agent *a, uint32_t pid)
{
	struct sw_proc *o = sw_procs__find_other(&s->procs, a, pid);

	if (!o)
		return false;
	if (!proc_gone(o)) {
		s->ctr.series_duplicate++;
		return true;
	}
	proc_forget(s, o);
	return false;
}

/* As loop_unshadow; the rival's loops go with it. */
static bool proc_unshadow(struct sw_store *s, struct sw_proc *p)
{
	struct sw_proc *o;

	if (!p->shadow)
		return false;
	o = sw_procs__find_other(&s->procs, p->agent, p->pid);
	if (o && !proc_gone(o))
		return true;
	if (o)
		proc_forget(s, o);
	p->shadow = false;
	return false;
}

static void process_apply(struct sw_store *s, struct sw_agent *a,
			  const Stallwatch__V1__ProcessInfo *pi, uint64_t now_ns)
{
	struct sw_proc *p = sw_procs__find(&s->procs, a, pi->pid);

	if (p)
		(void)proc_unshadow(s, p);
	if (p && proc_reused(p, pi)) {
		proc_forget(s, p);
		p = NULL;
	}

	if (!p && pi->exited) {
		/* no ProcessInfo kept (collector restarted, cap): its loops
		 * still go stale below, its exit still counts */
		struct sw_ident id = {0};

		proc_mark_loops(s, a, pi->pid, true, now_ns);
		sw_utf8_copy_str(id.service, sizeof(id.service),
				 pi->service && pi->service[0] ? pi->service : "");
		sw_ident__default_service(&id, pi->comm);
		if (!exec_of(pi))
			exit_count(s, a, &id, sw_store_norm_runtime(pi->runtime), pi);
		return;
	}
	if (!p) {
		bool shadow = proc_claim(s, a, pi->pid);

		p = sw_procs__add(&s->procs, a, pi->pid);
		if (!p) {
			s->ctr.series_dropped++;
			return;
		}
		p->shadow = shadow;
	}
	sw_proc__update(p, pi);
	if (pi->exited)
		proc_set_gone(s, p, now_ns);
	else
		proc_set_live(p);
	proc_mark_loops(s, a, pi->pid, pi->exited, now_ns);
	/* every cause of its (host, service, runtime) from 0, before its first
	 * exit: increase() needs a 0 to see the first one */
	if (!pi->exited)
		(void)exit_row(s, a->v.host, p->id.service,
			       sw_store_runtimes[runtime_index(p->runtime[0] ? p->runtime : "native")]);
	/* a process two agents watch exits once: the live owner's counts */
	if (pi->exited && !p->exit_counted && !exec_of(pi) && !proc_unshadow(s, p))
		exit_count(s, a, &p->id,
			   p->runtime[0] ? p->runtime : sw_store_norm_runtime(pi->runtime), pi);
	p->exit_counted = pi->exited;
}

/* The runtime an incident of pid is judged with: its ProcessInfo's. */
static const char *incident_runtime(struct sw_store *s, struct sw_agent *a,
				    const Stallwatch__V1__Incident *pi)
{
	struct sw_proc *p = sw_procs__find(&s->procs, a, pi->pid);

	return p && p->runtime[0] ? p->runtime : sw_store_norm_runtime(pi->runtime);
}

/* pr: pi judged without the lock (sw_store__apply_ack) */
static void incident_apply(struct sw_store *s, struct sw_agent *a,
			   const Stallwatch__V1__Incident *pi, const struct sw_incident_prep *pr)
{
	const char *runtime = incident_runtime(s, a, pi);
	struct sw_incident *in;
	struct sw_loop *l;
	size_t pat;

	in = sw_incidents__find(&s->incidents, a->v.id, pi->pid, pi->tid, pi->start_ns);
	if (in && !in->v.ongoing)
		return; /* already final: a late copy must not count it twice */
	if (!in) {
		in = sw_incidents__insert(&s->incidents, a->v.id, pi->pid, pi->tid, pi->start_ns);
		sw_utf8_copy_str(in->v.host, sizeof(in->v.host), a->v.host);
		/* monotonic clocks of two hosts do not compare; wall time does.
		 * Without the agent's offset, date the block from our own clock. */
		if (a->mono_to_unix_ns)
			in->v.start_unix_ns = pi->start_ns + a->mono_to_unix_ns;
		else
			in->v.start_unix_ns = sw_realtime_ns() - pi->duration_ns;
	}
	if (!strcmp(pr->runtime, runtime) && pr->threshold_ns == a->threshold_ns) {
		sw_incident__set(in, &pr->v);
	} else {
		sw_incident__update(in, pi, runtime, a->threshold_ns);
		s->holds.judged_locked++;
	}

	l = loop_get(s, a, pi->pid, pi->tid, runtime, pi->role, pi->thread);
	if (!l)
		return;
	if (pi->ongoing) {
		l->v.ongoing_ns = pi->duration_ns;
		l->ongoing_start_ns = pi->start_ns;
		return;
	}
	if (l->ongoing_start_ns == pi->start_ns)
		l->v.ongoing_ns = 0;
	/* its iteration is in a summary too; this one may come first */
	loop_slots_sync(s, l);
	loop_slots_note(l, true, (double)pi->duration_ns);
	pat = sw_store__pattern_index(in->v.pattern);
	l->v.blocked[pat]++;
	l->v.blocked_ns[pat] += pi->duration_ns;
}

static void loop_apply(struct sw_store *s, struct sw_agent *a,
		       const Stallwatch__V1__LoopSummary *ls, const struct sw_loop_prep *lp)
{
	struct sw_loop *l = loop_get(s, a, ls->pid, ls->tid, ls->runtime, ls->role, ls->thread);
	struct sw_proc *p;

	if (l) {
		if (!lp->ready) {
			/* skipped as refused by the cap, which a rival's series
			 * gone since made room in: summarised under the lock */
			sw_series__prep(&s->loop_prep[SW_STORE_PREP_LOOPS], ls, s->prep_hist);
			lp = &s->loop_prep[SW_STORE_PREP_LOOPS];
		}
		loop_slots_sync(s, l);
		sw_series__apply(l, ls, lp);
		loop_slots_note(l, l->v.interval_iterations != 0, l->v.max_ns);
	}
	if (ls->rss_bytes && (p = sw_procs__find(&s->procs, a, ls->pid)))
		p->rss_bytes = ls->rss_bytes;
}

static void gil_apply(struct sw_store *s, struct sw_agent *a, const Stallwatch__V1__GilSummary *g,
		      const struct sw_gil_prep *gp)
{
	struct sw_proc *p = sw_procs__find(&s->procs, a, g->pid);

	/* no ProcessInfo kept: refused by the cap and counted there; a
	 * GilSummary alone must not make a process that never expires */
	if (p && sw_gil__apply(p, g, gp))
		s->ctr.series_dropped++;
}

static void memory_apply(struct sw_store *s, struct sw_agent *a,
			 const Stallwatch__V1__MemoryGrowth *m)
{
	struct sw_proc *p = sw_procs__find(&s->procs, a, m->pid);

	if (!p)
		return; /* its ProcessInfo was refused by the cap: counted there */
	p->have_growth = true;
	p->growth_bps = m->rate_bytes_per_s;
	p->growth_window_s = m->window_s;
}

static void health_apply(struct sw_agent *a, const Stallwatch__V1__AgentHealth *h)
{
	/* cumulative on the agent side: the latest is the truth */
	a->v.have_health = true;
	for (size_t i = 0; i < h->n_counters; i++) {
		const Stallwatch__V1__AgentHealth__CountersEntry *e = h->counters[i];
		int hid = e ? sw_health_id(e->key) : -1;

		if (hid >= 0)
			a->v.health[hid] = e->value;
	}
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Called with mu held, returns with it held; drops it while it judges. */
static void incidents_apply(struct sw_store *s, struct sw_agent *a,
			    const Stallwatch__V1__Batch *b)
{
	for (size_t i = 0; i < b->n_incidents; i += SW_STORE_PREP_INCIDENTS) {
		size_t n = min_sz(b->n_incidents - i, SW_STORE_PREP_INCIDENTS);

		/* what the verdict depends on in the store, read under mu;
		 * incident_apply checks it is still so */
		for (size_t k = 0; k < n; k++) {
			struct sw_incident_prep *pr = &s->inc_prep[k];

			sw_utf8_copy_str(pr->runtime, sizeof(pr->runtime),
					 incident_runtime(s, a, b->incidents[i + k]));
			pr->threshold_ns = a->threshold_ns;
		}
		wunlock(s);
		for (size_t k = 0; k < n; k++) {
			struct sw_incident_prep *pr = &s->inc_prep[k];

			sw_incident__judge(&pr->v, b->incidents[i + k], pr->runtime,
					   pr->threshold_ns);
		}
		wlock(s);
		for (size_t k = 0; k < n; k++) {
			incident_apply(s, a, b->incidents[i + k], &s->inc_prep[k]);
			wslice(s);
		}
	}
}

/* As incidents_apply: the interval's gauges are computed without mu, but
 * for the summaries of new series the cap will refuse (a hostile frame's
 * thousands), which are not worth it. */
static void loops_apply(struct sw_store *s, struct sw_agent *a, const Stallwatch__V1__Batch *b)
{
	for (size_t i = 0; i < b->n_loops; i += SW_STORE_PREP_LOOPS) {
		size_t n = min_sz(b->n_loops - i, SW_STORE_PREP_LOOPS);
		size_t room = s->series.cap - s->series.n;

		for (size_t k = 0; k < n; k++) {
			const Stallwatch__V1__LoopSummary *ls = b->loops[i + k];
			bool known = sw_series__find(&s->series, a, ls->pid, ls->tid);

			s->loop_prep[k].ready = known || room;
			if (!known && room)
				room--;
		}
		wunlock(s);
		for (size_t k = 0; k < n; k++)
			if (s->loop_prep[k].ready)
				sw_series__prep(&s->loop_prep[k], b->loops[i + k], s->prep_hist);
		wlock(s);
		for (size_t k = 0; k < n; k++) {
			loop_apply(s, a, b->loops[i + k], &s->loop_prep[k]);
			wslice(s);
		}
	}
}

/* As loops_apply: each summary is judged without mu (sw_gil_judge, the
 * threads' views and names). */
static void gils_apply(struct sw_store *s, struct sw_agent *a, const Stallwatch__V1__Batch *b)
{
	for (size_t i = 0; i < b->n_gil; i += SW_STORE_PREP_GIL) {
		size_t n = min_sz(b->n_gil - i, SW_STORE_PREP_GIL);

		wunlock(s);
		for (size_t k = 0; k < n; k++)
			sw_gil__judge(&s->gil_prep[k], b->gil[i + k], s->gil_scratch);
		wlock(s);
		for (size_t k = 0; k < n; k++) {
			gil_apply(s, a, b->gil[i + k], &s->gil_prep[k]);
			wslice(s);
		}
	}
}

/*
 * A batch within these (every real agent's: at most 14 processes, 13
 * loops, 27 incidents and 2 GIL summaries measured) is judged whole before
 * it is applied, then applied in one hold of the lock: a scrape sees all of
 * it or none, as before the slices, and the hold is bounded by these
 * counts (~1 ms of work at most). A bigger one is applied in slices.
 */
#define SW_STORE_WHOLE_PROCS 64 /* processes, and memory growths */
#define SW_STORE_WHOLE_LOOPS 128

static bool batch_whole(const Stallwatch__V1__Batch *b)
{
	return b->n_processes + b->n_memory <= SW_STORE_WHOLE_PROCS &&
	       b->n_loops <= SW_STORE_WHOLE_LOOPS && b->n_incidents <= SW_STORE_PREP_INCIDENTS &&
	       b->n_gil <= SW_STORE_PREP_GIL;
}

/* The runtime an incident of the batch will be judged with once its
 * ProcessInfos are applied (the last that names one wins, as in
 * sw_proc__update); incident_apply checks it. */
static const char *incident_runtime_after(struct sw_store *s, struct sw_agent *a,
					  const Stallwatch__V1__Batch *b,
					  const Stallwatch__V1__Incident *pi)
{
	for (size_t i = b->n_processes; i-- > 0;) {
		const Stallwatch__V1__ProcessInfo *p = b->processes[i];

		if (p->pid == pi->pid && p->runtime && p->runtime[0])
			return sw_store_norm_runtime(p->runtime);
	}
	return incident_runtime(s, a, pi);
}

/* A batch_whole one, judged before anything of it is applied: called with
 * mu held, returns with it held, drops it while it judges. */
static void batch_judge(struct sw_store *s, struct sw_agent *a, const Stallwatch__V1__Batch *b)
{
	uint64_t threshold_ns = b->hello && b->hello->threshold_ms
				    ? (uint64_t)b->hello->threshold_ms * 1000000ull
				    : a->threshold_ns;

	for (size_t k = 0; k < b->n_incidents; k++) {
		struct sw_incident_prep *pr = &s->inc_prep[k];

		sw_utf8_copy_str(pr->runtime, sizeof(pr->runtime),
				 incident_runtime_after(s, a, b, b->incidents[k]));
		pr->threshold_ns = threshold_ns;
	}
	wunlock(s);
	for (size_t k = 0; k < b->n_loops; k++)
		sw_series__prep(&s->loop_prep[k], b->loops[k], s->prep_hist);
	for (size_t k = 0; k < b->n_gil; k++)
		sw_gil__judge(&s->gil_prep[k], b->gil[k], s->gil_scratch);
	for (size_t k = 0; k < b->n_incidents; k++)
		sw_incident__judge(&s->inc_prep[k].v, b->incidents[k], s->inc_prep[k].runtime,
				   s->inc_prep[k].threshold_ns);
	wlock(s);
}

/* The rest of a batch_whole one, judged: no slices. */
static void batch_apply_whole(struct sw_store *s, struct sw_agent *a,
			      const Stallwatch__V1__Batch *b, uint64_t now_ns)
{
	for (size_t i = 0; i < b->n_processes; i++)
		process_apply(s, a, b->processes[i], now_ns);
	for (size_t i = 0; i < b->n_loops; i++)
		loop_apply(s, a, b->loops[i], &s->loop_prep[i]);
	for (size_t i = 0; i < b->n_memory; i++)
		memory_apply(s, a, b->memory[i]);
	for (size_t i = 0; i < b->n_gil; i++)
		gil_apply(s, a, b->gil[i], &s->gil_prep[i]);
	for (size_t i = 0; i < b->n_incidents; i++)
		incident_apply(s, a, b->incidents[i], &s->inc_prep[i]);
}

static void batch_apply_sliced(struct sw_store *s, struct sw_agent *a,
			       const Stallwatch__V1__Batch *b, uint64_t now_ns)
{
	for (size_t i = 0; i < b->n_processes; i++) {
		process_apply(s, a, b->processes[i], now_ns);
		wslice(s);
	}
	loops_apply(s, a, b);
	for (size_t i = 0; i < b->n_memory; i++) {
		memory_apply(s, a, b->memory[i]);
		wslice(s);
	}
	gils_apply(s, a, b);
	incidents_apply(s, a, b);
}

int sw_store__apply(struct sw_store *s, const char *id, const Stallwatch__V1__Batch *b,
		    uint64_t now_ns)
{
	uint64_t ack;

	return sw_store__apply_ack(s, id, b, now_ns, &ack);
}

int sw_store__apply_ack(struct sw_store *s, const char *id, const Stallwatch__V1__Batch *b,
			uint64_t now_ns, uint64_t *ack)
{
	struct sw_agent *a;
	bool whole = batch_whole(b);
	int err = 0;

	*ack = 0;
	pthread_mutex_lock(&s->apply_mu);
	wlock(s);
	a = agent_find(s, id);
	if (!a) {
		err = -ENOENT;
		goto cleanup;
	}
	if (whole)
		batch_judge(s, a, b);
	sw_agent__hello(a, b->hello);
	/* seq 0 is proto3's "unset": an agent that does not number batches,
	 * or a hello batch (whose processes are meant to be applied again) */
	if (b->seq && a->acks && a->have_seq && b->seq <= a->last_seq) {
		/* resent after a reconnect, and applied before: its ack was lost */
		s->ctr.batches_duplicate++;
		*ack = a->last_seq;
		goto cleanup;
	}
	/* taken before the rest is applied: no other batch of this agent is
	 * applied meanwhile (one writer), and a scrape in between sees the
	 * batch counted, as the listener counts its frame before */
	s->ctr.batches++;
	if (b->seq) {
		if (a->have_seq && b->seq > a->last_seq + 1)
			s->ctr.batches_gap += b->seq - a->last_seq - 1;
		a->last_seq = b->seq;
		a->have_seq = true;
	}

	if (whole)
		batch_apply_whole(s, a, b, now_ns);
	else
		batch_apply_sliced(s, a, b, now_ns);
	if (b->health)
		health_apply(a, b->health);
	if (a->acks)
		*ack = a->last_seq;
cleanup:
	wunlock(s);
	pthread_mutex_unlock(&s->apply_mu);
	return err;
}

static bool expired(uint64_t since, uint64_t now, uint64_t period)
{
	return since && now >= since && now - since >= period;
}

/* A scraper seen within the forget period: it holds gone series back
 * until it has scraped them. */
static bool scraper_active(const struct sw_scraper *c, uint64_t now_ns)
{
	return c->who[0] && (now_ns <= c->last_ns || now_ns - c->last_ns < SW_SCRAPER_FORGET_NS);
}

/* Every active scraper has scraped since what went stale at `epoch` did
 * (and there is one): its final values have been seen. */
static bool seen_by_all(const struct sw_store *s, uint64_t epoch, uint64_t now_ns)
{
	bool any = false;

	for (int k = 0; k < SW_STORE_SCRAPERS; k++) {
		const struct sw_scraper *c = &s->scrapers[k];

		if (!scraper_active(c, now_ns))
			continue;
		if (c->last_epoch < epoch)
			return false;
		any = true;
	}
	return any;
}

static bool gone_for_good(const struct sw_store *s, uint64_t since_ns, uint64_t epoch,
			  uint64_t now_ns)
{
	return since_ns && (expired(since_ns, now_ns, s->expire_ns) || seen_by_all(s, epoch, now_ns));
}

/* The exit counts of a host none of whose agents is left (all expired)
 * go with it: a host taken out of the fleet leaves no series behind. */
static void exit_rows_of_gone_hosts(struct sw_store *s)
{
	for (size_t i = 0; i < s->n_exit_rows;) {
		bool held = false;

		for (size_t k = 0; k < s->agents.n && !held; k++)
			held = !strcmp(s->agents.v[k]->v.host, s->exit_rows[i].host);
		if (held)
			i++;
		else
			s->exit_rows[i] = s->exit_rows[--s->n_exit_rows];
	}
}

void sw_store__tick(struct sw_store *s, uint64_t now_ns)
{
	bool gone_agent = false;

	pthread_mutex_lock(&s->apply_mu);
	wlock(s);
	for (size_t i = 0; i < s->series.n;) {
		struct sw_loop *l = s->series.v[i];

		if (gone_for_good(s, l->v.stale_since_ns, l->gone_epoch, now_ns))
			sw_series__remove_at(&s->series, i); /* swaps the last one into i */
		else
			i++;
	}
	for (size_t i = 0; i < s->procs.n;) {
		struct sw_proc *p = s->procs.v[i];

		if (gone_for_good(s, p->stale_since_ns, p->gone_epoch, now_ns))
			sw_procs__remove_at(&s->procs, i);
		else
			i++;
	}
	/* after its loops and processes: nothing points at it any more
	 * (incidents keep a copy of its id, not a pointer) */
	for (size_t i = 0; i < s->agents.n;) {
		struct sw_agent *a = s->agents.v[i];

		if (!a->conns && expired(a->down_since_ns, now_ns, s->expire_ns)) {
			sw_agents__remove_at(&s->agents, i);
			gone_agent = true;
		} else {
			i++;
		}
	}
	if (gone_agent)
		exit_rows_of_gone_hosts(s);
	wunlock(s);
	pthread_mutex_unlock(&s->apply_mu);
}

/* ---- scrapes ---- */

/* The slot of `who`: its own, a free one, or the one idle longest, which
 * changes hands (its gen moves on, so every loop's state for it restarts). */
static int scraper_slot(struct sw_store *s, const char *who)
{
	int free_k = -1, old_k = 0;

	for (int k = 0; k < SW_STORE_SCRAPERS; k++) {
		struct sw_scraper *c = &s->scrapers[k];

		if (c->who[0] && !strcmp(c->who, who))
			return k;
		if (!c->who[0] && free_k < 0)
			free_k = k;
		if (c->last_ns < s->scrapers[old_k].last_ns)
			old_k = k;
	}
	if (free_k < 0)
		free_k = old_k;
	sw_utf8_copy_str(s->scrapers[free_k].who, sizeof(s->scrapers[free_k].who), who);
	s->scrapers[free_k].gen = ++s->scraper_gen;
	s->scrapers[free_k].last_ns = 0;
	return free_k;
}

/* Shadows whose rival went take its place before anything is shown. A
 * promotion removes the rival (a swap in the vector): the walk starts over,
 * which promotions, rare, can afford. */
static void promote_shadows(struct sw_store *s)
{
	for (size_t i = 0; i < s->procs.n;) {
		size_t n = s->procs.n;

		(void)proc_unshadow(s, s->procs.v[i]);
		i = s->procs.n == n ? i + 1 : 0;
	}
	for (size_t i = 0; i < s->series.n;) {
		size_t n = s->series.n;

		(void)loop_unshadow(s, s->series.v[i]);
		i = s->series.n == n ? i + 1 : 0;
	}
}

int sw_store__scrape_begin(struct sw_store *s, const char *who)
{
	int k = scraper_slot(s, who && who[0] ? who : "-");
	uint64_t prev;

	promote_shadows(s);
	prev = s->scrapers[k].last_epoch;
	for (size_t i = 0; i < s->series.n; i++) {
		struct sw_loop *l = s->series.v[i];
		struct sw_loop_scrape *c = &l->sc[k];
		uint64_t gone = l->gone_epoch;

		loop_slots_sync(s, l);
		if (c->pend_any) {
			c->shown_valid = c->pend_iter;
			c->shown_ns = c->pend_max_ns;
			c->pend_any = c->pend_iter = false;
			c->pend_max_ns = 0;
		}
		l->v.scrape_max_valid = c->shown_valid;
		l->v.scrape_max_ns = c->shown_ns;
		/* a block in progress is at least that long already */
		if ((double)l->v.ongoing_ns > l->v.scrape_max_ns || (l->v.ongoing_ns && !c->shown_valid)) {
			l->v.scrape_max_ns = (double)l->v.ongoing_ns;
			l->v.scrape_max_valid = true;
		}
		/* gone: shown once more to a scraper that has not seen its end */
		l->v.scrape_show = !l->shadow && (!gone || gone > prev);
	}
	for (size_t i = 0; i < s->procs.n; i++) {
		struct sw_proc *p = s->procs.v[i];
		uint64_t gone = p->gone_epoch;

		p->scrape_show = !p->shadow && (!gone || gone > prev);
	}
	return k;
}

void sw_store__scrape_end(struct sw_store *s, int slot, uint64_t now_ns)
{
	if (slot < 0 || slot >= SW_STORE_SCRAPERS)
		return;
	s->scrapers[slot].last_ns = now_ns;
	s->scrapers[slot].last_epoch = s->epoch;
}

size_t sw_store__nscrapers(const struct sw_store *s, uint64_t now_ns)
{
	size_t n = 0;

	for (int k = 0; k < SW_STORE_SCRAPERS; k++)
		n += scraper_active(&s->scrapers[k], now_ns);
	return n;
}

size_t sw_store__max_loops(const struct sw_store *s) { return s->max_loops; }

size_t sw_store__nshadow_loops(const struct sw_store *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->series.n; i++)
		n += s->series.v[i]->shadow;
	return n;
}

size_t sw_store__nloops(const struct sw_store *s) { return s->series.n; }

const struct sw_loop_view *sw_store__loop(const struct sw_store *s, size_t i)
{
	return i < s->series.n ? &s->series.v[i]->v : NULL;
}

size_t sw_store__nagents(const struct sw_store *s) { return s->agents.n; }

const struct sw_agent_view *sw_store__agent(const struct sw_store *s, size_t i)
{
	return i < s->agents.n ? &s->agents.v[i]->v : NULL;
}

size_t sw_store__nincidents(const struct sw_store *s) { return s->incidents.count; }

const struct sw_incident_view *sw_store__incident(const struct sw_store *s, size_t i)
{
	return i < s->incidents.count ? &sw_incidents__at(&s->incidents, i)->v : NULL;
}

size_t sw_store__nprocs(const struct sw_store *s) { return s->procs.n; }

void sw_store__proc(const struct sw_store *s, size_t i, struct sw_proc_view *out)
{
	const struct sw_proc *p = s->procs.v[i];

	memset(out, 0, sizeof(*out));
	sw_utf8_copy_str(out->host, sizeof(out->host), p->agent->v.host);
	sw_utf8_copy_str(out->runtime, sizeof(out->runtime), p->runtime[0] ? p->runtime : "native");
	sw_utf8_copy_str(out->comm, sizeof(out->comm), p->comm);
	out->pid = p->pid;
	out->id = p->id;
	out->scrape_show = p->scrape_show;
	out->rss_bytes = p->rss_bytes;
	out->have_growth = p->have_growth;
	out->growth_bps = p->growth_bps;
	out->growth_window_s = p->growth_window_s;
	out->exited = p->stale_since_ns != 0;
}

const struct sw_gil_view *sw_store__gil(const struct sw_store *s, size_t i)
{
	return i < s->procs.n ? s->procs.v[i]->gil : NULL;
}

size_t sw_store__nexit_rows(const struct sw_store *s) { return s->n_exit_rows; }

const struct sw_exit_row *sw_store__exit_row(const struct sw_store *s, size_t i)
{
	return i < s->n_exit_rows ? &s->exit_rows[i] : NULL;
}

void sw_store__counters(const struct sw_store *s, struct sw_store_counters *c)
{
	*c = s->ctr;
	c->incidents_dropped = s->incidents.evicted;
}
