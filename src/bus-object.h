/* SPDX-License-Identifier: Apache-2.0 */
/* The org.kata.KsmThrottler object on the bus: vtable, getters, and change signals. */
#pragma once

#include "daemon.h"

/* Registers /org/kata/KsmThrottler on d->bus. */
int bus_object_add(struct daemon *d);

/* The one place that announces changes: PropertiesChanged for each emitting
 * property whose value differs from what was last announced, and StateChanged. */
void bus_publish_changes(struct daemon *d);

/* Takes the current state as announced, so that only later changes are signalled. */
void bus_mark_published(struct daemon *d);
