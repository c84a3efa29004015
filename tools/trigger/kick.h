/* SPDX-License-Identifier: Apache-2.0 */
/* Kicking the throttler without ever blocking the event loop: an asynchronous
 * Kick() that goes through bus activation, retried with backoff while the
 * throttler cannot be reached. The only file of the trigger that knows how a kick
 * is sent (through the client library, ksmt-client.h). */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

struct kicker;

int kicker_new(sd_bus *bus, sd_event *event, struct kicker **ret);
struct kicker *kicker_free(struct kicker *k);

/* Asks for a kick for reason. Returns at once; the outcome is logged. A kick asked for
 * while one is on its way is sent once that one is answered (with the latest reason);
 * while a failed kick waits for its retry, the retry carries the latest reason. */
void kicker_kick(struct kicker *k, const char *reason);
