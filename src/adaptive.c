/* SPDX-License-Identifier: Apache-2.0 */
#include "adaptive.h"

#include "parse-util.h"

/* A scan that covered this much more memory than the one before means memory is still
 * appearing (a VM filling its RAM): not settled. */
#define SCAN_GROWTH_PERCENT 10
/* smart_scan skips a page that keeps failing to merge for at most this many full scans
 * between two visits (mm/ksm.c skip_age()). */
#define SMART_SCAN_MAX_SKIPS 8
/* pages_to_scan moves by at most this factor per sample, so that one noisy
 * measurement cannot swing ksmd from idle to flat out. */
#define MAX_STEP_FACTOR 4

/* a * b / c without overflow in a * b; saturates at UINT64_MAX. */
static uint64_t mul_div_saturating(uint64_t a, uint64_t b, uint64_t c) {
        unsigned __int128 product = (unsigned __int128) a * b / (c ? c : 1);
        return product > UINT64_MAX ? UINT64_MAX : (uint64_t) product;
}

void adaptive_config_default(struct adaptive_config *ret) {
        *ret = (struct adaptive_config) {
                .converged_percent = 1,
                .converged_scans = 2,
                .level = {
                        [THROTTLE_AGGRESSIVE] = { .full_scan_usec = 1 * USEC_PER_SEC, .max_cpu_percent = 100 },
                        [THROTTLE_STANDARD] = { .full_scan_usec = 60 * USEC_PER_SEC, .max_cpu_percent = 10 },
                        [THROTTLE_SLOW] = { .full_scan_usec = 180 * USEC_PER_SEC, .max_cpu_percent = 3 },
                },
        };
}

uint64_t adaptive_sample_interval_usec(const struct adaptive *a, enum throttle_state state) {
        switch (state) {
        case THROTTLE_AGGRESSIVE:
                if (a->filling || a->fill_pending)
                        return ADAPTIVE_FILL_SAMPLE_USEC; /* the merge begins when the memory stops growing */
                return 200 * USEC_PER_MSEC; /* a full scan of a large VM takes about a second here */
        case THROTTLE_STANDARD:
                return 2 * USEC_PER_SEC;
        case THROTTLE_SLOW:
                return 5 * USEC_PER_SEC;
        default:
                return 0; /* no sampling in initial */
        }
}

void adaptive_on_kick(struct adaptive *a, const struct ksm_sample *sample) {
        a->last_scan_size = 0;
        a->settled_scans = 0;
        a->scans_needed = 0;
        a->converged = false;
        a->memory_appearing = false;
        a->pages_per_full_scan = 0;
        a->have_previous = false; /* rates over the idle gap before the kick mean nothing */
        a->merge_anon_high = 0;   /* the merge's pace comes from this kick's AnonPages */
        a->merge_going_on = false;
        a->kick_pending = !sample;
        if (!sample)
                return;
        a->kick = *sample;
        a->merge_scans = sample->full_scans;
        a->merge_saved = ksm_sample_saved_pages(sample);
        a->merge_skipped = sample->pages_skipped;
        if (sample->has_anon_pages)
                a->merge_anon_high = sample->anon_pages;
        a->mapped_valid = sample->has_anon_pages;
        a->mapped_low = ksm_sample_mapped_pages_most(sample);
        a->filling_seen = false;
        a->filling = false;
        a->fill_pending = false;
        a->scans_seen = sample->full_scans;
        a->saved_high = ksm_sample_saved_pages(sample);
        a->pages_at_scan = sample->pages_scanned;
        a->rmap_at_scan = ksm_sample_rmap_items(sample);
}

void adaptive_on_state_change(struct adaptive *a) {
        /* The scan rate and CPU seen so far belong to the old state's settings and budget. */
        a->scan_rate = 0;
        a->cpu_valid = false;
        a->cpu_ceiling = 0;
        a->have_previous = false;
}

/* Keeps ksmd within the state's CPU budget: multiplicative decrease when over it, a
 * gentle increase while well under it (a ceiling that jumped back at once would make
 * ksmd swing between flat out and idle). */
static void update_cpu_ceiling(struct adaptive *a, const struct adaptive_level *level, uint32_t current) {
        uint64_t budget = (uint64_t) level->max_cpu_percent * 10;

        if (!a->cpu_valid || budget == 0 || current == 0)
                return;
        if (a->cpu_permille > budget) {
                uint64_t fit = (uint64_t) current * budget / a->cpu_permille;
                a->cpu_ceiling = fit > 0 ? (uint32_t) fit : 1;
        } else if (a->cpu_ceiling > 0 && a->cpu_permille * 4 < budget * 3) {
                uint64_t raised = (uint64_t) a->cpu_ceiling * 5 / 4 + 1;
                a->cpu_ceiling = raised >= UINT32_MAX ? 0 : (uint32_t) raised;
        }
}

static uint32_t saturate_u32(uint64_t v) {
        return v > UINT32_MAX ? UINT32_MAX : (uint32_t) v;
}

/* x grew by more than SCAN_GROWTH_PERCENT over base (a base of 0: any x > 0 is growth). */
static bool grew_beyond(uint64_t x, uint64_t base) {
        return mul_div_saturating(x, 100, 1) > mul_div_saturating(base, 100 + SCAN_GROWTH_PERCENT, 1);
}

/* part is less than percent % of whole, per scan over n scans. */
static bool below_share(uint64_t part, uint32_t percent, uint64_t whole, uint64_t n) {
        return part == 0 || (unsigned __int128) part * 100 < (unsigned __int128) percent * whole * n;
}

/* Whether memory is being filled: what the processes map grew by a step within the last
 * ADAPTIVE_FILL_QUIET_USEC. Growth counts from the least seen since the last step, so that
 * pages freed meanwhile (a THP split's zero-filled pieces, a process exiting) do not hide it.
 * Each reading is a range (ksm_sample_mapped_pages_least/most): the least seen is taken
 * from the top of the ranges, growth from the bottom, so that a merge under way while the
 * counters are read is no growth. */
static void update_filling(struct adaptive *a, const struct ksm_sample *s) {
        if (!s->has_anon_pages) {
                a->mapped_valid = a->filling = a->fill_pending = false;
                return;
        }
        uint64_t mapped = ksm_sample_mapped_pages_least(s), mapped_most = ksm_sample_mapped_pages_most(s);
        if (!a->mapped_valid || mapped_most < a->mapped_low) {
                a->mapped_low = mapped_most;
                a->mapped_valid = true;
        } else if (mapped >= a->mapped_low && mapped - a->mapped_low >= ADAPTIVE_FILL_STEP) {
                a->mapped_low = mapped_most;
                /* The growth's own clock, which kicks do not restart: a quiet time ends it. */
                if (!a->growth_seen || s->time_usec < a->growth_step_usec ||
                    s->time_usec - a->growth_step_usec >= ADAPTIVE_FILL_QUIET_USEC)
                        a->growth_since_usec = s->time_usec;
                a->growth_step_usec = s->time_usec;
                a->growth_seen = true;
                if (a->filling_seen)
                        a->mapped_step_usec = s->time_usec;
        }
        /* Only a kick that a guest's memory follows at once came before it: growth that
         * starts later, or stays small (what a ready guest and the merge itself move), is
         * someone else's and does not hold this kick's merge. */
        bool early = !a->filling_seen && a->kick.has_anon_pages && s->time_usec <= a->kick.time_usec + ADAPTIVE_FILL_START_USEC;
        uint64_t at_kick = ksm_sample_mapped_pages_most(&a->kick);
        bool fast = s->time_usec <= a->kick.time_usec + ADAPTIVE_FILL_FAST_USEC && mapped >= at_kick + ADAPTIVE_FILL_FAST;
        if (early && (mapped >= at_kick + ADAPTIVE_FILL_FIRST || fast)) {
                a->mapped_step_usec = s->time_usec;
                a->filling_seen = true;
        }
        /* Growth under way that may yet turn out to be a guest's: the merge goes on at its
         * pace, but does not settle over memory that is only appearing. */
        a->fill_pending = early && !a->filling_seen && mapped >= at_kick + ADAPTIVE_FILL_STEP;
        a->filling = a->filling_seen && s->time_usec >= a->mapped_step_usec &&
                     s->time_usec - a->mapped_step_usec < ADAPTIVE_FILL_QUIET_USEC &&
                     s->time_usec - a->growth_since_usec < ADAPTIVE_FILL_MAX_USEC;
}

bool adaptive_on_sample(struct adaptive *a, const struct adaptive_config *config, enum throttle_state state,
                        uint32_t current_pages_to_scan, const struct ksm_sample *s) {
        bool measured = false;

        if (a->kick_pending) {
                /* The counters could not be read at the kick: this sample stands in for it. */
                adaptive_on_kick(a, s);
                a->previous = *s;
                a->have_previous = true;
                return false;
        }
        if (a->have_previous && s->time_usec > a->previous.time_usec) {
                uint64_t dt = s->time_usec - a->previous.time_usec;
                if (s->has_ksmd_cpu && a->previous.has_ksmd_cpu && s->ksmd_cpu_usec >= a->previous.ksmd_cpu_usec) {
                        uint64_t permille = mul_div_saturating(s->ksmd_cpu_usec - a->previous.ksmd_cpu_usec, 1000, dt);
                        a->cpu_permille = saturate_u32(permille);
                        a->cpu_valid = true;
                        measured = true;
                }
                if (s->has_pages_scanned && s->pages_scanned >= a->previous.pages_scanned)
                        a->scan_rate = mul_div_saturating(s->pages_scanned - a->previous.pages_scanned, USEC_PER_SEC, dt);
        }
        a->previous = *s;
        a->have_previous = true;
        if (measured && state != THROTTLE_INITIAL) {
                /* Memory appearing in standard, the state right after a kick's aggressive, is
                 * that kick's merge going on (a guest kicked at its start that went quiet for
                 * a while as it booted): it has aggressive's budget. */
                enum throttle_state budget = state == THROTTLE_STANDARD && a->memory_appearing ? THROTTLE_AGGRESSIVE : state;
                update_cpu_ceiling(a, &config->level[budget], current_pages_to_scan);
        }

        uint64_t tracked = ksm_sample_rmap_items(s);
        bool was_filling = a->filling;
        update_filling(a, s);
        /* Not settled over memory that is appearing after a kick before it (at a VM's start). */
        bool held = (a->filling || a->fill_pending) && state == THROTTLE_AGGRESSIVE;
        if (a->filling && !was_filling && state == THROTTLE_AGGRESSIVE)
                /* The kick came before the memory: the merge's pace, set at the kick, is not
                 * what the rate was measured under; the filling pace is sized afresh at once,
                 * not stepped down a quarter per sample (a second of the merge's pace over
                 * everything merged before, about 0.1 CPU-second a guest). */
                a->scan_rate = 0;
        if (held) {
                a->settled_scans = 0;
                a->converged = false;
        } else if (was_filling && state == THROTTLE_AGGRESSIVE) {
                /* The memory is in place: its merge begins now, with its own two full scans
                 * at the merge's pace, before the settle rule looks again. */
                a->merge_scans = s->full_scans;
                a->merge_saved = ksm_sample_saved_pages(s);
                a->merge_skipped = s->pages_skipped;
                a->merge_anon_high = 0;
                a->merge_going_on = false;
                a->settled_scans = 0;
                a->scans_needed = 0;
                a->converged = false;
        }
        if (s->has_anon_pages && s->anon_pages > a->merge_anon_high)
                a->merge_anon_high = s->anon_pages;
        /* Memory appearing shows mid-scan as KSM starts to track it: not only at the next boundary. */
        bool appearing = a->scans_seen > a->kick.full_scans && grew_beyond(tracked, a->rmap_at_scan);
        if (s->full_scans <= a->scans_seen) {
                a->memory_appearing = a->memory_appearing || appearing;
                return a->converged;
        }

        /* One or more full scans ended since the last look. */
        uint64_t n = s->full_scans - a->scans_seen;
        uint64_t saved = ksm_sample_saved_pages(s);
        uint64_t size = s->has_pages_scanned && s->pages_scanned >= a->pages_at_scan ? (s->pages_scanned - a->pages_at_scan) / n
                                                                                      : tracked;
        uint64_t shrink = a->rmap_at_scan > tracked ? a->rmap_at_scan - tracked : 0;

        /* The kernel leaves part of a merge to the pages' next visit (a huge page it could not
         * split at the first try; on the benchmark's guests a third of the pairs): while the
         * merge's last full scan merged a tenth of what the merge had merged before it (its
         * own pages, not the host's other merges), one more scan at the merge's pace, twice
         * at most. It costs no scan more (the settle rule counts the same scans); the merge
         * is done sooner. */
        uint64_t since_merge = s->full_scans - a->merge_scans;
        uint64_t merged_last = saved > a->saved_high ? saved - a->saved_high : 0;
        uint64_t merged_before = a->saved_high > a->merge_saved ? a->saved_high - a->merge_saved : 0;
        a->merge_going_on = since_merge >= 3 && since_merge < 5 && merged_last > 0 &&
                            mul_div_saturating(merged_last, 10, n) >= merged_before;

        /* The first two scans of the merge are its chance (a page merges on its second scan). */
        if (s->full_scans - a->merge_scans <= 2 && s->pages_skipped > a->merge_skipped)
                a->scans_needed = SMART_SCAN_MAX_SKIPS + 1;
        if (s->full_scans - a->merge_scans > 2) {
                /* Growth counts from the streak's start, not scan by scan: merges that smart_scan
                 * spreads thin over the scans in which it lets skipped pages back add up. */
                uint64_t base = a->settled_scans > 0 ? a->saved_at_streak : a->saved_high;
                uint64_t streak_growth = saved > base ? saved - base : 0;
                /* A longer streak (smart_scan) may show no more growth in all than a normal
                 * one: ConvergedPercent over ConvergedScans scans. */
                uint64_t streak = a->scans_needed > config->converged_scans ? a->scans_needed : config->converged_scans;
                bool little_progress = below_share(mul_div_saturating(streak_growth, streak, config->converged_scans ?: 1),
                                                   config->converged_percent, base, 1) &&
                                       below_share(shrink, config->converged_percent, a->rmap_at_scan, n);
                if (little_progress && !appearing && !held) {
                        /* Only scans after the merge's two count, also when one look spans both. */
                        uint64_t after_merge = s->full_scans - a->merge_scans - 2;
                        if (a->settled_scans == 0)
                                a->saved_at_streak = base;
                        a->settled_scans = saturate_u32((uint64_t) a->settled_scans + (n < after_merge ? n : after_merge));
                } else
                        a->settled_scans = 0;
                if (a->settled_scans >= config->converged_scans && a->settled_scans >= a->scans_needed)
                        a->converged = true;
        }

        /* Sizing follows the scanned pages (what pages_to_scan counts); smart_scan makes them
         * swing from one scan to the next, so the last two are averaged. */
        a->pages_per_full_scan = a->last_scan_size > 0 ? (size + a->last_scan_size) / 2 : size;
        a->memory_appearing = appearing;
        a->last_scan_size = size;
        a->scans_seen = s->full_scans;
        if (saved > a->saved_high)
                a->saved_high = saved;
        a->pages_at_scan = s->pages_scanned;
        a->rmap_at_scan = tracked;
        return a->converged;
}

uint32_t adaptive_pages_to_scan(const struct adaptive *a, const struct adaptive_config *config,
                                const struct throttle_config *throttle, enum throttle_state state,
                                uint32_t current_pages_to_scan, uint32_t fallback_pages) {
        const struct adaptive_level *level = &config->level[state];
        uint64_t pages = 0;

        if (state == THROTTLE_INITIAL)
                return 0;
        /* During the merge, aggressive follows the AnonPages rule, re-read at each sample so
         * that the new memory counts: the merge keeps the fixed schedule's pace. While a VM
         * fills its memory after a kick at its start, the merge waits (scanning at standard's
         * pace, below) and begins when the memory is in place. Without AnonPages, memory
         * appearing in the tracked pages keeps the merge's pace instead. */
        bool filling = state == THROTTLE_AGGRESSIVE && a->filling;
        /* The merge's two full scans: the scan under way when it began (at the kick, or when
         * the memory stopped filling) is not one, since it reaches part of the memory only.
         * A page never visited before needs two visits to merge with a page that is not
         * yet a KSM page (the first stores its checksum); a guest booted while ksmd scanned
         * slowly has most of its pages in that case. */
        bool in_merge = a->scans_seen < a->merge_scans + 3 || a->merge_going_on;
        bool merging = state == THROTTLE_AGGRESSIVE && !filling && (in_merge || (a->memory_appearing && !a->mapped_valid));
        bool appearing = a->memory_appearing || filling;

        if (!merging && level->full_scan_usec > 0 && (a->pages_per_full_scan > 0 || filling)) {
                /* The scan under way may already have covered more than the last full one
                 * (memory appeared): a scan overrunning its target speeds itself up. */
                uint64_t progress = a->previous.pages_scanned > a->pages_at_scan ? a->previous.pages_scanned - a->pages_at_scan : 0;
                uint64_t size = progress > a->pages_per_full_scan ? progress : a->pages_per_full_scan;
                uint64_t full_scan_usec = level->full_scan_usec;
                if (appearing) {
                        uint64_t tracked = ksm_sample_rmap_items(&a->previous);
                        size = tracked > size ? tracked : size;
                }
                if (filling) {
                        /* A VM filling its memory after a kick at its start: nothing of it is
                         * ready to merge, and scanning it costs the most (unmerged pages are
                         * checksummed at every visit). Standard's full-scan time, until the
                         * memory is in place and its merge begins. */
                        if (config->level[THROTTLE_STANDARD].full_scan_usec > full_scan_usec)
                                full_scan_usec = config->level[THROTTLE_STANDARD].full_scan_usec;
                } else if (appearing && config->level[THROTTLE_AGGRESSIVE].full_scan_usec > 0 &&
                           config->level[THROTTLE_AGGRESSIVE].full_scan_usec < full_scan_usec)
                        /* Memory appearing after aggressive ended (a VM whose kick comes when it
                         * is ready, or without AnonPages a VM kicked at its start that went quiet
                         * while booting): scanned at aggressive's full-scan time (in standard
                         * also within aggressive's CPU budget, see adaptive_on_sample; in slow
                         * within its own). */
                        full_scan_usec = config->level[THROTTLE_AGGRESSIVE].full_scan_usec;
                /* Pages a second that make one full scan last full_scan_usec. */
                uint64_t needed_rate = mul_div_saturating(size, USEC_PER_SEC, full_scan_usec) + 1;

                if (a->scan_rate > 0 && current_pages_to_scan > 0) {
                        /* Closed loop on what ksmd really scans: covers the tick rounding of
                         * sleep_millisecs and a ksmd that is short of CPU. */
                        pages = mul_div_saturating(current_pages_to_scan, needed_rate, a->scan_rate);
                        if (pages > (uint64_t) current_pages_to_scan * MAX_STEP_FACTOR)
                                pages = (uint64_t) current_pages_to_scan * MAX_STEP_FACTOR;
                        if (pages < current_pages_to_scan / MAX_STEP_FACTOR)
                                pages = current_pages_to_scan / MAX_STEP_FACTOR;
                        if (a->memory_appearing && !filling) {
                                /* New memory is the merge's: no slow ramp up to what the wake-ups
                                 * a second of sleep_millisecs need at the least. */
                                uint32_t sleep_ms = throttle->level[state].sleep_millisecs ?: 1;
                                uint64_t open_loop = mul_div_saturating(needed_rate, sleep_ms, 1000) + 1;
                                pages = open_loop > pages ? open_loop : pages;
                        }
                } else {
                        uint32_t sleep_ms = throttle->level[state].sleep_millisecs ?: 1;
                        pages = mul_div_saturating(needed_rate, sleep_ms, 1000) + 1;
                }
        }
        if (pages == 0) {
                if (state != THROTTLE_AGGRESSIVE)
                        return 0; /* no measurement yet: the caller keeps the AnonPages rule */
                pages = fallback_pages;
                /* The merge moves the pages it merges out of AnonPages: its pace is that of
                 * the most AnonPages it has seen, or its last scan would slow as it succeeds. */
                uint32_t factor = throttle->level[state].pages_per_scan_factor ?: 1;
                if (merging && a->merge_anon_high / factor > pages)
                        pages = a->merge_anon_high / factor;
        }

        /* The CPU budget comes last and wins. */
        if (a->cpu_ceiling > 0 && pages > a->cpu_ceiling)
                pages = a->cpu_ceiling;

        /* Within a tenth of what is set: not worth a write. */
        if (current_pages_to_scan > 0 && pages * 10 > (uint64_t) current_pages_to_scan * 9 &&
            pages * 10 < (uint64_t) current_pages_to_scan * 11)
                pages = current_pages_to_scan;
        /* Last, so that the limits hold even for a value kept (e.g. after a reload). */
        if (pages < throttle->min_pages_to_scan)
                pages = throttle->min_pages_to_scan;
        if (pages > throttle->max_pages_to_scan)
                pages = throttle->max_pages_to_scan;
        return (uint32_t) pages;
}
