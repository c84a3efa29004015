/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `ksmctl metrics`: the throttler, KSM and per-VM savings in the Prometheus
 * text exposition format (version 0.0.4, which node_exporter's textfile
 * collector reads). Inputs are paths and structs, so tests use fake trees.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ksm-accounting.h"

#define KSM_METRICS_MAX_SETTINGS 16
/* The daemon counts at most 16 origins by name, and "other". */
#define KSM_METRICS_MAX_ORIGINS 32
#define KSM_METRICS_DEFAULT_TOP 10

/* The throttler's states, in the order the one-hot gauge lists them. */
extern const char *const ksm_throttler_states[4];

/* What the daemon told us; fields it does not (yet) publish stay unset. */
struct ksm_throttler_info {
        bool reachable;
        char state[32];
        uint64_t kick_count;
        uint64_t last_kick_usec; /* CLOCK_REALTIME µs; 0: never */
        struct {
                char name[64];
                uint64_t value;
        } settings[KSM_METRICS_MAX_SETTINGS]; /* the numeric knobs it applied now */
        size_t n_settings;
        struct {
                char origin[64];
                uint64_t count;
        } kick_origins[KSM_METRICS_MAX_ORIGINS];
        size_t n_kick_origins;
        bool have_state_seconds;
        double state_seconds[4]; /* indexed like ksm_throttler_states */
};

struct ksm_metrics_input {
        const char *ksm_dir;  /* "/sys/kernel/mm/ksm" */
        const char *proc_dir; /* "/proc", for ksmd's CPU time */
        long clock_ticks;     /* 0: sysconf(_SC_CLK_TCK) */
        size_t page_size;     /* 0: sysconf(_SC_PAGESIZE) */
        const struct ksm_throttler_info *throttler; /* NULL: not asked */
        const struct ksm_accounting *accounting;    /* NULL: no per-VM series */
        size_t top;           /* per-VM series for the top N groups, the rest summed as "other"; 0: the default */
};

/* Writes everything available. Returns 0, or -errno if f failed. */
int ksm_metrics_write(FILE *f, const struct ksm_metrics_input *in);

/* ksmd's user+system CPU time: the kernel thread named "ksmd" whose parent is kthreadd. */
int ksm_ksmd_cpu_seconds(const char *proc_dir, long clock_ticks, double *ret);

/* Writes s as a label value: backslash, double quote and newline escaped. */
void ksm_metrics_print_label_value(FILE *f, const char *s);
