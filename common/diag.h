/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What blocked the loop: the diagnosis an incident carries beyond its
 * on/off-CPU split. One model for every producer and consumer:
 *   - agent/stacks.c fills the stacks (native frames unwound from BPF stack
 *     copies, JS frames from a perf map, Python frames spliced in by
 *     agent/runtime/pyframes.c);
 *   - agent/sysio.c fills the syscalls with the fd behind each;
 *   - common/rules.c reads both to name the pattern;
 *   - the sinks print it, sink_proto.c and collector/decoder.c carry it over
 *     the wire (proto/stallwatch.proto: Stack, FrameShare, SyscallStat).
 * Strings are UTF-8 and owned by whoever filled the struct; they stay valid
 * until that producer is asked again (the agent) or the record is freed
 * (the collector).
 */
#ifndef SW_DIAG_H
#define SW_DIAG_H

#include <stdbool.h>
#include <stdint.h>

/* Distinct stacks kept per incident, heaviest first. */
#define SW_DIAG_STACKS 8
/* Frames kept per stack (innermost first); deeper stacks are cut at the
 * outer end and say so with a last frame "[truncated]". */
#define SW_DIAG_FRAMES 64
/* Frames of the heaviest stack given a share over all samples. */
#define SW_DIAG_TOP 8
/* Syscalls listed per incident, longest total first. */
#define SW_DIAG_SYSCALLS 16

struct sw_diag_stack {
	uint64_t weight_ns; /* blocked time the samples stand for */
	uint32_t samples;
	uint32_t n_frames;
	const char *frames[SW_DIAG_FRAMES]; /* innermost first */
};

struct sw_diag_share {
	const char *frame;
	double share; /* of all samples' weight, 0..1, in which the frame appears */
};

struct sw_diag_stacks {
	uint32_t samples;	  /* on-CPU samples + sleep captures in the block */
	uint64_t weight_ns;	  /* their total weight */
	uint32_t n_stacks;
	struct sw_diag_stack stacks[SW_DIAG_STACKS]; /* [0] is "the" stack */
	uint32_t n_top;
	struct sw_diag_share top[SW_DIAG_TOP];
	/* Python: share of the weight during which the interpreter's cyclic
	 * GC was collecting (read at each sample); negative: not read */
	double gc_share;
	/* once per process, for people: how to get better names (no perf map
	 * for JS frames, a CPython not in the layout table...); NULL if none */
	const char *note;
};

/* What an fd was when the syscall ran. */
enum sw_fd_kind {
	SW_FD_NONE = 0, /* the syscall has no fd (sleep, futex, wait4...) */
	SW_FD_FILE,	/* regular file or directory: target is its path */
	SW_FD_TCP,	/* target "addr:port" of the peer, port below */
	SW_FD_UDP,
	SW_FD_UNIX,	/* target is the path of the peer's socket, if bound */
	SW_FD_PIPE,
	SW_FD_OTHER,	/* eventfd, epoll, a device...: target says which */
};

/* "", "file", "tcp", "udp", "unix", "pipe", "other" */
const char *sw_fd_kind_name(enum sw_fd_kind k);
/* The inverse; SW_FD_OTHER for an unknown name. */
enum sw_fd_kind sw_fd_kind_parse(const char *name);

struct sw_diag_syscall {
	char name[24];	  /* "recvfrom", "futex", "wait4", "page fault"... */
	uint64_t count;
	uint64_t total_ns; /* time inside it, on and off CPU */
	int32_t fd;	   /* -1 when none */
	enum sw_fd_kind kind;
	uint16_t port;	   /* TCP/UDP peer port, 0 if none */
	/* path of a file, "127.0.0.1:5432" of a peer, the command line of a
	 * child waited for, "futex 0x7f.." of a lock; "" when unknown */
	char target[160];
};

struct sw_diag_syscalls {
	uint32_t n;
	struct sw_diag_syscall s[SW_DIAG_SYSCALLS];
	uint64_t dropped; /* distinct (syscall, fd) pairs beyond the table */
};

#endif
