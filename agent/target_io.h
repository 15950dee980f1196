/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Target I/O: every read the agent makes of a target, /proc files and the
 * target's memory, goes through one small interface, so that /proc parsing
 * and the runtime readers (runtime/node.c, runtime/python.c) run unchanged against fixtures: a
 * directory tree standing for /proc and a recorded memory image (the OTel
 * eBPF profiler tests its unwinders on coredumps the same way).
 *
 * Paths are relative to the proc root: "1234/maps", "1234/task/1235/comm".
 * Nothing here stops or signals a target: memory is read with
 * process_vm_readv.
 */
#ifndef SW_TARGET_IO_H
#define SW_TARGET_IO_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct sw_tio;

/* One of several reads made at once: err is 0 or -EFAULT (or -errno). */
struct sw_tio_vec {
	uint64_t addr;
	void *buf;
	size_t len;
	int err;
};

struct sw_tio_ops {
	/* The whole of a small file into buf (NUL-terminated, trailing
	 * newlines and spaces cut). 0 or -errno. */
	int (*read_file)(struct sw_tio *t, const char *rel, char *buf, size_t len);
	/* A file to read line by line (maps); NULL and errno. */
	FILE *(*open_file)(struct sw_tio *t, const char *rel);
	DIR *(*open_dir)(struct sw_tio *t, const char *rel);
	/* readlink(2): length (not terminated) or -errno. */
	ssize_t (*read_link)(struct sw_tio *t, const char *rel, char *buf, size_t len);
	/* Exactly len bytes at addr of pid, or -EFAULT (or -errno). */
	int (*read_mem)(struct sw_tio *t, pid_t pid, uint64_t addr, void *buf, size_t len);
	/* Optional: n independent reads at once (see sw_tio__read_memv). */
	void (*read_memv)(struct sw_tio *t, pid_t pid, struct sw_tio_vec *v, size_t n);
	void (*free)(struct sw_tio *t);
};

struct sw_tio {
	const struct sw_tio_ops *ops;
	/* the directory standing for /proc; an ELF a target maps is read as
	 * <root>/PID/root/<path>, a container's without entering its mounts */
	char root[256];
	uint64_t mem_reads, mem_faults; /* what read_mem was asked, what failed */
	uint64_t mem_calls; /* reads of target memory made: process_vm_readv calls */
};

/* The live system: files under root ("/proc" when NULL), memory with
 * process_vm_readv. */
struct sw_tio *sw_tio__new_proc(const char *root);

/*
 * A fixture: files under root (may be NULL: no files), memory from a
 * recorded image. The image is a list of (address, bytes) segments, for any
 * pid; reads must fall inside one segment, as a real read of an unmapped
 * page fails.
 */
struct sw_tio *sw_tio__new_fixture(const char *root);
int sw_tio__add_segment(struct sw_tio *t, uint64_t addr, const void *bytes, size_t len);
/* Load segments saved by sw_tio__record (format in target_io.c). */
int sw_tio__load_image(struct sw_tio *t, const char *path);

/*
 * Recording: a tio that forwards to inner and keeps a copy of every memory
 * read that succeeded, to be saved as an image for sw_tio__load_image.
 * Files are not recorded (copy the few /proc files a test needs).
 */
struct sw_tio *sw_tio__new_recorder(struct sw_tio *inner);
int sw_tio__save_image(struct sw_tio *recorder, const char *path);

void sw_tio__free(struct sw_tio *t);

static inline int sw_tio__read_file(struct sw_tio *t, const char *rel, char *buf, size_t len)
{
	return t->ops->read_file(t, rel, buf, len);
}
static inline FILE *sw_tio__open_file(struct sw_tio *t, const char *rel)
{
	return t->ops->open_file(t, rel);
}
static inline DIR *sw_tio__open_dir(struct sw_tio *t, const char *rel)
{
	return t->ops->open_dir(t, rel);
}
static inline ssize_t sw_tio__read_link(struct sw_tio *t, const char *rel, char *buf, size_t len)
{
	return t->ops->read_link(t, rel, buf, len);
}
int sw_tio__read_mem(struct sw_tio *t, pid_t pid, uint64_t addr, void *buf, size_t len);
/* n independent reads (each counted in mem_reads), in as few calls as the
 * tio allows: one process_vm_readv for many ranges when live. Each gets its
 * own err; returns how many failed. */
size_t sw_tio__read_memv(struct sw_tio *t, pid_t pid, struct sw_tio_vec *v, size_t n);

static inline int sw_tio__read_u64(struct sw_tio *t, pid_t pid, uint64_t addr, uint64_t *v)
{
	return sw_tio__read_mem(t, pid, addr, v, sizeof(*v));
}

/* The tio discovery uses when no other is given: live /proc until
 * sw_tio_set_default (tests) replaces it. Never NULL. */
struct sw_tio *sw_tio_default(void);
/* Takes ownership; NULL puts back the live /proc. */
void sw_tio_set_default(struct sw_tio *t);

#endif
