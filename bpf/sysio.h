/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between bpf/sysio.bpf.c and agent/sysio.c: what a loop thread's
 * syscalls were during a busy stretch, per (syscall, fd), and what each fd
 * was when BPF looked at it. One table per tracked loop thread, reset when
 * the stretch changes (sw_thread_block_start of bpf/loopmon.h); the table of
 * the last stretch that was an incident is kept beside it, so the agent can
 * still read it after the loop has moved on.
 */
#ifndef SW_SYSIO_H
#define SW_SYSIO_H

#ifndef __bpf__
#include <linux/types.h>
#endif
#include "loopmon.h"

/* Distinct (syscall, fd, key arg) per stretch. A blocked stretch touches a
 * handful (a query: poll, recvfrom, sendto; readFileSync: openat, fstat,
 * read, close); the report lists SW_DIAG_SYSCALLS (16) at most. */
#define SW_SYSIO_ENTRIES 16
/* Bytes of a dentry name or Unix socket path kept by BPF. */
#define SW_SYSIO_NAME_LEN 64
/* Bytes of a child's command line kept (NUL-separated, as in /proc). */
#define SW_SYSIO_CMD_LEN 128
/* A file's path as BPF walks it: that many components (innermost first),
 * each cut to a slot; the agent checks the result against the inode. */
#define SW_SYSIO_PATH_DEPTH 10
#define SW_SYSIO_COMP_LEN 32
/* Children of target processes remembered (LRU). */
#define SW_SYSIO_CHILDREN 4096

/* x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) */
#define SW_NR_POLL 7
#define SW_NR_PPOLL 271
#define SW_NR_FUTEX 202
#define SW_NR_WAIT4 61
#define SW_NR_WAITID 247

/* What an fd was (sw_sysio_ent.kind). */
enum sw_sysio_kind {
	SW_SYSIO_K_NONE = 0, /* not classified, or the syscall has no fd */
	SW_SYSIO_K_FILE = 1, /* regular file or directory: ino, name = dentry */
	SW_SYSIO_K_SOCK = 2, /* family, proto, peer addr and port; AF_UNIX: name = path */
	SW_SYSIO_K_PIPE = 3,
	SW_SYSIO_K_OTHER = 4, /* anon inode (eventfd, epoll...), device: name = dentry */
	SW_SYSIO_K_GONE = 5,  /* the fd was closed by the time BPF looked */
};

/* sw_sysio_ent.flags */
#define SW_SYSIO_CLASSIFIED 0x1u

struct sw_sysio_ent {
	__s32 nr;
	__s32 fd;	/* -1: none */
	__u64 key_arg;	/* futex address of a wait, wait4/waitid pid; else 0 */
	__u64 count;
	__u64 ns;	/* total time inside, on and off CPU */
	__u64 max_ns;
	__u8 kind;	/* enum sw_sysio_kind */
	__u8 proto;	/* IPPROTO_TCP, IPPROTO_UDP... of a socket */
	__u16 family;	/* AF_INET, AF_INET6, AF_UNIX */
	__u16 port;	/* peer port, host order */
	__u16 flags;	/* SW_SYSIO_* */
	__u8 addr[16];	/* peer address: 4 bytes for AF_INET, network order */
	__u64 ino;	/* inode of the fd's file */
	char name[SW_SYSIO_NAME_LEN]; /* dentry name; AF_UNIX: the path */
	/* a file's path components, innermost first, across mounts up to
	 * the root BPF saw (the target's, in a container); n_comp = used,
	 * SW_SYSIO_PATH_DEPTH + 1 when the walk did not reach the root */
	__u32 n_comp;
	__u32 pad;
	char comp[SW_SYSIO_PATH_DEPTH][SW_SYSIO_COMP_LEN];
};

/* One busy stretch of one thread. */
struct sw_sysio_tab {
	__u64 block_start; /* sw_thread_block_start() of the stretch; 0 = empty */
	__u64 incidents;   /* sw_thread.incidents when the stretch began */
	__u64 dropped;	   /* distinct keys beyond the table */
	__u32 n;
	__u32 child_pid;   /* last child process the thread forked in the stretch */
	struct sw_sysio_ent ent[SW_SYSIO_ENTRIES];
};

/* Per tracked loop thread, keyed by tid; written only by that thread. */
struct sw_sysio_thread {
	__u32 pid;
	__u32 tid;
	/* the syscall in flight, if cur_inflight */
	__s32 cur_nr;
	__s32 cur_fd;
	__u64 cur_arg;
	__u64 cur_enter_ns;
	__u32 cur_inflight;
	/* tab[cur & 1]: the stretch in progress, or the last one; the other:
	 * the last stretch that was an incident (swapped, not copied: 2 KiB
	 * is beyond what BPF can memcpy) */
	__u32 cur;
	struct sw_sysio_tab tab[2];
	/* attach_gen of the programs when this thread last entered a call */
	__u64 gen;
};

/* A child process of a target, keyed by its pid (LRU): its command line as
 * its exec left it, captured in BPF so that a child that is gone before the
 * agent looks is still named. */
struct sw_sysio_child {
	__u32 parent_pid;
	__u32 len; /* bytes of cmd used; 0 = not exec'd (yet) */
	__u64 fork_ns;
	char cmd[SW_SYSIO_CMD_LEN];
};

/*
 * The stretch a busy thread's syscalls are counted in: the iteration that
 * began at iter_start_ns. Not sw_thread_block_start(): after libuv's empty
 * pre-poll that is the pre-poll's return, but the iteration usually goes
 * on to the real poll (loopmon then reports it from iter_start_ns), and a
 * table reset there would lose the block's syscalls. When the pre-poll
 * turns out to have been an iteration of its own (setImmediate), loopmon
 * moves iter_start_ns to its return and the table starts again.
 */
SW_INLINE __u64 sw_sysio_stretch(const struct sw_thread *t)
{
	return t->iter_start_ns;
}

/*
 * Where a syscall's fd is: 0 = first argument, 1 = first fd of a pollfd
 * array (arg 0, count in arg 1), -1 = no fd. The syscalls that take an fd
 * first, x86_64 numbers; *at() dirfds are not what a thread waits on.
 */
SW_INLINE int sw_sysio_fd_arg(long nr)
{
	switch (nr) {
	case 0: /* read */
	case 1: /* write */
	case 5: /* fstat */
	case 8: /* lseek */
	case 16: /* ioctl */
	case 17: /* pread64 */
	case 18: /* pwrite64 */
	case 19: /* readv */
	case 20: /* writev */
	case 40: /* sendfile: out fd */
	case 42: /* connect */
	case 43: /* accept */
	case 44: /* sendto */
	case 45: /* recvfrom */
	case 46: /* sendmsg */
	case 47: /* recvmsg */
	case 48: /* shutdown */
	case 49: /* bind */
	case 54: /* setsockopt */
	case 55: /* getsockopt */
	case 72: /* fcntl */
	case 73: /* flock */
	case 74: /* fsync */
	case 75: /* fdatasync */
	case 77: /* ftruncate */
	case 187: /* readahead */
	case 217: /* getdents64 */
	case 221: /* fadvise64 */
	case 232: /* epoll_wait */
	case 233: /* epoll_ctl */
	case 275: /* splice */
	case 277: /* sync_file_range */
	case 281: /* epoll_pwait */
	case 285: /* fallocate */
	case 288: /* accept4 */
	case 295: /* preadv */
	case 296: /* pwritev */
	case 299: /* recvmmsg */
	case 306: /* syncfs */
	case 307: /* sendmmsg */
	case 326: /* copy_file_range */
	case 327: /* preadv2 */
	case 328: /* pwritev2 */
	case 426: /* io_uring_enter */
	case 441: /* epoll_pwait2 */
		return 0;
	case SW_NR_POLL:
	case SW_NR_PPOLL:
		return 1;
	default:
		return -1;
	}
}

/*
 * The argument that splits a syscall's entries beyond its fd: the address a
 * futex wait sleeps on (different locks are different waits; wakes are
 * not split), the pid a wait4/waitid waits for.
 */
SW_INLINE __u64 sw_sysio_key_arg(long nr, __u64 arg0, __u64 arg1, __u64 arg2)
{
	if (nr == SW_NR_FUTEX) {
		/* FUTEX_CMD_MASK: without FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME */
		__u64 op = arg1 & ~(128ull | 256ull);

		/* WAIT, LOCK_PI, WAIT_BITSET, WAIT_REQUEUE_PI, LOCK_PI2 */
		if (op == 0 || op == 6 || op == 9 || op == 11 || op == 13)
			return arg0;
		return 0;
	}
	if (nr == SW_NR_WAIT4)
		return (__u64)(__s64)(__s32)arg0;
	if (nr == SW_NR_WAITID)
		return arg1;
	(void)arg2;
	return 0;
}

#endif /* SW_SYSIO_H */
