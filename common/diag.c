// SPDX-License-Identifier: Apache-2.0
#include <string.h>
#include "diag.h"

static const char *const fd_kind_names[] = {
	[SW_FD_NONE] = "", [SW_FD_FILE] = "file", [SW_FD_TCP] = "tcp", [SW_FD_UDP] = "udp",
	[SW_FD_UNIX] = "unix", [SW_FD_PIPE] = "pipe", [SW_FD_OTHER] = "other",
};

const char *sw_fd_kind_name(enum sw_fd_kind k)
{
	if ((unsigned)k >= sizeof(fd_kind_names) / sizeof(fd_kind_names[0]))
		return "other";
	return fd_kind_names[k];
}

enum sw_fd_kind sw_fd_kind_parse(const char *name)
{
	if (!name || !*name)
		return SW_FD_NONE;
	for (unsigned k = 1; k < sizeof(fd_kind_names) / sizeof(fd_kind_names[0]); k++)
		if (strcmp(name, fd_kind_names[k]) == 0)
			return (enum sw_fd_kind)k;
	return SW_FD_OTHER;
}
