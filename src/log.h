/* SPDX-License-Identifier: Apache-2.0 */
/* Logging to stderr: with sd-daemon "<N>" priority prefixes when stderr is the journal (JOURNAL_STREAM),
 * so that journald keeps levels; plain lines on a terminal or into a file. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
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

/* At most burst lines per interval of a kind that callers can cause at will (refused
 * kicks): so that no caller can fill the journal, or use up journald's rate limit for
 * this service and hide its other messages. Times are passed in. */
struct log_ratelimit {
        uint64_t interval_usec;
        unsigned burst;
        uint64_t begin_usec; /* of the current interval */
        bool started;        /* whether an interval began */
        unsigned shown, dropped;
};
#define LOG_RATELIMIT_INIT(interval, n) { .interval_usec = (interval), .burst = (n) }
/* For refusals, which any local user can cause (docs/design.md, "Bounded work per caller"). */
#define LOG_RATELIMIT_REFUSALS LOG_RATELIMIT_INIT(10 * 1000000ULL, 20)
/* Whether a line may be logged at now_usec. When an interval in which lines were dropped
 * has ended, *ret_dropped is their number (to be said once), else 0. */
bool log_ratelimit_below(struct log_ratelimit *rl, uint64_t now_usec, unsigned *ret_dropped);
/* log_ratelimit_below() that says itself, at notice level, when it starts dropping lines
 * about what ("refused kicks") and, with the next line allowed, how many it dropped. */
bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_usec, const char *what);
