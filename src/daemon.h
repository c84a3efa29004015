/* SPDX-License-Identifier: Apache-2.0 */
/* The running throttler: the state machine bound to sysfs, a timer and the bus. */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "adaptive.h"
#include "authorize.h"
#include "config.h"
#include "ksm.h"
#include "state-machine.h"

#define KSM_THROTTLER_BUS_NAME "org.kata.KsmThrottler"
#define KSM_THROTTLER_OBJECT_PATH "/org/kata/KsmThrottler"
#define KSM_THROTTLER_INTERFACE "org.kata.KsmThrottler"
#define KSM_THROTTLER_ERROR_KSM_UNAVAILABLE "org.kata.KsmThrottler.Error.KsmUnavailable"

/* What was last announced on the bus, to emit PropertiesChanged only for real changes. */
struct published_state {
        enum throttle_state state;
        struct ksm_settings settings;
        struct ksm_settings host;
        uint64_t next_transition_usec;
};

struct daemon {
        struct config config;
        const char *meminfo_path;
        const char *runtime_directory;
        bool ksm_directory_from_config; /* false when --ksm-dir overrides it */
        int ksm_dirfd;

        struct throttle throttle;
        struct ksm_settings host;    /* the host's own values, restored at the end of a cycle */
        struct ksm_settings applied; /* what sysfs holds as far as the throttler knows */

        uint64_t kick_count;
        uint64_t last_kick_usec;       /* CLOCK_REALTIME */
        uint64_t next_transition_usec; /* CLOCK_REALTIME, 0 in initial */

        sd_event *event;
        sd_bus *bus;
        sd_event_source *timer;        /* the decay: fires when the state's time is up */
        sd_event_source *sample_timer; /* adaptive mode only, and only outside initial */
        struct adaptive adaptive;
        pid_t ksmd_pid;                /* for ksmd's CPU time; 0 if not found */
        bool resizing_suspended;       /* a re-size failed in this state: wait for the next one */
        struct authorizer *authorizer;
        struct published_state published;
};

/* If a previous instance died mid-cycle, its saved host values are put back.
 * Returns 1 if it restored something, 0 if nothing was saved, or -errno. */
int daemon_recover(struct daemon *d);

/* Reads the host's values and sets up the decay timer (disabled until a kick). */
int daemon_init(struct daemon *d, sd_event *event);
void daemon_done(struct daemon *d);

/* A kick: aggressive now. On failure error names the knob and errno. */
int daemon_kick(struct daemon *d, sd_bus_error *error);

/* Re-reads the configuration from defaults and path (+ drop-ins). An invalid one is
 * rejected and the running one kept. The KSM directory stays as started. */
int daemon_reload_config(struct daemon *d, const char *path, bool required);

/* Puts the host's values back and ends the cycle (shutdown). */
int daemon_restore(struct daemon *d);
