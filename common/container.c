// SPDX-License-Identifier: Apache-2.0
/* Placeholder until the full parser lands: the last 64-hex run of the path. */
#include "container.h"
#include <string.h>

bool sw_container_parse(const char *path, struct sw_container_ident *out)
{
	size_t run = 0;

	memset(out, 0, sizeof(*out));
	for (const char *p = path; p && *p; p++) {
		bool hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');

		run = hex ? run + 1 : 0;
		if (run == 64 && !((p[1] >= '0' && p[1] <= '9') || (p[1] >= 'a' && p[1] <= 'f')))
			memcpy(out->id, p - 63, 64);
	}
	return out->id[0] != 0;
}
