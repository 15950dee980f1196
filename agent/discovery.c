// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "discovery.h"
#include "identity.h"
#include "utf8.h"
#include "runtime/runtime.h"
#include "symbolize.h"
#include "target_io.h"

void sw_discovery_set_proc_root(const char *root)
{
	sw_tio_set_default(root && strcmp(root, "/proc") ? sw_tio__new_proc(root) : NULL);
}

const char *sw_runtime_name(enum sw_runtime rt)
{
	const struct sw_runtime_desc *d = sw_runtime_desc_of(rt);

	return d ? d->name : "native";
}

/* A name the kernel keeps as 15 bytes may end inside a character (a
 * non-ASCII process.title or thread name): made valid UTF-8 in place. */
static void utf8_in_place(char *s, size_t size)
{
	char tmp[256];

	sw_utf8_copy(tmp, sizeof(tmp) < size ? sizeof(tmp) : size, s, strnlen(s, size));
	memcpy(s, tmp, strlen(tmp) + 1);
}

void sw_thread_comm(pid_t pid, pid_t tid, char *out, size_t len)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "%d/task/%d/comm", pid, tid);
	if (sw_tio__read_file(sw_tio_default(), rel, out, len))
		out[0] = '\0';
	utf8_in_place(out, len);
}

/* A zombie still has /proc/PID/stat, but no loop will ever run again. */
bool sw_process_alive(pid_t pid)
{
	char rel[32], buf[512];
	const char *rp;

	snprintf(rel, sizeof(rel), "%d/stat", pid);
	if (sw_tio__read_file(sw_tio_default(), rel, buf, sizeof(buf)))
		return false;
	rp = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (!rp || rp[1] != ' ')
		return true;
	return rp[2] != 'Z' && rp[2] != 'X';
}

int sw_process_rss(pid_t pid, uint64_t *out)
{
	static long page;
	unsigned long long size, resident;
	char rel[32], buf[256];
	int err;

	if (!page)
		page = sysconf(_SC_PAGESIZE);
	snprintf(rel, sizeof(rel), "%d/statm", pid);
	err = sw_tio__read_file(sw_tio_default(), rel, buf, sizeof(buf));
	if (err)
		return err;
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return -EINVAL;
	*out = (uint64_t)resident * (uint64_t)page;
	return 0;
}

int sw_thread_syscall(pid_t pid, pid_t tid, long *nr, unsigned long args[6])
{
	char rel[64], buf[256];
	char *p, *end;
	int err;

	snprintf(rel, sizeof(rel), "%d/task/%d/syscall", pid, tid);
	err = sw_tio__read_file(sw_tio_default(), rel, buf, sizeof(buf));
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
	char rel[32];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	snprintf(rel, sizeof(rel), "%d/task", pid);
	d = sw_tio__open_dir(sw_tio_default(), rel);
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
	char rel[64], target[64];
	ssize_t n;

	snprintf(rel, sizeof(rel), "%d/fd/%d", pid, fd);
	n = sw_tio__read_link(sw_tio_default(), rel, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventpoll]") == 0;
}

int sw_proc_symbol_addr(struct sw_tio *t, pid_t pid, const char *mapped_path,
			const struct sw_elf_sym *sym, uint64_t *addr)
{
	char rel[32], line[PATH_MAX + 128], file[PATH_MAX];
	unsigned long long start, end, moff;
	int err = -ENOENT;
	FILE *f;

	if (sym->is_exec) {
		*addr = sym->value;
		return 0;
	}
	snprintf(rel, sizeof(rel), "%d/maps", pid);
	f = sw_tio__open_file(t, rel);
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

void sw_proc_find_lib(struct sw_tio *t, pid_t pid, const char *prefix, char *out, size_t len)
{
	char rel[32], line[PATH_MAX + 128], file[PATH_MAX];
	FILE *f;

	out[0] = '\0';
	snprintf(rel, sizeof(rel), "%d/maps", pid);
	f = sw_tio__open_file(t, rel);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		file[0] = '\0';
		if (sscanf(line, "%*s %*s %*s %*s %*s %4095[^\n]", file) != 1 || file[0] != '/')
			continue;
		const char *base = strrchr(file, '/') + 1;
		if (!strncmp(base, prefix, strlen(prefix)) && strstr(base, ".so")) {
			snprintf(out, len, "%s", file);
			break;
		}
	}
	fclose(f);
}

int sw_discover_process(pid_t pid, struct sw_proc_info *info)
{
	struct sw_tio *t = sw_tio_default();
	char rel[64], buf[PATH_MAX + 64];
	const char *base;
	ssize_t n;
	int err;

	memset(info, 0, sizeof(*info));
	info->pid = pid;
	/* /proc/TID works for any thread: a tid is not a process to attach to */
	info->tgid = pid;
	snprintf(rel, sizeof(rel), "%d/status", pid);
	if (!sw_tio__read_file(t, rel, buf, sizeof(buf))) {
		char *tg = strstr(buf, "\nTgid:");

		if (tg)
			info->tgid = (pid_t)strtol(tg + 6, NULL, 10);
	}
	snprintf(rel, sizeof(rel), "%d/comm", pid);
	err = sw_tio__read_file(t, rel, info->comm, sizeof(info->comm));
	if (err)
		return err == -ENOENT ? -ENOENT : err;
	utf8_in_place(info->comm, sizeof(info->comm));
	snprintf(rel, sizeof(rel), "%d/exe", pid);
	n = sw_tio__read_link(t, rel, info->exe, sizeof(info->exe) - 1);
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n; /* kernel thread or gone */
	info->exe[n] = '\0';
	/* " (deleted)" when the binary was replaced under a running service */
	snprintf(rel, sizeof(rel), "%d/cgroup", pid);
	if (!sw_tio__read_file(t, rel, buf, sizeof(buf))) {
		char *p = strstr(buf, "0::");
		const char *nl = p ? strchr(p, '\n') : NULL;

		/* the v2 line, not the v1 lines after it on a hybrid host */
		sw_utf8_copy(info->cgroup, sizeof(info->cgroup), p ? p + 3 : "",
			     p ? (nl ? (size_t)(nl - p - 3) : strlen(p + 3)) : 0);
		sw_identity_fill(t, info, buf);
	} else {
		sw_identity_fill(t, info, NULL);
	}

	base = strrchr(info->exe, '/');
	base = base ? base + 1 : info->exe;
	for (const struct sw_runtime_desc *const *d = sw_runtimes; *d; d++)
		if ((*d)->identify(t, info, base) == 0)
			return 0;
	info->runtime_lib[0] = '\0';
	info->runtime = SW_RT_NATIVE;
	return 0;
}
