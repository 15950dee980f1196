/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who may read the HTTP port (issue 9 part 4; README, "Who may read the HTTP
 * port"): the bearer token of --http-token-file and the PEM files of
 * --http-tls-cert/--http-tls-key, read and checked before the server starts
 * so that a bad file is one line naming it, and the token compared in time
 * that does not depend on how much of it a client guessed right. Pure: no
 * socket, no libmicrohttpd; http.c applies it and tests/unit drives it.
 */
#ifndef SW_COLLECTOR_HTTP_AUTH_H
#define SW_COLLECTOR_HTTP_AUTH_H

#include "secret.h" /* common/secret.h: the token files of both ports */
#include <stdbool.h>
#include <stddef.h>
/* A PEM certificate chain of a few certificates is a few KiB, an RSA 8192
 * key 6 KiB: past 1 MiB the file is not what was meant. */
#define SW_HTTP_PEM_MAX (1u << 20)

/* The realm of our 401s' WWW-Authenticate (RFC 6750 §3) */
#define SW_HTTP_REALM "stallwatch"

/*
 * Reads a token file as the agent port's --token-file (sw_secret__load:
 * 16..4096 bytes, trailing whitespace cut, world_readable flagged for a
 * warning), and then asks more: printable ASCII without spaces, since it
 * travels in an HTTP header (RFC 6750's b64token is stricter still; we do
 * not need that). 0, or -errno with `why` the reason (the path in it).
 */
int sw_http_auth__read_token(const char *path, struct sw_secret *s, char *why, size_t why_size);

/*
 * Reads a PEM file for libmicrohttpd's HTTPS_MEM_CERT (key false) or
 * HTTPS_MEM_KEY (key true), after the checks that can name the file: it
 * exists and is a regular file under SW_HTTP_PEM_MAX, it is text, it holds a
 * certificate (or a private key, unencrypted), with a base64 body. GnuTLS
 * parses it for real when the server starts. Same returns as above.
 */
int sw_http_auth__read_pem(const char *path, bool key, char **out, bool *loose, char *why,
			   size_t why_size);

/* Zeroes then frees what sw_http_auth__read_pem returned (NULL is fine). */
void sw_http_auth__free_secret(char *s, size_t len);

/*
 * Does an Authorization header value (hdr, hdr_len bytes, possibly not
 * NUL-terminated and possibly holding a NUL) carry the token? "Bearer"
 * in any case, one or more spaces, then exactly the token (RFC 7235 §2.1,
 * RFC 6750 §2.1), compared by sw_secret__equal: its time depends on the
 * lengths, never on how many leading bytes were right.
 */
bool sw_http_auth__bearer_ok(const struct sw_secret *token, const char *hdr, size_t hdr_len);

#endif
