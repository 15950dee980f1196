/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Python stack of a thread, read from outside: the interpreter's own
 * frame chain in the target's memory, through the CPython layout table
 * (python.h), as py-spy and Austin read it. Nothing is loaded into the
 * target and it is never stopped: a chain that changes under the reader is
 * detected (-EAGAIN), never followed into garbage.
 *
 * agent/stacks.c calls it for each stack sample of a Python loop thread and
 * splices the frames into the native stack where it enters the interpreter:
 * native frames innermost first; each native _PyEval_EvalFrameDefault frame
 * stands for the Python frames from the cursor up to and including the next
 * one marked entry (3.9/3.10: every frame is an entry; 3.11+: the frame a C
 * call of the evaluator began with).
 */
#ifndef SW_RUNTIME_PYFRAMES_H
#define SW_RUNTIME_PYFRAMES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "discovery.h"

struct sw_tio;
struct sw_py_layout;

#define SW_PY_MAX_FRAMES 128

struct sw_py_frame {
	char func[128]; /* co_qualname (3.11+) or co_name */
	char file[256]; /* co_filename */
	uint32_t line;	/* of the instruction running; 0 when it cannot be told */
	bool entry;	/* the outermost frame of one C call of the evaluator */
};

struct sw_py_stack {
	uint32_t n;	 /* frames, innermost first */
	bool truncated;	 /* more than SW_PY_MAX_FRAMES */
	bool gc_collecting; /* the cyclic GC was running when read */
	struct sw_py_frame f[SW_PY_MAX_FRAMES];
};

/* A reader is used from one thread at a time. */
struct sw_pyframes;

/* t: how target memory is read (live or a fixture); not owned. */
struct sw_pyframes *sw_pyframes__new(struct sw_tio *t);
void sw_pyframes__free(struct sw_pyframes *r);

/* Start reading a Python process. 0, or -ENOTSUP when its version is not in
 * the layout table (sw_pyframes__note then says so in one line); other
 * errors (no _PyRuntime, a wrong one) also leave a note. An interpreter
 * not initialised yet is 0: its reads are -EAGAIN until it is. */
int sw_pyframes__add_process(struct sw_pyframes *r, const struct sw_proc_info *pi);

/* What sw_pyframes__add_process finds in the binaries (ELF symbols plus the
 * load bias), given directly where there are no binaries: recorded fixtures. */
struct sw_py_addrs {
	uint64_t runtime; /* _PyRuntime */
	/* PyCode_Type, PyUnicode_Type, PyBytes_Type: each object read is
	 * checked against its type (0: not checked) */
	uint64_t code_type, unicode_type, bytes_type;
	/* 3.9/3.10: where glibc's struct pthread keeps the kernel tid (from
	 * libc's _thread_db_pthread_tid); -1 unknown: those threads cannot be
	 * told apart by tid */
	int32_t pthread_tid;
};
int sw_pyframes__add_process_at(struct sw_pyframes *r, const struct sw_proc_info *pi,
				const struct sw_py_addrs *a);
void sw_pyframes__remove_process(struct sw_pyframes *r, uint32_t pid);

/*
 * The Python stack of thread tid of pid now. 0; -ENOENT: not a thread with
 * a Python state (or no Python frame running); -EAGAIN: the chain changed
 * while it was read; -ENOTSUP: version not in the table; -ESRCH: pid not
 * added.
 */
int sw_pyframes__read(struct sw_pyframes *r, uint32_t pid, uint32_t tid, struct sw_py_stack *out);

/* The kernel tid of the thread whose PyThreadState is at tstate (the GIL's
 * last_holder): 0; -ENOENT when no thread of the list has it (its list is
 * walked again only when it changed); -ESRCH: pid not added. */
int sw_pyframes__tid_of(struct sw_pyframes *r, uint32_t pid, uint64_t tstate, uint32_t *tid);
/*
 * Walk pid's thread list again if its head moved since the last walk, and
 * say whether it did (*changed). A thread's PyThreadState is freed when it
 * ends, and the next thread's may be allocated at the same address: a
 * cached tstate -> tid is stale from then on. A new thread state always
 * goes at the head of the list, so the head moves whenever that can happen.
 * 0, or the errors of sw_pyframes__tid_of.
 */
int sw_pyframes__sync_threads(struct sw_pyframes *r, uint32_t pid, bool *changed);
/* The tids of pid's Python threads, the list walked now. */
int sw_pyframes__tids(struct sw_pyframes *r, uint32_t pid, uint32_t *tids, size_t max, size_t *n);

/* Read only the bytes each object takes instead of whole pages: slower, but
 * a recording (tests/fixtures/python) then holds the objects read and not
 * the memory around them. Off by default. */
void sw_pyframes__exact_reads(struct sw_pyframes *r, bool on);

/*
 * Where struct pthread keeps the kernel tid, found without libc's help (a
 * libc with no _thread_db_pthread_tid: musl, a stripped glibc): the one
 * 4-aligned offset under 1 KiB at which every Python thread's pthread_t holds
 * a distinct tid of /proc/PID/task, the main thread's being PID. 0, or
 * -ENOENT when no single offset fits. Exposed for tests.
 */
int sw_pyframes__pthread_tid_scan(struct sw_tio *t, pid_t pid, const struct sw_py_layout *L,
				  uint64_t runtime, int32_t *off);

/* CPython's PyCode_Addr2Line for version L's line table (co_lnotab,
 * co_linetable or the location table), addrq in bytes of bytecode: the
 * line, or -1 where the table has none. Exposed for tests. */
int sw_py_addr2line(const struct sw_py_layout *L, const uint8_t *table, uint32_t len,
		    int firstlineno, int addrq);

/* What pid was added with (for tools that record fixtures). 0 or -ESRCH. */
int sw_pyframes__addrs(struct sw_pyframes *r, uint32_t pid, struct sw_py_addrs *out);

/* What the reads came to, over all processes, for health counters: each
 * read that gave no stack is counted under its reason. */
struct sw_pyframes_stats {
	uint64_t reads, ok;
	uint64_t changed;     /* -EAGAIN: the chain moved (or was not a chain) */
	uint64_t faults;      /* -EFAULT: a pointer into unmapped memory */
	uint64_t no_python;   /* -ENOENT: no Python state or frame on that thread */
	uint64_t other;	      /* -ENOTSUP, -ESRCH, -ENOMEM... */
	uint64_t thread_maps; /* walks of a thread list to map tids (a new tid) */
};
void sw_pyframes__stats(const struct sw_pyframes *r, struct sw_pyframes_stats *out);

/* One line for people when frames of pid cannot be read, else NULL. */
const char *sw_pyframes__note(struct sw_pyframes *r, uint32_t pid);

#endif
