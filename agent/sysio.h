/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sysio BPF unit's user side (bpf/sysio.bpf.c): what a loop thread's
 * syscalls were during an incident, and what was behind each fd: a file's
 * path, a socket's peer, a pipe, the command line of a child waited for, a
 * futex's address. Fills struct sw_diag_syscalls (common/diag.h).
 *
 * The unit shares loopmon's thread states (its maps are reused by fd), so
 * it is opened after loopmon is loaded.
 */
#ifndef SW_AGENT_SYSIO_H
#define SW_AGENT_SYSIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "diag.h"
#include "health.h"
#include "target_io.h"
#include "bpf/sysio.h"

struct sw_sysio;

struct sw_sysio_opts {
	uint64_t threshold_ns;
	/* count only once a stretch is gate old (threshold/4), as for
	 * classification; for benchmarks (docs/PERFORMANCE.md, "sysio") */
	bool count_gated;
	/* attach the syscall programs only while a loop is blocked (see
	 * sw_sysio__blocked); false: always, from sw_sysio__new on */
	bool on_demand;
	int threads_fd;	 /* loopmon's maps */
	int tid_hint_fd;
};

/* Open, load and attach; NULL and errno set on failure. */
struct sw_sysio *sw_sysio__new(const struct sw_sysio_opts *opts);
void sw_sysio__free(struct sw_sysio *s);

/*
 * The syscalls of thread tid of pid in its busy stretch that began at
 * block_start_ns (sw_thread_block_start), longest total first. A syscall
 * in flight in a stretch still in progress is counted with its time so
 * far. 0, or -ENOENT when BPF has no table for that stretch (out->n = 0).
 */
int sw_sysio__collect(struct sw_sysio *s, uint32_t pid, uint32_t tid, uint64_t block_start_ns,
		      struct sw_diag_syscalls *out);

/*
 * Thread tid of pid has been busy for at least a quarter of the threshold
 * (its state t, as loopmon has it). In on-demand mode this attaches the
 * syscall programs if they are not, and seeds the syscall the thread is
 * blocked in, read from /proc/PID/task/TID/syscall, with its start as
 * loopmon saw it go to sleep: the first blocked stretch after a quiet
 * spell is counted from here on, its wait included. No-op otherwise.
 */
struct sw_thread;
void sw_sysio__blocked(struct sw_sysio *s, uint32_t pid, uint32_t tid, const struct sw_thread *t,
		       uint64_t now_ns);
/* On-demand mode: detach once no loop has been blocked for a while. */
void sw_sysio__tick(struct sw_sysio *s, uint64_t now_ns);
/* "always" or "while a loop is blocked" */
const char *sw_sysio__mode(const struct sw_sysio *s);

/* BPF-side counters (syscalls_dropped, failed_reads, thread_map_full) added
 * to h. */
void sw_sysio__health(struct sw_sysio *s, struct sw_health *h);

/* --- /proc resolution, apart so unit tests run it on fixture trees --- */

/*
 * Path of fd of pid if it still is the file with inode ino (ino 0: any):
 * /proc/PID/fd/N read as a link, its inode checked in /proc/PID/fdinfo/N.
 * 0, -ESTALE when the fd now holds another file, or -errno.
 */
int sw_sysio_fd_path(struct sw_tio *t, pid_t pid, int fd, uint64_t ino, char *out, size_t len);

/*
 * What fd of pid is now, from /proc alone (a syscall in flight, which BPF
 * classifies only at its exit): kind, target and port of c. Sockets are
 * found by inode in /proc/PID/net/{tcp,tcp6,udp,udp6,unix}. 0 or -errno.
 */
int sw_sysio_classify_proc(struct sw_tio *t, pid_t pid, int fd, struct sw_diag_syscall *c);

/*
 * The path BPF walked (n_comp components in comp, innermost first), if it
 * names a file with inode ino (0: any) under the target's root
 * (/proc/PID/root). 0, -ESTALE (another file there now) or -errno.
 */
int sw_sysio_walked_path(struct sw_tio *t, pid_t pid, uint32_t n_comp,
			 const char (*comp)[SW_SYSIO_COMP_LEN], uint64_t ino, char *out, size_t len);

/* "a.b.c.d:port" or "[v6]:port" (an IPv4-mapped one as IPv4) of a peer
 * address in network order: 4 bytes for AF_INET (2), 16 for AF_INET6 (10). */
void sw_sysio_format_peer(int family, const uint8_t *addr, uint16_t port, char *out,
			  size_t len);

#endif
