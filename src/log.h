/* SPDX-License-Identifier: Apache-2.0 */
/* Logging to stderr: with sd-daemon "<N>" priority prefixes when stderr is the journal (JOURNAL_STREAM),
 * so that journald keeps levels; plain lines on a terminal or into a file. */
#pragma once

#include <errno.h>
#include <syslog.h>

int log_level_from_string(const char *s);
void log_set_max_level(int level);

/* Logs at priority, returns -abs(error) when error != 0, so callers can "return log_error_errno(r, ...)". */
int log_internal(int priority, int error, const char *format, ...) __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_internal(LOG_ERR, 0, __VA_ARGS__)
/* The _errno forms take the error (negative or positive) that %m then names, and
 * return it negated: "return log_debug_errno(r, "Cannot read %s: %m", path);". */
#define log_debug_errno(error, ...) log_internal(LOG_DEBUG, (error), __VA_ARGS__)
#define log_info_errno(error, ...) log_internal(LOG_INFO, (error), __VA_ARGS__)
#define log_notice_errno(error, ...) log_internal(LOG_NOTICE, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_internal(LOG_WARNING, (error), __VA_ARGS__)
#define log_error_errno(error, ...) log_internal(LOG_ERR, (error), __VA_ARGS__)
/* Logs "Out of memory" and returns -ENOMEM. */
#define log_oom() log_internal(LOG_ERR, ENOMEM, "Out of memory")

/* What getopt_long() found wrong (after it returned '?'), said once the way every program
 * here says it; returns -EX_USAGE. */
int log_getopt_error(char *const argv[]);
/* -EX_USAGE (logged) if arguments are left after the options, else 0. */
int log_unexpected_arguments(int argc, char *const argv[]);
