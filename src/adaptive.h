/* SPDX-License-Identifier: Apache-2.0 */
/* Adaptive throttling (docs/design.md, Adaptive mode), pure: it is fed samples of KSM's own counters
 * and of ksmd's CPU time, and answers when merging has settled after a kick and what
 * pages_to_scan keeps a state within its target full-scan time and CPU budget.
 * No I/O, no clock: times come in the samples. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "ksm.h"
#include "state-machine.h"

struct adaptive_level {
        uint64_t full_scan_usec;  /* target time for one full scan */
        uint32_t max_cpu_percent; /* of one CPU */
};

struct adaptive_config {
        uint32_t converged_percent; /* saved pages grew by less than this share per full scan */
        uint32_t converged_scans;   /* for this many consecutive full scans */
        struct adaptive_level level[_THROTTLE_STATE_MAX];
};

struct adaptive {
        /* The convergence watch, restarted by each kick. */
        struct ksm_sample kick;
        uint64_t scans_seen;        /* full_scans at the last scan boundary looked at */
        uint64_t saved_at_scan;     /* saved pages at that boundary */
        uint64_t pages_at_scan;     /* pages_scanned at that boundary */
        uint64_t last_scan_size;    /* pages per full scan of the previous counted scan */
        uint32_t settled_scans;     /* consecutive full scans with little growth */
        bool converged;
        bool kick_pending;          /* kicked without a sample: the next sample is the kick's */

        /* Measurements. */
        struct ksm_sample previous;
        bool have_previous;
        uint64_t pages_per_full_scan; /* measured since the kick; 0 until a full scan completed */
        uint64_t scan_rate;           /* pages scanned a second over the last interval; 0 unknown */
        uint32_t cpu_permille;        /* ksmd's CPU share over the last interval, 0..1000+ */
        bool cpu_valid;
        uint32_t cpu_ceiling;         /* pages_to_scan that keeps ksmd within budget; 0 none */
};

void adaptive_config_default(struct adaptive_config *ret);

/* A kick: the watch starts over from this sample (NULL: from the next one). */
void adaptive_on_kick(struct adaptive *a, const struct ksm_sample *sample);

/* The state changed: rates measured under the old settings no longer apply. */
void adaptive_on_state_change(struct adaptive *a);

/* A new sample. Returns true once merging has settled after the kick: at least two
 * full scans after it, then converged_scans consecutive full scans in each of which the
 * saved pages grew by less than converged_percent and the scanned memory did not grow
 * (a VM still filling its memory is not settled). */
bool adaptive_on_sample(struct adaptive *a, const struct adaptive_config *config, enum throttle_state state,
                        uint32_t current_pages_to_scan, const struct ksm_sample *sample);

/* pages_to_scan for state: with a measured scan size (or the scan under way, if it has
 * already covered more), what makes one full scan take the state's full_scan_usec at the
 * observed scan rate (current_pages_to_scan gave it) or, with no rate yet, at
 * 1000/sleep_millisecs wake-ups a second; in aggressive before any measured scan, the
 * AnonPages rule (fallback_pages), as in the fixed schedule; and never above the CPU ceiling: cut to what fits the state's budget whenever ksmd is
 * over it, let up by a quarter per sample while ksmd stays well under it.
 * 0 means no opinion: use fallback. */
uint32_t adaptive_pages_to_scan(const struct adaptive *a, const struct adaptive_config *config,
                                const struct throttle_config *throttle, enum throttle_state state,
                                uint32_t current_pages_to_scan, uint32_t fallback_pages);

/* How often to sample in a state. */
uint64_t adaptive_sample_interval_usec(enum throttle_state state);
