/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Symbolize: ELF reading for runtime discovery and symbolization: symbols from
 * .dynsym/.symtab and version strings from .rodata. Paths may be
 * /proc/PID/exe or /proc/PID/root/..., so a container's binaries are read
 * without entering its mount namespace.
 */
#ifndef SW_SYMBOLIZE_H
#define SW_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

struct sw_elf_sym {
	uint64_t value;	  /* st_value: the link-time virtual address */
	uint64_t size;
	uint64_t file_off; /* where the symbol's bytes are in the file; 0 for .bss */
	/* to place it in a process: address = mapping of file offset 0
	 * - load_vaddr + value, or value itself for a non-PIE executable */
	uint64_t load_vaddr; /* page-aligned p_vaddr of the PT_LOAD at offset 0 */
	int is_exec;	     /* ET_EXEC: loaded at its link-time addresses */
};

/* Find a symbol by exact name, .dynsym first then .symtab.
 * Returns 0, -ENOENT if absent, or -errno / -EINVAL for a bad file. */
int sw_elf_find_symbol(const char *path, const char *name, struct sw_elf_sym *sym);

/*
 * Find the first NUL-delimited string in .rodata that looks like
 * "<prefix>MAJOR.MINOR.PATCH" and nothing else (node keeps
 * "node.js/vX.Y.Z" for the inspector's /json/version). Writes the version without the prefix.
 * Returns 0, -ENOENT, or -errno.
 */
int sw_elf_find_version(const char *path, const char *prefix, size_t skip, char *out,
			size_t outlen);

/* Is s exactly "D+.D+.D+"? Exposed for tests. */
int sw_is_semver(const char *s, size_t len);

#endif
