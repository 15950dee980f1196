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
#include "tls.h"

#define BACKOFF_MIN_NS 500000000ull    /* 0.5 s */
#define BACKOFF_MAX_NS 30000000000ull  /* 30 s */
/* A collector that has not acknowledged the hello by then is taken for one
 * that never acks (an older one): its batches count as delivered once
 * written, as they did before acks. Far above a round trip, even to a
 * loaded collector. */
#define ACK_WAIT_NS 10000000000ull     /* 10 s */
/* A TLS handshake not done by then is given up (and retried with backoff):
 * a collector without TLS answers a ClientHello by closing at once, one
 * that is stopped never answers. Two round trips take milliseconds. */
#define TLS_HANDSHAKE_NS 10000000000ull /* 10 s */

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
	char host[256]; /* of hostport: the default TLS server name */
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
	/*
	 * TLS (--tls): the client context, the name the collector's
	 * certificate must carry, the session of this connection. handshaking:
	 * TCP is up, TLS not yet. trusted: the collector has accepted this
	 * connection, which over TLS is known only once it has sent something:
	 * with TLS 1.3 a server refuses a client certificate after the
	 * client's handshake is done. Until then a failure is part of the
	 * outage (one warning, backoff growing), not a new one. tls_err: why
	 * the last TLS call failed, for disconnect()'s line.
	 */
	struct sw_tls_ctx *tls_ctx;
	char tls_name[256];
	struct sw_tls *tls;
	bool handshaking, trusted;
	uint64_t hs_start_ns;
	char tls_err[640];
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
	snprintf(s->host, sizeof(s->host), "%s", host);
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

int sw_stream__set_tls(struct sw_stream *s, const struct sw_tls_files *files,
		       const char *server_name, char *err, size_t errlen)
{
	s->tls_ctx = sw_tls_ctx__client(files, err, errlen);
	if (!s->tls_ctx)
		return -EINVAL;
	snprintf(s->tls_name, sizeof(s->tls_name), "%s",
		 server_name && server_name[0] ? server_name : s->host);
	return 0;
}

/* Why a TLS call failed, with what to do, for disconnect()'s line. */
static void tls_reason(struct sw_stream *s, int rc)
{
	char hint[400] = "";

	if (rc == -EKEYREJECTED)
		snprintf(hint, sizeof(hint), "; check --tls-ca (the CA that signed the collector's "
			 "certificate) and --tls-server-name (now %s)", s->tls_name);
	else if (rc == -ECONNREFUSED)
		snprintf(hint, sizeof(hint), "; a collector with --tls-client-ca needs --tls-cert "
			 "and --tls-key signed by that CA");
	else if (rc == -ECONNRESET && s->handshaking)
		snprintf(hint, sizeof(hint), " (does the collector run with --tls-cert?)");
	else if (rc == -ECONNRESET && !s->trusted)
		snprintf(hint, sizeof(hint), " before accepting the agent (does it need a client "
			 "certificate, --tls-cert and --tls-key?)");
	snprintf(s->tls_err, sizeof(s->tls_err), "%s%s", sw_tls__error(s->tls), hint);
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
	/* close_notify first, when the session is sound (not after a failure) */
	sw_tls__free(s->tls);
	s->tls = NULL;
	if (s->fd >= 0)
		close(s->fd);
	/* once per outage; an untrusted TLS connection is still the outage */
	if ((s->connected && s->trusted) || !s->warned)
		sw_warn("collector %s %s: %s; measuring on, buffering up to %zu KiB and retrying",
			s->hostport, why, s->tls_err[0] ? s->tls_err : strerror(e),
			s->max_bytes / 1024);
	s->tls_err[0] = '\0';
	s->warned = 1;
	s->fd = -1;
	s->connected = s->connecting = 0;
	s->handshaking = s->trusted = false;
	/* everything not acknowledged goes again, whole and in order, on the
	 * next connection; the collector drops what it had applied */
	s->cur = s->head;
	s->cur_off = 0;
	s->acking = s->legacy = false;
	s->rx_len = 0;
	s->next_try_ns = sw_mono_ns() + s->backoff_ns;
	s->backoff_ns = s->backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : s->backoff_ns * 2;
}

/* The collector accepted this connection: the outage is over. */
static void on_trusted(struct sw_stream *s)
{
	if (s->warned)
		sw_info("collector %s reachable again", s->hostport);
	s->warned = 0;
	s->trusted = true;
	if (s->ever_connected)
		s->st.reconnects++; /* the first connection is not a reconnection */
	s->ever_connected = 1;
	/* a refused agent retries slowly until one accepts it */
	if (!s->refused)
		s->backoff_ns = BACKOFF_MIN_NS;
}

static void on_connected(struct sw_stream *s)
{
	s->connected = 1;
	s->connecting = 0;
	if (!s->tls)
		on_trusted(s); /* over TLS: at its first bytes (stream_recv) */
	s->conn_ns = sw_mono_ns();
	s->hello_off = 0;
	/* the hello carries what was acknowledged so far: built now */
	if (s->hello_fn)
		s->hello_fn(s->hello_ctx, s->acked);
	s->hello_pending = s->hello != NULL;
	s->cur = s->head;
	s->cur_off = 0;
}

/* TCP is up: the hello goes now, or after the TLS handshake (tls_step). */
static void tcp_connected(struct sw_stream *s)
{
	s->connecting = 0;
	if (!s->tls_ctx) {
		on_connected(s);
		return;
	}
	s->tls = sw_tls__new(s->tls_ctx, s->fd, s->tls_name);
	if (!s->tls) {
		disconnect(s, "TLS setup failed", errno);
		return;
	}
	s->handshaking = true;
	s->hs_start_ns = sw_mono_ns();
}

/* One step of the TLS handshake: 0 done (on_connected has run), 1 not
 * yet or failed (then disconnected, retried with backoff). */
static int tls_step(struct sw_stream *s, uint64_t now_ns)
{
	int rc = sw_tls__handshake(s->tls);

	if (rc == -EAGAIN) {
		if (now_ns < s->hs_start_ns + TLS_HANDSHAKE_NS)
			return 1;
		snprintf(s->tls_err, sizeof(s->tls_err), "no TLS handshake within %llu s (does "
			 "the collector run with --tls-cert?)", TLS_HANDSHAKE_NS / 1000000000ull);
		disconnect(s, "failed the TLS handshake", ETIMEDOUT);
		return 1;
	}
	if (rc) {
		tls_reason(s, rc);
		disconnect(s, "failed the TLS handshake", -rc);
		return 1;
	}
	s->handshaking = false;
	sw_dbg("collector %s: TLS handshake done, %s verified", s->hostport, s->tls_name);
	on_connected(s);
	return 0;
}

/* recv() and send() of the connection, through TLS when it has it: -1 with
 * errno as the plain calls do (tls_err says why for disconnect()). */
static ssize_t stream_recv(struct sw_stream *s, void *buf, size_t len)
{
	ssize_t n;

	if (!s->tls)
		return recv(s->fd, buf, len, MSG_DONTWAIT);
	n = sw_tls__recv(s->tls, buf, len);
	if (n < 0) {
		if (n != -EAGAIN)
			tls_reason(s, (int)n);
		errno = (int)-n;
		return -1;
	}
	if (n > 0 && !s->trusted)
		on_trusted(s);
	else if (n == 0 && !s->trusted)
		snprintf(s->tls_err, sizeof(s->tls_err), "the collector ended the connection before "
			 "accepting the agent (does it need a client certificate, --tls-cert and "
			 "--tls-key?)");
	return n;
}

static ssize_t stream_send(struct sw_stream *s, const void *buf, size_t len)
{
	ssize_t n;

	if (!s->tls)
		return send(s->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	n = sw_tls__send(s->tls, buf, len);
	if (n < 0) {
		if (n != -EAGAIN)
			tls_reason(s, (int)n);
		errno = (int)-n;
		return -1;
	}
	return n;
}

/*
 * Over TLS a send the socket did not take leaves a record of its first
 * bytes in GnuTLS, which must go out as it is (common/tls.h): the frame
 * being written counts as started, as with bytes out.
 */
static bool tls_held(const struct sw_stream *s)
{
	return s->tls && sw_tls__send_held(s->tls);
}

static bool cur_started(const struct sw_stream *s)
{
	return s->cur_off > 0 || (!s->hello_pending && tls_held(s));
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
		tcp_connected(s);
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
	if (s->connected && s->hello_pending && s->hello_off < s->hello_len &&
	    (s->hello_off > 0 || tls_held(s))) {
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
		if (!f->written && !(f == s->cur && cur_started(s))) {
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
		if (f == s->cur && cur_started(s))
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

	n = stream_recv(s, s->rx + s->rx_len, sizeof(s->rx) - s->rx_len);
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
		n = stream_send(s, p + *off, len - *off);
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
		tcp_connected(s);
		if (s->fd < 0)
			return;
	}
	if (s->handshaking && tls_step(s, now_ns))
		return;
	/* one non-blocking read per call, as the EOF probe it replaces was:
	 * acks, or EOF and reset */
	if (read_acks(s))
		return;
	/* records GnuTLS decrypted and holds: the socket will not show them */
	for (int k = 0; k < 8 && s->tls && sw_tls__pending(s->tls); k++)
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
	sw_tls__free(s->tls);
	if (s->fd >= 0)
		close(s->fd);
	sw_tls_ctx__free(s->tls_ctx);
	free(s);
}
