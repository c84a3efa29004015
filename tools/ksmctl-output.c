/* SPDX-License-Identifier: Apache-2.0 */
/* ksmctl's output: messages on stderr, escaped text, and JSON through jansson. */

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "fd-util.h"
#include "ksmctl.h"
#include "parse-util.h"

static void log_errorv(int error, const char *format, va_list ap) {
        fputs("ksmctl: ", stderr);
        errno = error; /* what %m names */
        vfprintf(stderr, format, ap);
        fputc('\n', stderr);
}

void log_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        log_errorv(errno, format, ap);
        va_end(ap);
}

int log_error_errno(int error, const char *format, ...) {
        va_list ap;

        error = error < 0 ? -error : error;
        va_start(ap, format);
        log_errorv(error, format, ap);
        va_end(ap);
        return -error;
}

int connect_bus(sd_bus **ret) {
        int r = ksmt_bus_open(ret);
        if (r < 0) {
                log_error_errno(r, "cannot connect to the system bus: %m");
                return KSMT_EXIT_NOT_RUNNING;
        }
        return KSMT_EXIT_OK;
}

int report_call_failure(const char *action, const sd_bus_error *error, int r) {
        char message[1024];
        int status = ksmt_error_message(action, error, r, message, sizeof message);

        log_error("%s", message);
        return status;
}

int report_read_failure(const char *action, const char *call, const sd_bus_error *error, int r) {
        if (!sd_bus_error_is_set(error) && (r == -EBADMSG || r == -ENXIO)) {
                log_error_errno(r, "unexpected reply from ksm-throttler to %s: %m", call);
                return KSMT_EXIT_FAILED;
        }
        return report_call_failure(action, error, r);
}

void print_escaped(FILE *f, const char *s) {
        _cleanup_free_ char *escaped = ksmt_escape(s);

        fputs(escaped ?: "(out of memory)", f);
}

json_t *json_from_u64(uint64_t value) {
        /* json_int_t is signed; no value the daemon sends comes near the limit. */
        if (value > (uint64_t) INT64_MAX)
                return json_real((double) value);
        return json_integer((json_int_t) value);
}

json_t *json_from_settings(const struct ksmt_settings *settings) {
        json_t *object = json_object();

        for (size_t i = 0; object && i < settings->n_items; i++) {
                const struct ksmt_setting *s = &settings->items[i];
                json_t *value = s->type == KSMT_VALUE_NUMBER ? json_from_u64(s->number) :
                                s->type == KSMT_VALUE_STRING ? json_string(s->string) : json_null();

                if (json_object_set_new(object, s->name, value) < 0) {
                        json_decref(object);
                        return NULL;
                }
        }
        return object;
}

json_t *json_from_counters(const struct ksmt_counters *counters) {
        json_t *object = json_object();

        for (size_t i = 0; object && i < counters->n_items; i++)
                if (json_object_set_new(object, counters->items[i].name, json_integer(counters->items[i].value)) < 0) {
                        json_decref(object);
                        return NULL;
                }
        return object;
}

int print_json(json_t *json) {
        size_t flags = JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
                       (arg_json == JSON_OUTPUT_PRETTY ? JSON_INDENT(2) : JSON_COMPACT);
        int r;

        if (!json) {
                log_error("out of memory");
                return KSMT_EXIT_FAILED;
        }
        r = json_dumpf(json, stdout, flags);
        json_decref(json);
        if (r < 0 || fputc('\n', stdout) == EOF) {
                log_error_errno(errno, "failed to write output: %m");
                return KSMT_EXIT_FAILED;
        }
        return KSMT_EXIT_OK;
}

int finish_output(void) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
                log_error_errno(errno, "failed to write output: %m");
                return KSMT_EXIT_FAILED;
        }
        return KSMT_EXIT_OK;
}

uint64_t now_realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}
