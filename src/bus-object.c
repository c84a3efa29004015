/* SPDX-License-Identifier: Apache-2.0 */
#include "bus-object.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-names.h"
#include "bus-savings.h"
#include "fd-util.h"
#include "handover.h"
#include "ksm-accounting.h"
#include "log.h"
#include "parse-util.h"

/* What was last announced on the bus, to emit PropertiesChanged only for real changes. */
struct published_state {
        enum throttle_state state;
        struct ksm_settings settings;
        struct ksm_settings host;
        uint64_t next_transition_usec;
        uint64_t last_kick_usec;
};

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* The last successful kick, as the LastKick property shows it: fixed-size, so that
 * whatever callers send, the daemon holds one of these. Kept as sent (valid UTF-8,
 * sd-bus checks); escaped only where logged. */
struct kick_record {
        uint64_t usec; /* CLOCK_REALTIME; 0: none yet */
        char reason[KICK_TEXT_MAX + 1];
        char application_id[KICK_TEXT_MAX + 1];
        char origin[CALLER_ORIGIN_MAX];
};

struct bus_object {
        sd_bus *bus;
        struct daemon *daemon;
        struct authorizer *authorizer;
        sd_bus_slot *properties_slot;
        sd_bus_slot *members_slot;
        struct bus_savings *savings;
        struct published_state published;
        struct kick_record last_kick;
        struct kick_record kick_in_progress; /* taken as last_kick if the kick succeeds */
        bool kicking; /* in daemon_kick(): changes are announced after it, in one go */
        struct log_ratelimit refusals_logged; /* anyone can cause refusals, as many as they like */
};

static int append_settings(sd_bus_message *reply, const struct ksm_settings *s) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < _KSM_KNOB_MAX; i++) {
                enum ksm_knob k = ksm_knob_display_order[i];
                if (!ksm_settings_has(s, k))
                        continue;
                if (k == KSM_KNOB_ADVISOR_MODE)
                        r = sd_bus_message_append(reply, "{sv}", ksm_knob_name(k), "s",
                                                  ksm_advisor_mode_to_string(s->value[k]));
                else
                        r = sd_bus_message_append(reply, "{sv}", ksm_knob_name(k), "u", s->value[k]);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const enum throttle_state *state = userdata;
        return sd_bus_message_append(reply, "s", throttle_state_to_string(*state));
}

static int property_get_settings(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return append_settings(reply, userdata);
}

static int property_get_statistics(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const int *ksm_dirfd = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sx}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ksm_statistics_count; i++) {
                int64_t value;
                /* Counters the kernel lacks are left out; others that fail to read too, with a note. */
                r = ksm_counter_read(*ksm_dirfd, ksm_statistics_names[i], &value);
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        log_debug_errno(r, "Cannot read KSM counter %s: %m", ksm_statistics_names[i]);
                        continue;
                }
                r = sd_bus_message_append(reply, "{sx}", ksm_statistics_names[i], value);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* Every state, in the state machine's order, with the microseconds spent in it. */
static int property_get_time_in_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        uint64_t usec[_THROTTLE_STATE_MAX];
        int r;

        daemon_time_in_state(userdata, usec);
        r = sd_bus_message_open_container(reply, 'a', "{st}");
        if (r < 0)
                return r;
        for (int s = 0; s < _THROTTLE_STATE_MAX; s++) {
                r = sd_bus_message_append(reply, "{st}", throttle_state_to_string(s), usec[s]);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* Each origin that kicked, in the order they first did, then "other" if any kick was
 * counted there. */
static int property_get_kicks_by_origin(sd_bus *bus, const char *path, const char *interface, const char *property,
                                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct daemon_stats *stats = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{st}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < stats->n_origins; i++) {
                r = sd_bus_message_append(reply, "{st}", stats->origins[i].name, stats->origins[i].kicks);
                if (r < 0)
                        return r;
        }
        if (stats->other_kicks > 0) {
                r = sd_bus_message_append(reply, "{st}", DAEMON_STATS_OTHER, stats->other_kicks);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PROJECT_VERSION);
}

/* Sets *error to name with a message whose %m names error. */
static void bus_error_set_errno(sd_bus_error *error, const char *name, int errno_value, const char *format, ...)
        __attribute__((format(printf, 4, 5)));
static void bus_error_set_errno(sd_bus_error *error, const char *name, int errno_value, const char *format, ...) {
        char message[512];
        va_list ap;

        errno = abs(errno_value);
        va_start(ap, format);
        vsnprintf(message, sizeof message, format, ap);
        va_end(ap);
        sd_bus_error_set(error, name, message);
}

/* The D-Bus error for a failed kick: what failed, where, and the errno text. */
static void bus_error_from_failure(const struct bus_object *o, const struct daemon_failure *failure, int r,
                                   sd_bus_error *error) {
        /* What the daemon could not do to failure->knob: KsmUnavailable names the knob. */
        static const char *const knob_failures[] = {
                [DAEMON_FAILURE_READ_KNOB] = "read",
                [DAEMON_FAILURE_WRITE_KNOB] = "write",
                [DAEMON_FAILURE_RESTORE_KNOB] = "restore",
        };

        if (failure->kind == DAEMON_FAILURE_SAVE_STATE)
                bus_error_set_errno(error, SD_BUS_ERROR_FAILED, r,
                                    "Cannot save the host's KSM settings in %s (%m), not throttling",
                                    o->daemon->runtime_directory);
        else if ((size_t) failure->kind < sizeof knob_failures / sizeof knob_failures[0] && knob_failures[failure->kind])
                bus_error_set_errno(error, KSM_THROTTLER_ERROR_KSM_UNAVAILABLE, r, "Cannot %s KSM knob %s: %m",
                                    knob_failures[failure->kind], ksm_knob_name(failure->knob));
        else
                sd_bus_error_set_errno(error, r);
}

static void announce_changes(struct bus_object *o);

void bus_object_kick_arguments(sd_bus_message *m, const char **ret_reason, const char **ret_application_id) {
        *ret_reason = *ret_application_id = "";
        if (sd_bus_message_is_method_call(m, NULL, "KickWithReason") <= 0)
                return;
        if (sd_bus_message_rewind(m, true) < 0 || sd_bus_message_read(m, "ss", ret_reason, ret_application_id) < 0)
                *ret_reason = *ret_application_id = "";
}

/* One line per kick, accepted or refused: who (uid, pid, unit), why, and the verdict. */
static void log_kick(const struct kick_record *k, const char *sender, const char *verdict) {
        char reason[4 * KICK_TEXT_MAX + 1], application_id[4 * KICK_TEXT_MAX + 1];

        escape_into(reason, sizeof reason, k->reason);
        escape_into(application_id, sizeof application_id, k->application_id);
        log_info("Kick from %s (%s)%s%s%s%s%s%s: %s", sender ?: "?", k->origin, k->application_id[0] ? " by \"" : "",
                 application_id, k->application_id[0] ? "\"" : "", k->reason[0] ? ", reason \"" : "", reason,
                 k->reason[0] ? "\"" : "", verdict);
}

/* log_kick() for a refused kick, within the rate limit. */
static void log_refusal(struct bus_object *o, const struct kick_record *k, const char *sender, const char *verdict) {
        if (log_ratelimit_allow(&o->refusals_logged, clock_now_usec(CLOCK_MONOTONIC), "refused kicks"))
                log_kick(k, sender, verdict);
}

/* On whose behalf a kick came, for KicksByOrigin: the application ID it gave, else the
 * caller's systemd unit, else unknown (NULL). */
static const char *kick_origin(const struct kick_record *k, const char *unit) {
        if (k->application_id[0])
                return k->application_id;
        if (unit && unit[0])
                return unit;
        return NULL;
}

/* Kicks the daemon for k, counted for unit's origin; k becomes LastKick if it took. */
static int apply_kick(struct bus_object *o, const struct kick_record *k, const char *unit,
                      struct daemon_failure *failure) {
        int r;

        o->kicking = true;
        r = daemon_kick(o->daemon, kick_origin(k, unit), failure);
        o->kicking = false;
        if (r >= 0) {
                o->last_kick = *k;
                o->last_kick.usec = o->daemon->last_kick_usec;
        }
        announce_changes(o);
        return r;
}

static void on_kick_authorized(sd_bus_message *m, const sd_bus_error *denied, const struct caller *caller,
                               void *userdata) {
        struct bus_object *o = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct daemon_failure failure = {};
        struct kick_record *k = &o->kick_in_progress;
        const char *reason, *application_id, *sender = sd_bus_message_get_sender(m);
        int r;

        bus_object_kick_arguments(m, &reason, &application_id);
        k->usec = 0;
        /* Checked on arrival to fit; snprintf keeps that true whatever happens. */
        snprintf(k->reason, sizeof k->reason, "%s", reason);
        snprintf(k->application_id, sizeof k->application_id, "%s", application_id);
        caller_format(caller, k->origin, sizeof k->origin);

        if (denied) {
                log_refusal(o, k, sender, denied->message ?: denied->name);
                r = sd_bus_reply_method_error(m, denied);
        } else {
                r = apply_kick(o, k, caller ? caller->unit : NULL, &failure);
                if (r < 0) {
                        bus_error_from_failure(o, &failure, r, &error);
                        log_kick(k, sender, error.message ?: error.name);
                        r = sd_bus_reply_method_error(m, &error);
                } else {
                        log_kick(k, sender, "accepted");
                        r = sd_bus_reply_method_return(m, NULL);
                }
        }
        if (r < 0)
                log_debug_errno(r, "Cannot reply to %s from %s: %m", sd_bus_message_get_member(m), sender);
}

/* Texts of a handed-over record, written by the daemon's user only but shown on the bus:
 * cut to fit, then UTF-8 without control characters (a cut sequence becomes '?'). */
static void copy_shown(char *dst, size_t size, const char *src, size_t src_size) {
        size_t n = strnlen(src, (size - 1 < src_size ? size - 1 : src_size));
        memcpy(dst, src, n);
        dst[n] = '\0';
        ksm_sanitize_name(dst);
}

int bus_object_apply_handover(struct bus_object *o, uint64_t now_boottime_usec) {
        struct daemon_failure failure = {};
        struct kick_record *k = &o->kick_in_progress;
        struct handover h;
        char verdict[128];
        int r;

        r = handover_take(o->daemon->runtime_directory, now_boottime_usec, &h);
        if (r < 0)
                return r == -ENOENT ? 0 : r;
        *k = (struct kick_record) {};
        copy_shown(k->reason, sizeof k->reason, h.reason, sizeof h.reason);
        copy_shown(k->application_id, sizeof k->application_id, h.application_id, sizeof h.application_id);
        copy_shown(k->origin, sizeof k->origin, h.origin, sizeof h.origin);
        r = apply_kick(o, k, h.unit, &failure);
        snprintf(verdict, sizeof verdict, "%s (%" PRIu64 " kick(s) handed over by the previous instance, PID %ld)",
                 r >= 0 ? "accepted" : "failed", h.kicks, (long) h.pid);
        log_kick(k, "the previous instance", verdict);
        return r < 0 ? r : 1;
}

static int method_kick(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct bus_object *o = userdata;
        int r;

        r = authorize(o->authorizer, m, POLKIT_ACTION_KICK, on_kick_authorized, o);
        if (r < 0)
                return r;
        return 1; /* replied (now or later) by on_kick_authorized */
}

static int method_kick_with_reason(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *reason, *application_id;
        int r;

        /* sd-bus has checked that both are valid UTF-8 without NUL. */
        r = sd_bus_message_read(m, "ss", &reason, &application_id);
        if (r < 0)
                return r;
        if (strlen(reason) > KICK_TEXT_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The reason is %zu bytes long; at most " STRINGIFY(KICK_TEXT_MAX) " are accepted",
                                         strlen(reason));
        if (strlen(application_id) > KICK_TEXT_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The application ID is %zu bytes long; at most " STRINGIFY(KICK_TEXT_MAX)
                                         " are accepted",
                                         strlen(application_id));
        return method_kick(m, userdata, error);
}

static int property_get_last_kick(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct bus_object *o = userdata;
        const struct kick_record *k = &o->last_kick;
        return sd_bus_message_append(reply, "(tsss)", k->usec, k->reason, k->application_id, k->origin);
}

/* Two tables on one interface: the properties read the core's values in place, by
 * offset into struct daemon; Kick and StateChanged belong to the bus object, which
 * holds the authorizer. */
static const sd_bus_vtable properties_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", property_get_state, offsetof(struct daemon, throttle.state),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Settings", "a{sv}", property_get_settings, offsetof(struct daemon, applied),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("InitialSettings", "a{sv}", property_get_settings, offsetof(struct daemon, host),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NextTransitionUSec", "t", NULL, offsetof(struct daemon, next_transition_usec),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("KickCount", "t", NULL, offsetof(struct daemon, kick_count), 0),
        SD_BUS_PROPERTY("LastKickUSec", "t", NULL, offsetof(struct daemon, last_kick_usec), 0),
        SD_BUS_PROPERTY("KicksByOrigin", "a{st}", property_get_kicks_by_origin, offsetof(struct daemon, stats), 0),
        SD_BUS_PROPERTY("TimeInStateUSec", "a{st}", property_get_time_in_state, 0, 0),
        SD_BUS_PROPERTY("Statistics", "a{sx}", property_get_statistics, offsetof(struct daemon, ksm_dirfd), 0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable members_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Kick", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_kick, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("KickWithReason", SD_BUS_ARGS("s", reason, "s", application_id), SD_BUS_NO_RESULT,
                                method_kick_with_reason, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("LastKick", "(tsss)", property_get_last_kick, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_SIGNAL_WITH_ARGS("StateChanged", SD_BUS_ARGS("s", state, "s", previous), 0),
        SD_BUS_VTABLE_END,
};

static void mark_published(struct bus_object *o) {
        const struct daemon *d = o->daemon;

        o->published = (struct published_state) {
                .state = d->throttle.state,
                .settings = d->applied,
                .host = d->host,
                .next_transition_usec = d->next_transition_usec,
                .last_kick_usec = o->last_kick.usec,
        };
}

int bus_object_new(sd_bus *bus, struct daemon *d, struct authorizer *authorizer, struct bus_object **ret) {
        _cleanup_(bus_object_freep) struct bus_object *o = NULL;
        int r;

        o = calloc(1, sizeof *o);
        if (!o)
                return log_oom();
        o->bus = sd_bus_ref(bus);
        o->daemon = d;
        o->refusals_logged = (struct log_ratelimit) LOG_RATELIMIT_REFUSALS;
        o->authorizer = authorizer;
        r = sd_bus_add_object_vtable(bus, &o->properties_slot, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE,
                                     properties_vtable, d);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, &o->members_slot, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE,
                                             members_vtable, o);
        if (r < 0)
                return log_error_errno(r, "Cannot register %s on the bus: %m", KSM_THROTTLER_OBJECT_PATH);
        r = bus_savings_new(bus, authorizer, &o->savings);
        if (r < 0)
                return r;
        mark_published(o);
        *ret = o;
        o = NULL;
        return 0;
}

struct bus_object *bus_object_free(struct bus_object *o) {
        if (!o)
                return NULL;
        bus_savings_free(o->savings);
        sd_bus_slot_unref(o->members_slot);
        sd_bus_slot_unref(o->properties_slot);
        sd_bus_unref(o->bus);
        free(o);
        return NULL;
}

/* The one place that announces changes: PropertiesChanged for each emitting property
 * whose value differs from what was last announced, and StateChanged. */
static void announce_changes(struct bus_object *o) {
        struct daemon *d = o->daemon;
        struct published_state *was = &o->published;
        const char *changed[6];
        size_t n = 0;
        int r;

        if (sd_bus_is_open(o->bus) <= 0)
                return;
        if (d->throttle.state != was->state)
                changed[n++] = "State";
        if (!ksm_settings_equal(&d->applied, &was->settings))
                changed[n++] = "Settings";
        if (!ksm_settings_equal(&d->host, &was->host))
                changed[n++] = "InitialSettings";
        if (d->next_transition_usec != was->next_transition_usec)
                changed[n++] = "NextTransitionUSec";
        if (o->last_kick.usec != was->last_kick_usec)
                changed[n++] = "LastKick";
        changed[n] = NULL;

        if (n > 0) {
                r = sd_bus_emit_properties_changed_strv(o->bus, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE,
                                                        (char **) changed);
                if (r < 0)
                        log_warning_errno(r, "Cannot emit PropertiesChanged: %m");
        }
        if (d->throttle.state != was->state) {
                r = sd_bus_emit_signal(o->bus, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE, "StateChanged", "ss",
                                       throttle_state_to_string(d->throttle.state), throttle_state_to_string(was->state));
                if (r < 0)
                        log_warning_errno(r, "Cannot emit StateChanged: %m");
        }

        mark_published(o);
}

static void on_daemon_changed(struct daemon *d, void *userdata) {
        struct bus_object *o = userdata;
        /* During a kick, announced once it is over, together with LastKick. */
        if (!o->kicking)
                announce_changes(o);
}

static void on_daemon_reset(struct daemon *d, void *userdata) {
        mark_published(userdata);
}

static void on_config_reloaded(struct daemon *d, void *userdata) {
        struct bus_object *o = userdata;
        if (o->authorizer)
                authorizer_set_timeout(o->authorizer, d->config.polkit_timeout_usec);
}

const struct daemon_observer bus_object_observer = {
        .changed = on_daemon_changed,
        .reset = on_daemon_reset,
        .config_reloaded = on_config_reloaded,
};
