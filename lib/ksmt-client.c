/* SPDX-License-Identifier: Apache-2.0 */
/* The client side of org.kata.KsmThrottler: see ksmt-client.h. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fd-util.h"
#include "ksmt-client.h"
#include "parse-util.h"

#define SYSTEMD_BUS_NAME "org.freedesktop.systemd1"
#define SYSTEMD_MANAGER_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER_INTERFACE "org.freedesktop.systemd1.Manager"
#define SYSTEMD_UNIT_INTERFACE "org.freedesktop.systemd1.Unit"
#define PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

/* How long one question to systemd may take, and how often a pending activation is checked. */
#define UNIT_QUERY_TIMEOUT_USEC (UINT64_C(2) * USEC_PER_SEC)
#define ACTIVATION_CHECK_INTERVAL_USEC USEC_PER_SEC

static uint64_t now_monotonic_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* A method call with up to two string arguments (NULL: none), with or without bus activation. */
static int new_call(sd_bus *bus, const char *destination, const char *path, const char *interface, const char *member,
                    bool auto_start, const char *arg1, const char *arg2, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &call, destination, path, interface, member);
        if (r < 0)
                return r;
        for (const char *const *arg = (const char *const[]) { arg1, arg2, NULL }; *arg; arg++) {
                r = sd_bus_message_append_basic(call, 's', *arg);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_set_auto_start(call, auto_start);
        if (r < 0)
                return r;
        *ret = call;
        call = NULL;
        return 0;
}

int ksmt_bus_open(sd_bus **ret) {
        return sd_bus_open_system(ret);
}

int ksmt_name_has_owner(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int owned, r;

        r = sd_bus_call_method(bus, DBUS_DRIVER_NAME, DBUS_DRIVER_PATH, DBUS_DRIVER_INTERFACE, "NameHasOwner", NULL,
                               &reply, "s", name);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "b", &owned);
        if (r < 0)
                return r;
        return owned ? 1 : 0;
}

int ksmt_name_get_owner(sd_bus *bus, const char *name, char **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *owner;
        int r;

        r = sd_bus_call_method(bus, DBUS_DRIVER_NAME, DBUS_DRIVER_PATH, DBUS_DRIVER_INTERFACE, "GetNameOwner", &error,
                               &reply, "s", name);
        if (r < 0) {
                if (sd_bus_error_has_name(&error, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                        *ret = NULL;
                        return 0;
                }
                return r;
        }
        r = sd_bus_message_read(reply, "s", &owner);
        if (r < 0)
                return r;
        *ret = strdup(owner);
        return *ret ? 1 : -ENOMEM;
}

/* ---------------------------------------------------------------------------
 * The systemd unit
 */

/* Reads one property of a unit into a buffer (s), a bool (b), a u64 (t) or a job id ((uo)). */
static int unit_get(sd_bus *bus, const char *path, const char *property, char type, void *ret, size_t size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        int r;

        r = new_call(bus, SYSTEMD_BUS_NAME, path, PROPERTIES_INTERFACE, "Get", false, SYSTEMD_UNIT_INTERFACE, property,
                     &call);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, call, UNIT_QUERY_TIMEOUT_USEC, NULL, &reply);
        if (r < 0)
                return r;

        switch (type) {
        case 's': {
                const char *s;
                r = sd_bus_message_read(reply, "v", "s", &s);
                if (r >= 0)
                        snprintf(ret, size, "%s", s);
                return r;
        }
        case 'b': {
                int b; /* sd-bus reads a D-Bus boolean as int */
                r = sd_bus_message_read(reply, "v", "b", &b);
                if (r >= 0)
                        *(bool *) ret = b;
                return r;
        }
        case 't':
                return sd_bus_message_read(reply, "v", "t", ret);
        case 'j': {
                const char *job_path;
                return sd_bus_message_read(reply, "v", "(uo)", ret, &job_path);
        }
        }
        return -EINVAL;
}

/* The unit's Condition*= settings as "ConditionPathExists=/x, ConditionPathIsDirectory=|!/y" into
 * buf ("" if none); truncated to size. */
static int unit_conditions(sd_bus *bus, const char *path, char *buf, size_t size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        const char *type, *parameter;
        int trigger, negate, state, r; /* sd-bus reads a D-Bus boolean as int */
        size_t n = 0;

        buf[0] = '\0';
        r = new_call(bus, SYSTEMD_BUS_NAME, path, PROPERTIES_INTERFACE, "Get", false, SYSTEMD_UNIT_INTERFACE,
                     "Conditions", &call);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, call, UNIT_QUERY_TIMEOUT_USEC, NULL, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'v', "a(sbbsi)");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(sbbsi)");
        if (r < 0)
                return r;
        while (n < size &&
               (r = sd_bus_message_read(reply, "(sbbsi)", &type, &trigger, &negate, &parameter, &state)) > 0) {
                int len = snprintf(buf + n, size - n, "%s%s=%s%s%s", n ? ", " : "", type, trigger ? "|" : "",
                                   negate ? "!" : "", parameter);
                if (len < 0)
                        break;
                n += (size_t) len;
        }
        return r < 0 ? r : 0;
}

static enum ksmt_unit_verdict unit_verdict(const struct ksmt_unit_state *state, uint32_t job, bool condition_result,
                                           uint64_t condition_timestamp) {
        if (strcmp(state->load_state, "masked") == 0)
                return KSMT_UNIT_MASKED;
        if (strcmp(state->load_state, "not-found") == 0)
                return KSMT_UNIT_NOT_FOUND;
        if (job != 0 || strcmp(state->active_state, "activating") == 0)
                return KSMT_UNIT_STARTABLE; /* a start is under way: wait for it */
        if (strcmp(state->active_state, "failed") == 0)
                return KSMT_UNIT_FAILED;
        if (strcmp(state->active_state, "active") == 0 || strcmp(state->active_state, "reloading") == 0)
                return KSMT_UNIT_ACTIVE;
        /* A unit never started has ConditionResult=no too: only a checked condition counts. */
        if (!condition_result && condition_timestamp != 0)
                return KSMT_UNIT_CONDITION_FAILED;
        return KSMT_UNIT_STARTABLE;
}

int ksmt_unit_check(sd_bus *bus, struct ksmt_unit_state *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        struct ksmt_unit_state state = { .verdict = KSMT_UNIT_UNKNOWN };
        const char *path;
        bool condition_result = true;
        uint64_t condition_timestamp = 0;
        int r;

        /* LoadUnit also answers for a unit systemd has not loaded yet (GetUnit would not). */
        for (const char *const *member = (const char *const[]) { "GetUnit", "LoadUnit", NULL }; *member; member++) {
                call = sd_bus_message_unref(call);
                r = new_call(bus, SYSTEMD_BUS_NAME, SYSTEMD_MANAGER_PATH, SYSTEMD_MANAGER_INTERFACE, *member, false,
                             KSM_THROTTLER_UNIT, NULL, &call);
                if (r < 0)
                        return r;
                r = sd_bus_call(bus, call, UNIT_QUERY_TIMEOUT_USEC, NULL, &reply);
                if (r >= 0)
                        break;
        }
        if (r < 0 || sd_bus_message_read(reply, "o", &path) < 0) {
                *ret = state; /* no systemd here, or it knows nothing: unknown */
                return 0;
        }

        if (unit_get(bus, path, "LoadState", 's', state.load_state, sizeof state.load_state) < 0 ||
            unit_get(bus, path, "ActiveState", 's', state.active_state, sizeof state.active_state) < 0) {
                *ret = state;
                return 0;
        }
        /* Optional: older or partial implementations may lack them. */
        (void) unit_get(bus, path, "SubState", 's', state.sub_state, sizeof state.sub_state);
        /* Not known is not "no job": a start job may well be queued. */
        if (unit_get(bus, path, "Job", 'j', &state.job, 0) < 0)
                state.job = KSMT_UNIT_JOB_UNKNOWN;
        (void) unit_get(bus, path, "ConditionResult", 'b', &condition_result, 0);
        (void) unit_get(bus, path, "ConditionTimestamp", 't', &condition_timestamp, 0);
        if (state.job == 0 && strcmp(state.active_state, "inactive") == 0)
                (void) unit_conditions(bus, path, state.conditions, sizeof state.conditions);

        state.verdict = unit_verdict(&state, state.job, condition_result, condition_timestamp);
        *ret = state;
        return 0;
}

const char *ksmt_unit_verdict_to_string(enum ksmt_unit_verdict verdict) {
        static const char *const table[] = {
                [KSMT_UNIT_UNKNOWN] = "unknown to systemd, or no systemd",
                [KSMT_UNIT_STARTABLE] = "startable",
                [KSMT_UNIT_ACTIVE] = "active",
                [KSMT_UNIT_NOT_FOUND] = "not found",
                [KSMT_UNIT_MASKED] = "masked",
                [KSMT_UNIT_FAILED] = "failed",
                [KSMT_UNIT_CONDITION_FAILED] = "skipped: a start condition was not met",
        };

        if ((size_t) verdict >= sizeof table / sizeof table[0])
                return "unknown";
        return table[verdict];
}

/* ---------------------------------------------------------------------------
 * Calls
 */

/* Checks in a row that find a unit with conditions inactive with no job, while the bus still
 * waits for the name: systemd makes a job for an activation request at once, so after this many
 * (one a second) nothing is starting it. */
#define SKIPPED_AFTER_IDLE_CHECKS 3

/* -errno (with error set, if given) if the name has no owner and systemd says the unit will not
 * bring it up; 0 otherwise. *idle_checks counts the checks in a row that found the unit idle. */
static int activation_is_hopeless(sd_bus *bus, unsigned *idle_checks, sd_bus_error *error) {
        struct ksmt_unit_state unit;
        int r;

        if (ksmt_name_has_owner(bus, KSM_THROTTLER_BUS_NAME) != 0)
                return 0; /* it is there (it just has not answered yet), or we cannot tell */
        r = ksmt_unit_check(bus, &unit);
        if (r < 0)
                return 0;
        /* systemd 252 unloads a unit whose start a condition skipped, so that a new look finds
         * ConditionResult unset; the bus meanwhile waits for the name until its own time-out. */
        if (unit.verdict == KSMT_UNIT_STARTABLE && unit.job == 0 && unit.conditions[0] &&
            strcmp(unit.active_state, "inactive") == 0) {
                if (++*idle_checks < SKIPPED_AFTER_IDLE_CHECKS)
                        return 0;
                return sd_bus_error_setf(error, KSMT_ERROR_UNIT_NOT_STARTABLE,
                                         "the service is not running and its unit %s cannot start it: %s "
                                         "(it stays %s/%s with no start job; its conditions: %s)",
                                         KSM_THROTTLER_UNIT, ksmt_unit_verdict_to_string(KSMT_UNIT_CONDITION_FAILED),
                                         unit.active_state, unit.sub_state[0] ? unit.sub_state : "-",
                                         unit.conditions);
        }
        *idle_checks = 0;
        switch (unit.verdict) {
        case KSMT_UNIT_MASKED:
        case KSMT_UNIT_FAILED:
        case KSMT_UNIT_CONDITION_FAILED:
                return sd_bus_error_setf(error, KSMT_ERROR_UNIT_NOT_STARTABLE,
                                         "the service is not running and its unit %s cannot start it: %s (%s/%s)",
                                         KSM_THROTTLER_UNIT, ksmt_unit_verdict_to_string(unit.verdict),
                                         unit.active_state, unit.sub_state[0] ? unit.sub_state : "-");
        default:
                return 0;
        }
}

struct pending_call {
        bool done;
        sd_bus_message *reply;
};

static int on_call_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct pending_call *pending = userdata;

        pending->reply = sd_bus_message_ref(m);
        pending->done = true;
        return 0;
}

int ksmt_call(sd_bus *bus, sd_bus_message *call, uint64_t timeout_usec, sd_bus_error *ret_error,
              sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        struct pending_call pending = {};
        uint64_t next_check = now_monotonic_usec() + ACTIVATION_CHECK_INTERVAL_USEC;
        unsigned idle_checks = 0;
        int r;

        r = sd_bus_call_async(bus, &slot, call, on_call_reply, &pending, timeout_usec);
        if (r < 0)
                return r;

        while (!pending.done) {
                uint64_t now;

                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;

                now = now_monotonic_usec();
                if (now >= next_check) {
                        r = activation_is_hopeless(bus, &idle_checks, ret_error);
                        if (r < 0)
                                return r;
                        next_check = now_monotonic_usec() + ACTIVATION_CHECK_INTERVAL_USEC;
                        continue;
                }
                r = sd_bus_wait(bus, next_check - now);
                if (r < 0)
                        return r;
        }

        if (sd_bus_message_is_method_error(pending.reply, NULL)) {
                r = sd_bus_error_copy(ret_error, sd_bus_message_get_error(pending.reply));
                sd_bus_message_unref(pending.reply);
                return r < 0 ? r : -EIO;
        }
        if (ret_reply)
                *ret_reply = pending.reply;
        else
                sd_bus_message_unref(pending.reply);
        return 0;
}

/* ---------------------------------------------------------------------------
 * Kick
 */

/* Kick(), or KickWithReason() when reason or application_id is not NULL. */
static int new_kick(sd_bus *bus, const char *reason, const char *application_id, unsigned flags, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        bool with_reason = reason || application_id;
        int r;

        if (with_reason && ((reason && strlen(reason) > KSMT_KICK_TEXT_MAX) ||
                            (application_id && strlen(application_id) > KSMT_KICK_TEXT_MAX)))
                return -E2BIG;
        r = new_call(bus, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE,
                     with_reason ? "KickWithReason" : "Kick", true, NULL, NULL, &call);
        if (r < 0)
                return r;
        if (with_reason) {
                r = sd_bus_message_append(call, "ss", reason ?: "", application_id ?: "");
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_set_allow_interactive_authorization(call, flags & KSMT_KICK_INTERACTIVE);
        if (r < 0)
                return r;
        *ret = call;
        call = NULL;
        return 0;
}

int ksmt_kick(sd_bus *bus, uint64_t timeout_usec, unsigned flags, sd_bus_error *ret_error) {
        return ksmt_kick_with_reason(bus, NULL, NULL, timeout_usec, flags, ret_error);
}

int ksmt_kick_with_reason(sd_bus *bus, const char *reason, const char *application_id, uint64_t timeout_usec,
                          unsigned flags, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int r;

        r = new_kick(bus, reason, application_id, flags, &call);
        if (r < 0)
                return r;
        return ksmt_call(bus, call, timeout_usec ?: KSMT_KICK_TIMEOUT_USEC, ret_error, NULL);
}

int ksmt_kick_no_wait(sd_bus *bus, unsigned flags, sd_bus_error *ret_error) {
        return ksmt_kick_with_reason_no_wait(bus, NULL, NULL, flags, ret_error);
}

int ksmt_kick_with_reason_no_wait(sd_bus *bus, const char *reason, const char *application_id, unsigned flags,
                                  sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *ping = NULL;
        int r;

        r = new_kick(bus, reason, application_id, flags, &call);
        if (r < 0)
                return r;
        r = sd_bus_message_set_expect_reply(call, false);
        if (r < 0)
                return r;
        r = sd_bus_send(bus, call, NULL);
        if (r < 0)
                return r;
        if (!(flags & KSMT_KICK_CONFIRM_RECEIPT))
                return sd_bus_flush(bus);

        /* The bus keeps the order of one sender's messages to one destination (also through
         * activation), and the daemon handles them in order. */
        r = new_call(bus, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH, "org.freedesktop.DBus.Peer", "Ping", true,
                     NULL, NULL, &ping);
        if (r < 0)
                return r;
        return ksmt_call(bus, ping, 0, ret_error, NULL);
}

int ksmt_kick_async(sd_bus *bus, sd_bus_slot **ret_slot, uint64_t timeout_usec, unsigned flags,
                    sd_bus_message_handler_t callback, void *userdata) {
        return ksmt_kick_with_reason_async(bus, NULL, NULL, ret_slot, timeout_usec, flags, callback, userdata);
}

int ksmt_kick_with_reason_async(sd_bus *bus, const char *reason, const char *application_id, sd_bus_slot **ret_slot,
                                uint64_t timeout_usec, unsigned flags, sd_bus_message_handler_t callback,
                                void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int r;

        r = new_kick(bus, reason, application_id, flags, &call);
        if (r < 0)
                return r;
        return sd_bus_call_async(bus, ret_slot, call, callback, userdata, timeout_usec ?: KSMT_KICK_TIMEOUT_USEC);
}

/* ---------------------------------------------------------------------------
 * Properties
 */

static void setting_done(struct ksmt_setting *s) {
        free(s->name);
        free(s->string);
        *s = (struct ksmt_setting) {};
}

void ksmt_settings_done(struct ksmt_settings *s) {
        for (size_t i = 0; i < s->n_items; i++)
                setting_done(&s->items[i]);
        free(s->items);
        *s = (struct ksmt_settings) {};
}

void ksmt_counters_done(struct ksmt_counters *c) {
        for (size_t i = 0; i < c->n_items; i++)
                free(c->items[i].name);
        free(c->items);
        *c = (struct ksmt_counters) {};
}

void ksmt_tallies_done(struct ksmt_tallies *t) {
        for (size_t i = 0; i < t->n_items; i++)
                free(t->items[i].name);
        free(t->items);
        *t = (struct ksmt_tallies) {};
}

void ksmt_properties_done(struct ksmt_properties *p) {
        free(p->state);
        free(p->version);
        ksmt_settings_done(&p->settings);
        ksmt_settings_done(&p->initial_settings);
        ksmt_counters_done(&p->statistics);
        ksmt_kick_done(&p->last_kick);
        ksmt_tallies_done(&p->kicks_by_origin);
        ksmt_tallies_done(&p->time_in_state);
        *p = (struct ksmt_properties) {};
}

/* One value of a{sv}: u, t or s are kept; anything else is skipped and kept as "other",
 * so that one odd knob does not make the whole reply unreadable. */
static int read_setting_value(sd_bus_message *m, struct ksmt_setting *setting) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;

        if (strcmp(contents, "u") == 0) {
                uint32_t v;
                r = sd_bus_message_read_basic(m, 'u', &v);
                setting->type = KSMT_VALUE_NUMBER;
                setting->number = v;
        } else if (strcmp(contents, "t") == 0) {
                r = sd_bus_message_read_basic(m, 't', &setting->number);
                setting->type = KSMT_VALUE_NUMBER;
        } else if (strcmp(contents, "s") == 0) {
                const char *s;
                r = sd_bus_message_read_basic(m, 's', &s);
                if (r >= 0) {
                        setting->string = strdup(s);
                        if (!setting->string)
                                return -ENOMEM;
                }
                setting->type = KSMT_VALUE_STRING;
        } else {
                r = sd_bus_message_skip(m, contents);
                setting->type = KSMT_VALUE_OTHER;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

/* Appends the entries of an a{sv} of knobs to *settings (which the caller emptied). */
static int read_settings(sd_bus_message *m, struct ksmt_settings *settings) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                struct ksmt_setting setting = {};
                const char *name;

                r = sd_bus_message_read_basic(m, 's', &name);
                if (r >= 0) {
                        setting.name = strdup(name);
                        r = setting.name ? read_setting_value(m, &setting) : -ENOMEM;
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r >= 0) {
                        struct ksmt_setting *items = reallocarray(settings->items, settings->n_items + 1,
                                                                  sizeof *items);
                        if (items) {
                                settings->items = items;
                                settings->items[settings->n_items++] = setting;
                                continue;
                        }
                        r = -ENOMEM;
                }
                setting_done(&setting);
                return r;
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

/* Appends the entries of an a{sx} of counters to *counters (which the caller emptied). */
static int read_counters(sd_bus_message *m, struct ksmt_counters *counters) {
        const char *name;
        int64_t value;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sx}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "{sx}", &name, &value)) > 0) {
                struct ksmt_counter *items = reallocarray(counters->items, counters->n_items + 1, sizeof *items);
                char *copy = strdup(name);

                if (items)
                        counters->items = items;
                if (!items || !copy) {
                        free(copy);
                        r = -ENOMEM;
                        break;
                }
                counters->items[counters->n_items++] = (struct ksmt_counter) { copy, value };
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

/* Appends the entries of an a{st} to *tallies (which the caller emptied). */
static int read_tallies(sd_bus_message *m, struct ksmt_tallies *tallies) {
        const char *name;
        uint64_t value;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{st}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "{st}", &name, &value)) > 0) {
                struct ksmt_tally *items = reallocarray(tallies->items, tallies->n_items + 1, sizeof *items);
                char *copy = strdup(name);

                if (items)
                        tallies->items = items;
                if (!items || !copy) {
                        free(copy);
                        r = -ENOMEM;
                        break;
                }
                tallies->items[tallies->n_items++] = (struct ksmt_tally) { copy, value };
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

static int read_string(sd_bus_message *m, char **ret) {
        const char *s;
        char *copy;
        int r;

        r = sd_bus_message_read_basic(m, 's', &s);
        if (r < 0)
                return r;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        free(*ret);
        *ret = copy;
        return 0;
}

static int read_u64(sd_bus_message *m, uint64_t *ret) {
        return sd_bus_message_read_basic(m, 't', ret);
}

enum property_kind { PROPERTY_STRING, PROPERTY_U64, PROPERTY_SETTINGS, PROPERTY_COUNTERS, PROPERTY_KICK, PROPERTY_TALLIES };

/* LastKick's (tsss). */
static int read_kick(sd_bus_message *m, struct ksmt_kick *ret) {
        const char *reason, *application_id, *origin;
        uint64_t usec;
        int r;

        r = sd_bus_message_read(m, "(tsss)", &usec, &reason, &application_id, &origin);
        if (r < 0)
                return r;
        ksmt_kick_done(ret);
        ret->reason = strdup(reason);
        ret->application_id = strdup(application_id);
        ret->origin = strdup(origin);
        if (!ret->reason || !ret->application_id || !ret->origin) {
                ksmt_kick_done(ret);
                return -ENOMEM;
        }
        ret->usec = usec;
        return 0;
}

void ksmt_kick_done(struct ksmt_kick *k) {
        free(k->reason);
        free(k->application_id);
        free(k->origin);
        *k = (struct ksmt_kick) {};
}

static const struct property_field {
        const char *name;
        const char *signature;
        enum ksmt_property bit;
        enum property_kind kind;
        size_t offset;
} property_fields[] = {
        { "State", "s", KSMT_PROPERTY_STATE, PROPERTY_STRING, offsetof(struct ksmt_properties, state) },
        { "Version", "s", KSMT_PROPERTY_VERSION, PROPERTY_STRING, offsetof(struct ksmt_properties, version) },
        { "NextTransitionUSec", "t", KSMT_PROPERTY_NEXT_TRANSITION, PROPERTY_U64,
          offsetof(struct ksmt_properties, next_transition_usec) },
        { "KickCount", "t", KSMT_PROPERTY_KICK_COUNT, PROPERTY_U64, offsetof(struct ksmt_properties, kick_count) },
        { "LastKickUSec", "t", KSMT_PROPERTY_LAST_KICK, PROPERTY_U64, offsetof(struct ksmt_properties, last_kick_usec) },
        { "Settings", "a{sv}", KSMT_PROPERTY_SETTINGS, PROPERTY_SETTINGS, offsetof(struct ksmt_properties, settings) },
        { "InitialSettings", "a{sv}", KSMT_PROPERTY_INITIAL_SETTINGS, PROPERTY_SETTINGS,
          offsetof(struct ksmt_properties, initial_settings) },
        { "Statistics", "a{sx}", KSMT_PROPERTY_STATISTICS, PROPERTY_COUNTERS,
          offsetof(struct ksmt_properties, statistics) },
        { "LastKick", "(tsss)", KSMT_PROPERTY_LAST_KICK_DETAIL, PROPERTY_KICK, offsetof(struct ksmt_properties, last_kick) },
        { "KicksByOrigin", "a{st}", KSMT_PROPERTY_KICKS_BY_ORIGIN, PROPERTY_TALLIES,
          offsetof(struct ksmt_properties, kicks_by_origin) },
        { "TimeInStateUSec", "a{st}", KSMT_PROPERTY_TIME_IN_STATE, PROPERTY_TALLIES,
          offsetof(struct ksmt_properties, time_in_state) },
};

static const struct property_field *property_field_find(const char *name) {
        for (size_t i = 0; i < sizeof property_fields / sizeof property_fields[0]; i++)
                if (strcmp(property_fields[i].name, name) == 0)
                        return &property_fields[i];
        return NULL;
}

/* Reads the value of field (the variant entered, its contents checked) into p, replacing
 * what was there. */
static int property_field_read(sd_bus_message *m, const struct property_field *field, struct ksmt_properties *p) {
        void *where = (char *) p + field->offset;

        switch (field->kind) {
        case PROPERTY_STRING:
                return read_string(m, where);
        case PROPERTY_U64:
                return read_u64(m, where);
        case PROPERTY_SETTINGS:
                ksmt_settings_done(where);
                return read_settings(m, where);
        case PROPERTY_COUNTERS:
                ksmt_counters_done(where);
                return read_counters(m, where);
        case PROPERTY_KICK:
                return read_kick(m, where);
        case PROPERTY_TALLIES:
                ksmt_tallies_done(where);
                return read_tallies(m, where);
        }
        return -EINVAL;
}

/* Reads a variant holding field's value; a value of the wrong type is a bad reply. */
static int property_variant_read(sd_bus_message *m, const struct property_field *field, struct ksmt_properties *p) {
        const char *contents;
        int r;

        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (!field) /* a newer daemon's property: not ours to read */
                return sd_bus_message_skip(m, "v");
        if (strcmp(contents, field->signature) != 0)
                return -EBADMSG;
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        r = property_field_read(m, field, p);
        if (r < 0)
                return r;
        p->present |= field->bit;
        return sd_bus_message_exit_container(m);
}

int ksmt_properties_read(sd_bus_message *m, struct ksmt_properties *p) {
        unsigned read_bits = 0;
        const char *name;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const struct property_field *field;

                r = sd_bus_message_read_basic(m, 's', &name);
                if (r < 0)
                        return r;
                field = property_field_find(name);
                r = property_variant_read(m, field, p);
                if (r < 0)
                        return r;
                if (field)
                        read_bits |= field->bit;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        return (int) read_bits;
}

int ksmt_get_properties(sd_bus *bus, struct ksmt_properties *ret, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        int r;

        r = new_call(bus, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH, PROPERTIES_INTERFACE, "GetAll", true,
                     KSM_THROTTLER_INTERFACE, NULL, &call);
        if (r < 0)
                return r;
        r = ksmt_call(bus, call, 0, ret_error, &reply);
        if (r < 0)
                return r;
        r = ksmt_properties_read(reply, ret);
        return r < 0 ? r : 0;
}

/* Get of one property into p. Without auto-start there is no activation to watch, and a plain
 * sd_bus_call() may be made from inside a callback (a monitor's), where ksmt_call() may not. */
static int get_property(sd_bus *bus, const struct property_field *field, bool auto_start, struct ksmt_properties *p,
                        sd_bus_error *ret_error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        int r;

        r = new_call(bus, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH, PROPERTIES_INTERFACE, "Get", auto_start,
                     KSM_THROTTLER_INTERFACE, field->name, &call);
        if (r < 0)
                return r;
        r = auto_start ? ksmt_call(bus, call, 0, ret_error, &reply) : sd_bus_call(bus, call, 0, ret_error, &reply);
        if (r < 0)
                return r;
        return property_variant_read(reply, field, p);
}

int ksmt_get_statistics(sd_bus *bus, struct ksmt_counters *ret, sd_bus_error *ret_error) {
        struct ksmt_properties p = {};
        int r;

        r = get_property(bus, property_field_find("Statistics"), true, &p, ret_error);
        if (r >= 0) {
                ksmt_counters_done(ret);
                *ret = p.statistics;
                p.statistics = (struct ksmt_counters) {};
        }
        ksmt_properties_done(&p);
        return r < 0 ? r : 0;
}

int ksmt_get_properties_no_activation(sd_bus *bus, unsigned which, struct ksmt_properties *p,
                                      sd_bus_error *ret_error) {
        int r;

        r = ksmt_name_has_owner(bus, KSM_THROTTLER_BUS_NAME);
        if (r <= 0)
                return r;
        for (size_t i = 0; i < sizeof property_fields / sizeof property_fields[0]; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                if (!(which & property_fields[i].bit))
                        continue;
                r = get_property(bus, &property_fields[i], false, p, &error);
                if (r >= 0)
                        continue;
                /* It may have exited since NameHasOwner: that is "not running", not a failure. */
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        return 0;
                /* An older daemon without this property (sd-bus says UnknownProperty, GDBus
                 * InvalidArgs): it stays out of p->present, the others still count. */
                if (sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_PROPERTY, SD_BUS_ERROR_INVALID_ARGS))
                        continue;
                if (ret_error)
                        sd_bus_error_move(ret_error, &error);
                return r;
        }
        return 1;
}

int ksmt_saved_bytes(const struct ksmt_counters *statistics, int64_t *ret) {
        for (size_t i = 0; i < statistics->n_items; i++)
                if (strcmp(statistics->items[i].name, "general_profit") == 0) {
                        *ret = statistics->items[i].value;
                        return 0;
                }
        return -ENOENT;
}

/* ---------------------------------------------------------------------------
 * Errors
 */

/* What follows the lead of a message. */
enum error_detail {
        DETAIL_NAME,      /* " (error.Name)" */
        DETAIL_TEXT,      /* ": text" */
        DETAIL_TEXT_NAME, /* ": text (error.Name)" */
};

#define UNIT_CANNOT_START \
        "cannot reach ksm-throttler on the system bus: the service is not running and its unit " KSM_THROTTLER_UNIT \
        " cannot start it: "

static const struct error_mapping {
        const char *name;   /* an error name, or a prefix ending in '.' */
        int exit_status;
        const char *lead;
        bool with_action;   /* the lead is followed by " <action>" */
        enum error_detail detail;
} error_mappings[] = {
        { SD_BUS_ERROR_SERVICE_UNKNOWN, KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service is not running", false, DETAIL_NAME },
        { SD_BUS_ERROR_NAME_HAS_NO_OWNER, KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service is not running", false, DETAIL_NAME },
        /* Bus activation was tried and the service did not come up. */
        { "org.freedesktop.DBus.Error.Spawn.", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the service failed to start", false, DETAIL_TEXT_NAME },
        /* systemd refused the start that bus activation asked of it (it answers the caller through
         * the bus, at once). The leads say what ksmt_call() says when it finds the unit so itself. */
        { "org.freedesktop.systemd1.UnitMasked", KSMT_EXIT_NOT_RUNNING, UNIT_CANNOT_START "masked", false,
          DETAIL_NAME },
        { "org.freedesktop.systemd1.NoSuchUnit", KSMT_EXIT_NOT_RUNNING, UNIT_CANNOT_START "not found", false,
          DETAIL_NAME },
        { "org.freedesktop.systemd1.LoadFailed", KSMT_EXIT_NOT_RUNNING, UNIT_CANNOT_START "it failed to load", false,
          DETAIL_TEXT_NAME },
        { "org.freedesktop.systemd1.BadUnitSetting", KSMT_EXIT_NOT_RUNNING, UNIT_CANNOT_START "it failed to load",
          false, DETAIL_TEXT_NAME },
        { "org.freedesktop.systemd1.OnlyByDependency", KSMT_EXIT_NOT_RUNNING,
          UNIT_CANNOT_START "it refuses a manual start", false, DETAIL_TEXT_NAME },
        { "org.freedesktop.systemd1.ShuttingDown", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus: the system is shutting down", false, DETAIL_TEXT_NAME },
        { KSMT_ERROR_UNIT_NOT_STARTABLE, KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus", false, DETAIL_TEXT },
        /* The name has an owner, but it does not answer. */
        { SD_BUS_ERROR_NO_REPLY, KSMT_EXIT_NOT_RUNNING, "cannot reach ksm-throttler on the system bus", false,
          DETAIL_TEXT_NAME },
        { SD_BUS_ERROR_TIMEOUT, KSMT_EXIT_NOT_RUNNING, "cannot reach ksm-throttler on the system bus", false,
          DETAIL_TEXT_NAME },
        { "org.freedesktop.DBus.Error.TimedOut", KSMT_EXIT_NOT_RUNNING,
          "cannot reach ksm-throttler on the system bus", false, DETAIL_TEXT_NAME },
        { SD_BUS_ERROR_DISCONNECTED, KSMT_EXIT_NOT_RUNNING, "cannot reach ksm-throttler on the system bus", false,
          DETAIL_TEXT_NAME },
        { SD_BUS_ERROR_ACCESS_DENIED, KSMT_EXIT_ACCESS_DENIED, "not allowed to", true, DETAIL_TEXT },
        { SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED, KSMT_EXIT_ACCESS_DENIED, "not allowed to", true,
          DETAIL_TEXT },
        { KSM_THROTTLER_ERROR_KSM_UNAVAILABLE, KSMT_EXIT_KSM_UNAVAILABLE, "KSM unavailable", false, DETAIL_TEXT },
};

static const struct error_mapping other_error = { NULL, KSMT_EXIT_FAILED, "failed to", true, DETAIL_TEXT_NAME };

static const struct error_mapping *error_mapping_find(const sd_bus_error *error) {
        for (size_t i = 0; i < sizeof error_mappings / sizeof error_mappings[0]; i++) {
                const char *name = error_mappings[i].name;
                size_t length = strlen(name);

                if (name[length - 1] == '.' ? strncmp(error->name, name, length) == 0 : strcmp(error->name, name) == 0)
                        return &error_mappings[i];
        }
        return &other_error;
}

int ksmt_error_status(const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error))
                return error_mapping_find(error)->exit_status;
        /* Failed locally, before or without a reply. */
        if (r == -ETIMEDOUT || r == -ECONNRESET || r == -ENOTCONN || r == -ECONNREFUSED || r == -ENOENT)
                return KSMT_EXIT_NOT_RUNNING;
        return KSMT_EXIT_FAILED;
}

int ksmt_error_message(const char *action, const sd_bus_error *error, int r, char *buf, size_t size) {
        const struct error_mapping *mapping;
        _cleanup_free_ char *text = NULL, *name = NULL;

        if (!sd_bus_error_is_set(error)) {
                if (r == -ETIMEDOUT)
                        snprintf(buf, size, "cannot reach ksm-throttler on the system bus: no reply in time");
                else if (ksmt_error_status(error, r) == KSMT_EXIT_NOT_RUNNING)
                        snprintf(buf, size, "cannot reach ksm-throttler on the system bus: %s", strerror(-r));
                else
                        snprintf(buf, size, "failed to %s: %s", action, strerror(-r));
                return ksmt_error_status(error, r);
        }

        mapping = error_mapping_find(error);
        name = ksmt_escape(error->name);
        text = ksmt_escape(error->message && error->message[0] ? error->message : error->name);
        if (!name || !text) {
                snprintf(buf, size, "out of memory");
                return KSMT_EXIT_FAILED;
        }

        switch (mapping->detail) {
        case DETAIL_NAME:
                snprintf(buf, size, "%s%s%s (%s)", mapping->lead, mapping->with_action ? " " : "",
                         mapping->with_action ? action : "", name);
                break;
        case DETAIL_TEXT:
                snprintf(buf, size, "%s%s%s: %s", mapping->lead, mapping->with_action ? " " : "",
                         mapping->with_action ? action : "", text);
                break;
        case DETAIL_TEXT_NAME:
                snprintf(buf, size, "%s%s%s: %s (%s)", mapping->lead, mapping->with_action ? " " : "",
                         mapping->with_action ? action : "", text, name);
                break;
        }
        return mapping->exit_status;
}

char *ksmt_escape(const char *s) {
        /* At most 6 bytes out ("\u009b") for 2 in, 4 ("\x1b") for 1. */
        size_t length = strlen(s);
        char *result = malloc(length * 4 + 1), *out = result;

        if (!result)
                return NULL;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '\\':
                        out = stpcpy(out, "\\\\");
                        break;
                case '\n':
                        out = stpcpy(out, "\\n");
                        break;
                case '\t':
                        out = stpcpy(out, "\\t");
                        break;
                case '\r':
                        out = stpcpy(out, "\\r");
                        break;
                default:
                        if (*p < 0x20 || *p == 0x7f)
                                out += sprintf(out, "\\x%02x", *p);
                        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
                                /* A C1 control in UTF-8: some terminals act on it (U+009B is CSI). */
                                out += sprintf(out, "\\u%04x", p[1]);
                                p++;
                        } else
                                *out++ = (char) *p;
                }
        }
        *out = '\0';
        return result;
}
