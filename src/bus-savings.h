/* SPDX-License-Identifier: Apache-2.0 */
/* GetSavings on the bus: which VM, sandbox, unit or process saves what through KSM
 * (docs/design.md, Savings per VM). Per-process figures of other users are gated by
 * polkit (org.kata.ksmthrottler.read-savings; root without polkit). */
#pragma once

#include <systemd/sd-bus.h>

#include "authorize.h"


/* Rows a caller gets when it passes limit 0, and the most it may ask for. */
#define SAVINGS_DEFAULT_ROWS 100
#define SAVINGS_MAX_ROWS 1000

struct bus_savings;

/* Adds GetSavings to the daemon's object on bus, authorized through authorizer. */
int bus_savings_new(sd_bus *bus, struct authorizer *authorizer, struct bus_savings **ret);
/* Unregisters the method and drops the cached rows. Free it after the authorizer has
 * answered its pending requests (authorizer_shutdown()): they point here. */
struct bus_savings *bus_savings_free(struct bus_savings *s);
static inline void bus_savings_freep(struct bus_savings **s) {
        bus_savings_free(*s);
}
