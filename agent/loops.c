// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "clock.h"
#include "lastwords.h"
#include "log.h"
#include "loops.h"
#include "memgrowth.h"
#include "procrules.h"
#include "rules.h"
#include "runtime/runtime.h"
#include "stacks.h"
#include "syscalls.h"
#include "sysio.h"
#include "gilmon.h"
#include "utf8.h"

/* Ongoing incidents are refreshed this often: the issue asks for at least
 * once a second, and half a second keeps a dashboard's view fresh. */
#define ONGOING_REFRESH_NS 500000000ull
#define PROC_CHECK_NS 1000000000ull
/* How long a process found gone in /proc waits for its exit event (one
 * check, less the jitter of the tick). */
#define PROC_EXIT_GRACE_NS 900000000ull
/* While a thread looks blocked, its loop fd is re-checked this often: a
 * closed asyncio loop is not a blocked one. */
#define LOOP_CLOSED_CHECK_NS 2000000000ull
/*
 * A loop thread's BPF state gone (it exited) is dropped this long after, not
 * at once: BPF submits the THREAD_EXIT event, then deletes the state, and a
 * tick that reads the map between the two sees the state gone while the
 * event still waits in the ring. Dropped at once, the loop was no longer
 * there to close the block it died in (test_process's SIGKILL-while-blocked
 * lost its final incident so, once in two suite runs).
 */
#define LOOP_GONE_GRACE_NS 1000000000ull

struct proc {
	struct sw_proc_info info;
	uint64_t rss_bytes; /* last sample, 0: none */
	uint64_t gone_seen_ns; /* first found gone in /proc, waiting for its exit event */
	struct sw_memgrowth *mg;
};

struct loop {
	uint32_t pid, tid;
	int loop_fd;
	char comm[16];
	/* baseline of the last summary */
	uint64_t snap_ns, prev_iters, prev_idle, prev_max;
	uint64_t prev_off, prev_runq; /* cumulative off-CPU and run-queue time of busy stretches */
	uint32_t prev_hist[SW_HIST_NBUCKETS];
	uint64_t interval_incident_max;
	/* the block in progress, if any */
	uint64_t ongoing_start, ongoing_last;
	uint64_t gone_since; /* its BPF state found gone (LOOP_GONE_GRACE_NS), 0: not */
	uint64_t fd_checked_start, fd_checked_ns;
};

struct sw_loops {
	struct sw_thread_source src;
	struct sw_report *rep;
	uint64_t threshold_ns;
	bool diag;
	struct proc *procs;
	size_t n_procs;
	struct loop **loops;
	size_t n_loops, cap_loops;
	uint64_t last_proc_check;
	uint64_t lost_events;
	uint64_t failed_reads;
	struct sw_stacks *stacks; /* NULL: no stacks (--no-stacks, --no-diag) */
	FILE *folded;		  /* --folded */
	struct sw_diag_stacks dstacks; /* the incident's, valid until the next */
	struct sw_thread st;  /* scratch: 7 KiB, too big for the stack */
	struct sw_hist hist;  /* scratch for one interval */
	struct sw_exit_source exits;
	uint32_t mem_window_s;
	struct sw_last_words lw; /* scratch */
	char tail[SW_LW_WRITES * (SW_LW_WRITE_LEN + 8) + 1];
	struct sw_sysio *sysio;	      /* NULL: syscalls not collected */
	struct sw_gil *gil;	      /* NULL: GIL contention not measured */
	struct sw_gil_blame gblame;   /* scratch: one incident's GIL part */
	struct sw_diag_syscalls sys;  /* scratch: the incident being reported */
};

void sw_loops__set_exit_source(struct sw_loops *l, const struct sw_exit_source *src)
{
	l->exits = *src;
}

void sw_loops__set_memory_window(struct sw_loops *l, uint32_t window_s)
{
	l->mem_window_s = window_s;
}

struct sw_loops *sw_loops__new(const struct sw_thread_source *src, struct sw_report *rep,
			       uint64_t threshold_ns, bool diag)
{
	struct sw_loops *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->src = *src;
	l->rep = rep;
	l->threshold_ns = threshold_ns;
	l->diag = diag;
	return l;
}

void sw_loops__free(struct sw_loops *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_loops; i++)
		free(l->loops[i]);
	free(l->loops);
	for (size_t i = 0; i < l->n_procs; i++)
		sw_memgrowth__free(l->procs[i].mg);
	free(l->procs);
	free(l);
}

void sw_loops__set_stacks(struct sw_loops *l, struct sw_stacks *stacks, FILE *folded)
{
	l->stacks = stacks;
	l->folded = folded;
}

static int read_thread(struct sw_loops *l, uint32_t tid, struct sw_thread *out)
{
	return l->src.ops->read_thread(l->src.ctx, tid, out);
}

static int forget_thread(struct sw_loops *l, uint32_t tid)
{
	return l->src.ops->forget_thread(l->src.ctx, tid);
}

static struct proc *find_proc(struct sw_loops *l, uint32_t pid)
{
	for (size_t i = 0; i < l->n_procs; i++)
		if ((uint32_t)l->procs[i].info.pid == pid)
			return &l->procs[i];
	return NULL;
}

static struct loop *find_loop(struct sw_loops *l, uint32_t tid)
{
	for (size_t i = 0; i < l->n_loops; i++)
		if (l->loops[i]->tid == tid)
			return l->loops[i];
	return NULL;
}

static void drop_loop_at(struct sw_loops *l, size_t i)
{
	free(l->loops[i]);
	l->loops[i] = l->loops[--l->n_loops];
}

static void drop_loops_of(struct sw_loops *l, uint32_t pid)
{
	for (size_t i = 0; i < l->n_loops;) {
		if (l->loops[i]->pid == pid) {
			forget_thread(l, l->loops[i]->tid);
			drop_loop_at(l, i);
		} else {
			i++;
		}
	}
}

static uint32_t target_flags(const struct sw_proc_info *pi)
{
	/* what each runtime needs is in runtime/<runtime>.c */
	return sw_runtime_target_flags(pi);
}

static struct loop *track(struct sw_loops *l, uint32_t pid, uint32_t tid, uint64_t now);

struct seed_ctx {
	struct sw_loops *l;
	const struct sw_proc_info *pi;
	uint64_t now;
};

/*
 * What BPF cannot see: what each thread was doing when the agent attached.
 *  - A thread waiting in epoll: BPF would only learn it at its next wait,
 *    and the iteration its wake-up starts would go unseen; on a quiet server
 *    that is the next request, blocked or not. Seeded as in that wait.
 *  - Node's main thread outside any epoll wait: it is always a loop thread,
 *    so it is busy, maybe stuck, which is why an SRE attaches. Seeded busy
 *    from now, its block's start flagged unknown (a lower bound). Python's
 *    loop thread cannot be named before it waits, so it is not.
 */
static int seed_one(void *ctx, pid_t tid)
{
	struct seed_ctx *sc = ctx;
	const struct sw_proc_info *pi = sc->pi;
	uint32_t flags = target_flags(pi);
	unsigned long args[6] = { 0 };
	struct sw_thread *t = &sc->l->st;
	bool busy;
	long nr;
	int err, tclass = 1;

	err = sw_thread_syscall(pi->pid, tid, &nr, args);
	if (err && err != -EAGAIN) {
		if (err != -ENOENT) /* the thread just exited */
			sc->l->failed_reads++;
		return 0;
	}
	if (!err && sw_nr_is_epoll_wait(nr)) {
		busy = false;
		tclass = sw_wait_timeout_class(nr, args[3], NULL);
	} else if (pi->runtime == SW_RT_NODE && tid == pi->pid) {
		busy = true;
	} else {
		return 0;
	}
	memset(t, 0, sizeof(*t));
	sw_thread_seed(t, (uint32_t)pi->pid, (uint32_t)tid, flags, sc->now, busy, (int)args[0],
		       tclass);
	sw_thread_comm(pi->pid, tid, t->comm, sizeof(t->comm));
	err = sc->l->src.ops->seed_thread(sc->l->src.ctx, t);
	if (err == 0)
		track(sc->l, (uint32_t)pi->pid, (uint32_t)tid, sc->now);
	else if (err != -EEXIST)
		sc->l->failed_reads++;
	return 0;
}

static void seed_threads(struct sw_loops *l, const struct sw_proc_info *pi)
{
	struct seed_ctx sc = { .l = l, .pi = pi, .now = sw_mono_ns() };

	if (sw_for_each_thread(pi->pid, seed_one, &sc) && sw_process_alive(pi->pid))
		l->failed_reads++;
}

static void gil_add(struct sw_loops *l, const struct sw_proc_info *pi);

int sw_loops__add_process(struct sw_loops *l, const struct sw_proc_info *pi)
{
	struct proc *p = find_proc(l, (uint32_t)pi->pid), *np;
	int err;

	if (!p) {
		np = realloc(l->procs, (l->n_procs + 1) * sizeof(*np));
		if (!np)
			return -ENOMEM;
		l->procs = np;
		p = &l->procs[l->n_procs++];
		memset(p, 0, sizeof(*p));
	}
	p->info = *pi;
	/* an exec'd process starts a new window: a new program's memory */
	sw_memgrowth__free(p->mg);
	{
		struct sw_memgrowth_cfg mc = { .window_s = l->mem_window_s };

		p->mg = sw_memgrowth__new(&mc); /* NULL: no growth finding, counted */
		if (!p->mg)
			l->lost_events++;
	}
	err = l->src.ops->add_target(l->src.ctx, (uint32_t)pi->pid, target_flags(pi));
	if (err)
		return err;
	/* before the process line: whoever acts on that line (a test, a
	 * user) finds the probes in place */
	if (l->exits.watch)
		l->exits.watch(l->exits.ctx, pi); /* says why itself when it cannot */
	sw_report__process(l->rep, pi);
	if (l->stacks)
		sw_stacks__add_process(l->stacks, pi);
	gil_add(l, pi);
	seed_threads(l, pi);
	return 0;
}

/* Snapshot baseline: what the next summary is a delta from. */
/* Cumulative off-CPU and run-queue time of the busy stretches up to now,
 * the off-CPU stretch in progress included. */
static void cum_offcpu(const struct sw_thread *s, uint64_t now, uint64_t *off, uint64_t *runq)
{
	*off = s->cum_offcpu_ns;
	*runq = s->cum_runq_ns;
	if (s->off_start_ns && now > s->off_start_ns) {
		if (s->off_kind == SW_OFF_RUNQ)
			*runq += now - s->off_start_ns;
		else
			*off += now - s->off_start_ns;
	}
}

static void set_baseline(struct loop *lp, const struct sw_thread *s, uint64_t now)
{
	cum_offcpu(s, now, &lp->prev_off, &lp->prev_runq);
	lp->snap_ns = now;
	lp->prev_iters = s->iterations;
	lp->prev_idle = sw_thread_idle_ns(s, now);
	lp->prev_max = s->max_busy_ns;
	memcpy(lp->prev_hist, s->hist, sizeof(lp->prev_hist));
	lp->interval_incident_max = 0;
}

static struct loop *track(struct sw_loops *l, uint32_t pid, uint32_t tid, uint64_t now)
{
	struct loop *lp = find_loop(l, tid), **nl;

	if (lp)
		return lp;
	if (!find_proc(l, pid))
		return NULL;
	if (read_thread(l, tid, &l->st))
		return NULL;
	if (l->n_loops == l->cap_loops) {
		size_t cap = l->cap_loops ? l->cap_loops * 2 : 16;

		nl = realloc(l->loops, cap * sizeof(*nl));
		if (!nl)
			return NULL;
		l->loops = nl;
		l->cap_loops = cap;
	}
	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return NULL;
	lp->pid = pid;
	lp->tid = tid;
	lp->loop_fd = l->st.loop_fd;
	/* the kernel cuts a comm at 15 bytes, maybe inside a character (a
	 * non-ASCII process.title): every report must be valid UTF-8 */
	sw_utf8_copy(lp->comm, sizeof(lp->comm), l->st.comm, sizeof(l->st.comm));
	/* BPF counts from the thread's first wait, so the first interval
	 * starts there, from a zero baseline (calloc) */
	lp->snap_ns = l->st.first_seen_ns ? l->st.first_seen_ns : now;
	l->loops[l->n_loops++] = lp;
	sw_dbg("loop thread pid %u tid %u (%s) epoll fd %d", pid, tid, lp->comm, lp->loop_fd);
	return lp;
}

/*
 * Node runs libuv loops of its own: the platform's DelayedTaskScheduler
 * (src/node_platform.cc) and, with --inspect, the inspector's. They are not
 * the application's loop. The platform creates its loop before the main
 * loop, so its epoll fd is the lower one; workers' loops come after.
 */
static enum sw_role role_of(struct sw_loops *l, const struct loop *lp)
{
	struct proc *p = find_proc(l, lp->pid);
	struct loop *main_loop;

	if (!p)
		return SW_ROLE_LOOP;
	switch (p->info.runtime) {
	case SW_RT_NODE:
		if (lp->tid == lp->pid)
			return SW_ROLE_MAIN;
		main_loop = find_loop(l, lp->pid);
		if (main_loop && lp->loop_fd < main_loop->loop_fd)
			return SW_ROLE_HELPER;
		return SW_ROLE_WORKER;
	case SW_RT_PYTHON:
		return SW_ROLE_ASYNCIO;
	default:
		return SW_ROLE_LOOP;
	}
}

const char *sw_role_name(enum sw_role role)
{
	switch (role) {
	case SW_ROLE_MAIN:
		return "main";
	case SW_ROLE_WORKER:
		return "worker";
	case SW_ROLE_HELPER:
		return "helper";
	case SW_ROLE_ASYNCIO:
		return "asyncio";
	default:
		return "loop";
	}
}

static const char *runtime_of(struct sw_loops *l, uint32_t pid)
{
	struct proc *p = find_proc(l, pid);

	return sw_runtime_name(p ? p->info.runtime : SW_RT_NATIVE);
}

static void fill_diag(struct sw_loops *l, struct sw_incident_rec *inc, uint64_t offcpu,
		      uint64_t runq, uint32_t switches, const struct sw_blk_sys *sys, int extra_nr,
		      uint64_t extra_ns)
{
	int64_t best_nr = -2;
	uint64_t best_ns = 0;
	struct sw_incident_facts f = {};
	const char *name;

	inc->diag = l->diag;
	if (l->diag) {
		inc->offcpu_ns = offcpu;
		inc->runq_ns = runq;
		inc->oncpu_ns = inc->dur_ns > offcpu + runq ? inc->dur_ns - offcpu - runq : 0;
		inc->switches = switches;
		for (int i = 0; i < SW_BLK_SYSCALLS; i++) {
			uint64_t ns = sys[i].ns + (sys[i].nr == extra_nr ? extra_ns : 0);

			if (sys[i].ns && ns > best_ns) {
				best_ns = ns;
				best_nr = sys[i].nr;
			}
		}
		if (extra_ns && extra_ns > best_ns) {
			best_ns = extra_ns;
			best_nr = extra_nr;
		}
		if (best_nr == SW_NR_SELECT_SLEEP)
			snprintf(inc->top_syscall, sizeof(inc->top_syscall), "select (sleep)");
		else if (best_nr >= 0 && (name = sw_syscall_name((int)best_nr)))
			snprintf(inc->top_syscall, sizeof(inc->top_syscall), "%s", name);
		else if (best_nr == -1)
			snprintf(inc->top_syscall, sizeof(inc->top_syscall), "page fault");
		else if (best_nr >= 0)
			snprintf(inc->top_syscall, sizeof(inc->top_syscall), "syscall %lld",
				 (long long)best_nr);
		inc->top_syscall_ns = best_ns;
	}
	f.runtime = inc->runtime;
	f.duration_ns = inc->dur_ns;
	f.ongoing = inc->ongoing;
	f.oncpu_ns = inc->oncpu_ns;
	f.offcpu_ns = inc->offcpu_ns;
	f.runq_ns = inc->runq_ns;
	f.top_syscall = inc->top_syscall;
	f.top_syscall_ns = inc->top_syscall_ns;
	f.threshold_ns = l->threshold_ns;
	f.stacks = inc->stacks;
	f.sys = inc->sys;
	if (inc->gil) {
		f.gil_wait_ns = inc->gil->wait_ns;
		f.gil_holder = inc->gil->holder;
		f.gil_holder_tid = inc->gil->holder_tid;
		f.gil_holder_frame = sw_gil_user_frame(
		    (const char(*)[SW_GIL_FRAME_LEN])inc->gil->frames, inc->gil->n_frames);
	}
	sw_rules_classify(&f, &inc->verdict);
}

static void incident_base(struct sw_loops *l, struct loop *lp, struct sw_incident_rec *inc,
			  enum sw_role role, uint64_t start, uint64_t dur, bool ongoing)
{
	memset(inc, 0, sizeof(*inc));
	inc->pid = lp->pid;
	inc->tid = lp->tid;
	memcpy(inc->thread, lp->comm, sizeof(inc->thread));
	inc->role = sw_role_name(role);
	inc->runtime = runtime_of(l, lp->pid);
	inc->start_ns = start;
	inc->dur_ns = dur;
	inc->ongoing = ongoing;
}

/* The stacks of the incident's thread in [start, end], when sampled. */
static void fill_stacks(struct sw_loops *l, struct sw_incident_rec *inc, uint64_t end)
{
	if (!l->stacks)
		return;
	if (sw_stacks__collect(l->stacks, inc->pid, inc->tid, inc->start_ns, end, &l->dstacks) == 0 ||
	    l->dstacks.note)
		inc->stacks = &l->dstacks;
}
static void proc_gone(struct sw_loops *l, size_t i, const struct sw_event *e, uint64_t now);
/* What the loop thread's syscalls were in the stretch that began at start
 * (agent/sysio.c), when that unit runs. */
static void add_syscalls(struct sw_loops *l, struct sw_incident_rec *inc, uint64_t start)
{
	if (!l->sysio)
		return;
	if (sw_sysio__collect(l->sysio, inc->pid, inc->tid, start, &l->sys) == 0 && l->sys.n)
		inc->sys = &l->sys;
	/* a futex that is the GIL says so: "futex 0x7f..." means nothing */
	for (uint32_t i = 0; inc->sys && i < l->sys.n; i++) {
		struct sw_diag_syscall *c = &l->sys.s[i];
		unsigned long long addr;
		const char *what;

		if (strcmp(c->name, "futex") || sscanf(c->target, "futex 0x%llx", &addr) != 1)
			continue;
		what = sw_gil__futex_name(l->gil, inc->pid, addr);
		if (what)
			snprintf(c->target, sizeof(c->target), "%s 0x%llx", what, addr);
	}
}

void sw_loops__set_sysio(struct sw_loops *l, struct sw_sysio *sysio)
{
	l->sysio = sysio;
}

void sw_loops__set_gil(struct sw_loops *l, struct sw_gil *gil)
{
	l->gil = gil;
}

/* Start measuring the GIL of a Python target, or say once why not. */
static void gil_add(struct sw_loops *l, const struct sw_proc_info *pi)
{
	struct sw_gil_rec rec = {};
	char note[320];

	if (!l->gil || pi->runtime != SW_RT_PYTHON)
		return;
	if (!sw_gil__add_process(l->gil, pi, note, sizeof(note)))
		return;
	rec.pid = (uint32_t)pi->pid;
	memcpy(rec.comm, pi->comm, sizeof(rec.comm));
	rec.version = pi->version[0] ? pi->version : NULL;
	rec.ts_ns = sw_mono_ns();
	rec.note = note;
	sw_report__gil(l->rep, &rec);
}

/* The GIL waits of a loop's stretch, with the holder named (agent/gilmon.c). */
static void add_gil(struct sw_loops *l, struct sw_incident_rec *inc, uint64_t wait_ns,
		    uint32_t drops, uint64_t holder, uint64_t end)
{
	if (!l->gil || !wait_ns)
		return;
	if (sw_gil__blame(l->gil, inc->pid, wait_ns, drops, holder, inc->start_ns, end,
			  &l->gblame) == 0)
		inc->gil = &l->gblame;
}

static void final_incident(struct sw_loops *l, struct loop *lp, const struct sw_event *e)
{
	struct sw_incident_rec inc;
	enum sw_role role = role_of(l, lp);

	if (lp->ongoing_start && lp->ongoing_start != e->start_ns)
		l->lost_events++; /* the end of an earlier ongoing block never came */
	lp->ongoing_start = 0;
	if (e->dur_ns > lp->interval_incident_max)
		lp->interval_incident_max = e->dur_ns;
	if (role == SW_ROLE_HELPER)
		return;
	incident_base(l, lp, &inc, role, e->start_ns, e->dur_ns, false);
	inc.start_unknown = e->start_unknown;
	fill_stacks(l, &inc, e->start_ns + e->dur_ns);
	add_syscalls(l, &inc, e->start_ns);
	add_gil(l, &inc, e->gil_wait_ns, e->gil_drops, e->gil_holder, e->start_ns + e->dur_ns);
	fill_diag(l, &inc, e->offcpu_ns, e->runq_ns, e->switches, e->blk_sys, -2, 0);
	sw_report__incident(l->rep, &inc);
	if (inc.stacks && inc.stacks->note)
		sw_stacks__note_given(l->stacks, lp->pid);
	if (l->folded && inc.stacks && inc.stacks->n_stacks) {
		struct proc *p = find_proc(l, lp->pid);

		sw_stacks__write_folded(l->stacks, l->folded, p ? p->info.comm : lp->comm);
	}
}

int sw_loops__on_event(void *ctx, const struct sw_event *e)
{
	struct sw_loops *l = ctx;
	struct sw_proc_info pi;
	struct loop *lp;

	switch (e->type) {
	case SW_EV_THREAD_NEW:
		track(l, e->pid, e->tid, e->ts_ns);
		break;
	case SW_EV_INCIDENT:
		lp = track(l, e->pid, e->tid, e->ts_ns);
		if (lp)
			final_incident(l, lp, e);
		else
			l->lost_events++;
		break;
	case SW_EV_THREAD_EXIT:
		lp = find_loop(l, e->tid);
		if (!lp)
			break;
		/* a loop that dies blocked (killed while stuck) ends its block */
		if (e->busy && e->dur_ns >= l->threshold_ns)
			final_incident(l, lp, e);
		for (size_t i = 0; i < l->n_loops; i++)
			if (l->loops[i] == lp) {
				drop_loop_at(l, i);
				break;
			}
		break;
	case SW_EV_PROC_EXIT:
		for (size_t i = 0; i < l->n_procs; i++)
			if ((uint32_t)l->procs[i].info.pid == e->pid) {
				proc_gone(l, i, e, e->ts_ns);
				break;
			}
		break;
	case SW_EV_EXEC:
		if (!find_proc(l, e->pid))
			break;
		drop_loops_of(l, e->pid);
		if (l->stacks)
			sw_stacks__remove_process(l->stacks, e->pid);
		if (l->gil)
			sw_gil__remove_process(l->gil, e->pid);
		sw_report__process_gone(l->rep, e->pid, true);
		if (sw_discover_process((pid_t)e->pid, &pi) == 0)
			sw_loops__add_process(l, &pi);
		break;
	default:
		l->lost_events++;
	}
	return 0;
}

static void check_ongoing(struct sw_loops *l, struct loop *lp, const struct sw_thread *s,
			  uint64_t now)
{
	struct sw_incident_rec inc;
	uint64_t offcpu = s->blk_offcpu_ns, runq = s->blk_runq_ns, extra = 0, start;
	enum sw_role role;
	int extra_nr = -2;

	start = sw_thread_block_start(s);
	if (!sw_thread_busy(s) || now < start || now - start < l->threshold_ns)
		return;
	if (lp->ongoing_start != start) {
		lp->ongoing_start = start;
		lp->ongoing_last = 0;
	}
	if (lp->ongoing_last && now - lp->ongoing_last < ONGOING_REFRESH_NS)
		return;
	lp->ongoing_last = now;
	/* the off-CPU stretch in progress is not in the sums yet */
	if (s->off_start_ns && now > s->off_start_ns) {
		if (s->off_kind == SW_OFF_RUNQ) {
			runq += now - s->off_start_ns;
		} else {
			extra = now - s->off_start_ns;
			offcpu += extra;
			extra_nr = s->off_nr;
		}
	}
	role = role_of(l, lp);
	if (role == SW_ROLE_HELPER)
		return;
	incident_base(l, lp, &inc, role, start, now - start, true);
	inc.start_unknown = sw_thread_block_start_unknown(s);
	fill_stacks(l, &inc, now);
	add_syscalls(l, &inc, start);
	add_gil(l, &inc, s->blk_gil_ns, s->blk_gil_drops, s->blk_gil_holder, now);
	fill_diag(l, &inc, offcpu, runq, s->blk_switches, s->blk_sys, extra_nr, extra);
	sw_report__incident(l->rep, &inc);
}

/*
 * Process i is gone: e is its PROC_EXIT event (exit code, whether a loop
 * died blocked), or NULL when it was found gone from /proc (the event was
 * lost, or it died before BPF watched it).
 */
static void proc_gone(struct sw_loops *l, size_t i, const struct sw_event *e, uint64_t now)
{
	struct proc *p = &l->procs[i];
	uint32_t pid = (uint32_t)p->info.pid;
	struct sw_exit_rec ex = {};
	struct sw_exit_facts f = {};
	bool words = false;

	ex.pid = pid;
	ex.runtime = sw_runtime_name(p->info.runtime);
	sw_utf8_copy(ex.comm, sizeof(ex.comm), p->info.comm, sizeof(p->info.comm));
	ex.ts_ns = e ? e->ts_ns : now;
	if (e) {
		ex.known = true;
		ex.signal = sw_exit_signal(e->exit_code);
		ex.status = ex.signal ? 0 : sw_exit_status(e->exit_code);
		ex.core = sw_exit_core(e->exit_code);
		ex.in_incident = e->busy;
		ex.blocked_ns = e->dur_ns;
	}
	if (l->exits.take && l->exits.take(l->exits.ctx, pid, &l->lw) == 0) {
		words = true;
		if (sw_last_words_text(&l->lw, l->tail, sizeof(l->tail)))
			ex.stderr_tail = l->tail;
	}
	f.runtime = ex.runtime;
	f.known = ex.known;
	f.status = ex.status;
	f.signal = ex.signal;
	f.core = ex.core;
	f.in_incident = ex.in_incident;
	f.blocked_ns = ex.blocked_ns;
	ex.uncaught = f.uncaught = words && l->lw.uncaught;
	ex.from_promise = f.from_promise = words && l->lw.uncaught && l->lw.from_promise;
	f.stderr_tail = ex.stderr_tail;
	sw_exit_classify(&f, &ex.verdict);
	drop_loops_of(l, pid);
	if (l->stacks)
		sw_stacks__remove_process(l->stacks, pid);
	if (l->gil)
		sw_gil__remove_process(l->gil, pid);
	l->src.ops->del_target(l->src.ctx, pid);
	sw_report__process_exit(l->rep, &ex);
	sw_memgrowth__free(p->mg);
	l->procs[i] = l->procs[--l->n_procs];
}

/* Resident size once a second, and whether it grows steadily. */
static void sample_memory(struct sw_loops *l, struct proc *p, uint64_t now)
{
	struct sw_memgrowth_finding mf;
	struct sw_memgrowth_facts f;
	struct sw_memory_rec m = {};
	uint64_t rss;

	if (sw_process_rss(p->info.pid, &rss))
		return; /* gone: the exit says so */
	p->rss_bytes = rss;
	if (!p->mg || !sw_memgrowth__add(p->mg, now, rss, &mf))
		return;
	m.pid = (uint32_t)p->info.pid;
	m.runtime = sw_runtime_name(p->info.runtime);
	sw_utf8_copy(m.comm, sizeof(m.comm), p->info.comm, sizeof(p->info.comm));
	m.ts_ns = now;
	m.window_s = mf.window_s;
	m.rate_bps = mf.rate_bps;
	m.r2 = mf.r2;
	m.rss_start = mf.rss_start;
	m.rss_end = mf.rss_end;
	f.runtime = m.runtime;
	f.window_s = mf.window_s;
	f.rate_bps = mf.rate_bps;
	f.rss_start = mf.rss_start;
	f.rss_end = mf.rss_end;
	sw_memgrowth_classify(&f, &m.verdict);
	sw_report__memory(l->rep, &m);
}

static void check_processes(struct sw_loops *l, uint64_t now)
{
	uint32_t key, next;
	int err;

	for (size_t i = 0; i < l->n_procs;) {
		struct proc *p = &l->procs[i];

		if (sw_process_alive(p->info.pid)) {
			sample_memory(l, p, now);
			i++;
			continue;
		}
		/* Its exit event comes when the last thread is gone, but /proc
		 * says zombie as soon as the leader is: a group exit with
		 * other threads still in do_exit. Give the event a check's
		 * time before concluding without it. */
		if (!p->gone_seen_ns) {
			p->gone_seen_ns = now;
			i++;
			continue;
		}
		if (now - p->gone_seen_ns < PROC_EXIT_GRACE_NS) {
			i++;
			continue;
		}
		proc_gone(l, i, NULL, now);
	}
	/* threads whose THREAD_NEW event was lost still get tracked */
	for (err = l->src.ops->next_thread(l->src.ctx, NULL, &next); !err;
	     err = l->src.ops->next_thread(l->src.ctx, &key, &next)) {
		key = next;
		if (find_loop(l, key))
			continue;
		if (read_thread(l, key, &l->st) == 0)
			track(l, l->st.pid, key, l->st.first_seen_ns);
	}
}

/* A stretch a quarter of the threshold old may become an incident: the
 * sysio unit, in on-demand mode, starts watching syscalls now. */
static void sysio_watch(struct sw_loops *l, struct loop *lp, const struct sw_thread *s,
			uint64_t now)
{
	uint64_t start = sw_thread_block_start(s);

	if (l->sysio && sw_thread_busy(s) && now > start && now - start >= l->threshold_ns / 4)
		sw_sysio__blocked(l->sysio, lp->pid, lp->tid, s, now);
}

void sw_loops__tick(struct sw_loops *l, uint64_t now)
{
	if (now - l->last_proc_check >= PROC_CHECK_NS) {
		l->last_proc_check = now;
		check_processes(l, now);
	}
	for (size_t i = 0; i < l->n_loops;) {
		struct loop *lp = l->loops[i];
		struct sw_thread *s = &l->st;
		int err = read_thread(l, lp->tid, s);
		uint64_t start;

		if (err == -ENOENT) {
			/* exited: its THREAD_EXIT event does the rest, if not yet
			 * read from the ring by the next ticks; if that event was
			 * lost, forget it here after the grace */
			if (!lp->gone_since)
				lp->gone_since = now ? now : 1;
			if (now - lp->gone_since < LOOP_GONE_GRACE_NS) {
				i++;
				continue;
			}
			drop_loop_at(l, i);
			continue;
		}
		lp->gone_since = 0;
		if (err) {
			l->failed_reads++;
			i++;
			continue;
		}
		lp->loop_fd = s->loop_fd;
		/* A loop that looks blocked may instead be gone: asyncio.run()
		 * returned and closed its epoll fd, or the fd learned first was
		 * execSync's short-lived nested one. Its fd is checked when it
		 * first looks blocked, then every LOOP_CLOSED_CHECK_NS. (A
		 * seeded thread has no loop fd yet: nothing to check.) */
		start = sw_thread_block_start(s);
		if (s->loop_fd >= 0 && sw_thread_busy(s) && now > start &&
		    now - start >= l->threshold_ns &&
		    (lp->fd_checked_start != start || now - lp->fd_checked_ns > LOOP_CLOSED_CHECK_NS)) {
			lp->fd_checked_start = start;
			lp->fd_checked_ns = now;
			if (!sw_fd_is_epoll((pid_t)lp->pid, s->loop_fd)) {
				sw_dbg("tid %u: loop fd %d is no epoll instance now; relearning",
				       lp->tid, s->loop_fd);
				forget_thread(l, lp->tid);
				drop_loop_at(l, i);
				continue;
			}
		}
		sysio_watch(l, lp, s, now);
		check_ongoing(l, lp, s, now);
		/* a Python loop thread asleep in a block: its frames now, while
		 * they are the sleep's (agent/stacks.h) */
		if (l->stacks && sw_thread_busy(s) && s->off_start_ns && s->off_kind == SW_OFF_SLEEP)
			sw_stacks__sleeping(l->stacks, lp->pid, lp->tid, s->off_start_ns);
		i++;
	}
	sw_sysio__tick(l->sysio, now);
}

/* Largest iteration of the interval: exact when the all-time maximum moved
 * or an incident fell in the top bucket, else the top bucket's middle. */
static uint64_t interval_max(const struct loop *lp, const struct sw_thread *s,
			     const struct sw_hist *h)
{
	uint64_t est = 0;
	int top = -1;

	if (s->max_busy_ns != lp->prev_max)
		return s->max_busy_ns;
	for (int i = SW_HIST_NBUCKETS - 1; i >= 0; i--)
		if (h->counts[i]) {
			top = i;
			break;
		}
	if (top < 0)
		return 0;
	if (lp->interval_incident_max && (int)sw_hist_bucket(lp->interval_incident_max) == top)
		return lp->interval_incident_max;
	est = sw_hist_bucket_mid((uint32_t)top);
	return est > s->max_busy_ns ? s->max_busy_ns : est;
}

void sw_loops__summarize(struct sw_loops *l, uint64_t now, const struct sw_health *extra)
{
	struct sw_bpf_stats bs;
	struct sw_health h = *extra;

	for (size_t i = 0; i < l->n_loops; i++) {
		struct loop *lp = l->loops[i];
		struct sw_thread *s = &l->st;
		struct sw_summary_rec rec = {};
		uint64_t idle, elapsed, d_idle, off, runq;
		enum sw_role role;
		struct proc *p;

		if (read_thread(l, lp->tid, s))
			continue; /* exited since the tick: its exit event removes it */
		role = role_of(l, lp);
		idle = sw_thread_idle_ns(s, now);
		elapsed = now > lp->snap_ns ? now - lp->snap_ns : 0;
		d_idle = idle > lp->prev_idle ? idle - lp->prev_idle : 0;
		if (d_idle > elapsed)
			d_idle = elapsed;
		sw_hist_reset(&l->hist);
		for (uint32_t b = 0; b < SW_HIST_NBUCKETS; b++) {
			uint32_t d = s->hist[b] - lp->prev_hist[b];

			l->hist.counts[b] = d;
			l->hist.total += d;
		}
		l->hist.max_ns = interval_max(lp, s, &l->hist);
		if (role != SW_ROLE_HELPER) {
			rec.pid = lp->pid;
			rec.tid = lp->tid;
			memcpy(rec.thread, lp->comm, sizeof(rec.thread));
			rec.role = sw_role_name(role);
			rec.runtime = runtime_of(l, lp->pid);
			rec.start_ns = lp->snap_ns;
			rec.end_ns = now;
			rec.iterations = s->iterations - lp->prev_iters;
			rec.idle_ns = d_idle;
			rec.busy_ns = elapsed - d_idle;
			rec.max_ns = l->hist.max_ns;
			rec.hist = &l->hist;
			p = find_proc(l, lp->pid);
			rec.rss_bytes = p ? p->rss_bytes : 0;
			rec.diag = l->diag;
			if (l->diag) {
				cum_offcpu(s, now, &off, &runq);
				rec.offcpu_ns = off > lp->prev_off ? off - lp->prev_off : 0;
				rec.runq_ns = runq > lp->prev_runq ? runq - lp->prev_runq : 0;
				/* a stretch that began before the interval may put more
				 * off-CPU time in it than busy time: clamp */
				if (rec.offcpu_ns > rec.busy_ns)
					rec.offcpu_ns = rec.busy_ns;
				if (rec.runq_ns > rec.busy_ns - rec.offcpu_ns)
					rec.runq_ns = rec.busy_ns - rec.offcpu_ns;
				rec.oncpu_ns = rec.busy_ns - rec.offcpu_ns - rec.runq_ns;
			}
			sw_report__summary(l->rep, &rec);
		}
		set_baseline(lp, s, now);
	}
	if (l->gil)
		sw_gil__summarize(l->gil, now, l->rep);
	l->src.ops->stats(l->src.ctx, &bs);
	for (int i = 0; i < SW_HEALTH__COUNT; i++)
		h.v[i] += bs.v[i];
	h.v[SW_HEALTH_failed_reads] += l->failed_reads;
	h.v[SW_HEALTH_lost_events] += l->lost_events;
	sw_report__health(l->rep, &h);
}

size_t sw_loops__live_processes(const struct sw_loops *l)
{
	return l->n_procs;
}

uint64_t sw_loops__lost_events(const struct sw_loops *l)
{
	return l->lost_events;
}
