/* SPDX-License-Identifier: Apache-2.0 */
/* Strict parsers for config values, command-line arguments and sysfs/procfs text. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MINUTE (UINT64_C(60) * USEC_PER_SEC)
#define USEC_PER_HOUR (UINT64_C(60) * USEC_PER_MINUTE)

/* clock's time in microseconds. */
static inline uint64_t clock_now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* A decimal unsigned integer, surrounding whitespace allowed (sysfs ends with "\n"). */
int parse_uint64(const char *s, uint64_t *ret);
int parse_int64(const char *s, int64_t *ret);

/* "500ms", "30s", "2min", "1h", "1.5s", "1min 30s"; a bare number is seconds. */
int parse_duration_usec(const char *s, uint64_t *ret);

/* yes/no, true/false, on/off, 1/0. */
int parse_boolean(const char *s, bool *ret);

/* An absolute path: *ret is replaced by a copy of s (the old value freed); -EINVAL if s
 * does not start with '/', and *ret is then left as it was. */
int parse_absolute_path(const char *s, char **ret);

/* Formats a duration the way parse_duration_usec reads it back, e.g. "2min 30s", "500ms". */
const char *format_duration_usec(char *buf, size_t size, uint64_t usec);
