// SPDX-License-Identifier: Apache-2.0
/*
 * The collector's listener over TLS (collector/listener.c, common/tls.c),
 * with a client speaking through common/tls.c over a real loopback socket:
 *  - frames sent by a client that then goes quiet, sized so that the
 *    collector's first wake ends (READS_PER_WAKE) inside their last TLS
 *    record, are applied and acknowledged to the last one. GnuTLS decrypts
 *    a whole record and keeps what a read did not take; epoll cannot see
 *    those bytes, so a listener that waited for the socket would sit on
 *    them forever (the last batch never acked);
 *  - a client that is not TLS, and one without the client certificate the
 *    listener requires, are closed and counted as tls_handshake; a probe
 *    that connects and closes is not.
 */
#define _GNU_SOURCE /* memmem, memrchr in test_collector_helpers.h */
#include "listener.h"
#include "test_collector_helpers.h"
#include "test_tls_pki.h"
#include "tls.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(listener_tls, .init = pki_make, .fini = pki_remove);

/* Loop summaries per batch: up to ~64 KiB frames, the decoder's buffer */
#define MAX_LOOPS 700

static uint8_t *big_frame(uint64_t seq, int loops, size_t *len)
{
	static struct t_loop l[MAX_LOOPS];
	static Stallwatch__V1__LoopSummary *lp[MAX_LOOPS];
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Hello h = STALLWATCH__V1__HELLO__INIT;
	uint8_t *f;

	h.agent_id = "tls-agent:1";
	h.acks = true;
	h.start_unix_ns = 1234;
	for (int i = 0; i < loops; i++) {
		t_loop_init(&l[i], 1, 1 + (uint32_t)i, "node");
		for (int k = 0; k < 8; k++)
			t_loop_add(&l[i], (uint64_t)(k + 1) * MS, 1);
		lp[i] = &l[i].ls;
	}
	b.seq = seq;
	b.hello = seq ? NULL : &h;
	b.loops = seq ? lp : NULL;
	b.n_loops = seq ? (size_t)loops : 0;
	f = t_frame(&b, 0, len);
	cr_assert_not_null(f);
	return f;
}

#define RECORD 16384	    /* GnuTLS's largest record: what one send of more makes */
#define DEC_BUF (64 * 1024) /* collector/decoder.c DEC_INITIAL, for frames within it */
#define READS 16	    /* collector/listener.c READS_PER_WAKE */

/*
 * The collector's reads of a stream of frames sent as full TLS records, all
 * in its socket before it reads: each read takes at most one record and at
 * most the decoder's room (its buffer less the unfinished frame it holds).
 * True when the last read of the first wake takes part of the stream's last
 * record: the rest is then held decrypted by GnuTLS, the socket is empty,
 * and epoll has nothing more to say about this connection, ever.
 */
static bool last_bytes_held(const size_t *frames, int n)
{
	size_t total = 0, pos = 0, len = 0, rec_end, room, take;
	int fi = 0;

	for (int i = 0; i < n; i++)
		total += frames[i];
	for (int r = 0; r < READS; r++) {
		if (pos >= total)
			return false;
		rec_end = (pos / RECORD + 1) * RECORD;
		rec_end = rec_end < total ? rec_end : total;
		room = DEC_BUF - len;
		take = rec_end - pos < room ? rec_end - pos : room;
		pos += take;
		len += take;
		while (fi < n && len >= frames[fi])
			len -= frames[fi++];
	}
	rec_end = (pos / RECORD + 1) * RECORD;
	return pos < total && pos % RECORD && rec_end >= total;
}

static int connect_nb(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

static struct sw_tls_ctx *ctx(bool server, const char *cert, const char *key, const char *ca)
{
	struct sw_tls_files f = {
	    .cert = cert ? pki_path(cert) : NULL,
	    .key = key ? pki_path(key) : NULL,
	    .ca = ca ? pki_path(ca) : NULL,
	};
	char err[1024] = "";
	struct sw_tls_ctx *c = server ? sw_tls_ctx__server(&f, err, sizeof(err))
				      : sw_tls_ctx__client(&f, err, sizeof(err));

	cr_assert_not_null(c, "%s", err);
	return c;
}

static struct sw_ingest *ingest(struct sw_store **s, struct sw_tls_ctx *tls)
{
	struct sw_store_opts so = {.max_loops = 1024, .max_incidents = 8};
	struct sw_ingest_opts io;
	struct sw_addr a;
	const char *why;
	struct sw_ingest *in;

	*s = sw_store__new(&so);
	cr_assert_not_null(*s);
	cr_assert_eq(sw_addr__parse("127.0.0.1:0", &a, &why), 0);
	io = (struct sw_ingest_opts){.listen = &a, .tls = tls};
	in = sw_ingest__new(&io, *s);
	cr_assert_not_null(in);
	return in;
}

/* One round of the collector; 0 ms when told, so the client's steps and
 * the collector's alternate quickly. */
static void round_of(struct sw_ingest *in, int ms)
{
	cr_assert_eq(sw_ingest__run_once(in, ms, NULL), 0);
}

/* Client handshake, the collector served between its steps: 0 or fatal. */
static int handshake(struct sw_ingest *in, struct sw_tls *t)
{
	int rc = -EAGAIN;

	for (int i = 0; i < 500 && rc == -EAGAIN; i++) {
		rc = sw_tls__handshake(t);
		round_of(in, 10);
	}
	return rc;
}

/* The acks the client has, the highest so far in *acked. */
static void read_acks(struct sw_tls *t, uint64_t *acked)
{
	static uint8_t rx[256];
	static size_t have;
	uint64_t seq = 0;
	uint32_t refused = 0;
	size_t used;
	ssize_t n;

	while ((n = sw_tls__recv(t, rx + have, sizeof(rx) - have)) > 0) {
		have += (size_t)n;
		while (have) {
			cr_assert_eq(sw_frame_ack_parse(rx, have, &seq, &refused, &used), 0);
			if (!used)
				break;
			memmove(rx, rx + used, have - used);
			have -= used;
			cr_assert_eq(refused, 0);
			*acked = seq;
		}
	}
	cr_assert_eq(n, -EAGAIN, "%zd %s", n, sw_tls__error(t));
}

Test(listener_tls, bytes_gnutls_holds_are_read_without_the_socket)
{
	struct sw_tls_ctx *sc = ctx(true, "server.pem", "server.key", NULL);
	struct sw_tls_ctx *cc = ctx(false, NULL, NULL, "ca.pem");
	static size_t size[MAX_LOOPS + 1];
	size_t frames[8], len, off, blen = 0;
	struct sw_store *s;
	struct sw_ingest *in = ingest(&s, sc);
	struct sw_ingest_stats st;
	struct sw_store_counters c;
	uint8_t *f, *burst;
	uint64_t acked = 0;
	int big = 0, k = 0, small = 0, maxl, fd, sndbuf = 1 << 20;
	struct sw_tls *t;
	ssize_t n;

	/* frames that make the collector's first wake end inside the last
	 * record (last_bytes_held), found from their real encoded sizes */
	for (maxl = 1; maxl <= MAX_LOOPS; maxl++) {
		free(big_frame(1, maxl, &size[maxl]));
		if (size[maxl] > DEC_BUF)
			break;
	}
	maxl--; /* the most that fit the decoder's first buffer */
	for (int b = maxl; b > 100 && !big; b--)
		for (int kk = 1; kk <= 6 && !big; kk++)
			for (int sm = 1; sm <= maxl && !big; sm++) {
				for (int i = 0; i < kk; i++)
					frames[i] = size[b];
				frames[kk] = size[sm];
				if (last_bytes_held(frames, kk + 1))
					big = b, k = kk, small = sm;
			}
	cr_assert(big, "no frames end a wake inside the last record");

	fd = connect_nb(sw_ingest__port(in));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	t = sw_tls__new(cc, fd, "127.0.0.1");
	cr_assert_not_null(t);
	cr_assert_eq(handshake(in, t), 0, "%s", sw_tls__error(t));
	/* the hello, applied and acked: the decoder is empty again */
	f = big_frame(0, 0, &len);
	cr_assert_eq(sw_tls__send(t, f, len), (ssize_t)len);
	free(f);
	for (int i = 0; i < 100; i++) {
		round_of(in, 10);
		sw_ingest__stats(in, &st);
		if (st.frames == 1)
			break;
	}
	cr_assert_eq(st.frames, 1);
	read_acks(t, &acked);

	/* k big frames and a small one, all in the socket before the
	 * collector reads any */
	burst = malloc((size_t)(k + 1) * DEC_BUF);
	cr_assert_not_null(burst);
	for (int i = 0; i <= k; i++) {
		f = big_frame((uint64_t)i + 1, i < k ? big : small, &len);
		cr_assert_eq(len, i < k ? size[big] : size[small]);
		memcpy(burst + blen, f, len);
		blen += len;
		free(f);
	}
	for (off = 0; off < blen; off += (size_t)n) {
		n = sw_tls__send(t, burst + off, blen - off);
		cr_assert_gt(n, 0, "the socket took only %zu of %zu bytes (%zd)", off, blen, n);
	}
	/* the client is silent from here on: the collector must finish the
	 * last frame from what GnuTLS holds, and ack it */
	for (int i = 0; i < 50 && acked < (uint64_t)k + 1; i++) {
		round_of(in, 10);
		read_acks(t, &acked);
	}
	sw_ingest__stats(in, &st);
	cr_assert_eq(acked, (uint64_t)k + 1,
		     "acked %llu of %d batches; %llu frames read (%d x %zu + %zu bytes)",
		     (unsigned long long)acked, k + 1, (unsigned long long)st.frames, k, size[big],
		     size[small]);
	sw_store__lock(s);
	sw_store__counters(s, &c);
	sw_store__unlock(s);
	cr_assert_eq(c.batches_gap, 0);
	sw_tls__free(t);
	close(fd);
	sw_ingest__free(in);
	sw_store__free(s);
	sw_tls_ctx__free(sc);
	sw_tls_ctx__free(cc);
	free(burst);
}

/* Closed by the collector within the rounds (EOF or reset). */
static bool closed(struct sw_ingest *in, int fd)
{
	char b[512];

	for (int i = 0; i < 200; i++) {
		ssize_t n;

		round_of(in, 10);
		n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			return true;
	}
	return false;
}

Test(listener_tls, failed_handshakes_are_closed_and_counted)
{
	struct sw_tls_ctx *sc = ctx(true, "server.pem", "server.key", "ca.pem");
	struct sw_tls_ctx *nocert = ctx(false, NULL, NULL, "ca.pem");
	struct sw_tls_ctx *withcert = ctx(false, "client.pem", "client.key", "ca.pem");
	struct sw_store *s;
	struct sw_ingest *in = ingest(&s, sc);
	struct sw_ingest_stats st;
	size_t len;
	uint8_t *f = big_frame(0, 0, &len);
	struct sw_tls *t;
	int fd;

	/* a probe: connect, close. An EOF, not a failed handshake */
	fd = connect_nb(sw_ingest__port(in));
	round_of(in, 10);
	close(fd);
	for (int i = 0; i < 5; i++)
		round_of(in, 10);
	/* plaintext: a real frame where the ClientHello belongs */
	fd = connect_nb(sw_ingest__port(in));
	cr_assert_eq(write(fd, f, len), (ssize_t)len);
	cr_assert(closed(in, fd));
	close(fd);
	/* no client certificate, one required */
	fd = connect_nb(sw_ingest__port(in));
	t = sw_tls__new(nocert, fd, "127.0.0.1");
	handshake(in, t); /* TLS 1.3: done on the client's side, refused after */
	sw_tls__send(t, f, len);
	cr_assert(closed(in, fd));
	sw_tls__free(t);
	close(fd);
	sw_ingest__stats(in, &st);
	cr_assert_eq(st.closed[SW_CLOSE_TLS_HANDSHAKE], 2);
	cr_assert_eq(st.frames, 0);
	cr_assert_eq(st.connections, 0);
	/* the control: with it, accepted */
	fd = connect_nb(sw_ingest__port(in));
	t = sw_tls__new(withcert, fd, "127.0.0.1");
	cr_assert_eq(handshake(in, t), 0, "%s", sw_tls__error(t));
	cr_assert_eq(sw_tls__send(t, f, len), (ssize_t)len);
	for (int i = 0; i < 50 && st.frames == 0; i++) {
		round_of(in, 10);
		sw_ingest__stats(in, &st);
	}
	cr_assert_eq(st.frames, 1);
	cr_assert_eq(st.closed[SW_CLOSE_TLS_HANDSHAKE], 2);
	sw_tls__free(t);
	close(fd);
	free(f);
	sw_ingest__free(in);
	sw_store__free(s);
	sw_tls_ctx__free(sc);
	sw_tls_ctx__free(nocert);
	sw_tls_ctx__free(withcert);
}
