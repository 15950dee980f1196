// SPDX-License-Identifier: Apache-2.0
#include "utf8.h"
#include <string.h>

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */
#define REPLACEMENT_LEN 3

/*
 * Length of the sequence at p (n >= 1 bytes available) and whether it is
 * well-formed. When it is not, the length is that of its maximal subpart:
 * the longest prefix that could still have begun a well-formed sequence,
 * at least 1. The second-byte ranges are those of Unicode table 3-7: they
 * are what rules out overlongs (E0, F0), surrogates (ED) and > U+10FFFF (F4).
 */
static size_t seq_len(const unsigned char *p, size_t n, bool *ok)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t need;

	*ok = false;
	if (c < 0x80) {
		*ok = true;
		return 1;
	}
	if (c < 0xc2 || c > 0xf4) /* continuation byte, C0/C1 overlong, F5.. */
		return 1;
	if (c < 0xe0) {
		need = 2;
	} else if (c < 0xf0) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else {
		need = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	}
	for (size_t i = 1; i < need; i++) {
		if (i >= n || p[i] < lo || p[i] > hi)
			return i;
		lo = 0x80;
		hi = 0xbf;
	}
	*ok = true;
	return need;
}

size_t sw_utf8_copy(char *dst, size_t size, const char *src, size_t srclen)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t in = 0, out = 0, n;
	bool ok;

	if (!size)
		return 0;
	while (in < srclen && p[in]) {
		n = seq_len(p + in, srclen - in, &ok);
		if (ok) {
			if (out + n >= size)
				break;
			memcpy(dst + out, p + in, n);
			out += n;
		} else {
			if (out + REPLACEMENT_LEN >= size)
				break;
			memcpy(dst + out, REPLACEMENT, REPLACEMENT_LEN);
			out += REPLACEMENT_LEN;
		}
		in += n;
	}
	dst[out] = '\0';
	return out;
}

bool sw_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t in = 0;
	bool ok;

	while (in < len) {
		in += seq_len(p + in, len - in, &ok);
		if (!ok)
			return false;
	}
	return true;
}
