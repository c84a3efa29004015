/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client side of org.kata.KsmThrottler, shared by ksmctl, the trigger daemon, the
 * test harness and the benchmarks.
 *
 * Functions return 0 or a positive value on success and -errno on failure. Calls that
 * reach the bus also fill an sd_bus_error when the bus or the daemon answered with one;
 * ksmt_error_status() and ksmt_error_message() turn that pair into the exit status and
 * the message documented in ksmctl(1).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "bus-names.h"

/* Exit statuses, as documented in ksmctl(1). */
enum ksmt_exit_status {
        KSMT_EXIT_OK = 0,
        KSMT_EXIT_FAILED = 1,
        KSMT_EXIT_USAGE = 2,
        KSMT_EXIT_NOT_RUNNING = 3,    /* not running, cannot be started, or no bus */
        KSMT_EXIT_ACCESS_DENIED = 4,  /* polkit or bus policy */
        KSMT_EXIT_KSM_UNAVAILABLE = 5,
};

/* Longer than the daemon waits for polkit (PolkitTimeoutSec=, at most 100 s), so that
 * its verdict arrives rather than a local time-out. */
#define KSMT_KICK_TIMEOUT_USEC (UINT64_C(120) * UINT64_C(1000000))

/* Set by ksmt_call() when bus activation did not answer and systemd says the unit
 * cannot come up (masked, failed, condition not met); the message says which. */
#define KSMT_ERROR_UNIT_NOT_STARTABLE "org.kata.KsmThrottler.Client.Error.UnitNotStartable"

/* ---- Connection and names ---- */

/* The system bus (DBUS_SYSTEM_BUS_ADDRESS if set). */
int ksmt_bus_open(sd_bus **ret);

/* 1 if name has an owner, 0 if not. Never starts anything. */
int ksmt_name_has_owner(sd_bus *bus, const char *name);

/* The unique name (":1.42") that owns name now, in *ret (malloc'ed); 0 and NULL if none. */
int ksmt_name_get_owner(sd_bus *bus, const char *name, char **ret);

/* ---- The systemd unit ---- */

enum ksmt_unit_verdict {
        KSMT_UNIT_UNKNOWN,          /* systemd is not on this bus, or did not answer */
        KSMT_UNIT_STARTABLE,        /* loaded and not failed: activation may bring it up */
        KSMT_UNIT_ACTIVE,
        KSMT_UNIT_NOT_FOUND,
        KSMT_UNIT_MASKED,
        KSMT_UNIT_FAILED,
        KSMT_UNIT_CONDITION_FAILED, /* its last start was skipped by a Condition*= */
};

/* The unit's job could not be read: treated as a start that may be under way. */
#define KSMT_UNIT_JOB_UNKNOWN UINT32_MAX

struct ksmt_unit_state {
        enum ksmt_unit_verdict verdict;
        char load_state[32];        /* as systemd says: "loaded", "masked", "not-found", ... */
        char active_state[32];      /* "active", "failed", "inactive", ... */
        char sub_state[32];
        uint32_t job;               /* systemd's job for the unit, 0: none, KSMT_UNIT_JOB_UNKNOWN */
        /* Inactive with no job only: its Condition*= settings, "ConditionPathExists=/x, ..." */
        char conditions[256];
};

/* Asks systemd (org.freedesktop.systemd1, no activation, short timeout) about
 * KSM_THROTTLER_UNIT. Returns 0 with the verdict, KSMT_UNIT_UNKNOWN included; -errno only
 * on local failures. */
int ksmt_unit_check(sd_bus *bus, struct ksmt_unit_state *ret);

/* "masked", "failed", "skipped: a start condition was not met", ... */
const char *ksmt_unit_verdict_to_string(enum ksmt_unit_verdict verdict);

/* ---- Calls ---- */

/* Sends call and waits up to timeout_usec (0: sd-bus default, SYSTEMD_BUS_TIMEOUT) for the
 * reply. While the service's name has no owner and no reply came (bus activation pending),
 * it asks systemd about the unit every second, and gives up at once with
 * KSMT_ERROR_UNIT_NOT_STARTABLE if the unit is masked, failed or condition-skipped, instead of
 * waiting for the bus's activation time-out. A unit with conditions that stays inactive with no
 * start job for three checks in a row counts as condition-skipped: systemd 252 unloads a unit
 * whose start a condition skipped, forgetting the result, while the bus keeps waiting. ret_error and ret_reply may be NULL. Messages that
 * arrive meanwhile are dispatched (sd_bus_process), so it may not be called from inside a
 * callback of the same connection; event-loop clients use the _async calls. */
int ksmt_call(sd_bus *bus, sd_bus_message *call, uint64_t timeout_usec, sd_bus_error *ret_error,
              sd_bus_message **ret_reply);

/* ---- Kick ---- */

enum ksmt_kick_flags {
        KSMT_KICK_INTERACTIVE = 1 << 0, /* polkit may ask the user to authenticate */
        /* ksmt_kick_no_wait(): then wait until the daemon has read the kick (a Peer.Ping sent
         * after it is answered). The daemon looks up the caller's credentials when it handles
         * the kick, so a caller that exits right after sending would lose it. */
        KSMT_KICK_CONFIRM_RECEIPT = 1 << 1,
};

/* The longest reason and application ID the daemon accepts, in bytes; the kick functions
 * refuse longer ones with -E2BIG before sending. */
#define KSMT_KICK_TEXT_MAX 256

/* Kick() and wait for the daemon's answer, up to timeout_usec (0: KSMT_KICK_TIMEOUT_USEC). */
int ksmt_kick(sd_bus *bus, uint64_t timeout_usec, unsigned flags, sd_bus_error *ret_error);

/* Kick() without waiting for the verdict: sent with NO_REPLY_EXPECTED and flushed to the bus.
 * Returns once the message has left (with KSMT_KICK_CONFIRM_RECEIPT: once the daemon read it);
 * whether the daemon accepted it is not known. ret_error as for ksmt_call(); may be NULL. */
int ksmt_kick_no_wait(sd_bus *bus, unsigned flags, sd_bus_error *ret_error);

/* Kick() from an event loop: callback gets the reply or the error (sd_bus_message_get_error,
 * then ksmt_error_status). timeout_usec 0: KSMT_KICK_TIMEOUT_USEC. ret_slot may be NULL
 * (the slot is then floating: it lives until the reply). */
int ksmt_kick_async(sd_bus *bus, sd_bus_slot **ret_slot, uint64_t timeout_usec, unsigned flags,
                    sd_bus_message_handler_t callback, void *userdata);

/* The same three with KickWithReason(reason, application_id): why, and for whom (shown in
 * the daemon's log and in LastKick). NULL is "". */
int ksmt_kick_with_reason(sd_bus *bus, const char *reason, const char *application_id, uint64_t timeout_usec,
                          unsigned flags, sd_bus_error *ret_error);
int ksmt_kick_with_reason_no_wait(sd_bus *bus, const char *reason, const char *application_id, unsigned flags,
                                  sd_bus_error *ret_error);
int ksmt_kick_with_reason_async(sd_bus *bus, const char *reason, const char *application_id, sd_bus_slot **ret_slot,
                                uint64_t timeout_usec, unsigned flags, sd_bus_message_handler_t callback,
                                void *userdata);

/* ---- Properties ---- */

enum ksmt_value_type {
        KSMT_VALUE_OTHER,  /* a type this client does not show */
        KSMT_VALUE_NUMBER, /* u or t */
        KSMT_VALUE_STRING, /* s */
};

/* A KSM knob from Settings or InitialSettings, in the order the daemon sent them. */
struct ksmt_setting {
        char *name;
        enum ksmt_value_type type;
        uint64_t number;
        char *string;
};

struct ksmt_settings {
        struct ksmt_setting *items;
        size_t n_items;
};

/* A KSM counter from Statistics. */
struct ksmt_counter {
        char *name;
        int64_t value;
};

struct ksmt_counters {
        struct ksmt_counter *items;
        size_t n_items;
};

/* A count or a duration by name, from an a{st} property (KicksByOrigin, TimeInStateUSec). */
struct ksmt_tally {
        char *name;
        uint64_t value;
};

struct ksmt_tallies {
        struct ksmt_tally *items;
        size_t n_items;
};

/* Which fields a read filled. */
enum ksmt_property {
        KSMT_PROPERTY_STATE = 1 << 0,
        KSMT_PROPERTY_VERSION = 1 << 1,
        KSMT_PROPERTY_NEXT_TRANSITION = 1 << 2,
        KSMT_PROPERTY_KICK_COUNT = 1 << 3,
        KSMT_PROPERTY_LAST_KICK = 1 << 4,
        KSMT_PROPERTY_SETTINGS = 1 << 5,
        KSMT_PROPERTY_INITIAL_SETTINGS = 1 << 6,
        KSMT_PROPERTY_STATISTICS = 1 << 7,
        KSMT_PROPERTY_LAST_KICK_DETAIL = 1 << 8, /* LastKick */
        KSMT_PROPERTY_KICKS_BY_ORIGIN = 1 << 9,
        KSMT_PROPERTY_TIME_IN_STATE = 1 << 10,
};

/* LastKick: the last successful kick. Strings as the daemon sent them (not escaped). */
struct ksmt_kick {
        uint64_t usec; /* CLOCK_REALTIME, 0 if never */
        char *reason;
        char *application_id;
        char *origin; /* "uid 0 pid 4242 unit libvirtd.service" */
};

void ksmt_kick_done(struct ksmt_kick *k);

struct ksmt_properties {
        unsigned present;              /* enum ksmt_property bits */
        char *state;                   /* NULL if not reported */
        char *version;                 /* likewise */
        uint64_t next_transition_usec; /* CLOCK_REALTIME, 0 in initial */
        uint64_t kick_count;
        uint64_t last_kick_usec;       /* CLOCK_REALTIME, 0 if never */
        struct ksmt_settings settings;
        struct ksmt_settings initial_settings;
        struct ksmt_counters statistics;
        struct ksmt_kick last_kick;
        struct ksmt_tallies kicks_by_origin; /* origin → kicks, in the daemon's order */
        struct ksmt_tallies time_in_state;   /* state → microseconds */
};

void ksmt_properties_done(struct ksmt_properties *p);
void ksmt_settings_done(struct ksmt_settings *s);
void ksmt_counters_done(struct ksmt_counters *c);
void ksmt_tallies_done(struct ksmt_tallies *t);

/* All properties in one GetAll, so that every value is from the same moment. */
int ksmt_get_properties(sd_bus *bus, struct ksmt_properties *ret, sd_bus_error *ret_error);

/* Reads an a{sv} of this interface's properties (a GetAll reply, or the changed
 * properties of PropertiesChanged) into p, replacing the fields present; unknown
 * properties are skipped. Returns the enum ksmt_property bits it read. */
int ksmt_properties_read(sd_bus_message *m, struct ksmt_properties *p);

/* The Statistics property alone. */
int ksmt_get_statistics(sd_bus *bus, struct ksmt_counters *ret, sd_bus_error *ret_error);

/* Reads properties (KSMT_PROPERTY_* bits) with Get, without bus activation. A property
 * the daemon does not have (an older version) is left out of p->present. Returns 1 if
 * the daemon answered, 0 if it is not running. */
int ksmt_get_properties_no_activation(sd_bus *bus, unsigned which, struct ksmt_properties *p,
                                      sd_bus_error *ret_error);

/* general_profit in bytes: KSM's own net gain (saved minus its metadata; may be negative).
 * -ENOENT when the kernel does not report it. */
int ksmt_saved_bytes(const struct ksmt_counters *statistics, int64_t *ret);

/* ---- Errors ---- */

/* The exit status for a failed call: r < 0 as returned, error as the call left it. */
int ksmt_error_status(const sd_bus_error *error, int r);

/* The message a client shows for it, e.g. "not allowed to kick: ...", with action saying
 * what was tried ("kick", "read the status"). Control characters from the bus are escaped.
 * Returns the exit status. */
int ksmt_error_message(const char *action, const sd_bus_error *error, int r, char *buf, size_t size);

/* s with control characters and backslashes escaped as in C ("\n", "\x1b", "\\"), so that
 * text from the bus cannot drive a terminal. Malloc'ed; NULL on OOM. */
char *ksmt_escape(const char *s);
