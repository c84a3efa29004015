/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ksmctl: command-line client for ksm-throttler (org.kata.KsmThrottler on the
 * system bus). Kicks the throttler, shows its state and the KSM counters, and
 * follows state changes.
 *
 * Helpers return 0 or a positive value on success and -errno on failure; the
 * verb functions (verb_*) return the process exit status instead, because the
 * exit status has to say which of several D-Bus errors happened, and -errno
 * cannot (sd-bus maps AccessDenied and a local EACCES to the same errno).
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#ifndef VERSION
#define VERSION "0.1.0"
#endif

#define _cleanup_(f) __attribute__((cleanup(f)))

#define SERVICE_NAME "org.kata.KsmThrottler"
#define OBJECT_PATH "/org/kata/KsmThrottler"
#define INTERFACE_NAME "org.kata.KsmThrottler"
#define KSM_UNAVAILABLE_ERROR "org.kata.KsmThrottler.Error.KsmUnavailable"

#define USEC_PER_SEC UINT64_C(1000000)
#define BYTES_PER_MIB (1024.0 * 1024.0)
#define KICK_TIMEOUT_USEC (120 * USEC_PER_SEC)

enum exit_status {
        EXIT_STATUS_OK = 0,
        EXIT_STATUS_FAILED = 1,
        EXIT_STATUS_USAGE = 2,
        EXIT_STATUS_NOT_RUNNING = 3,
        EXIT_STATUS_ACCESS_DENIED = 4,
        EXIT_STATUS_KSM_UNAVAILABLE = 5,
};

static bool arg_json = false;

__attribute__((format(printf, 1, 2)))
static void log_error(const char *format, ...) {
        va_list ap;

        fputs("ksmctl: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* Reports a mistake on the command line; returns -EINVAL. */
__attribute__((format(printf, 1, 2)))
static int usage_error(const char *format, ...) {
        va_list ap;

        fputs("ksmctl: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputs("\nTry 'ksmctl --help' for more information.\n", stderr);
        return -EINVAL;
}

static uint64_t now_realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------------------
 * Values read from the bus. Settings (a{sv}) and Statistics (a{sx}) are kept as
 * ordered lists of named values so that they print in the order received and
 * so that knobs this client does not know about still show up.
 */

struct typed_value {
        char type; /* D-Bus type code of the value; 0 for a type we cannot show */
        union {
                uint64_t unsigned_number; /* y q u t */
                int64_t signed_number;    /* n i x */
                double real;              /* d */
                bool boolean;             /* b */
        };
        char *string; /* s o g, owned */
};

struct named_value {
        char *name;
        struct typed_value value;
};

struct value_list {
        struct named_value *items;
        size_t n_items;
};

static void named_value_done(struct named_value *entry) {
        free(entry->name);
        free(entry->value.string);
        *entry = (struct named_value) {};
}

static void value_list_done(struct value_list *list) {
        for (size_t i = 0; i < list->n_items; i++)
                named_value_done(&list->items[i]);
        free(list->items);
        *list = (struct value_list) {};
}

/* Moves *entry to the end of the list; *entry is left empty. */
static int value_list_append(struct value_list *list, struct named_value *entry) {
        struct named_value *items = reallocarray(list->items, list->n_items + 1, sizeof *items);
        if (!items)
                return -ENOMEM;
        list->items = items;
        list->items[list->n_items++] = *entry;
        *entry = (struct named_value) {};
        return 0;
}

static const struct typed_value *value_list_find(const struct value_list *list, const char *name) {
        for (size_t i = 0; i < list->n_items; i++)
                if (strcmp(list->items[i].name, name) == 0)
                        return &list->items[i].value;
        return NULL;
}

/* Reads one value of the single complete type `signature` at the current
 * position. Basic types are stored; anything else is skipped and stored with
 * type 0, so one odd entry does not make the whole reply unreadable. */
static int read_typed_value(sd_bus_message *m, const char *signature, struct typed_value *ret) {
        struct typed_value value = {};
        char type = signature[0];
        int r;

        if (signature[0] == '\0' || signature[1] != '\0')
                type = 0; /* container */

        switch (type) {
        case 'y': {
                uint8_t v = 0;
                r = sd_bus_message_read_basic(m, type, &v);
                value.unsigned_number = v;
                break;
        }
        case 'q': {
                uint16_t v = 0;
                r = sd_bus_message_read_basic(m, type, &v);
                value.unsigned_number = v;
                break;
        }
        case 'u': {
                uint32_t v = 0;
                r = sd_bus_message_read_basic(m, type, &v);
                value.unsigned_number = v;
                break;
        }
        case 't': {
                uint64_t v = 0;
                r = sd_bus_message_read_basic(m, type, &v);
                value.unsigned_number = v;
                break;
        }
        case 'n': {
                int16_t v = 0;
                r = sd_bus_message_read_basic(m, type, &v);
                value.signed_number = v;
                break;
        }
        case 'i': {
                int32_t v = 0;
                r = sd_bus_message_read_basic(m, type, &v);
                value.signed_number = v;
                break;
        }
        case 'x': {
                int64_t v = 0;
                r = sd_bus_message_read_basic(m, type, &v);
                value.signed_number = v;
                break;
        }
        case 'd':
                r = sd_bus_message_read_basic(m, type, &value.real);
                break;
        case 'b': {
                int v = 0; /* sd-bus reads a D-Bus boolean as int, not bool */
                r = sd_bus_message_read_basic(m, type, &v);
                value.boolean = v;
                break;
        }
        case 's':
        case 'o':
        case 'g': {
                const char *v = NULL;
                r = sd_bus_message_read_basic(m, type, &v);
                if (r > 0) {
                        value.string = strdup(v);
                        if (!value.string)
                                return -ENOMEM;
                }
                break;
        }
        default:
                type = 0;
                r = sd_bus_message_skip(m, signature);
                if (r >= 0)
                        r = 1;
                break;
        }
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG; /* the container ended where a value should be */

        value.type = type;
        *ret = value;
        return 0;
}

/* Reads a dictionary a{s<value_signature>}, where value_signature is "v" or a
 * basic type, appending its entries in order. */
static int read_dictionary(sd_bus_message *m, const char *value_signature, struct value_list *list) {
        char entry_signature[8], array_signature[8];
        int r;

        snprintf(entry_signature, sizeof entry_signature, "s%s", value_signature);
        snprintf(array_signature, sizeof array_signature, "{s%s}", value_signature);

        r = sd_bus_message_enter_container(m, 'a', array_signature);
        if (r < 0)
                return r;

        while ((r = sd_bus_message_enter_container(m, 'e', entry_signature)) > 0) {
                _cleanup_(named_value_done) struct named_value entry = {};
                const char *name, *contents = value_signature;
                bool in_variant = strcmp(value_signature, "v") == 0;

                r = sd_bus_message_read_basic(m, 's', &name);
                if (r < 0)
                        return r;
                entry.name = strdup(name);
                if (!entry.name)
                        return -ENOMEM;

                if (in_variant) {
                        r = sd_bus_message_peek_type(m, NULL, &contents);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_enter_container(m, 'v', contents);
                        if (r < 0)
                                return r;
                }

                r = read_typed_value(m, contents, &entry.value);
                if (r < 0)
                        return r;

                if (in_variant) {
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;

                r = value_list_append(list, &entry);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;

        return sd_bus_message_exit_container(m);
}

/* ---------------------------------------------------------------------------
 * Output helpers
 */

static void json_print_string(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                case '\b':
                        fputs("\\b", f);
                        break;
                case '\f':
                        fputs("\\f", f);
                        break;
                default:
                        /* D-Bus strings are valid UTF-8, so only controls need escaping. */
                        if (*p < 0x20 || *p == 0x7f)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}

static void print_typed_value(FILE *f, const struct typed_value *value, bool json) {
        switch (value->type) {
        case 'y': case 'q': case 'u': case 't':
                fprintf(f, "%" PRIu64, value->unsigned_number);
                break;
        case 'n': case 'i': case 'x':
                fprintf(f, "%" PRId64, value->signed_number);
                break;
        case 'd':
                if (json && !isfinite(value->real))
                        fputs("null", f); /* JSON has no NaN or infinity */
                else
                        fprintf(f, json ? "%.17g" : "%g", value->real);
                break;
        case 'b':
                fputs(value->boolean ? "true" : "false", f);
                break;
        case 's': case 'o': case 'g':
                if (json)
                        json_print_string(f, value->string);
                else
                        fputs(value->string, f);
                break;
        default:
                fputs(json ? "null" : "?", f);
        }
}

/* "name=value name=value" for humans. */
static void print_settings_line(const char *label, const struct value_list *settings) {
        printf("%s:", label);
        if (settings->n_items == 0)
                fputs(" (none)", stdout);
        for (size_t i = 0; i < settings->n_items; i++) {
                printf(" %s=", settings->items[i].name);
                print_typed_value(stdout, &settings->items[i].value, false);
        }
        fputc('\n', stdout);
}

/* {"name":value,...} */
static void json_print_object(const struct value_list *list) {
        fputc('{', stdout);
        for (size_t i = 0; i < list->n_items; i++) {
                if (i > 0)
                        fputc(',', stdout);
                json_print_string(stdout, list->items[i].name);
                fputc(':', stdout);
                print_typed_value(stdout, &list->items[i].value, true);
        }
        fputc('}', stdout);
}

static double bytes_to_mib(int64_t bytes) {
        return (double) bytes / BYTES_PER_MIB;
}

/* Returns general_profit in bytes through ret, or -ENOENT when the kernel (or
 * the daemon) does not report it. */
static int statistics_get_saved_bytes(const struct value_list *statistics, int64_t *ret) {
        const struct typed_value *profit = value_list_find(statistics, "general_profit");

        if (!profit || profit->type != 'x')
                return -ENOENT;
        *ret = profit->signed_number;
        return 0;
}

/* Output goes to pipes in scripts and tests: a full disk or a closed reader
 * must show in the exit status, not vanish. */
static int finish_output(void) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
                log_error("failed to write output: %s", strerror(errno));
                return EXIT_STATUS_FAILED;
        }
        return EXIT_STATUS_OK;
}

/* ---------------------------------------------------------------------------
 * Bus connection and error reporting
 */

static int connect_system_bus(sd_bus **ret) {
        int r = sd_bus_open_system(ret);
        if (r < 0) {
                log_error("cannot connect to the system bus: %s", strerror(-r));
                return EXIT_STATUS_NOT_RUNNING;
        }
        return EXIT_STATUS_OK;
}

static bool error_means_not_running(const sd_bus_error *error) {
        return sd_bus_error_has_names(error,
                                      SD_BUS_ERROR_SERVICE_UNKNOWN,
                                      SD_BUS_ERROR_NAME_HAS_NO_OWNER);
}

static const char *error_text(const sd_bus_error *error) {
        return error->message && error->message[0] ? error->message : error->name;
}

/* Says why `action` (e.g. "kick", "read the status") failed, and returns the
 * exit status for it. */
static int report_call_failure(const char *action, const sd_bus_error *error, int r) {
        if (!sd_bus_error_is_set(error)) {
                /* Failed locally, before or without a reply. */
                if (r == -ETIMEDOUT) {
                        log_error("cannot reach ksm-throttler on the system bus: no reply in time");
                        return EXIT_STATUS_NOT_RUNNING;
                }
                if (r == -ECONNRESET || r == -ENOTCONN) {
                        log_error("cannot reach ksm-throttler on the system bus: %s", strerror(-r));
                        return EXIT_STATUS_NOT_RUNNING;
                }
                log_error("failed to %s: %s", action, strerror(-r));
                return EXIT_STATUS_FAILED;
        }

        if (error_means_not_running(error)) {
                log_error("cannot reach ksm-throttler on the system bus: the service is not running (%s)",
                          error->name);
                return EXIT_STATUS_NOT_RUNNING;
        }
        /* Bus activation was tried and the service did not come up. */
        if (strncmp(error->name, "org.freedesktop.DBus.Error.Spawn.", strlen("org.freedesktop.DBus.Error.Spawn.")) == 0) {
                log_error("cannot reach ksm-throttler on the system bus: the service failed to start: %s (%s)",
                          error_text(error), error->name);
                return EXIT_STATUS_NOT_RUNNING;
        }
        /* The name has an owner, but it does not answer. */
        if (sd_bus_error_has_names(error,
                                   SD_BUS_ERROR_NO_REPLY,
                                   SD_BUS_ERROR_TIMEOUT,
                                   "org.freedesktop.DBus.Error.TimedOut",
                                   SD_BUS_ERROR_DISCONNECTED)) {
                log_error("cannot reach ksm-throttler on the system bus: %s (%s)",
                          error_text(error), error->name);
                return EXIT_STATUS_NOT_RUNNING;
        }
        if (sd_bus_error_has_names(error,
                                   SD_BUS_ERROR_ACCESS_DENIED,
                                   SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED)) {
                log_error("not allowed to %s: %s", action, error_text(error));
                return EXIT_STATUS_ACCESS_DENIED;
        }
        if (sd_bus_error_has_name(error, KSM_UNAVAILABLE_ERROR)) {
                log_error("KSM unavailable: %s", error_text(error));
                return EXIT_STATUS_KSM_UNAVAILABLE;
        }

        log_error("failed to %s: %s (%s)", action, error_text(error), error->name);
        return EXIT_STATUS_FAILED;
}

static int report_bad_reply(const char *what, int r) {
        log_error("unexpected reply from ksm-throttler to %s: %s", what, strerror(-r));
        return EXIT_STATUS_FAILED;
}

/* ---------------------------------------------------------------------------
 * kick
 */

static int verb_kick(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int status, r;

        status = connect_system_bus(&bus);
        if (status != EXIT_STATUS_OK)
                return status;

        /* Let polkit ask for a password only if someone is there to type it;
         * in scripts the call must fail fast instead of hanging on an agent. */
        r = sd_bus_set_allow_interactive_authorization(bus, isatty(STDIN_FILENO));
        if (r < 0) {
                log_error("failed to set up the bus connection: %s", strerror(-r));
                return EXIT_STATUS_FAILED;
        }

        /* Wait longer than the daemon waits for polkit (PolkitTimeoutSec=, 25 s by default),
         * so that its verdict arrives here instead of a local time-out. */
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        r = sd_bus_message_new_method_call(bus, &call, SERVICE_NAME, OBJECT_PATH, INTERFACE_NAME, "Kick");
        if (r < 0) {
                log_error("failed to create the Kick call: %s", strerror(-r));
                return EXIT_STATUS_FAILED;
        }
        r = sd_bus_call(bus, call, KICK_TIMEOUT_USEC, &error, NULL);
        if (r < 0)
                return report_call_failure("kick", &error, r);

        return EXIT_STATUS_OK;
}

/* ---------------------------------------------------------------------------
 * status and stats
 */

struct service_status {
        char *state;   /* NULL if the daemon did not report it */
        char *version; /* likewise */
        uint64_t next_transition_usec;
        uint64_t kick_count;
        uint64_t last_kick_usec;
        struct value_list settings;
        struct value_list initial_settings;
        struct value_list statistics;
};

static void service_status_done(struct service_status *status) {
        free(status->state);
        free(status->version);
        value_list_done(&status->settings);
        value_list_done(&status->initial_settings);
        value_list_done(&status->statistics);
}

static int read_string_dup(sd_bus_message *m, char **ret) {
        const char *s;
        int r = sd_bus_message_read_basic(m, 's', &s);
        if (r < 0)
                return r;
        free(*ret);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* Reads the value of property `name`, whose variant holds `contents`.
 * Returns 1 if it was one we use, 0 if it was skipped. */
static int read_status_property(sd_bus_message *m, const char *name, const char *contents,
                                struct service_status *status) {
        static const struct {
                const char *name;
                const char *signature;
        } known[] = {
                { "State", "s" },
                { "Version", "s" },
                { "NextTransitionUSec", "t" },
                { "KickCount", "t" },
                { "LastKickUSec", "t" },
                { "Settings", "a{sv}" },
                { "InitialSettings", "a{sv}" },
                { "Statistics", "a{sx}" },
        };
        const char *expected = NULL;
        int r;

        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                if (strcmp(known[i].name, name) == 0)
                        expected = known[i].signature;

        if (!expected)
                return 0; /* a newer daemon's property: not ours to show */

        if (strcmp(contents, expected) != 0) {
                log_error("property %s has type '%s', expected '%s'", name, contents, expected);
                return -EBADMSG;
        }

        if (strcmp(name, "State") == 0)
                r = read_string_dup(m, &status->state);
        else if (strcmp(name, "Version") == 0)
                r = read_string_dup(m, &status->version);
        else if (strcmp(name, "NextTransitionUSec") == 0)
                r = sd_bus_message_read_basic(m, 't', &status->next_transition_usec);
        else if (strcmp(name, "KickCount") == 0)
                r = sd_bus_message_read_basic(m, 't', &status->kick_count);
        else if (strcmp(name, "LastKickUSec") == 0)
                r = sd_bus_message_read_basic(m, 't', &status->last_kick_usec);
        else if (strcmp(name, "Settings") == 0)
                r = read_dictionary(m, "v", &status->settings);
        else if (strcmp(name, "InitialSettings") == 0)
                r = read_dictionary(m, "v", &status->initial_settings);
        else
                r = read_dictionary(m, "x", &status->statistics);

        return r < 0 ? r : 1;
}

/* Parses the a{sv} reply of Properties.GetAll. */
static int parse_status_reply(sd_bus_message *reply, struct service_status *status) {
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;

        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *name, *contents;

                r = sd_bus_message_read_basic(reply, 's', &name);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(reply, NULL, &contents);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(reply, 'v', contents);
                if (r < 0)
                        return r;

                r = read_status_property(reply, name, contents, status);
                if (r < 0)
                        return r;
                if (r == 0) {
                        r = sd_bus_message_skip(reply, contents);
                        if (r < 0)
                                return r;
                }

                r = sd_bus_message_exit_container(reply); /* variant */
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply); /* dict entry */
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;

        return sd_bus_message_exit_container(reply);
}

/* Microseconds from now until `when` (CLOCK_REALTIME); 0 if it has passed. */
static uint64_t usec_until(uint64_t when, uint64_t now) {
        return when > now ? when - now : 0;
}

static void print_status_human(const struct service_status *status, uint64_t now) {
        int64_t saved_bytes;

        printf("State: %s\n", status->state ?: "unknown");

        if (status->next_transition_usec == 0)
                printf("Next transition: none\n");
        else
                printf("Next transition: in %.1fs\n",
                       (double) usec_until(status->next_transition_usec, now) / USEC_PER_SEC);

        print_settings_line("Settings", &status->settings);
        print_settings_line("Host settings", &status->initial_settings);

        if (statistics_get_saved_bytes(&status->statistics, &saved_bytes) >= 0)
                printf("Saved: %.1f MiB\n", bytes_to_mib(saved_bytes));
        else
                printf("Saved: unknown\n");

        if (status->last_kick_usec == 0)
                printf("Kicks: %" PRIu64 "\n", status->kick_count);
        else
                printf("Kicks: %" PRIu64 " (last %.1fs ago)\n", status->kick_count,
                       (double) usec_until(now, status->last_kick_usec) / USEC_PER_SEC);

        printf("Version: %s\n", status->version ?: "unknown");
}

static void json_print_string_or_null(const char *s) {
        if (s)
                json_print_string(stdout, s);
        else
                fputs("null", stdout);
}

static void print_status_json(const struct service_status *status, uint64_t now) {
        int64_t saved_bytes;
        uint64_t next_in = status->next_transition_usec == 0 ? 0 :
                usec_until(status->next_transition_usec, now);

        fputs("{\"state\":", stdout);
        json_print_string_or_null(status->state);
        printf(",\"next_transition_usec\":%" PRIu64, status->next_transition_usec);
        printf(",\"next_transition_in_usec\":%" PRIu64, next_in);
        fputs(",\"settings\":", stdout);
        json_print_object(&status->settings);
        fputs(",\"initial_settings\":", stdout);
        json_print_object(&status->initial_settings);
        if (statistics_get_saved_bytes(&status->statistics, &saved_bytes) >= 0)
                printf(",\"saved_bytes\":%" PRId64, saved_bytes);
        else
                fputs(",\"saved_bytes\":null", stdout);
        printf(",\"kick_count\":%" PRIu64, status->kick_count);
        printf(",\"last_kick_usec\":%" PRIu64, status->last_kick_usec);
        fputs(",\"version\":", stdout);
        json_print_string_or_null(status->version);
        fputs("}\n", stdout);
}

static int verb_status(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(service_status_done) struct service_status status = {};
        int exit_status, r;

        exit_status = connect_system_bus(&bus);
        if (exit_status != EXIT_STATUS_OK)
                return exit_status;

        /* One GetAll, so every value comes from the same moment. */
        r = sd_bus_call_method(bus, SERVICE_NAME, OBJECT_PATH, "org.freedesktop.DBus.Properties", "GetAll",
                               &error, &reply, "s", INTERFACE_NAME);
        if (r < 0)
                return report_call_failure("read the status", &error, r);

        r = parse_status_reply(reply, &status);
        if (r < 0)
                return report_bad_reply("GetAll", r);

        uint64_t now = now_realtime_usec();
        if (arg_json)
                print_status_json(&status, now);
        else
                print_status_human(&status, now);

        return finish_output();
}

static int verb_stats(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(value_list_done) struct value_list statistics = {};
        int64_t saved_bytes;
        int exit_status, r;

        exit_status = connect_system_bus(&bus);
        if (exit_status != EXIT_STATUS_OK)
                return exit_status;

        r = sd_bus_get_property(bus, SERVICE_NAME, OBJECT_PATH, INTERFACE_NAME, "Statistics",
                                &error, &reply, "a{sx}");
        if (r < 0)
                return report_call_failure("read the statistics", &error, r);

        r = read_dictionary(reply, "x", &statistics);
        if (r < 0)
                return report_bad_reply("Get Statistics", r);

        if (arg_json) {
                json_print_object(&statistics);
                fputc('\n', stdout);
        } else {
                for (size_t i = 0; i < statistics.n_items; i++) {
                        printf("%s: ", statistics.items[i].name);
                        print_typed_value(stdout, &statistics.items[i].value, false);
                        fputc('\n', stdout);
                }
                if (statistics_get_saved_bytes(&statistics, &saved_bytes) >= 0)
                        printf("saved_mib: %.1f\n", bytes_to_mib(saved_bytes));
        }

        return finish_output();
}

/* ---------------------------------------------------------------------------
 * monitor
 */

/* "2026-11-26 13:45:01.123", local time. */
static int format_now(char *buf, size_t size) {
        struct timespec ts;
        struct tm tm;
        char seconds[32];

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        if (!localtime_r(&ts.tv_sec, &tm))
                return -EOVERFLOW;
        if (strftime(seconds, sizeof seconds, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                return -ENOBUFS;
        snprintf(buf, size, "%s.%03ld", seconds, ts.tv_nsec / 1000000);
        return 0;
}

/* "<timestamp> <state> (<note>)", flushed at once: the reader is usually a
 * pipe, and a line is only useful when it happens. */
static void print_monitor_line(const char *state, const char *note_prefix, const char *note) {
        char timestamp[64];

        if (format_now(timestamp, sizeof timestamp) < 0)
                strcpy(timestamp, "(unknown time)");

        printf("%s %s (%s%s)\n", timestamp, state, note_prefix, note);
        fflush(stdout);
}

static int on_state_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *state, *previous;
        int r;

        (void) userdata;
        (void) ret_error;

        r = sd_bus_message_read(m, "ss", &state, &previous);
        if (r < 0) {
                log_error("ignoring a malformed StateChanged signal: %s", strerror(-r));
                return 0;
        }

        print_monitor_line(state, "was ", previous);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *name, *old_owner, *new_owner;
        int r;

        (void) userdata;
        (void) ret_error;

        r = sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner);
        if (r < 0)
                return 0;

        /* Notes for the person watching; stdout carries only state lines. */
        if (new_owner[0] == '\0')
                log_error("ksm-throttler stopped; waiting for it");
        else if (old_owner[0] == '\0')
                log_error("ksm-throttler started");
        return 0;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        sd_event *event = userdata;

        (void) m;
        (void) ret_error;

        log_error("lost the connection to the system bus");
        return sd_event_exit(event, EXIT_STATUS_NOT_RUNNING);
}

static int on_exit_signal(sd_event_source *source, const struct signalfd_siginfo *info, void *userdata) {
        (void) info;
        (void) userdata;

        return sd_event_exit(sd_event_source_get_event(source), EXIT_STATUS_OK);
}

/* Returns 1 if the service's name has an owner, 0 if not. Asks the bus, not
 * the service, so that a monitor never starts the daemon by activation. */
static int service_is_running(sd_bus *bus, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int has_owner, r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", error, &reply, "s", SERVICE_NAME);
        if (r < 0)
                return r;

        r = sd_bus_message_read(reply, "b", &has_owner);
        if (r < 0)
                return r;
        return has_owner ? 1 : 0;
}

/* Reads State without bus activation. Returns 1 and the state (pointing into
 * *ret_reply), or 0 if the service is not running. */
static int read_current_state(sd_bus *bus, sd_bus_message **ret_reply, const char **ret_state,
                              sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        int r;

        r = service_is_running(bus, error);
        if (r <= 0)
                return r;

        r = sd_bus_message_new_method_call(bus, &call, SERVICE_NAME, OBJECT_PATH,
                                           "org.freedesktop.DBus.Properties", "Get");
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "ss", INTERFACE_NAME, "State");
        if (r < 0)
                return r;
        /* It may have exited since NameHasOwner: then report "not running"
         * rather than start it. */
        r = sd_bus_message_set_auto_start(call, false);
        if (r < 0)
                return r;

        r = sd_bus_call(bus, call, 0, error, &reply);
        if (r < 0) {
                if (error_means_not_running(error)) {
                        sd_bus_error_free(error);
                        return 0;
                }
                return r;
        }

        r = sd_bus_message_read(reply, "v", "s", ret_state);
        if (r < 0)
                return r;

        *ret_reply = reply;
        reply = NULL;
        return 1;
}

static int verb_monitor(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *state_reply = NULL;
        const char *state = NULL;
        sigset_t exit_signals;
        int exit_status, r;

        /* sd-event receives signals through a signalfd, which needs them blocked. */
        sigemptyset(&exit_signals);
        sigaddset(&exit_signals, SIGINT);
        sigaddset(&exit_signals, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &exit_signals, NULL) < 0) {
                log_error("failed to block SIGINT and SIGTERM: %s", strerror(errno));
                return EXIT_STATUS_FAILED;
        }

        r = sd_event_default(&event);
        if (r < 0) {
                log_error("failed to create the event loop: %s", strerror(-r));
                return EXIT_STATUS_FAILED;
        }
        r = sd_event_add_signal(event, NULL, SIGINT, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_exit_signal, NULL);
        if (r < 0) {
                log_error("failed to watch SIGINT and SIGTERM: %s", strerror(-r));
                return EXIT_STATUS_FAILED;
        }

        exit_status = connect_system_bus(&bus);
        if (exit_status != EXIT_STATUS_OK)
                return exit_status;

        /* Subscribe before reading the current state, so that no change falls
         * between the two. */
        r = sd_bus_match_signal(bus, NULL, SERVICE_NAME, OBJECT_PATH, INTERFACE_NAME, "StateChanged",
                                on_state_changed, NULL);
        if (r < 0) {
                log_error("failed to subscribe to StateChanged: %s", strerror(-r));
                return EXIT_STATUS_FAILED;
        }
        r = sd_bus_add_match(bus, NULL,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                             "arg0='" SERVICE_NAME "'",
                             on_name_owner_changed, NULL);
        if (r < 0) {
                log_error("failed to subscribe to NameOwnerChanged: %s", strerror(-r));
                return EXIT_STATUS_FAILED;
        }
        /* sd-bus delivers this one locally when the bus connection drops. */
        r = sd_bus_match_signal(bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                "Disconnected", on_disconnected, event);
        if (r < 0) {
                log_error("failed to watch the bus connection: %s", strerror(-r));
                return EXIT_STATUS_FAILED;
        }

        r = read_current_state(bus, &state_reply, &state, &error);
        if (r < 0)
                return report_call_failure("read the state", &error, r);
        if (r == 0)
                log_error("ksm-throttler is not running; waiting for it");
        else
                print_monitor_line(state, "", "current");

        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                log_error("failed to attach the bus to the event loop: %s", strerror(-r));
                return EXIT_STATUS_FAILED;
        }

        r = sd_event_loop(event);
        if (r < 0) {
                log_error("event loop failed: %s", strerror(-r));
                return EXIT_STATUS_FAILED;
        }
        return r;
}

/* ---------------------------------------------------------------------------
 * Command line
 */

static void print_help(void) {
        printf("Usage: ksmctl [OPTIONS] COMMAND\n"
               "\n"
               "Control and inspect ksm-throttler, which makes Kernel Same-page Merging scan\n"
               "hard after a kick and then decays back to the host's own settings.\n"
               "\n"
               "Commands:\n"
               "  kick        Make KSM scan aggressively now (restarts the aggressive timer)\n"
               "  status      Show the state, time to the next transition, settings, savings\n"
               "  stats       Show the live KSM counters\n"
               "  monitor     Print each state change as it happens, until interrupted\n"
               "\n"
               "Options:\n"
               "  --json      Print status or stats as one JSON object on one line\n"
               "  -h, --help  Show this help and exit\n"
               "  --version   Show the version and exit\n"
               "\n"
               "Exit status:\n"
               "  0  success\n"
               "  1  other failure\n"
               "  2  usage error\n"
               "  3  ksm-throttler is not running, or the system bus cannot be reached\n"
               "  4  access denied (polkit or bus policy)\n"
               "  5  KSM unavailable on this host\n"
               "\n"
               "See ksmctl(1).\n");
}

enum verb {
        VERB_KICK,
        VERB_STATUS,
        VERB_STATS,
        VERB_MONITOR,
};

static const struct {
        const char *name;
        enum verb verb;
        bool takes_json;
} verbs[] = {
        { "kick", VERB_KICK, false },
        { "status", VERB_STATUS, true },
        { "stats", VERB_STATS, true },
        { "monitor", VERB_MONITOR, false },
};

/* Returns 1 with the verb to run in *ret_verb; 0 when there is nothing more to
 * do (--help, --version); -EINVAL after reporting a usage error. */
static int parse_argv(int argc, char *argv[], enum verb *ret_verb) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, ARG_JSON },
                {}
        };
        const char *verb_name;
        int c;

        /* We print our own messages, with our prefix and the --help hint. */
        opterr = 0;

        /* GNU getopt permutes, so options may come before or after the verb. */
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        print_help();
                        return 0;
                case ARG_VERSION:
                        printf("ksmctl %s\n", VERSION);
                        return 0;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case '?': {
                        const char *arg = argv[optind - 1];
                        const char *equals = strchr(arg, '=');

                        /* For a long option, optopt is 0 if it is unknown, and its
                         * value if it was given an argument it does not take. */
                        if (strncmp(arg, "--", 2) != 0)
                                return usage_error("unknown option '-%c'", optopt);
                        if (optopt != 0 && equals)
                                return usage_error("option '%.*s' takes no value", (int) (equals - arg), arg);
                        return usage_error("unknown option '%s'", arg);
                }
                default:
                        return usage_error("unhandled option '%s'", argv[optind - 1]);
                }
        }

        if (optind >= argc)
                return usage_error("missing command (kick, status, stats or monitor)");
        verb_name = argv[optind];
        if (optind + 1 < argc)
                return usage_error("unexpected argument '%s'", argv[optind + 1]);

        for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
                if (strcmp(verbs[i].name, verb_name) != 0)
                        continue;
                if (arg_json && !verbs[i].takes_json)
                        return usage_error("--json is only valid with status and stats");
                *ret_verb = verbs[i].verb;
                return 1;
        }

        return usage_error("unknown command '%s'", verb_name);
}

int main(int argc, char *argv[]) {
        enum verb verb = VERB_STATUS; /* set by parse_argv() when it returns 1 */
        int r;

        r = parse_argv(argc, argv, &verb);
        if (r < 0)
                return EXIT_STATUS_USAGE;
        if (r == 0)
                return finish_output();

        switch (verb) {
        case VERB_KICK:
                return verb_kick();
        case VERB_STATUS:
                return verb_status();
        case VERB_STATS:
                return verb_stats();
        case VERB_MONITOR:
                return verb_monitor();
        }
        return EXIT_STATUS_FAILED;
}
