// SPDX-License-Identifier: Apache-2.0
/*
 * sw-wirestat: what the frames in a file cost the collector, for setting and
 * checking the decode budget (collector/budget.h, docs/RELIABILITY.md
 * "Hostile frames").
 *
 *   sw-wirestat [--no-budget] FILE...
 *
 * FILE holds frames back to back, as an agent sent them (a recording of
 * bench/ingest_load record, tests/root/record_agent_frames.py, or the fuzz
 * seeds). For each file, the most any one frame had: raw bytes after zlib,
 * elements, longest string, bytes unpack allocated, each limited repeated
 * field; then the time of the budget walk, of unpack, and of
 * sw_store__apply into a store with the collector's default caps, and the
 * longest time it held the store lock at once (it holds it in slices, and
 * not while it judges incidents: collector/store.h). Frames refused are counted by reason
 * and still walked, so a hostile frame's cost of refusal is measured too.
 * One JSON object per file on stdout. --no-budget unpacks as the collector
 * did before the budget (protobuf-c unbounded, then sw_batch__validate):
 * what a hostile frame cost then, lock time included.
 */
#include "budget.h"
#include "clock.h"
#include "decoder.h"
#include "frame.h"
#include "store.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL, *nb;
	size_t cap = 0, n;

	*len = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (cap - *len < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			nb = realloc(buf, cap);
			if (!nb)
				break;
			buf = nb;
		}
		n = fread(buf + *len, 1, cap - *len, f);
		if (!n)
			break;
		*len += n;
	}
	fclose(f);
	return buf;
}

static bool no_budget;

static void stat_file(const char *path)
{
	struct sw_store_opts so = {.max_loops = 1024, .max_incidents = 1000};
	size_t len, off = 0, nlim, frames = 0, bad[SW_BAD__COUNT] = {0};
	struct sw_budget_use most = {0};
	struct sw_store_holds holds;
	const struct sw_budget_limit *lim = sw_budget__limits(&nlim);
	uint64_t check_ns = 0, unpack_ns = 0, apply_ns = 0, raw = 0, wire = 0;
	uint8_t *buf = slurp(path, &len);
	struct sw_store *s = sw_store__new(&so);
	bool up = false;

	if (!buf || !s) {
		fprintf(stderr, "sw-wirestat: cannot read %s: %s\n", path, strerror(errno));
		exit(1);
	}
	while (len - off >= SW_FRAME_HDR_LEN) {
		struct sw_frame_hdr h;
		struct sw_budget_use u;
		enum sw_bad_reason r;
		Stallwatch__V1__Batch *b;
		const uint8_t *msg;
		size_t mlen;
		bool owned;
		uint64_t t0, t1, t2;

		if (sw_frame_parse_hdr(buf + off, &h) || len - off - SW_FRAME_HDR_LEN < h.len) {
			fprintf(stderr, "sw-wirestat: %s: no whole frame at byte %zu\n", path, off);
			break;
		}
		frames++;
		if (h.len > wire)
			wire = h.len;
		if (sw_frame_payload(&h, buf + off + SW_FRAME_HDR_LEN, &msg, &mlen, &owned)) {
			bad[SW_BAD_ZLIB]++;
			off += SW_FRAME_HDR_LEN + h.len;
			continue;
		}
		if (mlen > raw)
			raw = mlen;
		t0 = sw_mono_ns();
		r = sw_budget__check(msg, mlen, &u);
		t1 = sw_mono_ns();
		check_ns = t1 - t0 > check_ns ? t1 - t0 : check_ns;
		if (no_budget) {
			b = stallwatch__v1__batch__unpack(NULL, mlen, msg);
			r = b ? SW_BAD_NONE : SW_BAD_PROTOBUF;
		} else {
			b = r == SW_BAD_NONE ? sw_budget__unpack(msg, mlen, SW_BUDGET_MAX_ALLOC, &u, &r)
					     : NULL;
		}
		t2 = sw_mono_ns();
		unpack_ns = t2 - t1 > unpack_ns ? t2 - t1 : unpack_ns;
		if (b && (r = sw_batch__validate(b)) == SW_BAD_NONE) {
			if (!up)
				up = !sw_store__agent_up(s, "wirestat:1", b->hello, t2);
			t0 = sw_mono_ns();
			sw_store__apply(s, "wirestat:1", b, t0);
			t1 = sw_mono_ns();
			apply_ns = t1 - t0 > apply_ns ? t1 - t0 : apply_ns;
		}
		if (r != SW_BAD_NONE)
			bad[r]++;
		stallwatch__v1__batch__free_unpacked(b, NULL);
		if (owned)
			free((void *)msg);
#define MAX_OF(x) most.x = u.x > most.x ? u.x : most.x
		MAX_OF(elements);
		MAX_OF(unknown);
		MAX_OF(max_string);
		MAX_OF(stack_frames);
		MAX_OF(alloc);
		MAX_OF(max_default);
		for (size_t i = 0; i < nlim; i++)
			MAX_OF(max_count[i]);
		off += SW_FRAME_HDR_LEN + h.len;
	}
	sw_store__lock(s);
	sw_store__holds(s, &holds);
	sw_store__unlock(s);
	printf("{\"file\":\"%s\",\"frames\":%zu,\"wire_max\":%llu,\"raw_max\":%llu,"
	       "\"elements_max\":%zu,\"stack_frames_max\":%zu,\"unknown_max\":%zu,\"string_max\":%zu,\"alloc_max\":%zu,"
	       "\"check_ms_max\":%.3f,\"unpack_ms_max\":%.3f,\"apply_ms_max\":%.3f,"
	       "\"lock_holds\":%llu,\"lock_hold_ms_max\":%.3f,\"lock_ms_sum\":%.3f,\"counts\":{",
	       path, frames, (unsigned long long)wire, (unsigned long long)raw, most.elements,
	       most.stack_frames,
	       most.unknown, most.max_string, most.alloc, check_ns / 1e6, unpack_ns / 1e6,
	       apply_ns / 1e6, (unsigned long long)holds.count, holds.max_ns / 1e6,
	       holds.sum_ns / 1e6);
	for (size_t i = 0; i < nlim; i++)
		printf("%s\"%s.%s\":%u", i ? "," : "", lim[i].msg->short_name, lim[i].field,
		       most.max_count[i]);
	printf(",\"other\":%u},\"refused\":{", most.max_default);
	for (int r = 1, first = 1; r < SW_BAD__COUNT; r++)
		if (bad[r]) {
			printf("%s\"%s\":%zu", first ? "" : ",", sw_bad_reason__name(r), bad[r]);
			first = 0;
		}
	printf("}}\n");
	sw_store__free(s);
	free(buf);
}

int main(int argc, char **argv)
{
	int i = 1;

	if (argc > 1 && !strcmp(argv[1], "--no-budget")) {
		no_budget = true;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: sw-wirestat [--no-budget] FILE...  (frames back to back, as an "
				"agent sends them)\n");
		return 2;
	}
	for (; i < argc; i++)
		stat_file(argv[i]);
	return 0;
}
