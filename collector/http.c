// SPDX-License-Identifier: Apache-2.0
#include "http.h"
#include "export.h"
#include "log.h" /* common/log.h, shared with the agent */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A scrape and a dashboard or two: a handful of clients, not a web site. */
#define HTTP_MAX_CLIENTS 64
#define HTTP_TIMEOUT_SEC 30

struct sw_http {
	struct MHD_Daemon *d;
	struct sw_store *store;
	const struct sw_ingest *ingest;
	int port;
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	sw_warn("http: %s", line);
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
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
	unsigned long long x;
	char *end;

	if (!v)
		return -ENOENT;
	if (!*v || *v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (*end || errno || x > max)
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
	if (sw_export__scrape(h->store, h->ingest ? &st : NULL, who, &b)) {
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	struct sw_http *h = cls;
	static int first_call;
	bool known;

	(void)version;
	(void)upload;
	/* MHD calls twice: first with only the headers. Answering then would
	 * leave a request body unread; we have no bodies, but be correct. */
	if (!*req_cls) {
		*req_cls = &first_call;
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
			     const struct sw_ingest *ingest)
{
	struct sw_http *h;
	int fd = -1, err = 0;

	h = calloc(1, sizeof(*h));
	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	h->store = store;
	h->ingest = ingest;
	fd = sw_net__listen(addr, 64);
	if (fd < 0) {
		err = -fd;
		goto cleanup;
	}
	h->port = sw_net__local_port(fd);
	h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				/* the logger first, or MHD logs the options before it
				 * its own way */
				on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
				(unsigned int)HTTP_MAX_CLIENTS, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned int)HTTP_TIMEOUT_SEC, MHD_OPTION_END);
	if (!h->d) {
		err = errno ? errno : EIO;
		goto cleanup;
	}
	/* the daemon owns the socket now and closes it at stop */
	return h;
cleanup:
	if (fd >= 0)
		close(fd);
	free(h);
	errno = err;
	return NULL;
}

void sw_http__free(struct sw_http *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	free(h);
}

int sw_http__port(const struct sw_http *h) { return h->port; }
