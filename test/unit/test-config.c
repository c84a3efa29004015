/* SPDX-License-Identifier: Apache-2.0 */
/* The configuration file and its drop-ins, against files in a temporary directory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "parse-util.h"
#include "test-files.h"

static char tmpdir[] = "/tmp/test-config-XXXXXX";
static char conf[PATH_MAX];   /* tmpdir/ksm-throttler.conf */
static char stderr_text[8192]; /* what the last load_capturing() logged */

static void setup(void) {
        test_mkdtemp(tmpdir);
        snprintf(conf, sizeof conf, "%s/ksm-throttler.conf", tmpdir);
}

static void teardown(void) {
        test_rm_rf(tmpdir);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Writes text to tmpdir/name and returns the full path (static buffer, valid until the next call). */
static const char *write_file(const char *name, const char *text) {
        return test_write_at(tmpdir, name, text);
}

static void make_dropin_dir(void) {
        char path[PATH_MAX + 8];
        snprintf(path, sizeof path, "%s.d", conf);
        cr_assert_eq(mkdir(path, 0755), 0);
}

/* config_load() with stderr captured into stderr_text. */
static int load_capturing(struct config *c, const char *path, bool required) {
        struct stderr_capture capture;
        int r;

        stderr_capture_begin(&capture);
        r = config_load(c, path, required);
        stderr_capture_end(&capture, stderr_text, sizeof stderr_text);
        return r;
}

static void assert_logged(const char *path, unsigned line) {
        char where[PATH_MAX + 16];
        snprintf(where, sizeof where, "%s:%u:", path, line);
        cr_assert_not_null(strstr(stderr_text, where), "expected a message naming %s, got:\n%s", where, stderr_text);
}

static void assert_default_throttle(const struct throttle_config *t) {
        struct throttle_config def;
        throttle_config_default(&def);
        cr_assert_eq(memcmp(t, &def, sizeof def), 0, "throttle settings differ from the built-in defaults");
}

Test(config, defaults_without_a_file) {
        struct config c;
        config_init(&c);
        cr_assert_eq(load_capturing(&c, conf, false), 0, "%s", stderr_text);

        cr_assert_str_eq(c.ksm_directory, "/sys/kernel/mm/ksm");
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].duration_usec, 30 * USEC_PER_SEC);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].pages_per_scan_factor, 10);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].sleep_millisecs, 1);
        cr_assert_eq(c.throttle.level[THROTTLE_STANDARD].duration_usec, 120 * USEC_PER_SEC);
        cr_assert_eq(c.throttle.level[THROTTLE_STANDARD].pages_per_scan_factor, 100);
        cr_assert_eq(c.throttle.level[THROTTLE_STANDARD].sleep_millisecs, 10);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].duration_usec, 120 * USEC_PER_SEC);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].pages_per_scan_factor, 500);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].sleep_millisecs, 100);
        cr_assert_eq(c.throttle.min_pages_to_scan, 64);
        cr_assert_eq(c.throttle.max_pages_to_scan, 30000);
        assert_default_throttle(&c.throttle);
        config_done(&c);
}

Test(config, empty_file_keeps_defaults) {
        struct config c;
        config_init(&c);
        write_file("ksm-throttler.conf", "; nothing here\n# nor here\n\n");
        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        cr_assert_str_eq(c.ksm_directory, KSM_DEFAULT_DIRECTORY);
        assert_default_throttle(&c.throttle);
        config_done(&c);
}

Test(config, good_file_sets_every_key) {
        struct config c;
        config_init(&c);
        write_file("ksm-throttler.conf",
                   "# a full configuration\n"
                   "[Throttler]\n"
                   "KsmDirectory=/tmp/fake-ksm\n"
                   "MinPagesToScan=32\n"
                   "MaxPagesToScan=50000\n"
                   "PolkitTimeoutSec=10s\n"
                   "IdleExitSec=5min\n"
                   "Adaptive=no\n"
                   "ConvergedPercent=5\n"
                   "ConvergedScans=3\n"
                   "\n"
                   "[Aggressive]\n"
                   "DurationSec=500ms\n"
                   "PagesPerScanFactor=8\n"
                   "SleepMillisecs=2\n"
                   "FullScanSec=2s\n"
                   "MaxCpuPercent=80\n"
                   "SmartScan=yes\n"
                   "UseZeroPages=no\n"
                   "[Standard]\n"
                   "DurationSec=2min\n"
                   "PagesPerScanFactor=80\n"
                   "SleepMillisecs=20\n"
                   "FullScanSec=90s\n"
                   "MaxCpuPercent=5\n"
                   "SmartScan=no\n"
                   "[Slow]\n"
                   "DurationSec = 1h\n"
                   "PagesPerScanFactor = 800\n"
                   "SleepMillisecs = 200\n");
        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        cr_assert_eq(strstr(stderr_text, "<4>"), NULL, "a good file logged a warning:\n%s", stderr_text);

        cr_assert_str_eq(c.ksm_directory, "/tmp/fake-ksm");
        cr_assert_eq(c.throttle.min_pages_to_scan, 32);
        cr_assert_eq(c.throttle.max_pages_to_scan, 50000);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].duration_usec, 500 * USEC_PER_MSEC);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].pages_per_scan_factor, 8);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].sleep_millisecs, 2);
        cr_assert_eq(c.throttle.level[THROTTLE_STANDARD].duration_usec, 2 * USEC_PER_MINUTE);
        cr_assert_eq(c.throttle.level[THROTTLE_STANDARD].pages_per_scan_factor, 80);
        cr_assert_eq(c.throttle.level[THROTTLE_STANDARD].sleep_millisecs, 20);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].duration_usec, USEC_PER_HOUR);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].pages_per_scan_factor, 800);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].sleep_millisecs, 200);
        cr_assert_eq(c.polkit_timeout_usec, 10 * USEC_PER_SEC);
        cr_assert_eq(c.idle_exit_usec, 5 * USEC_PER_MINUTE);
        cr_assert_eq(c.adaptive, false);
        cr_assert_eq(c.adaptive_config.converged_percent, 5);
        cr_assert_eq(c.adaptive_config.converged_scans, 3);
        cr_assert_eq(c.adaptive_config.level[THROTTLE_AGGRESSIVE].full_scan_usec, 2 * USEC_PER_SEC);
        cr_assert_eq(c.adaptive_config.level[THROTTLE_AGGRESSIVE].max_cpu_percent, 80);
        cr_assert_eq(c.adaptive_config.level[THROTTLE_STANDARD].full_scan_usec, 90 * USEC_PER_SEC);
        cr_assert_eq(c.adaptive_config.level[THROTTLE_STANDARD].max_cpu_percent, 5);
        /* Not in the file: the defaults. */
        cr_assert_eq(c.adaptive_config.level[THROTTLE_SLOW].full_scan_usec, 180 * USEC_PER_SEC);
        cr_assert_eq(c.adaptive_config.level[THROTTLE_SLOW].max_cpu_percent, 3);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].smart_scan, THROTTLE_SWITCH_ON);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].use_zero_pages, THROTTLE_SWITCH_OFF, "UseZeroPages=no not read");
        cr_assert_eq(c.throttle.level[THROTTLE_STANDARD].smart_scan, THROTTLE_SWITCH_OFF);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].smart_scan, THROTTLE_SWITCH_HOST, "SmartScan= not in [Slow] changed it");
        config_done(&c);
}

Test(config, smart_scan_is_off_in_aggressive_and_the_hosts_elsewhere_by_default) {
        struct config c;
        config_init(&c);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].smart_scan, THROTTLE_SWITCH_OFF,
                     "aggressive does not turn smart_scan off by default");
        cr_assert_eq(c.throttle.level[THROTTLE_STANDARD].smart_scan, THROTTLE_SWITCH_HOST);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].smart_scan, THROTTLE_SWITCH_HOST);
        write_file("ksm-throttler.conf", "[Aggressive]\nSmartScan=host\n[Slow]\nSmartScan=on\n");
        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].smart_scan, THROTTLE_SWITCH_HOST);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].smart_scan, THROTTLE_SWITCH_ON);
        config_done(&c);
}

Test(config, use_zero_pages_is_on_in_aggressive_and_the_hosts_elsewhere_by_default) {
        struct config c;
        config_init(&c);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].use_zero_pages, THROTTLE_SWITCH_ON,
                     "aggressive does not turn use_zero_pages on by default");
        for (int s = THROTTLE_STANDARD; s < _THROTTLE_STATE_MAX; s++)
                cr_assert_eq(c.throttle.level[s].use_zero_pages, THROTTLE_SWITCH_HOST,
                             "%s changes use_zero_pages by default", throttle_state_to_string(s));
        write_file("ksm-throttler.conf", "[Aggressive]\nUseZeroPages=host\n[Slow]\nUseZeroPages=no\n");
        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].use_zero_pages, THROTTLE_SWITCH_HOST);
        cr_assert_eq(c.throttle.level[THROTTLE_STANDARD].use_zero_pages, THROTTLE_SWITCH_HOST);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].use_zero_pages, THROTTLE_SWITCH_OFF);
        write_file("ksm-throttler.conf", "[Standard]\nUseZeroPages=sometimes\n");
        cr_assert_lt(load_capturing(&c, conf, true), 0, "UseZeroPages=sometimes was taken");
        cr_assert(strstr(stderr_text, "UseZeroPages") && strstr(stderr_text, "yes, no or host"),
                  "the error does not say which key and what it takes: %s", stderr_text);
        config_done(&c);
}

Test(config, idle_exit_is_off_by_default) {
        struct config c;
        config_init(&c);
        cr_assert_eq(c.idle_exit_usec, 0, "a daemon started by hand must not exit on its own unless configured to");
        config_done(&c);
}

Test(config, adaptive_is_on_by_default) {
        struct config c;
        config_init(&c);
        cr_assert(c.adaptive);
        cr_assert_eq(c.adaptive_config.converged_percent, 1);
        cr_assert_eq(c.adaptive_config.converged_scans, 2);
        config_done(&c);
}

Test(config, bare_number_duration_is_seconds_and_inline_comments_are_allowed) {
        struct config c;
        config_init(&c);
        /* The inline-comment style of the example in ksm-throttler.conf(5). */
        write_file("ksm-throttler.conf",
                   "[Aggressive]\n"
                   "DurationSec=45\n"
                   "PagesPerScanFactor=20    ; pages_to_scan = AnonPages / factor\n");
        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].duration_usec, 45 * USEC_PER_SEC);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].pages_per_scan_factor, 20);
        config_done(&c);
}

Test(config, dropins_apply_in_lexical_order) {
        struct config c;
        config_init(&c);
        write_file("ksm-throttler.conf", "[Aggressive]\nDurationSec=10s\nSleepMillisecs=3\n");
        make_dropin_dir();
        /* Lexical, not numeric: "10-…" sorts before "9-…", so 9 wins. */
        write_file("ksm-throttler.conf.d/9-late.conf", "[Aggressive]\nDurationSec=40s\n");
        write_file("ksm-throttler.conf.d/10-early.conf", "[Aggressive]\nDurationSec=20s\nPagesPerScanFactor=5\n");
        write_file("ksm-throttler.conf.d/99-disabled.conf.bak", "[Aggressive]\nSleepMillisecs=999\n");
        write_file("ksm-throttler.conf.d/README", "[Aggressive]\nSleepMillisecs=998\n");
        write_file("ksm-throttler.conf.d/conf", "[Aggressive]\nSleepMillisecs=997\n");

        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].duration_usec, 40 * USEC_PER_SEC);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].pages_per_scan_factor, 5);
        cr_assert_eq(c.throttle.level[THROTTLE_AGGRESSIVE].sleep_millisecs, 3, "a file not ending in .conf was read");
        config_done(&c);
}

Test(config, dropins_apply_without_a_main_file) {
        struct config c;
        config_init(&c);
        make_dropin_dir();
        write_file("ksm-throttler.conf.d/50-local.conf", "[Throttler]\nMaxPagesToScan=1000\n");
        cr_assert_eq(load_capturing(&c, conf, false), 0, "%s", stderr_text);
        cr_assert_eq(c.throttle.max_pages_to_scan, 1000);
        config_done(&c);
}

Test(config, unknown_keys_and_sections_warn_with_file_and_line) {
        struct config c;
        config_init(&c);
        write_file("ksm-throttler.conf",
                   "[Throttler]\n"
                   "Frobnicate=yes\n"      /* line 2 */
                   "MinPagesToScan=128\n"
                   "[Aggressive]\n"
                   "Speed=fast\n"          /* line 5 */
                   "[NoSuchSection]\n"
                   "Key=value\n"           /* line 7 */
                   "[Slow]\n"
                   "SleepMillisecs=250\n");
        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        assert_logged(conf, 2);
        assert_logged(conf, 5);
        assert_logged(conf, 7);
        cr_assert_not_null(strstr(stderr_text, "Frobnicate"), "%s", stderr_text);
        cr_assert_not_null(strstr(stderr_text, "NoSuchSection"), "%s", stderr_text);
        /* The known keys around them still count. */
        cr_assert_eq(c.throttle.min_pages_to_scan, 128);
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].sleep_millisecs, 250);
        config_done(&c);
}

Test(config, invalid_values_are_rejected_with_file_and_line_and_leave_config_unchanged) {
        /* Write text, expect -EINVAL, a message naming the file and line, and what it says. */
        static const struct {
                const char *text;
                unsigned line;
                const char *message;
        } bad[] = {
                { "[Aggressive]\nSleepMillisecs=7\nDurationSec=0\n", 3,
                  "invalid value \"0\" for DurationSec in [Aggressive]: expected a duration between 1ms and 24h" },
                { "[Aggressive]\nSleepMillisecs=7\nDurationSec=abc\n", 3, "invalid value \"abc\" for DurationSec" },
                { "[Standard]\nSleepMillisecs=7\nDurationSec=\n", 3, "invalid value \"\" for DurationSec in [Standard]" },
                { "[Slow]\nSleepMillisecs=7\nDurationSec=-5s\n", 3, "invalid value \"-5s\" for DurationSec in [Slow]" },
                { "[Aggressive]\nSleepMillisecs=7\nPagesPerScanFactor=0\n", 3,
                  "for PagesPerScanFactor in [Aggressive]: expected a whole number of at least 1" },
                { "[Standard]\nSleepMillisecs=7\nPagesPerScanFactor=ten\n", 3, "invalid value \"ten\" for PagesPerScanFactor" },
                { "[Slow]\nPagesPerScanFactor=7\nSleepMillisecs=0\n", 3,
                  "for SleepMillisecs in [Slow]: expected a whole number of milliseconds from 1 to 60000" },
                { "[Slow]\nPagesPerScanFactor=7\nSleepMillisecs=1.5\n", 3, "invalid value \"1.5\" for SleepMillisecs" },
                { "[Throttler]\nMaxPagesToScan=7000\nMinPagesToScan=x\n", 3,
                  "invalid value \"x\" for MinPagesToScan in [Throttler]: expected a whole number of at least 1" },
                { "[Throttler]\nMinPagesToScan=7\nMaxPagesToScan=-1\n", 3, "invalid value \"-1\" for MaxPagesToScan" },
                { "[Throttler]\nMinPagesToScan=0\n", 2, "invalid value \"0\" for MinPagesToScan" },
                { "[Throttler]\nMaxPagesToScan=99999999999\n", 2, "invalid value \"99999999999\" for MaxPagesToScan" },
                { "[Throttler]\nMinPagesToScan=7\nKsmDirectory=relative/ksm\n", 3,
                  "for KsmDirectory in [Throttler]: expected an absolute path" },
                { "# comment\n\n[Throttler]\nMinPagesToScan=7\n[Aggressive]\nDurationSec=5 fortnights\n", 6,
                  "invalid value \"5 fortnights\" for DurationSec" },
                { "[Throttler]\nMinPagesToScan=7\nAdaptive=perhaps\n", 3, "for Adaptive in [Throttler]: expected yes or no" },
                { "[Standard]\nSleepMillisecs=7\nSmartScan=sometimes\n", 3,
                  "invalid value \"sometimes\" for SmartScan in [Standard]: expected yes, no or host" },
                { "[Throttler]\nMinPagesToScan=7\nConvergedPercent=0\n", 3,
                  "for ConvergedPercent in [Throttler]: expected a whole percentage from 1 to 100" },
                { "[Throttler]\nMinPagesToScan=7\nConvergedScans=1000\n", 3,
                  "for ConvergedScans in [Throttler]: expected a whole number of full scans from 1 to 100" },
                { "[Throttler]\nMinPagesToScan=7\nPolkitTimeoutSec=0\n", 3,
                  "for PolkitTimeoutSec in [Throttler]: expected a duration between 1ms and 100s" },
                { "[Throttler]\nMinPagesToScan=7\nIdleExitSec=50ms\n", 3,
                  "for IdleExitSec in [Throttler]: expected 0 (never) or a duration between 100ms and 24h" },
                { "[Aggressive]\nSleepMillisecs=7\nFullScanSec=1ms\n", 3,
                  "for FullScanSec in [Aggressive]: expected a duration between 10ms and 24h" },
                { "[Standard]\nSleepMillisecs=7\nMaxCpuPercent=101\n", 3,
                  "for MaxCpuPercent in [Standard]: expected a whole percentage of one CPU from 1 to 100" },
                { "[Slow]\nMaxCpuPercent=0\n", 2, "for MaxCpuPercent in [Slow]" },
                { "[Slow]\nFullScanSec=25h\n", 2, "for FullScanSec in [Slow]" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct config c;
                char *dir_before;
                config_init(&c);
                /* A non-default config, to check that a failed load keeps it. */
                c.throttle.level[THROTTLE_SLOW].sleep_millisecs = 123;
                c.throttle.min_pages_to_scan = 65;
                struct throttle_config before = c.throttle;
                dir_before = c.ksm_directory;

                write_file("ksm-throttler.conf", bad[i].text);
                int r = load_capturing(&c, conf, true);
                cr_assert_eq(r, -EINVAL, "case %zu:\n%s\nreturned %d, expected -EINVAL", i, bad[i].text, r);
                assert_logged(conf, bad[i].line);
                cr_assert_not_null(strstr(stderr_text, bad[i].message), "case %zu:\n%s\nexpected \"%s\", got:\n%s", i,
                                   bad[i].text, bad[i].message, stderr_text);
                cr_assert_eq(memcmp(&c.throttle, &before, sizeof before), 0, "case %zu:\n%s\nchanged the config", i,
                             bad[i].text);
                cr_assert_eq(c.ksm_directory, dir_before);
                cr_assert_str_eq(c.ksm_directory, KSM_DEFAULT_DIRECTORY);
                config_done(&c);
        }
}

Test(config, invalid_value_in_a_dropin_names_the_dropin) {
        struct config c;
        char dropin[PATH_MAX];
        config_init(&c);
        write_file("ksm-throttler.conf", "[Aggressive]\nDurationSec=10s\n");
        make_dropin_dir();
        snprintf(dropin, sizeof dropin, "%s", write_file("ksm-throttler.conf.d/50-bad.conf", "\n[Standard]\nSleepMillisecs=0\n"));

        cr_assert_eq(load_capturing(&c, conf, true), -EINVAL);
        assert_logged(dropin, 3);
        /* The good main file is not half-applied. */
        assert_default_throttle(&c.throttle);
        config_done(&c);
}

Test(config, min_greater_than_max_is_rejected) {
        struct config c;
        config_init(&c);
        write_file("ksm-throttler.conf", "[Throttler]\nMinPagesToScan=5000\nMaxPagesToScan=4000\n");
        cr_assert_eq(load_capturing(&c, conf, true), -EINVAL);
        cr_assert_not_null(strstr(stderr_text, "MinPagesToScan"), "%s", stderr_text);
        assert_logged(conf, 2);
        assert_default_throttle(&c.throttle);

        /* Also against the built-in maximum. */
        write_file("ksm-throttler.conf", "[Throttler]\nMinPagesToScan=40000\n");
        cr_assert_eq(load_capturing(&c, conf, true), -EINVAL);
        assert_default_throttle(&c.throttle);

        /* Equal bounds are fine. */
        write_file("ksm-throttler.conf", "[Throttler]\nMinPagesToScan=4000\nMaxPagesToScan=4000\n");
        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        cr_assert_eq(c.throttle.min_pages_to_scan, 4000);
        cr_assert_eq(c.throttle.max_pages_to_scan, 4000);
        config_done(&c);
}

Test(config, required_file_must_exist) {
        struct config c;
        config_init(&c);
        cr_assert_eq(load_capturing(&c, conf, true), -EINVAL);
        cr_assert_not_null(strstr(stderr_text, conf), "the error does not name the file:\n%s", stderr_text);
        cr_assert_str_eq(c.ksm_directory, KSM_DEFAULT_DIRECTORY);
        assert_default_throttle(&c.throttle);
        config_done(&c);
}

Test(config, syntax_error_names_file_and_line) {
        struct config c;
        config_init(&c);
        write_file("ksm-throttler.conf", "[Throttler]\nMinPagesToScan=100\n\ngarbage\n");
        cr_assert_eq(load_capturing(&c, conf, true), -EINVAL);
        assert_logged(conf, 4);
        assert_default_throttle(&c.throttle);
        config_done(&c);
}

Test(config, every_error_is_reported_not_only_the_first) {
        struct config c;
        config_init(&c);
        write_file("ksm-throttler.conf", "[Throttler]\nMinPagesToScan=0\n[Slow]\ngarbage\n");
        cr_assert_eq(load_capturing(&c, conf, true), -EINVAL);
        assert_logged(conf, 2);
        assert_logged(conf, 4);
        config_done(&c);
}

Test(config, overlong_value_line_is_reported_at_its_own_line) {
        struct config c;
        char text[1024];
        config_init(&c);
        snprintf(text, sizeof text, "[Throttler]\nKsmDirectory=/%0250d\nMinPagesToScan=100\n", 0);
        write_file("ksm-throttler.conf", text);
        cr_assert_eq(load_capturing(&c, conf, true), -EINVAL);
        assert_logged(conf, 2);
        cr_assert_null(strstr(stderr_text, "conf:3"), "line 3 is fine: %s", stderr_text);
        config_done(&c);
}

Test(config, long_comment_line_is_not_a_syntax_error) {
        struct config c;
        char text[1024];
        config_init(&c);
        /* A comment longer than inih's default line buffer (200 bytes). */
        snprintf(text, sizeof text, "# %0300d\n[Throttler]\nMinPagesToScan=100\n", 0);
        write_file("ksm-throttler.conf", text);
        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        cr_assert_eq(c.throttle.min_pages_to_scan, 100);
        config_done(&c);
}

Test(config, successful_reload_replaces_previous_values) {
        struct config c;
        config_init(&c);
        write_file("ksm-throttler.conf", "[Throttler]\nKsmDirectory=/one\n[Slow]\nSleepMillisecs=300\n");
        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        cr_assert_str_eq(c.ksm_directory, "/one");

        /* A rejected reload keeps the loaded values (SIGHUP). */
        write_file("ksm-throttler.conf", "[Throttler]\nKsmDirectory=/two\n[Slow]\nSleepMillisecs=0\n");
        cr_assert_eq(load_capturing(&c, conf, true), -EINVAL);
        cr_assert_str_eq(c.ksm_directory, "/one");
        cr_assert_eq(c.throttle.level[THROTTLE_SLOW].sleep_millisecs, 300);

        write_file("ksm-throttler.conf", "[Throttler]\nKsmDirectory=/three\n");
        cr_assert_eq(load_capturing(&c, conf, true), 0, "%s", stderr_text);
        cr_assert_str_eq(c.ksm_directory, "/three");
        config_done(&c);
        cr_assert_null(c.ksm_directory);
}

Test(config, read_error_in_a_dropin_is_reported_with_file_and_errno) {
        struct config c;
        char dropin[PATH_MAX + 64];
        config_init(&c);
        write_file("ksm-throttler.conf", "[Aggressive]\nDurationSec=10s\n");
        make_dropin_dir();
        /* Reading /proc/self/mem at offset 0 fails with EIO, as a failing disk would. */
        snprintf(dropin, sizeof dropin, "%s.d/50-unreadable.conf", conf);
        cr_assert_eq(symlink("/proc/self/mem", dropin), 0);

        cr_assert_eq(load_capturing(&c, conf, true), -EINVAL, "an unreadable drop-in was taken as empty:\n%s", stderr_text);
        cr_assert_not_null(strstr(stderr_text, dropin), "the error does not name the drop-in:\n%s", stderr_text);
        cr_assert_not_null(strstr(stderr_text, strerror(EIO)), "the error does not give the errno:\n%s", stderr_text);
        assert_default_throttle(&c.throttle);
        config_done(&c);
}

Test(config, config_path_naming_a_directory_is_refused) {
        struct config c;
        config_init(&c);
        cr_assert_eq(mkdir(conf, 0755), 0);
        cr_assert_eq(load_capturing(&c, conf, true), -EINVAL, "a directory was read as an empty file:\n%s", stderr_text);
        cr_assert_not_null(strstr(stderr_text, conf), "%s", stderr_text);
        cr_assert_not_null(strstr(stderr_text, strerror(EISDIR)), "%s", stderr_text);
        /* Also when the file is optional: a directory there is a mistake, not an absence. */
        cr_assert_eq(load_capturing(&c, conf, false), -EINVAL, "%s", stderr_text);
        config_done(&c);
}

Test(config, sources_name_the_files_actually_read) {
        struct config c;
        char dropin[PATH_MAX];
        config_init(&c);
        make_dropin_dir();
        snprintf(dropin, sizeof dropin, "%s", write_file("ksm-throttler.conf.d/10-a.conf", "[Slow]\nSleepMillisecs=300\n"));

        /* Only a drop-in: the missing main file is not named. */
        cr_assert_eq(load_capturing(&c, conf, false), 0, "%s", stderr_text);
        cr_assert_str_eq(c.sources, dropin);

        write_file("ksm-throttler.conf", "[Slow]\nSleepMillisecs=200\n");
        cr_assert_eq(load_capturing(&c, conf, false), 0, "%s", stderr_text);
        char expected[2 * PATH_MAX + 8];
        snprintf(expected, sizeof expected, "%s, %s", conf, dropin);
        cr_assert_str_eq(c.sources, expected);
        config_done(&c);
}
