// SPDX-License-Identifier: Apache-2.0
#include <stddef.h>
#include "runtime/runtime.h"

/* The order discovery has always asked in: an executable named node, or a
 * libnode, wins over a libpython the process may also map. */
const struct sw_runtime_desc *const sw_runtimes[] = {&sw_runtime_node, &sw_runtime_python, NULL};

const struct sw_runtime_desc *sw_runtime_desc_of(enum sw_runtime rt)
{
	for (const struct sw_runtime_desc *const *d = sw_runtimes; *d; d++)
		if ((*d)->rt == rt)
			return *d;
	return NULL;
}

uint32_t sw_runtime_target_flags(const struct sw_proc_info *pi)
{
	const struct sw_runtime_desc *d = sw_runtime_desc_of(pi->runtime);

	return d && d->target_flags ? d->target_flags(pi) : 0;
}
