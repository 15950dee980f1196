/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Framing of the agent -> collector stream. Each frame:
 *
 *   0   'S' 'W'            magic: a stray client is told apart at once
 *   2   version (1)
 *   3   flags              bit 0: payload is zlib (deflate) compressed
 *   4   u32 big endian     payload length, <= SW_FRAME_MAX_PAYLOAD
 *   8   payload            a protobuf stallwatch.v1.Batch, or when
 *                          compressed: u32 BE raw length + zlib stream
 *
 * Anything else closes the connection (the collector's bad-bytes rule).
 */
#ifndef SW_FRAME_H
#define SW_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SW_FRAME_HDR_LEN 8
#define SW_FRAME_VERSION 1
#define SW_FRAME_F_ZLIB 0x01u
/* A batch holds at most a few hundred loop summaries; 4 MiB is far above
 * any honest frame and bounds what a bad peer can make us allocate. */
#define SW_FRAME_MAX_PAYLOAD (4u << 20)
#define SW_FRAME_MAX_RAW (16u << 20)
/* Below this a batch is sent raw: deflate's header costs more than it saves. */
#define SW_FRAME_COMPRESS_MIN 512

struct sw_frame_hdr {
	uint8_t version;
	uint8_t flags;
	uint32_t len;
};

/*
 * Wrap msg into a frame, compressing when allowed and worth it.
 * On success *out is malloc'ed and owned by the caller. Returns 0 or -errno.
 */
int sw_frame_encode(const uint8_t *msg, size_t len, bool allow_zlib, uint8_t **out,
		    size_t *out_len);

/* Validate a header. Returns 0, or -EBADMSG (magic/version/flags) or
 * -EMSGSIZE (length over the limit). */
int sw_frame_parse_hdr(const uint8_t hdr[SW_FRAME_HDR_LEN], struct sw_frame_hdr *h);

/*
 * Turn a frame's payload into the serialized message. For a raw frame *msg
 * points into payload (no copy, *owned = false); for a compressed one it is
 * malloc'ed (*owned = true). Returns 0 or -errno (-EBADMSG on bad zlib).
 */
int sw_frame_payload(const struct sw_frame_hdr *h, const uint8_t *payload, const uint8_t **msg,
		     size_t *msg_len, bool *owned);

#endif
