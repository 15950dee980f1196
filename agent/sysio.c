// SPDX-License-Identifier: Apache-2.0
/*
 * sysio's user side: loads bpf/sysio.bpf.c on loopmon's thread maps and
 * turns a thread's per-stretch syscall table into struct sw_diag_syscalls,
 * naming what was behind each fd (docs/DESIGN.md, "What the loop waited
 * on").
 *
 * BPF classifies an fd at the syscall's exit (file inode and dentry name,
 * socket family and peer, pipe); a file's full path is read here from
 * /proc/PID/fd/N, accepted only if /proc/PID/fdinfo/N still shows the inode
 * BPF saw, and cached per (pid, fd, inode): an ongoing incident resolves it
 * while the file is open, so its final line still has it after the close.
 * A path that could not be resolved is the dentry name behind ".../".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpf/sysio.h"
#include "clock.h"
#include "discovery.h"
#include "log.h"
#include "syscalls.h"
#include "sysio.h"
#include "sysio.skel.h"
#include "utf8.h"

/* On-demand mode detaches the syscall programs once no loop has been
 * blocked for this long. Attached, they cost every syscall of the host
 * ~200 ns: a 10 s linger kept them attached all the time for a service
 * blocking once a second (5.3 % of a core on a 31k req/s Node server,
 * docs/PERFORMANCE.md, "Incident path"). A second keeps a burst of blocks
 * counted whole (the attach costs ~0.1 ms of the agent's time) and frees
 * the host between the incidents of a service that blocks now and then. */
#define SYSIO_LINGER_NS 1000000000ull
/* How often the tables of threads loopmon forgot are deleted. */
#define SYSIO_GC_NS 5000000000ull
/* Resolved file paths kept, round robin: an incident touches a few files. */
#define PATH_CACHE 64

struct path_ent {
	uint32_t pid;
	int32_t fd;
	uint64_t ino;
	char path[sizeof(((struct sw_diag_syscall *)0)->target)];
};

struct sw_sysio {
	struct sysio_bpf *skel;
	int threads_fd;
	struct sw_sysio_thread st; /* scratch: ~15 KiB */
	struct sw_thread thr;	   /* scratch: ~7 KiB */
	struct path_ent cache[PATH_CACHE];
	unsigned int cache_next;
	uint64_t failed_reads;
	bool on_demand;
	bool attached;	       /* the syscall programs */
	uint64_t last_blocked; /* on-demand: last sw_sysio__blocked() */
	uint64_t last_gc;
};

struct sw_sysio *sw_sysio__new(const struct sw_sysio_opts *opts)
{
	struct sw_sysio *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return NULL;
	s->threads_fd = opts->threads_fd;
	s->on_demand = opts->on_demand;
	s->skel = sysio_bpf__open();
	if (!s->skel) {
		err = -errno;
		goto cleanup;
	}
	/* a quarter of the threshold: a stretch that old may become an
	 * incident, and its fds are worth classifying from then on */
	s->skel->rodata->gate_ns = opts->threshold_ns / 4;
	s->skel->rodata->count_gate_ns = opts->count_gated ? opts->threshold_ns / 4 : 0;
	err = bpf_map__reuse_fd(s->skel->maps.threads, opts->threads_fd);
	if (!err)
		err = bpf_map__reuse_fd(s->skel->maps.tid_hint, opts->tid_hint_fd);
	if (err)
		goto cleanup;
	err = sysio_bpf__load(s->skel);
	if (err)
		goto cleanup;
	if (s->on_demand) {
		bpf_program__set_autoattach(s->skel->progs.sysio_enter, false);
		bpf_program__set_autoattach(s->skel->progs.sysio_exit, false);
	}
	err = sysio_bpf__attach(s->skel);
	if (err)
		goto cleanup;
	s->attached = !s->on_demand;
	return s;
cleanup:
	sw_sysio__free(s);
	errno = -err;
	return NULL;
}

void sw_sysio__free(struct sw_sysio *s)
{
	if (!s)
		return;
	sysio_bpf__destroy(s->skel);
	free(s);
}

const char *sw_sysio__mode(const struct sw_sysio *s)
{
	return s->on_demand ? "while a loop is blocked" : "always";
}

static int attach_syscalls(struct sw_sysio *s)
{
	struct sysio_bpf *k = s->skel;

	/* a call in flight now will exit with its enter unseen: BPF counts
	 * it from here (sysio_exit) */
	k->bss->attach_ns = sw_mono_ns();
	k->bss->attach_gen++;

	k->links.sysio_enter = bpf_program__attach(k->progs.sysio_enter);
	if (!k->links.sysio_enter)
		return -errno;
	k->links.sysio_exit = bpf_program__attach(k->progs.sysio_exit);
	if (!k->links.sysio_exit) {
		int err = -errno;

		bpf_link__destroy(k->links.sysio_enter);
		k->links.sysio_enter = NULL;
		return err;
	}
	s->attached = true;
	return 0;
}

static void detach_syscalls(struct sw_sysio *s)
{
	bpf_link__destroy(s->skel->links.sysio_enter);
	bpf_link__destroy(s->skel->links.sysio_exit);
	s->skel->links.sysio_enter = NULL;
	s->skel->links.sysio_exit = NULL;
	s->attached = false;
}

/*
 * The syscall tid is blocked in, as if BPF had seen it enter: its start is
 * when loopmon saw the thread go to sleep in it (a few µs after the enter),
 * else now. Written from here while the thread sleeps; a racing exit on
 * that thread may overwrite it, which loses that one call.
 */
/*
 * A thread found blocked waiting for a child (wait4, an execSync's nested
 * poll) when the programs were attached forked it before they were: its
 * fork was not seen. The child is alive (it is being waited for), so its
 * command line is read now and kept where BPF keeps the ones it saw, for
 * the final incident after it has gone.
 */
static void seed_child(struct sw_sysio *s, uint32_t pid, uint32_t tid, struct sw_sysio_tab *tab,
		       uint64_t now)
{
	struct sw_sysio_child c;
	char rel[64], list[256], *last, *end;
	unsigned long cpid;
	uint32_t key;
	size_t n;
	FILE *f;

	snprintf(rel, sizeof(rel), "%u/task/%u/children", pid, tid);
	if (sw_tio__read_file(sw_tio_default(), rel, list, sizeof(list)) || !list[0])
		return;
	/* the newest child is the last listed */
	last = strrchr(list, ' ');
	last = last ? last + 1 : list;
	cpid = strtoul(last, &end, 10);
	if (end == last || !cpid || cpid > UINT32_MAX)
		return;
	key = (uint32_t)cpid;
	memset(&c, 0, sizeof(c));
	c.parent_pid = pid;
	c.fork_ns = now;
	snprintf(rel, sizeof(rel), "%u/cmdline", key);
	f = sw_tio__open_file(sw_tio_default(), rel);
	if (f) {
		n = fread(c.cmd, 1, sizeof(c.cmd) - 1, f);
		fclose(f);
		c.len = (uint32_t)n;
	}
	if (bpf_map__update_elem(s->skel->maps.children, &key, sizeof(key), &c, sizeof(c), 0))
		s->failed_reads++;
	tab->child_pid = key;
}

static void seed_inflight(struct sw_sysio *s, uint32_t pid, uint32_t tid,
			  const struct sw_thread *t, uint64_t now)
{
	struct sw_sysio_thread *st = &s->st;
	struct sw_sysio_tab *tab;
	unsigned long args[6] = { 0 };
	long nr;
	int where, err;

	err = sw_thread_syscall((pid_t)pid, (pid_t)tid, &nr, args);
	if (err) {
		if (err != -EAGAIN && err != -ENOENT)
			s->failed_reads++;
		return;
	}
	if (bpf_map__lookup_elem(s->skel->maps.sysio, &tid, sizeof(tid), st, sizeof(*st), 0))
		memset(st, 0, sizeof(*st));
	st->pid = pid;
	st->tid = tid;
	tab = &st->tab[st->cur & 1];
	if (tab->block_start != sw_sysio_stretch(t)) {
		memset(tab, 0, sizeof(*tab));
		tab->block_start = sw_sysio_stretch(t);
		tab->incidents = t->incidents;
	}
	st->cur_nr = (int32_t)nr;
	st->cur_fd = -1;
	where = sw_sysio_fd_arg(nr);
	if (where == 0) {
		st->cur_fd = (int32_t)args[0];
	} else if (where == 1 && args[1] >= 1) {
		struct { int32_t fd; int16_t ev, rev; } pfd;

		if (sw_tio__read_mem(sw_tio_default(), (pid_t)pid, args[0], &pfd, sizeof(pfd)) == 0)
			st->cur_fd = pfd.fd;
		else
			s->failed_reads++;
	}
	st->cur_arg = sw_sysio_key_arg(nr, args[0], args[1], args[2]);
	st->cur_enter_ns = t->off_start_ns && t->off_kind == SW_OFF_SLEEP && t->off_nr == nr
				   ? t->off_start_ns
				   : now;
	st->cur_inflight = 1;
	if (!tab->child_pid && (sw_nr_is_epoll_wait(nr) || nr == SW_NR_WAIT4 || nr == SW_NR_WAITID))
		seed_child(s, pid, tid, tab, now);
	if (bpf_map__update_elem(s->skel->maps.sysio, &tid, sizeof(tid), st, sizeof(*st), 0))
		s->failed_reads++;
}

void sw_sysio__blocked(struct sw_sysio *s, uint32_t pid, uint32_t tid, const struct sw_thread *t,
		       uint64_t now)
{
	int err;

	if (!s || !s->on_demand)
		return;
	s->last_blocked = now;
	if (s->attached)
		return;
	err = attach_syscalls(s);
	if (err) {
		s->failed_reads++;
		sw_dbg("cannot attach the syscall programs: %s", strerror(-err));
		return;
	}
	sw_dbg("syscall programs attached: tid %u of pid %u is blocked", tid, pid);
	seed_inflight(s, pid, tid, t, now);
}

/*
 * Tables of threads that loopmon no longer tracks (exited, forgotten).
 * Not deleted by BPF at the thread's exit: the incident of a loop that died
 * blocked is read after it, from the ring buffer.
 */
static void gc_tables(struct sw_sysio *s)
{
	uint32_t key, next, gone[64];
	unsigned int n = 0;
	int err;

	for (err = bpf_map__get_next_key(s->skel->maps.sysio, NULL, &next, sizeof(next));
	     !err && n < 64;
	     err = bpf_map__get_next_key(s->skel->maps.sysio, &key, &next, sizeof(next))) {
		key = next;
		if (bpf_map_lookup_elem(s->threads_fd, &key, &s->thr) && errno == ENOENT)
			gone[n++] = key;
	}
	for (unsigned int i = 0; i < n; i++)
		bpf_map__delete_elem(s->skel->maps.sysio, &gone[i], sizeof(gone[i]), 0);
}

void sw_sysio__tick(struct sw_sysio *s, uint64_t now)
{
	if (s && now - s->last_gc >= SYSIO_GC_NS) {
		s->last_gc = now;
		gc_tables(s);
	}
	if (s && s->on_demand && s->attached && now - s->last_blocked > SYSIO_LINGER_NS) {
		detach_syscalls(s);
		sw_dbg("syscall programs detached: no loop blocked for %llu ms",
		       SYSIO_LINGER_NS / 1000000ull);
	}
}

void sw_sysio__health(struct sw_sysio *s, struct sw_health *h)
{
	const struct sw_bpf_stats *b = &s->skel->bss->stats;

	h->v[SW_HEALTH_syscalls_dropped] += b->v[SW_HEALTH_syscalls_dropped];
	h->v[SW_HEALTH_thread_map_full] += b->v[SW_HEALTH_thread_map_full];
	h->v[SW_HEALTH_failed_reads] += b->v[SW_HEALTH_failed_reads] + s->failed_reads;
}

/* ---- /proc ---- */

static int fdinfo_ino(struct sw_tio *t, pid_t pid, int fd, uint64_t *ino)
{
	char rel[64], buf[1024], *p;
	int err;

	snprintf(rel, sizeof(rel), "%d/fdinfo/%d", (int)pid, fd);
	err = sw_tio__read_file(t, rel, buf, sizeof(buf));
	if (err)
		return err;
	/* "ino:" since Linux 5.14 (fs/proc/fd.c seq_show) */
	for (p = buf; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, "ino:", 4)) {
			*ino = strtoull(p + 4, NULL, 10);
			return 0;
		}
	}
	return -ENODATA;
}

static ssize_t fd_link(struct sw_tio *t, pid_t pid, int fd, char *out, size_t len)
{
	char rel[64];
	ssize_t n;

	snprintf(rel, sizeof(rel), "%d/fd/%d", (int)pid, fd);
	n = sw_tio__read_link(t, rel, out, len - 1);
	if (n < 0)
		return n;
	out[n] = '\0';
	return n;
}

int sw_sysio_fd_path(struct sw_tio *t, pid_t pid, int fd, uint64_t ino, char *out, size_t len)
{
	char link[4096];
	uint64_t now_ino = 0;
	ssize_t n;
	int err;

	n = fd_link(t, pid, fd, link, sizeof(link));
	if (n < 0)
		return (int)n;
	if (link[0] != '/')
		return -ESTALE; /* a socket or pipe now */
	if (ino) {
		err = fdinfo_ino(t, pid, fd, &now_ino);
		/* an older kernel without ino: the link is all there is */
		if (err && err != -ENODATA)
			return err;
		if (!err && now_ino != ino)
			return -ESTALE;
	}
	sw_utf8_copy(out, len, link, (size_t)n + 1);
	return 0;
}

void sw_sysio_format_peer(int family, const uint8_t *addr, uint16_t port, char *out, size_t len)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	char a[INET6_ADDRSTRLEN] = "?";

	if (family == AF_INET6 && !memcmp(addr, v4mapped, sizeof(v4mapped))) {
		family = AF_INET;
		addr += 12;
	}
	if (family == AF_INET) {
		inet_ntop(AF_INET, addr, a, sizeof(a));
		snprintf(out, len, "%s:%u", a, port);
	} else {
		inet_ntop(AF_INET6, addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, port);
	}
}

/* /proc/net/{tcp,udp}{,6}: the kernel prints each 32-bit word of an
 * address as a host-order hex number (net/ipv4/tcp_ipv4.c get_tcp4_sock,
 * net/ipv6/tcp_ipv6.c get_tcp6_sock); a memcpy of the parsed word gives
 * back the bytes. */
static int hex_addr(const char *hex, uint8_t *addr)
{
	size_t n = strlen(hex);

	if (n != 8 && n != 32)
		return -1;
	for (size_t i = 0; i < n / 8; i++) {
		char w[9];
		uint32_t v;

		memcpy(w, hex + i * 8, 8);
		w[8] = 0;
		v = (uint32_t)strtoul(w, NULL, 16);
		memcpy(addr + i * 4, &v, 4);
	}
	return (int)(n / 2);
}

static bool net_lookup(struct sw_tio *t, pid_t pid, const char *file, uint64_t ino,
		       struct sw_diag_syscall *c, enum sw_fd_kind kind)
{
	char rel[64], line[512], rem[40];
	uint8_t addr[16];
	unsigned int port;
	unsigned long long li;
	bool found = false;
	FILE *f;

	snprintf(rel, sizeof(rel), "%d/net/%s", (int)pid, file);
	f = sw_tio__open_file(t, rel);
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		int alen;

		if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%*x %39[0-9A-Fa-f]:%x %*x %*x:%*x %*x:%*x %*x %*u %*u %llu",
			   rem, &port, &li) != 3 || li != ino)
			continue;
		found = true;
		alen = hex_addr(rem, addr);
		c->kind = kind;
		c->port = (uint16_t)port;
		if (alen > 0)
			sw_sysio_format_peer(alen == 4 ? AF_INET : AF_INET6, addr, c->port, c->target,
					     sizeof(c->target));
	}
	fclose(f);
	return found;
}

static bool unix_lookup(struct sw_tio *t, pid_t pid, uint64_t ino, struct sw_diag_syscall *c)
{
	char rel[64], line[512], path[256];
	unsigned long long li;
	bool found = false;
	FILE *f;

	snprintf(rel, sizeof(rel), "%d/net/unix", (int)pid);
	f = sw_tio__open_file(t, rel);
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		int n;

		path[0] = 0;
		n = sscanf(line, "%*x: %*x %*x %*x %*x %*x %llu %255s", &li, path);
		if (n < 1 || li != ino)
			continue;
		found = true;
		c->kind = SW_FD_UNIX;
		sw_utf8_copy(c->target, sizeof(c->target), path, sizeof(path));
	}
	fclose(f);
	return found;
}

int sw_sysio_classify_proc(struct sw_tio *t, pid_t pid, int fd, struct sw_diag_syscall *c)
{
	char link[4096];
	unsigned long long ino;
	ssize_t n;

	n = fd_link(t, pid, fd, link, sizeof(link));
	if (n < 0)
		return (int)n;
	c->port = 0;
	c->target[0] = 0;
	if (link[0] == '/') {
		c->kind = SW_FD_FILE;
		sw_utf8_copy(c->target, sizeof(c->target), link, (size_t)n + 1);
	} else if (sscanf(link, "socket:[%llu]", &ino) == 1) {
		bool found = false;

		/* /proc/net/tcp is no snapshot: read in chunks, it resumes by
		 * position, and sockets that leave the table meanwhile (a host
		 * with thousands of TIME_WAIT expiring) shift a live one past
		 * the reader (suite run 6: a loopback recv named "other
		 * socket"). Another pass finds it. */
		for (int pass = 0; pass < 3 && !found; pass++)
			found = net_lookup(t, pid, "tcp", ino, c, SW_FD_TCP) ||
				net_lookup(t, pid, "tcp6", ino, c, SW_FD_TCP) ||
				net_lookup(t, pid, "udp", ino, c, SW_FD_UDP) ||
				net_lookup(t, pid, "udp6", ino, c, SW_FD_UDP) ||
				unix_lookup(t, pid, ino, c);
		if (!found) {
			c->kind = SW_FD_OTHER;
			snprintf(c->target, sizeof(c->target), "socket");
		}
	} else if (!strncmp(link, "pipe:", 5)) {
		c->kind = SW_FD_PIPE;
	} else {
		/* anon_inode:[eventfd], /dev/... is a path above */
		c->kind = SW_FD_OTHER;
		sw_utf8_copy(c->target, sizeof(c->target), link, (size_t)n + 1);
	}
	return 0;
}

/* ---- from BPF's table ---- */

static const char *cached_path(struct sw_sysio *s, uint32_t pid, int fd, uint64_t ino)
{
	for (unsigned int i = 0; i < PATH_CACHE; i++) {
		struct path_ent *p = &s->cache[i];

		if (p->pid == pid && p->fd == fd && p->ino == ino && p->path[0])
			return p->path;
	}
	return NULL;
}

int sw_sysio_walked_path(struct sw_tio *t, pid_t pid, uint32_t n_comp,
			 const char (*comp)[SW_SYSIO_COMP_LEN], uint64_t ino, char *out, size_t len)
{
	char path[SW_SYSIO_PATH_DEPTH * SW_SYSIO_COMP_LEN + 1] = "", full[PATH_MAX];
	size_t off = 0;
	struct stat sb;

	if (!n_comp || n_comp > SW_SYSIO_PATH_DEPTH)
		return -ENAMETOOLONG;
	for (uint32_t i = n_comp; i-- > 0;) {
		size_t l = strnlen(comp[i], SW_SYSIO_COMP_LEN);

		if (l >= SW_SYSIO_COMP_LEN - 1 || !l)
			return -ENAMETOOLONG; /* maybe cut to its slot */
		path[off++] = '/';
		memcpy(path + off, comp[i], l);
		off += l;
	}
	path[off] = 0;
	/* the target's root: a container's files are not ours */
	snprintf(full, sizeof(full), "%s/%d/root%s", t->root, (int)pid, path);
	if (stat(full, &sb))
		return -errno;
	if (ino && sb.st_ino != ino)
		return -ESTALE;
	sw_utf8_copy(out, len, path, off + 1);
	return 0;
}

static int walked_path(struct sw_tio *t, pid_t pid, const struct sw_sysio_ent *e, char *out,
		       size_t len)
{
	return sw_sysio_walked_path(t, pid, e->n_comp, e->comp, e->ino, out, len);
}

static void file_target(struct sw_sysio *s, uint32_t pid, const struct sw_sysio_ent *e,
			char *out, size_t len)
{
	const char *p = cached_path(s, pid, e->fd, e->ino);
	struct path_ent *pe;
	char name[SW_SYSIO_NAME_LEN + 1];

	if (p) {
		snprintf(out, len, "%s", p);
		return;
	}
	pe = &s->cache[s->cache_next];
	if (sw_sysio_fd_path(sw_tio_default(), (pid_t)pid, e->fd, e->ino, pe->path,
			     sizeof(pe->path)) == 0) {
		s->cache_next = (s->cache_next + 1) % PATH_CACHE;
		pe->pid = pid;
		pe->fd = e->fd;
		pe->ino = e->ino;
		snprintf(out, len, "%s", pe->path);
		return;
	}
	/* closed or reused since: the path BPF walked, if the file is still
	 * there with that inode */
	if (walked_path(sw_tio_default(), (pid_t)pid, e, pe->path, sizeof(pe->path)) == 0) {
		s->cache_next = (s->cache_next + 1) % PATH_CACHE;
		pe->pid = pid;
		pe->fd = e->fd;
		pe->ino = e->ino;
		snprintf(out, len, "%s", pe->path);
		return;
	}
	pe->path[0] = 0;
	/* else the name BPF saw, marked as only that */
	memcpy(name, e->name, SW_SYSIO_NAME_LEN);
	name[SW_SYSIO_NAME_LEN] = 0;
	snprintf(out, len, ".../");
	sw_utf8_copy(out + 4, len - 4, name, sizeof(name));
}

/* A child's command line, arguments joined by spaces: BPF's copy at its
 * exec, else /proc/PID/cmdline while it lives. */
static bool child_cmd(struct sw_sysio *s, uint32_t pid, char *out, size_t len)
{
	struct sw_sysio_child c;
	char buf[SW_SYSIO_CMD_LEN], rel[64];
	size_t n = 0;
	FILE *f;

	if (!pid)
		return false;
	if (bpf_map__lookup_elem(s->skel->maps.children, &pid, sizeof(pid), &c, sizeof(c), 0) ==
		    0 &&
	    c.len) {
		n = c.len < sizeof(buf) ? c.len : sizeof(buf) - 1;
		memcpy(buf, c.cmd, n);
	} else {
		snprintf(rel, sizeof(rel), "%u/cmdline", pid);
		f = sw_tio__open_file(sw_tio_default(), rel);
		if (!f)
			return false;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	while (n && !buf[n - 1])
		n--;
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = 0;
	sw_utf8_copy(out, len, buf, n + 1);
	return true;
}

static void name_syscall(int nr, char *out, size_t len)
{
	const char *name = sw_syscall_name(nr);

	if (name)
		snprintf(out, len, "%s", name);
	else
		snprintf(out, len, "syscall %d", nr);
}

static void describe(struct sw_sysio *s, uint32_t pid, const struct sw_sysio_tab *tab,
		     const struct sw_sysio_ent *e, struct sw_diag_syscall *c)
{
	memset(c, 0, sizeof(*c));
	name_syscall(e->nr, c->name, sizeof(c->name));
	c->count = e->count;
	c->total_ns = e->ns;
	c->fd = e->fd;
	c->kind = SW_FD_NONE;
	if (e->nr == SW_NR_FUTEX && e->key_arg) {
		snprintf(c->target, sizeof(c->target), "futex 0x%" PRIx64, (uint64_t)e->key_arg);
		return;
	}
	if (e->nr == SW_NR_WAIT4 || e->nr == SW_NR_WAITID) {
		int64_t want = (int64_t)e->key_arg;

		child_cmd(s, want > 0 ? (uint32_t)want : tab->child_pid, c->target,
			  sizeof(c->target));
		return;
	}
	if (e->fd < 0)
		return;
	if (!(e->flags & SW_SYSIO_CLASSIFIED)) {
		/* all its calls were short and early in the stretch: ask
		 * /proc, which sees the fd as it is now */
		if (sw_sysio_classify_proc(sw_tio_default(), (pid_t)pid, e->fd, c))
			c->kind = SW_FD_NONE; /* closed since: unknown */
		goto child;
	}
	switch (e->kind) {
	case SW_SYSIO_K_FILE:
		c->kind = SW_FD_FILE;
		file_target(s, pid, e, c->target, sizeof(c->target));
		break;
	case SW_SYSIO_K_SOCK:
		if (e->family == AF_UNIX) {
			char p[SW_SYSIO_NAME_LEN + 1];

			c->kind = SW_FD_UNIX;
			memcpy(p, e->name, SW_SYSIO_NAME_LEN);
			p[SW_SYSIO_NAME_LEN] = 0;
			if (!p[0] && p[1]) /* abstract: a leading NUL */
				p[0] = '@';
			sw_utf8_copy(c->target, sizeof(c->target), p, sizeof(p));
			break;
		}
		if (e->family != AF_INET && e->family != AF_INET6) {
			c->kind = SW_FD_OTHER;
			snprintf(c->target, sizeof(c->target), "socket family %u", e->family);
			break;
		}
		c->kind = e->proto == IPPROTO_UDP ? SW_FD_UDP : SW_FD_TCP;
		c->port = e->port;
		if (e->port) /* an unconnected socket has no peer */
			sw_sysio_format_peer(e->family, e->addr, e->port, c->target,
					     sizeof(c->target));
		break;
	case SW_SYSIO_K_PIPE:
		c->kind = SW_FD_PIPE;
		break;
	case SW_SYSIO_K_GONE:
		c->kind = SW_FD_OTHER;
		snprintf(c->target, sizeof(c->target), "(closed)");
		break;
	default:
		c->kind = SW_FD_OTHER;
		memcpy(c->target, e->name, SW_SYSIO_NAME_LEN);
		c->target[SW_SYSIO_NAME_LEN] = 0;
		break;
	}
child:
	/* a nested loop's wait while a child it forked ran: execSync,
	 * spawnSync; the child names it */
	if (sw_nr_is_epoll_wait(e->nr) && tab->child_pid)
		child_cmd(s, tab->child_pid, c->target, sizeof(c->target));
}

/*
 * BPF classifies an fd once the stretch is old enough; the short calls on
 * it before that (the connect and send before a long recv) are the same
 * fd in the same stretch, so they take its class rather than asking /proc
 * after the fd is closed.
 */
static void borrow_classes(struct sw_sysio_tab *tab)
{
	uint32_t n = tab->n < SW_SYSIO_ENTRIES ? tab->n : SW_SYSIO_ENTRIES;

	for (uint32_t i = 0; i < n; i++) {
		struct sw_sysio_ent *e = &tab->ent[i];

		if (e->fd < 0 || (e->flags & SW_SYSIO_CLASSIFIED))
			continue;
		for (uint32_t j = 0; j < n; j++) {
			const struct sw_sysio_ent *o = &tab->ent[j];
			struct sw_sysio_ent keep = *e;

			if (o->fd != e->fd || !(o->flags & SW_SYSIO_CLASSIFIED))
				continue;
			*e = *o;
			e->nr = keep.nr;
			e->key_arg = keep.key_arg;
			e->count = keep.count;
			e->ns = keep.ns;
			e->max_ns = keep.max_ns;
			break;
		}
	}
}

static int by_total_desc(const void *a, const void *b)
{
	const struct sw_diag_syscall *x = a, *y = b;

	return x->total_ns < y->total_ns ? 1 : x->total_ns > y->total_ns ? -1 : 0;
}

int sw_sysio__collect(struct sw_sysio *s, uint32_t pid, uint32_t tid, uint64_t block_start_ns,
		      struct sw_diag_syscalls *out)
{
	/* one more than BPF keeps: the syscall in flight */
	struct sw_diag_syscall all[SW_SYSIO_ENTRIES + 1];
	struct sw_sysio_thread *st = &s->st;
	const struct sw_sysio_tab *tab = NULL;
	struct sw_sysio_ent inflight;
	uint64_t busy_in = 0;
	uint32_t n = 0, k;
	int err;

	out->n = 0;
	out->dropped = 0;
	err = bpf_map__lookup_elem(s->skel->maps.sysio, &tid, sizeof(tid), st, sizeof(*st), 0);
	if (err)
		return err == -ENOENT ? -ENOENT : (s->failed_reads++, err);
	/* a block in progress after an empty pre-poll starts at its return,
	 * but BPF counts in the iteration it interrupted (sw_sysio_stretch) */
	if (bpf_map_lookup_elem(s->threads_fd, &tid, &s->thr) == 0 && sw_thread_busy(&s->thr) &&
	    sw_thread_block_start(&s->thr) == block_start_ns)
		busy_in = sw_sysio_stretch(&s->thr);
	for (int i = 0; i < 2; i++)
		if (st->tab[i].block_start == block_start_ns ||
		    (busy_in && st->tab[i].block_start == busy_in))
			tab = &st->tab[i];
	memset(&inflight, 0, sizeof(inflight));
	/* The syscall in flight of a stretch still in progress: its time so
	 * far (the loop wait that ends a finished one is not in flight
	 * while the thread is busy) */
	if (st->cur_inflight && busy_in && st->cur_enter_ns >= block_start_ns) {
		uint64_t now = sw_mono_ns();

		inflight.nr = st->cur_nr;
		inflight.fd = st->cur_fd;
		inflight.key_arg = st->cur_arg;
		inflight.count = 1;
		inflight.ns = now > st->cur_enter_ns ? now - st->cur_enter_ns : 0;
	}
	if (!tab && !inflight.count)
		return -ENOENT;
	if (tab)
		borrow_classes((struct sw_sysio_tab *)tab);
	for (k = 0; tab && k < tab->n && k < SW_SYSIO_ENTRIES; k++) {
		const struct sw_sysio_ent *e = &tab->ent[k];

		describe(s, pid, tab, e, &all[n]);
		if (inflight.count && e->nr == inflight.nr && e->fd == inflight.fd &&
		    e->key_arg == inflight.key_arg) {
			all[n].count++;
			all[n].total_ns += inflight.ns;
			inflight.count = 0;
		}
		n++;
	}
	if (inflight.count) {
		static const struct sw_sysio_tab none;

		describe(s, pid, tab ? tab : &none, &inflight, &all[n++]);
	}
	qsort(all, n, sizeof(all[0]), by_total_desc);
	out->n = n < SW_DIAG_SYSCALLS ? n : SW_DIAG_SYSCALLS;
	memcpy(out->s, all, out->n * sizeof(all[0]));
	out->dropped = (tab ? tab->dropped : 0) + (n - out->n);
	return 0;
}
