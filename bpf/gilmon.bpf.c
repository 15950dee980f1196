// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * gil: CPython's GIL contention, from the futex calls its threads make on
 * the GIL's own condition variable and mutexes (bpf/gil.h, common/gil.h).
 *
 * take_gil() makes a syscall only when it has to wait: an uncontended
 * take or drop is a few atomic operations in user space, so this unit costs
 * nothing in a process whose GIL nobody waits for. A wait is a futex call
 * on gil->cond (or its mutex), timed by the switch interval; its exit says
 * how it ended: -ETIMEDOUT with the same holder still in place is CPython's
 * own condition for a drop request (take_gil: timed_out && locked &&
 * switch_number unchanged), a wake is the holder's release. The GIL's state
 * is read from the target's memory at the enter and the exit, where the
 * current task is the waiting thread itself.
 *
 * A busy loop thread's waits also go to its loopmon state (the `threads`
 * map, reused by fd as stacks and sysio do), so an incident carries them.
 *
 * Variant 1 is the classic syscalls:sys_{enter,exit}_futex tracepoints: the
 * kernel runs them for futex calls only. Variant 2, without tracefs, the
 * BTF raw syscall tracepoints, which run for every syscall and test the id
 * first. The agent loads one of the two.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "loopmon_maps.h"
#include "gilmon.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EEXIST 17

struct sw_bpf_stats stats = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_GIL_MAX_PROCS);
	__type(key, __u32); /* tgid */
	__type(value, struct sw_gil_proc);
} gil_procs SEC(".maps");

/* pid_hint[tgid % SLOTS]: the number of targets in the slot, kept by the
 * agent; 0 means "surely not a target". */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_GIL_PID_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} gil_pid_hint SEC(".maps");

/* Deleted by the agent when the thread or its process is gone. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_GIL_BPF_THREADS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* tid */
	__type(value, struct sw_gil_thread);
} gil_threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_GIL_BPF_HOLDERS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sw_gil_holder_key);
	__type(value, struct sw_gil_holder);
} gil_holders SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SW_GIL_BPF_THREADS);
	__type(key, struct sw_gil_tstate_key);
	__type(value, __u32); /* tid */
} gil_tstates SEC(".maps");

static __always_inline void count(__u64 *counter)
{
	__sync_fetch_and_add(counter, 1);
}

/* pid_hint: false means surely not a target (one inlined array load) */
static __always_inline bool maybe_target(__u32 pid)
{
	__u32 slot = pid & (SW_GIL_PID_SLOTS - 1);
	__u32 *n = bpf_map_lookup_elem(&gil_pid_hint, &slot);

	return n && *n;
}

static __always_inline struct sw_gil_proc *target(__u32 pid)
{
	return maybe_target(pid) ? bpf_map_lookup_elem(&gil_procs, &pid) : NULL;
}

/* The GIL's holder, locked flag and switch number, from the current task's
 * memory (it is a thread of the target). 0 or -1 on a failed read. */
struct gil_now {
	__u64 holder;
	__u64 switch_number;
	int locked;
};

static __always_inline int read_gil(const struct sw_gil_proc *p, struct gil_now *g)
{
	/* one read of the window the three fields are in (the agent checks
	 * the layout fits, sw_gil_window_ok): a probe_read_user costs ~60 ns,
	 * and this runs on the GIL's hand-over path */
	__u64 w[SW_GIL_WINDOW / 8];
	__u32 lo = (p->locked - p->last_holder) & (SW_GIL_WINDOW - 4);
	__u32 so = (p->switch_number - p->last_holder) & (SW_GIL_WINDOW - 8);

	if (bpf_probe_read_user(w, sizeof(w), (void *)(p->gil + p->last_holder))) {
		count(&stats.v[SW_HEALTH_failed_reads]);
		return -1;
	}
	g->holder = w[0];
	g->locked = *(int *)((char *)w + lo);
	g->switch_number = *(__u64 *)((char *)w + so);
	return 0;
}

static __always_inline struct sw_gil_thread *thread_get(__u32 pid, __u32 tid)
{
	struct sw_gil_thread *t = bpf_map_lookup_elem(&gil_threads, &tid), zero = {};
	long err;

	if (t)
		return t;
	zero.pid = pid;
	zero.tid = tid;
	err = bpf_map_update_elem(&gil_threads, &tid, &zero, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		count(&stats.v[SW_HEALTH_gil_map_full]);
		return NULL;
	}
	return bpf_map_lookup_elem(&gil_threads, &tid);
}

static __always_inline struct sw_gil_holder *holder_get(__u32 pid, __u64 tstate)
{
	struct sw_gil_holder_key k = { .pid = pid, .tstate = tstate };
	struct sw_gil_holder *h = bpf_map_lookup_elem(&gil_holders, &k), zero = {};
	long err;

	if (h)
		return h;
	err = bpf_map_update_elem(&gil_holders, &k, &zero, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		count(&stats.v[SW_HEALTH_gil_map_full]);
		return NULL;
	}
	return bpf_map_lookup_elem(&gil_holders, &k);
}

static __always_inline void on_futex_enter(__u64 uaddr, __u64 op)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, tid = (__u32)id;
	struct sw_gil_proc *p = target(pid);
	struct sw_gil_thread *t;
	enum sw_gil_futex kind;
	struct gil_now g = {};

	if (!p)
		return;
	kind = sw_gil_classify(p, uaddr);
	if (kind == SW_GILF_NONE)
		return;
	if (sw_gil_futex_is_wake(op)) {
		/* drop_gil signals cond, take_gil switch_cond, each right
		 * after storing its own tstate in last_holder: learn it */
		struct sw_gil_tstate_key k = { .pid = pid };

		if (kind != SW_GILF_COND && kind != SW_GILF_SWITCH_COND)
			return;
		t = thread_get(pid, tid);
		if (!t)
			return;
		/* drop_gil letting go after a drop request: a forced
		 * release, take_gil follows (a release for I/O sleeps next,
		 * which ends the mark in sched_switch) */
		if (kind == SW_GILF_COND && t->req_against) {
			t->req_against = 0;
			t->forced = 1;
		}
		/* a thread keeps its tstate for life: read it once */
		if (t->tstate || read_gil(p, &g) || !g.holder)
			return;
		t->tstate = g.holder;
		k.tstate = g.holder;
		bpf_map_update_elem(&gil_tstates, &k, &tid, BPF_ANY);
		return;
	}
	if (!sw_gil_futex_is_wait(op))
		return;
	t = thread_get(pid, tid);
	if (!t)
		return;
	/* back in take_gil: the futex wait counts from here on */
	t->forced = 0;
	t->runq_start = 0;
	if (read_gil(p, &g))
		g.locked = 0;
	t->enter_holder = g.locked == 1 ? g.holder : 0;
	t->enter_switch = g.switch_number;
	t->enter_kind = kind;
	t->enter_ns = bpf_ktime_get_ns();
}

/* A drop request against tstate: its next release of the GIL is forced,
 * and it will want the GIL back at once (bpf/gilmon.h, forced). */
static __always_inline void request_against(__u32 pid, __u64 tstate)
{
	struct sw_gil_tstate_key k = { .pid = pid, .tstate = tstate };
	struct sw_gil_thread *h;
	__u32 *tid = bpf_map_lookup_elem(&gil_tstates, &k);

	if (!tid)
		return;
	h = bpf_map_lookup_elem(&gil_threads, tid);
	if (h && h->tstate == tstate && h->pid == pid)
		h->req_against = 1;
}

/* The loop thread's share of it, when it is a busy loop thread. */
static __always_inline void loop_wait(__u32 tid, __u64 d, __u64 holder, bool drop)
{
	struct sw_thread *l;

	if (!maybe_tracked(tid))
		return;
	l = bpf_map_lookup_elem(&threads, &tid);
	if (!l || !sw_thread_busy(l))
		return;
	l->blk_gil_ns += d;
	if (drop)
		l->blk_gil_drops++;
	if (!holder)
		return;
	/* weighted Boyer-Moore majority: the holder that kept the GIL for
	 * most of the wait stays */
	if (l->blk_gil_holder == holder) {
		l->blk_gil_holder_ns += d;
	} else if (d > l->blk_gil_holder_ns) {
		l->blk_gil_holder = holder;
		l->blk_gil_holder_ns = d - l->blk_gil_holder_ns;
	} else {
		l->blk_gil_holder_ns -= d;
	}
}

static __always_inline void on_futex_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid(), now, d, holder;
	__u32 pid = id >> 32, tid = (__u32)id;
	struct sw_gil_proc *p = target(pid);
	struct sw_gil_thread *t;
	struct sw_gil_holder *h;
	bool drop = false;
	__u32 kind;

	if (!p)
		return;
	t = bpf_map_lookup_elem(&gil_threads, &tid);
	if (!t || !t->enter_ns)
		return;
	now = bpf_ktime_get_ns();
	d = now - t->enter_ns;
	kind = t->enter_kind;
	holder = t->enter_holder;
	t->enter_ns = 0;
	/* A forced hand-over (drop_gil waiting for the taker) is time without
	 * the GIL that the thread did not choose: it counts as waiting, and
	 * is also kept apart. No holder is blamed for it: the thread itself
	 * held the GIL a moment ago. */
	t->wait_ns += d;
	t->waits++;
	if (kind == SW_GILF_SWITCH_COND || kind == SW_GILF_SWITCH_MUTEX) {
		t->switch_wait_ns += d;
		t->switch_waits++;
		loop_wait(tid, d, 0, false);
		return;
	}
	if (kind == SW_GILF_COND) {
		if (ret == -SW_ETIMEDOUT) {
			struct gil_now g = {};

			t->timeouts++;
			if (!read_gil(p, &g) && g.locked == 1 && g.switch_number == t->enter_switch &&
			    holder) {
				drop = true;
				t->drop_requests++;
				t->req_holder = holder;
				request_against(pid, holder);
				h = holder_get(pid, holder);
				if (h)
					__sync_fetch_and_add(&h->drop_requests, 1);
			}
		} else if (ret == 0 || ret == -SW_EAGAIN) {
			t->acquisitions++;
			if (t->req_holder) {
				h = holder_get(pid, t->req_holder);
				if (h)
					__sync_fetch_and_add(&h->forced_switches, 1);
				t->req_holder = 0;
			}
		}
	}
	if (holder) {
		h = holder_get(pid, holder);
		if (h)
			__sync_fetch_and_add(&h->caused_wait_ns, d);
	}
	loop_wait(tid, d, holder, drop);
}

/*
 * A thread forced off the GIL that is preempted before it is back in
 * take_gil's wait (the thread that took the GIL woke on its CPU, or the
 * CPU is busy) waits for the GIL as surely as one in the futex: that
 * runnable time counts. Runs at every context switch of the host; other
 * processes stop at the pid_hint array load.
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(gil_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct sw_gil_thread *t;
	__u32 tid;

	if (maybe_target(prev->tgid)) {
		tid = prev->pid;
		t = bpf_map_lookup_elem(&gil_threads, &tid);
		if (t && (preempt || prev->__state == 0)) {
			__u64 now = bpf_ktime_get_ns();

			t->preempt_ns = now;
			if (t->forced) {
				struct sw_gil_proc *p = bpf_map_lookup_elem(&gil_procs, &t->pid);
				struct gil_now g = {};

				/* current is prev: its memory is readable. The GIL
				 * may be free for a moment (the taker woke, holds
				 * gil->mutex, not yet the GIL): still not its own. */
				if (p && !read_gil(p, &g) && (g.locked != 1 || g.holder != t->tstate))
					t->runq_start = now;
				else
					t->forced = 0; /* it has the GIL again */
			}
		} else if (t) {
			/* asleep: in take_gil's futex (counted there) or
			 * elsewhere, not wanting the GIL now */
			t->preempt_ns = 0;
			t->forced = 0;
		}
	}
	if (maybe_target(next->tgid)) {
		tid = next->pid;
		t = bpf_map_lookup_elem(&gil_threads, &tid);
		if (t) {
			if (t->runq_start) {
				__u64 d = bpf_ktime_get_ns() - t->runq_start;

				t->wait_ns += d;
				t->handover_ns += d;
			}
			t->runq_start = 0;
			t->preempt_ns = 0;
		}
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_futex")
int tp_enter_futex(struct trace_event_raw_sys_enter *ctx)
{
	on_futex_enter(ctx->args[0], ctx->args[1]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_futex")
int tp_exit_futex(struct trace_event_raw_sys_exit *ctx)
{
	on_futex_exit(ctx->ret);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(raw_enter_futex, struct pt_regs *regs, long id)
{
	if (id != SW_NR_FUTEX)
		return 0;
	on_futex_enter(BPF_CORE_READ(regs, di), BPF_CORE_READ(regs, si));
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(raw_exit_futex, struct pt_regs *regs, long ret)
{
	if (BPF_CORE_READ(regs, orig_ax) != SW_NR_FUTEX)
		return 0;
	on_futex_exit(ret);
	return 0;
}
