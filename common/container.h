/* SPDX-License-Identifier: Apache-2.0 */
/* The container and pod of a process, from its cgroup path. */
#ifndef SW_CONTAINER_H
#define SW_CONTAINER_H

#include <stdbool.h>

struct sw_container_ident {
	char id[65];
	char pod_uid[37];
	char runtime[16];
};

bool sw_container_parse(const char *cgroup_path, struct sw_container_ident *out);

#endif
