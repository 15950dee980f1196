/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Recording: what agent/loops.c was given in a real run, written down so
 * that the unit tests replay it without root or BPF (the OpenTelemetry
 * profiler tests its unwinders against recorded memory the same way).
 *
 * A recording is text, one record a line, "verb key=value ...":
 *  - actions, the calls into loops: config (threshold_ns, diag), process
 *    (sw_loops__add_process), event (a ring buffer record), tick and summary
 *    (with their now);
 *  - answers, what the thread source answered during the action written
 *    just before them: read, seed, next, stats; and the calls it received
 *    (forget, target), so a replay can check it makes the same ones.
 * Fields equal to zero are left out; a read equal to the previous read of
 * the same thread is written "read tid=T rc=0 same". Strings are
 * %XX-escaped outside printable ASCII and for ' ', '%', '=' and ','.
 *
 * The agent writes one with the hidden option --record FILE.
 */
#ifndef SW_AGENT_RECORDING_H
#define SW_AGENT_RECORDING_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "discovery.h"
#include "thread_source.h"

struct sw_recorder;

/* NULL and errno set on failure. inner must outlive the recorder. */
struct sw_recorder *sw_recorder__new(const char *path, const struct sw_thread_source *inner,
				     uint64_t threshold_ns, bool diag);
void sw_recorder__free(struct sw_recorder *r);

/* The source to hand to sw_loops__new: inner's answers, written down. */
struct sw_thread_source sw_recorder__source(struct sw_recorder *r);

/* Call each just before the sw_loops__ call it records. */
void sw_recorder__process(struct sw_recorder *r, const struct sw_proc_info *pi);
void sw_recorder__event(struct sw_recorder *r, const struct sw_event *e);
void sw_recorder__tick(struct sw_recorder *r, uint64_t now_ns);
void sw_recorder__summary(struct sw_recorder *r, uint64_t now_ns);

/* Failed writes (the recording is then incomplete). */
uint64_t sw_recorder__errors(const struct sw_recorder *r);

enum sw_rec_kind {
	/* actions */
	SW_REC_CONFIG,
	SW_REC_PROCESS,
	SW_REC_EVENT,
	SW_REC_TICK,
	SW_REC_SUMMARY,
	/* answers and calls of the thread source */
	SW_REC_READ,
	SW_REC_SEED,
	SW_REC_NEXT,
	SW_REC_STATS,
	SW_REC_FORGET,
	SW_REC_TARGET_ADD,
	SW_REC_TARGET_DEL,
};

struct sw_rec {
	enum sw_rec_kind kind;
	int rc;		     /* READ, SEED, NEXT, FORGET, TARGET_* */
	uint32_t tid;	     /* READ, SEED, FORGET; NEXT: the next tid */
	uint32_t pid, flags; /* TARGET_* */
	bool has_prev;	     /* NEXT: prev was given (else the first call) */
	uint32_t prev;	     /* NEXT */
	uint64_t now_ns;     /* TICK, SUMMARY */
	uint64_t threshold_ns; /* CONFIG */
	bool diag;	       /* CONFIG */
	struct sw_proc_info proc;  /* PROCESS */
	struct sw_event event;	   /* EVENT */
	struct sw_thread thread;   /* READ (rc 0), SEED */
	struct sw_bpf_stats stats; /* STATS */
};

static inline bool sw_rec_is_action(enum sw_rec_kind k)
{
	return k <= SW_REC_SUMMARY;
}

struct sw_rec_reader;

/* NULL and errno set on failure. */
struct sw_rec_reader *sw_rec_reader__open(const char *path);
void sw_rec_reader__free(struct sw_rec_reader *rd);
/* The next record: 1 with *out filled, 0 at the end, -EINVAL for a
 * malformed line (sw_rec_reader__line() says which). */
int sw_rec_reader__next(struct sw_rec_reader *rd, struct sw_rec *out);
unsigned sw_rec_reader__line(const struct sw_rec_reader *rd);

#endif
