// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * lastwords: what a target process said before it died (bpf/lastwords.h).
 *
 * The write tracepoint runs for every write(2) of the host while attached;
 * it returns after one load for any fd but 2, and after a hash lookup for
 * the stderr of processes we do not watch. Writes to stderr are rare in a
 * healthy service, so the copy (at most 512 bytes) costs nothing that
 * matters. The target filter is loopmon's own map, shared by fd.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "loopmon.h"
#include "lastwords.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct sw_bpf_stats stats = {};

/* loopmon's, reused (bpf_map__reuse_fd) before load */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct sw_target);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_MAX_TARGETS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct sw_last_words);
} words SEC(".maps");

/* a zeroed value to insert from: too big for the stack */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_last_words);
} words_zero SEC(".maps");

static __always_inline struct sw_last_words *words_of(__u32 pid)
{
	struct sw_last_words *w = bpf_map_lookup_elem(&words, &pid);
	__u32 k = 0;
	void *zero;

	if (w)
		return w;
	zero = bpf_map_lookup_elem(&words_zero, &k);
	if (!zero)
		return NULL;
	/* -EEXIST: another thread of it got there first */
	if (bpf_map_update_elem(&words, &pid, zero, BPF_NOEXIST) &&
	    !bpf_map_lookup_elem(&words, &pid)) {
		__sync_fetch_and_add(&stats.v[SW_HEALTH_lost_events], 1);
		return NULL;
	}
	return bpf_map_lookup_elem(&words, &pid);
}

SEC("tracepoint/syscalls/sys_enter_write")
int tp_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	__u32 pid, slot, n;
	struct sw_last_words *w;
	struct sw_lw_write *lw;
	__u64 count;

	if (ctx->args[0] != 2)
		return 0;
	pid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&targets, &pid))
		return 0;
	w = words_of(pid);
	if (!w)
		return 0;
	slot = w->writes & (SW_LW_WRITES - 1);
	lw = &w->w[slot];
	count = ctx->args[2];
	n = count < SW_LW_WRITE_LEN ? (__u32)count : SW_LW_WRITE_LEN;
	lw->total = count > 0xffffffffull ? 0xffffffffu : (__u32)count;
	lw->ts_ns = bpf_ktime_get_ns();
	lw->len = 0;
	if (n && bpf_probe_read_user(lw->buf, n, (const void *)ctx->args[1]) == 0)
		lw->len = n;
	else if (n)
		__sync_fetch_and_add(&stats.v[SW_HEALTH_failed_reads], 1);
	w->writes++;
	return 0;
}

/* node::errors::TriggerUncaughtException(Isolate*, Local<Value>,
 * Local<Message>, bool from_promise): attached per Node target. (BPF_KPROBE
 * reads the same argument registers for a uprobe; libbpf 1.1 has no
 * BPF_UPROBE.) */
SEC("uprobe")
int BPF_KPROBE(node_uncaught, void *isolate, void *error, void *message, int from_promise)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct sw_last_words *w;

	if (!bpf_map_lookup_elem(&targets, &pid))
		return 0;
	w = words_of(pid);
	if (!w)
		return 0;
	w->uncaught++;
	w->uncaught_ns = bpf_ktime_get_ns();
	w->from_promise = from_promise & 0xff; /* a C++ bool: the low byte */
	return 0;
}
