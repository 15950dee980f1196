/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading an exposition in the collector's unit tests: the sample lines of
 * one metric, and their values. memmem and memrchr are GNU: a test that
 * includes this defines _GNU_SOURCE before any include.
 */
#ifndef SW_TEST_EXPOSITION_H
#define SW_TEST_EXPOSITION_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/*
 * The next sample line of text at or after *at whose metric is name (the
 * line goes on with '{' or ' '; a name that holds its '{' is a prefix) and
 * that contains needle (NULL: any); NULL when none. *at moves past it.
 */
static inline const char *t_next_line(const char **at, const char *name, const char *needle,
				      size_t *len)
{
	size_t n = strlen(name);

	for (const char *p = *at; p && *p;) {
		const char *e = strchr(p, '\n');

		if (!e)
			break;
		*at = e + 1;
		if (!strncmp(p, name, n) && (strchr(name, '{') || p[n] == '{' || p[n] == ' ') &&
		    (!needle || memmem(p, (size_t)(e - p), needle, strlen(needle)))) {
			*len = (size_t)(e - p);
			return p;
		}
		p = e + 1;
	}
	return NULL;
}

static inline int t_count_lines(const char *text, const char *name, const char *needle)
{
	const char *at = text;
	size_t len;
	int c = 0;

	while (t_next_line(&at, name, needle, &len))
		c++;
	return c;
}

/* The value of the first such line; fails the test when there is none. */
static inline double t_value_of(const char *text, const char *name, const char *needle)
{
	const char *at = text, *p;
	size_t len;

	p = t_next_line(&at, name, needle, &len);
	if (!p)
		cr_assert_fail("no line %s ... %s in:\n%s", name, needle ? needle : "", text);
	return strtod((const char *)memrchr(p, ' ', len) + 1, NULL);
}

#endif
