// SPDX-License-Identifier: Apache-2.0
#include <string.h>
#include "rules.h"

const char *const sw_rule_patterns[] = {
	"blocked", "cpu-sync", "sleep-in-async", "sync-io", "sync-child", "cpu-starved", NULL,
};

static bool is(const char *a, const char *b)
{
	return a && strcmp(a, b) == 0;
}

static bool any_of(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (is(s, *set))
			return true;
	return false;
}

static bool is_node(const struct sw_incident_facts *f)
{
	return is(f->runtime, "node");
}

/* Syscalls a thread sleeps in while doing synchronous file or socket I/O.
 * Not futex: a lock or Atomics.wait is not I/O, and naming a driver for it
 * would mislead; it stays "blocked" with its syscall shown. */
static const char *const io_syscalls[] = {
	"read", "write", "pread64", "pwrite64", "readv", "writev", "openat", "open", "fsync",
	"fdatasync", "sync_file_range", "poll", "ppoll", "select", "pselect6", "recvfrom",
	"recvmsg", "sendto", "sendmsg", "connect", "accept", "accept4", "flock",
	"fcntl", "statx", "newfstatat", "getdents64", "copy_file_range", "sendfile", NULL,
};
/* "select (sleep)" is select() with no fds: time.sleep() before CPython 3.11 */
static const char *const sleep_syscalls[] = { "clock_nanosleep", "nanosleep", "select (sleep)",
					      NULL };
/* execSync/spawnSync: a nested libuv loop waits for the child on the loop thread */
static const char *const child_syscalls[] = { "wait4", "waitid", "epoll_wait", "epoll_pwait",
					      "epoll_pwait2", NULL };

void sw_rules_classify(const struct sw_incident_facts *f, struct sw_verdict *v)
{
	uint64_t d = f->duration_ns ? f->duration_ns : 1;
	uint64_t measured = f->oncpu_ns + f->offcpu_ns + f->runq_ns;
	bool node = is_node(f);

	v->pattern = "blocked";
	v->summary = "the event loop was blocked";
	v->advice = node ? "find the synchronous work in the callback that ran at this time "
			   "(stack, syscalls) and make it asynchronous or move it to a worker"
			 : "find the blocking call in the coroutine that ran at this time and await "
			   "an async version, or move it to loop.run_in_executor()";
	/* Without a split of the stretch we cannot say more than "blocked":
	 * guessing a pattern from the duration alone would mislead. */
	if (measured < d / 2)
		return;

	if (f->runq_ns * 2 >= d) {
		v->pattern = "cpu-starved";
		v->summary = "the loop was runnable but got no CPU (run-queue wait)";
		v->advice = "the container's CPU limit (CFS throttling) or co-located work starves "
			    "the loop: raise the CPU limit or request, or move CPU work elsewhere";
		return;
	}
	/* Run-queue time is time the thread wanted the CPU: on a busy machine a
	 * CPU-bound stretch is partly spent waiting for one. */
	if ((f->oncpu_ns + f->runq_ns) * 10 >= d * 7 && f->oncpu_ns >= f->runq_ns) {
		v->pattern = "cpu-sync";
		v->summary = "CPU-bound work ran on the event loop";
		v->advice = node ? "CPU-heavy synchronous code in a handler (big JSON.parse, "
				   "pbkdf2Sync, regex, sort): move it to worker_threads, use the "
				   "async crypto APIs, stream-parse large JSON, or split the work "
				   "with setImmediate"
				 : "a CPU-bound coroutine never awaits: run it with "
				   "loop.run_in_executor(ProcessPoolExecutor) or asyncio.to_thread "
				   "for code that releases the GIL, or yield with await asyncio.sleep(0)";
		return;
	}
	if (f->offcpu_ns * 2 < d)
		return;
	if (any_of(f->top_syscall, sleep_syscalls)) {
		v->pattern = "sleep-in-async";
		v->summary = "a synchronous sleep ran on the event loop";
		v->advice = node ? "a synchronous sleep (Atomics.wait, execSync('sleep')) blocks the "
				   "loop: use await new Promise(r => setTimeout(r, ms))"
				 : "time.sleep() inside an async def blocks the loop: use "
				   "await asyncio.sleep()";
		return;
	}
	if (any_of(f->top_syscall, child_syscalls)) {
		v->pattern = "sync-child";
		v->summary = "the loop waited for a child process synchronously";
		v->advice = node ? "child_process.execSync/spawnSync blocks the loop until the child "
				   "exits: use exec/spawn with a callback or util.promisify"
				 : "subprocess.run() in a coroutine blocks the loop: use "
				   "asyncio.create_subprocess_exec()";
		return;
	}
	if (any_of(f->top_syscall, io_syscalls)) {
		v->pattern = "sync-io";
		v->summary = "synchronous I/O ran on the event loop";
		v->advice = node ? "fs.*Sync or other synchronous I/O in a handler: use fs.promises "
				   "or the callback APIs"
				 : "a synchronous socket, file or DB driver call in an async def "
				   "(requests, psycopg2, pymysql): use an async client (aiohttp, "
				   "asyncpg, aiomysql) or await loop.run_in_executor()";
		return;
	}
}
