/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leveled logging to stderr (retsnoop style: the level is checked before any
 * formatting). Messages for people are one line: what went wrong, with what,
 * and what to do next.
 */
#ifndef SW_LOG_H
#define SW_LOG_H

#include <stdio.h>

enum sw_log_level { SW_LOG_ERROR = 0, SW_LOG_WARN = 1, SW_LOG_INFO = 2, SW_LOG_DEBUG = 3 };

extern int sw_log_level;
extern const char *sw_log_prog;

#define sw_log(lvl, fmt, ...)                                                                      \
	do {                                                                                       \
		if ((lvl) <= sw_log_level)                                                         \
			fprintf(stderr, "%s: " fmt "\n", sw_log_prog, ##__VA_ARGS__);              \
	} while (0)
#define sw_err(fmt, ...) sw_log(SW_LOG_ERROR, fmt, ##__VA_ARGS__)
#define sw_warn(fmt, ...) sw_log(SW_LOG_WARN, "warning: " fmt, ##__VA_ARGS__)
#define sw_info(fmt, ...) sw_log(SW_LOG_INFO, fmt, ##__VA_ARGS__)
#define sw_dbg(fmt, ...) sw_log(SW_LOG_DEBUG, "debug: " fmt, ##__VA_ARGS__)

#endif
