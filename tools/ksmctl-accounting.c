/* SPDX-License-Identifier: Apache-2.0 */
/* ksmctl top, doctor and metrics: per-VM savings, why nothing merges, and the
 * Prometheus text format. They read /proc and sysfs themselves (lib/ksm-*.c)
 * and ask the daemon only for its state, without starting it. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fd-util.h"
#include "ksm-accounting.h"
#include "ksm-doctor.h"
#include "ksm-metrics.h"
#include "ksmctl.h"
#include "parse-util.h"

#define BYTES_PER_MIB (1024.0 * 1024.0)
#define NAME_COLUMN 32

uint64_t arg_watch_usec = 0;
size_t arg_limit = 0;
bool arg_per_process = false;
const char *arg_output = NULL;
const char *arg_proc_dir = "/proc";
const char *arg_sys_dir = "/sys";

static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int sig) {
        stop_requested = 1;
}

static void sys_path(char *buf, size_t size, const char *rel) {
        snprintf(buf, size, "%s/%s", arg_sys_dir, rel);
}

static void free_machines(struct ksm_machine **m) {
        free(*m);
}

/* Machines from systemd-machined; none when there is no bus or no machined. Not an error:
 * the cgroup names libvirt and nspawn give their scopes still name the machines. */
static size_t load_machines(sd_bus *bus, struct ksm_machine **ret) {
        *ret = NULL;
        if (!bus)
                return 0;
        int r = ksm_machines_from_machined(bus, ret);
        return r > 0 ? (size_t) r : 0;
}

static int scan(sd_bus *bus, struct ksm_accounting *ret) {
        _cleanup_(free_machines) struct ksm_machine *machines = NULL;
        size_t n_machines = load_machines(bus, &machines);
        struct ksm_accounting_options o = {
                .proc_dir = arg_proc_dir,
                .read_smaps = true,
                .smaps_budget_usec = KSM_ACCOUNTING_SMAPS_BUDGET_USEC,
                .group_by_process = arg_per_process,
                .machines = machines,
                .n_machines = n_machines,
        };
        int r = ksm_accounting_scan(&o, ret);
        if (r < 0)
                log_error_errno(r, "cannot scan the processes in %s: %m", arg_proc_dir);
        return r;
}

/* The system bus if it can be reached; NULL otherwise (top, doctor and metrics work without it). */
static sd_bus *try_bus(char *why, size_t size) {
        sd_bus *bus = NULL;
        int r = ksmt_bus_open(&bus);
        if (r < 0) {
                snprintf(why, size, "no system bus: %s", strerror(-r));
                return NULL;
        }
        return bus;
}

/* Reads the daemon's properties (KSMT_PROPERTY_* bits, State always) without starting
 * it. Returns 1 if it answered. */
static int read_throttler(sd_bus *bus, unsigned which, struct ksmt_properties *p, char *why, size_t size) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        if (!bus)
                return 0;
        int r = ksmt_get_properties_no_activation(bus, which | KSMT_PROPERTY_STATE, p, &error);
        if (r == 0)
                snprintf(why, size, "ksm-throttler is not running");
        else if (r < 0)
                ksmt_error_message("read the status", &error, r, why, size);
        return r > 0 && p->state;
}

static void print_mib(int64_t bytes) {
        printf(" %10.1f", (double) bytes / BYTES_PER_MIB);
}

static void print_top_table(const struct ksm_accounting *a) {
        size_t limit = arg_limit ? arg_limit : a->n_groups;

        printf("%-8s %-*s %5s %10s %10s %10s %7s\n", "KIND", NAME_COLUMN, "NAME", "PROCS", "PROFIT/MiB", "SAVED/MiB",
               "MERGE/MiB", "MERGED");
        for (size_t i = 0; i < a->n_groups && i < limit; i++) {
                const struct ksm_group *g = &a->groups[i];
                _cleanup_free_ char *name = ksmt_escape(g->name);
                const char *shown = name ? name : "?";
                int width = (int) strlen(shown) > NAME_COLUMN ? NAME_COLUMN - 1 : NAME_COLUMN;

                printf("%-8s %-*.*s%s %5" PRIu32, ksm_group_kind_to_string(g->kind), width, width, shown,
                       width < NAME_COLUMN ? "…" : "", g->n_processes);
                print_mib(g->profit_bytes);
                print_mib((int64_t) ((g->merging_pages + g->zero_pages) * a->page_size));
                if (g->mergeable_known)
                        print_mib((int64_t) g->mergeable_bytes);
                else
                        printf(" %10s", "?");
                if (isnan(g->merged_share))
                        printf(" %7s\n", "?");
                else
                        printf(" %6.1f%%\n", g->merged_share * 100.0);
        }
        if (a->n_groups == 0)
                printf("(no process has mergeable memory)\n");
        if (a->n_groups > limit)
                printf("... %zu more\n", a->n_groups - limit);
        if (a->n_denied)
                printf("%zu processes could not be read; run as root to see them.\n", a->n_denied);
        if (a->n_smaps_skipped)
                printf("The mergeable size of %zu processes was skipped to keep the scan short (\"?\").\n", a->n_smaps_skipped);
        if (a->truncated)
                printf("Only the first %d processes taking part were counted.\n", KSM_ACCOUNTING_MAX_PROCESSES);
}

static int top_once(sd_bus *bus, bool clear) {
        _cleanup_(ksm_accounting_free) struct ksm_accounting a = {};
        if (scan(bus, &a) < 0)
                return KSMT_EXIT_FAILED;
        if (arg_json != JSON_OUTPUT_OFF) {
                int r = print_json(ksm_accounting_to_json(&a, arg_limit));
                return r == KSMT_EXIT_OK ? finish_output() : r;
        }
        if (clear)
                fputs("\033[H\033[2J", stdout);
        print_top_table(&a);
        return finish_output();
}

int verb_top(sd_bus *unused, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        char why[256];
        bool tty = isatty(STDOUT_FILENO);
        int status;

        bus = try_bus(why, sizeof why);
        if (arg_watch_usec == 0)
                return top_once(bus, false);

        struct sigaction sa = { .sa_handler = on_stop_signal };
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        while (!stop_requested) {
                status = top_once(bus, tty && arg_json == JSON_OUTPUT_OFF);
                if (status != KSMT_EXIT_OK)
                        return status;
                if (!tty && arg_json == JSON_OUTPUT_OFF)
                        putchar('\n');
                struct timespec ts = { .tv_sec = (time_t) (arg_watch_usec / USEC_PER_SEC),
                                       .tv_nsec = (long) (arg_watch_usec % USEC_PER_SEC) * 1000 };
                /* A signal ends the sleep early; the loop then sees stop_requested. */
                (void) nanosleep(&ts, NULL);
        }
        return KSMT_EXIT_OK;
}

int verb_doctor(sd_bus *unused, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(ksmt_properties_done) struct ksmt_properties p = {};
        _cleanup_(ksm_accounting_free) struct ksm_accounting a = {};
        _cleanup_free_ struct ksm_doctor_report *report = NULL;
        char why[256] = "", ksm_dir[4096], thp_dir[4096], node_dir[4096];
        int r, status;

        bus = try_bus(why, sizeof why);
        bool answered = read_throttler(bus, KSMT_PROPERTY_STATE, &p, why, sizeof why) > 0;
        r = scan(bus, &a);

        sys_path(ksm_dir, sizeof ksm_dir, "kernel/mm/ksm");
        sys_path(thp_dir, sizeof thp_dir, "kernel/mm/transparent_hugepage");
        sys_path(node_dir, sizeof node_dir, "devices/system/node");
        struct ksm_doctor_input in = {
                .ksm_dir = ksm_dir,
                .thp_dir = thp_dir,
                .node_dir = node_dir,
                .accounting = r >= 0 ? &a : NULL,
                .accounting_error = r,
                .throttler_state = answered ? p.state : NULL,
                .throttler_error = answered ? NULL : why,
        };
        /* The host's own use_zero_pages while the throttler holds its own (outside initial),
         * best effort: without it the doctor judges the value in sysfs, as before. */
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        if (answered && strcmp(p.state, "initial") != 0 &&
            ksmt_get_properties_no_activation(bus, KSMT_PROPERTY_INITIAL_SETTINGS, &p, &error) > 0 &&
            (p.present & KSMT_PROPERTY_INITIAL_SETTINGS))
                for (size_t i = 0; i < p.initial_settings.n_items; i++) {
                        const struct ksmt_setting *s = &p.initial_settings.items[i];
                        if (strcmp(s->name, "use_zero_pages") == 0 && s->type == KSMT_VALUE_NUMBER && s->number <= 1) {
                                in.has_host_use_zero_pages = true;
                                in.host_use_zero_pages = s->number;
                        }
                }
        /* About 150 KiB: on the heap. */
        report = malloc(sizeof *report);
        if (!report) {
                log_error("out of memory");
                return KSMT_EXIT_FAILED;
        }
        ksm_doctor_run(&in, report);
        if (arg_json != JSON_OUTPUT_OFF)
                status = print_json(ksm_doctor_to_json(report));
        else {
                ksm_doctor_print_text(stdout, report);
                status = KSMT_EXIT_OK;
        }
        bool failed = ksm_doctor_worst(report) == KSM_VERDICT_FAIL;
        if (status == KSMT_EXIT_OK)
                status = finish_output();
        /* Exit 1 says "something keeps memory from being merged": scripts and monitoring check it. */
        return status == KSMT_EXIT_OK && failed ? KSMT_EXIT_FAILED : status;
}

/* Counts kicks under name; once all but the last place are taken, under "other". The
 * daemon bounds its origins below that: this only guards against a bigger one. */
static void add_kick_origin(struct ksm_throttler_info *t, const char *name, uint64_t count) {
        for (size_t i = 0; i < t->n_kick_origins; i++)
                if (strcmp(t->kick_origins[i].origin, name) == 0) {
                        t->kick_origins[i].count += count;
                        return;
                }
        if (t->n_kick_origins >= KSM_METRICS_MAX_ORIGINS - 1 && strcmp(name, "other") != 0) {
                add_kick_origin(t, "other", count);
                return;
        }
        snprintf(t->kick_origins[t->n_kick_origins].origin, sizeof t->kick_origins[0].origin, "%s", name);
        t->kick_origins[t->n_kick_origins++].count = count;
}

static void fill_throttler_info(const struct ksmt_properties *p, bool answered, struct ksm_throttler_info *t) {
        *t = (struct ksm_throttler_info) { .reachable = answered };
        if (!answered)
                return;
        snprintf(t->state, sizeof t->state, "%s", p->state);
        t->kick_count = p->kick_count;
        t->last_kick_usec = p->last_kick_usec;
        for (size_t i = 0; i < p->settings.n_items && t->n_settings < KSM_METRICS_MAX_SETTINGS; i++) {
                const struct ksmt_setting *s = &p->settings.items[i];
                if (s->type != KSMT_VALUE_NUMBER)
                        continue;
                snprintf(t->settings[t->n_settings].name, sizeof t->settings[0].name, "%s", s->name);
                t->settings[t->n_settings++].value = s->number;
        }
        /* Absent from an older daemon: those families are left out. */
        if (p->present & KSMT_PROPERTY_TIME_IN_STATE) {
                t->have_state_seconds = true;
                for (size_t i = 0; i < p->time_in_state.n_items; i++)
                        for (size_t s = 0; s < sizeof t->state_seconds / sizeof t->state_seconds[0]; s++)
                                if (strcmp(p->time_in_state.items[i].name, ksm_throttler_states[s]) == 0)
                                        t->state_seconds[s] = (double) p->time_in_state.items[i].value / 1e6;
        }
        for (size_t i = 0; i < p->kicks_by_origin.n_items; i++)
                add_kick_origin(t, p->kicks_by_origin.items[i].name, p->kicks_by_origin.items[i].value);
}

static void unlinkp_path(char **path) {
        if (*path) {
                (void) unlink(*path);
                free(*path);
        }
}

/* Writes to a temporary file next to path and renames it over path, so that a
 * collector never reads half a file. */
static int write_metrics_atomically(const char *path, const struct ksm_metrics_input *in) {
        _cleanup_(unlinkp_path) char *tmp = NULL;
        FILE *f;
        int fd, r;

        if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                free(tmp);
                tmp = NULL;
                return r;
        }
        /* node_exporter runs as its own user: the file must be readable by others. */
        if (fchmod(fd, 0644) < 0 || !(f = fdopen(fd, "w"))) {
                r = -errno;
                close(fd);
                return r;
        }
        r = ksm_metrics_write(f, in);
        if (r >= 0 && fsync(fileno(f)) < 0)
                r = -errno;
        if (fclose(f) != 0 && r >= 0)
                r = -errno;
        if (r < 0)
                return r;
        if (rename(tmp, path) < 0)
                return -errno;
        free(tmp);
        tmp = NULL;
        return 0;
}

int verb_metrics(sd_bus *unused, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(ksmt_properties_done) struct ksmt_properties p = {};
        _cleanup_(ksm_accounting_free) struct ksm_accounting a = {};
        char why[256] = "", ksm_dir[4096];
        struct ksm_throttler_info t;
        int r, scanned;

        bus = try_bus(why, sizeof why);
        fill_throttler_info(&p,
                            read_throttler(bus,
                                           KSMT_PROPERTY_KICK_COUNT | KSMT_PROPERTY_LAST_KICK | KSMT_PROPERTY_SETTINGS |
                                                   KSMT_PROPERTY_KICKS_BY_ORIGIN | KSMT_PROPERTY_TIME_IN_STATE,
                                           &p, why, sizeof why) > 0,
                            &t);
        scanned = scan(bus, &a);
        sys_path(ksm_dir, sizeof ksm_dir, "kernel/mm/ksm");
        struct ksm_metrics_input in = {
                .ksm_dir = ksm_dir,
                .proc_dir = arg_proc_dir,
                .throttler = &t,
                .accounting = scanned >= 0 ? &a : NULL,
                .top = arg_limit,
        };
        if (arg_output) {
                r = write_metrics_atomically(arg_output, &in);
                if (r < 0)
                        log_error_errno(r, "cannot write %s: %m", arg_output);
        } else
                r = ksm_metrics_write(stdout, &in);
        if (r < 0)
                return KSMT_EXIT_FAILED;
        return arg_output ? KSMT_EXIT_OK : finish_output();
}
