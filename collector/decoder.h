/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bytes to batches: frame reassembly (common/frame.h), zlib, protobuf unpack
 * and the checks the store relies on. One decoder per connection, no socket
 * in sight, so that tests and the fuzz target feed it bytes cut anywhere.
 */
#ifndef SW_COLLECTOR_DECODER_H
#define SW_COLLECTOR_DECODER_H

#include "stallwatch.pb-c.h"
#include <stddef.h>
#include <stdint.h>

/* Why a connection was closed for its bytes: the `reason` label of
 * stallwatch_collector_bad_frames_total. */
enum sw_bad_reason {
	SW_BAD_NONE = 0,
	SW_BAD_MAGIC,	    /* not 'S' 'W': not an agent at all */
	SW_BAD_HEADER,	    /* unknown version or flags */
	SW_BAD_OVERSIZE,    /* length over SW_FRAME_MAX_PAYLOAD / _RAW */
	SW_BAD_ZLIB,	    /* payload does not inflate */
	SW_BAD_PROTOBUF,    /* payload is not a stallwatch.v1.Batch */
	SW_BAD_HIST_SCHEMA, /* LoopSummary of another histogram scheme */
	SW_BAD_BUCKET,	    /* histogram bucket index out of range */
	SW_BAD_NOMEM,	    /* we could not allocate for an honest frame */
	SW_BAD_GIL,	    /* GilSummary over the bounds of common/gil.h */
	/* collector/budget.h: refused before unpack, by what it would cost */
	SW_BAD_TOO_MANY,    /* a repeated field or the frame over its element limit */
	SW_BAD_STRING,	    /* a string over SW_BUDGET_MAX_STRING */
	SW_BAD_BUDGET,	    /* unpack would allocate over SW_BUDGET_MAX_ALLOC */
	SW_BAD__COUNT,
};

const char *sw_bad_reason__name(enum sw_bad_reason r);

/* Checks the unpacked batch against what the store relies on. */
enum sw_bad_reason sw_batch__validate(const Stallwatch__V1__Batch *b);

typedef void (*sw_batch_fn)(void *ctx, const Stallwatch__V1__Batch *b);

struct sw_decoder;

struct sw_decoder *sw_decoder__new(void);
void sw_decoder__free(struct sw_decoder *d);
/* Where the next read() may write, and how much; NULL on ENOMEM. The room is
 * bounded by one frame (header + SW_FRAME_MAX_PAYLOAD). */
uint8_t *sw_decoder__space(struct sw_decoder *d, size_t *room);
/*
 * n bytes were written at sw_decoder__space(). Decodes every complete frame,
 * calls fn for each valid batch, and adds their number to *frames.
 * Returns SW_BAD_NONE or why the stream must be closed.
 */
enum sw_bad_reason sw_decoder__commit(struct sw_decoder *d, size_t n, sw_batch_fn fn, void *ctx,
				      uint64_t *frames);
/* Convenience for tests: copy then commit, in as many steps as needed. */
enum sw_bad_reason sw_decoder__feed(struct sw_decoder *d, const uint8_t *buf, size_t len,
				    sw_batch_fn fn, void *ctx, uint64_t *frames);
/* Bytes of an incomplete frame held. */
size_t sw_decoder__pending(const struct sw_decoder *d);

#endif
