// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * stacks: where a blocked loop thread spends its time, as copies of its user
 * registers and stack that the agent unwinds (agent/unwind.c, from the
 * .eh_frame CFI with libdw: no frame pointers needed).
 *
 *  - On CPU: a perf_event program at --sample-hz on every CPU samples the
 *    current thread when it is a loop thread in a busy stretch at least
 *    gate_ns old. Weight: the sampling period.
 *  - Off CPU: "where it sleeps, take it where it sleeps". A second
 *    sched_switch program copies a busy loop thread's registers and stack
 *    into its sleep slot when it goes to sleep voluntarily, or is preempted
 *    past the gate (current is still that thread there, so its user memory
 *    is readable); at its wake-up the
 *    capture is submitted with the sleep's length as weight if the stretch
 *    is past the gate by then. A sleep still in progress is read by the
 *    agent from the slot, so an ongoing incident has its stack too.
 *
 * Why copies in BPF and not a sleepable iter/task with
 * bpf_copy_from_user_task triggered by the agent (not built, so not
 * measured against this): the agent ticks every 100 ms, so an on-CPU block
 * would get one stack per tick, taken wherever the thread happens to be
 * when the agent looks rather than a sample of where its time goes, and a
 * sleep shorter than a tick would never be seen. What this costs was
 * measured (docs/DESIGN.md): ~8 us per copying sample, 0.8 us for a sample
 * of anything else, 0.2 us per context switch of the host for the sleep
 * program; copies are paid only by loop threads already blocked for
 * gate_ns, or by a busy loop thread going to sleep.
 *
 * The thread states are loopmon's: the agent reuses the fds of its threads
 * and tid_hint maps (bpf_map__reuse_fd) before load; both units define
 * them from bpf/loopmon_maps.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "loopmon_maps.h"
#include "stacks.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the agent between open and load. */
const volatile __u64 gate_ns = 12500000ull;

struct sw_bpf_stats stats = {};

/* One scratch record per CPU for the on-CPU sampler: 36 KiB is beyond the
 * per-CPU allocator's unit (PCPU_MIN_UNIT_SIZE, 32 KiB), so this is a plain
 * array indexed by CPU, sized to the possible CPUs by the agent. The
 * cpu-clock event fires from a hrtimer, not an NMI, and sched_switch runs
 * with interrupts off: nothing else writes a CPU's slot meanwhile. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_stk_sample);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_STK_SLEEP_SLOTS);
	__type(key, __u32);
	__type(value, struct sw_stk_slot);
} sleep_slots SEC(".maps");

/* 4 MiB: ~110 full samples, a second of one blocked thread at 99 Hz
 * with room; real records are cut after the stack bytes copied. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} samples SEC(".maps");

static __always_inline void count(int id)
{
	__sync_fetch_and_add(&stats.v[id], 1);
}

/* The loop thread tid when it is in a busy stretch; its start in *start. */
static __always_inline struct sw_thread *busy_thread(__u32 tid, __u64 *start)
{
	struct sw_thread *t;

	if (!maybe_tracked(tid))
		return NULL;
	t = bpf_map_lookup_elem(&threads, &tid);
	if (!t || !sw_thread_busy(t))
		return NULL;
	*start = sw_thread_block_start(t);
	return t;
}

/* pt_regs in the psABI's DWARF order (bpf/stacks.h). */
#define FILL_REGS(dst, r)                                                                           \
	do {                                                                                       \
		(dst)[0] = (r)->ax;                                                                \
		(dst)[1] = (r)->dx;                                                                \
		(dst)[2] = (r)->cx;                                                                \
		(dst)[3] = (r)->bx;                                                                \
		(dst)[4] = (r)->si;                                                                \
		(dst)[5] = (r)->di;                                                                \
		(dst)[6] = (r)->bp;                                                                \
		(dst)[7] = (r)->sp;                                                                \
		(dst)[8] = (r)->r8;                                                                \
		(dst)[9] = (r)->r9;                                                                \
		(dst)[10] = (r)->r10;                                                              \
		(dst)[11] = (r)->r11;                                                              \
		(dst)[12] = (r)->r12;                                                              \
		(dst)[13] = (r)->r13;                                                              \
		(dst)[14] = (r)->r14;                                                              \
		(dst)[15] = (r)->r15;                                                              \
		(dst)[16] = (r)->ip;                                                               \
	} while (0)

/* The user registers of the current task, as the kernel saved them at its
 * last entry (syscall, fault, interrupt). */
static __always_inline int task_user_regs(__u64 *dst)
{
	struct pt_regs r;
	void *p = (void *)bpf_task_pt_regs(bpf_get_current_task_btf());

	if (!p || bpf_probe_read_kernel(&r, sizeof(r), p))
		return -1;
	FILL_REGS(dst, &r);
	return 0;
}

/*
 * Copy the current task's user stack, page by page from the page holding
 * sp: one read of the whole range would fail as a whole when it runs past
 * the stack's top (a thread's stack is often shorter than the copy). Fixed
 * offsets and sizes keep the verifier out of it. Returns the bytes copied.
 */
static __always_inline __u32 copy_stack(struct sw_stk_sample *s)
{
	__u64 base = s->regs[SW_STK_REG_SP] & ~(__u64)(SW_STK_PAGE - 1);
	__u32 i;

	s->stack_base = base;
#pragma unroll
	for (i = 0; i < SW_STK_PAGES; i++) {
		if (bpf_probe_read_user(s->stack + i * SW_STK_PAGE, SW_STK_PAGE,
					(void *)(base + i * SW_STK_PAGE)))
			break;
	}
	return i * SW_STK_PAGE;
}

static __always_inline void submit(struct sw_stk_sample *s)
{
	__u64 size = SW_STK_HDR_LEN + (__u64)s->stack_len;

	if (size > sizeof(*s))
		size = sizeof(*s);
	if (bpf_ringbuf_output(&samples, s, size, 0))
		count(SW_HEALTH_stack_samples_lost);
}

SEC("perf_event")
int on_cpu_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), start, now;
	__u32 tid = (__u32)id, k = 0;
	struct sw_stk_sample *s;
	struct sw_thread *t;

	if (!tid)
		return 0; /* idle */
	t = busy_thread(tid, &start);
	if (!t)
		return 0;
	now = bpf_ktime_get_ns();
	if (now < start || now - start < gate_ns)
		return 0;
	k = bpf_get_smp_processor_id();
	s = bpf_map_lookup_elem(&scratch, &k);
	if (!s)
		return 0;
	s->kind = SW_STK_ONCPU;
	s->pid = id >> 32;
	s->tid = tid;
	s->ts_ns = now;
	s->block_start_ns = start;
	s->weight_ns = 0;
	s->sleep_start_ns = 0;
	s->sleep_nr = -1;
	/* user mode (CPL 3): the sample's own registers; in the kernel (a
	 * syscall, a fault) those saved at its entry */
	/* the context allows only whole 8-byte loads of pt_regs: cs shares
	 * its word with FRED's bits since 6.9 (a union in pt_regs) */
	if ((*(volatile __u64 *)&ctx->regs.cs & 3) == 3) {
		FILL_REGS(s->regs, &ctx->regs);
	} else if (task_user_regs(s->regs)) {
		count(SW_HEALTH_stack_copy_failed);
		return 0;
	}
	s->stack_len = copy_stack(s);
	if (!s->stack_len)
		count(SW_HEALTH_stack_copy_failed); /* still sent: the leaf frame is known */
	submit(s);
	return 0;
}

/*
 * The sleeps of busy loop threads. Kept apart from loopmon's sched_switch
 * (which it must not slow down for the host): for every other thread of the
 * host this costs two inlined array loads (tid_hint).
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(sleep_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct sw_stk_slot *slot;
	struct sw_thread *t;
	__u64 start, now;
	bool asleep;
	__u32 tid, k;

	tid = prev->pid;
	/* Asleep (not preempted, not yielding: TASK_RUNNING), from the
	 * stretch's start: a sleep is usually the whole block. Preempted or
	 * yielding, once past the gate: where a starved loop (a CPU quota,
	 * neighbours) was when it lost the CPU, weighted by its wait; on-CPU
	 * samples may miss a thread that runs 5 ms in every 100. */
	if ((t = busy_thread(tid, &start)) &&
	    ((asleep = !preempt && prev->__state != 0) || bpf_ktime_get_ns() - start >= gate_ns)) {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(prev);

		k = tid % SW_STK_SLEEP_SLOTS;
		slot = bpf_map_lookup_elem(&sleep_slots, &k);
		if (!slot)
			goto wake;
		if (slot->s.tid && slot->s.tid != tid && slot->s.sleep_start_ns)
			count(SW_HEALTH_stack_samples_lost); /* another thread's sleep */
		slot->s.kind = asleep ? SW_STK_SLEEP : SW_STK_RUNQ;
		slot->s.pid = prev->tgid;
		slot->s.tid = tid;
		slot->s.block_start_ns = start;
		slot->s.weight_ns = 0;
		slot->s.sleep_nr = regs ? (__s32)BPF_CORE_READ(regs, orig_ax) : -1;
		if (task_user_regs(slot->s.regs)) {
			slot->s.sleep_start_ns = 0;
			count(SW_HEALTH_stack_copy_failed);
			goto wake;
		}
		slot->s.stack_len = copy_stack(&slot->s);
		if (!slot->s.stack_len)
			count(SW_HEALTH_stack_copy_failed);
		/* set last: the agent reads a slot with a start as complete */
		slot->s.sleep_start_ns = bpf_ktime_get_ns();
	}
wake:
	tid = next->pid;
	if (!maybe_tracked(tid))
		return 0;
	k = tid % SW_STK_SLEEP_SLOTS;
	slot = bpf_map_lookup_elem(&sleep_slots, &k);
	if (!slot || slot->s.tid != tid || !slot->s.sleep_start_ns)
		return 0;
	now = bpf_ktime_get_ns();
	start = slot->s.block_start_ns;
	if (now > start && now - start >= gate_ns) {
		slot->s.ts_ns = now;
		slot->s.weight_ns = now - slot->s.sleep_start_ns;
		submit(&slot->s);
	}
	slot->s.sleep_start_ns = 0;
	return 0;
}
