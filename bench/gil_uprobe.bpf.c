// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * gil_uprobe: uprobes on PyEval_SaveThread and PyEval_RestoreThread and a
 * uretprobe on RestoreThread, per thread, in one target process.
 *
 * Not part of the agent. This is the per4m-style mechanism (uprobe and
 * uretprobe on take_gil/drop_gil) as it can be done on Debian's stripped
 * python3.11, which has no take_gil symbol but exports the two functions
 * that bracket every release and take of the GIL around blocking calls
 * (research notes, python_gil.md). The bench runs a service under it to
 * measure that approach's cost against the agent's futex tracepoints. It
 * still undercounts: the eval loop's forced drop/take (the eval breaker) goes
 * through neither function, so the cost measured is a lower bound.
 *
 * The probes are attached with the target's pid, so the breakpoints are
 * installed in that process only; other processes mapping the same binary
 * do not trap.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "gil_uprobe.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* BPF_KPROBE/BPF_KRETPROBE: the uprobe spellings came after libbpf 1.1 (Debian
 * 12); the context is the same pt_regs */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GIL_UPROBE_MAX_THREADS);
	__type(key, __u32);
	__type(value, struct gil_uprobe_thread);
} threads SEC(".maps");

/* threads beyond the map's size: counted, never silently lost */
__u64 dropped;

static struct gil_uprobe_thread *thread_get(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct gil_uprobe_thread *t, zero = {};

	t = bpf_map_lookup_elem(&threads, &tid);
	if (t)
		return t;
	/* only this thread inserts its own tid, so a failure means the map is full */
	if (bpf_map_update_elem(&threads, &tid, &zero, BPF_NOEXIST)) {
		__sync_fetch_and_add(&dropped, 1);
		return NULL;
	}
	return bpf_map_lookup_elem(&threads, &tid);
}

SEC("uprobe")
int BPF_KPROBE(save_thread)
{
	struct gil_uprobe_thread *t = thread_get();

	/* only this thread writes its entry: no atomics needed */
	if (t)
		t->saves++;
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(restore_thread)
{
	struct gil_uprobe_thread *t = thread_get();

	if (t) {
		t->restores++;
		t->entry_ns = bpf_ktime_get_ns();
	}
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(restore_thread_ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct gil_uprobe_thread *t = bpf_map_lookup_elem(&threads, &tid);

	/* no entry: attached while this thread was inside RestoreThread */
	if (!t || !t->entry_ns)
		return 0;
	t->wait_ns += bpf_ktime_get_ns() - t->entry_ns;
	t->entry_ns = 0;
	t->returns++;
	return 0;
}
