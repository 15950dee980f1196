/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPython knowledge: how a process is recognised, its exact version, and the
 * per-version layout of the interpreter's structs that the GIL measurement
 * and the Python frame reader both read from outside the process. The table
 * is in python.c, one row per minor version, each citing the headers it
 * comes from and how it was checked.
 */
#ifndef SW_RUNTIME_PYTHON_H
#define SW_RUNTIME_PYTHON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "discovery.h"

struct sw_tio;

/* An offset the version does not have. */
#define SW_PY_NONE (-1)

enum sw_py_gil_home {
	/* 3.9-3.11: one GIL per process, _PyRuntime.ceval.gil */
	SW_PY_GIL_IN_RUNTIME = 1,
	/* 3.12+: interp->ceval.gil points at it (PEP 684: an interpreter may
	 * own one); the main interpreter's is the one that matters */
	SW_PY_GIL_INTERP_POINTER = 2,
};

enum sw_py_drop_home {
	/* 3.9-3.12: interp->ceval.gil_drop_request, an atomic int */
	SW_PY_DROP_INTERP_INT = 1,
	/* 3.13+: a bit of the holder's tstate->eval_breaker */
	SW_PY_DROP_TSTATE_BIT = 2,
};

/* What the current frame pointer of a thread points at. */
enum sw_py_frame_kind {
	SW_PY_FRAME_OBJECT = 1, /* 3.9, 3.10: PyFrameObject (tstate->frame) */
	SW_PY_FRAME_INTERP = 2, /* 3.11+: _PyInterpreterFrame */
};

/* What frame.instr holds. */
enum sw_py_instr_kind {
	SW_PY_INSTR_LASTI_BYTES = 1, /* 3.9: int f_lasti, a byte offset into co_code */
	SW_PY_INSTR_LASTI_UNITS = 2, /* 3.10: int f_lasti, in 2-byte code units */
	SW_PY_INSTR_PREV_PTR = 3,    /* 3.11, 3.12: prev_instr, the unit last begun */
	SW_PY_INSTR_PTR = 4,	     /* 3.13: instr_ptr, the unit being (or next) run */
};

/* What code.linetable holds. */
enum sw_py_linetable_kind {
	SW_PY_LNOTAB = 1,    /* 3.9: co_lnotab, (byte, line) increments */
	SW_PY_LINETABLE = 2, /* 3.10: co_linetable, PEP 626 (start, end, line) entries */
	SW_PY_LOCATIONS = 3, /* 3.11+: PEP 657 location table */
};

/* Where the bytecode starts. */
enum sw_py_bytecode_kind {
	SW_PY_CODE_BYTES = 1,  /* 3.9, 3.10: co_code -> PyBytesObject, data at bytes_sval */
	SW_PY_CODE_INLINE = 2, /* 3.11+: co_code_adaptive, inside the code object */
};

/* struct _gil_runtime_state (Include/internal/pycore_gil.h). */
struct sw_py_gil_layout {
	int32_t interval;      /* unsigned long, µs: sys.setswitchinterval() */
	int32_t last_holder;   /* PyThreadState * (atomic) */
	int32_t locked;	       /* int: 1 held, 0 free, -1 not created yet */
	int32_t switch_number; /* unsigned long: a count of holder changes */
	int32_t cond, mutex;   /* pthread_cond_t, pthread_mutex_t: the futexes waited on */
	int32_t switch_cond, switch_mutex; /* FORCE_SWITCHING */
	int32_t size;
};

/* All offsets in bytes, x86_64 with glibc, SW_PY_NONE where absent. */
struct sw_py_layout {
	uint8_t major, minor;
	const char *source;   /* the CPython files the row comes from, at a tag */
	const char *verified; /* how the row was checked */
	struct {
		int32_t interpreters_head, interpreters_main;
		int32_t gil;		/* SW_PY_GIL_IN_RUNTIME: the GIL itself */
		int32_t tstate_current; /* the GIL holder's tstate, 3.9-3.11 */
		/* 3.13+: _Py_DebugOffsets ("xdebugpy", then PY_VERSION_HEX) at +0 */
		bool debug_offsets;
	} runtime;
	enum sw_py_gil_home gil_home;
	enum sw_py_drop_home drop_home;
	uint32_t drop_bit; /* SW_PY_DROP_TSTATE_BIT: the bit in eval_breaker */
	struct {
		int32_t threads_head;
		int32_t runtime;	  /* back to _PyRuntime: proves an address */
		int32_t gil_ptr;	  /* SW_PY_GIL_INTERP_POINTER */
		int32_t gil_drop_request; /* SW_PY_DROP_INTERP_INT */
		/* int gc.collecting: the cyclic GC is running (struct
		 * _gc_runtime_state, Include/internal/pycore_gc.h) */
		int32_t gc_collecting;
	} interp;
	struct {
		int32_t next, interp;
		int32_t thread_id;	  /* pthread_self() of the thread */
		int32_t native_thread_id; /* its kernel tid; 3.11+ only */
		/* The path to the current frame: exactly one of frame,
		 * cframe (then cframe_current_frame) and current_frame. */
		int32_t frame, cframe, current_frame;
		int32_t eval_breaker; /* SW_PY_DROP_TSTATE_BIT */
	} tstate;
	int32_t cframe_current_frame;
	enum sw_py_frame_kind frame_kind;
	struct {
		int32_t code; /* f_code; 3.13 f_executable (a code object for Python frames) */
		int32_t previous;
		int32_t instr;
		int32_t owner;	      /* 3.11+: char, enum _frameowner */
		int32_t owner_cstack; /* 3.12+: FRAME_OWNED_BY_CSTACK, a C entry shim frame */
		int32_t is_entry;     /* 3.11 only: bool, the first frame of a C call */
	} frame;
	enum sw_py_instr_kind instr_kind;
	struct {
		int32_t name, qualname, filename, firstlineno, linetable, code;
		/* 3.11+: int, the unit index of the first instruction a
		 * traceback may show (after the prologue): a frame before it
		 * is "incomplete" and CPython hides it */
		int32_t firsttraceable;
	} code;
	enum sw_py_linetable_kind linetable_kind;
	enum sw_py_bytecode_kind bytecode_kind;
	int32_t bytes_sval;	    /* PyBytesObject.ob_sval, for SW_PY_CODE_BYTES */
	int32_t bytes_size;	    /* PyBytesObject.ob_base.ob_size: its length */
	int32_t unicode_ascii_data; /* sizeof(PyASCIIObject): a compact ASCII str's chars */
	/* The rest of a str (Include/cpython/unicodeobject.h): length in code
	 * points, the state bit field, and where a compact non-ASCII str's
	 * UCS1/2/4 data starts (sizeof(PyCompactUnicodeObject)). */
	struct {
		int32_t length, state, compact_data;
		uint8_t kind_shift; /* state.kind: 3 bits, 1, 2 or 4 bytes a char */
		uint8_t compact_bit, ascii_bit;
	} unicode;
	struct sw_py_gil_layout gil;
};

/*
 * The layout of CPython major.minor, or NULL when the table has no row for
 * it: callers must then say that the GIL and Python stacks cannot be read
 * (sw_python_layout_error says it in one line).
 */
const struct sw_py_layout *sw_python_layout(unsigned major, unsigned minor);
/* The rows, for tests and --dump tools. */
const struct sw_py_layout *sw_python_layouts(size_t *n);

/* The layout for a discovered process: NULL for a version not in the table,
 * an unknown version, or a free-threaded build (another layout, no GIL). */
const struct sw_py_layout *sw_python_layout_of(const struct sw_proc_info *pi);
/* Why sw_python_layout_of gave NULL, one line for people. */
void sw_python_layout_error(const struct sw_proc_info *pi, char *out, size_t len);

/* Parse "python3.11", "libpython3.12.so.1.0", ... into "3.11"; 0 or -ENOENT. */
int sw_python_minor_from_name(const char *name, char *out, size_t len);
/* "python3.13t", "libpython3.13t.so": a free-threaded (no-GIL) build's name. */
bool sw_python_name_free_threaded(const char *name);
/* PY_VERSION_HEX (Py_Version) to "3.11.7". */
void sw_python_hex_version(uint64_t hex, char *out, size_t len);

/* ---- reading a live (or recorded) interpreter through the table ---- */

/* The address of _PyRuntime in pid: the exported symbol of the executable
 * or of libpython (pi->runtime_lib), plus its load bias. 0 or -errno. */
int sw_python_runtime_addr(struct sw_tio *t, const struct sw_proc_info *pi, uint64_t *addr);
/* Any exported symbol of the interpreter (PyCode_Type, ...), the same way. */
int sw_python_symbol_addr(struct sw_tio *t, const struct sw_proc_info *pi, const char *name,
			  uint64_t *addr);

/* 3.13+: whether the interpreter says it is a free-threaded build
 * (_Py_DebugOffsets.free_threaded), whatever its file is called. *ft is
 * false before 3.13. 0 or -errno. */
int sw_python_free_threaded(struct sw_tio *t, pid_t pid, const struct sw_py_layout *L,
			    uint64_t runtime, bool *ft);

/* The main interpreter's PyInterpreterState, proved: its runtime pointer
 * leads back to runtime (and on 3.13+ the _Py_DebugOffsets cookie names this
 * minor version). 0, -EAGAIN (not initialised), -EPROTO (wrong row or
 * address) or -EFAULT. */
int sw_python_main_interp(struct sw_tio *t, pid_t pid, const struct sw_py_layout *L,
			  uint64_t runtime, uint64_t *interp);

struct sw_py_thread {
	uint64_t tstate;
	uint64_t thread_id; /* pthread_t */
	uint32_t native_id; /* kernel tid; 0 where the layout has none (3.9, 3.10) */
};

/* The main interpreter's threads, newest first as CPython links them. At most
 * max; *n is how many were written. 0, -E2BIG when there were more, or
 * -EFAULT (a read failed) / -ELOOP (the list does not end). */
int sw_python_threads(struct sw_tio *t, pid_t pid, const struct sw_py_layout *L, uint64_t runtime,
		      struct sw_py_thread *out, size_t max, size_t *n);

struct sw_py_gil_state {
	uint64_t addr; /* of the _gil_runtime_state; cond, mutex... at addr + L->gil.* */
	uint64_t interval_us;
	uint64_t last_holder; /* a tstate address */
	uint64_t switch_number;
	int32_t locked;
};

/* Where the main interpreter's GIL is, and its state now. 0 or -errno. */
int sw_python_gil(struct sw_tio *t, pid_t pid, const struct sw_py_layout *L, uint64_t runtime,
		  struct sw_py_gil_state *st);

#endif
