/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ksmctl against the real daemon on a private system-like bus. What ksmctl says when the
 * service is not running and systemd will not start its unit (masked, failed, skipped by a start
 * condition) is checked against the real systemd in the end-to-end suite, test/e2e/run.sh.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "ksmt-client.h"

static struct harness h;

HARNESS_SUITE(ksmctl, h, NULL, 60);

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

/* Reads the file at path into buf (always terminated). */
static void read_text(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        size_t n = f ? fread(buf, 1, size - 1, f) : 0;

        if (f)
                fclose(f);
        buf[n] = '\0';
}

/* Waits (bounded, so that a broken build fails instead of hanging) until path holds text. */
static bool wait_for_text(const char *path, const char *text, char *buf, size_t size) {
        for (int i = 0; i < 1000; i++) {
                read_text(path, buf, size);
                if (strstr(buf, text))
                        return true;
                usleep(10 * 1000);
        }
        return false;
}

/* The unique name of the connection that process pid holds on the bus. */
static void unique_name_of(sd_bus *bus, pid_t pid, char *buf, size_t size) {
        for (int attempt = 0; attempt < 500; attempt++) {
                sd_bus_message *reply = NULL;
                const char *name;

                cr_assert_geq(sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                 "org.freedesktop.DBus", "ListNames", NULL, &reply, ""), 0);
                cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "s"), 0);
                while (sd_bus_message_read(reply, "s", &name) > 0) {
                        sd_bus_message *owner_pid = NULL;
                        uint32_t p = 0;

                        if (name[0] != ':')
                                continue;
                        if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                               "org.freedesktop.DBus", "GetConnectionUnixProcessID", NULL, &owner_pid,
                                               "s", name) >= 0)
                                (void) sd_bus_message_read(owner_pid, "u", &p);
                        sd_bus_message_unref(owner_pid);
                        if (p == (uint32_t) pid) {
                                snprintf(buf, size, "%s", name);
                                sd_bus_message_unref(reply);
                                return;
                        }
                }
                sd_bus_message_unref(reply);
                usleep(10 * 1000);
        }
        cr_assert_fail("process %d has no connection on the bus", (int) pid);
}

/* Sends a signal from uid 65534 with real busctl, addressed to destination only. */
static void emit_as_nobody(const char *destination, const char *path, const char *interface, const char *member,
                           const char *signature, const char *arg1, const char *arg2, const char *arg3) {
        char destination_arg[128], output[4096];
        const char *argv[] = { "busctl", "--system", "emit", destination_arg, path, interface, member, signature,
                               arg1, arg2, arg3, NULL };

        snprintf(destination_arg, sizeof destination_arg, "--destination=%s", destination);
        cr_assert_eq(harness_run(&h, true, output, sizeof output, argv), 0, "busctl emit failed: %s", output);
}

static pid_t start_monitor(const char *output_path, const char *option) {
        const char *argv[] = { KSMCTL_PATH, "monitor", option, NULL };
        return harness_spawn(&h, false, output_path, argv);
}

static int stop_monitor(pid_t pid) {
        int status;

        kill(pid, SIGINT);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Test(ksmctl, monitor_ignores_spoofed_signals) {
        char path[PATH_MAX + 32], output[8192], monitor_name[256];
        sd_bus *bus;
        pid_t pid;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        snprintf(path, sizeof path, "%s/monitor.out", h.dir);
        pid = start_monitor(path, NULL);
        cr_assert(wait_for_text(path, "(current)", output, sizeof output), "monitor printed no state: %s", output);

        bus = harness_bus(&h);
        unique_name_of(bus, pid, monitor_name, sizeof monitor_name);
        /* Any local user can address a signal to monitor's unique name, with escape sequences. */
        emit_as_nobody(monitor_name, "/org/kata/KsmThrottler", "org.kata.KsmThrottler", "StateChanged", "ss",
                       "\033[2J\033]0;spoofed\007aggressive", "initial", NULL);
        emit_as_nobody(monitor_name, "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged", "sss",
                       "org.kata.KsmThrottler", ":1.1", "");
        /* The genuine change comes after the forgeries, from the same bus: once it shows, the
         * forgeries have been read too. */
        harness_kick(bus);
        bool shown = wait_for_text(path, " aggressive (was initial)\n", output, sizeof output);
        sd_bus_flush_close_unref(bus);
        cr_assert_eq(stop_monitor(pid), 0, "monitor did not exit 0 on SIGINT: %s", output);
        cr_assert(shown, "the real state change is missing: %s", output);

        cr_assert_null(strstr(output, "spoofed"), "monitor printed a spoofed StateChanged:\n%s", output);
        cr_assert_null(strchr(output, '\033'), "monitor printed an escape sequence:\n%s", output);
        cr_assert_null(strstr(output, "stopped"), "monitor believed a spoofed NameOwnerChanged:\n%s", output);
        cr_assert_not_null(strstr(output, " kick (count 1) from uid 0 pid "), "the kick is missing: %s", output);
}

/* A fake daemon (a python3-dbusmock template) that owns the name and answers with hostile text. */
static const char fake_daemon_template[] =
        "import dbus\n"
        "BUS_NAME = 'org.kata.KsmThrottler'\n"
        "MAIN_OBJ = '/org/kata/KsmThrottler'\n"
        "MAIN_IFACE = 'org.kata.KsmThrottler'\n"
        "SYSTEM_BUS = True\n"
        "def load(mock, parameters):\n"
        "    mock.AddProperties(MAIN_IFACE, {\n"
        "        'State': dbus.String('\\x1b[2Jevil\\nstate'),\n"
        "        'Version': dbus.String('1\\x1b]0;title\\x07'),\n"
        "        'Settings': dbus.Dictionary({'\\x1b[31mrun': dbus.UInt32(1)}, signature='sv'),\n"
        "        'Statistics': dbus.Dictionary({'\\x1b[31mgeneral_profit': dbus.Int64(1)}, signature='sx'),\n"
        "        'LastKick': dbus.Struct((dbus.UInt64(5), '\\x1b[31mwhy', 'app\\x07', 'uid 0\\x1b]0;t'), signature='tsss'),\n"
        "    })\n"
        "    mock.AddMethod(MAIN_IFACE, 'KickWithReason', 'ss', '',\n"
        "        \"raise dbus.exceptions.DBusException('\\\\x1b[2Jpages_to_scan: gone', \"\n"
        "        \"name='org.kata.KsmThrottler.Error.KsmUnavailable')\")\n";

static pid_t start_fake_daemon(void) {
        char template_path[PATH_MAX + 32], log_path[PATH_MAX + 32];
        const char *argv[] = { "/usr/bin/python3", "-m", "dbusmock", "--template", template_path, NULL };
        sd_bus *bus = harness_bus(&h);
        FILE *f;
        pid_t pid;
        int r = 0;

        snprintf(template_path, sizeof template_path, "%s/fake_throttler.py", h.dir);
        f = fopen(template_path, "we");
        cr_assert_not_null(f);
        cr_assert_geq(fputs(fake_daemon_template, f), 0);
        cr_assert_eq(fclose(f), 0);

        snprintf(log_path, sizeof log_path, "%s/fake-daemon.log", h.dir);
        pid = harness_spawn(&h, false, log_path, argv);
        for (int i = 0; i < 1000 && (r = ksmt_name_has_owner(bus, "org.kata.KsmThrottler")) == 0; i++)
                usleep(10 * 1000);
        sd_bus_flush_close_unref(bus);
        if (r != 1) {
                char log[4096];
                read_text(log_path, log, sizeof log);
                cr_assert_fail("the fake daemon did not take the name: %s", log);
        }
        return pid;
}

static void stop_fake_daemon(pid_t pid) {
        int status;

        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
}

Test(ksmctl, control_characters_from_the_bus_are_escaped) {
        char output[4096];
        pid_t pid = start_fake_daemon();
        int status_exit = ksmctl(false, output, sizeof output, "status", NULL);
        char status_output[4096];

        snprintf(status_output, sizeof status_output, "%s", output);
        int stats_exit = ksmctl(false, output, sizeof output, "stats", NULL);
        char stats_output[4096];

        snprintf(stats_output, sizeof stats_output, "%s", output);
        int kick_exit = ksmctl(false, output, sizeof output, "kick", NULL);
        stop_fake_daemon(pid);

        cr_assert_eq(status_exit, 0, "%s", status_output);
        cr_assert_null(strchr(status_output, '\033'), "status printed an escape sequence:\n%s", status_output);
        cr_assert_null(strchr(status_output, '\007'), "status printed a BEL:\n%s", status_output);
        cr_assert_not_null(strstr(status_output, "State: \\x1b[2Jevil\\nstate\n"), "%s", status_output);
        cr_assert_not_null(strstr(status_output, "Settings: \\x1b[31mrun=1\n"), "%s", status_output);
        cr_assert_not_null(strstr(status_output, "Last kick: \\x1b[31mwhy by app\\x07 from uid 0\\x1b]0;t\n"), "%s",
                           status_output);
        cr_assert_eq(stats_exit, 0, "%s", stats_output);
        cr_assert_null(strchr(stats_output, '\033'), "stats printed an escape sequence:\n%s", stats_output);
        cr_assert_eq(kick_exit, 5, "%s", output);
        cr_assert_null(strchr(output, '\033'), "kick printed an escape sequence:\n%s", output);
        cr_assert_not_null(strstr(output, "KSM unavailable: \\x1b[2Jpages_to_scan: gone"), "%s", output);
}

/* Runs python code on output (as sys.argv[1]); the assertion message carries both. */
static void assert_python(const char *code, const char *output) {
        const char *argv[] = { "/usr/bin/python3", "-c", code, output, NULL };
        char check[4096];

        cr_assert_eq(harness_run(&h, false, check, sizeof check, argv), 0, "%s\n%s", output, check);
}

Test(ksmctl, monitor_json_prints_one_object_per_line) {
        char path[PATH_MAX + 32], output[8192];
        sd_bus *bus;
        pid_t pid;

        harness_write_fast_config(&h, "300ms", "300ms", "300ms");
        harness_start_daemon(&h, NULL);
        snprintf(path, sizeof path, "%s/monitor.out", h.dir);
        pid = start_monitor(path, "--json");
        cr_assert(wait_for_text(path, "\"previous\":null}\n", output, sizeof output), "no first line: %s", output);

        bus = harness_bus(&h);
        harness_kick(bus);
        uint64_t last_kick = harness_get_u64(bus, "LastKickUSec");
        cr_assert(harness_wait_state(bus, "initial", 20));
        sd_bus_flush_close_unref(bus);
        bool shown = wait_for_text(path, "\"state\":\"initial\",\"previous\":\"slow\"}\n", output, sizeof output);
        cr_assert_eq(stop_monitor(pid), 0, "monitor did not exit 0 on SIGINT: %s", output);
        cr_assert(shown, "the cycle did not end in the output: %s", output);

        char code[2048];
        snprintf(code, sizeof code,
                 "import json, sys\n"
                 "events = [json.loads(line) for line in sys.argv[1].splitlines()]\n"
                 "states = [(e['state'], e['previous']) for e in events if e['event'] == 'state']\n"
                 "assert states == [('initial', None), ('aggressive', 'initial'), ('standard', 'aggressive'),\n"
                 "                  ('slow', 'standard'), ('initial', 'slow')], states\n"
                 "kicks = [e for e in events if e['event'] == 'kick']\n"
                 "assert len(kicks) == 1, kicks\n"
                 "last = kicks[0].pop('last_kick')\n"
                 "assert kicks == [{'event': 'kick', 'time_usec': %llu, 'kick_count': 1, 'kicks': 1}], kicks\n"
                 "assert last['usec'] == kicks[0]['time_usec'], last\n"
                 "assert (last['reason'], last['application_id']) == ('', ''), last\n"
                 "assert last['origin'].startswith('uid 0 pid '), last\n"
                 "assert all(e['time_usec'] > 0 for e in events), events\n"
                 "assert events.index(kicks[0]) < [e.get('state') for e in events].index('aggressive'), events\n",
                 (unsigned long long) last_kick);
        assert_python(code, output);
}

Test(ksmctl, json_short_is_one_line_and_pretty_is_the_same_object) {
        char short_output[4096], pretty_output[4096], plain_output[4096];

        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        cr_assert_eq(ksmctl(false, short_output, sizeof short_output, "stats", "--json=short"), 0, "%s", short_output);
        cr_assert_eq(ksmctl(false, plain_output, sizeof plain_output, "stats", "--json"), 0, "%s", plain_output);
        cr_assert_eq(ksmctl(false, pretty_output, sizeof pretty_output, "stats", "--json=pretty"), 0, "%s",
                     pretty_output);

        cr_assert_str_eq(short_output, plain_output, "--json is --json=short");
        cr_assert_eq(strchr(short_output, '\n'), short_output + strlen(short_output) - 1,
                     "--json=short is not one line: %s", short_output);
        cr_assert_gt(strlen(pretty_output), strlen(short_output), "pretty is not indented: %s", pretty_output);

        char code[8192];
        snprintf(code, sizeof code,
                 "import json, sys\n"
                 "short = json.loads(sys.argv[1])\n"
                 "pretty = json.loads('''%s''')\n"
                 "assert short == pretty, (short, pretty)\n"
                 "assert short['pages_sharing'] == 5000 and short['general_profit'] == 20185088, short\n"
                 "assert len(sys.argv[1].splitlines()) == 1\n",
                 pretty_output);
        assert_python(code, short_output);
        cr_assert_eq(ksmctl(false, pretty_output, sizeof pretty_output, "status", "--json=pretty"), 0, "%s",
                     pretty_output);
        cr_assert_not_null(strstr(pretty_output, "\n  \"state\": \"initial\",\n"), "%s", pretty_output);
}

Test(ksmctl, help_lists_every_verb) {
        char output[4096];
        const char *verbs[] = { "kick", "status", "stats", "monitor", "help" };

        cr_assert_eq(ksmctl(false, output, sizeof output, "help", NULL), 0, "%s", output);
        for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
                char line[64];
                snprintf(line, sizeof line, "\n  %s ", verbs[i]);
                cr_assert_not_null(strstr(output, line), "help lacks %s:\n%s", verbs[i], output);
        }
        cr_assert_not_null(strstr(output, "--no-ask-password"), "%s", output);
}

Test(ksmctl, kick_no_block_returns_and_the_kick_lands) {
        char output[4096];
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        cr_assert_eq(ksmctl(false, output, sizeof output, "kick", "--no-block"), 0, "%s", output);
        cr_assert_str_empty(output);
        bus = harness_bus(&h);
        bool aggressive = harness_wait_state(bus, "aggressive", 20);
        sd_bus_flush_close_unref(bus);
        cr_assert(aggressive, "the kick sent with --no-block did not arrive");
        cr_assert_eq(harness_knob(&h, "pages_to_scan"), 10000);
}

Test(ksmctl, kick_timeout_option) {
        char output[4096];
        const char *both[] = { KSMCTL_PATH, "kick", "--no-block", "--timeout=1s", NULL };

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        cr_assert_eq(ksmctl(false, output, sizeof output, "kick", "--timeout=30s"), 0, "%s", output);
        cr_assert_eq(harness_knob(&h, "pages_to_scan"), 10000);

        cr_assert_eq(ksmctl(false, output, sizeof output, "kick", "--timeout=soon"), 2, "%s", output);
        cr_assert_not_null(strstr(output, "invalid --timeout 'soon'"), "%s", output);
        cr_assert_eq(ksmctl(false, output, sizeof output, "kick", "--timeout=0"), 2, "%s", output);
        cr_assert_eq(ksmctl(false, output, sizeof output, "status", "--timeout=1s"), 2, "%s", output);
        cr_assert_not_null(strstr(output, "--timeout is not valid with status"), "%s", output);
        cr_assert_eq(harness_run(&h, false, output, sizeof output, both), 2, "%s", output);
}

Test(ksmctl, usage_errors_for_the_new_options) {
        char output[4096];

        cr_assert_eq(ksmctl(false, output, sizeof output, "status", "--json=yaml"), 2, "%s", output);
        cr_assert_not_null(strstr(output, "invalid --json mode 'yaml'"), "%s", output);
        cr_assert_eq(ksmctl(false, output, sizeof output, "status", "--no-block"), 2, "%s", output);
        cr_assert_eq(ksmctl(false, output, sizeof output, "monitor", "--no-ask-password"), 2, "%s", output);
        cr_assert_eq(ksmctl(false, output, sizeof output, "kick", "--timeout"), 2, "%s", output);
        cr_assert_not_null(strstr(output, "needs a value"), "%s", output);
        /* What was typed is quoted back, control characters escaped. */
        cr_assert_eq(ksmctl(false, output, sizeof output, "\033[2Jkick", NULL), 2, "%s", output);
        cr_assert_null(strchr(output, '\033'), "%s", output);
        cr_assert_not_null(strstr(output, "unknown command '\\x1b[2Jkick'"), "%s", output);
}

/* The flags of each CheckAuthorization the polkit mock received, in order, into flags[]. */
static size_t polkit_check_flags(uint32_t *flags, size_t max) {
        sd_bus *bus = harness_bus(&h);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(bus, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                               "org.freedesktop.DBus.Mock", "GetMethodCalls", &error, &reply, "s", "CheckAuthorization");
        cr_assert_geq(r, 0, "GetMethodCalls: %s", error.message);
        cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "(tav)"), 0);
        while (n < max && sd_bus_message_enter_container(reply, 'r', "tav") > 0) {
                cr_assert_geq(sd_bus_message_skip(reply, "t"), 0);
                cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "v"), 0);
                /* subject, action_id, details, flags, cancellation_id */
                cr_assert_geq(sd_bus_message_skip(reply, "vvv"), 0);
                cr_assert_geq(sd_bus_message_read(reply, "v", "u", &flags[n]), 0);
                cr_assert_geq(sd_bus_message_skip(reply, "v"), 0);
                cr_assert_geq(sd_bus_message_exit_container(reply), 0);
                cr_assert_geq(sd_bus_message_exit_container(reply), 0);
                n++;
        }
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return n;
}

Test(ksmctl, a_kick_on_a_terminal_allows_interactive_authorization_unless_told_not_to) {
        /* script(1) gives ksmctl a terminal on standard input, as a person at a shell has. */
        const char *on_terminal[] = { "script", "-qec", KSMCTL_PATH " kick", "/dev/null", NULL };
        const char *on_terminal_no_ask[] = { "script", "-qec", KSMCTL_PATH " kick --no-ask-password", "/dev/null", NULL };
        const char *in_a_script[] = { KSMCTL_PATH, "kick", NULL };
        char output[4096];
        uint32_t flags[8];

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SetAllowed", "as", 1, "org.kata.ksmthrottler.kick");
        harness_start_daemon(&h, NULL);

        cr_assert_eq(harness_run(&h, true, output, sizeof output, on_terminal), 0, "%s", output);
        cr_assert_eq(harness_run(&h, true, output, sizeof output, on_terminal_no_ask), 0, "%s", output);
        cr_assert_eq(harness_run(&h, true, output, sizeof output, in_a_script), 0, "%s", output);

        cr_assert_eq(polkit_check_flags(flags, 8), 3, "one polkit check per kick expected");
        cr_assert_eq(flags[0], 1, "on a terminal, polkit was not allowed to ask (flags %u)", flags[0]);
        cr_assert_eq(flags[1], 0, "with --no-ask-password, polkit was allowed to ask (flags %u)", flags[1]);
        cr_assert_eq(flags[2], 0, "without a terminal, polkit was allowed to ask (flags %u)", flags[2]);
}

Test(ksmctl, monitor_json_reports_the_daemon_stopping) {
        char path[PATH_MAX + 32], output[8192];
        pid_t pid;

        harness_write_config(&h, "");
        harness_start_daemon(&h, NULL);
        snprintf(path, sizeof path, "%s/monitor.out", h.dir);
        pid = start_monitor(path, "--json=short");
        cr_assert(wait_for_text(path, "\"previous\":null}\n", output, sizeof output), "no first line: %s", output);
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        bool shown = wait_for_text(path, "\"event\":\"service\"", output, sizeof output);
        cr_assert_eq(stop_monitor(pid), 0, "monitor did not exit 0 on SIGINT: %s", output);
        cr_assert(shown, "no service event: %s", output);
        assert_python("import json, sys\n"
                      "events = [json.loads(line) for line in sys.argv[1].splitlines()]\n"
                      "assert events[-1]['event'] == 'service' and events[-1]['running'] is False, events\n",
                      output);
}

Test(ksmctl, kick_reason_and_app_id_show_in_status_and_monitor) {
        const char *kick[] = { KSMCTL_PATH, "kick", "--reason=machine qemu-1 (vm) registered\x1b[2J", "--app-id=libvirt-hook",
                               NULL };
        const char *plain[] = { KSMCTL_PATH, "kick", NULL };
        const char *json[] = { KSMCTL_PATH, "status", "--json", NULL };
        char path[PATH_MAX + 32], output[8192], status[8192];
        pid_t pid;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        snprintf(path, sizeof path, "%s/monitor.out", h.dir);
        pid = start_monitor(path, NULL);
        cr_assert(wait_for_text(path, "(current)", output, sizeof output), "monitor printed no state: %s", output);

        cr_assert_eq(harness_run(&h, false, output, sizeof output, kick), 0, "%s", output);
        bool shown = wait_for_text(path, "by libvirt-hook from uid 0 pid ", output, sizeof output);
        cr_assert_eq(stop_monitor(pid), 0, "monitor did not exit 0 on SIGINT: %s", output);
        cr_assert(shown, "monitor did not show the kick's reason and origin:\n%s", output);
        cr_assert_not_null(strstr(output, "kick (count 1): machine qemu-1 (vm) registered\\x1b[2J by libvirt-hook"),
                           "monitor must show the reason, escaped:\n%s", output);
        cr_assert_null(strchr(output, '\033'), "monitor printed an escape sequence:\n%s", output);

        cr_assert_eq(ksmctl(false, status, sizeof status, "status", NULL), 0, "%s", status);
        cr_assert_not_null(strstr(status, "Last kick: machine qemu-1 (vm) registered\\x1b[2J by libvirt-hook from uid 0 pid "),
                           "status must show the last kick:\n%s", status);
        cr_assert_null(strchr(status, '\033'), "status printed an escape sequence:\n%s", status);

        /* Without options: no reason, application ID "ksmctl". */
        cr_assert_eq(harness_run(&h, false, output, sizeof output, plain), 0, "%s", output);
        cr_assert_eq(harness_run(&h, false, status, sizeof status, json), 0, "%s", status);
        assert_python("import json, sys\n"
                      "k = json.loads(sys.argv[1])['last_kick']\n"
                      "assert (k['reason'], k['application_id']) == ('', 'ksmctl'), k\n"
                      "assert k['origin'].startswith('uid 0 pid '), k\n",
                      status);
}

Test(ksmctl, overlong_reason_is_a_usage_error) {
        char reason[300] = "--reason=", output[4096];
        memset(reason + 9, 'r', 257);
        reason[9 + 257] = '\0';
        cr_assert_eq(ksmctl(false, output, sizeof output, "kick", reason), 2, "%s", output);
        cr_assert_not_null(strstr(output, "--reason is 257 bytes long; at most 256"), "%s", output);
        cr_assert_eq(ksmctl(false, output, sizeof output, "status", "--app-id=x"), 2, "%s", output);
        cr_assert_not_null(strstr(output, "--app-id is not valid with status"), "%s", output);
}
