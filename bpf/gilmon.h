/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between bpf/gilmon.bpf.c and agent/gilmon.c: CPython's GIL seen through
 * the futex calls its threads make on it (common/gil.h says what each
 * counter means, docs/DESIGN.md why futexes).
 */
#ifndef SW_BPF_GILMON_H
#define SW_BPF_GILMON_H

#include "loopmon.h" /* SW_INLINE, fixed-width types */

#define SW_GIL_MAX_PROCS 1024
#define SW_GIL_BPF_THREADS 16384
#define SW_GIL_BPF_HOLDERS 16384
/* Slots of the "maybe a Python target" filter on the tgid (a power of two):
 * every futex call of the host reaches the programs, and most stop at this
 * inlined array load. */
#define SW_GIL_PID_SLOTS 65536

#define SW_NR_FUTEX 202 /* x86_64 */

/* include/uapi/linux/futex.h */
#define SW_FUTEX_WAIT 0
#define SW_FUTEX_WAKE 1
#define SW_FUTEX_WAKE_BITSET 10
#define SW_FUTEX_LOCK_PI 6
#define SW_FUTEX_WAIT_BITSET 9
#define SW_FUTEX_LOCK_PI2 13
#define SW_FUTEX_CMD_MASK (~(128 | 256)) /* ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME) */
#define SW_ETIMEDOUT 110
#define SW_EAGAIN 11

/* Which of the GIL's futexes a wait is on. */
enum sw_gil_futex {
	SW_GILF_NONE = 0,
	SW_GILF_COND = 1,	  /* gil->cond: take_gil waiting for the holder */
	SW_GILF_MUTEX = 2,	  /* gil->mutex: the lock around it */
	SW_GILF_SWITCH_COND = 3,  /* drop_gil, FORCE_SWITCHING: waiting for the taker */
	SW_GILF_SWITCH_MUTEX = 4,
};

/* Per target process, keyed by tgid; written by the agent (the layout
 * table's GIL offsets, python.h struct sw_py_gil_layout). */
struct sw_gil_proc {
	__u64 gil; /* address of struct _gil_runtime_state */
	__u32 last_holder, locked, switch_number;
	__u32 cond, mutex, switch_cond, switch_mutex, size;
};

/* Per thread of a target, keyed by tid; written by BPF on that thread. */
struct sw_gil_thread {
	__u32 pid, tid;
	__u64 wait_ns;	/* futex waits on any of the GIL's futexes, finished */
	__u64 waits;
	__u64 acquisitions;  /* cond waits ended by a wake (0, -EAGAIN) */
	__u64 timeouts;	     /* cond waits that timed out */
	__u64 drop_requests; /* ... while the same holder kept the GIL */
	__u64 switch_wait_ns; /* the part on switch_cond/switch_mutex: forced hand-overs */
	__u64 switch_waits;
	/* the wait in progress: enter_ns 0 when none */
	__u64 enter_ns;
	__u64 enter_holder; /* tstate holding the GIL at the enter, 0 free */
	__u64 enter_switch; /* switch_number at the enter */
	__u32 enter_kind;   /* enum sw_gil_futex */
	__u32 pad;
	/* the holder this thread's last drop request was against, until the
	 * wake that follows it (a forced switch of that holder) */
	__u64 req_holder;
	/* its own PyThreadState, learned when it signals the GIL's cond
	 * (drop_gil stores last_holder = tstate first) or switch_cond
	 * (take_gil, after last_holder = tstate); 0 until then */
	__u64 tstate;
	/* Forced to drop the GIL and not yet back in take_gil's wait: a
	 * preemption in between leaves it runnable without the GIL, which
	 * counts as waiting (runq_start: since when, 0 when running). */
	__u64 runq_start;
	__u64 handover_ns; /* the part of wait_ns spent so (cumulative) */
	__u64 preempt_ns;  /* preempted (runnable) since, 0 when not */
	__u32 forced;
	__u32 req_against; /* a waiter asked it to drop the GIL */
};

/* (process, tstate) -> tid, learned by BPF as above: names the thread a
 * drop request was against. */
struct sw_gil_tstate_key {
	__u32 pid;
	__u32 pad;
	__u64 tstate;
};

struct sw_gil_holder_key {
	__u32 pid;
	__u32 pad;
	__u64 tstate;
};

/* Per (process, holder tstate): what its holding cost the others. */
struct sw_gil_holder {
	__u64 caused_wait_ns;  /* waits begun while it held the GIL */
	__u64 drop_requests;   /* requests made against it */
	__u64 forced_switches; /* hand-overs that followed one */
};

/* last_holder, locked and switch_number are read in one window of this
 * many bytes from last_holder (8, 16, 24 in every CPython row). */
#define SW_GIL_WINDOW 32

SW_INLINE bool sw_gil_window_ok(__u32 last_holder, __u32 locked, __u32 switch_number)
{
	return locked >= last_holder && locked - last_holder <= SW_GIL_WINDOW - 4 &&
	       !((locked - last_holder) & 3) && switch_number >= last_holder &&
	       switch_number - last_holder <= SW_GIL_WINDOW - 8 &&
	       !((switch_number - last_holder) & 7);
}

/* Which GIL futex uaddr is, if any: the cond's futex words are inside
 * pthread_cond_t (__g_signals, __g_refs...), the mutex's is its first word. */
SW_INLINE enum sw_gil_futex sw_gil_classify(const struct sw_gil_proc *p, __u64 uaddr)
{
	__u64 off;

	if (uaddr < p->gil)
		return SW_GILF_NONE;
	off = uaddr - p->gil;
	if (off >= p->cond && off < p->mutex)
		return SW_GILF_COND;
	if (off >= p->mutex && off < p->switch_cond)
		return SW_GILF_MUTEX;
	if (off >= p->switch_cond && off < p->switch_mutex)
		return SW_GILF_SWITCH_COND;
	if (off >= p->switch_mutex && off < p->size)
		return SW_GILF_SWITCH_MUTEX;
	return SW_GILF_NONE;
}

SW_INLINE bool sw_gil_futex_is_wake(__u64 op)
{
	__u64 cmd = op & SW_FUTEX_CMD_MASK;

	return cmd == SW_FUTEX_WAKE || cmd == SW_FUTEX_WAKE_BITSET;
}

SW_INLINE bool sw_gil_futex_is_wait(__u64 op)
{
	__u64 cmd = op & SW_FUTEX_CMD_MASK;

	return cmd == SW_FUTEX_WAIT || cmd == SW_FUTEX_WAIT_BITSET || cmd == SW_FUTEX_LOCK_PI ||
	       cmd == SW_FUTEX_LOCK_PI2;
}

#endif
