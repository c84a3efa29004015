/* SPDX-License-Identifier: Apache-2.0 */
/* What the throttler did since it started: the time spent in each state, and the
 * kicks it accepted, counted by origin. Pure: every time is given by the caller
 * (CLOCK_MONOTONIC microseconds in the daemon), so that tests choose it. Fixed-size:
 * whatever callers send, the daemon holds one of these. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "state-machine.h"

/* Distinct origins counted by name; kicks from further ones are counted under
 * DAEMON_STATS_OTHER. */
#define DAEMON_STATS_ORIGINS_MAX 16
/* The longest origin kept, in bytes; longer ones are cut. */
#define DAEMON_STATS_ORIGIN_LENGTH_MAX 63
/* The bucket of origins beyond the first DAEMON_STATS_ORIGINS_MAX. An origin with
 * this name is counted in it too, so that no name appears twice. */
#define DAEMON_STATS_OTHER "other"
/* The origin of a kick whose caller said nothing and whose unit is not known. */
#define DAEMON_STATS_UNKNOWN "unknown"

struct daemon_stats_origin {
        char name[DAEMON_STATS_ORIGIN_LENGTH_MAX + 1];
        uint64_t kicks;
};

struct daemon_stats {
        uint64_t state_usec[_THROTTLE_STATE_MAX]; /* time in each state, up to since_usec */
        enum throttle_state state;                /* the state entered at since_usec */
        uint64_t since_usec;

        struct daemon_stats_origin origins[DAEMON_STATS_ORIGINS_MAX]; /* in the order they first kicked */
        size_t n_origins;
        uint64_t other_kicks;
};

/* Starts the clock in state at now. */
void daemon_stats_init(struct daemon_stats *s, enum throttle_state state, uint64_t now_usec);

/* The throttler is in state from now on (the same state again changes nothing). A
 * clock that went backwards adds nothing. */
void daemon_stats_enter(struct daemon_stats *s, enum throttle_state state, uint64_t now_usec);

/* The time spent in each state up to now, the current one included. */
void daemon_stats_state_usec(const struct daemon_stats *s, uint64_t now_usec, uint64_t ret[_THROTTLE_STATE_MAX]);

/* Counts an accepted kick from origin (NULL or "": DAEMON_STATS_UNKNOWN), by its
 * sanitized name (daemon_stats_sanitize_origin). */
void daemon_stats_count_kick(struct daemon_stats *s, const char *origin);

/* origin as it is counted and published: bytes other than ASCII letters, digits and
 * . _ - : @ + are replaced by '_', and it is cut to DAEMON_STATS_ORIGIN_LENGTH_MAX bytes
 * (buf holds at least that plus one). NULL or "" gives DAEMON_STATS_UNKNOWN. */
void daemon_stats_sanitize_origin(const char *origin, char *buf, size_t size);
