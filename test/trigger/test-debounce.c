/* SPDX-License-Identifier: Apache-2.0 */
/* The debounce with injected times: a burst gives one kick at once and one at the
 * end of the interval; a lone event gives one kick; a stream gives one per interval. */
#include <criterion/criterion.h>

#include "debounce.h"

#define MS 1000u
#define S (1000u * MS)

/* Runs events at the given times (µs), firing the timer whenever its deadline passes
 * before the next event, and then until nothing is held. Records the kick times. */
static unsigned run(uint64_t interval, const uint64_t *events, unsigned n, uint64_t *kicks, unsigned max) {
        struct debounce d;
        unsigned n_kicks = 0;

        debounce_init(&d, interval);
        for (unsigned i = 0; i <= n; i++) {
                uint64_t next = i < n ? events[i] : UINT64_MAX;
                while (debounce_deadline(&d) != UINT64_MAX && debounce_deadline(&d) <= next) {
                        uint64_t at = debounce_deadline(&d);
                        if (debounce_timer(&d, at) > 0) {
                                cr_assert_lt(n_kicks, max);
                                kicks[n_kicks++] = at;
                        }
                }
                if (i < n && debounce_event(&d, events[i])) {
                        cr_assert_lt(n_kicks, max);
                        kicks[n_kicks++] = events[i];
                }
        }
        return n_kicks;
}

Test(debounce, lone_event_kicks_at_once_and_only_once) {
        uint64_t events[] = { 5 * S }, kicks[8];
        unsigned n = run(S, events, 1, kicks, 8);
        cr_assert_eq(n, 1, "one event should give exactly one kick, got %u", n);
        cr_assert_eq(kicks[0], 5 * S, "the kick should come with the event, not after the interval");
}

Test(debounce, burst_gives_leading_and_trailing_kick) {
        uint64_t events[] = { 10 * S, 10 * S + 1 * MS, 10 * S + 200 * MS, 10 * S + 900 * MS }, kicks[8];
        unsigned n = run(S, events, 4, kicks, 8);
        cr_assert_eq(n, 2, "a burst inside one interval should give two kicks (leading, trailing), got %u", n);
        cr_assert_eq(kicks[0], 10 * S, "leading kick at the first event");
        cr_assert_eq(kicks[1], 11 * S, "trailing kick at the end of the interval, got %llu", (unsigned long long) kicks[1]);
}

Test(debounce, two_events_far_apart_each_kick_at_once) {
        uint64_t events[] = { 1 * S, 5 * S }, kicks[8];
        unsigned n = run(S, events, 2, kicks, 8);
        cr_assert_eq(n, 2);
        cr_assert_eq(kicks[0], 1 * S);
        cr_assert_eq(kicks[1], 5 * S, "an event after a quiet interval is a new leading edge");
}

Test(debounce, event_exactly_at_window_end_is_a_new_leading_edge) {
        uint64_t events[] = { 0 + 1, S + 1 }, kicks[8];
        unsigned n = run(S, events, 2, kicks, 8);
        cr_assert_eq(n, 2);
        cr_assert_eq(kicks[1], S + 1);
}

Test(debounce, steady_stream_gives_one_kick_per_interval) {
        uint64_t events[50], kicks[64];
        for (unsigned i = 0; i < 50; i++)
                events[i] = S + i * 100 * MS; /* 10 per second for 5 s */
        unsigned n = run(S, events, 50, kicks, 64);
        /* At 1 s (leading), then trailing at 2, 3, 4, 5, 6 s. */
        cr_assert_eq(n, 6, "5 s of events with a 1 s interval should give 6 kicks, got %u", n);
        for (unsigned i = 1; i < n; i++)
                cr_assert_eq(kicks[i] - kicks[i - 1], S, "kick %u came %llu µs after the previous, expected one interval",
                             i, (unsigned long long) (kicks[i] - kicks[i - 1]));
}

Test(debounce, nothing_held_means_no_timer) {
        struct debounce d;
        debounce_init(&d, S);
        cr_assert_eq(debounce_deadline(&d), UINT64_MAX, "no timer before any event");
        cr_assert(debounce_event(&d, 0 + 7));
        cr_assert_eq(debounce_deadline(&d), UINT64_MAX, "a lone leading kick needs no timer");
        cr_assert_not(debounce_event(&d, 500 * MS));
        cr_assert_eq(debounce_deadline(&d), S + 7, "a held event is kicked for at the window's end");
        cr_assert_eq(debounce_timer(&d, S), 0, "a timer that fires early kicks for nothing");
        cr_assert_eq(debounce_timer(&d, S + 7), 1, "the trailing kick stands for the one held event");
        cr_assert_eq(debounce_deadline(&d), UINT64_MAX, "nothing held after the trailing kick");
}

Test(debounce, zero_interval_kicks_every_event) {
        uint64_t events[] = { 1, 2, 3 }, kicks[8];
        cr_assert_eq(run(0, events, 3, kicks, 8), 3, "without debouncing each event kicks");
}

Test(debounce, huge_interval_does_not_overflow) {
        struct debounce d;
        debounce_init(&d, UINT64_MAX);
        cr_assert(debounce_event(&d, UINT64_MAX - 5));
        cr_assert_not(debounce_event(&d, UINT64_MAX - 4), "the window must not wrap around to the past");
}
