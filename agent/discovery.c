// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include "discovery.h"
#include "symbolize.h"

static const char *proc_root = "/proc";

void sw_discovery_set_proc_root(const char *root)
{
	proc_root = root;
}

const char *sw_runtime_name(enum sw_runtime rt)
{
	switch (rt) {
	case SW_RT_NODE:
		return "node";
	case SW_RT_PYTHON:
		return "python";
	default:
		return "native";
	}
}

static int read_small(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

void sw_thread_comm(pid_t pid, pid_t tid, char *out, size_t len)
{
	char path[96];

	snprintf(path, sizeof(path), "%s/%d/task/%d/comm", proc_root, pid, tid);
	if (read_small(path, out, len))
		out[0] = '\0';
}

/* A zombie still has /proc/PID/stat, but no loop will ever run again. */
bool sw_process_alive(pid_t pid)
{
	char path[64], buf[512];
	const char *rp;

	snprintf(path, sizeof(path), "%s/%d/stat", proc_root, pid);
	if (read_small(path, buf, sizeof(buf)))
		return false;
	rp = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (!rp || rp[1] != ' ')
		return true;
	return rp[2] != 'Z' && rp[2] != 'X';
}

int sw_thread_syscall(pid_t pid, pid_t tid, long *nr, unsigned long args[6])
{
	char path[96], buf[256];
	char *p, *end;
	int err;

	snprintf(path, sizeof(path), "%s/%d/task/%d/syscall", proc_root, pid, tid);
	err = read_small(path, buf, sizeof(buf));
	if (err)
		return err;
	if (!strncmp(buf, "running", 7))
		return -EAGAIN;
	*nr = strtol(buf, &end, 10);
	if (end == buf)
		return -EINVAL;
	/* "NR ARG0 ... ARG5 SP PC", args in hex; -1 (not in a syscall) has none */
	p = end;
	for (int i = 0; i < 6; i++) {
		args[i] = strtoul(p, &end, 16);
		if (end == p) {
			args[i] = 0;
			if (*nr >= 0)
				return -EINVAL;
		}
		p = end;
	}
	return 0;
}

int sw_for_each_thread(pid_t pid, int (*fn)(void *ctx, pid_t tid), void *ctx)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%d/task", proc_root, pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while (!rc && (de = readdir(d))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (*end || tid <= 0)
			continue;
		rc = fn(ctx, (pid_t)tid);
	}
	closedir(d);
	return rc;
}

bool sw_fd_is_epoll(pid_t pid, int fd)
{
	char path[96], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%d/fd/%d", proc_root, pid, fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventpoll]") == 0;
}

int sw_python_minor_from_name(const char *name, char *out, size_t len)
{
	const char *p = strstr(name, "python");
	int major, minor, n = 0;

	if (!p)
		return -ENOENT;
	if (sscanf(p + 6, "%d.%d%n", &major, &minor, &n) != 2 || n == 0 || major < 2)
		return -ENOENT;
	snprintf(out, len, "%d.%d", major, minor);
	return 0;
}

void sw_python_hex_version(uint64_t hex, char *out, size_t len)
{
	snprintf(out, len, "%u.%u.%u", (unsigned)(hex >> 24) & 0xff, (unsigned)(hex >> 16) & 0xff,
		 (unsigned)(hex >> 8) & 0xff);
}

/* Where a symbol of a file mapped into pid is: the file's load bias comes
 * from the mapping of its offset 0 in /proc/PID/maps. */
static int sym_addr(pid_t pid, const char *mapped_path, const struct sw_elf_sym *sym,
		    uint64_t *addr)
{
	char path[64], line[PATH_MAX + 128], file[PATH_MAX];
	unsigned long long start, end, moff;
	int err = -ENOENT;
	FILE *f;

	if (sym->is_exec) {
		*addr = sym->value;
		return 0;
	}
	snprintf(path, sizeof(path), "%s/%d/maps", proc_root, pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		file[0] = '\0';
		if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %4095[^\n]", &start, &end, &moff,
			   file) < 4)
			continue;
		if (moff == 0 && !strcmp(file, mapped_path)) {
			*addr = start - sym->load_vaddr + sym->value;
			err = 0;
			break;
		}
	}
	fclose(f);
	return err;
}

static int read_mem(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };

	return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -EFAULT;
}

/*
 * Python's exact version, read from the live process with process_vm_readv,
 * which neither stops nor signals it:
 *  - 3.11+: Py_Version, exported data holding PY_VERSION_HEX;
 *  - older builds with a symbol table (pyenv): Py_GetVersion()'s static
 *    buffer "version.0", filled at start-up for sys.version;
 *  - otherwise major.minor stays, from the binary's or libpython's name.
 */
static void python_version(struct sw_proc_info *info, const char *elf_path, const char *maps_path)
{
	struct sw_elf_sym sym;
	uint64_t addr, hex = 0;
	char buf[sizeof(info->version)], want[sizeof(info->version) + 2];
	size_t n;

	if (sw_elf_find_symbol(elf_path, "Py_Version", &sym) == 0 &&
	    sym_addr(info->pid, maps_path, &sym, &addr) == 0 &&
	    read_mem(info->pid, addr, &hex, sizeof(uint32_t)) == 0 && (hex >> 24) == 3) {
		sw_python_hex_version(hex, info->version, sizeof(info->version));
		return;
	}
	if (sw_elf_find_symbol(elf_path, "version.0", &sym) ||
	    sym_addr(info->pid, maps_path, &sym, &addr) ||
	    read_mem(info->pid, addr, buf, sizeof(buf) - 1))
		return;
	buf[sizeof(buf) - 1] = '\0';
	n = strcspn(buf, " ");
	buf[n] = '\0';
	/* only if it is the version the name promised: "3.9." + patch */
	snprintf(want, sizeof(want), "%s.", info->version);
	if (sw_is_semver(buf, n) && !strncmp(buf, want, strlen(want)))
		snprintf(info->version, sizeof(info->version), "%s", buf);
}

/* Scan maps for a runtime DSO (libnode.so, libpython3.X.so). */
static void find_runtime_lib(struct sw_proc_info *info, const char *needle, char *out, size_t len)
{
	char path[64], line[PATH_MAX + 128], file[PATH_MAX];
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/%d/maps", proc_root, info->pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		file[0] = '\0';
		if (sscanf(line, "%*s %*s %*s %*s %*s %4095[^\n]", file) != 1 || file[0] != '/')
			continue;
		const char *base = strrchr(file, '/') + 1;
		if (!strncmp(base, needle, strlen(needle)) && strstr(base, ".so")) {
			snprintf(out, len, "%s", file);
			break;
		}
	}
	fclose(f);
}

int sw_discover_process(pid_t pid, struct sw_proc_info *info)
{
	char path[PATH_MAX + 64], buf[PATH_MAX + 64];
	const char *base;
	ssize_t n;
	int err;

	memset(info, 0, sizeof(*info));
	info->pid = pid;
	/* /proc/TID works for any thread: a tid is not a process to attach to */
	info->tgid = pid;
	snprintf(path, sizeof(path), "%s/%d/status", proc_root, pid);
	if (!read_small(path, buf, sizeof(buf))) {
		char *t = strstr(buf, "\nTgid:");

		if (t)
			info->tgid = (pid_t)strtol(t + 6, NULL, 10);
	}
	snprintf(path, sizeof(path), "%s/%d/comm", proc_root, pid);
	err = read_small(path, info->comm, sizeof(info->comm));
	if (err)
		return err == -ENOENT ? -ENOENT : err;
	snprintf(path, sizeof(path), "%s/%d/exe", proc_root, pid);
	n = readlink(path, info->exe, sizeof(info->exe) - 1);
	if (n < 0)
		return errno == ENOENT ? -ESRCH : -errno; /* kernel thread or gone */
	info->exe[n] = '\0';
	/* " (deleted)" when the binary was replaced under a running service */
	snprintf(path, sizeof(path), "%s/%d/cgroup", proc_root, pid);
	if (!read_small(path, buf, sizeof(buf))) {
		char *p = strstr(buf, "0::");
		snprintf(info->cgroup, sizeof(info->cgroup), "%s", p ? p + 3 : "");
	}

	base = strrchr(info->exe, '/');
	base = base ? base + 1 : info->exe;
	/* The binary is read through /proc/PID/exe so a container's file is
	 * found without entering its mount namespace. */
	snprintf(path, sizeof(path), "%s/%d/exe", proc_root, pid);
	if (!strncmp(base, "node", 4) || !strncmp(base, "nodejs", 6)) {
		info->runtime = SW_RT_NODE;
		sw_elf_find_version(path, "node.js/v", 9, info->version, sizeof(info->version));
		return 0;
	}
	find_runtime_lib(info, "libnode", info->runtime_lib, sizeof(info->runtime_lib));
	if (info->runtime_lib[0]) {
		info->runtime = SW_RT_NODE;
		snprintf(buf, sizeof(buf), "%s/%d/root%s", proc_root, pid, info->runtime_lib);
		sw_elf_find_version(buf, "node.js/v", 9, info->version, sizeof(info->version));
		return 0;
	}
	find_runtime_lib(info, "libpython", info->runtime_lib, sizeof(info->runtime_lib));
	if (!strncmp(base, "python", 6) || info->runtime_lib[0]) {
		info->runtime = SW_RT_PYTHON;
		if (info->runtime_lib[0]) {
			sw_python_minor_from_name(strrchr(info->runtime_lib, '/') + 1,
						  info->version, sizeof(info->version));
			snprintf(buf, sizeof(buf), "%s/%d/root%s", proc_root, pid,
				 info->runtime_lib);
			python_version(info, buf, info->runtime_lib);
		} else {
			sw_python_minor_from_name(base, info->version, sizeof(info->version));
			python_version(info, path, info->exe);
		}
		return 0;
	}
	info->runtime = SW_RT_NATIVE;
	return 0;
}
