/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP glue: libmicrohttpd in its own thread serves /metrics,
 * /api/incidents and /healthz from export.c. The listening socket is ours
 * (net.c) so that a busy port is reported the same way as for agents.
 */
#ifndef SW_COLLECTOR_HTTP_H
#define SW_COLLECTOR_HTTP_H

#include "store.h"
#include "listener.h"
#include "net.h"

/*
 * Who may hold the HTTP port, and for how long (docs/RELIABILITY.md,
 * "Lockout"): a client that has sent part of a request but not all of it
 * within header_timeout of connecting or of its previous reply is cut
 * (libmicrohttpd's own timeout is reset by every byte, so one header line
 * every few seconds would keep it forever); one that sends nothing is
 * closed by that idle timeout (30 s); one address holds at most per_ip
 * connections, so that a scraper from another one always finds a slot
 * among max_conns.
 */
#define SW_HTTP_MAX_CONNS 1024
#define SW_HTTP_PER_IP 16 /* a Prometheus pair, Grafana and a few curls per host */
#define SW_HTTP_HEADER_TIMEOUT_SEC 10

struct sw_http_opts {
	unsigned int max_conns;		 /* 0: SW_HTTP_MAX_CONNS */
	unsigned int per_ip;		 /* 0: SW_HTTP_PER_IP */
	unsigned int header_timeout_sec; /* 0: SW_HTTP_HEADER_TIMEOUT_SEC */
	/* --http-token-file (http_auth.h): every path but /healthz needs
	 * "Authorization: Bearer <token>". NULL: open to whoever reaches the
	 * port. Kept, not copied: it outlives the server. */
	const struct sw_secret *token;
	/* --http-tls-cert/--http-tls-key as PEM text (http_auth.h): HTTPS
	 * when both are set; libmicrohttpd loads them at start. */
	const char *tls_cert_pem, *tls_key_pem;
};

struct sw_http;

/*
 * ingest and opts may be NULL. Returns NULL with errno set (bind errors
 * included) and, if why is not NULL, a line saying why: libmicrohttpd's own
 * when it logged one (GnuTLS's reason a certificate or key was refused), else
 * strerror. errno EPROTO: the TLS certificate and key were refused;
 * ENOTSUP: this libmicrohttpd has no TLS.
 */
struct sw_http *sw_http__new(const struct sw_addr *addr, struct sw_store *store,
			     const struct sw_ingest *ingest, const struct sw_http_opts *opts,
			     char *why, size_t why_size);
void sw_http__free(struct sw_http *h);
int sw_http__port(const struct sw_http *h);
/* Cuts the connections past their header deadline; from any thread but
 * libmicrohttpd's, about once a second. */
void sw_http__sweep(struct sw_http *h, uint64_t now_ns);

#endif
