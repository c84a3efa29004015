/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon core without a bus: kicks, the decay timer on a real sd-event loop,
 * outside changes, and recovery, against a temporary KSM directory. The order of writes
 * is read from inotify, so "saved before the first knob" and the advisor order are
 * checked as they happen on disk. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "parse-util.h"
#include "saved-state.h"
#include "test-files.h"

/* 400000 kB of AnonPages: aggressive 100000 / 10 pages, clamped to MaxPagesToScan. */
#define ANON_KB 400000

static char tmpdir[] = "/tmp/test-daemon-core-XXXXXX";
static char ksm_dir[256], runtime_dir[256], meminfo[256];
static struct daemon d;
static sd_event *event;
static int inotify_fd = -1, ksm_watch = -1, runtime_watch = -1;
static int opens_fd = -1; /* every open of a file in the KSM directory, by anyone */

/* What the observer was told. */
static struct {
        unsigned changed, reset, reloaded;
        enum throttle_state seen[16]; /* each state in which changed() was called, once per run */
        size_t n_seen;
        enum throttle_state stop_at; /* ends the event loop when changed() sees it */
        bool stop_enabled;
} told;

static void on_changed(struct daemon *daemon, void *userdata) {
        cr_assert_eq(userdata, &told, "the observer got another userdata than it was given");
        told.changed++;
        if (told.n_seen == 0 || told.seen[told.n_seen - 1] != daemon->throttle.state) {
                cr_assert_lt(told.n_seen, sizeof told.seen / sizeof told.seen[0]);
                told.seen[told.n_seen++] = daemon->throttle.state;
        }
        if (told.stop_enabled && daemon->throttle.state == told.stop_at)
                sd_event_exit(daemon->event, 0);
}

static void on_reset(struct daemon *daemon, void *userdata) {
        told.reset++;
}

static const struct daemon_observer observer = {
        .changed = on_changed,
        .reset = on_reset,
};

static void knob_path(const char *name, char *path, size_t size) {
        snprintf(path, size, "%s/%s", ksm_dir, name);
}

/* A knob's value as a number (advisor_mode as its word's enum). */
static uint32_t knob(enum ksm_knob k) {
        uint32_t value;
        int r = ksm_knob_read(d.ksm_dirfd, k, &value);
        cr_assert_eq(r, 0, "cannot read knob %s: %s", ksm_knob_name(k), strerror(-r));
        return value;
}

static void assert_knobs(uint32_t run, uint32_t pages, uint32_t sleep_ms, const char *when) {
        cr_assert_eq(knob(KSM_KNOB_RUN), run, "run is %u %s, expected %u", knob(KSM_KNOB_RUN), when, run);
        cr_assert_eq(knob(KSM_KNOB_PAGES_TO_SCAN), pages, "pages_to_scan is %u %s, expected %u",
                     knob(KSM_KNOB_PAGES_TO_SCAN), when, pages);
        cr_assert_eq(knob(KSM_KNOB_SLEEP_MILLISECS), sleep_ms, "sleep_millisecs is %u %s, expected %u",
                     knob(KSM_KNOB_SLEEP_MILLISECS), when, sleep_ms);
}

/* pages_to_scan in a state by the AnonPages rule, with this machine's page size. */
static uint32_t anon_rule(uint32_t factor) {
        uint64_t pages = (uint64_t) ANON_KB * 1024 / (uint64_t) sysconf(_SC_PAGESIZE) / factor;
        if (pages < d.config.throttle.min_pages_to_scan)
                pages = d.config.throttle.min_pages_to_scan;
        if (pages > d.config.throttle.max_pages_to_scan)
                pages = d.config.throttle.max_pages_to_scan;
        return (uint32_t) pages;
}

/* The files written (knobs closed after writing, the saved state renamed into place) since the last call,
 * as "ksm/run" or "runtime/host-settings", separated by spaces, in order. */
static const char *writes(void) {
        static char list[4096];
        char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
        size_t used = 0;
        ssize_t n;

        char last[NAME_MAX + 1] = "";
        bool last_moved = false;

        list[0] = '\0';
        while ((n = read(inotify_fd, buf, sizeof buf)) > 0)
                for (char *p = buf; p < buf + n; p += sizeof(struct inotify_event) + ((struct inotify_event *) p)->len) {
                        const struct inotify_event *e = (const struct inotify_event *) p;
                        bool moved = e->mask & IN_MOVED_TO, same_write;
                        int len;
                        if (e->len == 0 || !(e->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) || e->name[0] == '.' ||
                            strstr(e->name, ".tmp"))
                                continue;
                        /* A file written whole elsewhere and renamed into place is closed after
                         * the rename: one write, not two. */
                        same_write = last_moved && !moved && strcmp(last, e->name) == 0;
                        snprintf(last, sizeof last, "%s", e->name);
                        last_moved = moved;
                        if (same_write)
                                continue;
                        len = snprintf(list + used, sizeof list - used, "%s%s/%s", used ? " " : "",
                                       e->wd == ksm_watch ? "ksm" : "runtime", e->name);
                        cr_assert(len > 0 && (size_t) len < sizeof list - used, "too many writes to list");
                        used += (size_t) len;
                }
        cr_assert(n < 0 && errno == EAGAIN, "cannot read inotify events: %s", strerror(errno));
        return list;
}

static void setup(void) {
        unsetenv("NOTIFY_SOCKET");
        log_set_max_level(LOG_WARNING);
        test_mkdtemp(tmpdir);
        snprintf(ksm_dir, sizeof ksm_dir, "%s/ksm", tmpdir);
        snprintf(runtime_dir, sizeof runtime_dir, "%s/runtime", tmpdir);
        snprintf(meminfo, sizeof meminfo, "%s/meminfo", tmpdir);
        cr_assert_eq(mkdir(ksm_dir, 0755), 0);
        cr_assert_eq(mkdir(runtime_dir, 0755), 0);
        test_write_at(ksm_dir, "run", "0\n");
        test_write_at(ksm_dir, "pages_to_scan", "100\n");
        test_write_at(ksm_dir, "sleep_millisecs", "20\n");
        test_write_at(tmpdir, "meminfo", "MemTotal: 8000000 kB\nAnonPages: 400000 kB\n");

        told = (typeof(told)) {};
        d = (struct daemon) { .ksm_dirfd = -EBADF, .meminfo_path = meminfo, .runtime_directory = runtime_dir };
        cr_assert_eq(config_init(&d.config), 0);
        d.config.adaptive = false; /* the fixed schedule: no sampling timer */
        free(d.config.ksm_directory);
        d.config.ksm_directory = strdup(ksm_dir);
        cr_assert_not_null(d.config.ksm_directory);

        cr_assert_eq(sd_event_new(&event), 0);
        inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        cr_assert_geq(inotify_fd, 0);
        /* IN_MODIFY only separates two writes of one knob, which inotify would merge into one
         * event; a knob counts when written (in place, as in sysfs) or renamed into place, the
         * saved state when it is renamed into place. */
        ksm_watch = inotify_add_watch(inotify_fd, ksm_dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY);
        runtime_watch = inotify_add_watch(inotify_fd, runtime_dir, IN_MOVED_TO);
        cr_assert(ksm_watch >= 0 && runtime_watch >= 0);
        opens_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        cr_assert_geq(opens_fd, 0);
        cr_assert_geq(inotify_add_watch(opens_fd, ksm_dir, IN_OPEN), 0);
}

/* The files of the KSM directory opened (read or written) since the last call, as
 * "run pages_to_scan ...", in order; "" if none. */
static const char *ksm_files_opened(void) {
        static char list[4096];
        char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
        size_t used = 0;
        ssize_t n;

        list[0] = '\0';
        while ((n = read(opens_fd, buf, sizeof buf)) > 0)
                for (char *p = buf; p < buf + n; p += sizeof(struct inotify_event) + ((struct inotify_event *) p)->len) {
                        const struct inotify_event *e = (const struct inotify_event *) p;
                        int len = snprintf(list + used, sizeof list - used, "%s%s", used ? " " : "",
                                           e->len > 0 ? e->name : "(directory)");
                        cr_assert(len > 0 && (size_t) len < sizeof list - used, "too many opens to list");
                        used += (size_t) len;
                }
        cr_assert(n < 0 && errno == EAGAIN, "cannot read inotify events: %s", strerror(errno));
        return list;
}

/* Writes a knob in place through a hard link in another directory: the same file, which
 * the daemon's watch on the KSM directory does not see written (as a write through
 * another mount of sysfs). */
static void write_knob_unseen(const char *name, const char *text) {
        char elsewhere[PATH_MAX], link_path[PATH_MAX + 64], path[PATH_MAX + 64];

        snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", tmpdir);
        cr_assert(mkdir(elsewhere, 0755) == 0 || errno == EEXIST);
        snprintf(link_path, sizeof link_path, "%s/%s", elsewhere, name);
        (void) unlink(link_path);
        knob_path(name, path, sizeof path);
        cr_assert_eq(link(path, link_path), 0, "cannot link %s: %s", path, strerror(errno));
        test_write_at(elsewhere, name, text);
}

/* Opens the KSM directory and starts the core, as main.c does, with the observer. */
static void start(void) {
        d.ksm_dirfd = ksm_directory_open(ksm_dir);
        cr_assert_geq(d.ksm_dirfd, 0, "the temporary KSM directory was refused");
        cr_assert_eq(daemon_init(&d, event), 0);
        daemon_set_observer(&d, &observer, &told);
        (void) writes(); /* the set-up's own files */
}

static void teardown(void) {
        daemon_done(&d);
        event = sd_event_unref(event);
        close(inotify_fd);
        close(opens_fd);
        test_rm_rf(tmpdir);
}

TestSuite(daemon_core, .init = setup, .fini = teardown, .timeout = 60);

/* Runs the loop until the observer sees state. */
static void run_until(enum throttle_state state) {
        told.stop_at = state;
        told.stop_enabled = true;
        cr_assert_eq(sd_event_loop(event), 0, "the event loop failed");
        told.stop_enabled = false;
        cr_assert_eq(d.throttle.state, state);
}

Test(daemon_core, kick_saves_the_host_values_before_writing_any_knob) {
        struct daemon_failure failure = { .kind = DAEMON_FAILURE_SAVE_STATE };
        struct saved_state saved;

        start();
        cr_assert_eq(daemon_kick(&d, NULL, &failure), 0, "the kick failed");
        cr_assert_eq(failure.kind, DAEMON_FAILURE_NONE, "a successful kick reported a failure");
        /* The host's values on disk first; after the knobs, what was written is recorded. */
        cr_assert_str_eq(writes(),
                         "runtime/host-settings ksm/pages_to_scan ksm/sleep_millisecs ksm/run runtime/host-settings",
                         "the host's values must be on disk before the first knob is written");

        cr_assert_eq(d.throttle.state, THROTTLE_AGGRESSIVE);
        assert_knobs(1, anon_rule(10), 1, "in aggressive");
        cr_assert_eq(saved_state_load(runtime_dir, &saved), 0, "nothing saved during the cycle");
        cr_assert_eq(saved.host.value[KSM_KNOB_RUN], 0, "the saved host run is not the host's");
        cr_assert_eq(saved.host.value[KSM_KNOB_PAGES_TO_SCAN], 100);
        cr_assert_eq(saved.host.value[KSM_KNOB_SLEEP_MILLISECS], 20);
        cr_assert(ksm_settings_equal(&saved.written, &d.applied), "the saved state does not record what was written");
        cr_assert_eq(d.kick_count, 1);
        cr_assert_neq(d.next_transition_usec, 0, "no next transition in aggressive");
        cr_assert_eq(told.n_seen, 1, "the observer was not told of aggressive (or of more)");
        cr_assert_eq(told.seen[0], THROTTLE_AGGRESSIVE);

        /* Again in aggressive: nothing changes, nothing is written. */
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_str_eq(writes(), "", "a kick in aggressive that changes nothing wrote something");
        cr_assert_eq(d.kick_count, 2);
}

Test(daemon_core, kick_without_a_place_to_save_writes_nothing) {
        struct daemon_failure failure = {};
        char blocker[PATH_MAX + 16];

        /* The runtime directory's parent is a file: the host's values cannot be saved. */
        snprintf(blocker, sizeof blocker, "%s/file", tmpdir);
        test_write_at(tmpdir, "file", "");
        strcat(blocker, "/runtime");
        d.runtime_directory = blocker;
        start();

        cr_assert_eq(daemon_kick(&d, NULL, &failure), -ENOTDIR, "the kick did not fail as the directory cannot exist");
        cr_assert_eq(failure.kind, DAEMON_FAILURE_SAVE_STATE, "the failure is not the saved state's");
        cr_assert_str_eq(writes(), "", "a knob was written although the host's values were not saved");
        assert_knobs(0, 100, 20, "after the refused kick");
        cr_assert_eq(d.throttle.state, THROTTLE_INITIAL);
        cr_assert_eq(d.kick_count, 0);
        cr_assert_eq(told.changed, 0, "the observer was told of a change that did not happen");
}

Test(daemon_core, failed_write_from_initial_rolls_back) {
        struct daemon_failure failure = {};
        char path[PATH_MAX + 64];

        start();
        /* Readable but not writable, even for root: a read-only sysctl holding a number. */
        knob_path("sleep_millisecs", path, sizeof path);
        cr_assert_eq(unlink(path), 0);
        cr_assert_eq(symlink("/proc/sys/kernel/ngroups_max", path), 0);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
                close(fd);
                cr_skip_test("/proc/sys/kernel/ngroups_max is writable here");
        }
        (void) writes();

        int r = daemon_kick(&d, NULL, &failure);
        cr_assert_lt(r, 0, "the kick succeeded although sleep_millisecs cannot be written");
        cr_assert_eq(failure.kind, DAEMON_FAILURE_WRITE_KNOB);
        cr_assert_eq(failure.knob, KSM_KNOB_SLEEP_MILLISECS, "the failure names %s, not sleep_millisecs",
                     ksm_knob_name(failure.knob));
        /* The values about to be written recorded first; pages_to_scan written, then put back
         * (run was never reached); what the roll-back left recorded. */
        cr_assert_str_eq(writes(), "runtime/host-settings ksm/pages_to_scan ksm/pages_to_scan runtime/host-settings");
        cr_assert_eq(knob(KSM_KNOB_PAGES_TO_SCAN), 100, "pages_to_scan was not put back");
        cr_assert_eq(knob(KSM_KNOB_RUN), 0);
        cr_assert_eq(d.throttle.state, THROTTLE_INITIAL, "the state moved although the write failed");
        cr_assert_not(saved_state_exists(runtime_dir), "rolled back to the host's values, yet the saved state was kept");
        cr_assert_eq(d.kick_count, 0);
}

Test(daemon_core, failed_write_in_standard_stays_in_standard) {
        struct daemon_failure failure = {};
        char path[PATH_MAX + 64];
        struct saved_state saved;

        d.config.throttle.level[THROTTLE_AGGRESSIVE].duration_usec = 20 * USEC_PER_MSEC;
        d.config.throttle.level[THROTTLE_STANDARD].duration_usec = USEC_PER_HOUR;
        start();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        run_until(THROTTLE_STANDARD);
        assert_knobs(1, anon_rule(100), 10, "in standard");

        /* A directory where sleep_millisecs was: reading and writing it fail with EISDIR. */
        knob_path("sleep_millisecs", path, sizeof path);
        cr_assert_eq(unlink(path), 0);
        cr_assert_eq(mkdir(path, 0755), 0);
        (void) writes();
        cr_assert_eq(daemon_kick(&d, NULL, &failure), -EISDIR);
        cr_assert_eq(failure.kind, DAEMON_FAILURE_WRITE_KNOB);
        cr_assert_eq(failure.knob, KSM_KNOB_SLEEP_MILLISECS);
        const char *written = writes();
        cr_assert_str_eq(written, "runtime/host-settings ksm/pages_to_scan ksm/pages_to_scan runtime/host-settings",
                         "not recorded, written, put back and recorded: %s", written);
        cr_assert_eq(d.throttle.state, THROTTLE_STANDARD, "the state moved although the write failed");
        cr_assert_eq(knob(KSM_KNOB_PAGES_TO_SCAN), anon_rule(100), "pages_to_scan was not put back");
        cr_assert_eq(saved_state_load(runtime_dir, &saved), 0, "the host's values were dropped mid-cycle");
        cr_assert_eq(saved.host.value[KSM_KNOB_PAGES_TO_SCAN], 100);

        /* Once the knob is back, kicks work again. */
        cr_assert_eq(rmdir(path), 0);
        test_write_at(ksm_dir, "sleep_millisecs", "10\n");
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        assert_knobs(1, anon_rule(10), 1, "in aggressive after the knob came back");
}

Test(daemon_core, timer_decays_through_every_state_to_the_host_values) {
        for (int s = THROTTLE_AGGRESSIVE; s < _THROTTLE_STATE_MAX; s++)
                d.config.throttle.level[s].duration_usec = 20 * USEC_PER_MSEC;
        start();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        run_until(THROTTLE_INITIAL);

        cr_assert_eq(told.n_seen, 4, "the observer saw %zu states, not aggressive, standard, slow, initial", told.n_seen);
        cr_assert_eq(told.seen[0], THROTTLE_AGGRESSIVE);
        cr_assert_eq(told.seen[1], THROTTLE_STANDARD);
        cr_assert_eq(told.seen[2], THROTTLE_SLOW);
        cr_assert_eq(told.seen[3], THROTTLE_INITIAL);
        assert_knobs(0, 100, 20, "at the end of the cycle");
        cr_assert_eq(d.next_transition_usec, 0, "a next transition is announced in initial");
        cr_assert_not(saved_state_exists(runtime_dir), "the saved state outlived the cycle");
}

Test(daemon_core, outside_change_ends_the_cycle_and_is_kept) {
        start();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        (void) writes();

        /* An administrator sets pages_to_scan; the stop must leave it as it is, and give
         * the knobs only the throttler wrote the host's values back. */
        test_write_at(ksm_dir, "pages_to_scan", "777\n");
        (void) writes();
        cr_assert_eq(daemon_restore(&d), 0);
        cr_assert_str_eq(writes(), "ksm/sleep_millisecs ksm/run", "the stop wrote over an outside change, or restored "
                                                                  "too little");
        cr_assert_eq(d.throttle.state, THROTTLE_INITIAL);
        assert_knobs(0, 777, 20, "after the stop");
        cr_assert_eq(d.host.value[KSM_KNOB_PAGES_TO_SCAN], 777, "the outside value did not become the host's");
        cr_assert_not(saved_state_exists(runtime_dir), "the saved state of an ended cycle was kept");
        cr_assert_eq(told.seen[told.n_seen - 1], THROTTLE_INITIAL, "the observer was not told of the end");
}

Test(daemon_core, kick_after_an_outside_change_starts_from_it) {
        struct saved_state saved;

        start();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        test_write_at(ksm_dir, "pages_to_scan", "777\n");
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_eq(d.throttle.state, THROTTLE_AGGRESSIVE);
        cr_assert_eq(d.host.value[KSM_KNOB_PAGES_TO_SCAN], 777, "the new cycle did not start from the outside value");
        cr_assert_eq(saved_state_load(runtime_dir, &saved), 0);
        cr_assert_eq(saved.host.value[KSM_KNOB_PAGES_TO_SCAN], 777, "the saved host values are the stale ones");
        cr_assert_eq(knob(KSM_KNOB_PAGES_TO_SCAN), anon_rule(10));
}

Test(daemon_core, kick_in_aggressive_reads_and_writes_no_ksm_file) {
        test_write_at(ksm_dir, "full_scans", "3\n");
        test_write_at(ksm_dir, "pages_sharing", "5000\n");
        d.config.adaptive = true;
        d.config.throttle.level[THROTTLE_AGGRESSIVE].duration_usec = USEC_PER_HOUR;
        start();
        (void) ksm_files_opened();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        /* The counter sees the daemon's reads: the kick from initial read the knobs and a sample. */
        const char *opened = ksm_files_opened();
        cr_assert_not_null(strstr(opened, "sleep_millisecs"), "the kick from initial read no knob, or the count is "
                                                              "blind: %s", opened);
        cr_assert_not_null(strstr(opened, "full_scans"), "the kick from initial read no counter: %s", opened);
        cr_assert_eq(d.throttle.state, THROTTLE_AGGRESSIVE);

        /* The first kick after the throttler wrote compares sysfs with what it wrote, once. */
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        opened = ksm_files_opened();
        cr_assert_not_null(strstr(opened, "run"), "nothing compared after the throttler's own writes: %s", opened);
        (void) writes();

        uint64_t deadline = d.throttle.deadline_usec;
        for (int i = 0; i < 100; i++)
                cr_assert_eq(daemon_kick(&d, NULL, NULL), 0, "kick %d in aggressive failed", i);
        opened = ksm_files_opened();
        cr_assert_str_eq(opened, "", "kicks in aggressive that change nothing opened %s", opened);
        cr_assert_str_eq(writes(), "", "kicks in aggressive that change nothing wrote something");
        cr_assert_eq(d.kick_count, 102);
        cr_assert_eq(d.throttle.state, THROTTLE_AGGRESSIVE);
        cr_assert_gt(d.throttle.deadline_usec, deadline, "the kicks did not restart aggressive's time");

        /* A write through the KSM directory is seen by the next kick, which compares. */
        test_write_at(ksm_dir, "sleep_millisecs", "55\n");
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_eq(d.host.value[KSM_KNOB_SLEEP_MILLISECS], 55, "the kick after an outside write did not see it");
        cr_assert_eq(d.throttle.state, THROTTLE_AGGRESSIVE, "the kick did not start a new cycle from the outside value");
}

Test(daemon_core, outside_change_the_watch_cannot_see_is_found_at_the_next_timer) {
        d.config.throttle.level[THROTTLE_AGGRESSIVE].duration_usec = 50 * USEC_PER_MSEC;
        d.config.throttle.level[THROTTLE_STANDARD].duration_usec = USEC_PER_HOUR;
        start();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0); /* compares after the throttler's own writes */
        (void) ksm_files_opened();

        write_knob_unseen("pages_to_scan", "777\n");
        cr_assert_eq(knob(KSM_KNOB_PAGES_TO_SCAN), 777, "the write through the hard link missed the knob");
        (void) ksm_files_opened();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_str_eq(ksm_files_opened(), "", "the watch saw the write through the other directory: this test "
                                                 "would not show the timer's compare");
        cr_assert_eq(d.throttle.state, THROTTLE_AGGRESSIVE);

        /* Aggressive's time is up: the decay timer compares before standard would write. */
        run_until(THROTTLE_INITIAL);
        cr_assert_eq(told.seen[told.n_seen - 2], THROTTLE_AGGRESSIVE, "standard was entered over the outside change");
        assert_knobs(0, 777, 20, "after the outside change was found");
        cr_assert_eq(d.host.value[KSM_KNOB_PAGES_TO_SCAN], 777, "the outside value did not become the host's");
        cr_assert_not(saved_state_exists(runtime_dir), "the saved state of an ended cycle was kept");
}

Test(daemon_core, kick_that_writes_compares_first_even_what_the_watch_cannot_see) {
        struct saved_state saved;

        d.config.throttle.level[THROTTLE_AGGRESSIVE].duration_usec = USEC_PER_HOUR;
        start();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0); /* compares after the throttler's own writes */
        (void) ksm_files_opened();

        write_knob_unseen("sleep_millisecs", "55\n");
        /* Half the memory: this kick in aggressive writes a smaller pages_to_scan. */
        test_write_at(tmpdir, "meminfo", "MemTotal: 8000000 kB\nAnonPages: 200000 kB\n");
        uint32_t pages = (uint32_t) ((uint64_t) 200000 * 1024 / (uint64_t) sysconf(_SC_PAGESIZE) / 10);
        cr_assert_neq(pages, anon_rule(10), "the new AnonPages gives the same pages_to_scan: nothing would be written");
        (void) writes();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        /* The outside value became the host's before anything was written, and the kick
         * started a new cycle from it. */
        cr_assert_eq(d.host.value[KSM_KNOB_SLEEP_MILLISECS], 55, "the kick wrote over an outside change it did not see");
        cr_assert_eq(saved_state_load(runtime_dir, &saved), 0);
        cr_assert_eq(saved.host.value[KSM_KNOB_SLEEP_MILLISECS], 55, "the saved host values are the stale ones");
        cr_assert_eq(d.throttle.state, THROTTLE_AGGRESSIVE);
        assert_knobs(1, pages, 1, "in the new cycle");
        const char *written = writes();
        cr_assert_eq(strncmp(written, "ksm/pages_to_scan ksm/run", strlen("ksm/pages_to_scan ksm/run")), 0,
                     "the end of the old cycle did not first give the untouched knobs the host's values: %s", written);
}

/* What a throttler that died in aggressive leaves behind, on a kernel with the advisor. */
static void leave_a_dead_cycle(uint32_t host_advisor_mode) {
        struct saved_state state = {};

        test_write_at(ksm_dir, "advisor_mode", "none\n");
        test_write_at(ksm_dir, "run", "1\n");
        test_write_at(ksm_dir, "pages_to_scan", "10000\n");
        test_write_at(ksm_dir, "sleep_millisecs", "1\n");
        ksm_settings_set(&state.host, KSM_KNOB_ADVISOR_MODE, host_advisor_mode);
        ksm_settings_set(&state.host, KSM_KNOB_PAGES_TO_SCAN, 100);
        ksm_settings_set(&state.host, KSM_KNOB_SLEEP_MILLISECS, 20);
        ksm_settings_set(&state.host, KSM_KNOB_RUN, 0);
        ksm_settings_set(&state.written, KSM_KNOB_ADVISOR_MODE, KSM_ADVISOR_NONE);
        ksm_settings_set(&state.written, KSM_KNOB_PAGES_TO_SCAN, 10000);
        ksm_settings_set(&state.written, KSM_KNOB_SLEEP_MILLISECS, 1);
        ksm_settings_set(&state.written, KSM_KNOB_RUN, 1);
        cr_assert_eq(saved_state_save(runtime_dir, &state), 0, "cannot save the dead cycle's state");
}

Test(daemon_core, recovery_hands_back_to_the_advisor_first) {
        leave_a_dead_cycle(KSM_ADVISOR_SCAN_TIME);
        start();
        cr_assert_eq(daemon_recover(&d), 1, "nothing was recovered");

        /* advisor_mode first; pages_to_scan then belongs to the advisor and is not written. */
        cr_assert_str_eq(writes(), "ksm/advisor_mode ksm/sleep_millisecs ksm/run", "the restore order is wrong");
        cr_assert_eq(knob(KSM_KNOB_ADVISOR_MODE), KSM_ADVISOR_SCAN_TIME);
        cr_assert_eq(knob(KSM_KNOB_SLEEP_MILLISECS), 20);
        cr_assert_eq(knob(KSM_KNOB_RUN), 0);
        cr_assert_not(saved_state_exists(runtime_dir), "the saved state was kept after the restore");
        cr_assert(ksm_settings_equal(&d.host, &d.applied), "after recovery sysfs is not the host's own");
        cr_assert_eq(told.reset, 1, "the observer was not told that the recovered values are the baseline");
        cr_assert_eq(told.changed, 0, "recovery announced a change");
}

Test(daemon_core, recovery_without_the_advisor_restores_every_knob_in_order) {
        leave_a_dead_cycle(KSM_ADVISOR_NONE);
        start();
        cr_assert_eq(daemon_recover(&d), 1);
        cr_assert_str_eq(writes(), "ksm/pages_to_scan ksm/sleep_millisecs ksm/run", "the restore order is wrong");
        assert_knobs(0, 100, 20, "after recovery");
}

Test(daemon_core, recovery_keeps_a_knob_changed_after_the_throttler_wrote_it) {
        leave_a_dead_cycle(KSM_ADVISOR_NONE);
        test_write_at(ksm_dir, "sleep_millisecs", "55\n"); /* not what the dead throttler wrote (1) */
        start();
        cr_assert_eq(daemon_recover(&d), 1);
        assert_knobs(0, 100, 55, "after recovery");
        cr_assert_eq(daemon_recover(&d), 0, "a second recovery found something to restore");
}

/* The saved state holds the host's value of knob and the value the throttler wrote. */
static void assert_recorded(enum ksm_knob knob, uint32_t host, uint32_t written) {
        struct saved_state saved;
        cr_assert_eq(saved_state_load(runtime_dir, &saved), 0);
        cr_assert(ksm_settings_has(&saved.host, knob), "the host's %s is not in the record", ksm_knob_name(knob));
        cr_assert_eq(saved.host.value[knob], host, "the record says the host's %s is %u, not %u", ksm_knob_name(knob),
                     saved.host.value[knob], host);
        cr_assert_eq(saved.written.value[knob], written, "the record does not say the throttler wrote %s=%u",
                     ksm_knob_name(knob), written);
}

/* smart_scan (Linux 6.7+) is managed like the other knobs: off in aggressive by default,
 * the host's in standard and slow, recorded before it is written, given back at the end. */
Test(daemon_core, smart_scan_is_off_in_aggressive_and_the_hosts_value_comes_back) {
        test_write_at(ksm_dir, "smart_scan", "1\n");
        d.config.throttle.level[THROTTLE_AGGRESSIVE].duration_usec = 20 * USEC_PER_MSEC;
        start();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_str_eq(writes(),
                         "runtime/host-settings ksm/pages_to_scan ksm/sleep_millisecs ksm/smart_scan ksm/run "
                         "runtime/host-settings",
                         "smart_scan not written (before run, after the record) in aggressive");
        cr_assert_eq(knob(KSM_KNOB_SMART_SCAN), 0, "aggressive left smart_scan on");
        assert_recorded(KSM_KNOB_SMART_SCAN, 1, 0);

        run_until(THROTTLE_STANDARD);
        cr_assert_eq(knob(KSM_KNOB_SMART_SCAN), 1, "standard does not give smart_scan the host's value");
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_eq(knob(KSM_KNOB_SMART_SCAN), 0, "a kick in standard left smart_scan on");
        cr_assert_eq(daemon_restore(&d), 0);
        cr_assert_eq(d.throttle.state, THROTTLE_INITIAL);
        cr_assert_eq(knob(KSM_KNOB_SMART_SCAN), 1, "the host's smart_scan was not restored");
        cr_assert_not(saved_state_exists(runtime_dir), "the saved state outlived the cycle");
}

/* use_zero_pages is on in aggressive by default (UseZeroPages=), recorded before it is
 * written and given back at the end; standard (UseZeroPages=host) gives the host's value. */
Test(daemon_core, use_zero_pages_is_on_in_aggressive_and_the_hosts_value_comes_back) {
        test_write_at(ksm_dir, "use_zero_pages", "0\n");
        test_write_at(ksm_dir, "ksm_zero_pages", "0\n"); /* the kernel counts what it saves */
        d.config.throttle.level[THROTTLE_AGGRESSIVE].duration_usec = 20 * USEC_PER_MSEC;
        start();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_eq(knob(KSM_KNOB_USE_ZERO_PAGES), 1, "aggressive did not turn use_zero_pages on");
        assert_recorded(KSM_KNOB_USE_ZERO_PAGES, 0, 1);

        run_until(THROTTLE_STANDARD);
        cr_assert_eq(knob(KSM_KNOB_USE_ZERO_PAGES), 0, "standard (UseZeroPages=host) did not give back the host's 0");
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_eq(knob(KSM_KNOB_USE_ZERO_PAGES), 1);
        cr_assert_eq(daemon_restore(&d), 0);
        cr_assert_eq(knob(KSM_KNOB_USE_ZERO_PAGES), 0, "the host's use_zero_pages was not restored");
        cr_assert_not(saved_state_exists(runtime_dir), "the saved state outlived the cycle");
}

Test(daemon_core, smart_scan_changed_from_outside_ends_the_cycle_and_is_kept) {
        test_write_at(ksm_dir, "smart_scan", "1\n");
        start();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_eq(knob(KSM_KNOB_SMART_SCAN), 0);
        write_knob_unseen("smart_scan", "1\n"); /* an administrator turns it back on */
        (void) writes();
        cr_assert_eq(daemon_restore(&d), 0);
        cr_assert_eq(d.throttle.state, THROTTLE_INITIAL);
        cr_assert_str_eq(writes(), "ksm/pages_to_scan ksm/sleep_millisecs ksm/run",
                         "the stop wrote over the administrator's smart_scan, or restored too little");
        cr_assert_eq(knob(KSM_KNOB_SMART_SCAN), 1);
        cr_assert_eq(d.host.value[KSM_KNOB_SMART_SCAN], 1, "the outside value did not become the host's");
}

/* A throttler killed in aggressive (SIGKILL: no restore) left smart_scan=0 behind. */
Test(daemon_core, recovery_gives_smart_scan_back) {
        struct saved_state state = {};

        test_write_at(ksm_dir, "run", "1\n");
        test_write_at(ksm_dir, "pages_to_scan", "10000\n");
        test_write_at(ksm_dir, "sleep_millisecs", "1\n");
        test_write_at(ksm_dir, "smart_scan", "0\n");
        ksm_settings_set(&state.host, KSM_KNOB_PAGES_TO_SCAN, 100);
        ksm_settings_set(&state.host, KSM_KNOB_SLEEP_MILLISECS, 20);
        ksm_settings_set(&state.host, KSM_KNOB_SMART_SCAN, 1);
        ksm_settings_set(&state.host, KSM_KNOB_RUN, 0);
        ksm_settings_set(&state.written, KSM_KNOB_PAGES_TO_SCAN, 10000);
        ksm_settings_set(&state.written, KSM_KNOB_SLEEP_MILLISECS, 1);
        ksm_settings_set(&state.written, KSM_KNOB_SMART_SCAN, 0);
        ksm_settings_set(&state.written, KSM_KNOB_RUN, 1);
        cr_assert_eq(saved_state_save(runtime_dir, &state), 0);
        start();
        cr_assert_eq(daemon_recover(&d), 1, "nothing was recovered");
        cr_assert_str_eq(writes(), "ksm/pages_to_scan ksm/sleep_millisecs ksm/smart_scan ksm/run", "the restore order is wrong");
        cr_assert_eq(knob(KSM_KNOB_SMART_SCAN), 1, "recovery left the dead throttler's smart_scan=0");
        assert_knobs(0, 100, 20, "after recovery");

        /* Someone turned it off after the throttler died: theirs stands. */
        test_write_at(ksm_dir, "smart_scan", "0\n");
        state.written.value[KSM_KNOB_SMART_SCAN] = 1;
        test_write_at(ksm_dir, "run", "1\n");
        cr_assert_eq(saved_state_save(runtime_dir, &state), 0);
        cr_assert_eq(daemon_recover(&d), 1);
        cr_assert_eq(knob(KSM_KNOB_SMART_SCAN), 0, "recovery wrote over a smart_scan changed after the throttler");
        cr_assert_eq(knob(KSM_KNOB_RUN), 0);
}

/* A stand-in for ksmd: each tick ends a full scan of 1000 pages that merges nothing new. */
static int on_ksmd_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        unsigned *scans = userdata;
        char text[32];

        ++*scans;
        snprintf(text, sizeof text, "%u\n", *scans);
        test_write_at(ksm_dir, "full_scans", text);
        snprintf(text, sizeof text, "%u\n", *scans * 1000);
        test_write_at(ksm_dir, "pages_scanned", text);
        cr_assert_eq(sd_event_source_set_time_relative(s, 50 * USEC_PER_MSEC), 0);
        return 0;
}

Test(daemon_core, adaptive_mode_leaves_aggressive_once_merging_settled) {
        sd_event_source *ksmd = NULL;
        unsigned scans = 0;

        test_write_at(ksm_dir, "full_scans", "0\n");
        test_write_at(ksm_dir, "pages_scanned", "0\n");
        test_write_at(ksm_dir, "pages_shared", "100\n");
        test_write_at(ksm_dir, "pages_sharing", "5000\n");
        d.config.adaptive = true;
        d.config.throttle.level[THROTTLE_AGGRESSIVE].duration_usec = USEC_PER_HOUR;
        start();
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);
        cr_assert_eq(sd_event_add_time_relative(event, &ksmd, CLOCK_MONOTONIC, 50 * USEC_PER_MSEC, 0, on_ksmd_tick, &scans),
                     0);
        cr_assert_eq(sd_event_source_set_enabled(ksmd, SD_EVENT_ON), 0);

        /* Aggressive lasts an hour: only the settle detection on the sampling timer ends it. */
        run_until(THROTTLE_STANDARD);
        cr_assert_geq(scans, 4, "aggressive ended after %u full scans, before the merge's two and two settled ones",
                      scans);
        cr_assert_eq(told.seen[0], THROTTLE_AGGRESSIVE);
        cr_assert_eq(told.seen[told.n_seen - 1], THROTTLE_STANDARD);
        sd_event_source_disable_unref(ksmd);
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

Test(daemon_core, time_in_each_state_covers_the_whole_run) {
        uint64_t usec[_THROTTLE_STATE_MAX], before_start, after_start, before_read, after_read, total = 0;

        for (int s = THROTTLE_AGGRESSIVE; s < _THROTTLE_STATE_MAX; s++)
                d.config.throttle.level[s].duration_usec = 20 * USEC_PER_MSEC;
        before_start = monotonic_usec();
        start();
        after_start = monotonic_usec();
        cr_assert_eq(daemon_kick(&d, "test", NULL), 0);
        run_until(THROTTLE_INITIAL);

        before_read = monotonic_usec();
        daemon_time_in_state(&d, usec);
        after_read = monotonic_usec();
        for (int s = 0; s < _THROTTLE_STATE_MAX; s++)
                total += usec[s];
        /* Bounds, not a timing: the states split the time from start to the read, no more, no less. */
        cr_assert(total >= before_read - after_start && total <= after_read - before_start,
                  "the states add up to %llu µs, outside the run's %llu..%llu µs", (unsigned long long) total,
                  (unsigned long long) (before_read - after_start), (unsigned long long) (after_read - before_start));
        for (int s = THROTTLE_AGGRESSIVE; s < _THROTTLE_STATE_MAX; s++)
                cr_assert_gt(usec[s], 0, "%s was entered and left, yet has no time", throttle_state_to_string(s));
}

Test(daemon_core, accepted_kicks_are_counted_by_origin_and_failed_ones_not) {
        char path[PATH_MAX + 64];

        start();
        cr_assert_eq(daemon_kick(&d, "org.libvirt.hook", NULL), 0);
        cr_assert_eq(daemon_kick(&d, "kata-runtime", NULL), 0);
        cr_assert_eq(daemon_kick(&d, "org.libvirt.hook", NULL), 0);
        cr_assert_eq(daemon_kick(&d, NULL, NULL), 0);

        /* Back to initial, then a kick that cannot read a knob. */
        d.config.throttle.level[THROTTLE_AGGRESSIVE].duration_usec = USEC_PER_MSEC;
        d.config.throttle.level[THROTTLE_STANDARD].duration_usec = USEC_PER_MSEC;
        d.config.throttle.level[THROTTLE_SLOW].duration_usec = USEC_PER_MSEC;
        cr_assert_eq(daemon_kick(&d, "org.libvirt.hook", NULL), 0);
        run_until(THROTTLE_INITIAL);
        knob_path("run", path, sizeof path);
        cr_assert_eq(unlink(path), 0);
        cr_assert_lt(daemon_kick(&d, "failing", NULL), 0, "a kick without a run knob succeeded");

        cr_assert_eq(d.stats.n_origins, 3, "%zu origins counted, expected 3 (a failed kick counts nowhere)",
                     d.stats.n_origins);
        cr_assert_str_eq(d.stats.origins[0].name, "org.libvirt.hook");
        cr_assert_eq(d.stats.origins[0].kicks, 3);
        cr_assert_str_eq(d.stats.origins[1].name, "kata-runtime");
        cr_assert_eq(d.stats.origins[1].kicks, 1);
        cr_assert_str_eq(d.stats.origins[2].name, DAEMON_STATS_UNKNOWN);
        cr_assert_eq(d.stats.origins[2].kicks, 1);
        cr_assert_eq(d.kick_count, 5, "KickCount and the kicks by origin disagree");
}
