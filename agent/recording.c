// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "recording.h"

/* Threads whose last read is kept to write "same": a process has a few loop
 * threads; beyond these, reads are written in full. Writer and reader fill
 * the slots by the same rule, so they agree on which tids have one. */
#define REC_SAME_SLOTS 16
#define REC_LINE_MAX 65536 /* a full histogram line stays well below */

/* The scalar fields of struct sw_thread and struct sw_event, by name. */
#define REC_THREAD_FIELDS(X)                                                                        \
	X(pid) X(tid) X(loop_fd) X(wait_fd) X(wait_timeout) X(flags) X(wait_enter_ns)              \
	X(iter_start_ns) X(first_seen_ns) X(iterations) X(busy_ns) X(idle_ns) X(max_busy_ns)        \
	X(incidents) X(pz_enter_ns) X(pz_exit_ns) X(off_start_ns) X(off_kind) X(off_nr)             \
	X(blk_offcpu_ns) X(blk_runq_ns) X(blk_switches) X(cum_offcpu_ns) X(cum_runq_ns)
#define REC_EVENT_FIELDS(X)                                                                         \
	X(type) X(pid) X(tid) X(loop_fd) X(ts_ns) X(start_ns) X(dur_ns) X(offcpu_ns) X(runq_ns)     \
	X(switches) X(busy) X(start_unknown) X(exit_code)

struct same_slot {
	bool used;
	uint32_t tid;
	struct sw_thread st;
};

struct sw_recorder {
	FILE *f;
	struct sw_thread_source inner;
	uint64_t errors;
	struct same_slot same[REC_SAME_SLOTS];
};

/* The slot of tid, taking a free one if it has none; NULL when full. */
static struct same_slot *same_slot(struct same_slot *slots, uint32_t tid)
{
	struct same_slot *free_slot = NULL;

	for (int i = 0; i < REC_SAME_SLOTS; i++) {
		if (slots[i].used && slots[i].tid == tid)
			return &slots[i];
		if (!slots[i].used && !free_slot)
			free_slot = &slots[i];
	}
	if (free_slot) {
		free_slot->used = true;
		free_slot->tid = tid;
		memset(&free_slot->st, 0, sizeof(free_slot->st));
	}
	return free_slot;
}

/* ------------------------------------------------------------- writing */

static void put_num(FILE *f, const char *k, long long v)
{
	if (v)
		fprintf(f, " %s=%lld", k, v);
}

static void put_str(FILE *f, const char *k, const char *s, size_t max)
{
	if (!s[0])
		return;
	fprintf(f, " %s=", k);
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c > '~' || c == '%' || c == '=' || c == ',')
			fprintf(f, "%%%02X", c);
		else
			fputc(c, f);
	}
}

static void put_blk_sys(FILE *f, const struct sw_blk_sys *sys)
{
	bool any = false;

	for (int i = 0; i < SW_BLK_SYSCALLS; i++)
		any |= sys[i].nr || sys[i].ns;
	if (!any)
		return;
	fprintf(f, " blk_sys=");
	for (int i = 0; i < SW_BLK_SYSCALLS; i++)
		fprintf(f, "%s%d:%llu", i ? "," : "", sys[i].nr, (unsigned long long)sys[i].ns);
}

/* with_tid false: the line already names the tid (a read's key) */
static void put_thread(FILE *f, const struct sw_thread *t, bool with_tid)
{
	bool first = true;

#define PUT(name)                                                                                   \
	if (with_tid || strcmp(#name, "tid"))                                                      \
		put_num(f, #name, (long long)t->name);
	REC_THREAD_FIELDS(PUT)
#undef PUT
	put_blk_sys(f, t->blk_sys);
	put_str(f, "comm", t->comm, sizeof(t->comm));
	for (uint32_t b = 0; b < SW_HIST_NBUCKETS; b++) {
		if (!t->hist[b])
			continue;
		fprintf(f, "%s%u:%u", first ? " hist=" : ",", b, t->hist[b]);
		first = false;
	}
}

static void end_line(struct sw_recorder *r)
{
	if (fputc('\n', r->f) == EOF || ferror(r->f))
		r->errors++;
}

static int rec_read_thread(void *ctx, uint32_t tid, struct sw_thread *out)
{
	struct sw_recorder *r = ctx;
	int rc = r->inner.ops->read_thread(r->inner.ctx, tid, out);
	struct same_slot *s;

	fprintf(r->f, "read tid=%u rc=%d", tid, rc);
	if (rc == 0) {
		s = same_slot(r->same, tid);
		if (s && !memcmp(&s->st, out, sizeof(*out))) {
			fprintf(r->f, " same");
		} else {
			put_thread(r->f, out, out->tid != tid);
			if (s)
				s->st = *out;
		}
	}
	end_line(r);
	return rc;
}

static int rec_forget_thread(void *ctx, uint32_t tid)
{
	struct sw_recorder *r = ctx;
	int rc = r->inner.ops->forget_thread(r->inner.ctx, tid);

	fprintf(r->f, "forget tid=%u rc=%d", tid, rc);
	end_line(r);
	return rc;
}

static int rec_next_thread(void *ctx, const uint32_t *prev, uint32_t *next)
{
	struct sw_recorder *r = ctx;
	int rc = r->inner.ops->next_thread(r->inner.ctx, prev, next);

	fprintf(r->f, "next rc=%d", rc);
	if (prev)
		fprintf(r->f, " prev=%u", *prev);
	if (rc == 0)
		fprintf(r->f, " tid=%u", *next);
	end_line(r);
	return rc;
}

static int rec_seed_thread(void *ctx, const struct sw_thread *t)
{
	struct sw_recorder *r = ctx;
	int rc = r->inner.ops->seed_thread(r->inner.ctx, t);

	fprintf(r->f, "seed rc=%d", rc);
	put_thread(r->f, t, true);
	end_line(r);
	return rc;
}

static int rec_add_target(void *ctx, uint32_t pid, uint32_t flags)
{
	struct sw_recorder *r = ctx;
	int rc = r->inner.ops->add_target(r->inner.ctx, pid, flags);

	fprintf(r->f, "target_add pid=%u flags=%u rc=%d", pid, flags, rc);
	end_line(r);
	return rc;
}

static int rec_del_target(void *ctx, uint32_t pid)
{
	struct sw_recorder *r = ctx;
	int rc = r->inner.ops->del_target(r->inner.ctx, pid);

	fprintf(r->f, "target_del pid=%u rc=%d", pid, rc);
	end_line(r);
	return rc;
}

static void rec_stats(void *ctx, struct sw_bpf_stats *out)
{
	struct sw_recorder *r = ctx;

	r->inner.ops->stats(r->inner.ctx, out);
	fprintf(r->f, "stats");
	for (int i = 0; i < SW_HEALTH__COUNT; i++)
		put_num(r->f, sw_health_names[i], (long long)out->v[i]);
	end_line(r);
}

static const struct sw_thread_source_ops recorder_ops = {
	.read_thread = rec_read_thread,
	.forget_thread = rec_forget_thread,
	.next_thread = rec_next_thread,
	.seed_thread = rec_seed_thread,
	.add_target = rec_add_target,
	.del_target = rec_del_target,
	.stats = rec_stats,
};

struct sw_recorder *sw_recorder__new(const char *path, const struct sw_thread_source *inner,
				     uint64_t threshold_ns, bool diag)
{
	struct sw_recorder *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return NULL;
	r->f = fopen(path, "we");
	if (!r->f) {
		err = errno;
		free(r);
		errno = err;
		return NULL;
	}
	r->inner = *inner;
	fprintf(r->f, "# stallwatch loops recording v1 (agent/recording.h)\n");
	fprintf(r->f, "config threshold_ns=%llu diag=%d", (unsigned long long)threshold_ns, diag);
	end_line(r);
	return r;
}

void sw_recorder__free(struct sw_recorder *r)
{
	if (!r)
		return;
	fclose(r->f);
	free(r);
}

struct sw_thread_source sw_recorder__source(struct sw_recorder *r)
{
	return (struct sw_thread_source){ .ops = &recorder_ops, .ctx = r };
}

void sw_recorder__process(struct sw_recorder *r, const struct sw_proc_info *pi)
{
	fprintf(r->f, "process pid=%d", pi->pid);
	put_num(r->f, "tgid", pi->tgid);
	fprintf(r->f, " runtime=%s", sw_runtime_name(pi->runtime));
	put_str(r->f, "version", pi->version, sizeof(pi->version));
	put_str(r->f, "comm", pi->comm, sizeof(pi->comm));
	put_str(r->f, "exe", pi->exe, sizeof(pi->exe));
	put_str(r->f, "cgroup", pi->cgroup, sizeof(pi->cgroup));
	put_str(r->f, "runtime_lib", pi->runtime_lib, sizeof(pi->runtime_lib));
	put_str(r->f, "service", pi->service, sizeof(pi->service));
	put_str(r->f, "container_id", pi->container_id, sizeof(pi->container_id));
	put_str(r->f, "container_name", pi->container_name, sizeof(pi->container_name));
	put_str(r->f, "pod_uid", pi->pod_uid, sizeof(pi->pod_uid));
	put_str(r->f, "pod_name", pi->pod_name, sizeof(pi->pod_name));
	put_num(r->f, "start_ticks", (long long)pi->start_ticks);
	end_line(r);
}

void sw_recorder__event(struct sw_recorder *r, const struct sw_event *e)
{
	fprintf(r->f, "event");
#define PUT(name) put_num(r->f, #name, (long long)e->name);
	REC_EVENT_FIELDS(PUT)
#undef PUT
	put_blk_sys(r->f, e->blk_sys);
	put_str(r->f, "comm", e->comm, sizeof(e->comm));
	end_line(r);
}

void sw_recorder__tick(struct sw_recorder *r, uint64_t now_ns)
{
	fprintf(r->f, "tick now=%llu", (unsigned long long)now_ns);
	end_line(r);
}

void sw_recorder__summary(struct sw_recorder *r, uint64_t now_ns)
{
	fprintf(r->f, "summary now=%llu", (unsigned long long)now_ns);
	end_line(r);
	fflush(r->f); /* a recording cut short by a signal still has its summaries */
}

uint64_t sw_recorder__errors(const struct sw_recorder *r)
{
	return r->errors;
}

/* ------------------------------------------------------------- reading */

struct sw_rec_reader {
	FILE *f;
	unsigned line;
	char buf[REC_LINE_MAX];
	struct same_slot same[REC_SAME_SLOTS];
};

struct sw_rec_reader *sw_rec_reader__open(const char *path)
{
	struct sw_rec_reader *rd = calloc(1, sizeof(*rd));
	int err;

	if (!rd)
		return NULL;
	rd->f = fopen(path, "re");
	if (!rd->f) {
		err = errno;
		free(rd);
		errno = err;
		return NULL;
	}
	return rd;
}

void sw_rec_reader__free(struct sw_rec_reader *rd)
{
	if (!rd)
		return;
	fclose(rd->f);
	free(rd);
}

unsigned sw_rec_reader__line(const struct sw_rec_reader *rd)
{
	return rd->line;
}

static int parse_num(const char *v, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(v, &end, 10);
	return (errno || end == v || *end) ? -EINVAL : 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int parse_str(const char *v, char *out, size_t len)
{
	size_t n = 0;

	for (; *v; v++) {
		char c = *v;

		if (c == '%') {
			int hi = hexval(v[1]), lo = hi < 0 ? -1 : hexval(v[2]);

			if (lo < 0)
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			v += 2;
		}
		if (n + 1 >= len)
			return -EINVAL;
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

static int parse_blk_sys(char *v, struct sw_blk_sys *sys)
{
	char *save = NULL, *item;
	int i = 0;

	for (item = strtok_r(v, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		int nr;
		unsigned long long ns;

		if (i == SW_BLK_SYSCALLS || sscanf(item, "%d:%llu", &nr, &ns) != 2)
			return -EINVAL;
		sys[i].nr = nr;
		sys[i++].ns = ns;
	}
	return 0;
}

static int parse_hist(char *v, __u32 *hist)
{
	char *save = NULL, *item;

	for (item = strtok_r(v, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		unsigned b, n;

		if (sscanf(item, "%u:%u", &b, &n) != 2 || b >= SW_HIST_NBUCKETS)
			return -EINVAL;
		hist[b] = n;
	}
	return 0;
}

static int thread_field(struct sw_thread *t, const char *k, char *v)
{
	long long n;

#define SET(name)                                                                                   \
	if (!strcmp(k, #name)) {                                                                   \
		if (parse_num(v, &n))                                                              \
			return -EINVAL;                                                            \
		t->name = (typeof(t->name))n;                                                      \
		return 0;                                                                          \
	}
	REC_THREAD_FIELDS(SET)
#undef SET
	if (!strcmp(k, "blk_sys"))
		return parse_blk_sys(v, t->blk_sys);
	if (!strcmp(k, "comm"))
		return parse_str(v, t->comm, sizeof(t->comm));
	if (!strcmp(k, "hist"))
		return parse_hist(v, t->hist);
	return -EINVAL;
}

static int event_field(struct sw_event *e, const char *k, char *v)
{
	long long n;

#define SET(name)                                                                                   \
	if (!strcmp(k, #name)) {                                                                   \
		if (parse_num(v, &n))                                                              \
			return -EINVAL;                                                            \
		e->name = (typeof(e->name))n;                                                      \
		return 0;                                                                          \
	}
	REC_EVENT_FIELDS(SET)
#undef SET
	if (!strcmp(k, "blk_sys"))
		return parse_blk_sys(v, e->blk_sys);
	if (!strcmp(k, "comm"))
		return parse_str(v, e->comm, sizeof(e->comm));
	return -EINVAL;
}

static int proc_field(struct sw_proc_info *pi, const char *k, char *v)
{
	long long n;

	if (!strcmp(k, "pid") || !strcmp(k, "tgid")) {
		if (parse_num(v, &n))
			return -EINVAL;
		*(!strcmp(k, "pid") ? &pi->pid : &pi->tgid) = (pid_t)n;
		return 0;
	}
	if (!strcmp(k, "runtime")) {
		for (enum sw_runtime rt = SW_RT_NATIVE; rt <= SW_RT_PYTHON; rt++)
			if (!strcmp(v, sw_runtime_name(rt))) {
				pi->runtime = rt;
				return 0;
			}
		return -EINVAL;
	}
	if (!strcmp(k, "version"))
		return parse_str(v, pi->version, sizeof(pi->version));
	if (!strcmp(k, "comm"))
		return parse_str(v, pi->comm, sizeof(pi->comm));
	if (!strcmp(k, "exe"))
		return parse_str(v, pi->exe, sizeof(pi->exe));
	if (!strcmp(k, "cgroup"))
		return parse_str(v, pi->cgroup, sizeof(pi->cgroup));
	if (!strcmp(k, "runtime_lib"))
		return parse_str(v, pi->runtime_lib, sizeof(pi->runtime_lib));
	/* identity (issue 8): absent from older recordings, "" then */
	if (!strcmp(k, "service"))
		return parse_str(v, pi->service, sizeof(pi->service));
	if (!strcmp(k, "container_id"))
		return parse_str(v, pi->container_id, sizeof(pi->container_id));
	if (!strcmp(k, "container_name"))
		return parse_str(v, pi->container_name, sizeof(pi->container_name));
	if (!strcmp(k, "pod_uid"))
		return parse_str(v, pi->pod_uid, sizeof(pi->pod_uid));
	if (!strcmp(k, "pod_name"))
		return parse_str(v, pi->pod_name, sizeof(pi->pod_name));
	if (!strcmp(k, "start_ticks")) {
		if (parse_num(v, &n) || n < 0)
			return -EINVAL;
		pi->start_ticks = (uint64_t)n;
		return 0;
	}
	return -EINVAL;
}

/* Keys every verb may carry, outside its payload struct. */
static int common_field(struct sw_rec *out, const char *k, char *v)
{
	long long n;

	if (parse_num(v, &n))
		return -EINVAL;
	if (!strcmp(k, "rc"))
		out->rc = (int)n;
	else if (!strcmp(k, "now"))
		out->now_ns = (uint64_t)n;
	else if (!strcmp(k, "prev")) {
		out->prev = (uint32_t)n;
		out->has_prev = true;
	} else if (!strcmp(k, "pid"))
		out->pid = (uint32_t)n;
	else if (!strcmp(k, "flags"))
		out->flags = (uint32_t)n;
	else if (!strcmp(k, "threshold_ns"))
		out->threshold_ns = (uint64_t)n;
	else if (!strcmp(k, "diag"))
		out->diag = n != 0;
	else if (!strcmp(k, "tid"))
		out->tid = (uint32_t)n;
	else
		return -EINVAL;
	return 0;
}

static const struct {
	const char *verb;
	enum sw_rec_kind kind;
} verbs[] = {
	{ "config", SW_REC_CONFIG },	{ "process", SW_REC_PROCESS },
	{ "event", SW_REC_EVENT },	{ "tick", SW_REC_TICK },
	{ "summary", SW_REC_SUMMARY },	{ "read", SW_REC_READ },
	{ "seed", SW_REC_SEED },	{ "next", SW_REC_NEXT },
	{ "stats", SW_REC_STATS },	{ "forget", SW_REC_FORGET },
	{ "target_add", SW_REC_TARGET_ADD }, { "target_del", SW_REC_TARGET_DEL },
};

static int parse_line(struct sw_rec_reader *rd, char *line, struct sw_rec *out)
{
	char *save = NULL, *tok, *v;
	bool same = false, found = false;
	struct same_slot *s;
	int id;

	tok = strtok_r(line, " \n", &save);
	for (size_t i = 0; tok && i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(tok, verbs[i].verb)) {
			out->kind = verbs[i].kind;
			found = true;
		}
	if (!found)
		return -EINVAL;
	while ((tok = strtok_r(NULL, " \n", &save))) {
		if (!strcmp(tok, "same") && out->kind == SW_REC_READ) {
			same = true;
			continue;
		}
		v = strchr(tok, '=');
		if (!v)
			return -EINVAL;
		*v++ = '\0';
		switch (out->kind) {
		case SW_REC_READ:
		case SW_REC_SEED:
			if (!strcmp(tok, "rc")) {
				if (common_field(out, tok, v))
					return -EINVAL;
			} else if (thread_field(&out->thread, tok, v)) {
				return -EINVAL;
			}
			break;
		case SW_REC_PROCESS:
			if (proc_field(&out->proc, tok, v))
				return -EINVAL;
			break;
		case SW_REC_EVENT:
			if (event_field(&out->event, tok, v))
				return -EINVAL;
			break;
		case SW_REC_STATS:
			id = sw_health_id(tok);
			if (id >= 0) { /* a counter this build does not know is left out */
				long long n;

				if (parse_num(v, &n))
					return -EINVAL;
				out->stats.v[id] = (uint64_t)n;
			}
			break;
		default:
			if (common_field(out, tok, v))
				return -EINVAL;
		}
	}
	/* a read line's tid= is the key it was read by (and the state's own) */
	if (out->kind == SW_REC_READ || out->kind == SW_REC_SEED)
		out->tid = out->thread.tid;
	if (out->kind == SW_REC_READ && out->rc == 0) {
		s = same_slot(rd->same, out->tid);
		if (same) {
			if (!s)
				return -EINVAL;
			out->thread = s->st;
		} else if (s) {
			s->st = out->thread;
		}
	}
	return 0;
}

int sw_rec_reader__next(struct sw_rec_reader *rd, struct sw_rec *out)
{
	while (fgets(rd->buf, sizeof(rd->buf), rd->f)) {
		rd->line++;
		if (!strchr(rd->buf, '\n') && !feof(rd->f))
			return -EINVAL; /* longer than any line we write */
		if (rd->buf[0] == '#' || rd->buf[0] == '\n')
			continue;
		memset(out, 0, sizeof(*out));
		return parse_line(rd, rd->buf, out) ? -EINVAL : 1;
	}
	return 0;
}
