/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stream: frames to the collector over TCP. Never blocks the agent's loop
 * (and the target never waits on the agent at all): a non-blocking socket,
 * a bounded queue that evicts the oldest frames first and counts them, and
 * reconnection with exponential backoff.
 */
#ifndef SW_STREAM_H
#define SW_STREAM_H

#include <stddef.h>
#include <stdint.h>

struct sw_stream;

struct sw_stream_stats {
	uint64_t dropped_batches, dropped_bytes, reconnects, batches_sent;
	int connected;
};

/* hostport "HOST:PORT". NULL with a message in err on a bad address. */
struct sw_stream *sw_stream__new(const char *hostport, size_t max_bytes, char *err, size_t errlen);
void sw_stream__free(struct sw_stream *s);

/* Frame sent first on every new connection (ownership passes). */
void sw_stream__set_hello(struct sw_stream *s, uint8_t *frame, size_t len);
/* Queue a frame (ownership passes); may evict older frames. */
void sw_stream__queue(struct sw_stream *s, uint8_t *frame, size_t len);
/* Connect, write what the socket takes; call often. */
void sw_stream__service(struct sw_stream *s, uint64_t now_ns);
/* Try for up to timeout_ms to send everything (at exit). */
void sw_stream__drain(struct sw_stream *s, int timeout_ms);
void sw_stream__stats(const struct sw_stream *s, struct sw_stream_stats *st);

#endif
