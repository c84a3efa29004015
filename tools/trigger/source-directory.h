/* SPDX-License-Identifier: Apache-2.0 */
/* Directory source: a new entry in a watched directory is a new sandbox (Kata's
 * runtimes create one per sandbox). inotify; a directory that does not exist yet is
 * waited for through its nearest existing parent, and followed when it is removed
 * and created again. */
#pragma once

#include <systemd/sd-event.h>

#include "trigger.h"

struct source_directory;

int source_directory_new(sd_event *event, struct trigger *trigger, char *const *dirs, unsigned n_dirs,
                         struct source_directory **ret);
struct source_directory *source_directory_free(struct source_directory *s);
