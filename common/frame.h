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
 *
 * The other way, collector -> agent, the same framing carries Ack messages
 * (never compressed, at most SW_ACK_FRAME_MAX bytes), and only to an agent
 * whose Hello said it reads them (Hello.acks).
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

/* An Ack frame: header + stallwatch.v1.Ack (seq: a tag byte and a varint;
 * refused: a tag byte and a one-byte varint). */
#define SW_ACK_FRAME_MAX (SW_FRAME_HDR_LEN + 11 + 2)

/* Hello.session: random bytes per agent run */
#define SW_SESSION_LEN 16

/* Ack.refused: why the collector closes the connection (proto). */
enum sw_ack_refusal {
	SW_REFUSED_NONE = 0,
	SW_REFUSED_TOKEN = 1,	 /* token missing or wrong */
	SW_REFUSED_IDENTITY = 2, /* agent_id held by another live agent run */
	SW_REFUSED__MAX = 127,	 /* fits the one-byte varint of SW_ACK_FRAME_MAX */
};

/* Encode the Ack of seq (and refusal, SW_REFUSED_NONE for a plain ack) into
 * out; returns its length. */
size_t sw_frame_ack_encode(uint64_t seq, enum sw_ack_refusal refused,
			   uint8_t out[SW_ACK_FRAME_MAX]);

/*
 * Parse the Acks at the start of buf (len bytes): *seq gets the highest seq
 * of the whole frames there (left alone when none), *refused the last
 * refusal among them (left alone when none), *used their bytes.
 * Returns 0, or -EBADMSG for bytes that are no Ack frame (a peer that is
 * not a stallwatch collector: the agent closes the connection).
 */
int sw_frame_ack_parse(const uint8_t *buf, size_t len, uint64_t *seq, uint32_t *refused,
		       size_t *used);

#endif
