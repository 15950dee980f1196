/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who may read the HTTP port (issue 9 part 4, /work/AUTH_DESIGN.md "HTTP
 * port"): the bearer token of --http-token-file and the PEM files of
 * --http-tls-cert/--http-tls-key, read and checked before the server starts
 * so that a bad file is one line naming it, and the token compared in time
 * that does not depend on how much of it a client guessed right. Pure: no
 * socket, no libmicrohttpd; http.c applies it and tests/unit drives it.
 */
#ifndef SW_COLLECTOR_HTTP_AUTH_H
#define SW_COLLECTOR_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/* The token's length after its trailing whitespace is cut, as the agent
 * stream's --token-file (AUTH_DESIGN.md): 16 bytes is the least a person
 * should trust (128 bits of a random hex string is 32); 4096 keeps it in
 * one request header line, far under libmicrohttpd's 32 KiB pool. */
#define SW_HTTP_TOKEN_MIN 16
#define SW_HTTP_TOKEN_MAX 4096
/* A PEM certificate chain of a few certificates is a few KiB, an RSA 8192
 * key 6 KiB: past 1 MiB the file is not what was meant. */
#define SW_HTTP_PEM_MAX (1u << 20)

/* The realm of our 401s' WWW-Authenticate (RFC 6750 §3) */
#define SW_HTTP_REALM "stallwatch"

/*
 * Reads a token file. Returns 0 with *out (malloc'd, NUL-terminated, *len
 * bytes; free with sw_http_auth__free_secret) and *loose set when group or
 * others may read the file (a warning, not a refusal: Kubernetes mounts
 * secrets 0644 unless told defaultMode), or -errno with `why` the reason,
 * for a line "--http-token-file PATH: why".
 * The token must be printable ASCII without spaces: it travels in an HTTP
 * header (RFC 6750's b64token is stricter still; we do not need that).
 */
int sw_http_auth__read_token(const char *path, char **out, size_t *len, bool *loose, char *why,
			     size_t why_size);

/*
 * Reads a PEM file for libmicrohttpd's HTTPS_MEM_CERT (key false) or
 * HTTPS_MEM_KEY (key true), after the checks that can name the file: it
 * exists and is a regular file under SW_HTTP_PEM_MAX, it is text, it holds a
 * certificate (or a private key, unencrypted), with a base64 body. GnuTLS
 * parses it for real when the server starts. Same returns as above.
 */
int sw_http_auth__read_pem(const char *path, bool key, char **out, bool *loose, char *why,
			   size_t why_size);

/* Zeroes then frees what the two above returned (NULL is fine). */
void sw_http_auth__free_secret(char *s, size_t len);

/*
 * Does an Authorization header value (hdr, hdr_len bytes, possibly not
 * NUL-terminated and possibly holding a NUL) carry the token? "Bearer"
 * in any case, one or more spaces, then exactly the token (RFC 7235 §2.1,
 * RFC 6750 §2.1). The comparison takes the same time for every value of
 * the same token (it loops over the token's length whatever was sent), so
 * that the time of a 401 does not tell how many leading bytes were right.
 */
bool sw_http_auth__bearer_ok(const char *token, size_t token_len, const char *hdr,
			     size_t hdr_len);

#endif
