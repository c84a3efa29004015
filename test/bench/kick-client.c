/* SPDX-License-Identifier: Apache-2.0 */
/* kick-client: times N sequential calls of Kick() and of org.freedesktop.DBus.Peer.Ping
 * on org.kata.KsmThrottler over the system bus (DBUS_SYSTEM_BUS_ADDRESS), optionally
 * as another uid, and prints "kick_per_sec ping_per_sec errors". */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

static double now_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Calls member n times; returns calls per second, counts failures in *errors. */
static double time_calls(sd_bus *bus, const char *interface, const char *member, unsigned n, unsigned *errors) {
        double start = now_sec();
        for (unsigned i = 0; i < n; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                if (sd_bus_call_method(bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", interface, member, &error,
                                       NULL, NULL) < 0) {
                        if (*errors == 0)
                                fprintf(stderr, "kick-client: %s failed: %s\n", member, error.message);
                        (*errors)++;
                }
                sd_bus_error_free(&error);
        }
        return n / (now_sec() - start);
}

int main(int argc, char *argv[]) {
        unsigned n = argc > 1 ? (unsigned) strtoul(argv[1], NULL, 10) : 10000, errors = 0;
        uid_t uid = argc > 2 ? (uid_t) strtoul(argv[2], NULL, 10) : 0;
        sd_bus *bus = NULL;
        double kicks, pings;
        int r;

        if (uid != 0 && (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)) {
                fprintf(stderr, "kick-client: cannot become uid %u: %s\n", uid, strerror(errno));
                return 1;
        }
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "kick-client: cannot connect to the system bus: %s\n", strerror(-r));
                return 1;
        }
        /* Warm up both paths, then alternate so that both see the same machine state. */
        time_calls(bus, "org.kata.KsmThrottler", "Kick", 10, &errors);
        time_calls(bus, "org.freedesktop.DBus.Peer", "Ping", 10, &errors);
        kicks = time_calls(bus, "org.kata.KsmThrottler", "Kick", n, &errors);
        pings = time_calls(bus, "org.freedesktop.DBus.Peer", "Ping", n, &errors);
        printf("%.0f %.0f %u\n", kicks, pings, errors);
        sd_bus_flush_close_unref(bus);
        return errors ? 2 : 0;
}
