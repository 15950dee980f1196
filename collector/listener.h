/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agents' side of the collector: a TCP listener driven by epoll in the
 * main thread, many agents at once, each connection with its own decoder
 * (decoder.h). Bad bytes close that connection only, and are counted by
 * reason; the other agents go on. Batches go to the store.
 */
#ifndef SW_COLLECTOR_LISTENER_H
#define SW_COLLECTOR_LISTENER_H

#include "store.h"
#include "conn_limits.h"
#include "decoder.h"
#include "net.h"
#include "tls.h"
#include "secret.h"
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* 256 agents is a large fleet for one collector; the default of
 * --max-connections. At the cap the listener stops accepting (agents wait
 * in the kernel's backlog) rather than accept and close; unfinished frames
 * are bounded by --frame-memory over all of them. */
#define SW_INGEST_MAX_CONNS 256

struct sw_ingest_opts {
	const struct sw_addr *listen;
	size_t max_conns; /* 0: SW_INGEST_MAX_CONNS */
	/* deadlines, per-peer cap and frame memory (conn_limits.h); NULL: the
	 * defaults */
	const struct sw_conn_limits *limits;
	/* --token-file: the token every agent's hello must carry (NULL: any
	 * peer is taken at its word; docs/DESIGN.md "Authentication") */
	const struct sw_secret *token;
	/* TLS server context (common/tls.h; --tls-cert): every connection
	 * does its handshake first. NULL: plaintext. Not freed by the ingest. */
	struct sw_tls_ctx *tls;
};

struct sw_ingest_stats {
	uint64_t connections; /* open now */
	uint64_t accepted;
	uint64_t refused; /* closed at accept: no memory for a decoder */
	uint64_t frames;
	uint64_t bad[SW_BAD__COUNT];
	uint64_t closed[SW_CLOSE__COUNT]; /* by the collector's own rules */
	uint64_t accept_paused; /* times the listener stopped accepting at the cap */
	uint64_t frame_bytes;	/* bytes of unfinished frames held now */
	/* not the listener's, filled in by http.c for the same section */
	uint64_t http_header_timeouts, http_refused, http_too_many_args, log_suppressed;
	/* requests answered 401 (--http-token-file); failed TLS handshakes */
	uint64_t http_unauthorized, http_tls_failed;
};

struct sw_ingest;

/* Returns NULL with errno set; EADDRINUSE and friends come from bind(). */
struct sw_ingest *sw_ingest__new(const struct sw_ingest_opts *opts, struct sw_store *store);
void sw_ingest__free(struct sw_ingest *in);
/* Port actually bound (differs from the request with port 0). */
int sw_ingest__port(const struct sw_ingest *in);
/*
 * Wait up to timeout_ms for agents (epoll_pwait with sigmask, so that a signal
 * blocked elsewhere interrupts exactly this wait) and serve them.
 * Returns 0, or -errno on a failure of poll itself (EINTR is 0).
 */
int sw_ingest__run_once(struct sw_ingest *in, int timeout_ms, const sigset_t *sigmask);
/* Safe from any thread. */
void sw_ingest__stats(const struct sw_ingest *in, struct sw_ingest_stats *out);

#endif
