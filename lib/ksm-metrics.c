/* SPDX-License-Identifier: Apache-2.0 */
/* The Prometheus text format of the throttler's and KSM's figures; see ksm-metrics.h. */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ksm-doctor.h"
#include "ksm-metrics.h"

const char *const ksm_throttler_states[4] = { "initial", "aggressive", "standard", "slow" };

void ksm_metrics_print_label_value(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '\\')
                        fputs("\\\\", f);
                else if (*s == '"')
                        fputs("\\\"", f);
                else if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
        fputc('"', f);
}

static void header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int ksm_ksmd_cpu_seconds(const char *proc_dir, long clock_ticks, double *ret) {
        DIR *d = opendir(proc_dir);
        struct dirent *de;
        int r = -ENOENT;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char path[512], buf[1024];
                if (!isdigit((unsigned char) de->d_name[0]))
                        continue;
                snprintf(path, sizeof(path), "%s/%s/stat", proc_dir, de->d_name);
                int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        continue;
                ssize_t n = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                /* "pid (comm) state ppid ... utime(14) stime(15)": comm may hold spaces and parentheses. */
                char *open_ = strchr(buf, '('), *close_ = strrchr(buf, ')');
                if (!open_ || !close_ || close_ - open_ - 1 != 4 || strncmp(open_ + 1, "ksmd", 4) != 0)
                        continue;
                char state;
                int ppid;
                unsigned long long utime, stime;
                if (sscanf(close_ + 1, " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &ppid, &utime,
                           &stime) != 4 || ppid != 2)
                        continue;
                *ret = (double) (utime + stime) / (double) clock_ticks;
                r = 0;
                break;
        }
        closedir(d);
        return r;
}

static void write_throttler(FILE *f, const struct ksm_throttler_info *t) {
        header(f, "ksm_throttler_up", "gauge", "Whether the throttler answered on the system bus.");
        fprintf(f, "ksm_throttler_up %d\n", t->reachable ? 1 : 0);
        if (!t->reachable)
                return;

        header(f, "ksm_throttler_state", "gauge", "The throttler's current state: 1 for the state it is in, 0 for the others.");
        for (size_t i = 0; i < 4; i++)
                fprintf(f, "ksm_throttler_state{state=\"%s\"} %d\n", ksm_throttler_states[i],
                        strcmp(t->state, ksm_throttler_states[i]) == 0);

        header(f, "ksm_throttler_kicks_total", "counter", "Kicks the throttler accepted since it started.");
        fprintf(f, "ksm_throttler_kicks_total %" PRIu64 "\n", t->kick_count);
        if (t->n_kick_origins > 0) {
                header(f, "ksm_throttler_kicks_by_origin_total", "counter", "Kicks by the origin their caller gave.");
                for (size_t i = 0; i < t->n_kick_origins && i < KSM_METRICS_MAX_ORIGINS; i++) {
                        fputs("ksm_throttler_kicks_by_origin_total{origin=", f);
                        ksm_metrics_print_label_value(f, t->kick_origins[i].origin);
                        fprintf(f, "} %" PRIu64 "\n", t->kick_origins[i].count);
                }
        }
        header(f, "ksm_throttler_last_kick_timestamp_seconds", "gauge", "When the last kick came, in seconds since the epoch; 0 if none came.");
        fprintf(f, "ksm_throttler_last_kick_timestamp_seconds %.6f\n", (double) t->last_kick_usec / 1e6);

        if (t->have_state_seconds) {
                header(f, "ksm_throttler_state_seconds_total", "counter", "Time the throttler spent in each state since it started.");
                for (size_t i = 0; i < 4; i++)
                        fprintf(f, "ksm_throttler_state_seconds_total{state=\"%s\"} %.3f\n", ksm_throttler_states[i],
                                t->state_seconds[i]);
        }
        if (t->n_settings > 0) {
                header(f, "ksm_throttler_setting", "gauge", "The value of each KSM knob as the throttler applied it now.");
                for (size_t i = 0; i < t->n_settings && i < KSM_METRICS_MAX_SETTINGS; i++) {
                        fputs("ksm_throttler_setting{knob=", f);
                        ksm_metrics_print_label_value(f, t->settings[i].name);
                        fprintf(f, "} %" PRIu64 "\n", t->settings[i].value);
                }
        }
}

static int read_counter(const char *dir, const char *name, int64_t *ret) {
        char buf[64], *end;
        int r = ksm_read_knob(dir, name, buf, sizeof(buf));
        if (r < 0)
                return r;
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (errno || end == buf || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static void write_kernel(FILE *f, const struct ksm_metrics_input *in, size_t page_size) {
        /* The kernel's counters, each written only if this kernel has it. */
        static const struct {
                const char *file, *metric, *type, *help;
                bool pages_to_bytes;
        } counters[] = {
                { "general_profit", "ksm_general_profit_bytes", "gauge", "What KSM saves minus what its metadata costs (general_profit); can be negative.", false },
                { "pages_shared", "ksm_pages_shared", "gauge", "KSM pages in use (pages_shared).", false },
                { "pages_sharing", "ksm_pages_sharing", "gauge", "Pages deduplicated into KSM pages: the pages saved (pages_sharing).", false },
                { "pages_unshared", "ksm_pages_unshared", "gauge", "Pages KSM checked that are unique (pages_unshared).", false },
                { "pages_volatile", "ksm_pages_volatile", "gauge", "Pages that change too fast to merge (pages_volatile).", false },
                { "ksm_zero_pages", "ksm_zero_pages", "gauge", "Empty pages KSM mapped to the zero page (use_zero_pages=1).", false },
                { "full_scans", "ksm_full_scans_total", "counter", "Full scans of all mergeable memory ksmd has completed.", false },
                { "pages_scanned", "ksm_pages_scanned_total", "counter", "Pages ksmd has scanned.", false },
        };
        int64_t sharing = -1, zero = 0, v;

        for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
                if (read_counter(in->ksm_dir, counters[i].file, &v) < 0)
                        continue;
                header(f, counters[i].metric, counters[i].type, counters[i].help);
                fprintf(f, "%s %" PRIi64 "\n", counters[i].metric, v);
                if (strcmp(counters[i].file, "pages_sharing") == 0)
                        sharing = v;
                else if (strcmp(counters[i].file, "ksm_zero_pages") == 0)
                        zero = v;
        }
        if (sharing >= 0) {
                header(f, "ksm_saved_bytes", "gauge", "Memory KSM saves: (pages_sharing + ksm_zero_pages) × page size.");
                fprintf(f, "ksm_saved_bytes %" PRIi64 "\n", (sharing + zero) * (int64_t) page_size);
        }
        double cpu;
        long ticks = in->clock_ticks ? in->clock_ticks : sysconf(_SC_CLK_TCK);
        if (in->proc_dir && ticks > 0 && ksm_ksmd_cpu_seconds(in->proc_dir, ticks, &cpu) == 0) {
                header(f, "ksm_ksmd_cpu_seconds_total", "counter", "CPU time ksmd has used (user and system).");
                fprintf(f, "ksm_ksmd_cpu_seconds_total %.2f\n", cpu);
        }
}

static void group_labels(FILE *f, const char *metric, const char *kind, const char *name) {
        fprintf(f, "%s{kind=\"%s\",name=", metric, kind);
        ksm_metrics_print_label_value(f, name);
        fputc('}', f);
}

static void write_groups(FILE *f, const struct ksm_accounting *a, size_t top) {
        /* Cardinality stays bounded: top groups by profit, the rest summed. */
        static const struct {
                const char *metric, *help;
        } series[] = {
                { "ksm_group_profit_bytes", "KSM profit of a machine, sandbox, unit or process (ksm_process_profit summed); the groups beyond the top N are summed as kind=\"other\"." },
                { "ksm_group_saved_bytes", "Memory saved by a group: (merging + zero pages) × page size." },
                { "ksm_group_mergeable_bytes", "Resident memory in a group's mergeable areas, where it could be read." },
        };
        size_t shown = a->n_groups < top ? a->n_groups : top;

        for (size_t s = 0; s < sizeof(series) / sizeof(series[0]); s++) {
                int64_t other = 0;
                bool have_other = false;
                header(f, series[s].metric, "gauge", series[s].help);
                for (size_t i = 0; i < a->n_groups; i++) {
                        const struct ksm_group *g = &a->groups[i];
                        int64_t v = s == 0 ? g->profit_bytes
                                  : s == 1 ? (int64_t) ((g->merging_pages + g->zero_pages) * a->page_size)
                                           : (int64_t) g->mergeable_bytes;
                        if (s == 2 && !g->mergeable_known)
                                continue;
                        if (i >= shown) {
                                other += v;
                                have_other = true;
                                continue;
                        }
                        group_labels(f, series[s].metric, ksm_group_kind_to_string(g->kind), g->name);
                        fprintf(f, " %" PRIi64 "\n", v);
                }
                if (have_other) {
                        group_labels(f, series[s].metric, "other", "other");
                        fprintf(f, " %" PRIi64 "\n", other);
                }
        }
        header(f, "ksm_accounting_groups", "gauge", "Machines, sandboxes, units and processes that take part in KSM.");
        fprintf(f, "ksm_accounting_groups %zu\n", a->n_groups);
        header(f, "ksm_accounting_unreadable_processes", "gauge", "Processes whose ksm_stat could not be read (missing privileges).");
        fprintf(f, "ksm_accounting_unreadable_processes %zu\n", a->n_denied);
}

int ksm_metrics_write(FILE *f, const struct ksm_metrics_input *in) {
        size_t page_size = in->page_size ? in->page_size : (size_t) sysconf(_SC_PAGESIZE);

        if (in->throttler)
                write_throttler(f, in->throttler);
        write_kernel(f, in, page_size);
        if (in->accounting)
                write_groups(f, in->accounting, in->top ? in->top : KSM_METRICS_DEFAULT_TOP);
        if (fflush(f) != 0 || ferror(f))
                return -EIO;
        return 0;
}
