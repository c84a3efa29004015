/* SPDX-License-Identifier: Apache-2.0 */
/* The running throttler: the state machine and adaptive mode bound to sysfs, procfs,
 * the saved state and sd-event timers. It knows no bus: it tells an observer what
 * changed (docs/design.md, The observer). */
#pragma once

#include <systemd/sd-event.h>

#include "adaptive.h"
#include "config.h"
#include "daemon-stats.h"
#include "ksm.h"
#include "state-machine.h"

struct daemon;

/* What the core tells its observer (main.c wires the bus object here). Each callback
 * may be NULL. */
struct daemon_observer {
        /* The state, the knobs applied, the host's values or the next transition may have
         * changed: compare with what was last announced. */
        void (*changed)(struct daemon *d, void *userdata);
        /* The current values are the new baseline (start-up, recovery): nothing to announce. */
        void (*reset)(struct daemon *d, void *userdata);
        /* A new configuration is in force. */
        void (*config_reloaded)(struct daemon *d, void *userdata);
};

/* Why a kick failed, for the caller to report in its own terms. */
enum daemon_failure_kind {
        DAEMON_FAILURE_NONE,
        DAEMON_FAILURE_READ_KNOB,  /* a knob could not be read: knob */
        DAEMON_FAILURE_WRITE_KNOB, /* a knob could not be written: knob; sysfs was put back */
        DAEMON_FAILURE_SAVE_STATE, /* the values about to be written could not be recorded: the cycle ended */
        DAEMON_FAILURE_RESTORE_KNOB, /* a knob could not get the host's value back: knob; the others did */
};

struct daemon_failure {
        enum daemon_failure_kind kind;
        enum ksm_knob knob;
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
        struct daemon_stats stats;     /* time in each state and kicks by origin, since daemon_init() */

        sd_event *event;
        sd_event_source *timer;        /* the decay: fires when the state's time is up */
        sd_event_source *sample_timer; /* adaptive mode only, and only outside initial */
        struct adaptive adaptive;
        pid_t ksmd_pid;                /* for ksmd's CPU time; 0 if not found */
        bool resizing_suspended;       /* a re-size failed in this state: wait for the next one */
        sd_event_source *knob_watch;   /* inotify on the KSM directory, outside initial; NULL: none works */
        bool knobs_unverified;         /* the throttler wrote since sysfs was last compared with applied */
        const struct daemon_observer *observer;
        void *observer_userdata;
};

/* If a previous instance died mid-cycle, its saved host values are put back.
 * Returns 1 if it restored something, 0 if nothing was saved, or -errno. */
int daemon_recover(struct daemon *d);

/* Reads the host's values and sets up the decay timer (disabled until a kick). */
int daemon_init(struct daemon *d, sd_event *event);
void daemon_done(struct daemon *d);

/* Sets who is told of changes (NULL: nobody). */
void daemon_set_observer(struct daemon *d, const struct daemon_observer *observer, void *userdata);

/* A kick: aggressive now. origin says on whose behalf (NULL: unknown), for the count of
 * kicks by origin (daemon-stats.h sanitizes and bounds it). Returns 0 or -errno; on
 * failure *ret_failure (if not NULL) says what failed. The failure is logged here. */
int daemon_kick(struct daemon *d, const char *origin, struct daemon_failure *ret_failure);

/* The time spent in each state since daemon_init(), the current one up to now. */
void daemon_time_in_state(const struct daemon *d, uint64_t ret[_THROTTLE_STATE_MAX]);

/* Re-reads the configuration from defaults and path (+ drop-ins). An invalid one is
 * rejected and the running one kept. The KSM directory stays as started. */
int daemon_reload_config(struct daemon *d, const char *path, bool required);

/* Puts the host's values back and ends the cycle (shutdown). */
int daemon_restore(struct daemon *d);
