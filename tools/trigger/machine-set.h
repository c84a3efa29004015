/* SPDX-License-Identifier: Apache-2.0 */
/* The machines systemd-machined announced and has not removed since: a restarted
 * machined announces every machine it knows again, and those are no new machines.
 * Pure, and bounded: past its size the oldest entry is forgotten (a machine
 * re-announced after that costs one kick too many, never a missed one). */
#pragma once

#include <stddef.h>

/* Machine names are host names (64 bytes at most) and paths derive from them;
 * anything longer is refused, so that one entry stays small. */
#define MACHINE_NAME_MAX 255
#define MACHINE_PATH_MAX 1024

struct machine_set;

int machine_set_new(size_t max, struct machine_set **ret);
struct machine_set *machine_set_free(struct machine_set *s);

/* Remembers name with its object path. Returns 1 when name was not known (a new
 * machine), 0 when it was (the path is updated), -EINVAL for a name or path too long
 * to keep, -ENOMEM. */
int machine_set_add(struct machine_set *s, const char *name, const char *path);

/* Forgets name. Returns 1 when it was known, 0 when not. */
int machine_set_remove(struct machine_set *s, const char *name);

/* The object path remembered for name, or NULL. */
const char *machine_set_path(const struct machine_set *s, const char *name);

size_t machine_set_size(const struct machine_set *s);
