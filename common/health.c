// SPDX-License-Identifier: Apache-2.0
#include <string.h>
#include "health.h"

const char *const sw_health_names[SW_HEALTH__COUNT] = {
#define SW_HEALTH_NAME(name, help) #name,
	SW_HEALTH_COUNTERS(SW_HEALTH_NAME)
#undef SW_HEALTH_NAME
};

const char *const sw_health_help[SW_HEALTH__COUNT] = {
#define SW_HEALTH_HELP(name, help) help,
	SW_HEALTH_COUNTERS(SW_HEALTH_HELP)
#undef SW_HEALTH_HELP
};

int sw_health_id(const char *name)
{
	for (int i = 0; name && i < SW_HEALTH__COUNT; i++)
		if (!strcmp(sw_health_names[i], name))
			return i;
	return -1;
}
