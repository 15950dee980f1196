/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * loopmon's thread states, as BPF C: the maps bpf/loopmon.bpf.c owns and
 * the units that read them (stacks, sysio) share by fd (the agent calls
 * bpf_map__reuse_fd before load, which refuses a map of another shape).
 * One definition, included by every unit, so the shapes cannot drift.
 * BPF only: user space reads the maps through agent/loopmon.h.
 */
#ifndef SW_LOOPMON_MAPS_H
#define SW_LOOPMON_MAPS_H

#include "loopmon.h"

/* Not preallocated: a value is ~7 KiB and most slots stay empty. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_MAX_THREADS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* tid */
	__type(value, struct sw_thread);
} threads SEC(".maps");

/*
 * tid_hint[tid % SLOTS] counts the tracked threads whose tid falls in the
 * slot. 0 means "surely not tracked": sched_switch, which runs at every
 * context switch of the host, stops there. An array lookup is inlined by the
 * verifier, a hash lookup is a helper call and a hash: ~40 ns here (bench/).
 * BPF counts the threads it inserts, the agent the one it seeds (a stuck
 * Node main thread at attach). The agent forgetting a thread leaves a stale
 * count, which costs a useless hash lookup, never a missed thread.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_TID_HINT_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} tid_hint SEC(".maps");

static __always_inline bool maybe_tracked(__u32 tid)
{
	__u32 slot = sw_tid_hint_slot(tid);
	__u32 *n = bpf_map_lookup_elem(&tid_hint, &slot);

	return n && *n;
}

#endif
