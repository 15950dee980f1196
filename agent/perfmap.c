// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "perfmap.h"

struct pm_entry {
	uint64_t start, end;
	uint32_t seq; /* line order: the later of two overlapping entries wins */
	char *name;
};

struct sw_perfmap {
	char *path;
	off_t read_off; /* bytes of whole lines consumed */
	struct pm_entry *e;
	size_t n, cap;
	size_t n_sorted; /* e[0..n_sorted) sorted by start */
	uint64_t bad_lines;
	uint32_t seq;
};

struct sw_perfmap *sw_perfmap__new(const char *path)
{
	struct sw_perfmap *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->path = strdup(path ? path : "");
	if (!m->path) {
		free(m);
		return NULL;
	}
	return m;
}

void sw_perfmap__free(struct sw_perfmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->e[i].name);
	free(m->e);
	free(m->path);
	free(m);
}

/* "7f3a2c0040 1c0 LazyCompile:*parse /app/x.js:3:1" */
static int parse_line(struct sw_perfmap *m, char *line)
{
	struct pm_entry *ne;
	uint64_t start, size;
	char *p = line, *end, *name;
	size_t len;

	errno = 0;
	start = strtoull(p, &end, 16);
	if (errno || end == p || *end != ' ')
		return -EINVAL;
	p = end + 1;
	size = strtoull(p, &end, 16);
	if (errno || end == p || *end != ' ' || !size || start + size < start)
		return -EINVAL;
	name = end + 1;
	len = strlen(name);
	while (len && (name[len - 1] == '\n' || name[len - 1] == '\r'))
		name[--len] = 0;
	if (!len)
		return -EINVAL;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 256;

		ne = realloc(m->e, cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		m->e = ne;
		m->cap = cap;
	}
	name = strdup(name);
	if (!name)
		return -ENOMEM;
	m->e[m->n++] = (struct pm_entry){ start, start + size, m->seq++, name };
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct pm_entry *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void sort_entries(struct sw_perfmap *m)
{
	if (m->n_sorted != m->n)
		qsort(m->e, m->n, sizeof(*m->e), cmp_entry);
	m->n_sorted = m->n;
}

int sw_perfmap__load_stream(struct sw_perfmap *m, FILE *f)
{
	char buf[1024];
	int err;

	/* whole lines only: node may be writing the last one right now */
	while (fgets(buf, sizeof(buf), f)) {
		size_t len = strlen(buf);

		if (!len || buf[len - 1] != '\n') {
			if (len == sizeof(buf) - 1) {
				/* a name longer than the buffer: skip the rest */
				int c;

				m->read_off += (off_t)len;
				while ((c = fgetc(f)) != EOF && c != '\n')
					m->read_off++;
				if (c == '\n')
					m->read_off++;
				m->bad_lines++;
				continue;
			}
			break;
		}
		m->read_off += (off_t)len;
		err = parse_line(m, buf);
		if (err == -ENOMEM)
			return err;
		if (err)
			m->bad_lines++;
	}
	sort_entries(m);
	return 0;
}

int sw_perfmap__refresh(struct sw_perfmap *m)
{
	struct stat st;
	FILE *f;
	int err;

	if (stat(m->path, &st))
		return -errno;
	if (st.st_size < m->read_off) {
		/* truncated: a new process with a recycled pid */
		for (size_t i = 0; i < m->n; i++)
			free(m->e[i].name);
		m->n = m->n_sorted = 0;
		m->read_off = 0;
	}
	if (st.st_size == m->read_off)
		return 0;
	f = fopen(m->path, "re");
	if (!f)
		return -errno;
	if (fseeko(f, m->read_off, SEEK_SET)) {
		err = -errno;
		fclose(f);
		return err;
	}
	err = sw_perfmap__load_stream(m, f);
	fclose(f);
	return err;
}

const char *sw_perfmap__lookup(struct sw_perfmap *m, uint64_t pc)
{
	const struct pm_entry *best = NULL;
	size_t lo = 0, hi = m->n_sorted;

	/* last entry with start <= pc */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->e[mid].start <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* JIT code is not nested, but freed code is reused: of the entries
	 * covering pc, the one written last names what runs there now. Look
	 * back over a few earlier starts. */
	for (size_t i = lo, k = 0; i > 0 && k < 16; i--, k++) {
		const struct pm_entry *e = &m->e[i - 1];

		if (pc < e->end && (!best || e->seq > best->seq))
			best = e;
	}
	return best ? best->name : NULL;
}

size_t sw_perfmap__entries(const struct sw_perfmap *m)
{
	return m->n;
}

uint64_t sw_perfmap__bad_lines(const struct sw_perfmap *m)
{
	return m->bad_lines;
}
