// SPDX-License-Identifier: Apache-2.0
/*
 * CPython: recognition, exact version, and the per-version struct layout
 * table that the GIL measurement and the Python frame reader share.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "runtime/python.h"
#include "runtime/runtime.h"
#include "symbolize.h"
#include "target_io.h"

/*
 * The layout table, x86_64 Linux with glibc (pthread_cond_t 48 bytes,
 * pthread_mutex_t 40). One row per minor version: CPython keeps these
 * internal structs stable within a minor release in practice, and the
 * Pyroscope and OTel profilers key their tables the same way.
 *
 * Every row was checked two ways:
 *  - DWARF: scripts/py-layout-dwarf.sh prints each offset as gdb computes
 *    it from the debug info of the pyenv build named in .verified;
 *    tests/root/test_python_layout.py runs it and compares with this table
 *    (tests/tools/sw-pylayout --dump), key by key;
 *  - reality: the same test reads a live interpreter through the row
 *    (_PyRuntime -> main interpreter -> its threads; the GIL) and checks the
 *    thread ids and the switch interval against what the workload says of
 *    itself, including Debian's stripped /usr/bin/python3.11 (3.11.2).
 *
 * Not here: 3.14. The research notes (docs: /work/shared/research/python_gil.md)
 * have only its frame owner offset (+74, from the OTel profiler) and no
 * build to check a whole row against; a row we cannot verify is worse than
 * none, because the caller would trust it. 3.8 and older are out of scope
 * (no asyncio loop measurement for them either).
 */

#define GIL_LAYOUT                                                                                 \
	/* struct _gil_runtime_state is the same in 3.9-3.13 for a        \
	 * GIL build (Include/internal/pycore_gil.h; the free-threaded      \
	 * 3.13t adds `int enabled` in front, which is one reason those      \
	 * builds are refused) */                                           \
	.gil = {                                                                                   \
		.interval = 0,                                                                     \
		.last_holder = 8,                                                                  \
		.locked = 16,                                                                      \
		.switch_number = 24,                                                               \
		.cond = 32,                                                                        \
		.mutex = 80,                                                                       \
		.switch_cond = 120,                                                                \
		.switch_mutex = 168,                                                               \
		.size = 208,                                                                       \
	}

/* PyASCIIObject.state (Include/cpython/unicodeobject.h, 3.9-3.13):
 * interned:2, kind:3, compact:1, ascii:1, then ready (to 3.11) or
 * statically_allocated (3.12+); length and state are where they were */
#define UNICODE_LAYOUT(compact)                                                                    \
	.unicode = { .length = 16, .state = 32, .compact_data = (compact), .kind_shift = 2,      \
		     .compact_bit = 5, .ascii_bit = 6 }

static const struct sw_py_layout layouts[] = {
	{
		.major = 3,
		.minor = 9,
		.source = "v3.9.18: Include/internal/pycore_runtime.h (pyruntimestate), "
			  "Include/internal/pycore_interp.h (_is), Include/cpython/pystate.h (_ts), "
			  "Include/internal/pycore_gil.h, Include/internal/pycore_gc.h, "
			  "Include/cpython/frameobject.h, "
			  "Include/cpython/code.h, Include/cpython/unicodeobject.h, "
			  "Include/cpython/bytesobject.h",
		.verified = "DWARF of pyenv 3.9.18; live read of pyenv 3.9.18",
		.runtime = { .interpreters_head = 32, .interpreters_main = 40, .gil = 352,
			     .tstate_current = 568 },
		.gil_home = SW_PY_GIL_IN_RUNTIME,
		/* bpo-39984 moved gil_drop_request into interp->ceval in 3.9 */
		.drop_home = SW_PY_DROP_INTERP_INT,
		.interp = { .threads_head = 8, /* tstate_head */
			    .runtime = 16, .gil_ptr = SW_PY_NONE, .gil_drop_request = 76,
			    .gc_collecting = 816 },
		/* no native_thread_id before 3.11: only pthread_self() */
		.tstate = { .next = 8, .interp = 16, .thread_id = 176, .native_thread_id = SW_PY_NONE,
			    .frame = 24, .cframe = SW_PY_NONE, .current_frame = SW_PY_NONE,
			    .eval_breaker = SW_PY_NONE },
		.cframe_current_frame = SW_PY_NONE,
		.frame_kind = SW_PY_FRAME_OBJECT,
		.frame = { .code = 32, .previous = 24 /* f_back */, .instr = 104 /* f_lasti */,
			   .owner = SW_PY_NONE, .owner_cstack = SW_PY_NONE, .is_entry = SW_PY_NONE },
		.instr_kind = SW_PY_INSTR_LASTI_BYTES,
		.code = { .name = 112, .qualname = SW_PY_NONE, .filename = 104, .firstlineno = 40,
			  .linetable = 120 /* co_lnotab */, .code = 48 /* co_code */,
			  .firsttraceable = SW_PY_NONE },
		.linetable_kind = SW_PY_LNOTAB,
		.bytecode_kind = SW_PY_CODE_BYTES,
		.bytes_sval = 32,
		.unicode_ascii_data = 48, /* PyASCIIObject still has wstr */
		.bytes_size = 16,
		UNICODE_LAYOUT(72),
		GIL_LAYOUT,
	},
	{
		.major = 3,
		.minor = 10,
		.source = "v3.10.13: Include/internal/pycore_runtime.h, "
			  "Include/internal/pycore_interp.h, Include/cpython/pystate.h, "
			  "Include/internal/pycore_gil.h, Include/internal/pycore_gc.h, "
			  "Include/cpython/frameobject.h, "
			  "Include/cpython/code.h, Include/cpython/unicodeobject.h, "
			  "Include/cpython/bytesobject.h",
		.verified = "DWARF of pyenv 3.10.13; live read of pyenv 3.10.13",
		.runtime = { .interpreters_head = 32, .interpreters_main = 40, .gil = 352,
			     .tstate_current = 568 },
		.gil_home = SW_PY_GIL_IN_RUNTIME,
		.drop_home = SW_PY_DROP_INTERP_INT,
		.interp = { .threads_head = 8, .runtime = 16, .gil_ptr = SW_PY_NONE,
			    .gil_drop_request = 72,
			    .gc_collecting = 816 },
		/* 3.10's tstate->cframe (+48) holds only use_tracing: the frame
		 * is still tstate->frame */
		.tstate = { .next = 8, .interp = 16, .thread_id = 176, .native_thread_id = SW_PY_NONE,
			    .frame = 24, .cframe = SW_PY_NONE, .current_frame = SW_PY_NONE,
			    .eval_breaker = SW_PY_NONE },
		.cframe_current_frame = SW_PY_NONE,
		.frame_kind = SW_PY_FRAME_OBJECT,
		.frame = { .code = 32, .previous = 24, .instr = 96, .owner = SW_PY_NONE,
			   .owner_cstack = SW_PY_NONE, .is_entry = SW_PY_NONE },
		/* f_lasti counts code units since 3.10 (bpo-27129) */
		.instr_kind = SW_PY_INSTR_LASTI_UNITS,
		.code = { .name = 112, .qualname = SW_PY_NONE, .filename = 104, .firstlineno = 40,
			  .linetable = 120, .code = 48,
			  .firsttraceable = SW_PY_NONE },
		.linetable_kind = SW_PY_LINETABLE,
		.bytecode_kind = SW_PY_CODE_BYTES,
		.bytes_sval = 32,
		.unicode_ascii_data = 48,
		.bytes_size = 16,
		UNICODE_LAYOUT(72),
		GIL_LAYOUT,
	},
	{
		.major = 3,
		.minor = 11,
		.source = "v3.11.7: Include/internal/pycore_runtime.h, "
			  "Include/internal/pycore_interp.h, Include/cpython/pystate.h (_ts, "
			  "_PyCFrame), Include/internal/pycore_gil.h, Include/internal/pycore_gc.h, "
			  "Include/internal/pycore_frame.h, Include/cpython/code.h, "
			  "Include/cpython/unicodeobject.h",
		.verified = "DWARF of pyenv 3.11.7; live read of pyenv 3.11.7 and of Debian's "
			    "stripped /usr/bin/python3.11 (3.11.2)",
		.runtime = { .interpreters_head = 40, .interpreters_main = 48, .gil = 360,
			     .tstate_current = 576 },
		.gil_home = SW_PY_GIL_IN_RUNTIME,
		.drop_home = SW_PY_DROP_INTERP_INT,
		.interp = { .threads_head = 16, .runtime = 40, .gil_ptr = SW_PY_NONE,
			    .gil_drop_request = 104,
			    .gc_collecting = 848 },
		.tstate = { .next = 8, .interp = 16, .thread_id = 152, .native_thread_id = 160,
			    .frame = SW_PY_NONE, .cframe = 56, .current_frame = SW_PY_NONE,
			    .eval_breaker = SW_PY_NONE },
		.cframe_current_frame = 8,
		.frame_kind = SW_PY_FRAME_INTERP,
		/* FRAME_OWNED_BY_CSTACK arrives in 3.12; 3.11 marks C entry
		 * with is_entry (+68) instead, on a real Python frame */
		.frame = { .code = 32, .previous = 48, .instr = 56 /* prev_instr */, .owner = 69,
			   .owner_cstack = SW_PY_NONE, .is_entry = 68 },
		.instr_kind = SW_PY_INSTR_PREV_PTR,
		.code = { .name = 120, .qualname = 128, .filename = 112, .firstlineno = 72,
			  .linetable = 136, .code = 184 /* co_code_adaptive */,
			  .firsttraceable = 168 },
		.linetable_kind = SW_PY_LOCATIONS,
		.bytecode_kind = SW_PY_CODE_INLINE,
		.bytes_sval = 32,
		.unicode_ascii_data = 48,
		.bytes_size = 16,
		UNICODE_LAYOUT(72),
		GIL_LAYOUT,
	},
	{
		.major = 3,
		.minor = 12,
		.source = "v3.12.1: Include/internal/pycore_runtime.h, "
			  "Include/internal/pycore_interp.h, Include/internal/pycore_ceval_state.h, "
			  "Include/cpython/pystate.h (_ts, _PyCFrame), "
			  "Include/internal/pycore_gil.h, Include/internal/pycore_gc.h, "
			  "Include/internal/pycore_frame.h, "
			  "Include/cpython/code.h, Include/cpython/unicodeobject.h",
		.verified = "DWARF of pyenv 3.12.1; live read of pyenv 3.12.1",
		/* gilstate.tstate_current moved to thread-local storage
		 * (_Py_tss_tstate): there is no holder pointer in _PyRuntime */
		.runtime = { .interpreters_head = 40, .interpreters_main = 48, .gil = SW_PY_NONE,
			     .tstate_current = SW_PY_NONE },
		/* PEP 684: interp->ceval.gil points at interp->_gil or at the
		 * main interpreter's */
		.gil_home = SW_PY_GIL_INTERP_POINTER,
		.drop_home = SW_PY_DROP_INTERP_INT,
		.interp = { .threads_head = 72, .runtime = 96, .gil_ptr = 384,
			    .gil_drop_request = 372,
			    .gc_collecting = 312 },
		.tstate = { .next = 8, .interp = 16, .thread_id = 136, .native_thread_id = 144,
			    .frame = SW_PY_NONE, .cframe = 56, .current_frame = SW_PY_NONE,
			    .eval_breaker = SW_PY_NONE },
		.cframe_current_frame = 0,
		.frame_kind = SW_PY_FRAME_INTERP,
		.frame = { .code = 0, .previous = 8, .instr = 56, .owner = 70, .owner_cstack = 3,
			   .is_entry = SW_PY_NONE },
		.instr_kind = SW_PY_INSTR_PREV_PTR,
		.code = { .name = 120, .qualname = 128, .filename = 112, .firstlineno = 68,
			  .linetable = 136, .code = 192,
			  .firsttraceable = 176 },
		.linetable_kind = SW_PY_LOCATIONS,
		.bytecode_kind = SW_PY_CODE_INLINE,
		.bytes_sval = 32,
		.unicode_ascii_data = 40, /* PEP 623: wstr gone from PyASCIIObject */
		.bytes_size = 16,
		UNICODE_LAYOUT(56),
		GIL_LAYOUT,
	},
	{
		.major = 3,
		.minor = 13,
		.source = "v3.13.0: Include/internal/pycore_runtime.h (and its _Py_DebugOffsets), "
			  "Include/internal/pycore_interp.h, Include/internal/pycore_ceval_state.h, "
			  "Include/internal/pycore_ceval.h (_PY_GIL_DROP_REQUEST_BIT), Include/cpython/pystate.h, "
			  "Include/internal/pycore_gil.h, Include/internal/pycore_gc.h, "
			  "Include/internal/pycore_frame.h, "
			  "Include/cpython/code.h, Include/cpython/unicodeobject.h",
		.verified = "DWARF of pyenv 3.13.0; live read of pyenv 3.13.0",
		.runtime = { .interpreters_head = 632, .interpreters_main = 640, .gil = SW_PY_NONE,
			     .tstate_current = SW_PY_NONE, .debug_offsets = true },
		.gil_home = SW_PY_GIL_INTERP_POINTER,
		/* the drop request is per thread since 3.13 (gh-112175):
		 * bit 0 of the holder's eval_breaker */
		.drop_home = SW_PY_DROP_TSTATE_BIT,
		.drop_bit = 0,
		.interp = { .threads_head = 7344, .runtime = 7376, .gil_ptr = 16,
			    .gil_drop_request = SW_PY_NONE,
			    .gc_collecting = 7600 },
		/* _PyCFrame is gone: tstate->current_frame */
		.tstate = { .next = 8, .interp = 16, .thread_id = 152, .native_thread_id = 160,
			    .frame = SW_PY_NONE, .cframe = SW_PY_NONE, .current_frame = 72,
			    .eval_breaker = 24 },
		.cframe_current_frame = SW_PY_NONE,
		.frame_kind = SW_PY_FRAME_INTERP,
		/* f_executable: a code object for Python frames, something else
		 * (None) for the C-stack shim: check the type before use */
		.frame = { .code = 0, .previous = 8, .instr = 56 /* instr_ptr */, .owner = 70,
			   .owner_cstack = 3, .is_entry = SW_PY_NONE },
		.instr_kind = SW_PY_INSTR_PTR,
		.code = { .name = 120, .qualname = 128, .filename = 112, .firstlineno = 68,
			  .linetable = 136, .code = 200,
			  .firsttraceable = 184 },
		.linetable_kind = SW_PY_LOCATIONS,
		.bytecode_kind = SW_PY_CODE_INLINE,
		.bytes_sval = 32,
		.unicode_ascii_data = 40,
		.bytes_size = 16,
		UNICODE_LAYOUT(56),
		GIL_LAYOUT,
	},
};

#define N_LAYOUTS (sizeof(layouts) / sizeof(layouts[0]))

const struct sw_py_layout *sw_python_layout(unsigned major, unsigned minor)
{
	for (size_t i = 0; i < N_LAYOUTS; i++)
		if (layouts[i].major == major && layouts[i].minor == minor)
			return &layouts[i];
	return NULL;
}

const struct sw_py_layout *sw_python_layouts(size_t *n)
{
	*n = N_LAYOUTS;
	return layouts;
}

static int parse_minor(const char *version, unsigned *major, unsigned *minor)
{
	return sscanf(version, "%u.%u", major, minor) == 2 ? 0 : -ENOENT;
}

const struct sw_py_layout *sw_python_layout_of(const struct sw_proc_info *pi)
{
	unsigned major, minor;

	if (pi->runtime != SW_RT_PYTHON || pi->free_threaded ||
	    parse_minor(pi->version, &major, &minor))
		return NULL;
	return sw_python_layout(major, minor);
}

void sw_python_layout_error(const struct sw_proc_info *pi, char *out, size_t len)
{
	const struct sw_py_layout *first = &layouts[0], *last = &layouts[N_LAYOUTS - 1];
	unsigned major, minor;

	if (pi->runtime != SW_RT_PYTHON)
		snprintf(out, len, "pid %d is not CPython", pi->pid);
	else if (pi->free_threaded)
		snprintf(out, len,
			 "pid %d: CPython %s is a free-threaded build: it has no GIL to measure and "
			 "its struct layout is not in the table; Python stacks are not read",
			 pi->pid, pi->version);
	else if (parse_minor(pi->version, &major, &minor))
		snprintf(out, len,
			 "pid %d: CPython version unknown (%s): the GIL and Python stacks are not "
			 "read",
			 pi->pid, pi->exe);
	else if (!sw_python_layout(major, minor))
		snprintf(out, len,
			 "pid %d: no CPython layout for %s (the table has %u.%u to %u.%u): the GIL "
			 "and Python stacks are not read",
			 pi->pid, pi->version, first->major, first->minor, last->major, last->minor);
	else
		snprintf(out, len, "pid %d: CPython %s layout known", pi->pid, pi->version);
}

int sw_python_minor_from_name(const char *name, char *out, size_t len)
{
	const char *p = strstr(name, "python");
	int major, minor, n = 0;

	if (!p)
		return -ENOENT;
	if (sscanf(p + 6, "%d.%d%n", &major, &minor, &n) != 2 || n == 0 || major < 2)
		return -ENOENT;
	snprintf(out, len, "%d.%d", major, minor);
	return 0;
}

/* PEP 703 builds carry a "t" ABI flag in their names: python3.13t,
 * libpython3.13t.so.1.0. */
bool sw_python_name_free_threaded(const char *name)
{
	const char *p = strstr(name, "python");
	int major, minor, n = 0;

	if (!p || sscanf(p + 6, "%d.%d%n", &major, &minor, &n) != 2 || n == 0)
		return false;
	return p[6 + n] == 't';
}

void sw_python_hex_version(uint64_t hex, char *out, size_t len)
{
	snprintf(out, len, "%u.%u.%u", (unsigned)(hex >> 24) & 0xff, (unsigned)(hex >> 16) & 0xff,
		 (unsigned)(hex >> 8) & 0xff);
}

/*
 * Python's exact version, read from the live process (process_vm_readv,
 * which neither stops nor signals it):
 *  - 3.11+: Py_Version, exported data holding PY_VERSION_HEX;
 *  - older builds with a symbol table (pyenv): Py_GetVersion()'s static
 *    buffer "version.0", filled at start-up for sys.version;
 *  - otherwise major.minor stays, from the binary's or libpython's name.
 */
static void python_version(struct sw_tio *t, struct sw_proc_info *info, const char *elf_path,
			   const char *mapped_path)
{
	struct sw_elf_sym sym;
	uint64_t addr, hex = 0;
	char buf[sizeof(info->version)], want[sizeof(info->version) + 2];
	size_t n;

	if (sw_elf_find_symbol(elf_path, "Py_Version", &sym) == 0 &&
	    sw_proc_symbol_addr(t, info->pid, mapped_path, &sym, &addr) == 0 &&
	    sw_tio__read_mem(t, info->pid, addr, &hex, sizeof(uint32_t)) == 0 && (hex >> 24) == 3) {
		sw_python_hex_version(hex, info->version, sizeof(info->version));
		return;
	}
	if (sw_elf_find_symbol(elf_path, "version.0", &sym) ||
	    sw_proc_symbol_addr(t, info->pid, mapped_path, &sym, &addr) ||
	    sw_tio__read_mem(t, info->pid, addr, buf, sizeof(buf) - 1))
		return;
	buf[sizeof(buf) - 1] = '\0';
	n = strcspn(buf, " ");
	buf[n] = '\0';
	/* only if it is the version the name promised: "3.9." + patch */
	snprintf(want, sizeof(want), "%s.", info->version);
	if (sw_is_semver(buf, n) && !strncmp(buf, want, strlen(want)))
		snprintf(info->version, sizeof(info->version), "%s", buf);
}

/* Where the interpreter's code is: libpython when it is a DSO (pyenv's
 * --enable-shared, embedders), else the executable (Debian's). */
static void python_elf(struct sw_tio *t, const struct sw_proc_info *info, char *elf_path,
		       size_t len, const char **mapped)
{
	if (info->runtime_lib[0]) {
		snprintf(elf_path, len, "%s/%d/root%s", t->root, info->pid, info->runtime_lib);
		*mapped = info->runtime_lib;
	} else {
		snprintf(elf_path, len, "%s/%d/exe", t->root, info->pid);
		*mapped = info->exe;
	}
}

static int python_identify(struct sw_tio *t, struct sw_proc_info *info, const char *exe_base)
{
	char path[PATH_MAX + 300], msg[256];
	const char *mapped, *name;

	sw_proc_find_lib(t, info->pid, "libpython", info->runtime_lib, sizeof(info->runtime_lib));
	if (strncmp(exe_base, "python", 6) && !info->runtime_lib[0])
		return -ENOENT;
	info->runtime = SW_RT_PYTHON;
	name = info->runtime_lib[0] ? strrchr(info->runtime_lib, '/') + 1 : exe_base;
	sw_python_minor_from_name(name, info->version, sizeof(info->version));
	info->free_threaded = sw_python_name_free_threaded(name);
	python_elf(t, info, path, sizeof(path), &mapped);
	python_version(t, info, path, mapped);
	if (!sw_python_layout_of(info)) {
		sw_python_layout_error(info, msg, sizeof(msg));
		sw_dbg("%s", msg);
	}
	return 0;
}

const struct sw_runtime_desc sw_runtime_python = {
	.rt = SW_RT_PYTHON,
	.name = "python",
	.identify = python_identify,
	.target_flags = NULL,
};

/* ---- reading an interpreter ---- */

int sw_python_symbol_addr(struct sw_tio *t, const struct sw_proc_info *pi, const char *name,
			  uint64_t *addr)
{
	char path[PATH_MAX + 300];
	struct sw_elf_sym sym;
	const char *mapped;
	int err;

	python_elf(t, pi, path, sizeof(path), &mapped);
	err = sw_elf_find_symbol(path, name, &sym);
	if (err)
		return err;
	return sw_proc_symbol_addr(t, pi->pid, mapped, &sym, addr);
}

int sw_python_runtime_addr(struct sw_tio *t, const struct sw_proc_info *pi, uint64_t *addr)
{
	/* exported since 3.7 (Py_BUILD_CORE users and debuggers need it), so
	 * found in .dynsym of a stripped binary too */
	return sw_python_symbol_addr(t, pi, "_PyRuntime", addr);
}

static int read_u64_at(struct sw_tio *t, pid_t pid, uint64_t base, int32_t off, uint64_t *v)
{
	if (off == SW_PY_NONE)
		return -ENOENT;
	return sw_tio__read_u64(t, pid, base + (uint64_t)off, v);
}

/* The main interpreter, checked: its runtime back-pointer must lead back to
 * the _PyRuntime we came from, and on 3.13+ _PyRuntime must start with the
 * _Py_DebugOffsets cookie of this minor version. A wrong address or a wrong
 * row fails here instead of yielding plausible garbage. */
int sw_python_main_interp(struct sw_tio *t, pid_t pid, const struct sw_py_layout *L,
			  uint64_t runtime, uint64_t *interp)
{
	uint64_t back;
	int err;

	if (L->runtime.debug_offsets) {
		struct {
			char cookie[8];
			uint64_t version;
		} dbg;

		err = sw_tio__read_mem(t, pid, runtime, &dbg, sizeof(dbg));
		if (err)
			return err;
		if (memcmp(dbg.cookie, "xdebugpy", 8) || ((dbg.version >> 24) & 0xff) != L->major ||
		    ((dbg.version >> 16) & 0xff) != L->minor)
			return -EPROTO;
	}
	err = read_u64_at(t, pid, runtime, L->runtime.interpreters_main, interp);
	if (err)
		return err;
	if (!*interp)
		return -EAGAIN; /* not initialised yet, or finalised */
	err = read_u64_at(t, pid, *interp, L->interp.runtime, &back);
	if (err)
		return err;
	return back == runtime ? 0 : -EPROTO;
}

int sw_python_free_threaded(struct sw_tio *t, pid_t pid, const struct sw_py_layout *L,
			    uint64_t runtime, bool *ft)
{
	struct {
		char cookie[8];
		uint64_t version;
		uint64_t free_threaded; /* 3.13+ (Include/internal/pycore_runtime.h) */
	} dbg;
	int err;

	*ft = false;
	if (!L->runtime.debug_offsets)
		return 0; /* before 3.13 there is no free-threaded build */
	err = sw_tio__read_mem(t, pid, runtime, &dbg, sizeof(dbg));
	if (err)
		return err;
	if (memcmp(dbg.cookie, "xdebugpy", 8))
		return -EPROTO;
	*ft = dbg.free_threaded != 0;
	return 0;
}

/* A thread list longer than this is a cycle read while it changed. */
#define SW_PY_MAX_WALK 65536

int sw_python_threads(struct sw_tio *t, pid_t pid, const struct sw_py_layout *L, uint64_t runtime,
		      struct sw_py_thread *out, size_t max, size_t *n)
{
	uint64_t interp, ts, v;
	bool more = false;
	int err;

	*n = 0;
	err = sw_python_main_interp(t, pid, L, runtime, &interp);
	if (err)
		return err;
	err = read_u64_at(t, pid, interp, L->interp.threads_head, &ts);
	for (size_t steps = 0; !err && ts; steps++) {
		struct sw_py_thread th = { .tstate = ts };

		if (steps == SW_PY_MAX_WALK)
			return -ELOOP;
		err = read_u64_at(t, pid, ts, L->tstate.thread_id, &th.thread_id);
		if (!err && L->tstate.native_thread_id != SW_PY_NONE) {
			err = read_u64_at(t, pid, ts, L->tstate.native_thread_id, &v);
			th.native_id = (uint32_t)v;
		}
		if (err)
			break;
		if (*n < max)
			out[(*n)++] = th;
		else
			more = true;
		err = read_u64_at(t, pid, ts, L->tstate.next, &ts);
	}
	if (err)
		return err;
	return more ? -E2BIG : 0;
}

int sw_python_gil(struct sw_tio *t, pid_t pid, const struct sw_py_layout *L, uint64_t runtime,
		  struct sw_py_gil_state *st)
{
	uint8_t buf[256];
	uint64_t interp;
	int err;

	memset(st, 0, sizeof(*st));
	if (L->gil.size <= 0 || (size_t)L->gil.size > sizeof(buf))
		return -EINVAL;
	err = sw_python_main_interp(t, pid, L, runtime, &interp);
	if (err)
		return err;
	if (L->gil_home == SW_PY_GIL_IN_RUNTIME) {
		st->addr = runtime + (uint64_t)L->runtime.gil;
	} else {
		err = read_u64_at(t, pid, interp, L->interp.gil_ptr, &st->addr);
		if (err)
			return err;
		if (!st->addr)
			return -EAGAIN;
	}
	err = sw_tio__read_mem(t, pid, st->addr, buf, (size_t)L->gil.size);
	if (err)
		return err;
	memcpy(&st->interval_us, buf + L->gil.interval, sizeof(st->interval_us));
	memcpy(&st->last_holder, buf + L->gil.last_holder, sizeof(st->last_holder));
	memcpy(&st->switch_number, buf + L->gil.switch_number, sizeof(st->switch_number));
	memcpy(&st->locked, buf + L->gil.locked, sizeof(st->locked));
	return 0;
}
