/* SPDX-License-Identifier: Apache-2.0 */
/* Who may kick: polkit (python3-dbusmock's polkitd template, or a bare mock with a
 * custom CheckAuthorization) on the private system-like bus, callers as uid 65534. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define ACTION "org.kata.ksmthrottler.kick"

static struct harness h;

HARNESS_SUITE(polkit, h, NULL, 60);

static const char *const busctl_kick[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                           "org.kata.KsmThrottler", "Kick", NULL };

Test(polkit, unprivileged_caller_allowed_by_polkit_kicks) {
        char output[4096];

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SetAllowed", "as", 1, ACTION);
        harness_start_daemon(&h, NULL);

        cr_assert_eq(harness_run(&h, true, output, sizeof output, busctl_kick), 0, "%s", output);
        cr_assert_eq(harness_knob(&h, "run"), 1);
        cr_assert_eq(harness_knob(&h, "pages_to_scan"), 10000);
        cr_assert_eq(harness_polkit_checks(&h), 1, "one Kick, one CheckAuthorization");
}

Test(polkit, root_is_never_checked_with_polkit) {
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        sd_bus_flush_close_unref(bus);
        cr_assert_eq(harness_polkit_checks(&h), 0);
}

Test(polkit, unprivileged_caller_not_allowed_is_denied) {
        char results[1024];

        harness_write_config(&h, "");
        harness_start_polkit(&h, true);
        harness_start_daemon(&h, NULL);
        cr_assert_eq(harness_kick_as_nobody(&h, 1, false, results, sizeof results), 0, "%s", results);
        cr_assert_not_null(strstr(results, "org.freedesktop.DBus.Error.AccessDenied: Not authorized by polkit"), "%s",
                           results);
        cr_assert_eq(harness_knob(&h, "run"), 0, "a refused kick must write nothing");
}

Test(polkit, no_polkit_on_the_bus_means_denied) {
        char results[1024];

        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        cr_assert_eq(harness_kick_as_nobody(&h, 1, false, results, sizeof results), 0, "%s", results);
        cr_assert_not_null(strstr(results, "org.freedesktop.DBus.Error.AccessDenied: polkit is not available"), "%s",
                           results);
        cr_assert_eq(harness_knob(&h, "run"), 0);
}

Test(polkit, hanging_polkit_denies_after_the_timeout_while_reads_answer) {
        char path[PATH_MAX + 32], output[4096], state[32];
        pid_t kicker;
        sd_bus *bus;
        FILE *f;

        harness_write_config(&h, "[Throttler]\nPolkitTimeoutSec=2s\n");
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SetAllowed", "as", 1, ACTION);
        harness_polkit_call(&h, "SimulateHang", "b", 1);
        harness_start_daemon(&h, NULL);

        const char *const ksmctl_kick[] = { KSMCTL_PATH, "kick", NULL };
        snprintf(path, sizeof path, "%s/kick.out", h.dir);
        kicker = harness_spawn(&h, true, path, ksmctl_kick);
        /* Wait until the check reached polkit, then read State while the Kick is still pending. */
        for (int i = 0; i < 1000 && harness_polkit_checks(&h) == 0; i++)
                usleep(10 * 1000);
        cr_assert_eq(harness_polkit_checks(&h), 1);
        bus = harness_bus(&h);
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "initial");
        cr_assert_eq(waitpid(kicker, NULL, WNOHANG), 0, "the Kick should still be waiting for polkit");
        sd_bus_flush_close_unref(bus);

        int status;
        cr_assert_eq(waitpid(kicker, &status, 0), kicker);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 4, "the Kick must fail with access denied");
        f = fopen(path, "re");
        output[fread(output, 1, sizeof output - 1, f)] = '\0';
        fclose(f);
        cr_assert_not_null(strstr(output, "polkit did not answer within 2s"), "%s", output);
        cr_assert_eq(harness_knob(&h, "run"), 0);
}

Test(polkit, challenge_without_interaction_requires_interactive_authorization) {
        char results[1024];

        harness_write_config(&h, "");
        harness_start_polkit(&h, false);
        /* The template never answers "challenge"; this CheckAuthorization always does. */
        harness_polkit_call(&h, "AddMethod", "sssss", "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization",
                            "(sa{sv})sa{ss}us", "(bba{ss})", "ret = (False, True, {})");
        harness_start_daemon(&h, NULL);
        cr_assert_eq(harness_kick_as_nobody(&h, 1, false, results, sizeof results), 0, "%s", results);
        cr_assert_not_null(strstr(results, "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired: "), "%s", results);
        cr_assert_eq(harness_knob(&h, "run"), 0);
}

Test(polkit, interactive_flag_follows_the_callers_message) {
        char results[1024];
        sd_bus *bus;
        sd_bus_message *reply = NULL;
        uint32_t flags[2];

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SetAllowed", "as", 1, ACTION);
        harness_start_daemon(&h, NULL);
        cr_assert_eq(harness_kick_as_nobody(&h, 1, false, results, sizeof results), 1, "%s", results);
        cr_assert_eq(harness_kick_as_nobody(&h, 1, true, results, sizeof results), 1, "%s", results);

        /* GetMethodCalls: a(tav), args (subject, action, details, flags, cancellation id). */
        bus = harness_bus(&h);
        cr_assert_geq(sd_bus_call_method(bus, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                                         "org.freedesktop.DBus.Mock", "GetMethodCalls", NULL, &reply, "s",
                                         "CheckAuthorization"),
                      0);
        cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "(tav)"), 0);
        for (int i = 0; i < 2; i++) {
                const char *kind, *key, *name, *action;
                cr_assert_gt(sd_bus_message_enter_container(reply, 'r', "tav"), 0);
                cr_assert_geq(sd_bus_message_skip(reply, "t"), 0);
                cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "v"), 0);
                cr_assert_geq(sd_bus_message_enter_container(reply, 'v', "(sa{sv})"), 0);
                cr_assert_geq(sd_bus_message_read(reply, "(sa{sv})", &kind, 1, &key, "s", &name), 0);
                cr_assert_str_eq(kind, "system-bus-name");
                cr_assert_str_eq(key, "name");
                cr_assert_eq(name[0], ':', "subject must be the caller's unique name, got %s", name);
                cr_assert_geq(sd_bus_message_exit_container(reply), 0);
                cr_assert_geq(sd_bus_message_read(reply, "v", "s", &action), 0);
                cr_assert_str_eq(action, ACTION);
                cr_assert_geq(sd_bus_message_skip(reply, "v"), 0);
                cr_assert_geq(sd_bus_message_read(reply, "v", "u", &flags[i]), 0);
                cr_assert_geq(sd_bus_message_skip(reply, "v"), 0);
                cr_assert_geq(sd_bus_message_exit_container(reply), 0);
                cr_assert_geq(sd_bus_message_exit_container(reply), 0);
        }
        cr_assert_eq(flags[0], 0, "no AllowUserInteraction unless the caller allows it");
        cr_assert_eq(flags[1], 1, "AllowUserInteraction when the caller allows it");
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
}

Test(polkit, concurrent_kicks_of_one_sender_share_one_check) {
        char results[8192];
        struct timespec before, after;
        char path[PATH_MAX + 32];
        struct stat st;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SetAllowed", "as", 1, ACTION);
        /* Slow polkit, so that all the calls arrive while the first check is in flight. */
        harness_polkit_call(&h, "SetDelay", "d", 0.5);
        harness_start_daemon(&h, NULL);

        cr_assert_eq(harness_kick_as_nobody(&h, 50, false, results, sizeof results), 50, "%s", results);
        cr_assert_eq(harness_polkit_checks(&h), 1, "50 concurrent kicks of one sender, one polkit call");
        cr_assert_eq(harness_knob(&h, "pages_to_scan"), 10000);

        /* A second storm once aggressive: authorized again (no caching), and no sysfs write. */
        snprintf(path, sizeof path, "%s/pages_to_scan", h.ksm_dir);
        cr_assert_eq(stat(path, &st), 0);
        before = st.st_mtim;
        usleep(20 * 1000);
        cr_assert_eq(harness_kick_as_nobody(&h, 50, false, results, sizeof results), 50, "%s", results);
        cr_assert_eq(harness_polkit_checks(&h), 2, "grants are not cached: a new storm asks again");
        cr_assert_eq(stat(path, &st), 0);
        after = st.st_mtim;
        cr_assert(before.tv_sec == after.tv_sec && before.tv_nsec == after.tv_nsec, "pages_to_scan was rewritten");
}

Test(polkit, caller_disconnecting_while_pending_is_harmless) {
        const char *kick_and_leave[] = { "busctl", "call", "--timeout=0.2", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                         "org.kata.KsmThrottler", "Kick", NULL };
        char output[4096], state[32];
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SetAllowed", "as", 1, ACTION);
        harness_polkit_call(&h, "SimulateHang", "b", 1);
        harness_start_daemon(&h, NULL);

        /* busctl gives up after 0.2 s and disconnects while polkit still holds the check. */
        cr_assert_neq(harness_run(&h, true, output, sizeof output, kick_and_leave), 0, "%s", output);
        harness_polkit_call(&h, "ReleaseHangingCalls", "");
        bus = harness_bus(&h);
        /* The daemon is alive and did the authorized kick, though nobody hears the answer. */
        cr_assert(harness_wait_state(bus, "aggressive", 10));
        harness_get_state(bus, state, sizeof state);
        sd_bus_flush_close_unref(bus);
        /* Clean exit (under ASan this also proves nothing leaked). */
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
}
