/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS on the agent -> collector stream (GnuTLS), for the collector's
 * listener (collector/listener.c) and the agent's stream (agent/stream.c).
 * GnuTLS rather than OpenSSL: Debian's libmicrohttpd is built on it, so the
 * collector's two ports share one TLS library.
 *
 * Non-blocking only: a session runs over a connected O_NONBLOCK socket the
 * caller owns and polls. Every call returns at once:
 *  - -EAGAIN: try again when sw_tls__want() says (SW_TLS_WANT_READ: the
 *    socket is readable, SW_TLS_WANT_WRITE: writable);
 *  - another negative errno: the session is dead, sw_tls__error() says why
 *    in one line. -EKEYREJECTED: we rejected the peer's certificate;
 *    -ECONNREFUSED: the peer refused us (a fatal alert, e.g. "certificate
 *    required"); -ECONNRESET: the connection ended inside the handshake or
 *    failed under it; -EPROTO: anything else (a peer that does not speak
 *    TLS, no common cipher, ...).
 *
 * Versions: TLS 1.2 and 1.3 only, GnuTLS's NORMAL ciphers otherwise.
 */
#ifndef SW_TLS_H
#define SW_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Credentials and priorities, one per process side; sessions share it. */
struct sw_tls_ctx;
/* One connection. */
struct sw_tls;

struct sw_tls_files {
	const char *cert; /* own certificate (chain), PEM */
	const char *key;  /* its private key, PEM */
	const char *ca;	  /* the issuers we trust for the peer, PEM */
	/* the options that named them, for messages ("--tls-cert") */
	const char *cert_opt, *key_opt, *ca_opt;
};

enum sw_tls_want {
	SW_TLS_WANT_READ = 1,
	SW_TLS_WANT_WRITE = 2,
};

/*
 * Server side: cert and key required. With ca, every client must present
 * a certificate that ca signed (and that may be used for TLS clients).
 * NULL with one line in err (the option, the file, what to do) on failure.
 */
struct sw_tls_ctx *sw_tls_ctx__server(const struct sw_tls_files *f, char *err, size_t errlen);
/* Client side: ca NULL trusts the system's store; cert and key (both or
 * neither): a client certificate, sent when the server asks for one. */
struct sw_tls_ctx *sw_tls_ctx__client(const struct sw_tls_files *f, char *err, size_t errlen);
void sw_tls_ctx__free(struct sw_tls_ctx *c);

/*
 * A session over fd (connected, non-blocking; not closed by sw_tls__free).
 * Client: the server's certificate must name server_name (a DNS name, or an
 * IP address as text, matched to its IP SANs). NULL with errno on failure.
 */
struct sw_tls *sw_tls__new(struct sw_tls_ctx *c, int fd, const char *server_name);
/* Sends a close_notify if it can without waiting (not after a failure). */
void sw_tls__free(struct sw_tls *t);

/* One step of the handshake: 0 done, -EAGAIN, or fatal. */
int sw_tls__handshake(struct sw_tls *t);
bool sw_tls__ready(const struct sw_tls *t);
/* Bytes read (> 0), 0 at the end of the stream, -EAGAIN or fatal. */
ssize_t sw_tls__recv(struct sw_tls *t, void *buf, size_t len);
/*
 * Bytes sent (> 0, maybe fewer than len), -EAGAIN or fatal. After -EAGAIN
 * a TLS record holding the first bytes of buf is built but not out yet
 * (sw_tls__send_held()): the next send must pass the same buf and len, and
 * its return counts those bytes (GnuTLS's rule for gnutls_record_send). The
 * caller must not change or drop those bytes meanwhile.
 */
ssize_t sw_tls__send(struct sw_tls *t, const void *buf, size_t len);
bool sw_tls__send_held(const struct sw_tls *t);
/*
 * Decrypted bytes GnuTLS holds that the socket no longer shows: a caller
 * that stops reading with these left must come back without waiting for
 * the socket (epoll will not report them).
 */
size_t sw_tls__pending(const struct sw_tls *t);
/* After -EAGAIN: what to wait for. */
enum sw_tls_want sw_tls__want(const struct sw_tls *t);
/* Why the session died (one line), "" while it lives. */
const char *sw_tls__error(const struct sw_tls *t);

#endif
