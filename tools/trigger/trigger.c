/* SPDX-License-Identifier: Apache-2.0 */
#include "trigger.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

const char *text_escape(const char *in, char *buf, size_t size) {
        size_t used = 0;

        for (const unsigned char *p = (const unsigned char *) in; *p; p++) {
                char piece[8];
                size_t n;
                if (*p < 0x20 || *p >= 0x7f || *p == '\\')
                        n = (size_t) snprintf(piece, sizeof piece, "\\x%02x", *p);
                else
                        piece[0] = (char) *p, n = 1;
                if (used + n + 4 > size) {
                        snprintf(buf + used, size - used, "...");
                        return buf;
                }
                memcpy(buf + used, piece, n);
                used += n;
        }
        buf[used] = '\0';
        return buf;
}

static uint64_t now_usec(struct trigger *t) {
        uint64_t now = 0;
        (void) sd_event_now(t->event, CLOCK_MONOTONIC, &now);
        return now;
}

static int on_trailing(sd_event_source *s, uint64_t usec, void *userdata) {
        struct trigger *t = userdata;
        unsigned held = debounce_timer(&t->debounce, now_usec(t));
        (void) s, (void) usec;

        if (held > 0) {
                char reason[700];
                snprintf(reason, sizeof reason, "%s%s", t->last,
                         held > 1 ? " and more events since the last kick" : "");
                log_info("Kicking the throttler: %s (%u event%s since the last kick)", t->last, held, held > 1 ? "s" : "");
                kicker_kick(t->kicker, reason);
        }
        uint64_t deadline = debounce_deadline(&t->debounce);
        if (deadline != UINT64_MAX) {
                /* Not expected (a trailing kick leaves nothing held), but never lose a held event. */
                (void) sd_event_source_set_time(s, deadline);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        return 0;
}

void trigger_event(struct trigger *t, const char *source, const char *format, ...) {
        char what[400], reason[512];
        va_list ap;

        va_start(ap, format);
        vsnprintf(what, sizeof what, format, ap);
        va_end(ap);
        snprintf(reason, sizeof reason, "%s: %s", source, what);

        if (debounce_event(&t->debounce, now_usec(t))) {
                log_info("Kicking the throttler: %s", reason);
                kicker_kick(t->kicker, reason);
                return;
        }

        log_debug("Held for a kick at the end of the debounce interval: %s", reason);
        snprintf(t->last, sizeof t->last, "%s", reason);
        uint64_t deadline = debounce_deadline(&t->debounce);
        int r;
        if (!t->trailing)
                r = sd_event_add_time(t->event, &t->trailing, CLOCK_MONOTONIC, deadline, 0, on_trailing, t);
        else if ((r = sd_event_source_set_time(t->trailing, deadline)) >= 0)
                r = sd_event_source_set_enabled(t->trailing, SD_EVENT_ONESHOT);
        if (r < 0) {
                /* Cannot wait: kick now rather than lose the event. */
                log_warning_errno(r, "Cannot arm the debounce timer (%m); kicking at once: %s", reason);
                kicker_kick(t->kicker, reason);
        }
}

int trigger_init(struct trigger *t, sd_event *event, struct kicker *kicker, uint64_t debounce_usec) {
        *t = (struct trigger) { .event = event, .kicker = kicker };
        debounce_init(&t->debounce, debounce_usec);
        return 0;
}

void trigger_done(struct trigger *t) {
        t->trailing = sd_event_source_disable_unref(t->trailing);
}
