/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gil's user side: loads bpf/gilmon.bpf.c, tells it where each CPython
 * target's GIL is (the layout table, agent/runtime/python.c), samples the
 * GIL's holder from outside at a fixed rate on a thread of its own, and
 * turns both into one struct sw_gil_rec per process per interval
 * (common/gil.h), and into the GIL part of a loop's incident.
 */
#ifndef SW_AGENT_GILMON_H
#define SW_AGENT_GILMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "discovery.h"
#include "report.h"

struct sw_gil;

struct sw_gil_opts {
	int threads_fd, tid_hint_fd; /* loopmon's maps, reused by fd */
	bool classic_tp;	     /* tracefs is there: syscalls:sys_*_futex */
	uint32_t sample_hz;	     /* holder samples a second, per process */
};

#define SW_GIL_DEFAULT_HZ 100
/* Every n-th holder sample also reads the holder's Python stack. */
#define SW_GIL_STACK_EVERY 5

struct sw_gil *sw_gil__new(const struct sw_gil_opts *o);
void sw_gil__free(struct sw_gil *g);

/*
 * Measure the GIL of Python process pi. 0; -ENOTSUP (a free-threaded build,
 * a version not in the layout table) or another error, with note saying in
 * one line why its GIL is not measured. An interpreter not initialised yet
 * is 0: it is looked for again at each interval.
 */
int sw_gil__add_process(struct sw_gil *g, const struct sw_proc_info *pi, char *note, size_t len);
void sw_gil__remove_process(struct sw_gil *g, uint32_t pid);
bool sw_gil__measures(struct sw_gil *g, uint32_t pid);

/* One record per measured process for the interval that ends at now. */
void sw_gil__summarize(struct sw_gil *g, uint64_t now, struct sw_report *rep);

/*
 * The GIL part of an incident of loop thread tid in [start, end]: its wait
 * (from BPF), and the holder (a tstate address from BPF) named, with the
 * Python stack the sampler saw it hold the GIL with in that window. 0, or
 * -ENOENT when the process is not measured or there was no GIL wait.
 */
int sw_gil__blame(struct sw_gil *g, uint32_t pid, uint64_t wait_ns, uint32_t drops,
		  uint64_t holder_tstate, uint64_t start_ns, uint64_t end_ns,
		  struct sw_gil_blame *out);

void sw_gil__health(struct sw_gil *g, uint64_t *v);

#endif
