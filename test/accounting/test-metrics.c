/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics text on fake sysfs and /proc trees. */
#include "fixture.h"
#include "ksm-metrics.h"

static char *render(const struct ksm_metrics_input *in) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        cr_assert_eq(ksm_metrics_write(f, in), 0);
        fclose(f);
        return buf;
}

static void make_ksm(const char *root) {
        fixture_write(root, "ksm/general_profit", "-8192\n");
        fixture_write(root, "ksm/pages_shared", "10\n");
        fixture_write(root, "ksm/pages_sharing", "100\n");
        fixture_write(root, "ksm/ksm_zero_pages", "5\n");
        fixture_write(root, "ksm/full_scans", "42\n");
        /* ksmd is pid 33, a child of kthreadd; utime 150 and stime 50 ticks; a
         * user process named "ksmd" is not it. */
        fixture_write(root, "proc/12/stat", "12 (ksmd) S 1 12 12 0 -1 0 0 0 0 0 999 999 0 0 20 0 1 0\n");
        fixture_write(root, "proc/33/stat", "33 (ksmd) S 2 0 0 0 -1 2097216 0 0 0 0 150 50 0 0 25 5 1 0\n");
}

Test(metrics, kernel_counters_and_ksmd_cpu) {
        char *root = fixture_dir(), ksm[4200], proc[4200];
        make_ksm(root);
        snprintf(ksm, sizeof(ksm), "%s/ksm", root);
        snprintf(proc, sizeof(proc), "%s/proc", root);
        struct ksm_metrics_input in = { .ksm_dir = ksm, .proc_dir = proc, .clock_ticks = 100, .page_size = 4096 };
        char *out = render(&in);
        cr_expect(strstr(out, "\nksm_general_profit_bytes -8192\n"), "general_profit can be negative:\n%s", out);
        cr_expect(strstr(out, "# TYPE ksm_full_scans_total counter\nksm_full_scans_total 42\n"), "%s", out);
        cr_expect(strstr(out, "\nksm_saved_bytes 430080\n"), "(100 + 5) pages × 4096:\n%s", out);
        cr_expect(strstr(out, "\nksm_ksmd_cpu_seconds_total 2.00\n"), "ksmd's 200 ticks at 100 Hz, not the impostor's:\n%s", out);
        cr_expect(!strstr(out, "ksm_pages_volatile"), "a counter the kernel lacks is left out");
        cr_expect(!strstr(out, "ksm_throttler_up"), "nothing about the daemon when it was not asked");
        free(out);
        fixture_remove(root);
}

Test(metrics, throttler_state_is_one_hot) {
        struct ksm_throttler_info t = { .reachable = true, .state = "standard", .kick_count = 7,
                                        .last_kick_usec = 1700000000500000, .n_settings = 1 };
        snprintf(t.settings[0].name, sizeof(t.settings[0].name), "pages_to_scan");
        t.settings[0].value = 1250;
        struct ksm_metrics_input in = { .ksm_dir = "/nonexistent", .throttler = &t, .page_size = 4096 };
        char *out = render(&in);
        cr_expect(strstr(out, "ksm_throttler_up 1\n"), "%s", out);
        cr_expect(strstr(out, "ksm_throttler_state{state=\"initial\"} 0\n"
                              "ksm_throttler_state{state=\"aggressive\"} 0\n"
                              "ksm_throttler_state{state=\"standard\"} 1\n"
                              "ksm_throttler_state{state=\"slow\"} 0\n"),
                  "exactly the current state is 1:\n%s", out);
        cr_expect(strstr(out, "ksm_throttler_kicks_total 7\n"), "%s", out);
        cr_expect(strstr(out, "ksm_throttler_last_kick_timestamp_seconds 1700000000.500000\n"), "%s", out);
        cr_expect(strstr(out, "ksm_throttler_setting{knob=\"pages_to_scan\"} 1250\n"), "%s", out);
        cr_expect(!strstr(out, "ksm_throttler_state_seconds_total"), "time per state only when the daemon gives it");
        free(out);

        struct ksm_throttler_info down = { .reachable = false };
        in.throttler = &down;
        out = render(&in);
        cr_expect(strstr(out, "ksm_throttler_up 0\n") && !strstr(out, "ksm_throttler_state{"),
                  "a daemon that did not answer has no state:\n%s", out);
        free(out);
}

Test(metrics, kicks_by_origin_and_time_per_state_are_counters) {
        struct ksm_throttler_info t = { .reachable = true, .state = "aggressive", .kick_count = 4, .n_kick_origins = 3,
                                        .have_state_seconds = true, .state_seconds = { 86.25, 1.5, 0, 0 } };
        snprintf(t.kick_origins[0].origin, sizeof(t.kick_origins[0].origin), "org.libvirt.hook");
        t.kick_origins[0].count = 2;
        snprintf(t.kick_origins[1].origin, sizeof(t.kick_origins[1].origin), "a\\b\"c");
        t.kick_origins[1].count = 1;
        snprintf(t.kick_origins[2].origin, sizeof(t.kick_origins[2].origin), "other");
        t.kick_origins[2].count = 1;
        struct ksm_metrics_input in = { .ksm_dir = "/nonexistent", .throttler = &t, .page_size = 4096 };
        char *out = render(&in);
        cr_expect(strstr(out, "# TYPE ksm_throttler_kicks_by_origin_total counter\n"
                              "ksm_throttler_kicks_by_origin_total{origin=\"org.libvirt.hook\"} 2\n"
                              "ksm_throttler_kicks_by_origin_total{origin=\"a\\\\b\\\"c\"} 1\n"
                              "ksm_throttler_kicks_by_origin_total{origin=\"other\"} 1\n"),
                  "one counter per origin, in the daemon's order, the label escaped:\n%s", out);
        cr_expect(strstr(out, "# TYPE ksm_throttler_state_seconds_total counter\n"
                              "ksm_throttler_state_seconds_total{state=\"initial\"} 86.250\n"
                              "ksm_throttler_state_seconds_total{state=\"aggressive\"} 1.500\n"
                              "ksm_throttler_state_seconds_total{state=\"standard\"} 0.000\n"
                              "ksm_throttler_state_seconds_total{state=\"slow\"} 0.000\n"),
                  "every state has its seconds, even those never entered:\n%s", out);
        free(out);
}

Test(metrics, per_group_series_are_bounded_and_escaped) {
        struct ksm_group g[] = {
                { .kind = KSM_GROUP_MACHINE, .name = "web \"prod\"", .profit_bytes = 3000, .merging_pages = 3, .mergeable_known = true, .mergeable_bytes = 10 },
                { .kind = KSM_GROUP_SANDBOX, .name = "abc", .profit_bytes = 2000, .merging_pages = 2, .mergeable_known = true, .mergeable_bytes = 20 },
                { .kind = KSM_GROUP_UNIT, .name = "a.service", .profit_bytes = 1000, .merging_pages = 1, .mergeable_known = true, .mergeable_bytes = 30 },
                { .kind = KSM_GROUP_PROCESS, .name = "x[1]", .profit_bytes = -500, .merging_pages = 0, .mergeable_known = false },
        };
        struct ksm_accounting a = { .page_size = 4096, .groups = g, .n_groups = 4 };
        struct ksm_metrics_input in = { .ksm_dir = "/nonexistent", .accounting = &a, .top = 2, .page_size = 4096 };
        char *out = render(&in);
        cr_expect(strstr(out, "ksm_group_profit_bytes{kind=\"machine\",name=\"web \\\"prod\\\"\"} 3000\n"),
                  "quotes in a machine name are escaped:\n%s", out);
        cr_expect(strstr(out, "ksm_group_profit_bytes{kind=\"sandbox\",name=\"abc\"} 2000\n"), "%s", out);
        cr_expect(!strstr(out, "name=\"a.service\""), "only the top 2 groups get their own series:\n%s", out);
        cr_expect(strstr(out, "ksm_group_profit_bytes{kind=\"other\",name=\"other\"} 500\n"), "the rest is summed (1000 - 500):\n%s", out);
        cr_expect(strstr(out, "ksm_group_saved_bytes{kind=\"other\",name=\"other\"} 4096\n"), "%s", out);
        cr_expect(strstr(out, "ksm_group_mergeable_bytes{kind=\"other\",name=\"other\"} 30\n"),
                  "a group whose mergeable size is unknown adds nothing:\n%s", out);
        cr_expect(strstr(out, "ksm_accounting_groups 4\n"), "%s", out);
        free(out);
}
