// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <elfutils/libdwfl.h>
#include "bpf/stacks.h"
#include "clock.h"
#include "log.h"
#include "perfmap.h"
#include "target_io.h"
#include "unwind.h"

/* libstdc++'s demangler (the Itanium C++ ABI's), linked with -lstdc++. */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

/* A PC outside every known mapping re-reads /proc/PID/maps at most this
 * often: JIT code and a loaded library look alike until maps says. */
#define MAPS_REFRESH_NS 1000000000ull
/* The perf map is checked for growth at most this often (a stat, and a read
 * of what was appended). 200 ms left a function V8 recompiled in the middle
 * of a 250 ms block as [jit] in 73 % of its samples: each sample is named
 * when it arrives, and the misses after one refresh stayed misses. */
#define PERFMAP_REFRESH_NS 5000000ull

/*
 * A module's function symbols sorted by address. libdwfl's
 * dwfl_module_addrinfo scans the whole symbol table for every lookup
 * (addrsym's search_table): with node's 154,000 functions an incident's
 * few hundred frames took 0.3-0.7 s to name on this VM, long enough to
 * delay the next tick's ongoing reports. Built once per module, at its
 * first lookup; names point into the module's ELF, which lives as long as
 * the Dwfl.
 */
struct uw_sym {
	uint64_t addr, size;
	const char *name;
};

struct uw_symtab {
	size_t n;
	struct uw_sym s[];
};

struct uw_map {
	uint64_t start, end;
	bool file; /* a file mapping (else anonymous: JIT, [vdso]...) */
	char *name;
};

struct uw_proc {
	uint32_t pid;
	uint32_t nspid;
	Dwfl *dwfl;
	struct uw_map *maps;
	size_t n_maps;
	uint64_t maps_read_ns;
	struct sw_perfmap *perfmap;
	uint64_t perfmap_checked_ns;
	bool unnamed_jit;
	/* the sample being unwound, for the callbacks */
	struct sw_unwind *u;
	const uint64_t *regs;
	uint64_t base;
	const uint8_t *stack;
	size_t len;
};

struct sw_unwind {
	struct sw_tio *t;
	struct uw_proc **procs;
	size_t n_procs;
	struct sw_jit_namer namer;
	uint64_t live_reads, live_faults;
};

static int no_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
			char **debuginfo_file_name)
{
	(void)mod, (void)userdata, (void)modname, (void)base, (void)file_name;
	(void)debuglink_file, (void)debuglink_crc, (void)debuginfo_file_name;
	/* symtab, dynsym and .eh_frame are all we use: no debuginfod, no
	 * search of /usr/lib/debug on the target's behalf */
	return -1;
}

static int no_elf(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
		  char **file_name, Elf **elfp)
{
	(void)mod, (void)userdata, (void)modname, (void)base, (void)file_name, (void)elfp;
	return -1; /* every module is reported with its file */
}

static const Dwfl_Callbacks dwfl_cbs = {
	.find_elf = no_elf,
	.find_debuginfo = no_debuginfo,
};

static pid_t cb_next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	(void)dwfl, (void)arg, (void)thread_argp;
	return 0; /* only asked for one thread, by tid */
}

static bool cb_get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	(void)dwfl, (void)tid;
	*thread_argp = arg;
	return true;
}

static bool cb_memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct uw_proc *p = arg;
	struct sw_unwind *u = p->u;

	(void)dwfl;
	if (addr >= p->base && addr - p->base + sizeof(*result) <= p->len) {
		memcpy(result, p->stack + (addr - p->base), sizeof(*result));
		return true;
	}
	/* beyond the copy: the callers of a blocked frame stay put */
	u->live_reads++;
	if (sw_tio__read_mem(u->t, (pid_t)p->pid, addr, result, sizeof(*result))) {
		u->live_faults++;
		return false;
	}
	return true;
}

static bool cb_set_initial_registers(Dwfl_Thread *thread, void *arg)
{
	struct uw_proc *p = arg;

	if (!dwfl_thread_state_registers(thread, 0, SW_STK_NREGS, p->regs))
		return false;
	dwfl_thread_state_register_pc(thread, p->regs[SW_STK_REG_IP]);
	return true;
}

static const Dwfl_Thread_Callbacks thread_cbs = {
	.next_thread = cb_next_thread,
	.get_thread = cb_get_thread,
	.memory_read = cb_memory_read,
	.set_initial_registers = cb_set_initial_registers,
};

struct sw_unwind *sw_unwind__new(struct sw_tio *t)
{
	struct sw_unwind *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	u->t = t;
	return u;
}

static void free_maps(struct uw_proc *p)
{
	for (size_t i = 0; i < p->n_maps; i++)
		free(p->maps[i].name);
	free(p->maps);
	p->maps = NULL;
	p->n_maps = 0;
}

static int free_symtab(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
		       void *arg)
{
	(void)mod, (void)name, (void)start, (void)arg;
	free(*userdata);
	*userdata = NULL;
	return DWARF_CB_OK;
}

static void end_dwfl(Dwfl *d)
{
	if (!d)
		return;
	dwfl_getmodules(d, free_symtab, NULL, 0);
	dwfl_end(d);
}

static void proc_free(struct uw_proc *p)
{
	if (!p)
		return;
	end_dwfl(p->dwfl);
	free_maps(p);
	sw_perfmap__free(p->perfmap);
	free(p);
}

void sw_unwind__free(struct sw_unwind *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->n_procs; i++)
		proc_free(u->procs[i]);
	free(u->procs);
	free(u);
}

void sw_unwind__set_jit_namer(struct sw_unwind *u, const struct sw_jit_namer *namer)
{
	if (namer)
		u->namer = *namer;
	else
		memset(&u->namer, 0, sizeof(u->namer));
}

void sw_unwind__forget(struct sw_unwind *u, uint32_t pid)
{
	for (size_t i = 0; i < u->n_procs; i++)
		if (u->procs[i]->pid == pid) {
			proc_free(u->procs[i]);
			u->procs[i] = u->procs[--u->n_procs];
			return;
		}
}

void sw_unwind_perfmap_path(uint32_t pid, uint32_t nspid, char *out, size_t len)
{
	snprintf(out, len, "/proc/%u/root/tmp/perf-%u.map", pid, nspid ? nspid : pid);
}

/* The pid in the process's own namespace: the last NSpid field. */
static uint32_t read_nspid(struct sw_tio *t, uint32_t pid)
{
	char rel[64], buf[4096], *s;
	unsigned long v = pid;

	snprintf(rel, sizeof(rel), "%u/status", pid);
	if (sw_tio__read_file(t, rel, buf, sizeof(buf)))
		return pid;
	s = strstr(buf, "\nNSpid:");
	if (!s)
		return pid;
	s += 7;
	for (;;) {
		char *end;
		unsigned long x;

		while (*s == ' ' || *s == '\t')
			s++;
		x = strtoul(s, &end, 10);
		if (end == s)
			break;
		v = x;
		s = end;
	}
	return (uint32_t)v;
}

/* Exec mappings of pid, and the load address (offset-0 mapping) of each
 * file among them, from /proc/PID/maps. */
static int read_maps(struct sw_unwind *u, struct uw_proc *p)
{
	char rel[64], line[PATH_MAX + 128];
	struct uw_map *nm;
	size_t cap = 0;
	FILE *f;

	free_maps(p);
	snprintf(rel, sizeof(rel), "%u/maps", p->pid);
	f = sw_tio__open_file(u->t, rel);
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off;
		char perms[8], path[PATH_MAX];
		int n;

		path[0] = 0;
		n = sscanf(line, "%llx-%llx %7s %llx %*s %*s %4095[^\n]", &start, &end, perms, &off,
			   path);
		if (n < 4 || perms[2] != 'x')
			continue;
		if (p->n_maps == cap) {
			cap = cap ? cap * 2 : 64;
			nm = realloc(p->maps, cap * sizeof(*nm));
			if (!nm)
				break;
			p->maps = nm;
		}
		nm = &p->maps[p->n_maps];
		nm->start = start;
		nm->end = end;
		nm->file = path[0] == '/' && !strstr(path, " (deleted)");
		nm->name = strdup(path);
		if (!nm->name)
			break;
		p->n_maps++;
	}
	fclose(f);
	return 0;
}

/* Where the file is mapped at offset 0: dwfl_report_elf's base. */
static int file_base(struct sw_unwind *u, uint32_t pid, const char *path, uint64_t *base)
{
	char rel[64], line[PATH_MAX + 128];
	int err = -ENOENT;
	FILE *f;

	snprintf(rel, sizeof(rel), "%u/maps", pid);
	f = sw_tio__open_file(u->t, rel);
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, off;
		char p2[PATH_MAX];

		if (sscanf(line, "%llx-%*x %*s %llx %*s %*s %4095[^\n]", &start, &off, p2) == 3 &&
		    off == 0 && !strcmp(p2, path)) {
			*base = start;
			err = 0;
			break;
		}
	}
	fclose(f);
	return err;
}

static int build_dwfl(struct sw_unwind *u, struct uw_proc *p)
{
	Dwfl *d;
	int reported = 0;

	end_dwfl(p->dwfl);
	p->dwfl = NULL;
	d = dwfl_begin(&dwfl_cbs);
	if (!d)
		return -ENOMEM;
	dwfl_report_begin(d);
	for (size_t i = 0; i < p->n_maps; i++) {
		const struct uw_map *m = &p->maps[i];
		char elf_path[PATH_MAX + 64];
		uint64_t base = 0;
		bool dup = false;

		if (!m->file)
			continue;
		for (size_t j = 0; j < i && !dup; j++)
			dup = p->maps[j].file && !strcmp(p->maps[j].name, m->name);
		if (dup || file_base(u, p->pid, m->name, &base))
			continue;
		/* the target's file in its own mount namespace */
		snprintf(elf_path, sizeof(elf_path), "%s/%u/root%s", u->t->root, p->pid, m->name);
		if (dwfl_report_elf(d, m->name, elf_path, -1, base, false))
			reported++;
		else
			sw_dbg("pid %u: cannot read %s for unwinding: %s", p->pid, elf_path,
			       dwfl_errmsg(-1));
	}
	dwfl_report_end(d, NULL, NULL);
	if (!reported || !dwfl_attach_state(d, NULL, (pid_t)p->pid, &thread_cbs, p)) {
		sw_dbg("pid %u: no unwinder: %s", p->pid, reported ? dwfl_errmsg(-1) : "no ELF");
		end_dwfl(d);
		return -ENOENT;
	}
	p->dwfl = d;
	return 0;
}

static struct uw_proc *get_proc(struct sw_unwind *u, uint32_t pid)
{
	struct uw_proc *p, **np;
	char path[PATH_MAX];

	for (size_t i = 0; i < u->n_procs; i++)
		if (u->procs[i]->pid == pid)
			return u->procs[i];
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->pid = pid;
	p->u = u;
	p->nspid = read_nspid(u->t, pid);
	sw_unwind_perfmap_path(pid, p->nspid, path, sizeof(path));
	p->perfmap = sw_perfmap__new(path);
	np = realloc(u->procs, (u->n_procs + 1) * sizeof(*np));
	if (!np || !p->perfmap) {
		proc_free(p);
		return NULL;
	}
	u->procs = np;
	if (read_maps(u, p) || build_dwfl(u, p)) {
		proc_free(p);
		return NULL;
	}
	p->maps_read_ns = sw_mono_ns();
	u->procs[u->n_procs++] = p;
	return p;
}

static const struct uw_map *find_map(const struct uw_proc *p, uint64_t pc)
{
	for (size_t i = 0; i < p->n_maps; i++)
		if (pc >= p->maps[i].start && pc < p->maps[i].end)
			return &p->maps[i];
	return NULL;
}

struct frames_ctx {
	uint64_t *pcs;
	bool *is_return;
	int n, max;
};

static int on_frame(Dwfl_Frame *state, void *arg)
{
	struct frames_ctx *fc = arg;
	Dwarf_Addr pc;
	bool act;

	if (!dwfl_frame_pc(state, &pc, &act) || !pc)
		return DWARF_CB_ABORT;
	fc->pcs[fc->n] = pc;
	fc->is_return[fc->n] = !act;
	fc->n++;
	return fc->n < fc->max ? DWARF_CB_OK : DWARF_CB_ABORT;
}

/* A PC in no mapping we know: a library loaded since, or new JIT code
 * (anonymous, not worth a rebuild). Rebuild only for a new file. */
static void maybe_refresh(struct sw_unwind *u, struct uw_proc *p, const uint64_t *pcs, int n)
{
	uint64_t now = sw_mono_ns();
	const struct uw_map *m;
	bool unknown = false;

	for (int i = 0; i < n && !unknown; i++)
		unknown = !find_map(p, pcs[i]);
	if (!unknown || now - p->maps_read_ns < MAPS_REFRESH_NS)
		return;
	p->maps_read_ns = now;
	if (read_maps(u, p))
		return;
	for (int i = 0; i < n; i++) {
		m = find_map(p, pcs[i]);
		if (m && m->file && !dwfl_addrmodule(p->dwfl, pcs[i])) {
			sw_dbg("pid %u: new mapping %s: rebuilding its unwinder", p->pid, m->name);
			build_dwfl(u, p);
			return;
		}
	}
}

int sw_unwind__stack(struct sw_unwind *u, uint32_t pid, uint32_t tid, const uint64_t *regs,
		     uint64_t base, const void *stack, size_t len, uint64_t *pcs, bool *is_return,
		     int max)
{
	struct frames_ctx fc = { pcs, is_return, 0, max };
	struct uw_proc *p;

	if (max < 1)
		return -EINVAL;
	p = get_proc(u, pid);
	if (!p || !p->dwfl) {
		pcs[0] = regs[SW_STK_REG_IP];
		is_return[0] = false;
		return p ? 1 : -ENOENT;
	}
	p->regs = regs;
	p->base = base;
	p->stack = stack;
	p->len = len;
	dwfl_getthread_frames(p->dwfl, (pid_t)tid, on_frame, &fc);
	p->stack = NULL;
	p->len = 0;
	if (!fc.n) {
		pcs[0] = regs[SW_STK_REG_IP];
		is_return[0] = false;
		fc.n = 1;
	}
	maybe_refresh(u, p, pcs, fc.n);
	return fc.n;
}

static Dwfl_Module *module_at(struct uw_proc *p, uint64_t addr)
{
	return p->dwfl ? dwfl_addrmodule(p->dwfl, addr) : NULL;
}

static int cmp_sym(const void *a, const void *b)
{
	const struct uw_sym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* at one address, the sized symbol first (an alias without size is
	 * a label) */
	return (x->size < y->size) - (x->size > y->size);
}

static struct uw_symtab *module_symtab(Dwfl_Module *mod)
{
	struct uw_symtab *t;
	void **ud;
	int n, k = 0;

	dwfl_module_info(mod, &ud, NULL, NULL, NULL, NULL, NULL, NULL);
	if (*ud)
		return *ud;
	n = dwfl_module_getsymtab(mod);
	t = malloc(sizeof(*t) + (size_t)(n > 0 ? n : 0) * sizeof(t->s[0]));
	if (!t)
		return NULL;
	for (int i = 1; i < n; i++) {
		GElf_Sym sym;
		GElf_Addr addr;
		const char *name = dwfl_module_getsym_info(mod, i, &sym, &addr, NULL, NULL, NULL);
		int type = GELF_ST_TYPE(sym.st_info);

		if (!name || !name[0] || sym.st_shndx == SHN_UNDEF ||
		    (type != STT_FUNC && type != STT_GNU_IFUNC))
			continue;
		t->s[k++] = (struct uw_sym){ addr, sym.st_size, name };
	}
	t->n = (size_t)k;
	qsort(t->s, t->n, sizeof(t->s[0]), cmp_sym);
	*ud = t;
	return t;
}

/* The function symbol holding addr, or NULL. */
static const char *module_sym(Dwfl_Module *mod, uint64_t addr)
{
	struct uw_symtab *t = module_symtab(mod);
	size_t lo = 0, hi;

	if (!t)
		return NULL;
	hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->s[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* the last symbol at or below addr; of several at its address, the
	 * first sorted is the sized one */
	if (!lo)
		return NULL;
	{
		uint64_t a = t->s[lo - 1].addr;

		while (lo > 1 && t->s[lo - 2].addr == a)
			lo--;
	}
	if (t->s[lo - 1].size && addr >= t->s[lo - 1].addr + t->s[lo - 1].size)
		return NULL; /* in a gap between functions */
	return t->s[lo - 1].name;
}

const char *sw_unwind__symbol(struct sw_unwind *u, uint32_t pid, uint64_t pc, bool is_return)
{
	uint64_t addr = is_return ? pc - 1 : pc;
	struct uw_proc *p = get_proc(u, pid);
	Dwfl_Module *mod;

	if (!p || !(mod = module_at(p, addr)))
		return NULL;
	return module_sym(mod, addr);
}

static const char *jit_name(struct sw_unwind *u, struct uw_proc *p, uint64_t pc, char *buf,
			    size_t len)
{
	uint64_t now;
	const char *n;

	if (u->namer.name && u->namer.name(u->namer.ctx, p->pid, pc, buf, len) == 0)
		return buf;
	n = sw_perfmap__lookup(p->perfmap, pc);
	if (!n) {
		/* maybe written since: the map grows as node compiles */
		now = sw_mono_ns();
		if (now - p->perfmap_checked_ns >= PERFMAP_REFRESH_NS) {
			p->perfmap_checked_ns = now;
			sw_perfmap__refresh(p->perfmap);
			n = sw_perfmap__lookup(p->perfmap, pc);
		}
	}
	if (!n)
		return NULL;
	snprintf(buf, len, "%s", n);
	return buf;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

const char *sw_unwind__name(struct sw_unwind *u, uint32_t pid, uint64_t pc, bool is_return,
			    char *buf, size_t len)
{
	uint64_t addr = is_return ? pc - 1 : pc;
	struct uw_proc *p = get_proc(u, pid);
	const struct uw_map *m;
	const char *s, *mname;
	Dwfl_Module *mod;
	Dwarf_Addr start;

	if (!p) {
		snprintf(buf, len, "[0x%" PRIx64 "]", pc);
		return buf;
	}
	mod = module_at(p, addr);
	if (mod) {
		s = module_sym(mod, addr);
		if (s) {
			sw_unwind_format_symbol(s, buf, len);
			return buf;
		}
		mname = dwfl_module_info(mod, NULL, &start, NULL, NULL, NULL, NULL, NULL);
		snprintf(buf, len, "[%s+0x%" PRIx64 "]", base_name(mname ? mname : "?"),
			 addr - start);
		return buf;
	}
	if (jit_name(u, p, addr, buf, len))
		return buf;
	m = find_map(p, addr);
	if (m && m->name[0] == '[') { /* [vdso], [vsyscall] */
		snprintf(buf, len, "%s", m->name);
		return buf;
	}
	if (m && m->file) {
		snprintf(buf, len, "[%s+0x%" PRIx64 "]", base_name(m->name), addr - m->start);
		return buf;
	}
	/* anonymous executable memory, or gone since: JIT code */
	p->unnamed_jit = true;
	snprintf(buf, len, "[jit]");
	return buf;
}

bool sw_unwind__unnamed_jit(struct sw_unwind *u, uint32_t pid)
{
	for (size_t i = 0; i < u->n_procs; i++)
		if (u->procs[i]->pid == pid)
			return u->procs[i]->unnamed_jit && !sw_perfmap__entries(u->procs[i]->perfmap);
	return false;
}

/* Skip an operator's symbol after "operator" (operator<, operator(),
 * operator<<=): its brackets are not template or parameter brackets. */
static size_t skip_operator(const char *s, size_t i)
{
	if (strncmp(s + i, "operator", 8))
		return i;
	i += 8;
	if (s[i] == '(' && s[i + 1] == ')')
		return i + 2;
	if (s[i] == '[' && s[i + 1] == ']')
		return i + 2;
	while (s[i] && strchr("<>=!+-*/%&|^~,", s[i]))
		i++;
	return i;
}

/*
 * Length of name without GCC's clone suffixes (".part.0", ".constprop.0",
 * ".isra.0", ".cold", ".lto_priv.0", ".localalias"): the function people
 * wrote, as the demangler's " [clone ...]" says for C++. A name with any
 * other dot in it is left whole.
 */
static size_t strip_clone_suffix(const char *name)
{
	static const char *const kinds[] = { "part", "constprop", "isra", "cold", "lto_priv",
					     "localalias", "clone" };
	const char *dot = strchr(name, '.'), *p;

	if (!dot || dot == name)
		return strlen(name);
	for (p = dot; *p == '.';) {
		size_t k, n = 0;

		p++;
		for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			n = strlen(kinds[k]);
			if (!strncmp(p, kinds[k], n) && (p[n] == '.' || !p[n]))
				break;
		}
		if (k < sizeof(kinds) / sizeof(kinds[0])) {
			p += n;
			continue;
		}
		/* a number after a kind: ".0" */
		if (*p >= '0' && *p <= '9' && p - 1 != dot) {
			while (*p >= '0' && *p <= '9')
				p++;
			continue;
		}
		return strlen(name);
	}
	return *p ? strlen(name) : (size_t)(dot - name);
}

void sw_unwind_format_symbol(const char *sym, char *out, size_t len)
{
	char *dem = NULL, *s, *clone;
	int status = -1, depth = 0;
	size_t i, cut, last_space = 0;
	bool have_space = false;

	if (!len)
		return;
	if (sym[0] == '_' && sym[1] == 'Z')
		dem = __cxa_demangle(sym, NULL, NULL, &status);
	if (!dem || status != 0) {
		free(dem);
		snprintf(out, len, "%.*s", (int)strip_clone_suffix(sym), sym);
		return;
	}
	s = dem;
	clone = strstr(s, " [clone ");
	if (clone)
		*clone = 0;
	cut = strlen(s);
	for (i = 0; s[i]; i++) {
		size_t j = skip_operator(s, i);

		if (j != i) {
			i = j - 1;
			continue;
		}
		if (s[i] == '(' && depth == 0) {
			if (!strncmp(s + i, "(anonymous namespace)", 21)) {
				i += 20;
				continue;
			}
			cut = i;
			break;
		}
		if (s[i] == '<' || s[i] == '(' || s[i] == '{' || s[i] == '[')
			depth++;
		else if ((s[i] == '>' || s[i] == ')' || s[i] == '}' || s[i] == ']') && depth > 0)
			depth--;
		else if (s[i] == ' ' && depth == 0) {
			last_space = i;
			have_space = true;
		}
	}
	s[cut] = 0;
	/* a template function's return type comes first: "void ns::f<int>" */
	if (have_space && last_space < cut && strncmp(s + last_space - (last_space >= 8 ? 8 : 0),
						      "operator", 8))
		s += last_space + 1;
	snprintf(out, len, "%s", s);
	free(dem);
}
