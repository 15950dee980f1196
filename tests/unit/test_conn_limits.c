// SPDX-License-Identifier: Apache-2.0
/* The agent connection's deadlines (collector/conn_limits.c) on made-up
 * clocks, and the per-site log rate limit (common/log.c). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include "conn_limits.h"
#include "log.h"

#define S (1000000000ull)

static struct sw_conn_limits lim(void)
{
	struct sw_conn_limits l = {.handshake_ns = 10 * S, .frame_ns = 5 * S, .idle_ns = 60 * S,
				   .max_per_peer = 4, .frame_memory = 1 << 20};
	return l;
}

Test(conn_limits, defaults_are_the_documented_ones)
{
	struct sw_conn_limits l;

	sw_conn_limits__default(&l);
	cr_assert_eq(l.handshake_ns, 30 * S);
	cr_assert_eq(l.frame_ns, 30 * S);
	cr_assert_eq(l.idle_ns, 120 * S);
	cr_assert_eq(l.max_per_peer, 16);
	cr_assert_eq(l.frame_memory, (size_t)64 << 20);
	/* the label values of stallwatch_collector_connections_closed_total */
	cr_assert_str_eq(sw_close_reason__name(SW_CLOSE_HANDSHAKE), "handshake_timeout");
	cr_assert_str_eq(sw_close_reason__name(SW_CLOSE_FRAME), "frame_timeout");
	cr_assert_str_eq(sw_close_reason__name(SW_CLOSE_IDLE), "idle");
	cr_assert_str_eq(sw_close_reason__name(SW_CLOSE_PER_PEER), "per_peer");
	cr_assert_str_eq(sw_close_reason__name(SW_CLOSE_MEMORY), "frame_memory");
	cr_assert_str_eq(sw_close_reason__name(SW_CLOSE_TLS_HANDSHAKE), "tls_handshake");
}

Test(conn_limits, silent_peer_hits_the_handshake_deadline)
{
	struct sw_conn_limits l = lim();
	struct sw_conn_clock k;
	uint64_t next;

	sw_conn_clock__start(&k, 100 * S);
	cr_assert_eq(sw_conn_clock__due(&k, &l, 100 * S, &next), SW_CLOSE__COUNT);
	cr_assert_eq(next, 110 * S);
	cr_assert_eq(sw_conn_clock__due(&k, &l, 110 * S - 1, NULL), SW_CLOSE__COUNT);
	cr_assert_eq(sw_conn_clock__due(&k, &l, 110 * S, NULL), SW_CLOSE_HANDSHAKE);
}

Test(conn_limits, agent_sending_every_interval_is_never_due)
{
	struct sw_conn_limits l = lim();
	struct sw_conn_clock k;
	uint64_t t = 100 * S, next;

	sw_conn_clock__start(&k, t);
	/* hello at once, then a frame every 10 s for a day, some in pieces */
	sw_conn_clock__read(&k, t + S / 100, 1, 0);
	for (int i = 1; i < 8640; i++) {
		uint64_t at = t + (uint64_t)i * 10 * S;

		cr_assert_eq(sw_conn_clock__due(&k, &l, at, &next), SW_CLOSE__COUNT, "i=%d", i);
		if (i % 3 == 0) {
			sw_conn_clock__read(&k, at, 0, 100);	      /* first half */
			sw_conn_clock__read(&k, at + S / 1000, 1, 0); /* the rest */
		} else {
			sw_conn_clock__read(&k, at, 1, 0);
		}
		cr_assert_eq(k.frame_start_ns, 0);
	}
	cr_assert_eq(k.frames, 8640 + 8640 / 3 - 8640 / 3);
}

Test(conn_limits, started_frame_must_complete)
{
	struct sw_conn_limits l = lim();
	struct sw_conn_clock k;
	uint64_t next;

	sw_conn_clock__start(&k, 0);
	sw_conn_clock__read(&k, 1 * S, 1, 0); /* hello */
	sw_conn_clock__read(&k, 2 * S, 0, 8); /* a header, then a byte a second */
	for (uint64_t t = 3; t < 7; t++) {
		sw_conn_clock__read(&k, t * S, 0, 8 + t);
		cr_assert_eq(k.frame_start_ns, 2 * S, "trickling does not restart the frame clock");
	}
	cr_assert_eq(sw_conn_clock__due(&k, &l, 7 * S - 1, &next), SW_CLOSE__COUNT);
	cr_assert_eq(next, 7 * S);
	cr_assert_eq(sw_conn_clock__due(&k, &l, 7 * S, NULL), SW_CLOSE_FRAME);
}

Test(conn_limits, frames_back_to_back_restart_the_frame_clock)
{
	struct sw_conn_limits l = lim();
	struct sw_conn_clock k;

	/* every read ends inside a frame, but each completes one: busy, not slow */
	sw_conn_clock__start(&k, 0);
	for (uint64_t t = 1; t < 100; t++) {
		sw_conn_clock__read(&k, t * S, 1, 1000);
		cr_assert_eq(k.frame_start_ns, t * S);
		cr_assert_eq(sw_conn_clock__due(&k, &l, t * S + 4 * S, NULL), SW_CLOSE__COUNT);
	}
}

Test(conn_limits, half_frame_during_handshake_is_cut_at_the_earlier_deadline)
{
	struct sw_conn_limits l = lim();
	struct sw_conn_clock k;

	sw_conn_clock__start(&k, 0);
	sw_conn_clock__read(&k, 1 * S, 0, 500); /* half a hello, then nothing */
	/* frame deadline 6 s, handshake 10 s: the frame one first */
	cr_assert_eq(sw_conn_clock__due(&k, &l, 6 * S, NULL), SW_CLOSE_FRAME);
	cr_assert_eq(sw_conn_clock__due(&k, &l, 20 * S, NULL), SW_CLOSE_FRAME,
		     "earliest passed deadline names the reason");
	l.frame_ns = 30 * S;
	cr_assert_eq(sw_conn_clock__due(&k, &l, 20 * S, NULL), SW_CLOSE_HANDSHAKE);
}

Test(conn_limits, idle_after_handshake)
{
	struct sw_conn_limits l = lim();
	struct sw_conn_clock k;
	uint64_t next;

	sw_conn_clock__start(&k, 0);
	sw_conn_clock__read(&k, 1 * S, 1, 0);
	cr_assert_eq(sw_conn_clock__due(&k, &l, 50 * S, &next), SW_CLOSE__COUNT,
		     "the handshake deadline no longer applies");
	cr_assert_eq(next, 61 * S);
	cr_assert_eq(sw_conn_clock__due(&k, &l, 61 * S, NULL), SW_CLOSE_IDLE);
}

Test(conn_limits, huge_limits_do_not_wrap)
{
	struct sw_conn_limits l = lim();
	struct sw_conn_clock k;
	uint64_t next;

	l.handshake_ns = UINT64_MAX;
	sw_conn_clock__start(&k, 5 * S);
	cr_assert_eq(sw_conn_clock__due(&k, &l, UINT64_MAX - 1, &next), SW_CLOSE__COUNT);
	cr_assert_eq(next, UINT64_MAX);
}

static struct sockaddr_storage v4(const char *ip, int port)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	s->sin_family = AF_INET;
	s->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &s->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *ip, int port)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

	s->sin6_family = AF_INET6;
	s->sin6_port = htons((uint16_t)port);
	inet_pton(AF_INET6, ip, &s->sin6_addr);
	return ss;
}

Test(conn_limits, peers_are_addresses_not_ports)
{
	struct sockaddr_storage a = v4("10.0.0.1", 1000), b = v4("10.0.0.1", 2000),
				c = v4("10.0.0.2", 1000), m = v6("::ffff:10.0.0.1", 3000),
				x = v6("2001:db8::1", 1), y = v6("2001:db8::1", 2), z = v6("2001:db8::2", 1);

	cr_assert(sw_peer__same(&a, &b));
	cr_assert_not(sw_peer__same(&a, &c));
	cr_assert(sw_peer__same(&a, &m), "v4-mapped on a dual-stack listener is the same host");
	cr_assert(sw_peer__same(&x, &y));
	cr_assert_not(sw_peer__same(&x, &z));
	cr_assert_not(sw_peer__same(&a, &x));
}

Test(log_limit, at_most_per_sec_lines_per_window_and_the_rest_reported)
{
	struct sw_log_site s = {.file = "x.c", .line = 1};
	uint64_t rep, printed = 0, t = 5 * S;
	int i;

	/* 10,000 lines in one second: SW_LOG_PER_SEC printed */
	for (i = 0; i < 10000; i++) {
		printed += sw_log_site__admit(&s, t + (uint64_t)i * 100000, &rep);
		cr_assert_eq(rep, 0);
	}
	cr_assert_eq(printed, SW_LOG_PER_SEC);
	cr_assert_eq(s.pending, 10000 - SW_LOG_PER_SEC);
	/* the next window: its first line comes with the count */
	cr_assert(sw_log_site__admit(&s, t + S, &rep));
	cr_assert_eq(rep, 10000 - SW_LOG_PER_SEC);
	cr_assert_eq(s.pending, 0);
	/* a line a second is never suppressed */
	for (i = 2; i < 100; i++) {
		cr_assert(sw_log_site__admit(&s, t + (uint64_t)i * S, &rep));
		cr_assert_eq(rep, 0);
	}
}

Test(log_limit, first_line_at_time_zero)
{
	struct sw_log_site s = {.file = "x.c", .line = 1};
	uint64_t rep;

	cr_assert(sw_log_site__admit(&s, 0, &rep));
	cr_assert_eq(rep, 0);
}

Test(log_limit, admit_counts_suppressed_lines)
{
	static struct sw_log_site s = {.file = "y.c", .line = 2};
	uint64_t before = sw_log__suppressed(), ok = 0;

	/* in one process, well within a second on any machine is not assumed:
	 * whatever was not printed is counted, exactly */
	for (int i = 0; i < 1000; i++)
		ok += sw_log__admit(&s);
	cr_assert_geq(ok, SW_LOG_PER_SEC);
	cr_assert_eq(sw_log__suppressed() - before, 1000 - ok);
}
