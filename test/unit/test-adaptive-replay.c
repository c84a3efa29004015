/* SPDX-License-Identifier: Apache-2.0 */
/* The settle rule replayed on KSM counter sequences recorded from the real kernel by
 * test/bench/effectiveness --record (test/data/adaptive/README.md): leaves aggressive
 * within two full scans of the merge being complete, and not while memory is appearing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adaptive.h"
#include "ksm.h"
#include "parse-util.h"

#define MAX_ROWS 4096

struct row {
        uint64_t t_ms;
        char event[64];
        struct ksm_sample sample;
        uint64_t pages_to_scan, sleep_millisecs;
};

struct recording {
        struct row row[MAX_ROWS];
        size_t n;
};

static struct recording rec;

/* Reads DATA_DIR/name; every row must parse (a damaged file fails the test, it is not skipped). */
static void load(const char *name) {
        char path[4096], line[1024];
        snprintf(path, sizeof path, "%s/%s", ADAPTIVE_DATA_DIR, name);
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "cannot open the recording %s: %s", path, strerror(errno));
        rec.n = 0;
        for (unsigned lineno = 1; fgets(line, sizeof line, f); lineno++) {
                if (line[0] == '#' || line[0] == '\n')
                        continue;
                cr_assert_lt(rec.n, MAX_ROWS, "%s: more than %d rows", path, MAX_ROWS);
                struct row *r = &rec.row[rec.n];
                uint64_t cpu_ms;
                int64_t profit, smart_scan; /* general_profit, smart_scan: not inputs of the rule */
                *r = (struct row) {};
                int fields = sscanf(line,
                                    "%" SCNu64 ",%63[^,],%" SCNu64 ",%" SCNu64 ",%" SCNu64 ",%" SCNu64 ",%" SCNu64
                                    ",%" SCNu64 ",%" SCNu64 ",%" SCNu64 ",%" SCNd64 ",%" SCNu64 ",%" SCNu64
                                    ",%" SCNu64 ",%" SCNu64 ",%" SCNd64,
                                    &r->t_ms, r->event, &r->sample.full_scans, &r->sample.pages_scanned,
                                    &r->sample.pages_skipped, &r->sample.pages_shared, &r->sample.pages_sharing,
                                    &r->sample.pages_unshared, &r->sample.pages_volatile, &r->sample.ksm_zero_pages,
                                    &profit, &r->pages_to_scan, &r->sleep_millisecs, &cpu_ms, &r->sample.anon_pages,
                                    &smart_scan);
                /* Older recordings lack the last two columns (anon_pages, smart_scan). */
                cr_assert(fields == 14 || fields == 16, "%s:%u: expected 14 or 16 comma-separated fields, parsed %d", path,
                          lineno, fields);
                r->sample.has_anon_pages = fields == 16;
                r->sample.time_usec = r->t_ms * USEC_PER_MSEC;
                r->sample.has_pages_scanned = true;
                r->sample.ksmd_cpu_usec = cpu_ms * USEC_PER_MSEC;
                r->sample.has_ksmd_cpu = true;
                rec.n++;
        }
        fclose(f);
        cr_assert_gt(rec.n, 10, "%s: too few rows", path);
}

static bool has_event(const struct row *r, const char *word) {
        size_t len = strlen(word);
        for (const char *p = r->event; (p = strstr(p, word)); p += len)
                if ((p == r->event || p[-1] == '+') && (p[len] == '\0' || p[len] == '+'))
                        return true;
        return false;
}

/* What the rule said at each row it was fed (as often as the daemon samples). */
static struct {
        bool fed, settled, appearing;
        bool merge_pace; /* pages_to_scan would follow the AnonPages rule (the merge's pace) */
        uint32_t scans_needed;
} seen[MAX_ROWS];

/* What the AnonPages rule gives in the replay: MaxPagesToScan, so that the merge's pace
 * is told from any sizing by the full-scan time. */
#define MERGE_PACE 30000

static bool has_event_prefix(const struct row *r, const char *prefix) {
        return strstr(r->event, prefix) != NULL;
}

/* Feeds the rows to the rule as the daemon would: each kick row restarts the watch, then a
 * sample at the daemon's interval (the recordings have a row every 100 ms) while the
 * recording was in aggressive (sleep_millisecs=1). */
static bool replay_every_state; /* feed the rows recorded outside aggressive too */

static void replay(void) {
        struct adaptive_config config;
        struct throttle_config throttle;
        struct adaptive a = {};
        uint64_t next_ms = 0;
        bool kicked = false;

        adaptive_config_default(&config);
        throttle_config_default(&throttle);
        memset(seen, 0, sizeof seen);
        for (size_t i = 0; i < rec.n; i++) {
                const struct row *r = &rec.row[i];
                if (has_event(r, "kick")) {
                        adaptive_on_kick(&a, &r->sample);
                        kicked = true;
                        /* At the daemon's interval, a tenth early: the recorder's rows come a
                         * few ms late. */
                        next_ms = r->t_ms + adaptive_sample_interval_usec(&a, THROTTLE_AGGRESSIVE) * 9 / 10 / USEC_PER_MSEC;
                        continue;
                }
                if (!kicked || (r->sleep_millisecs != 1 && !replay_every_state) || r->t_ms < next_ms)
                        continue;
                seen[i].settled = adaptive_on_sample(&a, &config, THROTTLE_AGGRESSIVE, (uint32_t) r->pages_to_scan, &r->sample);
                seen[i].fed = true;
                next_ms = r->t_ms + adaptive_sample_interval_usec(&a, THROTTLE_AGGRESSIVE) * 9 / 10 / USEC_PER_MSEC;
                seen[i].appearing = a.memory_appearing;
                seen[i].scans_needed = a.scans_needed;
                seen[i].merge_pace = adaptive_pages_to_scan(&a, &config, &throttle, THROTTLE_AGGRESSIVE,
                                                            (uint32_t) r->pages_to_scan, MERGE_PACE) >= MERGE_PACE;
        }
}

/* The end of the segment that starts at the kick in row k: the next kick or guest start,
 * or the end of aggressive. */
static size_t segment_end(size_t k) {
        size_t i;
        for (i = k + 1; i < rec.n; i++)
                if ((rec.row[i].sleep_millisecs != 1 && !replay_every_state) || has_event(&rec.row[i], "kick") || has_event_prefix(&rec.row[i], "start"))
                        break;
        return i;
}

/* The row from which the saved pages (pages_sharing + ksm_zero_pages) stay at 98 % or more
 * of the most the segment reached: where the merge is complete. */
static size_t merge_complete_row(size_t from, size_t end) {
        uint64_t high = 0;
        for (size_t i = from; i < end; i++) {
                uint64_t saved = ksm_sample_saved_pages(&rec.row[i].sample);
                high = saved > high ? saved : high;
        }
        size_t complete = end - 1;
        for (size_t i = end; i-- > from;) {
                if (ksm_sample_saved_pages(&rec.row[i].sample) * 100 < high * 98)
                        break;
                complete = i;
        }
        return complete;
}

static size_t first_settled(size_t from, size_t end) {
        for (size_t i = from; i < end; i++)
                if (seen[i].fed && seen[i].settled)
                        return i;
        return SIZE_MAX;
}

/* A kick when a guest was ready: the rule settles no earlier than the merge completes, and
 * within two full scans of it (plus the one under way), or, where smart_scan skipped pages
 * during the merge's two scans, within the nine it may take to visit each of them again. */
static void check_ready_kick(const char *name, size_t k, size_t end) {
        size_t c = merge_complete_row(k, end), s = first_settled(k, end);
        const struct row *kr = &rec.row[k], *cr = &rec.row[c];
        cr_assert_neq(s, SIZE_MAX, "%s: the kick at %.1f s never settled (merge complete at %.1f s, full scan %" PRIu64 ")",
                      name, kr->t_ms / 1000.0, cr->t_ms / 1000.0, cr->sample.full_scans);
        const struct row *sr = &rec.row[s];
        uint64_t allowed = 3 + (seen[s].scans_needed > 2 ? seen[s].scans_needed : 0);
        cr_assert_geq(sr->t_ms, cr->t_ms, "%s: kick at %.1f s: settled at %.1f s, before the merge was complete at %.1f s",
                      name, kr->t_ms / 1000.0, sr->t_ms / 1000.0, cr->t_ms / 1000.0);
        /* Settled at the first sample that could see it: the one before had not yet seen the
         * end of the allowed scans (two scans can end between two samples). */
        size_t p = s;
        while (p > k && !seen[p - 1].fed)
                p--;
        const struct row *before = p > k ? &rec.row[p - 1] : kr;
        cr_assert_lt(before->sample.full_scans, cr->sample.full_scans + allowed,
                     "%s: kick at %.1f s: settled at %.1f s after full scan %" PRIu64 ", but the sample at %.1f s had "
                     "already seen full scan %" PRIu64 ", %" PRIu64 " after the merge was complete (%.1f s, full scan %" PRIu64 ")",
                     name, kr->t_ms / 1000.0, sr->t_ms / 1000.0, sr->sample.full_scans, before->t_ms / 1000.0,
                     before->sample.full_scans, allowed - 1, cr->t_ms / 1000.0, cr->sample.full_scans + 1);
}

/* A kick at a guest's start, before its memory exists: the rule may settle during a quiet
 * stretch of the boot, but never within the merge's two scans and two more, and memory
 * appearing after that (KSM tracking a tenth more than at the settle) brings the merge's
 * pace back (memory_appearing) before the guest is ready. */
static void check_start_kick(const char *name, size_t k, size_t end) {
        const struct row *kr = &rec.row[k];
        size_t s = first_settled(k, end);
        if (s == SIZE_MAX)
                return;
        const struct row *sr = &rec.row[s];
        cr_assert_geq(sr->sample.full_scans, kr->sample.full_scans + 4,
                      "%s: kick at %.1f s settled at full scan %" PRIu64 ", within four of the kick's %" PRIu64, name,
                      kr->t_ms / 1000.0, sr->sample.full_scans, kr->sample.full_scans);
        uint64_t tracked_at_settle = ksm_sample_rmap_items(&sr->sample);
        for (size_t i = s; i < end; i++)
                if (ksm_sample_rmap_items(&rec.row[i].sample) * 10 > tracked_at_settle * 11) {
                        bool resumed = false;
                        for (size_t j = i; j < end && !resumed; j++)
                                resumed = seen[j].fed && seen[j].appearing;
                        cr_assert(resumed, "%s: kick at %.1f s settled at %.1f s; KSM tracked %" PRIu64 " pages at %.1f s, "
                                  "against %" PRIu64 " then, and the merge's pace never came back",
                                  name, kr->t_ms / 1000.0, sr->t_ms / 1000.0, ksm_sample_rmap_items(&rec.row[i].sample),
                                  rec.row[i].t_ms / 1000.0, tracked_at_settle);
                        return;
                }
}

/* The row of the first event of the form PREFIX + the number of the guest started in row k. */
static size_t guest_event_row(size_t k, const char *prefix) {
        const char *start = strstr(rec.row[k].event, "start");
        char word[32];
        cr_assert_not_null(start);
        snprintf(word, sizeof word, "%s%u", prefix, (unsigned) strtoul(start + strlen("start"), NULL, 10));
        for (size_t i = k; i < rec.n; i++)
                if (has_event(&rec.row[i], word))
                        return i;
        return SIZE_MAX;
}

/* A kick at a guest's start, with AnonPages in the recording: the rule waits for the
 * memory. It does not settle before the guest is ready, spends the boot below the merge's
 * pace, and calls for the merge's pace within 1 s of the guest being ready (its memory
 * stops growing about then: 0.8 s to see that, a sample interval or two; at 200 ms a
 * sample and a quiet second, it took up to 1.4 s). */
static void check_start_kick_waits_for_the_memory(const char *name, size_t k, size_t end) {
        bool check_pace = !replay_every_state; /* a recording that left aggressive scanned slowly after */
        const struct row *kr = &rec.row[k];
        size_t ready = guest_event_row(k, "ready");
        cr_assert(ready != SIZE_MAX && ready < end, "%s: the guest started at %.1f s is not ready before the next start", name,
                  kr->t_ms / 1000.0);
        const struct row *rr = &rec.row[ready];
        size_t s = first_settled(k, ready);
        cr_assert_eq(s, SIZE_MAX, "%s: kick at %.1f s (the guest's start) settled at %.1f s, while the guest filled its "
                     "memory (ready at %.1f s)", name, kr->t_ms / 1000.0, s == SIZE_MAX ? 0.0 : rec.row[s].t_ms / 1000.0,
                     rr->t_ms / 1000.0);

        if (!check_pace)
                return;
        /* The boot, from a second after the kick to a second before ready: mostly below the
         * merge's pace (a pause in the boot may start a merge of what is there). */
        unsigned fed = 0, fast = 0;
        for (size_t i = k; i < ready; i++)
                if (seen[i].fed && rec.row[i].t_ms >= kr->t_ms + 1000 && rec.row[i].t_ms + 1000 <= rr->t_ms) {
                        fed++;
                        fast += seen[i].merge_pace;
                }
        cr_assert_gt(fed, 5, "%s: too few samples during the boot after the kick at %.1f s", name, kr->t_ms / 1000.0);
        cr_assert_leq(fast * 2, fed, "%s: kick at %.1f s: %u of the %u samples while the guest booted called for the merge's "
                      "pace (the AnonPages rule)", name, kr->t_ms / 1000.0, fast, fed);
        /* A merge begun in the boot is thrown away when the boot goes on: one at most (a
         * boot that stops growing for over 0.8 s looks done). */
        unsigned begun = 0;
        bool was_fast = false;
        for (size_t i = k; i < ready; i++)
                if (seen[i].fed && rec.row[i].t_ms >= kr->t_ms + 1000 && rec.row[i].t_ms + 1000 <= rr->t_ms) {
                        begun += seen[i].merge_pace && !was_fast;
                        was_fast = seen[i].merge_pace;
                }
        cr_assert_leq(begun, 1, "%s: kick at %.1f s: %u merges began while the guest booted (ready at %.1f s): slow "
                      "stretches of the boot taken for its end", name, kr->t_ms / 1000.0, begun, rr->t_ms / 1000.0);

        size_t m = SIZE_MAX;
        for (size_t i = ready; i < end && m == SIZE_MAX; i++)
                if (seen[i].fed && seen[i].merge_pace)
                        m = i;
        cr_assert(m != SIZE_MAX && rec.row[m].t_ms <= rr->t_ms + 1000,
                  "%s: guest ready at %.1f s (kicked at its start, %.1f s): the merge's pace %s", name, rr->t_ms / 1000.0,
                  kr->t_ms / 1000.0, m == SIZE_MAX ? "never came" : "came more than 1 s later");
}

static void check_recording(const char *name) {
        load(name);
        replay();
        int kicks = 0;
        for (size_t k = 0; k < rec.n; k++) {
                if (!has_event(&rec.row[k], "kick"))
                        continue;
                kicks++;
                size_t end = segment_end(k);
                if (has_event_prefix(&rec.row[k], "start") && rec.row[k].sample.has_anon_pages)
                        check_start_kick_waits_for_the_memory(name, k, end);
                else if (has_event_prefix(&rec.row[k], "start"))
                        check_start_kick(name, k, end);
                else
                        check_ready_kick(name, k, end);
        }
        cr_assert_gt(kicks, 0, "%s: no kick in the recording", name);
}

TestSuite(adaptive_replay);

Test(adaptive_replay, one_qemu_guest_kicked_when_ready) {
        check_recording("vm1-ready-fixed.csv");
}

Test(adaptive_replay, three_qemu_guests_kicked_when_each_is_ready) {
        check_recording("vm3-ready-fixed.csv");
}

Test(adaptive_replay, qemu_guests_kicked_at_their_start_while_memory_appears) {
        check_recording("vm2-start-fixed.csv");
}

/* Recorded with AnonPages (the daemon samples it too): the kick comes before the memory. */
Test(adaptive_replay, qemu_guests_kicked_at_their_start_wait_for_their_memory_then_merge) {
        replay_every_state = false;
        check_recording("vm2-start-anon-fixed.csv");
}

/* Three guests kicked at their start whose boots grew by a few MiB a second for stretches
 * (ready 9-13 s after their start): the memory wait must not take those for the boots' end. */
Test(adaptive_replay, qemu_guests_booting_in_slow_stretches_are_still_filling) {
        replay_every_state = false;
        check_recording("vm3-start-anon-fixed.csv");
}

/* Recorded at a row every 100 ms, as often as the daemon samples while memory fills (the
 * other recordings have a row every 200 ms): boots of 7-9 s with ksmd at the fixed
 * schedule's pace throughout. */
Test(adaptive_replay, qemu_guests_kicked_at_their_start_sampled_every_100_ms) {
        replay_every_state = false;
        check_recording("vm3-start-anon-100ms-fixed.csv");
}

/* Recorded in adaptive mode before the rule waited for the memory: it settled 2.9 s after
 * the first kick and 5 s after the second, each guest still booting, and the guests
 * merged only seconds after they were ready, in standard. Every row is fed, as if
 * aggressive had gone on (the counters after the settle are standard's slow scans). */
Test(adaptive_replay, qemu_guests_kicked_at_their_start_are_not_settled_while_they_boot) {
        replay_every_state = true;
        check_recording("vm2-start-anon-adaptive.csv");
        replay_every_state = false;
}

Test(adaptive_replay, volatile_pages_of_one_content_with_smart_scan) {
        check_recording("volatile-fixed.csv");
}
