// SPDX-License-Identifier: Apache-2.0
/* The wire walk and the capped allocator of budget.h. */
#include "budget.h"
#include "diag.h"	  /* the agent's bounds of an incident's diagnosis */
#include "gil.h"	  /* ... of a GIL summary */
#include "hist_bucket.h" /* ... of a histogram */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * Per message, not per frame: 4096 incidents of 16 stacks each are fine
 * as far as this table goes (the element and byte budgets bound the
 * frame). Where the agent has a bound, the limit is twice it, so that a
 * newer agent that keeps a little more is not cut off; where the collector
 * already refuses more (sw_batch__validate: GIL threads and their stacks)
 * it is that bound. The hello batch lists every watched process, also
 * within SW_BUDGET_BATCH_ITEMS.
 */
static const struct sw_budget_limit limits[] = {
    {&stallwatch__v1__batch__descriptor, "processes", SW_BUDGET_BATCH_ITEMS},
    {&stallwatch__v1__batch__descriptor, "loops", SW_BUDGET_BATCH_ITEMS},
    {&stallwatch__v1__batch__descriptor, "incidents", SW_BUDGET_BATCH_ITEMS},
    {&stallwatch__v1__batch__descriptor, "memory", SW_BUDGET_BATCH_ITEMS},
    {&stallwatch__v1__batch__descriptor, "gil", SW_BUDGET_BATCH_ITEMS},
    /* one bucket per index, and there are SW_HIST_NBUCKETS of them */
    {&stallwatch__v1__loop_summary__descriptor, "buckets", SW_HIST_NBUCKETS},
    {&stallwatch__v1__incident__descriptor, "stacks", 2 * SW_DIAG_STACKS},
    {&stallwatch__v1__incident__descriptor, "top_frames", 2 * SW_DIAG_TOP},
    {&stallwatch__v1__incident__descriptor, "syscalls", 2 * SW_DIAG_SYSCALLS},
    {&stallwatch__v1__incident__descriptor, "gil_holder_stack", 2 * SW_GIL_STACK_FRAMES, true},
    {&stallwatch__v1__stack__descriptor, "frames", 2 * SW_DIAG_FRAMES, true},
    {&stallwatch__v1__gil_summary__descriptor, "threads", SW_GIL_MAX_THREADS},
    {&stallwatch__v1__gil_thread__descriptor, "stack", SW_GIL_STACK_FRAMES, true},
    /* common/health.h has 16 names; a newer agent may have more */
    {&stallwatch__v1__agent_health__descriptor, "counters", 256},
};
#define N_LIMITS (sizeof(limits) / sizeof(limits[0]))
_Static_assert(N_LIMITS <= sizeof(((struct sw_budget_use *)0)->max_count) / sizeof(uint32_t),
	       "sw_budget_use.max_count holds one slot per limit");

/* Most fields of one message in stallwatch.proto: ProcessInfo and Incident
 * are below 40. A message with more is walked with the default limits. */
#define MAX_FIELDS 64

/* limits[i].field as an index into its descriptor's fields, resolved once */
static int limit_idx[N_LIMITS];
static pthread_once_t limits_once = PTHREAD_ONCE_INIT;

static void resolve_limits(void)
{
	for (size_t i = 0; i < N_LIMITS; i++) {
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(limits[i].msg, limits[i].field);

		/* a renamed field: its limit is lost, the default applies; the
		 * unit test test_collector_budget says which */
		limit_idx[i] = f ? (int)(f - limits[i].msg->fields) : -1;
	}
}

const struct sw_budget_limit *sw_budget__limits(size_t *n)
{
	*n = N_LIMITS;
	return limits;
}

struct walk {
	struct sw_budget_use *use;
};

/* A varint of at most 10 bytes ending before end; false when truncated or
 * longer (protobuf-c refuses both too). */
static bool get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t r = 0;

	for (unsigned i = 0; i < 10; i++) {
		if (p >= end)
			return false;
		r |= (uint64_t)(*p & 0x7f) << (7 * i);
		if (!(*p++ & 0x80)) {
			*v = r;
			*pp = p;
			return true;
		}
	}
	return false;
}

/* The wire type the schema gives a field's type (not packed). */
static unsigned wire_type_of(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 1;
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return 5;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return 2;
	default:
		return 0;
	}
}

/* Elements in a packed run of scalars: each varint ends with a byte
 * without its top bit; fixed ones must fill the run exactly. */
static bool packed_count(unsigned wt, const uint8_t *p, size_t len, uint64_t *n)
{
	if (wt == 1 || wt == 5) {
		size_t sz = wt == 1 ? 8 : 4;

		if (len % sz)
			return false;
		*n = len / sz;
		return true;
	}
	*n = 0;
	for (size_t i = 0; i < len; i++)
		if (!(p[i] & 0x80))
			(*n)++;
	return len == 0 || !(p[len - 1] & 0x80);
}

static enum sw_bad_reason walk_msg(struct walk *w, const ProtobufCMessageDescriptor *d,
				   const uint8_t *p, const uint8_t *end, unsigned depth)
{
	struct sw_budget_use *u = w->use;
	uint32_t count[MAX_FIELDS] = {0};
	uint32_t max[MAX_FIELDS];
	int slot[MAX_FIELDS];
	bool frames[MAX_FIELDS] = {false};
	enum sw_bad_reason r;

	if (depth > SW_BUDGET_MAX_DEPTH)
		return SW_BAD_PROTOBUF;
	for (unsigned i = 0; i < MAX_FIELDS; i++) {
		max[i] = SW_BUDGET_DEFAULT_REPEATED;
		slot[i] = -1;
	}
	for (size_t i = 0; i < N_LIMITS; i++) {
		if (limits[i].msg == d && limit_idx[i] >= 0 && limit_idx[i] < MAX_FIELDS) {
			max[limit_idx[i]] = limits[i].max;
			slot[limit_idx[i]] = (int)i;
			frames[limit_idx[i]] = limits[i].stack_frames;
		}
	}

	while (p < end) {
		const ProtobufCFieldDescriptor *f;
		const uint8_t *val = NULL;
		uint64_t tag, len = 0, n = 1;
		unsigned wt, idx;

		if (!get_varint(&p, end, &tag) || tag >> 3 == 0 || tag >> 3 > 0x1fffffff)
			return SW_BAD_PROTOBUF;
		wt = tag & 7;
		switch (wt) {
		case 0:
			if (!get_varint(&p, end, &len))
				return SW_BAD_PROTOBUF;
			break;
		case 1:
		case 5:
			len = wt == 1 ? 8 : 4;
			if ((size_t)(end - p) < len)
				return SW_BAD_PROTOBUF;
			p += len;
			break;
		case 2:
			if (!get_varint(&p, end, &len) || len > (size_t)(end - p))
				return SW_BAD_PROTOBUF;
			val = p;
			p += len;
			break;
		default: /* groups (3, 4) are proto2's, 6 and 7 no type at all */
			return SW_BAD_PROTOBUF;
		}

		f = protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
		if (!f) {
			/* a newer agent's field: protobuf-c keeps a copy of each
			 * (ProtobufCMessageUnknownField), so it costs like one */
			u->unknown++;
			if (++u->elements > SW_BUDGET_MAX_ELEMENTS)
				return SW_BAD_TOO_MANY;
			if (wt == 2 && len > SW_BUDGET_MAX_STRING)
				return SW_BAD_STRING;
			continue;
		}
		idx = (unsigned)(f - d->fields);
		if (wt != wire_type_of(f->type)) {
			/* packed repeated scalars are the one other form */
			if (!(wt == 2 && f->label == PROTOBUF_C_LABEL_REPEATED &&
			      wire_type_of(f->type) != 2 && packed_count(wire_type_of(f->type), val, len, &n)))
				return SW_BAD_PROTOBUF;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			uint32_t lim = idx < MAX_FIELDS ? max[idx] : SW_BUDGET_DEFAULT_REPEATED;
			uint32_t c;

			if (idx < MAX_FIELDS) {
				if (n > lim || count[idx] + n > lim)
					return SW_BAD_TOO_MANY;
				c = count[idx] += (uint32_t)n;
				if (frames[idx] && (u->stack_frames += n) > SW_BUDGET_MAX_STACK_FRAMES)
					return SW_BAD_TOO_MANY;
				if (slot[idx] >= 0) {
					if (c > u->max_count[slot[idx]])
						u->max_count[slot[idx]] = c;
				} else if (c > u->max_default) {
					u->max_default = c;
				}
			} else if (n > lim) {
				return SW_BAD_TOO_MANY;
			}
		} else if (idx < MAX_FIELDS && count[idx]++) {
			/* protobuf merges a singular message given twice, and
			 * protobuf-c merges the repeated fields inside by copying
			 * them: quadratic in the number of copies. No encoder
			 * sends one twice. */
			if (f->type == PROTOBUF_C_TYPE_MESSAGE)
				return SW_BAD_TOO_MANY;
			/* A scalar or string again (the last one wins): protobuf-c
			 * holds a 32-byte scan slot for each until the message is
			 * built, 256 MB for 16 MiB of "08 01". An element from the
			 * second on: an encoder sends each once, a splice (bench
			 * ingest_load's seq prefix) twice. */
			if (++u->elements > SW_BUDGET_MAX_ELEMENTS)
				return SW_BAD_TOO_MANY;
		}

		if (wt == 0 || wt == 1 || wt == 5)
			continue; /* a scalar: in its message's struct */
		if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES) {
			if (len > SW_BUDGET_MAX_STRING)
				return SW_BAD_STRING;
			if (len > u->max_string)
				u->max_string = len;
		}
		if ((u->elements += n) > SW_BUDGET_MAX_ELEMENTS)
			return SW_BAD_TOO_MANY;
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			r = walk_msg(w, f->descriptor, val, val + len, depth + 1);
			if (r != SW_BAD_NONE)
				return r;
		}
	}
	return SW_BAD_NONE;
}

enum sw_bad_reason sw_budget__check(const uint8_t *msg, size_t len, struct sw_budget_use *use)
{
	struct sw_budget_use scratch;
	struct walk w = {.use = use ? use : &scratch};

	pthread_once(&limits_once, resolve_limits);
	memset(w.use, 0, sizeof(*w.use));
	return walk_msg(&w, &stallwatch__v1__batch__descriptor, msg, msg + len, 0);
}

struct capped {
	size_t used, cap;
	bool over;
};

static void *capped_alloc(void *ctx, size_t size)
{
	struct capped *c = ctx;

	if (size > c->cap - c->used) {
		c->over = true;
		return NULL;
	}
	c->used += size;
	return malloc(size);
}

static void capped_free(void *ctx, void *p)
{
	(void)ctx;
	free(p);
}

Stallwatch__V1__Batch *sw_budget__unpack(const uint8_t *msg, size_t len, size_t max_alloc,
					 struct sw_budget_use *use, enum sw_bad_reason *why)
{
	struct sw_budget_use scratch;
	struct capped c = {.cap = max_alloc};
	ProtobufCAllocator a = {.alloc = capped_alloc, .free = capped_free, .allocator_data = &c};
	Stallwatch__V1__Batch *b;

	if (!use)
		use = &scratch;
	*why = sw_budget__check(msg, len, use);
	if (*why != SW_BAD_NONE)
		return NULL;
	/* what it allocates is plain malloc: freed with the default allocator */
	b = stallwatch__v1__batch__unpack(&a, len, msg);
	use->alloc = c.used;
	if (!b)
		*why = c.over ? SW_BAD_BUDGET : SW_BAD_PROTOBUF;
	return b;
}
