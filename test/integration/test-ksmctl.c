/* SPDX-License-Identifier: Apache-2.0 */
/* ksmctl against the real daemon on a private system-like bus. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct harness h;

static void setup(void) {
        harness_setup(&h, NULL);
}

static void teardown(void) {
        harness_teardown(&h);
}

TestSuite(ksmctl, .init = setup, .fini = teardown, .timeout = 60);

static int ksmctl(bool as_nobody, char *output, size_t size, const char *verb, const char *option) {
        const char *argv[] = { KSMCTL_PATH, verb, option, NULL };
        return harness_run(&h, as_nobody, output, size, argv);
}

Test(ksmctl, kick_then_status_shows_aggressive) {
        char output[4096];

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        cr_assert_eq(ksmctl(false, output, sizeof output, "kick", NULL), 0, "%s", output);
        cr_assert_eq(harness_knob(&h, "pages_to_scan"), 10000);

        cr_assert_eq(ksmctl(false, output, sizeof output, "status", NULL), 0, "%s", output);
        cr_assert_not_null(strstr(output, "State: aggressive\n"), "%s", output);
        cr_assert_not_null(strstr(output, "Settings: run=1 pages_to_scan=10000 sleep_millisecs=1\n"), "%s", output);
        cr_assert_not_null(strstr(output, "Host settings: run=0 pages_to_scan=100 sleep_millisecs=20\n"), "%s", output);
        /* general_profit 20185088 bytes in the fake directory. */
        cr_assert_not_null(strstr(output, "Saved: 19.2 MiB\n"), "%s", output);
        cr_assert_not_null(strstr(output, "Next transition: in "), "%s", output);
        cr_assert_not_null(strstr(output, "Kicks: 1 (last "), "%s", output);
}

Test(ksmctl, status_json_is_one_object) {
        const char *validate[] = { "/usr/bin/python3", "-c",
                                   "import json, sys\n"
                                   "d = json.loads(sys.argv[1])\n"
                                   "assert d['state'] == 'initial', d\n"
                                   "assert d['settings'] == {'run': 0, 'pages_to_scan': 100, 'sleep_millisecs': 20}, d\n"
                                   "assert d['initial_settings'] == d['settings'], d\n"
                                   "assert d['next_transition_usec'] == 0 and d['kick_count'] == 0, d\n"
                                   "assert d['saved_bytes'] == 20185088, d\n",
                                   NULL, NULL };
        char output[4096], check[4096];

        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        cr_assert_eq(ksmctl(false, output, sizeof output, "status", "--json"), 0, "%s", output);
        validate[3] = output;
        cr_assert_eq(harness_run(&h, false, check, sizeof check, validate), 0, "%s\n%s", output, check);
}

Test(ksmctl, stats_lists_counters) {
        char output[4096];

        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        cr_assert_eq(ksmctl(false, output, sizeof output, "stats", NULL), 0, "%s", output);
        cr_assert_not_null(strstr(output, "pages_sharing: 5000\n"), "%s", output);
        cr_assert_not_null(strstr(output, "full_scans: 7\n"), "%s", output);
        cr_assert_eq(ksmctl(false, output, sizeof output, "stats", "--json"), 0, "%s", output);
        cr_assert_not_null(strstr(output, "\"pages_sharing\":5000"), "%s", output);
}

Test(ksmctl, monitor_prints_each_state_change) {
        const char *argv[] = { KSMCTL_PATH, "monitor", NULL };
        char path[PATH_MAX + 32], output[8192] = "";
        pid_t pid;
        int fd;

        harness_write_fast_config(&h, "300ms", "300ms", "300ms");
        harness_start_daemon(&h, NULL);

        /* monitor runs until interrupted: start it, kick, wait for the cycle, SIGINT it. */
        snprintf(path, sizeof path, "%s/monitor.out", h.dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                setenv("DBUS_SYSTEM_BUS_ADDRESS", h.bus_address, 1);
                dup2(fd, STDOUT_FILENO);
                execv(argv[0], (char **) argv);
                _exit(127);
        }
        close(fd);

        sd_bus *bus = harness_bus(&h);
        /* Wait for monitor's first line, so that it is subscribed before the kick. */
        for (int i = 0; i < 500 && !strstr(output, "(current)"); i++) {
                FILE *f = fopen(path, "re");
                size_t n = f ? fread(output, 1, sizeof output - 1, f) : 0;
                if (f)
                        fclose(f);
                output[n] = '\0';
                usleep(10 * 1000);
        }
        harness_kick(bus);
        cr_assert(harness_wait_state(bus, "initial", 20));
        sd_bus_flush_close_unref(bus);
        usleep(200 * 1000);
        kill(pid, SIGINT);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "monitor did not exit 0 on SIGINT");

        FILE *f = fopen(path, "re");
        size_t n = fread(output, 1, sizeof output - 1, f);
        fclose(f);
        output[n] = '\0';
        const char *expected[] = { " initial (current)\n", " aggressive (was initial)\n", " standard (was aggressive)\n",
                                   " slow (was standard)\n", " initial (was slow)\n" };
        const char *at = output;
        for (size_t i = 0; i < 5; i++) {
                const char *found = strstr(at, expected[i]);
                cr_assert_not_null(found, "line \"%s\" missing or out of order in:\n%s", expected[i], output);
                at = found + strlen(expected[i]);
        }
}

Test(ksmctl, exit_3_when_the_service_is_not_running) {
        char output[4096];
        cr_assert_eq(ksmctl(false, output, sizeof output, "status", NULL), 3, "%s", output);
        cr_assert_not_null(strstr(output, "not running"), "%s", output);
        cr_assert_eq(ksmctl(false, output, sizeof output, "kick", NULL), 3, "%s", output);
}

Test(ksmctl, exit_4_when_access_is_denied) {
        char output[4096];
        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        cr_assert_eq(ksmctl(true, output, sizeof output, "kick", NULL), 4, "%s", output);
        cr_assert_not_null(strstr(output, "not allowed to kick"), "%s", output);
        cr_assert_eq(harness_knob(&h, "run"), 0);
}

Test(ksmctl, exit_5_when_ksm_is_unavailable) {
        char output[4096], path[PATH_MAX + 16];
        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        snprintf(path, sizeof path, "%s/pages_to_scan", h.ksm_dir);
        cr_assert_eq(unlink(path), 0);
        cr_assert_eq(mkdir(path, 0755), 0);
        cr_assert_eq(ksmctl(false, output, sizeof output, "kick", NULL), 5, "%s", output);
        cr_assert_not_null(strstr(output, "KSM unavailable"), "%s", output);
        cr_assert_not_null(strstr(output, "pages_to_scan"), "%s", output);
}

Test(ksmctl, exit_2_on_usage_errors) {
        char output[4096];
        cr_assert_eq(ksmctl(false, output, sizeof output, "frobnicate", NULL), 2, "%s", output);
        cr_assert_eq(ksmctl(false, output, sizeof output, "kick", "--json"), 2, "%s", output);
}
