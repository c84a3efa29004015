/* SPDX-License-Identifier: Apache-2.0 */
#include "bus-savings.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus-names.h"
#include "fd-util.h"
#include "ksm-accounting.h"
#include "log.h"

/* Rows younger than this are answered from the cache: a VM manager polling every
 * second, or many callers at once, cost one /proc scan a second at most. */
#define SAVINGS_CACHE_USEC (1000 * UINT64_C(1000))
/* The most processes taking part in KSM one scan keeps (a few hundred bytes each);
 * beyond that the rows are of the first ones found. */
#define SAVINGS_MAX_PROCESSES 4096

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

struct bus_savings {
        struct authorizer *authorizer;
        sd_bus_slot *slot;
        struct ksm_accounting rows; /* groups only: the per-process array is dropped after a scan */
        uint64_t rows_usec;         /* CLOCK_MONOTONIC of the scan; 0: none */
};

static uint64_t monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* Rescans /proc when the cached rows are older than SAVINGS_CACHE_USEC. Only
 * /proc/<pid>/ksm_stat, cgroup and (for Kata) cmdline are read: smaps walks page
 * tables and is left to ksmctl top, so mergeable sizes are unknown here. Machines are
 * named from their machine-NAME.scope cgroup, without a blocking call to machined. */
static int refresh_rows(struct bus_savings *s) {
        struct ksm_accounting scanned = {};
        uint64_t now = monotonic_usec();
        int r;

        if (s->rows_usec != 0 && now - s->rows_usec < SAVINGS_CACHE_USEC)
                return 0;
        r = ksm_accounting_scan(&(struct ksm_accounting_options) {
                                        .proc_dir = "/proc",
                                        .max_processes = SAVINGS_MAX_PROCESSES,
                                        .read_smaps = false,
                                },
                                &scanned);
        if (r < 0)
                return log_warning_errno(r, "Cannot scan /proc for KSM savings: %m");
        free(scanned.processes);
        scanned.processes = NULL;
        scanned.n_processes = 0;
        ksm_accounting_free(&s->rows);
        s->rows = scanned;
        s->rows_usec = now;
        log_debug("Scanned %zu processes for KSM savings: %zu groups, %zu unreadable%s", scanned.n_scanned,
                  scanned.n_groups, scanned.n_denied, scanned.truncated ? ", truncated" : "");
        return 0;
}

static int reply_rows(struct bus_savings *s, sd_bus_message *m, uint32_t limit) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = ksm_accounting_append_rows(reply, &s->rows, limit);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "t", (uint64_t) s->rows.page_size);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Answers an authorized GetSavings; returns what sending the answer returned. */
static int answer(struct bus_savings *s, sd_bus_message *m) {
        uint32_t limit;
        int r;

        /* Read and checked on arrival; rewound for the verdict. */
        r = sd_bus_message_rewind(m, true);
        if (r >= 0)
                r = sd_bus_message_read(m, "u", &limit);
        if (r < 0)
                return sd_bus_reply_method_errno(m, r, NULL);
        r = refresh_rows(s);
        if (r < 0)
                return sd_bus_reply_method_errorf(m, SD_BUS_ERROR_FAILED, "Cannot scan /proc for KSM savings: %s",
                                                  strerror(-r));
        r = reply_rows(s, m, limit == 0 ? SAVINGS_DEFAULT_ROWS : limit);
        if (r < 0)
                return sd_bus_reply_method_errno(m, r, NULL);
        return r;
}

static void on_savings_authorized(sd_bus_message *m, const sd_bus_error *denied, const struct caller *caller,
                                  void *userdata) {
        const char *sender = sd_bus_message_get_sender(m);
        int r;

        if (denied)
                log_debug("GetSavings from %s refused: %s", sender ?: "?", denied->message ?: denied->name);
        r = denied ? sd_bus_reply_method_error(m, denied) : answer(userdata, m);
        if (r < 0)
                log_debug_errno(r, "Cannot reply to GetSavings from %s: %m", sender ?: "?");
}

static int method_get_savings(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct bus_savings *s = userdata;
        uint32_t limit;
        int r;

        r = sd_bus_message_read(m, "u", &limit);
        if (r < 0)
                return r;
        if (limit > SAVINGS_MAX_ROWS)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "A limit of %" PRIu32 " rows was asked for; at most " STRINGIFY(
                                                 SAVINGS_MAX_ROWS) " are returned (0: " STRINGIFY(SAVINGS_DEFAULT_ROWS) ")",
                                         limit);
        r = authorize(s->authorizer, m, POLKIT_ACTION_READ_SAVINGS, on_savings_authorized, s);
        if (r < 0)
                return r;
        return 1; /* replied (now or later) by on_savings_authorized */
}

static const sd_bus_vtable savings_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("GetSavings", SD_BUS_ARGS("u", limit),
                                SD_BUS_RESULT("a" KSM_ACCOUNTING_ROW_SIGNATURE, rows, "t", page_size), method_get_savings,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int bus_savings_new(sd_bus *bus, struct authorizer *authorizer, struct bus_savings **ret) {
        _cleanup_(bus_savings_freep) struct bus_savings *s = NULL;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return log_oom();
        s->authorizer = authorizer;
        r = sd_bus_add_object_vtable(bus, &s->slot, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE, savings_vtable, s);
        if (r < 0)
                return log_error_errno(r, "Cannot register GetSavings on the bus: %m");
        *ret = s;
        s = NULL;
        return 0;
}

struct bus_savings *bus_savings_free(struct bus_savings *s) {
        if (!s)
                return NULL;
        sd_bus_slot_unref(s->slot);
        ksm_accounting_free(&s->rows);
        free(s);
        return NULL;
}
