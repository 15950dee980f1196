/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What one agent connection may hold, and for how long (issue 9, lockout):
 * the deadlines of a connection and the reasons it is closed for them. Pure
 * bookkeeping, no socket, so that tests drive it with made-up clocks; the
 * listener (listener.c) applies it. Not "limits.h": that name is the C library's.
 *
 * Deadlines, from accept():
 *  - handshake: the first complete frame within handshake_ns. An agent
 *    sends its hello as soon as it connects (agent/stream.c), or, with no
 *    process known yet, its first batch after one --interval.
 *  - frame: a frame whose first byte has arrived completes within frame_ns,
 *    so that a peer cannot keep a frame buffer (up to 4 MiB) half filled.
 *  - idle: after the handshake, a complete frame at least every idle_ns. An
 *    agent sends one every --interval (10 s by default), even with nothing
 *    measured (its health), so this is generous.
 */
#ifndef SW_COLLECTOR_CONN_LIMITS_H
#define SW_COLLECTOR_CONN_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SW_NS_PER_SEC 1000000000ull

/* Defaults of the collector's options (README, docs/RELIABILITY.md). */
#define SW_HANDSHAKE_TIMEOUT_SEC 30 /* > an agent's default --interval (10 s) */
#define SW_FRAME_TIMEOUT_SEC 30	    /* 4 MiB at 1 Mbit/s; a real frame takes ms */
#define SW_IDLE_TIMEOUT_SEC 120	    /* 12 missed intervals of 10 s */
#define SW_MAX_PER_PEER 16	    /* agents behind one address (NAT, a node's pods) */
/* Bytes of unfinished frames held over all connections: past it the
 * connection holding the most is closed. 16 frames of the 4 MiB maximum;
 * a real agent's frames are KiB. */
#define SW_FRAME_MEMORY_MIB 64

/* Why the collector closed an agent connection by its own rule: the
 * `reason` label of stallwatch_collector_connections_closed_total. */
enum sw_close_reason {
	SW_CLOSE_HANDSHAKE = 0, /* no complete frame within handshake_ns of accept */
	SW_CLOSE_FRAME,		/* a started frame not complete within frame_ns */
	SW_CLOSE_IDLE,		/* no frame for idle_ns */
	SW_CLOSE_PER_PEER,	/* over max_per_peer connections from its address */
	SW_CLOSE_MEMORY,	/* the largest unfinished frame when over the budget */
	SW_CLOSE_UNAUTHENTICATED, /* first frame without the --token-file token */
	SW_CLOSE_IDENTITY,	/* agent id held by a live connection of another run */
	SW_CLOSE_PREEMPTED,	/* unauthenticated, the oldest such at the cap: a
				 * slot for the next in the backlog (--token-file) */
	SW_CLOSE__COUNT,
};

const char *sw_close_reason__name(enum sw_close_reason r);

struct sw_conn_limits {
	uint64_t handshake_ns, frame_ns, idle_ns;
	size_t max_per_peer;
	size_t frame_memory; /* bytes */
};

/* The defaults above. */
void sw_conn_limits__default(struct sw_conn_limits *l);

/* One connection's clock. */
struct sw_conn_clock {
	uint64_t accepted_ns;
	uint64_t last_frame_ns; /* of the last complete frame; 0: none yet */
	uint64_t frame_start_ns; /* of the unfinished frame; 0: none */
	uint64_t frames;
};

void sw_conn_clock__start(struct sw_conn_clock *k, uint64_t now_ns);
/* After a read: `frames` frames completed in it, `pending` bytes of an
 * unfinished one are held now. */
void sw_conn_clock__read(struct sw_conn_clock *k, uint64_t now_ns, uint64_t frames,
			 size_t pending);
/*
 * The deadline that has passed at now_ns, the earliest one if several, or
 * SW_CLOSE__COUNT when none has. *next_ns (may be NULL) gets the earliest
 * deadline still to come (UINT64_MAX: none).
 */
enum sw_close_reason sw_conn_clock__due(const struct sw_conn_clock *k,
					const struct sw_conn_limits *l, uint64_t now_ns,
					uint64_t *next_ns);

/* The same host: address only, not port (IPv4, IPv6, v4-mapped v6 as v4). */
bool sw_peer__same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
