// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpf/loopmon.h"
#include "bpf/stacks.h"
#include "clock.h"
#include "log.h"
#include "loopmon.h"
#include "stacks.h"
#include "stacks.skel.h"
#include "target_io.h"
#include "unwind.h"

/* Samples kept per thread: 10 s of a block at 99 Hz. An incident longer
 * than that keeps its last 10 s of samples (the stack of a long block does
 * not change much: its cause is stuck in the same place). */
#define SAMPLES_PER_THREAD 1024
/* Threads with samples kept at once; the least recently sampled goes. */
#define MAX_THREADS 64
/* Frames unwound per sample: more than SW_DIAG_FRAMES so a Python splice
 * has room before the cut. */
#define UNWIND_FRAMES SW_UNWIND_MAX_FRAMES
#define CEVAL "_PyEval_EvalFrameDefault"
#define JIT_NOTE                                                                                   \
	"JavaScript frames are unnamed ([jit]): start node with "                                 \
	"--perf-basic-prof-only-functions to name them"

struct sample {
	uint64_t ts, block_start, weight;
	uint8_t kind;
	int8_t gc; /* -1: not read */
	uint16_t n;
	struct sw_stk_frame *f;
};

struct thread_samples {
	uint32_t pid, tid;
	uint64_t last_ns;
	uint32_t head, count; /* ring of SAMPLES_PER_THREAD */
	struct sample *ring;
};

/*
 * Python frames of a loop thread read while it sleeps (the agent's tick
 * sees it asleep in loopmon's state): a sleep's capture reaches the agent
 * at the wake-up, when the thread has moved on and its frames are another
 * place's. Used for the capture if read inside that sleep.
 */
#define PY_SLEEP_CACHE 8
struct py_sleep {
	uint32_t pid, tid;
	uint64_t since_ns;		/* the sleep's start, as loopmon saw it */
	uint64_t read_start, read_end;	/* when the frames were read */
	bool ok;
	struct sw_py_stack *py;
};

struct sproc {
	uint32_t pid;
	enum sw_runtime rt;
	char comm[16];
	bool py_ok;
	bool noted;
};

/* Strings of one collect: names of PCs, cut stacks. */
struct arena_blk {
	struct arena_blk *next;
	size_t used, cap;
	char data[];
};

struct name_slot {
	uint64_t key; /* pc | is_return, 0: empty */
	const char *name;
};
#define NAME_SLOTS 8192 /* distinct PCs per collect; a full table stops caching */

struct sw_stacks {
	struct stacks_bpf *skel;
	/* A second consumer of the sample ring, drained before each collect:
	 * one ring_buffer__poll serves loopmon's ring and this one in either
	 * order, so an incident's end can be handled before the samples that
	 * came just before it (its wake-up capture). Both consumers share the
	 * ring's consumer position page, and run on this one thread. libbpf
	 * 1.1 has no ring__consume() for one ring of a ring_buffer. */
	struct ring_buffer *drain;
	struct sw_tio *t;
	struct sw_unwind *uw;
	struct sw_pyframes *pyf;
	int *perf_fds;
	struct bpf_link **perf_links;
	int n_perf;
	uint64_t period_ns;
	uint64_t gate_ns;
	struct sproc *procs;
	size_t n_procs;
	struct thread_samples th[MAX_THREADS];
	/* scratch */
	uint64_t pcs[UNWIND_FRAMES];
	bool is_ret[UNWIND_FRAMES], is_eval[UNWIND_FRAMES];
	struct sw_stk_frame frames[UNWIND_FRAMES + SW_PY_MAX_FRAMES];
	struct sw_py_stack py;
	struct sw_stk_slot slot;
	struct py_sleep pys[PY_SLEEP_CACHE];
	struct sw_thread st; /* loopmon's state of a sampled thread */
	/* the sleep in progress, unwound once per sleep */
	struct sample cur_sleep;
	uint32_t cur_sleep_tid;
	uint64_t cur_sleep_start;
	/* the last collect */
	struct arena_blk *arena;
	struct name_slot *names;
	struct sw_stk_agg *agg;
	const char **agg_frames;
	size_t agg_cap, agg_frames_cap;
	struct sw_stk_group *groups;
	size_t n_groups, groups_cap;
	char comm[16];
	/* health */
	uint64_t unwind_failed, lost;
	/* cost, for -v: samples taken and the time spent unwinding them */
	uint64_t taken, take_ns, take_max_ns;
	uint64_t collects, collect_ns, collect_max_ns;
};

/* ---------------- pure logic ---------------- */

void sw_py_frame_format(const struct sw_py_frame *f, char *out, size_t len)
{
	if (f->line)
		snprintf(out, len, "%s (%s:%u)", f->func, f->file, f->line);
	else
		snprintf(out, len, "%s (%s)", f->func, f->file);
}

static int py_frame_push(const struct sw_py_frame *pf, struct sw_stk_frame *out, uint32_t *k,
			 uint32_t max)
{
	char buf[512];

	if (*k >= max)
		return -ENOSPC;
	sw_py_frame_format(pf, buf, sizeof(buf));
	out[*k].pc = 0;
	out[*k].is_return = false;
	out[*k].py = strdup(buf);
	if (!out[*k].py)
		return -ENOMEM;
	(*k)++;
	return 0;
}

uint32_t sw_stacks_splice(const uint64_t *pcs, const bool *is_return, const bool *is_eval,
			  uint32_t n, const struct sw_py_stack *py, struct sw_stk_frame *out,
			  uint32_t max)
{
	uint32_t k = 0, cur = 0, npy = py ? py->n : 0;

	for (uint32_t i = 0; i < n && k < max; i++) {
		if (is_eval[i] && cur < npy) {
			/* this evaluator call runs the frames up to its entry */
			while (cur < npy) {
				bool entry = py->f[cur].entry;

				if (py_frame_push(&py->f[cur], out, &k, max))
					return k;
				cur++;
				if (entry)
					break;
			}
			continue;
		}
		out[k].pc = pcs[i];
		out[k].is_return = is_return[i];
		out[k].py = NULL;
		k++;
	}
	/* the native unwind stopped short of the evaluator's callers */
	while (cur < npy && k < max)
		if (py_frame_push(&py->f[cur++], out, &k, max))
			break;
	return k;
}

void sw_stk_frames_free(struct sw_stk_frame *f, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		free(f[i].py);
		f[i].py = NULL;
	}
}

static uint64_t hash_stack(const struct sw_stk_agg *a)
{
	uint64_t h = 1469598103934665603ull;

	for (uint32_t i = 0; i < a->n; i++) {
		for (const char *p = a->frames[i]; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
		h = (h ^ 0xff) * 1099511628211ull;
	}
	return h;
}

static bool same_stack(const struct sw_stk_agg *a, const struct sw_stk_agg *b)
{
	if (a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++)
		if (a->frames[i] != b->frames[i] && strcmp(a->frames[i], b->frames[i]))
			return false;
	return true;
}

struct agg_sort {
	uint64_t h;
	size_t i;
};

static int cmp_hash(const void *x, const void *y)
{
	const struct agg_sort *a = x, *b = y;

	if (a->h != b->h)
		return a->h < b->h ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

struct group_sort {
	struct sw_stk_group g;
};

static int cmp_group(const void *x, const void *y)
{
	const struct group_sort *a = x, *b = y;

	if (a->g.weight_ns != b->g.weight_ns)
		return a->g.weight_ns > b->g.weight_ns ? -1 : 1;
	if (a->g.samples != b->g.samples)
		return a->g.samples > b->g.samples ? -1 : 1;
	return a->g.sample < b->g.sample ? -1 : a->g.sample > b->g.sample;
}

static bool has_frame(const struct sw_stk_agg *a, const char *f)
{
	for (uint32_t i = 0; i < a->n; i++)
		if (a->frames[i] == f || !strcmp(a->frames[i], f))
			return true;
	return false;
}

/* Frame d from the outermost of a sample (d < a->n). */
static const char *outer(const struct sw_stk_agg *a, uint32_t d)
{
	return a->frames[a->n - 1 - d];
}

/*
 * The hot path: from the outermost frame, the heaviest callee at each
 * level, until the samples that stop at a level outweigh its heaviest
 * callee (a flame graph's widest path). On-CPU samples of one culprit end
 * in many different leaves (V8's collector in a dozen functions), so no
 * single exact stack is frequent; the path they share is. Returns a sample
 * whose stack is the path, marking the survivors in alive[] (scratch).
 */
static size_t hot_path_sample(const struct sw_stk_agg *s, size_t n, bool *alive,
			      const char **names, uint64_t *w)
{
	uint32_t d = 0;

	for (size_t i = 0; i < n; i++)
		alive[i] = true;
	for (;;) {
		uint64_t self = 0, best_w = 0;
		const char *best = NULL;
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			size_t j;

			if (!alive[i])
				continue;
			if (s[i].n <= d) {
				self += s[i].weight_ns;
				continue;
			}
			for (j = 0; j < k; j++)
				if (!strcmp(names[j], outer(&s[i], d)))
					break;
			if (j == k) {
				names[k] = outer(&s[i], d);
				w[k++] = 0;
			}
			w[j] += s[i].weight_ns;
		}
		for (size_t j = 0; j < k; j++)
			if (w[j] > best_w) {
				best_w = w[j];
				best = names[j];
			}
		if (!best || self >= best_w) {
			for (size_t i = 0; i < n; i++)
				if (alive[i] && s[i].n == d)
					return i;
			return 0; /* not reached: self > 0 means such a sample */
		}
		for (size_t i = 0; i < n; i++)
			if (alive[i] && (s[i].n <= d || strcmp(outer(&s[i], d), best)))
				alive[i] = false;
		d++;
	}
}

/* The weight of the samples in which frame f appears. */
static uint64_t frame_weight(const struct sw_stk_agg *s, size_t n, const char *f)
{
	uint64_t w = 0;

	for (size_t k = 0; k < n; k++)
		if (has_frame(&s[k], f))
			w += s[k].weight_ns;
	return w;
}

void sw_stacks_aggregate(const struct sw_stk_agg *s, size_t n, struct sw_diag_stacks *out,
			 struct sw_stk_group *all, size_t *n_all)
{
	struct agg_sort *idx = NULL;
	struct group_sort *gs = NULL;
	uint64_t total = 0, gc_w = 0, gc_known = 0;
	size_t ng = 0;

	memset(out, 0, sizeof(*out));
	out->gc_share = -1;
	if (n_all)
		*n_all = 0;
	if (!n)
		return;
	idx = calloc(n, sizeof(*idx));
	gs = calloc(n, sizeof(*gs));
	if (!idx || !gs)
		goto out;
	for (size_t i = 0; i < n; i++) {
		idx[i].h = hash_stack(&s[i]);
		idx[i].i = i;
		total += s[i].weight_ns;
		if (s[i].gc >= 0) {
			gc_known += s[i].weight_ns;
			if (s[i].gc)
				gc_w += s[i].weight_ns;
		}
	}
	out->samples = (uint32_t)n;
	out->weight_ns = total;
	if (gc_known)
		out->gc_share = (double)gc_w / (double)gc_known;
	qsort(idx, n, sizeof(*idx), cmp_hash);
	for (size_t i = 0; i < n; i++) {
		const struct sw_stk_agg *a = &s[idx[i].i];
		size_t g;

		/* equal hashes are adjacent; a collision is told by comparing */
		for (g = ng; g > 0; g--) {
			if (idx[i].h != hash_stack(&s[gs[g - 1].g.sample]))
				break;
			if (same_stack(a, &s[gs[g - 1].g.sample]))
				break;
		}
		if (g > 0 && idx[i].h == hash_stack(&s[gs[g - 1].g.sample]) &&
		    same_stack(a, &s[gs[g - 1].g.sample])) {
			gs[g - 1].g.weight_ns += a->weight_ns;
			gs[g - 1].g.samples++;
			continue;
		}
		gs[ng].g.sample = idx[i].i;
		gs[ng].g.weight_ns = a->weight_ns;
		gs[ng].g.samples = 1;
		ng++;
	}
	qsort(gs, ng, sizeof(*gs), cmp_group);
	/* "the" stack is the hot path's; the others follow by weight */
	{
		bool *alive = calloc(n, sizeof(*alive));
		const char **names = calloc(n, sizeof(*names));
		uint64_t *w = calloc(n, sizeof(*w));

		if (alive && names && w) {
			size_t h = hot_path_sample(s, n, alive, names, w);

			for (size_t g = 0; g < ng; g++)
				if (same_stack(&s[gs[g].g.sample], &s[h])) {
					struct group_sort hot = gs[g];

					memmove(&gs[1], &gs[0], g * sizeof(*gs));
					gs[0] = hot;
					break;
				}
		}
		free(alive);
		free(names);
		free(w);
	}
	for (size_t g = 0; g < ng && out->n_stacks < SW_DIAG_STACKS; g++) {
		const struct sw_stk_agg *a = &s[gs[g].g.sample];
		struct sw_diag_stack *d = &out->stacks[out->n_stacks++];
		uint32_t nf = a->n;

		d->weight_ns = gs[g].g.weight_ns;
		d->samples = gs[g].g.samples;
		if (nf > SW_DIAG_FRAMES) {
			memcpy(d->frames, a->frames, (SW_DIAG_FRAMES - 1) * sizeof(char *));
			d->frames[SW_DIAG_FRAMES - 1] = "[truncated]";
			d->n_frames = SW_DIAG_FRAMES;
		} else {
			memcpy(d->frames, a->frames, nf * sizeof(char *));
			d->n_frames = nf;
		}
	}
	if (all && n_all) {
		for (size_t g = 0; g < ng; g++)
			all[g] = gs[g].g;
		*n_all = ng;
	}
	/* The innermost distinct frames of the hot path's stack, and in how
	 * much of the blocked time each appears; from the innermost one that
	 * carries a quarter of it: a path may end in thin leaves (a scavenge
	 * inside a JSON.parse, 4 % each), which would push the frames that
	 * hold the time (the parser, 90 %) out of the list. */
	if (out->n_stacks && total) {
		const struct sw_diag_stack *d = &out->stacks[0];
		uint32_t from = 0;

		for (uint32_t i = 0; i < d->n_frames; i++)
			if (frame_weight(s, n, d->frames[i]) * 4 >= total) {
				from = i;
				break;
			}
		for (uint32_t i = from; i < d->n_frames && out->n_top < SW_DIAG_TOP; i++) {
			const char *f = d->frames[i];
			bool seen = false;

			for (uint32_t j = 0; j < out->n_top && !seen; j++)
				seen = !strcmp(out->top[j].frame, f);
			if (seen || !strcmp(f, "[truncated]"))
				continue;
			out->top[out->n_top].frame = f;
			out->top[out->n_top].share = (double)frame_weight(s, n, f) / (double)total;
			out->n_top++;
		}
	}
out:
	free(idx);
	free(gs);
}

/* ---------------- the BPF unit ---------------- */

static struct sproc *find_sproc(struct sw_stacks *s, uint32_t pid)
{
	for (size_t i = 0; i < s->n_procs; i++)
		if (s->procs[i].pid == pid)
			return &s->procs[i];
	return NULL;
}

static void sample_free(struct sample *sm)
{
	if (sm->f) {
		sw_stk_frames_free(sm->f, sm->n);
		free(sm->f);
	}
	memset(sm, 0, sizeof(*sm));
}

static void thread_free(struct thread_samples *t)
{
	if (t->ring) {
		for (uint32_t i = 0; i < SAMPLES_PER_THREAD; i++)
			sample_free(&t->ring[i]);
		free(t->ring);
	}
	memset(t, 0, sizeof(*t));
}

static struct thread_samples *thread_slot(struct sw_stacks *s, uint32_t pid, uint32_t tid,
					  bool create)
{
	struct thread_samples *lru = NULL;

	for (int i = 0; i < MAX_THREADS; i++) {
		struct thread_samples *t = &s->th[i];

		if (t->ring && t->tid == tid && t->pid == pid)
			return t;
		if (!lru || !t->ring || (lru->ring && t->last_ns < lru->last_ns))
			lru = t;
	}
	if (!create)
		return NULL;
	thread_free(lru);
	lru->ring = calloc(SAMPLES_PER_THREAD, sizeof(*lru->ring));
	if (!lru->ring)
		return NULL;
	lru->pid = pid;
	lru->tid = tid;
	return lru;
}

static int read_py(struct sw_stacks *s, uint32_t pid, uint32_t tid, struct sw_py_stack *out)
{
	int err = sw_pyframes__read(s->pyf, pid, tid, out);

	if (err == -EAGAIN) /* changed under the reader: once more */
		err = sw_pyframes__read(s->pyf, pid, tid, out);
	return err;
}

/* Is the block a sample was taken in still running? Its Python frames can
 * be read now only then. */
static bool block_goes_on(struct sw_stacks *s, const struct sw_stk_sample *r)
{
	__u32 tid = r->tid;

	if (bpf_map__lookup_elem(s->skel->maps.threads, &tid, sizeof(tid), &s->st, sizeof(s->st),
				 0))
		return false;
	return sw_thread_busy(&s->st) && sw_thread_block_start(&s->st) == r->block_start_ns;
}

/* Frames read by sw_stacks__sleeping inside the sleep r captured. */
static const struct sw_py_stack *py_of_sleep(struct sw_stacks *s, const struct sw_stk_sample *r)
{
	for (int i = 0; i < PY_SLEEP_CACHE; i++) {
		const struct py_sleep *c = &s->pys[i];

		if (c->ok && c->tid == r->tid && c->pid == r->pid &&
		    c->read_start >= r->sleep_start_ns && c->read_end <= r->ts_ns)
			return c->py;
	}
	return NULL;
}

void sw_stacks__sleeping(struct sw_stacks *s, uint32_t pid, uint32_t tid, uint64_t since_ns)
{
	struct sproc *p = find_sproc(s, pid);
	struct py_sleep *c = NULL;

	if (!p || p->rt != SW_RT_PYTHON || !p->py_ok)
		return;
	for (int i = 0; i < PY_SLEEP_CACHE && !c; i++)
		if (s->pys[i].tid == tid && s->pys[i].pid == pid)
			c = &s->pys[i];
	if (c && c->ok && c->since_ns == since_ns)
		return; /* read once per sleep */
	/* else an empty entry, or the one read longest ago */
	if (!c) {
		c = &s->pys[0];
		for (int i = 1; i < PY_SLEEP_CACHE && c->py; i++)
			if (!s->pys[i].py || s->pys[i].read_end < c->read_end)
				c = &s->pys[i];
	}
	if (!c->py) {
		c->py = malloc(sizeof(*c->py));
		if (!c->py)
			return;
	}
	c->pid = pid;
	c->tid = tid;
	c->since_ns = since_ns;
	c->read_start = sw_mono_ns();
	c->ok = read_py(s, pid, tid, c->py) == 0;
	c->read_end = sw_mono_ns();
}

/*
 * Unwind a record into sm (frames owned by sm). live: the thread is still
 * where the record caught it (a sleep in progress). For a Python thread the
 * interpreter's frames are read now if the block still runs (an on-CPU
 * sample, taken a moment ago), or taken from a read made inside the sleep
 * (a capture sent at the wake-up); otherwise the stack stays native.
 */
static int take_sample(struct sw_stacks *s, const struct sw_stk_sample *r, size_t stack_len,
		       bool live, struct sample *sm)
{
	struct sproc *p = find_sproc(s, r->pid);
	const struct sw_py_stack *py = NULL;
	uint64_t t0 = sw_mono_ns(), dt;
	uint64_t regs[SW_STK_NREGS];
	uint32_t n_out;
	int n, err;

	for (uint32_t i = 0; i < SW_STK_NREGS; i++)
		regs[i] = r->regs[i];
	n = sw_unwind__stack(s->uw, r->pid, r->tid, regs, r->stack_base, r->stack, stack_len,
			     s->pcs, s->is_ret, UNWIND_FRAMES);
	if (n < 0)
		return n;
	if (n <= 1)
		s->unwind_failed++;
	sm->gc = -1;
	memset(s->is_eval, 0, sizeof(s->is_eval));
	if (p && p->rt == SW_RT_PYTHON && p->py_ok) {
		for (int i = 0; i < n; i++) {
			const char *sym = sw_unwind__symbol(s->uw, r->pid, s->pcs[i], s->is_ret[i]);

			s->is_eval[i] = sym && !strcmp(sym, CEVAL);
		}
		if (r->kind == SW_STK_SLEEP && !live) {
			py = py_of_sleep(s, r);
		} else if (live || block_goes_on(s, r)) {
			err = read_py(s, r->pid, r->tid, &s->py);
			if (!err)
				py = &s->py;
		}
		if (py)
			sm->gc = py->gc_collecting;
	}
	n_out = sw_stacks_splice(s->pcs, s->is_ret, s->is_eval, (uint32_t)n, py, s->frames,
				 UNWIND_FRAMES + SW_PY_MAX_FRAMES);
	sm->f = malloc(n_out * sizeof(*sm->f));
	if (!sm->f) {
		sw_stk_frames_free(s->frames, n_out);
		return -ENOMEM;
	}
	memcpy(sm->f, s->frames, n_out * sizeof(*sm->f));
	sm->n = (uint16_t)n_out;
	sm->ts = r->ts_ns;
	sm->block_start = r->block_start_ns;
	sm->kind = (uint8_t)r->kind;
	sm->weight = r->kind == SW_STK_ONCPU ? s->period_ns : r->weight_ns;
	dt = sw_mono_ns() - t0;
	s->taken++;
	s->take_ns += dt;
	if (dt > s->take_max_ns)
		s->take_max_ns = dt;
	return 0;
}

static int on_sample(void *ctx, void *data, size_t len)
{
	struct sw_stacks *s = ctx;
	const struct sw_stk_sample *r = data;
	struct thread_samples *t;
	struct sample *sm;

	if (len < SW_STK_HDR_LEN || r->stack_len > len - SW_STK_HDR_LEN) {
		s->lost++;
		return 0;
	}
	t = thread_slot(s, r->pid, r->tid, true);
	if (!t) {
		s->lost++;
		return 0;
	}
	sm = &t->ring[t->head];
	sample_free(sm);
	if (take_sample(s, r, r->stack_len, false, sm)) {
		s->lost++;
		return 0;
	}
	t->head = (t->head + 1) % SAMPLES_PER_THREAD;
	if (t->count < SAMPLES_PER_THREAD)
		t->count++;
	t->last_ns = r->ts_ns;
	return 0;
}

static int open_perf_events(struct sw_stacks *s, uint32_t hz)
{
	int ncpu = libbpf_num_possible_cpus();
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.size = sizeof(attr),
		/* cpu-clock counts ns: a fixed period, not a frequency the
		 * kernel adapts, so every sample stands for the same time */
		.sample_period = 1000000000ull / hz,
	};

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	s->perf_fds = calloc((size_t)ncpu, sizeof(int));
	s->perf_links = calloc((size_t)ncpu, sizeof(*s->perf_links));
	if (!s->perf_fds || !s->perf_links)
		return -ENOMEM;
	for (int cpu = 0; cpu < ncpu; cpu++) {
		int fd = (int)syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);

		s->perf_fds[cpu] = -1;
		if (fd < 0) {
			if (errno == ENODEV)
				continue; /* possible but offline */
			return -errno;
		}
		s->perf_fds[cpu] = fd;
		s->perf_links[cpu] = bpf_program__attach_perf_event(s->skel->progs.on_cpu_sample, fd);
		if (!s->perf_links[cpu])
			return -errno;
		s->n_perf = cpu + 1;
	}
	return 0;
}

struct sw_stacks *sw_stacks__new(const struct sw_stacks_opts *o, struct loopmon *lm,
				 struct sw_tio *t)
{
	struct sw_stacks *s;
	int err, ncpu;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->t = t;
	s->period_ns = 1000000000ull / (o->sample_hz ? o->sample_hz : 99);
	s->gate_ns = sw_stk_gate_ns(o->threshold_ns);
	s->uw = sw_unwind__new(t);
	s->pyf = sw_pyframes__new(t);
	s->names = calloc(NAME_SLOTS, sizeof(*s->names));
	if (!s->uw || !s->pyf || !s->names) {
		err = -ENOMEM;
		goto cleanup;
	}
	s->skel = stacks_bpf__open();
	if (!s->skel) {
		err = -errno;
		goto cleanup;
	}
	s->skel->rodata->gate_ns = s->gate_ns;
	ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0) {
		err = ncpu ? ncpu : -EINVAL;
		goto cleanup;
	}
	err = bpf_map__set_max_entries(s->skel->maps.scratch, (uint32_t)ncpu);
	if (!err)
		err = bpf_map__reuse_fd(s->skel->maps.threads, loopmon__threads_fd(lm));
	if (!err)
		err = bpf_map__reuse_fd(s->skel->maps.tid_hint, loopmon__tid_hint_fd(lm));
	if (!err)
		bpf_program__set_autoload(s->skel->progs.sleep_switch, o->sleep_capture);
	if (!err)
		err = stacks_bpf__load(s->skel);
	if (!err)
		err = stacks_bpf__attach(s->skel);
	if (err)
		goto cleanup;
	err = open_perf_events(s, o->sample_hz ? o->sample_hz : 99);
	if (err)
		goto cleanup;
	err = ring_buffer__add(loopmon__ring(lm), bpf_map__fd(s->skel->maps.samples), on_sample, s);
	if (err)
		goto cleanup;
	s->drain = ring_buffer__new(bpf_map__fd(s->skel->maps.samples), on_sample, s, NULL);
	if (!s->drain) {
		err = -errno;
		goto cleanup;
	}
	return s;
cleanup:
	sw_stacks__free(s);
	errno = -err;
	return NULL;
}

static void arena_free(struct arena_blk *b)
{
	while (b) {
		struct arena_blk *n = b->next;

		free(b);
		b = n;
	}
}

void sw_stacks__free(struct sw_stacks *s)
{
	if (!s)
		return;
	if (s->taken)
		sw_dbg("stacks: %llu samples unwound, %.1f us each on average, %.1f ms at most",
		       (unsigned long long)s->taken, (double)s->take_ns / (double)s->taken / 1e3,
		       (double)s->take_max_ns / 1e6);
	if (s->collects)
		sw_dbg("stacks: %llu incidents given stacks, %.1f us each on average, %.1f ms at most",
		       (unsigned long long)s->collects,
		       (double)s->collect_ns / (double)s->collects / 1e3,
		       (double)s->collect_max_ns / 1e6);
	for (int i = 0; i < s->n_perf; i++) {
		bpf_link__destroy(s->perf_links[i]);
		if (s->perf_fds[i] >= 0)
			close(s->perf_fds[i]);
	}
	free(s->perf_links);
	free(s->perf_fds);
	ring_buffer__free(s->drain);
	stacks_bpf__destroy(s->skel);
	for (int i = 0; i < MAX_THREADS; i++)
		thread_free(&s->th[i]);
	sample_free(&s->cur_sleep);
	for (int i = 0; i < PY_SLEEP_CACHE; i++)
		free(s->pys[i].py);
	sw_unwind__free(s->uw);
	sw_pyframes__free(s->pyf);
	arena_free(s->arena);
	free(s->names);
	free(s->agg);
	free(s->agg_frames);
	free(s->groups);
	free(s->procs);
	free(s);
}

void sw_stacks__add_process(struct sw_stacks *s, const struct sw_proc_info *pi)
{
	struct sproc *p = find_sproc(s, (uint32_t)pi->pid), *np;

	if (!p) {
		np = realloc(s->procs, (s->n_procs + 1) * sizeof(*np));
		if (!np)
			return;
		s->procs = np;
		p = &s->procs[s->n_procs++];
	}
	memset(p, 0, sizeof(*p));
	p->pid = (uint32_t)pi->pid;
	p->rt = pi->runtime;
	snprintf(p->comm, sizeof(p->comm), "%s", pi->comm);
	if (pi->runtime == SW_RT_PYTHON)
		p->py_ok = sw_pyframes__add_process(s->pyf, pi) == 0;
}

void sw_stacks__remove_process(struct sw_stacks *s, uint32_t pid)
{
	for (size_t i = 0; i < s->n_procs; i++)
		if (s->procs[i].pid == pid) {
			s->procs[i] = s->procs[--s->n_procs];
			break;
		}
	for (int i = 0; i < MAX_THREADS; i++)
		if (s->th[i].ring && s->th[i].pid == pid)
			thread_free(&s->th[i]);
	sw_pyframes__remove_process(s->pyf, pid);
	sw_unwind__forget(s->uw, pid);
}

/* ---------------- collect ---------------- */

static void arena_reset(struct sw_stacks *s)
{
	if (s->arena) {
		arena_free(s->arena->next);
		s->arena->next = NULL;
		s->arena->used = 0;
	}
	memset(s->names, 0, NAME_SLOTS * sizeof(*s->names));
}

static const char *arena_str(struct sw_stacks *s, const char *str)
{
	size_t len = strlen(str) + 1;
	struct arena_blk *b = s->arena;

	if (!b || b->cap - b->used < len) {
		size_t cap = len > 65536 ? len : 65536;

		b = malloc(sizeof(*b) + cap);
		if (!b)
			return "[out of memory]";
		b->cap = cap;
		b->used = 0;
		b->next = NULL;
		/* the first block stays first: arena_reset keeps it */
		if (s->arena) {
			b->next = s->arena->next;
			s->arena->next = b;
		} else {
			s->arena = b;
		}
	}
	memcpy(b->data + b->used, str, len);
	b->used += len;
	return b->data + b->used - len;
}

static const char *frame_name(struct sw_stacks *s, uint32_t pid, const struct sw_stk_frame *f)
{
	uint64_t key = (f->pc << 1 | f->is_return) + 1;
	uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 51) & (NAME_SLOTS - 1);
	char buf[512];

	if (f->py)
		return f->py;
	for (uint32_t i = 0; i < 16; i++) {
		struct name_slot *ns = &s->names[(h + i) & (NAME_SLOTS - 1)];

		if (ns->key == key)
			return ns->name;
		if (!ns->key) {
			ns->key = key;
			ns->name = arena_str(s, sw_unwind__name(s->uw, pid, f->pc, f->is_return,
								buf, sizeof(buf)));
			return ns->name;
		}
	}
	return arena_str(s, sw_unwind__name(s->uw, pid, f->pc, f->is_return, buf, sizeof(buf)));
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
	void *np;
	size_t c = *cap ? *cap : 64;

	if (need <= *cap)
		return true;
	while (c < need)
		c *= 2;
	np = realloc(*p, c * elem);
	if (!np)
		return false;
	*p = np;
	*cap = c;
	return true;
}

/* The sleep in progress of tid, unwound once per sleep. */
static struct sample *sleep_in_progress(struct sw_stacks *s, uint32_t pid, uint32_t tid,
					uint64_t start_ns, uint64_t end_ns)
{
	__u32 k = tid % SW_STK_SLEEP_SLOTS;
	const struct sw_stk_sample *r = &s->slot.s;

	if (bpf_map__lookup_elem(s->skel->maps.sleep_slots, &k, sizeof(k), &s->slot,
				 sizeof(s->slot), 0))
		return NULL;
	if (r->tid != tid || r->pid != pid || !r->sleep_start_ns || r->sleep_start_ns < start_ns ||
	    r->sleep_start_ns > end_ns || r->stack_len > SW_STK_BYTES)
		return NULL;
	if (s->cur_sleep_tid != tid || s->cur_sleep_start != r->sleep_start_ns) {
		sample_free(&s->cur_sleep);
		s->cur_sleep_tid = 0;
		if (take_sample(s, r, r->stack_len, true, &s->cur_sleep))
			return NULL;
		s->cur_sleep_tid = tid;
		s->cur_sleep_start = r->sleep_start_ns;
	}
	s->cur_sleep.weight = end_ns - r->sleep_start_ns;
	return &s->cur_sleep;
}

static int add_agg(struct sw_stacks *s, size_t *n, size_t *nf, uint32_t pid,
		   const struct sample *sm)
{
	size_t base = *nf;

	if (!grow((void **)&s->agg, &s->agg_cap, *n + 1, sizeof(*s->agg)) ||
	    !grow((void **)&s->agg_frames, &s->agg_frames_cap, *nf + sm->n + 1,
		  sizeof(*s->agg_frames)))
		return -ENOMEM;
	for (uint32_t i = 0; i < sm->n; i++)
		s->agg_frames[(*nf)++] = frame_name(s, pid, &sm->f[i]);
	/* frames are re-pointed below, once the array stops moving */
	s->agg[*n].frames = (const char *const *)(uintptr_t)base;
	s->agg[*n].n = sm->n;
	s->agg[*n].weight_ns = sm->weight;
	s->agg[*n].gc = sm->gc;
	(*n)++;
	return 0;
}

static int collect(struct sw_stacks *s, uint32_t pid, uint32_t tid, uint64_t start_ns,
		   uint64_t end_ns, struct sw_diag_stacks *out);

int sw_stacks__collect(struct sw_stacks *s, uint32_t pid, uint32_t tid, uint64_t start_ns,
		       uint64_t end_ns, struct sw_diag_stacks *out)
{
	uint64_t t0 = sw_mono_ns(), dt;
	int err = collect(s, pid, tid, start_ns, end_ns, out);

	dt = sw_mono_ns() - t0;
	s->collects++;
	s->collect_ns += dt;
	if (dt > s->collect_max_ns)
		s->collect_max_ns = dt;
	return err;
}

static int collect(struct sw_stacks *s, uint32_t pid, uint32_t tid, uint64_t start_ns,
		   uint64_t end_ns, struct sw_diag_stacks *out)
{
	struct thread_samples *t;
	struct sample *sleep;
	struct sproc *p;
	size_t n = 0, nf = 0;
	const char *note = NULL;

	ring_buffer__consume(s->drain);
	t = thread_slot(s, pid, tid, false);
	memset(out, 0, sizeof(*out));
	out->gc_share = -1;
	arena_reset(s);
	s->n_groups = 0;
	p = find_sproc(s, pid);
	snprintf(s->comm, sizeof(s->comm), "%s", p ? p->comm : "?");
	if (t) {
		for (uint32_t i = 0; i < t->count; i++) {
			uint32_t j = (t->head + SAMPLES_PER_THREAD - t->count + i) % SAMPLES_PER_THREAD;
			const struct sample *sm = &t->ring[j];
			/* a sleep capture is stamped at its wake-up */
			uint64_t at = sm->kind == SW_STK_ONCPU ? sm->ts : sm->ts - sm->weight;

			if (at < start_ns || sm->ts > end_ns + 1000000 || !sm->n)
				continue;
			if (add_agg(s, &n, &nf, pid, sm))
				break;
		}
	}
	sleep = sleep_in_progress(s, pid, tid, start_ns, end_ns);
	if (sleep && sleep->n)
		add_agg(s, &n, &nf, pid, sleep);
	for (size_t i = 0; i < n; i++)
		s->agg[i].frames = s->agg_frames + (uintptr_t)s->agg[i].frames;
	if (!grow((void **)&s->groups, &s->groups_cap, n ? n : 1, sizeof(*s->groups)))
		return -ENOMEM;
	sw_stacks_aggregate(s->agg, n, out, s->groups, &s->n_groups);
	/* how to get better names, until a final incident has said it */
	if (p && !p->noted) {
		if (p->rt == SW_RT_NODE && sw_unwind__unnamed_jit(s->uw, pid))
			note = JIT_NOTE;
		else if (p->rt == SW_RT_PYTHON)
			note = sw_pyframes__note(s->pyf, pid);
		if (note)
			out->note = arena_str(s, note);
	}
	return n ? 0 : -ENOENT;
}

void sw_stacks__note_given(struct sw_stacks *s, uint32_t pid)
{
	struct sproc *p = find_sproc(s, pid);

	if (p)
		p->noted = true;
}

/* A frame in folded format: ';' separates frames, so it cannot be in one. */
static void folded_frame(FILE *f, const char *name)
{
	for (const char *c = name; *c; c++)
		fputc(*c == ';' ? ':' : (*c == '\n' ? ' ' : *c), f);
}

void sw_stacks__write_folded(struct sw_stacks *s, FILE *f, const char *comm)
{
	for (size_t g = 0; g < s->n_groups; g++) {
		const struct sw_stk_agg *a = &s->agg[s->groups[g].sample];
		uint64_t us = s->groups[g].weight_ns / 1000;

		if (!a->n || !us)
			continue;
		folded_frame(f, comm && comm[0] ? comm : s->comm);
		for (uint32_t i = a->n; i > 0; i--) {
			fputc(';', f);
			folded_frame(f, a->frames[i - 1]);
		}
		fprintf(f, " %llu\n", (unsigned long long)us);
	}
	fflush(f);
}

void sw_stacks__health(struct sw_stacks *s, uint64_t *v)
{
	const struct sw_bpf_stats *b = &s->skel->bss->stats;
	struct sw_pyframes_stats ps;

	for (int i = 0; i < SW_HEALTH__COUNT; i++)
		v[i] += b->v[i];
	v[SW_HEALTH_stack_samples_lost] += s->lost;
	v[SW_HEALTH_unwind_failed] += s->unwind_failed;
	/* a thread with no Python frame running is not a failure */
	sw_pyframes__stats(s->pyf, &ps);
	v[SW_HEALTH_py_frames_failed] += ps.changed + ps.faults + ps.other;
}
