// SPDX-License-Identifier: Apache-2.0
#include "log.h"
#include "clock.h"
#include <inttypes.h>
#include <pthread.h>
#include <string.h>

int sw_log_level = SW_LOG_INFO;
const char *sw_log_prog = "stallwatch";

/* Logging is rare (a few lines a second at most, by design): one lock for
 * every site is simpler than atomics and costs nothing that matters. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sw_log_site *sites;
static uint64_t suppressed_total;

bool sw_log_site__admit(struct sw_log_site *s, uint64_t now_ns, uint64_t *report)
{
	*report = 0;
	if (!s->window_ns || now_ns - s->window_ns >= SW_LOG_WINDOW_NS) {
		*report = s->pending;
		s->pending = 0;
		s->window_ns = now_ns ? now_ns : 1; /* 0 means "never printed" */
		s->printed = 0;
	}
	if (s->printed < SW_LOG_PER_SEC) {
		s->printed++;
		return true;
	}
	s->pending++;
	return false;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static void report(const struct sw_log_site *s, uint64_t n)
{
	fprintf(stderr, "%s: (%" PRIu64 " similar lines from %s:%d suppressed)\n", sw_log_prog, n,
		base_name(s->file), s->line);
}

bool sw_log__admit(struct sw_log_site *s)
{
	uint64_t due;
	bool ok;

	pthread_mutex_lock(&log_lock);
	if (!s->listed) {
		s->next = sites;
		sites = s;
		s->listed = true;
	}
	ok = sw_log_site__admit(s, sw_mono_ns(), &due);
	if (!ok)
		suppressed_total++;
	if (due)
		report(s, due);
	pthread_mutex_unlock(&log_lock);
	return ok;
}

void sw_log__flush(bool all)
{
	uint64_t now = sw_mono_ns();

	pthread_mutex_lock(&log_lock);
	for (struct sw_log_site *s = sites; s; s = s->next) {
		if (!s->pending || (!all && now - s->window_ns < SW_LOG_WINDOW_NS))
			continue;
		report(s, s->pending);
		s->pending = 0;
	}
	pthread_mutex_unlock(&log_lock);
}

uint64_t sw_log__suppressed(void)
{
	uint64_t n;

	pthread_mutex_lock(&log_lock);
	n = suppressed_total;
	pthread_mutex_unlock(&log_lock);
	return n;
}
