/* SPDX-License-Identifier: Apache-2.0 */
/* The org.kata.KsmThrottler object on the bus: vtables, getters, Kick, and the change
 * signals. It observes the daemon core; the core does not know it. */
#pragma once

#include <systemd/sd-bus.h>

#include "authorize.h"
#include "daemon.h"

struct bus_object;

/* The longest reason and application ID KickWithReason accepts, in bytes. They are
 * logged and kept (only for the last kick), so a caller may not make them large. */
#define KICK_TEXT_MAX 256

/* The reason and application ID of a KickWithReason call (rewound first); both "" for Kick
 * or arguments that do not read. */
void bus_object_kick_arguments(sd_bus_message *m, const char **ret_reason, const char **ret_application_id);

/* Registers /org/kata/KsmThrottler on bus for d, kicks authorized through authorizer,
 * and takes d's current values as announced. */
int bus_object_new(sd_bus *bus, struct daemon *d, struct authorizer *authorizer, struct bus_object **ret);
/* Applies a kick that the previous instance recorded while it exited (docs/design.md,
 * On-demand start), as if its caller had sent it now. Returns 1 if one was applied, 0 if
 * there was none, or -errno (logged; a stale or damaged record is dropped). */
int bus_object_apply_handover(struct bus_object *o, uint64_t now_boottime_usec);
/* Unregisters the object. */
struct bus_object *bus_object_free(struct bus_object *o);
static inline void bus_object_freep(struct bus_object **o) {
        bus_object_free(*o);
}

/* The daemon's observer, with the bus object as userdata: announces what changed with
 * PropertiesChanged (only properties whose value differs from what was last announced)
 * and StateChanged, and applies a reloaded PolkitTimeoutSec= to the authorizer. */
extern const struct daemon_observer bus_object_observer;
