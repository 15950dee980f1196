// SPDX-License-Identifier: Apache-2.0
/*
 * gil_uprobe: counts every GIL release and take of one CPython process with
 * uprobes (see gil_uprobe.bpf.c), for the bench's cost comparison.
 *
 *   gil_uprobe --pid PID [--binary PATH]
 *
 * PATH defaults to /proc/PID/exe (Debian's python3.11 links libpython
 * statically); give the libpython .so for a shared build. Prints
 * {"event":"attached",..} once the three probes are in, then a "counts" line
 * (totals since attach) on each SIGUSR1 and a last one on SIGINT/SIGTERM.
 * The bench brackets each load run with SIGUSR1, so the hits per second are
 * those of that run exactly.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "gil_uprobe.h"
#include "gil_uprobe.skel.h"

static int verbose;

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: gil_uprobe --pid PID [--binary PATH] [-v]\n");
}

static void print_counts(struct gil_uprobe_bpf *skel, const char *event)
{
	int fd = bpf_map__fd(skel->maps.threads);
	struct gil_uprobe_thread t, sum = {};
	__u32 key, next, *prev = NULL;
	unsigned int n = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &t))
			continue; /* the thread's entry went away meanwhile */
		sum.saves += t.saves;
		sum.restores += t.restores;
		sum.returns += t.returns;
		sum.wait_ns += t.wait_ns;
		n++;
	}
	printf("{\"event\":\"%s\",\"t_ns\":%llu,\"saves\":%llu,\"restores\":%llu,"
	       "\"returns\":%llu,\"wait_ns\":%llu,\"threads\":%u,\"dropped\":%llu}\n",
	       event, (unsigned long long)now_ns(), (unsigned long long)sum.saves,
	       (unsigned long long)sum.restores, (unsigned long long)sum.returns,
	       (unsigned long long)sum.wait_ns, n, (unsigned long long)skel->bss->dropped);
	fflush(stdout);
}

static struct bpf_link *attach(struct bpf_program *prog, pid_t pid, const char *binary,
			       const char *func, bool retprobe)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = func, .retprobe = retprobe);
	struct bpf_link *link;

	link = bpf_program__attach_uprobe_opts(prog, pid, binary, 0, &opts);
	if (!link)
		fprintf(stderr, "gil_uprobe: cannot attach a %s to %s in %s (pid %d): %s; "
			"is it a CPython 3 binary that exports it (nm -D)?\n",
			retprobe ? "uretprobe" : "uprobe", func, binary, pid, strerror(errno));
	return link;
}

int main(int argc, char **argv)
{
	struct bpf_link *links[3] = {};
	struct gil_uprobe_bpf *skel = NULL;
	char binary[PATH_MAX] = "";
	sigset_t set;
	long pid = 0;
	char *end;
	int err = 1, sig, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pid") && i + 1 < argc) {
			errno = 0;
			pid = strtol(argv[++i], &end, 10);
			if (errno || *end || pid <= 0 || pid > INT_MAX) {
				fprintf(stderr, "gil_uprobe: bad --pid %s: give a process id\n", argv[i]);
				return 1;
			}
		} else if (!strcmp(argv[i], "--binary") && i + 1 < argc) {
			snprintf(binary, sizeof(binary), "%s", argv[++i]);
		} else if (!strcmp(argv[i], "-v")) {
			verbose = 1;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "gil_uprobe: unknown argument %s\n", argv[i]);
			usage(stderr);
			return 1;
		}
	}
	if (!pid) {
		usage(stderr);
		return 1;
	}
	if (!binary[0]) {
		char exe[64];
		ssize_t n;

		snprintf(exe, sizeof(exe), "/proc/%ld/exe", pid);
		n = readlink(exe, binary, sizeof(binary) - 1);
		if (n < 0) {
			fprintf(stderr, "gil_uprobe: cannot read %s: %s; is pid %ld running?\n", exe,
				strerror(errno), pid);
			return 1;
		}
		binary[n] = '\0';
	}

	/* signals are taken synchronously below, never in a handler */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);

	libbpf_set_print(print_libbpf);
	skel = gil_uprobe_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "gil_uprobe: cannot load the BPF programs: %s (run as root)\n",
			strerror(errno));
		goto cleanup;
	}
	links[0] = attach(skel->progs.save_thread, (pid_t)pid, binary, "PyEval_SaveThread", false);
	links[1] = attach(skel->progs.restore_thread, (pid_t)pid, binary, "PyEval_RestoreThread",
			  false);
	links[2] = attach(skel->progs.restore_thread_ret, (pid_t)pid, binary,
			  "PyEval_RestoreThread", true);
	if (!links[0] || !links[1] || !links[2])
		goto cleanup;
	printf("{\"event\":\"attached\",\"pid\":%ld,\"binary\":\"%s\",\"t_ns\":%llu}\n", pid,
	       binary, (unsigned long long)now_ns());
	fflush(stdout);

	for (;;) {
		sig = sigwaitinfo(&set, NULL);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "gil_uprobe: sigwaitinfo: %s\n", strerror(errno));
			goto cleanup;
		}
		if (sig == SIGUSR1) {
			print_counts(skel, "counts");
			continue;
		}
		print_counts(skel, "final");
		break;
	}
	err = 0;
cleanup:
	for (i = 0; i < 3; i++)
		bpf_link__destroy(links[i]);
	gil_uprobe_bpf__destroy(skel);
	return err;
}
