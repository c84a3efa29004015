/* SPDX-License-Identifier: Apache-2.0 */
/* kick-client: times N sequential calls of Kick() and of org.freedesktop.DBus.Peer.Ping
 * on org.kata.KsmThrottler over the system bus (DBUS_SYSTEM_BUS_ADDRESS), optionally
 * as another uid, and prints "kick_per_sec ping_per_sec errors". */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ksmt-client.h"

static double now_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int kick(sd_bus *bus, sd_bus_error *error) {
        return ksmt_kick(bus, 0, 0, error);
}

/* Through ksmt_call() like the kick, so that the two differ only in what the daemon does. */
static int ping(sd_bus *bus, sd_bus_error *error) {
        sd_bus_message *call = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &call, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH,
                                           "org.freedesktop.DBus.Peer", "Ping");
        if (r >= 0)
                r = ksmt_call(bus, call, 0, error, NULL);
        sd_bus_message_unref(call);
        return r;
}

/* Calls call n times; returns calls per second, counts failures in *errors. */
static double time_calls(sd_bus *bus, const char *what, int (*call)(sd_bus *, sd_bus_error *), unsigned n,
                         unsigned *errors) {
        double start = now_sec();
        for (unsigned i = 0; i < n; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int r = call(bus, &error);
                if (r < 0) {
                        if (*errors == 0) {
                                char message[512];
                                ksmt_error_message(what, &error, r, message, sizeof message);
                                fprintf(stderr, "kick-client: %s\n", message);
                        }
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
        r = ksmt_bus_open(&bus);
        if (r < 0) {
                fprintf(stderr, "kick-client: cannot connect to the system bus: %s\n", strerror(-r));
                return 1;
        }
        /* Warm up both paths, then alternate so that both see the same machine state. */
        time_calls(bus, "kick", kick, 10, &errors);
        time_calls(bus, "ping", ping, 10, &errors);
        kicks = time_calls(bus, "kick", kick, n, &errors);
        pings = time_calls(bus, "ping", ping, n, &errors);
        printf("%.0f %.0f %u\n", kicks, pings, errors);
        sd_bus_flush_close_unref(bus);
        return errors ? 2 : 0;
}
