/* SPDX-License-Identifier: Apache-2.0 */
/* KSM sysfs access against a temporary directory of fake knob files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ksm.h"
#include "test-files.h"

static char tmpdir[] = "/tmp/test-ksm-XXXXXX";
static int ksm_fd = -1;

static void put(const char *name, const char *text) {
        int fd = openat(ksm_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0, "cannot create %s", name);
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

/* The whole content of a knob file (static buffer). */
static const char *get(const char *name) {
        static char buf[256];
        int fd = openat(ksm_fd, name, O_RDONLY | O_CLOEXEC);
        ssize_t n;
        cr_assert_geq(fd, 0, "cannot open %s", name);
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        cr_assert_geq(n, 0);
        buf[n] = '\0';
        return buf;
}

/* Replaces a knob with a directory, so that writing (and reading) it fails. */
static void make_unwritable(const char *name) {
        cr_assert_eq(unlinkat(ksm_fd, name, 0), 0);
        cr_assert_eq(mkdirat(ksm_fd, name, 0755), 0);
}

/* Backdates a file, so that was_written() tells whether anything wrote it since. */
static void backdate(const char *name) {
        const struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
        cr_assert_eq(utimensat(ksm_fd, name, old, 0), 0);
}

static bool was_written(const char *name) {
        struct stat st;
        cr_assert_eq(fstatat(ksm_fd, name, &st, 0), 0);
        return st.st_mtim.tv_sec != 1000000000;
}

static void setup(void) {
        test_mkdtemp(tmpdir);
        ksm_fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(ksm_fd, 0);
        put("run", "0\n");
        put("pages_to_scan", "100\n");
        put("sleep_millisecs", "20\n");
}

static void teardown(void) {
        close(ksm_fd);
        test_rm_rf(tmpdir);
}

TestSuite(ksm, .init = setup, .fini = teardown);

static struct ksm_settings settings(int advisor, uint32_t pages, uint32_t sleep_ms, uint32_t run) {
        struct ksm_settings s = {};
        if (advisor >= 0)
                ksm_settings_set(&s, KSM_KNOB_ADVISOR_MODE, (uint32_t) advisor);
        ksm_settings_set(&s, KSM_KNOB_PAGES_TO_SCAN, pages);
        ksm_settings_set(&s, KSM_KNOB_SLEEP_MILLISECS, sleep_ms);
        ksm_settings_set(&s, KSM_KNOB_RUN, run);
        return s;
}

static void assert_settings_eq(const struct ksm_settings *a, const struct ksm_settings *b) {
        char x[256], y[256];
        cr_assert(ksm_settings_equal(a, b), "settings differ: {%s} vs {%s}", ksm_settings_format(a, x, sizeof x),
                  ksm_settings_format(b, y, sizeof y));
}

Test(ksm, knob_parse_numbers) {
        uint32_t v = 7;
        cr_assert_eq(ksm_knob_parse(KSM_KNOB_PAGES_TO_SCAN, "100\n", &v), 0);
        cr_assert_eq(v, 100);
        cr_assert_eq(ksm_knob_parse(KSM_KNOB_RUN, "0", &v), 0);
        cr_assert_eq(v, 0);
        cr_assert_eq(ksm_knob_parse(KSM_KNOB_SLEEP_MILLISECS, "4294967295\n", &v), 0);
        cr_assert_eq(v, UINT32_MAX);

        v = 7;
        cr_assert_eq(ksm_knob_parse(KSM_KNOB_SLEEP_MILLISECS, "4294967296\n", &v), -ERANGE);
        cr_assert_eq(ksm_knob_parse(KSM_KNOB_RUN, "", &v), -EINVAL);
        cr_assert_eq(ksm_knob_parse(KSM_KNOB_RUN, "on\n", &v), -EINVAL);
        cr_assert_eq(ksm_knob_parse(KSM_KNOB_PAGES_TO_SCAN, "-1\n", &v), -EINVAL);
        cr_assert_eq(ksm_knob_parse(KSM_KNOB_PAGES_TO_SCAN, "1 2\n", &v), -EINVAL);
        cr_assert_eq(v, 7);
}

Test(ksm, knob_parse_advisor_mode) {
        static const struct {
                const char *text;
                uint32_t mode;
        } good[] = {
                { "[none] scan-time\n", KSM_ADVISOR_NONE },
                { "none [scan-time]\n", KSM_ADVISOR_SCAN_TIME },
                { "none\n", KSM_ADVISOR_NONE },
                { "none", KSM_ADVISOR_NONE },
                { "scan-time\n", KSM_ADVISOR_SCAN_TIME },
        };
        static const char *const bad[] = { "bogus", "bogus\n", "[bogus] none\n", "[none", "[] none", "", "\n",
                                           "none scan-time\n", "nonesuch" };

        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
                uint32_t v = 99;
                cr_assert_eq(ksm_knob_parse(KSM_KNOB_ADVISOR_MODE, good[i].text, &v), 0, "\"%s\" rejected", good[i].text);
                cr_assert_eq(v, good[i].mode, "\"%s\" gave mode %u", good[i].text, v);
        }
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                uint32_t v = 99;
                cr_assert_eq(ksm_knob_parse(KSM_KNOB_ADVISOR_MODE, bad[i], &v), -EINVAL, "\"%s\" accepted", bad[i]);
                cr_assert_eq(v, 99);
        }
}

Test(ksm, knob_write_then_read_round_trips) {
        uint32_t v = 0;
        put("pages_to_scan", "100000\n");
        cr_assert_eq(ksm_knob_write(ksm_fd, KSM_KNOB_PAGES_TO_SCAN, 5), 0);
        cr_assert_str_eq(get("pages_to_scan"), "5\n"); /* exactly, no tail of the longer old value */
        cr_assert_eq(ksm_knob_read(ksm_fd, KSM_KNOB_PAGES_TO_SCAN, &v), 0);
        cr_assert_eq(v, 5);

        cr_assert_eq(ksm_knob_write(ksm_fd, KSM_KNOB_RUN, 1), 0);
        cr_assert_str_eq(get("run"), "1\n");
        cr_assert_eq(ksm_knob_read(ksm_fd, KSM_KNOB_RUN, &v), 0);
        cr_assert_eq(v, 1);

        put("advisor_mode", "[none] scan-time\n");
        cr_assert_eq(ksm_knob_write(ksm_fd, KSM_KNOB_ADVISOR_MODE, KSM_ADVISOR_SCAN_TIME), 0);
        cr_assert_str_eq(get("advisor_mode"), "scan-time\n");
        cr_assert_eq(ksm_knob_read(ksm_fd, KSM_KNOB_ADVISOR_MODE, &v), 0);
        cr_assert_eq(v, KSM_ADVISOR_SCAN_TIME);
        cr_assert_eq(ksm_knob_write(ksm_fd, KSM_KNOB_ADVISOR_MODE, KSM_ADVISOR_NONE), 0);
        cr_assert_str_eq(get("advisor_mode"), "none\n");
}

Test(ksm, knob_read_and_write_report_errors) {
        uint32_t v = 42;
        cr_assert_eq(ksm_knob_read(ksm_fd, KSM_KNOB_ADVISOR_MODE, &v), -ENOENT);
        cr_assert_eq(ksm_knob_write(ksm_fd, KSM_KNOB_ADVISOR_MODE, KSM_ADVISOR_NONE), -ENOENT,
                     "writing a knob the kernel lacks must not create it");
        cr_assert_eq(faccessat(ksm_fd, "advisor_mode", F_OK, 0), -1);
        put("run", "yes\n");
        cr_assert_eq(ksm_knob_read(ksm_fd, KSM_KNOB_RUN, &v), -EINVAL);
        make_unwritable("sleep_millisecs");
        cr_assert_lt(ksm_knob_write(ksm_fd, KSM_KNOB_SLEEP_MILLISECS, 3), 0);
        cr_assert_eq(v, 42);
}

Test(ksm, settings_read_without_advisor) {
        struct ksm_settings s;
        cr_assert_eq(ksm_settings_read(ksm_fd, &s, NULL), 0);
        cr_assert_not(ksm_settings_has(&s, KSM_KNOB_ADVISOR_MODE));
        cr_assert(ksm_settings_has(&s, KSM_KNOB_RUN));
        cr_assert(ksm_settings_has(&s, KSM_KNOB_PAGES_TO_SCAN));
        cr_assert(ksm_settings_has(&s, KSM_KNOB_SLEEP_MILLISECS));
        cr_assert_eq(s.value[KSM_KNOB_RUN], 0);
        cr_assert_eq(s.value[KSM_KNOB_PAGES_TO_SCAN], 100);
        cr_assert_eq(s.value[KSM_KNOB_SLEEP_MILLISECS], 20);
}

Test(ksm, settings_read_with_advisor) {
        struct ksm_settings s, expected = settings(KSM_ADVISOR_SCAN_TIME, 100, 20, 0);
        enum ksm_knob failed = _KSM_KNOB_MAX;
        put("advisor_mode", "none [scan-time]\n");
        cr_assert_eq(ksm_settings_read(ksm_fd, &s, &failed), 0);
        cr_assert_eq(failed, _KSM_KNOB_MAX, "ret_failed set on success");
        assert_settings_eq(&s, &expected);
}

Test(ksm, settings_read_fails_on_missing_or_bad_required_knob) {
        struct ksm_settings s;
        enum ksm_knob failed = _KSM_KNOB_MAX;
        cr_assert_eq(unlinkat(ksm_fd, "sleep_millisecs", 0), 0);
        cr_assert_eq(ksm_settings_read(ksm_fd, &s, &failed), -ENOENT);
        cr_assert_eq(failed, KSM_KNOB_SLEEP_MILLISECS);
        cr_assert_lt(ksm_settings_read(ksm_fd, &s, NULL), 0);

        put("sleep_millisecs", "20\n");
        put("pages_to_scan", "lots\n");
        cr_assert_eq(ksm_settings_read(ksm_fd, &s, &failed), -EINVAL);
        cr_assert_eq(failed, KSM_KNOB_PAGES_TO_SCAN);

        put("pages_to_scan", "100\n");
        put("advisor_mode", "bogus\n");
        cr_assert_eq(ksm_settings_read(ksm_fd, &s, &failed), -EINVAL, "a present but unreadable advisor_mode was ignored");
        cr_assert_eq(failed, KSM_KNOB_ADVISOR_MODE);
}

Test(ksm, directory_open) {
        char path[PATH_MAX];
        uint32_t v;
        int fd;

        snprintf(path, sizeof path, "%s/no-such-dir", tmpdir);
        cr_assert_lt(ksm_directory_open(path), 0);

        fd = ksm_directory_open(tmpdir);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ksm_knob_read(fd, KSM_KNOB_PAGES_TO_SCAN, &v), 0);
        cr_assert_eq(v, 100);
        close(fd);

        put("advisor_mode", "[none] scan-time\n");
        fd = ksm_directory_open(tmpdir);
        cr_assert_geq(fd, 0);
        close(fd);

        put("run", "garbage\n");
        cr_assert_lt(ksm_directory_open(tmpdir), 0, "a knob holding garbage was accepted");
        put("run", "0\n");

        cr_assert_eq(unlinkat(ksm_fd, "run", 0), 0);
        cr_assert_lt(ksm_directory_open(tmpdir), 0, "a missing run knob was accepted");

        /* A file is not a KSM directory. */
        put("run", "0\n");
        snprintf(path, sizeof path, "%s/run", tmpdir);
        cr_assert_lt(ksm_directory_open(path), 0);
}

Test(ksm, counter_read) {
        int64_t v = 1;
        put("general_profit", "-4096\n");
        cr_assert_eq(ksm_counter_read(ksm_fd, "general_profit", &v), 0);
        cr_assert_eq(v, -4096);
        put("pages_sharing", "123456789\n");
        cr_assert_eq(ksm_counter_read(ksm_fd, "pages_sharing", &v), 0);
        cr_assert_eq(v, 123456789);
        v = 1;
        cr_assert_eq(ksm_counter_read(ksm_fd, "ksm_zero_pages", &v), -ENOENT);
        cr_assert_eq(v, 1);
}

Test(ksm, saved_bytes_is_general_profit_else_the_gross_pages) {
        struct ksm_sample sample = { .pages_sharing = 1000, .ksm_zero_pages = 24 };
        int64_t gross = 1024 * (int64_t) sysconf(_SC_PAGESIZE);
        bool is_gross = false;

        put("general_profit", "-4096\n");
        cr_assert_eq(ksm_saved_bytes(ksm_fd, &sample, &is_gross), -4096, "saved is not general_profit, negative included");
        cr_assert_not(is_gross);
        put("general_profit", "3000000\n");
        cr_assert_eq(ksm_saved_bytes(ksm_fd, &sample, NULL), 3000000, "saved is not general_profit");
        /* A kernel before Linux 6.4 has no general_profit: (pages_sharing + ksm_zero_pages) pages. */
        cr_assert_eq(unlinkat(ksm_fd, "general_profit", 0), 0);
        cr_assert_eq(ksm_saved_bytes(ksm_fd, &sample, &is_gross), gross, "without general_profit, saved is not the gross pages");
        cr_assert(is_gross, "the fallback is not reported");
}

Test(ksm, apply_writes_only_changed_knobs) {
        struct ksm_settings current = settings(-1, 100, 20, 0), target = settings(-1, 500, 20, 0), now;
        enum ksm_knob failed = _KSM_KNOB_MAX;

        /* Writing run or sleep_millisecs would fail: apply must not touch them. */
        make_unwritable("run");
        make_unwritable("sleep_millisecs");
        cr_assert_eq(ksm_settings_apply(ksm_fd, &current, &target, &now, &failed), 1);
        cr_assert_str_eq(get("pages_to_scan"), "500\n");
        assert_settings_eq(&now, &target);
        cr_assert_eq(failed, _KSM_KNOB_MAX, "ret_failed set on success");
}

Test(ksm, apply_with_nothing_to_change_writes_nothing) {
        struct ksm_settings current = settings(-1, 100, 20, 0), now;
        enum ksm_knob failed;
        backdate("run");
        backdate("pages_to_scan");
        backdate("sleep_millisecs");
        cr_assert_eq(ksm_settings_apply(ksm_fd, &current, &current, &now, &failed), 0);
        cr_assert_not(was_written("run"));
        cr_assert_not(was_written("pages_to_scan"));
        cr_assert_not(was_written("sleep_millisecs"));
        assert_settings_eq(&now, &current);
}

Test(ksm, apply_returns_number_of_writes) {
        struct ksm_settings current = settings(-1, 100, 20, 0), target = settings(-1, 3000, 1, 1), now;
        enum ksm_knob failed;
        cr_assert_eq(ksm_settings_apply(ksm_fd, &current, &target, &now, &failed), 3);
        cr_assert_str_eq(get("run"), "1\n");
        cr_assert_str_eq(get("pages_to_scan"), "3000\n");
        cr_assert_str_eq(get("sleep_millisecs"), "1\n");
        assert_settings_eq(&now, &target);
}

Test(ksm, apply_failing_on_run_puts_back_earlier_knobs) {
        struct ksm_settings current = settings(KSM_ADVISOR_NONE, 100, 20, 0), target = settings(KSM_ADVISOR_NONE, 3000, 1, 1);
        struct ksm_settings now;
        enum ksm_knob failed = _KSM_KNOB_MAX;
        int r;

        put("advisor_mode", "none\n");
        backdate("pages_to_scan");
        backdate("sleep_millisecs");
        make_unwritable("run");
        r = ksm_settings_apply(ksm_fd, &current, &target, &now, &failed);
        cr_assert_lt(r, 0);
        cr_assert_eq(failed, KSM_KNOB_RUN);
        /* run comes last: the other two were written first, then put back. */
        cr_assert(was_written("pages_to_scan"));
        cr_assert(was_written("sleep_millisecs"));
        cr_assert_str_eq(get("pages_to_scan"), "100\n");
        cr_assert_str_eq(get("sleep_millisecs"), "20\n");
        cr_assert_str_eq(get("advisor_mode"), "none\n");
        /* sysfs cannot be re-read (run is broken), so ret_now is what was there before. */
        assert_settings_eq(&now, &current);
}

Test(ksm, apply_failing_on_sleep_puts_back_pages_and_leaves_run) {
        struct ksm_settings current = settings(-1, 100, 20, 0), target = settings(-1, 3000, 1, 1), now;
        enum ksm_knob failed = _KSM_KNOB_MAX;

        backdate("run");
        backdate("pages_to_scan");
        make_unwritable("sleep_millisecs");
        cr_assert_lt(ksm_settings_apply(ksm_fd, &current, &target, &now, &failed), 0);
        cr_assert_eq(failed, KSM_KNOB_SLEEP_MILLISECS);
        cr_assert(was_written("pages_to_scan"), "pages_to_scan is written before sleep_millisecs");
        cr_assert_str_eq(get("pages_to_scan"), "100\n");
        cr_assert_not(was_written("run"), "run is written after sleep_millisecs");
        cr_assert_str_eq(get("run"), "0\n");
}

Test(ksm, apply_writes_advisor_mode_first) {
        struct ksm_settings current = settings(KSM_ADVISOR_SCAN_TIME, 100, 20, 0);
        struct ksm_settings target = settings(KSM_ADVISOR_NONE, 3000, 1, 1), now;
        enum ksm_knob failed = _KSM_KNOB_MAX;

        backdate("run");
        backdate("pages_to_scan");
        backdate("sleep_millisecs");
        put("advisor_mode", "none [scan-time]\n");
        make_unwritable("advisor_mode");
        cr_assert_lt(ksm_settings_apply(ksm_fd, &current, &target, &now, &failed), 0);
        cr_assert_eq(failed, KSM_KNOB_ADVISOR_MODE);
        cr_assert_not(was_written("pages_to_scan"));
        cr_assert_not(was_written("sleep_millisecs"));
        cr_assert_not(was_written("run"));
}

Test(ksm, apply_switches_advisor_off_before_writing_pages) {
        struct ksm_settings current = settings(KSM_ADVISOR_SCAN_TIME, 100, 20, 1);
        struct ksm_settings target = settings(KSM_ADVISOR_NONE, 3000, 1, 1), now;
        enum ksm_knob failed;

        put("advisor_mode", "none [scan-time]\n");
        cr_assert_eq(ksm_settings_apply(ksm_fd, &current, &target, &now, &failed), 3);
        cr_assert_str_eq(get("advisor_mode"), "none\n");
        cr_assert_str_eq(get("pages_to_scan"), "3000\n");
        cr_assert_str_eq(get("sleep_millisecs"), "1\n");
        assert_settings_eq(&now, &target);
}

Test(ksm, apply_leaves_pages_alone_while_advisor_owns_it) {
        struct ksm_settings current = settings(KSM_ADVISOR_SCAN_TIME, 100, 20, 1);
        struct ksm_settings target = settings(KSM_ADVISOR_SCAN_TIME, 3000, 1, 1), now;
        enum ksm_knob failed;

        put("advisor_mode", "none [scan-time]\n");
        backdate("pages_to_scan");
        cr_assert_eq(ksm_settings_apply(ksm_fd, &current, &target, &now, &failed), 1);
        cr_assert_not(was_written("pages_to_scan"));
        cr_assert_str_eq(get("pages_to_scan"), "100\n");
        cr_assert_str_eq(get("sleep_millisecs"), "1\n");
        cr_assert_eq(now.value[KSM_KNOB_PAGES_TO_SCAN], 100);
        cr_assert_eq(now.value[KSM_KNOB_SLEEP_MILLISECS], 1);
}

Test(ksm, apply_restoring_the_host_advisor_skips_pages) {
        /* Back to initial on a host whose advisor was on: advisor_mode first, then not pages_to_scan. */
        struct ksm_settings current = settings(KSM_ADVISOR_NONE, 3000, 1, 1);
        struct ksm_settings host = settings(KSM_ADVISOR_SCAN_TIME, 100, 20, 0), now;
        enum ksm_knob failed;

        put("advisor_mode", "none\n");
        put("pages_to_scan", "3000\n");
        put("sleep_millisecs", "1\n");
        put("run", "1\n");
        backdate("pages_to_scan");
        cr_assert_eq(ksm_settings_apply(ksm_fd, &current, &host, &now, &failed), 3);
        cr_assert_str_eq(get("advisor_mode"), "scan-time\n");
        cr_assert_not(was_written("pages_to_scan"));
        cr_assert_str_eq(get("sleep_millisecs"), "20\n");
        cr_assert_str_eq(get("run"), "0\n");
        cr_assert_eq(now.value[KSM_KNOB_ADVISOR_MODE], KSM_ADVISOR_SCAN_TIME);
        /* ret_now tells what sysfs holds (re-read after the advisor_mode change). */
        cr_assert_eq(now.value[KSM_KNOB_PAGES_TO_SCAN], 3000);
}

Test(ksm, apply_ignores_knobs_the_kernel_lacks) {
        struct ksm_settings current = settings(-1, 100, 20, 0), target = settings(KSM_ADVISOR_NONE, 100, 20, 1), now;
        enum ksm_knob failed;
        cr_assert_eq(ksm_settings_apply(ksm_fd, &current, &target, &now, &failed), 1);
        cr_assert_eq(faccessat(ksm_fd, "advisor_mode", F_OK, 0), -1, "advisor_mode was created");
        cr_assert_str_eq(get("run"), "1\n");
        cr_assert_not(ksm_settings_has(&now, KSM_KNOB_ADVISOR_MODE));
}

Test(ksm, sample_read_counters) {
        struct ksm_sample s;

        put("full_scans", "12\n");
        put("pages_shared", "10\n");
        put("pages_sharing", "90\n");
        put("pages_unshared", "5\n");
        put("pages_volatile", "3\n");
        put("ksm_zero_pages", "7\n");
        cr_assert_eq(ksm_sample_read(ksm_fd, &s), 0, "counters not read");
        cr_assert_eq(s.full_scans, 12);
        cr_assert_eq(s.pages_sharing, 90);
        cr_assert_eq(ksm_sample_saved_pages(&s), 97, "saved pages are pages_sharing + ksm_zero_pages");
        cr_assert_not(s.has_pages_scanned, "pages_scanned is missing here, yet marked as read");
        cr_assert_not(s.has_ksmd_cpu, "ksmd's CPU time is the caller's to fill in");

        put("pages_scanned", "4000\n");
        cr_assert_eq(ksm_sample_read(ksm_fd, &s), 0);
        cr_assert(s.has_pages_scanned);
        cr_assert_eq(s.pages_scanned, 4000);

        cr_assert_eq(unlinkat(ksm_fd, "full_scans", 0), 0);
        cr_assert_eq(ksm_sample_read(ksm_fd, &s), -ENOENT, "full_scans is always there: its absence is an error");
}

Test(ksm, restore_writes_every_knob_it_can_and_reports_the_others) {
        struct ksm_settings current = settings(-1, 10000, 1, 1), host = settings(-1, 100, 20, 0), now;
        int errors[_KSM_KNOB_MAX];
        unsigned failed = 0;

        put("run", "1\n");
        put("pages_to_scan", "10000\n");
        put("sleep_millisecs", "1\n");
        make_unwritable("run");
        cr_assert_lt(ksm_settings_restore(ksm_fd, &current, &host, &now, &failed, errors), 0);
        /* Nothing is put back: the knobs that could be written hold the host's values. */
        cr_assert_str_eq(get("pages_to_scan"), "100\n");
        cr_assert_str_eq(get("sleep_millisecs"), "20\n");
        cr_assert_eq(failed, 1u << KSM_KNOB_RUN, "failed mask %#x", failed);
        cr_assert_eq(errors[KSM_KNOB_RUN], -EISDIR, "errno %d", errors[KSM_KNOB_RUN]);
        cr_assert_eq(now.value[KSM_KNOB_RUN], 1, "run is reported as still holding the throttler's value");
        cr_assert_eq(now.value[KSM_KNOB_PAGES_TO_SCAN], 100);
        cr_assert_eq(now.value[KSM_KNOB_SLEEP_MILLISECS], 20);
}

Test(ksm, restore_with_everything_writable_succeeds) {
        struct ksm_settings current = settings(KSM_ADVISOR_NONE, 10000, 1, 1), host = settings(KSM_ADVISOR_SCAN_TIME, 100, 20, 0);
        struct ksm_settings now;
        int errors[_KSM_KNOB_MAX];
        unsigned failed = 1;

        put("advisor_mode", "[none] scan-time\n");
        put("run", "1\n");
        put("pages_to_scan", "10000\n");
        put("sleep_millisecs", "1\n");
        cr_assert_eq(ksm_settings_restore(ksm_fd, &current, &host, &now, &failed, errors), 3);
        cr_assert_eq(failed, 0);
        cr_assert_str_eq(get("advisor_mode"), "scan-time\n");
        /* With the advisor back in charge, pages_to_scan is the kernel's: left alone. */
        cr_assert_str_eq(get("pages_to_scan"), "10000\n");
        cr_assert_str_eq(get("run"), "0\n");
        cr_assert_str_eq(get("sleep_millisecs"), "20\n");
}

Test(ksm, write_in_a_plain_directory_replaces_the_file_whole) {
        struct stat before, after;
        cr_assert_eq(fstatat(ksm_fd, "sleep_millisecs", &before, 0), 0);
        cr_assert_eq(ksm_knob_write(ksm_fd, KSM_KNOB_SLEEP_MILLISECS, 7), 0);
        cr_assert_str_eq(get("sleep_millisecs"), "7\n");
        cr_assert_eq(fstatat(ksm_fd, "sleep_millisecs", &after, 0), 0);
        /* A new inode: a crash mid-write leaves the old file or the new one, never an empty one. */
        cr_assert_neq(before.st_ino, after.st_ino);
        cr_assert_eq(fstatat(ksm_fd, ".sleep_millisecs.new", &after, 0), -1, "the temporary file was left behind");
}

/* An optional knob that is only 0 or 1 (smart_scan since Linux 6.7, use_zero_pages since
 * 4.11): absent, it is not managed (older kernels are not refused); present, it is read,
 * and any other value is refused. Leaves it in sysfs as 1, read into *ret. */
static void assert_optional_switch_knob(enum ksm_knob knob, struct ksm_settings *ret) {
        const char *name = ksm_knob_name(knob);
        uint32_t v = 7;

        cr_assert_eq(ksm_settings_read(ksm_fd, ret, NULL), 0);
        cr_assert_not(ksm_settings_has(ret, knob), "a kernel without %s shows it as present", name);
        cr_assert_not(ksm_knob_is_required(knob), "%s is required: older kernels would be refused", name);
        cr_assert_eq(ksm_knob_parse(knob, "1\n", &v), 0);
        cr_assert_eq(v, 1);
        cr_assert_eq(ksm_knob_parse(knob, "0\n", &v), 0);
        cr_assert_eq(v, 0);
        cr_assert_eq(ksm_knob_parse(knob, "2\n", &v), -ERANGE, "%s=2 accepted", name);
        put(name, "1\n");
        cr_assert_eq(ksm_settings_read(ksm_fd, ret, NULL), 0);
        cr_assert(ksm_settings_has(ret, knob), "%s present in sysfs but not read", name);
        cr_assert_eq(ret->value[knob], 1);
}

/* use_zero_pages is managed only beside the ksm_zero_pages counter, which counts the pages
 * it saves. */
Test(ksm, use_zero_pages_is_an_optional_boolean_knob) {
        struct ksm_settings s;
        cr_assert_str_eq(ksm_knob_name(KSM_KNOB_USE_ZERO_PAGES), "use_zero_pages");
        put("ksm_zero_pages", "0\n");
        assert_optional_switch_knob(KSM_KNOB_USE_ZERO_PAGES, &s);
}

Test(ksm, use_zero_pages_is_not_managed_without_the_counter_of_what_it_saves) {
        struct ksm_settings s;
        put("use_zero_pages", "0\n");
        cr_assert_eq(ksm_settings_read(ksm_fd, &s, NULL), 0);
        cr_assert_not(ksm_settings_has(&s, KSM_KNOB_USE_ZERO_PAGES),
                      "use_zero_pages managed on a kernel without ksm_zero_pages: what it saves would be counted nowhere");
}

/* smart_scan is also written in its place (before run). */
Test(ksm, smart_scan_is_an_optional_boolean_knob) {
        struct ksm_settings s, target, now;
        enum ksm_knob failed = _KSM_KNOB_MAX;

        cr_assert_str_eq(ksm_knob_name(KSM_KNOB_SMART_SCAN), "smart_scan");
        assert_optional_switch_knob(KSM_KNOB_SMART_SCAN, &s);
        put("smart_scan", "1\n");
        cr_assert_eq(ksm_settings_read(ksm_fd, &s, &failed), 0);
        cr_assert(ksm_settings_has(&s, KSM_KNOB_SMART_SCAN), "smart_scan present in sysfs but not read");
        cr_assert_eq(s.value[KSM_KNOB_SMART_SCAN], 1);

        /* Applying a target with smart_scan=0 writes it (and nothing it does not change). */
        target = s;
        target.value[KSM_KNOB_SMART_SCAN] = 0;
        target.value[KSM_KNOB_RUN] = 1;
        backdate("pages_to_scan");
        cr_assert_eq(ksm_settings_apply(ksm_fd, &s, &target, &now, &failed), 2, "expected smart_scan and run written");
        cr_assert_str_eq(get("smart_scan"), "0\n");
        cr_assert_str_eq(get("run"), "1\n");
        cr_assert_not(was_written("pages_to_scan"), "an unchanged knob was written");
        assert_settings_eq(&now, &target);

        /* A knob that cannot be written rolls back smart_scan with the others. */
        make_unwritable("run");
        target.value[KSM_KNOB_SMART_SCAN] = 1;
        target.value[KSM_KNOB_RUN] = 0;
        cr_assert_lt(ksm_settings_apply(ksm_fd, &now, &target, &s, &failed), 0);
        cr_assert_eq(failed, KSM_KNOB_RUN);
        cr_assert_str_eq(get("smart_scan"), "0\n", "smart_scan not rolled back after run failed");

        put("smart_scan", "bogus\n");
        cr_assert_eq(unlinkat(ksm_fd, "run", AT_REMOVEDIR), 0);
        put("run", "0\n");
        cr_assert_eq(ksm_settings_read(ksm_fd, &s, &failed), -EINVAL, "a present but unreadable smart_scan was ignored");
        cr_assert_eq(failed, KSM_KNOB_SMART_SCAN);
}
