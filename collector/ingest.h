/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agents' side of the collector: a TCP listener driven by poll() in the
 * main thread, many agents at once, each connection with its own frame
 * reassembly (common/frame.h) and protobuf decoding. Bad bytes close that
 * connection only, and are counted by reason; the other agents go on.
 *
 * The decoder is separate from the sockets so that tests can feed it bytes
 * cut at any place.
 */
#ifndef SW_COLLECTOR_INGEST_H
#define SW_COLLECTOR_INGEST_H

#include "aggregate.h"
#include "net.h"
#include "stallwatch.pb-c.h"
#include <signal.h>
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
	SW_BAD__COUNT,
};

const char *sw_bad_reason__name(enum sw_bad_reason r);

/* Checks the unpacked batch against what the store relies on. */
enum sw_bad_reason sw_batch__validate(const Stallwatch__V1__Batch *b);

/* ---- per-connection decoder ---- */

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

/* ---- listener ---- */

/* 256 agents is a large fleet for one collector; each may hold a 4 MiB
 * frame buffer while a big frame arrives, so the cap bounds memory too. */
#define SW_INGEST_MAX_CONNS 256

struct sw_ingest_opts {
	const struct sw_addr *listen;
	size_t max_conns; /* 0: SW_INGEST_MAX_CONNS */
};

struct sw_ingest_stats {
	uint64_t connections; /* open now */
	uint64_t accepted;
	uint64_t refused; /* over max_conns */
	uint64_t frames;
	uint64_t bad[SW_BAD__COUNT];
};

struct sw_ingest;

/* Returns NULL with errno set; EADDRINUSE and friends come from bind(). */
struct sw_ingest *sw_ingest__new(const struct sw_ingest_opts *opts, struct sw_store *store);
void sw_ingest__free(struct sw_ingest *in);
/* Port actually bound (differs from the request with port 0). */
int sw_ingest__port(const struct sw_ingest *in);
/*
 * Wait up to timeout_ms for agents (ppoll with sigmask, so that a signal
 * blocked elsewhere interrupts exactly this wait) and serve them.
 * Returns 0, or -errno on a failure of poll itself (EINTR is 0).
 */
int sw_ingest__run_once(struct sw_ingest *in, int timeout_ms, const sigset_t *sigmask);
/* Safe from any thread. */
void sw_ingest__stats(const struct sw_ingest *in, struct sw_ingest_stats *out);

#endif
