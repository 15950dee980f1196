// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>
#include "symbolize.h"

static Elf *elf_open_path(const char *path, int *fdp)
{
	Elf *e;
	int fd;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF) {
		if (e)
			elf_end(e);
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	*fdp = fd;
	return e;
}

/* File offset of a virtual address, through the PT_LOAD that maps it. */
static int vaddr_to_off(Elf *e, uint64_t vaddr, uint64_t *off)
{
	size_t n;
	GElf_Phdr ph;

	if (elf_getphdrnum(e, &n))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_memsz) {
			*off = vaddr - ph.p_vaddr + ph.p_offset;
			return 0;
		}
	}
	return -ENOENT;
}

static int is_nobits(Elf *e, size_t shndx)
{
	Elf_Scn *scn = elf_getscn(e, shndx);
	GElf_Shdr sh;

	return scn && gelf_getshdr(scn, &sh) && sh.sh_type == SHT_NOBITS;
}

static void load_info(Elf *e, struct sw_elf_sym *sym)
{
	GElf_Ehdr eh;
	GElf_Phdr ph;
	size_t n;

	sym->is_exec = gelf_getehdr(e, &eh) && eh.e_type == ET_EXEC;
	sym->load_vaddr = 0;
	if (elf_getphdrnum(e, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD || ph.p_offset != 0)
			continue;
		sym->load_vaddr = ph.p_vaddr & ~(uint64_t)0xfff;
		break;
	}
}

static int find_in_symtab(Elf *e, Elf_Scn *scn, GElf_Shdr *sh, const char *name,
			  struct sw_elf_sym *sym)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t n;
	GElf_Sym s;
	const char *nm;

	if (!data || !sh->sh_entsize)
		return -ENOENT;
	n = sh->sh_size / sh->sh_entsize;
	for (size_t i = 0; i < n; i++) {
		if (!gelf_getsym(data, (int)i, &s) || s.st_shndx == SHN_UNDEF)
			continue;
		nm = elf_strptr(e, sh->sh_link, s.st_name);
		if (!nm || strcmp(nm, name))
			continue;
		sym->value = s.st_value;
		sym->size = s.st_size;
		if (vaddr_to_off(e, s.st_value, &sym->file_off) ||
		    s.st_shndx == SHN_COMMON || is_nobits(e, s.st_shndx))
			sym->file_off = 0;
		load_info(e, sym);
		return 0;
	}
	return -ENOENT;
}

int sw_elf_find_symbol(const char *path, const char *name, struct sw_elf_sym *sym)
{
	int fd = -1, err = -ENOENT;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	Elf *e;

	e = elf_open_path(path, &fd);
	if (!e)
		return -errno;
	/* .dynsym first: it survives strip, and is what Debian's python has */
	for (int pass = 0; pass < 2 && err; pass++) {
		scn = NULL;
		while ((scn = elf_nextscn(e, scn))) {
			if (!gelf_getshdr(scn, &sh))
				continue;
			if (sh.sh_type != (pass == 0 ? SHT_DYNSYM : SHT_SYMTAB))
				continue;
			err = find_in_symtab(e, scn, &sh, name, sym);
			if (!err)
				break;
		}
	}
	elf_end(e);
	close(fd);
	return err;
}

int sw_is_semver(const char *s, size_t len)
{
	int parts = 0, digits = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			digits++;
		} else if (s[i] == '.' && digits) {
			parts++;
			digits = 0;
		} else {
			return 0;
		}
	}
	return parts == 2 && digits > 0;
}

int sw_elf_find_version(const char *path, const char *prefix, size_t skip, char *out,
			size_t outlen)
{
	size_t plen = strlen(prefix), shstrndx;
	int fd = -1, err = -ENOENT;
	Elf_Scn *scn = NULL;
	Elf_Data *data;
	GElf_Shdr sh;
	const char *nm, *p, *end, *s;
	Elf *e;

	e = elf_open_path(path, &fd);
	if (!e)
		return -errno;
	if (elf_getshdrstrndx(e, &shstrndx)) {
		err = -EINVAL;
		goto cleanup;
	}
	while ((scn = elf_nextscn(e, scn))) {
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS)
			continue;
		nm = elf_strptr(e, shstrndx, sh.sh_name);
		if (!nm || strcmp(nm, ".rodata"))
			continue;
		data = elf_getdata(scn, NULL);
		if (!data || !data->d_buf)
			break;
		p = data->d_buf;
		end = p + data->d_size;
		/* walk NUL-separated strings; the version is a whole string */
		while (p < end) {
			s = memchr(p, '\0', (size_t)(end - p));
			if (!s)
				break;
			size_t len = (size_t)(s - p);
			if (len >= plen && len > skip && len - skip < 24 &&
			    !memcmp(p, prefix, plen) && sw_is_semver(p + skip, len - skip)) {
				if (len - skip + 1 > outlen) {
					err = -ENOSPC;
					goto cleanup;
				}
				memcpy(out, p + skip, len - skip);
				out[len - skip] = '\0';
				err = 0;
				goto cleanup;
			}
			p = s + 1;
		}
		break;
	}
cleanup:
	elf_end(e);
	close(fd);
	return err;
}
