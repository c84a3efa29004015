/* SPDX-License-Identifier: Apache-2.0 */
/* The client library's pure parts: the error mapping and the escaping. The calls themselves
 * are tested against the real daemon in test/integration/test-ksmctl.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ksmt-client.h"

static const struct {
        const char *name;
        const char *message;
        int exit_status;
        const char *expected; /* the whole message, for action "kick" */
} error_cases[] = {
        { "org.freedesktop.DBus.Error.ServiceUnknown", "The name is not activatable", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service is not running "
          "(org.freedesktop.DBus.Error.ServiceUnknown)" },
        { "org.freedesktop.DBus.Error.NameHasNoOwner", "", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service is not running "
          "(org.freedesktop.DBus.Error.NameHasNoOwner)" },
        { "org.freedesktop.DBus.Error.Spawn.ChildExited", "Process exited with status 1", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service failed to start: Process exited with status 1 "
          "(org.freedesktop.DBus.Error.Spawn.ChildExited)" },
        /* systemd refusing the start that bus activation asked of it: what ksmctl says when it
         * finds the unit so itself, exit status 3. */
        { "org.freedesktop.systemd1.UnitMasked", "Unit ksm-throttler.service is masked.", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service is not running and its unit "
          "ksm-throttler.service cannot start it: masked (org.freedesktop.systemd1.UnitMasked)" },
        { "org.freedesktop.systemd1.NoSuchUnit", "Unit ksm-throttler.service not found.", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service is not running and its unit "
          "ksm-throttler.service cannot start it: not found (org.freedesktop.systemd1.NoSuchUnit)" },
        { "org.freedesktop.systemd1.LoadFailed", "Unit ksm-throttler.service failed to load properly",
          KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service is not running and its unit "
          "ksm-throttler.service cannot start it: it failed to load: Unit ksm-throttler.service failed to load "
          "properly (org.freedesktop.systemd1.LoadFailed)" },
        { "org.freedesktop.systemd1.BadUnitSetting", "bad", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service is not running and its unit "
          "ksm-throttler.service cannot start it: it failed to load: bad (org.freedesktop.systemd1.BadUnitSetting)" },
        { "org.freedesktop.systemd1.OnlyByDependency", "Operation refused", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service is not running and its unit "
          "ksm-throttler.service cannot start it: it refuses a manual start: Operation refused "
          "(org.freedesktop.systemd1.OnlyByDependency)" },
        { "org.freedesktop.systemd1.ShuttingDown", "Refusing activation, D-Bus is shutting down.",
          KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the system is shutting down: Refusing activation, D-Bus is "
          "shutting down. (org.freedesktop.systemd1.ShuttingDown)" },
        /* Other systemd errors are not about starting the unit. */
        { "org.freedesktop.systemd1.UnitMaskedX", "x", KSMT_EXIT_FAILED,
          "failed to kick: x (org.freedesktop.systemd1.UnitMaskedX)" },
        { KSMT_ERROR_UNIT_NOT_STARTABLE, "its unit is masked", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: its unit is masked" },
        { "org.freedesktop.DBus.Error.NoReply", "Method call timed out", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: Method call timed out (org.freedesktop.DBus.Error.NoReply)" },
        { "org.freedesktop.DBus.Error.Timeout", "t", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: t (org.freedesktop.DBus.Error.Timeout)" },
        { "org.freedesktop.DBus.Error.TimedOut", "t", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: t (org.freedesktop.DBus.Error.TimedOut)" },
        { "org.freedesktop.DBus.Error.Disconnected", "gone", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: gone (org.freedesktop.DBus.Error.Disconnected)" },
        { "org.freedesktop.DBus.Error.AccessDenied", "polkit said no", KSMT_EXIT_ACCESS_DENIED,
          "not allowed to kick: polkit said no" },
        { "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", "ask", KSMT_EXIT_ACCESS_DENIED,
          "not allowed to kick: ask" },
        { "org.kata.KsmThrottler.Error.KsmUnavailable", "pages_to_scan: No such file", KSMT_EXIT_KSM_UNAVAILABLE,
          "KSM unavailable: pages_to_scan: No such file" },
        { "org.freedesktop.DBus.Error.Failed", "disk full", KSMT_EXIT_FAILED,
          "failed to kick: disk full (org.freedesktop.DBus.Error.Failed)" },
        /* A prefix entry matches only below it, not a longer name. */
        { "org.freedesktop.DBus.Error.SpawnX", "x", KSMT_EXIT_FAILED,
          "failed to kick: x (org.freedesktop.DBus.Error.SpawnX)" },
        /* Text from the bus is escaped. */
        { "org.freedesktop.DBus.Error.AccessDenied", "\033[2Jno\nmore", KSMT_EXIT_ACCESS_DENIED,
          "not allowed to kick: \\x1b[2Jno\\nmore" },
};

Test(ksmt_client, every_error_maps_to_its_exit_status_and_message) {
        for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                char message[1024];
                int r = sd_bus_error_set(&error, error_cases[i].name, error_cases[i].message);

                cr_assert_lt(r, 0);
                cr_assert_eq(ksmt_error_status(&error, r), error_cases[i].exit_status, "%s", error_cases[i].name);
                cr_assert_eq(ksmt_error_message("kick", &error, r, message, sizeof message), error_cases[i].exit_status,
                             "%s", error_cases[i].name);
                cr_assert_str_eq(message, error_cases[i].expected);
                sd_bus_error_free(&error);
        }
}

Test(ksmt_client, local_failures_map_by_errno) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char message[256];

        cr_assert_eq(ksmt_error_message("kick", &error, -ETIMEDOUT, message, sizeof message), KSMT_EXIT_NOT_RUNNING);
        cr_assert_str_eq(message, "cannot reach ksm-throttler on the system bus: no reply in time");
        cr_assert_eq(ksmt_error_message("kick", &error, -ECONNRESET, message, sizeof message), KSMT_EXIT_NOT_RUNNING);
        cr_assert_eq(ksmt_error_message("read the status", &error, -ENOMEM, message, sizeof message),
                     KSMT_EXIT_FAILED);
        cr_assert_str_eq(message, "failed to read the status: Cannot allocate memory");
}

Test(ksmt_client, escape_leaves_text_and_escapes_controls) {
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "aggressive", "aggressive" },
                { "", "" },
                { "a\\b", "a\\\\b" },
                { "\033]0;x\007", "\\x1b]0;x\\x07" },
                { "line\nnext\ttab\rcr\x7f", "line\\nnext\\ttab\\rcr\\x7f" },
                { "\xc2\x9b" "2J", "\\u009b2J" },       /* C1 CSI in UTF-8 */
                { "caf\xc3\xa9 \xc2\xa0", "caf\xc3\xa9 \xc2\xa0" }, /* other UTF-8 passes */
                { "\001\001\001", "\\x01\\x01\\x01" },    /* the longest growth, 4 for 1 */
        };

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char *escaped = ksmt_escape(cases[i].in);
                cr_assert_not_null(escaped);
                cr_assert_str_eq(escaped, cases[i].out);
                free(escaped);
        }
}

Test(ksmt_client, saved_bytes_is_general_profit) {
        struct ksmt_counter items[] = { { (char *) "pages_sharing", 5000 }, { (char *) "general_profit", -4096 } };
        struct ksmt_counters with = { items, 2 }, without = { items, 1 };
        int64_t saved = 0;

        cr_assert_eq(ksmt_saved_bytes(&with, &saved), 0);
        cr_assert_eq(saved, -4096, "saved must be general_profit, negative included");
        cr_assert_eq(ksmt_saved_bytes(&without, &saved), -ENOENT);
}

Test(ksmt_client, unit_verdicts_have_names) {
        for (int v = KSMT_UNIT_UNKNOWN; v <= KSMT_UNIT_CONDITION_FAILED; v++)
                cr_assert_str_neq(ksmt_unit_verdict_to_string(v), "unknown", "verdict %d", v);
        cr_assert_str_eq(ksmt_unit_verdict_to_string(KSMT_UNIT_MASKED), "masked");
}
