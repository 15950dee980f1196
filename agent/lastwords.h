/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lastwords BPF unit's user side (bpf/lastwords.bpf.c): what a target
 * process wrote to stderr last, and whether Node reported an uncaught
 * exception from a promise, read when the process exits to explain why.
 */
#ifndef SW_AGENT_LASTWORDS_H
#define SW_AGENT_LASTWORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "bpf/lastwords.h"
#include "bpf/loopmon.h"
#include "discovery.h"

struct lastwords;

/*
 * Open, load and attach, sharing loopmon's target map (targets_fd). The
 * stderr copy needs the write tracepoint (tracefs); without it only Node's
 * uprobe is used. NULL and errno set on failure.
 */
struct lastwords *lastwords__new(int targets_fd, bool tracefs);
void lastwords__free(struct lastwords *lw);

/* Start watching a process: for Node, the uprobe on its binary. 0, or
 * -errno when the probe could not be placed (the stderr copy still runs). */
int lastwords__watch(struct lastwords *lw, const struct sw_proc_info *pi);
/* What pid said, removed from the map, its probe detached. -ENOENT when it
 * said nothing. */
int lastwords__take(struct lastwords *lw, uint32_t pid, struct sw_last_words *out);
void lastwords__bpf_stats(struct lastwords *lw, struct sw_bpf_stats *out);

/*
 * Its stderr writes, oldest first, as text: each write's kept bytes,
 * "[...]" where a write was longer than what was kept; non-printable
 * bytes other than newline and tab as '?'. Returns the length written.
 */
size_t sw_last_words_text(const struct sw_last_words *w, char *buf, size_t len);

/* What agent/loops.c asks of it (NULL ops: nothing is known). */
struct sw_exit_source {
	int (*watch)(void *ctx, const struct sw_proc_info *pi);
	int (*take)(void *ctx, uint32_t pid, struct sw_last_words *out);
	void *ctx;
};

struct sw_exit_source lastwords__source(struct lastwords *lw);

#endif
