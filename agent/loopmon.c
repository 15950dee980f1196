// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "log.h"
#include "bpf/loopmon.h"
#include "loopmon.skel.h"
#include "loopmon.h"

#define TRACEFS "/sys/kernel/tracing"

struct loopmon {
	struct loopmon_bpf *skel;
	struct ring_buffer *rb;
	loopmon_event_fn fn;
	void *fn_ctx;
	bool classic_tp;
	bool forced_raw;
	bool mounted_tracefs;
	uint64_t short_events; /* ring records too short to be ours: counted, not dropped silently */
};

/*
 * Classic syscall tracepoints need tracefs to map names to ids. A fresh
 * machine may not have it mounted: mount it (we are root), and remember to
 * undo that. If that fails too, the caller falls back to tp_btf/sys_enter.
 */
static bool ensure_tracefs(struct loopmon *lm)
{
	if (access(TRACEFS "/events/syscalls", F_OK) == 0 ||
	    access("/sys/kernel/debug/tracing/events/syscalls", F_OK) == 0)
		return true;
	if (mount("tracefs", TRACEFS, "tracefs", 0, NULL)) {
		sw_dbg("cannot mount tracefs on %s: %s", TRACEFS, strerror(errno));
		return false;
	}
	lm->mounted_tracefs = true;
	if (access(TRACEFS "/events/syscalls", F_OK) == 0)
		return true;
	sw_dbg("tracefs has no syscall events (CONFIG_FTRACE_SYSCALLS off?)");
	return false;
}

struct loopmon *loopmon__open(const struct loopmon_opts *opts)
{
	struct loopmon *lm;
	struct bpf_program *p;
	int err;

	lm = calloc(1, sizeof(*lm));
	if (!lm)
		return NULL;
	lm->skel = loopmon_bpf__open();
	if (!lm->skel) {
		err = -errno;
		goto cleanup;
	}
	lm->skel->rodata->threshold_ns = opts->threshold_ns;
	lm->skel->rodata->diag_enabled = opts->diag;
	if (opts->max_threads) {
		err = bpf_map__set_max_entries(lm->skel->maps.threads, opts->max_threads);
		if (err)
			goto cleanup;
	}
	lm->forced_raw = opts->force_raw_syscalls;
	lm->classic_tp = !opts->force_raw_syscalls && ensure_tracefs(lm);
	bpf_object__for_each_program(p, lm->skel->obj)
	{
		const char *sec = bpf_program__section_name(p);
		bool classic = !strncmp(sec, "tracepoint/syscalls/", 20);
		bool raw = !strcmp(sec, "tp_btf/sys_enter") || !strcmp(sec, "tp_btf/sys_exit");

		if (classic)
			bpf_program__set_autoload(p, lm->classic_tp);
		else if (raw)
			bpf_program__set_autoload(p, !lm->classic_tp);
		else if (!strcmp(sec, "tp_btf/sched_switch"))
			bpf_program__set_autoload(p, opts->diag);
	}
	return lm;
cleanup:
	loopmon__free(lm);
	errno = -err;
	return NULL;
}

int loopmon__load(struct loopmon *lm)
{
	return loopmon_bpf__load(lm->skel);
}

static int on_ring_event(void *ctx, void *data, size_t len)
{
	struct loopmon *lm = ctx;

	if (len < sizeof(struct sw_event)) {
		lm->short_events++;
		return 0;
	}
	return lm->fn ? lm->fn(lm->fn_ctx, data) : 0;
}

int loopmon__attach(struct loopmon *lm)
{
	int err;

	err = loopmon_bpf__attach(lm->skel);
	if (err)
		return err;
	lm->rb = ring_buffer__new(bpf_map__fd(lm->skel->maps.events), on_ring_event, lm, NULL);
	if (!lm->rb)
		return -errno;
	return 0;
}

const char *loopmon__mode(const struct loopmon *lm)
{
	if (lm->classic_tp)
		return "syscall tracepoints";
	return lm->forced_raw ? "raw syscall tracepoints (--raw-syscalls)"
			      : "raw syscall tracepoints (tracefs unavailable)";
}

void loopmon__free(struct loopmon *lm)
{
	if (!lm)
		return;
	ring_buffer__free(lm->rb);
	loopmon_bpf__destroy(lm->skel);
	/* lazily: a reader elsewhere may have started using it meanwhile */
	if (lm->mounted_tracefs)
		umount2(TRACEFS, MNT_DETACH);
	free(lm);
}

int loopmon__targets_fd(struct loopmon *lm)
{
	return bpf_map__fd(lm->skel->maps.targets);
}

bool loopmon__tracefs(const struct loopmon *lm)
{
	return lm->classic_tp;
}

int loopmon__add_target(struct loopmon *lm, uint32_t pid, uint32_t flags)
{
	struct sw_target t = { .flags = flags };
	__u32 key = pid;

	return bpf_map__update_elem(lm->skel->maps.targets, &key, sizeof(key), &t, sizeof(t),
				    BPF_ANY);
}

int loopmon__del_target(struct loopmon *lm, uint32_t pid)
{
	__u32 key = pid;

	return bpf_map__delete_elem(lm->skel->maps.targets, &key, sizeof(key), 0);
}

int loopmon__poll(struct loopmon *lm, int timeout_ms, loopmon_event_fn fn, void *ctx)
{
	lm->fn = fn;
	lm->fn_ctx = ctx;
	return ring_buffer__poll(lm->rb, timeout_ms);
}

int loopmon__read_thread(struct loopmon *lm, uint32_t tid, struct sw_thread *out)
{
	return bpf_map__lookup_elem(lm->skel->maps.threads, &tid, sizeof(tid), out, sizeof(*out),
				    0);
}

int loopmon__forget_thread(struct loopmon *lm, uint32_t tid)
{
	return bpf_map__delete_elem(lm->skel->maps.threads, &tid, sizeof(tid), 0);
}

int loopmon__seed_thread(struct loopmon *lm, const struct sw_thread *t)
{
	__u32 tid = t->tid, slot = sw_tid_hint_slot(tid), hint = 0;
	int err;

	err = bpf_map__update_elem(lm->skel->maps.threads, &tid, sizeof(tid), t, sizeof(*t),
				   BPF_NOEXIST);
	if (err)
		return err;
	/* BPF counts the threads it inserts; this one is ours to count. A
	 * concurrent BPF insert into the same slot could lose one count, which
	 * only costs a thread's sched_switch split, never its loop data. */
	bpf_map__lookup_elem(lm->skel->maps.tid_hint, &slot, sizeof(slot), &hint, sizeof(hint), 0);
	hint++;
	bpf_map__update_elem(lm->skel->maps.tid_hint, &slot, sizeof(slot), &hint, sizeof(hint), 0);
	return 0;
}

int loopmon__next_thread(struct loopmon *lm, const uint32_t *prev, uint32_t *next)
{
	return bpf_map__get_next_key(lm->skel->maps.threads, prev, next, sizeof(*next));
}

int loopmon__map_fd(struct loopmon *lm, const char *name)
{
	return bpf_object__find_map_fd_by_name(lm->skel->obj, name);
}

void loopmon__bpf_stats(struct loopmon *lm, struct sw_bpf_stats *out)
{
	/* .bss is mmap'ed: a plain read sees the counters the BPF side bumps */
	*out = lm->skel->bss->stats;
	out->v[SW_HEALTH_failed_reads] += lm->short_events;
}

int loopmon__threads_fd(struct loopmon *lm)
{
	return bpf_map__fd(lm->skel->maps.threads);
}

int loopmon__tid_hint_fd(struct loopmon *lm)
{
	return bpf_map__fd(lm->skel->maps.tid_hint);
}

struct ring_buffer *loopmon__ring(struct loopmon *lm)
{
	return lm->rb;
}

static int src_read_thread(void *ctx, uint32_t tid, struct sw_thread *out)
{
	return loopmon__read_thread(ctx, tid, out);
}

static int src_forget_thread(void *ctx, uint32_t tid)
{
	return loopmon__forget_thread(ctx, tid);
}

static int src_next_thread(void *ctx, const uint32_t *prev, uint32_t *next)
{
	return loopmon__next_thread(ctx, prev, next);
}

static int src_seed_thread(void *ctx, const struct sw_thread *t)
{
	return loopmon__seed_thread(ctx, t);
}

static int src_add_target(void *ctx, uint32_t pid, uint32_t flags)
{
	return loopmon__add_target(ctx, pid, flags);
}

static int src_del_target(void *ctx, uint32_t pid)
{
	return loopmon__del_target(ctx, pid);
}

static void src_stats(void *ctx, struct sw_bpf_stats *out)
{
	loopmon__bpf_stats(ctx, out);
}

static const struct sw_thread_source_ops loopmon_source_ops = {
	.read_thread = src_read_thread,
	.forget_thread = src_forget_thread,
	.next_thread = src_next_thread,
	.seed_thread = src_seed_thread,
	.add_target = src_add_target,
	.del_target = src_del_target,
	.stats = src_stats,
};

struct sw_thread_source loopmon__source(struct loopmon *lm)
{
	return (struct sw_thread_source){ .ops = &loopmon_source_ops, .ctx = lm };
}
