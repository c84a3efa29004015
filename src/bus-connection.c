/* SPDX-License-Identifier: Apache-2.0 */
#include "bus-connection.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "fd-util.h"
#include "log.h"

/* No fd passing: the daemon never needs one, and fds a caller sends would be held in its
 * own fd table for as long as the call waits (a few hundred such calls once filled it).
 * Without fd passing negotiated, the bus refuses such messages before they reach the
 * daemon. */
int bus_connection_open(sd_bus **ret) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        const char *address = getenv("DBUS_SYSTEM_BUS_ADDRESS");
        int r;

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        if ((r = sd_bus_set_address(bus, address && *address ? address : "unix:path=/run/dbus/system_bus_socket")) < 0 ||
            (r = sd_bus_set_description(bus, "system")) < 0 || (r = sd_bus_set_bus_client(bus, true)) < 0 ||
            (r = sd_bus_set_trusted(bus, false)) < 0 ||
            /* What sd-bus's per-method access checks need to know of callers. */
            (r = sd_bus_negotiate_creds(bus, true, SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID | SD_BUS_CREDS_EFFECTIVE_CAPS)) < 0 ||
            (r = sd_bus_negotiate_fds(bus, false)) < 0)
                return r;
        /* Connects and authenticates on the event loop, never blocking here. */
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        *ret = bus;
        bus = NULL;
        return 0;
}

/* sd-bus reads one message per turn of the event loop, and each turn costs a wait and the
 * timers' bookkeeping besides. Under a flood of calls that overhead decides whether the
 * daemon keeps up with the bus: when it does not, every caller's message, root's too,
 * queues behind the flood. After each turn that did anything, this reads on while
 * messages are there, a bounded batch, so that timers still run between batches. */
static int drain(sd_event_source *s, void *userdata) {
        sd_event *event = sd_event_source_get_event(s);
        sd_bus *bus = userdata;
        int code, r;

        /* A handler may end the loop (start-up failed, the bus went away): then no more. */
        for (unsigned i = 0; i < BUS_DRAIN_BATCH && sd_event_get_exit_code(event, &code) == -ENODATA; i++) {
                r = sd_bus_process(bus, NULL);
                if (r == 0)
                        break;
                if (r < 0) {
                        /* What sd-bus's own callbacks do on an error: close, and the loop ends
                         * as when the bus goes away. */
                        log_error_errno(r, "Cannot read the bus: %m; closing it");
                        sd_bus_close(bus);
                        return sd_event_exit(event, EXIT_FAILURE);
                }
        }
        return 0;
}

int bus_connection_attach(sd_bus *bus, sd_event *event, sd_event_source **ret) {
        int r;

        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        return sd_event_add_post(event, ret, drain, bus);
}
