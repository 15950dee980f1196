/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stacks BPF unit's user side (bpf/stacks.bpf.c): loads it over
 * loopmon's thread states, opens the sampling perf events, takes the stack
 * samples of blocked loop threads as they arrive (unwinds them, agent/unwind.c,
 * and reads the Python frames then, while the block still runs), keeps the
 * recent ones per thread, and gives an incident its stacks
 * (struct sw_diag_stacks, common/diag.h).
 */
#ifndef SW_AGENT_STACKS_H
#define SW_AGENT_STACKS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "diag.h"
#include "discovery.h"
#include "runtime/pyframes.h"

struct loopmon;
struct sw_tio;
struct sw_stacks;

struct sw_stacks_opts {
	uint64_t threshold_ns;
	uint32_t sample_hz; /* on-CPU sampling frequency; 0: 99 */
	bool sleep_capture; /* take sleeping loop threads' stacks */
};

/* Open, load over lm's maps, attach; add the sample ring to lm's ring
 * buffer consumer (loopmon__poll serves it). NULL and errno set. */
struct sw_stacks *sw_stacks__new(const struct sw_stacks_opts *o, struct loopmon *lm,
				 struct sw_tio *t);
void sw_stacks__free(struct sw_stacks *s);

void sw_stacks__add_process(struct sw_stacks *s, const struct sw_proc_info *pi);
void sw_stacks__remove_process(struct sw_stacks *s, uint32_t pid);

/*
 * The stacks of thread tid of pid in [start_ns, end_ns]: its on-CPU
 * samples (weight: the period) and sleep captures (weight: the sleep),
 * plus a sleep still in progress. 0, or -ENOENT when there is none.
 * The strings stay valid until the next call.
 */
int sw_stacks__collect(struct sw_stacks *s, uint32_t pid, uint32_t tid, uint64_t start_ns,
		       uint64_t end_ns, struct sw_diag_stacks *out);

/*
 * Loop thread tid of pid has been asleep in a busy stretch since since_ns
 * (loopmon's state, read at the agent's tick): a Python thread's frames
 * are read now, once per sleep, for the capture of that sleep that comes
 * at its wake-up, when the frames would be another place's.
 */
void sw_stacks__sleeping(struct sw_stacks *s, uint32_t pid, uint32_t tid, uint64_t since_ns);

/* The note of the last collect (sw_diag_stacks.note) reached a final
 * incident of pid: it is not repeated for that process. Ongoing incidents
 * repeat it until then, so that whoever reads only final lines sees it. */
void sw_stacks__note_given(struct sw_stacks *s, uint32_t pid);

/* Append the last collect's stacks to f in folded format
 * ("comm;outermost;...;innermost weight_us"). */
void sw_stacks__write_folded(struct sw_stacks *s, FILE *f, const char *comm);

/* Drops and failures (health.h ids), cumulative. */
void sw_stacks__health(struct sw_stacks *s, uint64_t *v /* [SW_HEALTH__COUNT] */);

/* ---- pure logic, exposed for unit tests ---- */

/* A frame of a stored sample: a native PC, or a Python frame's string. */
struct sw_stk_frame {
	uint64_t pc;
	bool is_return; /* pc is a return address */
	char *py;	/* "func (file:line)" (owned), or NULL: native */
};

/*
 * Splice Python frames into a native stack (runtime/pyframes.h): native
 * frames innermost first; each native frame flagged is_eval (the CPython
 * evaluator, _PyEval_EvalFrameDefault) is replaced by the Python frames
 * from the cursor up to and including the next one marked entry. Python
 * frames left when the native stack ends (an unwind cut short) go at the
 * outer end. Returns the frames written to out (at most max); py strings
 * are allocated (sw_stk_frames_free).
 */
uint32_t sw_stacks_splice(const uint64_t *pcs, const bool *is_return, const bool *is_eval,
			  uint32_t n, const struct sw_py_stack *py, struct sw_stk_frame *out,
			  uint32_t max);
void sw_stk_frames_free(struct sw_stk_frame *f, uint32_t n);
/* "func (file:line)", or "func (file)" when the line is unknown. */
void sw_py_frame_format(const struct sw_py_frame *f, char *out, size_t len);

/* A symbolized sample for aggregation. */
struct sw_stk_agg {
	const char *const *frames; /* innermost first */
	uint32_t n;
	uint64_t weight_ns;
	int gc; /* Python GC collecting: 1, 0, or -1 when not read */
};

/*
 * Distinct stacks: first the hot path's (from the outermost frame, the
 * heaviest callee at each level: what a flame graph shows widest; on-CPU
 * samples of one culprit end in many leaves, so no exact stack need be
 * frequent), then the others heaviest first; shares of stacks[0]'s
 * innermost distinct frames over all samples' weight; gc_share. Stacks deeper than
 * SW_DIAG_FRAMES are cut at the outer end with a last frame "[truncated]".
 * out's strings point into the samples' frames (or the literal).
 * all/n_all, if not NULL, get every distinct stack (the folded output):
 * indices of one representative sample each and their weights.
 */
struct sw_stk_group {
	size_t sample; /* a representative */
	uint64_t weight_ns;
	uint32_t samples;
};
void sw_stacks_aggregate(const struct sw_stk_agg *samples, size_t n, struct sw_diag_stacks *out,
			 struct sw_stk_group *all, size_t *n_all);

#endif
