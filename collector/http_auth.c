// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE /* memmem */
#include "http_auth.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The whole of a small regular file, NUL-terminated. Not O_NOFOLLOW: a
 * Kubernetes secret volume is a symlink (..data/NAME) to the real file.
 */
static int read_small(const char *path, size_t max, char **out, size_t *len, bool *loose,
		      char *why, size_t why_size)
{
	struct stat st;
	size_t want = 0, got = 0;
	char *buf = NULL;
	ssize_t r;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		snprintf(why, why_size, "cannot open it: %s", strerror(errno));
		return err;
	}
	if (fstat(fd, &st)) {
		err = -errno;
		snprintf(why, why_size, "cannot stat it: %s", strerror(errno));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		snprintf(why, why_size, "not a regular file");
		goto cleanup;
	}
	if ((unsigned long long)st.st_size > max) {
		err = -EFBIG;
		snprintf(why, why_size, "%lld bytes, more than the %zu such a file can be",
			 (long long)st.st_size, max);
		goto cleanup;
	}
	want = (size_t)st.st_size;
	buf = malloc(want + 1);
	if (!buf) {
		err = -ENOMEM;
		snprintf(why, why_size, "out of memory");
		goto cleanup;
	}
	while (got < want) {
		r = read(fd, buf + got, want - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			snprintf(why, why_size, "cannot read it: %s", strerror(errno));
			goto cleanup;
		}
		if (r == 0)
			break; /* shrank since fstat: take what is there */
		got += (size_t)r;
	}
	buf[got] = '\0';
	close(fd);
	*out = buf;
	*len = got;
	*loose = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
	return 0;
cleanup:
	sw_http_auth__free_secret(buf, want);
	close(fd);
	return err;
}

void sw_http_auth__free_secret(char *s, size_t len)
{
	if (!s)
		return;
	explicit_bzero(s, len);
	free(s);
}

int sw_http_auth__read_token(const char *path, struct sw_secret *s, char *why, size_t why_size)
{
	int err = sw_secret__load(path, s, why, why_size);

	if (err)
		return err;
	for (size_t i = 0; i < s->len; i++) {
		if (s->b[i] > 0x20 && s->b[i] < 0x7f)
			continue;
		snprintf(why, why_size,
			 "byte %zu of the token in %s is 0x%02x, a space, a control character or "
			 "not ASCII: it travels in an HTTP header, use printable ASCII (openssl rand "
			 "-hex 32)",
			 i, path, s->b[i]);
		explicit_bzero(s, sizeof(*s));
		return -EINVAL;
	}
	return 0;
}

/* RFC 7468 §2's base64 lines, with the blanks that some tools leave */
static bool base64_line(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '=' || c == ' ' || c == '\t'))
			return false;
	}
	return true;
}

struct pem_scan {
	unsigned int certs, keys;
	bool encrypted;
};

/*
 * Walks the PEM blocks (RFC 7468; text outside them is allowed, as
 * `openssl x509 -text` leaves it). NULL, or what is wrong, with line set.
 */
static const char *pem_scan(const char *p, size_t len, struct pem_scan *s, unsigned int *line)
{
	static const char begin[] = "-----BEGIN ", end[] = "-----END ", dash[] = "-----";
	char label[80] = "";
	size_t body = 0;
	bool inside = false;

	*line = 0;
	while (len) {
		const char *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) : len, adv = nl ? n + 1 : n;

		++*line;
		if (n && p[n - 1] == '\r')
			n--;
		if (n >= sizeof(begin) - 1 + 5 && !memcmp(p, begin, sizeof(begin) - 1) &&
		    !memcmp(p + n - 5, dash, 5)) {
			size_t ln = n - (sizeof(begin) - 1) - 5;

			if (inside)
				return "a BEGIN line inside another block";
			if (ln == 0 || ln >= sizeof(label))
				return "a BEGIN line without a sensible label";
			memcpy(label, p + sizeof(begin) - 1, ln);
			label[ln] = '\0';
			inside = true;
			body = 0;
			if (!strcmp(label, "CERTIFICATE") || !strcmp(label, "X509 CERTIFICATE"))
				s->certs++;
			if (ln >= 11 && !strcmp(label + ln - 11, "PRIVATE KEY")) {
				s->keys++;
				if (!strncmp(label, "ENCRYPTED", 9))
					s->encrypted = true;
			}
		} else if (n >= sizeof(end) - 1 + 5 && !memcmp(p, end, sizeof(end) - 1)) {
			size_t ln = n - (sizeof(end) - 1) - 5;

			if (!inside)
				return "an END line outside a block";
			if (ln != strlen(label) || memcmp(p + sizeof(end) - 1, label, ln) ||
			    memcmp(p + n - 5, dash, 5))
				return "an END line that does not close its BEGIN line";
			if (!body)
				return "an empty block";
			inside = false;
		} else if (inside && memchr(p, ':', n)) {
			/* RFC 1421 headers of the old OpenSSL encrypted keys */
			if (n >= 9 && memmem(p, n, "ENCRYPTED", 9))
				s->encrypted = true;
		} else if (inside) {
			if (!base64_line(p, n))
				return "a line that is not base64 inside a block (the file is damaged)";
			body += n;
		}
		p += adv;
		len -= adv;
	}
	if (inside)
		return "no END line after the last BEGIN line (the file is cut short)";
	return NULL;
}

int sw_http_auth__read_pem(const char *path, bool key, char **out, bool *loose, char *why,
			   size_t why_size)
{
	struct pem_scan s = {0};
	const char *bad;
	unsigned int line;
	size_t len = 0;
	char *t = NULL;
	int err;

	err = read_small(path, SW_HTTP_PEM_MAX, &t, &len, loose, why, why_size);
	if (err)
		return err;
	err = -EINVAL;
	/* libmicrohttpd takes the PEM as a C string */
	if (memchr(t, '\0', len)) {
		snprintf(why, why_size,
			 "binary, not PEM (DER? convert it: openssl %s -inform der -in FILE -out "
			 "FILE.pem)",
			 key ? "pkey" : "x509");
		goto fail;
	}
	bad = pem_scan(t, len, &s, &line);
	if (bad) {
		snprintf(why, why_size, "line %u: %s", line, bad);
		goto fail;
	}
	if (!key && !s.certs) {
		snprintf(why, why_size, "%s",
			 s.keys ? "holds a private key, not a certificate: --http-tls-cert and "
				  "--http-tls-key swapped?"
				: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
		goto fail;
	}
	if (key && !s.keys) {
		snprintf(why, why_size, "%s",
			 s.certs ? "holds a certificate, not a private key: --http-tls-cert and "
				   "--http-tls-key swapped?"
				 : "holds no PEM private key (-----BEGIN PRIVATE KEY-----)");
		goto fail;
	}
	if (key && s.keys > 1) {
		snprintf(why, why_size, "holds %u private keys: give the certificate's one alone",
			 s.keys);
		goto fail;
	}
	if (key && s.encrypted) {
		snprintf(why, why_size,
			 "the key is encrypted and the collector cannot ask for its passphrase: "
			 "decrypt it (openssl pkey -in FILE -out FILE.plain) and keep that one "
			 "readable by the collector's user only");
		goto fail;
	}
	*out = t;
	return 0;
fail:
	sw_http_auth__free_secret(t, len);
	return err;
}

bool sw_http_auth__bearer_ok(const struct sw_secret *token, const char *hdr, size_t hdr_len)
{
	static const char scheme[] = "Bearer";
	const size_t sl = sizeof(scheme) - 1;
	size_t i = sl;

	if (hdr_len <= sl || strncasecmp(hdr, scheme, sl) || hdr[sl] != ' ')
		return false;
	while (i < hdr_len && hdr[i] == ' ')
		i++;
	return sw_secret__equal(token->b, token->len, (const uint8_t *)hdr + i, hdr_len - i);
}
