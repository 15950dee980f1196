// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "frame.h"
#include "stallwatch.pb-c.h"

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int sw_frame_encode(const uint8_t *msg, size_t len, bool allow_zlib, uint8_t **out,
		    size_t *out_len)
{
	uint8_t *buf;
	uLongf clen;

	if (len > SW_FRAME_MAX_RAW)
		return -EMSGSIZE;
	if (allow_zlib && len >= SW_FRAME_COMPRESS_MIN) {
		clen = compressBound(len);
		buf = malloc(SW_FRAME_HDR_LEN + 4 + clen);
		if (!buf)
			return -ENOMEM;
		if (compress2(buf + SW_FRAME_HDR_LEN + 4, &clen, msg, len, Z_BEST_SPEED) == Z_OK &&
		    clen + 4 < len && clen + 4 <= SW_FRAME_MAX_PAYLOAD) {
			buf[0] = 'S';
			buf[1] = 'W';
			buf[2] = SW_FRAME_VERSION;
			buf[3] = SW_FRAME_F_ZLIB;
			put_be32(buf + 4, (uint32_t)(clen + 4));
			put_be32(buf + SW_FRAME_HDR_LEN, (uint32_t)len);
			*out = buf;
			*out_len = SW_FRAME_HDR_LEN + 4 + clen;
			return 0;
		}
		free(buf); /* incompressible: send it raw */
	}
	if (len > SW_FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	buf = malloc(SW_FRAME_HDR_LEN + len);
	if (!buf)
		return -ENOMEM;
	buf[0] = 'S';
	buf[1] = 'W';
	buf[2] = SW_FRAME_VERSION;
	buf[3] = 0;
	put_be32(buf + 4, (uint32_t)len);
	if (len)
		memcpy(buf + SW_FRAME_HDR_LEN, msg, len);
	*out = buf;
	*out_len = SW_FRAME_HDR_LEN + len;
	return 0;
}

int sw_frame_parse_hdr(const uint8_t hdr[SW_FRAME_HDR_LEN], struct sw_frame_hdr *h)
{
	if (hdr[0] != 'S' || hdr[1] != 'W' || hdr[2] != SW_FRAME_VERSION ||
	    (hdr[3] & ~SW_FRAME_F_ZLIB))
		return -EBADMSG;
	h->version = hdr[2];
	h->flags = hdr[3];
	h->len = get_be32(hdr + 4);
	if (h->len > SW_FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	if ((h->flags & SW_FRAME_F_ZLIB) && h->len < 4)
		return -EBADMSG;
	return 0;
}

int sw_frame_payload(const struct sw_frame_hdr *h, const uint8_t *payload, const uint8_t **msg,
		     size_t *msg_len, bool *owned)
{
	uLongf raw_len;
	uint32_t want;
	uint8_t *raw;

	if (!(h->flags & SW_FRAME_F_ZLIB)) {
		*msg = payload;
		*msg_len = h->len;
		*owned = false;
		return 0;
	}
	want = get_be32(payload);
	if (want > SW_FRAME_MAX_RAW)
		return -EMSGSIZE;
	raw = malloc(want ? want : 1);
	if (!raw)
		return -ENOMEM;
	raw_len = want;
	if (uncompress(raw, &raw_len, payload + 4, h->len - 4) != Z_OK || raw_len != want) {
		free(raw);
		return -EBADMSG;
	}
	*msg = raw;
	*msg_len = raw_len;
	*owned = true;
	return 0;
}

size_t sw_frame_ack_encode(uint64_t seq, enum sw_ack_refusal refused,
			   uint8_t out[SW_ACK_FRAME_MAX])
{
	Stallwatch__V1__Ack a = STALLWATCH__V1__ACK__INIT;
	size_t len;

	a.seq = seq;
	a.refused = refused <= SW_REFUSED__MAX ? (uint32_t)refused : SW_REFUSED__MAX;
	/* 1 tag byte + up to 10 varint bytes, and 2 for a refusal: never more
	 * than the room */
	len = stallwatch__v1__ack__pack(&a, out + SW_FRAME_HDR_LEN);
	out[0] = 'S';
	out[1] = 'W';
	out[2] = SW_FRAME_VERSION;
	out[3] = 0;
	put_be32(out + 4, (uint32_t)len);
	return SW_FRAME_HDR_LEN + len;
}

int sw_frame_ack_parse(const uint8_t *buf, size_t len, uint64_t *seq, uint32_t *refused,
		       size_t *used)
{
	struct sw_frame_hdr h;
	size_t off = 0;

	*used = 0;
	while (len - off >= SW_FRAME_HDR_LEN) {
		Stallwatch__V1__Ack *a;

		if (sw_frame_parse_hdr(buf + off, &h) || h.flags ||
		    h.len > SW_ACK_FRAME_MAX - SW_FRAME_HDR_LEN)
			return -EBADMSG;
		if (len - off < SW_FRAME_HDR_LEN + h.len)
			break; /* the rest comes with the next read */
		a = stallwatch__v1__ack__unpack(NULL, h.len, buf + off + SW_FRAME_HDR_LEN);
		if (!a)
			return -EBADMSG;
		if (a->seq > *seq)
			*seq = a->seq;
		if (a->refused)
			*refused = a->refused;
		stallwatch__v1__ack__free_unpacked(a, NULL);
		off += SW_FRAME_HDR_LEN + h.len;
	}
	*used = off;
	return 0;
}
