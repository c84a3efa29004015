/* SPDX-License-Identifier: Apache-2.0 */
#include "idle-exit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "bus-names.h"
#include "bus-object.h"
#include "caller.h"
#include "fd-util.h"
#include "handover.h"
#include "log.h"
#include "parse-util.h"

struct idle_exit {
        sd_event *event;
        sd_bus *bus;
        struct daemon *daemon;
        struct authorizer *authorizer;
        int *lock_fd;
        bool ready;      /* the name is ours */
        bool exiting;    /* the name is being released */
        bool released;   /* ReleaseName answered: every call the bus routed to us has arrived */
        /* A service manager took STOPPING=1: it starts the next instance only once this one
         * has exited, so kicks are handed over through the runtime directory, not relayed. */
        bool serialized;
        bool poked;      /* the bus was asked to start the next instance for a handed-over kick */
        unsigned forwarded; /* calls handed to the next instance, waiting for its answer */
        sd_bus_slot *filter, *release;
};

/* A call that reached this instance while it was exiting, handed on to the next one. */
struct forward {
        struct idle_exit *x;
        sd_bus_message *call; /* the caller's, answered with the next instance's reply */
};

static int on_forward_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct forward *f = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *answer = NULL;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        if (e)
                r = sd_bus_reply_method_error(f->call, e);
        else if ((r = sd_bus_message_new_method_return(f->call, &answer)) >= 0 &&
                 (r = sd_bus_message_copy(answer, reply, true)) >= 0)
                r = sd_bus_send(NULL, answer, NULL);
        if (r < 0)
                log_warning_errno(r, "Cannot relay the next instance's answer to %s of %s: %m",
                                  sd_bus_message_get_member(f->call), sd_bus_message_get_sender(f->call));
        f->x->forwarded--;
        sd_bus_message_unref(f->call);
        free(f);
        return 0;
}

/* Under a service manager: the kick is recorded for the next instance, which applies it
 * once it owns the name, and the bus is asked (no reply expected) to start that instance,
 * which the service manager does as soon as this one has exited. The caller is answered
 * now. Returns < 0 if it could not be recorded (logged). */
static int hand_over(struct idle_exit *x, sd_bus_message *m, const struct caller *caller) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *poke = NULL;
        const char *reason, *application_id;
        struct handover k = {};
        int r;

        bus_object_kick_arguments(m, &reason, &application_id);
        snprintf(k.reason, sizeof k.reason, "%s", reason);
        snprintf(k.application_id, sizeof k.application_id, "%s", application_id);
        caller_format(caller, k.origin, sizeof k.origin);
        snprintf(k.unit, sizeof k.unit, "%s", caller->unit);
        r = handover_record(x->daemon->runtime_directory, &k, clock_now_usec(CLOCK_BOOTTIME));
        if (r < 0)
                return r;
        if (!x->poked) {
                r = sd_bus_message_new_method_call(x->bus, &poke, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH,
                                                   "org.freedesktop.DBus.Peer", "Ping");
                if (r >= 0)
                        r = sd_bus_message_set_expect_reply(poke, false);
                if (r >= 0)
                        r = sd_bus_send(x->bus, poke, NULL);
                if (r < 0)
                        /* Recorded all the same: the next kick's start applies it. */
                        log_warning_errno(r, "Cannot ask the bus to start the next instance: %m");
                else
                        x->poked = true;
        }
        log_info("%s from %s (%s) arrived while exiting; handed to the next instance through %s/%s",
                 sd_bus_message_get_member(m), sd_bus_message_get_sender(m), k.origin, x->daemon->runtime_directory,
                 HANDOVER_FILE);
        r = sd_bus_reply_method_return(m, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot reply to %s from %s: %m", sd_bus_message_get_member(m),
                                sd_bus_message_get_sender(m));
        return 0;
}

/* Authorized as this instance would have: the next instance sees this daemon (root) as the
 * caller, so the caller's own right to kick is decided here. */
static void on_forward_authorized(sd_bus_message *m, const sd_bus_error *denied, const struct caller *caller,
                                  void *userdata) {
        struct idle_exit *x = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        struct forward *f = NULL;
        int r;

        if (denied) {
                r = sd_bus_reply_method_error(m, denied);
                if (r < 0)
                        log_debug_errno(r, "Cannot reply to %s from %s: %m", sd_bus_message_get_member(m),
                                        sd_bus_message_get_sender(m));
                return;
        }
        if (x->serialized) {
                /* No relay here: it would wait for an instance that cannot start before it ends. */
                r = hand_over(x, m, caller);
                if (r < 0)
                        (void) sd_bus_reply_method_errnof(
                                m, r, "ksm-throttler is exiting and could not record the kick for its next instance: %m");
                return;
        }
        f = calloc(1, sizeof *f);
        r = f ? 0 : -ENOMEM;
        if (r >= 0)
                r = sd_bus_message_new_method_call(x->bus, &call, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH,
                                                   KSM_THROTTLER_INTERFACE, sd_bus_message_get_member(m));
        if (r >= 0)
                r = sd_bus_message_rewind(m, true);
        if (r >= 0)
                r = sd_bus_message_copy(call, m, true);
        if (r >= 0)
                r = sd_bus_call_async(x->bus, NULL, call, on_forward_reply, f, 0);
        if (r < 0) {
                free(f);
                log_error_errno(r, "Cannot hand %s from %s to the next instance: %m", sd_bus_message_get_member(m),
                                sd_bus_message_get_sender(m));
                (void) sd_bus_reply_method_errnof(m, r, "ksm-throttler is exiting and could not hand the call on: %m");
                return;
        }
        log_info("%s from %s arrived while exiting; handed to the next instance", sd_bus_message_get_member(m),
                 sd_bus_message_get_sender(m));
        *f = (struct forward) { .x = x, .call = sd_bus_message_ref(m) };
        x->forwarded++;
}

/* A kick as the object would take it: anything else (an unknown method, wrong arguments,
 * texts too long) is left to the object, which answers it with the usual error. */
static bool is_valid_kick(sd_bus_message *m) {
        const char *reason, *application_id;
        bool valid;

        if (sd_bus_message_is_method_call(m, KSM_THROTTLER_INTERFACE, "Kick") > 0)
                return sd_bus_message_has_signature(m, "");
        if (sd_bus_message_is_method_call(m, KSM_THROTTLER_INTERFACE, "KickWithReason") <= 0 ||
            !sd_bus_message_has_signature(m, "ss"))
                return false;
        valid = sd_bus_message_read(m, "ss", &reason, &application_id) >= 0 && strlen(reason) <= KICK_TEXT_MAX &&
                strlen(application_id) <= KICK_TEXT_MAX;
        (void) sd_bus_message_rewind(m, true);
        return valid;
}

/* While exiting, kicks are not served here: this instance is on its way out and will give
 * the host its values back. GetSavings, which changes nothing, is served as usual. Once the
 * release is answered, every call for the well-known name has arrived: what still comes
 * is addressed to this instance's unique name, and is refused at once, so that nobody can
 * keep an exiting instance (and the service manager's next start) waiting. */
static int on_message_while_exiting(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct idle_exit *x = userdata;
        const char *path = sd_bus_message_get_path(m);
        int r;

        if (!sd_bus_message_is_method_call(m, KSM_THROTTLER_INTERFACE, NULL) || !path ||
            strcmp(path, KSM_THROTTLER_OBJECT_PATH) != 0)
                return 0;
        if (x->released) {
                r = sd_bus_reply_method_errorf(m, SD_BUS_ERROR_FAILED,
                                               "This instance of ksm-throttler is exiting; call %s, not its unique name",
                                               KSM_THROTTLER_BUS_NAME);
                return r < 0 ? r : 1;
        }
        if (!is_valid_kick(m))
                return 0;
        /* Authorized here, as the next instance would: it sees this daemon as the caller. */
        r = authorize(x->authorizer, m, POLKIT_ACTION_KICK, on_forward_authorized, x);
        if (r < 0)
                return r;
        return 1;
}

static int on_release_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct idle_exit *x = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e)
                log_warning("Cannot release %s: %s; exiting anyway", KSM_THROTTLER_BUS_NAME, e->message ?: e->name);
        x->released = true;
        return 0;
}

/* As systemd's own daemons do: tell the service manager first, so that it queues the
 * start requests that come meanwhile instead of taking this instance for a running one;
 * then release the name and serve what the bus routed here before the release. */
static int begin_exit(struct idle_exit *x) {
        char duration[32];
        int r;

        log_info("Idle in initial for %s: releasing %s and exiting; the next Kick starts ksm-throttler again",
                 format_duration_usec(duration, sizeof duration, x->daemon->config.idle_exit_usec), KSM_THROTTLER_BUS_NAME);
        x->serialized = sd_notify(false, "STOPPING=1\nSTATUS=Idle, exiting") > 0;
        x->exiting = true;
        /* In initial, nothing saved, and no knob written from here on: the next instance
         * may take the lock and start while this one drains. */
        if (*x->lock_fd >= 0)
                close(*x->lock_fd);
        *x->lock_fd = -EBADF;
        r = sd_bus_add_filter(x->bus, &x->filter, on_message_while_exiting, x);
        if (r >= 0)
                r = sd_bus_release_name_async(x->bus, &x->release, KSM_THROTTLER_BUS_NAME, on_release_reply, x);
        if (r < 0) {
                log_error_errno(r, "Cannot release %s: %m; exiting", KSM_THROTTLER_BUS_NAME);
                return sd_event_exit(x->event, 0);
        }
        return 0;
}

static bool is_idle(struct idle_exit *x) {
        return x->ready && !x->exiting && x->daemon->config.idle_exit_usec > 0 &&
               x->daemon->throttle.state == THROTTLE_INITIAL && authorizer_pending(x->authorizer) == 0;
}

int idle_exit_loop(struct idle_exit *x) {
        uint64_t idle_since = 0;
        bool was_idle = false;
        int r, code = 0;

        for (;;) {
                uint64_t wait = UINT64_MAX, deadline = 0, now;
                bool idle;

                if (sd_event_get_state(x->event) == SD_EVENT_FINISHED)
                        break;
                if (x->exiting && x->released && x->forwarded == 0 && authorizer_pending(x->authorizer) == 0) {
                        (void) sd_event_exit(x->event, 0);
                        wait = 0;
                }
                idle = is_idle(x);
                if (idle) {
                        now = clock_now_usec(CLOCK_MONOTONIC);
                        if (!was_idle)
                                idle_since = now;
                        deadline = idle_since + x->daemon->config.idle_exit_usec;
                        wait = deadline > now ? deadline - now : 0;
                }
                r = sd_event_run(x->event, wait);
                if (r < 0)
                        return r;
                /* Anything served starts the count again, as the watchdog's wake-ups do not. */
                if (r > 0) {
                        was_idle = false;
                        continue;
                }
                was_idle = idle;
                if (idle && clock_now_usec(CLOCK_MONOTONIC) >= deadline) {
                        r = begin_exit(x);
                        if (r < 0)
                                return r;
                }
        }
        r = sd_event_get_exit_code(x->event, &code);
        return r < 0 ? r : code;
}

void idle_exit_set_ready(struct idle_exit *x) {
        x->ready = true;
}

int idle_exit_new(sd_event *event, sd_bus *bus, struct daemon *d, struct authorizer *authorizer, int *lock_fd,
                  struct idle_exit **ret) {
        struct idle_exit *x = calloc(1, sizeof *x);

        if (!x)
                return log_oom();
        *x = (struct idle_exit) {
                .event = event,
                .bus = bus,
                .daemon = d,
                .authorizer = authorizer,
                .lock_fd = lock_fd,
        };
        *ret = x;
        return 0;
}

struct idle_exit *idle_exit_free(struct idle_exit *x) {
        if (!x)
                return NULL;
        sd_bus_slot_unref(x->filter);
        sd_bus_slot_unref(x->release);
        free(x);
        return NULL;
}
