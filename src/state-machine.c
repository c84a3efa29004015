/* SPDX-License-Identifier: Apache-2.0 */
#include "state-machine.h"

#include <string.h>

#include "parse-util.h"

static const char *const state_names[_THROTTLE_STATE_MAX] = {
        [THROTTLE_INITIAL] = "initial",
        [THROTTLE_AGGRESSIVE] = "aggressive",
        [THROTTLE_STANDARD] = "standard",
        [THROTTLE_SLOW] = "slow",
};

const char *throttle_switch_to_string(enum throttle_switch v) {
        static const char *const names[_THROTTLE_SWITCH_MAX] = {
                [THROTTLE_SWITCH_HOST] = "host",
                [THROTTLE_SWITCH_OFF] = "no",
                [THROTTLE_SWITCH_ON] = "yes",
        };
        return v >= 0 && v < _THROTTLE_SWITCH_MAX ? names[v] : NULL;
}

enum throttle_switch throttle_switch_from_string(const char *s) {
        bool b;

        if (strcmp(s, "host") == 0)
                return THROTTLE_SWITCH_HOST;
        if (parse_boolean(s, &b) < 0)
                return _THROTTLE_SWITCH_MAX;
        return b ? THROTTLE_SWITCH_ON : THROTTLE_SWITCH_OFF;
}

const char *throttle_state_to_string(enum throttle_state state) {
        return state >= 0 && state < _THROTTLE_STATE_MAX ? state_names[state] : NULL;
}

enum throttle_state throttle_state_from_string(const char *s) {
        for (int i = 0; i < _THROTTLE_STATE_MAX; i++)
                if (strcmp(s, state_names[i]) == 0)
                        return i;
        return _THROTTLE_STATE_MAX;
}

void throttle_config_default(struct throttle_config *ret) {
        *ret = (struct throttle_config) {
                .level = {
                        /* smart_scan off while merging: every page is looked at in the
                         * merge's scans, none ages into skipping; use_zero_pages on: empty
                         * pages go to the zero page, not to long chains of one KSM page
                         * (docs/design.md). */
                        [THROTTLE_AGGRESSIVE] = { 30 * USEC_PER_SEC, 10, 1, THROTTLE_SWITCH_OFF, THROTTLE_SWITCH_ON },
                        [THROTTLE_STANDARD] = { 120 * USEC_PER_SEC, 100, 10, THROTTLE_SWITCH_HOST, THROTTLE_SWITCH_HOST },
                        [THROTTLE_SLOW] = { 120 * USEC_PER_SEC, 500, 100, THROTTLE_SWITCH_HOST, THROTTLE_SWITCH_HOST },
                },
                .min_pages_to_scan = 64,
                /* The kernel advisor's own default ceiling (advisor_max_pages_to_scan). */
                .max_pages_to_scan = 30000,
        };
}

static void enter(struct throttle *t, const struct throttle_config *config, enum throttle_state state, uint64_t now) {
        t->state = state;
        t->deadline_usec = state == THROTTLE_INITIAL ? 0 : now + config->level[state].duration_usec;
}

void throttle_on_kick(struct throttle *t, const struct throttle_config *config, uint64_t now) {
        enter(t, config, THROTTLE_AGGRESSIVE, now);
}

bool throttle_on_timer(struct throttle *t, const struct throttle_config *config, uint64_t now) {
        if (t->state == THROTTLE_INITIAL || now < t->deadline_usec)
                return false;
        enter(t, config, t->state == THROTTLE_SLOW ? THROTTLE_INITIAL : t->state + 1, now);
        return true;
}

bool throttle_on_converged(struct throttle *t, const struct throttle_config *config, uint64_t now) {
        if (t->state != THROTTLE_AGGRESSIVE)
                return false;
        enter(t, config, THROTTLE_STANDARD, now);
        return true;
}


/* An on/off knob per the state's policy, where the kernel has it; the host's value stays for
 * THROTTLE_SWITCH_HOST. */
static void set_switch(struct ksm_settings *ret, const struct ksm_settings *host, enum ksm_knob knob,
                       enum throttle_switch policy) {
        if (ksm_settings_has(host, knob) && policy != THROTTLE_SWITCH_HOST)
                ksm_settings_set(ret, knob, policy == THROTTLE_SWITCH_ON);
}

void throttle_settings(const struct throttle_config *config, enum throttle_state state, uint64_t anon_pages,
                       const struct ksm_settings *host, struct ksm_settings *ret) {
        const struct throttle_level *level = &config->level[state];
        uint64_t pages;

        *ret = *host;
        if (state == THROTTLE_INITIAL)
                return;

        pages = anon_pages / (level->pages_per_scan_factor ? level->pages_per_scan_factor : 1);
        if (pages < config->min_pages_to_scan)
                pages = config->min_pages_to_scan;
        if (pages > config->max_pages_to_scan)
                pages = config->max_pages_to_scan;

        ksm_settings_set(ret, KSM_KNOB_RUN, 1);
        ksm_settings_set(ret, KSM_KNOB_PAGES_TO_SCAN, (uint32_t) pages);
        ksm_settings_set(ret, KSM_KNOB_SLEEP_MILLISECS, level->sleep_millisecs);
        if (ksm_settings_has(host, KSM_KNOB_ADVISOR_MODE))
                ksm_settings_set(ret, KSM_KNOB_ADVISOR_MODE, KSM_ADVISOR_NONE);
        set_switch(ret, host, KSM_KNOB_SMART_SCAN, level->smart_scan);
        set_switch(ret, host, KSM_KNOB_USE_ZERO_PAGES, level->use_zero_pages);
}
