/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-VM KSM accounting: which process, machine, sandbox or unit saves what.
 *
 * Reads /proc/<pid>/ksm_stat of every process, keeps those that take part in
 * KSM, and groups them the way an operator thinks: the machine registered
 * with systemd-machined (libvirt, nspawn), else the Kata sandbox, else the
 * systemd unit from the process's cgroup, else the process itself.
 *
 * Everything takes its inputs as paths and structs (a /proc tree, a machine
 * list), so that tests run on small fake trees. The scan is bounded: at most
 * max_processes processes are kept, and smaps (which walks page tables and is
 * the only costly read) is read only for processes that take part in KSM or
 * look like hypervisors, and only until smaps_budget_usec has been spent.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define KSM_GROUP_NAME_MAX 128
#define KSM_COMM_MAX 16

enum ksm_group_kind {
        KSM_GROUP_MACHINE,
        KSM_GROUP_SANDBOX,
        KSM_GROUP_UNIT,
        KSM_GROUP_PROCESS,
        _KSM_GROUP_KIND_MAX,
};

const char *ksm_group_kind_to_string(enum ksm_group_kind kind);

/* A machine known to systemd-machined: its name, its scope unit and leader. */
struct ksm_machine {
        char name[KSM_GROUP_NAME_MAX];
        char unit[KSM_GROUP_NAME_MAX];
        pid_t leader;
};

/* Where the mergeable_bytes figure of a process came from. */
enum ksm_mergeable_source {
        KSM_MERGEABLE_NONE,  /* not known: smaps unreadable, or skipped once the budget was spent */
        KSM_MERGEABLE_SMAPS, /* the sizes of the VMAs flagged "mg" in smaps */
};

struct ksm_process {
        pid_t pid;
        uid_t uid;
        char comm[KSM_COMM_MAX];
        /* /proc/<pid>/ksm_stat */
        uint64_t rmap_items;
        uint64_t zero_pages;
        uint64_t merging_pages;
        int64_t profit_bytes; /* ksm_process_profit: can be negative (KSM's metadata costs) */
        bool merge_any;       /* prctl(PR_SET_MEMORY_MERGE) */
        bool mergeable;       /* the kernel tracks this mm for KSM */
        /* /proc/<pid>/smaps, when read */
        enum ksm_mergeable_source mergeable_source;
        uint64_t mergeable_bytes;      /* VMAs flagged "mg" */
        uint64_t shared_writable_bytes; /* VMAs flagged "sh" and "wr": KSM never merges these */
        uint64_t private_writable_bytes; /* Rss of private writable VMAs not flagged "mg": could merge, if marked */
        bool hypervisor;               /* comm names a known hypervisor */
        /* grouping */
        enum ksm_group_kind kind;
        char group[KSM_GROUP_NAME_MAX];
};

/* One row of `ksmctl top`, and of a daemon method returning the rows (see
 * ksm_accounting_append_rows()). */
struct ksm_group {
        enum ksm_group_kind kind;
        char name[KSM_GROUP_NAME_MAX];
        pid_t pid;           /* its lowest pid: the process itself for a process group */
        uint32_t n_processes;
        int64_t profit_bytes;
        uint64_t merging_pages;
        uint64_t zero_pages;
        uint64_t rmap_items;  /* pages KSM tracks in the group's mergeable areas (ksm_rmap_items) */
        uint64_t mergeable_bytes;
        double merged_share; /* (merging + zero pages) × page size / mergeable_bytes, 0..1; NAN if unknown */
        uid_t uid;           /* the owner of its processes, or (uid_t) -1 if they differ */
        bool mergeable_known; /* every process's mergeable_bytes came from smaps */
};

struct ksm_accounting_options {
        const char *proc_dir;          /* "/proc" */
        size_t page_size;              /* 0: sysconf(_SC_PAGESIZE) */
        size_t max_processes;          /* 0: KSM_ACCOUNTING_MAX_PROCESSES */
        bool read_smaps;               /* read smaps for mergeable and shared sizes */
        uint64_t smaps_budget_usec;    /* 0: no limit (tests); stops reading smaps once spent */
        bool group_by_process;         /* one group per process (a per-process breakdown) */
        const struct ksm_machine *machines; /* from ksm_machines_from_machined(), or NULL */
        size_t n_machines;
};

#define KSM_ACCOUNTING_MAX_PROCESSES 65536
#define KSM_ACCOUNTING_SMAPS_BUDGET_USEC (500 * UINT64_C(1000))

struct ksm_accounting {
        size_t page_size;
        struct ksm_process *processes; /* those that take part in KSM, and hypervisors */
        size_t n_processes;
        struct ksm_group *groups;      /* sorted by profit, largest first */
        size_t n_groups;
        size_t n_scanned;              /* /proc entries looked at */
        size_t n_denied;               /* processes whose ksm_stat could not be read (EACCES) */
        size_t n_smaps_skipped;        /* processes whose smaps was skipped for the budget */
        bool truncated;                /* more than max_processes took part */
        bool ksm_stat_missing;         /* the kernel has no /proc/<pid>/ksm_stat (before 6.1) */
};

/* Scans opts->proc_dir. Returns 0 or -errno (the proc dir cannot be opened, out of memory). */
int ksm_accounting_scan(const struct ksm_accounting_options *opts, struct ksm_accounting *ret);
void ksm_accounting_free(struct ksm_accounting *a);

/* Parsers, exposed for the unit tests and the fuzzers. Each returns 0 or -EINVAL. */
int ksm_stat_parse(const char *text, struct ksm_process *p);
/* Picks the systemd hierarchy's path from /proc/<pid>/cgroup text (unified "0::"
 * or hybrid "name=systemd:"). */
int ksm_cgroup_path_parse(const char *text, char *ret, size_t size);
/* The innermost unit named in a cgroup path ("foo.service" from
 * "/system.slice/foo.service/payload"), or -ENOENT. */
int ksm_unit_from_cgroup(const char *path, char *ret, size_t size);
/* The machine name of a "machine-NAME.scope" component (unescaped), or -ENOENT. */
int ksm_machine_from_cgroup(const char *path, char *ret, size_t size);
/* The Kata sandbox id from a command line (NUL-separated) or cgroup path, or -ENOENT. */
int ksm_sandbox_from_cmdline(const char *cmdline, size_t len, char *ret, size_t size);
int ksm_sandbox_from_cgroup(const char *path, char *ret, size_t size);
/* Sums over smaps text (saturating). */
struct ksm_smaps_totals {
        uint64_t mergeable_rss;        /* Rss of the areas flagged "mg" */
        uint64_t shared_writable;      /* size of the areas flagged "sh" and "wr" */
        uint64_t private_writable_rss; /* Rss of writable areas flagged neither "sh" nor "mg" */
};
int ksm_smaps_parse(FILE *f, struct ksm_smaps_totals *ret);
bool ksm_comm_is_hypervisor(const char *comm);
/* Replaces bytes that are not valid UTF-8, and control characters, with '?'. */
void ksm_sanitize_name(char *s);

/* Appends the groups (the first limit; 0: all) as an array of
 * KSM_ACCOUNTING_ROW_SIGNATURE: kind, name, pid, processes, profit_bytes,
 * merging_pages, zero_pages, rmap_items, mergeable_bytes (UINT64_MAX where
 * unknown), merged_share (-1 where unknown). The reply of a daemon method such
 * as GetSavings(u limit) -> (a(ssuuxttttd) rows, t page_size). */
#define KSM_ACCOUNTING_ROW_SIGNATURE "(ssuuxttttd)"
struct sd_bus_message;
int ksm_accounting_append_rows(struct sd_bus_message *m, const struct ksm_accounting *a, size_t limit);

/* Asks org.freedesktop.machine1 on bus (an sd_bus *) for every machine's name,
 * unit and leader. Returns the number of machines, or -errno; -ENOENT-like
 * errors (machined absent) are for the caller to treat as "no machines". */
struct sd_bus;
int ksm_machines_from_machined(struct sd_bus *bus, struct ksm_machine **ret);

/* A group, and the whole result ({"groups": [...], "processes_scanned": ...}) as JSON;
 * limit 0: every group. NULL on allocation failure. */
json_t *ksm_group_to_json(const struct ksm_group *g, size_t page_size);
json_t *ksm_accounting_to_json(const struct ksm_accounting *a, size_t limit);
