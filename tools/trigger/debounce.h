/* SPDX-License-Identifier: Apache-2.0 */
/* Debouncing kicks, leading and trailing edge. Pure: times are given, never read.
 *
 * The first event after a quiet interval kicks at once and opens a window of
 * `interval`. Events inside the window are held; when the window ends with events
 * held, one trailing kick is due and a new window opens, so a steady stream of
 * events gives one kick per interval and a burst gives at most two. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct debounce {
        uint64_t interval_usec;
        uint64_t window_end_usec; /* 0: no window open */
        unsigned held;            /* events held for the trailing kick */
};

void debounce_init(struct debounce *d, uint64_t interval_usec);

/* An event at now. Returns true when it is to be kicked for at once; otherwise it is
 * held, and debounce_deadline() says when to call debounce_timer(). */
bool debounce_event(struct debounce *d, uint64_t now_usec);

/* When debounce_timer() is next due: UINT64_MAX when nothing is held. */
uint64_t debounce_deadline(const struct debounce *d);

/* The deadline passed (now >= deadline). Returns how many held events the trailing
 * kick now due stands for (0: nothing to kick; the window is closed). */
unsigned debounce_timer(struct debounce *d, uint64_t now_usec);
