/* SPDX-License-Identifier: Apache-2.0 */
#include "bus-object.h"

#include <errno.h>
#include <stddef.h>

#include "log.h"

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
        struct daemon *d = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sx}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ksm_statistics_count; i++) {
                int64_t value;
                /* Counters the kernel lacks are left out; others that fail to read too, with a note. */
                r = ksm_counter_read(d->ksm_dirfd, ksm_statistics_names[i], &value);
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

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PROJECT_VERSION);
}

static void on_kick_authorized(sd_bus_message *m, const sd_bus_error *denied, void *userdata) {
        struct daemon *d = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (denied)
                r = sd_bus_reply_method_error(m, denied);
        else if (daemon_kick(d, &error) < 0)
                r = sd_bus_reply_method_error(m, &error);
        else
                r = sd_bus_reply_method_return(m, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot reply to Kick from %s: %m", sd_bus_message_get_sender(m));
        sd_bus_error_free(&error);
}

static int method_kick(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct daemon *d = userdata;
        int r;

        r = authorize(d->authorizer, m, POLKIT_ACTION_KICK, on_kick_authorized, d);
        if (r < 0)
                return r;
        return 1; /* replied (now or later) by on_kick_authorized */
}

static const sd_bus_vtable throttler_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", property_get_state, offsetof(struct daemon, throttle.state), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Settings", "a{sv}", property_get_settings, offsetof(struct daemon, applied), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("InitialSettings", "a{sv}", property_get_settings, offsetof(struct daemon, host), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NextTransitionUSec", "t", NULL, offsetof(struct daemon, next_transition_usec),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("KickCount", "t", NULL, offsetof(struct daemon, kick_count), 0),
        SD_BUS_PROPERTY("LastKickUSec", "t", NULL, offsetof(struct daemon, last_kick_usec), 0),
        SD_BUS_PROPERTY("Statistics", "a{sx}", property_get_statistics, 0, 0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Kick", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_kick, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("StateChanged", SD_BUS_ARGS("s", state, "s", previous), 0),
        SD_BUS_VTABLE_END,
};

int bus_object_add(struct daemon *d) {
        int r;

        r = sd_bus_add_object_vtable(d->bus, NULL, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE, throttler_vtable, d);
        if (r < 0)
                return log_error_errno(r, "Cannot register %s on the bus: %m", KSM_THROTTLER_OBJECT_PATH);
        return 0;
}

void bus_publish_changes(struct daemon *d) {
        struct published_state *was = &d->published;
        const char *changed[5];
        size_t n = 0;
        int r;

        if (!d->bus || sd_bus_is_open(d->bus) <= 0)
                return;

        if (d->throttle.state != was->state)
                changed[n++] = "State";
        if (!ksm_settings_equal(&d->applied, &was->settings))
                changed[n++] = "Settings";
        if (!ksm_settings_equal(&d->host, &was->host))
                changed[n++] = "InitialSettings";
        if (d->next_transition_usec != was->next_transition_usec)
                changed[n++] = "NextTransitionUSec";
        changed[n] = NULL;

        if (n > 0) {
                r = sd_bus_emit_properties_changed_strv(d->bus, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE,
                                                        (char **) changed);
                if (r < 0)
                        log_warning_errno(r, "Cannot emit PropertiesChanged: %m");
        }
        if (d->throttle.state != was->state) {
                r = sd_bus_emit_signal(d->bus, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE, "StateChanged", "ss",
                                       throttle_state_to_string(d->throttle.state), throttle_state_to_string(was->state));
                if (r < 0)
                        log_warning_errno(r, "Cannot emit StateChanged: %m");
        }

        bus_mark_published(d);
}

void bus_mark_published(struct daemon *d) {
        d->published = (struct published_state) {
                .state = d->throttle.state,
                .settings = d->applied,
                .host = d->host,
                .next_transition_usec = d->next_transition_usec,
        };
}
