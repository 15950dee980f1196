/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runtimes the agent knows, one file each (node.c, python.c), behind one
 * descriptor: how a process is recognised as one, its version, and what the
 * BPF side must do differently for its threads. discovery.c asks each in
 * turn; anything none claims is a native epoll loop.
 */
#ifndef SW_RUNTIME_RUNTIME_H
#define SW_RUNTIME_RUNTIME_H

#include <stdint.h>
#include "discovery.h"

struct sw_tio;

struct sw_runtime_desc {
	enum sw_runtime rt;
	const char *name; /* as in every output line: "node", "python" */
	/*
	 * Is info->pid this runtime? exe_base is the executable's file name.
	 * 0 with info->runtime, version (best effort, "" when unknown) and
	 * runtime_lib filled, or -ENOENT when it is not this runtime.
	 */
	int (*identify)(struct sw_tio *t, struct sw_proc_info *info, const char *exe_base);
	/* SW_TGT_* (bpf/loopmon.h) for the process's threads; NULL: none. */
	uint32_t (*target_flags)(const struct sw_proc_info *pi);
};

extern const struct sw_runtime_desc sw_runtime_node;
extern const struct sw_runtime_desc sw_runtime_python;

/* In the order discovery asks them; NULL-terminated. */
extern const struct sw_runtime_desc *const sw_runtimes[];

/* The descriptor of rt, NULL for native. */
const struct sw_runtime_desc *sw_runtime_desc_of(enum sw_runtime rt);

/* The runtime hook for the target flags loops.c gives BPF for a process. */
uint32_t sw_runtime_target_flags(const struct sw_proc_info *pi);

#endif
