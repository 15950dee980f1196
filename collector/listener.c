// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE /* accept4 */
#include "listener.h"
#include "clock.h"
#include "frame.h"
#include "log.h" /* common/log.h, shared with the agent */
#include "utf8.h"
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Reads per connection per wake-up: one agent with a backlog must not
 * starve the others (poll is level-triggered, the rest comes next round). */
#define READS_PER_WAKE 16
#define ACCEPTS_PER_WAKE 64
/* epoll events taken per wake-up; the rest are still ready next round */
#define EVENTS_PER_WAKE 256
/* epoll data of the listening socket; agents are their slot index */
#define LISTENER_TAG UINT32_MAX

struct sw_conn {
	int fd;
	struct sw_decoder *dec;
	char agent[SW_NAME_LEN]; /* "" until the first batch names it */
	char peer[64];
	struct sockaddr_storage addr; /* for the per-peer cap */
	struct sw_conn_clock clk;     /* its deadlines (conn_limits.h) */
	size_t pending;		      /* bytes of its unfinished frame */
	/* Acks (Hello.acks): the seq to acknowledge, whether it is still to
	 * be sent, and the rest of one the socket took only part of */
	bool acks;
	bool ack_due;
	uint64_t ack_seq;
	uint8_t ack_buf[SW_ACK_FRAME_MAX];
	uint8_t ack_len, ack_off;
	bool want_out; /* EPOLLOUT in its epoll events: an ack to finish */
	/* Authentication: its hello carried the token (or none is asked);
	 * the agent run it claims (Hello.session); why it is to be closed,
	 * decided inside on_batch and carried out once the decoder is done */
	bool authed;
	bool has_session;
	uint8_t session[SW_SESSION_LEN];
	enum sw_ack_refusal refuse;
	char claimed[SW_NAME_LEN]; /* the agent id it was refused for */
};

/*
 * epoll, not poll(): with 1,000 agents sending a batch a second each, every
 * batch woke a poll() over all 1,000 sockets, and those scans were ~60 % of
 * the collector's CPU (perf, docs/PERFORMANCE.md "Collector ingest"). A
 * connection keeps its slot in conns[] for its life, so that the slot index
 * is the epoll data; a free slot has fd -1.
 */
struct sw_ingest {
	int lfd;
	int epfd;
	int port;
	struct sw_store *store;
	size_t max_conns;
	struct sw_conn *conns; /* max_conns slots */
	size_t nconns;	       /* in use */
	size_t npreauth;       /* of them, without a first frame yet */
	size_t free_hint;      /* where to start looking for a free slot */
	struct epoll_event *events;
	bool accept_paused; /* accept() ran out of fds: a round without it */
	bool at_cap;	    /* full: the listener is out of the epoll set */
	bool listening;	    /* the listener's events in the epoll set are EPOLLIN */
	struct sw_conn_limits lim;
	struct sw_secret token; /* len 0: no --token-file */

	/* read by the HTTP thread while the main thread counts */
	_Atomic uint64_t n_open, n_accepted, n_refused, n_frames;
	_Atomic uint64_t n_bad[SW_BAD__COUNT];
	_Atomic uint64_t n_closed[SW_CLOSE__COUNT], n_paused, frame_bytes;
};

struct batch_ctx {
	struct sw_ingest *in;
	struct sw_conn *c;
};

static void conn_close(struct sw_ingest *in, struct sw_conn *c, const char *why);

/* With --token-file, the first frame's hello must carry the token. */
static bool token_ok(const struct sw_ingest *in, const Stallwatch__V1__Hello *h)
{
	if (!in->token.len)
		return true;
	return h && h->token.len &&
	       sw_secret__equal(h->token.data, h->token.len, in->token.b, in->token.len);
}

/*
 * The collector owns agent identities: an id held by a live connection is
 * not handed to a second one, which would merge two streams into one
 * agent's series, seqs and incidents. The same run reconnecting (its old
 * connection not yet seen closed: a network cut, a fast reconnect) shows
 * the same Hello.session and takes over; anyone else is refused. False:
 * c->refuse is set.
 */
static bool claim_identity(struct sw_ingest *in, struct sw_conn *c, const char *name,
			   const Stallwatch__V1__Hello *h)
{
	bool has = h && h->session.len == SW_SESSION_LEN;

	/* a walk of the slots: hellos are rare */
	for (size_t i = 0; i < in->max_conns; i++) {
		struct sw_conn *o = &in->conns[i];

		if (o == c || o->fd < 0 || strcmp(o->agent, name))
			continue;
		if (has && o->has_session && !memcmp(o->session, h->session.data, SW_SESSION_LEN)) {
			conn_close(in, o, "superseded by a new connection of the same agent run");
			continue;
		}
		c->refuse = SW_REFUSED_IDENTITY;
		memcpy(c->claimed, name, sizeof(c->claimed));
		return false;
	}
	if (has) {
		memcpy(c->session, h->session.data, SW_SESSION_LEN);
		c->has_session = true;
	}
	return true;
}

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
	if (c->refuse)
		return; /* closed once the decoder is done: nothing more applied */
	if (!c->authed) {
		if (!token_ok(bc->in, b->hello)) {
			c->refuse = SW_REFUSED_TOKEN;
			return;
		}
		c->authed = true;
		bc->in->npreauth--;
	}
	if (!c->agent[0]) {
		/* Hello comes first; a peer without one is named by its address */
		if (b->hello && b->hello->agent_id && b->hello->agent_id[0])
			id = b->hello->agent_id;
		else if (b->hello && b->hello->hostname && b->hello->hostname[0])
			id = b->hello->hostname;
		/* as the store keeps it, so that later lookups by c->agent match,
		 * and so that the log line is UTF-8 of bounded length */
		sw_utf8_copy_str(name, sizeof(name), id);
		if (!claim_identity(bc->in, c, name, b->hello))
			return;
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
		c->ack_len = (uint8_t)sw_frame_ack_encode(c->ack_seq, SW_REFUSED_NONE, c->ack_buf);
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

/* The ack of slot k, and EPOLLOUT only while one is cut short by a full
 * socket (one epoll_ctl when that changes, none otherwise). */
static void conn_ack_io(struct sw_ingest *in, uint32_t k)
{
	struct sw_conn *c = &in->conns[k];
	bool out;

	conn_ack(c);
	if (c->fd < 0)
		return;
	out = c->ack_off < c->ack_len;
	if (out == c->want_out)
		return;
	epoll_ctl(in->epfd, EPOLL_CTL_MOD, c->fd,
		  &(struct epoll_event){.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = k});
	c->want_out = out;
}

static void conn_close(struct sw_ingest *in, struct sw_conn *c, const char *why)
{
	if (c->fd < 0)
		return;
	sw_info("connection from %s%s%s closed: %s", c->peer, c->agent[0] ? " agent " : "",
		c->agent, why);
	if (c->agent[0])
		sw_store__agent_down(in->store, c->agent, sw_mono_ns());
	close(c->fd); /* leaves the epoll set with it */
	c->fd = -1;
	if (!c->authed)
		in->npreauth--;
	sw_decoder__free(c->dec);
	c->dec = NULL;
	in->nconns--;
	atomic_fetch_sub_explicit(&in->frame_bytes, c->pending, memory_order_relaxed);
	c->pending = 0;
	atomic_fetch_sub_explicit(&in->n_open, 1, memory_order_relaxed);
}

/* Closed by a rule of ours (conn_limits.h): counted by reason, and said at
 * the default verbosity (log.h limits how often). */
static void conn_close_for(struct sw_ingest *in, struct sw_conn *c, enum sw_close_reason r,
			   uint64_t now)
{
	char why[256];

	switch (r) {
	case SW_CLOSE_HANDSHAKE:
		snprintf(why, sizeof(why), "no complete frame %.0f s after connecting "
			 "(--handshake-timeout)", (double)in->lim.handshake_ns / 1e9);
		break;
	case SW_CLOSE_FRAME:
		snprintf(why, sizeof(why), "a frame unfinished for %.0f s, %zu bytes held "
			 "(--frame-timeout)", (double)(now - c->clk.frame_start_ns) / 1e9, c->pending);
		break;
	case SW_CLOSE_IDLE:
		snprintf(why, sizeof(why), "no frame for %.0f s (--idle-timeout)",
			 (double)(now - c->clk.last_frame_ns) / 1e9);
		break;
	case SW_CLOSE_MEMORY:
		snprintf(why, sizeof(why), "the largest unfinished frame (%zu bytes) over the %zu MiB "
			 "for all (--frame-memory)", c->pending, in->lim.frame_memory >> 20);
		break;
	case SW_CLOSE_UNAUTHENTICATED:
		snprintf(why, sizeof(why), "its first frame has no hello with the token of "
			 "--token-file (give the agent the same --token-file)");
		break;
	case SW_CLOSE_PREEMPTED:
		snprintf(why, sizeof(why), "no token shown %.1f s after connecting, the oldest such "
			 "at the connection cap: its slot goes to the next in line",
			 (double)(now - c->clk.accepted_ns) / 1e9);
		break;
	case SW_CLOSE_IDENTITY:
		snprintf(why, sizeof(why), "it claims agent id %.64s, which a live connection of "
			 "another agent run holds", c->claimed);
		break;
	default:
		snprintf(why, sizeof(why), "%s", sw_close_reason__name(r));
		break;
	}
	atomic_fetch_add_explicit(&in->n_closed[r], 1, memory_order_relaxed);
	sw_warn("closing connection from %s%s%s: %s", c->peer, c->agent[0] ? " agent " : "",
		c->agent, why);
	conn_close(in, c, sw_close_reason__name(r));
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
	in->epfd = -1;
	in->store = store;
	in->max_conns = opts->max_conns ? opts->max_conns : SW_INGEST_MAX_CONNS;
	if (opts->limits)
		in->lim = *opts->limits;
	else
		sw_conn_limits__default(&in->lim);
	if (opts->token)
		in->token = *opts->token;
	in->conns = calloc(in->max_conns, sizeof(*in->conns));
	in->events = calloc(EVENTS_PER_WAKE, sizeof(*in->events));
	if (!in->conns || !in->events) {
		err = ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < in->max_conns; i++)
		in->conns[i].fd = -1;
	in->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (in->epfd < 0) {
		err = errno;
		goto cleanup;
	}
	fd = sw_net__listen(opts->listen, 128);
	if (fd < 0) {
		err = -fd;
		goto cleanup;
	}
	in->lfd = fd;
	in->port = sw_net__local_port(fd);
	if (epoll_ctl(in->epfd, EPOLL_CTL_ADD, fd,
		      &(struct epoll_event){.events = EPOLLIN, .data.u32 = LISTENER_TAG})) {
		err = errno;
		goto cleanup;
	}
	in->listening = true;
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
	for (size_t i = 0; in->conns && i < in->max_conns; i++)
		conn_close(in, &in->conns[i], "collector exiting");
	if (in->lfd >= 0)
		close(in->lfd);
	if (in->epfd >= 0)
		close(in->epfd);
	free(in->conns);
	free(in->events);
	memset(&in->token, 0, sizeof(in->token));
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

/*
 * With --token-file, a connection that has not shown the token is nobody
 * yet: at the cap the oldest of them gives its slot to the next connection
 * in the backlog, so that peers that never authenticate cannot hold every
 * slot until their deadlines while an agent waits. An agent sends its hello
 * as soon as it connects: it is read within the round after its accept,
 * long before ACCEPTS_PER_WAKE x (max_conns - 1) accepts make it the
 * oldest. Without a token everybody's first frame passes, and the cap
 * waits for the deadlines instead.
 */
static bool can_preempt(const struct sw_ingest *in)
{
	return in->token.len && in->npreauth > 0;
}

static void preempt_oldest(struct sw_ingest *in, uint64_t now)
{
	struct sw_conn *old = NULL;

	for (size_t i = 0; i < in->max_conns; i++) {
		struct sw_conn *c = &in->conns[i];

		if (c->fd >= 0 && !c->authed &&
		    (!old || c->clk.accepted_ns < old->clk.accepted_ns))
			old = c;
	}
	if (old)
		conn_close_for(in, old, SW_CLOSE_PREEMPTED, now);
}

static void accept_all(struct sw_ingest *in)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct sw_conn *c;
	size_t slot;
	int fd;

	for (int k = 0; k < ACCEPTS_PER_WAKE && (in->nconns < in->max_conns || can_preempt(in));
	     k++) {
		size_t same = 0;

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
		/* a walk of the slots: accepts are rare */
		for (size_t i = 0; i < in->max_conns; i++)
			same += in->conns[i].fd >= 0 && sw_peer__same(&in->conns[i].addr, &ss);
		if (same >= in->lim.max_per_peer) {
			char peer[64];

			/* One address must not take every slot; its others
			 * are closed at once, so that they retry later. */
			peer_name(&ss, peer, sizeof(peer));
			close(fd);
			atomic_fetch_add_explicit(&in->n_closed[SW_CLOSE_PER_PEER], 1,
						  memory_order_relaxed);
			sw_warn("closing connection from %s: %zu connections from that address "
				"already (--max-per-peer)", peer, same);
			continue;
		}
		if (in->nconns >= in->max_conns)
			preempt_oldest(in, sw_mono_ns());
		/* below max_conns there is a free slot; the hint makes the
		 * search short when agents come and go */
		for (slot = in->free_hint; in->conns[slot].fd >= 0;)
			slot = slot + 1 == in->max_conns ? 0 : slot + 1;
		in->free_hint = slot + 1 == in->max_conns ? 0 : slot + 1;
		c = &in->conns[slot];
		memset(c, 0, sizeof(*c));
		c->fd = -1;
		c->dec = sw_decoder__new();
		if (!c->dec ||
		    epoll_ctl(in->epfd, EPOLL_CTL_ADD, fd,
			      &(struct epoll_event){.events = EPOLLIN, .data.u32 = (uint32_t)slot})) {
			sw_decoder__free(c->dec);
			c->dec = NULL;
			close(fd);
			atomic_fetch_add_explicit(&in->n_refused, 1, memory_order_relaxed);
			continue;
		}
		c->fd = fd;
		c->addr = ss;
		sw_conn_clock__start(&c->clk, sw_mono_ns());
		peer_name(&ss, c->peer, sizeof(c->peer));
		in->nconns++;
		in->npreauth++;
		atomic_fetch_add_explicit(&in->n_accepted, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&in->n_open, 1, memory_order_relaxed);
		sw_dbg("connection from %s", c->peer);
	}
}

/* Refused by on_batch: say why (best effort, one small frame the socket
 * takes at once or never) and close. */
static void conn_refuse(struct sw_ingest *in, struct sw_conn *c)
{
	uint8_t f[SW_ACK_FRAME_MAX], sink[4096];
	size_t n = sw_frame_ack_encode(0, c->refuse, f);

	(void)!send(c->fd, f, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	/* what the agent sent after its hello, read and dropped: a close with
	 * unread bytes is a reset, which may overtake the refusal */
	for (int k = 0; k < 16 && read(c->fd, sink, sizeof(sink)) > 0; k++)
		;
	conn_close_for(in, c,
		       c->refuse == SW_REFUSED_TOKEN ? SW_CLOSE_UNAUTHENTICATED : SW_CLOSE_IDENTITY,
		       sw_mono_ns());
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
		if (c->refuse) {
			conn_refuse(in, c);
			return;
		}
		if (r == SW_BAD_NONE) {
			size_t held = sw_decoder__pending(c->dec);

			sw_conn_clock__read(&c->clk, sw_mono_ns(), frames, held);
			if (held >= c->pending)
				atomic_fetch_add_explicit(&in->frame_bytes, held - c->pending,
							  memory_order_relaxed);
			else
				atomic_fetch_sub_explicit(&in->frame_bytes, c->pending - held,
							  memory_order_relaxed);
			c->pending = held;
		}
		if (r != SW_BAD_NONE) {
			atomic_fetch_add_explicit(&in->n_bad[r], 1, memory_order_relaxed);
			sw_warn("closing connection from %s: bad frame (%s)", c->peer,
				sw_bad_reason__name(r));
			conn_close(in, c, sw_bad_reason__name(r));
			return;
		}
	}
}

/* Closes the connections whose deadline has passed; returns the earliest
 * deadline still to come (UINT64_MAX: none). */
static uint64_t close_overdue(struct sw_ingest *in, uint64_t now)
{
	uint64_t next = UINT64_MAX, at;
	enum sw_close_reason r;

	for (size_t i = 0; i < in->max_conns; i++) {
		struct sw_conn *c = &in->conns[i];

		if (c->fd < 0)
			continue;
		r = sw_conn_clock__due(&c->clk, &in->lim, now, &at);
		if (r != SW_CLOSE__COUNT)
			conn_close_for(in, c, r, now);
		else if (at < next)
			next = at;
	}
	return next;
}

/* Over the budget for unfinished frames: the connection that holds the
 * most goes, which is an agent's only when everyone is honest and the
 * budget too small for them (then raise --frame-memory). */
static void enforce_frame_memory(struct sw_ingest *in, uint64_t now)
{
	while (atomic_load_explicit(&in->frame_bytes, memory_order_relaxed) > in->lim.frame_memory) {
		struct sw_conn *big = NULL;

		for (size_t i = 0; i < in->max_conns; i++)
			if (in->conns[i].fd >= 0 && (!big || in->conns[i].pending > big->pending))
				big = &in->conns[i];
		if (!big || !big->pending)
			return;
		conn_close_for(in, big, SW_CLOSE_MEMORY, now);
	}
}

/* The listener in the epoll set or out of it: out while at the cap (a new
 * agent then waits in the kernel's backlog, connected, and is accepted as
 * soon as a slot frees, instead of being accepted and closed over and
 * over) and for one round after accept() ran out of fds. */
static void listener_want(struct sw_ingest *in, bool want)
{
	if (want == in->listening)
		return;
	epoll_ctl(in->epfd, EPOLL_CTL_MOD, in->lfd,
		  &(struct epoll_event){.events = want ? EPOLLIN : 0, .data.u32 = LISTENER_TAG});
	in->listening = want;
}

int sw_ingest__run_once(struct sw_ingest *in, int timeout_ms, const sigset_t *sigmask)
{
	bool accept_ready = false;
	uint64_t now, next;
	int n;

	/* deadlines first: what they close frees slots for this round */
	now = sw_mono_ns();
	next = close_overdue(in, now);
	/* wake up for the next deadline, rounded up to the millisecond */
	if (next != UINT64_MAX) {
		uint64_t ms = (next - now + 999999) / 1000000;

		if (timeout_ms < 0 || ms < (uint64_t)timeout_ms)
			timeout_ms = ms > INT_MAX ? INT_MAX : (int)ms;
	}
	if (in->nconns >= in->max_conns && !can_preempt(in)) {
		if (!in->at_cap) {
			atomic_fetch_add_explicit(&in->n_paused, 1, memory_order_relaxed);
			sw_warn("%zu agent connections, the cap: not accepting more until one "
				"closes", in->nconns);
		}
		in->at_cap = true;
	} else {
		in->at_cap = false;
	}
	listener_want(in, !in->accept_paused && !in->at_cap);
	in->accept_paused = false;
	n = epoll_pwait(in->epfd, in->events, EVENTS_PER_WAKE, timeout_ms < 0 ? -1 : timeout_ms,
			sigmask);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		uint32_t tag = in->events[i].data.u32;

		if (tag == LISTENER_TAG) {
			accept_ready = true;
		} else if (tag < in->max_conns && in->conns[tag].fd >= 0) {
			conn_read(in, &in->conns[tag]);
			conn_ack_io(in, tag);
		}
	}
	enforce_frame_memory(in, sw_mono_ns());
	/* after reading, so that slots closed this round count as free */
	if (accept_ready && (in->nconns < in->max_conns || can_preempt(in)))
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
	for (int r = 0; r < SW_CLOSE__COUNT; r++)
		out->closed[r] = atomic_load_explicit(&in->n_closed[r], memory_order_relaxed);
	out->accept_paused = atomic_load_explicit(&in->n_paused, memory_order_relaxed);
	out->frame_bytes = atomic_load_explicit(&in->frame_bytes, memory_order_relaxed);
}
