/* SPDX-License-Identifier: Apache-2.0 */
/* The two sides of test/bench/flood:
 *   flood-client flood SECONDS [CONNECTIONS]
 *       sends Kick() calls flagged NO_REPLY_EXPECTED as fast as the bus takes them,
 *       round robin over CONNECTIONS connections (default 1), for SECONDS; prints
 *       "sent N".
 *   flood-client probe COUNT INTERVAL_MS
 *       reads the State property COUNT times, INTERVAL_MS apart, each call timed and
 *       followed by the bus driver's GetId for comparison; prints "state calls N
 *       median_ms M max_ms X failed F", then the same for "bus". */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "bus-names.h"

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int flood(double seconds, unsigned n_connections) {
        sd_bus *buses[64] = {};
        unsigned long sent = 0;
        double end;
        int r;

        if (n_connections == 0 || n_connections > 64)
                return fprintf(stderr, "1 to 64 connections\n"), 2;
        for (unsigned c = 0; c < n_connections; c++) {
                r = sd_bus_open_system(&buses[c]);
                if (r < 0)
                        return fprintf(stderr, "cannot connect: %s\n", strerror(-r)), 1;
        }
        end = now_ms() + seconds * 1e3;
        while (now_ms() < end) {
                for (unsigned i = 0; i < 256; i++) {
                        sd_bus *bus = buses[sent % n_connections];
                        sd_bus_message *m = NULL;
                        r = sd_bus_message_new_method_call(bus, &m, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH,
                                                           KSM_THROTTLER_INTERFACE, "Kick");
                        if (r >= 0)
                                r = sd_bus_message_set_expect_reply(m, false);
                        if (r >= 0)
                                r = sd_bus_send(bus, m, NULL);
                        sd_bus_message_unref(m);
                        if (r < 0)
                                return fprintf(stderr, "cannot send: %s\n", strerror(-r)), 1;
                        sent++;
                }
                /* Keep each connection's queue short: the bus, not this process, holds the backlog. */
                for (unsigned c = 0; c < n_connections; c++) {
                        r = sd_bus_flush(buses[c]);
                        if (r < 0)
                                return fprintf(stderr, "cannot flush: %s\n", strerror(-r)), 1;
                        while (sd_bus_process(buses[c], NULL) > 0)
                                ; /* drop what the bus sends us */
                }
        }
        printf("sent %lu\n", sent);
        for (unsigned c = 0; c < n_connections; c++)
                sd_bus_flush_close_unref(buses[c]);
        return 0;
}

static int compare_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

static void print_stats(const char *what, double *ms, unsigned n, unsigned failed) {
        qsort(ms, n, sizeof *ms, compare_double);
        printf("%s calls %u median_ms %.2f max_ms %.2f failed %u\n", what, n,
               n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2, ms[n - 1], failed);
}

/* Times the daemon's State next to the bus driver's GetId, call after call: what the
 * bus itself costs under the same load. */
static int probe(unsigned count, unsigned interval_ms) {
        sd_bus *bus = NULL;
        double *state_ms = calloc(count, sizeof *state_ms), *bus_ms = calloc(count, sizeof *bus_ms);
        unsigned state_failed = 0, bus_failed = 0;
        int r;

        if (!state_ms || !bus_ms || count == 0)
                return 2;
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return fprintf(stderr, "cannot connect: %s\n", strerror(-r)), 1;
        for (unsigned i = 0; i < count; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                char *state = NULL;
                double start = now_ms();
                r = sd_bus_get_property_string(bus, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH,
                                               KSM_THROTTLER_INTERFACE, "State", &error, &state);
                state_ms[i] = now_ms() - start;
                state_failed += r < 0;
                free(state);
                sd_bus_error_free(&error);

                start = now_ms();
                r = sd_bus_call_method(bus, DBUS_DRIVER_NAME, DBUS_DRIVER_PATH, DBUS_DRIVER_INTERFACE, "GetId", &error, NULL, NULL);
                bus_ms[i] = now_ms() - start;
                bus_failed += r < 0;
                sd_bus_error_free(&error);

                struct timespec delay = { interval_ms / 1000, (long) (interval_ms % 1000) * 1000000L };
                nanosleep(&delay, NULL);
        }
        print_stats("state", state_ms, count, state_failed);
        print_stats("bus", bus_ms, count, bus_failed);
        free(state_ms);
        free(bus_ms);
        sd_bus_flush_close_unref(bus);
        return 0;
}

int main(int argc, char *argv[]) {
        if (argc >= 3 && argc <= 4 && strcmp(argv[1], "flood") == 0)
                return flood(atof(argv[2]), argc == 4 ? (unsigned) atoi(argv[3]) : 1);
        if (argc == 4 && strcmp(argv[1], "probe") == 0)
                return probe((unsigned) atoi(argv[2]), (unsigned) atoi(argv[3]));
        fprintf(stderr, "usage: flood-client flood SECONDS [CONNECTIONS] | probe COUNT INTERVAL_MS\n");
        return 2;
}
