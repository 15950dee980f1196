/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HOST:PORT parsing and listening sockets, shared by the agent listener
 * (listener.c) and the HTTP side (http.c). The HTTP socket is opened here and
 * handed to libmicrohttpd so that "port in use" is reported by us, in one
 * line, for both listeners alike.
 */
#ifndef SW_COLLECTOR_NET_H
#define SW_COLLECTOR_NET_H

#include <stdbool.h>
#include <sys/socket.h>

struct sw_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[300]; /* as the user wrote it, for messages */
};

/*
 * Parse "HOST:PORT" or "[V6]:PORT" and resolve HOST (numeric or a name).
 * Returns 0, or -EINVAL with *why set to a static reason for people.
 */
int sw_addr__parse(const char *s, struct sw_addr *a, const char **why);

/* 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104: only this host reaches it. */
bool sw_addr__is_loopback(const struct sw_addr *a);

/* Non-blocking, close-on-exec listening TCP socket. Returns fd or -errno. */
int sw_net__listen(const struct sw_addr *a, int backlog);

/* Port a listening socket is bound to (useful with port 0), or -1. */
int sw_net__local_port(int fd);

#endif
