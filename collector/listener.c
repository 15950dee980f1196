// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE /* accept4, ppoll */
#include "listener.h"
#include "clock.h"
#include "frame.h"
#include "log.h" /* common/log.h, shared with the agent */
#include "utf8.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Reads per connection per wake-up: one agent with a backlog must not
 * starve the others (poll is level-triggered, the rest comes next round). */
#define READS_PER_WAKE 16
#define ACCEPTS_PER_WAKE 64

struct sw_conn {
	int fd;
	struct sw_decoder *dec;
	char agent[SW_NAME_LEN]; /* "" until the first batch names it */
	char peer[64];
	/* Acks (Hello.acks): the seq to acknowledge, whether it is still to
	 * be sent, and the rest of one the socket took only part of */
	bool acks;
	bool ack_due;
	uint64_t ack_seq;
	uint8_t ack_buf[SW_ACK_FRAME_MAX];
	uint8_t ack_len, ack_off;
};

struct sw_ingest {
	int lfd;
	int port;
	struct sw_store *store;
	size_t max_conns;
	struct sw_conn *conns;
	size_t nconns;
	struct pollfd *pfds;
	bool accept_paused;

	/* read by the HTTP thread while the main thread counts */
	_Atomic uint64_t n_open, n_accepted, n_refused, n_frames;
	_Atomic uint64_t n_bad[SW_BAD__COUNT];
};

struct batch_ctx {
	struct sw_ingest *in;
	struct sw_conn *c;
};

static void on_batch(void *ctx, const Stallwatch__V1__Batch *b)
{
	struct batch_ctx *bc = ctx;
	struct sw_conn *c = bc->c;
	const char *id = c->peer;
	char name[SW_NAME_LEN];
	uint64_t now = sw_mono_ns(), ack;
	int rc;

	/* counted before it is applied: a scrape in between must not see its
	 * data with frames_total not counting it yet */
	atomic_fetch_add_explicit(&bc->in->n_frames, 1, memory_order_relaxed);
	if (!c->agent[0]) {
		/* Hello comes first; a peer without one is named by its address */
		if (b->hello && b->hello->agent_id && b->hello->agent_id[0])
			id = b->hello->agent_id;
		else if (b->hello && b->hello->hostname && b->hello->hostname[0])
			id = b->hello->hostname;
		/* as the store keeps it, so that later lookups by c->agent match,
		 * and so that the log line is UTF-8 of bounded length */
		sw_utf8_copy_str(name, sizeof(name), id);
		rc = sw_store__agent_up(bc->in->store, name, b->hello, now);
		if (rc) {
			sw_warn("agent %s from %s: not tracked: %s", name, c->peer, strerror(-rc));
			return;
		}
		memcpy(c->agent, name, sizeof(c->agent));
		c->acks = b->hello && b->hello->acks;
		sw_info("agent %s connected from %s", c->agent, c->peer);
	}
	/* acknowledged once applied: the agent may then forget the batch.
	 * The hello batch (seq 0) is acknowledged too, with what the store
	 * held before it, so the agent learns this collector acks. */
	if (sw_store__apply_ack(bc->in->store, c->agent, b, now, &ack) == 0 && c->acks &&
	    (ack > c->ack_seq || b->hello)) {
		c->ack_seq = ack > c->ack_seq ? ack : c->ack_seq;
		c->ack_due = true;
	}
}

/*
 * Send the connection's ack, coalesced: one per read of batches, whatever
 * their number. Never waits: a socket that is full (an agent that does not
 * read) drops it, the next one supersedes it; only the rest of an ack the
 * socket took in part is kept, since a cut frame would corrupt the stream.
 */
static void conn_ack(struct sw_conn *c)
{
	ssize_t n;

	if (c->fd < 0)
		return;
again:
	if (c->ack_off == c->ack_len) {
		if (!c->ack_due)
			return;
		c->ack_len = (uint8_t)sw_frame_ack_encode(c->ack_seq, c->ack_buf);
		c->ack_off = 0;
		c->ack_due = false;
	}
	while (c->ack_off < c->ack_len) {
		n = send(c->fd, c->ack_buf + c->ack_off, c->ack_len - c->ack_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (c->ack_off == 0) {
				/* not a byte out: no frame to finish, drop it */
				c->ack_len = 0;
				c->ack_due = true; /* resent with the next read */
			}
			return; /* errors show on the next read */
		}
		c->ack_off += (uint8_t)n;
	}
	if (c->ack_due)
		goto again; /* a newer one came while the last was cut short */
}

static void conn_close(struct sw_ingest *in, struct sw_conn *c, const char *why)
{
	if (c->fd < 0)
		return;
	sw_info("connection from %s%s%s closed: %s", c->peer, c->agent[0] ? " agent " : "",
		c->agent, why);
	if (c->agent[0])
		sw_store__agent_down(in->store, c->agent, sw_mono_ns());
	close(c->fd);
	c->fd = -1;
	sw_decoder__free(c->dec);
	c->dec = NULL;
	atomic_fetch_sub_explicit(&in->n_open, 1, memory_order_relaxed);
}

struct sw_ingest *sw_ingest__new(const struct sw_ingest_opts *opts, struct sw_store *store)
{
	struct sw_ingest *in;
	int err = 0, fd;

	in = calloc(1, sizeof(*in));
	if (!in) {
		errno = ENOMEM;
		return NULL;
	}
	in->lfd = -1;
	in->store = store;
	in->max_conns = opts->max_conns ? opts->max_conns : SW_INGEST_MAX_CONNS;
	in->conns = calloc(in->max_conns, sizeof(*in->conns));
	in->pfds = calloc(in->max_conns + 1, sizeof(*in->pfds));
	if (!in->conns || !in->pfds) {
		err = ENOMEM;
		goto cleanup;
	}
	fd = sw_net__listen(opts->listen, 128);
	if (fd < 0) {
		err = -fd;
		goto cleanup;
	}
	in->lfd = fd;
	in->port = sw_net__local_port(fd);
	return in;
cleanup:
	sw_ingest__free(in);
	errno = err;
	return NULL;
}

void sw_ingest__free(struct sw_ingest *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < in->nconns; i++)
		conn_close(in, &in->conns[i], "collector exiting");
	if (in->lfd >= 0)
		close(in->lfd);
	free(in->conns);
	free(in->pfds);
	free(in);
}

int sw_ingest__port(const struct sw_ingest *in) { return in->port; }

static void peer_name(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		port = ntohs(s4->sin_port);
		snprintf(buf, size, "%s:%d", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		port = ntohs(s6->sin6_port);
		snprintf(buf, size, "[%s]:%d", ip, port);
	} else {
		snprintf(buf, size, "unknown");
	}
}

static void accept_all(struct sw_ingest *in)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct sw_conn *c;
	int fd;

	for (int k = 0; k < ACCEPTS_PER_WAKE; k++) {
		sl = sizeof(ss);
		fd = accept4(in->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* the listener stays readable: stop polling it for
				 * a round instead of spinning on accept() */
				sw_warn("cannot accept agents: %s; raise the fd limit (ulimit -n)",
					strerror(errno));
				in->accept_paused = true;
			}
			return;
		}
		if (in->nconns >= in->max_conns) {
			/* closing at once tells the agent to back off and retry;
			 * leaving it in the backlog would look like a hang */
			close(fd);
			atomic_fetch_add_explicit(&in->n_refused, 1, memory_order_relaxed);
			continue;
		}
		c = &in->conns[in->nconns];
		memset(c, 0, sizeof(*c));
		c->dec = sw_decoder__new();
		if (!c->dec) {
			close(fd);
			atomic_fetch_add_explicit(&in->n_refused, 1, memory_order_relaxed);
			continue;
		}
		c->fd = fd;
		peer_name(&ss, c->peer, sizeof(c->peer));
		in->nconns++;
		atomic_fetch_add_explicit(&in->n_accepted, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&in->n_open, 1, memory_order_relaxed);
		sw_dbg("connection from %s", c->peer);
	}
}

static void conn_read(struct sw_ingest *in, struct sw_conn *c)
{
	struct batch_ctx bc = {.in = in, .c = c};
	enum sw_bad_reason r;
	uint64_t frames;
	size_t room;
	uint8_t *dst;
	ssize_t n;

	for (int k = 0; k < READS_PER_WAKE && c->fd >= 0; k++) {
		dst = sw_decoder__space(c->dec, &room);
		if (!dst) {
			atomic_fetch_add_explicit(&in->n_bad[SW_BAD_NOMEM], 1,
						  memory_order_relaxed);
			conn_close(in, c, "out of memory for its frame");
			return;
		}
		n = read(c->fd, dst, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_close(in, c, strerror(errno));
			return;
		}
		if (n == 0) {
			conn_close(in, c,
				   sw_decoder__pending(c->dec) ? "EOF inside a frame" : "EOF");
			return;
		}
		frames = 0; /* on_batch counts them, before applying each */
		r = sw_decoder__commit(c->dec, (size_t)n, on_batch, &bc, &frames);
		if (r != SW_BAD_NONE) {
			atomic_fetch_add_explicit(&in->n_bad[r], 1, memory_order_relaxed);
			sw_warn("closing connection from %s: bad frame (%s)", c->peer,
				sw_bad_reason__name(r));
			conn_close(in, c, sw_bad_reason__name(r));
			return;
		}
	}
}

int sw_ingest__run_once(struct sw_ingest *in, int timeout_ms, const sigset_t *sigmask)
{
	struct timespec ts = {.tv_sec = timeout_ms / 1000,
			      .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
	size_t n = 0, i, j;
	int rc;

	in->pfds[0].fd = in->lfd;
	in->pfds[0].events = in->accept_paused ? 0 : POLLIN;
	in->accept_paused = false;
	for (i = 0; i < in->nconns; i++) {
		in->pfds[i + 1].fd = in->conns[i].fd;
		/* POLLOUT only to finish an ack cut short by a full socket */
		in->pfds[i + 1].events =
		    POLLIN | (in->conns[i].ack_off < in->conns[i].ack_len ? POLLOUT : 0);
		in->pfds[i + 1].revents = 0;
	}
	n = in->nconns;
	rc = ppoll(in->pfds, n + 1, timeout_ms < 0 ? NULL : &ts, sigmask);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n; i++)
		if (in->pfds[i + 1].revents) {
			conn_read(in, &in->conns[i]);
			conn_ack(&in->conns[i]);
		}
	/* drop closed slots before accepting, so they count as free */
	for (i = 0, j = 0; i < in->nconns; i++)
		if (in->conns[i].fd >= 0)
			in->conns[j++] = in->conns[i];
	in->nconns = j;
	if (in->pfds[0].revents & POLLIN)
		accept_all(in);
	return 0;
}

void sw_ingest__stats(const struct sw_ingest *in, struct sw_ingest_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!in)
		return;
	out->connections = atomic_load_explicit(&in->n_open, memory_order_relaxed);
	out->accepted = atomic_load_explicit(&in->n_accepted, memory_order_relaxed);
	out->refused = atomic_load_explicit(&in->n_refused, memory_order_relaxed);
	out->frames = atomic_load_explicit(&in->n_frames, memory_order_relaxed);
	for (int r = 0; r < SW_BAD__COUNT; r++)
		out->bad[r] = atomic_load_explicit(&in->n_bad[r], memory_order_relaxed);
}
