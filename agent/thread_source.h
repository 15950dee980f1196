/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Thread source: where agent/loops.c gets the per-thread loop states that
 * BPF aggregates, and where it sends the target filter. agent/loopmon.c is
 * the real one, over the BPF maps; agent/recording.c wraps a source to write
 * down what it answers, and tests/unit/test_loops.c answers from recorded or
 * hand-made states, so the agent's state machine is tested without root.
 */
#ifndef SW_AGENT_THREAD_SOURCE_H
#define SW_AGENT_THREAD_SOURCE_H

#include <stdint.h>
#include "bpf/loopmon.h"

struct sw_thread_source_ops {
	/* Snapshot of a tracked thread; -ENOENT when it is not tracked. */
	int (*read_thread)(void *ctx, uint32_t tid, struct sw_thread *out);
	/* Stop tracking a thread (BPF learns it again at its next wait). */
	int (*forget_thread)(void *ctx, uint32_t tid);
	/* Iterate tracked tids: prev NULL for the first; -ENOENT at the end. */
	int (*next_thread)(void *ctx, const uint32_t *prev, uint32_t *next);
	/* Track a thread BPF has not seen yet, in the state t (sw_thread_seed);
	 * -EEXIST when BPF got there first. */
	int (*seed_thread)(void *ctx, const struct sw_thread *t);
	/* The target filter: processes whose loop waits start tracking. */
	int (*add_target)(void *ctx, uint32_t pid, uint32_t flags);
	int (*del_target)(void *ctx, uint32_t pid);
	/* The source's own health counters (BPF's), cumulative. */
	void (*stats)(void *ctx, struct sw_bpf_stats *out);
};

struct sw_thread_source {
	const struct sw_thread_source_ops *ops;
	void *ctx;
};

#endif
