/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loops: the runtime-aware layer over the BPF thread states. It knows the
 * target processes and their runtimes, names each loop thread's role (Node
 * main / worker / internal helper, Python asyncio), turns BPF snapshots into
 * per-interval summaries, and finds blocks while they are still going on.
 */
#ifndef SW_LOOPS_H
#define SW_LOOPS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include "discovery.h"
#include "lastwords.h"
#include "report.h"
#include "thread_source.h"

struct sw_loops;

/* What a loop thread is to its process. Reports carry its name. */
enum sw_role {
	SW_ROLE_LOOP = 0, /* any other epoll loop (runtime native) */
	SW_ROLE_MAIN,	  /* Node's main thread */
	SW_ROLE_WORKER,	  /* a Node worker_threads loop */
	SW_ROLE_HELPER,	  /* Node's own platform and inspector loops: measured, not reported */
	SW_ROLE_ASYNCIO,  /* Python's asyncio (or uvloop) thread */
};

/* "loop", "main", "worker", "helper", "asyncio": the role field of the
 * JSON lines and of the wire protocol. */
const char *sw_role_name(enum sw_role role);

/* src: the thread states and target filter (loopmon__source() for real),
 * copied; what it points to must outlive the sw_loops. */
struct sw_loops *sw_loops__new(const struct sw_thread_source *src, struct sw_report *rep,
			       uint64_t threshold_ns, bool diag);
void sw_loops__free(struct sw_loops *l);

struct sw_stacks;
/* Give incidents their stacks (agent/stacks.h); folded: where --folded
 * appends each final incident's stacks, or NULL. Neither is owned. */
void sw_loops__set_stacks(struct sw_loops *l, struct sw_stacks *stacks, FILE *folded);
/* Where the last words of an exiting process come from (agent/lastwords.c);
 * without one, an exit is explained by its code alone. */
void sw_loops__set_exit_source(struct sw_loops *l, const struct sw_exit_source *src);
/* The memory-growth window (common/memgrowth.h); 0: its default. Applies to
 * processes added after the call. */
void sw_loops__set_memory_window(struct sw_loops *l, uint32_t window_s);
/* Syscalls of each incident from this sysio unit (agent/sysio.h); NULL or
 * never called: none. */
struct sw_sysio;
void sw_loops__set_sysio(struct sw_loops *l, struct sw_sysio *sysio);
/* GIL contention of Python targets (agent/gilmon.c); NULL: not measured. */
struct sw_gil;
void sw_loops__set_gil(struct sw_loops *l, struct sw_gil *gil);

/* Start watching a discovered process (adds it to the BPF target filter). */
int sw_loops__add_process(struct sw_loops *l, const struct sw_proc_info *pi);

/* Ring buffer callback. */
int sw_loops__on_event(void *ctx, const struct sw_event *e);

/* Every ~100 ms: blocks in progress, exited processes, closed loops. */
void sw_loops__tick(struct sw_loops *l, uint64_t now_ns);
/* Every interval: one summary per loop thread, and the agent's health. */
void sw_loops__summarize(struct sw_loops *l, uint64_t now_ns, const struct sw_health *extra);

/* Processes still alive. */
size_t sw_loops__live_processes(const struct sw_loops *l);
uint64_t sw_loops__lost_events(const struct sw_loops *l);

#endif
