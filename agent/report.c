// SPDX-License-Identifier: Apache-2.0
/* The fan-out: every record to every sink, in the order they were added. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "clock.h"
#include "report.h"
#include "sink.h"
#include "utf8.h"

#define SW_REPORT_MAX_SINKS 4

struct sw_report {
	struct sw_sink *sinks[SW_REPORT_MAX_SINKS];
	int n;
};

#define for_each_sink(r, s) for (int _i = 0; _i < (r)->n && ((s) = (r)->sinks[_i]); _i++)

struct sw_report *sw_report__new(bool json, struct sw_stream *stream, uint64_t threshold_ns)
{
	/* one conversion for every sink, so the times they print agree */
	int64_t mono_to_unix_ns = (int64_t)(sw_realtime_ns() - sw_mono_ns());
	struct sw_report *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	/* the collector's batches go first: it is what a fleet reads, and a
	 * stdout blocked by a slow terminal must not delay them */
	if (stream) {
		r->sinks[r->n] = sw_sink_proto__new_stream(stream, threshold_ns, mono_to_unix_ns);
		if (!r->sinks[r->n++])
			goto fail;
	}
	r->sinks[r->n] =
	    json ? sw_sink_json__new(stdout) : sw_sink_human__new(stdout, mono_to_unix_ns);
	if (!r->sinks[r->n++])
		goto fail;
	return r;
fail:
	sw_report__free(r);
	return NULL;
}

void sw_report__free(struct sw_report *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->n; i++)
		sw_sink__free(r->sinks[i]);
	free(r);
}

void sw_sink__free(struct sw_sink *s)
{
	if (s)
		s->ops->free(s);
}

void sw_report__process(struct sw_report *r, const struct sw_proc_info *pi)
{
	struct sw_proc_info shown = *pi; /* 8.5 KiB, on the main thread's stack */
	struct sw_sink *s;

	/* exe stays as the kernel has it for lookups in /proc/PID/maps; what
	 * is reported is valid UTF-8 (a path is bytes; JSON and protobuf
	 * strings are not) */
	sw_utf8_copy_str(shown.exe, sizeof(shown.exe), pi->exe);
	sw_utf8_copy_str(shown.runtime_lib, sizeof(shown.runtime_lib), pi->runtime_lib);
	for_each_sink(r, s) if (s->ops->process) s->ops->process(s, &shown);
}

void sw_report__process_gone(struct sw_report *r, uint32_t pid, bool exec)
{
	struct sw_sink *s;

	for_each_sink(r, s) if (s->ops->process_gone) s->ops->process_gone(s, pid, exec);
}

void sw_report__process_exit(struct sw_report *r, const struct sw_exit_rec *ex)
{
	struct sw_sink *s;

	for_each_sink(r, s) if (s->ops->process_exit) s->ops->process_exit(s, ex);
}

void sw_report__memory(struct sw_report *r, const struct sw_memory_rec *m)
{
	struct sw_sink *s;

	for_each_sink(r, s) if (s->ops->memory) s->ops->memory(s, m);
}

void sw_report__incident(struct sw_report *r, const struct sw_incident_rec *inc)
{
	struct sw_sink *s;

	for_each_sink(r, s) if (s->ops->incident) s->ops->incident(s, inc);
}

void sw_report__summary(struct sw_report *r, const struct sw_summary_rec *sum)
{
	struct sw_sink *s;

	for_each_sink(r, s) if (s->ops->summary) s->ops->summary(s, sum);
}

void sw_report__gil(struct sw_report *r, const struct sw_gil_rec *g)
{
	struct sw_sink *s;

	for_each_sink(r, s) if (s->ops->gil) s->ops->gil(s, g);
}

void sw_report__health(struct sw_report *r, const struct sw_health *h)
{
	struct sw_health all = *h;
	struct sw_sink *s;

	/* what a sink could not deliver is loss every output must show */
	for_each_sink(r, s) if (s->ops->lost) all.v[SW_HEALTH_lost_events] += s->ops->lost(s);
	for_each_sink(r, s) if (s->ops->health) s->ops->health(s, &all);
}

void sw_report__flush(struct sw_report *r)
{
	struct sw_sink *s;

	for_each_sink(r, s) if (s->ops->flush) s->ops->flush(s);
}
