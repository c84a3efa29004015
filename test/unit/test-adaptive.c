/* SPDX-License-Identifier: Apache-2.0 */
/* Adaptive throttling with injected counter sequences: convergence, sizing, CPU budget. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>

#include "adaptive.h"
#include "ksm.h"
#include "parse-util.h"

static struct adaptive_config config;
static struct throttle_config throttle;

static void setup(void) {
        adaptive_config_default(&config);
        throttle_config_default(&throttle);
}

TestSuite(adaptive, .init = setup);

/* A sample at t seconds after 0 with the given full scan count and saved pages; each full
 * scan covers 262144 pages (1 GiB), so pages_scanned follows the scan count, and KSM tracks
 * all of them (those not merged are unshared). */
static struct ksm_sample sample(double t, uint64_t full_scans, uint64_t saved) {
        return (struct ksm_sample) {
                .time_usec = (uint64_t) (t * USEC_PER_SEC),
                .full_scans = full_scans,
                .pages_scanned = full_scans * 262144,
                .has_pages_scanned = true,
                .pages_sharing = saved,
                .pages_unshared = saved < 262144 ? 262144 - saved : 0,
        };
}

/* A kick at a VM's start: little mapped yet (AnonPages in the samples), little tracked. */
static void kick_before_the_memory(struct adaptive *a, struct ksm_sample *s) {
        s->has_anon_pages = true;
        s->anon_pages = 10000;
        s->pages_unshared = 1000;
        adaptive_on_kick(a, s);
}

static bool feed(struct adaptive *a, struct ksm_sample s) {
        return adaptive_on_sample(a, &config, THROTTLE_AGGRESSIVE, 30000, &s);
}

Test(adaptive, settles_after_two_scans_of_little_growth_following_the_merge) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 10, 0);

        adaptive_on_kick(&a, &kick);
        cr_assert_not(feed(&a, sample(0.5, 11, 100000)), "scan 1 after the kick: the merge's chance");
        cr_assert_not(feed(&a, sample(1.0, 12, 190000)), "scan 2 after the kick: the merge's chance");
        cr_assert_not(feed(&a, sample(1.5, 13, 195000)), "2.6 %% growth is not settled");
        cr_assert_not(feed(&a, sample(2.0, 14, 195500)), "one settled scan of two");
        cr_assert(feed(&a, sample(2.5, 15, 195600)), "two settled scans in a row");
}

Test(adaptive, never_before_two_full_scans_after_the_kick) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 10, 5000);

        adaptive_on_kick(&a, &kick);
        /* Nothing new to merge at all: growth 0 from the start. */
        cr_assert_not(feed(&a, sample(0.2, 11, 5000)));
        cr_assert_not(feed(&a, sample(0.4, 12, 5000)));
        cr_assert_not(feed(&a, sample(0.6, 13, 5000)), "only one counted scan so far");
        cr_assert(feed(&a, sample(0.8, 14, 5000)));
}

/* A late look (a busy machine) can span the merge's scans and one more: only the scans after
 * the merge's two count towards settling. */
Test(adaptive, a_look_spanning_the_merge_scans_counts_only_the_scans_after_them) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 10, 5000);

        adaptive_on_kick(&a, &kick);
        cr_assert_not(feed(&a, sample(0.8, 13, 5000)),
                      "three scans in one look: two were the merge's, only one counts as settled");
        cr_assert(feed(&a, sample(1.0, 14, 5000)), "the second scan after the merge's two settles it");
}

Test(adaptive, samples_between_scan_ends_change_nothing) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 10, 0);

        adaptive_on_kick(&a, &kick);
        for (int i = 1; i <= 20; i++)
                cr_assert_not(feed(&a, sample(0.1 * i, 10, (uint64_t) i * 1000)), "no full scan ended yet");
}

Test(adaptive, a_settling_streak_is_broken_by_growth) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 0);

        adaptive_on_kick(&a, &kick);
        feed(&a, sample(1, 1, 1000));
        feed(&a, sample(2, 2, 100000));
        cr_assert_not(feed(&a, sample(3, 3, 100100)), "settled 1");
        cr_assert_not(feed(&a, sample(4, 4, 120000)), "a new VM's pages merge: streak broken");
        cr_assert_not(feed(&a, sample(5, 5, 120100)), "settled 1 again");
        cr_assert(feed(&a, sample(6, 6, 120200)));
}

Test(adaptive, memory_still_appearing_is_not_settled) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 0), s;

        adaptive_on_kick(&a, &kick);
        /* Each scan covers 20 % more memory than the one before (a VM filling its RAM), and
         * nothing merges yet: growth 0, but not settled. */
        uint64_t scanned = 0, size = 10000;
        for (int scan = 1; scan <= 8; scan++) {
                scanned += size;
                size = size * 6 / 5;
                s = sample(scan, (uint64_t) scan, 0);
                s.pages_scanned = scanned;
                s.pages_unshared = size;
                cr_assert_not(feed(&a, s), "scan %d of growing memory", scan);
        }
        /* Then the memory stops growing: KSM tracks as many pages at the ends of scans 9
         * and 10 as at the end of scan 8, which settles it. */
        for (int scan = 9; scan <= 10; scan++) {
                scanned += size;
                s = sample(scan, (uint64_t) scan, 0);
                s.pages_scanned = scanned;
                s.pages_unshared = size;
                cr_assert_eq(feed(&a, s), scan == 10, "scan %d", scan);
        }
}

Test(adaptive, smart_scan_swinging_scan_sizes_do_not_reset_the_watch) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 0), s;

        adaptive_on_kick(&a, &kick);
        /* smart_scan skips pages that did not merge, and brings them back: the pages scanned
         * per full scan swing between about 110000 and 200000 while KSM tracks the same
         * 262144 pages (the synthetic run with volatile pages). */
        uint64_t scanned = 0;
        bool settled = false;
        int scan;
        for (scan = 1; scan <= 8 && !settled; scan++) {
                scanned += scan % 2 ? 110000 : 200000;
                s = sample(scan, (uint64_t) scan, 150000);
                s.pages_scanned = scanned;
                settled = feed(&a, s);
        }
        cr_assert(settled, "still aggressive after 8 swinging full scans");
        cr_assert_eq(scan - 1, 4, "settled after full scan %d; the merge's two scans and two more would do", scan - 1);
}

Test(adaptive, volatile_pages_that_merge_again_are_not_progress) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 0);

        adaptive_on_kick(&a, &kick);
        feed(&a, sample(1, 1, 100000));
        feed(&a, sample(2, 2, 190000));
        /* Pages rewritten by the workload unmerge and merge again: saved swings by 5 %
         * around its high-water mark without ever rising above it by 1 %. */
        cr_assert_not(feed(&a, sample(3, 3, 180500)), "one settled scan");
        cr_assert(feed(&a, sample(4, 4, 190100)), "back to the high-water mark is not growth");
}

Test(adaptive, thp_splits_that_free_zero_pages_are_progress) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 0), s;

        adaptive_on_kick(&a, &kick);
        feed(&a, sample(1, 1, 50000));
        feed(&a, sample(2, 2, 50000));
        /* KSM splits huge pages to merge them; the zero-filled parts go to the zero page,
         * uncounted in pages_sharing: the saved pages stay, the tracked pages shrink. */
        uint64_t tracked = 262144;
        for (int scan = 3; scan <= 6; scan++) {
                tracked -= 10000;
                s = sample(scan, (uint64_t) scan, 50000);
                s.pages_unshared = tracked - 50000;
                cr_assert_not(feed(&a, s), "scan %d: 10000 pages went to the zero page", scan);
        }
        for (int scan = 7; scan <= 8; scan++) {
                s = sample(scan, (uint64_t) scan, 50000);
                s.pages_unshared = tracked - 50000;
                cr_assert_eq(feed(&a, s), scan == 8, "scan %d: nothing split any more", scan);
        }
}

Test(adaptive, memory_appearing_mid_scan_keeps_the_merge_pace) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 0), s;
        const uint32_t anon_rule = 26000;

        /* Kicked at a VM's start (no AnonPages in the samples): 10000 pages exist, the
         * merge's scans (the one under way and two more) are short. */
        kick.pages_unshared = 10000;
        adaptive_on_kick(&a, &kick);
        for (int scan = 1; scan <= 3; scan++) {
                s = sample(0.1 * scan, (uint64_t) scan, 0);
                s.pages_scanned = (uint64_t) scan * 10000;
                s.pages_unshared = 10000;
                feed(&a, s);
        }
        cr_assert_lt(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, anon_rule, anon_rule), anon_rule,
                     "the merge's scans of stable memory done: sized from the measured scan");
        /* The guest fills its RAM: mid-scan, KSM already tracks 50 % more pages. */
        s = sample(0.5, 3, 0);
        s.pages_scanned = 35000;
        s.pages_unshared = 15000;
        cr_assert_not(feed(&a, s));
        cr_assert(a.memory_appearing);
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, anon_rule, anon_rule), anon_rule,
                     "memory appearing: the AnonPages rule, as during the merge");
        /* It stops growing: two scans of the same size later, sized again and settled. */
        for (int scan = 4; scan <= 6; scan++) {
                s = sample(0.5 + 0.2 * scan, (uint64_t) scan, 0);
                s.pages_scanned = 35000 + (uint64_t) (scan - 3) * 15000;
                s.pages_unshared = 15000;
                cr_assert_eq(feed(&a, s), scan == 6, "scan %d", scan);
        }
        cr_assert_not(a.memory_appearing);
        cr_assert_lt(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, anon_rule, anon_rule), anon_rule);
}

Test(adaptive, pages_smart_scan_skips_during_the_merge_get_their_visits_first) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 0), s;

        adaptive_on_kick(&a, &kick);
        /* Pages that kept failing to merge before the kick (a guest booting under fast scans)
         * are skipped during the merge's scans: their new content is seen only when smart_scan
         * lets ksmd visit them again, at most 9 scans apart. */
        int scan;
        bool settled = false;
        for (scan = 1; scan <= 20 && !settled; scan++) {
                s = sample(scan, (uint64_t) scan, 100000);
                s.pages_skipped = (uint64_t) scan * 30000;
                settled = feed(&a, s);
        }
        cr_assert(settled);
        cr_assert_eq(scan - 1, 2 + 9, "settled after full scan %d: the merge's two, then a visit for every skipped page",
                     scan - 1);

        /* Skipping that starts only after the merge's scans (pages failing for the first
         * time since the kick) has seen their content: the streak of two holds. */
        kick = sample(30, 30, 100000);
        adaptive_on_kick(&a, &kick);
        settled = false;
        for (scan = 31; scan <= 40 && !settled; scan++) {
                s = sample(scan, (uint64_t) scan, 100000);
                s.pages_skipped = scan > 32 ? (uint64_t) scan * 30000 : 0;
                settled = feed(&a, s);
        }
        cr_assert_eq(scan - 1, 34, "settled after full scan %d", scan - 1);
}

Test(adaptive, memory_appearing_after_aggressive_is_merged_at_its_pace_within_the_budget) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 100000), s;

        adaptive_on_kick(&a, &kick);
        for (int scan = 1; scan <= 4; scan++)
                feed(&a, sample(scan, (uint64_t) scan, 100000));
        cr_assert(a.converged);
        adaptive_on_state_change(&a);
        s = sample(5, 5, 100000);
        adaptive_on_sample(&a, &config, THROTTLE_STANDARD, 1000, &s);
        /* 1 GiB in 60 s at 100 wake-ups a second: 44, raised to MinPagesToScan. */
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 0, 9999), 64);

        /* A guest kicked at its start went quiet for a few scans and now fills its RAM:
         * KSM tracks 50 % more pages mid-scan. */
        s = sample(6, 5, 100000);
        s.pages_unshared += 131072;
        adaptive_on_sample(&a, &config, THROTTLE_STANDARD, 64, &s);
        cr_assert(a.memory_appearing);
        uint32_t pages = adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 0, 9999);
        /* 1.5 GiB in aggressive's 1 s at 100 wake-ups a second. */
        cr_assert_eq(pages, 3933, "standard while memory appears: %u", pages);

        /* ksmd at 50 % of a CPU doing it: over standard's 10 %, within aggressive's 100 %,
         * which is what memory appearing in standard gets. */
        s.time_usec += 2 * USEC_PER_SEC;
        s.has_ksmd_cpu = a.previous.has_ksmd_cpu = true;
        s.ksmd_cpu_usec = a.previous.ksmd_cpu_usec + USEC_PER_SEC;
        s.pages_unshared += 131072;
        adaptive_on_sample(&a, &config, THROTTLE_STANDARD, 3933, &s);
        cr_assert_eq(a.cpu_permille, 500);
        cr_assert_eq(a.cpu_ceiling, 0, "no cut while within aggressive's budget");
        /* The closed loop would go up at most four times a sample (64 -> 256): new memory
         * goes straight to what 100 wake-ups a second need, 2 GiB in 1 s. */
        a.scan_rate = 6400;
        pages = adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 64, 9999);
        cr_assert_eq(pages, 5243, "standard while memory appears, from 64: %u", pages);
        /* In slow, its own 3 % holds. */
        s.time_usec += 2 * USEC_PER_SEC;
        s.ksmd_cpu_usec += USEC_PER_SEC;
        adaptive_on_sample(&a, &config, THROTTLE_SLOW, 3933, &s);
        cr_assert_eq(a.cpu_ceiling, 3933 * 30 / 500, "slow cuts to its budget: %u", a.cpu_ceiling);
}

Test(adaptive, a_kick_restarts_the_watch) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 0), again = sample(5, 6, 1000);

        adaptive_on_kick(&a, &kick);
        for (int scan = 1; scan <= 6; scan++)
                feed(&a, sample(scan * 0.8, (uint64_t) scan, 1000));
        cr_assert(a.converged);
        adaptive_on_kick(&a, &again);
        cr_assert_not(a.converged);
        cr_assert_not(feed(&a, sample(6, 7, 1000)));
        cr_assert_not(feed(&a, sample(7, 8, 1000)));
        cr_assert_not(feed(&a, sample(8, 9, 1000)));
        cr_assert(feed(&a, sample(9, 10, 1000)));
}

Test(adaptive, several_scans_between_samples_count_each) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 50000);

        adaptive_on_kick(&a, &kick);
        cr_assert_not(feed(&a, sample(1, 2, 50000)), "the merge's two scans");
        cr_assert(feed(&a, sample(2, 4, 50000)), "two more scans without growth in one look");
}

Test(adaptive, measures_pages_per_full_scan_and_rate) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 0, 0);

        adaptive_on_kick(&a, &kick);
        feed(&a, sample(1, 0, 0));
        feed(&a, sample(2, 1, 0));
        cr_assert_eq(a.pages_per_full_scan, 262144);
        cr_assert_eq(a.scan_rate, 262144, "one full scan in the last second");
        feed(&a, sample(2.5, 2, 0));
        cr_assert_eq(a.scan_rate, 524288, "one full scan in the last half second");
}

Test(adaptive, aggressive_follows_the_anonpages_rule_during_the_merge) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 10, 0);

        adaptive_on_kick(&a, &kick);
        feed(&a, sample(0.5, 11, 100000));
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 26000, 26000), 26000,
                     "one scan after the kick: as the fixed schedule");
        feed(&a, sample(1.0, 12, 190000));
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 26000, 26000), 26000,
                     "two scans after the kick, the first of them partial: still the merge");
        feed(&a, sample(1.5, 13, 191000));
        /* Two full scans done: 1 GiB in FullScanSec=1s. ksmd did 2 GiB a second at 26000 pages
         * per wake-up: half of that (13000) would do, and the closed loop carries on from
         * the merge's measured rate rather than guess the kernel's wake-ups a second. */
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 26000, 26000), 13000);
        /* Without a measured rate: at 1000 wake-ups a second. */
        a.scan_rate = 0;
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 26000, 26000), 263);
}

/* The kernel leaves part of a merge to the pages' next visit (on TCG guests a third of the
 * pairs merged in the scan after the merge's two: huge pages not split at the first try).
 * While the merge's last full scan merged a tenth of what the merge had merged before it,
 * one more at its pace, two at most; then the full-scan time. */
Test(adaptive, the_merge_goes_on_at_its_pace_while_its_last_scan_merged_much) {
        struct adaptive a = {};
        struct ksm_sample kick = sample(0, 10, 0);
        const uint32_t merge_pace = 26000;

        adaptive_on_kick(&a, &kick);
        feed(&a, sample(0.5, 11, 0));
        feed(&a, sample(1.0, 12, 100000));
        feed(&a, sample(1.5, 13, 150000)); /* the merge's second full scan merged half as much again */
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, merge_pace, merge_pace), merge_pace,
                     "the merge's last scan merged 50000 pages more than the 100000 before: its pace goes on");
        feed(&a, sample(2.0, 14, 160000)); /* a fifteenth more: done */
        cr_assert_lt(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, merge_pace, merge_pace), merge_pace,
                     "the merge's pace went on after a scan that merged a fifteenth more");

        /* On a host whose other guests saved 400000 pages before the kick, what counts is this
         * merge's own: 40000 pages in its last scan, against the 100000 it merged before. */
        struct adaptive busy = {};
        const uint64_t others = 400000, merged[] = { 0, 0, 100000, 140000, 145000 };
        for (int i = 0; i < 5; i++) {
                struct ksm_sample h = sample(0.5 * i, 10 + (uint64_t) i, others + merged[i]);
                h.pages_unshared = 1000000 - h.pages_sharing; /* what KSM tracks holds */
                if (i == 0) {
                        adaptive_on_kick(&busy, &h);
                        continue;
                }
                feed(&busy, h);
                uint32_t pages = adaptive_pages_to_scan(&busy, &config, &throttle, THROTTLE_AGGRESSIVE, merge_pace, merge_pace);
                if (i == 3)
                        cr_assert_eq(pages, merge_pace,
                                     "40000 pages merged in the merge's last scan, against its 100000 before, are less "
                                     "than a tenth of the host's 500000 saved: the merge's pace must go on all the same");
                if (i == 4)
                        cr_assert_lt(pages, merge_pace,
                                     "the merge's pace went on after a scan that merged 5000 of the merge's 145000 pages");
        }

        /* Merging that goes on (volatile pages) gets two scans more at the merge's pace, no more. */
        struct adaptive b = {};
        adaptive_on_kick(&b, &kick);
        uint64_t saved = 10000; /* to 75937 of the 262144 pages tracked: what KSM tracks holds */
        for (uint64_t scan = 11; scan <= 16; scan++) {
                feed(&b, sample(0.5 * (double) (scan - 10), scan, saved));
                saved += saved / 2;
                bool at_merge_pace = adaptive_pages_to_scan(&b, &config, &throttle, THROTTLE_AGGRESSIVE, merge_pace,
                                                            merge_pace) == merge_pace;
                cr_assert_eq(at_merge_pace, scan < 15, "full scan %" PRIu64 " (the kick at 10): %s the merge's pace", scan,
                             at_merge_pace ? "still at" : "no longer at");
        }
}

Test(adaptive, no_opinion_without_a_measured_scan_outside_aggressive) {
        struct adaptive a = {};
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 1000, 3000), 0);
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_INITIAL, 1000, 3000), 0);
}

Test(adaptive, aggressive_without_a_measured_scan_follows_the_anonpages_rule) {
        struct adaptive a = {};
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 0, 26000), 26000);
}

Test(adaptive, standard_sizes_from_the_scan_and_its_full_scan_time) {
        struct adaptive a = { .pages_per_full_scan = 2621440 }; /* 10 GiB mergeable */
        /* 60 s per full scan at 100 wake-ups a second (10 ms): 43691 pages/s -> 437 per wake-up. */
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 0, 9999), 437);
        /* A small VM: the floor is MinPagesToScan. */
        a.pages_per_full_scan = 1000;
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 0, 9999), 64);
}

Test(adaptive, closed_loop_on_the_measured_rate) {
        struct adaptive a = { .pages_per_full_scan = 2621440, .scan_rate = 20000 };
        /* Needs 43691 pages/s; at 400 pages per wake-up ksmd did 20000: about 874. */
        uint32_t pages = adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 400, 9999);
        cr_assert(pages >= 870 && pages <= 880, "pages_to_scan %u", pages);
        /* Far too slow: at most four times per step. */
        a.scan_rate = 100;
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 400, 9999), 1600);
        /* Far too fast: at most a quarter per step. */
        a.scan_rate = 10000000;
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 400, 9999), 100);
}

Test(adaptive, small_changes_are_not_worth_a_write) {
        struct adaptive a = { .pages_per_full_scan = 2621440, .scan_rate = 42000 };
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 437, 9999), 437);
}

Test(adaptive, cpu_budget_cuts_and_lets_up_slowly) {
        struct adaptive a = {};
        config.level[THROTTLE_AGGRESSIVE].max_cpu_percent = 50;
        struct ksm_sample s0 = sample(0, 0, 0), s1 = sample(1, 0, 0), s2 = sample(2, 0, 0), s3 = sample(3, 0, 0);

        s0.has_ksmd_cpu = s1.has_ksmd_cpu = s2.has_ksmd_cpu = s3.has_ksmd_cpu = true;
        s0.ksmd_cpu_usec = 0;
        s1.ksmd_cpu_usec = 900000; /* 90 % of a CPU over the second */
        adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 30000, &s0);
        adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 30000, &s1);
        cr_assert_eq(a.cpu_permille, 900);
        /* Budget 50 %: 30000 x 500/900. */
        cr_assert_eq(a.cpu_ceiling, 16666);
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 30000, 30000), 16666,
                     "the budget wins over the AnonPages floor");

        s2.ksmd_cpu_usec = s1.ksmd_cpu_usec + 450000; /* 45 %: within, but not well under */
        adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 16666, &s2);
        cr_assert_eq(a.cpu_ceiling, 16666);
        s3.ksmd_cpu_usec = s2.ksmd_cpu_usec + 100000; /* 10 %: a quarter up */
        adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 16666, &s3);
        cr_assert_eq(a.cpu_ceiling, 20833);

        adaptive_on_state_change(&a);
        cr_assert_eq(a.cpu_ceiling, 0, "a new state has a new budget");
}

Test(adaptive, sampling_only_outside_initial) {
        struct adaptive a = {};
        cr_assert_eq(adaptive_sample_interval_usec(&a, THROTTLE_INITIAL), 0);
        cr_assert_gt(adaptive_sample_interval_usec(&a, THROTTLE_AGGRESSIVE), 0);
        cr_assert_lt(adaptive_sample_interval_usec(&a, THROTTLE_AGGRESSIVE), adaptive_sample_interval_usec(&a, THROTTLE_SLOW));
        a.fill_pending = true; /* growth after a kick that may be a guest's start */
        cr_assert_eq(adaptive_sample_interval_usec(&a, THROTTLE_AGGRESSIVE), 100 * USEC_PER_MSEC);
        a.fill_pending = false;
        a.filling = true;
        cr_assert_eq(adaptive_sample_interval_usec(&a, THROTTLE_AGGRESSIVE), 100 * USEC_PER_MSEC);
        /* only aggressive waits for memory to fill */
        cr_assert_eq(adaptive_sample_interval_usec(&a, THROTTLE_STANDARD), 2 * USEC_PER_SEC);
}

/* A kick at a VM's start: its memory fills over seconds (AnonPages grows), then holds
 * still. While it fills, aggressive is not settled, is sampled every 100 ms and scans
 * below the AnonPages rule; 0.8 s after the filling stops, the merge begins with its own
 * two full scans at the AnonPages rule, and the settle rule follows them. */
Test(adaptive, a_kick_before_the_memory_waits_for_it_then_merges_at_the_merge_pace) {
        struct adaptive a = {};
        struct ksm_sample s = sample(0, 10, 0);
        const uint32_t fallback = 30000;
        const uint64_t filled_usec = 8 * USEC_PER_SEC;

        kick_before_the_memory(&a, &s);
        /* 8 s of filling, 20000 pages a second (80 MiB/s), a full scan every 0.4 s; the
         * daemon's own sampling interval sets the times. */
        uint64_t merge_usec = 0;
        while (s.time_usec < filled_usec + 3 * USEC_PER_SEC) {
                uint64_t interval = adaptive_sample_interval_usec(&a, THROTTLE_AGGRESSIVE);
                s.time_usec += interval;
                if (s.time_usec <= filled_usec)
                        s.anon_pages = 10000 + s.time_usec / 50; /* 20000 pages a second */
                s.full_scans = 10 + s.time_usec / (400 * USEC_PER_MSEC);
                s.pages_scanned = s.full_scans * 262144;
                /* The merge, once begun: 100000 pages move from AnonPages to pages_sharing
                 * (what is mapped holds). */
                if (merge_usec > 0 && s.time_usec >= merge_usec + 200 * USEC_PER_MSEC && s.pages_sharing < 100000) {
                        s.pages_sharing += 50000;
                        s.anon_pages -= 50000;
                }
                bool settled = adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 2000, &s);
                bool merge_pace = adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 2000, fallback) == fallback;
                double t = s.time_usec / 1e6;
                if (s.time_usec <= filled_usec) {
                        cr_assert_not(settled, "settled at %.1f s while the memory is filling", t);
                        if (s.time_usec >= 800 * USEC_PER_MSEC) { /* 64 MiB mapped since the kick */
                                cr_assert(a.filling, "filling not seen at %.1f s", t);
                                cr_assert_not(merge_pace, "the merge's pace while the memory fills (%.1f s)", t);
                                cr_assert_eq(interval, 100 * USEC_PER_MSEC,
                                             "sampled after %" PRIu64 " ms while the memory fills (%.1f s), not 100", interval / 1000, t);
                        }
                        continue;
                }
                if (s.time_usec < filled_usec + 800 * USEC_PER_MSEC)
                        cr_assert_not(merge_pace, "the merge began %.1f s after the memory stopped growing (8.0 s)", t - 8.0);
                if (merge_pace && merge_usec == 0) {
                        cr_assert_leq(s.time_usec, filled_usec + 900 * USEC_PER_MSEC,
                                      "the merge began at %.1f s, more than 0.9 s after the memory stopped growing (8.0 s)", t);
                        merge_usec = s.time_usec;
                }
                if (settled) {
                        cr_assert_neq(merge_usec, 0, "settled at %.1f s, with no merge at its pace", t);
                        cr_assert_geq(s.full_scans, a.merge_scans + 4, "settled within the merge's two scans and two more");
                        cr_assert_geq(s.pages_sharing, 100000, "settled before the merge");
                        cr_assert_eq(adaptive_sample_interval_usec(&a, THROTTLE_AGGRESSIVE), 200 * USEC_PER_MSEC,
                                     "still sampled as often as while the memory filled");
                        return;
                }
        }
        cr_assert_neq(merge_usec, 0, "the merge never began after the memory stopped growing (8.0 s)");
        cr_assert_fail("never settled after the merge (full scan %" PRIu64 ")", s.full_scans);
}

/* What the processes map, as a range from the two AnonPages readings around the counters. */
Test(adaptive, what_is_mapped_is_the_range_of_the_two_readings) {
        struct ksm_sample s = { .pages_sharing = 100, .ksm_zero_pages = 10, .anon_pages = 1000, .has_anon_pages = true };
        cr_assert_eq(ksm_sample_mapped_pages_least(&s), 1110, "one reading: no range");
        cr_assert_eq(ksm_sample_mapped_pages_most(&s), 1110, "one reading: no range");
        s.anon_pages_before = 1300; /* a merge under way: AnonPages fell meanwhile */
        s.has_anon_pages_before = true;
        cr_assert_eq(ksm_sample_mapped_pages_least(&s), 1110);
        cr_assert_eq(ksm_sample_mapped_pages_most(&s), 1410);
        s.anon_pages_before = 900; /* memory filling: AnonPages grew meanwhile */
        cr_assert_eq(ksm_sample_mapped_pages_least(&s), 1010);
        cr_assert_eq(ksm_sample_mapped_pages_most(&s), 1110);
        s.has_anon_pages = false; /* the second reading failed: nothing to go by */
        cr_assert_eq(ksm_sample_mapped_pages_least(&s), 0);
        cr_assert_eq(ksm_sample_mapped_pages_most(&s), 0);
}

/* The daemon reads AnonPages before and after KSM's counters. A merge moves pages from
 * AnonPages to pages_sharing meanwhile: a daemon preempted between the reads sees what is
 * mapped fall, and rise again once the merge is done. That is no growth: the memory wait
 * does not start over after its merge (in run V2 of test/bench/README.md it did, for a
 * cause the recording does not show, and the first guest's merge ran twice). */
Test(adaptive, a_merge_under_way_while_the_counters_are_read_is_no_growth) {
        struct adaptive a = {};
        struct ksm_sample s = sample(0, 10, 0);
        const uint32_t fallback = 30000;

        kick_before_the_memory(&a, &s);
        s.has_anon_pages_before = true;
        uint64_t merge_usec = 0, anon = s.anon_pages;
        bool filled = false;
        for (int i = 1; i <= 60; i++) {
                s.time_usec = (uint64_t) i * 100 * USEC_PER_MSEC;
                if (i <= 20)
                        anon += 2000; /* 2 s of filling, 80 MiB a second */
                s.full_scans = 10 + (uint64_t) i / 4;
                s.pages_scanned = s.full_scans * 262144;
                s.anon_pages_before = s.anon_pages = anon;
                if (merge_usec > 0 && s.pages_sharing < 30000) {
                        /* 3000 pages merged per sample; the daemon was preempted between its
                         * reads: AnonPages after the counters 1200 pages lower than when
                         * pages_sharing was read. */
                        s.pages_sharing += 3000;
                        anon -= 3000;
                        s.anon_pages_before = anon + 3000 / 2;
                        s.anon_pages = anon - 1200;
                }
                adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 2000, &s);
                bool merge_pace = adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 2000, fallback) == fallback;
                filled = filled || a.filling;
                if (merge_pace && filled && merge_usec == 0)
                        merge_usec = s.time_usec; /* the memory in place: its merge */
                if (merge_usec > 0)
                        cr_assert_not(a.filling, "filling again at %.1f s, after the merge began at %.1f s: what a merge "
                                      "moved while the counters were read taken for growth",
                                      s.time_usec / 1e6, merge_usec / 1e6);
        }
        cr_assert_neq(merge_usec, 0, "the merge never began");
        cr_assert_geq(s.pages_sharing, 30000);
}

/* A kick at a guest's start on a host with guests merged before: the merge's pace, set at
 * the kick, scans all of them until the new guest's memory shows; then the filling pace
 * holds from that sample on, not after a quarter-per-sample ramp down (recorded on TCG
 * guests: 9703 -> 2425 -> 606 -> 151 -> 64 pages over 0.8 s at sleep_millisecs=1). */
Test(adaptive, filling_seen_drops_to_its_pace_at_once) {
        struct adaptive a = {};
        struct ksm_sample s = sample(0, 18, 0);
        const uint32_t merge_pace = 9703;

        kick_before_the_memory(&a, &s);
        s.pages_unshared = 262144 * 2; /* two guests tracked */
        /* 0.2 s: 20 MiB more mapped, not yet a guest's; 0.4 s: 150 MiB. */
        const uint64_t anon[] = { 10000 + 5120, 10000 + 38400 };
        for (int i = 0; i < 2; i++) {
                s.time_usec = (uint64_t) (i + 1) * 200 * USEC_PER_MSEC;
                s.anon_pages = anon[i];
                s.pages_scanned += 150000; /* the merge's pace over everything tracked */
                adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, merge_pace, &s);
                if (i == 0)
                        cr_assert_not(a.filling, "20 MiB mapped 0.2 s after the kick taken for a guest's start");
        }
        cr_assert(a.filling, "150 MiB mapped 0.4 s after the kick is not a guest filling its memory");
        uint32_t pages = adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, merge_pace, 30000);
        cr_assert_eq(pages, throttle.min_pages_to_scan,
                     "pages_to_scan %u, not the filling pace (a full scan of the %u tracked pages in standard's 60 s is "
                     "a few pages a wake-up: MinPagesToScan=%u) in the sample that saw the memory fill",
                     pages, 262144 * 2, throttle.min_pages_to_scan);
}

/* A guest's memory shows at 100 MiB a second and more from its start: 32 MiB in the first
 * sample is enough to tell, one sample before 64 MiB would be; the same 32 MiB a second
 * after the kick is not (a ready guest's own work, the host's). */
Test(adaptive, a_fast_start_is_seen_in_the_first_sample) {
        struct adaptive fast = {}, late = {};
        struct ksm_sample s = sample(0, 18, 0);

        kick_before_the_memory(&fast, &s);
        kick_before_the_memory(&late, &s);
        struct ksm_sample at = s;
        at.time_usec = 200 * USEC_PER_MSEC;
        at.anon_pages += 8192 + 256; /* 33 MiB */
        adaptive_on_sample(&fast, &config, THROTTLE_AGGRESSIVE, 9703, &at);
        cr_assert(fast.filling, "33 MiB mapped 0.2 s after the kick is not a guest filling its memory");

        at = s;
        for (int i = 1; i <= 5; i++) {
                at.time_usec = (uint64_t) i * 200 * USEC_PER_MSEC;
                if (i == 5)
                        at.anon_pages += 8192 + 256; /* the same 33 MiB, 1 s after the kick */
                adaptive_on_sample(&late, &config, THROTTLE_AGGRESSIVE, 9703, &at);
        }
        cr_assert_not(late.filling, "33 MiB mapped 1 s after the kick held its merge as a guest's start");

        struct adaptive edge = {};
        kick_before_the_memory(&edge, &s);
        at = s;
        at.time_usec = 400 * USEC_PER_MSEC;
        adaptive_on_sample(&edge, &config, THROTTLE_AGGRESSIVE, 9703, &at);
        at.time_usec = 600 * USEC_PER_MSEC;
        at.anon_pages += 8192 + 256;
        adaptive_on_sample(&edge, &config, THROTTLE_AGGRESSIVE, 9703, &at);
        cr_assert_not(edge.filling, "33 MiB first seen 0.6 s after the kick taken for a guest's start (the window is 0.5 s)");
        cr_assert(late.fill_pending, "growth within 3 s of the kick does not keep the merge from settling");
}

/* The merge moves what it merges from AnonPages to pages_sharing: the AnonPages rule, re-read
 * at every sample, would slow the merge's last scan as it succeeds (23207 -> 11563 pages
 * in a recorded TCG merge). Its pace is that of the most AnonPages seen since it began. */
Test(adaptive, the_merge_keeps_its_pace_as_it_merges) {
        struct adaptive a = {};
        struct ksm_sample s = sample(0, 10, 0);
        const uint32_t factor = throttle.level[THROTTLE_AGGRESSIVE].pages_per_scan_factor;

        s.has_anon_pages = true;
        s.anon_pages = 150000;
        adaptive_on_kick(&a, &s);
        for (int i = 1; i <= 4; i++) {
                s.time_usec = (uint64_t) i * 200 * USEC_PER_MSEC;
                s.full_scans = 10 + (uint64_t) i / 2; /* the merge's scans: 11, 12 */
                s.pages_scanned = s.full_scans * 262144;
                s.pages_sharing += 20000;
                s.anon_pages -= 20000;
                adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 1000, &s);
                uint32_t anon_rule = (uint32_t) (s.anon_pages / factor);
                cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 1000, anon_rule),
                             150000 / factor, "the merge's pace is %u pages at %.1f s, not that of the kick's AnonPages",
                             adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 1000, anon_rule),
                             s.time_usec / 1e6);
        }
        /* A kick without a sample (in aggressive) starts a new merge: the old one's high
         * mark does not carry over. */
        adaptive_on_kick(&a, NULL);
        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 1000, (uint32_t) (s.anon_pages / factor)),
                     s.anon_pages / factor, "a new kick's merge kept the pace of the one before");
}

/* A booting guest that writes only a few MiB a second for a while (3 MiB/s here, between
 * two bursts) is still filling its memory: a merge begun there would be thrown away when
 * the next burst comes. */
Test(adaptive, a_boot_writing_slowly_for_a_while_is_still_filling) {
        struct adaptive a = {};
        struct ksm_sample s = sample(0, 10, 0);
        const uint32_t fallback = 30000;

        kick_before_the_memory(&a, &s);
        /* 2 s at 80 MiB/s, 3 s at 3 MiB/s, 2 s at 20 MiB/s, then nothing. */
        for (int i = 1; i <= 50; i++) {
                s.time_usec = (uint64_t) i * 200 * USEC_PER_MSEC;
                s.anon_pages += i <= 10 ? 4096 : i > 25 && i <= 35 ? 1024 : i <= 25 ? 154 : 0;
                s.full_scans = 10 + (uint64_t) i / 2;
                s.pages_scanned = s.full_scans * 262144;
                adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 2000, &s);
                bool merge_pace = adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 2000, fallback) == fallback;
                if (i >= 4 && i <= 35 + 3) { /* up to 0.6 s after the last burst */
                        cr_assert(a.filling, "the boot at %.1f s (3 MiB/s from 2 to 5 s) taken for its end", s.time_usec / 1e6);
                        cr_assert_not(merge_pace, "the merge's pace at %.1f s, while the guest still boots", s.time_usec / 1e6);
                }
                if (i >= 35 + 4) /* 0.8 s quiet: ADAPTIVE_FILL_QUIET_USEC */
                        cr_assert_not(a.filling, "still filling at %.1f s, the memory in place since 7 s", s.time_usec / 1e6);
        }
}

/* Memory that keeps growing for longer than one guest's filling (guests starting back to
 * back, each kicking at its start, or the host's own jobs) holds the merges for 20 s at
 * most, kicks or not (ADAPTIVE_FILL_MAX_USEC): then the merge's pace, as without AnonPages. */
Test(adaptive, growth_that_goes_on_holds_the_merge_for_a_while_only) {
        struct adaptive a = {};
        struct ksm_sample s = sample(0, 10, 0);
        const uint32_t fallback = 30000;
        const double max_seconds = 20;

        kick_before_the_memory(&a, &s);
        for (int i = 1; i <= 200; i++) {
                double t = i * 0.2;
                s.time_usec = (uint64_t) i * 200 * USEC_PER_MSEC;
                s.anon_pages += 8192; /* 160 MiB/s, without a pause */
                s.full_scans = 10 + (uint64_t) i / 2;
                s.pages_scanned = s.full_scans * 262144;
                if (i % 15 == 0)
                        adaptive_on_kick(&a, &s); /* another guest starts every 3 s */
                else
                        adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 2000, &s);
                if (t >= 1 && t < max_seconds - 0.5)
                        /* Each kick's guest is seen once 64 MiB more is mapped: 0.4 s. */
                        cr_assert(a.filling || i % 15 <= 1, "growth at %.1f s not taken for filling", t);
                if (t >= max_seconds + 0.5) {
                        cr_assert_not(a.filling, "the merges still held at %.1f s, growth for %.0f s", t, t);
                        if (i % 15 == 1) /* the sample after a kick: its merge */
                                cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 2000, fallback),
                                             fallback, "no merge's pace after the kick at %.1f s", t - 0.2);
                }
        }
}

/* A kick when the guest is ready: what is mapped moves by a few MiB in the seconds after
 * (the merge's own accounting, the host's processes; up to 27 MiB in 3 s measured), which
 * is no guest filling its memory: the merge goes on at its pace. */
Test(adaptive, small_growth_after_a_kick_does_not_hold_its_merge) {
        struct adaptive a = {};
        struct ksm_sample s = sample(0, 10, 0);
        const uint32_t fallback = 30000;

        s.has_anon_pages = true;
        s.anon_pages = 300000;
        adaptive_on_kick(&a, &s);
        for (int i = 1; i <= 15; i++) {
                s.time_usec = (uint64_t) i * 200 * USEC_PER_MSEC;
                s.anon_pages += 640; /* 2.5 MiB a sample, 37.5 MiB in 3 s */
                s.full_scans = 10 + (uint64_t) i / 4;
                s.pages_scanned = s.full_scans * 262144;
                adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 2000, &s);
                cr_assert_not(a.filling, "%.1f MiB mapped since the kick held its merge at %.1f s", i * 2.5, s.time_usec / 1e6);
                if (s.full_scans < a.merge_scans + 3)
                        cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE, 2000, fallback),
                                     fallback, "the merge's pace left at %.1f s", s.time_usec / 1e6);
        }
}

/* Memory that fills in standard (a VM whose kick comes when it is ready) does not count:
 * standard's sizing and the settle rule are as without AnonPages. */
Test(adaptive, filling_outside_aggressive_changes_nothing) {
        struct adaptive a = {}, b = {};
        struct ksm_sample s = sample(0, 10, 1000), t;

        adaptive_on_kick(&a, &s);
        adaptive_on_kick(&b, &s);
        for (int i = 1; i <= 20; i++) {
                s = sample(i * 2.0, 10 + (uint64_t) i, 1000);
                t = s;
                t.has_anon_pages = true;
                t.anon_pages = 10000 + (uint64_t) i * 20000;
                cr_assert_eq(adaptive_on_sample(&a, &config, THROTTLE_STANDARD, 200, &s),
                             adaptive_on_sample(&b, &config, THROTTLE_STANDARD, 200, &t), "at %d", i);
                cr_assert_eq(adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 200, 64),
                             adaptive_pages_to_scan(&b, &config, &throttle, THROTTLE_STANDARD, 200, 64),
                             "standard sized differently with AnonPages growing at %d", i);
        }
}

/* A kick when the VM is ready: memory that grows seconds later (another guest booting, whose
 * kick comes when it is ready, or a build on the host) does not hold the kick's merge. */
Test(adaptive, growth_seconds_after_a_kick_is_not_its_memory) {
        struct adaptive a = {};
        struct ksm_sample s = sample(0, 10, 0);

        s.has_anon_pages = true;
        s.anon_pages = 300000;
        adaptive_on_kick(&a, &s);
        for (int i = 1; i <= 60; i++) {
                s.time_usec = (uint64_t) i * 200 * USEC_PER_MSEC;
                s.full_scans = 10 + (uint64_t) i / 2;
                s.pages_scanned = s.full_scans * 262144;
                if (i >= 20)
                        s.anon_pages += 5000; /* from 4 s on, 100 MiB a second */
                bool settled = adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 2000, &s);
                cr_assert_not(a.filling, "growth that began %.1f s after the kick held its merge", s.time_usec / 1e6 - 4.0);
                if (settled)
                        return;
        }
        cr_assert_fail("never settled: the growth after the kick held aggressive");
}
