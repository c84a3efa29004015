/* SPDX-License-Identifier: Apache-2.0 */
/* machined source: systemd-machined's MachineNew signal (libvirt, systemd-nspawn and
 * anything else that registers a machine). A bus match on machined's well-known
 * name: the bus delivers whatever its current owner sends, so machined starting
 * late or restarting needs nothing here. */
#pragma once

#include <systemd/sd-bus.h>

#include "trigger.h"

struct source_machined;

int source_machined_new(sd_bus *bus, struct trigger *trigger, struct source_machined **ret);
struct source_machined *source_machined_free(struct source_machined *s);
