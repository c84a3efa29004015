/* SPDX-License-Identifier: Apache-2.0 */
#include "debounce.h"

void debounce_init(struct debounce *d, uint64_t interval_usec) {
        *d = (struct debounce) { .interval_usec = interval_usec };
}

static uint64_t window_end(uint64_t now_usec, uint64_t interval_usec) {
        return interval_usec > UINT64_MAX - now_usec ? UINT64_MAX - 1 : now_usec + interval_usec;
}

bool debounce_event(struct debounce *d, uint64_t now_usec) {
        if (d->window_end_usec == 0 || now_usec >= d->window_end_usec) {
                /* Quiet before: the leading edge. A window whose end passed with
                 * nothing held is simply over. */
                d->window_end_usec = d->interval_usec > 0 ? window_end(now_usec, d->interval_usec) : 0;
                d->held = 0;
                return true;
        }
        if (d->held < UINT32_MAX)
                d->held++;
        return false;
}

uint64_t debounce_deadline(const struct debounce *d) {
        return d->held > 0 ? d->window_end_usec : UINT64_MAX;
}

unsigned debounce_timer(struct debounce *d, uint64_t now_usec) {
        unsigned held = d->held;

        if (d->window_end_usec == 0 || now_usec < d->window_end_usec)
                return 0; /* early: the caller's timer fired before the window ended */
        d->held = 0;
        if (held == 0) {
                d->window_end_usec = 0;
                return 0;
        }
        /* The trailing kick opens a new window: events still coming are held again. */
        d->window_end_usec = window_end(now_usec, d->interval_usec);
        return held;
}
