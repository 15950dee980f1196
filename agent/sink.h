/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sinks: where measurements go, one file per format (sink_human.c,
 * sink_json.c, sink_proto.c). report.c fans every record out to the sinks
 * configured; a new field of an incident is one change per sink.
 *
 * A sink is a struct whose first member is struct sw_sink (its ops). Every
 * op may be NULL except free.
 */
#ifndef SW_SINK_H
#define SW_SINK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "report.h"

struct sw_stream;
struct sw_sink;

struct sw_sink_ops {
	const char *name;
	void (*process)(struct sw_sink *s, const struct sw_proc_info *pi);
	void (*process_gone)(struct sw_sink *s, uint32_t pid, bool exec);
	void (*process_exit)(struct sw_sink *s, const struct sw_exit_rec *ex);
	void (*memory)(struct sw_sink *s, const struct sw_memory_rec *m);
	void (*incident)(struct sw_sink *s, const struct sw_incident_rec *inc);
	void (*summary)(struct sw_sink *s, const struct sw_summary_rec *sum);
	/* GIL contention of a CPython process over an interval (common/gil.h) */
	void (*gil)(struct sw_sink *s, const struct sw_gil_rec *g);
	/* h already holds every sink's own losses (see lost) */
	void (*health)(struct sw_sink *s, const struct sw_health *h);
	void (*flush)(struct sw_sink *s);
	/* Records this sink could not deliver so far (a bounded batch full,
	 * an allocation failed): added to lost_events in every health line. */
	uint64_t (*lost)(const struct sw_sink *s);
	void (*free)(struct sw_sink *s);
};

struct sw_sink {
	const struct sw_sink_ops *ops;
};

/* Human lines. Wall-clock times are mono + mono_to_unix_ns. */
struct sw_sink *sw_sink_human__new(FILE *out, int64_t mono_to_unix_ns);

/* One JSON object per line. */
struct sw_sink *sw_sink_json__new(FILE *out);

/*
 * Protobuf batches (proto/stallwatch.proto) in frames (common/frame.h):
 * records pile up, bounded, until flush packs them into one batch; the hello
 * batch, re-sent first on every connection, is kept current.
 */
struct sw_sink_frames {
	/* all take ownership of frame */
	void (*queue)(void *ctx, uint8_t *frame, size_t len);
	void (*set_hello)(void *ctx, uint8_t *frame, size_t len);
	void *ctx;
	/* optional, used instead of queue: the batch's seq and its final
	 * incidents, what the stream counts if it has to evict the batch */
	void (*queue_seq)(void *ctx, uint64_t seq, uint32_t incidents, uint8_t *frame, size_t len);
};
struct sw_sink *sw_sink_proto__new(const struct sw_sink_frames *out, uint64_t threshold_ns,
				   int64_t mono_to_unix_ns);
/* The same, writing to a collector stream (stream.h). */
struct sw_sink *sw_sink_proto__new_stream(struct sw_stream *stream, uint64_t threshold_ns,
					  int64_t mono_to_unix_ns);
/* Bounds the batch built between flushes; beyond it items are counted lost
 * rather than growing memory without limit while the loop is very noisy. */
#define SW_BATCH_MAX_ITEMS 4096

void sw_sink__free(struct sw_sink *s);

#endif
