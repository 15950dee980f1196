// SPDX-License-Identifier: Apache-2.0
#include "http.h"
#include "clock.h"
#include "export.h"
#include "http_auth.h"
#include "log.h" /* common/log.h, shared with the agent */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* libmicrohttpd's own timeout: no byte either way for this long. It bounds
 * a client that stopped reading its reply; the header deadline bounds the
 * ones that trickle a request. */
#define HTTP_IDLE_TIMEOUT_SEC 30
/* ?a&b&c...: past this many query arguments a request is a 400 (we read
 * three at most) */
#define HTTP_MAX_ARGS 32
/* GnuTLS priorities: TLS 1.2 and 1.3 only. NORMAL alone still offers 1.0
 * and 1.1 in GnuTLS 3.7 (Debian 12), which a security review would flag;
 * every client that matters (Prometheus, curl, Grafana) speaks 1.2. */
#define HTTP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* One open connection, for the header deadline. */
struct http_conn {
	struct http_conn *prev, *next;
	int fd;
	uint64_t since_ns; /* connected, or its last reply completed */
	bool in_request;   /* headers complete, reply not done */
	bool cut;
	char peer[INET6_ADDRSTRLEN];
};

struct sw_http {
	struct MHD_Daemon *d;
	struct sw_store *store;
	const struct sw_ingest *ingest;
	int port;
	uint64_t header_ns;
	/* libmicrohttpd's thread adds and removes, the main thread sweeps */
	pthread_mutex_t lock;
	struct http_conn *conns;
	_Atomic uint64_t n_header_timeouts, n_refused, n_bad_requests;
	_Atomic uint64_t n_unauthorized, n_tls_failed;
	const struct sw_secret *token; /* NULL: no --http-token-file */
	bool tls;
	/* MHD_start_daemon's complaints are kept for the caller's one line
	 * instead of being logged */
	_Atomic bool starting;
	char start_err[256];
};

/*
 * Set in libmicrohttpd's thread just before on_request returns MHD_NO for a
 * connection we cut ourselves: the "Application reported internal error"
 * the library logs at once after it is no news, and no error.
 */
static _Thread_local bool quiet_close;

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	static const char limit[] = "Server reached connection limit";
	/* connection_https.c says this whatever gnutls_handshake() failed on */
	static const char handshake[] = "Error: received handshake message out of context";
	static const char app_err[] = "Application reported internal error";
	struct sw_http *h = cls;
	bool quiet = quiet_close;
	char line[512];
	size_t n;

	quiet_close = false;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	if (quiet && !strncmp(line, app_err, sizeof(app_err) - 1))
		return;
	if (atomic_load(&h->starting)) {
		/* the first is the cause ("GnuTLS failed to setup x509
		 * certificate/key: ..."), the rest its consequences */
		while (n && line[n - 1] == '.')
			line[--n] = '\0'; /* the caller's line goes on after it */
		if (!h->start_err[0])
			snprintf(h->start_err, sizeof(h->start_err), "%.*s",
				 (int)sizeof(h->start_err) - 1, line);
		return;
	}
	if (!strncmp(line, handshake, sizeof(handshake) - 1)) {
		atomic_fetch_add_explicit(&h->n_tls_failed, 1, memory_order_relaxed);
		sw_warn("http: a TLS handshake failed: a client sent something else than TLS (an "
			"http:// URL for this https:// port?), did not trust our certificate, or "
			"hung up or was cut (--http-header-timeout) before finishing");
		return;
	}
	/* 0.9.75 says the same for its total and its per-IP limit; at the
	 * total it stops accepting, so what is refused is almost always an
	 * address over --http-max-per-ip */
	if (!strncmp(line, limit, sizeof(limit) - 1)) {
		atomic_fetch_add_explicit(&h->n_refused, 1, memory_order_relaxed);
		sw_warn("http: refused a connection: over --http-max-per-ip connections from its "
			"address, or --http-max-connections in all");
		return;
	}
	sw_warn("http: %s", line);
}

static void client_ip(const struct sockaddr *sa, char *host, size_t size)
{
	snprintf(host, size, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, (socklen_t)size);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host,
			  (socklen_t)size);
}

/* libmicrohttpd's thread: a connection opens or closes. It calls CLOSED
 * before it closes the socket, so an fd in our list is never another's. */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct sw_http *h = cls;
	struct http_conn *k = *socket_context;
	const union MHD_ConnectionInfo *fi, *ai;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		fi = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		ai = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		k = calloc(1, sizeof(*k));
		if (!k || !fi) {
			/* without it the connection has no header deadline,
			 * only libmicrohttpd's idle timeout */
			free(k);
			return;
		}
		k->fd = fi->connect_fd;
		k->since_ns = sw_mono_ns();
		client_ip(ai ? ai->client_addr : NULL, k->peer, sizeof(k->peer));
		pthread_mutex_lock(&h->lock);
		k->next = h->conns;
		if (h->conns)
			h->conns->prev = k;
		h->conns = k;
		pthread_mutex_unlock(&h->lock);
		*socket_context = k;
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED || !k)
		return;
	pthread_mutex_lock(&h->lock);
	if (k->prev)
		k->prev->next = k->next;
	else
		h->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&h->lock);
	free(k);
	*socket_context = NULL;
}

static struct http_conn *conn_of(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static void set_in_request(struct sw_http *h, struct MHD_Connection *mc, bool on)
{
	struct http_conn *k = conn_of(mc);

	if (!k)
		return;
	pthread_mutex_lock(&h->lock);
	k->in_request = on;
	if (!on)
		k->since_ns = sw_mono_ns(); /* the next request's headers start now */
	pthread_mutex_unlock(&h->lock);
}

static bool was_cut(struct sw_http *h, struct MHD_Connection *mc)
{
	struct http_conn *k = conn_of(mc);
	bool cut;

	if (!k)
		return false;
	pthread_mutex_lock(&h->lock);
	cut = k->cut;
	pthread_mutex_unlock(&h->lock);
	return cut;
}

/* A request is over (replied, or the client went): the deadline starts again. */
static void on_completed(void *cls, struct MHD_Connection *mc, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)req_cls;
	(void)toe;
	set_in_request(cls, mc, false);
}

/*
 * The raw request target, before libmicrohttpd parses its query. 0.9.75
 * keeps a record per argument in the connection's 32 KiB pool; past ~600
 * it runs out, queues a 431, then reads on with no buffer and never sends
 * it: the client waits for a reply until a timeout. So a query of more than
 * HTTP_MAX_ARGS arguments is answered here, on the socket, with a 400 (the
 * request line is all that has been read: nothing else is being written),
 * and the socket shut down so that the library drops the connection.
 */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
	static const char resp[] = "HTTP/1.1 400 Bad Request\r\n"
				   "Content-Type: text/plain; charset=utf-8\r\n"
				   "Content-Length: 25\r\n"
				   "Connection: close\r\n\r\n"
				   "too many query arguments\n";
	struct sw_http *h = cls;
	const char *q = strchr(uri, '?');
	struct http_conn *k;
	size_t args = 1;

	if (!q)
		return NULL;
	for (q++; *q && args <= HTTP_MAX_ARGS; q++)
		args += *q == '&' || *q == ';';
	if (args <= HTTP_MAX_ARGS)
		return NULL;
	k = conn_of(mc);
	if (!k)
		return NULL; /* no fd known: the library's own way, then */
	/* non-blocking and tiny: it fits the empty send buffer. Over TLS the
	 * socket carries records that only GnuTLS may write: no reply then,
	 * the client sees the connection close. */
	if (!h->tls && send(k->fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		sw_dbg("http: 400 to %s: %s", k->peer, strerror(errno));
	pthread_mutex_lock(&h->lock);
	shutdown(k->fd, SHUT_RDWR);
	k->cut = true;
	pthread_mutex_unlock(&h->lock);
	atomic_fetch_add_explicit(&h->n_bad_requests, 1, memory_order_relaxed);
	sw_warn("http: %s %s: more than %d query arguments", h->tls ? "closed the connection of"
		: "400 to", k->peer, HTTP_MAX_ARGS);
	return NULL;
}

/*
 * Has the client sent a byte since k->since_ns? The kernel knows when data
 * last came (TCP_INFO, ms); libmicrohttpd has read it already. A client
 * that sent nothing is idle, not slow: a scraper's keep-alive connection
 * between scrapes. libmicrohttpd's idle timeout closes those, and the
 * header deadline is for the ones that trickle a request.
 */
static bool sent_since(const struct http_conn *k, uint64_t now_ns)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	uint64_t quiet_ms, since_ms = (now_ns - k->since_ns) / 1000000;

	if (getsockopt(k->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || len < sizeof(ti))
		return true; /* cannot tell: the deadline applies */
	quiet_ms = ti.tcpi_last_data_recv;
	/* 50 ms for the jiffy the kernel counts in, and a request's last
	 * bytes just before its reply */
	return quiet_ms + 50 < since_ms;
}

void sw_http__sweep(struct sw_http *h, uint64_t now_ns)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	for (struct http_conn *k = h->conns; k; k = k->next) {
		if (k->in_request || k->cut || now_ns - k->since_ns < h->header_ns ||
		    !sent_since(k, now_ns))
			continue;
		/* libmicrohttpd sees EOF and closes it in its own thread; the
		 * socket is still open (it is in the list), so the fd is its */
		shutdown(k->fd, SHUT_RDWR);
		k->cut = true;
		atomic_fetch_add_explicit(&h->n_header_timeouts, 1, memory_order_relaxed);
		sw_warn("http: closing connection from %s: no complete request %.0f s after it "
			"connected or got its last reply (--http-header-timeout)", k->peer,
			(double)h->header_ns / 1e9);
	}
	pthread_mutex_unlock(&h->lock);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *ctype,
			     char *body, size_t len, bool owned)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body,
					    owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned int status, const char *text)
{
	return reply(c, status, "text/plain; charset=utf-8", (char *)text, strlen(text), false);
}

/* Query numbers: digits only, so "?limit=-1" or "?pid=12abc" is a 400, not
 * a silent "all". Returns 0, -ENOENT when absent, -EINVAL when bad. */
static int query_u64(struct MHD_Connection *c, const char *key, uint64_t max, uint64_t *out)
{
	const char *v = NULL;
	unsigned long long x;
	size_t vlen = 0;
	char *end;

	/* with its length: "?pid=1%00" decodes to "1\0", which a C string
	 * would read as "1" */
	if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, key, strlen(key), &v, &vlen) !=
	    MHD_YES)
		return -ENOENT;
	if (!v || !vlen || *v < '0' || *v > '9' || strnlen(v, vlen) != vlen)
		return -EINVAL;
	errno = 0;
	x = strtoull(v, &end, 10);
	if ((size_t)(end - v) != vlen || errno || x > max)
		return -EINVAL;
	*out = x;
	return 0;
}

static int query_u32(struct MHD_Connection *c, const char *key, uint32_t *out)
{
	uint64_t x;
	int rc = query_u64(c, key, UINT32_MAX, &x);

	if (!rc)
		*out = (uint32_t)x;
	return rc;
}

/* pid, from and to (unix ms) of /api/incidents and /api/folded; NULL or
 * the line to answer 400 with. */
static const char *query_filter(struct MHD_Connection *c, struct sw_incident_query *q)
{
	uint32_t v;
	int rc;

	rc = query_u32(c, "pid", &v);
	if (rc == -EINVAL)
		return "pid must be a number\n";
	if (rc == 0) {
		q->have_pid = true;
		q->pid = v;
	}
	rc = query_u64(c, "from", UINT64_MAX / 1000000, &q->from_unix_ms);
	if (rc == -EINVAL)
		return "from must be a time in unix milliseconds\n";
	q->have_from = rc == 0;
	rc = query_u64(c, "to", UINT64_MAX / 1000000, &q->to_unix_ms);
	if (rc == -EINVAL)
		return "to must be a time in unix milliseconds\n";
	q->have_to = rc == 0;
	return NULL;
}

static enum MHD_Result serve_folded(struct sw_http *h, struct MHD_Connection *c)
{
	struct sw_incident_query q = {0};
	const char *bad = query_filter(c, &q);
	size_t len;
	char *txt;

	if (bad)
		return reply_text(c, MHD_HTTP_BAD_REQUEST, bad);
	if (sw_export__folded(h->store, &q, &txt, &len))
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return reply(c, MHD_HTTP_OK, "text/plain; charset=utf-8", txt, len, true);
}

/*
 * Who scrapes: the client's address and User-Agent, e.g.
 * "127.0.0.1 Prometheus/2.42.0". Not the port: Prometheus reconnects. Two
 * servers of an HA pair differ by address, a curl beside Prometheus by its
 * User-Agent; each is shown every value (store.h, Scrapers).
 */
static void scraper_of(struct MHD_Connection *c, char *who, size_t size)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const char *ua = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
	char host[INET6_ADDRSTRLEN] = "?";
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host,
			  sizeof(host));
	snprintf(who, size, "%s %s", host, ua ? ua : "-");
}

static enum MHD_Result serve_metrics(struct sw_http *h, struct MHD_Connection *c)
{
	struct sw_ingest_stats st;
	struct sw_buf b = {0};
	char who[256];

	scraper_of(c, who, sizeof(who));
	sw_ingest__stats(h->ingest, &st);
	st.http_header_timeouts = atomic_load_explicit(&h->n_header_timeouts, memory_order_relaxed);
	st.http_refused = atomic_load_explicit(&h->n_refused, memory_order_relaxed);
	st.http_too_many_args = atomic_load_explicit(&h->n_bad_requests, memory_order_relaxed);
	st.http_unauthorized = atomic_load_explicit(&h->n_unauthorized, memory_order_relaxed);
	st.http_tls_failed = atomic_load_explicit(&h->n_tls_failed, memory_order_relaxed);
	st.log_suppressed = sw_log__suppressed();
	if (sw_export__scrape(h->store, &st, who, &b)) {
		sw_buf__free(&b);
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	}
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, true);
}

static enum MHD_Result serve_incidents(struct sw_http *h, struct MHD_Connection *c)
{
	struct sw_incident_query q = {0};
	const char *bad;
	uint32_t v;
	size_t len;
	char *json;
	int rc;

	rc = query_u32(c, "limit", &v);
	if (rc == -EINVAL)
		return reply_text(c, MHD_HTTP_BAD_REQUEST, "limit must be a number\n");
	if (rc == 0)
		q.limit = v;
	/* q.limit 0 means "all" to the exporter; ?limit=0 asks for none */
	if (rc == 0 && v == 0)
		return reply(c, MHD_HTTP_OK, "application/json", "{\"incidents\":[]}\n", 17, false);
	bad = query_filter(c, &q);
	if (bad)
		return reply_text(c, MHD_HTTP_BAD_REQUEST, bad);
	if (sw_export__incidents(h->store, &q, &json, &len))
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return reply(c, MHD_HTTP_OK, "application/json", json, len, true);
}

static enum MHD_Result serve_gil(struct sw_http *h, struct MHD_Connection *c)
{
	uint32_t pid = 0;
	size_t len;
	char *json;
	int rc;

	rc = query_u32(c, "pid", &pid);
	if (rc == -EINVAL)
		return reply_text(c, MHD_HTTP_BAD_REQUEST, "pid must be a number\n");
	if (sw_export__gil(h->store, rc == 0, pid, &json, &len))
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return reply(c, MHD_HTTP_OK, "application/json", json, len, true);
}

/*
 * Does the request carry the token? Asked as soon as its headers are in
 * (the first call), so that the body of a client without it is never read.
 * /healthz stays open: a load balancer's or the kubelet's probe has no
 * token, and it tells nothing but "ok". *sent: an Authorization header came.
 */
static bool authorized(const struct sw_http *h, struct MHD_Connection *c, const char *url,
		       bool *sent)
{
	const char *v = NULL;
	size_t vlen = 0;

	*sent = false;
	if (!h->token || !strcmp(url, "/healthz"))
		return true;
	/* with its length: a NUL inside must not end the comparison early */
	if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION,
					  sizeof(MHD_HTTP_HEADER_AUTHORIZATION) - 1, &v,
					  &vlen) != MHD_YES ||
	    !v)
		return false;
	*sent = true;
	return sw_http_auth__bearer_ok(h->token, v, vlen);
}

/* 401 with the challenge of RFC 6750 §3: error="invalid_token" only when a
 * credential was sent, as that section asks. Counted, and logged (rate
 * limited per site, common/log.h) with the client's address and the path,
 * its bytes outside printable ASCII shown as '?' (libmicrohttpd has
 * unescaped it: %0a would start a line of the attacker's in our log). */
static enum MHD_Result refuse(struct sw_http *h, struct MHD_Connection *c, const char *url,
			      bool sent)
{
	static const char body[] = "unauthorized: send Authorization: Bearer <the token of the "
				   "collector's --http-token-file>\n";
	const union MHD_ConnectionInfo *ai =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char peer[INET6_ADDRSTRLEN], path[65];
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t i;

	atomic_fetch_add_explicit(&h->n_unauthorized, 1, memory_order_relaxed);
	client_ip(ai ? ai->client_addr : NULL, peer, sizeof(peer));
	for (i = 0; url[i] && i < sizeof(path) - 1; i++)
		path[i] = url[i] > 0x20 && url[i] < 0x7f ? url[i] : '?';
	path[i] = '\0';
	sw_warn("http: 401 to %s for %s%s: %s", peer, path, url[i] ? "..." : "",
		sent ? "wrong token (or not \"Bearer <token>\")" : "no Authorization header");
	r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
				sent ? "Bearer realm=\"" SW_HTTP_REALM "\", error=\"invalid_token\""
				     : "Bearer realm=\"" SW_HTTP_REALM "\"");
	ret = MHD_queue_response(c, MHD_HTTP_UNAUTHORIZED, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	struct sw_http *h = cls;
	static int first_call;
	bool known, sent;

	(void)version;
	(void)upload;
	/* MHD calls twice: first with only the headers. Answering then would
	 * leave a request body unread; we have no bodies, but be correct. */
	if (!*req_cls) {
		*req_cls = &first_call;
		/* cut by on_uri (too many arguments): nothing to answer, and
		 * nothing to count twice (a 401 as well) */
		if (was_cut(h, c)) {
			quiet_close = true;
			return MHD_NO;
		}
		set_in_request(h, c, true); /* headers complete: off the header deadline */
		/* before the path is looked at: without the token a client
		 * cannot tell which paths exist */
		if (!authorized(h, c, url, &sent))
			return refuse(h, c, url, sent);
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* discard */
		return MHD_YES;
	}
	known = !strcmp(url, "/metrics") || !strcmp(url, "/api/incidents") ||
		!strcmp(url, "/api/folded") || !strcmp(url, "/api/gil") || !strcmp(url, "/healthz");
	if (!known)
		return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (!strcmp(url, "/healthz"))
		return reply_text(c, MHD_HTTP_OK, "ok\n");
	if (!strcmp(url, "/metrics"))
		return serve_metrics(h, c);
	if (!strcmp(url, "/api/folded"))
		return serve_folded(h, c);
	if (!strcmp(url, "/api/gil"))
		return serve_gil(h, c);
	return serve_incidents(h, c);
}

struct sw_http *sw_http__new(const struct sw_addr *addr, struct sw_store *store,
			     const struct sw_ingest *ingest, const struct sw_http_opts *opts,
			     char *why, size_t why_size)
{
	unsigned int max_conns = opts && opts->max_conns ? opts->max_conns : SW_HTTP_MAX_CONNS;
	unsigned int per_ip = opts && opts->per_ip ? opts->per_ip : SW_HTTP_PER_IP;
	unsigned int header_sec = opts && opts->header_timeout_sec ? opts->header_timeout_sec
								   : SW_HTTP_HEADER_TIMEOUT_SEC;
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	/* HTTPS options, or none: the rest of the list is the same */
	struct MHD_OptionItem tls_opts[4] = {{MHD_OPTION_END, 0, NULL}};
	struct sw_http *h;
	int fd = -1, err = 0;

	h = calloc(1, sizeof(*h));
	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	h->store = store;
	h->ingest = ingest;
	h->header_ns = (uint64_t)header_sec * 1000000000ull;
	if (opts && opts->token && opts->token->len)
		h->token = opts->token;
	h->tls = opts && opts->tls_cert_pem && opts->tls_key_pem;
	pthread_mutex_init(&h->lock, NULL);
	if (h->tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		err = ENOTSUP;
		snprintf(h->start_err, sizeof(h->start_err),
			 "this libmicrohttpd was built without TLS (MHD_FEATURE_TLS): install one "
			 "built with GnuTLS, as Debian's libmicrohttpd12 is");
		goto cleanup;
	}
	if (h->tls) {
		flags |= MHD_USE_TLS;
		tls_opts[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
						      (void *)opts->tls_key_pem};
		tls_opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
						      (void *)opts->tls_cert_pem};
		tls_opts[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
						      (void *)HTTP_TLS_PRIORITIES};
	}
	fd = sw_net__listen(addr, 128);
	if (fd < 0) {
		err = -fd;
		goto cleanup;
	}
	h->port = sw_net__local_port(fd);
	atomic_store(&h->starting, true);
	/* MHD_USE_AUTO: epoll, not select(), whose FD_SETSIZE (1024) would
	 * refuse sockets past it. With TLS the header deadline and the
	 * per-IP limit work the same: both act on the TCP socket (its fd,
	 * TCP_INFO, the peer's address), under GnuTLS's records. */
	h->d = MHD_start_daemon(flags, 0, NULL, NULL,
				/* the logger first, or MHD logs the options before it
				 * its own way */
				on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
				MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, max_conns,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HTTP_IDLE_TIMEOUT_SEC,
				MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_ARRAY,
				tls_opts, MHD_OPTION_END);
	atomic_store(&h->starting, false);
	if (!h->d) {
		/* GnuTLS refusing the certificate or key is the one failure
		 * MHD explains with a line; say it is theirs */
		err = h->tls && h->start_err[0] ? EPROTO : errno ? errno : EIO;
		goto cleanup;
	}
	/* the daemon owns the socket now and closes it at stop */
	return h;
cleanup:
	if (why && why_size)
		snprintf(why, why_size, "%s", h->start_err[0] ? h->start_err : strerror(err));
	/* MHD closes it itself on some of its failures (TLS setup): EBADF
	 * then, harmless here, before any other thread opens files */
	if (fd >= 0)
		close(fd);
	pthread_mutex_destroy(&h->lock);
	free(h);
	errno = err;
	return NULL;
}

void sw_http__free(struct sw_http *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d); /* closes every connection: the list empties */
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int sw_http__port(const struct sw_http *h) { return h->port; }
