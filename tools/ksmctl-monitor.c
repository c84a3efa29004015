/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ksmctl monitor: state changes and kicks as they happen.
 *
 * Sources (bus signals) turn into events, and one printer writes each event as a human line
 * or a JSON object. A kick shows with the reason, application ID and origin of LastKick
 * (the latest, when kicks came faster than they were shown).
 *
 * Anyone on the bus can send a unicast signal to our unique name with any path, interface and
 * member. The bus fills in the sender, though, so a signal is believed only when it comes from
 * the unique name that owns the service now (as the bus driver told us), and NameOwnerChanged
 * only from the driver itself.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "fd-util.h"
#include "ksmctl.h"
#include "parse-util.h"

enum monitor_event_kind {
        EVENT_STATE,   /* the current state at start, or a StateChanged */
        EVENT_KICK,    /* KickCount went up */
        EVENT_SERVICE, /* the daemon started or stopped */
};

struct monitor_event {
        enum monitor_event_kind kind;
        uint64_t time_usec;    /* CLOCK_REALTIME */
        const char *state;     /* EVENT_STATE */
        const char *previous;  /* EVENT_STATE; NULL for the current state at start */
        uint64_t kick_count;   /* EVENT_KICK: the daemon's count after it */
        uint64_t kicks;        /* EVENT_KICK: how many since the last event (kicks can coalesce) */
        const struct ksmt_kick *last; /* EVENT_KICK: the latest of them (reason, origin); may be NULL */
        bool running;          /* EVENT_SERVICE */
};

struct monitor {
        sd_bus *bus;
        sd_event *event;
        char *owner;           /* unique name of the daemon now; NULL when not running */
        uint64_t kick_count;   /* the daemon's KickCount when last looked at */
};

static void monitor_done(struct monitor *m) {
        free(m->owner);
        *m = (struct monitor) {};
}

/* "2026-11-26 13:45:01.123", local time. */
static void format_time(char *buf, size_t size, uint64_t usec) {
        time_t seconds = (time_t) (usec / USEC_PER_SEC);
        char whole[32];
        struct tm tm;

        if (!localtime_r(&seconds, &tm) || strftime(whole, sizeof whole, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
                snprintf(buf, size, "(unknown time)");
                return;
        }
        snprintf(buf, size, "%s.%03" PRIu64, whole, usec % USEC_PER_SEC / 1000);
}

static void print_event_human(const struct monitor_event *e) {
        char timestamp[64];

        format_time(timestamp, sizeof timestamp, e->time_usec);
        switch (e->kind) {
        case EVENT_STATE:
                printf("%s ", timestamp);
                print_escaped(stdout, e->state);
                if (e->previous) {
                        fputs(" (was ", stdout);
                        print_escaped(stdout, e->previous);
                        fputs(")\n", stdout);
                } else
                        fputs(" (current)\n", stdout);
                break;
        case EVENT_KICK:
                printf("%s kick (count %" PRIu64 ")", timestamp, e->kick_count);
                if (e->last && e->last->reason) {
                        if (e->last->reason[0]) {
                                fputs(": ", stdout);
                                print_escaped(stdout, e->last->reason);
                        }
                        if (e->last->application_id[0]) {
                                fputs(" by ", stdout);
                                print_escaped(stdout, e->last->application_id);
                        }
                        fputs(" from ", stdout);
                        print_escaped(stdout, e->last->origin);
                }
                fputc('\n', stdout);
                break;
        case EVENT_SERVICE:
                /* Notes for the person watching; stdout carries state and kick lines. */
                if (e->running)
                        log_error("ksm-throttler started");
                else
                        log_error("ksm-throttler stopped; waiting for it");
                break;
        }
}

static json_t *event_to_json(const struct monitor_event *e) {
        switch (e->kind) {
        case EVENT_STATE:
                return json_pack("{s:s, s:o, s:s, s:o}", "event", "state", "time_usec", json_from_u64(e->time_usec),
                                 "state", e->state, "previous", e->previous ? json_string(e->previous) : json_null());
        case EVENT_KICK:
                return json_pack("{s:s, s:o, s:o, s:o, s:o}", "event", "kick", "time_usec", json_from_u64(e->time_usec),
                                 "kick_count", json_from_u64(e->kick_count), "kicks", json_from_u64(e->kicks),
                                 "last_kick", e->last ? json_from_kick(e->last) : json_null());
        case EVENT_SERVICE:
                return json_pack("{s:s, s:o, s:b}", "event", "service", "time_usec", json_from_u64(e->time_usec),
                                 "running", e->running);
        }
        return NULL;
}

/* Each event is flushed at once: the reader is usually a pipe, and a line is only useful
 * when it happens. */
static void emit(const struct monitor_event *e) {
        if (arg_json != JSON_OUTPUT_OFF)
                (void) print_json(event_to_json(e));
        else
                print_event_human(e);
        fflush(stdout);
}

static bool from_daemon(struct monitor *m, sd_bus_message *message) {
        const char *sender = sd_bus_message_get_sender(message);

        return m->owner && sender && strcmp(sender, m->owner) == 0;
}

/* Emits a kick event if KickCount went up since the last look. The daemon sends no signal for
 * a kick itself, but every kick changes the state or the time of the next transition. */
static void check_kicks(struct monitor *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(ksmt_properties_done) struct ksmt_properties p = {};
        int r;

        r = ksmt_get_properties_no_activation(m->bus, KSMT_PROPERTY_KICK_COUNT | KSMT_PROPERTY_LAST_KICK, &p, &error);
        if (r <= 0 || p.kick_count <= m->kick_count)
                return;
        /* Reason and origin from LastKick; a daemon without it still shows the count. */
        sd_bus_error_free(&error);
        if (ksmt_get_properties_no_activation(m->bus, KSMT_PROPERTY_LAST_KICK_DETAIL, &p, &error) <= 0)
                p.last_kick = (struct ksmt_kick) {};
        emit(&(struct monitor_event) {
                .kind = EVENT_KICK,
                .last = p.last_kick.reason ? &p.last_kick : NULL,
                .time_usec = p.last_kick_usec,
                .kick_count = p.kick_count,
                .kicks = p.kick_count - m->kick_count,
        });
        m->kick_count = p.kick_count;
}

static int on_state_changed(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;
        const char *state, *previous;
        int r;

        if (!from_daemon(m, message))
                return 0;
        r = sd_bus_message_read(message, "ss", &state, &previous);
        if (r < 0) {
                log_error_errno(r, "ignoring a malformed StateChanged signal: %m");
                return 0;
        }
        /* A kick from initial shows as its kick first, then the state it caused. */
        check_kicks(m);
        emit(&(struct monitor_event) {
                .kind = EVENT_STATE,
                .time_usec = now_realtime_usec(),
                .state = state,
                .previous = previous,
        });
        return 0;
}

static int on_properties_changed(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;

        if (from_daemon(m, message))
                check_kicks(m);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;
        const char *sender = sd_bus_message_get_sender(message);
        const char *name, *old_owner, *new_owner;
        char *owner = NULL;

        if (!sender || strcmp(sender, DBUS_DRIVER_NAME) != 0)
                return 0;
        if (sd_bus_message_read(message, "sss", &name, &old_owner, &new_owner) < 0 ||
            strcmp(name, KSM_THROTTLER_BUS_NAME) != 0)
                return 0;

        if (new_owner[0]) {
                owner = strdup(new_owner);
                if (!owner) {
                        log_error("out of memory");
                        return sd_event_exit(m->event, KSMT_EXIT_FAILED);
                }
        }
        free(m->owner);
        m->owner = owner;
        m->kick_count = 0; /* a new instance counts from zero */

        if (old_owner[0] == '\0' || new_owner[0] == '\0')
                emit(&(struct monitor_event) {
                        .kind = EVENT_SERVICE,
                        .time_usec = now_realtime_usec(),
                        .running = new_owner[0] != '\0',
                });
        return 0;
}

static int on_disconnected(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        struct monitor *m = userdata;

        log_error("lost the connection to the system bus");
        return sd_event_exit(m->event, KSMT_EXIT_NOT_RUNNING);
}

static int on_exit_signal(sd_event_source *source, const struct signalfd_siginfo *info, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(source), KSMT_EXIT_OK);
}

/* Subscribes to the signals monitor shows. Routing by the well-known name lets the bus send us
 * the daemon's signals (also right after a restart, with no window to re-subscribe); what the
 * callbacks believe is decided by from_daemon(). */
static int subscribe(struct monitor *m) {
        static const struct {
                const char *rule;
                sd_bus_message_handler_t handler;
        } matches[] = {
                { "type='signal',sender='" KSM_THROTTLER_BUS_NAME "',path='" KSM_THROTTLER_OBJECT_PATH "',"
                  "interface='" KSM_THROTTLER_INTERFACE "',member='StateChanged'",
                  on_state_changed },
                { "type='signal',sender='" KSM_THROTTLER_BUS_NAME "',path='" KSM_THROTTLER_OBJECT_PATH "',"
                  "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                  "arg0='" KSM_THROTTLER_INTERFACE "'",
                  on_properties_changed },
                { "type='signal',sender='" DBUS_DRIVER_NAME "',path='" DBUS_DRIVER_PATH "',"
                  "interface='" DBUS_DRIVER_INTERFACE "',member='NameOwnerChanged',"
                  "arg0='" KSM_THROTTLER_BUS_NAME "'",
                  on_name_owner_changed },
                /* sd-bus delivers this one locally when the connection drops. */
                { "type='signal',path='/org/freedesktop/DBus/Local',interface='org.freedesktop.DBus.Local',"
                  "member='Disconnected'",
                  on_disconnected },
        };
        int r;

        for (size_t i = 0; i < sizeof matches / sizeof matches[0]; i++) {
                r = sd_bus_add_match(m->bus, NULL, matches[i].rule, matches[i].handler, m);
                if (r < 0) {
                        log_error_errno(r, "failed to subscribe to signals (%s): %m", matches[i].rule);
                        return r;
                }
        }
        return 0;
}

/* The first line: the current state, read without bus activation (a monitor never starts
 * the daemon). */
static int show_current_state(struct monitor *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(ksmt_properties_done) struct ksmt_properties p = {};
        int r;

        r = ksmt_name_get_owner(m->bus, KSM_THROTTLER_BUS_NAME, &m->owner);
        if (r < 0)
                return report_call_failure("read the state", &error, r);
        if (r > 0)
                r = ksmt_get_properties_no_activation(m->bus, KSMT_PROPERTY_STATE | KSMT_PROPERTY_KICK_COUNT, &p,
                                                      &error);
        if (r < 0)
                return report_call_failure("read the state", &error, r);
        if (r == 0 || !p.state) {
                log_error("ksm-throttler is not running; waiting for it");
                return KSMT_EXIT_OK;
        }
        m->kick_count = p.kick_count;
        emit(&(struct monitor_event) {
                .kind = EVENT_STATE,
                .time_usec = now_realtime_usec(),
                .state = p.state,
        });
        return KSMT_EXIT_OK;
}

int verb_monitor(sd_bus *bus, int argc, char *argv[]) {
        _cleanup_(monitor_done) struct monitor m = {};
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        sigset_t exit_signals;
        int status, r;

        /* sd-event receives signals through a signalfd, which needs them blocked. */
        sigemptyset(&exit_signals);
        sigaddset(&exit_signals, SIGINT);
        sigaddset(&exit_signals, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &exit_signals, NULL) < 0) {
                log_error_errno(errno, "failed to block SIGINT and SIGTERM: %m");
                return KSMT_EXIT_FAILED;
        }

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_exit_signal, NULL);
        if (r < 0) {
                log_error_errno(r, "failed to set up the event loop: %m");
                return KSMT_EXIT_FAILED;
        }

        m.bus = bus;
        m.event = event;

        /* Subscribe before reading the current state, so that no change falls between. */
        if (subscribe(&m) < 0)
                return KSMT_EXIT_FAILED;
        status = show_current_state(&m);
        if (status != KSMT_EXIT_OK)
                return status;

        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                log_error_errno(r, "failed to attach the bus to the event loop: %m");
                return KSMT_EXIT_FAILED;
        }
        r = sd_event_loop(event);
        (void) sd_bus_detach_event(bus);
        if (r < 0) {
                log_error_errno(r, "event loop failed: %m");
                return KSMT_EXIT_FAILED;
        }
        return r;
}
