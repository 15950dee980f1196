// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "log.h"
#include "stream.h"

#define BACKOFF_MIN_NS 500000000ull    /* 0.5 s */
#define BACKOFF_MAX_NS 30000000000ull  /* 30 s */

struct frame {
	struct frame *next;
	uint8_t *data;
	size_t len;
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
	struct frame *head, *tail;
	size_t head_off; /* bytes of head already written */
	size_t bytes, max_bytes;
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
	return s;
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
	s->head_off = 0; /* a partly sent frame is resent whole on the next connection */
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
	s->backoff_ns = BACKOFF_MIN_NS;
	s->hello_pending = s->hello != NULL;
	s->hello_off = 0;
	s->head_off = 0;
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
	if (s->connected && s->hello_pending && s->hello_off > 0) {
		free(frame);
		return;
	}
	free(s->hello);
	s->hello = frame;
	s->hello_len = len;
	s->hello_off = 0;
}

void sw_stream__queue(struct sw_stream *s, uint8_t *data, size_t len)
{
	struct frame *f = malloc(sizeof(*f));

	if (!f) {
		free(data);
		s->st.dropped_batches++;
		s->st.dropped_bytes += len;
		return;
	}
	f->next = NULL;
	f->data = data;
	f->len = len;
	if (s->tail)
		s->tail->next = f;
	else
		s->head = f;
	s->tail = f;
	s->bytes += len;
	/* evict oldest first, but never the frame being written */
	while (s->bytes > s->max_bytes && s->head &&
	       (s->head_off == 0 ? s->head != f : s->head->next != NULL)) {
		struct frame *victim;

		if (s->head_off == 0) {
			victim = s->head;
			s->head = victim->next;
		} else {
			victim = s->head->next;
			s->head->next = victim->next;
		}
		if (s->tail == victim)
			s->tail = s->head;
		s->bytes -= victim->len;
		s->st.dropped_batches++;
		s->st.dropped_bytes += victim->len;
		free_frame(victim);
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
	char probe;

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
	/* the collector never talks back; a readable socket means EOF or reset */
	rc = (int)recv(s->fd, &probe, 1, MSG_DONTWAIT | MSG_PEEK);
	if (rc == 0 || (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		disconnect(s, "closed the connection", rc == 0 ? ECONNRESET : errno);
		return;
	}
	if (s->hello_pending) {
		rc = write_some(s, s->hello, s->hello_len, &s->hello_off);
		if (rc)
			return;
		s->hello_pending = 0;
	}
	while (s->head) {
		struct frame *f = s->head;

		rc = write_some(s, f->data, f->len, &s->head_off);
		if (rc)
			return;
		s->head = f->next;
		if (!s->head)
			s->tail = NULL;
		s->bytes -= f->len;
		s->head_off = 0;
		s->st.batches_sent++;
		free_frame(f);
	}
}

void sw_stream__drain(struct sw_stream *s, int timeout_ms)
{
	uint64_t end = sw_mono_ns() + (uint64_t)timeout_ms * 1000000ull;

	while ((s->head || s->hello_pending) && sw_mono_ns() < end) {
		if (s->fd < 0 && s->next_try_ns > end)
			break;
		sw_stream__service(s, sw_mono_ns());
		if (s->head || s->hello_pending)
			usleep(10000);
	}
}

void sw_stream__stats(const struct sw_stream *s, struct sw_stream_stats *st)
{
	*st = s->st;
	st->connected = s->connected;
	/* what is still queued is not dropped yet, but would be lost at exit */
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
