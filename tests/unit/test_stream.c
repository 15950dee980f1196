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
