// SPDX-License-Identifier: Apache-2.0
#include "conn_limits.h"
#include <netinet/in.h>
#include <string.h>

static const char *const close_names[SW_CLOSE__COUNT] = {
    [SW_CLOSE_HANDSHAKE] = "handshake_timeout",
    [SW_CLOSE_FRAME] = "frame_timeout",
    [SW_CLOSE_IDLE] = "idle",
    [SW_CLOSE_PER_PEER] = "per_peer",
    [SW_CLOSE_MEMORY] = "frame_memory",
    [SW_CLOSE_UNAUTHENTICATED] = "unauthenticated",
    [SW_CLOSE_IDENTITY] = "identity_in_use",
    [SW_CLOSE_PREEMPTED] = "preempted",
};

const char *sw_close_reason__name(enum sw_close_reason r)
{
	return (unsigned int)r < SW_CLOSE__COUNT ? close_names[r] : "unknown";
}

void sw_conn_limits__default(struct sw_conn_limits *l)
{
	l->handshake_ns = SW_HANDSHAKE_TIMEOUT_SEC * SW_NS_PER_SEC;
	l->frame_ns = SW_FRAME_TIMEOUT_SEC * SW_NS_PER_SEC;
	l->idle_ns = SW_IDLE_TIMEOUT_SEC * SW_NS_PER_SEC;
	l->max_per_peer = SW_MAX_PER_PEER;
	l->frame_memory = (size_t)SW_FRAME_MEMORY_MIB << 20;
}

void sw_conn_clock__start(struct sw_conn_clock *k, uint64_t now_ns)
{
	memset(k, 0, sizeof(*k));
	k->accepted_ns = now_ns;
}

void sw_conn_clock__read(struct sw_conn_clock *k, uint64_t now_ns, uint64_t frames,
			 size_t pending)
{
	if (frames) {
		k->frames += frames;
		k->last_frame_ns = now_ns;
	}
	if (!pending)
		k->frame_start_ns = 0;
	/* a frame that completed in this read was the old one: what is held
	 * now began in this read */
	else if (frames || !k->frame_start_ns)
		k->frame_start_ns = now_ns;
}

/* a + b without wrapping: a limit of "forever" is UINT64_MAX */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

enum sw_close_reason sw_conn_clock__due(const struct sw_conn_clock *k,
					const struct sw_conn_limits *l, uint64_t now_ns,
					uint64_t *next_ns)
{
	uint64_t at[3] = {UINT64_MAX, UINT64_MAX, UINT64_MAX};
	enum sw_close_reason r = SW_CLOSE__COUNT;
	uint64_t first = UINT64_MAX, next = UINT64_MAX;

	if (!k->frames)
		at[SW_CLOSE_HANDSHAKE] = add_sat(k->accepted_ns, l->handshake_ns);
	else
		at[SW_CLOSE_IDLE] = add_sat(k->last_frame_ns, l->idle_ns);
	if (k->frame_start_ns)
		at[SW_CLOSE_FRAME] = add_sat(k->frame_start_ns, l->frame_ns);
	for (int i = 0; i < 3; i++) {
		if (at[i] == UINT64_MAX)
			continue;
		if (at[i] <= now_ns) {
			if (at[i] < first) {
				first = at[i];
				r = (enum sw_close_reason)i;
			}
		} else if (at[i] < next) {
			next = at[i];
		}
	}
	if (next_ns)
		*next_ns = next;
	return r;
}

/* IPv4 address of a v4 or v4-mapped v6 peer; false for a real v6 one */
static bool v4_of(const struct sockaddr_storage *ss, struct in_addr *out)
{
	if (ss->ss_family == AF_INET) {
		*out = ((const struct sockaddr_in *)ss)->sin_addr;
		return true;
	}
	if (ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)ss)->sin6_addr)) {
		memcpy(out, &((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr[12], 4);
		return true;
	}
	return false;
}

bool sw_peer__same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	struct in_addr a4 = {0}, b4 = {0}; /* gcc -O3 cannot see v4_of sets them */
	bool av4 = v4_of(a, &a4), bv4 = v4_of(b, &b4);

	if (av4 || bv4)
		return av4 && bv4 && a4.s_addr == b4.s_addr;
	if (a->ss_family != AF_INET6 || b->ss_family != AF_INET6)
		return false;
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}
