/* SPDX-License-Identifier: Apache-2.0 */
/* The trigger's configuration: trigger.conf, its drop-ins, and the command-line
 * options, which are the same keys (one table, trigger_keys). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "match.h"

#define TRIGGER_CONFIG_DEFAULT_PATH SYSCONFDIR "/ksm-throttler/trigger.conf"
#define TRIGGER_WATCH_MAX 64
#define TRIGGER_DEFAULT_HYPERVISORS "qemu-system-*,qemu-kvm,cloud-hypervisor,firecracker,crosvm"
/* 15 % of a 2 s window: the kernel takes windows that are not multiples of 2 s only
 * from processes with CAP_SYS_RESOURCE, which the unit does not grant. */
#define TRIGGER_DEFAULT_PRESSURE "some 300000 2000000"

/* A PSI trigger as the kernel takes it: "some|full <stall µs> <window µs>". */
struct pressure_spec {
        bool enabled;
        bool full; /* "full" rather than "some" */
        uint64_t stall_usec, window_usec;
};

struct trigger_config {
        char **watch; /* directories whose new entries are new sandboxes */
        unsigned n_watch;
        bool machined;
        struct name_patterns hypervisors; /* empty: the process source is off */
        struct pressure_spec pressure;
        char *pressure_file;
        uint64_t pressure_interval_usec; /* polling, where the kernel refuses triggers */
        uint64_t debounce_usec;
        int log_level; /* -1: not set */
};

struct trigger_key {
        const char *key;      /* in [Trigger] */
        const char *option;   /* --option, without the dashes */
        const char *argument; /* what --help shows */
        const char *help;
        int (*parse)(struct trigger_config *c, const char *value);
        const char *expected; /* for error messages */
};

extern const struct trigger_key trigger_keys[];
const struct trigger_key *trigger_key_by_option(const char *option);

/* Built-in defaults; -ENOMEM. */
int trigger_config_init(struct trigger_config *c);
void trigger_config_done(struct trigger_config *c);

/* Sets one key; where ("file:line", "--option") is for the message. -EINVAL
 * (logged, saying what was expected) or -ENOMEM. */
int trigger_config_set(struct trigger_config *c, const struct trigger_key *key, const char *value, const char *where);

/* Reads path (which must exist when required; a directory is refused) and then path + ".d/" "*.conf" in
 * lexical order. Unknown keys and sections are warned about with file:line;
 * invalid values are logged with file:line and give -EINVAL, leaving *c untouched. */
int trigger_config_load(struct trigger_config *c, const char *path, bool required);

/* "some 150000 1000000", or "no". -EINVAL for anything else, or out of the kernel's
 * bounds (a window from 500 ms to 10 s, a stall from 1 µs up to the window). */
int pressure_spec_parse(const char *text, struct pressure_spec *ret);
/* The share of the window that the stall is, in percent: the polling threshold. */
double pressure_spec_threshold(const struct pressure_spec *spec);
