/* SPDX-License-Identifier: Apache-2.0 */
/* What an unprivileged local user (uid 65534) must not be able to do to the daemon:
 * stop it, exhaust its fds or memory, hold root up, or forge polkit's verdict; and the
 * edges of start-up and shutdown that such a user or a stuck bus can reach. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "parse-util.h"

#define ACTION "org.kata.ksmthrottler.kick"
#define HOSTILE_CLIENT SOURCE_ROOT "/test/integration/hostile-client.py"

/* Kept in step with the limits in src/authorize.c. */
#define WAITERS_PER_SENDER_MAX 64
#define WAITERS_MAX 512

static struct harness h;

HARNESS_SUITE(hostile, h, NULL, 120);

static void sleep_ms(long ms) {
        struct timespec delay = { ms / 1000, (ms % 1000) * 1000 * 1000 };
        nanosleep(&delay, NULL);
}

static bool daemon_alive(void) {
        return h.daemon_pid > 0 && waitpid(h.daemon_pid, NULL, WNOHANG) == 0;
}

static unsigned daemon_open_fds(void) {
        char path[64];
        unsigned n = 0;
        DIR *d;

        snprintf(path, sizeof path, "/proc/%d/fd", (int) h.daemon_pid);
        d = opendir(path);
        cr_assert_not_null(d, "cannot list %s: %s", path, strerror(errno));
        for (struct dirent *e; (e = readdir(d));)
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

/* The fd limits systemd gives a service by default (LimitNOFILE=1024:524288), for the
 * daemon started next to inherit. */
static void limit_fds_as_systemd_does(void) {
        struct rlimit rl;
        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        rl.rlim_cur = 1024;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static void wait_for_polkit_checks(unsigned n) {
        for (int i = 0; i < 1000 && harness_polkit_checks(&h) < n; i++)
                sleep_ms(10);
        cr_assert_geq(harness_polkit_checks(&h), n, "the kick did not reach polkit");
}

static void read_file(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        size_t n = 0;
        cr_assert_not_null(f, "cannot read %s: %s", path, strerror(errno));
        n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
}

/* Kick() carrying unix fds: the daemon never needs them, so it must not take them.
 * 400 messages of 16 fds each once filled its fd table, the kernel cut the control
 * data (MSG_CTRUNC), sd-bus dropped the connection and the daemon exited. */
Test(hostile, a_burst_of_kicks_carrying_fds_does_not_stop_the_daemon) {
        const char *const flood[] = { "/usr/bin/python3", HOSTILE_CLIENT, "fds", "400", "16", NULL };
        char output[8192], log[16384], state[32];
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true); /* answers at once: not allowed */
        limit_fds_as_systemd_does();
        harness_start_daemon(&h, NULL);

        harness_run(&h, true, output, sizeof output, flood);
        harness_daemon_log(&h, log, sizeof log);
        cr_assert(daemon_alive(), "the daemon died under a burst of fd-carrying kicks:\n%s\nclient:\n%s", log, output);
        cr_assert_not_null(strstr(output, "sent 400"), "the client could not send its burst:\n%s", output);
        bus = harness_bus(&h);
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "initial", "no unprivileged kick was allowed");
        harness_kick(bus); /* root still can */
        cr_assert_str_eq((harness_get_state(bus, state, sizeof state), state), "aggressive");
        sd_bus_flush_close_unref(bus);
        cr_assert_lt(daemon_open_fds(), 64, "the daemon holds fds that clients sent");
}

/* With polkit hanging, pending kicks once held their messages' fds: 63 × 16 of them
 * filled the 1024-fd table, and root's kick then failed to open the knobs. */
Test(hostile, pending_kicks_carrying_fds_leave_root_able_to_kick) {
        const char *const flood[] = { "/usr/bin/python3", HOSTILE_CLIENT, "fds", "100", "16", NULL };
        char output[8192], log[16384];
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus;
        int r;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SimulateHang", "b", 1);
        limit_fds_as_systemd_does();
        harness_start_daemon(&h, NULL);

        harness_run(&h, true, output, sizeof output, flood);
        cr_assert(daemon_alive(), "the daemon died: %s", output);
        cr_assert_lt(daemon_open_fds(), 64, "pending kicks hold client fds in the daemon");

        bus = harness_bus(&h);
        r = sd_bus_call_method(bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler", "Kick",
                               &error, NULL, NULL);
        harness_daemon_log(&h, log, sizeof log);
        cr_assert_geq(r, 0, "root's kick failed while unprivileged kicks were pending: %s: %s\n%s", error.name,
                      error.message, log);
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        harness_assert_knobs(&h, 1, 10000, 1, "after root's kick");
}

struct flood_result {
        unsigned ok, denied, limited, other;
        char other_line[256];
};

struct pending_kick {
        bool done;
        struct flood_result *result;
};

static int on_flood_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct pending_kick *k = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        (void) ret_error;

        k->done = true;
        if (!e)
                k->result->ok++;
        else if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED))
                k->result->denied++;
        else if (sd_bus_error_has_name(e, SD_BUS_ERROR_LIMITS_EXCEEDED) && e->message &&
                 strstr(e->message, "waiting for polkit"))
                k->result->limited++;
        else {
                k->result->other++;
                snprintf(k->result->other_line, sizeof k->result->other_line, "%s: %s", e->name, e->message ?: "");
        }
        return 0;
}

/* In a child as uid 65534: n_connections connections, each with per_connection Kick()
 * calls in flight at once; the counts of each kind of answer go to out_fd. */
static int flood_child(unsigned n_connections, unsigned per_connection, int out_fd) {
        static struct pending_kick kicks[64][128];
        sd_bus *buses[64] = {};
        struct flood_result result = {};
        unsigned total = n_connections * per_connection, done = 0;

        if (n_connections > 64 || per_connection > 128)
                return 2;
        if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                return 2;
        for (unsigned c = 0; c < n_connections; c++) {
                if (sd_bus_new(&buses[c]) < 0 || sd_bus_set_address(buses[c], h.bus_address) < 0 ||
                    sd_bus_set_bus_client(buses[c], true) < 0 || sd_bus_start(buses[c]) < 0)
                        return 3;
                for (unsigned i = 0; i < per_connection; i++) {
                        kicks[c][i].result = &result;
                        if (sd_bus_call_method_async(buses[c], NULL, "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                                                     "org.kata.KsmThrottler", "Kick", on_flood_reply, &kicks[c][i],
                                                     NULL) < 0)
                                return 4;
                }
        }
        while (done < total) {
                bool progress = false;
                for (unsigned c = 0; c < n_connections; c++)
                        while (sd_bus_process(buses[c], NULL) > 0)
                                progress = true;
                if (!progress)
                        sleep_ms(5);
                done = result.ok + result.denied + result.limited + result.other;
        }
        dprintf(out_fd, "ok=%u denied=%u limited=%u other=%u %s\n", result.ok, result.denied, result.limited,
                result.other, result.other_line);
        for (unsigned c = 0; c < n_connections; c++)
                sd_bus_flush_close_unref(buses[c]);
        return 0;
}

static struct flood_result flood_as_nobody(unsigned n_connections, unsigned per_connection) {
        struct flood_result result = {};
        char output[1024];
        int pipefd[2], status;
        size_t used = 0;
        ssize_t n;
        pid_t pid;

        cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(pipefd[0]);
                _exit(flood_child(n_connections, per_connection, pipefd[1]));
        }
        close(pipefd[1]);
        while ((n = read(pipefd[0], output + used, sizeof output - 1 - used)) > 0)
                used += (size_t) n;
        output[used] = '\0';
        close(pipefd[0]);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the unprivileged client failed (status %d)", status);
        cr_assert_eq(sscanf(output, "ok=%u denied=%u limited=%u other=%u", &result.ok, &result.denied, &result.limited,
                            &result.other),
                     4, "unexpected client output: %s", output);
        cr_assert_eq(result.other, 0, "unexpected answers: %s", output);
        return result;
}

/* While polkit hangs, one sender's kicks beyond its share are answered at once rather
 * than held (and walked on every append). The bus itself lets a connection have 128
 * calls waiting for replies. */
Test(hostile, waiters_for_polkit_are_bounded_per_sender) {
        struct flood_result r;

        harness_write_config(&h, "[Throttler]\nPolkitTimeoutSec=2s\n");
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SimulateHang", "b", 1);
        harness_start_daemon(&h, NULL);

        r = flood_as_nobody(1, WAITERS_PER_SENDER_MAX + 36);
        cr_assert_eq(r.limited, 36,
                     "kicks beyond %d per sender must be refused at once with LimitsExceeded (got %u)",
                     WAITERS_PER_SENDER_MAX, r.limited);
        cr_assert_eq(r.denied, WAITERS_PER_SENDER_MAX, "the held kicks are denied when polkit times out");
        cr_assert_eq(r.ok, 0);
        cr_assert_eq(harness_polkit_checks(&h), 1, "one sender, one polkit call");
        cr_assert_eq(harness_knob(&h, "run"), 0);
}

/* Many connections of one user cannot make the daemon hold more than a fixed number
 * of kicks either. */
Test(hostile, waiters_for_polkit_are_bounded_in_total) {
        struct flood_result r;
        unsigned connections = WAITERS_MAX / WAITERS_PER_SENDER_MAX + 4;

        harness_write_config(&h, "[Throttler]\nPolkitTimeoutSec=3s\n");
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SimulateHang", "b", 1);
        harness_start_daemon(&h, NULL);

        r = flood_as_nobody(connections, WAITERS_PER_SENDER_MAX);
        cr_assert_eq(r.denied, WAITERS_MAX, "at most %d kicks wait for polkit (got %u)", WAITERS_MAX, r.denied);
        cr_assert_eq(r.limited, connections * WAITERS_PER_SENDER_MAX - WAITERS_MAX, "the rest are refused at once");
        cr_assert_eq(r.ok, 0);
        cr_assert(daemon_alive());
}

/* The daemon's unique name, from the bus. */
static void daemon_unique_name(char *buf, size_t size) {
        sd_bus *bus = harness_bus(&h);
        sd_bus_message *reply = NULL;
        const char *owner;

        cr_assert_geq(sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                         "GetNameOwner", NULL, &reply, "s", "org.kata.KsmThrottler"),
                      0);
        cr_assert_geq(sd_bus_message_read(reply, "s", &owner), 0);
        snprintf(buf, size, "%s", owner);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
}

#define POLKIT_POLICY                                                                                                  \
        "  <policy user=\"root\"><allow own=\"org.freedesktop.PolicyKit1\"/></policy>\n"                                 \
        "  <policy context=\"default\"><allow send_destination=\"org.freedesktop.PolicyKit1\"/></policy>\n"


/* A verdict counts only from the current owner of org.freedesktop.PolicyKit1. */
Test(hostile, a_forged_polkit_verdict_is_refused) {
        char unique[128], path[PATH_MAX + 32], output[8192], log[16384];
        const char *const kick[] = { KSMCTL_PATH, "kick", NULL };
        pid_t kicker;
        int status;

        /* As a laxer system bus might: replies nobody asked for pass. */
        harness_restart_bus(&h, POLKIT_POLICY "  <policy context=\"default\">\n"
                                  "    <allow send_type=\"method_return\" send_requested_reply=\"false\"/>\n"
                                  "    <allow receive_type=\"method_return\" receive_requested_reply=\"false\"/>\n"
                                  "  </policy>\n");
        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SimulateHang", "b", 1); /* the real verdict never comes */
        harness_start_daemon(&h, NULL);

        snprintf(path, sizeof path, "%s/kick.out", h.dir);
        kicker = harness_spawn(&h, true, path, kick);
        wait_for_polkit_checks(1);

        daemon_unique_name(unique, sizeof unique);
        const char *const forge[] = { "/usr/bin/python3", HOSTILE_CLIENT, "forge", unique, "1", "200", NULL };
        harness_run(&h, true, output, sizeof output, forge);
        cr_assert_not_null(strstr(output, "forged 200"), "the forger could not send: %s", output);
        /* The forger's Ping is answered after the daemon read every forged reply. */
        cr_assert_not_null(strstr(output, "ping ok"), "%s", output);

        harness_daemon_log(&h, log, sizeof log);
        cr_assert_eq(harness_knob(&h, "run"), 0, "a forged verdict authorized a kick:\n%s", log);
        cr_assert_eq(harness_knob(&h, "pages_to_scan"), 100, "a forged verdict authorized a kick");

        /* The waiting caller is refused, and told why. */
        cr_assert_eq(waitpid(kicker, &status, 0), kicker);
        read_file(path, output, sizeof output);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 4, "ksmctl must report access denied: %s", output);
        cr_assert_not_null(strstr(output, "did not come from polkit"), "%s", output);
        harness_daemon_log(&h, log, sizeof log);
        cr_assert_not_null(strstr(log, "not from polkit"), "the forgery is not logged:\n%s", log);
}

/* Callers still waiting for polkit when the daemon stops hear why. */
Test(hostile, callers_waiting_for_polkit_at_shutdown_are_told_it_is_shutting_down) {
        const char *const kick[] = { KSMCTL_PATH, "kick", NULL };
        char path[PATH_MAX + 32], output[4096];
        pid_t kicker;
        int status;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SimulateHang", "b", 1);
        harness_start_daemon(&h, NULL);

        snprintf(path, sizeof path, "%s/kick.out", h.dir);
        kicker = harness_spawn(&h, true, path, kick);
        wait_for_polkit_checks(1);
        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);

        cr_assert_eq(waitpid(kicker, &status, 0), kicker);
        read_file(path, output, sizeof output);
        cr_assert_not_null(strstr(output, "shutting down"), "the waiting caller was not told: %s", output);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 4, "ksmctl must report access denied: %s", output);
}

/* A bus that accepts the connection but never answers (dbus-daemon stopped) must not
 * make the daemon deaf to SIGTERM while it starts. */
Test(hostile, sigterm_is_handled_while_the_bus_is_frozen_at_start) {
        const char *argv[] = { KSM_THROTTLER_PATH, "--config", h.config, "--ksm-dir", h.ksm_dir, "--meminfo", h.meminfo,
                               "--runtime-dir", h.runtime_dir, NULL };
        char log[8192];
        int status = -1;
        bool exited = false;

        harness_write_config(&h, "");
        cr_assert_eq(kill(h.bus_pid, SIGSTOP), 0);
        h.daemon_pid = harness_spawn(&h, false, h.daemon_log, argv);
        sleep_ms(1000); /* well into its start-up */
        kill(h.daemon_pid, SIGTERM);
        /* Not a timing target: before, the daemon sat out the bus's 25 s call timeout
         * with SIGTERM blocked; 10 s tells a bounded start-up from that. */
        for (int i = 0; i < 1000 && !exited; i++) {
                exited = waitpid(h.daemon_pid, &status, WNOHANG) == h.daemon_pid;
                if (!exited)
                        sleep_ms(10);
        }
        kill(h.bus_pid, SIGCONT);
        harness_daemon_log(&h, log, sizeof log);
        cr_assert(exited, "the daemon ignored SIGTERM while the bus was frozen:\n%s", log);
        h.daemon_pid = 0;
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "SIGTERM during start-up must exit 0 (status %d):\n%s",
                  status, log);
        cr_assert_eq(harness_knob(&h, "run"), 0);
}

static pid_t polkit_pid_on_bus(void) {
        sd_bus *bus = harness_bus(&h);
        sd_bus_message *reply = NULL;
        uint32_t pid = 0;

        for (int i = 0; i < 1000 && pid == 0; i++) {
                if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "GetConnectionUnixProcessID", NULL, &reply, "s", "org.freedesktop.PolicyKit1") >= 0)
                        (void) sd_bus_message_read(reply, "u", &pid);
                reply = sd_bus_message_unref(reply);
                if (pid == 0)
                        sleep_ms(10);
        }
        sd_bus_flush_close_unref(bus);
        cr_assert_gt(pid, 0, "polkit did not appear on the bus");
        return (pid_t) pid;
}

/* As on Debian, polkit is started by the bus on the first call and may be restarted:
 * the daemon follows its owner, and takes the verdicts of each in turn. */
Test(hostile, verdicts_of_an_activated_and_of_a_restarted_polkit_count) {
        char dir[PATH_MAX], path[PATH_MAX + 64], service[PATH_MAX * 2], extra[PATH_MAX + 512], results[1024];
        FILE *f;

        snprintf(dir, sizeof dir, "%s/services", h.dir);
        cr_assert_eq(mkdir(dir, 0755), 0);
        snprintf(path, sizeof path, "%s/org.freedesktop.PolicyKit1.service", dir);
        snprintf(service, sizeof service,
                 "[D-BUS Service]\nName=org.freedesktop.PolicyKit1\n"
                 "Exec=/usr/bin/env DBUS_SYSTEM_BUS_ADDRESS=unix:path=%s/bus /usr/bin/python3 -m dbusmock --system "
                 "--template polkitd\nUser=root\n",
                 h.dir);
        f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs(service, f);
        cr_assert_eq(fclose(f), 0);
        snprintf(extra, sizeof extra, "%s  <servicedir>%s</servicedir>\n", POLKIT_POLICY, dir);
        harness_restart_bus(&h, extra);

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL); /* polkit is not running yet */

        /* The kick activates polkit; the mock allows nothing, and that verdict is polkit's own. */
        cr_assert_eq(harness_kick_as_nobody(&h, 1, false, results, sizeof results), 0, "%s", results);
        h.polkit_pid = polkit_pid_on_bus();
        cr_assert_not_null(strstr(results, "Not authorized by polkit"), "the activated polkit's verdict was not taken: %s",
                           results);

        /* A new polkit, under a new unique name. */
        kill(h.polkit_pid, SIGTERM);
        /* Not our child (the bus started it): wait until it is gone. */
        for (int i = 0; i < 1000 && kill(h.polkit_pid, 0) == 0; i++)
                sleep_ms(10);
        cr_assert_neq(kill(h.polkit_pid, 0), 0, "the activated polkit did not exit");
        h.polkit_pid = 0;
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SetAllowed", "as", 1, ACTION);
        cr_assert_eq(harness_kick_as_nobody(&h, 1, false, results, sizeof results), 1,
                     "the restarted polkit's verdict was not taken: %s", results);
        cr_assert_eq(harness_knob(&h, "run"), 1);
}

/* --restore learns whether a daemon runs from the runtime directory's lock, not from the
 * bus: a frozen bus must not hold it up. */
Test(hostile, restore_is_not_held_up_by_a_frozen_bus) {
        const char *argv[] = { KSM_THROTTLER_PATH, "--config", h.config, "--ksm-dir", h.ksm_dir, "--meminfo", h.meminfo,
                               "--runtime-dir", h.runtime_dir, "--restore", NULL };
        char output_path[PATH_MAX + 32], output[8192];
        int status = -1;
        bool exited = false;
        pid_t pid;

        harness_write_config(&h, "");
        cr_assert_eq(kill(h.bus_pid, SIGSTOP), 0);
        snprintf(output_path, sizeof output_path, "%s/restore.out", h.dir);
        pid = harness_spawn(&h, false, output_path, argv);
        /* Not a timing target: before, it sat out the bus's 90 s authentication timeout. */
        for (int i = 0; i < 2000 && !exited; i++) {
                exited = waitpid(pid, &status, WNOHANG) == pid;
                if (!exited)
                        sleep_ms(10);
        }
        kill(h.bus_pid, SIGCONT);
        if (!exited) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
        }
        read_file(output_path, output, sizeof output);
        cr_assert(exited, "--restore waited on the frozen bus:\n%s", output);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d:\n%s", status, output);
        cr_assert_not_null(strstr(output, "Nothing to restore"), "%s", output);
}

static unsigned long daemon_status_kb(const char *field) {
        char path[64], line[256];
        unsigned long kb = 0;
        size_t n = strlen(field);
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/status", (int) h.daemon_pid);
        f = fopen(path, "re");
        cr_assert_not_null(f, "cannot read %s: %s", path, strerror(errno));
        while (fgets(line, sizeof line, f))
                if (strncmp(line, field, n) == 0 && line[n] == ':')
                        kb = strtoul(line + n + 1, NULL, 10);
        fclose(f);
        return kb;
}

/* In a child as uid 65534: Kick() flagged NO_REPLY_EXPECTED, round robin over
 * n_connections connections, for seconds. */
static int no_reply_flood_child(unsigned n_connections, double seconds) {
        sd_bus *buses[64] = {};
        struct timespec start, now;

        if (n_connections > 64 || setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
            setresuid(65534, 65534, 65534) < 0)
                return 2;
        for (unsigned c = 0; c < n_connections; c++)
                if (sd_bus_new(&buses[c]) < 0 || sd_bus_set_address(buses[c], h.bus_address) < 0 ||
                    sd_bus_set_bus_client(buses[c], true) < 0 || sd_bus_start(buses[c]) < 0)
                        return 3;
        clock_gettime(CLOCK_MONOTONIC, &start);
        do {
                for (unsigned c = 0; c < n_connections; c++) {
                        for (unsigned i = 0; i < 16; i++) {
                                sd_bus_message *m = NULL;
                                if (sd_bus_message_new_method_call(buses[c], &m, "org.kata.KsmThrottler",
                                                                   "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                                                                   "Kick") < 0 ||
                                    sd_bus_message_set_expect_reply(m, false) < 0 || sd_bus_send(buses[c], m, NULL) < 0)
                                        return 4;
                                sd_bus_message_unref(m);
                        }
                        if (sd_bus_flush(buses[c]) < 0)
                                return 5;
                        while (sd_bus_process(buses[c], NULL) > 0)
                                ;
                }
                clock_gettime(CLOCK_MONOTONIC, &now);
        } while ((double) (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
        for (unsigned c = 0; c < n_connections; c++)
                sd_bus_flush_close_unref(buses[c]);
        return 0;
}

/* Lines of the daemon's log that contain text (the whole file, however long). */
static unsigned count_log_lines(const char *text) {
        char line[4096];
        unsigned n = 0;
        FILE *f = fopen(h.daemon_log, "re");

        cr_assert_not_null(f, "cannot read %s", h.daemon_log);
        while (fgets(line, sizeof line, f))
                n += strstr(line, text) != NULL;
        fclose(f);
        return n;
}

/* The daemon's lines about refusals, of the two kinds each limited on its own: a refused
 * authorization check ("Kick from :1.5 refused by polkit ...", "Kick from :1.5 refused:
 * cannot tell who it is ...") and a refused kick ("Kick from :1.5 (uid ...): <verdict>"). */
struct refusal_lines {
        unsigned checks, kicks;
};

static struct refusal_lines count_refusal_lines(void) {
        struct refusal_lines n = {};
        char line[4096];
        FILE *f = fopen(h.daemon_log, "re");

        cr_assert_not_null(f, "cannot read %s", h.daemon_log);
        while (fgets(line, sizeof line, f)) {
                const char *p = strstr(line, "Kick from ");
                if (!p)
                        continue;
                p += strcspn(p + strlen("Kick from "), " ") + strlen("Kick from ");
                if (strncmp(p, " refused", strlen(" refused")) == 0)
                        n.checks++;
                else
                        n.kicks++;
        }
        fclose(f);
        return n;
}

/* How many lines of one kind of refusal the daemon may log since since_usec (monotonic):
 * 20 per 10 s interval begun. Under valgrind a flood takes the daemon more than one. */
static unsigned refusal_lines_allowed(uint64_t since_usec) {
        return 20 * (unsigned) ((clock_now_usec(CLOCK_MONOTONIC) - since_usec) / (10 * 1000000ULL) + 1);
}

/* Polkit's refusals, one check per connection, and the refused kicks: anyone can cause
 * as many as they like, and each once was a line in the journal. */
Test(hostile, refusals_are_logged_within_a_limit) {
        struct flood_result r;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true); /* allows nothing */
        harness_start_daemon(&h, NULL);

        uint64_t start = clock_now_usec(CLOCK_MONOTONIC);
        r = flood_as_nobody(40, 2);
        cr_assert_eq(r.denied, 80, "every kick should be refused by polkit (%u were)", r.denied);
        struct refusal_lines lines = count_refusal_lines();
        unsigned allowed = refusal_lines_allowed(start);
        cr_assert_leq(lines.checks, allowed, "%u polkit refusals were logged; at most 20 per 10 s (%u) are expected",
                      lines.checks, allowed);
        cr_assert_leq(lines.kicks, allowed, "%u refused kicks were logged; at most 20 per 10 s (%u) are expected",
                      lines.kicks, allowed);
        cr_assert_geq(lines.checks, 1, "the first refusals are logged");
        cr_assert_geq(count_log_lines("not logging further ones for now"), 2,
                      "each limit should say that it drops lines");
}

/* The notices that a sender, or everyone, hit the limit of kicks waiting for polkit are
 * once per polkit check: new connections and new rounds of checks are new notices. */
Test(hostile, notices_of_hit_limits_are_logged_within_a_limit) {
        unsigned limited = 0;

        harness_write_config(&h, "[Throttler]\nPolkitTimeoutSec=1s\n");
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SimulateHang", "b", 1);
        harness_start_daemon(&h, NULL);

        uint64_t start = clock_now_usec(CLOCK_MONOTONIC);
        for (int round = 0; round < 4; round++)
                limited += flood_as_nobody(8, WAITERS_PER_SENDER_MAX + 2).limited;
        unsigned notices = count_log_lines("kicks waiting for polkit; refusing more") +
                           count_log_lines("kicks are waiting for polkit and");
        cr_assert_geq(limited, 4 * 8 * 2, "each round should hit the per-sender limit on every connection");
        unsigned allowed = refusal_lines_allowed(start);
        cr_assert_leq(notices, allowed, "%u notices of hit limits were logged; at most 20 per 10 s (%u) are expected",
                      notices, allowed);
        cr_assert_geq(notices, 1, "hitting a limit is logged");
}

/* Each kick of a connection the daemon did not remember once cost a synchronous
 * question to the bus, during which sd-bus queued whatever else came in: kicks from
 * more connections than it remembers grew that queue (400 MB in 10 s) and held root's
 * calls for the bus's 25 s timeout. */
Test(hostile, kicks_from_many_connections_do_not_pile_up_in_the_daemon) {
        char state[32], log[16384];
        unsigned long before, peak;
        sd_bus *bus;
        int status;
        pid_t pid;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_polkit(&h, true);
        harness_polkit_call(&h, "SimulateHang", "b", 1);
        harness_start_daemon(&h, NULL);
        before = daemon_status_kb("VmRSS");

        uint64_t start = clock_now_usec(CLOCK_MONOTONIC);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
                /* Under valgrind the daemon handles a kick some 50 times slower while the
                 * client is not slowed: 2 s of flood would take longer to drain than the
                 * 25 s root waits. A shorter flood still cycles all 64 connections. */
                _exit(no_reply_flood_child(64, getenv("KSM_THROTTLER_TEST_WRAPPER") ? 0.2 : 2));
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the unprivileged client failed (status %d)", status);

        /* Root is answered (after whatever the bus still holds), and nothing piled up. */
        bus = harness_bus(&h);
        harness_get_state(bus, state, sizeof state);
        sd_bus_flush_close_unref(bus);
        cr_assert_str_eq(state, "initial");
        peak = daemon_status_kb("VmHWM");
        /* Each refused kick is not a line in the journal: the flood above sent thousands. Its
         * connections are gone by the time some are checked, so the bus cannot say who they
         * were: those checks are refused, and logged, within their own limit. */
        struct refusal_lines lines = count_refusal_lines();
        unsigned allowed = refusal_lines_allowed(start);
        cr_assert_leq(lines.kicks, allowed, "the daemon logged %u refused kicks; at most 20 per 10 s (%u) are expected",
                      lines.kicks, allowed);
        cr_assert_leq(lines.checks, allowed,
                      "the daemon logged %u refused authorization checks; at most 20 per 10 s (%u) are expected",
                      lines.checks, allowed);
        cr_assert_geq(lines.kicks, 1, "the first refused kicks are logged");
        harness_daemon_log(&h, log, sizeof log);
#ifndef __SANITIZE_ADDRESS__ /* ASan and valgrind hold freed memory back for a while */
        if (!getenv("KSM_THROTTLER_TEST_WRAPPER"))
                cr_assert_lt(peak - before, 16 * 1024, "the daemon grew from %lu kB to a peak of %lu kB:\n%s", before, peak,
                             log);
#endif
        (void) peak, (void) before;
}
