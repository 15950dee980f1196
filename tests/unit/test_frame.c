// SPDX-License-Identifier: Apache-2.0
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "frame.h"
#include "secret.h"
#include "stallwatch.pb-c.h"

static uint8_t *pack_batch(size_t n_loops, size_t *len)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__LoopSummary **ls = calloc(n_loops, sizeof(*ls));
	uint8_t *buf;

	b.seq = 42;
	for (size_t i = 0; i < n_loops; i++) {
		ls[i] = calloc(1, sizeof(**ls));
		stallwatch__v1__loop_summary__init(ls[i]);
		ls[i]->pid = 1000 + (uint32_t)i;
		ls[i]->tid = 2000 + (uint32_t)i;
		ls[i]->thread = "node";
		ls[i]->role = "main";
		ls[i]->runtime = "node";
		ls[i]->iterations = 12345;
		ls[i]->hist_schema = 1;
	}
	b.loops = ls;
	b.n_loops = n_loops;
	*len = stallwatch__v1__batch__get_packed_size(&b);
	buf = malloc(*len);
	stallwatch__v1__batch__pack(&b, buf);
	for (size_t i = 0; i < n_loops; i++)
		free(ls[i]);
	free(ls);
	return buf;
}

static void roundtrip(bool zlib, size_t n_loops, bool expect_compressed)
{
	size_t len, flen, mlen;
	uint8_t *msg = pack_batch(n_loops, &len), *frame;
	const uint8_t *out;
	struct sw_frame_hdr h;
	bool owned;
	Stallwatch__V1__Batch *b;

	cr_assert_eq(sw_frame_encode(msg, len, zlib, &frame, &flen), 0);
	cr_assert_eq(sw_frame_parse_hdr(frame, &h), 0);
	cr_assert_eq(!!(h.flags & SW_FRAME_F_ZLIB), expect_compressed);
	cr_assert_eq(h.len + SW_FRAME_HDR_LEN, flen);
	cr_assert_eq(sw_frame_payload(&h, frame + SW_FRAME_HDR_LEN, &out, &mlen, &owned), 0);
	cr_assert_eq(mlen, len);
	cr_assert_eq(memcmp(out, msg, len), 0);
	b = stallwatch__v1__batch__unpack(NULL, mlen, out);
	cr_assert_not_null(b);
	cr_assert_eq(b->seq, 42);
	cr_assert_eq(b->n_loops, n_loops);
	if (n_loops)
		cr_assert_str_eq(b->loops[n_loops - 1]->thread, "node");
	stallwatch__v1__batch__free_unpacked(b, NULL);
	if (owned)
		free((void *)out);
	free(frame);
	free(msg);
}

Test(frame, raw_roundtrip)
{
	roundtrip(false, 3, false);
}

Test(frame, small_batch_stays_raw_even_with_zlib)
{
	roundtrip(true, 1, false);
}

Test(frame, large_batch_is_compressed)
{
	roundtrip(true, 200, true);
}

Test(frame, empty_batch)
{
	roundtrip(true, 0, false);
}

Test(frame, bad_headers_are_rejected)
{
	uint8_t hdr[SW_FRAME_HDR_LEN] = { 'S', 'W', 1, 0, 0, 0, 0, 10 };
	struct sw_frame_hdr h;

	cr_assert_eq(sw_frame_parse_hdr(hdr, &h), 0);
	hdr[0] = 'G'; /* "GET / HTTP/1.1" to the wrong port */
	cr_assert_eq(sw_frame_parse_hdr(hdr, &h), -EBADMSG);
	hdr[0] = 'S';
	hdr[2] = 2;
	cr_assert_eq(sw_frame_parse_hdr(hdr, &h), -EBADMSG, "unknown version");
	hdr[2] = 1;
	hdr[3] = 0x80;
	cr_assert_eq(sw_frame_parse_hdr(hdr, &h), -EBADMSG, "unknown flag");
	hdr[3] = 0;
	hdr[4] = 0x7f; /* 2 GiB */
	cr_assert_eq(sw_frame_parse_hdr(hdr, &h), -EMSGSIZE);
	hdr[4] = 0;
	hdr[3] = SW_FRAME_F_ZLIB;
	hdr[7] = 2; /* compressed but shorter than its raw-length prefix */
	cr_assert_eq(sw_frame_parse_hdr(hdr, &h), -EBADMSG);
}

Test(frame, corrupt_zlib_is_rejected)
{
	uint8_t payload[16] = { 0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	struct sw_frame_hdr h = { .version = 1, .flags = SW_FRAME_F_ZLIB, .len = sizeof(payload) };
	const uint8_t *out;
	size_t mlen;
	bool owned;

	cr_assert_eq(sw_frame_payload(&h, payload, &out, &mlen, &owned), -EBADMSG);
	payload[0] = 0xff; /* claims 4 GiB raw: refused before allocating */
	cr_assert_eq(sw_frame_payload(&h, payload, &out, &mlen, &owned), -EMSGSIZE);
}

/* ---- Ack.refused, and the token files of --token-file ---- */

Test(ack, refusal_round_trip_fits_the_frame)
{
	uint8_t f[SW_ACK_FRAME_MAX * 2];
	uint64_t seq = 0;
	uint32_t refused = 0;
	size_t n, m, used;

	n = sw_frame_ack_encode(UINT64_MAX, SW_REFUSED_NONE, f);
	m = sw_frame_ack_encode(0, SW_REFUSED_IDENTITY, f + n);
	cr_assert_leq(n, SW_ACK_FRAME_MAX);
	cr_assert_leq(m, SW_ACK_FRAME_MAX);
	cr_assert_eq(sw_frame_ack_parse(f, n + m, &seq, &refused, &used), 0);
	cr_assert_eq(used, n + m);
	cr_assert_eq(seq, UINT64_MAX);
	cr_assert_eq(refused, SW_REFUSED_IDENTITY);
	/* the largest refusal and seq together still fit */
	cr_assert_leq(sw_frame_ack_encode(UINT64_MAX, SW_REFUSED__MAX, f), SW_ACK_FRAME_MAX);
}

static const char *write_tmp(const char *body, mode_t mode)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/sw-secret-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	fchmod(fd, mode);
	close(fd);
	return path;
}

Test(secret, trims_and_bounds)
{
	static struct sw_secret s;
	char why[256], big[SW_SECRET_MAX + 8];
	const char *p;

	p = write_tmp("0123456789abcdef \r\n\n", 0600);
	cr_assert_eq(sw_secret__load(p, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(s.len, 16);
	cr_assert_eq(memcmp(s.b, "0123456789abcdef", 16), 0);
	cr_assert_not(s.world_readable);
	unlink(p);

	p = write_tmp("0123456789abcdef", 0644);
	cr_assert_eq(sw_secret__load(p, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert(s.world_readable);
	unlink(p);

	p = write_tmp("0123456789abcde\n", 0600); /* 15 */
	cr_assert_eq(sw_secret__load(p, &s, why, sizeof(why)), -EINVAL);
	cr_assert_not_null(strstr(why, "15 bytes"), "%s", why);
	cr_assert_eq(s.len, 0);
	unlink(p);

	memset(big, 'x', SW_SECRET_MAX + 1);
	big[SW_SECRET_MAX + 1] = '\0';
	p = write_tmp(big, 0600);
	cr_assert_eq(sw_secret__load(p, &s, why, sizeof(why)), -EINVAL);
	cr_assert_not_null(strstr(why, "over"), "%s", why);
	unlink(p);
	big[SW_SECRET_MAX] = '\0';
	p = write_tmp(big, 0600);
	cr_assert_eq(sw_secret__load(p, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(s.len, SW_SECRET_MAX);
	unlink(p);

	cr_assert_eq(sw_secret__load("/nonexistent/token", &s, why, sizeof(why)), -ENOENT);
	cr_assert_eq(sw_secret__load("/tmp", &s, why, sizeof(why)), -EINVAL);
}

Test(secret, equal_compares_every_byte_and_the_length)
{
	cr_assert(sw_secret__equal((const uint8_t *)"abcd", 4, (const uint8_t *)"abcd", 4));
	cr_assert_not(sw_secret__equal((const uint8_t *)"abcd", 4, (const uint8_t *)"abce", 4));
	cr_assert_not(sw_secret__equal((const uint8_t *)"abcd", 4, (const uint8_t *)"Abcd", 4));
	cr_assert_not(sw_secret__equal((const uint8_t *)"abcd", 4, (const uint8_t *)"abc", 3));
	cr_assert_not(sw_secret__equal((const uint8_t *)"", 0, (const uint8_t *)"a", 1));
}
