/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon-stats.h"

#include <stdbool.h>
#include <string.h>

void daemon_stats_init(struct daemon_stats *s, enum throttle_state state, uint64_t now_usec) {
        *s = (struct daemon_stats) { .state = state, .since_usec = now_usec };
}

static uint64_t elapsed(const struct daemon_stats *s, uint64_t now_usec) {
        return now_usec > s->since_usec ? now_usec - s->since_usec : 0;
}

void daemon_stats_enter(struct daemon_stats *s, enum throttle_state state, uint64_t now_usec) {
        if (state == s->state || (unsigned) state >= _THROTTLE_STATE_MAX)
                return;
        if ((unsigned) s->state < _THROTTLE_STATE_MAX)
                s->state_usec[s->state] += elapsed(s, now_usec);
        s->state = state;
        if (now_usec > s->since_usec)
                s->since_usec = now_usec;
}

void daemon_stats_state_usec(const struct daemon_stats *s, uint64_t now_usec, uint64_t ret[_THROTTLE_STATE_MAX]) {
        memcpy(ret, s->state_usec, sizeof s->state_usec);
        if ((unsigned) s->state < _THROTTLE_STATE_MAX)
                ret[s->state] += elapsed(s, now_usec);
}

/* The characters an origin keeps: safe in a log line, a D-Bus dictionary key, a
 * Prometheus label value and a terminal, and enough for unit names and reverse-DNS
 * application IDs. */
static bool origin_char_is_safe(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c != '\0' && strchr("._-:@+", c));
}

void daemon_stats_sanitize_origin(const char *origin, char *buf, size_t size) {
        size_t n = 0;

        if (size == 0)
                return;
        if (!origin || !origin[0])
                origin = DAEMON_STATS_UNKNOWN;
        for (; origin[n] && n < DAEMON_STATS_ORIGIN_LENGTH_MAX && n + 1 < size; n++)
                buf[n] = origin_char_is_safe(origin[n]) ? origin[n] : '_';
        buf[n] = '\0';
}

void daemon_stats_count_kick(struct daemon_stats *s, const char *origin) {
        char name[DAEMON_STATS_ORIGIN_LENGTH_MAX + 1];

        daemon_stats_sanitize_origin(origin, name, sizeof name);
        if (strcmp(name, DAEMON_STATS_OTHER) == 0) {
                s->other_kicks++;
                return;
        }
        for (size_t i = 0; i < s->n_origins; i++)
                if (strcmp(s->origins[i].name, name) == 0) {
                        s->origins[i].kicks++;
                        return;
                }
        if (s->n_origins == DAEMON_STATS_ORIGINS_MAX) {
                s->other_kicks++;
                return;
        }
        memcpy(s->origins[s->n_origins].name, name, sizeof name);
        s->origins[s->n_origins++].kicks = 1;
}
