// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "frame.h"
#include "log.h"
#include "secret.h"
#include "stream.h"

#define BACKOFF_MIN_NS 500000000ull    /* 0.5 s */
#define BACKOFF_MAX_NS 30000000000ull  /* 30 s */
/* A collector that has not acknowledged the hello by then is taken for one
 * that never acks (an older one): its batches count as delivered once
 * written, as they did before acks. Far above a round trip, even to a
 * loaded collector. */
#define ACK_WAIT_NS 10000000000ull     /* 10 s */

/*
 * The buffer, oldest first: frames written on this connection and not yet
 * acknowledged, then `cur`, the next to write (cur_off bytes of it out),
 * and the frames after it. A numbered frame (seq > 0) stays until an ack
 * covers its seq; after a reconnect every one left is written again, in
 * order. An unnumbered one is forgotten once written.
 */
struct frame {
	struct frame *prev, *next;
	uint8_t *data;
	size_t len;
	uint64_t seq;
	uint32_t incidents;
	bool written; /* on this connection or an earlier one */
};

struct sw_stream {
	char hostport[300];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int fd;
	int connecting; /* non-blocking connect in progress */
	int connected;
	int warned;	/* the unreachable line is printed once per outage */
	int ever_connected;
	uint64_t next_try_ns, backoff_ns;
	/* queue: hello (if any) goes first after each connect */
	uint8_t *hello;
	size_t hello_len;
	int hello_pending;
	size_t hello_off;
	sw_stream_hello_fn hello_fn;
	void *hello_ctx;
	struct frame *head, *tail, *cur;
	size_t cur_off; /* bytes of cur already written */
	size_t bytes, max_bytes;
	/* acks: of this connection (acking: one came; legacy: none came in
	 * time), and the highest of the agent's run, from any connection */
	bool acking, legacy, legacy_warned;
	uint64_t conn_ns;
	uint64_t acked;
	uint8_t rx[4 * SW_ACK_FRAME_MAX];
	size_t rx_len;
	/* authentication: the hello's token and session; the last refusal
	 * (Ack.refused), until an ack that is none */
	uint8_t token[SW_SECRET_MAX];
	size_t token_len;
	uint8_t session[SW_SESSION_LEN];
	uint32_t refused;
	struct sw_stream_stats st;
};

struct sw_stream *sw_stream__new(const char *hostport, size_t max_bytes, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char host[256];
	const char *colon;
	struct sw_stream *s;
	int rc;

	colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || !colon[1] || (size_t)(colon - hostport) >= sizeof(host)) {
		snprintf(err, errlen, "bad collector address '%s': expected HOST:PORT", hostport);
		return NULL;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:7470 */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot resolve collector '%s': %s", hostport, gai_strerror(rc));
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		freeaddrinfo(res);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(s->hostport, sizeof(s->hostport), "%s", hostport);
	memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
	s->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	s->fd = -1;
	s->max_bytes = max_bytes;
	s->backoff_ns = BACKOFF_MIN_NS;
	/* Tells this run's reconnections from another agent claiming its id
	 * (collector/listener.c): unguessable, not secret beyond the stream.
	 * getrandom() of 16 bytes does not block once the pool is ready. */
	if (getrandom(s->session, sizeof(s->session), 0) != (ssize_t)sizeof(s->session)) {
		uint64_t t = sw_mono_ns() ^ ((uint64_t)getpid() << 32), r = sw_realtime_ns();

		memcpy(s->session, &t, sizeof(t));
		memcpy(s->session + sizeof(t), &r, sizeof(r));
	}
	return s;
}

void sw_stream__set_token(struct sw_stream *s, const uint8_t *token, size_t len)
{
	if (len > sizeof(s->token))
		len = sizeof(s->token);
	memcpy(s->token, token, len);
	s->token_len = len;
}

void sw_stream__credentials(const struct sw_stream *s, const uint8_t **token, size_t *token_len,
			    const uint8_t **session)
{
	*token = s->token;
	*token_len = s->token_len;
	*session = s->session;
}

static const char *refusal_text(uint32_t r)
{
	switch (r) {
	case SW_REFUSED_TOKEN:
		return "the token is missing or wrong: give the agent the collector's --token-file";
	case SW_REFUSED_IDENTITY:
		return "another live agent run holds this agent's id (hostname:pid): is a second "
		       "agent in this pid namespace under the same host name?";
	default:
		return "for a reason this agent does not know (a newer collector?)";
	}
}

static void disconnect(struct sw_stream *s, const char *why, int e)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->connected || !s->warned)
		sw_warn("collector %s %s: %s; measuring on, buffering up to %zu KiB and retrying",
			s->hostport, why, strerror(e), s->max_bytes / 1024);
	s->warned = 1;
	s->fd = -1;
	s->connected = s->connecting = 0;
	/* everything not acknowledged goes again, whole and in order, on the
	 * next connection; the collector drops what it had applied */
	s->cur = s->head;
	s->cur_off = 0;
	s->acking = s->legacy = false;
	s->rx_len = 0;
	s->next_try_ns = sw_mono_ns() + s->backoff_ns;
	s->backoff_ns = s->backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : s->backoff_ns * 2;
}

static void on_connected(struct sw_stream *s)
{
	if (!s->connected && s->warned)
		sw_info("collector %s reachable again", s->hostport);
	s->connected = 1;
	s->connecting = 0;
	s->warned = 0;
	if (s->ever_connected)
		s->st.reconnects++; /* the first connection is not a reconnection */
	s->ever_connected = 1;
	/* a refused agent retries slowly until one accepts it */
	if (!s->refused)
		s->backoff_ns = BACKOFF_MIN_NS;
	s->conn_ns = sw_mono_ns();
	s->hello_off = 0;
	/* the hello carries what was acknowledged so far: built now */
	if (s->hello_fn)
		s->hello_fn(s->hello_ctx, s->acked);
	s->hello_pending = s->hello != NULL;
	s->cur = s->head;
	s->cur_off = 0;
}

static void try_connect(struct sw_stream *s)
{
	int one = 1;

	s->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		disconnect(s, "socket failed", errno);
		return;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&s->addr, s->addrlen) == 0) {
		on_connected(s);
		return;
	}
	if (errno == EINPROGRESS) {
		s->connecting = 1;
		return;
	}
	disconnect(s, "unreachable", errno);
}

static void free_frame(struct frame *f)
{
	free(f->data);
	free(f);
}

void sw_stream__set_hello(struct sw_stream *s, uint8_t *frame, size_t len)
{
	/* replacing it mid-send would corrupt the stream: finish the old one */
	if (s->connected && s->hello_pending && s->hello_off > 0 && s->hello_off < s->hello_len) {
		free(frame);
		return;
	}
	free(s->hello);
	s->hello = frame;
	s->hello_len = len;
	s->hello_off = 0;
}

void sw_stream__set_hello_fn(struct sw_stream *s, sw_stream_hello_fn fn, void *ctx)
{
	s->hello_fn = fn;
	s->hello_ctx = ctx;
}

static void unlink_frame(struct sw_stream *s, struct frame *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		s->head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	else
		s->tail = f->prev;
	if (s->cur == f) {
		s->cur = f->next;
		s->cur_off = 0;
	}
	s->bytes -= f->len;
	free_frame(f);
}

/*
 * Over the bound: evict the oldest frame never written, counted. A frame
 * already written may have been applied (its ack lost or still coming):
 * evicting it would make the count a guess, so it stays until an ack or a
 * resend settles it. Those were all admitted under the bound, so the
 * buffer stays within it but for the frame just queued.
 */
static void evict(struct sw_stream *s)
{
	struct frame *f = s->head, *next;

	while (s->bytes > s->max_bytes && f) {
		next = f->next;
		if (!f->written && !(f == s->cur && s->cur_off > 0)) {
			s->st.dropped_batches++;
			s->st.dropped_bytes += f->len;
			s->st.dropped_incidents += f->incidents;
			unlink_frame(s, f);
		}
		f = next;
	}
}

void sw_stream__queue_seq(struct sw_stream *s, uint64_t seq, uint32_t incidents, uint8_t *data,
			  size_t len)
{
	struct frame *f = calloc(1, sizeof(*f));

	if (!f) {
		free(data);
		s->st.dropped_batches++;
		s->st.dropped_bytes += len;
		s->st.dropped_incidents += incidents;
		return;
	}
	f->data = data;
	f->len = len;
	f->seq = seq;
	f->incidents = incidents;
	f->prev = s->tail;
	if (s->tail)
		s->tail->next = f;
	else
		s->head = f;
	s->tail = f;
	if (!s->cur)
		s->cur = f;
	s->bytes += len;
	evict(s);
}

void sw_stream__queue(struct sw_stream *s, uint8_t *data, size_t len)
{
	sw_stream__queue_seq(s, 0, 0, data, len);
}

/* The collector applied every batch up to seq (or counted it as a gap). */
static void on_ack(struct sw_stream *s, uint64_t seq)
{
	struct frame *f, *next;

	s->acking = true;
	s->legacy = false; /* late, but it acks: keep frames until acked again */
	if (seq > s->acked)
		s->acked = seq;
	for (f = s->head; f; f = next) {
		next = f->next;
		if (!f->seq)
			continue;
		if (f->seq > s->acked)
			break; /* in seq order */
		if (f == s->cur && s->cur_off > 0)
			continue; /* part written: finished, then freed below */
		s->st.batches_acked++;
		unlink_frame(s, f);
	}
}

/* The collector closes this connection, and says why: once per refusal
 * reason, then a retry every BACKOFF_MAX_NS (the token may be rotated, the
 * rival agent may go). Nothing queued is forgotten. */
static void on_refused(struct sw_stream *s, uint32_t why)
{
	s->st.refusals++;
	if (why != s->refused)
		sw_warn("collector %s refused this agent: %s; measuring on, buffering up to %zu KiB "
			"and retrying every %llu s",
			s->hostport, refusal_text(why), s->max_bytes / 1024,
			(unsigned long long)(BACKOFF_MAX_NS / 1000000000ull));
	s->refused = why;
	s->connected = 0; /* said above: disconnect() says nothing more */
	s->warned = 1;
	s->backoff_ns = BACKOFF_MAX_NS;
	disconnect(s, "refused this agent", EACCES);
}

/* Read what the collector sent: acks only. 0, or -1 when disconnected. */
static int read_acks(struct sw_stream *s)
{
	uint64_t seq = 0;
	uint32_t refused = 0;
	size_t used;
	ssize_t n;

	n = recv(s->fd, s->rx + s->rx_len, sizeof(s->rx) - s->rx_len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		disconnect(s, "closed the connection", n == 0 ? ECONNRESET : errno);
		return -1;
	}
	if (n <= 0)
		return 0;
	s->rx_len += (size_t)n;
	if (sw_frame_ack_parse(s->rx, s->rx_len, &seq, &refused, &used)) {
		disconnect(s, "sent bytes that are no acknowledgement", EPROTO);
		return -1;
	}
	if (!used)
		return 0;
	memmove(s->rx, s->rx + used, s->rx_len - used);
	s->rx_len -= used;
	if (refused) {
		on_refused(s, refused);
		return -1;
	}
	if (s->refused)
		sw_info("collector %s accepts this agent again", s->hostport);
	s->refused = 0;
	on_ack(s, seq);
	return 0;
}

/* No ack since the hello: a collector that never acks. Its batches count as
 * delivered once written (written before: forgotten now), as before acks. */
static void check_legacy(struct sw_stream *s, uint64_t now_ns)
{
	struct frame *f, *next;

	if (s->acking || s->legacy || now_ns < s->conn_ns + ACK_WAIT_NS)
		return;
	s->legacy = true;
	if (!s->legacy_warned)
		sw_warn("collector %s sends no acknowledgements (an older collector?): batches "
			"count as delivered once written, and one it loses is not counted",
			s->hostport);
	s->legacy_warned = true;
	for (f = s->head; f && f != s->cur; f = next) {
		next = f->next;
		unlink_frame(s, f);
	}
}

static int write_some(struct sw_stream *s, const uint8_t *p, size_t len, size_t *off)
{
	ssize_t n;

	while (*off < len) {
		n = send(s->fd, p + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1; /* later */
			if (errno == EINTR)
				continue;
			disconnect(s, "connection lost", errno);
			return -1;
		}
		*off += (size_t)n;
	}
	return 0;
}

void sw_stream__service(struct sw_stream *s, uint64_t now_ns)
{
	struct pollfd pfd;
	int rc, soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (s->fd < 0) {
		if (now_ns < s->next_try_ns)
			return;
		try_connect(s);
		if (s->fd < 0)
			return;
	}
	if (s->connecting) {
		pfd.fd = s->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 0) <= 0)
			return;
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			disconnect(s, "unreachable", soerr);
			return;
		}
		on_connected(s);
	}
	/* one non-blocking read per call, as the EOF probe it replaces was:
	 * acks, or EOF and reset */
	if (read_acks(s))
		return;
	check_legacy(s, now_ns);
	if (s->hello_pending) {
		rc = write_some(s, s->hello, s->hello_len, &s->hello_off);
		if (rc)
			return;
		s->hello_pending = 0;
	}
	while (s->cur) {
		struct frame *f = s->cur;

		rc = write_some(s, f->data, f->len, &s->cur_off);
		if (rc)
			return;
		s->cur = f->next;
		s->cur_off = 0;
		s->st.batches_sent++;
		if (f->written)
			s->st.batches_resent++;
		f->written = true;
		/* unnumbered, or for a collector that never acks: delivered as
		 * far as we can know; or acknowledged while it was written */
		if (!f->seq || s->legacy) {
			unlink_frame(s, f);
		} else if (f->seq <= s->acked) {
			s->st.batches_acked++;
			unlink_frame(s, f);
		}
	}
}

/* Something left to do: a frame to write, or (to a collector that acks)
 * one to hear back about. */
static bool pending(const struct sw_stream *s)
{
	return s->cur || s->hello_pending || (s->acking && s->head);
}

void sw_stream__drain(struct sw_stream *s, int timeout_ms)
{
	uint64_t end = sw_mono_ns() + (uint64_t)timeout_ms * 1000000ull;

	while (pending(s) && sw_mono_ns() < end) {
		if (s->fd < 0 && s->next_try_ns > end)
			break;
		sw_stream__service(s, sw_mono_ns());
		if (pending(s))
			usleep(10000);
	}
	if (pending(s)) {
		size_t n = 0, inc = 0;

		for (struct frame *f = s->head; f; f = f->next) {
			n++;
			inc += f->incidents;
		}
		/* the last health line is out already: say it here */
		sw_warn("collector %s: %zu batches (%zu incidents) not acknowledged at exit; "
			"those not applied already are lost%s%s",
			s->hostport, n, inc, s->refused ? "; it refused this agent: " : "",
			s->refused ? refusal_text(s->refused) : "");
	}
}

void sw_stream__stats(const struct sw_stream *s, struct sw_stream_stats *st)
{
	*st = s->st;
	st->connected = s->connected;
	st->acked_seq = s->acked;
	/* what is still buffered is not dropped yet, but would be lost at exit */
	st->buffered_bytes = s->bytes;
}

void sw_stream__free(struct sw_stream *s)
{
	struct frame *f, *n;

	if (!s)
		return;
	for (f = s->head; f; f = n) {
		n = f->next;
		free_frame(f);
	}
	free(s->hello);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}
