/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between bpf/loopmon.bpf.c and agent/loopmon.c: every struct that
 * crosses the kernel boundary is declared here, once, with fixed-width types
 * and no pointers.
 */
#ifndef SW_LOOPMON_H
#define SW_LOOPMON_H

#include "hist_bucket.h"
#include "health.h"

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
	char comm[SW_COMM_LEN];
	__u32 hist[SW_HIST_NBUCKETS]; /* busy time per iteration */
};

enum sw_event_type {
	SW_EV_INCIDENT = 1,    /* a busy stretch >= threshold ended */
	SW_EV_THREAD_NEW = 2,  /* first loop wait of a thread */
	SW_EV_THREAD_EXIT = 3, /* a tracked thread exited (state deleted) */
	SW_EV_EXEC = 4,	       /* a target process exec'd */
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
	__u32 busy; /* THREAD_EXIT: it died inside a busy stretch */
	__u32 start_unknown; /* the stretch began before the agent attached */
	__u32 pad2;
	struct sw_blk_sys blk_sys[SW_BLK_SYSCALLS];
	char comm[SW_COMM_LEN];
};

/* BPF-side health, in .bss, indexed by enum sw_health_id (common/health.h):
 * every failure is counted (STYLE.md habit 6). BPF bumps ringbuf_drops,
 * thread_map_full and failed_reads; user space adds its own. */
struct sw_bpf_stats {
	__u64 v[SW_HEALTH__COUNT];
};

#endif /* SW_LOOPMON_H */
