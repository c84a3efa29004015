/* SPDX-License-Identifier: Apache-2.0 */
/* The throttling schedule as a pure state machine: no I/O, no clock (docs/design.md,
 * The state machine).
 * Callers pass the time (CLOCK_MONOTONIC µs) and AnonPages; it returns states and settings. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "ksm.h"

enum throttle_state {
        THROTTLE_INITIAL,
        THROTTLE_AGGRESSIVE,
        THROTTLE_STANDARD,
        THROTTLE_SLOW,
        _THROTTLE_STATE_MAX,
};

/* What a state does with a knob that is on or off (smart_scan, use_zero_pages, where the
 * kernel has it): the host's value, off, on. */
enum throttle_switch {
        THROTTLE_SWITCH_HOST,
        THROTTLE_SWITCH_OFF,
        THROTTLE_SWITCH_ON,
        _THROTTLE_SWITCH_MAX,
};

struct throttle_level {
        uint64_t duration_usec;          /* time in this state without a kick */
        uint32_t pages_per_scan_factor;  /* pages_to_scan = AnonPages / factor */
        uint32_t sleep_millisecs;
        enum throttle_switch smart_scan;
        enum throttle_switch use_zero_pages;
};

struct throttle_config {
        struct throttle_level level[_THROTTLE_STATE_MAX]; /* [THROTTLE_INITIAL] unused */
        uint32_t min_pages_to_scan;
        uint32_t max_pages_to_scan;
};

struct throttle {
        enum throttle_state state;
        uint64_t deadline_usec; /* when the state decays; 0 in initial */
};

const char *throttle_state_to_string(enum throttle_state state);
enum throttle_state throttle_state_from_string(const char *s);

/* "host", "no", "yes"; and back (also "off"/"on", "0"/"1"...; _THROTTLE_SWITCH_MAX if none). */
const char *throttle_switch_to_string(enum throttle_switch v);
enum throttle_switch throttle_switch_from_string(const char *s);

/* The built-in schedule: 30 s aggressive, 2 min standard, 2 min slow; smart_scan off in
 * aggressive (docs/design.md, smart_scan while throttling), the host's elsewhere;
 * use_zero_pages on in aggressive, the host's elsewhere. */
void throttle_config_default(struct throttle_config *ret);

static inline void throttle_init(struct throttle *t) {
        *t = (struct throttle) { .state = THROTTLE_INITIAL };
}

/* A kick at now: aggressive, with its timer restarted. */
void throttle_on_kick(struct throttle *t, const struct throttle_config *config, uint64_t now);

/* The timer fired at now. Returns true if the state decayed (false if it was not due yet). */
bool throttle_on_timer(struct throttle *t, const struct throttle_config *config, uint64_t now);

/* Adaptive mode saw merging settle: aggressive gives way to the next state now.
 * Returns true if the state changed. */
bool throttle_on_converged(struct throttle *t, const struct throttle_config *config, uint64_t now);

/* The knob values for state: the host's own in initial, else the level's values with
 * pages_to_scan = AnonPages / factor clamped to [min, max], run=1, (where the kernel
 * has it) advisor_mode=none so that pages_to_scan can be written, and (where the kernel
 * has it) the level's smart_scan and use_zero_pages, or the host's value for
 * THROTTLE_SWITCH_HOST. */
void throttle_settings(const struct throttle_config *config, enum throttle_state state, uint64_t anon_pages,
                       const struct ksm_settings *host, struct ksm_settings *ret);
