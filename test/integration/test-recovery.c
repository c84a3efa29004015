/* SPDX-License-Identifier: Apache-2.0 */
/* Never lose the host's KSM settings (docs/design.md, Persistence and recovery): crashes,
 * --restore, outside changes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct harness h;

static void setup(void) {
        harness_setup(&h, NULL);
}

/* Makes a knob file immutable (root cannot write it either), or writable again. */
static int set_immutable(const char *knob, bool on) {
        char path[PATH_MAX + 32];
        int fd, flags, r;

        snprintf(path, sizeof path, "%s/%s", h.ksm_dir, knob);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = ioctl(fd, FS_IOC_GETFLAGS, &flags);
        if (r >= 0) {
                flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
                r = ioctl(fd, FS_IOC_SETFLAGS, &flags);
        }
        r = r < 0 ? -errno : 0;
        close(fd);
        return r;
}

static void teardown(void) {
        (void) set_immutable("run", false);
        (void) umount2(h.runtime_dir, MNT_DETACH); /* the small tmpfs of the ENOSPC test */
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

Test(recovery, outside_change_during_a_cycle_adopts_only_the_changed_knob) {
        sd_bus *bus;

        harness_write_fast_config(&h, "300ms", "1h", NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        /* An administrator (or ksmtuned) steps in while aggressive. */
        harness_set_knob(&h, "sleep_millisecs", "50\n");
        cr_assert(harness_wait_state(bus, "initial", 10), "the cycle did not end");
        /* The administrator's value stands; the knobs only the throttler wrote (run=1 above
         * all) go back to the host's. */
        assert_knobs(0, 100, 50, "after the outside change");
        cr_assert(log_contains("changed from outside during aggressive"));
        cr_assert_eq(harness_get_u64(bus, "NextTransitionUSec"), 0);

        /* The next kick starts from those values, and a stop gives them back. */
        harness_kick(bus);
        assert_knobs(1, 10000, 1, "the next kick");
        sd_bus_flush_close_unref(bus);
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        assert_knobs(0, 100, 50, "restored to the values the administrator left");
}

Test(recovery, outside_change_then_stop_leaves_the_administrators_values) {
        harness_start_aggressive(&h);
        harness_set_knob(&h, "pages_to_scan", "777\n");
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        /* The stale snapshot (100) must not overwrite the administrator's 777 (the original
         * did); the knobs the administrator left alone get the host's values back. */
        assert_knobs(0, 777, 20, "after stop");
}

Test(recovery, missing_knob_fails_the_kick_naming_it) {
        char path[PATH_MAX + 32];
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus;

        bus = harness_start_in_standard(&h);
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

/* What ExecStopPost= runs after a start that a bad file refused: the start logged the
 * file's errors, and with nothing saved --restore neither reads the file nor repeats them. */
Test(recovery, restore_with_nothing_saved_does_not_repeat_configuration_errors) {
        char output[4096];

        harness_write_config(&h, "[Aggressive]\nDurationSec=never\n");
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, NULL), 78, "a bad file must refuse the start:\n%s",
                     output);
        cr_assert_not_null(strstr(output, "DurationSec"), "the start should name the bad key:\n%s", output);
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 0, "%s", output);
        cr_assert_null(strstr(output, "DurationSec"), "--restore repeated the file's errors:\n%s", output);
        cr_assert_not_null(strstr(output, "Nothing to restore"), "%s", output);
        assert_knobs(0, 100, 20, "the host's values, untouched");
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

Test(recovery, failed_intent_record_stops_throttling_and_restores_the_host) {
        char path[PATH_MAX + 32];
        sd_bus *bus;

        harness_write_fast_config(&h, "300ms", "1h", NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        assert_knobs(1, 10000, 1, "aggressive");
        /* The runtime directory becomes unusable (full, removed, replaced): the next
         * transition cannot record what it is about to write. */
        snprintf(path, sizeof path, "%s/host-settings", h.runtime_dir);
        cr_assert_eq(unlink(path), 0);
        cr_assert_eq(rmdir(h.runtime_dir), 0);
        FILE *f = fopen(h.runtime_dir, "we");
        cr_assert_not_null(f);
        fclose(f);
        cr_assert(harness_wait_state(bus, "initial", 10), "the throttler went on without a record of the host's values");
        assert_knobs(0, 100, 20, "the host's values, restored when the record failed");
        cr_assert(log_contains("not throttling"));
        sd_bus_flush_close_unref(bus);
}

Test(recovery, restore_writes_every_knob_it_can_and_names_the_missing_one) {
        char output[4096], path[PATH_MAX + 32];

        kick_to_aggressive_then_sigkill();
        snprintf(path, sizeof path, "%s/sleep_millisecs", h.ksm_dir);
        cr_assert_eq(unlink(path), 0);
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 1, "%s", output);
        cr_assert_not_null(strstr(output, "sleep_millisecs"), "the missing knob is not named:\n%s", output);
        cr_assert_eq(harness_knob(&h, "run"), 0, "run not restored:\n%s", output);
        cr_assert_eq(harness_knob(&h, "pages_to_scan"), 100, "pages_to_scan not restored:\n%s", output);
        /* Once the knob is back, a second run finishes the job. */
        harness_set_knob(&h, "sleep_millisecs", "1\n");
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 0, "%s", output);
        assert_knobs(0, 100, 20, "after the second --restore");
}

Test(recovery, stop_restores_every_writable_knob_when_one_is_not) {
        harness_start_aggressive(&h);
        if (set_immutable("run", true) < 0)
                cr_skip_test("cannot make a file immutable here");
        cr_assert_neq(harness_stop_daemon(&h, SIGTERM), 0, "a stop that left run=1 reported success");
        cr_assert_eq(harness_knob(&h, "pages_to_scan"), 100, "pages_to_scan was put back to the throttler's value");
        cr_assert_eq(harness_knob(&h, "sleep_millisecs"), 20, "sleep_millisecs was put back to the throttler's value");
        cr_assert(log_contains("Cannot restore KSM knob"), "the failed knob is not reported");
        cr_assert(log_contains("ksm/run to 0: Operation not permitted"), "the failed knob is not named");
        /* The record stays, so that --restore can finish once the knob is writable. */
        cr_assert_eq(set_immutable("run", false), 0);
        char output[4096];
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 0, "%s", output);
        assert_knobs(0, 100, 20, "after --restore");
}

Test(recovery, runtime_directory_of_another_user_is_not_restored) {
        char output[4096], path[PATH_MAX + 32];

        cr_assert_eq(mkdir(h.runtime_dir, 0700), 0);
        snprintf(path, sizeof path, "%s/host-settings", h.runtime_dir);
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs("run=1\npages_to_scan=4294967295\nsleep_millisecs=0\n", f);
        fclose(f);
        cr_assert_eq(chown(path, 65534, 65534), 0);
        cr_assert_eq(chown(h.runtime_dir, 65534, 65534), 0);
        harness_write_config(&h, "");
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 1, "%s", output);
        cr_assert_not_null(strstr(output, "owned by"), "%s", output);
        assert_knobs(0, 100, 20, "nothing written from another user's file");
}

Test(recovery, fifo_in_the_runtime_directory_blocks_neither_kick_nor_restore) {
        char output[4096], path[PATH_MAX + 32];
        const char *restore[] = { "timeout", "-s", "KILL", "20", KSM_THROTTLER_PATH, "--restore", "--ksm-dir", h.ksm_dir,
                                  "--runtime-dir", h.runtime_dir, "--config", h.config, NULL };

        cr_assert_eq(mkdir(h.runtime_dir, 0700), 0);
        snprintf(path, sizeof path, "%s/host-settings.tmp", h.runtime_dir);
        cr_assert_eq(mkfifo(path, 0600), 0);
        harness_start_aggressive(&h);
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        assert_knobs(0, 100, 20, "after the cycle");

        snprintf(path, sizeof path, "%s/host-settings", h.runtime_dir);
        cr_assert_eq(mkfifo(path, 0600), 0);
        cr_assert_eq(harness_run(&h, false, output, sizeof output, restore), 1, "--restore on a FIFO: %s", output);
        cr_assert_not_null(strstr(output, "not a regular file"), "%s", output);
}

Test(recovery, config_naming_a_directory_is_refused_with_status_78) {
        char output[4096];
        /* Bounded: before this was refused, the daemon started and served. */
        const char *argv[] = { "timeout", "-s", "KILL", "20", KSM_THROTTLER_PATH, "--config", h.dir, "--ksm-dir", h.ksm_dir,
                               "--runtime-dir", h.runtime_dir, NULL };
        cr_assert_eq(harness_run(&h, false, output, sizeof output, argv), 78, "%s", output);
        cr_assert_not_null(strstr(output, "Is a directory"), "%s", output);
}

Test(recovery, check_config_validates_without_starting) {
        char output[4096];
        harness_write_config(&h, "[Aggressive]\nDurationSec=never\n");
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--check-config", NULL), 78, "%s", output);
        cr_assert_not_null(strstr(output, "DurationSec"), "%s", output);
        harness_write_config(&h, "[Aggressive]\nDurationSec=10s\n");
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--check-config", NULL), 0, "%s", output);
        cr_assert_not_null(strstr(output, h.config), "the files checked are not named: %s", output);
}

Test(recovery, reload_message_names_the_dropins_read) {
        char dir[PATH_MAX + 8], path[PATH_MAX + 32];

        harness_write_fast_config(&h, "300ms", "1h", NULL);
        harness_start_daemon(&h, NULL);
        snprintf(dir, sizeof dir, "%s.d", h.config);
        cr_assert_eq(mkdir(dir, 0755), 0);
        snprintf(path, sizeof path, "%s/50-slow.conf", dir);
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs("[Slow]\nSleepMillisecs=300\n", f);
        fclose(f);
        cr_assert_eq(kill(h.daemon_pid, SIGHUP), 0);
        bool found = false;
        for (int i = 0; i < 200 && !found; i++) {
                found = log_contains("Reloaded the configuration") && log_contains("50-slow.conf");
                if (!found)
                        usleep(50 * 1000);
        }
        cr_assert(found, "the reload message does not name the drop-in");
}

Test(recovery, kick_that_cannot_record_fails_with_failed_and_writes_nothing) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char expected[PATH_MAX + 64];
        sd_bus *bus;

        harness_write_fast_config(&h, NULL, NULL, NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        /* The runtime directory is replaced by a file: the first kick cannot record the
         * host's values, so it must not write a knob. */
        cr_assert(rmdir(h.runtime_dir) == 0 || errno == ENOENT);
        FILE *f = fopen(h.runtime_dir, "we");
        cr_assert_not_null(f);
        fclose(f);
        cr_assert_lt(sd_bus_call_method(bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                                        "Kick", &error, NULL, NULL),
                     0, "the kick succeeded without a record of the host's values");
        cr_assert_str_eq(error.name, "org.freedesktop.DBus.Error.Failed");
        snprintf(expected, sizeof expected, "Cannot save the host's KSM settings in %s (", h.runtime_dir);
        cr_assert_not_null(strstr(error.message, expected), "the message does not say where: %s", error.message);
        cr_assert_not_null(strstr(error.message, "), not throttling"), "%s", error.message);
        assert_knobs(0, 100, 20, "after the refused kick");
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
}

Test(recovery, full_runtime_directory_stops_throttling_and_restores_the_host) {
        char path[PATH_MAX + 32], block[4096] = {};
        sd_bus *bus;
        int fd;

        /* A runtime directory of 16 KiB on a tmpfs of this test's own mount namespace. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                cr_skip_test("no mount namespace here: %s", strerror(errno));
        cr_assert_eq(mkdir(h.runtime_dir, 0700), 0);
        cr_assert_eq(mount("tmpfs", h.runtime_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=16k,mode=0700"), 0, "%s", strerror(errno));

        harness_write_fast_config(&h, "300ms", "1h", NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        assert_knobs(1, 10000, 1, "aggressive");
        /* Fill it up: the next record cannot be written (ENOSPC). */
        snprintf(path, sizeof path, "%s/filler", h.runtime_dir);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        while (write(fd, block, sizeof block) > 0)
                ;
        cr_assert_eq(errno, ENOSPC);
        close(fd);
        cr_assert(harness_wait_state(bus, "initial", 10), "the throttler went on without a record of its writes");
        assert_knobs(0, 100, 20, "the host's values, restored when the record failed");
        cr_assert(log_contains("No space left on device"), "the cause is not logged");
        cr_assert(log_contains("not throttling"));
        sd_bus_flush_close_unref(bus);
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        cr_assert_eq(umount2(h.runtime_dir, MNT_DETACH), 0);
}
