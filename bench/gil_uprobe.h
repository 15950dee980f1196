/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * gil_uprobe: the GIL measurement the research notes cost out and the agent
 * does not use, built only to measure what it would cost (bench stage `gil`).
 * Shared between gil_uprobe.bpf.c and gil_uprobe.c.
 */
#ifndef SW_BENCH_GIL_UPROBE_H
#define SW_BENCH_GIL_UPROBE_H

/*
 * Per thread, as a per-thread GIL tool would keep it: every release
 * (PyEval_SaveThread), every take (PyEval_RestoreThread) and the time from
 * entering RestoreThread to its return, i.e. the wait for the GIL plus the
 * uncontended take.
 */
struct gil_uprobe_thread {
	__u64 entry_ns; /* RestoreThread entered, 0 when not inside it */
	__u64 wait_ns;
	__u64 saves;
	__u64 restores;
	__u64 returns;
};

#define GIL_UPROBE_MAX_THREADS 4096

#endif
