// SPDX-License-Identifier: Apache-2.0
#include "secret.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sw_secret__load(const char *path, struct sw_secret *s, char *why, size_t whylen)
{
	uint8_t buf[SW_SECRET_MAX + 2];
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd, err;

	memset(s, 0, sizeof(*s));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		err = errno;
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(err));
		return -err;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(why, whylen, "%s is not a regular file: put the token in a file", path);
		return -EINVAL;
	}
	/* one byte past the limit (and one for its newline) tells too long */
	while (n < sizeof(buf)) {
		r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno;
			close(fd);
			snprintf(why, whylen, "cannot read %s: %s", path, strerror(err));
			return -err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
		     buf[n - 1] == '\t'))
		n--;
	if (n < SW_SECRET_MIN || n > SW_SECRET_MAX) {
		snprintf(why, whylen,
			 "%s holds %s%zu bytes, a token takes %d to %d: make one with "
			 "'openssl rand -hex 32 > %s'",
			 path, n > SW_SECRET_MAX ? "over " : "", n > SW_SECRET_MAX ? (size_t)SW_SECRET_MAX : n,
			 SW_SECRET_MIN, SW_SECRET_MAX, path);
		memset(buf, 0, sizeof(buf));
		return -EINVAL;
	}
	memcpy(s->b, buf, n);
	s->len = n;
	s->world_readable = (st.st_mode & S_IROTH) != 0;
	memset(buf, 0, sizeof(buf));
	return 0;
}

bool sw_secret__equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	/* a volatile accumulator: the compiler may not stop at the first
	 * difference */
	volatile uint8_t diff = (uint8_t)(alen != blen);
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}
