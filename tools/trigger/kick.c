/* SPDX-License-Identifier: Apache-2.0 */
#include "kick.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksmt-client.h"
#include "log.h"
#include "parse-util.h"

#define RETRY_FIRST_USEC (250 * USEC_PER_MSEC)
#define RETRY_MAX_USEC (30 * USEC_PER_SEC)
/* A kick that could not be delivered for this long is stale: the next event kicks afresh. */
#define RETRY_GIVE_UP_USEC (5 * USEC_PER_MINUTE)

struct kicker {
        sd_bus *bus;
        sd_event *event;
        sd_bus_slot *call;      /* the Kick() on its way */
        sd_event_source *retry; /* armed while a failed kick waits */
        char reason[512];       /* the latest reason asked for */
        bool again;             /* asked for while a call was on its way */
        unsigned attempts;      /* failed attempts of the kick being retried */
        uint64_t first_failure_usec;
        uint64_t backoff_usec;
};

/* Errors that no retry will change: the throttler answered and said no, or it has no
 * such method (another version). Everything else (no owner, activation failed, no
 * reply, a knob that could not be written) may pass, and is retried; so is
 * UnknownObject: a throttler that owns its name before its object is registered (one
 * starting, or restarting, as bus activation started it) answers that for a moment. */
static const char *const refusals[] = {
        SD_BUS_ERROR_ACCESS_DENIED,
        SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
        SD_BUS_ERROR_UNKNOWN_METHOD,
        SD_BUS_ERROR_UNKNOWN_INTERFACE,
        SD_BUS_ERROR_INVALID_ARGS,
        SD_BUS_ERROR_NOT_SUPPORTED,
};

static bool is_refusal(const sd_bus_error *e) {
        for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++)
                if (sd_bus_error_has_name(e, refusals[i]))
                        return true;
        return false;
}

static uint64_t now_usec(struct kicker *k) {
        uint64_t now = 0;
        (void) sd_event_now(k->event, CLOCK_MONOTONIC, &now);
        return now;
}

static void send_kick(struct kicker *k);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        struct kicker *k = userdata;
        (void) s, (void) usec;
        send_kick(k);
        return 0;
}

static void schedule_retry(struct kicker *k, const char *error_name, const char *message) {
        char delay[64];
        uint64_t now = now_usec(k);
        int r;

        if (k->attempts == 0)
                k->first_failure_usec = now;
        k->attempts++;
        if (now - k->first_failure_usec >= RETRY_GIVE_UP_USEC) {
                log_error("Giving up on the kick (%s) after %u attempts over %s: %s: %s. The next event kicks again.",
                          k->reason, k->attempts,
                          format_duration_usec(delay, sizeof delay, now - k->first_failure_usec), error_name, message);
                k->attempts = 0;
                k->backoff_usec = 0;
                return;
        }
        k->backoff_usec = k->backoff_usec == 0 ? RETRY_FIRST_USEC
                          : k->backoff_usec >= RETRY_MAX_USEC / 2 ? RETRY_MAX_USEC
                                                                   : k->backoff_usec * 2;
        log_warning("Cannot reach the throttler to kick (%s): %s: %s; retrying in %s (attempt %u)", k->reason, error_name,
                    message, format_duration_usec(delay, sizeof delay, k->backoff_usec), k->attempts);

        if (!k->retry)
                r = sd_event_add_time_relative(k->event, &k->retry, CLOCK_MONOTONIC, k->backoff_usec, 0, on_retry, k);
        else {
                r = sd_event_source_set_time_relative(k->retry, k->backoff_usec);
                if (r >= 0)
                        r = sd_event_source_set_enabled(k->retry, SD_EVENT_ONESHOT);
        }
        if (r < 0) {
                log_error_errno(r, "Cannot arm the retry timer, dropping the kick (%s): %m", k->reason);
                k->attempts = 0;
                k->backoff_usec = 0;
        }
}

static int on_kick_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct kicker *k = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        (void) ret_error;

        k->call = sd_bus_slot_unref(k->call);
        if (e && is_refusal(e)) {
                log_error("The throttler refused the kick (%s): %s: %s", k->reason, e->name, e->message ?: "");
                k->attempts = 0;
                k->backoff_usec = 0;
        } else if (e) {
                /* A retry carries the latest reason, so a kick asked for meanwhile is in it. */
                k->again = false;
                schedule_retry(k, e->name, e->message ?: "");
                return 0;
        } else {
                if (k->attempts > 0)
                        log_info("Kick delivered after %u failed attempts (%s)", k->attempts, k->reason);
                else
                        log_debug("Kick accepted (%s)", k->reason);
                k->attempts = 0;
                k->backoff_usec = 0;
        }
        if (k->again) {
                k->again = false;
                log_info("Sending the kick asked for while the last one was on its way (%s)", k->reason);
                send_kick(k);
        }
        return 0;
}

/* The application ID the throttler logs and shows in LastKick for our kicks. */
#define TRIGGER_APPLICATION_ID "ksm-throttler-trigger"

/* reason cut to what the throttler accepts (KSMT_KICK_TEXT_MAX bytes), at a character
 * boundary so that it stays valid UTF-8. Our own log keeps it whole. */
static void reason_for_bus(const char *reason, char buf[static KSMT_KICK_TEXT_MAX + 1]) {
        size_t n = strlen(reason);

        if (n > KSMT_KICK_TEXT_MAX) {
                n = KSMT_KICK_TEXT_MAX;
                while (n > 0 && ((unsigned char) reason[n] & 0xc0) == 0x80)
                        n--; /* reason[n] continues a character: cut before it starts */
        }
        memcpy(buf, reason, n);
        buf[n] = '\0';
}

static void send_kick(struct kicker *k) {
        char reason[KSMT_KICK_TEXT_MAX + 1];

        /* Through bus activation: a throttler that exited when idle is started again. */
        reason_for_bus(k->reason, reason);
        int r = ksmt_kick_with_reason_async(k->bus, reason, TRIGGER_APPLICATION_ID, &k->call, 0, 0, on_kick_reply, k);
        if (r < 0) {
                char message[256];
                snprintf(message, sizeof message, "cannot send: %s", strerror(-r));
                schedule_retry(k, "KickWithReason", message);
        }
}

void kicker_kick(struct kicker *k, const char *reason) {
        snprintf(k->reason, sizeof k->reason, "%s", reason);
        if (k->call) {
                /* Said, so that the log's kicks add up: events while a call is on its way
                 * are one more call, sent when it is answered. */
                log_info("A kick is on its way; one more follows when it is answered (%s)", reason);
                k->again = true;
                return;
        }
        if (k->retry && sd_event_source_get_enabled(k->retry, NULL) > 0) {
                log_info("A kick waits for its retry, which carries this one (%s)", reason);
                return;
        }
        send_kick(k);
}

int kicker_new(sd_bus *bus, sd_event *event, struct kicker **ret) {
        struct kicker *k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        k->bus = sd_bus_ref(bus);
        k->event = sd_event_ref(event);
        *ret = k;
        return 0;
}

struct kicker *kicker_free(struct kicker *k) {
        if (!k)
                return NULL;
        if ((k->call && (k->attempts > 0 || k->again)) || (k->retry && sd_event_source_get_enabled(k->retry, NULL) > 0))
                log_warning("Exiting with a kick not yet delivered (%s)", k->reason);
        sd_bus_slot_unref(k->call);
        sd_event_source_disable_unref(k->retry);
        sd_bus_unref(k->bus);
        sd_event_unref(k->event);
        free(k);
        return NULL;
}
