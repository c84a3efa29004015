/* SPDX-License-Identifier: Apache-2.0 */
/* The host's own KSM values, saved in the runtime directory while a cycle runs, so
 * that they survive a crash of the daemon (docs/design.md, Persistence and recovery). */
#pragma once

#include "ksm.h"

#define SAVED_STATE_FILE "host-settings"

struct saved_state {
        struct ksm_settings host;    /* the host's own values, to restore */
        struct ksm_settings written; /* what the throttler last wrote; knobs absent if not known */
};

/* Writes dir/host-settings atomically (temporary file, fsync, rename, fsync of dir). */
int saved_state_save(const char *dir, const struct saved_state *state);
/* -ENOENT when nothing is saved; -EINVAL (logged with file:line) when the file is damaged. */
int saved_state_load(const char *dir, struct saved_state *ret);
int saved_state_remove(const char *dir);

/* Serialization, exposed for tests: "run=0\n...written.run=1\n...". */
int saved_state_format(const struct saved_state *state, char *buf, size_t size);
int saved_state_parse(const char *text, const char *where, struct saved_state *ret);
