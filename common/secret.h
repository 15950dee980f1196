/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared secrets read from files (--token-file on the agent and the
 * collector): never from the command line, where every user of the host
 * reads them in /proc/PID/cmdline.
 */
#ifndef SW_SECRET_H
#define SW_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 16 bytes is 128 bits of a random token (openssl rand -hex 16 gives 32). */
#define SW_SECRET_MIN 16
#define SW_SECRET_MAX 4096

struct sw_secret {
	uint8_t b[SW_SECRET_MAX];
	size_t len;
	bool world_readable; /* mode o+r: said at start, not refused (a
			      * Kubernetes secret volume mounts 0644) */
};

/*
 * Read the secret in path: its bytes, trailing whitespace (a newline from
 * echo) trimmed, SW_SECRET_MIN..SW_SECRET_MAX of them. 0, or -errno with a
 * sentence for the user in why (what is wrong and what to do).
 */
int sw_secret__load(const char *path, struct sw_secret *s, char *why, size_t whylen);

/* Equal, in time that depends on the lengths only, never on where the
 * bytes first differ. */
bool sw_secret__equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
