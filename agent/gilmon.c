// SPDX-License-Identifier: Apache-2.0
/*
 * gil's user side (agent/gilmon.h).
 *
 * Two sources, merged per interval:
 *  - BPF (bpf/gilmon.bpf.c): per thread, cumulative futex waits on the GIL,
 *    their ends (acquisitions, drop requests) and, per holder tstate, what
 *    its holding cost the others. The agent keeps the last snapshot of each
 *    and reports deltas; a wait in progress counts up to now.
 *  - A sampler thread: at --gil-hz it reads the GIL's (locked, last_holder,
 *    switch_number, interval) of every process with one process_vm_readv
 *    and credits the holder, named through its PyThreadState; every
 *    SW_GIL_STACK_EVERY-th sample also reads the holder's Python stack
 *    (agent/runtime/pyframes.c). Reading memory never stops the target.
 *    It has its own target reader and frame reader: nothing it uses is
 *    shared with the main thread but the per-process tallies, under a
 *    mutex the main thread takes once per interval (and per incident).
 */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpf/gilmon.h"
#include "clock.h"
#include "gilmon.h"
#include "gilmon.skel.h"
#include "log.h"
#include "runtime/pyframes.h"
#include "runtime/python.h"
#include "stacks.h"
#include "target_io.h"

/* Distinct holder stacks kept per thread; the least seen gives way. */
#define GSTACKS 4
/* A stack not seen for this long is forgotten (blame looks back less). */
#define GSTACK_KEEP_NS 30000000000ull
#define MAX_PY_THREADS 1024
#define SW_GIL_MIN_INTERVAL_NS 100000000ull

struct gstack {
	uint64_t hash;
	uint32_t count;	  /* this interval */
	uint32_t total;	  /* since kept */
	uint64_t last_ns; /* last seen */
	uint64_t first_ns;
	uint32_t n;
	char f[SW_GIL_STACK_FRAMES][SW_GIL_FRAME_LEN];
};

struct gthr {
	uint32_t tid;
	char name[16]; /* its comm when last read: a thread gone keeps it */
	uint32_t hold; /* holder samples this interval */
	struct gstack *st[GSTACKS];
	/* last BPF snapshot, cumulative, and the wait in progress it had */
	struct sw_gil_thread prev;
	uint64_t prev_inflight;
	bool have_prev;
	/* per-holder costs, from the tstate entries of gil_holders */
	struct sw_gil_holder hprev;
	uint64_t tstate;
	bool seen; /* in this interval's BPF walk or samples */
	uint64_t d_wait, d_acq, d_drops, d_switch_ns, d_forced, d_caused;
};

struct gproc {
	uint32_t pid;
	char comm[16];
	char version[32];
	const struct sw_py_layout *L;
	struct sw_proc_info info;
	uint64_t runtime;
	uint64_t gil; /* 0: not found yet (interpreter starting) */
	bool in_bpf;
	/* sampler tallies, under g->mu */
	uint64_t samples, held;
	uint64_t interval_us, switch_number, switch_first;
	bool have_switch;
	uint64_t holder_unknown;
	struct gthr *th;
	size_t n_th, cap_th;
	/* holder tstates whose thread is known: tstate -> tid */
	struct {
		uint64_t tstate;
		uint32_t tid;
	} ts[64];
	unsigned n_ts, ts_next;
	uint64_t last_summary_ns;
};

struct sw_gil {
	struct gilmon_bpf *skel;
	int threads_fd;
	uint32_t hz;
	pthread_mutex_t mu;
	pthread_t sampler;
	bool sampler_on;
	volatile bool stop;
	struct gproc **procs;
	size_t n_procs;
	/* the sampler's own readers */
	struct sw_tio *stio;
	struct sw_pyframes *spf;
	struct sw_py_stack *sstack;
	/* the main thread's */
	struct sw_pyframes *mpf;
	uint64_t failed_reads, holder_unknown, samples_late;
	struct sw_gil_thread_rec *recs;
	struct sw_thread *thr; /* scratch: ~7 KiB */
};

/* ---------------- per-process state ---------------- */

static struct gproc *find(struct sw_gil *g, uint32_t pid)
{
	for (size_t i = 0; i < g->n_procs; i++)
		if (g->procs[i]->pid == pid)
			return g->procs[i];
	return NULL;
}

static struct gthr *thr_get(struct gproc *p, uint32_t tid)
{
	for (size_t i = 0; i < p->n_th; i++)
		if (p->th[i].tid == tid)
			return &p->th[i];
	if (p->n_th == p->cap_th) {
		size_t cap = p->cap_th ? p->cap_th * 2 : 8;
		struct gthr *n;

		if (cap > MAX_PY_THREADS)
			return NULL;
		n = realloc(p->th, cap * sizeof(*n));
		if (!n)
			return NULL;
		p->th = n;
		p->cap_th = cap;
	}
	memset(&p->th[p->n_th], 0, sizeof(p->th[0]));
	p->th[p->n_th].tid = tid;
	return &p->th[p->n_th++];
}

static void thr_free(struct gthr *t)
{
	for (int i = 0; i < GSTACKS; i++)
		free(t->st[i]);
}

static void proc_free(struct gproc *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_th; i++)
		thr_free(&p->th[i]);
	free(p->th);
	free(p);
}

static void remember_tstate(struct gproc *p, uint64_t tstate, uint32_t tid)
{
	for (unsigned i = 0; i < p->n_ts; i++)
		if (p->ts[i].tstate == tstate) {
			p->ts[i].tid = tid;
			return;
		}
	if (p->n_ts < sizeof(p->ts) / sizeof(p->ts[0])) {
		p->ts[p->n_ts].tstate = tstate;
		p->ts[p->n_ts++].tid = tid;
		return;
	}
	p->ts[p->ts_next].tstate = tstate;
	p->ts[p->ts_next].tid = tid;
	p->ts_next = (p->ts_next + 1) % p->n_ts;
}

static uint32_t known_tstate(const struct gproc *p, uint64_t tstate)
{
	for (unsigned i = 0; i < p->n_ts; i++)
		if (p->ts[i].tstate == tstate)
			return p->ts[i].tid;
	return 0;
}

/* ---------------- the sampler ---------------- */

static uint64_t hash_stack(const struct sw_py_stack *s, uint32_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (uint32_t i = 0; i < n; i++) {
		for (const char *c = s->f[i].func; *c; c++)
			h = (h ^ (uint8_t)*c) * 1099511628211ull;
		for (const char *c = s->f[i].file; *c; c++)
			h = (h ^ (uint8_t)*c) * 1099511628211ull;
		h = (h ^ s->f[i].line) * 1099511628211ull;
	}
	return h ? h : 1;
}

static void add_stack(struct gthr *t, const struct sw_py_stack *s, uint64_t now)
{
	uint32_t n = s->n < SW_GIL_STACK_FRAMES ? s->n : SW_GIL_STACK_FRAMES;
	uint64_t h = hash_stack(s, n);
	struct gstack *slot = NULL;
	int victim = 0;

	for (int i = 0; i < GSTACKS; i++) {
		if (t->st[i] && t->st[i]->hash == h) {
			t->st[i]->count++;
			t->st[i]->total++;
			t->st[i]->last_ns = now;
			return;
		}
	}
	for (int i = 0; i < GSTACKS; i++) {
		if (!t->st[i]) {
			victim = i;
			break;
		}
		if (t->st[i]->total < t->st[victim]->total)
			victim = i;
	}
	if (!t->st[victim]) {
		t->st[victim] = calloc(1, sizeof(struct gstack));
		if (!t->st[victim])
			return;
	}
	slot = t->st[victim];
	slot->hash = h;
	slot->count = slot->total = 1;
	slot->first_ns = slot->last_ns = now;
	slot->n = n;
	for (uint32_t i = 0; i < n; i++)
		sw_py_frame_format(&s->f[i], slot->f[i], sizeof(slot->f[i]));
}

static void sample_proc(struct sw_gil *g, struct gproc *p, uint64_t now, bool stack)
{
	const struct sw_py_gil_layout *G = &p->L->gil;
	uint8_t buf[64];
	uint64_t holder = 0;
	int32_t locked = 0;
	bool changed;
	uint32_t tid;
	size_t len = (size_t)G->switch_number + 8;
	struct gthr *t;

	if (len > sizeof(buf) || sw_tio__read_mem(g->stio, (pid_t)p->pid, p->gil, buf, len)) {
		g->failed_reads++;
		return;
	}
	p->samples++;
	memcpy(&p->interval_us, buf + G->interval, 8);
	memcpy(&holder, buf + G->last_holder, 8);
	memcpy(&locked, buf + G->locked, 4);
	memcpy(&p->switch_number, buf + G->switch_number, 8);
	if (!p->have_switch) {
		p->switch_first = p->switch_number;
		p->have_switch = true;
	}
	if (locked != 1 || !holder)
		return;
	p->held++;
	/* a thread that ended may have left its tstate's address to a new
	 * one: the cache holds from one change of the thread list to the next
	 * (one 8-byte read a sample; suite run 5 credited a new thread's two
	 * seconds of GIL to the thread before it at the same address) */
	if (sw_pyframes__sync_threads(g->spf, p->pid, &changed) == 0 && changed)
		p->n_ts = p->ts_next = 0;
	tid = known_tstate(p, holder);
	if (!tid) {
		if (sw_pyframes__tid_of(g->spf, p->pid, holder, &tid)) {
			p->holder_unknown++;
			return;
		}
		remember_tstate(p, holder, tid);
	}
	t = thr_get(p, tid);
	if (!t)
		return;
	t->hold++;
	t->tstate = holder;
	if (stack && sw_pyframes__read(g->spf, p->pid, tid, g->sstack) == 0 && g->sstack->n)
		add_stack(t, g->sstack, now);
}

static void *sampler_main(void *arg)
{
	struct sw_gil *g = arg;
	uint64_t period = 1000000000ull / g->hz, n = 0;
	unsigned int seed = (unsigned int)sw_mono_ns();
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!g->stop) {
		uint64_t now;

		/* a uniformly jittered period (0.5-1.5x): a fixed one would
		 * alias with the switch interval (5 ms) and credit the GIL to
		 * whichever thread holds it in phase with the sampler */
		next.tv_nsec += (long)(period / 2 + (uint64_t)rand_r(&seed) % (period + 1));
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		now = sw_mono_ns();
		/* late by more than a period (the agent was descheduled): start
		 * again from now rather than catch up in a burst, and count it:
		 * a sampler that runs only when a CPU frees up may see the GIL
		 * in a state correlated with that */
		if (now > (uint64_t)next.tv_sec * 1000000000ull + (uint64_t)next.tv_nsec + period) {
			clock_gettime(CLOCK_MONOTONIC, &next);
			__atomic_fetch_add(&g->samples_late, 1, __ATOMIC_RELAXED);
		}
		n++;
		pthread_mutex_lock(&g->mu);
		for (size_t i = 0; i < g->n_procs; i++)
			if (g->procs[i]->gil)
				sample_proc(g, g->procs[i], now, n % SW_GIL_STACK_EVERY == 0);
		pthread_mutex_unlock(&g->mu);
	}
	return NULL;
}

/* ---------------- setup ---------------- */

struct sw_gil *sw_gil__new(const struct sw_gil_opts *o)
{
	struct sw_gil *g = calloc(1, sizeof(*g));
	struct bpf_program *p;
	int err;

	if (!g)
		return NULL;
	pthread_mutex_init(&g->mu, NULL);
	g->threads_fd = o->threads_fd;
	g->hz = o->sample_hz ? o->sample_hz : SW_GIL_DEFAULT_HZ;
	g->stio = sw_tio__new_proc("/proc");
	g->spf = g->stio ? sw_pyframes__new(g->stio) : NULL;
	g->mpf = sw_pyframes__new(sw_tio_default());
	g->sstack = calloc(1, sizeof(*g->sstack));
	g->recs = calloc(SW_GIL_MAX_THREADS, sizeof(*g->recs));
	g->thr = calloc(1, sizeof(*g->thr));
	if (!g->spf || !g->mpf || !g->sstack || !g->recs || !g->thr) {
		err = -ENOMEM;
		goto fail;
	}
	g->skel = gilmon_bpf__open();
	if (!g->skel) {
		err = -errno;
		goto fail;
	}
	bpf_object__for_each_program(p, g->skel->obj)
	{
		const char *sec = bpf_program__section_name(p);
		bool raw = !strcmp(sec, "tp_btf/sys_enter") || !strcmp(sec, "tp_btf/sys_exit");
		bool classic = !strncmp(sec, "tracepoint/syscalls/", 20);

		/* one of the two syscall variants; the rest always */
		if (raw || classic)
			bpf_program__set_autoload(p, raw != o->classic_tp);
	}
	err = bpf_map__reuse_fd(g->skel->maps.threads, o->threads_fd);
	if (!err)
		err = bpf_map__reuse_fd(g->skel->maps.tid_hint, o->tid_hint_fd);
	if (!err)
		err = gilmon_bpf__load(g->skel);
	if (!err)
		err = gilmon_bpf__attach(g->skel);
	if (err)
		goto fail;
	err = -pthread_create(&g->sampler, NULL, sampler_main, g);
	if (err)
		goto fail;
	g->sampler_on = true;
	return g;
fail:
	sw_gil__free(g);
	errno = -err;
	return NULL;
}

void sw_gil__free(struct sw_gil *g)
{
	if (!g)
		return;
	if (g->sampler_on) {
		g->stop = true;
		pthread_join(g->sampler, NULL);
	}
	gilmon_bpf__destroy(g->skel);
	for (size_t i = 0; i < g->n_procs; i++)
		proc_free(g->procs[i]);
	free(g->procs);
	sw_pyframes__free(g->spf);
	sw_pyframes__free(g->mpf);
	sw_tio__free(g->stio);
	free(g->sstack);
	free(g->recs);
	free(g->thr);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

static void hint(struct sw_gil *g, uint32_t pid, int delta)
{
	uint32_t slot = pid & (SW_GIL_PID_SLOTS - 1), n = 0;
	int fd = bpf_map__fd(g->skel->maps.gil_pid_hint);

	if (bpf_map_lookup_elem(fd, &slot, &n))
		n = 0;
	if (delta < 0 && !n)
		return;
	n = (uint32_t)((int)n + delta);
	bpf_map_update_elem(fd, &slot, &n, BPF_ANY);
}

/* What BPF is told of a GIL at addr: its layout row's offsets. */
static void gil_proc_of(const struct sw_py_layout *L, uint64_t addr, struct sw_gil_proc *bp)
{
	bp->gil = addr;
	bp->last_holder = (uint32_t)L->gil.last_holder;
	bp->locked = (uint32_t)L->gil.locked;
	bp->switch_number = (uint32_t)L->gil.switch_number;
	bp->cond = (uint32_t)L->gil.cond;
	bp->mutex = (uint32_t)L->gil.mutex;
	bp->switch_cond = (uint32_t)L->gil.switch_cond;
	bp->switch_mutex = (uint32_t)L->gil.switch_mutex;
	bp->size = (uint32_t)L->gil.size;
}

/* Where the GIL is, once the interpreter has one: BPF starts counting. */
static int locate(struct sw_gil *g, struct gproc *p)
{
	struct sw_py_gil_state st;
	struct sw_gil_proc bp = {};
	int err;

	if (p->gil)
		return 0;
	if (!p->runtime) {
		err = sw_python_runtime_addr(sw_tio_default(), &p->info, &p->runtime);
		if (err)
			return err;
	}
	err = sw_python_gil(sw_tio_default(), (pid_t)p->pid, p->L, p->runtime, &st);
	if (err)
		return err;
	if (st.locked < 0)
		return -EAGAIN; /* created at the first thread start (3.9-) */
	if (!sw_gil_window_ok((uint32_t)p->L->gil.last_holder, (uint32_t)p->L->gil.locked,
			      (uint32_t)p->L->gil.switch_number))
		return -EINVAL; /* a layout row BPF cannot read in one go */
	gil_proc_of(p->L, st.addr, &bp);
	err = bpf_map_update_elem(bpf_map__fd(g->skel->maps.gil_procs), &p->pid, &bp, BPF_ANY);
	if (err)
		return -errno;
	if (!p->in_bpf)
		hint(g, p->pid, +1);
	p->in_bpf = true;
	pthread_mutex_lock(&g->mu);
	p->gil = st.addr;
	pthread_mutex_unlock(&g->mu);
	/* the first interval runs from here: BPF counts from now on */
	p->last_summary_ns = sw_mono_ns();
	return 0;
}

int sw_gil__add_process(struct sw_gil *g, const struct sw_proc_info *pi, char *note, size_t len)
{
	const struct sw_py_layout *L = sw_python_layout_of(pi);
	struct gproc *p, **n;
	int err;

	note[0] = '\0';
	if (!L) {
		sw_python_layout_error(pi, note, len);
		return -ENOTSUP;
	}
	if (find(g, (uint32_t)pi->pid))
		return 0;
	{
		uint64_t rt;
		bool ft = false;

		/* a free-threaded build renamed (no "t" in its file name) */
		if (!sw_python_runtime_addr(sw_tio_default(), pi, &rt) &&
		    !sw_python_free_threaded(sw_tio_default(), pi->pid, L, rt, &ft) && ft) {
			snprintf(note, len,
				 "pid %d: a free-threaded CPython build (Py_GIL_DISABLED): it has "
				 "no GIL to measure",
				 pi->pid);
			return -ENOTSUP;
		}
	}
	p = calloc(1, sizeof(*p));
	n = realloc(g->procs, (g->n_procs + 1) * sizeof(*n));
	if (!p || !n) {
		free(p);
		if (n)
			g->procs = n;
		snprintf(note, len, "out of memory");
		return -ENOMEM;
	}
	g->procs = n;
	p->pid = (uint32_t)pi->pid;
	p->L = L;
	p->info = *pi;
	memcpy(p->comm, pi->comm, sizeof(p->comm));
	snprintf(p->version, sizeof(p->version), "%s", pi->version);
	err = sw_pyframes__add_process(g->mpf, pi);
	if (!err) {
		/* the sampler uses its reader under the mutex */
		pthread_mutex_lock(&g->mu);
		err = sw_pyframes__add_process(g->spf, pi);
		pthread_mutex_unlock(&g->mu);
	}
	if (err) {
		const char *why = sw_pyframes__note(g->mpf, p->pid);

		snprintf(note, len, "%s", why ? why : strerror(-err));
		sw_pyframes__remove_process(g->mpf, p->pid);
		pthread_mutex_lock(&g->mu);
		sw_pyframes__remove_process(g->spf, p->pid);
		pthread_mutex_unlock(&g->mu);
		free(p);
		return err;
	}
	pthread_mutex_lock(&g->mu);
	g->procs[g->n_procs++] = p;
	pthread_mutex_unlock(&g->mu);
	err = locate(g, p);
	if (err && err != -EAGAIN)
		sw_dbg("pid %u: GIL not found yet: %s", p->pid, strerror(-err));
	return 0;
}

/* Every BPF entry of a process that is gone (or exec'd). */
static void delete_bpf_of(struct sw_gil *g, uint32_t pid)
{
	int tfd = bpf_map__fd(g->skel->maps.gil_threads);
	int hfd = bpf_map__fd(g->skel->maps.gil_holders);
	int sfd = bpf_map__fd(g->skel->maps.gil_tstates);
	struct sw_gil_holder_key hk, hn;
	struct sw_gil_tstate_key sk, sn;
	struct sw_gil_thread v;
	uint32_t k, nk;
	int err;

	/* deleting the current key restarts nothing: the next key is taken
	 * before the delete */
	for (err = bpf_map_get_next_key(tfd, NULL, &nk); !err;) {
		k = nk;
		err = bpf_map_get_next_key(tfd, &k, &nk);
		if (!bpf_map_lookup_elem(tfd, &k, &v) && v.pid == pid)
			bpf_map_delete_elem(tfd, &k);
	}
	for (err = bpf_map_get_next_key(hfd, NULL, &hn); !err;) {
		hk = hn;
		err = bpf_map_get_next_key(hfd, &hk, &hn);
		if (hk.pid == pid)
			bpf_map_delete_elem(hfd, &hk);
	}
	for (err = bpf_map_get_next_key(sfd, NULL, &sn); !err;) {
		sk = sn;
		err = bpf_map_get_next_key(sfd, &sk, &sn);
		if (sk.pid == pid)
			bpf_map_delete_elem(sfd, &sk);
	}
}

void sw_gil__remove_process(struct sw_gil *g, uint32_t pid)
{
	struct gproc *p = NULL;

	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < g->n_procs; i++)
		if (g->procs[i]->pid == pid) {
			p = g->procs[i];
			g->procs[i] = g->procs[--g->n_procs];
			break;
		}
	pthread_mutex_unlock(&g->mu);
	if (!p)
		return;
	if (p->in_bpf) {
		bpf_map_delete_elem(bpf_map__fd(g->skel->maps.gil_procs), &pid);
		hint(g, pid, -1);
	}
	delete_bpf_of(g, pid);
	/* the sampler is not inside this process's readers any more */
	sw_pyframes__remove_process(g->mpf, pid);
	pthread_mutex_lock(&g->mu);
	sw_pyframes__remove_process(g->spf, pid);
	pthread_mutex_unlock(&g->mu);
	proc_free(p);
}

bool sw_gil__measures(struct sw_gil *g, uint32_t pid)
{
	return g && find(g, pid);
}

/* ---------------- the interval ---------------- */

static uint64_t inflight(const struct sw_gil_thread *t, uint64_t now)
{
	if (!t->enter_ns || now <= t->enter_ns)
		return 0;
	return now - t->enter_ns;
}

static uint64_t delta(uint64_t cur, uint64_t prev)
{
	return cur > prev ? cur - prev : 0;
}

/* BPF's per-thread counters of p since the last interval; under g->mu. */
static void take_bpf(struct sw_gil *g, struct gproc *p, uint64_t now)
{
	int tfd = bpf_map__fd(g->skel->maps.gil_threads);
	int hfd = bpf_map__fd(g->skel->maps.gil_holders);
	struct sw_gil_holder_key hk, hn;
	struct sw_gil_holder hv;
	struct sw_gil_thread v;
	uint32_t k, nk;
	int err;

	for (err = bpf_map_get_next_key(tfd, NULL, &nk); !err;
	     err = bpf_map_get_next_key(tfd, &k, &nk)) {
		struct gthr *t;
		uint64_t in;

		k = nk;
		if (bpf_map_lookup_elem(tfd, &k, &v)) {
			g->failed_reads++;
			continue;
		}
		if (v.pid != p->pid)
			continue;
		t = thr_get(p, v.tid);
		if (!t)
			continue;
		in = inflight(&v, now);
		if (t->have_prev) {
			t->d_wait += delta(v.wait_ns + in, t->prev.wait_ns + t->prev_inflight);
			t->d_acq += delta(v.acquisitions, t->prev.acquisitions);
			t->d_drops += delta(v.drop_requests, t->prev.drop_requests);
			t->d_switch_ns += delta(v.switch_wait_ns, t->prev.switch_wait_ns);
		} else {
			/* first seen: all of it is new (the entry is created at
			 * the thread's first GIL wait since attach) */
			t->d_wait += v.wait_ns + in;
			t->d_acq += v.acquisitions;
			t->d_drops += v.drop_requests;
			t->d_switch_ns += v.switch_wait_ns;
		}
		t->prev = v;
		t->prev_inflight = in;
		t->have_prev = true;
		t->seen = true;
	}
	for (err = bpf_map_get_next_key(hfd, NULL, &hn); !err;) {
		struct gthr *t = NULL;
		uint32_t tid;

		hk = hn;
		/* the next key first: this one may be deleted below */
		err = bpf_map_get_next_key(hfd, &hk, &hn);
		if (hk.pid != p->pid)
			continue;
		if (bpf_map_lookup_elem(hfd, &hk, &hv)) {
			g->failed_reads++;
			continue;
		}
		tid = known_tstate(p, hk.tstate);
		if (!tid && !sw_pyframes__tid_of(g->mpf, p->pid, hk.tstate, &tid))
			remember_tstate(p, hk.tstate, tid);
		if (!tid) {
			/* a thread gone (its tstate freed): nothing to name */
			bpf_map_delete_elem(hfd, &hk);
			continue;
		}
		t = thr_get(p, tid);
		if (!t)
			continue;
		if (t->tstate != hk.tstate) {
			/* a tstate address reused by a new thread */
			memset(&t->hprev, 0, sizeof(t->hprev));
			t->tstate = hk.tstate;
		}
		t->d_forced += delta(hv.forced_switches, t->hprev.forced_switches);
		t->d_caused += delta(hv.caused_wait_ns, t->hprev.caused_wait_ns);
		t->hprev = hv;
		t->seen = true;
	}
}

/* A loop thread loopmon tracks (only the presence of its entry matters). */
static bool is_loop(struct sw_gil *g, uint32_t tid)
{
	return bpf_map_lookup_elem(g->threads_fd, &tid, g->thr) == 0;
}

static const struct gstack *top_stack(const struct gthr *t, uint64_t since, bool interval)
{
	const struct gstack *best = NULL;

	for (int i = 0; i < GSTACKS; i++) {
		const struct gstack *s = t->st[i];
		uint32_t c;

		if (!s || s->last_ns < since)
			continue;
		c = interval ? s->count : s->total;
		if (!c)
			continue;
		if (!best || c > (interval ? best->count : best->total))
			best = s;
	}
	return best;
}

static void copy_frames(const struct gstack *s, uint32_t *n, char (*out)[SW_GIL_FRAME_LEN])
{
	*n = s ? s->n : 0;
	for (uint32_t i = 0; i < *n; i++)
		memcpy(out[i], s->f[i], SW_GIL_FRAME_LEN);
}

static int by_activity(const void *a, const void *b)
{
	const struct sw_gil_thread_rec *x = a, *y = b;
	uint64_t ax = x->wait_ns + x->hold_ns, ay = y->wait_ns + y->hold_ns;

	return ax < ay ? 1 : ax > ay ? -1 : (x->tid > y->tid) - (x->tid < y->tid);
}

static bool task_alive(uint32_t pid, uint32_t tid)
{
	char rel[64], buf[8];

	snprintf(rel, sizeof(rel), "%u/task/%u/comm", pid, tid);
	return sw_tio__read_file(sw_tio_default(), rel, buf, sizeof(buf)) == 0;
}

static void summarize_proc(struct sw_gil *g, struct gproc *p, uint64_t now, struct sw_report *rep)
{
	struct sw_gil_rec rec = {};
	uint64_t start;
	uint32_t tids[256];
	size_t n_tids = 0, n = 0, all = 0;
	int tfd = bpf_map__fd(g->skel->maps.gil_threads);

	if (!p->gil && locate(g, p))
		return; /* no GIL yet: nothing to say */
	start = p->last_summary_ns ? p->last_summary_ns : now;
	/* a few ms (the agent's last summary right after one) say nothing:
	 * one wait in progress would read as a 100 % wait share. They stay
	 * for the next interval; at exit, that is at most this much lost. */
	if (now - start < SW_GIL_MIN_INTERVAL_NS)
		return;
	/* every Python thread gets a line, idle ones too */
	if (!sw_pyframes__tids(g->mpf, p->pid, tids, sizeof(tids) / sizeof(tids[0]), &n_tids))
		for (size_t i = 0; i < n_tids; i++) {
			struct gthr *t;

			pthread_mutex_lock(&g->mu);
			t = thr_get(p, tids[i]);
			if (t)
				t->seen = true;
			pthread_mutex_unlock(&g->mu);
		}
	/* thr_get may move p->th: BPF deltas are taken under the mutex too */
	pthread_mutex_lock(&g->mu);
	take_bpf(g, p, now);
	rec.samples = p->samples;
	rec.held_samples = p->held;
	rec.switch_interval_us = p->interval_us;
	rec.switches = p->have_switch ? p->switch_number - p->switch_first : 0;
	g->holder_unknown += p->holder_unknown;
	p->holder_unknown = 0;
	p->samples = p->held = 0;
	if (p->have_switch)
		p->switch_first = p->switch_number;
	for (size_t i = 0; i < p->n_th; i++) {
		struct gthr *t = &p->th[i];
		struct sw_gil_thread_rec *r;

		if (!t->seen && !t->hold)
			continue;
		all++;
		if (n < SW_GIL_MAX_THREADS) {
			r = &g->recs[n++];
			memset(r, 0, offsetof(struct sw_gil_thread_rec, frames));
			r->tid = t->tid;
			sw_thread_comm((pid_t)p->pid, (pid_t)t->tid, r->thread, sizeof(r->thread));
			if (r->thread[0])
				memcpy(t->name, r->thread, sizeof(t->name));
			else
				memcpy(r->thread, t->name, sizeof(r->thread));
			r->wait_ns = t->d_wait;
			r->hold_samples = t->hold;
			/* the share of samples times the interval: a sampler
			 * that fell behind (the agent descheduled) took fewer
			 * samples, not shorter holds */
			r->hold_ns = rec.samples ? (uint64_t)((double)t->hold / (double)rec.samples *
							      (double)(now - start))
						 : 0;
			r->acquisitions = t->d_acq;
			r->drop_requests = t->d_drops;
			r->forced_switches = t->d_forced;
			r->switch_wait_ns = t->d_switch_ns;
			r->caused_wait_ns = t->d_caused;
			copy_frames(top_stack(t, 0, true), &r->n_frames, r->frames);
		}
		t->hold = 0;
		t->d_wait = t->d_acq = t->d_drops = t->d_forced = t->d_switch_ns = t->d_caused = 0;
		t->seen = false;
		for (int k = 0; k < GSTACKS; k++)
			if (t->st[k]) {
				t->st[k]->count = 0;
				if (now > t->st[k]->last_ns + GSTACK_KEEP_NS) {
					free(t->st[k]);
					t->st[k] = NULL;
				}
			}
	}
	/* threads that are gone: their last numbers were just reported */
	for (size_t i = 0; i < p->n_th;) {
		if (!task_alive(p->pid, p->th[i].tid)) {
			bpf_map_delete_elem(tfd, &p->th[i].tid);
			thr_free(&p->th[i]);
			p->th[i] = p->th[--p->n_th];
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&g->mu);

	for (size_t i = 0; i < n; i++)
		g->recs[i].loop = is_loop(g, g->recs[i].tid);
	qsort(g->recs, n, sizeof(g->recs[0]), by_activity);
	rec.pid = p->pid;
	memcpy(rec.comm, p->comm, sizeof(rec.comm));
	rec.version = p->version[0] ? p->version : NULL;
	rec.ts_ns = now;
	rec.interval_ns = now - start;
	rec.threads = g->recs;
	rec.n_threads = (uint32_t)n;
	rec.threads_omitted = (uint32_t)(all - n);
	p->last_summary_ns = now;
	if (!rec.interval_ns)
		return;
	sw_gil_judge(&rec);
	sw_report__gil(rep, &rec);
}

void sw_gil__summarize(struct sw_gil *g, uint64_t now, struct sw_report *rep)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_procs; i++)
		summarize_proc(g, g->procs[i], now, rep);
}

int sw_gil__blame(struct sw_gil *g, uint32_t pid, uint64_t wait_ns, uint32_t drops,
		  uint64_t holder_tstate, uint64_t start_ns, uint64_t end_ns,
		  struct sw_gil_blame *out)
{
	struct gproc *p = g ? find(g, pid) : NULL;
	uint32_t tid = 0;
	bool changed;

	memset(out, 0, offsetof(struct sw_gil_blame, frames));
	if (!p || !wait_ns)
		return -ENOENT;
	(void)end_ns;
	out->wait_ns = wait_ns;
	out->drop_requests = drops;
	if (!holder_tstate)
		return 0;
	pthread_mutex_lock(&g->mu);
	tid = known_tstate(p, holder_tstate);
	pthread_mutex_unlock(&g->mu);
	if (!tid && (sw_pyframes__sync_threads(g->mpf, pid, &changed) ||
		     sw_pyframes__tid_of(g->mpf, pid, holder_tstate, &tid)))
		return 0;
	out->holder_tid = tid;
	sw_thread_comm((pid_t)pid, (pid_t)tid, out->holder, sizeof(out->holder));
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < p->n_th; i++)
		if (p->th[i].tid == tid) {
			/* what it held the GIL with in the block; a stack seen
			 * before it (a long C call has one Python stack) */
			const struct gstack *s = top_stack(&p->th[i], start_ns, false);

			if (!s)
				s = top_stack(&p->th[i], 0, false);
			copy_frames(s, &out->n_frames, out->frames);
			break;
		}
	pthread_mutex_unlock(&g->mu);
	return 0;
}

const char *sw_gil__futex_name(struct sw_gil *g, uint32_t pid, uint64_t addr)
{
	struct gproc *p = g ? find(g, pid) : NULL;
	struct sw_gil_proc bp;

	if (!p || !p->gil)
		return NULL;
	gil_proc_of(p->L, p->gil, &bp);
	switch (sw_gil_classify(&bp, addr)) {
	case SW_GILF_COND:
		return "the GIL (cond)";
	case SW_GILF_MUTEX:
		return "the GIL (mutex)";
	case SW_GILF_SWITCH_COND:
		return "the GIL (switch_cond)";
	case SW_GILF_SWITCH_MUTEX:
		return "the GIL (switch_mutex)";
	default:
		return NULL;
	}
}

void sw_gil__health(struct sw_gil *g, uint64_t *v)
{
	if (!g)
		return;
	/* cumulative, like every health counter */
	for (int i = 0; i < SW_HEALTH__COUNT; i++)
		v[i] += g->skel->bss->stats.v[i];
	pthread_mutex_lock(&g->mu);
	v[SW_HEALTH_failed_reads] += g->failed_reads;
	v[SW_HEALTH_gil_holder_unknown] += g->holder_unknown;
	v[SW_HEALTH_gil_samples_late] += __atomic_load_n(&g->samples_late, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&g->mu);
}
