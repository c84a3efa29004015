/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `ksmctl doctor`: why memory is or is not being merged. A table of checks,
 * each giving a verdict, one sentence and a few machine-readable fields. The
 * checks read only the paths and structs they are given, so tests run them on
 * fake sysfs trees.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ksm-accounting.h"

enum ksm_verdict {
        KSM_VERDICT_OK,
        KSM_VERDICT_INFO,
        KSM_VERDICT_WARN,
        KSM_VERDICT_FAIL,
};

const char *ksm_verdict_to_string(enum ksm_verdict v);

struct ksm_doctor_input {
        const char *ksm_dir;  /* "/sys/kernel/mm/ksm" */
        const char *thp_dir;  /* "/sys/kernel/mm/transparent_hugepage" */
        const char *node_dir; /* "/sys/devices/system/node" */
        const struct ksm_accounting *accounting; /* NULL: the scan failed */
        int accounting_error;                    /* its -errno then */
        const char *throttler_state;             /* NULL: the daemon did not answer */
        const char *throttler_error;             /* what it said instead, or NULL */
        /* During a cycle the throttler sets use_zero_pages (UseZeroPages=); the host's own
         * value, from its InitialSettings, is what the advice is about. */
        bool has_host_use_zero_pages;
        uint64_t host_use_zero_pages;
        uint64_t shared_threshold_bytes;         /* 0: KSM_DOCTOR_SHARED_THRESHOLD */
};

/* Shared writable memory below this in a hypervisor is device or I/O buffers, not guest RAM. */
#define KSM_DOCTOR_SHARED_THRESHOLD (64 * UINT64_C(1024) * 1024)
#define KSM_DOCTOR_MAX_FIELDS 6
#define KSM_DOCTOR_MAX_FINDINGS 96

enum ksm_field_type { KSM_FIELD_STRING, KSM_FIELD_INT, KSM_FIELD_BOOL };

struct ksm_doctor_field {
        const char *key;
        enum ksm_field_type type;
        int64_t number;
        char string[KSM_GROUP_NAME_MAX];
};

struct ksm_finding {
        const char *check; /* a stable id: "ksm", "run", "guest_ram", ... */
        enum ksm_verdict verdict;
        char sentence[512];
        struct ksm_doctor_field fields[KSM_DOCTOR_MAX_FIELDS];
        size_t n_fields;
};

struct ksm_doctor_report {
        struct ksm_finding findings[KSM_DOCTOR_MAX_FINDINGS];
        size_t n_findings;
        size_t n_dropped; /* findings beyond the table's size */
};

/* Runs every check. Never fails: a check that cannot tell says so. */
void ksm_doctor_run(const struct ksm_doctor_input *in, struct ksm_doctor_report *ret);
enum ksm_verdict ksm_doctor_worst(const struct ksm_doctor_report *r);
void ksm_doctor_print_text(FILE *f, const struct ksm_doctor_report *r);
/* {"verdict": the worst, "findings": [{"check", "verdict", "message", fields...}], "dropped"}; NULL on OOM. */
json_t *ksm_doctor_to_json(const struct ksm_doctor_report *r);

/* One knob file as text (trailing newline dropped); -errno if unreadable. */
int ksm_read_knob(const char *dir, const char *name, char *ret, size_t size);
/* The selected word of a "[a] b c" sysfs choice, or the whole value. */
int ksm_read_choice(const char *dir, const char *name, char *ret, size_t size);
