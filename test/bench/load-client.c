/* SPDX-License-Identifier: Apache-2.0 */
/* load-client: CLIENTS processes, each making CALLS Kick() calls and CALLS property reads
 * (State, Settings, Statistics in turn) interleaved, against org.kata.KsmThrottler on the
 * system bus. Meanwhile it counts StateChanged signals and, with inotify, the knob files
 * written in KSM_DIR. Prints: calls seconds calls_per_sec errors state_changes knob_writes */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ksmt-client.h"

static double now_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int client(unsigned calls) {
        static const char *const properties[] = { "State", "Settings", "Statistics" };
        sd_bus *bus = NULL;
        unsigned errors = 0;

        if (ksmt_bus_open(&bus) < 0)
                return 255;
        for (unsigned i = 0; i < calls; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                if (ksmt_kick(bus, 0, 0, &error) < 0)
                        errors++;
                sd_bus_error_free(&error);
                if (sd_bus_get_property(bus, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE,
                                        properties[i % 3], &error, &reply, i % 3 == 0 ? "s" : i % 3 == 1 ? "a{sv}" : "a{sx}") < 0)
                        errors++;
                sd_bus_error_free(&error);
                sd_bus_message_unref(reply);
        }
        sd_bus_flush_close_unref(bus);
        return errors > 254 ? 254 : (int) errors;
}

static int on_state_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        (void) m, (void) ret_error;
        (*(unsigned *) userdata)++;
        return 0;
}

int main(int argc, char *argv[]) {
        unsigned n_clients = argc > 1 ? (unsigned) atoi(argv[1]) : 50, calls = argc > 2 ? (unsigned) atoi(argv[2]) : 200;
        const char *ksm_dir = argc > 3 ? argv[3] : NULL;
        unsigned state_changes = 0, knob_writes = 0, errors = 0, running = n_clients;
        int inotify_fd = -1;
        sd_bus *bus = NULL;
        double start, elapsed;

        if (ksmt_bus_open(&bus) < 0 ||
            sd_bus_match_signal(bus, NULL, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE,
                                "StateChanged", on_state_changed, &state_changes) < 0) {
                fprintf(stderr, "load-client: cannot watch the bus\n");
                return 1;
        }
        if (ksm_dir) {
                inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
                if (inotify_fd < 0 || inotify_add_watch(inotify_fd, ksm_dir, IN_CLOSE_WRITE) < 0) {
                        fprintf(stderr, "load-client: cannot watch %s: %s\n", ksm_dir, strerror(errno));
                        return 1;
                }
        }

        start = now_sec();
        for (unsigned i = 0; i < n_clients; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        return 1;
                if (pid == 0)
                        _exit(client(calls));
        }
        while (running > 0) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                if (pid > 0) {
                        running--;
                        errors += WIFEXITED(status) ? (unsigned) WEXITSTATUS(status) : calls * 2;
                        continue;
                }
                while (sd_bus_process(bus, NULL) > 0)
                        ;
                sd_bus_wait(bus, 10 * 1000);
        }
        elapsed = now_sec() - start;
        /* Signals still on their way. */
        for (int i = 0; i < 20; i++) {
                while (sd_bus_process(bus, NULL) > 0)
                        ;
                sd_bus_wait(bus, 10 * 1000);
        }
        if (inotify_fd >= 0) {
                char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                ssize_t n;
                while ((n = read(inotify_fd, buf, sizeof buf)) > 0)
                        for (char *p = buf; p < buf + n; p += sizeof(struct inotify_event) + ((struct inotify_event *) p)->len)
                                knob_writes++;
        }
        printf("%u %.2f %.0f %u %u %u\n", n_clients * calls * 2, elapsed, n_clients * calls * 2 / elapsed, errors,
               state_changes, knob_writes);
        sd_bus_flush_close_unref(bus);
        return errors ? 2 : 0;
}
