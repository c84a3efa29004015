/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's connection to the system bus: how it is opened and how the event loop
 * reads it (docs/design.md, "Bounded work per caller"). */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

/* Opens the system bus ($DBUS_SYSTEM_BUS_ADDRESS if set) without fd passing, and starts
 * connecting; the handshake completes on the event loop. */
int bus_connection_open(sd_bus **ret);

/* Attaches bus to event so that each wake-up reads up to BUS_DRAIN_BATCH messages. *ret
 * is the extra source that does it, to be unreferenced before the bus. */
#define BUS_DRAIN_BATCH 64
int bus_connection_attach(sd_bus *bus, sd_event *event, sd_event_source **ret);
