/* SPDX-License-Identifier: Apache-2.0 */
/* ksmctl status and stats */

#include <errno.h>
#include <inttypes.h>

#include "fd-util.h"
#include "ksmctl.h"
#include "parse-util.h"

#define BYTES_PER_MIB (1024.0 * 1024.0)

static double bytes_to_mib(int64_t bytes) {
        return (double) bytes / BYTES_PER_MIB;
}

/* Microseconds from now until `when` (CLOCK_REALTIME); 0 if it has passed. */
static uint64_t usec_until(uint64_t when, uint64_t now) {
        return when > now ? when - now : 0;
}

static void print_setting_value(const struct ksmt_setting *setting) {
        switch (setting->type) {
        case KSMT_VALUE_NUMBER:
                printf("%" PRIu64, setting->number);
                break;
        case KSMT_VALUE_STRING:
                print_escaped(stdout, setting->string);
                break;
        case KSMT_VALUE_OTHER:
                fputc('?', stdout);
                break;
        }
}

/* "Label: name=value name=value" */
static void print_settings_line(const char *label, const struct ksmt_settings *settings) {
        printf("%s:", label);
        if (settings->n_items == 0)
                fputs(" (none)", stdout);
        for (size_t i = 0; i < settings->n_items; i++) {
                fputc(' ', stdout);
                print_escaped(stdout, settings->items[i].name);
                fputc('=', stdout);
                print_setting_value(&settings->items[i]);
        }
        fputc('\n', stdout);
}

/* "Label: text" with text escaped, or "unknown". */
static void print_text_line(const char *label, const char *text) {
        printf("%s: ", label);
        print_escaped(stdout, text ?: "unknown");
        fputc('\n', stdout);
}

static void print_status_human(const struct ksmt_properties *p, uint64_t now) {
        int64_t saved_bytes;

        print_text_line("State", p->state);

        if (p->next_transition_usec == 0)
                printf("Next transition: none\n");
        else
                printf("Next transition: in %.1fs\n",
                       (double) usec_until(p->next_transition_usec, now) / USEC_PER_SEC);

        print_settings_line("Settings", &p->settings);
        print_settings_line("Host settings", &p->initial_settings);

        /* KSM's own net gain (general_profit), not pages_sharing × page size. */
        if (ksmt_saved_bytes(&p->statistics, &saved_bytes) >= 0)
                printf("Saved: %.1f MiB\n", bytes_to_mib(saved_bytes));
        else
                printf("Saved: unknown\n");

        if (p->last_kick_usec == 0)
                printf("Kicks: %" PRIu64 "\n", p->kick_count);
        else
                printf("Kicks: %" PRIu64 " (last %.1fs ago)\n", p->kick_count,
                       (double) usec_until(now, p->last_kick_usec) / USEC_PER_SEC);
        if (p->kicks_by_origin.n_items > 0) {
                fputs("Kicks by origin:", stdout);
                for (size_t i = 0; i < p->kicks_by_origin.n_items; i++) {
                        fputc(' ', stdout);
                        print_escaped(stdout, p->kicks_by_origin.items[i].name);
                        printf("=%" PRIu64, p->kicks_by_origin.items[i].value);
                }
                fputc('\n', stdout);
        }
        if ((p->present & KSMT_PROPERTY_LAST_KICK_DETAIL) && p->last_kick.usec != 0) {
                const struct ksmt_kick *k = &p->last_kick;
                fputs("Last kick: ", stdout);
                print_escaped(stdout, k->reason[0] ? k->reason : "(no reason given)");
                if (k->application_id[0]) {
                        fputs(" by ", stdout);
                        print_escaped(stdout, k->application_id);
                }
                fputs(" from ", stdout);
                print_escaped(stdout, k->origin);
                fputc('\n', stdout);
        }

        print_text_line("Version", p->version);
}

static json_t *json_string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

json_t *json_from_kick(const struct ksmt_kick *k) {
        if (k->usec == 0 || !k->reason)
                return json_null();
        return json_pack("{s:o, s:s, s:s, s:s}", "usec", json_from_u64(k->usec), "reason", k->reason,
                         "application_id", k->application_id, "origin", k->origin);
}

/* An object of name to value, or null when the daemon does not have the property. */
static json_t *json_from_tallies_or_null(const struct ksmt_properties *p, unsigned bit, const struct ksmt_tallies *t) {
        json_t *object;

        if (!(p->present & bit))
                return json_null();
        object = json_object();
        for (size_t i = 0; object && i < t->n_items; i++)
                if (json_object_set_new(object, t->items[i].name, json_from_u64(t->items[i].value)) < 0) {
                        json_decref(object);
                        return NULL;
                }
        return object;
}

static json_t *status_to_json(const struct ksmt_properties *p, uint64_t now) {
        int64_t saved_bytes;
        uint64_t next_in = p->next_transition_usec == 0 ? 0 : usec_until(p->next_transition_usec, now);

        return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                         "state", json_string_or_null(p->state),
                         "next_transition_usec", json_from_u64(p->next_transition_usec),
                         "next_transition_in_usec", json_from_u64(next_in),
                         "settings", json_from_settings(&p->settings),
                         "initial_settings", json_from_settings(&p->initial_settings),
                         "saved_bytes", ksmt_saved_bytes(&p->statistics, &saved_bytes) >= 0 ?
                                 json_integer(saved_bytes) : json_null(),
                         "kick_count", json_from_u64(p->kick_count),
                         "last_kick_usec", json_from_u64(p->last_kick_usec),
                         "last_kick", json_from_kick(&p->last_kick),
                         "kicks_by_origin", json_from_tallies_or_null(p, KSMT_PROPERTY_KICKS_BY_ORIGIN, &p->kicks_by_origin),
                         "time_in_state_usec", json_from_tallies_or_null(p, KSMT_PROPERTY_TIME_IN_STATE, &p->time_in_state),
                         "version", json_string_or_null(p->version));
}

int verb_status(sd_bus *bus, int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(ksmt_properties_done) struct ksmt_properties properties = {};
        uint64_t now;
        int r;

        r = ksmt_get_properties(bus, &properties, &error);
        if (r < 0)
                return report_read_failure("read the status", "GetAll", &error, r);

        now = now_realtime_usec();
        if (arg_json != JSON_OUTPUT_OFF)
                return print_json(status_to_json(&properties, now)) ?: finish_output();
        print_status_human(&properties, now);
        return finish_output();
}

int verb_stats(sd_bus *bus, int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(ksmt_counters_done) struct ksmt_counters statistics = {};
        int64_t saved_bytes;
        int r;

        r = ksmt_get_statistics(bus, &statistics, &error);
        if (r < 0)
                return report_read_failure("read the statistics", "Get Statistics", &error, r);

        if (arg_json != JSON_OUTPUT_OFF)
                return print_json(json_from_counters(&statistics)) ?: finish_output();
        for (size_t i = 0; i < statistics.n_items; i++) {
                print_escaped(stdout, statistics.items[i].name);
                printf(": %" PRId64 "\n", statistics.items[i].value);
        }
        /* KSM's own net gain (general_profit), in MiB. */
        if (ksmt_saved_bytes(&statistics, &saved_bytes) >= 0)
                printf("saved_mib: %.1f\n", bytes_to_mib(saved_bytes));
        return finish_output();
}
