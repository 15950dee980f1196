// SPDX-License-Identifier: Apache-2.0
/* Frame reassembly and decoding, bad bytes by reason, the listener's caps. */
#include "decoder.h"
#include "frame.h"
#include "listener.h"
#include "test_collector_helpers.h"
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

static int batches;
static uint64_t last_seq;

static void count_batch(void *ctx, const Stallwatch__V1__Batch *b)
{
	(void)ctx;
	batches++;
	last_seq = b->seq;
}

static struct sw_decoder *d;

static void setup(void)
{
	batches = 0;
	last_seq = 0;
	d = sw_decoder__new();
	cr_assert_not_null(d);
}

static void teardown(void) { sw_decoder__free(d); }

/* A batch of seq with one loop; big = a long exe path so zlib pays. */
static uint8_t *good_frame(uint64_t seq, int zlib, size_t *len)
{
	static char exe[4096];
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT;
	Stallwatch__V1__ProcessInfo *pp[1] = {&pi};
	struct t_loop l;
	Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};
	uint8_t *f;

	memset(exe, 'a', sizeof(exe) - 1);
	pi.pid = 1;
	pi.exe = exe;
	t_loop_init(&l, 1, 1, "node");
	t_loop_add(&l, MS, 3);
	b.seq = seq;
	b.processes = pp;
	b.n_processes = 1;
	b.loops = lp;
	b.n_loops = 1;
	f = t_frame(&b, zlib, len);
	cr_assert_not_null(f);
	cr_assert_eq(!!(f[3] & SW_FRAME_F_ZLIB), !!zlib);
	return f;
}

static enum sw_bad_reason feed(const uint8_t *p, size_t n)
{
	return sw_decoder__feed(d, p, n, count_batch, NULL, NULL);
}

TestSuite(decoder, .init = setup, .fini = teardown);

Test(decoder, whole_frames_raw_and_zlib)
{
	size_t n1, n2;
	uint8_t *f1 = good_frame(1, 0, &n1), *f2 = good_frame(2, 1, &n2);
	uint64_t frames = 0;

	cr_assert_lt(n2, n1, "zlib frame should be the smaller");
	cr_assert_eq(sw_decoder__feed(d, f1, n1, count_batch, NULL, &frames), SW_BAD_NONE);
	cr_assert_eq(sw_decoder__feed(d, f2, n2, count_batch, NULL, &frames), SW_BAD_NONE);
	cr_assert_eq(batches, 2);
	cr_assert_eq(frames, 2);
	cr_assert_eq(last_seq, 2);
	cr_assert_eq(sw_decoder__pending(d), 0);
	free(f1);
	free(f2);
}

Test(decoder, split_and_partial_reads)
{
	size_t n1, n2, n;
	uint8_t *f1 = good_frame(1, 1, &n1), *f2 = good_frame(2, 0, &n2), *all;

	/* byte by byte: the header itself arrives in pieces */
	for (size_t i = 0; i < n1; i++) {
		cr_assert_eq(feed(f1 + i, 1), SW_BAD_NONE);
		cr_assert_eq(batches, i + 1 == n1 ? 1 : 0);
	}
	/* two frames in one read, cut in the middle of the second's header
	 * and then in its payload */
	n = n1 + n2;
	all = malloc(n);
	memcpy(all, f1, n1);
	memcpy(all + n1, f2, n2);
	cr_assert_eq(feed(all, n1 + 5), SW_BAD_NONE);
	cr_assert_eq(batches, 2);
	cr_assert_eq(sw_decoder__pending(d), 5);
	cr_assert_eq(feed(all + n1 + 5, 100), SW_BAD_NONE);
	cr_assert_eq(batches, 2);
	cr_assert_eq(feed(all + n1 + 105, n - n1 - 105), SW_BAD_NONE);
	cr_assert_eq(batches, 3);
	cr_assert_eq(last_seq, 2);
	free(all);
	free(f1);
	free(f2);
}

/* Sums what a batch of many loops says, to see it decoded whole. */
static uint64_t big_iters, big_pids;

static void sum_batch(void *ctx, const Stallwatch__V1__Batch *b)
{
	(void)ctx;
	batches++;
	for (size_t i = 0; i < b->n_loops; i++) {
		big_iters += b->loops[i]->iterations;
		big_pids += b->loops[i]->pid;
		for (size_t j = 0; j < b->loops[i]->n_buckets; j++)
			big_iters += b->loops[i]->buckets[j]->count;
	}
}

/* A batch that unpacks into far more than one arena chunk (decoder.c), then
 * small ones: every value of the big one arrives, and the arena reset
 * between batches leaves nothing stale for the next. */
Test(decoder, big_batch_then_small_ones)
{
	enum { NL = 2000 };
	static struct t_loop l[NL];
	static Stallwatch__V1__LoopSummary *lp[NL];
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	uint64_t want_iters = 0, want_pids = 0;
	size_t n, ns;
	uint8_t *f, *small;

	for (uint32_t i = 0; i < NL; i++) {
		t_loop_init(&l[i], 100 + i, 100 + i, "node");
		for (int k = 0; k < 8; k++)
			t_loop_add(&l[i], (uint64_t)(k + 1) * MS, i + k);
		l[i].ls.iterations = i; /* apart from the buckets' counts */
		lp[i] = &l[i].ls;
		want_pids += 100 + i;
		want_iters += i;
		for (int k = 0; k < 8; k++)
			want_iters += i + k;
	}
	b.seq = 7;
	b.loops = lp;
	b.n_loops = NL;
	for (int zlib = 0; zlib < 2; zlib++) {
		big_iters = big_pids = 0;
		batches = 0;
		f = t_frame(&b, zlib, &n);
		cr_assert_not_null(f);
		cr_assert_eq(sw_decoder__feed(d, f, n, sum_batch, NULL, NULL), SW_BAD_NONE);
		cr_assert_eq(batches, 1);
		cr_assert_eq(big_iters, want_iters);
		cr_assert_eq(big_pids, want_pids);
		free(f);
		for (uint64_t seq = 1; seq <= 3; seq++) {
			small = good_frame(seq, (int)seq & 1, &ns);
			cr_assert_eq(feed(small, ns), SW_BAD_NONE);
			cr_assert_eq(last_seq, seq);
			free(small);
		}
	}
}

Test(decoder, bad_magic)
{
	cr_assert_eq(feed((const uint8_t *)"GET / HTTP/1.1\r\n", 16), SW_BAD_MAGIC);
}

Test(decoder, bad_magic_second_byte_alone)
{
	cr_assert_eq(feed((const uint8_t *)"SX", 2), SW_BAD_MAGIC);
}

Test(decoder, bad_version_and_flags)
{
	uint8_t v[8] = {'S', 'W', 9, 0, 0, 0, 0, 0};
	uint8_t f[8] = {'S', 'W', SW_FRAME_VERSION, 0x80, 0, 0, 0, 0};

	cr_assert_eq(feed(v, 8), SW_BAD_HEADER);
	sw_decoder__free(d);
	d = sw_decoder__new();
	cr_assert_eq(feed(f, 8), SW_BAD_HEADER);
}

Test(decoder, oversize_length)
{
	uint8_t h[8] = {'S', 'W', SW_FRAME_VERSION, 0, 0x7f, 0xff, 0xff, 0xff};

	cr_assert_eq(feed(h, 8), SW_BAD_OVERSIZE);
}

Test(decoder, oversize_inflated_length)
{
	/* compressed frame claiming 1 GiB raw: refused before any allocation */
	uint8_t f[16] = {
	    'S', 'W', SW_FRAME_VERSION, SW_FRAME_F_ZLIB, 0, 0, 0, 8, 0x40, 0, 0, 0, 0x78, 0x9c,
	    0,	 0};

	cr_assert_eq(feed(f, 16), SW_BAD_OVERSIZE);
}

Test(decoder, corrupt_zlib)
{
	size_t n;
	uint8_t *f = good_frame(1, 1, &n);

	/* past the header and the raw-length word: the deflate stream */
	for (size_t i = SW_FRAME_HDR_LEN + 6; i < n; i += 3)
		f[i] ^= 0x5a;
	cr_assert_eq(feed(f, n), SW_BAD_ZLIB);
	cr_assert_eq(batches, 0);
	free(f);
}

Test(decoder, garbage_protobuf)
{
	/* 0xff: field 31, wire type 7, which does not exist */
	static const uint8_t payload[] = {0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
	uint8_t *f;
	size_t n;

	cr_assert_eq(sw_frame_encode(payload, sizeof(payload), false, &f, &n), 0);
	cr_assert_eq(feed(f, n), SW_BAD_PROTOBUF);
	free(f);
}

static uint8_t *loop_frame(uint32_t schema, uint32_t bucket, size_t *len)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	struct t_loop l;
	Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};

	t_loop_init(&l, 1, 1, "node");
	t_loop_add(&l, MS, 1);
	l.ls.hist_schema = schema;
	l.b[0].index = bucket;
	b.loops = lp;
	b.n_loops = 1;
	return t_frame(&b, 0, len);
}

Test(decoder, other_hist_schema)
{
	size_t n;
	uint8_t *f = loop_frame(SW_HIST_SCHEMA + 1, 5, &n);

	cr_assert_eq(feed(f, n), SW_BAD_HIST_SCHEMA);
	free(f);
}

Test(decoder, bucket_out_of_range)
{
	size_t n;
	uint8_t *f = loop_frame(SW_HIST_SCHEMA, SW_HIST_NBUCKETS, &n);

	cr_assert_eq(feed(f, n), SW_BAD_BUCKET);
	free(f);
	cr_assert_str_eq(sw_bad_reason__name(SW_BAD_BUCKET), "bad_bucket");
}

/* ---- the listener, over loopback ---- */

static int connect_to(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void spin(struct sw_ingest *in, int rounds)
{
	for (int i = 0; i < rounds; i++)
		cr_assert_eq(sw_ingest__run_once(in, 20, NULL), 0);
}

/* Nothing to read within 200 ms: the collector left it open (a shorter
 * wait than closed_by_peer's, for the many connections that must stay). */
static int still_open(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 200) == 0;
}

/* The peer's end is closed when recv() says EOF (or reset). */
static int closed_by_peer(int fd)
{
	struct timeval tv = {.tv_sec = 2};
	char c;

	ssize_t r;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	errno = 0;
	r = recv(fd, &c, 1, 0);
	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

Test(listener, bad_peer_does_not_disturb_good_one)
{
	struct sw_store_opts so = {.max_loops = 8, .max_incidents = 8};
	struct sw_store *s = sw_store__new(&so);
	struct sw_ingest_stats st;
	struct sw_ingest_opts io;
	struct sw_ingest *in;
	struct sw_addr a;
	const char *why;
	int good, bad;
	uint8_t *f;
	size_t n;

	cr_assert_not_null(s);
	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a};
	in = sw_ingest__new(&io, s);
	cr_assert_not_null(in);
	good = connect_to(sw_ingest__port(in));
	bad = connect_to(sw_ingest__port(in));
	spin(in, 3);
	f = good_frame(1, 1, &n);
	cr_assert_eq(write(good, f, 10), 10); /* partial first */
	cr_assert_eq(write(bad, "\x00\x01garbage", 9), 9);
	spin(in, 3);
	cr_assert_eq(write(good, f + 10, n - 10), (ssize_t)(n - 10));
	spin(in, 3);
	free(f);

	cr_assert(closed_by_peer(bad));
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.bad[SW_BAD_MAGIC], 1);
	cr_assert_eq(st.frames, 1);
	cr_assert_eq(st.connections, 1);
	sw_store__lock(s);
	cr_assert_eq(sw_store__nloops(s), 1);
	cr_assert_eq(sw_store__loop(s, 0)->iterations, 3);
	cr_assert_eq(sw_store__nagents(s), 1);
	cr_assert(sw_store__agent(s, 0)->up);
	sw_store__unlock(s);

	/* the good agent goes away: its series go stale, agent down */
	close(good);
	spin(in, 3);
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.connections, 0);
	sw_store__lock(s);
	cr_assert_not(sw_store__agent(s, 0)->up);
	cr_assert_neq(sw_store__loop(s, 0)->stale_since_ns, 0);
	sw_store__unlock(s);
	close(bad);
	sw_ingest__free(in);
	sw_store__free(s);
}

/* At the cap the listener stops accepting: the next agent waits in the
 * backlog, connected, and is taken as soon as a slot frees (issue 9: an
 * accept-and-close loop locked a real agent out for 28 s). */
Test(listener, connection_cap_waits_in_backlog)
{
	struct sw_store_opts so = {.max_loops = 8, .max_incidents = 8};
	struct sw_store *s = sw_store__new(&so);
	struct sw_ingest_stats st;
	struct sw_ingest_opts io;
	struct sw_ingest *in;
	struct sw_addr a;
	const char *why;
	int c1, c2;
	uint8_t *f;
	size_t n;

	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a, .max_conns = 1};
	in = sw_ingest__new(&io, s);
	cr_assert_not_null(in);
	c1 = connect_to(sw_ingest__port(in));
	spin(in, 2);
	c2 = connect_to(sw_ingest__port(in));
	f = good_frame(1, 1, &n);
	cr_assert_eq(write(c2, f, n), (ssize_t)n); /* into the backlog's socket */
	free(f);
	spin(in, 3);
	cr_assert(still_open(c2));
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.connections, 1);
	cr_assert_eq(st.refused, 0);
	cr_assert_eq(st.accept_paused, 1);
	cr_assert_eq(st.frames, 0);
	close(c1);
	spin(in, 3);
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.connections, 1);
	cr_assert_eq(st.frames, 1, "the waiting agent's frame arrives once a slot frees");
	cr_assert(still_open(c2));
	close(c2);
	sw_ingest__free(in);
	sw_store__free(s);
}

Test(listener, per_peer_cap_closes_and_counts)
{
	struct sw_store_opts so = {.max_loops = 8, .max_incidents = 8};
	struct sw_store *s = sw_store__new(&so);
	struct sw_conn_limits lim;
	struct sw_ingest_stats st;
	struct sw_ingest_opts io;
	struct sw_ingest *in;
	struct sw_addr a;
	const char *why;
	int c[3];

	sw_conn_limits__default(&lim);
	lim.max_per_peer = 2;
	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a, .limits = &lim};
	in = sw_ingest__new(&io, s);
	cr_assert_not_null(in);
	for (int i = 0; i < 3; i++) {
		c[i] = connect_to(sw_ingest__port(in));
		spin(in, 2);
	}
	cr_assert(still_open(c[0]));
	cr_assert(still_open(c[1]));
	cr_assert(closed_by_peer(c[2]));
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.connections, 2);
	cr_assert_eq(st.closed[SW_CLOSE_PER_PEER], 1);
	for (int i = 0; i < 3; i++)
		close(c[i]);
	sw_ingest__free(in);
	sw_store__free(s);
}

/* A silent connection is closed at the handshake deadline and counted. */
Test(listener, silent_peer_closed_at_handshake_deadline)
{
	struct sw_store_opts so = {.max_loops = 8, .max_incidents = 8};
	struct sw_store *s = sw_store__new(&so);
	struct sw_conn_limits lim;
	struct sw_ingest_stats st;
	struct sw_ingest_opts io;
	struct sw_ingest *in;
	struct sw_addr a;
	const char *why;
	int c1;

	sw_conn_limits__default(&lim);
	lim.handshake_ns = 1; /* due at the next round */
	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a, .limits = &lim};
	in = sw_ingest__new(&io, s);
	cr_assert_not_null(in);
	c1 = connect_to(sw_ingest__port(in));
	spin(in, 3);
	cr_assert(closed_by_peer(c1));
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.connections, 0);
	cr_assert_eq(st.closed[SW_CLOSE_HANDSHAKE], 1);
	close(c1);
	sw_ingest__free(in);
	sw_store__free(s);
}

/* Past --frame-memory the connection holding the most unfinished bytes
 * goes; a smaller one stays. */
Test(listener, frame_memory_budget_closes_the_largest)
{
	struct sw_store_opts so = {.max_loops = 8, .max_incidents = 8};
	struct sw_store *s = sw_store__new(&so);
	uint8_t hdr[8] = {'S', 'W', 1, 0, 0, 1, 0, 0}; /* 64 KiB announced */
	static uint8_t body[4096];
	struct sw_conn_limits lim;
	struct sw_ingest_stats st;
	struct sw_ingest_opts io;
	struct sw_ingest *in;
	struct sw_addr a;
	const char *why;
	int small, big;

	sw_conn_limits__default(&lim);
	lim.frame_memory = 2048;
	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a, .limits = &lim};
	in = sw_ingest__new(&io, s);
	cr_assert_not_null(in);
	small = connect_to(sw_ingest__port(in));
	big = connect_to(sw_ingest__port(in));
	spin(in, 2);
	cr_assert_eq(write(small, hdr, 8), 8);
	cr_assert_eq(write(small, body, 500), 500);
	spin(in, 2);
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.frame_bytes, 508);
	cr_assert_eq(write(big, hdr, 8), 8);
	cr_assert_eq(write(big, body, sizeof(body)), (ssize_t)sizeof(body));
	spin(in, 3);
	cr_assert(closed_by_peer(big));
	cr_assert(still_open(small));
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.closed[SW_CLOSE_MEMORY], 1);
	cr_assert_eq(st.connections, 1);
	cr_assert_eq(st.frame_bytes, 508, "what the closed one held is given back");
	close(small);
	close(big);
	spin(in, 2);
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.frame_bytes, 0);
	sw_ingest__free(in);
	sw_store__free(s);
}

Test(listener, address_parsing)
{
	struct sw_addr a;
	const char *why;

	cr_assert_eq(sw_addr__parse("127.0.0.1:7470", &a, &why), 0);
	cr_assert_eq(sw_addr__parse("[::1]:7470", &a, &why), 0);
	cr_assert_eq(sw_addr__parse("localhost:1", &a, &why), 0);
	cr_assert_eq(sw_addr__parse("127.0.0.1", &a, &why), -EINVAL);
	cr_assert_not_null(why);
	cr_assert_eq(sw_addr__parse("127.0.0.1:", &a, &why), -EINVAL);
	cr_assert_eq(sw_addr__parse("127.0.0.1:65536", &a, &why), -EINVAL);
	cr_assert_eq(sw_addr__parse("127.0.0.1:7x", &a, &why), -EINVAL);
	cr_assert_eq(sw_addr__parse(":7470", &a, &why), -EINVAL);
	cr_assert_eq(sw_addr__parse("::1:7470", &a, &why), -EINVAL);
	cr_assert_eq(sw_addr__parse("no-such-host.invalid:7470", &a, &why), -EINVAL);
}

/* ---- acks over the connection (Hello.acks) ---- */

static uint8_t *acking_frame(uint64_t seq, bool hello, bool acks, size_t *len)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Hello h = STALLWATCH__V1__HELLO__INIT;
	struct t_loop l;
	Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};
	uint8_t *f;

	h.agent_id = "acker:1";
	h.acks = acks;
	h.start_unix_ns = 1234;
	t_loop_init(&l, 1, 1, "node");
	t_loop_add(&l, MS, 1);
	b.seq = seq;
	b.hello = hello ? &h : NULL;
	b.loops = seq ? lp : NULL;
	b.n_loops = seq ? 1 : 0;
	f = t_frame(&b, 0, len);
	cr_assert_not_null(f);
	return f;
}

static void send_frames(int fd, const uint64_t *seqs, size_t n, bool acks)
{
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *f = acking_frame(seqs[i], i == 0, acks, &len);

		cr_assert_eq(write(fd, f, len), (ssize_t)len);
		free(f);
	}
}

/* Every ack that comes within the rounds; the highest, or -1 for none. */
static int64_t read_acks(struct sw_ingest *in, int fd, int rounds)
{
	uint8_t buf[256];
	size_t have = 0, used;
	uint64_t seq = 0;
	uint32_t refused = 0;
	bool any = false;

	for (int i = 0; i < rounds; i++) {
		ssize_t r;

		spin(in, 1);
		r = recv(fd, buf + have, sizeof(buf) - have, MSG_DONTWAIT);
		if (r <= 0)
			continue;
		have += (size_t)r;
		cr_assert_eq(sw_frame_ack_parse(buf, have, &seq, &refused, &used), 0);
		any |= used > 0;
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	cr_assert_eq(have, 0, "a cut ack frame");
	cr_assert_eq(refused, 0, "an honest agent refused (%u)", refused);
	return any ? (int64_t)seq : -1;
}

Test(listener, acks_what_it_applied_and_drops_what_is_resent)
{
	struct sw_store_opts so = {.max_loops = 8, .max_incidents = 8};
	struct sw_store *s = sw_store__new(&so);
	struct sw_store_counters c;
	struct sw_ingest_opts io;
	struct sw_ingest *in;
	struct sw_addr a;
	const char *why;
	const uint64_t first[] = {0, 1, 2, 3}, again[] = {0, 2, 3, 4};
	int fd;

	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a};
	in = sw_ingest__new(&io, s);
	cr_assert_not_null(in);
	fd = connect_to(sw_ingest__port(in));
	spin(in, 2);
	send_frames(fd, first, 4, true);
	cr_assert_eq(read_acks(in, fd, 10), 3);
	close(fd);
	spin(in, 2);

	/* the agent did not read that ack before the connection went: on the
	 * next it resends 2 and 3, then 4 */
	fd = connect_to(sw_ingest__port(in));
	spin(in, 2);
	send_frames(fd, again, 4, true);
	cr_assert_eq(read_acks(in, fd, 10), 4);
	sw_store__lock(s);
	cr_assert_eq(sw_store__loop(s, 0)->iterations, 4, "2 and 3 are not applied twice");
	sw_store__counters(s, &c);
	sw_store__unlock(s);
	cr_assert_eq(c.batches_duplicate, 2);
	cr_assert_eq(c.batches_gap, 0);
	close(fd);
	sw_ingest__free(in);
	sw_store__free(s);
}

Test(listener, an_agent_that_reads_no_acks_is_sent_none)
{
	struct sw_store_opts so = {.max_loops = 8, .max_incidents = 8};
	struct sw_store *s = sw_store__new(&so);
	struct sw_ingest_opts io;
	struct sw_ingest *in;
	struct sw_addr a;
	const char *why;
	const uint64_t seqs[] = {0, 1, 2};
	int fd;

	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a};
	in = sw_ingest__new(&io, s);
	cr_assert_not_null(in);
	fd = connect_to(sw_ingest__port(in));
	spin(in, 2);
	send_frames(fd, seqs, 3, false);
	cr_assert_eq(read_acks(in, fd, 10), -1);
	sw_store__lock(s);
	cr_assert_eq(sw_store__loop(s, 0)->iterations, 2);
	sw_store__unlock(s);
	close(fd);
	sw_ingest__free(in);
	sw_store__free(s);
}

/* ---- authentication (--token-file) and identity (Hello.session) ---- */

static uint8_t *auth_frame(uint64_t seq, const char *id, const char *token, const char *session,
			   size_t *len)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Hello h = STALLWATCH__V1__HELLO__INIT;
	struct t_loop l;
	Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};
	uint8_t *f;

	h.agent_id = (char *)id;
	h.acks = true;
	h.start_unix_ns = 1234;
	if (token) {
		h.token.data = (uint8_t *)token;
		h.token.len = strlen(token);
	}
	if (session) {
		h.session.data = (uint8_t *)session;
		h.session.len = SW_SESSION_LEN;
	}
	t_loop_init(&l, 1, 1, "node");
	t_loop_add(&l, MS, 1);
	b.seq = seq;
	b.hello = seq == 0 ? &h : NULL;
	b.loops = lp;
	b.n_loops = 1;
	f = t_frame(&b, 0, len);
	cr_assert_not_null(f);
	return f;
}

/* A hello (seq 0) and two batches, as an agent sends them on connecting. */
static void send_agent(int fd, const char *id, const char *token, const char *session)
{
	for (uint64_t seq = 0; seq < 3; seq++) {
		size_t len;
		uint8_t *f = auth_frame(seq, id, token, session, &len);

		cr_assert_eq(write(fd, f, len), (ssize_t)len);
		free(f);
	}
}

/* Serve until the collector closes fd; the refusal its last ack carried
 * (0: none), or -1 if it never closed. */
static int refusal_of(struct sw_ingest *in, int fd)
{
	uint8_t buf[256];
	size_t have = 0, used;
	uint64_t seq = 0;
	uint32_t refused = 0;

	for (int i = 0; i < 100; i++) {
		ssize_t r;

		spin(in, 1);
		r = recv(fd, buf + have, sizeof(buf) - have, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return (int)refused;
		if (r < 0)
			continue;
		have += (size_t)r;
		cr_assert_eq(sw_frame_ack_parse(buf, have, &seq, &refused, &used), 0);
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	return -1;
}

static uint64_t loop_iterations(struct sw_store *s)
{
	uint64_t n = 0;

	sw_store__lock(s);
	for (size_t i = 0; sw_store__loop(s, i); i++)
		n += sw_store__loop(s, i)->iterations;
	sw_store__unlock(s);
	return n;
}

Test(listener, nothing_applied_without_the_token)
{
	struct sw_store_opts so = {.max_loops = 8, .max_incidents = 8};
	struct sw_store *s = sw_store__new(&so);
	static struct sw_secret tok;
	const char *good = "0123456789abcdef0123456789abcdef";
	const char *bad = "0123456789abcdef0123456789abcdeF"; /* the last byte */
	struct sw_ingest_stats st;
	struct sw_ingest_opts io;
	struct sw_ingest *in;
	struct sw_addr a;
	const char *why;
	int fd;

	memcpy(tok.b, good, strlen(good));
	tok.len = strlen(good);
	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a, .token = &tok};
	in = sw_ingest__new(&io, s);
	cr_assert_not_null(in);

	/* no token, then a wrong one, then a prefix of the right one */
	const char *tries[] = {NULL, bad, "0123456789abcdef"};
	for (size_t i = 0; i < 3; i++) {
		fd = connect_to(sw_ingest__port(in));
		send_agent(fd, "mallory:1", tries[i], "sessionsession16");
		cr_assert_eq(refusal_of(in, fd), SW_REFUSED_TOKEN, "try %zu", i);
		close(fd);
		cr_assert_eq(loop_iterations(s), 0, "applied from an unauthenticated peer (try %zu)",
			     i);
	}
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.closed[SW_CLOSE_UNAUTHENTICATED], 3);

	fd = connect_to(sw_ingest__port(in));
	send_agent(fd, "alice:1", good, "sessionsession16");
	cr_assert_eq(read_acks(in, fd, 10), 2);
	cr_assert_eq(loop_iterations(s), 3);
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.closed[SW_CLOSE_UNAUTHENTICATED], 3);
	close(fd);
	sw_ingest__free(in);
	sw_store__free(s);
}

Test(listener, a_live_agent_id_is_not_taken_by_another_run)
{
	struct sw_store_opts so = {.max_loops = 8, .max_incidents = 8};
	struct sw_store *s = sw_store__new(&so);
	struct sw_ingest_stats st;
	struct sw_ingest_opts io;
	struct sw_ingest *in;
	struct sw_addr a;
	const char *why;
	int real, rival, again;

	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a};
	in = sw_ingest__new(&io, s);
	cr_assert_not_null(in);
	real = connect_to(sw_ingest__port(in));
	send_agent(real, "node-7:42", NULL, "run-one-run-one!");
	cr_assert_eq(read_acks(in, real, 10), 2);

	/* another run claiming the id while the first is connected */
	rival = connect_to(sw_ingest__port(in));
	send_agent(rival, "node-7:42", NULL, "run-two-run-two!");
	cr_assert_eq(refusal_of(in, rival), SW_REFUSED_IDENTITY);
	close(rival);
	cr_assert_eq(loop_iterations(s), 3, "the rival's batches were merged");
	cr_assert(still_open(real));
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.closed[SW_CLOSE_IDENTITY], 1);

	/* one without a session is somebody else too */
	rival = connect_to(sw_ingest__port(in));
	send_agent(rival, "node-7:42", NULL, NULL);
	cr_assert_eq(refusal_of(in, rival), SW_REFUSED_IDENTITY);
	close(rival);

	/* the same run reconnecting before its old connection is seen closed
	 * takes over: the old one is closed, the new one applied */
	again = connect_to(sw_ingest__port(in));
	send_agent(again, "node-7:42", NULL, "run-one-run-one!");
	spin(in, 3);
	cr_assert(closed_by_peer(real), "the superseded connection is left open");
	cr_assert_eq(read_acks(in, again, 10), 2);
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.closed[SW_CLOSE_IDENTITY], 2);
	cr_assert_eq(st.connections, 1);
	close(real);
	close(again);
	sw_ingest__free(in);
	sw_store__free(s);
}

Test(listener, at_the_cap_unauthenticated_peers_give_way_to_an_agent)
{
	struct sw_store_opts so = {.max_loops = 8, .max_incidents = 8};
	struct sw_store *s = sw_store__new(&so);
	static struct sw_secret tok;
	const char *good = "0123456789abcdef0123456789abcdef";
	struct sw_ingest_stats st;
	struct sw_ingest_opts io;
	struct sw_ingest *in;
	struct sw_addr a;
	const char *why;
	int idle[4], agent, late;

	memcpy(tok.b, good, strlen(good));
	tok.len = strlen(good);
	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a, .token = &tok, .max_conns = 4};
	in = sw_ingest__new(&io, s);
	cr_assert_not_null(in);
	for (int i = 0; i < 4; i++) {
		idle[i] = connect_to(sw_ingest__port(in));
		spin(in, 1);
	}
	spin(in, 2);
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.connections, 4);

	/* the cap is full of peers that sent nothing: the agent gets in */
	agent = connect_to(sw_ingest__port(in));
	send_agent(agent, "alice:1", good, "sessionsession16");
	cr_assert_eq(read_acks(in, agent, 10), 2);
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.closed[SW_CLOSE_PREEMPTED], 1);
	cr_assert_eq(st.connections, 4);
	cr_assert(closed_by_peer(idle[0]), "not the oldest unauthenticated one that went");

	/* another silent peer takes the oldest silent slot, never the agent's */
	late = connect_to(sw_ingest__port(in));
	spin(in, 3);
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.closed[SW_CLOSE_PREEMPTED], 2);
	cr_assert(closed_by_peer(idle[1]));
	cr_assert(still_open(agent));
	cr_assert_eq(loop_iterations(s), 3);
	for (int i = 0; i < 4; i++)
		close(idle[i]);
	close(agent);
	close(late);
	sw_ingest__free(in);
	sw_store__free(s);
}
