/* SPDX-License-Identifier: Apache-2.0 */
/*
 * UTF-8 for strings that come from outside: comm and thread names cut by the
 * kernel at 15 bytes (TASK_COMM_LEN), host names, whatever a peer sends.
 * Prometheus label values and JSON must be valid UTF-8, and a fixed buffer
 * must be cut between characters, not inside one.
 *
 * Well-formed means Unicode 15, table 3-7: no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF. An ill-formed sequence becomes
 * one U+FFFD per maximal subpart (Unicode 15, 3.9 "U+FFFD Substitution of
 * Maximal Subparts", what WHATWG decoders and Python do), so one bad byte
 * never swallows the good characters after it.
 */
#ifndef SW_UTF8_H
#define SW_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/*
 * Copy at most srclen bytes of src into dst (size bytes, NUL included) as
 * valid UTF-8, stopping at the first NUL of src like strnlen(): src may be
 * a fixed char array such as a kernel comm[16]. Never reads src[srclen] or
 * beyond; src may be NULL when srclen is 0. The output is cut before the
 * first character that does not fit whole. Valid input that fits is copied
 * unchanged, so copying a copy gives the same bytes.
 *
 * Returns the length written, NUL not counted; with size 0 nothing is
 * written and 0 is returned.
 */
size_t sw_utf8_copy(char *dst, size_t size, const char *src, size_t srclen);

/* sw_utf8_copy() of a NUL-terminated string (NULL: ""), such as the strings
 * protobuf-c unpacks. */
static inline size_t sw_utf8_copy_str(char *dst, size_t size, const char *src)
{
	return sw_utf8_copy(dst, size, src, src ? strlen(src) : 0);
}

/* Whether len bytes of s are well-formed UTF-8 (a NUL byte is: U+0000). */
bool sw_utf8_valid(const char *s, size_t len);

#endif
