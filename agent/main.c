// SPDX-License-Identifier: Apache-2.0
/*
 * stallwatch-agent: attach to running Node.js and Python processes and
 * measure their event loops. See README.md and docs/DESIGN.md.
 */
#include <argp.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "clock.h"
#include "discovery.h"
#include "lastwords.h"
#include "log.h"
#include "loopmon.h"
#include "loops.h"
#include "memgrowth.h"
#include "recording.h"
#include "report.h"
#include "stacks.h"
#include "secret.h"
#include "stream.h"
#include "sysio.h"
#include "gilmon.h"
#include "target_io.h"

#define MAX_PIDS 256
#define TICK_MS 100

static volatile sig_atomic_t exiting;

static struct env {
	pid_t pids[MAX_PIDS];
	int n_pids;
	uint64_t threshold_ms;
	uint64_t duration_s;
	uint64_t interval_s;
	bool json;
	const char *collector;
	const char *token_file;
	uint64_t buffer_kb;
	bool no_diag;
	bool no_stacks;
	uint64_t sample_hz;
	const char *folded;
	bool no_syscalls;
	bool syscalls_gated;
	bool syscalls_on_demand;
	bool raw_syscalls;
	uint64_t memory_window_s;
	bool no_gil;
	uint64_t gil_hz;
	const char *record;
	/* --service PID=NAME pids, each checked against --pid at the end */
	pid_t service_pids[SW_SERVICE_MAX];
	int n_service_pids;
	int verbose;
} env = {
	.threshold_ms = 50,
	.interval_s = 10,
	/* syscall tracing costs every syscall of the host ~90 ns while attached
	 * (docs/PERFORMANCE.md, "sysio"): only while a loop is blocked */
	.syscalls_on_demand = true,
	.buffer_kb = 4096,
	.sample_hz = 99,
	.memory_window_s = SW_MEMGROWTH_WINDOW_S,
	.gil_hz = SW_GIL_DEFAULT_HZ,
};

const char *argp_program_version = "stallwatch-agent " SW_VERSION;
static const char doc[] =
	"stallwatch-agent: measure the event loops of running Node.js and Python processes.\n"
	"\n"
	"Attaches with eBPF (no restart, nothing loaded into the target) and reports, per loop\n"
	"thread, busy time per iteration as a histogram, utilization, and every blocked-loop\n"
	"incident (a busy stretch >= threshold), while it is still blocked and when it ends.\n"
	"\n"
	"EXAMPLES:\n"
	"  stallwatch-agent --pid 1234                    # watch one process, human output\n"
	"  stallwatch-agent --pid 1234 --pid 5678 --json  # two processes, JSON lines\n"
	"  stallwatch-agent --pid $(pgrep -f server.js) --threshold-ms 20 --duration 60\n"
	"  stallwatch-agent --pid 1234 --collector 127.0.0.1:7470   # stream to a collector\n"
	"  stallwatch-agent --pid 1234 --pid 5678 --service 5678=billing   # name a service\n";

enum {
	OPT_INTERVAL = 1000,
	OPT_BUFFER,
	OPT_TOKEN_FILE,
	OPT_NO_DIAG,
	OPT_RAW_SYSCALLS,
	OPT_RECORD,
	OPT_NO_STACKS,
	OPT_SAMPLE_HZ,
	OPT_FOLDED,
	OPT_MEMORY_WINDOW,
	OPT_NO_SYSCALLS,
	OPT_SYSCALLS_GATED,
	OPT_SYSCALLS,
	OPT_NO_GIL,
	OPT_GIL_HZ,
	OPT_SERVICE,
};

static const struct argp_option opts[] = {
	{ "pid", 'p', "PID", 0, "Process to attach to (repeatable)", 0 },
	{ "threshold-ms", 't', "MS", 0, "Blocked-loop threshold in ms (default 50)", 0 },
	{ "duration", 'd', "SEC", 0, "Run for SEC seconds (default: until SIGINT/SIGTERM)", 0 },
	{ "interval", OPT_INTERVAL, "SEC", 0, "Loop summary interval (default 10)", 0 },
	{ "json", 'j', NULL, 0, "One JSON object per line on stdout", 0 },
	{ "collector", 'c', "HOST:PORT", 0, "Stream to a stallwatch-collector", 0 },
	{ "token-file", OPT_TOKEN_FILE, "FILE", 0,
	  "Present the token in FILE to the collector (its own --token-file)", 0 },
	{ "buffer-kb", OPT_BUFFER, "KB", 0,
	  "Unsent data kept while the collector is away (default 4096)", 0 },
	{ "no-diag", OPT_NO_DIAG, NULL, 0, "Do not split blocks into on/off-CPU (no sched_switch)",
	  0 },
	{ "no-stacks", OPT_NO_STACKS, NULL, 0,
	  "Do not sample the stacks of blocked loops (--no-diag implies it)", 0 },
	{ "sample-hz", OPT_SAMPLE_HZ, "N", 0,
	  "On-CPU stack sampling rate of blocked loop threads (default 99)", 0 },
	{ "folded", OPT_FOLDED, "FILE", 0,
	  "Append each incident's stacks to FILE in folded format (flamegraph.pl, speedscope)", 0 },
	{ "no-syscalls", OPT_NO_SYSCALLS, NULL, 0,
	  "Do not list the syscalls of an incident and the file, peer or child behind them "
	  "(--no-diag implies it)",
	  0 },
	{ "syscalls", OPT_SYSCALLS, "WHEN", 0,
	  "When to trace syscalls for incidents: 'blocked' (default: only while a loop is "
	  "blocked, from a quarter of the threshold on, until 1 s after the last block; the "
	  "first block after a quiet spell is counted from then on) or 'always' (every syscall "
	  "of the host runs a BPF program, ~90 ns)",
	  0 },
	/* for benchmarks: docs/PERFORMANCE.md, "sysio" */
	{ "syscalls-gated", OPT_SYSCALLS_GATED, NULL, OPTION_HIDDEN,
	  "Count a stretch's syscalls only once it is a quarter of the threshold old", 0 },
	{ "raw-syscalls", OPT_RAW_SYSCALLS, NULL, 0,
	  "Use tp_btf/sys_enter instead of per-syscall tracepoints (no tracefs)", 0 },
	{ "no-gil", OPT_NO_GIL, NULL, 0,
	  "Do not measure GIL contention in Python processes (futex tracepoints, holder sampling)",
	  0 },
	{ "gil-hz", OPT_GIL_HZ, "N", 0,
	  "GIL holder samples a second per Python process, for hold time and the holder's stack "
	  "(default 100)",
	  0 },
	{ "service", OPT_SERVICE, "[PID=]NAME", 0,
	  "Service name of every target, or of one (PID=NAME, repeatable, wins over NAME); "
	  "default: the target's OTEL_SERVICE_NAME (or service.name of OTEL_RESOURCE_ATTRIBUTES), "
	  "else its comm",
	  0 },
	{ "memory-window", OPT_MEMORY_WINDOW, "SEC", 0,
	  "Window over which steady RSS growth is flagged (default 300)", 0 },
	{ "verbose", 'v', NULL, 0, "Verbose debug output (twice: libbpf too)", 0 },
	/* for developers: tests/fixtures/loops/ are made with it */
	{ "record", OPT_RECORD, "FILE", OPTION_HIDDEN,
	  "Write what the loop tracker reads to FILE, for replay in unit tests", 0 },
	{},
};

static int parse_u64(const char *arg, const char *what, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < min || v > max) {
		sw_err("invalid %s '%s': expected a whole number from %llu to %llu", what, arg,
		       (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* --service NAME or --service PID=NAME: 0 or -EINVAL (said). */
static int parse_service(const char *arg)
{
	const char *eq = strchr(arg, '='), *name = eq ? eq + 1 : arg;
	uint64_t pid = 0;
	int err;

	if (eq) {
		char num[24];
		size_t n = (size_t)(eq - arg);

		if (!n || n >= sizeof(num)) {
			sw_err("invalid --service '%s': expected NAME or PID=NAME with a pid from 1 to "
			       "%d",
			       arg, INT_MAX);
			return -EINVAL;
		}
		memcpy(num, arg, n);
		num[n] = '\0';
		if (parse_u64(num, "--service pid", 1, INT_MAX, &pid))
			return -EINVAL;
	}
	err = sw_discovery_set_service((pid_t)pid, name);
	if (err == -ENOSPC) {
		sw_err("too many --service PID=NAME: at most %d per agent; name the rest with "
		       "OTEL_SERVICE_NAME in their environment",
		       SW_SERVICE_MAX);
		return err;
	}
	if (err) {
		sw_err("invalid --service '%s': the name must be 1 to 63 bytes of UTF-8", arg);
		return err;
	}
	if (pid) {
		int i;

		for (i = 0; i < env.n_service_pids; i++)
			if (env.service_pids[i] == (pid_t)pid)
				break;
		if (i == env.n_service_pids)
			env.service_pids[env.n_service_pids++] = (pid_t)pid;
	}
	return 0;
}

/* A bad argument is one line (ours) and exit 2, without argp's usage blurb. */
static void bad_usage(struct argp_state *state)
{
	(void)state;
	exit(2);
}

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	uint64_t v;

	switch (key) {
	case 'p':
		if (parse_u64(arg, "--pid", 1, INT_MAX, &v))
			bad_usage(state);
		if (env.n_pids == MAX_PIDS) {
			sw_err("too many --pid: at most %d per agent", MAX_PIDS);
			bad_usage(state);
		}
		env.pids[env.n_pids++] = (pid_t)v;
		break;
	case 't':
		if (parse_u64(arg, "--threshold-ms", 1, 3600000, &env.threshold_ms))
			bad_usage(state);
		break;
	case 'd':
		if (parse_u64(arg, "--duration", 1, UINT32_MAX, &env.duration_s))
			bad_usage(state);
		break;
	case OPT_INTERVAL:
		if (parse_u64(arg, "--interval", 1, 3600, &env.interval_s))
			bad_usage(state);
		break;
	case OPT_BUFFER:
		if (parse_u64(arg, "--buffer-kb", 64, 1 << 20, &env.buffer_kb))
			bad_usage(state);
		break;
	case 'j':
		env.json = true;
		break;
	case 'c':
		env.collector = arg;
		break;
	case OPT_TOKEN_FILE:
		env.token_file = arg;
		break;
	case OPT_NO_DIAG:
		env.no_diag = true;
		break;
	case OPT_NO_SYSCALLS:
		env.no_syscalls = true;
		break;
	case OPT_SYSCALLS:
		if (!strcmp(arg, "always")) {
			env.syscalls_on_demand = false;
		} else if (!strcmp(arg, "blocked")) {
			env.syscalls_on_demand = true;
		} else {
			sw_err("invalid --syscalls '%s': expected 'always' or 'blocked'", arg);
			bad_usage(state);
		}
		break;
	case OPT_SYSCALLS_GATED:
		env.syscalls_gated = true;
		break;
	case OPT_RAW_SYSCALLS:
		env.raw_syscalls = true;
		break;
	case OPT_NO_STACKS:
		env.no_stacks = true;
		break;
	case OPT_SAMPLE_HZ:
		if (parse_u64(arg, "--sample-hz", 1, 1000, &env.sample_hz))
			bad_usage(state);
		break;
	case OPT_FOLDED:
		env.folded = arg;
		break;
	case OPT_NO_GIL:
		env.no_gil = true;
		break;
	case OPT_GIL_HZ:
		if (parse_u64(arg, "--gil-hz", 1, 1000, &env.gil_hz))
			bad_usage(state);
		break;
	case OPT_RECORD:
		env.record = arg;
		break;
	case OPT_SERVICE:
		if (parse_service(arg))
			bad_usage(state);
		break;
	case OPT_MEMORY_WINDOW:
		/* at least 10 samples at one a second; at most the samples kept */
		if (parse_u64(arg, "--memory-window", 10, SW_MEMGROWTH_MAX_SAMPLES - 1,
			      &env.memory_window_s))
			bad_usage(state);
		break;
	case 'v':
		env.verbose++;
		break;
	case ARGP_KEY_END:
		if (!env.n_pids) {
			sw_err("no process given: pass --pid PID (see --help)");
			bad_usage(state);
		}
		for (int i = 0; i < env.n_service_pids; i++) {
			int j = 0;

			while (j < env.n_pids && env.pids[j] != env.service_pids[i])
				j++;
			if (j == env.n_pids) {
				sw_err("--service %d=...: pid %d is not watched; add --pid %d or drop it",
				       env.service_pids[i], env.service_pids[i], env.service_pids[i]);
				bad_usage(state);
			}
		}
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

/* libbpf's own lines only with -v: without it a failure is our one line,
 * which points at -v (and -vv for libbpf's debug log). */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG && env.verbose < 2)
		return 0;
	if (env.verbose < 1)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

/* One line saying why BPF could not load, and what to do. */
static void explain_bpf_error(const char *what, int err)
{
	if (err == -EPERM || err == -EACCES)
		sw_err("%s: %s; run as root, or grant CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and "
		       "CAP_DAC_READ_SEARCH",
		       what, strerror(-err));
	else
		sw_err("%s: %s; run with -v (or -vv) for libbpf's log", what, strerror(-err));
}

/* The syscalls of incidents (bpf/sysio.bpf.c), on loopmon's thread maps. */
static struct sw_sysio *open_sysio(struct loopmon *lm, uint64_t threshold_ns)
{
	struct sw_sysio_opts so = {
		.threshold_ns = threshold_ns,
		.count_gated = env.syscalls_gated,
		.on_demand = env.syscalls_on_demand,
	};
	struct sw_sysio *sysio;

	so.threads_fd = loopmon__map_fd(lm, "threads");
	so.tid_hint_fd = loopmon__map_fd(lm, "tid_hint");
	if (so.threads_fd < 0 || so.tid_hint_fd < 0) {
		errno = EINVAL;
		sw_err("cannot find the loop thread maps for the syscall unit; run without it "
		       "(--no-syscalls)");
		return NULL;
	}
	sysio = sw_sysio__new(&so);
	if (!sysio) {
		int err = -errno;

		explain_bpf_error("cannot load the syscall unit (--no-syscalls turns it off)", err);
		errno = -err;
	}
	return sysio;
}

/* The ring buffer's consumer, with --record in between. */
struct event_ctx {
	struct sw_loops *loops;
	struct sw_recorder *rec;
};

static int on_event(void *ctx, const struct sw_event *e)
{
	struct event_ctx *ec = ctx;

	if (ec->rec)
		sw_recorder__event(ec->rec, e);
	return sw_loops__on_event(ec->loops, e);
}

/* GIL contention of Python targets (bpf/gilmon.bpf.c), on loopmon's thread
 * maps. Not fatal: the loops are measured without it. */
static struct sw_gil *open_gil(struct loopmon *lm)
{
	struct sw_gil_opts go = {
		.classic_tp = loopmon__tracefs(lm),
		.sample_hz = (uint32_t)env.gil_hz,
	};
	struct sw_gil *gil;

	go.threads_fd = loopmon__map_fd(lm, "threads");
	go.tid_hint_fd = loopmon__map_fd(lm, "tid_hint");
	if (go.threads_fd < 0 || go.tid_hint_fd < 0) {
		sw_warn("cannot find the loop thread maps: GIL contention is not measured");
		return NULL;
	}
	gil = sw_gil__new(&go);
	if (!gil)
		sw_warn("cannot set up GIL measurement (%s): Python processes get no GIL figures; "
			"run with -v for libbpf's log",
			strerror(errno));
	return gil;
}

static void health_extra(struct sw_stream *stream, struct lastwords *lw, struct sw_sysio *sysio,
			 struct sw_gil *gil, struct sw_health *h)
{
	struct sw_stream_stats st;
	struct sw_bpf_stats bs;

	memset(h, 0, sizeof(*h));
	if (lw) {
		lastwords__bpf_stats(lw, &bs);
		for (int i = 0; i < SW_HEALTH__COUNT; i++)
			h->v[i] += bs.v[i];
	}
	if (sysio)
		sw_sysio__health(sysio, h);
	sw_gil__health(gil, h->v);
	h->v[SW_HEALTH_log_suppressed] = sw_log__suppressed();
	if (!stream)
		return;
	sw_stream__stats(stream, &st);
	h->v[SW_HEALTH_stream_dropped_batches] = st.dropped_batches;
	h->v[SW_HEALTH_stream_dropped_bytes] = st.dropped_bytes;
	h->v[SW_HEALTH_stream_dropped_incidents] = st.dropped_incidents;
	h->v[SW_HEALTH_reconnects] = st.reconnects;
	h->v[SW_HEALTH_batches_sent] = st.batches_sent;
	h->v[SW_HEALTH_batches_resent] = st.batches_resent;
	h->v[SW_HEALTH_batches_acked] = st.batches_acked;
}

int main(int argc, char **argv)
{
	static const struct argp argp = { .options = opts, .parser = parse_arg, .doc = doc };
	struct loopmon_opts lo = {};
	struct sw_proc_info *infos = NULL;
	struct loopmon *lm = NULL;
	struct sw_sysio *sysio = NULL;
	struct sw_stream *stream = NULL;
	struct sw_report *rep = NULL;
	struct sw_loops *loops = NULL;
	struct sw_thread_source src;
	struct sw_recorder *rec = NULL;
	struct sw_stacks *stacks = NULL;
	struct sw_gil *gil = NULL;
	FILE *folded = NULL;
	struct lastwords *lw = NULL;
	struct sw_exit_source xs;
	struct event_ctx ec = {};
	struct sw_health h;
	uint64_t start, last_summary, now;
	char msg[512];
	int err = 0, n_ok = 0;

	sw_log_prog = "stallwatch-agent";
	err = argp_parse(&argp, argc, argv, 0, NULL, NULL);
	if (err)
		return 2;
	sw_log_level = env.verbose ? SW_LOG_DEBUG : SW_LOG_INFO;
	libbpf_set_print(libbpf_print);

	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		sw_err("this kernel has no BTF (/sys/kernel/btf/vmlinux: %s); stallwatch needs "
		       "CONFIG_DEBUG_INFO_BTF=y (Linux 5.8+ distro kernels have it)",
		       strerror(errno));
		return 1;
	}
	/* Not root is not fatal by itself: capabilities may have been granted.
	 * What fails later (/proc reads, BPF load) says what is missing. */
	if (geteuid() != 0)
		sw_dbg("not running as root; relying on capabilities");

	/* Arguments first, then discovery: a typo should fail before any BPF
	 * is loaded. */
	if (env.token_file && !env.collector) {
		sw_err("--token-file %s without --collector: the token is for the collector; add "
		       "--collector HOST:PORT",
		       env.token_file);
		err = -EINVAL;
		goto cleanup;
	}
	if (env.collector) {
		stream = sw_stream__new(env.collector, env.buffer_kb * 1024, msg, sizeof(msg));
		if (!stream) {
			sw_err("%s", msg);
			err = -EINVAL;
			goto cleanup;
		}
	}
	if (env.token_file) {
		static struct sw_secret token; /* 4 KiB: not on the stack */

		if (sw_secret__load(env.token_file, &token, msg, sizeof(msg))) {
			sw_err("bad --token-file: %s", msg);
			err = -EINVAL;
			goto cleanup;
		}
		if (token.world_readable)
			sw_warn("--token-file %s is readable by every user of this host: chmod o-r it",
				env.token_file);
		sw_stream__set_token(stream, token.b, token.len);
		memset(&token, 0, sizeof(token));
	}

	if (env.folded) {
		folded = fopen(env.folded, "ae");
		if (!folded) {
			err = -errno;
			sw_err("--folded %s: cannot open it for appending: %s; give a writable path",
			       env.folded, strerror(-err));
			goto cleanup;
		}
	}

	infos = calloc((size_t)env.n_pids, sizeof(*infos));
	if (!infos) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (int i = 0; i < env.n_pids; i++) {
		err = sw_discover_process(env.pids[i], &infos[i]);
		if (err == -ENOENT) {
			sw_err("pid %d: no such process; check the pid (pgrep -f node) and retry",
			       env.pids[i]);
			goto cleanup;
		}
		if (err == -ESRCH) {
			sw_err("pid %d is a kernel thread or a zombie: no user-space loop to watch",
			       env.pids[i]);
			goto cleanup;
		}
		if (err) {
			sw_err("pid %d: cannot read /proc/%d/exe: %s; run as root, or grant "
			       "CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH",
			       env.pids[i], env.pids[i], strerror(-err));
			goto cleanup;
		}
		if (infos[i].tgid != env.pids[i]) {
			sw_err("pid %d is a thread of process %d: pass --pid %d (all its loop "
			       "threads are found)",
			       env.pids[i], infos[i].tgid, infos[i].tgid);
			err = -EINVAL;
			goto cleanup;
		}
		if (infos[i].runtime == SW_RT_NATIVE)
			sw_warn("pid %d (%s, %s) is neither Node.js nor Python; measuring any epoll "
				"loop it runs as runtime 'native'",
				env.pids[i], infos[i].comm, infos[i].exe);
	}

	rep = sw_report__new(env.json, stream, env.threshold_ms * 1000000ull);
	if (!rep) {
		err = -ENOMEM;
		goto cleanup;
	}

	/* No setrlimit(RLIMIT_MEMLOCK): since 5.11 BPF memory is charged to
	 * the memcg, and raising the limit needs CAP_SYS_RESOURCE we may lack. */
	lo.threshold_ns = env.threshold_ms * 1000000ull;
	lo.diag = !env.no_diag;
	lo.force_raw_syscalls = env.raw_syscalls;
	lm = loopmon__open(&lo);
	if (!lm) {
		err = -errno;
		explain_bpf_error("cannot open the BPF object", err);
		goto cleanup;
	}
	err = loopmon__load(lm);
	if (err) {
		explain_bpf_error("cannot load the BPF programs", err);
		goto cleanup;
	}
	err = loopmon__attach(lm);
	if (err) {
		explain_bpf_error("cannot attach the BPF programs", err);
		goto cleanup;
	}
	sw_dbg("attached with %s", loopmon__mode(lm));
	if (!env.no_diag && !env.no_syscalls) {
		sysio = open_sysio(lm, lo.threshold_ns);
		if (!sysio) {
			err = -errno;
			goto cleanup;
		}
	}
	if (!env.no_stacks && !env.no_diag) {
		struct sw_stacks_opts so = {
			.threshold_ns = lo.threshold_ns,
			.sample_hz = (uint32_t)env.sample_hz,
			.sleep_capture = true,
		};

		/* not fatal: the loop measurements stand without stacks */
		stacks = sw_stacks__new(&so, lm, sw_tio_default());
		if (!stacks)
			sw_warn("cannot set up stack sampling (%s): incidents will carry no stack; "
				"run with -v for libbpf's log",
				strerror(errno));
	}

	src = loopmon__source(lm);
	if (env.record) {
		rec = sw_recorder__new(env.record, &src, lo.threshold_ns, lo.diag);
		if (!rec) {
			err = -errno;
			sw_err("cannot write the recording %s: %s", env.record, strerror(-err));
			goto cleanup;
		}
		src = sw_recorder__source(rec);
	}
	loops = sw_loops__new(&src, rep, lo.threshold_ns, lo.diag);
	if (!loops) {
		err = -ENOMEM;
		goto cleanup;
	}
	sw_loops__set_stacks(loops, stacks, folded);
	sw_loops__set_memory_window(loops, (uint32_t)env.memory_window_s);
	/* Not fatal: without it an exit is explained by its code alone. */
	lw = lastwords__new(loopmon__targets_fd(lm), loopmon__tracefs(lm));
	if (lw) {
		xs = lastwords__source(lw);
		sw_loops__set_exit_source(loops, &xs);
	} else {
		sw_warn("cannot load the exit-cause probes (%s): exits are reported with their "
			"code only; run with -v for libbpf's log",
			strerror(errno));
	}
	sw_loops__set_sysio(loops, sysio);
	/* only for Python targets: its futex and sched_switch programs would
	 * cost a Node-only host something for nothing */
	for (int i = 0; i < env.n_pids && !env.no_gil; i++)
		if (infos[i].runtime == SW_RT_PYTHON) {
			gil = open_gil(lm); /* says why when it cannot */
			sw_loops__set_gil(loops, gil);
			break;
		}
	ec.loops = loops;
	ec.rec = rec;
	/* Before the process lines: a SIGINT sent by whoever reads them (a
	 * test that has what it needs) stops the agent cleanly, not by the
	 * default action (exit by signal). */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < env.n_pids; i++) {
		/* it may have exited since discovery */
		if (!sw_process_alive(env.pids[i])) {
			sw_warn("pid %d exited while attaching", env.pids[i]);
			continue;
		}
		if (rec)
			sw_recorder__process(rec, &infos[i]);
		err = sw_loops__add_process(loops, &infos[i]);
		if (err) {
			sw_err("pid %d: cannot add it to the BPF target map: %s", env.pids[i],
			       strerror(-err));
			goto cleanup;
		}
		n_ok++;
	}
	if (!n_ok) {
		sw_err("every target exited before the agent could attach");
		err = -ESRCH;
		goto cleanup;
	}
	if (!env.json)
		sw_info("watching %d process%s, threshold %llu ms (%s); Ctrl-C to stop", n_ok,
			n_ok > 1 ? "es" : "", (unsigned long long)env.threshold_ms,
			loopmon__mode(lm));
	sw_report__flush(rep);

	start = last_summary = sw_mono_ns();
	while (!exiting) {
		err = loopmon__poll(lm, TICK_MS, on_event, &ec);
		if (err < 0 && err != -EINTR) {
			sw_err("reading the BPF ring buffer failed: %s", strerror(-err));
			goto cleanup;
		}
		err = 0;
		now = sw_mono_ns();
		if (rec)
			sw_recorder__tick(rec, now);
		sw_loops__tick(loops, now);
		if (now - last_summary >= env.interval_s * 1000000000ull) {
			last_summary = now;
			health_extra(stream, lw, sysio, gil, &h);
			if (stacks)
				sw_stacks__health(stacks, h.v);
			if (rec)
				sw_recorder__summary(rec, now);
			sw_loops__summarize(loops, now, &h);
			/* the count of a burst of warnings that stopped */
			sw_log__flush(false);
		}
		sw_report__flush(rep);
		if (stream)
			sw_stream__service(stream, now);
		if (env.duration_s && now - start >= env.duration_s * 1000000000ull)
			break;
		if (!sw_loops__live_processes(loops)) {
			sw_info("every target process has exited; stopping");
			break;
		}
	}
	/* a last summary so a short run still reports, and a clean detach */
	loopmon__poll(lm, 0, on_event, &ec);
	health_extra(stream, lw, sysio, gil, &h);
	if (stacks)
		sw_stacks__health(stacks, h.v);
	now = sw_mono_ns();
	if (rec)
		sw_recorder__summary(rec, now);
	sw_loops__summarize(loops, now, &h);
	sw_report__flush(rep);
	if (stream)
		sw_stream__drain(stream, 2000);
cleanup:
	sw_loops__free(loops);
	sw_gil__free(gil);
	lastwords__free(lw);
	if (rec && sw_recorder__errors(rec))
		sw_warn("the recording %s is incomplete: %llu failed writes", env.record,
			(unsigned long long)sw_recorder__errors(rec));
	sw_recorder__free(rec);
	sw_sysio__free(sysio);
	sw_stacks__free(stacks);
	loopmon__free(lm);
	if (folded)
		fclose(folded);
	sw_report__free(rep);
	sw_stream__free(stream);
	free(infos);
	sw_log__flush(true); /* what was held back is said before we go */
	return err ? 1 : 0;
}
