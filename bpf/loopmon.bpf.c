// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * loopmon: event-loop iterations of target processes, from the epoll_wait
 * family of syscalls, plus a sched_switch-based split of each busy stretch
 * into on-CPU, sleeping (and in which syscall) and run-queue time.
 *
 * Why syscall tracepoints and not uprobes on uv__io_poll: the poll runs once
 * per iteration, and a uprobe hit costs 0.4 us when the probed instruction
 * can be emulated and 14 us when it must be single-stepped on this 6.18 VM
 * (bench/, docs/PERFORMANCE.md), against ~0.2 us for both epoll programs
 * together. Tracepoints also need no symbols, so stripped binaries, uvloop's
 * static libuv and asyncio's selectors all look alike. Their price is paid
 * by the host: every thread takes the slow syscall path while they are
 * attached (docs/PERFORMANCE.md has the bystander figures).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "loopmon_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EINTR 4
#define EEXIST 17

/* Set by the agent between open and load. */
const volatile __u64 threshold_ns = 50000000ull;
/* sched_switch split of blocks; off when the agent runs with --no-diag */
const volatile bool diag_enabled = true;

struct sw_bpf_stats stats = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_MAX_TARGETS);
	__type(key, __u32); /* tgid */
	__type(value, struct sw_target);
} targets SEC(".maps");

static __always_inline void hint_add(__u32 tid, int delta)
{
	__u32 slot = sw_tid_hint_slot(tid);
	__u32 *n = bpf_map_lookup_elem(&tid_hint, &slot);

	if (n)
		__sync_fetch_and_add(n, delta);
}

/* A zeroed sw_thread to insert from: the value is too big for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_thread);
} thread_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline void count(__u64 *counter)
{
	__sync_fetch_and_add(counter, 1);
}

static __always_inline struct sw_event *event_new(__u32 type, __u32 pid, __u32 tid, __u64 now)
{
	struct sw_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(&stats.v[SW_HEALTH_ringbuf_drops]);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = type;
	e->pid = pid;
	e->tid = tid;
	e->loop_fd = -1;
	e->ts_ns = now;
	return e;
}

static __always_inline struct sw_event *event_reserve(__u32 type, struct sw_thread *t, __u64 now)
{
	struct sw_event *e = event_new(type, t->pid, t->tid, now);

	if (e) {
		e->loop_fd = t->loop_fd;
		__builtin_memcpy(e->comm, t->comm, sizeof(e->comm));
	}
	return e;
}

static __always_inline void fill_block(struct sw_event *e, struct sw_thread *t, __u64 start,
				       __u64 dur)
{
	e->start_ns = start;
	e->dur_ns = dur;
	e->offcpu_ns = t->blk_offcpu_ns;
	e->runq_ns = t->blk_runq_ns;
	e->switches = t->blk_switches;
	e->start_unknown = !!(t->flags & SW_THR_START_UNKNOWN);
	__builtin_memcpy(e->blk_sys, t->blk_sys, sizeof(e->blk_sys));
	e->gil_wait_ns = t->blk_gil_ns;
	e->gil_holder = t->blk_gil_holder;
	e->gil_drops = t->blk_gil_drops;
}

static __always_inline void reset_block(struct sw_thread *t)
{
	t->off_start_ns = 0;
	t->off_kind = SW_OFF_NONE;
	t->blk_offcpu_ns = 0;
	t->blk_runq_ns = 0;
	t->blk_switches = 0;
	t->blk_gil_ns = 0;
	t->blk_gil_holder = 0;
	t->blk_gil_holder_ns = 0;
	t->blk_gil_drops = 0;
	for (int i = 0; i < SW_BLK_SYSCALLS; i++) {
		t->blk_sys[i].nr = 0;
		t->blk_sys[i].ns = 0;
	}
}

static struct sw_thread *thread_new(__u32 pid, __u32 tid, __s32 fd, __u32 flags, __u64 now)
{
	struct sw_thread *zero, *t;
	struct sw_event *e;
	__u32 k = 0;
	long err;

	zero = bpf_map_lookup_elem(&thread_zero, &k);
	if (!zero)
		return NULL;
	err = bpf_map_update_elem(&threads, &tid, zero, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		count(&stats.v[SW_HEALTH_thread_map_full]);
		return NULL;
	}
	if (!err)
		hint_add(tid, 1);
	t = bpf_map_lookup_elem(&threads, &tid);
	if (!t)
		return NULL;
	sw_thread_init(t, pid, tid, fd, flags, now);
	bpf_get_current_comm(t->comm, sizeof(t->comm));
	e = event_reserve(SW_EV_THREAD_NEW, t, now);
	if (e)
		bpf_ringbuf_submit(e, 0);
	return t;
}

/*
 * The busy part of an iteration ran from start (a loop wait's return) to end
 * (the next loop wait's entry). It is recorded at that entry, not at the
 * wait's return: an idle server may not wake for minutes, and its last
 * block must be reported now. start == 0: not seen from its beginning.
 */
static __always_inline void iteration_end(struct sw_thread *t, __u64 start, __u64 end, __u64 now)
{
	struct sw_event *e;
	__u64 busy;
	__u32 b;

	if (!start)
		goto out; /* first wait after attach: measuring starts at its return */
	busy = end > start ? end - start : 0;
	t->iterations++;
	t->busy_ns += busy;
	if (busy > t->max_busy_ns)
		t->max_busy_ns = busy;
	b = sw_hist_bucket(busy);
	if (b < SW_HIST_NBUCKETS)
		t->hist[b]++;
	if (busy >= threshold_ns) {
		t->incidents++;
		e = event_reserve(SW_EV_INCIDENT, t, now);
		if (e) {
			fill_block(e, t, start, busy);
			bpf_ringbuf_submit(e, 0);
		}
	}
out:
	t->flags &= ~SW_THR_START_UNKNOWN;
	reset_block(t);
}

static __always_inline void on_wait_enter(__s32 fd, __s32 timeout_class)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, tid = (__u32)id;
	struct sw_thread *t = NULL;
	struct sw_target *tgt;
	__u64 now;

	/* a known loop thread costs one hash lookup; the target filter is
	 * needed only to start tracking a new one */
	if (maybe_tracked(tid))
		t = bpf_map_lookup_elem(&threads, &tid);
	if (!t) {
		tgt = bpf_map_lookup_elem(&targets, &pid);
		if (!tgt)
			return;
		t = thread_new(pid, tid, fd, tgt->flags, bpf_ktime_get_ns());
		if (!t)
			return;
	}
	now = bpf_ktime_get_ns();
	/* seeded by user space before its first wait: learn the fd now */
	if (t->loop_fd < 0)
		t->loop_fd = fd;
	/* A wait on another epoll fd (execSync's nested loop, a selectors
	 * call) is not the loop going idle: it is part of the busy stretch. */
	if (fd != t->loop_fd)
		return;
	t->wait_fd = fd;
	t->wait_timeout = timeout_class;
	t->wait_enter_ns = now;
	if (timeout_class == 0 && (t->flags & SW_TGT_MERGE_ZERO_POLLS)) {
		/* Maybe libuv's metrics-mode pre-poll (uv__io_poll), which is
		 * always followed by a poll with the user's timeout; or, with
		 * setImmediate pending (user timeout 0), a whole iteration's
		 * poll. Another zero-timeout poll after an empty one says the
		 * earlier one was the latter. */
		if (t->pz_enter_ns) {
			iteration_end(t, t->iter_start_ns, t->pz_enter_ns, now);
			t->iter_start_ns = t->pz_exit_ns;
			t->pz_enter_ns = 0;
		}
		return; /* decided at its return or at the next poll */
	}
	/* the loop goes idle: the iteration's busy part ends here (an empty
	 * pre-poll just before belongs to it) */
	t->pz_enter_ns = 0;
	iteration_end(t, t->iter_start_ns, now, now);
	t->iter_start_ns = 0; /* set again at this wait's return */
}

static __always_inline void on_wait_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct sw_thread *t;
	__u64 now, enter;

	if (!maybe_tracked(tid))
		return;
	t = bpf_map_lookup_elem(&threads, &tid);
	if (!t || t->wait_fd < 0)
		return;
	now = bpf_ktime_get_ns();
	enter = t->wait_enter_ns;
	t->wait_fd = -1;
	if (sw_wait_is_idle(t->wait_timeout))
		t->idle_ns += now - enter;
	if (t->wait_timeout == 0 && (t->flags & SW_TGT_MERGE_ZERO_POLLS)) {
		if (ret <= 0) {
			/* empty: a pre-poll or not, the next poll tells */
			t->pz_enter_ns = enter;
			t->pz_exit_ns = now;
			return;
		}
		/* events are ready: callbacks run now, a boundary */
		iteration_end(t, t->iter_start_ns, enter, now);
		t->iter_start_ns = now;
		return;
	}
	/* Interrupted by a signal: libuv and asyncio (PEP 475) poll again
	 * without running callbacks; the few instructions until then are not
	 * an iteration (iter_start stays 0, so none is counted). */
	if (ret == -EINTR)
		return;
	t->iter_start_ns = now;
}

/* epoll_pwait2's timeout: the timespec is read here, the rule is shared. */
static __always_inline __s32 timeout_class_ts(const void *uts)
{
	struct __kernel_timespec ts;

	if (!uts)
		return sw_timeout_class_ts(0, NULL);
	if (bpf_probe_read_user(&ts, sizeof(ts), uts)) {
		count(&stats.v[SW_HEALTH_failed_reads]);
		return sw_timeout_class_ts((__u64)uts, NULL);
	}
	return sw_timeout_class_ts((__u64)uts, &ts);
}

/*
 * Variant 1: classic per-syscall tracepoints. The kernel checks a bitmap of
 * enabled syscalls before running anything, so unrelated syscalls pay only
 * the slow-path entry. Needs tracefs to resolve the tracepoint ids.
 */
SEC("tracepoint/syscalls/sys_enter_epoll_wait")
int tp_enter_epoll_wait(struct trace_event_raw_sys_enter *ctx)
{
	on_wait_enter((__s32)ctx->args[0], sw_timeout_class((__s32)ctx->args[3]));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_epoll_pwait")
int tp_enter_epoll_pwait(struct trace_event_raw_sys_enter *ctx)
{
	on_wait_enter((__s32)ctx->args[0], sw_timeout_class((__s32)ctx->args[3]));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_epoll_pwait2")
int tp_enter_epoll_pwait2(struct trace_event_raw_sys_enter *ctx)
{
	on_wait_enter((__s32)ctx->args[0], timeout_class_ts((const void *)ctx->args[3]));
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_epoll_wait")
int tp_exit_epoll_wait(struct trace_event_raw_sys_exit *ctx)
{
	on_wait_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_epoll_pwait")
int tp_exit_epoll_pwait(struct trace_event_raw_sys_exit *ctx)
{
	on_wait_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_epoll_pwait2")
int tp_exit_epoll_pwait2(struct trace_event_raw_sys_exit *ctx)
{
	on_wait_exit(ctx->ret);
	return 0;
}

/*
 * Variant 2, when tracefs is unavailable: the BTF raw syscall tracepoints.
 * They run for every syscall of the host, so the id test comes first.
 */
SEC("tp_btf/sys_enter")
int BPF_PROG(raw_sys_enter, struct pt_regs *regs, long id)
{
	if (id == SW_NR_EPOLL_WAIT || id == SW_NR_EPOLL_PWAIT)
		on_wait_enter((__s32)regs->di, sw_timeout_class((__s32)regs->r10));
	else if (id == SW_NR_EPOLL_PWAIT2)
		on_wait_enter((__s32)regs->di, timeout_class_ts((const void *)regs->r10));
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(raw_sys_exit, struct pt_regs *regs, long ret)
{
	if (sw_nr_is_epoll_wait(regs->orig_ax))
		on_wait_exit(ret);
	return 0;
}

static __always_inline void blk_sys_add(struct sw_thread *t, __s32 nr, __u64 ns)
{
	int i;

	for (i = 0; i < SW_BLK_SYSCALLS; i++) {
		if (t->blk_sys[i].ns && t->blk_sys[i].nr == nr) {
			t->blk_sys[i].ns += ns;
			return;
		}
		if (!t->blk_sys[i].ns) {
			t->blk_sys[i].nr = nr;
			t->blk_sys[i].ns = ns;
			return;
		}
	}
	/* full: the time still counts in blk_offcpu_ns, just not by syscall */
}

/*
 * The split of a busy stretch. Runs at every context switch of the host, so
 * it does two hash lookups and nothing else unless a tracked loop thread
 * is involved.
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct sw_thread *t;
	__u64 now = 0;
	__u32 tid;

	if (!diag_enabled)
		return 0;

	/* tp_btf arguments are trusted BTF pointers: plain loads, no helper */
	tid = prev->pid;
	t = maybe_tracked(tid) ? bpf_map_lookup_elem(&threads, &tid) : NULL;
	if (t && sw_thread_busy(t)) {
		unsigned int state = prev->__state;

		now = bpf_ktime_get_ns();
		t->off_start_ns = now;
		t->blk_switches++;
		if (preempt || state == 0 /* TASK_RUNNING: yielded */) {
			t->off_kind = SW_OFF_RUNQ;
			t->off_nr = -1;
		} else {
			struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(prev);

			t->off_kind = SW_OFF_SLEEP;
			t->off_nr = regs ? (__s32)BPF_CORE_READ(regs, orig_ax) : -1;
			if ((t->off_nr == SW_NR_SELECT || t->off_nr == SW_NR_PSELECT6) && regs &&
			    BPF_CORE_READ(regs, di) == 0)
				t->off_nr = SW_NR_SELECT_SLEEP;
		}
	}

	tid = next->pid;
	t = maybe_tracked(tid) ? bpf_map_lookup_elem(&threads, &tid) : NULL;
	if (t && t->off_start_ns) {
		__u64 d;

		if (!now)
			now = bpf_ktime_get_ns();
		d = now - t->off_start_ns;
		if (t->off_kind == SW_OFF_RUNQ) {
			t->blk_runq_ns += d;
			t->cum_runq_ns += d;
		} else {
			t->blk_offcpu_ns += d;
			t->cum_offcpu_ns += d;
			blk_sys_add(t, t->off_nr, d);
		}
		t->off_start_ns = 0;
		t->off_kind = SW_OFF_NONE;
	}
	return 0;
}

/* include/linux/sched/signal.h: a group exit (exit_group, fatal signal) is
 * under way; not in BTF, being a macro. Stable since 2.6. */
#define SW_SIGNAL_GROUP_EXIT 0x00000004

/*
 * A tracked loop thread exits: its state goes, and a block it dies in is
 * closed. A thread of a target process exits: if it is the last one (the
 * signal struct's live count, decremented in do_exit before this
 * tracepoint, is 0), the process is gone, with its exit code, reported at
 * once rather than at the agent's next /proc check.
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *p)
{
	__u32 tid = p->pid, pid = p->tgid;
	struct signal_struct *sig = p->signal;
	bool group_dead = sig->live.counter == 0;
	bool group_exit = group_dead || (sig->flags & SW_SIGNAL_GROUP_EXIT);
	struct sw_thread *t = NULL;
	struct sw_target *tgt;
	struct sw_event *e;
	__u64 now = 0, start;

	if (maybe_tracked(tid))
		t = bpf_map_lookup_elem(&threads, &tid);
	if (t) {
		now = bpf_ktime_get_ns();
		e = event_reserve(SW_EV_THREAD_EXIT, t, now);
		if (e) {
			/* died inside a busy stretch: user space closes its incident */
			if (sw_thread_busy(t)) {
				/* after an empty zero-timeout poll, the block starts at
				 * its return: no real poll followed */
				start = sw_thread_block_start(t);
				e->busy = 1;
				fill_block(e, t, start, now - start);
				/* the block in progress, not the iteration: see the helper */
				e->start_unknown = sw_thread_block_start_unknown(t);
			}
			bpf_ringbuf_submit(e, 0);
		}
		/* a loop blocked as its process goes down: the exit says so */
		if (group_exit && sw_thread_busy(t)) {
			start = sw_thread_block_start(t);
			tgt = bpf_map_lookup_elem(&targets, &pid);
			if (tgt && now - start >= threshold_ns && now - start > tgt->exit_blocked_ns)
				tgt->exit_blocked_ns = now - start;
		}
		if (bpf_map_delete_elem(&threads, &tid) == 0)
			hint_add(tid, -1);
	}
	if (!group_dead)
		return 0;
	tgt = bpf_map_lookup_elem(&targets, &pid);
	if (!tgt)
		return 0;
	if (!now)
		now = bpf_ktime_get_ns();
	e = event_new(SW_EV_PROC_EXIT, pid, tid, now);
	if (e) {
		e->exit_code = (sig->flags & SW_SIGNAL_GROUP_EXIT) ? (__u32)sig->group_exit_code
								   : p->exit_code;
		e->busy = tgt->exit_blocked_ns != 0;
		e->dur_ns = tgt->exit_blocked_ns;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		bpf_ringbuf_submit(e, 0);
	}
	/* two threads dying together may both see live == 0: one event */
	bpf_map_delete_elem(&targets, &pid);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p)
{
	__u32 pid = p->tgid;
	struct sw_event *e;

	if (!bpf_map_lookup_elem(&targets, &pid))
		return 0;
	/* The new image keeps the pid but not the loop: forget its state. The
	 * other threads went through sched_process_exit already. */
	if (bpf_map_delete_elem(&threads, &pid) == 0)
		hint_add(pid, -1);
	e = event_new(SW_EV_EXEC, pid, pid, bpf_ktime_get_ns());
	if (e) {
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}
