/* SPDX-License-Identifier: Apache-2.0 */
/* Never lose the host's KSM settings (docs/design.md, Persistence and recovery): crashes,
 * --restore, outside changes. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct harness h;

static void setup(void) {
        harness_setup(&h, NULL);
}

static void teardown(void) {
        harness_teardown(&h);
}

TestSuite(recovery, .init = setup, .fini = teardown, .timeout = 60);

static void assert_knobs(uint32_t run, uint32_t pages, uint32_t sleep_ms, const char *when) {
        harness_assert_knobs(&h, run, pages, sleep_ms, when);
}

static void kick_to_aggressive_then_sigkill(void) {
        harness_start_aggressive(&h);
        assert_knobs(1, 10000, 1, "aggressive");
        cr_assert_eq(harness_stop_daemon(&h, SIGKILL), 128 + SIGKILL);
        assert_knobs(1, 10000, 1, "a killed daemon restores nothing");
}

static bool log_contains(const char *text) {
        static char log[65536];
        harness_daemon_log(&h, log, sizeof log);
        return strstr(log, text) != NULL;
}

Test(recovery, restart_after_sigkill_restores_the_saved_host_values) {
        kick_to_aggressive_then_sigkill();
        /* The next instance finds the saved values and puts them back before anything else. */
        harness_start_daemon(&h, NULL);
        assert_knobs(0, 100, 20, "right after the restart");
        cr_assert(log_contains("did not restore the host's KSM settings; restoring run=0 pages_to_scan=100 sleep_millisecs=20"));

        sd_bus *bus = harness_bus(&h);
        char state[32];
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "initial");
        sd_bus_flush_close_unref(bus);
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        assert_knobs(0, 100, 20, "after SIGTERM");
}

Test(recovery, restore_option_alone_restores_after_sigkill) {
        char output[4096];

        kick_to_aggressive_then_sigkill();
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 0, "%s", output);
        cr_assert_not_null(strstr(output, "Restored the host's KSM settings"), "%s", output);
        assert_knobs(0, 100, 20, "after --restore");

        /* Run again: nothing left to restore, and it says so. */
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 0, "%s", output);
        cr_assert_not_null(strstr(output, "Nothing to restore"), "%s", output);
        assert_knobs(0, 100, 20, "after a second --restore");
}

Test(recovery, damaged_saved_state_is_reported_with_file_and_line) {
        char output[4096], path[PATH_MAX + 32];
        FILE *f;

        harness_write_config(&h, "");
        snprintf(path, sizeof path, "%s", h.runtime_dir);
        cr_assert_eq(mkdir(path, 0700), 0);
        snprintf(path, sizeof path, "%s/host-settings", h.runtime_dir);
        f = fopen(path, "we");
        fputs("run=0\npages_to_scan=lots\n", f);
        fclose(f);
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 1, "%s", output);
        cr_assert_not_null(strstr(output, "host-settings:2:"), "%s", output);
        assert_knobs(0, 100, 20, "nothing written from a damaged file");
}

Test(recovery, outside_change_during_a_cycle_ends_it_without_writing) {
        sd_bus *bus;

        harness_write_fast_config(&h, "300ms", "1h", NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        /* An administrator (or ksmtuned) steps in while aggressive. */
        harness_set_knob(&h, "sleep_millisecs", "50\n");
        cr_assert(harness_wait_state(bus, "initial", 10), "the cycle did not end");
        /* Nothing was written: the administrator's value and the rest stand as they were. */
        assert_knobs(1, 10000, 50, "after the outside change");
        cr_assert(log_contains("changed from outside during aggressive"));
        cr_assert_eq(harness_get_u64(bus, "NextTransitionUSec"), 0);

        /* The next kick starts from those values, and a stop gives them back. */
        harness_set_knob(&h, "run", "0\n");
        harness_kick(bus);
        assert_knobs(1, 10000, 1, "the next kick");
        sd_bus_flush_close_unref(bus);
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        assert_knobs(0, 10000, 50, "restored to the values the administrator left");
}

Test(recovery, outside_change_then_stop_leaves_the_administrators_values) {
        harness_start_aggressive(&h);
        harness_set_knob(&h, "pages_to_scan", "777\n");
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        /* The stale snapshot (100) must not overwrite the administrator's 777: the original did. */
        assert_knobs(1, 777, 1, "after stop");
}

Test(recovery, missing_knob_fails_the_kick_naming_it) {
        char path[PATH_MAX + 32];
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus;

        harness_write_fast_config(&h, "300ms", "1h", NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        cr_assert(harness_wait_state(bus, "standard", 10));
        snprintf(path, sizeof path, "%s/sleep_millisecs", h.ksm_dir);
        cr_assert_eq(unlink(path), 0);
        cr_assert_lt(sd_bus_call_method(bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                                        "Kick", &error, NULL, NULL),
                     0);
        cr_assert_str_eq(error.name, "org.kata.KsmThrottler.Error.KsmUnavailable");
        cr_assert_not_null(strstr(error.message, "sleep_millisecs"), "%s", error.message);
        cr_assert_not_null(strstr(error.message, "No such file or directory"), "%s", error.message);
        cr_assert(log_contains("sleep_millisecs"));
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
}

Test(recovery, restore_works_even_with_an_invalid_configuration) {
        char output[4096];

        kick_to_aggressive_then_sigkill();
        harness_write_config(&h, "[Aggressive]\nDurationSec=never\n");
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 0, "%s", output);
        cr_assert_not_null(strstr(output, "restoring with the built-in defaults"), "%s", output);
        assert_knobs(0, 100, 20, "after --restore with a broken configuration");
}

Test(recovery, restore_refuses_while_the_daemon_runs) {
        char output[4096];

        harness_start_aggressive(&h);
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 1, "%s", output);
        cr_assert_not_null(strstr(output, "ksm-throttler is running"), "%s", output);
        assert_knobs(1, 10000, 1, "the running cycle is untouched");
}

Test(recovery, second_instance_does_not_undo_a_running_cycle) {
        char output[4096];

        harness_start_aggressive(&h);
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, NULL), 1, "%s", output);
        cr_assert_not_null(strstr(output, "already running"), "%s", output);
        assert_knobs(1, 10000, 1, "the running cycle is untouched");
        sd_bus *bus = harness_bus(&h);
        char state[32];
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "aggressive");
        sd_bus_flush_close_unref(bus);
}

Test(recovery, host_run_2_is_never_written_back) {
        /* run=2 is "stop and unmerge everything": restoring it would undo the whole cycle. */
        harness_set_knob(&h, "run", "2\n");
        harness_start_aggressive(&h);
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        assert_knobs(0, 100, 20, "after the cycle");
        cr_assert(log_contains("run=2 (unmerge all) is a command, not a setting"));
}

Test(recovery, after_a_crash_the_properties_show_the_restored_host_values) {
        const char *get[] = { "busctl", "get-property", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                              "org.kata.KsmThrottler", "Settings", "InitialSettings", NULL };
        char output[4096];

        kick_to_aggressive_then_sigkill();
        harness_start_daemon(&h, NULL);
        cr_assert_eq(harness_run(&h, false, output, sizeof output, get), 0, "%s", output);
        const char *expected = "a{sv} 3 \"run\" u 0 \"pages_to_scan\" u 100 \"sleep_millisecs\" u 20\n";
        const char *first = strstr(output, expected);
        cr_assert_not_null(first, "Settings: %s", output);
        cr_assert_not_null(strstr(first + 1, expected), "InitialSettings: %s", output);
}

Test(recovery, restore_after_a_crash_keeps_what_others_changed_since) {
        char output[4096];

        harness_start_aggressive(&h);
        /* An administrator changes one knob mid-cycle, then the daemon dies before noticing. */
        harness_set_knob(&h, "sleep_millisecs", "50\n");
        cr_assert_eq(harness_stop_daemon(&h, SIGKILL), 128 + SIGKILL);
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 0, "%s", output);
        cr_assert_not_null(strstr(output, "sleep_millisecs was changed after the throttler wrote it"), "%s", output);
        /* The throttler's values go, the administrator's stays. */
        assert_knobs(0, 100, 50, "after --restore");
}
