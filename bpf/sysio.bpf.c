// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * sysio: what a loop thread waited on in a busy stretch. Per tracked loop
 * thread, the syscalls it made since its stretch began, keyed by (syscall,
 * fd, futex address or waited pid), with count and total time; and, once the
 * stretch is old enough to matter, what each fd is (file, socket and peer,
 * pipe). Children that target processes fork are remembered with their
 * command line, so a wait for one can name it.
 *
 * The thread states are loopmon's (bpf/loopmon.bpf.c): its `threads` and
 * `tid_hint` maps are declared here identically and the agent makes libbpf
 * reuse loopmon's fds, so this unit never decides on its own what a loop
 * thread or a stretch is.
 *
 * Host cost: tp_btf/sys_enter and sys_exit run for every syscall of the
 * host. A thread that is not a loop thread stops at the inlined tid_hint
 * array load. The per-syscall cost on a loop thread is in
 * docs/PERFORMANCE.md ("sysio").
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "loopmon_maps.h"
#include "sysio.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EEXIST 17
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define S_IFDIR 0040000
#define S_IFIFO 0010000
/* include/uapi/linux/magic.h: eventfd, epoll, timerfd, signalfd... are
 * regular-looking inodes of this pseudo file system */
#define ANON_INODE_FS_MAGIC 0x09041934

/*
 * Set by the agent between open and load.
 * gate_ns: an fd is classified only once the stretch is that old, or when
 * the syscall itself took that long (the issue: classification happens for
 * incidents, not for every loop iteration). threshold/4 by default.
 * count_gate_ns: likewise for plain counting; 0 counts every syscall of a
 * busy stretch (the default, see docs/PERFORMANCE.md for why).
 */
const volatile __u64 gate_ns = 12500000ull;
const volatile __u64 count_gate_ns = 0;

struct sw_bpf_stats stats = {};
/* Set by the agent before each on-demand attach of the syscall programs:
 * a call in flight then had its enter unseen (0: always attached). */
__u64 attach_gen = 0;
__u64 attach_ns = 0;

/* Per loop thread; ~15 KiB a value, so not preallocated. The agent deletes
 * the entries of threads loopmon no longer tracks, after it has read the
 * last incident of a thread that died blocked. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SW_MAX_THREADS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct sw_sysio_thread);
} sysio SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_sysio_thread);
} sysio_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SW_SYSIO_CHILDREN);
	__type(key, __u32); /* child pid */
	__type(value, struct sw_sysio_child);
} children SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_sysio_child);
} child_zero SEC(".maps");

static __always_inline void count(__u64 *counter)
{
	__sync_fetch_and_add(counter, 1);
}

static struct sw_sysio_thread *sysio_new(__u32 pid, __u32 tid)
{
	struct sw_sysio_thread *zero, *s;
	__u32 k = 0;
	long err;

	zero = bpf_map_lookup_elem(&sysio_zero, &k);
	if (!zero)
		return NULL;
	err = bpf_map_update_elem(&sysio, &tid, zero, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		count(&stats.v[SW_HEALTH_thread_map_full]);
		return NULL;
	}
	s = bpf_map_lookup_elem(&sysio, &tid);
	if (s) {
		s->pid = pid;
		s->tid = tid;
	}
	return s;
}

/* What a call is about: its number, fd (the first pollfd's for a poll with
 * a timeout), and the argument that keys it (futex address, waited pid). */
static __always_inline void note_call(struct sw_sysio_thread *s, long id, struct pt_regs *regs)
{
	int where;

	s->cur_nr = (__s32)id;
	s->cur_fd = -1;
	where = sw_sysio_fd_arg(id);
	if (where == 0) {
		s->cur_fd = (__s32)regs->di;
	} else if (where == 1 && regs->si >= 1) {
		/* poll of a socket with a timeout (CPython's sock_call,
		 * libpq's pqSocketPoll): the first pollfd is the one */
		struct pollfd pfd;

		if (bpf_probe_read_user(&pfd, sizeof(pfd), (void *)regs->di) == 0)
			s->cur_fd = pfd.fd;
		else
			count(&stats.v[SW_HEALTH_failed_reads]);
	}
	s->cur_arg = sw_sysio_key_arg(id, regs->di, regs->si, regs->dx);
	s->gen = attach_gen;
	s->cur_inflight = 1;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sysio_enter, struct pt_regs *regs, long id)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sw_sysio_thread *s;

	if (!maybe_tracked(tid))
		return 0;
	s = bpf_map_lookup_elem(&sysio, &tid);
	if (!s) {
		/* a loop thread's first call in a busy stretch: made here, so
		 * that an exit with no state means its enter came before the
		 * programs were attached (sysio_exit) */
		struct sw_thread *t = bpf_map_lookup_elem(&threads, &tid);

		if (!t || !sw_thread_busy(t))
			return 0;
		s = sysio_new(bpf_get_current_pid_tgid() >> 32, tid);
		if (!s)
			return 0;
	}
	note_call(s, id, regs);
	s->cur_enter_ns = bpf_ktime_get_ns();
	return 0;
}

struct walk_ctx {
	struct sw_sysio_ent *e;
	struct dentry *d;
	struct mount *mnt;
	__u32 n;
	bool done;
};

/* One step of the walk; a bpf_loop callback, so the verifier sees one
 * step, not every mix of mount crossings and components. */
static long walk_step(__u64 i, struct walk_ctx *w)
{
	struct dentry *d = w->d, *parent = BPF_CORE_READ(d, d_parent);
	struct mount *mnt = w->mnt, *pm;
	__u32 n = w->n;

	if (d == BPF_CORE_READ(mnt, mnt.mnt_root) || d == parent) {
		pm = BPF_CORE_READ(mnt, mnt_parent);
		if (pm == mnt) {
			w->done = true; /* the root */
			return 1;
		}
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = pm;
		return 0;
	}
	if (n >= SW_SYSIO_PATH_DEPTH)
		return 1; /* deeper than kept */
	bpf_probe_read_kernel_str(w->e->comp[n], SW_SYSIO_COMP_LEN, BPF_CORE_READ(d, d_name.name));
	w->n = n + 1;
	w->d = parent;
	return 0;
}

/*
 * A file's path, walked up dentry by dentry and across mount points (the
 * way d_path does, without its locks: a rename racing with it gives a path
 * that the agent's inode check then rejects). bpf_d_path is not allowed in
 * tp_btf programs.
 */
static __always_inline void walk_path(struct sw_sysio_ent *e, struct file *file)
{
	struct vfsmount *vm = BPF_CORE_READ(file, f_path.mnt);
	struct walk_ctx w = {
		.e = e,
		.d = BPF_CORE_READ(file, f_path.dentry),
		.mnt = container_of(vm, struct mount, mnt),
	};

	/* components plus a few mount crossings */
	bpf_loop(SW_SYSIO_PATH_DEPTH + 6, walk_step, &w, 0);
	e->n_comp = w.done ? w.n : SW_SYSIO_PATH_DEPTH + 1;
}

/* A subprogram, verified once: inlined into the table search it made the
 * verifier walk over a million states. */
static __noinline void classify(struct sw_sysio_ent *e, int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fdarr;
	struct file *file = NULL;
	struct inode *inode;
	unsigned int max_fds;
	__u16 mode;

	e->flags |= SW_SYSIO_CLASSIFIED;
	max_fds = BPF_CORE_READ(fdt, max_fds);
	if (fd < 0 || (unsigned int)fd >= max_fds) {
		e->kind = SW_SYSIO_K_GONE;
		return;
	}
	fdarr = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fdarr[fd]) || !file) {
		e->kind = SW_SYSIO_K_GONE;
		return;
	}
	inode = BPF_CORE_READ(file, f_inode);
	mode = BPF_CORE_READ(inode, i_mode);
	e->ino = BPF_CORE_READ(inode, i_ino);
	switch (mode & S_IFMT) {
	case S_IFSOCK: {
		struct socket *sock = BPF_CORE_READ(file, private_data);
		struct sock *sk = BPF_CORE_READ(sock, sk);

		e->kind = SW_SYSIO_K_SOCK;
		e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
		e->proto = (__u8)BPF_CORE_READ(sk, sk_protocol);
		if (e->family == AF_INET) {
			__u32 a = BPF_CORE_READ(sk, __sk_common.skc_daddr);

			__builtin_memcpy(e->addr, &a, sizeof(a));
			e->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		} else if (e->family == AF_INET6) {
			BPF_CORE_READ_INTO(&e->addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
			e->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		} else if (e->family == AF_UNIX) {
			/* the peer's bound path (a client's own is unbound);
			 * abstract names start with a NUL, which the agent
			 * shows as '@' */
			struct unix_sock *u = (struct unix_sock *)sk;
			struct sock *peer = BPF_CORE_READ(u, peer);
			struct unix_address *ua;

			ua = peer ? BPF_CORE_READ((struct unix_sock *)peer, addr) : NULL;
			if (!ua)
				ua = BPF_CORE_READ(u, addr);
			if (ua && bpf_probe_read_kernel(e->name, sizeof(e->name) - 1,
							&ua->name[0].sun_path))
				e->name[0] = 0;
		}
		break;
	}
	case S_IFIFO:
		e->kind = SW_SYSIO_K_PIPE;
		break;
	case S_IFREG:
	case S_IFDIR:
		if (BPF_CORE_READ(inode, i_sb, s_magic) != ANON_INODE_FS_MAGIC) {
			e->kind = SW_SYSIO_K_FILE;
			bpf_probe_read_kernel_str(e->name, sizeof(e->name),
						  BPF_CORE_READ(file, f_path.dentry, d_name.name));
			walk_path(e, file);
			break;
		}
		/* fall through: eventfd, epoll... */
	default:
		e->kind = SW_SYSIO_K_OTHER;
		bpf_probe_read_kernel_str(e->name, sizeof(e->name),
					  BPF_CORE_READ(file, f_path.dentry, d_name.name));
	}
}

static __always_inline void tab_reset(struct sw_sysio_tab *tab, __u64 block_start,
				      __u64 incidents)
{
	tab->block_start = block_start;
	tab->incidents = incidents;
	tab->dropped = 0;
	tab->n = 0;
	tab->child_pid = 0;
}

/*
 * The table of the stretch that began at start, reset if it is a new one.
 * The stretch before was an incident if loopmon counted one since it began:
 * it is kept for the agent, which reads the incident from the ring buffer
 * after the loop has moved on.
 */
static __always_inline struct sw_sysio_tab *stretch_tab(struct sw_sysio_thread *s,
							struct sw_thread *t, __u64 start)
{
	struct sw_sysio_tab *tab = &s->tab[s->cur & 1];

	if (tab->block_start != start) {
		if (tab->block_start && t->incidents != tab->incidents) {
			s->cur ^= 1;
			tab = &s->tab[s->cur & 1];
		}
		tab_reset(tab, start, t->incidents);
	}
	return tab;
}

/*
 * The entry of (nr, fd, arg) in the stretch's table, added if new. A full
 * table gives up its shortest entry for a call longer than it (what the
 * loop waited on is the long call, which may come last: execSync's wait
 * follows a dozen short setup calls); the loser is counted as dropped.
 * NULL when the call is not worth a place.
 */
static __always_inline struct sw_sysio_ent *tab_entry(struct sw_sysio_tab *tab, __s32 nr,
						      __s32 fd, __u64 arg, __u64 dur)
{
	struct sw_sysio_ent *e, *min = NULL;
	__u32 n = tab->n;
	int i;

	for (i = 0; i < SW_SYSIO_ENTRIES; i++) {
		if (i >= n)
			break;
		e = &tab->ent[i];
		if (e->nr == nr && e->fd == fd && e->key_arg == arg)
			return e;
		if (!min || e->ns < min->ns)
			min = e;
	}
	if (n >= SW_SYSIO_ENTRIES) {
		tab->dropped++;
		count(&stats.v[SW_HEALTH_syscalls_dropped]);
		if (!min || min->ns >= dur)
			return NULL;
		e = min;
	} else {
		e = &tab->ent[n & (SW_SYSIO_ENTRIES - 1)];
		tab->n = n + 1;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->nr = nr;
	e->fd = fd;
	e->key_arg = arg;
	return e;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sysio_exit, struct pt_regs *regs, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct sw_sysio_thread *s;
	struct sw_sysio_tab *tab;
	struct sw_sysio_ent *e;
	struct sw_thread *t;
	__u64 now, start, dur, age;

	if (!maybe_tracked(tid))
		return 0;
	s = bpf_map_lookup_elem(&sysio, &tid);
	if (s && !s->cur_inflight) {
		if (s->gen == attach_gen)
			return 0;
		/* The first exit since an on-demand attach, with no enter
		 * since: the call the thread was in when the programs came,
		 * which the agent could not seed (/proc/PID/task/TID/syscall
		 * says only "running" of a thread on a CPU, as in a long read
		 * of a cold file). Its registers still say what it is; its
		 * time is counted from the attach, a lower bound. */
		note_call(s, (__s32)regs->orig_ax, regs);
		s->cur_enter_ns = attach_ns;
	}
	t = bpf_map_lookup_elem(&threads, &tid);
	if (!t || !sw_thread_busy(t))
		goto out;
	if (!s) {
		/* sysio_enter makes the state of a busy loop thread: none
		 * here means this call was entered before the programs were
		 * attached (or before the thread was busy). Always attached,
		 * the next call is counted; on demand, this may be the call
		 * the thread was blocked in at the attach: counted from the
		 * attach, as above. */
		s = sysio_new(id >> 32, tid);
		if (!s || !attach_gen || s->gen == attach_gen)
			return 0;
		note_call(s, (__s32)regs->orig_ax, regs);
		s->cur_enter_ns = attach_ns;
	}
	start = sw_sysio_stretch(t);
	tab = stretch_tab(s, t, start);
	/* the loop wait that began the stretch, a syscall entered before it;
	 * or, in on-demand mode, an enter left from before a detach */
	if (s->cur_enter_ns < start || s->cur_nr != (__s32)regs->orig_ax)
		goto out;
	now = bpf_ktime_get_ns();
	dur = now - s->cur_enter_ns;
	age = now - start;
	if (count_gate_ns && age < count_gate_ns && dur < count_gate_ns)
		goto out;
	e = tab_entry(tab, s->cur_nr, s->cur_fd, s->cur_arg, dur);
	if (!e)
		goto out;
	e->count++;
	e->ns += dur;
	if (dur > e->max_ns)
		e->max_ns = dur;
	if (!(e->flags & SW_SYSIO_CLASSIFIED) && e->fd >= 0 && (age >= gate_ns || dur >= gate_ns))
		classify(e, e->fd);
out:
	if (s)
		s->cur_inflight = 0;
	return 0;
}

/*
 * A target forks a child: remember it, and which stretch of which loop
 * thread forked it (execSync, spawnSync, subprocess.run on the loop). A new
 * thread (CLONE_THREAD) is not a child.
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(sysio_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptid = parent->pid, cpid = child->pid, ppid = parent->tgid;
	struct sw_sysio_child *zero;
	struct sw_sysio_thread *s;
	struct sw_thread *t;
	__u32 k = 0;

	if (child->tgid != cpid || !maybe_tracked(ptid))
		return 0;
	s = bpf_map_lookup_elem(&sysio, &ptid);
	t = bpf_map_lookup_elem(&threads, &ptid);
	if (!s || !t || !sw_thread_busy(t))
		return 0;
	/* the clone may be the stretch's first syscall: its exit, which
	 * would reset the table, comes after this */
	stretch_tab(s, t, sw_sysio_stretch(t))->child_pid = cpid;
	zero = bpf_map_lookup_elem(&child_zero, &k);
	if (!zero)
		return 0;
	bpf_map_update_elem(&children, &cpid, zero, BPF_ANY);
	zero = bpf_map_lookup_elem(&children, &cpid);
	if (zero) {
		zero->parent_pid = ppid;
		zero->fork_ns = bpf_ktime_get_ns();
	}
	return 0;
}

/* A remembered child exec'd: its command line, from the new image's
 * argument area, which the kernel has just written. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(sysio_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 pid = p->tgid;
	struct sw_sysio_child *c = bpf_map_lookup_elem(&children, &pid);
	unsigned long a0, a1;
	__u64 len;

	if (!c)
		return 0;
	a0 = BPF_CORE_READ(p, mm, arg_start);
	a1 = BPF_CORE_READ(p, mm, arg_end);
	len = a1 > a0 ? a1 - a0 : 0;
	if (len > sizeof(c->cmd) - 1)
		len = sizeof(c->cmd) - 1;
	if (len && bpf_probe_read_user(c->cmd, len & (SW_SYSIO_CMD_LEN - 1), (void *)a0)) {
		count(&stats.v[SW_HEALTH_failed_reads]);
		len = 0;
	}
	c->cmd[len & (SW_SYSIO_CMD_LEN - 1)] = 0;
	c->len = len;
	return 0;
}
