/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between bpf/stacks.bpf.c and agent/stacks.c: the stack sample
 * record and the rules both sides apply to it.
 */
#ifndef SW_STACKS_H
#define SW_STACKS_H

#ifndef __bpf__
#include <linux/types.h>
#endif
#include "health.h"

#define SW_STK_PAGE 4096u
/* Pages of user stack copied per sample, starting at the page that holds
 * sp: the first one is partly below sp, so at least 32 KiB above sp are
 * kept. 32 KiB hold a Node JSON.parse (~40 frames, 3-6 KiB measured) and a
 * Python 3.11 request handler's native stack many times over; deeper
 * callers are read from the live target (agent/unwind.c). */
#define SW_STK_PAGES 9u
#define SW_STK_BYTES (SW_STK_PAGES * SW_STK_PAGE)
/* Sleep capture slots, indexed by tid: a loop thread sleeps in one place at
 * a time and the agent watches a few loop threads; a collision replaces the
 * older capture (counted). */
#define SW_STK_SLEEP_SLOTS 64u

/* x86_64 user registers kept per sample, in DWARF numbering (the x86_64
 * psABI, fig. 3.36): rax rdx rcx rbx rsi rdi rbp rsp r8..r15, then the
 * return address column 16 = rip. The order libdw's x86_64 backend takes. */
#define SW_STK_NREGS 17u
#define SW_STK_REG_SP 7u
#define SW_STK_REG_BP 6u
#define SW_STK_REG_IP 16u

enum sw_stk_kind {
	SW_STK_ONCPU = 1, /* perf sample while the block ran: weight = period */
	SW_STK_SLEEP = 2, /* where it slept in the kernel: weight = sleep time */
	/* where it lost the CPU, preempted past the gate: weight = its wait for
	 * a CPU; it resumes where it stopped, so its Python frames are read at
	 * arrival like an on-CPU sample's */
	SW_STK_RUNQ = 3,
};

/* Ring buffer record. stack[] holds stack_len bytes from stack_base (the
 * page of sp); the record is cut after them. */
struct sw_stk_sample {
	__u32 kind;
	__u32 pid;
	__u32 tid;
	__u32 stack_len;
	__u64 ts_ns;	     /* sample time; for a sleep: its wake-up */
	__u64 block_start_ns; /* start of the busy stretch sampled */
	__u64 weight_ns;     /* SW_STK_SLEEP: the sleep's length; else 0 */
	__u64 sleep_start_ns; /* SW_STK_SLEEP: when it went to sleep */
	__s32 sleep_nr;	     /* SW_STK_SLEEP: syscall slept in, -1: none */
	__u32 pad;
	__u64 stack_base;
	__u64 regs[SW_STK_NREGS];
	__u8 stack[SW_STK_BYTES];
};

#define SW_STK_HDR_LEN ((unsigned long)__builtin_offsetof(struct sw_stk_sample, stack))

/* Per sleep slot: the capture of a loop thread's sleep. tid == 0 or
 * sleep_start_ns == 0: empty. */
struct sw_stk_slot {
	struct sw_stk_sample s;
};

/*
 * Samples are taken only from a stretch at least gate_ns old: a healthy
 * loop's iterations (microseconds) never pay for a stack copy, and a block
 * just over the threshold still gets samples from its last three quarters.
 */
static inline __u64 sw_stk_gate_ns(__u64 threshold_ns)
{
	return threshold_ns / 4;
}

#endif /* SW_STACKS_H */
