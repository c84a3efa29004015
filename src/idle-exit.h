/* SPDX-License-Identifier: Apache-2.0 */
/* On-demand start: the event loop of a daemon that exits when it has been idle in
 * initial for IdleExitSec=, without losing a call that raced with the exit
 * (docs/design.md, On-demand start). */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "authorize.h"
#include "daemon.h"

struct idle_exit;

/* lock_fd is the runtime directory's lock: closed when the exit begins, since from then on
 * this instance writes no knob and the next one may start. */
int idle_exit_new(sd_event *event, sd_bus *bus, struct daemon *d, struct authorizer *authorizer, int *lock_fd,
                  struct idle_exit **ret);
struct idle_exit *idle_exit_free(struct idle_exit *x);
/* The daemon owns its name: idleness counts from now. */
void idle_exit_set_ready(struct idle_exit *x);
/* Runs the loop until sd_event_exit() or an idle exit (0). Returns the exit code or -errno. */
int idle_exit_loop(struct idle_exit *x);
