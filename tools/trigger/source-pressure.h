/* SPDX-License-Identifier: Apache-2.0 */
/* Memory-pressure source: a PSI trigger (/proc/pressure/memory or a cgroup's
 * memory.pressure) woken with EPOLLPRI. Where the kernel refuses triggers, or the
 * file is not the kernel's, it reads "some avg10" (or "full") every interval
 * instead and reports when it rises to the trigger's share of its window. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "trigger-config.h"
#include "trigger.h"

struct source_pressure;

int source_pressure_new(sd_event *event, struct trigger *trigger, const struct pressure_spec *spec, const char *path,
                        uint64_t interval_usec, struct source_pressure **ret);
struct source_pressure *source_pressure_free(struct source_pressure *s);

/* avg10 of the "some" (or "full") line of a pressure file's text, in percent. */
int pressure_parse_avg10(const char *text, bool full, double *ret);
