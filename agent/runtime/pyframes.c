// SPDX-License-Identifier: Apache-2.0
/*
 * The Python frame reader: a thread's frame chain read from outside through
 * the CPython layout table (python.c), every read through target_io.h so
 * that recorded interpreters replay it in the unit tests.
 *
 * What one read costs: the target keeps running, so each read starts from
 * the thread state and ends by re-reading the thread's current frame
 * pointer (a changed chain is -EAGAIN). In between, memory is read a page at
 * a time into a small per-read cache: on 3.11+ the frames of one C call of
 * the evaluator sit next to each other in the thread's data stack, so a deep
 * stack costs a few process_vm_readv calls, not one per frame. Code objects
 * are read every time (their address may be reused by another one), but
 * what they point at (names, file, line table) is decoded once per process
 * and kept while the code object still points at the same objects.
 *
 * Thread ids: 3.11+ keep the kernel tid in tstate->native_thread_id. 3.9
 * and 3.10 keep only pthread_self(), the address of glibc's struct pthread;
 * its tid field is found where libthread_db finds it, libc's exported
 * descriptor _thread_db_pthread_tid {bits, count, offset} (nptl/structs.def),
 * read from the libc the process maps: glibc's own answer for that build.
 * A libc without it (musl, or one stripped of .dynsym's private symbols)
 * falls back to finding the one offset at which every Python thread's
 * struct pthread holds a distinct tid of the process and the main thread's
 * is the pid (sw_pyframes__pthread_tid_scan); when neither works the
 * threads stay unmapped and the note says so.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "runtime/pyframes.h"
#include "runtime/python.h"
#include "symbolize.h"
#include "target_io.h"

/* enum _frameowner (Include/internal/pycore_frame.h, 3.11-3.13): the
 * generator's frames live in the generator and are never "incomplete" */
#define PF_OWNED_BY_GENERATOR 1

#define PF_PAGE 4096u
#define PF_PAGES 48 /* per read (~200 KiB): a deeper stack reuses the oldest */
/* The raw chain may hold a C-stack shim per Python frame (3.12+) */
#define PF_MAX_RAW (2 * SW_PY_MAX_FRAMES + 2)
#define PF_CODES 512		    /* decoded code objects kept per process (~220 KiB) */
#define PF_PROBE 8		    /* slots a code object may sit in: its hash and the next 7 */
#define PF_MAX_LINETABLE (1u << 20) /* bytes; larger tables give line 0 */
#define PF_MAX_THREADS 4096
/* x86_64 user space ends below 2^47 (2^56 with 5-level paging) */
#define PF_USER_END (1ull << 56)

struct pf_page {
	uint64_t base; /* 0: empty */
	int err;
	uint8_t data[PF_PAGE];
};

struct pf_code {
	uint64_t addr; /* 0: empty slot */
	/* what the code object pointed at when decoded: a code object at the
	 * same address pointing elsewhere is another one */
	uint64_t name, filename, linetable;
	int32_t firstlineno;
	char func[sizeof(((struct sw_py_frame *)0)->func)];
	char file[sizeof(((struct sw_py_frame *)0)->file)];
	uint8_t *lt;
	uint32_t lt_len;
	bool lt_ok;
};

struct pf_thread {
	uint32_t tid;
	uint64_t tstate, pthread;
};

struct pf_proc {
	struct pf_proc *next;
	uint32_t pid;
	int err; /* non-zero: every read returns it */
	char note[320];
	const struct sw_py_layout *L;
	struct sw_py_addrs a;
	uint64_t interp;
	struct pf_thread *th;
	size_t n_th;
	uint64_t th_head;  /* interp's thread list head at the last refresh */
	uint32_t miss[16]; /* tids with no tstate while th_head is unchanged */
	unsigned n_miss;
	struct pf_code *codes;
	unsigned evict;
};

struct sw_pyframes {
	struct sw_tio *t;
	struct pf_proc *procs;
	struct pf_page *pages;
	unsigned n_pages, next_page;
	bool exact;
	struct sw_pyframes_stats stats;
};

struct sw_pyframes *sw_pyframes__new(struct sw_tio *t)
{
	struct sw_pyframes *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->t = t;
	r->pages = calloc(PF_PAGES, sizeof(*r->pages));
	if (!r->pages) {
		free(r);
		return NULL;
	}
	return r;
}

static void proc_free(struct pf_proc *p)
{
	if (!p)
		return;
	if (p->codes)
		for (size_t i = 0; i < PF_CODES; i++)
			free(p->codes[i].lt);
	free(p->codes);
	free(p->th);
	free(p);
}

void sw_pyframes__free(struct sw_pyframes *r)
{
	if (!r)
		return;
	while (r->procs) {
		struct pf_proc *p = r->procs;

		r->procs = p->next;
		proc_free(p);
	}
	free(r->pages);
	free(r);
}

static struct pf_proc *find(struct sw_pyframes *r, uint32_t pid)
{
	for (struct pf_proc *p = r->procs; p; p = p->next)
		if (p->pid == pid)
			return p;
	return NULL;
}

void sw_pyframes__remove_process(struct sw_pyframes *r, uint32_t pid)
{
	for (struct pf_proc **pp = &r->procs; *pp; pp = &(*pp)->next) {
		if ((*pp)->pid == pid) {
			struct pf_proc *p = *pp;

			*pp = p->next;
			proc_free(p);
			return;
		}
	}
}

int sw_pyframes__addrs(struct sw_pyframes *r, uint32_t pid, struct sw_py_addrs *out)
{
	struct pf_proc *p = find(r, pid);

	if (!p)
		return -ESRCH;
	*out = p->a;
	return 0;
}

const char *sw_pyframes__note(struct sw_pyframes *r, uint32_t pid)
{
	struct pf_proc *p = find(r, pid);

	if (!p)
		return "not a Python process being read";
	return p->note[0] ? p->note : NULL;
}

/* ---- memory: a page cache that lives for one read ---- */

static bool addr_ok(uint64_t a, unsigned align)
{
	return a >= PF_PAGE && a < PF_USER_END && !(a & (align - 1));
}

void sw_pyframes__exact_reads(struct sw_pyframes *r, bool on) { r->exact = on; }

static void pc_reset(struct sw_pyframes *r)
{
	for (unsigned i = 0; i < r->n_pages; i++)
		r->pages[i].base = 0;
	r->n_pages = 0;
	r->next_page = 0;
}

static struct pf_page *pc_page(struct sw_pyframes *r, pid_t pid, uint64_t base)
{
	struct pf_page *pg;

	for (unsigned i = 0; i < r->n_pages; i++)
		if (r->pages[i].base == base)
			return &r->pages[i];
	if (r->n_pages < PF_PAGES) {
		pg = &r->pages[r->n_pages++];
	} else {
		pg = &r->pages[r->next_page];
		r->next_page = (r->next_page + 1) % PF_PAGES;
	}
	pg->base = base;
	pg->err = sw_tio__read_mem(r->t, pid, base, pg->data, PF_PAGE);
	return pg;
}

/* The pages of n ranges not cached yet, read in one call (process_vm_readv
 * takes many ranges): the reads the walk will make, made at once. Only free
 * slots are used: nothing this read still needs is pushed out. */
static void pc_prefetch(struct sw_pyframes *r, pid_t pid, const uint64_t *addr, const size_t *len,
			size_t n)
{
	struct sw_tio_vec v[PF_PAGES];
	size_t k = 0, first = r->n_pages;

	if (r->exact)
		return;
	for (size_t i = 0; i < n; i++) {
		uint64_t end;

		if (!addr_ok(addr[i], 1) || len[i] > PF_PAGE)
			continue;
		end = addr[i] + len[i];
		for (uint64_t b = addr[i] & ~(uint64_t)(PF_PAGE - 1); b < end; b += PF_PAGE) {
			bool have = false;

			for (unsigned j = 0; j < r->n_pages && !have; j++)
				have = r->pages[j].base == b;
			for (size_t j = 0; j < k && !have; j++)
				have = v[j].addr == b;
			if (have)
				continue;
			if (first + k == PF_PAGES)
				goto read;
			v[k] = (struct sw_tio_vec){
			    .addr = b, .buf = r->pages[first + k].data, .len = PF_PAGE};
			k++;
		}
	}
read:
	if (!k)
		return;
	sw_tio__read_memv(r->t, pid, v, k);
	for (size_t i = 0; i < k; i++) {
		r->pages[first + i].base = v[i].addr;
		r->pages[first + i].err = v[i].err;
	}
	r->n_pages = (unsigned)(first + k);
}

/* len bytes at addr, through whole pages: a page is mapped or not as a whole,
 * so a page read fails only where the object's own read would. (A recorded
 * image may hold just the object: then the exact range is read.) */
static int pc_read(struct sw_pyframes *r, pid_t pid, uint64_t addr, void *out, size_t len)
{
	uint8_t *o = out;

	if (!addr_ok(addr, 1) || len > PF_USER_END - addr)
		return -EFAULT;
	if (r->exact)
		return sw_tio__read_mem(r->t, pid, addr, out, len);
	while (len) {
		uint64_t base = addr & ~(uint64_t)(PF_PAGE - 1), in = addr - base;
		size_t n = PF_PAGE - in < len ? PF_PAGE - in : len;
		struct pf_page *pg = pc_page(r, pid, base);

		if (pg->err) {
			int err = sw_tio__read_mem(r->t, pid, addr, o, n);

			if (err)
				return err;
		} else {
			memcpy(o, pg->data + in, n);
		}
		o += n;
		addr += n;
		len -= n;
	}
	return 0;
}

static uint64_t get_u64(const uint8_t *b, int32_t off)
{
	uint64_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static int32_t get_i32(const uint8_t *b, int32_t off)
{
	int32_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static size_t max_end(const int32_t *offs, size_t n, size_t width)
{
	size_t end = 0;

	for (size_t i = 0; i < n; i++)
		if (offs[i] != SW_PY_NONE && (size_t)offs[i] + width > end)
			end = (size_t)offs[i] + width;
	return end;
}

/* ---- strings: compact str objects to UTF-8 ---- */

static size_t put_utf8(char *o, uint32_t c)
{
	if (c >= 0xd800 && c <= 0xdfff)
		c = 0xfffd; /* a lone surrogate (surrogateescape'd bytes) */
	if (c > 0x10ffff)
		c = 0xfffd;
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xc0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xe0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		o[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (c >> 18));
	o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	o[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/*
 * The str at addr into out (size bytes, NUL-terminated UTF-8), whole
 * characters only. keep_tail: a path too long keeps its end (the file name)
 * behind "...". Code objects' strings are always compact (PEP 393), ASCII
 * or UCS1/2/4; anything else is not a name we can trust.
 */
static int read_str(struct sw_pyframes *r, const struct pf_proc *p, uint64_t addr, char *out,
		    size_t size, bool keep_tail)
{
	const struct sw_py_layout *L = p->L;
	uint8_t hdr[96], data[4 * 256];
	uint64_t type, data_addr, from = 0;
	int64_t length;
	uint32_t state, kind;
	size_t want, n, o = 0;
	int err;

	out[0] = '\0';
	if (!addr_ok(addr, 8) || (size_t)L->unicode.compact_data > sizeof(hdr) || size < 8)
		return -EFAULT;
	err = pc_read(r, p->pid, addr, hdr, (size_t)L->unicode.compact_data);
	if (err)
		return err;
	type = get_u64(hdr, 8);
	if (p->a.unicode_type && type != p->a.unicode_type)
		return -EAGAIN;
	length = (int64_t)get_u64(hdr, L->unicode.length);
	memcpy(&state, hdr + L->unicode.state, sizeof(state));
	kind = (state >> L->unicode.kind_shift) & 7;
	if (!((state >> L->unicode.compact_bit) & 1) || (kind != 1 && kind != 2 && kind != 4) ||
	    length < 0 || length > (1 << 20))
		return -EAGAIN;
	data_addr =
	    addr + (uint64_t)(((state >> L->unicode.ascii_bit) & 1) ? L->unicode_ascii_data
								    : L->unicode.compact_data);
	/* at most size-1 characters: each is at least one UTF-8 byte */
	want = (size_t)length < size - 1 ? (size_t)length : size - 1;
	if (want * kind > sizeof(data))
		want = sizeof(data) / kind;
	if (keep_tail && (size_t)length > want) {
		want -= 3; /* room for "..." */
		from = (uint64_t)length - want;
		memcpy(out, "...", 3);
		o = 3;
	}
	err = pc_read(r, p->pid, data_addr + from * kind, data, want * kind);
	if (err)
		return err;
	for (n = 0; n < want; n++) {
		uint32_t c;
		char u[4];
		size_t k;

		if (kind == 1)
			c = data[n];
		else if (kind == 2)
			c = (uint32_t)data[2 * n] | (uint32_t)data[2 * n + 1] << 8;
		else
			memcpy(&c, data + 4 * n, 4);
		k = put_utf8(u, c);
		if (o + k >= size)
			break;
		memcpy(out + o, u, k);
		o += k;
	}
	out[o] = '\0';
	return 0;
}

/* A bytes object's contents, bounded: the line tables. */
static int read_bytes(struct sw_pyframes *r, const struct pf_proc *p, uint64_t addr, uint8_t **out,
		      uint32_t *len)
{
	const struct sw_py_layout *L = p->L;
	uint8_t hdr[40];
	int64_t n;
	int err;

	*out = NULL;
	*len = 0;
	if (!addr_ok(addr, 8))
		return -EFAULT;
	err = pc_read(r, p->pid, addr, hdr, (size_t)L->bytes_sval);
	if (err)
		return err;
	if (p->a.bytes_type && get_u64(hdr, 8) != p->a.bytes_type)
		return -EAGAIN;
	n = (int64_t)get_u64(hdr, L->bytes_size);
	if (n < 0 || n > (int64_t)PF_MAX_LINETABLE)
		return -E2BIG;
	*out = malloc(n ? (size_t)n : 1);
	if (!*out)
		return -ENOMEM;
	err = pc_read(r, p->pid, addr + (uint64_t)L->bytes_sval, *out, (size_t)n);
	if (err) {
		free(*out);
		*out = NULL;
		return err;
	}
	*len = (uint32_t)n;
	return 0;
}

/* ---- line numbers: CPython's PyCode_Addr2Line, per table format ---- */

/* 3.9 co_lnotab (Objects/lnotab_notes.txt at v3.9.18): (byte increment,
 * signed line increment) pairs; addrq is f_lasti in bytes. */
static int line_lnotab(const uint8_t *t, uint32_t n, int firstlineno, int addrq)
{
	int line = firstlineno, addr = 0;

	for (uint32_t i = 0; i + 1 < n; i += 2) {
		addr += t[i];
		if (addr > addrq)
			break;
		line += (int8_t)t[i + 1];
	}
	return line;
}

/* 3.10 co_linetable (PEP 626, Objects/lnotab_notes.txt at v3.10.13):
 * (unsigned byte delta of the end, signed line delta) pairs, -128 meaning
 * no line; the range [start, end) holding addrq (bytes) gives the line. */
static int line_310(const uint8_t *t, uint32_t n, int firstlineno, int addrq)
{
	int start = 0, end = 0, line = firstlineno;

	if (addrq < 0)
		return firstlineno;
	for (uint32_t i = 0; i + 1 < n; i += 2) {
		int ldelta = (int8_t)t[i + 1];

		start = end;
		end += t[i];
		if (ldelta != -128)
			line += ldelta;
		if (start <= addrq && addrq < end)
			return ldelta == -128 ? -1 : line;
	}
	return -1;
}

static unsigned scan_varint(const uint8_t *t, uint32_t n, uint32_t *i)
{
	unsigned val = 0, shift = 0;
	uint8_t b;

	do {
		if (*i >= n || shift > 28)
			return 0;
		b = t[(*i)++];
		val |= (unsigned)(b & 63) << shift;
		shift += 6;
	} while (b & 64);
	return val;
}

static int scan_svarint(const uint8_t *t, uint32_t n, uint32_t *i)
{
	unsigned u = scan_varint(t, n, i);

	return (u & 1) ? -(int)(u >> 1) : (int)(u >> 1);
}

/*
 * 3.11+ location table (PEP 657; Objects/locations.md at v3.11.7, the
 * reader being Objects/codeobject.c advance()/get_line_delta()): entries
 * start with a byte with bit 7 set, code (bits 3-6) and length-1 in code
 * units (bits 0-2). Code 15: no location; 14 long form and 13 no-column
 * form: signed varint line delta first; 10-12: one-line forms, delta
 * code-10; 0-9: short forms, same line. addrq in bytes.
 */
static int line_locations(const uint8_t *t, uint32_t n, int firstlineno, int addrq)
{
	int line = firstlineno, end = 0;
	uint32_t i = 0;

	if (addrq < 0)
		return firstlineno;
	while (i < n) {
		uint8_t b = t[i];
		unsigned code = (b >> 3) & 15;
		int start = end, delta = 0, this_line;
		uint32_t j = i + 1;

		if (!(b & 128))
			return -1; /* not at an entry: a corrupt table */
		if (code == 13 || code == 14)
			delta = scan_svarint(t, n, &j);
		else if (code >= 10 && code <= 12)
			delta = (int)code - 10;
		line += delta;
		this_line = code == 15 ? -1 : line;
		end += ((b & 7) + 1) * 2;
		if (start <= addrq && addrq < end)
			return this_line;
		for (i++; i < n && !(t[i] & 128); i++)
			;
	}
	return -1;
}

int sw_py_addr2line(const struct sw_py_layout *L, const uint8_t *table, uint32_t len,
		    int firstlineno, int addrq)
{
	if (L->linetable_kind == SW_PY_LNOTAB)
		return line_lnotab(table, len, firstlineno, addrq);
	if (L->linetable_kind == SW_PY_LINETABLE)
		return line_310(table, len, firstlineno, addrq);
	return line_locations(table, len, firstlineno, addrq);
}

/* ---- threads ---- */

static int refresh_threads(struct sw_pyframes *r, struct pf_proc *p)
{
	const struct sw_py_layout *L = p->L;
	struct sw_py_thread *th;
	size_t n = 0;
	uint64_t head = 0;
	int err;

	r->stats.thread_maps++;
	/* 3.9/3.10 with no tid offset yet: a process with one thread when it
	 * was added may have had two offsets that fit; more threads decide */
	if (L->tstate.native_thread_id == SW_PY_NONE && p->a.pthread_tid < 0 &&
	    !sw_pyframes__pthread_tid_scan(r->t, (pid_t)p->pid, L, p->a.runtime, &p->a.pthread_tid))
		p->note[0] = '\0';
	th = calloc(PF_MAX_THREADS, sizeof(*th));
	if (!th)
		return -ENOMEM;
	err = sw_python_threads(r->t, (pid_t)p->pid, L, p->a.runtime, th, PF_MAX_THREADS, &n);
	if (err && err != -E2BIG)
		goto out;
	err = sw_tio__read_u64(r->t, (pid_t)p->pid, p->interp + (uint64_t)L->interp.threads_head,
			       &head);
	if (err)
		goto out;
	free(p->th);
	p->th = calloc(n ? n : 1, sizeof(*p->th));
	p->n_th = 0;
	if (!p->th) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t tid = th[i].native_id;

		if (L->tstate.native_thread_id == SW_PY_NONE) {
			/* 3.9/3.10: tid from glibc's struct pthread */
			if (p->a.pthread_tid < 0 || !addr_ok(th[i].thread_id, 8) ||
			    sw_tio__read_mem(r->t, (pid_t)p->pid,
					     th[i].thread_id + (uint64_t)p->a.pthread_tid, &tid,
					     sizeof(tid)))
				continue;
		}
		p->th[p->n_th++] = (struct pf_thread){
		    .tid = tid, .tstate = th[i].tstate, .pthread = th[i].thread_id};
	}
	p->th_head = head;
	p->n_miss = 0;
out:
	free(th);
	return err;
}

static struct pf_thread *lookup(struct pf_proc *p, uint32_t tid)
{
	for (size_t i = 0; i < p->n_th; i++)
		if (p->th[i].tid == tid)
			return &p->th[i];
	return NULL;
}

/* The tstate of tid, refreshing the map when tid is unknown (a thread that
 * started since), at most once per change of the thread list. */
static int thread_of(struct sw_pyframes *r, struct pf_proc *p, uint32_t tid, bool force,
		     struct pf_thread *out)
{
	struct pf_thread *th = force ? NULL : lookup(p, tid);
	uint64_t head;
	int err;

	if (th) {
		*out = *th;
		return 0;
	}
	err = sw_tio__read_u64(r->t, (pid_t)p->pid, p->interp + (uint64_t)p->L->interp.threads_head,
			       &head);
	if (err)
		return err;
	if (!force && head == p->th_head)
		for (unsigned i = 0; i < p->n_miss; i++)
			if (p->miss[i] == tid)
				return -ENOENT;
	err = refresh_threads(r, p);
	if (err)
		return err;
	th = lookup(p, tid);
	if (th) {
		*out = *th;
		return 0;
	}
	if (p->n_miss < sizeof(p->miss) / sizeof(p->miss[0]))
		p->miss[p->n_miss++] = tid;
	return -ENOENT;
}

static const struct pf_thread *lookup_tstate(const struct pf_proc *p, uint64_t tstate)
{
	for (size_t i = 0; i < p->n_th; i++)
		if (p->th[i].tstate == tstate)
			return &p->th[i];
	return NULL;
}

/* A process added before its interpreter was initialised is retried. */
static int proc_ready(struct sw_pyframes *r, struct pf_proc *p)
{
	if (p->err == -EAGAIN &&
	    !sw_python_main_interp(r->t, (pid_t)p->pid, p->L, p->a.runtime, &p->interp)) {
		p->err = 0;
		p->note[0] = '\0';
	}
	return p->err;
}

/* pid's process, ready to be read: NULL with *err set when it is not. */
static struct pf_proc *ready(struct sw_pyframes *r, uint32_t pid, int *err)
{
	struct pf_proc *p = find(r, pid);

	*err = p ? proc_ready(r, p) : -ESRCH;
	return *err ? NULL : p;
}

/* Walk p's thread list again if its head moved since the last walk. */
static int sync_proc(struct sw_pyframes *r, struct pf_proc *p, bool *changed)
{
	uint64_t head;
	int err;

	*changed = false;
	err = sw_tio__read_u64(r->t, (pid_t)p->pid, p->interp + (uint64_t)p->L->interp.threads_head,
			       &head);
	if (err || head == p->th_head)
		return err;
	err = refresh_threads(r, p);
	*changed = !err;
	return err;
}

int sw_pyframes__tid_of(struct sw_pyframes *r, uint32_t pid, uint64_t tstate, uint32_t *tid)
{
	const struct pf_thread *th;
	struct pf_proc *p;
	bool changed;
	int err;

	p = ready(r, pid, &err);
	if (!p)
		return err;
	th = lookup_tstate(p, tstate);
	if (!th) {
		/* a new thread: walk the list again, once per change of it */
		err = sync_proc(r, p, &changed);
		if (err)
			return err;
		th = changed ? lookup_tstate(p, tstate) : NULL;
		if (!th)
			return -ENOENT;
	}
	*tid = th->tid;
	return 0;
}

int sw_pyframes__sync_threads(struct sw_pyframes *r, uint32_t pid, bool *changed)
{
	struct pf_proc *p;
	int err;

	*changed = false;
	p = ready(r, pid, &err);
	if (!p)
		return err;
	return sync_proc(r, p, changed);
}

int sw_pyframes__tids(struct sw_pyframes *r, uint32_t pid, uint32_t *tids, size_t max, size_t *n)
{
	struct pf_proc *p;
	int err;

	*n = 0;
	p = ready(r, pid, &err);
	if (!p)
		return err;
	err = refresh_threads(r, p);
	if (err)
		return err;
	for (size_t i = 0; i < p->n_th && *n < max; i++)
		tids[(*n)++] = p->th[i].tid;
	return 0;
}

/*
 * The thread's current frame, from its tstate; the tstate must still be
 * tid's. where: the address the pointer was read from (to read it again at
 * the end).
 */
static int current_frame(struct sw_pyframes *r, struct pf_proc *p, const struct pf_thread *th,
			 uint32_t tid, uint64_t *frame, uint64_t *where)
{
	const struct sw_py_layout *L = p->L;
	const int32_t offs[] = {L->tstate.interp, L->tstate.thread_id, L->tstate.native_thread_id,
				L->tstate.frame,  L->tstate.cframe,    L->tstate.current_frame};
	uint8_t ts[256];
	size_t len = max_end(offs, sizeof(offs) / sizeof(offs[0]), 8);
	uint32_t now_tid;
	int err;

	if (len > sizeof(ts) || !addr_ok(th->tstate, 8))
		return -EFAULT;
	err = pc_read(r, (pid_t)p->pid, th->tstate, ts, len);
	if (err)
		return err;
	if (get_u64(ts, L->tstate.interp) != p->interp)
		return -ESTALE;
	if (L->tstate.native_thread_id != SW_PY_NONE) {
		if ((uint32_t)get_u64(ts, L->tstate.native_thread_id) != tid)
			return -ESTALE;
	} else {
		if (get_u64(ts, L->tstate.thread_id) != th->pthread ||
		    pc_read(r, (pid_t)p->pid, th->pthread + (uint64_t)p->a.pthread_tid, &now_tid,
			    sizeof(now_tid)) ||
		    now_tid != tid)
			return -ESTALE;
	}
	if (L->tstate.frame != SW_PY_NONE) {
		*where = th->tstate + (uint64_t)L->tstate.frame;
		*frame = get_u64(ts, L->tstate.frame);
	} else if (L->tstate.current_frame != SW_PY_NONE) {
		*where = th->tstate + (uint64_t)L->tstate.current_frame;
		*frame = get_u64(ts, L->tstate.current_frame);
	} else {
		/* 3.11/3.12: tstate->cframe->current_frame, the _PyCFrame on the
		 * C stack of the innermost evaluator call */
		uint64_t cf = get_u64(ts, L->tstate.cframe);

		if (!addr_ok(cf, 8))
			return cf ? -EAGAIN : -ENOENT;
		*where = cf + (uint64_t)L->cframe_current_frame;
		err = pc_read(r, (pid_t)p->pid, *where, frame, sizeof(*frame));
		if (err)
			return err;
	}
	return 0;
}

/* ---- frames ---- */

struct pf_raw {
	uint64_t addr, code, instr;
	int32_t lasti;
	uint8_t owner;
	bool is_entry;
};

/* The code object at addr: decoded strings and line table, cached while the
 * object points at the same things. hdr: its fixed fields, read now. */
static int code_info(struct sw_pyframes *r, struct pf_proc *p, uint64_t addr, const uint8_t *hdr,
		     struct pf_code **out)
{
	const struct sw_py_layout *L = p->L;
	/* Fibonacci hashing of the address: code objects are 16-aligned */
	size_t h = (size_t)((addr * 0x9e3779b97f4a7c15ull) >> 55) % PF_CODES;
	struct pf_code *c = NULL;
	uint64_t name =
	    get_u64(hdr, L->code.qualname != SW_PY_NONE ? L->code.qualname : L->code.name);
	uint64_t filename = get_u64(hdr, L->code.filename);
	uint64_t linetable = get_u64(hdr, L->code.linetable);
	int32_t first = get_i32(hdr, L->code.firstlineno);
	int err;

	for (size_t i = 0; i < PF_PROBE; i++) {
		struct pf_code *s = &p->codes[(h + i) % PF_CODES];

		if (s->addr == addr && s->name == name && s->filename == filename &&
		    s->linetable == linetable && s->firstlineno == first) {
			*out = s;
			return 0;
		}
		if (!c && (!s->addr || s->addr == addr))
			c = s;
	}
	if (!c) /* all taken: the last of the run goes, the next miss another */
		c = &p->codes[(h + (p->evict++ % PF_PROBE)) % PF_CODES];
	free(c->lt);
	memset(c, 0, sizeof(*c));
	err = read_str(r, p, name, c->func, sizeof(c->func), false);
	if (!err)
		err = read_str(r, p, filename, c->file, sizeof(c->file), true);
	if (err)
		return err;
	/* a table we cannot read costs the line (0), not the frame */
	c->lt_ok = read_bytes(r, p, linetable, &c->lt, &c->lt_len) == 0;
	c->addr = addr;
	c->name = name;
	c->filename = filename;
	c->linetable = linetable;
	c->firstlineno = first;
	*out = c;
	return 0;
}

static int read_raw_chain(struct sw_pyframes *r, struct pf_proc *p, uint64_t top,
			  struct pf_raw *raw, size_t *n, bool *more)
{
	const struct sw_py_layout *L = p->L;
	const int32_t offs[] = {L->frame.code, L->frame.previous, L->frame.instr};
	size_t len = max_end(offs, 3, 8);
	uint64_t f = top;
	uint8_t fb[128];
	int err;

	*n = 0;
	*more = false;
	if (L->frame.owner != SW_PY_NONE && (size_t)L->frame.owner + 1 > len)
		len = (size_t)L->frame.owner + 1;
	if (len > sizeof(fb))
		return -EINVAL;
	while (f) {
		struct pf_raw *x;

		if (*n == PF_MAX_RAW) {
			*more = true;
			break;
		}
		if (!addr_ok(f, 8))
			return -EAGAIN;
		for (size_t i = 0; i < *n; i++)
			if (raw[i].addr == f)
				return -EAGAIN; /* a cycle: the chain moved */
		err = pc_read(r, (pid_t)p->pid, f, fb, len);
		if (err)
			return err;
		x = &raw[(*n)++];
		x->addr = f;
		x->code = get_u64(fb, L->frame.code);
		if (L->frame_kind == SW_PY_FRAME_OBJECT)
			x->lasti = get_i32(fb, L->frame.instr);
		else
			x->instr = get_u64(fb, L->frame.instr);
		x->owner = L->frame.owner != SW_PY_NONE ? fb[L->frame.owner] : 0;
		x->is_entry = L->frame.is_entry != SW_PY_NONE && fb[L->frame.is_entry];
		f = get_u64(fb, L->frame.previous);
	}
	return 0;
}

static bool is_shim(const struct sw_py_layout *L, const struct pf_raw *x)
{
	return L->frame.owner_cstack != SW_PY_NONE && x->owner == (uint8_t)L->frame.owner_cstack;
}

/* One raw frame to out->f[out->n], or skipped (*skip) as CPython's
 * _PyFrame_IsIncomplete would. */
static int emit(struct sw_pyframes *r, struct pf_proc *p, const struct pf_raw *x, bool entry,
		struct sw_py_stack *out)
{
	const struct sw_py_layout *L = p->L;
	const int32_t offs[] = {L->code.name,	     L->code.qualname,	L->code.filename,
				L->code.firstlineno, L->code.linetable, L->code.firsttraceable,
				L->bytes_size};
	size_t len = max_end(offs, sizeof(offs) / sizeof(offs[0]), 8);
	struct sw_py_frame *o = &out->f[out->n];
	struct pf_code *c;
	uint8_t hdr[256];
	int addrq, line;
	int err;

	if (!addr_ok(x->code, 8) || len > sizeof(hdr))
		return -EAGAIN;
	err = pc_read(r, (pid_t)p->pid, x->code, hdr, len);
	if (err)
		return err;
	if (p->a.code_type && get_u64(hdr, 8) != p->a.code_type)
		return -EAGAIN;
	if (L->frame_kind == SW_PY_FRAME_OBJECT) {
		if (x->lasti < -1)
			return -EAGAIN;
		addrq = L->instr_kind == SW_PY_INSTR_LASTI_UNITS ? x->lasti * 2 : x->lasti;
	} else {
		uint64_t code0 = x->code + (uint64_t)L->code.code;
		/* PyVarObject: Py_SIZE(code) is its length in code units */
		int64_t units = (int64_t)get_u64(hdr, L->bytes_size);
		int64_t d = (int64_t)(x->instr - code0);

		if ((d & 1) || units < 0 || d < -2 || d > 2 * units)
			return -EAGAIN; /* instr is not inside this code */
		/* incomplete: before the first traceable instruction, a
		 * frame in its prologue, hidden by CPython (the entry one is
		 * kept: it stands for its C call of the evaluator) */
		if (x->owner != PF_OWNED_BY_GENERATOR && !entry &&
		    d / 2 < get_i32(hdr, L->code.firsttraceable))
			return 1;
		addrq = (int)d;
	}
	err = code_info(r, p, x->code, hdr, &c);
	if (err)
		return err;
	snprintf(o->func, sizeof(o->func), "%s", c->func);
	snprintf(o->file, sizeof(o->file), "%s", c->file);
	line = c->lt_ok ? sw_py_addr2line(L, c->lt, c->lt_len, c->firstlineno, addrq) : -1;
	o->line = line > 0 ? (uint32_t)line : 0;
	o->entry = entry;
	out->n++;
	return 0;
}

static int walk(struct sw_pyframes *r, struct pf_proc *p, uint64_t top, struct sw_py_stack *out)
{
	const struct sw_py_layout *L = p->L;
	struct pf_raw *raw = malloc(PF_MAX_RAW * sizeof(*raw));
	size_t n;
	bool more;
	int err;

	if (!raw)
		return -ENOMEM;
	err = read_raw_chain(r, p, top, raw, &n, &more);
	if (!err) {
		uint64_t at[PF_PAGES] = {0};
		size_t len[PF_PAGES] = {0}, k = 0;

		for (size_t i = 0; i < n && k < PF_PAGES; i++)
			if (!is_shim(L, &raw[i])) {
				at[k] = raw[i].code;
				len[k++] = 192; /* the fixed fields emit() reads */
			}
		pc_prefetch(r, (pid_t)p->pid, at, len, k);
	}
	for (size_t i = 0; !err && i < n; i++) {
		bool entry;

		if (is_shim(L, &raw[i]))
			continue;
		if (L->frame_kind == SW_PY_FRAME_OBJECT)
			entry = true; /* 3.9/3.10: one C call of the evaluator per frame */
		else if (L->frame.is_entry != SW_PY_NONE)
			entry = raw[i].is_entry; /* 3.11 */
		else /* 3.12+: _PyEval_EvalFrameDefault pushes a shim first */
			entry = i + 1 < n && is_shim(L, &raw[i + 1]);
		if (out->n == SW_PY_MAX_FRAMES) {
			out->truncated = true;
			break;
		}
		err = emit(r, p, &raw[i], entry, out);
		if (err == 1)
			err = 0;
	}
	if (!err && more)
		out->truncated = true;
	free(raw);
	return err;
}

static int read_stack(struct sw_pyframes *r, uint32_t pid, uint32_t tid, struct sw_py_stack *out)
{
	struct pf_proc *p = find(r, pid);
	struct pf_thread th;
	uint64_t top = 0, where = 0, again = 0;
	int32_t gc = 0;
	int err;

	out->n = 0;
	out->truncated = false;
	out->gc_collecting = false;
	if (!p)
		return -ESRCH;
	if (proc_ready(r, p))
		return p->err;
	pc_reset(r);
	err = thread_of(r, p, tid, false, &th);
	if (!err) {
		/* what the start of the read needs, in one call: the tstate,
		 * gc.collecting, 3.9/3.10's struct pthread */
		uint64_t at[3] = {th.tstate, p->interp + (uint64_t)p->L->interp.gc_collecting,
				  th.pthread + (uint64_t)p->a.pthread_tid};
		size_t len[3] = {256, 4, 4};

		pc_prefetch(r, (pid_t)pid, at, len,
			    p->L->tstate.native_thread_id == SW_PY_NONE ? 3 : 2);
		err = current_frame(r, p, &th, tid, &top, &where);
		if (err == -ESTALE) {
			/* the tstate went to another thread: map again, once */
			err = thread_of(r, p, tid, true, &th);
			if (!err)
				err = current_frame(r, p, &th, tid, &top, &where);
			if (err == -ESTALE)
				err = -EAGAIN;
		}
	}
	if (err)
		return err;
	if (!top)
		return -ENOENT; /* a Python thread running no Python code */
	if (p->L->interp.gc_collecting != SW_PY_NONE &&
	    !pc_read(r, (pid_t)pid, p->interp + (uint64_t)p->L->interp.gc_collecting, &gc,
		     sizeof(gc)))
		out->gc_collecting = gc != 0;
	err = walk(r, p, top, out);
	/* the chain read must still be the thread's: read its head again,
	 * from memory, not from this read's pages */
	if (sw_tio__read_u64(r->t, (pid_t)pid, where, &again) || again != top)
		err = -EAGAIN;
	if (err)
		out->n = 0;
	return err;
}

int sw_pyframes__read(struct sw_pyframes *r, uint32_t pid, uint32_t tid, struct sw_py_stack *out)
{
	int err = read_stack(r, pid, tid, out);

	r->stats.reads++;
	if (!err)
		r->stats.ok++;
	else if (err == -EAGAIN)
		r->stats.changed++;
	else if (err == -EFAULT)
		r->stats.faults++;
	else if (err == -ENOENT)
		r->stats.no_python++;
	else
		r->stats.other++;
	return err;
}

void sw_pyframes__stats(const struct sw_pyframes *r, struct sw_pyframes_stats *out)
{
	*out = r->stats;
}

/* ---- adding a process ---- */

/* glibc's own description of struct pthread's tid, for libthread_db:
 * _thread_db_pthread_tid = {bits 32, count 1, byte offset} (nptl/db_info.c,
 * nptl_db/structs.def; GLIBC_PRIVATE in libc.so.6's .dynsym since 2.34, in
 * libpthread before). Read from the file, not from the target. */
static int pthread_tid_offset(struct sw_tio *t, pid_t pid, int32_t *off)
{
	static const char *const libs[] = {"libc.so", "libc-", "libpthread.so", "libpthread-"};
	char lib[PATH_MAX], path[PATH_MAX + 300];
	struct sw_elf_sym sym;
	uint32_t desc[3];

	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		int fd;
		ssize_t got;

		sw_proc_find_lib(t, pid, libs[i], lib, sizeof(lib));
		if (!lib[0])
			continue;
		snprintf(path, sizeof(path), "%s/%d/root%s", t->root, pid, lib);
		if (sw_elf_find_symbol(path, "_thread_db_pthread_tid", &sym) || !sym.file_off ||
		    sym.size < sizeof(desc))
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		got = pread(fd, desc, sizeof(desc), (off_t)sym.file_off);
		close(fd);
		if (got == (ssize_t)sizeof(desc) && desc[0] == 32 && desc[1] == 1 &&
		    desc[2] < 4096) {
			*off = (int32_t)desc[2];
			return 0;
		}
	}
	return -ENOENT;
}

#define PF_SCAN_BYTES 1024
#define PF_SCAN_THREADS 64
#define PF_SCAN_TIDS 4096

static bool in_set(const uint32_t *set, size_t n, uint32_t v)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == v)
			return true;
	return false;
}

int sw_pyframes__pthread_tid_scan(struct sw_tio *t, pid_t pid, const struct sw_py_layout *L,
				  uint64_t runtime, int32_t *off)
{
	struct sw_py_thread th[PF_SCAN_THREADS];
	uint8_t(*mem)[PF_SCAN_BYTES] = NULL;
	uint32_t *tids = NULL;
	size_t n = 0, n_tids = 0, len[PF_SCAN_THREADS];
	int found = -1, err;
	struct dirent *de;
	char rel[32];
	DIR *d;

	if (!L)
		return -ENOTSUP;
	err = sw_python_threads(t, pid, L, runtime, th, PF_SCAN_THREADS, &n);
	if ((err && err != -E2BIG) || !n)
		return err ? err : -ENOENT;
	snprintf(rel, sizeof(rel), "%d/task", pid);
	d = sw_tio__open_dir(t, rel);
	if (!d)
		return -errno;
	tids = calloc(PF_SCAN_TIDS, sizeof(*tids));
	mem = calloc(n, sizeof(*mem));
	if (!tids || !mem) {
		err = -ENOMEM;
		goto out;
	}
	while ((de = readdir(d)) && n_tids < PF_SCAN_TIDS) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (!*end && tid > 0)
			tids[n_tids++] = (uint32_t)tid;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t a = th[i].thread_id;

		len[i] = PF_SCAN_BYTES;
		if (!addr_ok(a, 8)) {
			err = -EFAULT;
			goto out;
		}
		/* a small struct pthread (musl) may end its mapping: then
		 * read to the end of its page */
		if (sw_tio__read_mem(t, pid, a, mem[i], len[i])) {
			len[i] = PF_PAGE - (a & (PF_PAGE - 1));
			if (len[i] > PF_SCAN_BYTES)
				len[i] = PF_SCAN_BYTES;
			err = sw_tio__read_mem(t, pid, a, mem[i], len[i]);
			if (err)
				goto out;
		}
	}
	for (size_t x = 0; x + 4 <= PF_SCAN_BYTES; x += 4) {
		bool fits = true, main_seen = false;

		for (size_t i = 0; i < n && fits; i++) {
			uint32_t v;

			if (x + 4 > len[i]) {
				fits = false;
				break;
			}
			memcpy(&v, mem[i] + x, 4);
			fits = in_set(tids, n_tids, v);
			main_seen |= v == (uint32_t)pid;
			for (size_t k = 0; k < i && fits; k++)
				fits = memcmp(mem[k] + x, mem[i] + x, 4) != 0;
		}
		if (!fits || !main_seen)
			continue;
		if (found >= 0) {
			err = -ENOENT; /* two offsets fit: trust neither */
			goto out;
		}
		found = (int)x;
	}
	err = found >= 0 ? 0 : -ENOENT;
	if (!err)
		*off = found;
out:
	closedir(d);
	free(tids);
	free(mem);
	return err;
}

static struct pf_proc *new_proc(struct sw_pyframes *r, uint32_t pid)
{
	struct pf_proc *p;

	sw_pyframes__remove_process(r, pid);
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->pid = pid;
	p->next = r->procs;
	r->procs = p;
	return p;
}

static int add(struct sw_pyframes *r, struct pf_proc *p, const struct sw_proc_info *pi,
	       const struct sw_py_addrs *a)
{
	int err;

	p->a = *a;
	p->codes = calloc(PF_CODES, sizeof(*p->codes));
	if (!p->codes)
		return p->err = -ENOMEM;
	err = sw_python_main_interp(r->t, (pid_t)p->pid, p->L, a->runtime, &p->interp);
	if (err == -EAGAIN) {
		/* not initialised yet (or finalising): reads try again */
		snprintf(p->note, sizeof(p->note),
			 "pid %u: CPython %s has no main interpreter yet: Python frames are read "
			 "once it has",
			 p->pid, pi->version);
		p->err = err;
		return 0;
	}
	if (err) {
		snprintf(
		    p->note, sizeof(p->note),
		    "pid %u: CPython %s: no main interpreter at _PyRuntime 0x%llx (%s): Python "
		    "frames are not read; if it is still starting, attach again",
		    p->pid, pi->version, (unsigned long long)a->runtime, strerror(-err));
		return p->err = err;
	}
	if (p->L->tstate.native_thread_id == SW_PY_NONE && a->pthread_tid < 0)
		snprintf(p->note, sizeof(p->note),
			 "pid %u: CPython %s keeps no kernel tid per thread and its libc has no "
			 "_thread_db_pthread_tid (not glibc?): Python frames cannot be matched to "
			 "threads",
			 p->pid, pi->version);
	return 0;
}

int sw_pyframes__add_process_at(struct sw_pyframes *r, const struct sw_proc_info *pi,
				const struct sw_py_addrs *a)
{
	struct pf_proc *p = new_proc(r, (uint32_t)pi->pid);

	if (!p)
		return -ENOMEM;
	p->L = sw_python_layout_of(pi);
	if (!p->L) {
		unsigned major = 0, minor = 0;

		sscanf(pi->version, "%u.%u", &major, &minor);
		if (pi->runtime == SW_RT_PYTHON && !pi->free_threaded && major == 3 && minor > 13)
			snprintf(p->note, sizeof(p->note),
				 "pid %d: CPython %s is newer than the layout table (3.9 to 3.13): "
				 "Python frames are not read; a row for %u.%u must be added to "
				 "agent/runtime/python.c and checked against a debug build with "
				 "scripts/py-layout-dwarf.sh",
				 pi->pid, pi->version, major, minor);
		else if (pi->runtime == SW_RT_PYTHON && !pi->free_threaded && major == 3 &&
			 minor < 9)
			snprintf(p->note, sizeof(p->note),
				 "pid %d: CPython %s is older than the layout table (3.9 to 3.13): "
				 "Python frames are not read; they are for 3.9 and later",
				 pi->pid, pi->version);
		else
			sw_python_layout_error(pi, p->note, sizeof(p->note));
		return p->err = -ENOTSUP;
	}
	return add(r, p, pi, a);
}

int sw_pyframes__add_process(struct sw_pyframes *r, const struct sw_proc_info *pi)
{
	struct sw_py_addrs a = {.pthread_tid = -1};
	struct pf_proc *p;
	int err;

	if (!sw_python_layout_of(pi))
		return sw_pyframes__add_process_at(r, pi, &a);
	err = sw_python_runtime_addr(r->t, pi, &a.runtime);
	if (err) {
		p = new_proc(r, (uint32_t)pi->pid);
		if (!p)
			return -ENOMEM;
		snprintf(p->note, sizeof(p->note),
			 "pid %d: no _PyRuntime symbol in %.160s (%s): Python frames are not read",
			 pi->pid, pi->runtime_lib[0] ? pi->runtime_lib : pi->exe, strerror(-err));
		return p->err = err;
	}
	/* exported data of the C API, in .dynsym of a stripped build too;
	 * a missing one only loses that check */
	if (sw_python_symbol_addr(r->t, pi, "PyCode_Type", &a.code_type))
		a.code_type = 0;
	if (sw_python_symbol_addr(r->t, pi, "PyUnicode_Type", &a.unicode_type))
		a.unicode_type = 0;
	if (sw_python_symbol_addr(r->t, pi, "PyBytes_Type", &a.bytes_type))
		a.bytes_type = 0;
	if (sw_python_layout_of(pi)->tstate.native_thread_id == SW_PY_NONE &&
	    pthread_tid_offset(r->t, pi->pid, &a.pthread_tid) &&
	    sw_pyframes__pthread_tid_scan(r->t, pi->pid, sw_python_layout_of(pi), a.runtime,
					  &a.pthread_tid))
		a.pthread_tid = -1;
	return sw_pyframes__add_process_at(r, pi, &a);
}
