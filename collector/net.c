// SPDX-License-Identifier: Apache-2.0
#include "net.h"
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sw_addr__parse(const char *s, struct sw_addr *a, const char **why)
{
	struct addrinfo hints = {0}, *res = NULL;
	char host[256], *end;
	const char *colon, *h;
	size_t hlen;
	long port;
	int rc;

	*why = NULL;
	if (!s || !*s) {
		*why = "empty address, expected HOST:PORT";
		return -EINVAL;
	}
	if (s[0] == '[') {
		/* IPv6 literals carry colons: the port follows the bracket */
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':') {
			*why = "expected [IPV6]:PORT";
			return -EINVAL;
		}
		h = s + 1;
		hlen = rb - h;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			*why = "missing :PORT, expected HOST:PORT";
			return -EINVAL;
		}
		h = s;
		hlen = colon - s;
		if (memchr(h, ':', hlen)) {
			*why = "IPv6 addresses go in brackets: [::1]:PORT";
			return -EINVAL;
		}
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		*why = "missing or too long HOST, expected HOST:PORT";
		return -EINVAL;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno || port < 0 || port > 65535) {
		*why = "PORT must be a number from 0 to 65535";
		return -EINVAL;
	}

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc || !res) {
		*why = "HOST does not resolve to an address";
		return -EINVAL;
	}
	if (res->ai_addrlen > sizeof(a->ss)) {
		freeaddrinfo(res);
		*why = "unsupported address family";
		return -EINVAL;
	}
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	snprintf(a->text, sizeof(a->text), "%s", s);
	freeaddrinfo(res);
	return 0;
}

bool sw_addr__is_loopback(const struct sw_addr *a)
{
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;

		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct in6_addr *x = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(x) || (IN6_IS_ADDR_V4MAPPED(x) && x->s6_addr[12] == 127);
	}
	return false;
}

int sw_net__listen(const struct sw_addr *a, int backlog)
{
	int fd, one = 1, err;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* a restarted collector must not wait for TIME_WAIT of its previous
	 * connections; a live listener on the port still makes bind() fail */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		goto fail;
	if (listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

int sw_net__local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}
