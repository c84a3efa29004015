/* SPDX-License-Identifier: Apache-2.0 */
/* Scale on paper: the sizing and budget arithmetic of adaptive throttling driven, sample by
 * sample as the daemon drives it, against a model of ksmd on a 256 GiB and a 2 TiB host
 * with 100+ guests starting over minutes (docs/design.md, "How the cost grows"). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>

#include "adaptive.h"
#include "ksm.h"
#include "parse-util.h"

#define PAGES_PER_GIB (262144ULL)

/* ksmd, modelled: each wake-up scans pages_to_scan pages at cost_nsec each, then sleeps
 * sleep_millisecs rounded up to the kernel tick; it uses at most one CPU. The costs are of
 * the order measured on this project's machine (test/bench/README.md): about 0.5 us a page
 * rescanning settled memory. */
struct ksmd_model {
        double cost_nsec;
        double tick_msec;
        /* Counters as the kernel keeps them. */
        double pages_scanned, full_scans_fraction, cpu_usec;
        uint64_t full_scans;
        uint64_t tracked; /* pages of the mergeable areas: what one full scan covers */
        uint64_t saved;
};

struct run {
        struct adaptive_config config;
        struct throttle_config throttle;
        struct adaptive a;
        struct ksmd_model k;
        enum throttle_state state;
        uint32_t pages_to_scan;
        uint32_t sleep_millisecs;
        uint64_t now_usec;
        uint64_t state_since_usec;
        /* What the checks look at. */
        uint32_t max_pages_seen;
        double cpu_in_window; /* CPU-seconds in the current measuring window */
        uint64_t window_start_usec;
        /* AnonPages in the samples, as the daemon reads it where the kernel has it. */
        bool anon_in_samples;
        uint64_t anon_pages;
};

static struct ksm_sample model_sample(const struct run *r) {
        return (struct ksm_sample) {
                .time_usec = r->now_usec,
                .full_scans = r->k.full_scans,
                .pages_scanned = (uint64_t) r->k.pages_scanned,
                .has_pages_scanned = true,
                .pages_sharing = r->k.saved,
                .pages_unshared = r->k.tracked > r->k.saved ? r->k.tracked - r->k.saved : 0,
                .ksmd_cpu_usec = (uint64_t) r->k.cpu_usec,
                .has_ksmd_cpu = true,
                .anon_pages = r->anon_pages,
                .has_anon_pages = r->anon_in_samples,
        };
}

/* The AnonPages rule of the fixed schedule, as throttle_settings computes it. */
static uint32_t anon_rule(const struct run *r, uint64_t anon_pages) {
        struct ksm_settings host = {}, target;
        throttle_settings(&r->throttle, r->state, anon_pages, &host, &target);
        return target.value[KSM_KNOB_PAGES_TO_SCAN];
}

/* Advances the model by dt: ksmd scans at the rate its settings and the CPU allow. */
static void model_advance(struct run *r, uint64_t dt_usec) {
        double period_msec = fmax(r->sleep_millisecs, r->k.tick_msec);
        double work_msec = r->pages_to_scan * r->k.cost_nsec / 1e6;
        double rate = r->pages_to_scan / ((work_msec + period_msec) / 1e3); /* pages a second */
        double cpu_share = work_msec / (work_msec + period_msec);
        double pages = rate * dt_usec / 1e6;

        r->k.pages_scanned += pages;
        if (r->k.tracked > 0) {
                r->k.full_scans_fraction += pages / (double) r->k.tracked;
                r->k.full_scans = (uint64_t) r->k.full_scans_fraction;
        }
        r->k.cpu_usec += cpu_share * dt_usec;
        r->cpu_in_window += cpu_share * dt_usec / 1e6;
        r->now_usec += dt_usec;
}

static void run_init(struct run *r, uint64_t tracked) {
        *r = (struct run) {};
        adaptive_config_default(&r->config);
        throttle_config_default(&r->throttle);
        r->k = (struct ksmd_model) { .cost_nsec = 500, .tick_msec = 4, .tracked = tracked };
        r->state = THROTTLE_INITIAL;
        r->now_usec = USEC_PER_SEC;
}

static void enter(struct run *r, enum throttle_state state, uint64_t anon_pages) {
        if (state != r->state)
                adaptive_on_state_change(&r->a);
        r->state = state;
        r->state_since_usec = r->now_usec;
        r->sleep_millisecs = r->throttle.level[state].sleep_millisecs;
        uint32_t pages = adaptive_pages_to_scan(&r->a, &r->config, &r->throttle, state, r->pages_to_scan,
                                                anon_rule(r, anon_pages));
        r->pages_to_scan = pages > 0 ? pages : anon_rule(r, anon_pages);
}

static void kick(struct run *r, uint64_t anon_pages) {
        struct ksm_sample s = model_sample(r);
        adaptive_on_kick(&r->a, &s);
        enter(r, THROTTLE_AGGRESSIVE, anon_pages);
}

/* One sampling interval of the daemon: the model runs, then the daemon samples, maybe
 * leaves aggressive, and re-sizes. Checks what must hold at every sample. */
static void step(struct run *r, uint64_t anon_pages) {
        uint64_t interval = adaptive_sample_interval_usec(&r->a, r->state);
        cr_assert_gt(interval, 0);
        cr_assert_leq(interval, 5 * USEC_PER_SEC, "a sample every %" PRIu64 " us is too rare to hold a budget", interval);
        model_advance(r, interval);
        struct ksm_sample s = model_sample(r);
        bool settled = adaptive_on_sample(&r->a, &r->config, r->state, r->pages_to_scan, &s);
        if (settled && r->state == THROTTLE_AGGRESSIVE)
                enter(r, THROTTLE_STANDARD, anon_pages);
        else {
                uint32_t pages = adaptive_pages_to_scan(&r->a, &r->config, &r->throttle, r->state, r->pages_to_scan,
                                                        anon_rule(r, anon_pages));
                if (pages > 0)
                        r->pages_to_scan = pages;
        }
        cr_assert_geq(r->pages_to_scan, r->throttle.min_pages_to_scan);
        cr_assert_leq(r->pages_to_scan, r->throttle.max_pages_to_scan, "pages_to_scan %u above MaxPagesToScan",
                      r->pages_to_scan);
        cr_assert_leq(r->a.cpu_permille, 1000 + 50, "ksmd at %u permille of one CPU: a wrapped CPU measurement",
                      r->a.cpu_permille);
        cr_assert_leq(r->a.pages_per_full_scan, r->k.tracked * 2 + 1000,
                      "a full scan of %" PRIu64 " pages measured as %" PRIu64, r->k.tracked, r->a.pages_per_full_scan);
        if (r->pages_to_scan > r->max_pages_seen)
                r->max_pages_seen = r->pages_to_scan;
}

/* Runs the current state for seconds and returns ksmd's share of a CPU over its last half. */
static double hold(struct run *r, double seconds, uint64_t anon_pages) {
        uint64_t end = r->now_usec + (uint64_t) (seconds * USEC_PER_SEC), half = r->now_usec + (end - r->now_usec) / 2;
        bool measuring = false;
        while (r->now_usec < end) {
                if (!measuring && r->now_usec >= half) {
                        measuring = true;
                        r->cpu_in_window = 0;
                        r->window_start_usec = r->now_usec;
                }
                step(r, anon_pages);
        }
        return r->cpu_in_window / ((r->now_usec - r->window_start_usec) / 1e6);
}

/* Seconds one full scan takes at the current settings in the model. */
static double full_scan_seconds(const struct run *r) {
        double period_msec = fmax(r->sleep_millisecs, r->k.tick_msec);
        double work_msec = r->pages_to_scan * r->k.cost_nsec / 1e6;
        return r->k.tracked / (r->pages_to_scan / ((work_msec + period_msec) / 1e3));
}

/* The full scan time the level can reach: its target, or what its CPU budget allows. */
static double reachable_full_scan_seconds(const struct run *r, enum throttle_state state) {
        double target = r->config.level[state].full_scan_usec / 1e6;
        double budget = r->config.level[state].max_cpu_percent / 100.0;
        double at_budget = r->k.tracked * r->k.cost_nsec / 1e9 / budget;
        return fmax(target, at_budget);
}

static void check_settled_host(uint64_t mergeable_gib) {
        struct run r;
        uint64_t anon = mergeable_gib * PAGES_PER_GIB;
        run_init(&r, anon);
        r.k.saved = anon / 2;

        kick(&r, anon);
        /* Aggressive: the merge's pace (AnonPages rule) until merging settles. */
        uint64_t deadline = r.now_usec + 3600 * USEC_PER_SEC;
        while (r.state == THROTTLE_AGGRESSIVE && r.now_usec < deadline)
                step(&r, anon);
        cr_assert_eq(r.state, THROTTLE_STANDARD, "%" PRIu64 " GiB: never settled in an hour of aggressive", mergeable_gib);

        for (enum throttle_state state = THROTTLE_STANDARD; state <= THROTTLE_SLOW; state++) {
                if (state != r.state)
                        enter(&r, state, anon);
                double reachable = reachable_full_scan_seconds(&r, state);
                /* Long enough for the closed loop to settle: a few full scans' worth. */
                double cpu = hold(&r, fmin(fmax(6 * reachable, 120), 4 * 3600), anon);
                double budget = r.config.level[state].max_cpu_percent / 100.0;
                cr_assert_leq(cpu, budget * 1.3, "%" PRIu64 " GiB in %s: ksmd at %.1f %% of a CPU, budget %.0f %%",
                              mergeable_gib, throttle_state_to_string(state), cpu * 100, budget * 100);
                double scan = full_scan_seconds(&r);
                cr_assert_leq(scan, reachable * 1.5,
                              "%" PRIu64 " GiB in %s: a full scan takes %.0f s; the target or the budget allows %.0f s",
                              mergeable_gib, throttle_state_to_string(state), scan, reachable);
        }
}

TestSuite(adaptive_scale);

Test(adaptive_scale, host_256_gib_200_gib_mergeable) {
        check_settled_host(200);
}

Test(adaptive_scale, host_2_tib_1800_gib_mergeable) {
        check_settled_host(1800);
}

Test(adaptive_scale, small_mergeable_set_meets_the_full_scan_target) {
        struct run r;
        uint64_t anon = 8 * PAGES_PER_GIB;
        run_init(&r, anon);
        kick(&r, anon);
        while (r.state == THROTTLE_AGGRESSIVE)
                step(&r, anon);
        hold(&r, 600, anon);
        double scan = full_scan_seconds(&r);
        double target = r.config.level[THROTTLE_STANDARD].full_scan_usec / 1e6;
        /* 8 GiB in 60 s at 0.5 us a page is 3.5 % of a CPU: within the budget, so the target holds. */
        cr_assert(scan <= target * 1.15 && scan >= target * 0.7, "standard: a full scan of 8 GiB takes %.1f s, target %.0f s",
                  scan, target);
}

/* Guests of guest_gib start every interval seconds, each kicking when it starts; their
 * memory appears over boot_seconds. With AnonPages in the samples, the memory filling after
 * each kick holds its merge for a while (a kick before the memory), but not for longer than
 * one guest's filling may last: the checks are the same. */
static void check_guests_starting(uint64_t host_gib, int guests, uint64_t guest_gib, double interval, double boot_seconds,
                                  bool anon_in_samples) {
        struct run r;
        run_init(&r, 0);
        r.anon_in_samples = anon_in_samples;
        uint64_t guest_pages = guest_gib * PAGES_PER_GIB;
        cr_assert_leq(guests * guest_gib, host_gib);
        double first = r.now_usec / 1e6;
        uint64_t anon = 0;
        int started = 0;
        double last_start = first + (guests - 1) * interval;
        while (r.now_usec / 1e6 < last_start + boot_seconds) {
                double t = r.now_usec / 1e6;
                while (started < guests && t >= first + started * interval) {
                        started++;
                        kick(&r, anon);
                }
                /* Each guest's memory grows linearly over its boot; half of it merges. */
                uint64_t present = 0;
                for (int g = 0; g < started; g++) {
                        double age = t - (first + g * interval);
                        present += age >= boot_seconds ? guest_pages : (uint64_t) (guest_pages * (age / boot_seconds));
                }
                r.k.tracked = present;
                anon = present;
                r.k.saved = present / 2;
                r.anon_pages = present - r.k.saved; /* a merged page leaves AnonPages */
                step(&r, anon);
                cr_assert_eq(r.state, THROTTLE_AGGRESSIVE, "%d of %d guests started, %.0f s in: left aggressive while memory appears",
                             started, guests, t - first);
        }
        /* Within a tenth of it: not worth a write. */
        cr_assert(r.pages_to_scan * 10 >= anon_rule(&r, anon) * 9,
                     "memory still appearing at the last guest's end of boot: the merge's pace (AnonPages rule %u), not %u "
                     "(appearing %d, scans since the kick %" PRIu64 ", ceiling %u, cpu %u permille)",
                     anon_rule(&r, anon), r.pages_to_scan, r.a.memory_appearing, r.a.scans_seen - r.a.kick.full_scans,
                     r.a.cpu_ceiling, r.a.cpu_permille);
        /* All memory present: aggressive ends within the merge's two full scans and two
         * settled ones (plus the one under way), each at most as slow as the merge's pace. */
        double scan = full_scan_seconds(&r);
        double settle_by = r.now_usec / 1e6 + 6 * scan + 10;
        while (r.state == THROTTLE_AGGRESSIVE && r.now_usec / 1e6 < settle_by)
                step(&r, anon);
        cr_assert_eq(r.state, THROTTLE_STANDARD, "%" PRIu64 " GiB host, %d guests: still aggressive %.0f s after the last boot "
                     "(full scans of %.0f s)", host_gib, guests, settle_by - (last_start + boot_seconds), scan);
        double cpu = hold(&r, fmax(6 * reachable_full_scan_seconds(&r, THROTTLE_STANDARD), 120), anon);
        cr_assert_leq(cpu, 0.10 * 1.3, "standard after %d guests: ksmd at %.1f %% of a CPU", guests, cpu * 100);
}

Test(adaptive_scale, host_256_gib_120_guests_of_2_gib_over_six_minutes) {
        check_guests_starting(256, 120, 2, 3, 20, false);
}

Test(adaptive_scale, host_2_tib_150_guests_of_12_gib_over_five_minutes) {
        check_guests_starting(2048, 150, 12, 2, 30, false);
}

Test(adaptive_scale, host_256_gib_120_guests_of_2_gib_with_anon_pages) {
        check_guests_starting(256, 120, 2, 3, 20, true);
}

Test(adaptive_scale, host_2_tib_150_guests_of_12_gib_with_anon_pages) {
        check_guests_starting(2048, 150, 12, 2, 30, true);
}

Test(adaptive_scale, arithmetic_saturates_instead_of_wrapping) {
        struct adaptive_config config;
        struct throttle_config throttle;
        struct adaptive a = {};
        adaptive_config_default(&config);
        throttle_config_default(&throttle);

        /* Counters near the top of their range, as after years of uptime on a big host. */
        struct ksm_sample s0 = {
                .time_usec = 1000, .full_scans = UINT64_MAX - 10, .pages_scanned = UINT64_MAX - (1ULL << 40),
                .has_pages_scanned = true, .pages_sharing = 1ULL << 40, .ksmd_cpu_usec = UINT64_MAX - (1ULL << 43),
                .has_ksmd_cpu = true,
        };
        struct ksm_sample s1 = s0;
        s1.time_usec += 200 * USEC_PER_MSEC;
        s1.full_scans += 3;
        s1.pages_scanned += 1ULL << 39;
        s1.ksmd_cpu_usec += 1ULL << 42; /* nonsense: more CPU than time */
        adaptive_on_kick(&a, &s0);
        (void) adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 30000, &s0);
        (void) adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, 30000, &s1);
        cr_assert_eq(a.cpu_permille, UINT32_MAX, "a CPU share beyond 32 bits saturates");
        uint32_t pages = adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, 30000, 30000);
        cr_assert(pages >= throttle.min_pages_to_scan && pages <= throttle.max_pages_to_scan, "pages_to_scan %u", pages);
        /* A counter that went backwards (a reset) is no measurement. */
        struct ksm_sample s2 = s1;
        s2.time_usec += 200 * USEC_PER_MSEC;
        s2.pages_scanned = 5;
        s2.full_scans = 1;
        (void) adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, pages, &s2);
        pages = adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_STANDARD, pages, 30000);
        cr_assert(pages >= throttle.min_pages_to_scan && pages <= throttle.max_pages_to_scan, "pages_to_scan %u", pages);
}
