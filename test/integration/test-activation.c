/* SPDX-License-Identifier: Apache-2.0 */
/* On-demand start (docs/design.md, One instance): a private bus whose configuration has a
 * <servicedir> with an activation file that runs the daemon (such a bus runs Exec=
 * directly), the daemon started by the first Kick, and no call lost on the way. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
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
#include "test-files.h"

static struct harness h;
/* The daemons the bus started for this test (children of dbus-daemon, stopped by PID). */
static pid_t activated[16];
static size_t n_activated;

static void sleep_ms(long ms) {
        struct timespec delay = { ms / 1000, (ms % 1000) * 1000 * 1000 };
        nanosleep(&delay, NULL);
}

static void read_text(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "cannot read %s: %s", path, strerror(errno));
        buf[fread(buf, 1, size - 1, f)] = '\0';
        fclose(f);
}

/* Replaces text's first @KEY@ by value, in place. */
static void replace(char *text, size_t size, const char *key, const char *value) {
        char *at = strstr(text, key);
        char rest[16384];
        cr_assert_not_null(at, "%s missing from a template", key);
        snprintf(rest, sizeof rest, "%s", at + strlen(key));
        cr_assert_lt((size_t) (at - text) + strlen(value) + strlen(rest), size, "template too long");
        sprintf(at, "%s%s", value, rest);
}

/* Where the "service manager" of the serialized suite listens for sd_notify(); -1 if none. */
static int notify_fd = -1;

/* The harness's bus, replaced by one that activates the daemon from test/data's template,
 * with the daemon's log in h.daemon_log. Serialized, each instance starts only once the
 * previous one has exited, and its sd_notify() messages reach notify_fd: what systemd
 * does for a unit, which runs one instance at a time. */
static void setup_bus(bool serialized) {
        char services[PATH_MAX], file[PATH_MAX + 64], exec[6 * PATH_MAX + 256], text[16384], extra[PATH_MAX + 512];

        harness_setup(&h, NULL);
        n_activated = 0;
        harness_write_fast_config(&h, "1h", NULL, NULL);
        snprintf(services, sizeof services, "%s/services", h.dir);
        cr_assert_eq(mkdir(services, 0755), 0);
        /* The daemon's output goes to its log through sh: the bus would keep it otherwise. */
        if (serialized) {
                struct sockaddr_un address = { .sun_family = AF_UNIX };
                int len = snprintf(address.sun_path, sizeof address.sun_path, "%s/notify", h.dir);
                cr_assert(len > 0 && (size_t) len < sizeof address.sun_path, "the notify socket's path is too long");
                notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                cr_assert_geq(notify_fd, 0);
                cr_assert_eq(bind(notify_fd, (struct sockaddr *) &address, sizeof address), 0, "bind %s: %s",
                             address.sun_path, strerror(errno));
                /* flock(1) holds the lock until the daemon it runs has exited. */
                snprintf(exec, sizeof exec,
                         "/bin/sh -c 'exec flock %s/instance.lock env NOTIFY_SOCKET=%s %s --config %s --ksm-dir %s "
                         "--meminfo %s --runtime-dir %s >>%s 2>&1'",
                         h.dir, address.sun_path, KSM_THROTTLER_PATH, h.config, h.ksm_dir, h.meminfo, h.runtime_dir,
                         h.daemon_log);
        } else
                snprintf(exec, sizeof exec,
                         "/bin/sh -c 'exec %s --config %s --ksm-dir %s --meminfo %s --runtime-dir %s >>%s 2>&1'",
                         KSM_THROTTLER_PATH, h.config, h.ksm_dir, h.meminfo, h.runtime_dir, h.daemon_log);
        read_text(SOURCE_ROOT "/test/data/org.kata.KsmThrottler.service.in", text, sizeof text);
        replace(text, sizeof text, "@EXEC@", exec);
        snprintf(file, sizeof file, "%s/org.kata.KsmThrottler.service", services);
        test_write_file(file, text, 0644);

        snprintf(extra, sizeof extra, "  <servicedir>%s</servicedir>\n", services);
        harness_restart_bus(&h, extra);
}

static void setup(void) {
        setup_bus(false);
}

static void setup_serialized(void) {
        setup_bus(true);
}

/* What the daemons told the "service manager": read, so that its queue never fills. */
static unsigned drain_notifications(const char *count) {
        char message[4096];
        unsigned seen = 0;
        ssize_t n;

        while (notify_fd >= 0 && (n = recv(notify_fd, message, sizeof message - 1, MSG_DONTWAIT)) >= 0) {
                message[n] = '\0';
                seen += count && strstr(message, count);
        }
        return seen;
}

static void teardown(void) {
        for (size_t i = 0; i < n_activated; i++)
                if (kill(activated[i], SIGTERM) == 0 && !harness_wait_gone(activated[i], 10))
                        kill(activated[i], SIGKILL);
        if (notify_fd >= 0)
                close(notify_fd);
        notify_fd = -1;
        harness_teardown(&h);
}

TestSuite(activation, .init = setup, .fini = teardown, .timeout = 180);
TestSuite(activation_serialized, .init = setup_serialized, .fini = teardown, .timeout = 180);

/* The PID of the name's owner, remembered for teardown; 0 if none. */
static pid_t owner_pid(sd_bus *bus) {
        pid_t pid = harness_owner_pid(bus);

        if (n_activated < sizeof activated / sizeof activated[0] &&
            pid > 0 && (n_activated == 0 || activated[n_activated - 1] != pid))
                activated[n_activated++] = pid;
        return pid;
}

Test(activation, first_kick_activates_the_daemon_and_succeeds) {
        sd_bus *bus = harness_bus(&h);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char log[8192];
        int r;

        cr_assert_eq(owner_pid(bus), 0, "nothing should have started the daemon yet");
        /* The Kick that starts the daemon is queued by the bus and handed to it as soon as it
         * owns its name: it must find the object there. */
        r = sd_bus_call_method(bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler", "Kick",
                               &error, NULL, NULL);
        harness_daemon_log(&h, log, sizeof log);
        cr_assert_geq(r, 0, "the activating Kick failed: %s: %s\ndaemon log:\n%s", error.name, error.message, log);
        cr_assert_gt(owner_pid(bus), 0, "the Kick should have started the daemon");
        harness_assert_knobs(&h, 1, 10000, 1, "after the activating kick");
        cr_assert_eq(harness_get_u64(bus, "KickCount"), 1, "the activating kick is the daemon's first");
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
}

Test(activation, second_instance_finds_the_lock_and_exits_1) {
        sd_bus *bus = harness_bus(&h);
        char output[8192];

        harness_kick(bus);
        cr_assert_gt(owner_pid(bus), 0);
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, NULL), 1, "a second instance must not run:\n%s", output);
        cr_assert_not_null(strstr(output, "holds the lock on"), "the second instance does not say why:\n%s", output);
        cr_assert_eq(harness_run_daemon(&h, output, sizeof output, "--restore", NULL), 1,
                     "--restore must refuse while the daemon runs:\n%s", output);
        cr_assert_not_null(strstr(output, "ksm-throttler is running"), "%s", output);
        harness_assert_knobs(&h, 1, 10000, 1, "the running cycle is untouched");
        sd_bus_flush_close_unref(bus);
}

static bool log_contains(const char *text) {
        static char log[1 << 16];
        harness_daemon_log(&h, log, sizeof log);
        return strstr(log, text) != NULL;
}

Test(activation, idle_daemon_exits_and_the_next_kick_starts_a_new_one) {
        sd_bus *bus = harness_bus(&h);
        pid_t first, second;

        harness_write_config(&h, "[Throttler]\nIdleExitSec=300ms\nAdaptive=no\n"
                                 "[Aggressive]\nDurationSec=200ms\n[Standard]\nDurationSec=100ms\n[Slow]\nDurationSec=100ms\n");
        harness_kick(bus);
        first = owner_pid(bus);
        cr_assert_gt(first, 0, "the Kick should have started the daemon");
        cr_assert(harness_wait_gone(first, 20), "the daemon did not exit after its cycle and 300 ms idle in initial");
        harness_assert_knobs(&h, 0, 100, 20, "after the idle exit: the host's values");
        cr_assert_eq(owner_pid(bus), 0, "nobody should own the name after the idle exit");
        cr_assert(log_contains("Idle in initial for 300ms: releasing org.kata.KsmThrottler and exiting"),
                  "the idle exit is not logged");

        harness_kick(bus);
        second = owner_pid(bus);
        cr_assert(second > 0 && second != first, "the next Kick should have started a new daemon (%d, was %d)",
                  (int) second, (int) first);
        harness_assert_knobs(&h, 1, 10000, 1, "the new daemon applied the kick");
        cr_assert(harness_wait_gone(second, 20), "the second daemon did not exit when idle");
        harness_assert_knobs(&h, 0, 100, 20, "after the second idle exit");
        sd_bus_flush_close_unref(bus);
}

/* Kicks sent around the moment the daemon decides to exit: after each kick, the next one
 * comes when the cycle (a few ms) and IdleExitSec=100ms are about over, at offsets that
 * sweep the moment of the exit in steps of 250 us. Each kick either reaches the daemon
 * before its name is released (and is handed on to the next instance) or starts the
 * next one; none may fail. Returns how many instances stopped when idle. */
/* What a sweep saw: kicks, failures (and the first one's error), exits of the instance
 * that owned the name, STOPPING=1 notifications. */
struct sweep {
        sd_bus *bus;
        unsigned failed, kicks, exits, stopping;
        char first_failure[1024];
        pid_t last; /* the owner last seen */
};

/* One Kick that must not fail, then who owns the name now. */
static void sweep_kick(struct sweep *w) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        pid_t pid;

        if (sd_bus_call_method(w->bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler", "Kick",
                               &error, NULL, NULL) < 0 &&
            w->failed++ == 0)
                snprintf(w->first_failure, sizeof w->first_failure, "%s: %s", error.name, error.message);
        w->kicks++;
        sd_bus_error_free(&error);
        pid = owner_pid(w->bus);
        if (pid > 0 && pid != w->last) {
                w->exits += w->last > 0;
                w->last = pid;
        }
        w->stopping += drain_notifications("STOPPING=1");
}

static unsigned sweep_kicks_across_idle_exits(unsigned *ret_stopping) {
        struct sweep w = { .bus = harness_bus(&h) };
        sd_bus *bus = w.bus;

        harness_write_config(&h, "[Throttler]\nIdleExitSec=100ms\nAdaptive=no\n"
                                 "[Aggressive]\nDurationSec=1ms\n[Standard]\nDurationSec=1ms\n[Slow]\nDurationSec=1ms\n");
        for (int round = 0; round < 240; round++) {
                struct timespec delay = { 0, (100 + round % 60 / 4) * 1000 * 1000 + (round % 4) * 250 * 1000 };

                if (round % 2 == 0) {
                        harness_kick(bus);
                        w.kicks++;
                        nanosleep(&delay, NULL);
                }
                sweep_kick(&w);
        }
        /* On a loaded machine the sweep may never straddle an exit: end with exits that are
         * certain, so that restarts are always covered. */
        for (int extra = 0; w.exits < 2 && extra < 4; extra++) {
                if (w.last > 0)
                        cr_assert(harness_wait_gone(w.last, 20), "daemon %d did not exit when idle", (int) w.last);
                sweep_kick(&w);
        }
        unsigned failed = w.failed, kicks = w.kicks, exits = w.exits, stopping = w.stopping;
        const char *first_failure = w.first_failure;
        cr_assert_eq(failed, 0, "%u of %u kicks failed; the first: %s", failed, kicks, first_failure);
        /* A kick served by an instance on its way out would be undone by its exit. */
        cr_assert(!log_contains("shutting down"), "an exiting daemon served a kick and then restored the host's values");
        cr_assert_geq(exits, 2, "the daemon should have exited and been started again (%u new instances)", exits);
        /* A kick handed on at the last exit starts one more instance: wait until none has
         * owned the name for half a second. */
        for (int quiet = 0, t = 0; quiet < 50 && t < 3000; t++) {
                pid_t pid = owner_pid(bus);
                quiet = pid > 0 ? 0 : quiet + 1;
                if (pid > 0)
                        cr_assert(harness_wait_gone(pid, 20), "daemon %d did not exit when idle", (int) pid);
                stopping += drain_notifications("STOPPING=1");
                sleep_ms(10);
        }
        for (size_t i = 0; i < n_activated; i++)
                cr_assert(harness_wait_gone(activated[i], 20), "daemon %d did not exit when idle", (int) activated[i]);
        harness_assert_knobs(&h, 0, 100, 20, "after the last idle exit: the host's values");
        sd_bus_flush_close_unref(bus);
        if (ret_stopping)
                *ret_stopping = stopping;
        return exits;
}

Test(activation, kicks_racing_the_idle_exit_never_fail) {
        sweep_kicks_across_idle_exits(NULL);
        cr_assert(!log_contains("handed to the next instance through"), "without a service manager, raced kicks are relayed, not handed over");
}

/* Under a service manager the next instance starts only once this one has exited: a kick
 * that reached an exiting instance cannot be relayed (the relay would wait for an instance
 * that cannot start before the relay ends), so it is handed over through the runtime
 * directory. How often the sweep hits that window varies; none of its kicks may fail. */
Test(activation_serialized, kicks_racing_the_idle_exit_never_fail_under_a_service_manager) {
        unsigned stopping = 0, exits = sweep_kicks_across_idle_exits(&stopping);
        char log[1 << 16];
        unsigned handed = 0;

        harness_daemon_log(&h, log, sizeof log);
        for (const char *p = log; (p = strstr(p, "handed to the next instance through")); p++)
                handed++;
        cr_assert_geq(stopping, exits, "each idle exit tells the service manager STOPPING=1 (%u of %u)", stopping, exits);
        cr_assert(!strstr(log, "handed to the next instance;"), "a kick was relayed under a service manager:\n%s", log);
        fprintf(stderr, "%u instances exited when idle; %u raced kick(s) handed over through the runtime directory\n", exits,
               handed);
}
