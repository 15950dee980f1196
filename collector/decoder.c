// SPDX-License-Identifier: Apache-2.0
#include "decoder.h"
#include "budget.h" /* what a frame may cost before it is unpacked */
#include "frame.h"
#include "gil.h"       /* the bounds a GilSummary must keep */
#include "histogram.h" /* the scheme sw_batch__validate checks against */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Most batches are a few KB: start small, grow to one frame at most, and
 * give the memory back once a big frame is through, so that 256 idle
 * agents do not pin 256 frame-sized buffers. */
#define DEC_INITIAL (64u * 1024)
#define DEC_MAX ((size_t)SW_FRAME_HDR_LEN + SW_FRAME_MAX_PAYLOAD)

static const char *const bad_names[SW_BAD__COUNT] = {
    [SW_BAD_NONE] = "none",
    [SW_BAD_MAGIC] = "bad_magic",
    [SW_BAD_HEADER] = "bad_header",
    [SW_BAD_OVERSIZE] = "oversize",
    [SW_BAD_ZLIB] = "bad_zlib",
    [SW_BAD_PROTOBUF] = "bad_protobuf",
    [SW_BAD_HIST_SCHEMA] = "bad_hist_schema",
    [SW_BAD_BUCKET] = "bad_bucket",
    [SW_BAD_NOMEM] = "no_memory",
    [SW_BAD_GIL] = "bad_gil",
    [SW_BAD_TOO_MANY] = "too_many_elements",
    [SW_BAD_STRING] = "string_too_long",
    [SW_BAD_BUDGET] = "over_budget",
};

const char *sw_bad_reason__name(enum sw_bad_reason r)
{
	return (unsigned)r < SW_BAD__COUNT ? bad_names[r] : "unknown";
}

/*
 * The bounds proto/ and common/gil.h promise: at most SW_GIL_MAX_THREADS
 * threads of SW_GIL_STACK_FRAMES frames, no more held samples than samples.
 * An agent that breaks them is not one this collector understands: its
 * counters would be fiction, so the stream is refused like a wrong
 * histogram scheme. Strings are made valid UTF-8 where they are stored.
 */
static bool gil_valid(const Stallwatch__V1__GilSummary *g)
{
	if (g->n_threads > SW_GIL_MAX_THREADS || g->held_samples > g->samples)
		return false;
	for (size_t i = 0; i < g->n_threads; i++)
		if (g->threads[i]->n_stack > SW_GIL_STACK_FRAMES)
			return false;
	return true;
}

enum sw_bad_reason sw_batch__validate(const Stallwatch__V1__Batch *b)
{
	for (size_t i = 0; i < b->n_loops; i++) {
		const Stallwatch__V1__LoopSummary *ls = b->loops[i];

		/* bucket i of another scheme is another duration: merging it
		 * would corrupt the series silently */
		if (ls->hist_schema != SW_HIST_SCHEMA)
			return SW_BAD_HIST_SCHEMA;
		for (size_t j = 0; j < ls->n_buckets; j++)
			if (ls->buckets[j]->index >= SW_HIST_NBUCKETS)
				return SW_BAD_BUCKET;
	}
	for (size_t i = 0; i < b->n_gil; i++)
		if (!gil_valid(b->gil[i]))
			return SW_BAD_GIL;
	return SW_BAD_NONE;
}

struct sw_decoder {
	uint8_t *buf;
	size_t len; /* bytes held, from the start of the current frame */
	size_t cap;
};

struct sw_decoder *sw_decoder__new(void) { return calloc(1, sizeof(struct sw_decoder)); }

void sw_decoder__free(struct sw_decoder *d)
{
	if (!d)
		return;
	free(d->buf);
	free(d);
}

size_t sw_decoder__pending(const struct sw_decoder *d) { return d->len; }

static uint32_t hdr_len(const uint8_t *p)
{
	return (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
}

uint8_t *sw_decoder__space(struct sw_decoder *d, size_t *room)
{
	size_t need = DEC_INITIAL;
	uint8_t *nb;

	/* a header held here was validated by __commit: its length is bounded */
	if (d->len >= SW_FRAME_HDR_LEN) {
		size_t frame = SW_FRAME_HDR_LEN + (size_t)hdr_len(d->buf);

		if (frame > need)
			need = frame;
	}
	if (need > DEC_MAX)
		need = DEC_MAX;
	if (d->cap < need) {
		nb = realloc(d->buf, need);
		if (!nb)
			return NULL;
		d->buf = nb;
		d->cap = need;
	}
	*room = d->cap - d->len;
	return d->buf + d->len;
}

/*
 * protobuf-c allocates every submessage on its own: a LoopSummary's ~180
 * histogram buckets (what a loop ticking every 5 ms sends each second) are
 * ~180 mallocs, and free_unpacked walks them all again. That was a quarter
 * of the collector's ingest CPU (perf, docs/PERFORMANCE.md "Collector
 * ingest"). Nothing outlives the callback (the store copies what it keeps),
 * so a batch is unpacked into a bump arena that is reset after it. One per
 * thread: decoders run on the ingest thread, tests may run others.
 * Sanitizer builds keep malloc, so that ASan still catches a store that
 * holds on to a batch's memory.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SW_DEC_ARENA 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SW_DEC_ARENA 0
#endif
#endif
#ifndef SW_DEC_ARENA
#define SW_DEC_ARENA 1
#endif

#define ARENA_CHUNK (64u * 1024) /* a typical batch unpacks into ~20 KB */
#define ARENA_KEEP (1u << 20)	 /* kept between batches, at most */

struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used;
	max_align_t data[];
};

static __thread struct arena_chunk *arena;
static __thread size_t arena_hint = ARENA_CHUNK;
/* the decode budget's cap on what one unpack allocates (budget.h) */
static __thread size_t arena_used;
static __thread bool arena_over;

static void *arena_alloc(void *unused, size_t size)
{
	struct arena_chunk *c = arena, *n;
	const size_t align = _Alignof(max_align_t);
	size_t csize;
	void *p;

	(void)unused;
	if (size > SIZE_MAX / 2)
		return NULL;
	size = (size + align - 1) & ~(align - 1);
	if (arena_used + size > SW_BUDGET_MAX_ALLOC) {
		arena_over = true;
		return NULL;
	}
	arena_used += size;
	if (!c || c->size - c->used < size) {
		csize = size > arena_hint ? size : arena_hint;
		n = malloc(sizeof(*n) + csize);
		if (!n)
			return NULL;
		n->next = c;
		n->size = csize;
		n->used = 0;
		arena = c = n;
	}
	p = (char *)c->data + c->used;
	c->used += size;
	return p;
}

static void arena_free(void *unused, void *p)
{
	(void)unused;
	(void)p; /* all at once, in arena_reset() */
}

static void arena_reset(void)
{
	struct arena_chunk *c = arena, *next;
	size_t total = 0;

	arena_used = 0;
	arena_over = false;
	if (c && !c->next && c->size <= ARENA_KEEP) {
		c->used = 0;
		return;
	}
	/* several chunks: next time one chunk of their size, up to the cap */
	for (; c; c = next) {
		next = c->next;
		total += c->size;
		free(c);
	}
	arena = NULL;
	arena_hint = total < ARENA_CHUNK ? ARENA_CHUNK : total > ARENA_KEEP ? ARENA_KEEP : total;
}

static ProtobufCAllocator arena_allocator = {
    .alloc = arena_alloc,
    .free = arena_free,
};

/* The decode budget's walk first (budget.h: nothing is allocated for a
 * frame it refuses), then the unpack, capped like sw_budget__unpack's. */
static Stallwatch__V1__Batch *batch_unpack(const uint8_t *msg, size_t len, enum sw_bad_reason *why)
{
	Stallwatch__V1__Batch *b;

	if (!SW_DEC_ARENA)
		return sw_budget__unpack(msg, len, SW_BUDGET_MAX_ALLOC, NULL, why);
	*why = sw_budget__check(msg, len, NULL);
	if (*why != SW_BAD_NONE)
		return NULL;
	b = stallwatch__v1__batch__unpack(&arena_allocator, len, msg);
	if (!b)
		*why = arena_over ? SW_BAD_BUDGET : SW_BAD_PROTOBUF;
	return b;
}

static void batch_free(Stallwatch__V1__Batch *b)
{
	if (SW_DEC_ARENA)
		arena_reset();
	else if (b)
		stallwatch__v1__batch__free_unpacked(b, NULL);
}

static enum sw_bad_reason decode_one(const struct sw_frame_hdr *h, const uint8_t *payload,
				     sw_batch_fn fn, void *ctx)
{
	Stallwatch__V1__Batch *b;
	enum sw_bad_reason r;
	const uint8_t *msg;
	size_t mlen;
	bool owned;
	int rc;

	rc = sw_frame_payload(h, payload, &msg, &mlen, &owned);
	if (rc == -EMSGSIZE)
		return SW_BAD_OVERSIZE;
	if (rc == -ENOMEM)
		return SW_BAD_NOMEM;
	if (rc)
		return SW_BAD_ZLIB;
	b = batch_unpack(msg, mlen, &r);
	if (owned)
		free((void *)msg);
	if (!b) {
		batch_free(NULL); /* what it allocated before it gave up */
		return r;
	}
	r = sw_batch__validate(b);
	if (r == SW_BAD_NONE && fn)
		fn(ctx, b);
	batch_free(b);
	return r;
}

enum sw_bad_reason sw_decoder__commit(struct sw_decoder *d, size_t n, sw_batch_fn fn, void *ctx,
				      uint64_t *frames)
{
	enum sw_bad_reason r = SW_BAD_NONE;
	struct sw_frame_hdr h;
	size_t off = 0, avail;
	uint8_t *nb;
	int rc;

	d->len += n;
	for (;;) {
		const uint8_t *p = d->buf + off;

		avail = d->len - off;
		/* two bytes tell a stray client (HTTP, TLS) from an agent: close
		 * it before it makes us wait for a whole header */
		if (avail >= 1 && p[0] != 'S')
			return SW_BAD_MAGIC;
		if (avail >= 2 && p[1] != 'W')
			return SW_BAD_MAGIC;
		if (avail < SW_FRAME_HDR_LEN)
			break;
		rc = sw_frame_parse_hdr(p, &h);
		if (rc == -EMSGSIZE)
			return SW_BAD_OVERSIZE;
		if (rc)
			return SW_BAD_HEADER;
		if (avail - SW_FRAME_HDR_LEN < h.len)
			break;
		r = decode_one(&h, p + SW_FRAME_HDR_LEN, fn, ctx);
		if (r != SW_BAD_NONE)
			return r;
		if (frames)
			(*frames)++;
		off += SW_FRAME_HDR_LEN + h.len;
	}
	if (off) {
		memmove(d->buf, d->buf + off, d->len - off);
		d->len -= off;
	}
	if (d->cap > DEC_INITIAL && d->len <= DEC_INITIAL &&
	    (d->len < SW_FRAME_HDR_LEN ||
	     SW_FRAME_HDR_LEN + (size_t)hdr_len(d->buf) <= DEC_INITIAL)) {
		nb = realloc(d->buf, DEC_INITIAL);
		if (nb) { /* keeping the big one is fine too */
			d->buf = nb;
			d->cap = DEC_INITIAL;
		}
	}
	return r;
}

enum sw_bad_reason sw_decoder__feed(struct sw_decoder *d, const uint8_t *buf, size_t len,
				    sw_batch_fn fn, void *ctx, uint64_t *frames)
{
	enum sw_bad_reason r;
	size_t room, n;
	uint8_t *dst;

	while (len) {
		dst = sw_decoder__space(d, &room);
		if (!dst)
			return SW_BAD_NOMEM;
		n = len < room ? len : room;
		memcpy(dst, buf, n);
		r = sw_decoder__commit(d, n, fn, ctx, frames);
		if (r != SW_BAD_NONE)
			return r;
		buf += n;
		len -= n;
	}
	return SW_BAD_NONE;
}
