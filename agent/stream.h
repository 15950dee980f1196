/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stream: frames to the collector over TCP. Never blocks the agent's loop
 * (and the target never waits on the agent at all): a non-blocking socket,
 * a bounded queue, and reconnection with exponential backoff.
 *
 * A numbered frame (sw_stream__queue_seq) stays in the queue until the
 * collector acknowledges its seq (an Ack frame back on the connection,
 * common/frame.h); after a reconnect every unacknowledged one is written
 * again, in order. Over the bound the oldest frame never written is
 * evicted and counted (batches, bytes, incidents). A collector that sends
 * no ack within 10 s of the hello is an older one: its frames are then
 * forgotten once written, as before acks.
 */
#ifndef SW_STREAM_H
#define SW_STREAM_H

#include <stddef.h>
#include <stdint.h>

struct sw_stream;

struct sw_stream_stats {
	uint64_t dropped_batches, dropped_bytes, dropped_incidents, reconnects, batches_sent;
	uint64_t batches_resent, batches_acked;
	uint64_t acked_seq;	/* the highest seq acknowledged */
	uint64_t refusals;	/* connections the collector refused (Ack.refused) */
	size_t buffered_bytes;	/* held, unsent or unacknowledged */
	int connected;
};

/* Builds the hello for a new connection, given the highest seq acknowledged
 * so far, and hands it over with sw_stream__set_hello. */
typedef void (*sw_stream_hello_fn)(void *ctx, uint64_t acked_seq);

/* hostport "HOST:PORT". NULL with a message in err on a bad address. */
struct sw_stream *sw_stream__new(const char *hostport, size_t max_bytes, char *err, size_t errlen);
void sw_stream__free(struct sw_stream *s);

/* The token of --token-file, copied (len <= SW_SECRET_MAX), presented in
 * every hello. */
void sw_stream__set_token(struct sw_stream *s, const uint8_t *token, size_t len);
/* What the hello carries to authenticate: the token (len 0: none) and the
 * run's session (SW_SESSION_LEN random bytes drawn at sw_stream__new). */
void sw_stream__credentials(const struct sw_stream *s, const uint8_t **token, size_t *token_len,
			    const uint8_t **session);

/* Frame sent first on every new connection (ownership passes). */
void sw_stream__set_hello(struct sw_stream *s, uint8_t *frame, size_t len);
/* Called at each connection, before the hello is written (fn NULL: none). */
void sw_stream__set_hello_fn(struct sw_stream *s, sw_stream_hello_fn fn, void *ctx);
/* Queue a frame (ownership passes); may evict older frames. Unnumbered:
 * forgotten once written. */
void sw_stream__queue(struct sw_stream *s, uint8_t *frame, size_t len);
/* Queue batch seq (> 0), with its count of final incidents (what is counted
 * lost if it is evicted): kept until acknowledged. */
void sw_stream__queue_seq(struct sw_stream *s, uint64_t seq, uint32_t incidents, uint8_t *frame,
			  size_t len);
/* Connect, write what the socket takes; call often. */
void sw_stream__service(struct sw_stream *s, uint64_t now_ns);
/* Try for up to timeout_ms to send everything (at exit). */
void sw_stream__drain(struct sw_stream *s, int timeout_ms);
void sw_stream__stats(const struct sw_stream *s, struct sw_stream_stats *st);

#endif
