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
        uint64_t saved_high;        /* the most saved pages seen at a boundary since the kick */
        uint64_t pages_at_scan;     /* pages_scanned at that boundary */
        uint64_t rmap_at_scan;      /* KSM's rmap items at that boundary (see ksm_sample_rmap_items) */
        uint64_t last_scan_size;    /* pages scanned per full scan, previous counted scan */
        uint32_t settled_scans;     /* consecutive full scans with little progress */
        uint64_t saved_at_streak;   /* saved_high when that streak began */
        uint32_t scans_needed;      /* of those, to settle: converged_scans, more if smart_scan held pages back */
        bool converged;
        bool kick_pending;          /* kicked without a sample: the next sample is the kick's */
        bool memory_appearing;      /* the tracked pages grew by more than a tenth since the last boundary */

        /* The merge: the kick's, or, after a kick that came before the memory (at a VM's
         * start), the one that begins when the memory stops appearing. */
        uint64_t merge_scans;       /* full_scans when it began: the two scans after are its own */
        uint64_t merge_skipped;     /* pages_skipped then */
        uint64_t merge_saved;       /* the saved pages then (other guests' merges before it) */
        uint64_t merge_anon_high;   /* the most AnonPages seen since it began (0 without AnonPages) */
        bool merge_going_on;        /* its last full scan still merged much of what it merged: one more at its pace */
        /* Memory being filled, seen in what the processes map (ksm_sample_mapped_pages_least): it
         * shows at once, however fast or slow ksmd scans, unlike the pages KSM tracks. */
        bool mapped_valid;
        uint64_t mapped_low;        /* the least mapped pages since the last step of growth */
        uint64_t mapped_step_usec;  /* when they last grew by a step; valid if filling_seen */
        bool filling_seen;
        bool filling;               /* a step of growth within the last ADAPTIVE_FILL_QUIET_USEC */
        bool fill_pending;          /* growth since the kick, not yet ADAPTIVE_FILL_FIRST */
        /* Growth by steps, whoever's, across kicks: a host that keeps allocating (guests
         * starting back to back, its own jobs) must not hold merges for longer than
         * ADAPTIVE_FILL_MAX_USEC. */
        bool growth_seen;
        uint64_t growth_step_usec;  /* the last step of growth */
        uint64_t growth_since_usec; /* the first step of growth with no quiet time since */

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

/* The pages KSM tracks (one rmap item each): every page of the mergeable areas present
 * when ksmd last passed it, merged or not, skipped by smart_scan or not. Unlike the pages
 * scanned per full scan, it is known at every sample (no scan boundary to catch) and does
 * not swing with smart_scan, which skips a page that did not merge for a growing number of
 * scans; it shrinks when a THP split maps zero-filled parts to the zero page. */
static inline uint64_t ksm_sample_rmap_items(const struct ksm_sample *s) {
        return s->pages_shared + s->pages_sharing + s->pages_unshared + s->pages_volatile;
}

/* What the processes map, in pages: AnonPages plus the pages KSM saved (a merge frees a
 * page from AnonPages and counts it in pages_sharing), so that it grows as memory is
 * filled and holds still while that memory is merged. 0 without AnonPages. As the least
 * and the most it can have been: AnonPages is read before and after KSM's counters, and
 * a merge moves pages from the one to the other meanwhile (a daemon preempted for a 4 ms
 * tick between the reads while ksmd merges 300 000 pages a second would see what is
 * mapped fall by 1200 pages, and come back once the merge is done: growth, where nothing
 * grew). */
static inline uint64_t ksm_sample_mapped_pages_least(const struct ksm_sample *s) {
        uint64_t anon = s->has_anon_pages_before && s->anon_pages_before < s->anon_pages ? s->anon_pages_before : s->anon_pages;
        return s->has_anon_pages ? anon + s->pages_sharing + s->ksm_zero_pages : 0;
}

static inline uint64_t ksm_sample_mapped_pages_most(const struct ksm_sample *s) {
        uint64_t anon = s->has_anon_pages_before && s->anon_pages_before > s->anon_pages ? s->anon_pages_before : s->anon_pages;
        return s->has_anon_pages ? anon + s->pages_sharing + s->ksm_zero_pages : 0;
}

/* Memory is being filled while what the processes map grew by a step (ADAPTIVE_FILL_STEP)
 * within the last ADAPTIVE_FILL_QUIET_USEC, after ADAPTIVE_FILL_FIRST within
 * ADAPTIVE_FILL_START_USEC of the kick, for at most ADAPTIVE_FILL_MAX_USEC of growth
 * without a quiet time. Replayed on 37 recorded TCG boots (test/data/adaptive and the
 * benchmark's recordings), 2 MiB and 0.8 s sampled every 100 ms began each guest's merge
 * 0.8 s after its "ready" line (its last growth comes with it) and 4 merges in pauses of
 * the boots; a quiet second sampled every 200 ms began them 1.0-1.4 s after the ready line and 1 in a
 * pause, 0.6 s sampled every 100 ms 43. 8 MiB or a 64th of the tracked pages began 13, in 6
 * of 13 boots (a guest writing 2-8 MiB a second for a while looked done, or any guest
 * after the first on a host with more tracked pages). A merge begun in a pause runs at
 * its pace until the next sample sees the growth: a tenth of a ksmd CPU-second. */
#define ADAPTIVE_FILL_STEP 512 /* 2 MiB */
#define ADAPTIVE_FILL_QUIET_USEC (800 * USEC_PER_MSEC)
/* While memory fills, samples come this often: the quiet time is seen within a tenth of a
 * second of its end (at 200 ms, the merge began 1.0-1.4 s after the ready line for a quiet
 * time of 1 s). Also while growth after a kick may yet be a guest's (fill_pending). */
#define ADAPTIVE_FILL_SAMPLE_USEC (100 * USEC_PER_MSEC)
/* Growth that goes on longer is not one guest filling its memory but many starting, or the
 * host's own: the merges it held begin. */
#define ADAPTIVE_FILL_MAX_USEC (20 * USEC_PER_SEC)
/* A kick came before the memory if this much more is mapped within ADAPTIVE_FILL_START_USEC
 * of it: a VM's memory grows within a second of its start (by 190-240 MiB in the first
 * second on the benchmark's TCG guests), while after a kick when a guest was ready what
 * is mapped moved by 27 MiB at most in 3 s (a merge's accounting, the host's own). Once it
 * did, steps of ADAPTIVE_FILL_STEP count (pauses in a boot). */
#define ADAPTIVE_FILL_FIRST 16384 /* 64 MiB */
#define ADAPTIVE_FILL_START_USEC (3 * USEC_PER_SEC)
/* Or half that within the first sample or two: a guest's memory shows at that rate (25-177
 * MiB 0.2 s after the kick on the benchmark's TCG guests, above 32 for 12 of 13), a ready
 * guest's does not (0.6 MiB at most in the first 0.5 s after 6 ready kicks), and each
 * sample sooner spares the merge's pace over every guest merged before
 * (about 0.1 ksmd CPU-second each). */
#define ADAPTIVE_FILL_FAST 8192 /* 32 MiB */
#define ADAPTIVE_FILL_FAST_USEC (500 * USEC_PER_MSEC)

/* A new sample. Returns true once merging has settled after the kick: at least two
 * full scans after the merge began (at the kick; in aggressive, when memory filled after
 * the kick stopped appearing: a kick that came at a VM's start is not settled while the VM
 * fills its memory, and its merge begins when the memory is in place), then converged_scans consecutive full scans in each of which
 * - the saved pages rose above their high-water mark since the kick by less than
 *   converged_percent of it, counted from the streak's first scan (pages that volatile
 *   content unmerged and that merge again are not progress, and neither is a trickle),
 * - the tracked pages (ksm_sample_rmap_items) shrank by less than converged_percent
 *   (a THP split maps the zero-filled parts to the zero page: saved, but not counted in
 *   pages_sharing; KSM tracks fewer pages instead), and
 * - the tracked pages did not grow by more than a tenth (a VM still filling its memory is
 *   not settled); growth that shows mid-scan counts at once.
 * Where smart_scan skipped pages during the merge's two scans, those pages were failing to
 * merge before the kick and may hold the new content: the kernel visits them only every
 * few scans (at most every SMART_SCAN_MAX_SKIPS + 1), so the streak must be that long. */
bool adaptive_on_sample(struct adaptive *a, const struct adaptive_config *config, enum throttle_state state,
                        uint32_t current_pages_to_scan, const struct ksm_sample *sample);

/* pages_to_scan for state: with a measured scan size (or the scan under way, if it has
 * already covered more), what makes one full scan take the state's full_scan_usec at the
 * observed scan rate (current_pages_to_scan gave it) or, with no rate yet, at
 * 1000/sleep_millisecs wake-ups a second; in aggressive during the merge (its first two
 * full scans, and up to two more while the last one merged a tenth of what the merge
 * merged before it; without
 * AnonPages in the samples, also as long as the tracked pages grow),
 * the AnonPages rule (fallback_pages, or the most AnonPages seen since the merge began
 * over the state's factor if more), as in the fixed schedule; in aggressive while memory
 * is being filled (a kick before the memory), standard's full-scan time over the tracked
 * pages: the merge's pace waits for the memory to be in place; in standard and slow while memory is
 * appearing, sized to aggressive's full-scan time (in standard within aggressive's CPU
 * budget: the kick's merge goes on); and never above the CPU ceiling: cut to what
 * fits the state's budget whenever ksmd is over it, let up by a quarter per sample while
 * ksmd stays well under it.
 * 0 means no opinion: use fallback. */
uint32_t adaptive_pages_to_scan(const struct adaptive *a, const struct adaptive_config *config,
                                const struct throttle_config *throttle, enum throttle_state state,
                                uint32_t current_pages_to_scan, uint32_t fallback_pages);

/* How often to sample in a state (more often in aggressive while memory fills after a kick
 * before it, see ADAPTIVE_FILL_SAMPLE_USEC). */
uint64_t adaptive_sample_interval_usec(const struct adaptive *a, enum throttle_state state);
