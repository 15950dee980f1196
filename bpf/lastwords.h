/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between bpf/lastwords.bpf.c and agent/lastwords.c: what a target
 * process said before it died, so that its exit can be explained. Two
 * sources, both rare or cheap:
 *   - the start of its last writes to fd 2 (a Node fatal exception, a
 *     Python traceback): a write(2) tracepoint that stops at fd != 2;
 *   - Node's node::errors::TriggerUncaughtException(isolate, error,
 *     message, from_promise) (src/node_errors.cc), by uprobe: it runs only
 *     for an uncaught exception, so its cost (a uprobe hit, ~5 us) is never
 *     on a hot path, and its from_promise argument is the one thing that
 *     tells an unhandled rejection of an Error from an uncaught throw: the
 *     text on stderr is the same for both (checked on Node 18, 20, 22, 24).
 */
#ifndef SW_LASTWORDS_H
#define SW_LASTWORDS_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* The last writes kept, and the bytes kept of each (its start: a fatal
 * exception's first write holds the header and the message, ~170-590 bytes
 * on Node 18-24; its last is "\nNode.js v20.20.2\n"). */
#define SW_LW_WRITES 4
#define SW_LW_WRITE_LEN 512

struct sw_lw_write {
	__u32 len;   /* bytes kept in buf */
	__u32 total; /* bytes the write asked for */
	__u64 ts_ns;
	char buf[SW_LW_WRITE_LEN];
};

/* Per target process (key: tgid). */
struct sw_last_words {
	__u64 writes;	   /* writes to fd 2 seen; w[(writes - 1) % SW_LW_WRITES] is the last */
	__u64 uncaught;	   /* TriggerUncaughtException calls */
	__u64 uncaught_ns; /* time of the last one */
	__u32 from_promise; /* its from_promise argument */
	__u32 pad;
	struct sw_lw_write w[SW_LW_WRITES];
};

#endif /* SW_LASTWORDS_H */
