/* SPDX-License-Identifier: Apache-2.0 */
/* Who may kick (docs/design.md, Authorization): root (by the user ID the bus gives for
 * the connection, asked once per connection with its process ID and remembered), everyone else through an
 * asynchronous polkit CheckAuthorization. Nothing here blocks on the bus. Never fails open. */
#pragma once

#include <stdint.h>
#include <systemd/sd-bus.h>

#include "caller.h"

#define POLKIT_ACTION_KICK "org.kata.ksmthrottler.kick"
#define POLKIT_ACTION_READ_SAVINGS "org.kata.ksmthrottler.read-savings"

/* Called once per request with the caller's message; error is NULL when authorized.
 * caller is who sent it, as far as known when the verdict came (never NULL; its fields
 * say "unknown" when a request was refused before the bus said who the sender is). */
typedef void (*authorize_callback_t)(sd_bus_message *m, const sd_bus_error *error, const struct caller *caller,
                                     void *userdata);

struct authorizer;

/* Also starts following who owns polkit's bus name: only that peer's verdict counts. */
int authorizer_new(sd_bus *bus, uint64_t polkit_timeout_usec, struct authorizer **ret);
/* Answers every pending request with AccessDenied ("shutting down"); call it while the
 * bus can still carry the answers. */
void authorizer_shutdown(struct authorizer *a);
/* authorizer_shutdown(), then frees. */
struct authorizer *authorizer_free(struct authorizer *a);
void authorizer_set_timeout(struct authorizer *a, uint64_t polkit_timeout_usec);
/* How many requests wait for polkit or for the bus to name their sender. */
unsigned authorizer_pending(const struct authorizer *a);

/* Decides whether the sender of m may perform action, now or when polkit answers, and
 * calls callback with the verdict. Concurrent requests of one sender for the same
 * action and interactivity share one polkit call. The requests waiting for polkit are
 * bounded per sender and in total; beyond that callback gets LimitsExceeded at once.
 * Returns 0 or -errno. */
int authorize(struct authorizer *a, sd_bus_message *m, const char *action, authorize_callback_t callback,
              void *userdata);
