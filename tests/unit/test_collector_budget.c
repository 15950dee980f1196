// SPDX-License-Identifier: Apache-2.0
/*
 * The decode budget (collector/budget.h): every limit refused with its
 * reason and accepted at its value, a real agent's frames accepted, and the
 * wire walk's refusals (truncated varints, lengths over the parent, wire
 * types the schema does not have), unknown fields skipped but counted.
 * Messages are written here byte by byte, not by protobuf-c, so that the
 * walk is checked against the wire format rather than against itself.
 */
#include "budget.h"
#include "decoder.h"
#include "frame.h"
#include "sink.h" /* the agent's SW_BATCH_MAX_ITEMS */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- a growable buffer and the wire format ---- */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct wbuf *b, const void *src, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		cr_assert_not_null(b->p);
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void put_varint(struct wbuf *b, uint64_t v)
{
	uint8_t c;

	do {
		c = (v & 0x7f) | (v > 0x7f ? 0x80 : 0);
		put(b, &c, 1);
		v >>= 7;
	} while (v);
}

static void put_tag(struct wbuf *b, unsigned field, unsigned wt) { put_varint(b, field << 3 | wt); }

/* field (wire type 2) holding inner's bytes */
static void put_ld(struct wbuf *b, unsigned field, const struct wbuf *inner)
{
	put_tag(b, field, 2);
	put_varint(b, inner->len);
	put(b, inner->p, inner->len);
}

static void put_str(struct wbuf *b, unsigned field, size_t len, char c)
{
	char *s = malloc(len + 1);

	cr_assert_not_null(s);
	memset(s, c, len);
	put_tag(b, field, 2);
	put_varint(b, len);
	put(b, s, len);
	free(s);
}

static enum sw_bad_reason check(const struct wbuf *b, struct sw_budget_use *u)
{
	return sw_budget__check(b->p ? b->p : (const uint8_t *)"", b->len, u);
}

/* The field path from Batch to descriptor d (numbers, outermost first);
 * depth-first over the schema, which has no cycles. */
static int path_to(const ProtobufCMessageDescriptor *from, const ProtobufCMessageDescriptor *d,
		   unsigned *path, int depth)
{
	if (from == d)
		return depth;
	for (unsigned i = 0; i < from->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &from->fields[i];
		int r;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE || depth >= 6)
			continue;
		path[depth] = f->id;
		r = path_to(f->descriptor, d, path, depth + 1);
		if (r >= 0)
			return r;
	}
	return -1;
}

/* A Batch with n empty elements of limit l's field, in one message of its
 * kind reached from Batch by one element per level. */
static void build_n(const struct sw_budget_limit *l, uint32_t n, struct wbuf *out)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(l->msg, l->field);
	unsigned path[8];
	int depth = path_to(&stallwatch__v1__batch__descriptor, l->msg, path, 0);
	struct wbuf cur = {0}, next;

	cr_assert_not_null(f, "%s.%s is not in the schema", l->msg->name, l->field);
	cr_assert_geq(depth, 0, "%s is not reached from Batch", l->msg->name);
	for (uint32_t i = 0; i < n; i++) {
		put_tag(&cur, f->id, 2); /* an empty string or submessage */
		put_varint(&cur, 0);
	}
	for (int k = depth - 1; k >= 0; k--) {
		next = (struct wbuf){0};
		put_ld(&next, path[k], &cur);
		free(cur.p);
		cur = next;
	}
	*out = cur;
}

/* ---- the limits ---- */

Test(budget, every_limit_refused_above_and_accepted_at_its_value)
{
	size_t n;
	const struct sw_budget_limit *l = sw_budget__limits(&n);

	cr_assert_gt(n, 10);
	for (size_t i = 0; i < n; i++) {
		struct sw_budget_use u;
		struct wbuf b;

		build_n(&l[i], l[i].max, &b);
		cr_expect_eq(check(&b, &u), SW_BAD_NONE, "%s.%s: %u refused", l[i].msg->short_name,
			     l[i].field, l[i].max);
		cr_expect_eq(u.max_count[i], l[i].max, "%s.%s counted %u", l[i].msg->short_name,
			     l[i].field, u.max_count[i]);
		free(b.p);
		build_n(&l[i], l[i].max + 1, &b);
		cr_expect_eq(check(&b, &u), SW_BAD_TOO_MANY, "%s.%s: %u accepted",
			     l[i].msg->short_name, l[i].field, l[i].max + 1);
		free(b.p);
	}
}

/* A repeated field reachable from Batch without an entry would get the
 * default silently: a field added to the .proto needs its limit here. */
static void all_limited(const ProtobufCMessageDescriptor *d, const struct sw_budget_limit *l,
			size_t n, int depth)
{
	for (unsigned i = 0; i < d->n_fields && depth < 6; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		bool found = false;

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			for (size_t k = 0; k < n; k++)
				found |= l[k].msg == d && !strcmp(l[k].field, f->name);
			cr_expect(found, "%s.%s is repeated and has no limit in collector/budget.c",
				  d->short_name, f->name);
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE)
			all_limited(f->descriptor, l, n, depth + 1);
	}
}

Test(budget, every_repeated_field_has_a_limit)
{
	size_t n;
	const struct sw_budget_limit *l = sw_budget__limits(&n);

	all_limited(&stallwatch__v1__batch__descriptor, l, n, 0);
}

Test(budget, limits_hold_to_the_agents_bounds)
{
	/* the agent counts items over its bound lost; the collector must take
	 * every batch the agent can build */
	cr_assert_eq(SW_BUDGET_BATCH_ITEMS, SW_BATCH_MAX_ITEMS);
	cr_assert_geq(SW_BUDGET_MAX_STRING, 2 * 4096); /* PATH_MAX, the exe */
}

Test(budget, singular_message_twice_refused)
{
	struct wbuf b = {0}, hello = {0};

	put_str(&hello, 1, 5, 'h');
	put_ld(&b, 2, &hello);
	cr_assert_eq(check(&b, NULL), SW_BAD_NONE);
	put_ld(&b, 2, &hello);
	cr_assert_eq(check(&b, NULL), SW_BAD_TOO_MANY);
	free(b.p);
	free(hello.p);
}

Test(budget, singular_scalar_repeated_counts_as_elements)
{
	/* 16 MiB of "08 01" (Batch.seq again and again): 256 MB of protobuf-c
	 * scan slots before the last one wins */
	struct wbuf b = {0};
	struct sw_budget_use u;

	for (int i = 0; i < 2; i++) {
		put_tag(&b, 1, 0);
		put_varint(&b, 5);
	}
	cr_assert_eq(check(&b, &u), SW_BAD_NONE); /* a spliced seq: twice is fine */
	cr_assert_eq(u.elements, 1);
	for (uint32_t i = 1; i < SW_BUDGET_MAX_ELEMENTS; i++) {
		put_tag(&b, 1, 0);
		put_varint(&b, 5);
	}
	cr_assert_eq(check(&b, &u), SW_BAD_NONE);
	put_tag(&b, 1, 0);
	put_varint(&b, 5);
	cr_assert_eq(check(&b, NULL), SW_BAD_TOO_MANY);
	free(b.p);
}

Test(budget, string_limit)
{
	struct wbuf b = {0}, hello = {0};
	struct sw_budget_use u;

	put_str(&hello, 1, SW_BUDGET_MAX_STRING, 'h');
	put_ld(&b, 2, &hello);
	cr_assert_eq(check(&b, &u), SW_BAD_NONE);
	cr_assert_eq(u.max_string, SW_BUDGET_MAX_STRING);
	free(b.p);
	free(hello.p);
	b = hello = (struct wbuf){0};
	put_str(&hello, 1, SW_BUDGET_MAX_STRING + 1, 'h');
	put_ld(&b, 2, &hello);
	cr_assert_eq(check(&b, NULL), SW_BAD_STRING);
	free(b.p);
	/* an unknown length-delimited field is held to it too */
	b = (struct wbuf){0};
	put_str(&b, 99, SW_BUDGET_MAX_STRING + 1, 'u');
	cr_assert_eq(check(&b, NULL), SW_BAD_STRING);
	free(b.p);
	free(hello.p);
}

Test(budget, elements_limit_counts_unknown_fields)
{
	struct wbuf b = {0};
	struct sw_budget_use u;

	for (uint32_t i = 0; i < SW_BUDGET_MAX_ELEMENTS; i++) {
		put_tag(&b, 100, 0);
		put_varint(&b, 1);
	}
	cr_assert_eq(check(&b, &u), SW_BAD_NONE);
	cr_assert_eq(u.unknown, SW_BUDGET_MAX_ELEMENTS);
	cr_assert_eq(u.elements, SW_BUDGET_MAX_ELEMENTS);
	put_tag(&b, 100, 0);
	put_varint(&b, 1);
	cr_assert_eq(check(&b, NULL), SW_BAD_TOO_MANY);
	free(b.p);
}

Test(budget, unknown_fields_skipped_at_every_level)
{
	struct wbuf b = {0}, loop = {0}, ubytes = {0};
	struct sw_budget_use u;
	Stallwatch__V1__Batch *bt;
	enum sw_bad_reason why;

	/* a newer agent's fields of each wire type, inside a loop and beside it */
	put_tag(&loop, 1, 0);
	put_varint(&loop, 42);
	put_tag(&loop, 90, 1);
	put(&loop, "12345678", 8);
	put_tag(&loop, 91, 5);
	put(&loop, "1234", 4);
	put_str(&ubytes, 1, 3, 'x');
	put_ld(&loop, 92, &ubytes);
	put_tag(&loop, 13, 0);
	put_varint(&loop, 1);
	put_ld(&b, 4, &loop);
	put_tag(&b, 93, 0);
	put_varint(&b, 7);
	cr_assert_eq(check(&b, &u), SW_BAD_NONE);
	cr_assert_eq(u.unknown, 4);
	cr_assert_eq(u.elements, 5); /* the loop and 4 unknown */
	bt = sw_budget__unpack(b.p, b.len, SW_BUDGET_MAX_ALLOC, &u, &why);
	cr_assert_not_null(bt, "%s", sw_bad_reason__name(why));
	cr_assert_eq(bt->n_loops, 1);
	cr_assert_eq(bt->loops[0]->pid, 42);
	cr_assert_gt(u.alloc, 0);
	stallwatch__v1__batch__free_unpacked(bt, NULL);
	free(b.p);
	free(loop.p);
	free(ubytes.p);
}

Test(budget, stack_frames_of_a_frame_limited)
{
	/* SW_BUDGET_MAX_STACK_FRAMES names over incidents of 2 stacks of 128 */
	uint32_t per_inc = 2 * 128, n = SW_BUDGET_MAX_STACK_FRAMES / per_inc;
	struct wbuf stack = {0}, inc = {0}, b = {0};
	struct sw_budget_use u;

	cr_assert_eq(SW_BUDGET_MAX_STACK_FRAMES % per_inc, 0);
	for (int i = 0; i < 128; i++)
		put_str(&stack, 1, 4, 'f');
	put_ld(&inc, 19, &stack);
	put_ld(&inc, 19, &stack);
	for (uint32_t i = 0; i < n; i++)
		put_ld(&b, 5, &inc);
	cr_assert_eq(check(&b, &u), SW_BAD_NONE);
	cr_assert_eq(u.stack_frames, SW_BUDGET_MAX_STACK_FRAMES);
	/* one more name, in a GIL holder's stack */
	{
		struct wbuf inc2 = {0};

		put_str(&inc2, 32, 4, 'g');
		put_ld(&b, 5, &inc2);
		free(inc2.p);
	}
	cr_assert_eq(check(&b, NULL), SW_BAD_TOO_MANY);
	free(stack.p);
	free(inc.p);
	free(b.p);
}

/* ---- the wire walk ---- */

static enum sw_bad_reason check_bytes(const char *bytes, size_t n)
{
	return sw_budget__check((const uint8_t *)bytes, n, NULL);
}

Test(budget, truncated_varints)
{
	cr_expect_eq(check_bytes("\x08", 1), SW_BAD_PROTOBUF);		/* seq, no value */
	cr_expect_eq(check_bytes("\x08\x80", 2), SW_BAD_PROTOBUF);	/* value cut */
	cr_expect_eq(check_bytes("\x80", 1), SW_BAD_PROTOBUF);		/* tag cut */
	cr_expect_eq(check_bytes("\x22\x80", 2), SW_BAD_PROTOBUF);	/* length cut */
	/* 11 bytes: longer than any 64-bit varint */
	cr_expect_eq(check_bytes("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12),
		     SW_BAD_PROTOBUF);
	cr_expect_eq(check_bytes("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11), SW_BAD_NONE);
	cr_expect_eq(check_bytes("", 0), SW_BAD_NONE); /* an empty Batch is a Batch */
}

Test(budget, nested_length_over_its_parent)
{
	/* Batch.incidents of 4 bytes whose Incident.thread claims 10: the
	 * bytes are there in the buffer, but past the parent's end */
	const char bad[] = "\x2a\x04\x1a\x0a"
			   "abcdefghij";
	const char good[] = "\x2a\x0c\x1a\x0a"
			    "abcdefghij";

	cr_expect_eq(check_bytes(bad, sizeof(bad) - 1), SW_BAD_PROTOBUF);
	cr_expect_eq(check_bytes(good, sizeof(good) - 1), SW_BAD_NONE);
	/* a top-level length past the end */
	cr_expect_eq(check_bytes("\x2a\x05\x08\x01", 4), SW_BAD_PROTOBUF);
	/* a fixed64 cut */
	cr_expect_eq(check_bytes("\x91\x06\x01\x02", 4), SW_BAD_PROTOBUF);
}

Test(budget, wire_types_the_schema_does_not_have)
{
	cr_expect_eq(check_bytes("\x0a\x00", 2), SW_BAD_PROTOBUF); /* seq (uint64) as bytes */
	cr_expect_eq(check_bytes("\x20\x01", 2), SW_BAD_PROTOBUF); /* loops (message) as varint */
	cr_expect_eq(check_bytes("\x25\x01\x02\x03\x04", 5), SW_BAD_PROTOBUF); /* ... as fixed32 */
	cr_expect_eq(check_bytes("\x12\x03\x09\x00\x00", 5), SW_BAD_PROTOBUF); /* agent_id fixed64 */
	cr_expect_eq(check_bytes("\x0b", 1), SW_BAD_PROTOBUF);		   /* group start */
	cr_expect_eq(check_bytes("\x0c", 1), SW_BAD_PROTOBUF);		   /* group end */
	cr_expect_eq(check_bytes("\x0e\x00", 2), SW_BAD_PROTOBUF);	   /* wire type 6 */
	cr_expect_eq(check_bytes("\x00\x00", 2), SW_BAD_PROTOBUF);	   /* field 0 */
	/* MemoryGrowth.window_s is a double: fixed64 is right, varint is not */
	cr_expect_eq(check_bytes("\x42\x09\x21\x00\x00\x00\x00\x00\x00\xf0\x3f", 11), SW_BAD_NONE);
	cr_expect_eq(check_bytes("\x42\x02\x20\x01", 4), SW_BAD_PROTOBUF);
}

Test(budget, walk_accepts_what_protobuf_c_accepts)
{
	/* where the walk accepts, protobuf-c must too (the walk is no
	 * stricter than the wire format on good input) */
	const char good[] = "\x08\x05\x2a\x0c\x1a\x0a"
			    "abcdefghij";
	Stallwatch__V1__Batch *b =
	    stallwatch__v1__batch__unpack(NULL, sizeof(good) - 1, (const uint8_t *)good);

	cr_assert_not_null(b);
	cr_assert_eq(b->seq, 5);
	cr_assert_str_eq(b->incidents[0]->thread, "abcdefghij");
	stallwatch__v1__batch__free_unpacked(b, NULL);
}

/* ---- real frames, the allocator cap, the decoder ---- */

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;

	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(*len);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, *len, f), *len);
	fclose(f);
	return buf;
}

static int batches;

static void count_batch(void *ctx, const Stallwatch__V1__Batch *b)
{
	(void)ctx;
	(void)b;
	batches++;
}

/* Three frames a real agent sent while watching 12 Node processes and 2
 * Python ones (tests/root/record_agent_frames.py): the hello, the biggest
 * summary and the one with the most stack frames. */
#define REAL_FRAMES SW_FIXTURES "/frames/agent-14procs.swf"

Test(budget, a_real_agents_frames_accepted_within_the_budget)
{
	size_t len, off = 0, nlim;
	uint8_t *buf = slurp(REAL_FRAMES, &len);
	const struct sw_budget_limit *l = sw_budget__limits(&nlim);
	struct sw_decoder *d = sw_decoder__new();
	uint64_t frames = 0;
	int n = 0;

	while (off < len) {
		struct sw_frame_hdr h;
		struct sw_budget_use u;
		const uint8_t *msg;
		size_t mlen;
		bool owned;
		enum sw_bad_reason why;
		Stallwatch__V1__Batch *b;

		cr_assert_eq(sw_frame_parse_hdr(buf + off, &h), 0);
		cr_assert_eq(sw_frame_payload(&h, buf + off + SW_FRAME_HDR_LEN, &msg, &mlen, &owned), 0);
		b = sw_budget__unpack(msg, mlen, SW_BUDGET_MAX_ALLOC, &u, &why);
		cr_assert_not_null(b, "frame %d: %s", n, sw_bad_reason__name(why));
		/* what the real agent used is far from every limit */
		cr_expect_leq(u.elements * 4, SW_BUDGET_MAX_ELEMENTS);
		cr_expect_leq(u.stack_frames * 4, SW_BUDGET_MAX_STACK_FRAMES);
		cr_expect_leq(u.alloc * 16, SW_BUDGET_MAX_ALLOC);
		for (size_t i = 0; i < nlim; i++)
			cr_expect_leq(u.max_count[i], l[i].max);
		/* a cap below what it needs refuses it for the budget */
		stallwatch__v1__batch__free_unpacked(b, NULL);
		b = sw_budget__unpack(msg, mlen, u.alloc - 1, NULL, &why);
		cr_assert_null(b);
		cr_assert_eq(why, SW_BAD_BUDGET);
		if (owned)
			free((void *)msg);
		off += SW_FRAME_HDR_LEN + h.len;
		n++;
	}
	cr_assert_eq(n, 3);
	batches = 0;
	cr_assert_eq(sw_decoder__feed(d, buf, len, count_batch, NULL, &frames), SW_BAD_NONE);
	cr_assert_eq(frames, 3);
	cr_assert_eq(batches, 3);
	sw_decoder__free(d);
	free(buf);
}

/* 16 MiB of empty submessages of Batch field `field`, zlib-framed: the
 * amplification frame, 16 KB (zlib -9) to 70 KB (the agent's level 1) on the wire. */
static uint8_t *amplification(unsigned field, size_t *len)
{
	size_t raw_len = SW_FRAME_MAX_RAW;
	uint8_t *raw = malloc(raw_len), *out;

	cr_assert_not_null(raw);
	for (size_t i = 0; i < raw_len; i += 2) {
		raw[i] = (uint8_t)(field << 3 | 2);
		raw[i + 1] = 0;
	}
	cr_assert_eq(sw_frame_encode(raw, raw_len, true, &out, len), 0);
	cr_assert_lt(*len, 256 * 1024); /* Z_BEST_SPEED: ~70 KB */
	free(raw);
	return out;
}

Test(budget, amplification_frames_refused_by_the_decoder)
{
	unsigned fields[] = {3, 4, 5, 8, 9};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		struct sw_decoder *d = sw_decoder__new();
		uint64_t frames = 0;
		size_t len;
		uint8_t *f = amplification(fields[i], &len);

		batches = 0;
		cr_expect_eq(sw_decoder__feed(d, f, len, count_batch, NULL, &frames), SW_BAD_TOO_MANY,
			     "Batch field %u", fields[i]);
		cr_expect_eq(batches, 0);
		sw_decoder__free(d);
		free(f);
	}
}

Test(budget, reasons_named)
{
	cr_assert_str_eq(sw_bad_reason__name(SW_BAD_TOO_MANY), "too_many_elements");
	cr_assert_str_eq(sw_bad_reason__name(SW_BAD_STRING), "string_too_long");
	cr_assert_str_eq(sw_bad_reason__name(SW_BAD_BUDGET), "over_budget");
}
