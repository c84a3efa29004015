/* SPDX-License-Identifier: Apache-2.0 */
/* Where the sources report what they saw: each event is logged with its source,
 * then debounced into kicks. */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

#include "debounce.h"
#include "kick.h"

struct trigger {
        sd_event *event;
        struct kicker *kicker;
        struct debounce debounce;
        sd_event_source *trailing; /* the timer of the trailing kick */
        char last[512];            /* the latest event held for the trailing kick */
};

int trigger_init(struct trigger *t, sd_event *event, struct kicker *kicker, uint64_t debounce_usec);
void trigger_done(struct trigger *t);

/* An event a source saw ("machined", "machine vm1 (vm) registered"). Never blocks. */
void trigger_event(struct trigger *t, const char *source, const char *format, ...) __attribute__((format(printf, 3, 4)));

/* Copies untrusted text (a file name, a machine name) for a log line: control
 * characters and non-ASCII bytes as \xNN, cut with "..." past size. */
const char *text_escape(const char *in, char *buf, size_t size);
