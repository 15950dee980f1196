// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include "target_io.h"

/* ---- files: a directory tree, /proc itself or a fixture ---- */

static void path_of(const struct sw_tio *t, const char *rel, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", t->root, rel);
}

static int dir_read_file(struct sw_tio *t, const char *rel, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	path_of(t, rel, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* one read: /proc files are produced whole by the first read */
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

static FILE *dir_open_file(struct sw_tio *t, const char *rel)
{
	char path[PATH_MAX];

	path_of(t, rel, path, sizeof(path));
	return fopen(path, "re");
}

static DIR *dir_open_dir(struct sw_tio *t, const char *rel)
{
	char path[PATH_MAX];

	path_of(t, rel, path, sizeof(path));
	return opendir(path);
}

static ssize_t dir_read_link(struct sw_tio *t, const char *rel, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;

	path_of(t, rel, path, sizeof(path));
	n = readlink(path, buf, len);
	return n < 0 ? -errno : n;
}

/* ---- live memory ---- */

static int live_read_mem(struct sw_tio *t, pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {.iov_base = buf, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
	ssize_t n;

	(void)t;
	n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return errno == ESRCH ? -ESRCH : -EFAULT;
	return n == (ssize_t)len ? 0 : -EFAULT; /* a partial read crossed into a hole */
}

/* process_vm_readv stops at the first range it cannot read and returns the
 * bytes it moved: the ranges before are whole, the one it stopped in failed,
 * the rest are tried again in the next call. */
static void live_read_memv(struct sw_tio *t, pid_t pid, struct sw_tio_vec *v, size_t n)
{
	struct iovec local[64], remote[64];

	while (n) {
		size_t k = n < 64 ? n : 64, done = 0;
		ssize_t got;

		for (size_t i = 0; i < k; i++) {
			local[i] = (struct iovec){.iov_base = v[i].buf, .iov_len = v[i].len};
			remote[i] = (struct iovec){.iov_base = (void *)(uintptr_t)v[i].addr,
						   .iov_len = v[i].len};
		}
		t->mem_calls++;
		got = process_vm_readv(pid, local, k, remote, k, 0);
		if (got < 0) {
			int err = errno == ESRCH ? -ESRCH : -EFAULT;

			/* the first range failed (or all did): say so, go on */
			v[0].err = err;
			if (err == -ESRCH) {
				for (size_t i = 1; i < n; i++)
					v[i].err = err;
				return;
			}
			v++;
			n--;
			continue;
		}
		while (done < k && (size_t)got >= v[done].len) {
			got -= (ssize_t)v[done].len;
			v[done++].err = 0;
		}
		if (done < k)
			v[done++].err = -EFAULT; /* partly read: it crossed into a hole */
		v += done;
		n -= done;
	}
}

static void plain_free(struct sw_tio *t) { free(t); }

static const struct sw_tio_ops proc_ops = {
    .read_file = dir_read_file,
    .open_file = dir_open_file,
    .open_dir = dir_open_dir,
    .read_link = dir_read_link,
    .read_mem = live_read_mem,
    .read_memv = live_read_memv,
    .free = plain_free,
};

struct sw_tio *sw_tio__new_proc(const char *root)
{
	struct sw_tio *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ops = &proc_ops;
	snprintf(t->root, sizeof(t->root), "%s", root ? root : "/proc");
	return t;
}

/* ---- memory images: fixtures and recordings ---- */

struct seg {
	uint64_t addr, len;
	uint8_t *bytes;
};

struct sw_tio_image {
	struct sw_tio base;
	struct sw_tio *inner; /* recorder only */
	struct seg *segs;
	size_t n, cap;
};

static int image_add(struct sw_tio_image *im, uint64_t addr, const void *bytes, size_t len)
{
	struct seg *s;

	for (size_t i = 0; i < im->n; i++) /* the same read twice is kept once */
		if (im->segs[i].addr == addr && im->segs[i].len == len &&
		    !memcmp(im->segs[i].bytes, bytes, len))
			return 0;
	if (im->n == im->cap) {
		size_t cap = im->cap ? im->cap * 2 : 16;

		s = realloc(im->segs, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		im->segs = s;
		im->cap = cap;
	}
	s = &im->segs[im->n];
	s->bytes = malloc(len ? len : 1);
	if (!s->bytes)
		return -ENOMEM;
	memcpy(s->bytes, bytes, len);
	s->addr = addr;
	s->len = len;
	im->n++;
	return 0;
}

static int image_read_mem(struct sw_tio *t, pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct sw_tio_image *im = (struct sw_tio_image *)t;

	(void)pid;
	/* the last recorded copy wins: memory read later is newer */
	for (size_t i = im->n; i-- > 0;) {
		const struct seg *s = &im->segs[i];

		if (addr >= s->addr && len <= s->len && addr - s->addr <= s->len - len) {
			memcpy(buf, s->bytes + (addr - s->addr), len);
			return 0;
		}
	}
	return -EFAULT;
}

static void image_free(struct sw_tio *t)
{
	struct sw_tio_image *im = (struct sw_tio_image *)t;

	for (size_t i = 0; i < im->n; i++)
		free(im->segs[i].bytes);
	free(im->segs);
	sw_tio__free(im->inner);
	free(im);
}

static const struct sw_tio_ops fixture_ops = {
    .read_file = dir_read_file,
    .open_file = dir_open_file,
    .open_dir = dir_open_dir,
    .read_link = dir_read_link,
    .read_mem = image_read_mem,
    .free = image_free,
};

struct sw_tio *sw_tio__new_fixture(const char *root)
{
	struct sw_tio_image *im = calloc(1, sizeof(*im));

	if (!im)
		return NULL;
	im->base.ops = &fixture_ops;
	/* no root: every file read fails with ENOENT, as for a gone pid */
	snprintf(im->base.root, sizeof(im->base.root), "%s", root ? root : "/nonexistent");
	return &im->base;
}

int sw_tio__add_segment(struct sw_tio *t, uint64_t addr, const void *bytes, size_t len)
{
	if (t->ops != &fixture_ops)
		return -EINVAL;
	return image_add((struct sw_tio_image *)t, addr, bytes, len);
}

static int rec_read_file(struct sw_tio *t, const char *rel, char *buf, size_t len)
{
	struct sw_tio *in = ((struct sw_tio_image *)t)->inner;

	return in->ops->read_file(in, rel, buf, len);
}

static FILE *rec_open_file(struct sw_tio *t, const char *rel)
{
	struct sw_tio *in = ((struct sw_tio_image *)t)->inner;

	return in->ops->open_file(in, rel);
}

static DIR *rec_open_dir(struct sw_tio *t, const char *rel)
{
	struct sw_tio *in = ((struct sw_tio_image *)t)->inner;

	return in->ops->open_dir(in, rel);
}

static ssize_t rec_read_link(struct sw_tio *t, const char *rel, char *buf, size_t len)
{
	struct sw_tio *in = ((struct sw_tio_image *)t)->inner;

	return in->ops->read_link(in, rel, buf, len);
}

static int rec_read_mem(struct sw_tio *t, pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct sw_tio_image *im = (struct sw_tio_image *)t;
	int err = im->inner->ops->read_mem(im->inner, pid, addr, buf, len);

	if (!err && image_add(im, addr, buf, len))
		t->mem_faults++; /* the read worked; the recording is short */
	return err;
}

static void rec_read_memv(struct sw_tio *t, pid_t pid, struct sw_tio_vec *v, size_t n)
{
	struct sw_tio_image *im = (struct sw_tio_image *)t;
	uint64_t calls = im->inner->mem_calls;

	sw_tio__read_memv(im->inner, pid, v, n);
	t->mem_calls += im->inner->mem_calls - calls;
	for (size_t i = 0; i < n; i++)
		if (!v[i].err && image_add(im, v[i].addr, v[i].buf, v[i].len))
			t->mem_faults++;
}

static const struct sw_tio_ops recorder_ops = {
    .read_file = rec_read_file,
    .open_file = rec_open_file,
    .open_dir = rec_open_dir,
    .read_link = rec_read_link,
    .read_mem = rec_read_mem,
    .read_memv = rec_read_memv,
    .free = image_free,
};

struct sw_tio *sw_tio__new_recorder(struct sw_tio *inner)
{
	struct sw_tio_image *im;

	if (!inner)
		return NULL;
	im = calloc(1, sizeof(*im));
	if (!im)
		return NULL;
	im->base.ops = &recorder_ops;
	snprintf(im->base.root, sizeof(im->base.root), "%s", inner->root);
	im->inner = inner;
	return &im->base;
}

/*
 * Image file, host byte order (the fixtures are x86_64):
 *   "SWMEMIMG" u32 version (1) u32 count
 *   count x { u64 address, u64 length, length bytes }
 */
static const char image_magic[8] = {'S', 'W', 'M', 'E', 'M', 'I', 'M', 'G'};

int sw_tio__save_image(struct sw_tio *t, const char *path)
{
	struct sw_tio_image *im = (struct sw_tio_image *)t;
	uint32_t hdr[2] = {1, 0};
	int err = 0;
	FILE *f;

	if (t->ops != &recorder_ops && t->ops != &fixture_ops)
		return -EINVAL;
	f = fopen(path, "we");
	if (!f)
		return -errno;
	hdr[1] = (uint32_t)im->n;
	if (fwrite(image_magic, 8, 1, f) != 1 || fwrite(hdr, sizeof(hdr), 1, f) != 1)
		err = -EIO;
	for (size_t i = 0; !err && i < im->n; i++) {
		uint64_t h[2] = {im->segs[i].addr, im->segs[i].len};

		if (fwrite(h, sizeof(h), 1, f) != 1 ||
		    fwrite(im->segs[i].bytes, 1, im->segs[i].len, f) != im->segs[i].len)
			err = -EIO;
	}
	if (fclose(f) && !err)
		err = -EIO;
	return err;
}

/* An image is a test fixture, not user input, but a truncated or wrong file
 * still fails cleanly rather than reading past what it holds. */
#define SW_IMAGE_MAX_SEG (16u << 20)

int sw_tio__load_image(struct sw_tio *t, const char *path)
{
	char magic[8];
	uint32_t hdr[2];
	uint8_t *buf = NULL;
	int err = 0;
	FILE *f;

	if (t->ops != &fixture_ops)
		return -EINVAL;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fread(magic, 8, 1, f) != 1 || memcmp(magic, image_magic, 8) ||
	    fread(hdr, sizeof(hdr), 1, f) != 1 || hdr[0] != 1) {
		err = -EBADMSG;
		goto cleanup;
	}
	for (uint32_t i = 0; i < hdr[1]; i++) {
		uint64_t h[2];

		if (fread(h, sizeof(h), 1, f) != 1 || h[1] > SW_IMAGE_MAX_SEG) {
			err = -EBADMSG;
			goto cleanup;
		}
		free(buf);
		buf = malloc(h[1] ? h[1] : 1);
		if (!buf) {
			err = -ENOMEM;
			goto cleanup;
		}
		if (fread(buf, 1, h[1], f) != h[1]) {
			err = -EBADMSG;
			goto cleanup;
		}
		err = sw_tio__add_segment(t, h[0], buf, h[1]);
		if (err)
			goto cleanup;
	}
cleanup:
	free(buf);
	fclose(f);
	return err;
}

int sw_tio__read_mem(struct sw_tio *t, pid_t pid, uint64_t addr, void *buf, size_t len)
{
	int err;

	t->mem_reads++;
	if (t->ops->read_mem == live_read_mem)
		t->mem_calls++;
	err = t->ops->read_mem(t, pid, addr, buf, len);
	if (err)
		t->mem_faults++;
	return err;
}

size_t sw_tio__read_memv(struct sw_tio *t, pid_t pid, struct sw_tio_vec *v, size_t n)
{
	size_t failed = 0;

	if (t->ops->read_memv) {
		t->ops->read_memv(t, pid, v, n);
	} else {
		for (size_t i = 0; i < n; i++)
			v[i].err = t->ops->read_mem(t, pid, v[i].addr, v[i].buf, v[i].len);
	}
	for (size_t i = 0; i < n; i++)
		failed += v[i].err != 0;
	t->mem_reads += n;
	t->mem_faults += failed;
	return failed;
}

static struct sw_tio live;

void sw_tio__free(struct sw_tio *t)
{
	/* the live default is static: freeing what sw_tio_default() gave is a
	 * no-op, not a crash */
	if (t && t != &live)
		t->ops->free(t);
}

/* ---- the default: live /proc, replaceable by tests ---- */

static struct sw_tio live = {.ops = &proc_ops, .root = "/proc"};
static struct sw_tio *current = &live;

struct sw_tio *sw_tio_default(void) { return current; }

void sw_tio_set_default(struct sw_tio *t)
{
	if (current != &live)
		sw_tio__free(current);
	current = t ? t : &live;
}
