// SPDX-License-Identifier: Apache-2.0
/*
 * The GIL rules (common/gil.h): pure, shared by the agent and the collector.
 */
#include <stdio.h>
#include <string.h>
#include "gil.h"

double sw_gil_share(uint64_t ns, uint64_t interval_ns)
{
	double s;

	if (!interval_ns)
		return 0;
	s = (double)ns / (double)interval_ns;
	return s > 1 ? 1 : s;
}

static const char ADVICE_LOOP[] =
	"The event loop shares its process's GIL with a thread that keeps it: move that CPU work "
	"to processes (ProcessPoolExecutor, a worker service) or to code that releases the GIL "
	"(numpy, hashlib, zlib on large buffers, a C extension with Py_BEGIN_ALLOW_THREADS). A "
	"thread pool (run_in_executor, asyncio.to_thread) does not help CPU-bound Python: it is "
	"what makes the loop wait here.";

static const char ADVICE_CONTENTION[] =
	"Threads running Python code take turns on the GIL, so adding threads adds waiting, not "
	"throughput: run CPU-bound Python in processes (multiprocessing, ProcessPoolExecutor, "
	"more workers), move the hot loop to code that releases the GIL, or cut the threads to "
	"the ones that mostly wait on I/O.";

const char *sw_gil_user_frame(const char (*frames)[SW_GIL_FRAME_LEN], uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (!strstr(frames[i], "/lib/python") && !strstr(frames[i], "-packages/") &&
		    !strstr(frames[i], "(<frozen "))
			return frames[i];
	return n ? frames[0] : NULL;
}

static void frame_fn(const struct sw_gil_thread_rec *t, char *out, size_t len)
{
	const char *f = t ? sw_gil_user_frame((const char(*)[SW_GIL_FRAME_LEN])t->frames,
					      t->n_frames)
			  : NULL;

	if (f)
		snprintf(out, len, " in %s", f);
	else
		out[0] = '\0';
}

void sw_gil_judge(struct sw_gil_rec *g)
{
	uint64_t wait = 0, hold = 0, top_hold = 0, loop_wait = 0, drops = 0;
	const struct sw_gil_thread_rec *holder = NULL;
	char where[SW_GIL_FRAME_LEN + 8];

	g->utilization = g->samples ? (double)g->held_samples / (double)g->samples : 0;
	g->waiting_threads = 0;
	g->loop_tid = 0;
	g->loop_wait_share = 0;
	g->top_holder = 0;
	g->flagged = false;
	memset(&g->verdict, 0, sizeof(g->verdict));
	for (uint32_t i = 0; i < g->n_threads; i++) {
		const struct sw_gil_thread_rec *t = &g->threads[i];

		wait += t->wait_ns;
		hold += t->hold_ns;
		drops += t->drop_requests;
		if (sw_gil_share(t->wait_ns, g->interval_ns) >= SW_GIL_WAITER_MIN_SHARE)
			g->waiting_threads++;
		if (t->hold_ns > top_hold) {
			top_hold = t->hold_ns;
			holder = t;
			g->top_holder = i;
		}
		if (t->loop && t->wait_ns > loop_wait) {
			loop_wait = t->wait_ns;
			g->loop_tid = t->tid;
		}
	}
	g->contention = wait + hold ? (double)wait / (double)(wait + hold) : 0;
	g->loop_wait_share = sw_gil_share(loop_wait, g->interval_ns);
	if (g->note)
		return;

	/* the holder that is not the loop itself */
	if (holder && holder->tid == g->loop_tid) {
		top_hold = 0;
		holder = NULL;
		for (uint32_t i = 0; i < g->n_threads; i++)
			if (g->threads[i].tid != g->loop_tid && g->threads[i].hold_ns > top_hold) {
				top_hold = g->threads[i].hold_ns;
				holder = &g->threads[i];
			}
	}
	frame_fn(holder, where, sizeof(where));
	if (g->loop_tid && g->loop_wait_share >= SW_GIL_LOOP_SHARE_MIN) {
		g->flagged = true;
		g->verdict.pattern = SW_GIL_PATTERN_LOOP;
		g->verdict.advice = ADVICE_LOOP;
		if (holder)
			snprintf(g->verdict.summary, sizeof(g->verdict.summary),
				 "the event loop (tid %u) waited %.0f%% of the last %.1f s for the GIL, "
				 "held most by thread %s (tid %u)%s",
				 g->loop_tid, g->loop_wait_share * 100, (double)g->interval_ns / 1e9,
				 holder->thread, holder->tid, where);
		else
			snprintf(g->verdict.summary, sizeof(g->verdict.summary),
				 "the event loop (tid %u) waited %.0f%% of the last %.1f s for the GIL",
				 g->loop_tid, g->loop_wait_share * 100, (double)g->interval_ns / 1e9);
		return;
	}
	if (g->contention >= SW_GIL_CONTENTION_MIN && g->waiting_threads >= SW_GIL_WAITERS_MIN) {
		g->flagged = true;
		g->verdict.pattern = SW_GIL_PATTERN_CONTENTION;
		g->verdict.advice = ADVICE_CONTENTION;
		snprintf(g->verdict.summary, sizeof(g->verdict.summary),
			 "%u threads fought over the GIL: %.0f%% of the time they wanted it went to "
			 "waiting (GIL held %.0f%% of the time, %llu drop requests)%s%s",
			 g->waiting_threads, g->contention * 100, g->utilization * 100,
			 (unsigned long long)drops, holder ? "; held most by " : "",
			 holder ? holder->thread : "");
	}
}
