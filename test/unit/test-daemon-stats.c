/* SPDX-License-Identifier: Apache-2.0 */
/* The time in each state and the kicks by origin, with the time given by the test. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "daemon-stats.h"

#define SEC 1000000ULL

static uint64_t kicks_of(const struct daemon_stats *s, const char *name) {
        for (size_t i = 0; i < s->n_origins; i++)
                if (strcmp(s->origins[i].name, name) == 0)
                        return s->origins[i].kicks;
        return 0;
}

Test(daemon_stats, state_times_add_up_to_the_time_since_start) {
        struct daemon_stats s;
        uint64_t usec[_THROTTLE_STATE_MAX];

        daemon_stats_init(&s, THROTTLE_INITIAL, 1000 * SEC);
        daemon_stats_enter(&s, THROTTLE_AGGRESSIVE, 1010 * SEC); /* 10 s initial */
        daemon_stats_enter(&s, THROTTLE_AGGRESSIVE, 1020 * SEC); /* a kick in aggressive: no change */
        daemon_stats_enter(&s, THROTTLE_STANDARD, 1040 * SEC);   /* 30 s aggressive */
        daemon_stats_enter(&s, THROTTLE_SLOW, 1160 * SEC);       /* 120 s standard */
        daemon_stats_enter(&s, THROTTLE_INITIAL, 1280 * SEC);    /* 120 s slow */
        daemon_stats_enter(&s, THROTTLE_AGGRESSIVE, 1300 * SEC); /* 20 s more initial */

        daemon_stats_state_usec(&s, 1305 * SEC, usec); /* 5 s into aggressive */
        cr_assert_eq(usec[THROTTLE_INITIAL], 30 * SEC, "initial: %llu µs, expected 30 s", (unsigned long long) usec[0]);
        cr_assert_eq(usec[THROTTLE_AGGRESSIVE], 35 * SEC, "aggressive must count the current stay up to now: %llu µs",
                     (unsigned long long) usec[1]);
        cr_assert_eq(usec[THROTTLE_STANDARD], 120 * SEC);
        cr_assert_eq(usec[THROTTLE_SLOW], 120 * SEC);
        cr_assert_eq(usec[0] + usec[1] + usec[2] + usec[3], 305 * SEC, "the states do not add up to the 305 s since start");

        /* Reading changes nothing: a later read counts on from the same point. */
        daemon_stats_state_usec(&s, 1306 * SEC, usec);
        cr_assert_eq(usec[THROTTLE_AGGRESSIVE], 36 * SEC, "a read must not move the start of the current stay");
}

Test(daemon_stats, a_clock_going_backwards_adds_nothing) {
        struct daemon_stats s;
        uint64_t usec[_THROTTLE_STATE_MAX];

        daemon_stats_init(&s, THROTTLE_INITIAL, 100 * SEC);
        daemon_stats_state_usec(&s, 50 * SEC, usec);
        cr_assert_eq(usec[THROTTLE_INITIAL], 0, "a time before the start gave %llu µs", (unsigned long long) usec[0]);
        daemon_stats_enter(&s, THROTTLE_AGGRESSIVE, 90 * SEC);
        daemon_stats_state_usec(&s, 110 * SEC, usec);
        cr_assert_eq(usec[THROTTLE_INITIAL], 0, "initial gained time from a clock that went back");
        cr_assert_eq(usec[THROTTLE_AGGRESSIVE], 10 * SEC, "aggressive counts from the later of the two times");
}

Test(daemon_stats, kicks_are_counted_by_origin_in_the_order_they_first_came) {
        struct daemon_stats s;

        daemon_stats_init(&s, THROTTLE_INITIAL, 0);
        daemon_stats_count_kick(&s, "org.libvirt.hook");
        daemon_stats_count_kick(&s, "kata-runtime");
        daemon_stats_count_kick(&s, "org.libvirt.hook");
        daemon_stats_count_kick(&s, NULL);
        daemon_stats_count_kick(&s, "");
        cr_assert_eq(s.n_origins, 3, "%zu origins, expected org.libvirt.hook, kata-runtime and unknown", s.n_origins);
        cr_assert_str_eq(s.origins[0].name, "org.libvirt.hook");
        cr_assert_str_eq(s.origins[1].name, "kata-runtime");
        cr_assert_str_eq(s.origins[2].name, DAEMON_STATS_UNKNOWN, "a kick without an origin must count as unknown");
        cr_assert_eq(kicks_of(&s, "org.libvirt.hook"), 2);
        cr_assert_eq(kicks_of(&s, "kata-runtime"), 1);
        cr_assert_eq(kicks_of(&s, DAEMON_STATS_UNKNOWN), 2);
        cr_assert_eq(s.other_kicks, 0);
}

Test(daemon_stats, origins_beyond_the_bound_are_counted_as_other) {
        struct daemon_stats s;
        char name[32];

        daemon_stats_init(&s, THROTTLE_INITIAL, 0);
        for (int round = 0; round < 3; round++)
                for (int i = 0; i < 1000; i++) {
                        snprintf(name, sizeof name, "caller-%d", i);
                        daemon_stats_count_kick(&s, name);
                }
        cr_assert_eq(s.n_origins, DAEMON_STATS_ORIGINS_MAX, "%zu origins held, at most %d allowed", s.n_origins,
                     DAEMON_STATS_ORIGINS_MAX);
        for (int i = 0; i < DAEMON_STATS_ORIGINS_MAX; i++) {
                snprintf(name, sizeof name, "caller-%d", i);
                cr_assert_str_eq(s.origins[i].name, name, "the first origins keep their places");
                cr_assert_eq(s.origins[i].kicks, 3, "%s was counted %llu times, not 3", name,
                             (unsigned long long) s.origins[i].kicks);
        }
        cr_assert_eq(s.other_kicks, 3 * (1000 - DAEMON_STATS_ORIGINS_MAX), "other holds %llu kicks",
                     (unsigned long long) s.other_kicks);

        /* A known origin is still counted by name once the table is full. */
        daemon_stats_count_kick(&s, "caller-0");
        cr_assert_eq(s.origins[0].kicks, 4);
}

Test(daemon_stats, an_origin_named_other_is_counted_in_the_other_bucket) {
        struct daemon_stats s;

        daemon_stats_init(&s, THROTTLE_INITIAL, 0);
        daemon_stats_count_kick(&s, "other");
        daemon_stats_count_kick(&s, "oth\ner"); /* sanitized to "oth_er": its own name */
        cr_assert_eq(s.n_origins, 1, "\"other\" took a named slot: it would appear twice");
        cr_assert_str_eq(s.origins[0].name, "oth_er");
        cr_assert_eq(s.other_kicks, 1);
}

Test(daemon_stats, hostile_origins_are_cut_and_made_safe) {
        struct daemon_stats s;
        char long_name[300], buf[DAEMON_STATS_ORIGIN_LENGTH_MAX + 1];

        memset(long_name, 'a', sizeof long_name - 1);
        long_name[sizeof long_name - 1] = '\0';
        daemon_stats_init(&s, THROTTLE_INITIAL, 0);
        daemon_stats_count_kick(&s, long_name);
        daemon_stats_count_kick(&s, "evil\"} 1\nksm_fake_metric{x=\"\\");
        daemon_stats_count_kick(&s, "\x1b[31mred\x1b[0m");
        daemon_stats_count_kick(&s, "caf\xc3\xa9"); /* UTF-8 é: two bytes */
        daemon_stats_count_kick(&s, "user@1000.service");

        cr_assert_eq(strlen(s.origins[0].name), DAEMON_STATS_ORIGIN_LENGTH_MAX, "a 299-byte origin was kept as %zu bytes",
                     strlen(s.origins[0].name));
        cr_assert_str_eq(s.origins[1].name, "evil___1_ksm_fake_metric_x___",
                         "quotes, braces, spaces, newlines and backslashes must not survive: %s", s.origins[1].name);
        cr_assert_str_eq(s.origins[2].name, "__31mred__0m");
        cr_assert_str_eq(s.origins[3].name, "caf__");
        cr_assert_str_eq(s.origins[4].name, "user@1000.service", "a unit name must be kept as it is");

        /* Origins that differ only beyond the limit are one. */
        long_name[100] = 'b';
        daemon_stats_count_kick(&s, long_name);
        cr_assert_eq(s.origins[0].kicks, 2, "a difference past byte 63 made a new origin");

        /* A small buffer is never overrun. */
        daemon_stats_sanitize_origin("libvirtd.service", buf, 5);
        cr_assert_str_eq(buf, "libv");
}
