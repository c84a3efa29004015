/* SPDX-License-Identifier: Apache-2.0 */
/* The configuration file (ksm-throttler.conf(5)): the main file and its drop-ins, parsed with libinih. */
#pragma once

#include "adaptive.h"
#include "state-machine.h"

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/ksm-throttler/ksm-throttler.conf"
#define KSM_DEFAULT_DIRECTORY "/sys/kernel/mm/ksm"

struct config {
        char *ksm_directory;
        uint64_t polkit_timeout_usec; /* how long a Kick waits for polkit before it is denied */
        uint64_t idle_exit_usec;      /* how long in initial with no call in flight before exiting; 0: never */
        struct throttle_config throttle;
        bool adaptive; /* leave aggressive once merging settled, size scans from KSM's counters */
        struct adaptive_config adaptive_config;
        char *sources; /* the files the last load read, ", "-separated; NULL if none (defaults) */
};

/* Built-in defaults; -ENOMEM on allocation failure. */
int config_init(struct config *c);
void config_done(struct config *c);

/* Reads path (which must exist when required, else defaults stand) and then
 * path + ".d/" "*.conf" in lexical order. Unknown keys are warned about with
 * file:line; invalid values are logged with file:line and make it return -EINVAL,
 * leaving *c untouched. */
int config_load(struct config *c, const char *path, bool required);
