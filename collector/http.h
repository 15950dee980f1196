/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP glue: libmicrohttpd in its own thread serves /metrics,
 * /api/incidents and /healthz from export.c. The listening socket is ours
 * (net.c) so that a busy port is reported the same way as for agents.
 */
#ifndef SW_COLLECTOR_HTTP_H
#define SW_COLLECTOR_HTTP_H

#include "store.h"
#include "listener.h"
#include "net.h"

struct sw_http;

/* ingest may be NULL. Returns NULL with errno set (bind errors included). */
struct sw_http *sw_http__new(const struct sw_addr *addr, struct sw_store *store,
			     const struct sw_ingest *ingest);
void sw_http__free(struct sw_http *h);
int sw_http__port(const struct sw_http *h);

#endif
