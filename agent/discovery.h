/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process discovery from /proc: what runtime a pid runs (node, python or a
 * native epoll loop), its version and binary, its threads' names and its
 * container (cgroup). Read-only: nothing is loaded into, or stops, the target.
 * Every read goes through target_io.h (sw_tio_default()); what each runtime
 * looks like is in runtime/node.c and runtime/python.c.
 */
#ifndef SW_DISCOVERY_H
#define SW_DISCOVERY_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum sw_runtime { SW_RT_NATIVE = 0, SW_RT_NODE = 1, SW_RT_PYTHON = 2 };

struct sw_proc_info {
	pid_t pid;
	pid_t tgid; /* != pid when the pid given is a thread's */
	enum sw_runtime runtime;
	char version[32]; /* "20.20.2", "3.11.7"; "" when unknown */
	char exe[PATH_MAX];
	char comm[16];
	char cgroup[256];
	char runtime_lib[PATH_MAX]; /* libnode / libpython when the runtime is a DSO */
	bool free_threaded;	    /* CPython built without the GIL (PEP 703, "3.13t") */
	/* Identity for a fleet (proto ProcessInfo 20-25, docs/METRICS.md);
	 * "" when there is none or it could not be read, valid UTF-8. */
	char service[64];	  /* --service, OTEL_SERVICE_NAME, service.name, comm */
	char container_id[65];	  /* 64 hex, from the cgroup path (common/container.h) */
	char container_name[128]; /* the runtime's name for it, where readable */
	char pod_uid[37];	  /* Kubernetes pod UID, from the cgroup path */
	char pod_name[64];	  /* CRI's sandbox name, else the pod's /etc/hostname */
	uint64_t start_ticks;	  /* /proc/PID/stat starttime: a reused pid has another */
};

/* At most this many --service PID=NAME overrides. */
#define SW_SERVICE_MAX 64

/*
 * The service name sw_discover_process gives pid (0: every target), ahead
 * of the target's own OTEL_SERVICE_NAME; a pid's own name wins over the one
 * for every target. Kept across an exec's re-discovery. 0, -EINVAL (empty,
 * longer than 63 bytes, or not UTF-8) or -ENOSPC (SW_SERVICE_MAX pids
 * already named). The name is copied.
 */
int sw_discovery_set_service(pid_t pid, const char *name);
/* Forget every --service (tests). */
void sw_discovery_clear_services(void);

const char *sw_runtime_name(enum sw_runtime rt);

struct sw_tio;
struct sw_elf_sym;

/* Root of /proc; tests point it at a fixture tree. Shorthand for
 * sw_tio_set_default(sw_tio__new_proc(root)); "/proc" puts back the live one. */
void sw_discovery_set_proc_root(const char *root);

/* Returns 0, -ENOENT (no such process), -EACCES, or -errno. */
int sw_discover_process(pid_t pid, struct sw_proc_info *info);

/* comm of one thread; "" on failure. */
void sw_thread_comm(pid_t pid, pid_t tid, char *out, size_t len);

bool sw_process_alive(pid_t pid);

/* Resident size of pid in bytes, from /proc/PID/statm (resident pages:
 * anonymous, file and shmem, what the OOM killer and top call RSS). */
int sw_process_rss(pid_t pid, uint64_t *out);

/* Does fd of pid still name an epoll instance? (a closed asyncio loop) */
bool sw_fd_is_epoll(pid_t pid, int fd);

/*
 * The syscall a thread is in, from /proc/PID/task/TID/syscall (which does not
 * stop the thread): 0 with *nr and args[0..5] set, or -EAGAIN when it is
 * running in user space, or -errno.
 */
int sw_thread_syscall(pid_t pid, pid_t tid, long *nr, unsigned long args[6]);

/* Call fn for every thread of pid; stops early when fn returns non-zero. */
int sw_for_each_thread(pid_t pid, int (*fn)(void *ctx, pid_t tid), void *ctx);

/* ---- for the runtime files (runtime/node.c, runtime/python.c) ---- */

/* The first DSO pid maps whose file name starts with prefix and holds ".so"
 * (libnode.so.115, libpython3.12.so.1.0): its path, or "" when none. */
void sw_proc_find_lib(struct sw_tio *t, pid_t pid, const char *prefix, char *out, size_t len);

/* Where a symbol of a file mapped into pid is: the file's load bias comes
 * from the mapping of its offset 0 in /proc/PID/maps. 0 or -ENOENT. */
int sw_proc_symbol_addr(struct sw_tio *t, pid_t pid, const char *mapped_path,
			const struct sw_elf_sym *sym, uint64_t *addr);

#endif
