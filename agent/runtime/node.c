// SPDX-License-Identifier: Apache-2.0
/*
 * Node.js: recognised by its executable's name (node, nodejs) or a libnode
 * DSO in its maps (embedders, Electron-style builds); its version is the
 * "node.js/vX.Y.Z" string node keeps in .rodata for the inspector's
 * /json/version, read from the file, not from the process.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/types.h>
#include "loopmon.h"
#include "runtime/runtime.h"
#include "symbolize.h"
#include "target_io.h"

static int node_identify(struct sw_tio *t, struct sw_proc_info *info, const char *exe_base)
{
	char path[PATH_MAX + 300];

	if (!strncmp(exe_base, "node", 4) || !strncmp(exe_base, "nodejs", 6)) {
		info->runtime = SW_RT_NODE;
		/* through /proc/PID/exe: a container's binary without entering
		 * its mount namespace */
		snprintf(path, sizeof(path), "%s/%d/exe", t->root, info->pid);
		sw_elf_find_version(path, "node.js/v", 9, info->version, sizeof(info->version));
		return 0;
	}
	sw_proc_find_lib(t, info->pid, "libnode", info->runtime_lib, sizeof(info->runtime_lib));
	if (!info->runtime_lib[0])
		return -ENOENT;
	info->runtime = SW_RT_NODE;
	snprintf(path, sizeof(path), "%s/%d/root%s", t->root, info->pid, info->runtime_lib);
	sw_elf_find_version(path, "node.js/v", 9, info->version, sizeof(info->version));
	return 0;
}

/* Node turns on UV_METRICS_IDLE_TIME for its loops (src/node.cc, and worker
 * loops since v15): libuv then pre-polls with timeout 0, which BPF merges
 * into the wait that follows rather than counting an iteration. */
static uint32_t node_target_flags(const struct sw_proc_info *pi)
{
	(void)pi;
	return SW_TGT_MERGE_ZERO_POLLS;
}

const struct sw_runtime_desc sw_runtime_node = {
    .rt = SW_RT_NODE,
    .name = "node",
    .identify = node_identify,
    .target_flags = node_target_flags,
};
