// SPDX-License-Identifier: Apache-2.0
/*
 * agent/loops.c, the agent's state machine, without root or BPF: a fake
 * thread source answers with thread states, either replayed from a real
 * run (the .rec files in tests/fixtures/loops, made by the agent's --record) or set by
 * hand for the corner cases, and the JSON lines that loops reports are
 * checked. /proc lookups (alive, epoll fd, thread syscalls at attach) go to
 * a temp tree whose stat files link to tests/fixtures/proc.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-c/json.h>
#include "loops.h"
#include "utf8.h"
#include "recording.h"
#include "report.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define THRESHOLD (50 * MS)
#define MAX_THREADS 32
#define MAX_LINES 4096
#define TOL_NS (2 * MS) /* as the root tests: the agent's error on a block */
#define REC_LINE 65536

/* ------------------------------------------------------- the fake source */

struct fake {
	struct {
		bool present;
		struct sw_thread st;
	} t[MAX_THREADS];
	/* Replay: the answers recorded for the action in progress. */
	bool replay;
	struct sw_rec next[MAX_THREADS + 1];
	size_t n_next;
	struct {
		uint32_t tid;
		int rc;
	} seed_rc[MAX_THREADS];
	size_t n_seed_rc;
	struct sw_bpf_stats stats;
	/* what loops asked of it */
	struct sw_thread seeded[MAX_THREADS];
	size_t n_seeded;
	uint32_t forgot[64];
	size_t n_forgot;
	uint32_t added[8], deleted[8];
	size_t n_added, n_deleted;
};

static struct fake F;

static int find_slot(uint32_t tid)
{
	for (int i = 0; i < MAX_THREADS; i++)
		if (F.t[i].present && F.t[i].st.tid == tid)
			return i;
	return -1;
}

/* The state BPF would hold for tid: set by the test or by a replayed read. */
static struct sw_thread *fake_put(uint32_t tid)
{
	int i = find_slot(tid);

	for (int j = 0; i < 0 && j < MAX_THREADS; j++)
		if (!F.t[j].present)
			i = j;
	cr_assert_geq(i, 0, "fake source full");
	F.t[i].present = true;
	memset(&F.t[i].st, 0, sizeof(F.t[i].st));
	F.t[i].st.tid = tid;
	return &F.t[i].st;
}

static void fake_drop(uint32_t tid)
{
	int i = find_slot(tid);

	if (i >= 0)
		F.t[i].present = false;
}

static int fake_read(void *ctx, uint32_t tid, struct sw_thread *out)
{
	int i = find_slot(tid);

	(void)ctx;
	if (i < 0)
		return -ENOENT;
	*out = F.t[i].st;
	return 0;
}

static int fake_forget(void *ctx, uint32_t tid)
{
	(void)ctx;
	cr_assert_lt(F.n_forgot, 64);
	F.forgot[F.n_forgot++] = tid;
	if (find_slot(tid) < 0)
		return -ENOENT;
	fake_drop(tid);
	return 0;
}

static int fake_next(void *ctx, const uint32_t *prev, uint32_t *next)
{
	int i = -1;

	(void)ctx;
	if (F.replay) {
		for (size_t k = 0; k < F.n_next; k++) {
			const struct sw_rec *r = &F.next[k];

			if (r->has_prev == !!prev && (!prev || r->prev == *prev)) {
				*next = r->tid;
				return r->rc;
			}
		}
		return -ENOENT;
	}
	if (prev) {
		i = find_slot(*prev);
		if (i < 0)
			return -ENOENT;
	}
	for (i++; i < MAX_THREADS; i++)
		if (F.t[i].present) {
			*next = F.t[i].st.tid;
			return 0;
		}
	return -ENOENT;
}

static int fake_seed(void *ctx, const struct sw_thread *t)
{
	(void)ctx;
	cr_assert_lt(F.n_seeded, MAX_THREADS);
	F.seeded[F.n_seeded++] = *t;
	for (size_t k = 0; k < F.n_seed_rc; k++)
		if (F.seed_rc[k].tid == t->tid)
			return F.seed_rc[k].rc;
	if (F.replay)
		return -EEXIST; /* the real run did not seed it */
	if (find_slot(t->tid) >= 0)
		return -EEXIST;
	*fake_put(t->tid) = *t;
	return 0;
}

static int fake_add_target(void *ctx, uint32_t pid, uint32_t flags)
{
	(void)ctx;
	(void)flags;
	cr_assert_lt(F.n_added, 8);
	F.added[F.n_added++] = pid;
	return 0;
}

static int fake_del_target(void *ctx, uint32_t pid)
{
	(void)ctx;
	cr_assert_lt(F.n_deleted, 8);
	F.deleted[F.n_deleted++] = pid;
	return 0;
}

static void fake_stats(void *ctx, struct sw_bpf_stats *out)
{
	(void)ctx;
	*out = F.stats;
}

static const struct sw_thread_source_ops fake_ops = {
	.read_thread = fake_read,
	.forget_thread = fake_forget,
	.next_thread = fake_next,
	.seed_thread = fake_seed,
	.add_target = fake_add_target,
	.del_target = fake_del_target,
	.stats = fake_stats,
};

/* ---------------------------------------------------------- /proc tree */

static char proc_root[64];

static void must(int rc, const char *what, const char *path)
{
	cr_assert_eq(rc, 0, "%s %s: %s", what, path, strerror(errno));
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

/* A target process: alive (stat from fixtures/proc/node, state S) or a
 * zombie (fixtures/proc/node-thread, state Z). */
static void proc_process(uint32_t pid, bool alive)
{
	char p[256], t[256];

	snprintf(p, sizeof(p), "%s/%u", proc_root, pid);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%u/task", proc_root, pid);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%u/fd", proc_root, pid);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%u/stat", proc_root, pid);
	snprintf(t, sizeof(t), "%s/proc/%s/stat", SW_FIXTURES, alive ? "node" : "node-thread");
	unlink(p);
	must(symlink(t, p), "symlink", p);
}

/* A thread as /proc/PID/task/TID/syscall shows it: "running", or in a
 * syscall ("232 0x5 ..." for epoll_wait on fd 5). */
static void proc_thread(uint32_t pid, uint32_t tid, const char *comm, const char *syscall)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%u/task/%u", proc_root, pid, tid);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%u/task/%u/comm", proc_root, pid, tid);
	write_file(p, comm);
	snprintf(p, sizeof(p), "%s/%u/task/%u/syscall", proc_root, pid, tid);
	write_file(p, syscall);
}

/* fd of pid names an epoll instance (what readlink shows for one). */
static void proc_epoll_fd(uint32_t pid, int fd)
{
	char p[256];

	char target[32];

	snprintf(p, sizeof(p), "%s/%u/fd/%d", proc_root, pid, fd);
	if (readlink(p, target, sizeof(target)) < 0)
		must(symlink("anon_inode:[eventpoll]", p), "symlink", p);
}

static void proc_epoll_fd_gone(uint32_t pid, int fd)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%u/fd/%d", proc_root, pid, fd);
	unlink(p);
}

/* ------------------------------------------------------ output capture */

/* Everything about the report API is here, so that the sink refactor
 * changes one helper: loops reports through a JSON report on stdout, and
 * stdout goes to a file while the test runs. */
static struct {
	char path[64];
	int saved;
	json_object *line[MAX_LINES];
	size_t n;
} out;

static struct sw_report *capture_begin(void)
{
	int fd;

	fflush(stdout);
	snprintf(out.path, sizeof(out.path), "/tmp/sw-loops-out-XXXXXX");
	fd = mkstemp(out.path);
	cr_assert_geq(fd, 0);
	out.saved = dup(1);
	dup2(fd, 1);
	close(fd);
	return sw_report__new(true, NULL, THRESHOLD);
}

static void capture_end(struct sw_report *rep)
{
	char buf[8192];
	FILE *f;

	sw_report__free(rep);
	fflush(stdout);
	dup2(out.saved, 1);
	close(out.saved);
	f = fopen(out.path, "r");
	cr_assert_not_null(f);
	while (fgets(buf, sizeof(buf), f)) {
		cr_assert_lt(out.n, MAX_LINES);
		out.line[out.n] = json_tokener_parse(buf);
		cr_assert_not_null(out.line[out.n], "not JSON: %s", buf);
		out.n++;
	}
	fclose(f);
	unlink(out.path);
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static bool jhas(json_object *o, const char *k)
{
	return json_object_object_get_ex(o, k, NULL);
}

static int64_t jint(json_object *o, const char *k)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s in %s", k,
		  json_object_to_json_string(o));
	return json_object_get_int64(v);
}

static double jnum(json_object *o, const char *k)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s in %s", k,
		  json_object_to_json_string(o));
	return json_object_get_double(v);
}

static bool jbool(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

/* The lines of a kind, for tid (0: any), in order. */
static size_t lines(const char *kind, uint32_t tid, json_object **res, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < out.n; i++) {
		if (strcmp(jstr(out.line[i], "kind"), kind))
			continue;
		if (tid && jint(out.line[i], "tid") != tid)
			continue;
		if (n < max)
			res[n] = out.line[i];
		n++;
	}
	return n;
}

static size_t incidents(uint32_t tid, bool ongoing, json_object **res, size_t max)
{
	json_object *all[MAX_LINES];
	size_t n = lines("incident", tid, all, MAX_LINES), k = 0;

	for (size_t i = 0; i < n; i++)
		if (jbool(all[i], "ongoing") == ongoing) {
			if (k < max)
				res[k] = all[i];
			k++;
		}
	return k;
}

static json_object *last_health(void)
{
	json_object *h[MAX_LINES];
	size_t n = lines("health", 0, h, MAX_LINES);

	cr_assert_gt(n, 0, "no health line");
	return h[n - 1];
}

/* ------------------------------------------------------------- set-up */

static struct sw_thread_source src = { .ops = &fake_ops };

static void setup(void)
{
	memset(&F, 0, sizeof(F));
	memset(&out, 0, sizeof(out));
	snprintf(proc_root, sizeof(proc_root), "/tmp/sw-loops-proc-XXXXXX");
	cr_assert_not_null(mkdtemp(proc_root));
	sw_discovery_set_proc_root(proc_root);
}

static void teardown(void)
{
	char cmd[128];

	for (size_t i = 0; i < out.n; i++)
		json_object_put(out.line[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", proc_root);
	cr_assert_eq(system(cmd), 0);
	sw_discovery_set_proc_root("/proc");
}

TestSuite(loops, .init = setup, .fini = teardown);

static struct sw_proc_info proc_info(uint32_t pid, enum sw_runtime rt)
{
	struct sw_proc_info pi = { .pid = (pid_t)pid, .tgid = (pid_t)pid, .runtime = rt };

	snprintf(pi.comm, sizeof(pi.comm), "%s", rt == SW_RT_NODE ? "node" : "python3");
	return pi;
}

/* A loop thread as BPF holds it after its first wait on loop_fd at t0. */
static struct sw_thread *loop_thread(uint32_t pid, uint32_t tid, int loop_fd, uint64_t t0)
{
	struct sw_thread *t = fake_put(tid);

	sw_thread_init(t, pid, tid, loop_fd, 0, t0);
	snprintf(t->comm, sizeof(t->comm), "%s", tid == pid ? "node" : "worker");
	proc_epoll_fd(pid, loop_fd);
	return t;
}

static struct sw_event event(uint32_t type, const struct sw_thread *t, uint64_t ts)
{
	struct sw_event e = { .type = type, .pid = t->pid, .tid = t->tid, .loop_fd = t->loop_fd,
			      .ts_ns = ts };

	memcpy(e.comm, t->comm, sizeof(e.comm));
	return e;
}

/* A process with no thread in an epoll wait at attach: nothing seeded,
 * threads come from the fake source. */
static struct sw_loops *start(uint32_t pid, enum sw_runtime rt, struct sw_report *rep)
{
	struct sw_proc_info pi = proc_info(pid, rt);
	struct sw_loops *l = sw_loops__new(&src, rep, THRESHOLD, true);

	cr_assert_not_null(l);
	proc_process(pid, true);
	cr_assert_eq(sw_loops__add_process(l, &pi), 0);
	return l;
}

static const struct sw_health no_health;

/* -------------------------------------------------------- hand-made */

Test(loops, summary_of_an_interval)
{
	struct sw_report *rep = capture_begin();
	struct sw_loops *l = start(100, SW_RT_PYTHON, rep);
	struct sw_thread *t = loop_thread(100, 100, 3, 1 * SEC);
	struct sw_event e = event(SW_EV_THREAD_NEW, t, 1 * SEC);
	json_object *s[4];

	sw_loops__on_event(l, &e);
	/* one second: 100 iterations (90 of 1 ms, 10 of 10 ms, then idle in
	 * a wait with a timeout since 1.6 s: 0.2 s idle before it, 0.4 s in it */
	t->iterations = 100;
	t->busy_ns = 90 * MS + 100 * MS;
	t->max_busy_ns = 10 * MS;
	t->hist[sw_hist_bucket(1 * MS)] = 90;
	t->hist[sw_hist_bucket(10 * MS)] = 10;
	t->idle_ns = 200 * MS;
	t->wait_fd = 3;
	t->wait_timeout = 1;
	t->wait_enter_ns = 1600 * MS;
	sw_loops__summarize(l, 2 * SEC, &no_health);
	/* the next interval: only the wait goes on */
	sw_loops__summarize(l, 3 * SEC, &no_health);
	sw_loops__free(l);
	capture_end(rep);

	cr_assert_eq(lines("loop_summary", 100, s, 4), 2);
	cr_assert_eq(jint(s[0], "iterations"), 100);
	cr_assert_eq(jint(s[0], "start_ns"), 1 * SEC, "first interval from the first wait");
	cr_assert_eq(jint(s[0], "end_ns"), 2 * SEC);
	cr_assert_float_eq(jnum(s[0], "idle_ms"), 600.0, 1e-6, "0.2 s done + 0.4 s in progress");
	cr_assert_float_eq(jnum(s[0], "busy_ms"), 400.0, 1e-6, "interval - idle");
	cr_assert_float_eq(jnum(s[0], "utilization"), 0.4, 1e-6);
	cr_assert_float_eq(jnum(s[0], "p50_ms"), 1.0, 0.02, "within a bucket of 1 ms");
	cr_assert_float_eq(jnum(s[0], "max_ms"), 10.0, 1e-6, "the all-time max moved: exact");
	cr_assert_str_eq(jstr(s[0], "role"), "asyncio");
	cr_assert_str_eq(jstr(s[0], "runtime"), "python");
	cr_assert_eq(jint(s[1], "iterations"), 0);
	cr_assert_float_eq(jnum(s[1], "idle_ms"), 1000.0, 1e-6, "the wait in progress");
	cr_assert_float_eq(jnum(s[1], "utilization"), 0.0, 1e-6);
	cr_assert_eq(jint(last_health(), "lost_events"), 0);
}

/* Node, busy since an empty zero-timeout poll: the block starts at that
 * poll's return, and is re-reported every 0.5 s while it lasts. */
Test(loops, ongoing_from_an_empty_zero_timeout_poll)
{
	struct sw_report *rep = capture_begin();
	struct sw_loops *l = start(200, SW_RT_NODE, rep);
	struct sw_thread *t = loop_thread(200, 200, 20, 1 * SEC);
	uint64_t pz_exit = 2 * SEC + 5 * MS;
	json_object *on[8], *fin[2];
	struct sw_event e;

	t->iter_start_ns = 2 * SEC;
	t->pz_enter_ns = 2 * SEC + 4 * MS;
	t->pz_exit_ns = pz_exit;
	t->blk_offcpu_ns = 10 * MS;
	t->blk_sys[0] = (struct sw_blk_sys){ .nr = 35 /* nanosleep */, .ns = 10 * MS };
	sw_loops__tick(l, pz_exit + 40 * MS); /* under the threshold */
	sw_loops__tick(l, pz_exit + 60 * MS); /* reported */
	sw_loops__tick(l, pz_exit + 160 * MS); /* < 0.5 s since: not again */
	sw_loops__tick(l, pz_exit + 561 * MS); /* refreshed */
	/* still sleeping: the stretch in progress counts */
	t->off_start_ns = pz_exit + 600 * MS;
	t->off_kind = SW_OFF_SLEEP;
	t->off_nr = 230; /* clock_nanosleep */
	sw_loops__tick(l, pz_exit + 1100 * MS);
	/* it ends */
	e = event(SW_EV_INCIDENT, t, pz_exit + 1200 * MS);
	e.start_ns = pz_exit;
	e.dur_ns = 1200 * MS;
	e.offcpu_ns = 610 * MS;
	e.blk_sys[0] = (struct sw_blk_sys){ .nr = 230, .ns = 600 * MS };
	e.blk_sys[1] = (struct sw_blk_sys){ .nr = 35, .ns = 10 * MS };
	sw_loops__on_event(l, &e);
	sw_loops__free(l);
	capture_end(rep);

	cr_assert_eq(incidents(200, true, on, 8), 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(jint(on[i], "start_ns"), (int64_t)pz_exit, "from the poll's return");
		cr_assert_not(jhas(on[i], "start_before_attach"));
		cr_assert_str_eq(jstr(on[i], "role"), "main");
	}
	cr_assert_float_eq(jnum(on[0], "duration_ms"), 60.0, 1e-6);
	cr_assert_float_eq(jnum(on[1], "duration_ms"), 561.0, 1e-6);
	cr_assert_float_eq(jnum(on[2], "duration_ms"), 1100.0, 1e-6);
	cr_assert_float_eq(jnum(on[2], "offcpu_ms"), 510.0, 1e-6, "10 ms done + 500 in progress");
	cr_assert_str_eq(jstr(on[2], "top_syscall"), "clock_nanosleep");
	cr_assert_eq(incidents(200, false, fin, 2), 1);
	cr_assert_eq(jint(fin[0], "start_ns"), (int64_t)pz_exit);
	cr_assert_float_eq(jnum(fin[0], "duration_ms"), 1200.0, 1e-6);
	cr_assert_float_eq(jnum(fin[0], "oncpu_ms"), 590.0, 1e-6);
	cr_assert_str_eq(jstr(fin[0], "top_syscall"), "clock_nanosleep");
	/* Node has no sleep pattern of its own (execSync('sleep') is a child
	 * wait): the summary says what was seen */
	cr_assert_str_eq(jstr(fin[0], "pattern"), "unknown");
	cr_assert(strstr(jstr(fin[0], "summary"), "clock_nanosleep"), "%s", jstr(fin[0], "summary"));
}

/* A Node main thread busy (not in an epoll wait) at attach is seeded busy
 * from the attach time; its block is a lower bound. */
Test(loops, seeded_busy_main_thread_starts_before_attach)
{
	struct sw_report *rep = capture_begin();
	struct sw_proc_info pi = proc_info(300, SW_RT_NODE);
	struct sw_loops *l = sw_loops__new(&src, rep, THRESHOLD, true);
	json_object *on[4];
	uint64_t t0;

	proc_process(300, true);
	proc_thread(300, 300, "node", "running");
	/* waiting in epoll_wait(9, ..., -1): seeded as in that wait */
	proc_thread(300, 301, "node", "232 0x9 0x7ffd0 0x400 0xffffffff 0x0 0x0 0x7ffc 0x7f00");
	/* another thread in a futex: no loop thread, not seeded */
	proc_thread(300, 302, "node", "202 0x7f00 0x80 0x0 0x0 0x0 0x0 0x7ffc 0x7f00");
	cr_assert_eq(sw_loops__add_process(l, &pi), 0);
	cr_assert_eq(F.n_added, 1);
	cr_assert_eq(F.n_seeded, 2);
	for (size_t i = 0; i < F.n_seeded; i++) {
		const struct sw_thread *s = &F.seeded[i];

		cr_assert_eq(s->flags & SW_TGT_MERGE_ZERO_POLLS, SW_TGT_MERGE_ZERO_POLLS);
		cr_assert_str_eq(s->comm, "node");
		if (s->tid == 300) {
			cr_assert(sw_thread_busy(s));
			cr_assert(sw_thread_block_start_unknown(s));
			cr_assert_eq(s->loop_fd, -1, "learned at its first wait");
		} else {
			cr_assert_eq(s->tid, 301);
			cr_assert_not(sw_thread_busy(s));
			cr_assert_eq(s->wait_fd, 9);
			cr_assert_eq(s->wait_timeout, -1);
		}
	}
	t0 = F.seeded[0].first_seen_ns;
	sw_loops__tick(l, t0 + 70 * MS);
	sw_loops__free(l);
	capture_end(rep);

	cr_assert_eq(incidents(300, true, on, 4), 1);
	cr_assert_eq(jint(on[0], "start_ns"), (int64_t)t0);
	cr_assert(jbool(on[0], "start_before_attach"));
	cr_assert_eq(incidents(301, true, on, 4), 0);
}

/* Node's platform loop (a lower epoll fd than the main loop's) is measured
 * but never reported. */
Test(loops, node_helper_loop_is_not_reported)
{
	struct sw_report *rep = capture_begin();
	struct sw_loops *l = start(400, SW_RT_NODE, rep);
	struct sw_thread *main_t = loop_thread(400, 400, 20, 1 * SEC);
	struct sw_thread *helper = loop_thread(400, 401, 9, 1 * SEC);
	struct sw_thread *worker = loop_thread(400, 402, 30, 1 * SEC);
	struct sw_event e;
	json_object *res[8];

	e = event(SW_EV_THREAD_NEW, main_t, 1 * SEC);
	sw_loops__on_event(l, &e);
	e = event(SW_EV_THREAD_NEW, helper, 1 * SEC);
	sw_loops__on_event(l, &e);
	e = event(SW_EV_THREAD_NEW, worker, 1 * SEC);
	sw_loops__on_event(l, &e);
	helper->iter_start_ns = 2 * SEC;
	worker->iter_start_ns = 2 * SEC;
	sw_loops__tick(l, 2 * SEC + 100 * MS);
	e = event(SW_EV_INCIDENT, helper, 2 * SEC + 200 * MS);
	e.start_ns = 2 * SEC;
	e.dur_ns = 200 * MS;
	sw_loops__on_event(l, &e);
	sw_loops__summarize(l, 3 * SEC, &no_health);
	sw_loops__free(l);
	capture_end(rep);

	cr_assert_eq(lines("incident", 401, res, 8), 0, "helper: no incident");
	cr_assert_eq(lines("loop_summary", 401, res, 8), 0, "helper: no summary");
	cr_assert_eq(lines("incident", 402, res, 8), 1, "the worker's block is reported");
	cr_assert_str_eq(jstr(res[0], "role"), "worker");
	cr_assert_eq(lines("loop_summary", 400, res, 8), 1);
	cr_assert_str_eq(jstr(res[0], "role"), "main");
	cr_assert_eq(lines("loop_summary", 402, res, 8), 1);
}

/* A loop killed while blocked: its exit event closes the block, and the
 * loop is gone from the next summary. */
Test(loops, thread_exit_while_blocked)
{
	struct sw_report *rep = capture_begin();
	struct sw_loops *l = start(500, SW_RT_PYTHON, rep);
	struct sw_thread *t = loop_thread(500, 501, 3, 1 * SEC);
	struct sw_event e = event(SW_EV_THREAD_NEW, t, 1 * SEC);
	json_object *res[8];

	sw_loops__on_event(l, &e);
	t->iter_start_ns = 2 * SEC;
	sw_loops__tick(l, 2 * SEC + 300 * MS);
	e = event(SW_EV_THREAD_EXIT, t, 2 * SEC + 400 * MS);
	e.busy = 1;
	e.start_ns = 2 * SEC;
	e.dur_ns = 400 * MS;
	e.runq_ns = 5 * MS;
	fake_drop(501); /* BPF deleted its state */
	sw_loops__on_event(l, &e);
	/* a short busy stretch at exit is no incident */
	t = loop_thread(500, 502, 4, 1 * SEC);
	e = event(SW_EV_THREAD_NEW, t, 1 * SEC);
	sw_loops__on_event(l, &e);
	e = event(SW_EV_THREAD_EXIT, t, 3 * SEC);
	e.busy = 1;
	e.start_ns = 3 * SEC - 10 * MS;
	e.dur_ns = 10 * MS;
	fake_drop(502);
	sw_loops__on_event(l, &e);
	sw_loops__summarize(l, 3 * SEC, &no_health);
	sw_loops__free(l);
	capture_end(rep);

	cr_assert_eq(incidents(501, true, res, 8), 1);
	cr_assert_eq(incidents(501, false, res, 8), 1);
	cr_assert_eq(jint(res[0], "start_ns"), 2 * SEC);
	cr_assert_float_eq(jnum(res[0], "duration_ms"), 400.0, 1e-6);
	cr_assert_float_eq(jnum(res[0], "oncpu_ms"), 395.0, 1e-6);
	cr_assert_eq(lines("incident", 502, res, 8), 0);
	cr_assert_eq(lines("loop_summary", 0, res, 8), 0, "both loops are gone");
	cr_assert_eq(jint(last_health(), "lost_events"), 0);
}

/* The end of an ongoing block never came (its INCIDENT event was lost in a
 * full ring buffer) and a later block ended: one event counted lost. */
Test(loops, lost_end_of_an_ongoing_block_is_counted)
{
	struct sw_report *rep = capture_begin();
	struct sw_loops *l = start(600, SW_RT_PYTHON, rep);
	struct sw_thread *t = loop_thread(600, 600, 3, 1 * SEC);
	struct sw_event e = event(SW_EV_THREAD_NEW, t, 1 * SEC);
	struct sw_health extra = { .v[SW_HEALTH_ringbuf_drops] = 0 };
	json_object *res[8];

	sw_loops__on_event(l, &e);
	t->iter_start_ns = 2 * SEC;
	sw_loops__tick(l, 2 * SEC + 100 * MS);
	e = event(SW_EV_INCIDENT, t, 4 * SEC);
	e.start_ns = 3 * SEC;
	e.dur_ns = 1 * SEC;
	F.stats.v[SW_HEALTH_ringbuf_drops] = 1;
	sw_loops__on_event(l, &e);
	sw_loops__summarize(l, 5 * SEC, &extra);
	sw_loops__free(l);
	capture_end(rep);

	cr_assert_eq(incidents(600, true, res, 8), 1);
	cr_assert_eq(jint(res[0], "start_ns"), 2 * SEC);
	cr_assert_eq(incidents(600, false, res, 8), 1);
	cr_assert_eq(jint(res[0], "start_ns"), 3 * SEC);
	cr_assert_eq(jint(last_health(), "lost_events"), 1);
	cr_assert_eq(jint(last_health(), "ringbuf_drops"), 1, "the source's own counters");
}

/* A process that exits (a zombie counts) is reported once, its loops and
 * target go, and the agent knows no live process. */
Test(loops, process_exit)
{
	struct sw_report *rep = capture_begin();
	struct sw_loops *l = start(700, SW_RT_NODE, rep);
	struct sw_thread *t = loop_thread(700, 700, 20, 1 * SEC);
	struct sw_event e = event(SW_EV_THREAD_NEW, t, 1 * SEC);
	json_object *res[8];

	sw_loops__on_event(l, &e);
	sw_loops__tick(l, 2 * SEC);
	cr_assert_eq(sw_loops__live_processes(l), 1);
	proc_process(700, false);
	sw_loops__tick(l, 2 * SEC + 500 * MS); /* /proc is checked once a second */
	cr_assert_eq(sw_loops__live_processes(l), 1);
	sw_loops__tick(l, 3 * SEC);
	/* a zombie leader may have threads still exiting: its exit event gets
	 * one more check to come */
	cr_assert_eq(sw_loops__live_processes(l), 1);
	sw_loops__tick(l, 4 * SEC);
	cr_assert_eq(sw_loops__live_processes(l), 0);
	sw_loops__summarize(l, 5 * SEC, &no_health);
	sw_loops__free(l);
	capture_end(rep);

	cr_assert_eq(lines("process_exit", 0, res, 8), 1);
	cr_assert_eq(jint(res[0], "pid"), 700);
	cr_assert(!json_object_get_boolean(json_object_object_get(res[0], "exit_known")),
		  "found gone in /proc: no code claimed");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(res[0], "pattern")),
			 "unknown");
	cr_assert_eq(F.n_deleted, 1);
	cr_assert_eq(F.deleted[0], 700);
	cr_assert_eq(F.n_forgot, 1, "its thread states are dropped");
	cr_assert_eq(lines("loop_summary", 0, res, 8), 0);
}

/* The exit event reports at once, with its code; the block a loop died in
 * makes it an exit in an incident; /proc later has nothing more to say. */
Test(loops, process_exit_event)
{
	struct sw_report *rep = capture_begin();
	struct sw_loops *l = start(710, SW_RT_NODE, rep);
	struct sw_thread *t = loop_thread(710, 710, 20, 1 * SEC);
	struct sw_event e = event(SW_EV_THREAD_NEW, t, 1 * SEC);
	json_object *res[8];

	sw_loops__on_event(l, &e);
	e = event(SW_EV_PROC_EXIT, t, 2 * SEC);
	e.exit_code = 9; /* SIGKILL */
	e.busy = 1;
	e.dur_ns = 700 * MS;
	sw_loops__on_event(l, &e);
	cr_assert_eq(sw_loops__live_processes(l), 0);
	proc_process(710, false);
	sw_loops__tick(l, 4 * SEC);
	sw_loops__tick(l, 6 * SEC);
	sw_loops__free(l);
	capture_end(rep);

	cr_assert_eq(lines("process_exit", 0, res, 8), 1);
	cr_assert_eq(jint(res[0], "pid"), 710);
	cr_assert_eq(jint(res[0], "signal"), 9);
	cr_assert_eq(jint(res[0], "ts_ns"), 2 * SEC);
	cr_assert(json_object_get_boolean(json_object_object_get(res[0], "in_incident")));
	cr_assert_str_eq(json_object_get_string(json_object_object_get(res[0], "pattern")),
			 "killed");
	cr_assert_eq(F.n_deleted, 1);
}

/* asyncio.run() returned and closed its epoll fd: a loop that looks
 * blocked is forgotten and relearned, not reported. */
Test(loops, closed_loop_fd_is_not_a_block)
{
	struct sw_report *rep = capture_begin();
	struct sw_loops *l = start(800, SW_RT_PYTHON, rep);
	struct sw_thread *t = loop_thread(800, 800, 3, 1 * SEC);
	struct sw_event e = event(SW_EV_THREAD_NEW, t, 1 * SEC);
	json_object *res[8];

	sw_loops__on_event(l, &e);
	t->iter_start_ns = 2 * SEC;
	proc_epoll_fd_gone(800, 3);
	sw_loops__tick(l, 2 * SEC + 100 * MS);
	sw_loops__free(l);
	capture_end(rep);

	cr_assert_eq(lines("incident", 0, res, 8), 0);
	cr_assert_eq(F.n_forgot, 1);
	cr_assert_eq(F.forgot[0], 800);
}

/* ------------------------------------------------------------ replays */

struct replay {
	struct sw_rec *rec; /* the whole recording: a few hundred records */
	size_t n;
	struct {
		char kind[16];
		uint32_t tid;
		uint64_t start_ns, end_ns;
	} truth[8];
	size_t n_truth;
	size_t n_seed, n_forget, n_target_add, n_target_del;
};

static void read_truth(struct replay *r, const char *path)
{
	char buf[512];
	FILE *f = fopen(path, "r");

	cr_assert_not_null(f);
	while (fgets(buf, sizeof(buf), f) && buf[0] == '#') {
		unsigned long long s, e;
		unsigned tid;

		if (r->n_truth < 8 &&
		    sscanf(buf, "# truth kind=%15s tid=%u start_ns=%llu end_ns=%llu",
			   r->truth[r->n_truth].kind, &tid, &s, &e) == 4) {
			r->truth[r->n_truth].tid = tid;
			r->truth[r->n_truth].start_ns = s;
			r->truth[r->n_truth++].end_ns = e;
		}
	}
	fclose(f);
}

static void load(struct replay *r, const char *name)
{
	char path[512];
	struct sw_rec_reader *rd;
	size_t cap = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/loops/%s", SW_FIXTURES, name);
	read_truth(r, path);
	rd = sw_rec_reader__open(path);
	cr_assert_not_null(rd, "%s: %s", path, strerror(errno));
	for (;;) {
		if (r->n == cap) {
			cap = cap ? cap * 2 : 256;
			r->rec = realloc(r->rec, cap * sizeof(*r->rec));
			cr_assert_not_null(r->rec);
		}
		rc = sw_rec_reader__next(rd, &r->rec[r->n]);
		cr_assert_geq(rc, 0, "%s:%u: malformed", path, sw_rec_reader__line(rd));
		if (!rc)
			break;
		switch (r->rec[r->n].kind) {
		case SW_REC_SEED:
			r->n_seed++;
			break;
		case SW_REC_FORGET:
			r->n_forget++;
			break;
		case SW_REC_TARGET_ADD:
			r->n_target_add++;
			break;
		case SW_REC_TARGET_DEL:
			r->n_target_del++;
			break;
		default:
			break;
		}
		r->n++;
	}
	sw_rec_reader__free(rd);
	cr_assert_gt(r->n, 10, "%s: too short", path);
}

/* /proc as loops saw it at attach: the seeded threads' syscalls, the loop
 * fds as epoll instances. */
static void replay_proc(const struct replay *r, uint32_t pid, size_t from, size_t to)
{
	char sys[128];

	proc_process(pid, true);
	for (size_t i = from; i < to; i++) {
		const struct sw_thread *t = &r->rec[i].thread;

		if (r->rec[i].kind != SW_REC_SEED)
			continue;
		if (t->flags & SW_THR_START_UNKNOWN)
			snprintf(sys, sizeof(sys), "running");
		else
			snprintf(sys, sizeof(sys), "%d 0x%x 0x7ffd0 0x400 0x%x 0x0 0x0 0x7ffc 0x7f00",
				 SW_NR_EPOLL_WAIT, t->loop_fd,
				 t->wait_timeout < 0 ? 0xffffffffu : t->wait_timeout ? 100u : 0u);
		proc_thread(pid, t->tid, t->comm, sys);
	}
	for (size_t i = 0; i < r->n; i++)
		if (r->rec[i].kind == SW_REC_READ && r->rec[i].rc == 0 &&
		    r->rec[i].thread.pid == pid && r->rec[i].thread.loop_fd >= 0)
			proc_epoll_fd(pid, r->rec[i].thread.loop_fd);
}

/* Drive loops through the recording: before each action, the source's
 * answers recorded during it are put in place; then the action runs. */
static void replay(struct replay *r)
{
	struct sw_loops *l = NULL;
	struct sw_report *rep = NULL;

	F.replay = true;
	for (size_t i = 0; i < r->n;) {
		const struct sw_rec *a = &r->rec[i];
		size_t j;

		cr_assert(sw_rec_is_action(a->kind), "record %zu: an answer before any action", i);
		F.n_next = F.n_seed_rc = 0;
		for (j = i + 1; j < r->n && !sw_rec_is_action(r->rec[j].kind); j++) {
			const struct sw_rec *b = &r->rec[j];

			switch (b->kind) {
			case SW_REC_READ:
				if (b->rc == 0)
					*fake_put(b->tid) = b->thread;
				else
					fake_drop(b->tid);
				break;
			case SW_REC_SEED:
				F.seed_rc[F.n_seed_rc].tid = b->tid;
				F.seed_rc[F.n_seed_rc++].rc = b->rc;
				break;
			case SW_REC_NEXT:
				cr_assert_lt(F.n_next, MAX_THREADS + 1);
				F.next[F.n_next++] = *b;
				break;
			case SW_REC_STATS:
				F.stats = b->stats;
				break;
			default: /* calls: compared in total at the end */
				break;
			}
		}
		switch (a->kind) {
		case SW_REC_CONFIG:
			cr_assert_null(l);
			cr_assert_eq(a->threshold_ns, THRESHOLD);
			rep = capture_begin();
			l = sw_loops__new(&src, rep, a->threshold_ns, a->diag);
			cr_assert_not_null(l);
			break;
		case SW_REC_PROCESS:
			cr_assert_not_null(l);
			replay_proc(r, (uint32_t)a->proc.pid, i + 1, j);
			cr_assert_eq(sw_loops__add_process(l, &a->proc), 0);
			break;
		case SW_REC_EVENT:
			sw_loops__on_event(l, &a->event);
			break;
		case SW_REC_TICK:
			sw_loops__tick(l, a->now_ns);
			break;
		case SW_REC_SUMMARY:
			sw_loops__summarize(l, a->now_ns, &no_health);
			break;
		default:
			break;
		}
		i = j;
	}
	cr_assert_not_null(l, "no config record");
	sw_loops__free(l);
	capture_end(rep);
	/* loops made the calls it made in the real run */
	cr_assert_eq(F.n_seeded, r->n_seed);
	cr_assert_eq(F.n_forgot, r->n_forget);
	cr_assert_eq(F.n_added, r->n_target_add);
	cr_assert_eq(F.n_deleted, r->n_target_del);
	free(r->rec);
}

/* Every ground-truth block is one final incident on its thread, start and
 * duration within the root tests' 2 ms; nothing else is. */
static void assert_blocks_found(const struct replay *r, const char *role)
{
	json_object *fin[16], *on[64];

	for (size_t b = 0; b < r->n_truth; b++) {
		uint64_t truth = r->truth[b].end_ns - r->truth[b].start_ns;
		size_t n = incidents(r->truth[b].tid, false, fin, 16);
		json_object *best = NULL;

		for (size_t i = 0; i < n && i < 16; i++)
			if (llabs(jint(fin[i], "start_ns") - (int64_t)r->truth[b].start_ns) <
			    (long long)TOL_NS)
				best = fin[i];
		cr_assert_not_null(best, "%s block at %llu: no incident", r->truth[b].kind,
				   (unsigned long long)r->truth[b].start_ns);
		cr_assert_float_eq(jnum(best, "duration_ms"), truth / 1e6, TOL_NS / 1e6, "%s",
				   r->truth[b].kind);
		cr_assert_str_eq(jstr(best, "role"), role);
	}
	cr_assert_eq(incidents(0, false, fin, 16), r->n_truth, "no incident beyond the truth");
	/* every ongoing line belongs to a block that then ended */
	for (size_t i = 0, n = incidents(0, true, on, 64); i < n && i < 64; i++) {
		bool ended = false;

		for (size_t k = 0, m = incidents(0, false, fin, 16); k < m && k < 16; k++)
			ended |= jint(fin[k], "start_ns") == jint(on[i], "start_ns");
		cr_assert(ended, "ongoing %s never ended", json_object_to_json_string(on[i]));
	}
}

Test(loops, replay_node_block)
{
	struct replay r = {};
	json_object *res[64], *on[16];
	uint32_t pid;
	double max = 0;
	size_t n;

	load(&r, "node_block.rec");
	cr_assert_eq(r.n_truth, 2);
	pid = r.truth[0].tid; /* blocks on the main thread: tid == pid */
	replay(&r);

	assert_blocks_found(&r, "main");
	n = incidents(pid, false, res, 64);
	/* the spin: on CPU, or waiting for one on the loaded machine it was
	 * recorded on (its run-queue share decides) */
	cr_assert(!strcmp(jstr(res[0], "pattern"), "node.cpu_bound_callback") ||
			  !strcmp(jstr(res[0], "pattern"), "cpu_starvation"),
		  "spin: %s", jstr(res[0], "pattern"));
	cr_assert(incidents(pid, true, on, 16) >= 1, "the 150 ms spin was seen while it lasted");
	/* summaries: the main loop only (the platform loop is a helper) */
	n = lines("loop_summary", 0, res, 64);
	cr_assert_geq(n, 2);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(jint(res[i], "tid"), pid, "%s", json_object_to_json_string(res[i]));
		cr_assert_gt(jint(res[i], "iterations"), 0);
		if (jnum(res[i], "max_ms") > max)
			max = jnum(res[i], "max_ms");
	}
	cr_assert_float_eq(max, (r.truth[0].end_ns - r.truth[0].start_ns) / 1e6, TOL_NS / 1e6,
			   "the largest iteration is the spin");
	cr_assert_eq(jint(last_health(), "lost_events"), 0);
	cr_assert_eq(jint(last_health(), "failed_reads"), 0);
}

Test(loops, replay_python_asyncio)
{
	struct replay r = {};
	json_object *res[64];
	uint32_t pid;
	size_t n;

	load(&r, "py_asyncio.rec");
	cr_assert_eq(r.n_truth, 2);
	pid = r.truth[0].tid;
	replay(&r);

	assert_blocks_found(&r, "asyncio");
	n = incidents(pid, false, res, 64);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(jstr(res[0], "pattern"), "python.blocking_sleep_in_async");
	cr_assert_str_eq(jstr(res[1], "pattern"), "python.cpu_bound_coroutine");
	n = lines("loop_summary", pid, res, 64);
	cr_assert_geq(n, 2);
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(jstr(res[i], "runtime"), "python");
		cr_assert_leq(jnum(res[i], "utilization"), 1.0);
	}
	cr_assert_eq(jint(last_health(), "lost_events"), 0);
	cr_assert_eq(jint(last_health(), "failed_reads"), 0);
}

/* What --record writes is what the replay reads: every field of a thread
 * state and of an event, escaped strings, "same" reads. */
Test(loops, recording_round_trip)
{
	char path[64] = "/tmp/sw-loops-rec-XXXXXX";
	struct sw_report *rep = capture_begin();
	struct sw_proc_info pi = proc_info(900, SW_RT_NODE);
	struct sw_recorder *rec;
	struct sw_thread_source rsrc;
	struct sw_rec_reader *rd;
	struct sw_loops *l;
	struct sw_thread *t, want;
	struct sw_event e;
	static struct sw_rec r; /* 8 KiB */
	size_t n_read = 0, n_same = 0, n_seed = 0, n_event = 0;
	char line[REC_LINE];
	FILE *f;
	int fd = mkstemp(path), rc;

	cr_assert_geq(fd, 0);
	close(fd);
	rec = sw_recorder__new(path, &src, THRESHOLD, true);
	cr_assert_not_null(rec);
	rsrc = sw_recorder__source(rec);
	l = sw_loops__new(&rsrc, rep, THRESHOLD, true);
	proc_process(900, true);
	proc_thread(900, 900, "node", "running");
	snprintf(pi.service, sizeof(pi.service), "checkout api=1,%%");
	snprintf(pi.container_id, sizeof(pi.container_id), "%s",
		 "4c01db0b339c5f2b8ec3fa81e61e4c8b4b1ed1a6c7f47a1c6a66d4e4e1d2f7a9");
	snprintf(pi.container_name, sizeof(pi.container_name), "api");
	snprintf(pi.pod_uid, sizeof(pi.pod_uid), "8f1c2a4e-7d3b-4c5a-9e6f-0a1b2c3d4e5f");
	snprintf(pi.pod_name, sizeof(pi.pod_name), "checkout-7d9f-xk2p");
	pi.start_ticks = 987654321;
	sw_recorder__process(rec, &pi);
	cr_assert_eq(sw_loops__add_process(l, &pi), 0);
	t = loop_thread(900, 901, 30, 1 * SEC);
	snprintf(t->comm, sizeof(t->comm), "a b%%c=d,e");
	t->iter_start_ns = 2 * SEC;
	t->wait_timeout = -1;
	t->off_nr = -1;
	t->blk_sys[0] = (struct sw_blk_sys){ .nr = -1, .ns = 7 };
	t->blk_sys[3] = (struct sw_blk_sys){ .nr = 230, .ns = 9 };
	t->hist[0] = 1;
	t->hist[SW_HIST_NBUCKETS - 1] = 4000000000u;
	want = *t;
	e = event(SW_EV_INCIDENT, t, 3 * SEC);
	e.start_ns = 2 * SEC;
	e.dur_ns = 1 * SEC;
	e.blk_sys[1] = (struct sw_blk_sys){ .nr = 35, .ns = 11 };
	e.start_unknown = 1;
	sw_recorder__event(rec, &e);
	sw_loops__on_event(l, &e);
	sw_recorder__tick(rec, 3 * SEC);
	sw_loops__tick(l, 3 * SEC);
	sw_recorder__summary(rec, 4 * SEC);
	sw_loops__summarize(l, 4 * SEC, &no_health);
	sw_loops__free(l);
	sw_recorder__free(rec);
	capture_end(rep);

	rd = sw_rec_reader__open(path);
	cr_assert_not_null(rd);
	while ((rc = sw_rec_reader__next(rd, &r)) == 1) {
		switch (r.kind) {
		case SW_REC_CONFIG:
			cr_assert_eq(r.threshold_ns, THRESHOLD);
			cr_assert(r.diag);
			break;
		case SW_REC_PROCESS:
			cr_assert_eq(r.proc.pid, 900);
			cr_assert_eq(r.proc.runtime, SW_RT_NODE);
			cr_assert_str_eq(r.proc.comm, "node");
			cr_assert_str_eq(r.proc.service, pi.service, "escaped and back");
			cr_assert_str_eq(r.proc.container_id, pi.container_id);
			cr_assert_str_eq(r.proc.container_name, pi.container_name);
			cr_assert_str_eq(r.proc.pod_uid, pi.pod_uid);
			cr_assert_str_eq(r.proc.pod_name, pi.pod_name);
			cr_assert_eq(r.proc.start_ticks, 987654321ull);
			break;
		case SW_REC_SEED:
			n_seed++;
			cr_assert_eq(r.tid, 900);
			cr_assert(sw_thread_block_start_unknown(&r.thread));
			break;
		case SW_REC_EVENT:
			n_event++;
			cr_assert_eq(memcmp(&r.event, &e, sizeof(e)), 0, "the event as it was");
			break;
		case SW_REC_READ:
			if (r.tid != 901)
				break;
			n_read++;
			cr_assert_eq(r.rc, 0);
			cr_assert_eq(memcmp(&r.thread, &want, sizeof(want)), 0,
				     "read %zu of tid 901 differs", n_read);
			break;
		default:
			break;
		}
	}
	cr_assert_eq(rc, 0, "line %u malformed", sw_rec_reader__line(rd));
	sw_rec_reader__free(rd);
	cr_assert_eq(n_seed, 1);
	cr_assert_eq(n_event, 1);
	cr_assert_geq(n_read, 3, "tracked at the event, read at the tick and the summary");
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		n_same += !strcmp(line, "read tid=901 rc=0 same\n");
	fclose(f);
	cr_assert_eq(n_same, n_read - 1, "an unchanged state is written once");
	unlink(path);
}

/* A non-ASCII process.title: the kernel keeps 15 bytes of the comm, cutting
 * "Xзаказы-сервер" inside its "с" (0xd1 0x81). Every report carries the name
 * as valid UTF-8, cut before that character. */
Test(loops, comm_cut_inside_a_character_is_reported_as_utf8)
{
	static const char cut[] = "X\xd0\xb7\xd0\xb0\xd0\xba\xd0\xb0\xd0\xb7\xd1\x8b-\xd1";
	struct sw_report *rep = capture_begin();
	struct sw_loops *l = start(100, SW_RT_NODE, rep);
	struct sw_thread *t = loop_thread(100, 100, 3, 1 * SEC);
	struct sw_event e;
	json_object *s[2];

	cr_assert_eq(sizeof(cut) - 1, 15, "the kernel's TASK_COMM_LEN - 1");
	memcpy(t->comm, cut, sizeof(t->comm));
	e = event(SW_EV_THREAD_NEW, t, 1 * SEC);
	sw_loops__on_event(l, &e);
	t->iterations = 1;
	sw_loops__summarize(l, 2 * SEC, &no_health);
	e = event(SW_EV_INCIDENT, t, 2 * SEC);
	e.start_ns = 1500 * MS;
	e.dur_ns = 100 * MS;
	sw_loops__on_event(l, &e);
	sw_loops__free(l);
	capture_end(rep);

	cr_assert_eq(lines("loop_summary", 100, s, 2), 1);
	cr_assert_str_eq(jstr(s[0], "thread"), "X\xd0\xb7\xd0\xb0\xd0\xba\xd0\xb0\xd0\xb7\xd1\x8b-");
	cr_assert_eq(incidents(100, false, s, 2), 1);
	cr_assert_str_eq(jstr(s[0], "thread"), "X\xd0\xb7\xd0\xb0\xd0\xba\xd0\xb0\xd0\xb7\xd1\x8b-");
	cr_assert(sw_utf8_valid(jstr(s[0], "thread"), strlen(jstr(s[0], "thread"))));
}
