// SPDX-License-Identifier: Apache-2.0
/* The agent's stream: bounded buffer that evicts the oldest frames and counts
 * them, the hello first on every connection, order kept, over real loopback
 * sockets (no root needed). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "frame.h"
#include "stream.h"

#define FRAME 1024

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* a frame whose bytes all say which one it is */
static uint8_t *frame(int n)
{
	uint8_t *f = malloc(FRAME);

	cr_assert_not_null(f);
	memset(f, n & 0xff, FRAME);
	return f;
}

static int listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 4), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static int closed_port(void)
{
	int port, fd = listener(&port);

	close(fd); /* nobody listens there now */
	return port;
}

Test(stream, bad_addresses_are_one_message)
{
	char err[256];

	cr_assert_null(sw_stream__new("nonsense", 65536, err, sizeof(err)));
	cr_assert(strstr(err, "HOST:PORT"), "%s", err);
	cr_assert_null(sw_stream__new("127.0.0.1:", 65536, err, sizeof(err)));
	cr_assert_null(sw_stream__new("no.such.host.invalid:7470", 65536, err, sizeof(err)));
	cr_assert(strstr(err, "cannot resolve"), "%s", err);
}

Test(stream, unreachable_collector_evicts_oldest_and_counts)
{
	char addr[64], err[256];
	struct sw_stream_stats st;
	struct sw_stream *s;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", closed_port());
	s = sw_stream__new(addr, 64 * FRAME, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	for (int i = 0; i < 100; i++) {
		sw_stream__queue(s, frame(i), FRAME);
		sw_stream__service(s, mono_ns()); /* connection refused: keeps going */
	}
	sw_stream__stats(s, &st);
	cr_assert_eq(st.connected, 0);
	cr_assert_eq(st.dropped_batches, 36, "dropped %llu", (unsigned long long)st.dropped_batches);
	cr_assert_eq(st.dropped_bytes, 36 * FRAME);
	cr_assert_eq(st.batches_sent, 0);
	sw_stream__free(s);
}

Test(stream, hello_first_then_the_newest_frames_in_order)
{
	char addr[64], err[256];
	uint8_t buf[FRAME];
	struct sw_stream_stats st;
	struct sw_stream *s;
	int port, lfd, cfd, got = 0, expect;
	uint64_t deadline;
	size_t have = 0;

	lfd = listener(&port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	s = sw_stream__new(addr, 8 * FRAME, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	sw_stream__set_hello(s, frame(0xee), FRAME);
	/* queued before any connection: 20 frames, room for 8 */
	for (int i = 0; i < 20; i++)
		sw_stream__queue(s, frame(i), FRAME);
	sw_stream__service(s, mono_ns());
	cfd = accept(lfd, NULL, NULL);
	cr_assert_geq(cfd, 0);
	expect = 0xee; /* hello first, then frames 12..19 */
	deadline = mono_ns() + 5000000000ull;
	while (got < 9 && mono_ns() < deadline) {
		struct pollfd p = { .fd = cfd, .events = POLLIN };
		ssize_t n;

		sw_stream__service(s, mono_ns());
		if (poll(&p, 1, 10) <= 0)
			continue;
		n = read(cfd, buf + have, FRAME - have);
		cr_assert_gt(n, 0);
		have += (size_t)n;
		if (have < FRAME)
			continue;
		for (int k = 0; k < FRAME; k++)
			cr_assert_eq(buf[k], expect, "frame %d byte %d: %d", got, k, buf[k]);
		have = 0;
		got++;
		expect = 12 + got - 1;
	}
	cr_assert_eq(got, 9, "received %d of 9 frames", got);
	sw_stream__stats(s, &st);
	cr_assert_eq(st.connected, 1);
	cr_assert_eq(st.dropped_batches, 12);
	cr_assert_eq(st.batches_sent, 8);
	cr_assert_eq(st.reconnects, 0, "the first connection is not a reconnection");
	sw_stream__free(s);
	close(cfd);
	close(lfd);
}

/* ---- acks: what is not acknowledged is kept and resent, in order ---- */

static int accept_within(int lfd, struct sw_stream *s)
{
	uint64_t deadline = mono_ns() + 10000000000ull; /* the backoff starts at 0.5 s */

	while (mono_ns() < deadline) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };

		sw_stream__service(s, mono_ns());
		if (poll(&p, 1, 10) > 0)
			return accept(lfd, NULL, NULL);
	}
	cr_assert_fail("the stream did not connect");
	return -1;
}

/* Read n whole FRAME-sized frames, servicing the stream meanwhile; their
 * first bytes (which say which frame each is) go to ids. */
static void read_frames(int cfd, struct sw_stream *s, int *ids, int n)
{
	uint64_t deadline = mono_ns() + 5000000000ull;
	uint8_t buf[FRAME];
	size_t have = 0;
	int got = 0;

	while (got < n && mono_ns() < deadline) {
		struct pollfd p = { .fd = cfd, .events = POLLIN };
		ssize_t r;

		sw_stream__service(s, mono_ns());
		if (poll(&p, 1, 10) <= 0)
			continue;
		r = read(cfd, buf + have, FRAME - have);
		cr_assert_gt(r, 0);
		have += (size_t)r;
		if (have < FRAME)
			continue;
		ids[got++] = buf[0];
		have = 0;
	}
	cr_assert_eq(got, n, "received %d of %d frames", got, n);
}

static void ack(int cfd, uint64_t seq)
{
	uint8_t f[SW_ACK_FRAME_MAX];
	size_t n = sw_frame_ack_encode(seq, SW_REFUSED_NONE, f);

	cr_assert_eq(write(cfd, f, n), (ssize_t)n);
}

/* Service until cond holds on the stats, or 5 s. */
#define SERVICE_UNTIL(s, st, cond)                                                  \
	do {                                                                        \
		uint64_t end_ = mono_ns() + 5000000000ull;                          \
		do {                                                                \
			sw_stream__service(s, mono_ns());                           \
			sw_stream__stats(s, &(st));                                 \
			if (cond)                                                   \
				break;                                              \
			usleep(1000);                                               \
		} while (mono_ns() < end_);                                         \
		cr_assert(cond, "timed out waiting for " #cond);                    \
	} while (0)

Test(stream, unacknowledged_frames_are_resent_in_order_after_a_reconnect)
{
	char addr[64], err[256];
	struct sw_stream_stats st;
	struct sw_stream *s;
	int port, lfd, cfd, ids[8];

	lfd = listener(&port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	s = sw_stream__new(addr, 64 * FRAME, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	sw_stream__set_hello(s, frame(0xee), FRAME);
	for (int i = 1; i <= 5; i++)
		sw_stream__queue_seq(s, (uint64_t)i, 1, frame(i), FRAME);
	cfd = accept_within(lfd, s);
	read_frames(cfd, s, ids, 6);
	cr_assert_eq(ids[0], 0xee);
	for (int i = 1; i <= 5; i++)
		cr_assert_eq(ids[i], i);
	ack(cfd, 3);
	SERVICE_UNTIL(s, st, st.batches_acked == 3);
	cr_assert_eq(st.acked_seq, 3);
	cr_assert_eq(st.buffered_bytes, 2 * FRAME, "4 and 5 kept until acknowledged");

	/* the collector goes away without acknowledging 4 and 5 */
	close(cfd);
	SERVICE_UNTIL(s, st, !st.connected);
	sw_stream__queue_seq(s, 6, 1, frame(6), FRAME);
	cfd = accept_within(lfd, s);
	read_frames(cfd, s, ids, 4);
	cr_assert_eq(ids[0], 0xee, "the hello first on every connection");
	cr_assert_eq(ids[1], 4);
	cr_assert_eq(ids[2], 5);
	cr_assert_eq(ids[3], 6);
	sw_stream__stats(s, &st);
	cr_assert_eq(st.batches_resent, 2);
	cr_assert_eq(st.dropped_batches, 0);
	ack(cfd, 6);
	SERVICE_UNTIL(s, st, st.buffered_bytes == 0);
	cr_assert_eq(st.batches_acked, 6);
	sw_stream__free(s);
	close(cfd);
	close(lfd);
}

Test(stream, eviction_takes_frames_never_written_and_counts_their_incidents)
{
	char addr[64], err[256];
	struct sw_stream_stats st;
	struct sw_stream *s;
	int port, lfd, cfd, ids[8];

	lfd = listener(&port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	s = sw_stream__new(addr, 4 * FRAME, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	for (int i = 1; i <= 4; i++)
		sw_stream__queue_seq(s, (uint64_t)i, 1, frame(i), FRAME);
	cfd = accept_within(lfd, s);
	read_frames(cfd, s, ids, 4);
	ack(cfd, 0); /* the hello's ack: this collector acks, nothing applied yet */
	SERVICE_UNTIL(s, st, st.acked_seq == 0 && st.batches_sent == 4);
	/* 1..4 written, unacknowledged (applied, maybe): they stay, and the
	 * new ones, never written, give way as they come */
	for (int i = 5; i <= 8; i++)
		sw_stream__queue_seq(s, (uint64_t)i, 2, frame(i), FRAME);
	sw_stream__stats(s, &st);
	cr_assert_eq(st.dropped_batches, 4);
	cr_assert_eq(st.dropped_bytes, 4 * FRAME);
	cr_assert_eq(st.dropped_incidents, 8);
	ack(cfd, 4);
	SERVICE_UNTIL(s, st, st.buffered_bytes == 0);
	sw_stream__queue_seq(s, 9, 1, frame(9), FRAME);
	read_frames(cfd, s, ids, 1);
	cr_assert_eq(ids[0], 9, "after 4 comes 9: the collector sees 5..8 as a gap");
	sw_stream__free(s);
	close(cfd);
	close(lfd);
}

Test(stream, bytes_that_are_no_ack_close_the_connection)
{
	char addr[64], err[256];
	struct sw_stream_stats st;
	struct sw_stream *s;
	int port, lfd, cfd;

	lfd = listener(&port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	s = sw_stream__new(addr, 4 * FRAME, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	cfd = accept_within(lfd, s);
	SERVICE_UNTIL(s, st, st.connected);
	cr_assert_eq(write(cfd, "HTTP/1.1 400 Bad Request\r\n", 26), 26);
	SERVICE_UNTIL(s, st, !st.connected);
	sw_stream__free(s);
	close(cfd);
	close(lfd);
}
