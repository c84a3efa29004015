/* SPDX-License-Identifier: Apache-2.0 */
/* The KSM knobs under /sys/kernel/mm/ksm (or a test directory): reading, writing, and applying a set of values. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The knobs the throttler manages, in the order they are written and restored
 * (advisor_mode first, run last: see docs/design.md, The state machine). advisor_mode
 * (Linux 6.8+), smart_scan (6.7+) and use_zero_pages (4.11+; managed only where the
 * kernel has the ksm_zero_pages counter) are optional: where the kernel lacks one
 * it is simply not managed. */
enum ksm_knob {
        KSM_KNOB_ADVISOR_MODE,
        KSM_KNOB_PAGES_TO_SCAN,
        KSM_KNOB_SLEEP_MILLISECS,
        KSM_KNOB_SMART_SCAN,
        KSM_KNOB_USE_ZERO_PAGES,
        KSM_KNOB_RUN,
        _KSM_KNOB_MAX,
};

enum ksm_advisor_mode {
        KSM_ADVISOR_NONE,
        KSM_ADVISOR_SCAN_TIME,
};

struct ksm_settings {
        unsigned present; /* bit (1u << knob) for each knob the kernel has */
        uint32_t value[_KSM_KNOB_MAX]; /* advisor_mode as enum ksm_advisor_mode; smart_scan, use_zero_pages 0 or 1 */
};

/* The knobs in the order people read them (run first), for logs and the bus. */
extern const enum ksm_knob ksm_knob_display_order[_KSM_KNOB_MAX];

/* Counters read for the Statistics property, where the kernel has them. */
extern const char *const ksm_statistics_names[];
extern const size_t ksm_statistics_count;

const char *ksm_knob_name(enum ksm_knob knob);
bool ksm_knob_is_required(enum ksm_knob knob);
const char *ksm_advisor_mode_to_string(uint32_t mode);

/* A knob that is only on (1) or off (0). */
static inline bool ksm_knob_is_switch(enum ksm_knob knob) {
        return knob == KSM_KNOB_SMART_SCAN || knob == KSM_KNOB_USE_ZERO_PAGES;
}

static inline bool ksm_settings_has(const struct ksm_settings *s, enum ksm_knob knob) {
        return s->present & (1u << knob);
}
static inline void ksm_settings_set(struct ksm_settings *s, enum ksm_knob knob, uint32_t value) {
        s->present |= 1u << knob;
        s->value[knob] = value;
}
/* A knob's value as sysfs shows and takes it: "100", or "scan-time" for advisor_mode. */
#define KSM_KNOB_VALUE_MAX 16
const char *ksm_knob_format_value(enum ksm_knob knob, uint32_t value, char buf[static KSM_KNOB_VALUE_MAX]);

bool ksm_settings_equal(const struct ksm_settings *a, const struct ksm_settings *b);
/* "run=1 pages_to_scan=100 ..." for logs and STATUS=. */
const char *ksm_settings_format(const struct ksm_settings *s, char *buf, size_t size);

/* Parses a knob's sysfs text ("100\n", "[none] scan-time\n", or plain "none" in a test directory;
 * smart_scan and use_zero_pages only "0" or "1", as the kernel shows them). */
int ksm_knob_parse(enum ksm_knob knob, const char *text, uint32_t *ret);

/* Opens the KSM directory and checks every required knob is readable and writable.
 * Logs what is missing; returns a directory fd. */
int ksm_directory_open(const char *path);
/* Opens the KSM directory without checking its knobs, for a restore that writes what it can. */
int ksm_directory_open_unchecked(const char *path);

int ksm_knob_read(int dirfd, enum ksm_knob knob, uint32_t *ret);
int ksm_knob_write(int dirfd, enum ksm_knob knob, uint32_t value);
/* Reads every knob the kernel has; on failure *ret_failed (if not NULL) names the knob. Does not log. */
int ksm_settings_read(int dirfd, struct ksm_settings *ret, enum ksm_knob *ret_failed);
/* A read-only counter such as "pages_sharing"; -ENOENT where the kernel lacks it. */
int ksm_counter_read(int dirfd, const char *name, int64_t *ret);

/* Moves sysfs from *current to *target, writing only knobs whose value differs, in
 * enum order. pages_to_scan is left alone while advisor_mode is scan-time (the
 * kernel owns it then), and re-read after an advisor_mode change (the kernel resets it).
 * On a failed write the knobs already written are put back. *ret_now receives what is in
 * sysfs afterwards; *ret_failed the knob that failed. Returns the number of writes or -errno. */
int ksm_settings_apply(int dirfd, const struct ksm_settings *current, const struct ksm_settings *target,
                       struct ksm_settings *ret_now, enum ksm_knob *ret_failed);

/* Moves sysfs from *current to *target like ksm_settings_apply(), for giving the host its
 * values back: every knob that can be written is written, none is put back, and a knob
 * that fails does not stop the others. *ret_failed gets a bit (1u << knob) for each
 * knob that could not be written (with its -errno in errors[knob]). Returns the number
 * of writes, or the first knob's -errno if any failed. */
int ksm_settings_restore(int dirfd, const struct ksm_settings *current, const struct ksm_settings *target,
                         struct ksm_settings *ret_now, unsigned *ret_failed, int errors[_KSM_KNOB_MAX]);

/* Watches the KSM directory for writes to the knobs (inotify): every write(2) through this
 * directory is reported, whoever makes it; the kernel's own changes are not. Returns the
 * inotify fd (non-blocking) or -errno. */
int ksm_knob_watch_open(int dirfd);
/* Empties the watch's queue. Returns 1 if a knob was written (or replaced, or events
 * were lost) since the last call, 0 if not, -errno if the watch no longer works. */
int ksm_knob_watch_drain(int fd);

/* One reading of the counters adaptive throttling watches. */
struct ksm_sample {
        uint64_t time_usec; /* CLOCK_MONOTONIC */
        uint64_t full_scans;
        uint64_t pages_scanned; /* 0 where the kernel lacks the counter (see has_pages_scanned) */
        uint64_t pages_skipped; /* by smart_scan (6.7+); 0 where the kernel lacks it */
        uint64_t pages_shared, pages_sharing, pages_unshared, pages_volatile, ksm_zero_pages;
        uint64_t ksmd_cpu_usec; /* utime+stime of ksmd; see has_ksmd_cpu */
        uint64_t anon_pages;    /* AnonPages of /proc/meminfo, in pages, read after the KSM
                                 * counters; see has_anon_pages */
        uint64_t anon_pages_before; /* and read before them; see has_anon_pages_before */
        bool has_pages_scanned;
        bool has_ksmd_cpu;
        bool has_anon_pages;
        bool has_anon_pages_before;
};

/* Saved memory in pages: pages_sharing + ksm_zero_pages. */
static inline uint64_t ksm_sample_saved_pages(const struct ksm_sample *s) {
        return s->pages_sharing + s->ksm_zero_pages;
}

/* The memory KSM saves, in bytes, the one figure the project shows as "saved": KSM's own
 * general_profit (merged memory minus its metadata; may be negative), or where the kernel
 * lacks it (before Linux 6.4) or it cannot be read, the gross ksm_sample_saved_pages() of
 * sample. *ret_gross (if not NULL) says which. */
int64_t ksm_saved_bytes(int dirfd, const struct ksm_sample *sample, bool *ret_gross);

/* Reads the counters (full_scans, pages_scanned, pages_*, ksm_zero_pages). time_usec,
 * ksmd's CPU time and AnonPages (procfs, see proc.h) are left to the caller. */
int ksm_sample_read(int dirfd, struct ksm_sample *ret);
