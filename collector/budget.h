/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decode under a budget: what one frame may cost the collector before
 * protobuf-c builds it.
 *
 * protobuf-c's unpack allocates a C struct (100-400 bytes) for every
 * submessage, whatever its size on the wire: two bytes "22 00" (an empty
 * LoopSummary) become a ~200-byte struct, a pointer and a scan slot. 16 MiB
 * of them after zlib (16 KB on the wire) cost 1.7 GB and 4 s (2.7 GB and
 * 8 s as Incidents) before sw_batch__validate could refuse anything. So a
 * frame's payload is first walked on the wire format, against the schema
 * of stallwatch.proto (read from protobuf-c's own descriptors, so a new
 * field is walked without a change here), counting without allocating:
 *   - each repeated field against its limit (sw_budget__limits()), per
 *     message: the agent's own bounds with a margin;
 *   - the stack frame names of the whole frame against
 *     SW_BUDGET_MAX_STACK_FRAMES (they cost most under the store lock);
 *   - every string and bytes field against SW_BUDGET_MAX_STRING;
 *   - every element (submessage, string, packed scalar, unknown field)
 *     against SW_BUDGET_MAX_ELEMENTS for the whole frame;
 *   - a singular submessage given more than once (protobuf merges them, and
 *     protobuf-c merges repeated fields inside by copying: quadratic); a
 *     singular scalar or string given again counts as an element (protobuf-c
 *     holds a scan slot for every field it reads);
 *   - tags, wire types and lengths: a truncated varint, a length over its
 *     parent's end or a wire type the schema does not have is refused as
 *     bad_protobuf before unpack sees it.
 * Then unpack runs with an allocator that refuses past SW_BUDGET_MAX_ALLOC
 * bytes, so that even a walk that misjudged costs a bounded amount.
 * docs/RELIABILITY.md "Hostile frames" has the figures behind each limit.
 */
#ifndef SW_COLLECTOR_BUDGET_H
#define SW_COLLECTOR_BUDGET_H

#include "decoder.h"
#include "stallwatch.pb-c.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The agent's batch bound: agent/sink.h SW_BATCH_MAX_ITEMS (4096) items of
 * each kind between two flushes (a unit test holds the two together). */
#define SW_BUDGET_BATCH_ITEMS 4096u
/* The longest string an agent sends is a path (PATH_MAX 4096: exe); frame
 * names are cut at 1024 (perf map) or 4096 (demangled). Twice that. */
#define SW_BUDGET_MAX_STRING (8u * 1024)
/* Elements (submessages, strings, packed scalars, unknown fields) of one
 * frame. The most a real agent sent in one frame was 5,431 (14 processes
 * watched, tests/root/record_agent_frames.py); a fleet node's summary of a
 * few hundred loops of ~400 buckets each is ~100,000. 262,144 costs ~27 MB
 * unpacked (~105 bytes an element, measured). */
#define SW_BUDGET_MAX_ELEMENTS (256u * 1024)
/* Frame names (Stack.frames, GilThread.stack, Incident.gil_holder_stack) of
 * one frame: the store copies each and the rules search each, 1-2 us a
 * name under the store lock. A real agent's most was 3,225 (27 incidents of
 * up to 8 stacks); five times that. */
#define SW_BUDGET_MAX_STACK_FRAMES 16384u
/* Bytes unpack may allocate for one frame: what SW_BUDGET_MAX_ELEMENTS
 * elements cost, with strings up to the raw frame (16 MiB) on top. A real
 * agent's frames: at most 464 KB. */
#define SW_BUDGET_MAX_ALLOC (64u << 20)
/* Nesting of stallwatch.proto is 3 (Batch > Incident > Stack). */
#define SW_BUDGET_MAX_DEPTH 8
/* A repeated field a newer .proto added without a limit here. */
#define SW_BUDGET_DEFAULT_REPEATED 64u

struct sw_budget_limit {
	const ProtobufCMessageDescriptor *msg;
	const char *field;
	uint32_t max; /* per message */
	/* frame names the store copies and the rules search one by one:
	 * they count against SW_BUDGET_MAX_STACK_FRAMES too */
	bool stack_frames;
};

/* The per-field limits, for tests, tools and docs. */
const struct sw_budget_limit *sw_budget__limits(size_t *n);

/* What a frame used, for tests and the measurement tool. */
struct sw_budget_use {
	size_t elements;
	size_t unknown;	       /* fields this schema does not know (skipped, counted) */
	size_t max_string;     /* longest string or bytes field */
	size_t stack_frames;   /* frame names of every stack of the frame */
	size_t alloc;	       /* bytes unpack allocated (sw_budget__unpack) */
	uint32_t max_count[32]; /* per sw_budget__limits() entry: most in one message */
	uint32_t max_default;  /* most of a repeated field without a limit entry */
};

/* Walks msg as a serialized Batch. SW_BAD_NONE, or SW_BAD_PROTOBUF,
 * SW_BAD_TOO_MANY, SW_BAD_STRING. use may be NULL; it is zeroed first. */
enum sw_bad_reason sw_budget__check(const uint8_t *msg, size_t len, struct sw_budget_use *use);

/* __check, then unpack with an allocator capped at max_alloc bytes
 * (SW_BAD_BUDGET beyond). NULL with *why set on refusal. Free with
 * stallwatch__v1__batch__free_unpacked(b, NULL). */
Stallwatch__V1__Batch *sw_budget__unpack(const uint8_t *msg, size_t len, size_t max_alloc,
					 struct sw_budget_use *use, enum sw_bad_reason *why);

#endif
