/* SPDX-License-Identifier: Apache-2.0 */
/* The host's own KSM values, saved in the runtime directory while a cycle runs, so
 * that they survive a crash of the daemon (docs/design.md, Persistence and recovery). */
#pragma once

#include <stdbool.h>

#include "ksm.h"

#define SAVED_STATE_FILE "host-settings"
/* The largest file accepted: a real one is about 200 bytes. */
#define SAVED_STATE_SIZE_MAX 1023

struct saved_state {
        struct ksm_settings host;    /* the host's own values, to restore */
        struct ksm_settings written; /* what the throttler last wrote; knobs absent if not known */
        /* What the throttler is about to write, recorded before the first write of a
         * transition: after a crash a knob holding either value is still the throttler's. */
        struct ksm_settings pending;
};

/* Writes dir/host-settings atomically (temporary file, fsync, rename, fsync of dir).
 * The directory is created 0700 if missing, and must be owned by the daemon's user and
 * writable by nobody else (-EPERM otherwise, logged). */
int saved_state_save(const char *dir, const struct saved_state *state);
/* -ENOENT when nothing is saved. Refuses (logged, with the path): a directory or file not
 * owned by the daemon's user or writable by others (-EPERM), a symbolic link (-ELOOP),
 * anything but a regular file (-EBADFD), a file over SAVED_STATE_SIZE_MAX (-EFBIG), and
 * damaged or out-of-range content (-EINVAL, with file:line). Never blocks. */
int saved_state_load(const char *dir, struct saved_state *ret);
int saved_state_remove(const char *dir);
/* Whether dir holds a saved record (or its name: saved_state_load() checks what it is). */
bool saved_state_exists(const char *dir);

/* Serialization, exposed for tests: "run=0\n...written.run=1\n...pending.run=1\n". */
int saved_state_format(const struct saved_state *state, char *buf, size_t size);
int saved_state_parse(const char *text, const char *where, struct saved_state *ret);
