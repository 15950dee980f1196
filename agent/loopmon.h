/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The loopmon BPF unit's user side (bpf/loopmon.bpf.c): the split skeleton
 * lifecycle (open -> configure -> load -> attach), the target filter, and
 * reads of the per-thread state that BPF aggregates.
 *
 * agent/X.h is the API of BPF unit X; bpf/X.h is what both sides share,
 * included by agent code as "bpf/X.h" so that the two never shadow each
 * other on the include path.
 */
#ifndef SW_AGENT_LOOPMON_H
#define SW_AGENT_LOOPMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/types.h>
#include "bpf/loopmon.h"
#include "thread_source.h"

struct loopmon;

struct loopmon_opts {
	uint64_t threshold_ns;
	bool diag;		/* sched_switch split of blocks */
	uint32_t max_threads;	/* 0: SW_MAX_THREADS */
	bool force_raw_syscalls; /* skip tracefs; for tests of the fallback */
};

typedef int (*loopmon_event_fn)(void *ctx, const struct sw_event *e);

/* NULL and errno set on failure. */
struct loopmon *loopmon__open(const struct loopmon_opts *opts);
int loopmon__load(struct loopmon *lm);
int loopmon__attach(struct loopmon *lm);
void loopmon__free(struct loopmon *lm);

/* "syscall tracepoints" or "raw syscall tracepoints (tracefs unavailable)" */
const char *loopmon__mode(const struct loopmon *lm);

/* The target filter map, for units that share it (agent/lastwords.c). */
int loopmon__targets_fd(struct loopmon *lm);
/* Classic syscall tracepoints are usable (tracefs is mounted). */
bool loopmon__tracefs(const struct loopmon *lm);

int loopmon__add_target(struct loopmon *lm, uint32_t pid, uint32_t flags);
int loopmon__del_target(struct loopmon *lm, uint32_t pid);

/* Consume ring buffer events, waiting up to timeout_ms. Returns the number
 * consumed or -errno. */
int loopmon__poll(struct loopmon *lm, int timeout_ms, loopmon_event_fn fn, void *ctx);

/* The thread states and the target filter in the BPF maps, as the source
 * agent/loops.c reads (see thread_source.h for each operation); valid
 * until loopmon__free(). */
struct sw_thread_source loopmon__source(struct loopmon *lm);

int loopmon__read_thread(struct loopmon *lm, uint32_t tid, struct sw_thread *out);
int loopmon__forget_thread(struct loopmon *lm, uint32_t tid);
/* Insert a thread state built by sw_thread_seed() (bpf/loopmon.h), and count
 * it in the tid hint. -EEXIST when BPF got there first. */
int loopmon__seed_thread(struct loopmon *lm, const struct sw_thread *t);
int loopmon__next_thread(struct loopmon *lm, const uint32_t *prev, uint32_t *next);
/* fd of one of the unit's maps (loaded), for units that share its thread
 * states (bpf_map__reuse_fd); -errno when there is none of that name. */
int loopmon__map_fd(struct loopmon *lm, const char *name);
void loopmon__bpf_stats(struct loopmon *lm, struct sw_bpf_stats *out);

/* For BPF units that share loopmon's thread states (bpf/stacks.bpf.c):
 * the fds of its loaded threads and tid_hint maps, and its ring buffer
 * consumer, to which they add their own rings so that one poll serves all. */
int loopmon__threads_fd(struct loopmon *lm);
int loopmon__tid_hint_fd(struct loopmon *lm);
struct ring_buffer *loopmon__ring(struct loopmon *lm);

#endif
