// SPDX-License-Identifier: Apache-2.0
/* common/utf8.c: valid output, cuts between characters, U+FFFD per maximal
 * subpart, no read past srclen. */
#include "utf8.h"
#include <criterion/criterion.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FFFD "\xef\xbf\xbd"

static char out[256];

/* copy NUL-terminated src into a buffer of size bytes */
static size_t cp(size_t size, const char *src)
{
	memset(out, 'X', sizeof(out));
	return sw_utf8_copy(out, size, src, strlen(src));
}

static void assert_copy(size_t size, const char *src, size_t srclen, const char *want)
{
	size_t n;

	memset(out, 'X', sizeof(out));
	n = sw_utf8_copy(out, size, src, srclen);
	cr_assert_eq(n, strlen(want), "length %zu, want %zu", n, strlen(want));
	cr_assert_str_eq(out, want);
	cr_assert(sw_utf8_valid(out, n));
}

TestSuite(utf8);

Test(utf8, comm_cut_by_the_kernel_inside_a_cyrillic_char)
{
	/* "приложение" is 20 bytes; TASK_COMM_LEN keeps 15: 7 chars and a lead byte */
	const char *name = "приложение";
	char comm[16];

	memcpy(comm, name, 15);
	comm[15] = '\0';
	cr_assert_not(sw_utf8_valid(comm, 15));
	/* the dangling lead byte is an ill-formed sequence: the reader sees the cut */
	assert_copy(32, comm, sizeof(comm), "приложе" FFFD);
	/* 16 bytes: U+FFFD no longer fits after 14 bytes + NUL; cut before it */
	assert_copy(16, comm, sizeof(comm), "приложе");
}

Test(utf8, long_names_are_cut_at_31_and_127_on_a_boundary)
{
	char ascii[201], cyr[201], mixed[202];
	size_t n;

	memset(ascii, 'a', 200);
	ascii[200] = '\0';
	for (int i = 0; i < 100; i++)
		memcpy(cyr + 2 * i, "ж", 2);
	cyr[200] = '\0';

	cr_assert_eq(cp(32, ascii), 31);
	cr_assert_eq(cp(128, ascii), 127);
	/* two-byte chars: 31 and 127 are odd, the last whole char ends at 30, 126 */
	n = cp(32, cyr);
	cr_assert_eq(n, 30);
	cr_assert(sw_utf8_valid(out, n));
	cr_assert_eq(memcmp(out, cyr, 30), 0);
	n = cp(128, cyr);
	cr_assert_eq(n, 126);
	cr_assert(sw_utf8_valid(out, n));
	/* 'a' then 2-byte chars: byte 31 ends a char, so all 31 are kept */
	mixed[0] = 'a';
	memcpy(mixed + 1, cyr, sizeof(cyr));
	cr_assert_eq(cp(32, mixed), 31);
	cr_assert(sw_utf8_valid(out, 31));
	cr_assert_eq(cp(128, mixed), 127);
}

Test(utf8, four_byte_chars_at_the_cut)
{
	/* U+1F600, 4 bytes each */
	const char *e = "😀😀😀😀😀😀😀😀😀😀";

	cr_assert_eq(cp(32, e), 28, "7 whole, the 8th would need byte 31 and the NUL");
	cr_assert_eq(cp(9, e), 8);
	cr_assert_eq(cp(8, e), 4);
	cr_assert_eq(cp(4, e), 0);
	cr_assert_str_eq(out, "");
	/* srclen cuts the second one after 2 bytes: one U+FFFD for F0 9F */
	assert_copy(32, e, 6, "😀" FFFD);
	/* U+10FFFF is the last code point */
	assert_copy(32, "\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf");
}

Test(utf8, invalid_sequences_become_one_fffd_per_maximal_subpart)
{
	assert_copy(32,
		    "a\xff"
		    "b",
		    3, "a" FFFD "b");
	assert_copy(32, "\x80", 1, FFFD);			     /* lone continuation */
	assert_copy(32, "\xc0\xaf", 2, FFFD FFFD);		     /* overlong '/' */
	assert_copy(32, "\xc1\xbf", 2, FFFD FFFD);		     /* overlong, C1 */
	assert_copy(32, "\xe0\x80\xaf", 3, FFFD FFFD FFFD);	     /* overlong 3-byte */
	assert_copy(32, "\xf0\x80\x80\xaf", 4, FFFD FFFD FFFD FFFD); /* overlong 4-byte */
	assert_copy(32, "\xed\xa0\x80", 3, FFFD FFFD FFFD);	     /* surrogate D800 */
	assert_copy(32, "\xed\xbf\xbf", 3, FFFD FFFD FFFD);	     /* surrogate DFFF */
	assert_copy(32, "\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD); /* U+110000 */
	assert_copy(32, "\xf5\x80", 2, FFFD FFFD);
	/* a truncated sequence is one subpart; the next good char survives */
	assert_copy(32,
		    "\xe2\x82"
		    "A",
		    3, FFFD "A");
	assert_copy(32,
		    "\xf0\x9f\x98"
		    "ok",
		    5, FFFD "ok");
	/* U+FFFD itself needs 3 bytes of room */
	assert_copy(4, "ab\xff", 3, "ab");
	assert_copy(5, "a\xff", 2, "a" FFFD);

	cr_assert_not(sw_utf8_valid("\xc0\xaf", 2));
	cr_assert_not(sw_utf8_valid("\xed\xa0\x80", 3));
	cr_assert_not(sw_utf8_valid("\xf4\x90\x80\x80", 4));
	cr_assert_not(sw_utf8_valid("\xe2\x82", 2));
	cr_assert(sw_utf8_valid("\xe2\x82\xac", 3)); /* € */
	cr_assert(sw_utf8_valid("\xed\x9f\xbf", 3)); /* U+D7FF, just below the surrogates */
}

Test(utf8, embedded_nul_ends_the_copy)
{
	assert_copy(32, "ab\0cd", 5, "ab");
	/* a NUL inside a sequence: the subpart before it, then the end */
	assert_copy(32, "a\xd0\0\xb0", 4, "a" FFFD);
	cr_assert(sw_utf8_valid("ab\0cd", 5), "U+0000 is well-formed");
}

Test(utf8, empty_and_tiny_buffers)
{
	assert_copy(32, "", 0, "");
	assert_copy(32, NULL, 0, "");
	assert_copy(1, "abc", 3, "");
	memset(out, 'X', sizeof(out));
	cr_assert_eq(sw_utf8_copy(out, 0, "abc", 3), 0);
	cr_assert_eq(out[0], 'X', "size 0 writes nothing");
	cr_assert(sw_utf8_valid("", 0));
	cr_assert(sw_utf8_valid(NULL, 0));
}

Test(utf8, copy_of_a_copy_is_the_same)
{
	char a[32], b[32];
	const char *src = "xприложение\xff😀😀😀😀";
	size_t n;

	n = sw_utf8_copy(a, sizeof(a), src, strlen(src));
	cr_assert_eq(sw_utf8_copy(b, sizeof(b), a, n), n);
	cr_assert_str_eq(a, b);
	cr_assert_eq(sw_utf8_copy(b, sizeof(b), a, sizeof(a)), n);
}

Test(utf8, never_reads_past_srclen)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *src;

	cr_assert_neq(m, MAP_FAILED);
	cr_assert_eq(mprotect(m + pg, pg, PROT_NONE), 0);
	/* no NUL, a sequence that wants more bytes, then the guard page */
	src = m + pg - 3;
	memcpy(src, "\xf0\x9f\x98", 3);
	assert_copy(32, src, 3, FFFD);
	cr_assert_not(sw_utf8_valid(src, 3));
	src = m + pg - 2;
	memcpy(src, "ab", 2);
	assert_copy(32, src, 2, "ab");
	cr_assert(sw_utf8_valid(src, 2));
	munmap(m, 2 * pg);
}
