// SPDX-License-Identifier: Apache-2.0
/* Placeholder until the frame reader lands: every read says "not yet". */
#include <errno.h>
#include <stdlib.h>
#include "runtime/pyframes.h"

struct sw_pyframes {
	struct sw_tio *t;
};

struct sw_pyframes *sw_pyframes__new(struct sw_tio *t)
{
	struct sw_pyframes *r = calloc(1, sizeof(*r));

	if (r)
		r->t = t;
	return r;
}

void sw_pyframes__free(struct sw_pyframes *r)
{
	free(r);
}

int sw_pyframes__add_process(struct sw_pyframes *r, const struct sw_proc_info *pi)
{
	(void)r;
	(void)pi;
	return -ENOTSUP;
}

void sw_pyframes__remove_process(struct sw_pyframes *r, uint32_t pid)
{
	(void)r;
	(void)pid;
}

int sw_pyframes__read(struct sw_pyframes *r, uint32_t pid, uint32_t tid, struct sw_py_stack *out)
{
	(void)r;
	(void)pid;
	(void)tid;
	(void)out;
	return -ENOTSUP;
}

const char *sw_pyframes__note(struct sw_pyframes *r, uint32_t pid)
{
	(void)r;
	(void)pid;
	return "the Python frame reader is not built yet";
}
