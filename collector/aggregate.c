// SPDX-License-Identifier: Apache-2.0
#include "clock.h"
#include "aggregate.h"
#include "rules.h"
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sw_agent {
	struct sw_agent_view v;
	unsigned int conns;
	uint64_t mono_to_unix_ns; /* 0 when the agent did not say */
	uint64_t last_seq;
	bool have_seq;
	uint64_t down_since_ns; /* 0 while connected */
};

/* What ProcessInfo said about a pid, kept because it comes once per process
 * and the loop series of that pid may be created later. */
struct sw_proc {
	struct sw_agent *agent;
	uint32_t pid;
	char runtime[SW_SHORT_LEN];
	char comm[SW_SHORT_LEN];
	uint64_t stale_since_ns;
};

struct sw_loop {
	struct sw_loop_view v; /* first: sw_store__loop() hands out &loop->v */
	struct sw_agent *agent;
	struct sw_loop *hnext; /* hash chain */
	uint64_t ongoing_start_ns;
};

struct sw_store {
	pthread_mutex_t mu;
	size_t max_loops, max_incidents;
	uint64_t expire_ns;

	struct sw_agent **agents;
	size_t nagents;

	struct sw_proc **procs;
	size_t nprocs;

	/* loops: a dense vector for export, a chained hash for the ingest path
	 * (hundreds of summaries a second against up to max_loops series) */
	struct sw_loop **loops;
	size_t nloops;
	struct sw_loop **htab;
	size_t hmask;

	/* incidents: ring in insertion order, ring[(head - 1 - i) % cap] is the
	 * i-th newest */
	struct sw_incident_view *ring;
	size_t rhead, rcount;

	struct sw_store_counters ctr;
	struct sw_hist scratch; /* one interval's delta; 14 KB, not on the stack */
};

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
	return 0; /* sw_rule_patterns[0] is the catch-all "blocked" */
}

static void copy_str(char *dst, const char *src, size_t size)
{
	size_t n;

	if (!src)
		src = "";
	/* Stand-in until copy_str is replaced (collector restructuring): GCC 12
	 * at -O2 sees strnlen(bound 31) on an 8-byte literal and reports
	 * -Wstringop-overread although strnlen stops at the NUL. */
	for (n = 0; n + 1 < size && src[n]; n++)
		;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Label values must stay within the bounds docs/METRICS.md promises, whatever
 * an agent of another version (or a confused peer) sends. */
static const char *norm_runtime(const char *r)
{
	if (r && (strcmp(r, "node") == 0 || strcmp(r, "python") == 0))
		return r;
	return "native";
}

static const char *norm_role(const char *r)
{
	static const char *const roles[] = {"main", "worker", "asyncio", "loop"};

	for (size_t i = 0; r && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(r, roles[i]) == 0)
			return roles[i];
	return "loop";
}

struct sw_store *sw_store__new(const struct sw_store_opts *opts)
{
	struct sw_store *s;
	size_t hsize = 16;
	int err = 0;

	if (!opts || opts->max_loops == 0 || opts->max_incidents == 0 ||
	    sw_store__npatterns() > SW_STORE_MAX_PATTERNS) {
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
	s->max_loops = opts->max_loops;
	s->max_incidents = opts->max_incidents;
	s->expire_ns = opts->expire_ns ? opts->expire_ns : SW_STORE_EXPIRE_NS;
	/* load factor <= 0.5 at the cap */
	while (hsize < opts->max_loops * 2)
		hsize <<= 1;
	s->hmask = hsize - 1;
	s->htab = calloc(hsize, sizeof(*s->htab));
	s->loops = calloc(opts->max_loops, sizeof(*s->loops));
	/* processes are bounded like loops: a process with no loop yields no series */
	s->procs = calloc(opts->max_loops, sizeof(*s->procs));
	s->agents = calloc(SW_STORE_MAX_AGENTS, sizeof(*s->agents));
	s->ring = calloc(opts->max_incidents, sizeof(*s->ring));
	if (!s->htab || !s->loops || !s->procs || !s->agents || !s->ring) {
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
	for (size_t i = 0; i < s->nloops; i++)
		free(s->loops[i]);
	for (size_t i = 0; i < s->nprocs; i++)
		free(s->procs[i]);
	for (size_t i = 0; i < s->nagents; i++)
		free(s->agents[i]);
	free(s->loops);
	free(s->procs);
	free(s->agents);
	free(s->htab);
	free(s->ring);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void sw_store__lock(struct sw_store *s) { pthread_mutex_lock(&s->mu); }

void sw_store__unlock(struct sw_store *s) { pthread_mutex_unlock(&s->mu); }

/* ---- agents ---- */

static struct sw_agent *agent_find(struct sw_store *s, const char *id)
{
	for (size_t i = 0; i < s->nagents; i++)
		if (strncmp(s->agents[i]->v.id, id, SW_NAME_LEN - 1) == 0)
			return s->agents[i];
	return NULL;
}

int sw_store__agent_up(struct sw_store *s, const char *id, const Stallwatch__V1__Hello *hello,
		       uint64_t now_ns)
{
	struct sw_agent *a;
	int err = 0;

	(void)now_ns;
	pthread_mutex_lock(&s->mu);
	a = agent_find(s, id);
	if (!a) {
		if (s->nagents >= SW_STORE_MAX_AGENTS) {
			/* every series of that agent is refused with it */
			s->ctr.series_dropped++;
			err = -ENOSPC;
			goto cleanup;
		}
		a = calloc(1, sizeof(*a));
		if (!a) {
			err = -ENOMEM;
			goto cleanup;
		}
		copy_str(a->v.id, id, sizeof(a->v.id));
		/* until a Hello names the host, the id is the best name we have */
		copy_str(a->v.host, id, sizeof(a->v.host));
		s->agents[s->nagents++] = a;
	}
	if (hello) {
		if (hello->hostname && hello->hostname[0])
			copy_str(a->v.host, hello->hostname, sizeof(a->v.host));
		copy_str(a->v.version, hello->version, sizeof(a->v.version));
		a->mono_to_unix_ns = hello->mono_to_unix_ns;
	}
	a->conns++;
	a->v.up = true;
	a->down_since_ns = 0;
	/* an agent that came back revives its series; data will follow */
	for (size_t i = 0; i < s->nloops; i++)
		if (s->loops[i]->agent == a)
			s->loops[i]->v.stale_since_ns = 0;
	for (size_t i = 0; i < s->nprocs; i++)
		if (s->procs[i]->agent == a)
			s->procs[i]->stale_since_ns = 0;
cleanup:
	pthread_mutex_unlock(&s->mu);
	return err;
}

void sw_store__agent_down(struct sw_store *s, const char *id, uint64_t now_ns)
{
	struct sw_agent *a;

	/* 0 means "live" in stale_since_ns */
	if (!now_ns)
		now_ns = 1;
	pthread_mutex_lock(&s->mu);
	a = agent_find(s, id);
	if (!a || a->conns == 0)
		goto cleanup;
	if (--a->conns)
		goto cleanup;
	a->v.up = false;
	a->down_since_ns = now_ns;
	for (size_t i = 0; i < s->nloops; i++) {
		struct sw_loop *l = s->loops[i];

		if (l->agent != a)
			continue;
		if (!l->v.stale_since_ns)
			l->v.stale_since_ns = now_ns;
		/* nobody will tell us when that block ends: do not claim it goes on */
		l->v.ongoing_ns = 0;
	}
	for (size_t i = 0; i < s->nprocs; i++)
		if (s->procs[i]->agent == a && !s->procs[i]->stale_since_ns)
			s->procs[i]->stale_since_ns = now_ns;
cleanup:
	pthread_mutex_unlock(&s->mu);
}

/* ---- processes ---- */

static struct sw_proc *proc_find(struct sw_store *s, struct sw_agent *a, uint32_t pid)
{
	for (size_t i = 0; i < s->nprocs; i++)
		if (s->procs[i]->agent == a && s->procs[i]->pid == pid)
			return s->procs[i];
	return NULL;
}

/* ---- loops ---- */

static size_t loop_hash(const struct sw_store *s, const struct sw_agent *a, uint32_t pid,
			uint32_t tid)
{
	uint64_t h = (uint64_t)(uintptr_t)a;

	/* splitmix64 finaliser: cheap and good enough for a power-of-two table */
	h ^= ((uint64_t)pid << 32) | tid;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h & s->hmask;
}

static struct sw_loop *loop_find(struct sw_store *s, struct sw_agent *a, uint32_t pid, uint32_t tid)
{
	struct sw_loop *l = s->htab[loop_hash(s, a, pid, tid)];

	for (; l; l = l->hnext)
		if (l->agent == a && l->v.pid == pid && l->v.tid == tid)
			return l;
	return NULL;
}

static void loop_set_labels(struct sw_store *s, struct sw_loop *l, const char *runtime,
			    const char *role, const char *thread)
{
	struct sw_proc *p = proc_find(s, l->agent, l->v.pid);

	copy_str(l->v.runtime, norm_runtime(p && p->runtime[0] ? p->runtime : runtime),
		 sizeof(l->v.runtime));
	copy_str(l->v.role, norm_role(role), sizeof(l->v.role));
	if (thread && thread[0])
		copy_str(l->v.thread, thread, sizeof(l->v.thread));
	if (p && p->comm[0])
		copy_str(l->v.comm, p->comm, sizeof(l->v.comm));
	else if (l->v.pid == l->v.tid && !l->v.comm[0])
		/* Linux: the main thread's comm is the process's comm */
		copy_str(l->v.comm, l->v.thread, sizeof(l->v.comm));
}

/* NULL when the cap refuses the series (counted) or memory is short. */
static struct sw_loop *loop_get(struct sw_store *s, struct sw_agent *a, uint32_t pid, uint32_t tid,
				const char *runtime, const char *role, const char *thread)
{
	struct sw_loop *l = loop_find(s, a, pid, tid);
	size_t h;

	if (l) {
		loop_set_labels(s, l, runtime, role, thread);
		l->v.stale_since_ns = 0;
		return l;
	}
	if (s->nloops >= s->max_loops) {
		s->ctr.series_dropped++;
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		s->ctr.series_dropped++;
		return NULL;
	}
	l->agent = a;
	l->v.host = a->v.host;
	l->v.agent = a->v.id;
	l->v.pid = pid;
	l->v.tid = tid;
	loop_set_labels(s, l, runtime, role, thread);
	h = loop_hash(s, a, pid, tid);
	l->hnext = s->htab[h];
	s->htab[h] = l;
	s->loops[s->nloops++] = l;
	return l;
}

static void loop_remove_at(struct sw_store *s, size_t i)
{
	struct sw_loop *l = s->loops[i], **pp;

	for (pp = &s->htab[loop_hash(s, l->agent, l->v.pid, l->v.tid)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == l) {
			*pp = l->hnext;
			break;
		}
	}
	s->loops[i] = s->loops[--s->nloops];
	free(l);
}

/* Middle of a bucket, clamped to the interval's exact maximum: in the top
 * bucket of an interval the middle may lie above every value recorded. */
static double bucket_value(uint32_t idx, uint64_t max_ns)
{
	uint64_t mid = sw_hist_bucket_mid(idx);

	if (max_ns && mid > max_ns)
		mid = max_ns;
	return (double)mid;
}

static void loop_apply(struct sw_store *s, struct sw_loop *l, const Stallwatch__V1__LoopSummary *ls)
{
	struct sw_hist *d = &s->scratch;
	double sum = 0, sq = 0, mean, v;
	uint64_t total;
	bool first = true;

	sw_hist_reset(d);
	for (size_t i = 0; i < ls->n_buckets; i++)
		/* indexes were validated by ingest; a bad one is skipped, not trusted */
		(void)sw_hist_add_bucket(d, ls->buckets[i]->index, ls->buckets[i]->count);
	d->max_ns = ls->max_busy_ns;
	sw_hist_merge(&l->v.hist, d);
	l->v.iterations += ls->iterations;
	l->v.busy_ns += ls->busy_ns;
	l->v.idle_ns += ls->idle_ns;

	/* OTel nodejs.eventloop.delay.* are over the interval: from the delta */
	total = d->total;
	l->v.min_ns = l->v.mean_ns = l->v.stddev_ns = 0;
	l->v.p50_ns = l->v.p90_ns = l->v.p99_ns = 0;
	l->v.max_ns = (double)ls->max_busy_ns;
	if (total) {
		for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++) {
			if (!d->counts[i])
				continue;
			v = bucket_value(i, d->max_ns);
			if (first) {
				l->v.min_ns = v;
				first = false;
			}
			sum += v * (double)d->counts[i];
		}
		mean = sum / (double)total;
		for (uint32_t i = 0; i < SW_HIST_NBUCKETS; i++) {
			if (!d->counts[i])
				continue;
			v = bucket_value(i, d->max_ns) - mean;
			sq += v * v * (double)d->counts[i];
		}
		l->v.mean_ns = mean;
		l->v.stddev_ns = sqrt(sq / (double)total);
		l->v.p50_ns = (double)sw_hist_quantile(d, 0.50);
		l->v.p90_ns = (double)sw_hist_quantile(d, 0.90);
		l->v.p99_ns = (double)sw_hist_quantile(d, 0.99);
		if (!ls->max_busy_ns) {
			/* an agent that did not send the exact max: top bucket */
			for (uint32_t i = SW_HIST_NBUCKETS; i-- > 0;) {
				if (d->counts[i]) {
					l->v.max_ns = (double)sw_hist_bucket_mid(i);
					break;
				}
			}
		}
		/* _sum of the exported histogram: consistent with its buckets
		 * (each value within 0.8 % of its bucket's middle) */
		l->v.hist_sum_ns += (uint64_t)sum;
	}
	/* libuv's ELU: active / (active + idle) of the interval */
	if (ls->busy_ns + ls->idle_ns)
		l->v.utilization = (double)ls->busy_ns / (double)(ls->busy_ns + ls->idle_ns);
	else
		l->v.utilization = 0;
}

/* ---- incidents ---- */

static struct sw_incident_view *incident_at(const struct sw_store *s, size_t i)
{
	size_t cap = s->max_incidents;

	return &s->ring[(s->rhead + cap - 1 - i) % cap];
}

static struct sw_incident_view *incident_find(struct sw_store *s, const struct sw_agent *a,
					      uint32_t pid, uint32_t tid, uint64_t start_ns)
{
	/* newest first: an update concerns a block that began moments ago */
	for (size_t i = 0; i < s->rcount; i++) {
		struct sw_incident_view *in = incident_at(s, i);

		if (in->pid == pid && in->tid == tid && in->start_ns == start_ns &&
		    strcmp(in->agent, a->v.id) == 0)
			return in;
	}
	return NULL;
}

static struct sw_incident_view *incident_insert(struct sw_store *s)
{
	struct sw_incident_view *in = &s->ring[s->rhead];

	if (s->rcount == s->max_incidents)
		s->ctr.incidents_dropped++; /* overwrites the oldest */
	else
		s->rcount++;
	s->rhead = (s->rhead + 1) % s->max_incidents;
	memset(in, 0, sizeof(*in));
	return in;
}

static void incident_apply(struct sw_store *s, struct sw_agent *a,
			   const Stallwatch__V1__Incident *pi, uint64_t now_ns)
{
	struct sw_incident_facts f = {0};
	struct sw_incident_view *in;
	struct sw_verdict verdict;
	const char *runtime = norm_runtime(pi->runtime);
	struct sw_proc *p = proc_find(s, a, pi->pid);
	struct sw_loop *l;
	size_t pat;

	(void)now_ns;
	if (p && p->runtime[0])
		runtime = norm_runtime(p->runtime);
	in = incident_find(s, a, pi->pid, pi->tid, pi->start_ns);
	if (in && !in->ongoing)
		return; /* already final: a late copy must not count it twice */
	if (!in) {
		in = incident_insert(s);
		copy_str(in->host, a->v.host, sizeof(in->host));
		copy_str(in->agent, a->v.id, sizeof(in->agent));
		in->pid = pi->pid;
		in->tid = pi->tid;
		in->start_ns = pi->start_ns;
		/* monotonic clocks of two hosts do not compare; wall time does.
		 * Without the agent's offset, date the block from our own clock. */
		if (a->mono_to_unix_ns)
			in->start_unix_ns = pi->start_ns + a->mono_to_unix_ns;
		else
			in->start_unix_ns = sw_realtime_ns() - pi->duration_ns;
	}
	copy_str(in->thread, pi->thread, sizeof(in->thread));
	copy_str(in->role, norm_role(pi->role), sizeof(in->role));
	copy_str(in->runtime, runtime, sizeof(in->runtime));
	copy_str(in->top_syscall, pi->top_syscall, sizeof(in->top_syscall));
	in->duration_ns = pi->duration_ns;
	in->ongoing = pi->ongoing;
	in->start_unknown = pi->start_unknown;
	in->oncpu_ns = pi->oncpu_ns;
	in->offcpu_ns = pi->offcpu_ns;
	in->runq_ns = pi->runq_ns;
	in->top_syscall_ns = pi->top_syscall_ns;

	/* the agent's own verdict is ignored: every agent version is judged by
	 * this collector's rules */
	f.runtime = in->runtime;
	f.duration_ns = in->duration_ns;
	f.ongoing = in->ongoing;
	f.oncpu_ns = in->oncpu_ns;
	f.offcpu_ns = in->offcpu_ns;
	f.runq_ns = in->runq_ns;
	f.top_syscall = in->top_syscall;
	f.top_syscall_ns = in->top_syscall_ns;
	sw_rules_classify(&f, &verdict);
	in->pattern = verdict.pattern;
	in->summary = verdict.summary;
	in->advice = verdict.advice;

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
	pat = sw_store__pattern_index(verdict.pattern);
	l->v.blocked[pat]++;
	l->v.blocked_ns[pat] += pi->duration_ns;
}

/* ---- batches ---- */

static void proc_mark_loops(struct sw_store *s, struct sw_agent *a, uint32_t pid, bool exited,
			    uint64_t now_ns)
{
	for (size_t j = 0; j < s->nloops; j++) {
		struct sw_loop *l = s->loops[j];

		if (l->agent != a || l->v.pid != pid)
			continue;
		if (exited) {
			if (!l->v.stale_since_ns)
				l->v.stale_since_ns = now_ns ? now_ns : 1;
			l->v.ongoing_ns = 0;
		} else {
			/* pid reuse or a late ProcessInfo: refresh labels */
			l->v.stale_since_ns = 0;
			loop_set_labels(s, l, l->v.runtime, l->v.role, NULL);
		}
	}
}

int sw_store__apply(struct sw_store *s, const char *id, const Stallwatch__V1__Batch *b,
		    uint64_t now_ns)
{
	struct sw_agent *a;
	int err = 0;

	pthread_mutex_lock(&s->mu);
	a = agent_find(s, id);
	if (!a) {
		err = -ENOENT;
		goto cleanup;
	}
	s->ctr.batches++;
	if (b->hello) {
		if (b->hello->hostname && b->hello->hostname[0])
			copy_str(a->v.host, b->hello->hostname, sizeof(a->v.host));
		copy_str(a->v.version, b->hello->version, sizeof(a->v.version));
		if (b->hello->mono_to_unix_ns)
			a->mono_to_unix_ns = b->hello->mono_to_unix_ns;
	}
	/* seq 0 is proto3's "unset": an agent that does not number batches */
	if (b->seq) {
		if (a->have_seq && b->seq > a->last_seq + 1)
			s->ctr.batches_gap += b->seq - a->last_seq - 1;
		a->last_seq = b->seq;
		a->have_seq = true;
	}

	for (size_t i = 0; i < b->n_processes; i++) {
		const Stallwatch__V1__ProcessInfo *pi = b->processes[i];
		struct sw_proc *p = proc_find(s, a, pi->pid);

		if (!p && pi->exited) {
			/* no ProcessInfo kept (collector restarted, cap): its
			 * loops still go stale below */
			proc_mark_loops(s, a, pi->pid, true, now_ns);
			continue;
		}
		if (!p) {
			if (s->nprocs >= s->max_loops || !(p = calloc(1, sizeof(*p)))) {
				s->ctr.series_dropped++;
				continue;
			}
			p->agent = a;
			p->pid = pi->pid;
			s->procs[s->nprocs++] = p;
		}
		if (pi->runtime && pi->runtime[0])
			copy_str(p->runtime, norm_runtime(pi->runtime), sizeof(p->runtime));
		if (pi->comm && pi->comm[0])
			copy_str(p->comm, pi->comm, sizeof(p->comm));
		p->stale_since_ns = pi->exited ? (now_ns ? now_ns : 1) : 0;
		proc_mark_loops(s, a, pi->pid, pi->exited, now_ns);
	}

	for (size_t i = 0; i < b->n_loops; i++) {
		const Stallwatch__V1__LoopSummary *ls = b->loops[i];
		struct sw_loop *l =
		    loop_get(s, a, ls->pid, ls->tid, ls->runtime, ls->role, ls->thread);

		if (l)
			loop_apply(s, l, ls);
	}

	for (size_t i = 0; i < b->n_incidents; i++)
		incident_apply(s, a, b->incidents[i], now_ns);

	if (b->health) {
		/* cumulative on the agent side: the latest is the truth */
		a->v.have_health = true;
		for (size_t i = 0; i < b->health->n_counters; i++) {
			const Stallwatch__V1__AgentHealth__CountersEntry *e = b->health->counters[i];
			int id = e ? sw_health_id(e->key) : -1;

			if (id >= 0)
				a->v.health[id] = e->value;
		}
	}
cleanup:
	pthread_mutex_unlock(&s->mu);
	return err;
}

static bool expired(uint64_t since, uint64_t now, uint64_t period)
{
	return since && now >= since && now - since >= period;
}

void sw_store__tick(struct sw_store *s, uint64_t now_ns)
{
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->nloops;) {
		struct sw_loop *l = s->loops[i];

		if (expired(l->v.stale_since_ns, now_ns, s->expire_ns) ||
		    expired(l->agent->down_since_ns, now_ns, s->expire_ns))
			loop_remove_at(s, i); /* swaps the last one into i */
		else
			i++;
	}
	for (size_t i = 0; i < s->nprocs;) {
		struct sw_proc *p = s->procs[i];

		if (expired(p->stale_since_ns, now_ns, s->expire_ns) ||
		    expired(p->agent->down_since_ns, now_ns, s->expire_ns)) {
			s->procs[i] = s->procs[--s->nprocs];
			free(p);
		} else {
			i++;
		}
	}
	/* after its loops and processes: nothing points at it any more */
	for (size_t i = 0; i < s->nagents;) {
		struct sw_agent *a = s->agents[i];

		if (!a->conns && expired(a->down_since_ns, now_ns, s->expire_ns)) {
			s->agents[i] = s->agents[--s->nagents];
			free(a);
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&s->mu);
}

size_t sw_store__nloops(const struct sw_store *s) { return s->nloops; }

const struct sw_loop_view *sw_store__loop(const struct sw_store *s, size_t i)
{
	return i < s->nloops ? &s->loops[i]->v : NULL;
}

size_t sw_store__nagents(const struct sw_store *s) { return s->nagents; }

const struct sw_agent_view *sw_store__agent(const struct sw_store *s, size_t i)
{
	return i < s->nagents ? &s->agents[i]->v : NULL;
}

size_t sw_store__nincidents(const struct sw_store *s) { return s->rcount; }

const struct sw_incident_view *sw_store__incident(const struct sw_store *s, size_t i)
{
	return i < s->rcount ? incident_at(s, i) : NULL;
}

void sw_store__counters(const struct sw_store *s, struct sw_store_counters *c) { *c = s->ctr; }
