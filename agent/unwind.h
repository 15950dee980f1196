/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unwind: native stacks from a copy of a thread's registers and user stack
 * (bpf/stacks.bpf.c), without frame pointers, from the .eh_frame CFI that
 * node and Debian's stripped python3.11 both carry, with elfutils' libdwfl;
 * and names for the frames.
 *
 *  - One Dwfl per process: its modules are the ELF files /proc/PID/maps
 *    lists, opened through /proc/PID/root (a container's files without
 *    entering its mount namespace); rebuilt at exec (sw_unwind__forget) and
 *    when a PC falls in a file mapping it does not know (dlopen).
 *  - Memory comes from the stack copy, else from the target (target_io.h):
 *    the callers of a blocked frame do not move while it blocks.
 *  - JIT code has no CFI: libdw's x86_64 backend falls back to the frame
 *    pointer there (x86_64_unwind.c), which V8 keeps in every JS frame.
 *  - Names: the ELF symtab or dynsym (dwfl_module_addrinfo), C++ demangled
 *    without parameter lists; JIT frames from the process's perf map, or
 *    from a sw_jit_namer given by a runtime (V8's postmortem metadata
 *    later); otherwise "[jit]".
 */
#ifndef SW_UNWIND_H
#define SW_UNWIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sw_tio;
struct sw_unwind;

#define SW_UNWIND_MAX_FRAMES 128

/*
 * Naming JIT frames, the seam for runtimes: name pc of pid into buf, 0 when
 * named, -ENOENT when not known. The perf map is one such namer (built in);
 * a reader of V8's postmortem metadata (v8dbg_* symbols of node) would be
 * another, tried first.
 */
struct sw_jit_namer {
	int (*name)(void *ctx, uint32_t pid, uint64_t pc, char *buf, size_t len);
	void *ctx;
};

/* t: how target memory and files are read; not owned. */
struct sw_unwind *sw_unwind__new(struct sw_tio *t);
void sw_unwind__free(struct sw_unwind *u);
void sw_unwind__set_jit_namer(struct sw_unwind *u, const struct sw_jit_namer *namer);

/* Forget what is cached for pid (it exec'd or exited). */
void sw_unwind__forget(struct sw_unwind *u, uint32_t pid);

/*
 * Unwind a sample. regs: SW_STK_NREGS registers in DWARF order
 * (bpf/stacks.h); stack: len bytes copied from base. pcs[] gets the frames'
 * PCs, innermost first; is_return[i] says pcs[i] is a return address
 * (a caller frame: its call is at pc - 1). Returns the number of frames
 * (>= 1), or -errno.
 */
int sw_unwind__stack(struct sw_unwind *u, uint32_t pid, uint32_t tid, const uint64_t *regs,
		     uint64_t base, const void *stack, size_t len, uint64_t *pcs, bool *is_return,
		     int max);

/*
 * The name of a frame: "Builtins_JsonParse",
 * "v8::internal::JsonParser<unsigned char>::ParseJson", a JS function from
 * the perf map, "[jit]", or "[libfoo.so+0x1234]". Returns buf.
 */
const char *sw_unwind__name(struct sw_unwind *u, uint32_t pid, uint64_t pc, bool is_return,
			    char *buf, size_t len);

/* The raw ELF symbol name at pc (not demangled), or NULL: for runtimes that
 * must recognise a function (the CPython evaluator). */
const char *sw_unwind__symbol(struct sw_unwind *u, uint32_t pid, uint64_t pc, bool is_return);

/* JIT frames of pid were seen without a name (no perf map): the caller says
 * once how to get names. */
bool sw_unwind__unnamed_jit(struct sw_unwind *u, uint32_t pid);

/*
 * A symbol for people: C++ demangled (__cxa_demangle), its parameter list,
 * return type and " [clone .cold]" suffixes dropped:
 * "_ZN2v88internal10JsonParserIhE9ParseJsonEv" ->
 * "v8::internal::JsonParser<unsigned char>::ParseJson". Others copied.
 */
void sw_unwind_format_symbol(const char *sym, char *out, size_t len);

/* The perf map of a process as seen from the agent: the target writes
 * /tmp/perf-<its own pid>.map in its mount namespace. */
void sw_unwind_perfmap_path(uint32_t pid, uint32_t nspid, char *out, size_t len);

#endif
