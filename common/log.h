/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leveled logging to stderr (retsnoop style: the level is checked before any
 * formatting). Messages for people are one line: what went wrong, with what,
 * and what to do next.
 *
 * Rate-limited per call site: a peer that can make us log (a bad frame, a
 * refused connection, a libmicrohttpd complaint) must not be able to fill
 * the disk or drown the one line that matters. Each site prints at most
 * SW_LOG_PER_SEC lines in a one-second window; the rest are counted
 * (sw_log__suppressed(), exported by the collector) and reported as one line
 * "(N similar lines from file.c:123 suppressed)" before the site's next line,
 * or by sw_log__flush() once the window is over. Debug lines (-vv) are
 * asked for explicitly and never limited.
 */
#ifndef SW_LOG_H
#define SW_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum sw_log_level { SW_LOG_ERROR = 0, SW_LOG_WARN = 1, SW_LOG_INFO = 2, SW_LOG_DEBUG = 3 };

extern int sw_log_level;
extern const char *sw_log_prog;

/* 20 a second per site: an agent attaching 20 processes at once still logs
 * each; 10,000 bad connections log 20 lines a second, not 10,000. */
#define SW_LOG_PER_SEC 20
#define SW_LOG_WINDOW_NS 1000000000ull

/* One per call site (a static in the macro below); zero-initialised but for
 * where it is, so that the report can name it. */
struct sw_log_site {
	const char *file;
	int line;
	struct sw_log_site *next; /* in the list sw_log__flush walks */
	bool listed;
	uint64_t window_ns;  /* start of the current window */
	unsigned int printed; /* lines printed in it */
	uint64_t pending;     /* suppressed, not reported yet */
};

/*
 * The decision alone, for tests: may this site print at now_ns? *report is
 * set to the number of suppressed lines to report before this one (0: none).
 * Not thread-safe: sw_log__admit() holds a lock around it.
 */
bool sw_log_site__admit(struct sw_log_site *s, uint64_t now_ns, uint64_t *report);
/* Thread-safe; prints the report line of earlier suppressed lines if due. */
bool sw_log__admit(struct sw_log_site *s);
/* Reports the suppressed lines of sites whose window is over (call it from a
 * periodic tick, so that the count of a flood that stopped is printed), or
 * of every site with `all` (at exit). */
void sw_log__flush(bool all);
/* Lines suppressed since start, all sites. */
uint64_t sw_log__suppressed(void);

#define sw_log(lvl, fmt, ...)                                                                      \
	do {                                                                                       \
		static struct sw_log_site sw_log_site_ = {.file = __FILE__, .line = __LINE__};     \
		if ((lvl) <= sw_log_level &&                                                       \
		    ((lvl) >= SW_LOG_DEBUG || sw_log__admit(&sw_log_site_)))                       \
			fprintf(stderr, "%s: " fmt "\n", sw_log_prog, ##__VA_ARGS__);              \
	} while (0)
#define sw_err(fmt, ...) sw_log(SW_LOG_ERROR, fmt, ##__VA_ARGS__)
#define sw_warn(fmt, ...) sw_log(SW_LOG_WARN, "warning: " fmt, ##__VA_ARGS__)
#define sw_info(fmt, ...) sw_log(SW_LOG_INFO, fmt, ##__VA_ARGS__)
#define sw_dbg(fmt, ...) sw_log(SW_LOG_DEBUG, "debug: " fmt, ##__VA_ARGS__)

#endif
