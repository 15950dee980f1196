// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the collector's side of one agent connection, from bytes
 * to exported text. The stream is fed to the frame decoder in pieces (TCP
 * cuts a stream anywhere), each valid batch is folded into a small store the
 * way ingest.c's on_batch does, and the store is ticked and exported every
 * few batches, so a malformed but "valid" batch must also survive the
 * aggregation and every export (/metrics, /api/incidents, /api/gil).
 *
 * Input: byte 0 picks the cut points (0: one piece; n: pieces of 1..4n
 * bytes from a generator seeded by n), byte 1 how far the clock moves per
 * batch (in seconds, low 3 bits) and the incident query (high bits); the
 * rest is the stream. A decoder error closes the "connection" as ingest.c
 * does (agent down, decoder freed) and the rest of the input starts a new
 * one. Seeds: tests/fuzz/corpus/ (tests/fuzz/gen_corpus.c).
 */
#include "decoder.h"
#include "export.h"
#include "store.h"
#include "log.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small enough that eviction of series and incidents is reached within a
 * handful of batches. */
#define FZ_MAX_LOOPS 8
#define FZ_MAX_INCIDENTS 16
/* Tick and export after this many batches, and once at the end. */
#define FZ_EXPORT_EVERY 4
/* Series expire 10 s after going stale, so a few batches of clock steps
 * (up to 7 s each) reach the expiry path of sw_store__tick. */
#define FZ_EXPIRE_NS (10ull * 1000000000ull)

struct fz {
	struct sw_store *store;
	struct sw_ingest_stats stats;
	char agent[SW_NAME_LEN]; /* empty until the connection's first batch */
	uint64_t now, step;
	struct sw_incident_query q;
	unsigned batches;
};

static void fz_export(struct fz *f)
{
	struct sw_buf b = {0};
	char *json = NULL;
	size_t len = 0;

	sw_store__tick(f->store, f->now);
	sw_export__metrics(f->store, &f->stats, &b);
	sw_buf__free(&b);
	sw_export__incidents(f->store, &f->q, &json, &len);
	free(json);
	json = NULL;
	sw_export__gil(f->store, f->q.have_pid, f->q.pid, &json, &len);
	free(json);
}

/* ingest.c on_batch: the first batch of a connection names the agent */
static void fz_batch(void *ctx, const Stallwatch__V1__Batch *b)
{
	struct fz *f = ctx;

	f->now += f->step;
	if (!f->agent[0]) {
		const char *id = "127.0.0.1:40000"; /* the peer address */

		if (b->hello && b->hello->agent_id && b->hello->agent_id[0])
			id = b->hello->agent_id;
		else if (b->hello && b->hello->hostname && b->hello->hostname[0])
			id = b->hello->hostname;
		if (sw_store__agent_up(f->store, id, b->hello, f->now))
			return;
		snprintf(f->agent, sizeof(f->agent), "%s", id); /* as ingest.c */
	}
	sw_store__apply(f->store, f->agent, b, f->now);
	if (++f->batches % FZ_EXPORT_EVERY == 0)
		fz_export(f);
}

static void fz_close(struct fz *f)
{
	if (f->agent[0])
		sw_store__agent_down(f->store, f->agent, f->now);
	f->agent[0] = '\0';
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	sw_log_level = -1; /* a warning per bad batch would drown libFuzzer's output */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sw_store_opts opts = {
	    .max_loops = FZ_MAX_LOOPS,
	    .max_incidents = FZ_MAX_INCIDENTS,
	    .expire_ns = FZ_EXPIRE_NS,
	};
	struct fz f = {0};
	struct sw_decoder *d;
	uint32_t rng;
	uint8_t cut;

	if (size < 2)
		return 0;
	cut = data[0];
	f.step = (uint64_t)(data[1] & 7) * 1000000000ull;
	f.q.limit = (data[1] >> 3) & 3;
	f.q.have_pid = data[1] & 0x20;
	f.q.pid = data[1] >> 6;
	data += 2;
	size -= 2;
	rng = 0x9e3779b9u ^ cut;
	f.now = 1000ull * 1000000000ull;

	f.store = sw_store__new(&opts);
	d = sw_decoder__new();
	if (!f.store || !d)
		abort(); /* not a finding: the harness cannot run */

	while (size > 0) {
		size_t n = size;
		uint64_t frames = 0;
		enum sw_bad_reason r;

		if (cut) {
			/* xorshift32: cheap, and the same input cuts the same way */
			rng ^= rng << 13;
			rng ^= rng >> 17;
			rng ^= rng << 5;
			n = 1 + rng % (4u * cut);
			if (n > size)
				n = size;
		}
		r = sw_decoder__feed(d, data, n, fz_batch, &f, &frames);
		f.stats.frames += frames;
		data += n;
		size -= n;
		if (r != SW_BAD_NONE) {
			f.stats.bad[r < SW_BAD__COUNT ? r : SW_BAD_NONE]++;
			fz_close(&f);
			sw_decoder__free(d);
			d = sw_decoder__new();
			if (!d)
				abort();
		}
	}
	fz_export(&f);
	fz_close(&f);
	fz_export(&f);
	sw_decoder__free(d);
	sw_store__free(f.store);
	return 0;
}
