// SPDX-License-Identifier: Apache-2.0
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "rules.h"

/* snprintf that is meant to cut: a summary naming a long path or frame is
 * cut at its buffer, never overflows it. */
__attribute__((format(printf, 3, 4))) static void say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Order is the wire's: the collector's per-pattern series index into it. */
const char *const sw_rule_patterns[] = {
	"unknown",
	"cpu_starvation",
	"node.large_json",
	"node.sync_crypto",
	"node.sync_zlib",
	"node.sync_fs",
	"node.sync_child",
	"node.regex",
	"node.gc",
	"node.cpu_bound_callback",
	"python.blocking_sleep_in_async",
	"python.sync_db_in_async",
	"python.sync_http_in_async",
	"python.sync_io_in_async",
	"python.cpu_bound_coroutine",
	"python.gc",
	"python.loop_starved_by_gil",
	NULL,
};

/* A class of frames is said to dominate a block when the stacks it appears
 * in carry at least this share of the sampled weight. Not a majority: a
 * 50 MB JSON.parse spends a good part of its samples in the allocations
 * and scavenges it causes, and those stacks count for JSON only when the
 * JSON frames are in them (they are: the GC runs inside the parse). */
#define DOMINATES 0.35
/* Syscall evidence: the time in one kind of wait, as a share of the block. */
#define SYS_SHARE 0.35

static bool is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static bool any_of(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (is(s, *set))
			return true;
	return false;
}

static bool has_any(const char *s, const char *const *needles)
{
	if (!s)
		return false;
	for (; *needles; needles++)
		if (strstr(s, *needles))
			return true;
	return false;
}

/* ---- frames ---- */

/* Node: the synchronous operations the guides warn about, by the frames of
 * V8 builtins, node's C++ bindings and the libraries node links (OpenSSL,
 * zlib, brotli), as the unstripped /usr/bin/node names them. */
static const char *const f_json[] = { "Builtins_JsonParse", "Builtins_JsonStringify",
				      "JsonParser", "JsonStringifier", "JSON.parse",
				      "JSON.stringify", NULL };
static const char *const f_crypto[] = { "PBKDF2", "pbkdf2", "scrypt", "Scrypt",
					"node::crypto::", "EVP_", "HMAC", "sha1_block",
					"sha256_block", "sha512_block", "aesni_", "ossl_", NULL };
static const char *const f_zlib[] = { "deflate", "inflate", "Brotli", "ZlibContext",
				      "crc32", "adler32", "zlibSync", "Zlib", NULL };
static const char *const f_regex[] = { "RegExp", "irregexp", "Regexp", NULL };
static const char *const f_fs[] = { "node::fs::", "uv_fs_", "uv__fs_", "readFileSync",
				    "writeFileSync", NULL };
static const char *const f_child[] = { "SyncProcessRunner", "spawnSync", "execSync", NULL };
static const char *const f_v8gc[] = { "v8::internal::Heap::", "MarkCompact", "Scavenge",
				      "v8::internal::GCTracer", "IncrementalMarking",
				      "MinorMS", "v8::internal::Sweeper", NULL };
/* Python: the drivers, by their modules' files and native libraries. */
static const char *const f_db[] = { "psycopg", "libpq", "PQexec", "pymysql", "MySQLdb",
				    "mysqlclient", "libmariadb", "libmysqlclient", "/redis/",
				    "sqlite3", "pymongo", "cx_Oracle", "oracledb", "cassandra",
				    NULL };
static const char *const f_http[] = { "/requests/", "/urllib3/", "http/client.py",
				      "urllib/request.py", "httplib2", "/httpx/_client.py",
				      NULL };

enum fclass { FC_NONE, FC_JSON, FC_CRYPTO, FC_ZLIB, FC_REGEX, FC_FS, FC_CHILD, FC_GC, FC_N };

static const char *const *const node_classes[FC_N] = {
	[FC_JSON] = f_json,   [FC_CRYPTO] = f_crypto, [FC_ZLIB] = f_zlib, [FC_REGEX] = f_regex,
	[FC_FS] = f_fs,	      [FC_CHILD] = f_child,   [FC_GC] = f_v8gc,
};

/* A stack's class: the outermost operation it is inside (the GC that a
 * JSON.parse triggers belongs to the parse), else the GC, else none. */
static enum fclass stack_class(const struct sw_diag_stack *s)
{
	bool gc = false;

	for (uint32_t i = s->n_frames; i-- > 0;) {
		const char *fr = s->frames[i];

		for (int c = FC_JSON; c < FC_GC; c++)
			if (has_any(fr, node_classes[c]))
				return (enum fclass)c;
		if (has_any(fr, f_v8gc))
			gc = true;
	}
	return gc ? FC_GC : FC_NONE;
}

static uint64_t stacks_weight(const struct sw_diag_stacks *st)
{
	uint64_t w = 0;

	for (uint32_t k = 0; k < st->n_stacks; k++)
		w += st->stacks[k].weight_ns;
	return w > st->weight_ns ? w : st->weight_ns;
}

/*
 * Share of all the samples' weight in which a frame with one of needles
 * appears, as the agent counted it over every sample (st->top: the hot
 * stack's frames with their shares). The kept stacks alone undercount it:
 * only the SW_DIAG_STACKS heaviest distinct stacks travel, and a cold
 * 50 MB JSON.parse spreads its samples over more of them than that (its
 * allocation and scavenge leaves differ): the parser's frames were in 85 %
 * of the samples while the kept stacks held less than 35 % of the weight.
 */
static double top_share(const struct sw_diag_stacks *st, const char *const *needles)
{
	double best = 0;

	for (uint32_t k = 0; st && k < st->n_top && k < SW_DIAG_TOP; k++)
		if (st->top[k].frame && has_any(st->top[k].frame, needles) && st->top[k].share > best)
			best = st->top[k].share;
	return best > 1 ? 1 : best;
}

/* Share of the sampled weight in stacks containing one of needles: of the
 * kept stacks, or of every sample when the agent's top frames say more. */
static double frames_share(const struct sw_diag_stacks *st, const char *const *needles)
{
	uint64_t hit = 0, total;
	double kept, all;

	if (!st || !st->n_stacks || !(total = stacks_weight(st)))
		return 0;
	for (uint32_t k = 0; k < st->n_stacks; k++)
		for (uint32_t i = 0; i < st->stacks[k].n_frames; i++)
			if (has_any(st->stacks[k].frames[i], needles)) {
				hit += st->stacks[k].weight_ns;
				break;
			}
	kept = (double)hit / (double)total;
	all = top_share(st, needles);
	return all > kept ? all : kept;
}

/* The class whose stacks carry the most weight, and that share. */
static enum fclass node_dominant(const struct sw_diag_stacks *st, double *share)
{
	uint64_t w[FC_N] = { 0 }, total;
	enum fclass best = FC_NONE;
	double sh[FC_N] = { 0 };

	*share = 0;
	if (!st || !st->n_stacks || !(total = stacks_weight(st)))
		return FC_NONE;
	for (uint32_t k = 0; k < st->n_stacks; k++)
		w[stack_class(&st->stacks[k])] += st->stacks[k].weight_ns;
	/* each class's share of the kept stacks, or of every sample when the
	 * agent's top frames say more (top_share) */
	for (int c = FC_JSON; c < FC_N; c++) {
		double all = top_share(st, node_classes[c]);

		sh[c] = (double)w[c] / (double)total;
		if (all > sh[c])
			sh[c] = all;
	}
	for (int c = FC_JSON; c < FC_N; c++)
		if (sh[c] > sh[best])
			best = (enum fclass)c;
	if (best == FC_NONE)
		return FC_NONE;
	*share = sh[best];
	return *share >= DOMINATES ? best : FC_NONE;
}

static bool py_frame(const char *fr)
{
	return fr && strstr(fr, ".py:");
}

static bool lib_path(const char *fr)
{
	static const char *const libs[] = { "/usr/lib/python", "site-packages/",
					    "dist-packages/", "<frozen ", "/lib/python3", NULL };

	return has_any(fr, libs);
}

/* The frame of the user's own code nearest to the block: the innermost
 * Python frame outside the standard library and installed packages (else
 * the innermost Python frame); for Node, the innermost named JS frame of a
 * file that is not node's own. NULL when the stacks name none. */
static const char *culprit_frame(const struct sw_diag_stacks *st, bool node)
{
	const struct sw_diag_stack *s;
	const char *any = NULL;

	if (!st || !st->n_stacks)
		return NULL;
	s = &st->stacks[0];
	for (uint32_t i = 0; i < s->n_frames; i++) {
		const char *fr = s->frames[i];

		if (node) {
			if (strstr(fr, ".js:") && !strstr(fr, "node:"))
				return fr;
			continue;
		}
		if (!py_frame(fr))
			continue;
		if (!lib_path(fr))
			return fr;
		if (!any)
			any = fr;
	}
	return any;
}

/* ---- syscalls ---- */

static const char *const sleep_syscalls[] = { "clock_nanosleep", "nanosleep", "select (sleep)",
					      NULL };
/* execSync/spawnSync: a nested libuv loop waits for the child on the loop
 * thread; subprocess.run waits in wait4 */
static const char *const child_syscalls[] = { "wait4", "waitid", NULL };
static const char *const nested_wait_syscalls[] = { "epoll_wait", "epoll_pwait", "epoll_pwait2",
						    "poll", "ppoll", NULL };
/* Syscalls a thread spends time in while doing synchronous file or socket
 * I/O, when no fd was classified (older agents send only the top one). */
static const char *const io_syscalls[] = {
	"read", "write", "pread64", "pwrite64", "readv", "writev", "openat", "open", "fsync",
	"fdatasync", "sync_file_range", "poll", "ppoll", "select", "pselect6", "recvfrom",
	"recvmsg", "sendto", "sendmsg", "connect", "accept", "accept4", "flock",
	"fcntl", "statx", "newfstatat", "getdents64", "copy_file_range", "sendfile", NULL,
};

bool sw_rules_db_port(unsigned port)
{
	static const unsigned ports[] = { 5432, 6432 /* pgbouncer */, 3306, 33060, 6379, 27017,
					  9042, 1433, 1521, 11211, 5984, 26257, 8123, 9000, 0 };

	for (int i = 0; ports[i]; i++)
		if (port == ports[i])
			return true;
	return false;
}

bool sw_rules_http_port(unsigned port)
{
	static const unsigned ports[] = { 80, 443, 8080, 8443, 8000, 8008, 8888, 3000, 5000, 0 };

	for (int i = 0; ports[i]; i++)
		if (port == ports[i])
			return true;
	return false;
}

static bool unix_db(const char *target)
{
	static const char *const socks[] = { ".s.PGSQL.", "mysql", "redis", "mongodb", NULL };

	return has_any(target, socks);
}

struct sys_evidence {
	uint64_t file_ns, sock_ns, db_ns, http_ns, sleep_ns, child_ns, futex_ns;
	const struct sw_diag_syscall *file, *sock, *db, *http, *child, *futex;
};

static void note_max(const struct sw_diag_syscall **best, const struct sw_diag_syscall *c)
{
	if (!*best || c->total_ns > (*best)->total_ns)
		*best = c;
}

static void sys_evidence(const struct sw_diag_syscalls *sys, struct sys_evidence *e)
{
	memset(e, 0, sizeof(*e));
	if (!sys)
		return;
	for (uint32_t i = 0; i < sys->n && i < SW_DIAG_SYSCALLS; i++) {
		const struct sw_diag_syscall *c = &sys->s[i];

		if (any_of(c->name, sleep_syscalls)) {
			e->sleep_ns += c->total_ns;
		} else if (any_of(c->name, child_syscalls) ||
			   (any_of(c->name, nested_wait_syscalls) && c->kind == SW_FD_NONE &&
			    c->target[0])) {
			/* a nested poll names its child when the agent saw one */
			e->child_ns += c->total_ns;
			note_max(&e->child, c);
		} else if (is(c->name, "futex")) {
			e->futex_ns += c->total_ns;
			note_max(&e->futex, c);
		}
		switch (c->kind) {
		case SW_FD_FILE:
			e->file_ns += c->total_ns;
			note_max(&e->file, c);
			break;
		case SW_FD_TCP:
		case SW_FD_UDP:
		case SW_FD_UNIX:
			e->sock_ns += c->total_ns;
			note_max(&e->sock, c);
			if ((c->kind != SW_FD_UNIX && sw_rules_db_port(c->port)) ||
			    (c->kind == SW_FD_UNIX && unix_db(c->target))) {
				e->db_ns += c->total_ns;
				note_max(&e->db, c);
			} else if (c->kind == SW_FD_TCP && sw_rules_http_port(c->port)) {
				e->http_ns += c->total_ns;
				note_max(&e->http, c);
			}
			break;
		default:
			break;
		}
	}
}

static bool share_of(uint64_t part, uint64_t d, double share)
{
	return d && (double)part >= share * (double)d;
}

/* ---- verdicts ---- */

#define MSF(ns) ((double)(ns) / 1e6)

struct ctx {
	const struct sw_incident_facts *f;
	struct sw_verdict *v;
	uint64_t d;
	bool node;
	const char *culprit; /* the user's frame, or NULL */
	struct sys_evidence sx;
};

/* " in handler (app.py:42)", or "" */
static const char *in_culprit(const struct ctx *c, char *buf, size_t len)
{
	if (!c->culprit)
		return "";
	say(buf, len, " in %s", c->culprit);
	return buf;
}

static void set(struct ctx *c, const char *pattern)
{
	c->v->pattern = pattern;
}

static void node_verdict(struct ctx *c, enum fclass fc, double share)
{
	char in[200];
	const char *where = in_culprit(c, in, sizeof(in));
	struct sw_verdict *v = c->v;
	int pct = (int)(share * 100 + 0.5);

	switch (fc) {
	case FC_JSON:
		set(c, "node.large_json");
		say(v->summary, sizeof(v->summary),
			 "JSON.parse/JSON.stringify held the event loop %.0f ms%s (%d%% of samples)",
			 MSF(c->d), where, pct);
		say(v->advice, sizeof(v->advice),
			 "A payload this large cannot be parsed on the loop: bound request body sizes "
			 "(e.g. express.json({ limit })), stream-parse it, or parse it in a "
			 "worker_threads Worker.");
		return;
	case FC_CRYPTO:
		set(c, "node.sync_crypto");
		say(v->summary, sizeof(v->summary),
			 "synchronous crypto (pbkdf2Sync/scryptSync/hashing) ran %.0f ms on the "
			 "event loop%s (%d%% of samples)",
			 MSF(c->d), where, pct);
		say(v->advice, sizeof(v->advice),
			 "Use the asynchronous variant (crypto.pbkdf2, crypto.scrypt, or "
			 "util.promisify of them): it runs on libuv's threadpool and leaves the "
			 "loop free.");
		return;
	case FC_ZLIB:
		set(c, "node.sync_zlib");
		say(v->summary, sizeof(v->summary),
			 "synchronous compression (zlib/brotli *Sync) ran %.0f ms on the event "
			 "loop%s (%d%% of samples)",
			 MSF(c->d), where, pct);
		say(v->advice, sizeof(v->advice),
			 "Use the asynchronous zlib API (zlib.gzip with a callback or "
			 "util.promisify) or a stream (zlib.createGzip() piped to the response); "
			 "they compress on the threadpool.");
		return;
	case FC_REGEX:
		set(c, "node.regex");
		say(v->summary, sizeof(v->summary),
			 "a regular expression ran %.0f ms on the event loop%s (%d%% of samples)",
			 MSF(c->d), where, pct);
		say(v->advice, sizeof(v->advice),
			 "Bound the input's length before matching and fix the pattern: nested "
			 "quantifiers like (a+)+ backtrack catastrophically; check it with a "
			 "safe-regex linter or use RE2.");
		return;
	case FC_FS:
		break; /* with the syscalls below, which name the path */
	case FC_CHILD:
		break;
	case FC_GC:
		set(c, "node.gc");
		say(v->summary, sizeof(v->summary),
			 "V8's garbage collector held the event loop %.0f ms%s (%d%% of samples)",
			 MSF(c->d), where, pct);
		say(v->advice, sizeof(v->advice),
			 "Allocate less in this path (reuse buffers, avoid building large temporary "
			 "arrays and strings) and check the heap for growth "
			 "(--heapsnapshot-signal, --max-old-space-size headroom).");
		return;
	default:
		break;
	}
}

static bool node_sys(struct ctx *c, enum fclass fc)
{
	struct sw_verdict *v = c->v;
	const struct sys_evidence *e = &c->sx;

	if (fc == FC_CHILD || share_of(e->child_ns, c->d, SYS_SHARE) ||
	    (fc == FC_NONE && any_of(c->f->top_syscall, child_syscalls))) {
		set(c, "node.sync_child");
		say(v->summary, sizeof(v->summary),
			 "the event loop waited %.0f ms for a child process%s%s%s",
			 MSF(c->d), e->child && e->child->target[0] ? " (" : "",
			 e->child && e->child->target[0] ? e->child->target : "",
			 e->child && e->child->target[0] ? ")" : "");
		say(v->advice, sizeof(v->advice),
			 "execSync/spawnSync block the loop until the child exits: use "
			 "child_process.exec/spawn with a callback (or util.promisify(exec)).");
		return true;
	}
	if (fc == FC_FS || share_of(e->file_ns, c->d, SYS_SHARE)) {
		set(c, "node.sync_fs");
		say(v->summary, sizeof(v->summary),
			 "synchronous file I/O (fs.*Sync) held the event loop %.0f ms%s%s",
			 MSF(c->d), e->file ? ": " : "", e->file ? e->file->target : "");
		say(v->advice, sizeof(v->advice),
			 "Use fs.promises (await fs.promises.readFile(...)) or a stream "
			 "(fs.createReadStream) instead of the *Sync call; for a file read at every "
			 "request, read it once at startup.");
		return true;
	}
	return false;
}

static void py_io(struct ctx *c, const char *pattern, const struct sw_diag_syscall *what,
		  const char *kind)
{
	char in[200];
	struct sw_verdict *v = c->v;

	set(c, pattern);
	say(v->summary, sizeof(v->summary),
		 "a synchronous %s call held the event loop %.0f ms%s%s%s", kind, MSF(c->d),
		 in_culprit(c, in, sizeof(in)), what && what->target[0] ? " waiting on " : "",
		 what && what->target[0] ? what->target : "");
}

static bool python_verdict(struct ctx *c)
{
	const struct sw_incident_facts *f = c->f;
	const struct sys_evidence *e = &c->sx;
	struct sw_verdict *v = c->v;
	double db = frames_share(f->stacks, f_db), http = frames_share(f->stacks, f_http);
	char in[200];

	if (f->stacks && f->stacks->gc_share >= 0.5) {
		set(c, "python.gc");
		say(v->summary, sizeof(v->summary),
			 "the interpreter's cyclic garbage collector ran during %.0f%% of a %.0f ms "
			 "block%s",
			 f->stacks->gc_share * 100, MSF(c->d), in_culprit(c, in, sizeof(in)));
		say(v->advice, sizeof(v->advice),
			 "Create fewer reference cycles (weakref for back-references, clear "
			 "caches) or tune the collector: gc.freeze() after startup and higher "
			 "gc.set_threshold() values make full collections rarer.");
		return true;
	}
	if (db >= DOMINATES || share_of(e->db_ns, c->d, SYS_SHARE)) {
		py_io(c, "python.sync_db_in_async", e->db ? e->db : e->sock, "database");
		say(v->advice, sizeof(v->advice),
			 "Use an async driver (asyncpg or psycopg 3's AsyncConnection, aiomysql, "
			 "redis.asyncio, aiosqlite) or run this call with await "
			 "loop.run_in_executor(None, ...); a sync driver in an async def blocks "
			 "every request.");
		return true;
	}
	if (http >= DOMINATES || share_of(e->http_ns, c->d, SYS_SHARE)) {
		py_io(c, "python.sync_http_in_async", e->http ? e->http : e->sock, "HTTP");
		say(v->advice, sizeof(v->advice),
			 "Use an async HTTP client (httpx.AsyncClient or aiohttp.ClientSession) "
			 "instead of requests/urllib in an async def, with a timeout.");
		return true;
	}
	if (share_of(e->sleep_ns, c->d, 0.5) ||
	    (f->offcpu_ns * 2 >= c->d && any_of(f->top_syscall, sleep_syscalls))) {
		set(c, "python.blocking_sleep_in_async");
		say(v->summary, sizeof(v->summary),
			 "a synchronous sleep (time.sleep) held the event loop %.0f ms%s", MSF(c->d),
			 in_culprit(c, in, sizeof(in)));
		say(v->advice, sizeof(v->advice),
			 "Replace time.sleep(...) with await asyncio.sleep(...) in the coroutine.");
		return true;
	}
	if (share_of(e->child_ns, c->d, SYS_SHARE)) {
		py_io(c, "python.sync_io_in_async", e->child, "subprocess");
		say(v->advice, sizeof(v->advice),
			 "subprocess.run()/check_output() in a coroutine blocks the loop until the "
			 "child exits: use await asyncio.create_subprocess_exec(...).");
		return true;
	}
	if (share_of(e->file_ns + e->sock_ns, c->d, SYS_SHARE) ||
	    (f->offcpu_ns * 2 >= c->d && any_of(f->top_syscall, io_syscalls))) {
		const struct sw_diag_syscall *w = e->file_ns >= e->sock_ns ? e->file : e->sock;

		py_io(c, "python.sync_io_in_async", w, w && w->kind == SW_FD_FILE ? "file" : "I/O");
		say(v->advice, sizeof(v->advice),
			 "Await an async API for this I/O (aiofiles or asyncio streams) or move the "
			 "call to await loop.run_in_executor(None, ...).");
		return true;
	}
	return false;
}

static void unknown(struct ctx *c)
{
	const struct sw_incident_facts *f = c->f;
	struct sw_verdict *v = c->v;
	char in[200];
	const char *where = in_culprit(c, in, sizeof(in));

	set(c, "unknown");
	if (f->oncpu_ns + f->offcpu_ns + f->runq_ns == 0) {
		say(v->summary, sizeof(v->summary),
			 "the event loop was blocked %.0f ms%s (no on/off-CPU split measured)",
			 MSF(c->d), where);
	} else if (c->sx.futex && c->sx.futex_ns * 2 >= c->d) {
		say(v->summary, sizeof(v->summary),
			 "the event loop waited %.0f ms on a lock (%s)%s", MSF(c->sx.futex_ns),
			 c->sx.futex->target[0] ? c->sx.futex->target : "futex", where);
	} else {
		say(v->summary, sizeof(v->summary),
			 "the event loop was blocked %.0f ms%s: %.0f ms on CPU, %.0f ms off CPU%s%s%s, "
			 "%.0f ms waiting for a CPU",
			 MSF(c->d), where, MSF(f->oncpu_ns), MSF(f->offcpu_ns),
			 f->top_syscall && f->top_syscall[0] ? " (mostly in " : "",
			 f->top_syscall && f->top_syscall[0] ? f->top_syscall : "",
			 f->top_syscall && f->top_syscall[0] ? ")" : "", MSF(f->runq_ns));
	}
	/* A Python wait on a lock may be the GIL held by another thread (the
	 * GIL measurement names it): moving work to a thread would not help. */
	say(v->advice, sizeof(v->advice), "%s",
		 c->node ? "Look at the stack and syscalls above for the synchronous call in the "
			   "callback that ran then, and make it asynchronous."
			 : "Look at the stack and syscalls above for the blocking call in the "
			   "coroutine that ran then, and await an asynchronous version of it.");
}

/* A block the code made that also waited long for a CPU says so: both
 * are true, and the SRE reading it should see the second. */
static void also_starved(struct ctx *c)
{
	size_t n = strlen(c->v->summary);

	if (c->f->runq_ns * 4 < c->d || n + 1 >= sizeof(c->v->summary))
		return;
	say(c->v->summary + n, sizeof(c->v->summary) - n,
	    "; it also waited %.0f ms for a CPU (CPU limit or neighbours)", MSF(c->f->runq_ns));
}

void sw_rules_classify(const struct sw_incident_facts *f, struct sw_verdict *v)
{
	struct ctx c = { .f = f, .v = v, .d = f->duration_ns ? f->duration_ns : 1 };
	uint64_t measured = f->oncpu_ns + f->offcpu_ns + f->runq_ns;
	enum fclass fc = FC_NONE;
	double share = 0;
	char in[200];

	c.node = is(f->runtime, "node");
	c.culprit = culprit_frame(f->stacks, c.node);
	sys_evidence(f->sys, &c.sx);
	v->summary[0] = v->advice[0] = 0;

	/* The GIL: another thread held it while the loop waited for it, half
	 * of the stretch or more (the loop's own code may have run the rest). */
	if (f->gil_wait_ns * 2 >= c.d) {
		char who[160];

		set(&c, "python.loop_starved_by_gil");
		if (f->gil_holder_tid)
			snprintf(who, sizeof(who), ": thread %s (tid %u) held it%s%s",
				 f->gil_holder && f->gil_holder[0] ? f->gil_holder : "?",
				 f->gil_holder_tid, f->gil_holder_frame ? " in " : "",
				 f->gil_holder_frame ? f->gil_holder_frame : "");
		else
			who[0] = '\0';
		say(v->summary, sizeof(v->summary),
			 "the loop waited %.0f of %.0f ms for the GIL%s", MSF(f->gil_wait_ns), MSF(c.d),
			 who);
		say(v->advice, sizeof(v->advice),
			 "Another thread kept the GIL while the loop needed it: move that CPU work "
			 "to a process (ProcessPoolExecutor, a worker service) or to code that "
			 "releases the GIL (numpy, hashlib, zlib on large data); a thread pool is "
			 "what causes this stall, not a fix for it.");
		return;
	}
	/* Without a split of the stretch, and no stack, we cannot say more:
	 * guessing a pattern from the duration alone would mislead. */
	if (measured < c.d / 2 && !(f->stacks && f->stacks->n_stacks)) {
		unknown(&c);
		return;
	}
	/* Starved: waiting for a CPU half of the time, and the time it ran or
	 * slept would not have crossed the threshold on its own. When it would
	 * have (a 200 ms JSON.parse also starved by the GC's own threads), the
	 * code is the finding, and the summary says how long it also waited. */
	if (measured >= c.d / 2 && f->runq_ns * 2 >= c.d &&
	    !(f->threshold_ns && c.d - f->runq_ns >= f->threshold_ns)) {
		set(&c, "cpu_starvation");
		say(v->summary, sizeof(v->summary),
			 "the loop was runnable but got no CPU for %.0f of %.0f ms", MSF(f->runq_ns),
			 MSF(c.d));
		say(v->advice, sizeof(v->advice),
			 "Not the code: the container's CPU limit (CFS throttling) or neighbours "
			 "starve the loop. Raise the CPU limit or request, or move the pod to a less "
			 "loaded node.");
		return;
	}
	if (c.node) {
		fc = node_dominant(f->stacks, &share);
		if (fc != FC_NONE && fc != FC_FS && fc != FC_CHILD)
			node_verdict(&c, fc, share);
		else if (!node_sys(&c, fc))
			goto cpu;
	} else if (!is(f->runtime, "python") || !python_verdict(&c)) {
		goto cpu;
	}
	also_starved(&c);
	return;
cpu:
	/* Run-queue time is time the thread wanted the CPU: on a busy machine a
	 * CPU-bound stretch is partly spent waiting for one (all of its wait,
	 * when starvation alone would not have made it a block). */
	if ((f->oncpu_ns + f->runq_ns) * 10 >= c.d * 7 &&
	    (f->oncpu_ns >= f->runq_ns || f->runq_ns * 2 >= c.d)) {
		if (c.node) {
			set(&c, "node.cpu_bound_callback");
			say(v->summary, sizeof(v->summary),
				 "JavaScript ran %.0f ms on the CPU without yielding%s", MSF(f->oncpu_ns),
				 in_culprit(&c, in, sizeof(in)));
			say(v->advice, sizeof(v->advice),
				 "Move this computation to a worker_threads Worker (or a separate "
				 "service), or split it into chunks that yield with setImmediate "
				 "between them.");
			also_starved(&c);
			return;
		}
		if (is(f->runtime, "python")) {
			set(&c, "python.cpu_bound_coroutine");
			say(v->summary, sizeof(v->summary),
				 "Python code ran %.0f ms on the CPU without awaiting%s",
				 MSF(f->oncpu_ns), in_culprit(&c, in, sizeof(in)));
			/* not a thread: it would hold the GIL the loop needs */
			say(v->advice, sizeof(v->advice),
				 "Run it in a process pool (await loop.run_in_executor("
				 "ProcessPoolExecutor(), ...)) or use a native library that releases "
				 "the GIL (numpy); a thread would still hold the GIL the loop needs.");
			also_starved(&c);
			return;
		}
	}
	unknown(&c);
}
