/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon on a private system-like bus and a temporary KSM directory, driven by
 * real clients: the schedule, signals, restore on exit, bad configuration. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "parse-util.h"

static struct harness h;

HARNESS_SUITE(daemon, h, NULL, 60);
HARNESS_SUITE(advisor, h, "[none] scan-time\n", 60);

static void assert_knobs(uint32_t run, uint32_t pages, uint32_t sleep_ms, const char *when) {
        harness_assert_knobs(&h, run, pages, sleep_ms, when);
}

static void assert_host_knobs(const char *when) {
        assert_knobs(0, 100, 20, when);
}

struct signal_log {
        char states[16][64]; /* "state<previous" */
        int n_states;
        char changed[256][32]; /* property names from PropertiesChanged, in order */
        int n_changed;
        bool check_knobs; /* verify the files at each StateChanged */
};

static int on_state_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct signal_log *log = userdata;
        const char *state, *previous;

        cr_assert_geq(sd_bus_message_read(m, "ss", &state, &previous), 0);
        if (log->n_states < 16)
                snprintf(log->states[log->n_states++], sizeof log->states[0], "%s<%s", state, previous);
        if (log->check_knobs) {
                /* The files hold the new state's values by the time its signal arrives, unless
                 * the next transition already happened (the schedule here is 600 ms per state). */
                if (strcmp(state, "aggressive") == 0)
                        assert_knobs(1, 10000, 1, "aggressive");
                else if (strcmp(state, "standard") == 0)
                        assert_knobs(1, 1000, 10, "standard");
                else if (strcmp(state, "slow") == 0)
                        assert_knobs(1, 200, 100, "slow");
                else
                        assert_host_knobs("initial");
        }
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct signal_log *log = userdata;
        const char *interface, *name;

        cr_assert_geq(sd_bus_message_read(m, "s", &interface), 0);
        cr_assert_geq(sd_bus_message_enter_container(m, 'a', "{sv}"), 0);
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                cr_assert_geq(sd_bus_message_read(m, "s", &name), 0);
                if (log->n_changed < 256)
                        snprintf(log->changed[log->n_changed++], sizeof log->changed[0], "%s", name);
                cr_assert_geq(sd_bus_message_skip(m, "v"), 0);
                cr_assert_geq(sd_bus_message_exit_container(m), 0);
        }
        return 0;
}

static void watch_signals(sd_bus *bus, struct signal_log *log) {
        cr_assert_geq(sd_bus_match_signal(bus, NULL, "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                          "org.kata.KsmThrottler", "StateChanged", on_state_changed, log),
                      0);
        cr_assert_geq(sd_bus_match_signal(bus, NULL, "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                          "org.freedesktop.DBus.Properties", "PropertiesChanged", on_properties_changed, log),
                      0);
}

/* Processes bus messages until n StateChanged signals arrived (or the safety timeout). */
static void pump_until_states(sd_bus *bus, struct signal_log *log, int n, double timeout_sec) {
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        while (log->n_states < n) {
                int r = sd_bus_process(bus, NULL);
                cr_assert_geq(r, 0);
                if (r > 0)
                        continue;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - start.tv_sec > timeout_sec)
                        break;
                sd_bus_wait(bus, 100 * 1000);
        }
}

/* Drains what has arrived by now. */
static void pump_pending(sd_bus *bus) {
        while (sd_bus_process(bus, NULL) > 0)
                ;
}

Test(daemon, full_decay_writes_exact_values_and_signals_in_order) {
        const char *kick[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                               "Kick", NULL };
        struct signal_log log = { .check_knobs = true };
        char output[4096];
        sd_bus *bus;

        harness_write_fast_config(&h, "600ms", "600ms", "600ms");
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        watch_signals(bus, &log);

        /* Nothing happens without a kick. */
        assert_host_knobs("before the kick");

        cr_assert_eq(harness_run(&h, false, output, sizeof output, kick), 0, "busctl Kick failed: %s", output);
        /* Kick() returns once the settings are written. */
        assert_knobs(1, 10000, 1, "right after Kick() returned");

        pump_until_states(bus, &log, 4, 20);
        cr_assert_eq(log.n_states, 4, "expected 4 StateChanged signals, got %d", log.n_states);
        cr_assert_str_eq(log.states[0], "aggressive<initial");
        cr_assert_str_eq(log.states[1], "standard<aggressive");
        cr_assert_str_eq(log.states[2], "slow<standard");
        cr_assert_str_eq(log.states[3], "initial<slow");
        assert_host_knobs("after the cycle");
        cr_assert_eq(harness_get_u64(bus, "NextTransitionUSec"), 0);
        cr_assert_eq(harness_get_u64(bus, "KickCount"), 1);

        /* PropertiesChanged named State with every transition. */
        int state_changes = 0;
        for (int i = 0; i < log.n_changed; i++)
                state_changes += strcmp(log.changed[i], "State") == 0;
        cr_assert_eq(state_changes, 4);
        /* The saved host values are gone after a clean restore. */
        char saved[PATH_MAX + 32];
        snprintf(saved, sizeof saved, "%s/host-settings", h.runtime_dir);
        cr_assert_eq(access(saved, F_OK), -1, "%s still exists after the cycle ended", saved);
        sd_bus_flush_close_unref(bus);
}

Test(daemon, kick_during_standard_returns_to_aggressive) {
        sd_bus *bus;
        uint64_t before, after;

        harness_write_fast_config(&h, "300ms", "30s", "30s");
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);

        harness_kick(bus);
        cr_assert(harness_wait_state(bus, "standard", 10), "never reached standard");
        assert_knobs(1, 1000, 10, "standard");
        before = harness_get_u64(bus, "NextTransitionUSec");

        harness_kick(bus);
        char state[32];
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "aggressive");
        assert_knobs(1, 10000, 1, "aggressive again");
        after = harness_get_u64(bus, "NextTransitionUSec");
        /* Aggressive lasts 300 ms from now; standard had 30 s left. */
        cr_assert_lt(after, before, "the aggressive deadline should come before standard's");
        cr_assert_eq(harness_get_u64(bus, "KickCount"), 2);
        sd_bus_flush_close_unref(bus);
}

static struct timespec knob_mtime(const char *name) {
        char path[PATH_MAX + 64];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", h.ksm_dir, name);
        cr_assert_eq(stat(path, &st), 0);
        return st.st_mtim;
}

Test(daemon, thousand_kicks_in_aggressive_write_nothing) {
        static const char *const knobs[] = { "run", "pages_to_scan", "sleep_millisecs" };
        struct timespec mtime[3];
        struct signal_log log = {};
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        for (int i = 0; i < 3; i++)
                mtime[i] = knob_mtime(knobs[i]);
        /* Make a difference in mtime visible even on a coarse clock. */
        usleep(20 * 1000);

        watch_signals(bus, &log);
        for (int i = 0; i < 1000; i++)
                harness_kick(bus);
        pump_pending(bus);

        for (int i = 0; i < 3; i++) {
                struct timespec now = knob_mtime(knobs[i]);
                cr_assert(now.tv_sec == mtime[i].tv_sec && now.tv_nsec == mtime[i].tv_nsec, "%s was written again", knobs[i]);
        }
        assert_knobs(1, 10000, 1, "after 1000 kicks");
        cr_assert_eq(harness_get_u64(bus, "KickCount"), 1001);
        cr_assert_eq(log.n_states, 0, "kicks in aggressive must not change the state");
        /* Only the deadline and the last kick move: no PropertiesChanged for State or Settings. */
        for (int i = 0; i < log.n_changed; i++)
                cr_assert(strcmp(log.changed[i], "NextTransitionUSec") == 0 || strcmp(log.changed[i], "LastKick") == 0,
                          "kicks in aggressive announced %s as changed", log.changed[i]);
        sd_bus_flush_close_unref(bus);
}

Test(daemon, sigterm_restores_every_knob) {
        char log[16384];

        harness_start_aggressive(&h);
        assert_knobs(1, 10000, 1, "aggressive");

        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0, "SIGTERM must exit 0");
        assert_host_knobs("after SIGTERM");
        harness_daemon_log(&h, log, sizeof log);
        cr_assert_not_null(strstr(log, "<6>State initial (was aggressive"), "no state line in the log:\n%s", log);
}

Test(daemon, sigint_restores_every_knob) {
        harness_start_aggressive(&h);
        cr_assert_eq(harness_stop_daemon(&h, SIGINT), 0, "SIGINT must exit 0");
        assert_host_knobs("after SIGINT");
}

Test(daemon, invalid_config_exits_78_naming_file_and_line) {
        char output[8192], where[PATH_MAX + 64];

        harness_write_config(&h, "[Throttler]\nMinPagesToScan=64\n[Aggressive]\nDurationSec=fast\n");
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, NULL), 78, "output: %s", output);
        snprintf(where, sizeof where, "%s:4:", h.config);
        cr_assert_not_null(strstr(output, where), "the error does not name %s:\n%s", where, output);
        cr_assert_not_null(strstr(output, "DurationSec"), "%s", output);
        assert_host_knobs("after a refused start");
}

Test(daemon, unknown_key_warns_and_starts) {
        char log[8192], where[PATH_MAX + 64];

        harness_write_config(&h, "[Throttler]\nFrobnicate=yes\n");
        harness_start_daemon(&h, NULL);
        harness_daemon_log(&h, log, sizeof log);
        snprintf(where, sizeof where, "<4>%s:2: unknown key Frobnicate", h.config);
        cr_assert_not_null(strstr(log, where), "no warning naming %s in:\n%s", where, log);
}

Test(daemon, missing_knob_refuses_to_start) {
        char output[8192], path[PATH_MAX + 16];

        snprintf(path, sizeof path, "%s/run", h.ksm_dir);
        cr_assert_eq(unlink(path), 0);
        harness_write_config(&h, "");
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, NULL), 69, "output: %s", output);
        cr_assert_not_null(strstr(output, "CONFIG_KSM"), "%s", output);
        cr_assert_not_null(strstr(output, "run"), "%s", output);
}

Test(daemon, missing_ksm_directory_refuses_to_start) {
        char output[8192];
        harness_write_config(&h, "");
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--ksm-dir", "/nonexistent/ksm", NULL), 69, "%s",
                     output);
        cr_assert_not_null(strstr(output, "/nonexistent/ksm does not exist"), "%s", output);
}

Test(daemon, second_instance_exits_nonzero) {
        char output[8192];
        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        cr_assert_neq(harness_run_daemon(&h, output, sizeof output, NULL), 0);
        cr_assert_not_null(strstr(output, "already"), "%s", output);
}

Test(daemon, unprivileged_kick_is_denied_and_properties_readable) {
        const char *kick[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                               "Kick", NULL };
        const char *get[] = { "busctl", "get-property", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                              "org.kata.KsmThrottler", "State", "Settings", "InitialSettings", "NextTransitionUSec",
                              "KickCount", "LastKickUSec", "Statistics", "Version", NULL };
        char output[8192];

        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        cr_assert_neq(harness_run(&h, true, output, sizeof output, kick), 0, "nobody could kick: %s", output);
        cr_assert_not_null(strstr(output, "Access denied"), "%s", output);
        assert_host_knobs("after a refused kick");
        cr_assert_eq(harness_run(&h, true, output, sizeof output, get), 0, "nobody cannot read properties: %s", output);
        cr_assert_not_null(strstr(output, "s \"initial\""), "%s", output);
}

Test(daemon, unprivileged_cannot_own_the_name) {
        const char *own[] = { "/usr/bin/python3", "-c",
                              "import dbus, sys\n"
                              "bus = dbus.SystemBus()\n"
                              "try:\n"
                              "    bus.request_name('org.kata.KsmThrottler')\n"
                              "except dbus.exceptions.DBusException as e:\n"
                              "    print(e.get_dbus_name()); sys.exit(3)\n"
                              "sys.exit(0)\n",
                              NULL };
        char output[4096];
        cr_assert_eq(harness_run(&h, true, output, sizeof output, own), 3, "nobody could own the name: %s", output);
        cr_assert_not_null(strstr(output, "AccessDenied"), "%s", output);
}

Test(daemon, properties_report_settings_and_statistics) {
        const char *get[] = { "busctl", "get-property", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                              "org.kata.KsmThrottler", "Settings", "InitialSettings", "Statistics", "Version", NULL };
        char output[8192];
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        cr_assert_eq(harness_run(&h, false, output, sizeof output, get), 0, "%s", output);
        cr_assert_not_null(strstr(output, "a{sv} 3 \"run\" u 1 \"pages_to_scan\" u 10000 \"sleep_millisecs\" u 1\n"), "%s",
                           output);
        cr_assert_not_null(strstr(output, "a{sv} 3 \"run\" u 0 \"pages_to_scan\" u 100 \"sleep_millisecs\" u 20\n"), "%s",
                           output);
        cr_assert_not_null(strstr(output, "\"pages_sharing\" 5000"), "%s", output);
        cr_assert_not_null(strstr(output, "\"general_profit\" 20185088"), "%s", output);
        cr_assert_not_null(strstr(output, "s \"" PROJECT_VERSION "\""), "%s", output);
        cr_assert_gt(harness_get_u64(bus, "LastKickUSec"), 0);
        sd_bus_flush_close_unref(bus);
}

Test(daemon, introspection_matches_interface_xml) {
        const char *compare[] = { "/usr/bin/python3", SOURCE_ROOT "/test/integration/compare-introspection.py",
                                  SOURCE_ROOT "/dbus/org.kata.KsmThrottler.xml", NULL };
        char output[8192];

        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        cr_assert_eq(harness_run(&h, false, output, sizeof output, compare), 0, "%s", output);
}

Test(daemon, unreadable_knob_fails_kick_naming_it) {
        char path[PATH_MAX + 16];
        sd_bus *bus;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char state[32];

        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        /* A directory where the knob should be: reading and writing it fail with EISDIR. */
        snprintf(path, sizeof path, "%s/run", h.ksm_dir);
        cr_assert_eq(unlink(path), 0);
        cr_assert_eq(mkdir(path, 0755), 0);

        bus = harness_bus(&h);
        cr_assert_lt(sd_bus_call_method(bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                                        "Kick", &error, NULL, NULL),
                     0);
        cr_assert_str_eq(error.name, "org.kata.KsmThrottler.Error.KsmUnavailable");
        cr_assert_not_null(strstr(error.message, "knob run"), "%s", error.message);
        cr_assert_not_null(strstr(error.message, "Is a directory"), "%s", error.message);
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "initial");
        cr_assert_eq(harness_knob(&h, "pages_to_scan"), 100);
        cr_assert_eq(harness_knob(&h, "sleep_millisecs"), 20);
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
}

Test(daemon, failed_write_fails_kick_and_keeps_state) {
        char path[PATH_MAX + 32], state[32];
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus;

        bus = harness_start_in_standard(&h);

        /* The kick must write pages_to_scan, then sleep_millisecs, which now fails with EISDIR. */
        snprintf(path, sizeof path, "%s/sleep_millisecs", h.ksm_dir);
        cr_assert_eq(unlink(path), 0);
        cr_assert_eq(mkdir(path, 0755), 0);
        cr_assert_lt(sd_bus_call_method(bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                                        "Kick", &error, NULL, NULL),
                     0);
        cr_assert_str_eq(error.name, "org.kata.KsmThrottler.Error.KsmUnavailable");
        cr_assert_not_null(strstr(error.message, "knob sleep_millisecs"), "%s", error.message);
        cr_assert_not_null(strstr(error.message, "Is a directory"), "%s", error.message);

        /* Failure-atomic: pages_to_scan was put back and the state is still standard. */
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "standard");
        cr_assert_eq(harness_knob(&h, "pages_to_scan"), 1000);

        /* Once the knob is back, kicks work again. */
        cr_assert_eq(rmdir(path), 0);
        harness_set_knob(&h, "sleep_millisecs", "10\n");
        harness_kick(bus);
        assert_knobs(1, 10000, 1, "aggressive after the knob came back");
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
}

Test(advisor, scan_time_is_switched_off_while_throttling_and_restored) {
        char text[64];
        sd_bus *bus;

        harness_set_knob(&h, "advisor_mode", "scan-time\n");
        harness_write_fast_config(&h, "300ms", "300ms", "300ms");
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        harness_knob_text(&h, "advisor_mode", text, sizeof text);
        cr_assert_str_eq(text, "none\n", "advisor_mode must be none while throttling");
        assert_knobs(1, 10000, 1, "aggressive");

        cr_assert(harness_wait_state(bus, "initial", 20), "the cycle did not end");
        harness_knob_text(&h, "advisor_mode", text, sizeof text);
        cr_assert_str_eq(text, "scan-time\n");
        /* pages_to_scan belongs to the advisor again: not written back (a real kernel resets it). */
        cr_assert_eq(harness_knob(&h, "run"), 0);
        cr_assert_eq(harness_knob(&h, "sleep_millisecs"), 20);
        sd_bus_flush_close_unref(bus);
}

Test(advisor, host_without_advisor_keeps_it_untouched) {
        char text[64];
        struct timespec before, after;
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        before = knob_mtime("advisor_mode");
        usleep(20 * 1000);
        bus = harness_bus(&h);
        harness_kick(bus);
        after = knob_mtime("advisor_mode");
        harness_knob_text(&h, "advisor_mode", text, sizeof text);
        cr_assert_str_eq(text, "[none] scan-time\n", "advisor_mode already none must not be written");
        cr_assert(before.tv_sec == after.tv_sec && before.tv_nsec == after.tv_nsec);
        sd_bus_flush_close_unref(bus);
}

/* Reads the notifications that arrived so far, one after another, into buf. */
static void read_notifications(int fd, char *buf, size_t size) {
        size_t used = strlen(buf);
        ssize_t n;
        while (used < size - 2 && (n = recv(fd, buf + used, size - used - 2, MSG_DONTWAIT)) > 0) {
                used += (size_t) n;
                buf[used++] = '\n';
        }
        buf[used] = '\0';
}

Test(daemon, notifies_systemd_of_readiness_state_and_stopping) {
        struct sockaddr_un address = { .sun_family = AF_UNIX };
        char messages[8192] = "";
        sd_bus *bus;
        int fd;

        snprintf(h.notify_socket, sizeof h.notify_socket, "%s/notify", h.dir);
        cr_assert_lt(strlen(h.notify_socket), sizeof address.sun_path);
        memcpy(address.sun_path, h.notify_socket, strlen(h.notify_socket) + 1);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) &address, sizeof address), 0);

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        /* READY=1 comes once the name is owned, which harness_start_daemon waited for. */
        usleep(100 * 1000);
        read_notifications(fd, messages, sizeof messages);
        cr_assert_not_null(strstr(messages, "READY=1"), "%s", messages);
        cr_assert_not_null(strstr(messages, "STATUS=State: initial"), "%s", messages);

        bus = harness_bus(&h);
        harness_kick(bus);
        sd_bus_flush_close_unref(bus);
        usleep(100 * 1000);
        read_notifications(fd, messages, sizeof messages);
        cr_assert_not_null(strstr(messages, "STATUS=State: aggressive (run=1 pages_to_scan=10000 sleep_millisecs=1)"), "%s",
                           messages);

        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        read_notifications(fd, messages, sizeof messages);
        cr_assert_not_null(strstr(messages, "STOPPING=1"), "%s", messages);
        close(fd);
}

/* Waits (bounded) until the daemon log contains text. */
static bool wait_log(const char *text) {
        static char log[65536];
        for (int i = 0; i < 1000; i++) {
                harness_daemon_log(&h, log, sizeof log);
                if (strstr(log, text))
                        return true;
                usleep(10 * 1000);
        }
        return false;
}

Test(daemon, sighup_reloads_and_keeps_the_old_config_when_the_new_is_invalid) {
        char where[PATH_MAX + 64];
        sd_bus *bus;

        harness_write_config(&h, "[Aggressive]\nDurationSec=1h\n");
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);

        harness_write_config(&h, "[Aggressive]\nDurationSec=1h\nPagesPerScanFactor=0\n");
        cr_assert_eq(kill(h.daemon_pid, SIGHUP), 0);
        cr_assert(wait_log("Configuration reload rejected"), "no rejection in the log");
        snprintf(where, sizeof where, "%s:3:", h.config);
        cr_assert(wait_log(where), "the rejection does not name %s", where);
        harness_kick(bus);
        assert_knobs(1, 10000, 1, "the old factor (10) still applies");

        harness_write_config(&h, "[Aggressive]\nDurationSec=1h\nPagesPerScanFactor=20\nSleepMillisecs=5\n");
        cr_assert_eq(kill(h.daemon_pid, SIGHUP), 0);
        cr_assert(wait_log("Reloaded the configuration"), "no reload in the log");
        harness_kick(bus);
        assert_knobs(1, 5000, 5, "the new factor (20) and sleep (5 ms) apply from the next kick");
        sd_bus_flush_close_unref(bus);
}

Test(daemon, losing_the_bus_restores_and_exits_with_failure) {
        int status;

        harness_start_aggressive(&h);
        assert_knobs(1, 10000, 1, "aggressive");

        cr_assert_eq(kill(h.bus_pid, SIGKILL), 0);
        cr_assert_eq(waitpid(h.bus_pid, NULL, 0), h.bus_pid);
        h.bus_pid = 0;
        cr_assert_eq(waitpid(h.daemon_pid, &status, 0), h.daemon_pid);
        h.daemon_pid = 0;
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status %d", status);
        assert_host_knobs("after the bus went away");
}

/* LastKick read over the bus; strings copied into the caller's buffers. */
static uint64_t get_last_kick(sd_bus *bus, char *reason, char *application_id, char *origin, size_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *r_reason, *r_app, *r_origin;
        uint64_t usec;
        int r;

        r = sd_bus_get_property(bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                                "LastKick", &error, &reply, "(tsss)");
        cr_assert_geq(r, 0, "cannot read LastKick: %s", error.message ?: strerror(-r));
        r = sd_bus_message_read(reply, "(tsss)", &usec, &r_reason, &r_app, &r_origin);
        cr_assert_geq(r, 0, "LastKick is not (tsss): %s", strerror(-r));
        snprintf(reason, size, "%s", r_reason);
        snprintf(application_id, size, "%s", r_app);
        snprintf(origin, size, "%s", r_origin);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return usec;
}

Test(daemon, kick_with_reason_shows_in_last_kick_and_the_log_escaped) {
        const char *kick[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                               "KickWithReason", "ss", "machine qemu-1 (vm) registered\x1b[31m", "test-app", NULL };
        char output[4096], reason[512], app[512], origin[512], log[65536], expected[600];
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        cr_assert_eq(get_last_kick(bus, reason, app, origin, sizeof reason), 0, "LastKick before any kick must be 0");
        cr_assert_eq(harness_run(&h, false, output, sizeof output, kick), 0, "root's KickWithReason failed: %s", output);
        assert_knobs(1, 10000, 1, "after KickWithReason");

        uint64_t usec = get_last_kick(bus, reason, app, origin, sizeof reason);
        cr_assert_eq(usec, harness_get_u64(bus, "LastKickUSec"), "LastKick's time differs from LastKickUSec");
        cr_assert_str_eq(reason, "machine qemu-1 (vm) registered\x1b[31m", "LastKick must keep the reason as sent");
        cr_assert_str_eq(app, "test-app");
        cr_assert(strncmp(origin, "uid 0 pid ", 10) == 0, "origin should name root and a pid: %s", origin);

        harness_daemon_log(&h, log, sizeof log);
        cr_assert_not_null(strstr(log, "registered\\x1b[31m"), "the reason must be logged with ESC escaped:\n%s", log);
        cr_assert_null(strstr(log, "\x1b"), "a control character reached the log:\n%s", log);
        snprintf(expected, sizeof expected, "(%s)", origin);
        cr_assert_not_null(strstr(log, expected), "the log must name the caller as %s:\n%s", expected, log);

        /* A plain Kick clears reason and application ID. */
        harness_kick(bus);
        cr_assert_gt(get_last_kick(bus, reason, app, origin, sizeof reason), 0);
        cr_assert_str_eq(reason, "", "a plain Kick has no reason, got %s", reason);
        cr_assert_str_eq(app, "");
        sd_bus_flush_close_unref(bus);
}

Test(daemon, kick_with_overlong_reason_or_application_id_is_refused_saying_which) {
        char long_text[258], output[4096], reason[512], app[512], origin[512];
        memset(long_text, 'a', 257);
        long_text[257] = '\0';
        const char *too_long_reason[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                          "org.kata.KsmThrottler", "KickWithReason", "ss", long_text, "x", NULL };
        const char *too_long_app[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                       "org.kata.KsmThrottler", "KickWithReason", "ss", "why", long_text, NULL };
        const char *at_limit[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                   "org.kata.KsmThrottler", "KickWithReason", "ss", long_text + 1, long_text + 1, NULL };
        sd_bus *bus;

        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        cr_assert_neq(harness_run(&h, false, output, sizeof output, too_long_reason), 0, "a 257-byte reason was accepted");
        cr_assert_not_null(strstr(output, "reason is 257 bytes long; at most 256"), "the error must say which: %s", output);
        cr_assert_neq(harness_run(&h, false, output, sizeof output, too_long_app), 0, "a 257-byte app ID was accepted");
        cr_assert_not_null(strstr(output, "application ID is 257 bytes long; at most 256"), "%s", output);
        assert_host_knobs("after refused kicks");
        bus = harness_bus(&h);
        cr_assert_eq(harness_get_u64(bus, "KickCount"), 0, "refused kicks were counted");
        cr_assert_eq(harness_run(&h, false, output, sizeof output, at_limit), 0, "256 bytes each must pass: %s", output);
        get_last_kick(bus, reason, app, origin, sizeof reason);
        cr_assert_eq(strlen(reason), 256, "the reason was cut: %zu bytes", strlen(reason));
        cr_assert_eq(strlen(app), 256);
        sd_bus_flush_close_unref(bus);
}

Test(daemon, refused_kick_is_logged_with_the_callers_uid) {
        const char *kick[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                               "KickWithReason", "ss", "nobody tries", "intruder", NULL };
        char output[4096], log[65536];

        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        cr_assert_neq(harness_run(&h, true, output, sizeof output, kick), 0, "nobody could kick: %s", output);
        harness_daemon_log(&h, log, sizeof log);
        const char *line = strstr(log, "(uid 65534 pid ");
        cr_assert_not_null(line, "the refused kick must be logged with uid 65534 and a pid:\n%s", log);
        cr_assert_not_null(strstr(line, "by \"intruder\", reason \"nobody tries\""), "reason/app missing:\n%s", log);
        cr_assert_null(strstr(log, "accepted"), "nobody's kick was logged as accepted:\n%s", log);
}

/* An a{st} property over the bus as "key=value key=value ..." in the daemon's order. */
static void get_tallies(sd_bus *bus, const char *property, char *buf, size_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *key;
        uint64_t value;
        size_t used = 0;
        int r;

        r = sd_bus_get_property(bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler", property,
                                &error, &reply, "a{st}");
        cr_assert_geq(r, 0, "cannot read %s: %s", property, error.message ?: strerror(-r));
        buf[0] = '\0';
        cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "{st}"), 0, "%s is not a{st}", property);
        while ((r = sd_bus_message_read(reply, "{st}", &key, &value)) > 0) {
                int n = snprintf(buf + used, size - used, "%s%s=%" PRIu64, used ? " " : "", key, value);
                cr_assert(n > 0 && (size_t) n < size - used, "%s does not fit the test's buffer", property);
                used += (size_t) n;
        }
        cr_assert_geq(r, 0, "cannot read %s: %s", property, strerror(-r));
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
}

Test(daemon, kicks_by_origin_and_time_in_state_are_published) {
        const char *libvirt[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                  "org.kata.KsmThrottler", "KickWithReason", "ss", "domain started", "org.libvirt.hook", NULL };
        const char *kata[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                               "KickWithReason", "ss", "", "kata-runtime", NULL };
        const char *hostile[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                  "org.kata.KsmThrottler", "KickWithReason", "ss", "", "x\"} 1\n\x1b[31m", NULL };
        const char *refused[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                  "org.kata.KsmThrottler", "KickWithReason", "ss", "", "intruder", NULL };
        const char *busctl_get[] = { "busctl", "get-property", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                     "org.kata.KsmThrottler", "KicksByOrigin", NULL };
        char output[4096], kicks[1024], times[1024];
        unsigned long long initial, aggressive, standard, slow;
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        get_tallies(bus, "KicksByOrigin", kicks, sizeof kicks);
        cr_assert_str_eq(kicks, "", "kicks were counted before any came: %s", kicks);

        cr_assert_eq(harness_run(&h, false, output, sizeof output, libvirt), 0, "%s", output);
        cr_assert_eq(harness_run(&h, false, output, sizeof output, kata), 0, "%s", output);
        cr_assert_eq(harness_run(&h, false, output, sizeof output, libvirt), 0, "%s", output);
        cr_assert_eq(harness_run(&h, false, output, sizeof output, hostile), 0, "%s", output);
        cr_assert_neq(harness_run(&h, true, output, sizeof output, refused), 0, "nobody could kick: %s", output);

        get_tallies(bus, "KicksByOrigin", kicks, sizeof kicks);
        cr_assert_str_eq(kicks, "org.libvirt.hook=2 kata-runtime=1 x___1___31m=1",
                         "the accepted kicks by application ID, the hostile one made safe, the refused one left out: %s",
                         kicks);
        cr_assert_eq(harness_get_u64(bus, "KickCount"), 4, "KickCount and KicksByOrigin disagree");
        cr_assert_eq(harness_run(&h, false, output, sizeof output, busctl_get), 0, "%s", output);
        cr_assert_str_eq(output, "a{st} 3 \"org.libvirt.hook\" 2 \"kata-runtime\" 1 \"x___1___31m\" 1\n",
                         "busctl shows: %s", output);

        get_tallies(bus, "TimeInStateUSec", times, sizeof times);
        cr_assert_eq(sscanf(times, "initial=%llu aggressive=%llu standard=%llu slow=%llu", &initial, &aggressive,
                            &standard, &slow),
                     4, "TimeInStateUSec must list the four states in order: %s", times);
        cr_assert(initial > 0 && aggressive > 0, "the daemon was in initial, then aggressive: %s", times);
        cr_assert(standard == 0 && slow == 0, "standard and slow were never entered: %s", times);
        harness_get_state(bus, output, sizeof output);
        cr_assert_str_eq(output, "aggressive");
        sd_bus_flush_close_unref(bus);
}

/* A record the previous instance left in the runtime directory (mode 0600, as the daemon
 * writes it), with kicks boottime_usec microseconds of CLOCK_BOOTTIME. */
static void plant_handover(const char *text) {
        char path[PATH_MAX + 32];
        int fd;

        (void) mkdir(h.runtime_dir, 0700);
        snprintf(path, sizeof path, "%s/kick-handover", h.runtime_dir);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0, "cannot create %s: %s", path, strerror(errno));
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        cr_assert_eq(close(fd), 0);
}

static bool handover_file_exists(void) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/kick-handover", h.runtime_dir);
        return access(path, F_OK) == 0;
}

/* What an instance exiting when idle under systemd leaves for the next one: applied once,
 * as the kick it was, with its reason and origin, cleaned of control characters. */
Test(daemon, a_kick_handed_over_by_the_previous_instance_is_applied_once) {
        char text[512], state[32], reason[512], app[512], origin[512];
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        snprintf(text, sizeof text,
                 "kicks=2\ntime=%llu\npid=4242\nreason=new sandbox\\x1b[31m\napplication_id=ksm-throttler-trigger\n"
                 "origin=uid 0 pid 17\nunit=ksm-throttler-trigger.service\n",
                 (unsigned long long) clock_now_usec(CLOCK_BOOTTIME));
        plant_handover(text);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "aggressive", "the handed-over kick was not applied");
        cr_assert_eq(harness_get_u64(bus, "KickCount"), 1, "the record counts as one kick");
        get_last_kick(bus, reason, app, origin, sizeof reason);
        cr_assert_str_eq(reason, "new sandbox?[31m", "LastKick's reason, cleaned of control characters");
        cr_assert_str_eq(app, "ksm-throttler-trigger");
        cr_assert_str_eq(origin, "uid 0 pid 17");
        cr_assert_not(handover_file_exists(), "the record must be taken, or every start applies it again");
        harness_assert_knobs(&h, 1, 10000, 1, "after the handed-over kick");
        sd_bus_flush_close_unref(bus);

        /* The next start finds nothing to apply. */
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "initial", "a record must be applied only once");
        sd_bus_flush_close_unref(bus);
}

Test(daemon, a_stale_or_damaged_hand_over_is_dropped_and_the_daemon_starts) {
        char text[256], state[32], log[16384];
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        snprintf(text, sizeof text, "kicks=1\ntime=%llu\npid=4242\n",
                 (unsigned long long) (clock_now_usec(CLOCK_BOOTTIME) > 120000000 ? clock_now_usec(CLOCK_BOOTTIME) - 120000000 : 0));
        plant_handover(text);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "initial", "a record two minutes old is no kick that raced an exit");
        cr_assert_not(handover_file_exists());
        harness_daemon_log(&h, log, sizeof log);
        cr_assert_not_null(strstr(log, "Dropping"), "dropping a stale record is logged:\n%s", log);
        sd_bus_flush_close_unref(bus);
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);

        plant_handover("kicks=1\ntime=1\nreason=\\x00\n");
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "initial", "a damaged record is not applied");
        cr_assert_not(handover_file_exists());
        sd_bus_flush_close_unref(bus);
}
