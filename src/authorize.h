/* SPDX-License-Identifier: Apache-2.0 */
/* Who may kick (SPEC §5). The answer may come later, so it is delivered through a callback. */
#pragma once

#include <systemd/sd-bus.h>

/* Called once with the caller's message; error is unset when authorized. */
typedef void (*authorize_callback_t)(sd_bus_message *m, const sd_bus_error *error, void *userdata);

/* Checks whether the sender of m may kick and calls callback with the verdict. Returns 0 or -errno. */
int authorize_kick(sd_bus_message *m, authorize_callback_t callback, void *userdata);
