/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between bpf/loopmon.bpf.c and agent/loopmon.c: every struct that
 * crosses the kernel boundary is declared here, once, with fixed-width types
 * and no pointers; and so is every rule both sides apply to them (when a
 * block starts, what counts as idle), as static inline functions that
 * compile as BPF C and as user C, so that the agent never re-derives one.
 */
#ifndef SW_LOOPMON_H
#define SW_LOOPMON_H

#ifndef __bpf__
#include <stdbool.h>
#include <linux/types.h>
#include <linux/time_types.h> /* struct __kernel_timespec; vmlinux.h has it in BPF */
#endif
#include "hist_bucket.h"
#include "health.h"

/* Inlined on both sides: BPF programs must not pay a call on the hot path
 * (and bpf-to-bpf calls constrain the verifier); user space loses nothing. */
#define SW_INLINE static inline __attribute__((always_inline))

#define SW_MAX_TARGETS 1024
/* Default for the thread map; the agent may resize it before load. */
#define SW_MAX_THREADS 4096
/* Syscalls kept per blocked stretch for "what did it sleep in"; a block
 * rarely sleeps in more than two kinds of syscall. */
#define SW_BLK_SYSCALLS 4
#define SW_COMM_LEN 16
/* Slots of the tid hint array (a power of two): a direct-mapped "maybe
 * tracked" filter that lets sched_switch skip the hash lookups for the
 * host's other threads with one inlined array load. */
#define SW_TID_HINT_SLOTS 65536

/* x86_64 syscall numbers of the epoll waits (arch/x86/entry/syscalls). */
#define SW_NR_EPOLL_WAIT 232
#define SW_NR_EPOLL_PWAIT 281
#define SW_NR_EPOLL_PWAIT2 441
#define SW_NR_SELECT 23
#define SW_NR_PSELECT6 270 /* glibc >= 2.33 implements select() with it */
/* Pseudo syscall number for select(0, NULL, NULL, NULL, &tv): how
 * time.sleep() sleeps before CPython 3.11 (Modules/timemodule.c pysleep). */
#define SW_NR_SELECT_SLEEP 10023

/* struct sw_target.flags */
/* libuv with UV_METRICS_IDLE_TIME (Node) polls with timeout 0 before the real
 * poll (uv__io_poll, src/unix/linux.c); that pre-poll, when empty, is not an
 * iteration boundary. */
#define SW_TGT_MERGE_ZERO_POLLS 0x1u

/* sw_thread.flags beyond the SW_TGT_* copied from the target */
/* Seeded by user space at attach: the thread was busy (not in its loop wait)
 * when the agent attached, so the current stretch began at an unknown time
 * before iter_start_ns and its duration is a lower bound. Cleared at the
 * first boundary. */
#define SW_THR_START_UNKNOWN 0x100u

struct sw_target {
	__u32 flags;
	__u32 pad;
	/* Set by BPF when a loop thread of the process dies inside a block of
	 * at least the threshold as the process goes down (exit_group or a
	 * fatal signal): the longest such block so far. The process exit event
	 * carries it: "it died while its loop was blocked". */
	__u64 exit_blocked_ns;
};

/* Why a thread is off CPU in a busy stretch (sw_thread.off_kind). */
enum sw_off_kind {
	SW_OFF_NONE = 0,
	SW_OFF_SLEEP = 1, /* blocked in the kernel: I/O, sleep, lock */
	SW_OFF_RUNQ = 2,  /* preempted or yielded: runnable, waiting for a CPU */
};

struct sw_blk_sys {
	__s32 nr; /* syscall number, -1 = not in a syscall (page fault...) */
	__u32 pad;
	__u64 ns; /* time slept in it during this busy stretch */
};

/*
 * Per loop thread, keyed by tid. Written only by BPF programs running on that
 * thread (its syscalls) or by sched_switch for that thread, so no atomics;
 * user space reads copies and tolerates a torn read of one snapshot.
 */
struct sw_thread {
	__u32 pid;
	__u32 tid;
	__s32 loop_fd;	    /* the loop's own epoll fd, learned at first wait; -1: not yet */
	__s32 wait_fd;	    /* loop_fd while inside a loop wait, else -1 */
	__s32 wait_timeout; /* timeout of that wait: -1, 0 or 1 (positive) */
	__u32 flags;	    /* SW_TGT_* of the process when first seen, SW_THR_* */
	__u64 wait_enter_ns; /* enter of the loop wait in progress */
	__u64 iter_start_ns; /* exit of the last boundary wait; 0 = none yet */
	__u64 first_seen_ns;
	__u64 iterations;
	__u64 busy_ns;	/* sum of finished iterations' busy time */
	__u64 idle_ns;	/* sum of finished waits with timeout != 0 */
	__u64 max_busy_ns; /* since attach; user space takes deltas of hist */
	__u64 incidents;
	/* A zero-timeout poll that found nothing, in libuv metrics mode: it is
	 * the pre-poll of the same iteration if the next loop wait has a
	 * timeout, or an iteration of its own (setImmediate) if that one has
	 * timeout 0 too. Decided at the next wait's enter; 0 = none pending. */
	__u64 pz_enter_ns;
	__u64 pz_exit_ns;
	/* diagnosis of the busy stretch in progress, reset at each boundary */
	__u64 off_start_ns; /* 0 when on CPU */
	__u32 off_kind;	    /* enum sw_off_kind of the current off-CPU stretch */
	__s32 off_nr;	    /* syscall of the current sleep */
	__u64 blk_offcpu_ns;
	__u64 blk_runq_ns;
	__u32 blk_switches;
	__u32 pad;
	struct sw_blk_sys blk_sys[SW_BLK_SYSCALLS];
	/* cumulative over every busy stretch since first seen: the interval's
	 * on-CPU share of busy time is busy - (delta of these) over busy */
	__u64 cum_offcpu_ns;
	__u64 cum_runq_ns;
	/* CPython: waits for the GIL in this busy stretch, written by
	 * bpf/gilmon.bpf.c at the futex exit (on this thread), reset with the
	 * stretch; the holder is the tstate that held the GIL longest while
	 * this thread waited (a heavy-hitter guess: one holder is the rule) */
	__u64 blk_gil_ns;
	__u64 blk_gil_holder;
	__u64 blk_gil_holder_ns;
	__u32 blk_gil_drops;
	__u32 pad2;
	char comm[SW_COMM_LEN];
	__u32 hist[SW_HIST_NBUCKETS]; /* busy time per iteration */
};

enum sw_event_type {
	SW_EV_INCIDENT = 1,    /* a busy stretch >= threshold ended */
	SW_EV_THREAD_NEW = 2,  /* first loop wait of a thread */
	SW_EV_THREAD_EXIT = 3, /* a tracked thread exited (state deleted) */
	SW_EV_EXEC = 4,	       /* a target process exec'd */
	SW_EV_PROC_EXIT = 5,   /* the last thread of a target process exited */
};

/* Ring buffer record: rare events only (hot data is aggregated in maps). */
struct sw_event {
	__u32 type;
	__u32 pid;
	__u32 tid;
	__s32 loop_fd;
	__u64 ts_ns;
	/* SW_EV_INCIDENT, and SW_EV_THREAD_EXIT of a thread that died busy */
	__u64 start_ns;
	__u64 dur_ns;
	__u64 offcpu_ns;
	__u64 runq_ns;
	__u32 switches;
	__u32 busy; /* THREAD_EXIT: it died inside a busy stretch;
		     * PROC_EXIT: a loop thread died inside a block >= threshold
		     * (dur_ns: the longest) */
	__u32 start_unknown; /* the stretch began before the agent attached */
	__u32 exit_code; /* PROC_EXIT: wait(2) status, see sw_exit_status() */
	struct sw_blk_sys blk_sys[SW_BLK_SYSCALLS];
	/* CPython: the stretch's GIL waits (struct sw_thread.blk_gil_*) */
	__u64 gil_wait_ns;
	__u64 gil_holder; /* tstate address, 0 unknown */
	__u32 gil_drops;
	__u32 pad;
	char comm[SW_COMM_LEN];
};

/* BPF-side health, in .bss, indexed by enum sw_health_id (common/health.h):
 * every failure is counted (STYLE.md habit 6). BPF bumps ringbuf_drops,
 * thread_map_full and failed_reads; user space adds its own. */
struct sw_bpf_stats {
	__u64 v[SW_HEALTH__COUNT];
};

/* --- Rules on exit codes --- */

/* The kernel's exit code of a task (task->exit_code, or
 * signal->group_exit_code for a group exit) is a wait(2) status: the
 * exit status in bits 8-15, or the killing signal in bits 0-6 with 0x80 for
 * a core dump (kernel/exit.c do_exit, do_group_exit; fs/coredump.c). */
SW_INLINE __u32 sw_exit_status(__u32 code)
{
	return (code >> 8) & 0xff;
}

SW_INLINE __u32 sw_exit_signal(__u32 code)
{
	return code & 0x7f;
}

SW_INLINE bool sw_exit_core(__u32 code)
{
	return code & 0x80;
}

/* --- Rules on struct sw_thread, one definition for both sides --- */

SW_INLINE __u32 sw_tid_hint_slot(__u32 tid)
{
	return tid & (SW_TID_HINT_SLOTS - 1);
}

SW_INLINE bool sw_nr_is_epoll_wait(long nr)
{
	return nr == SW_NR_EPOLL_WAIT || nr == SW_NR_EPOLL_PWAIT || nr == SW_NR_EPOLL_PWAIT2;
}

/* sw_thread.wait_timeout of epoll_wait/epoll_pwait's int timeout in ms. */
SW_INLINE __s32 sw_timeout_class(long ms)
{
	return ms < 0 ? -1 : ms == 0 ? 0 : 1;
}

/*
 * epoll_pwait2 takes a timespec pointer uts; NULL waits forever. ts is what
 * it points to, or NULL when that was not read: BPF's read failed (counted),
 * or user space, which does not read target memory at attach. An unread
 * timespec counts as a positive timeout, the common case (libuv and asyncio
 * pass one only with a timeout).
 */
SW_INLINE __s32 sw_timeout_class_ts(__u64 uts, const struct __kernel_timespec *ts)
{
	if (!uts)
		return -1;
	if (!ts)
		return 1;
	return (ts->tv_sec == 0 && ts->tv_nsec == 0) ? 0 : 1;
}

/* The timeout class of an epoll wait from its raw arguments (the fourth is
 * the timeout in all three syscalls). */
SW_INLINE __s32 sw_wait_timeout_class(long nr, __u64 arg3, const struct __kernel_timespec *ts)
{
	return nr == SW_NR_EPOLL_PWAIT2 ? sw_timeout_class_ts(arg3, ts) : sw_timeout_class((__s32)arg3);
}

/* libuv's idle time counts only polls with a timeout (uv__io_poll sets the
 * provider entry time only when timeout != 0). */
SW_INLINE bool sw_wait_is_idle(__s32 timeout_class)
{
	return timeout_class != 0;
}

/* Idle time up to now, a loop wait in progress included. */
SW_INLINE __u64 sw_thread_idle_ns(const struct sw_thread *t, __u64 now)
{
	__u64 idle = t->idle_ns;

	if (t->wait_fd >= 0 && sw_wait_is_idle(t->wait_timeout) && now > t->wait_enter_ns)
		idle += now - t->wait_enter_ns;
	return idle;
}

/* Busy right now: an iteration began (a boundary was seen) and the thread
 * is not inside a loop wait. */
SW_INLINE bool sw_thread_busy(const struct sw_thread *t)
{
	return t->iter_start_ns && t->wait_fd < 0;
}

/*
 * Start of the busy stretch in progress. Busy since an empty zero-timeout
 * poll (Node): a pre-poll is followed by the real poll within microseconds,
 * so once the thread is busy after one, that poll was an iteration boundary
 * and the block starts at its return.
 */
SW_INLINE __u64 sw_thread_block_start(const struct sw_thread *t)
{
	return t->pz_enter_ns ? t->pz_exit_ns : t->iter_start_ns;
}

/*
 * The block in progress began before the agent attached: a thread seeded
 * busy that has not reached a boundary since. After an empty zero-timeout
 * poll it began at that poll's return, which BPF saw.
 */
SW_INLINE bool sw_thread_block_start_unknown(const struct sw_thread *t)
{
	return !t->pz_enter_ns && (t->flags & SW_THR_START_UNKNOWN);
}

/*
 * A thread's first state: BPF's at its first loop wait (thread_new), the
 * agent's when it seeds a thread at attach. fd: the loop fd, -1 when still
 * to be learned. Fields not named stay as they are (zero in a new entry).
 */
SW_INLINE void sw_thread_init(struct sw_thread *t, __u32 pid, __u32 tid, __s32 fd, __u32 flags,
			      __u64 now)
{
	t->pid = pid;
	t->tid = tid;
	t->loop_fd = fd;
	t->wait_fd = -1;
	t->flags = flags;
	t->first_seen_ns = now;
}

/*
 * Seeded by the agent at attach, from what /proc says the thread is doing.
 * busy: running, or blocked outside any epoll wait (a Node main thread): its
 * current stretch counts from now, flagged SW_THR_START_UNKNOWN, the loop fd
 * learned at its first wait. Otherwise it is in an epoll wait on fd with
 * timeout class timeout_class: that wait's return starts its first
 * iteration, which BPF alone would not see.
 */
SW_INLINE void sw_thread_seed(struct sw_thread *t, __u32 pid, __u32 tid, __u32 flags, __u64 now,
			      bool busy, __s32 fd, __s32 timeout_class)
{
	sw_thread_init(t, pid, tid, busy ? -1 : fd, flags, now);
	if (busy) {
		t->flags |= SW_THR_START_UNKNOWN;
		t->iter_start_ns = now;
	} else {
		t->wait_fd = fd;
		t->wait_timeout = timeout_class;
		t->wait_enter_ns = now; /* idle counts from attach */
	}
}

#endif /* SW_LOOPMON_H */
