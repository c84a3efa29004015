/* SPDX-License-Identifier: Apache-2.0 */
/* The doctor's checks; see ksm-doctor.h. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ksm-doctor.h"

#define MIB (1024.0 * 1024.0)

/* Where the kernel documents what KSM merges and how to opt out; the side channel itself is CVE-2015-2877. */
#define KSM_DOC "Documentation/admin-guide/mm/ksm.rst"

const char *ksm_verdict_to_string(enum ksm_verdict v) {
        static const char *const names[] = {
                [KSM_VERDICT_OK] = "ok",
                [KSM_VERDICT_INFO] = "info",
                [KSM_VERDICT_WARN] = "warning",
                [KSM_VERDICT_FAIL] = "fail",
        };
        return v >= KSM_VERDICT_OK && v <= KSM_VERDICT_FAIL ? names[v] : "unknown";
}

int ksm_read_knob(const char *dir, const char *name, char *ret, size_t size) {
        char path[4096];
        int fd;
        ssize_t n;

        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = read(fd, ret, size - 1);
        int saved = errno;
        close(fd);
        if (n < 0)
                return -saved;
        ret[n] = '\0';
        ret[strcspn(ret, "\n")] = '\0';
        return 0;
}

int ksm_read_choice(const char *dir, const char *name, char *ret, size_t size) {
        char buf[256];
        int r = ksm_read_knob(dir, name, buf, sizeof(buf));
        if (r < 0)
                return r;
        const char *open_ = strchr(buf, '['), *close_ = open_ ? strchr(open_, ']') : NULL;
        if (open_ && close_)
                snprintf(ret, size, "%.*s", (int) (close_ - open_ - 1), open_ + 1);
        else
                snprintf(ret, size, "%s", buf);
        return 0;
}

static int read_knob_u64(const char *dir, const char *name, uint64_t *ret) {
        char buf[64], *end;
        int r = ksm_read_knob(dir, name, buf, sizeof(buf));
        if (r < 0)
                return r;
        errno = 0;
        unsigned long long v = strtoull(buf, &end, 10);
        if (errno || end == buf || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Counts the nodes in a sysfs node list such as "0-3,5". */
static int count_node_list(const char *s) {
        int n = 0;
        while (*s) {
                char *end;
                long a = strtol(s, &end, 10), b = a;
                if (end == s)
                        return -EINVAL;
                if (*end == '-') {
                        s = end + 1;
                        b = strtol(s, &end, 10);
                        if (end == s || b < a)
                                return -EINVAL;
                }
                n += (int) (b - a + 1);
                s = end;
                if (*s == ',')
                        s++;
                else if (*s)
                        return -EINVAL;
        }
        return n;
}

__attribute__((format(printf, 4, 5)))
static struct ksm_finding *add(struct ksm_doctor_report *r, const char *check, enum ksm_verdict v, const char *format, ...) {
        static struct ksm_finding overflow;
        struct ksm_finding *f;
        va_list ap;

        if (r->n_findings >= KSM_DOCTOR_MAX_FINDINGS) {
                r->n_dropped++;
                overflow = (struct ksm_finding) {};
                return &overflow;
        }
        f = &r->findings[r->n_findings++];
        *f = (struct ksm_finding) { .check = check, .verdict = v };
        va_start(ap, format);
        vsnprintf(f->sentence, sizeof(f->sentence), format, ap);
        va_end(ap);
        return f;
}

static void field_int(struct ksm_finding *f, const char *key, int64_t v) {
        if (f->n_fields < KSM_DOCTOR_MAX_FIELDS)
                f->fields[f->n_fields++] = (struct ksm_doctor_field) { .key = key, .type = KSM_FIELD_INT, .number = v };
}

static void field_bool(struct ksm_finding *f, const char *key, bool v) {
        if (f->n_fields < KSM_DOCTOR_MAX_FIELDS)
                f->fields[f->n_fields++] = (struct ksm_doctor_field) { .key = key, .type = KSM_FIELD_BOOL, .number = v };
}

static void field_string(struct ksm_finding *f, const char *key, const char *v) {
        if (f->n_fields < KSM_DOCTOR_MAX_FIELDS) {
                struct ksm_doctor_field *d = &f->fields[f->n_fields++];
                *d = (struct ksm_doctor_field) { .key = key, .type = KSM_FIELD_STRING };
                snprintf(d->string, sizeof(d->string), "%s", v);
        }
}

struct context {
        const struct ksm_doctor_input *in;
        bool ksm_present;
};

static void check_ksm(struct context *c, struct ksm_doctor_report *r) {
        char buf[32];
        int e = ksm_read_knob(c->in->ksm_dir, "run", buf, sizeof(buf));
        if (e < 0) {
                struct ksm_finding *f = add(r, "ksm", KSM_VERDICT_FAIL,
                                            "KSM is not available: %s/run cannot be read (%s); the kernel needs CONFIG_KSM=y.",
                                            c->in->ksm_dir, strerror(-e));
                field_bool(f, "present", false);
                field_string(f, "error", strerror(-e));
                return;
        }
        c->ksm_present = true;
        char path[4096];
        snprintf(path, sizeof(path), "%s/run", c->in->ksm_dir);
        bool writable = access(path, W_OK) == 0;
        struct ksm_finding *f = writable
                ? add(r, "ksm", KSM_VERDICT_OK, "KSM is present and its knobs in %s are writable.", c->in->ksm_dir)
                : add(r, "ksm", KSM_VERDICT_WARN,
                      "KSM is present but %s is not writable from here (%s): the throttler needs root and a writable /sys/kernel/mm/ksm.",
                      c->in->ksm_dir, strerror(errno));
        field_bool(f, "present", true);
        field_bool(f, "writable", writable);
}

static void check_run(struct context *c, struct ksm_doctor_report *r) {
        uint64_t run;
        if (!c->ksm_present)
                return;
        if (read_knob_u64(c->in->ksm_dir, "run", &run) < 0) {
                add(r, "run", KSM_VERDICT_WARN, "The value of %s/run cannot be understood.", c->in->ksm_dir);
                return;
        }
        struct ksm_finding *f;
        if (run == 1)
                f = add(r, "run", KSM_VERDICT_OK, "ksmd is running (run=1).");
        else if (run == 2)
                f = add(r, "run", KSM_VERDICT_FAIL, "run=2: ksmd has unmerged everything and stays stopped until run is set to 1.");
        else if (c->in->throttler_state && strcmp(c->in->throttler_state, "initial") == 0)
                f = add(r, "run", KSM_VERDICT_INFO,
                        "ksmd is stopped (run=0), the host's own setting: it merges nothing until the throttler is kicked.");
        else
                f = add(r, "run", KSM_VERDICT_WARN, "ksmd is stopped (run=0): nothing new is merged.");
        field_int(f, "run", (int64_t) run);
}

static void check_advisor(struct context *c, struct ksm_doctor_report *r) {
        char mode[64];
        if (!c->ksm_present)
                return;
        if (ksm_read_choice(c->in->ksm_dir, "advisor_mode", mode, sizeof(mode)) < 0) {
                add(r, "advisor", KSM_VERDICT_OK, "This kernel has no KSM advisor: pages_to_scan is set by hand or by the throttler.");
                return;
        }
        struct ksm_finding *f = strcmp(mode, "scan-time") == 0
                ? add(r, "advisor", KSM_VERDICT_INFO,
                      "The kernel advisor (advisor_mode=scan-time) sizes pages_to_scan; the throttler sets it to none while it throttles and restores it after.")
                : add(r, "advisor", KSM_VERDICT_OK, "The kernel advisor is off (advisor_mode=%s): pages_to_scan is what it is set to.", mode);
        field_string(f, "advisor_mode", mode);
}

static void check_throttler(struct context *c, struct ksm_doctor_report *r) {
        struct ksm_finding *f;
        if (!c->in->throttler_state) {
                f = add(r, "throttler", KSM_VERDICT_WARN,
                        "The throttler did not answer (%s): nobody raises the scan rate when a VM starts.",
                        c->in->throttler_error ? c->in->throttler_error : "not running");
                field_bool(f, "reachable", false);
                return;
        }
        /* The state is text from the bus: only the known names are repeated. */
        static const char *const states[] = { "initial", "aggressive", "standard", "slow" };
        const char *state = "unknown";
        for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
                if (strcmp(c->in->throttler_state, states[i]) == 0)
                        state = states[i];
        f = add(r, "throttler", KSM_VERDICT_OK, "The throttler is running, in state %s.", state);
        field_bool(f, "reachable", true);
        field_string(f, "state", state);
}

static void check_mergeable(struct context *c, struct ksm_doctor_report *r) {
        const struct ksm_accounting *a = c->in->accounting;
        struct ksm_finding *f;

        if (!a) {
                add(r, "mergeable", KSM_VERDICT_WARN, "The processes could not be scanned (%s).", strerror(-c->in->accounting_error));
                return;
        }
        if (a->ksm_stat_missing) {
                add(r, "mergeable", KSM_VERDICT_INFO,
                    "This kernel has no /proc/<pid>/ksm_stat (it came in Linux 6.1): which processes have mergeable memory cannot be told.");
                return;
        }
        size_t n = 0;
        uint64_t bytes = 0;
        for (size_t i = 0; i < a->n_processes; i++)
                if (a->processes[i].mergeable || a->processes[i].merge_any) {
                        n++;
                        bytes += a->processes[i].mergeable_bytes;
                }
        if (n == 0)
                f = add(r, "mergeable", KSM_VERDICT_FAIL,
                        "No process has mergeable memory, so KSM has nothing to merge: VMs must mark guest RAM with "
                        "madvise(MADV_MERGEABLE), prctl(PR_SET_MEMORY_MERGE) or MemoryKSM=yes.%s",
                        a->n_denied ? " (Some processes could not be read: run as root.)" : "");
        else
                f = add(r, "mergeable", KSM_VERDICT_OK, "%zu process%s ha%s mergeable memory (%.0f MiB resident).", n,
                        n == 1 ? "" : "es", n == 1 ? "s" : "ve", (double) bytes / MIB);
        field_int(f, "processes", (int64_t) n);
        field_int(f, "mergeable_bytes", (int64_t) bytes);
        field_int(f, "unreadable_processes", (int64_t) a->n_denied);
}

static const char *vm_name(const struct ksm_process *p, char *buf, size_t size) {
        if (p->kind == KSM_GROUP_MACHINE || p->kind == KSM_GROUP_SANDBOX)
                snprintf(buf, size, "%s %s", ksm_group_kind_to_string(p->kind), p->group);
        else
                snprintf(buf, size, "%s", p->comm);
        return buf;
}

static void check_guest_ram(struct context *c, struct ksm_doctor_report *r) {
        const struct ksm_accounting *a = c->in->accounting;
        uint64_t threshold = c->in->shared_threshold_bytes ? c->in->shared_threshold_bytes : KSM_DOCTOR_SHARED_THRESHOLD;
        size_t n_vms = 0, n_bad = 0, n_unknown = 0;

        if (!a)
                return;
        for (size_t i = 0; i < a->n_processes; i++) {
                const struct ksm_process *p = &a->processes[i];
                char name[KSM_GROUP_NAME_MAX + 32];
                struct ksm_finding *f;

                /* A VM is a hypervisor process, or any process of a machine or sandbox. */
                if (!p->hypervisor && p->kind != KSM_GROUP_MACHINE && p->kind != KSM_GROUP_SANDBOX)
                        continue;
                n_vms++;
                if (p->mergeable_source != KSM_MERGEABLE_SMAPS) {
                        n_unknown++;
                        continue;
                }
                if (p->hypervisor && p->mergeable_bytes == 0 && p->shared_writable_bytes < threshold &&
                    p->private_writable_bytes >= threshold) {
                        n_bad++;
                        f = add(r, "guest_ram", KSM_VERDICT_FAIL,
                                "%s (pid %d) holds %.0f MiB of private memory, none of it marked mergeable: its guest RAM "
                                "is not offered to KSM (QEMU: -machine mem-merge=on, which libvirt's <nosharepages/> "
                                "turns off; Cloud Hypervisor: --memory mergeable=on; any process: prctl(PR_SET_MEMORY_MERGE) "
                                "or MemoryKSM=yes).",
                                vm_name(p, name, sizeof(name)), (int) p->pid, (double) p->private_writable_bytes / MIB);
                        field_string(f, "name", p->kind == KSM_GROUP_PROCESS ? p->comm : p->group);
                        field_string(f, "kind", ksm_group_kind_to_string(p->kind));
                        field_int(f, "pid", p->pid);
                        field_string(f, "reason", "not-marked");
                        field_int(f, "private_bytes", (int64_t) p->private_writable_bytes);
                        continue;
                }
                if (p->shared_writable_bytes < threshold || p->shared_writable_bytes <= p->mergeable_bytes)
                        continue;
                n_bad++;
                f = add(r, "guest_ram", KSM_VERDICT_FAIL,
                        "%s (pid %d) has %.0f MiB of guest RAM in shared memory (MAP_SHARED, as virtio-fs and vhost-user "
                        "require) and only %.0f MiB mergeable: KSM never merges shared mappings, so this VM saves nothing there.",
                        vm_name(p, name, sizeof(name)), (int) p->pid, (double) p->shared_writable_bytes / MIB,
                        (double) p->mergeable_bytes / MIB);
                field_string(f, "name", p->kind == KSM_GROUP_PROCESS ? p->comm : p->group);
                field_string(f, "kind", ksm_group_kind_to_string(p->kind));
                field_int(f, "pid", p->pid);
                field_string(f, "reason", "shared");
                field_int(f, "shared_bytes", (int64_t) p->shared_writable_bytes);
        }
        if (n_unknown) {
                struct ksm_finding *f = add(r, "guest_ram", KSM_VERDICT_INFO,
                                            "The memory maps of %zu VM process%s could not be read (run as root): whether their guest RAM is shared memory is unknown.",
                                            n_unknown, n_unknown == 1 ? "" : "es");
                field_int(f, "unknown", (int64_t) n_unknown);
        }
        if (n_bad == 0 && n_vms > n_unknown) {
                struct ksm_finding *f = add(r, "guest_ram", KSM_VERDICT_OK,
                                            "Every VM offers its guest RAM to KSM: none keeps it in shared memory or unmarked (%zu VM process%s checked).",
                                            n_vms - n_unknown, n_vms - n_unknown == 1 ? "" : "es");
                field_int(f, "checked", (int64_t) (n_vms - n_unknown));
        }
}

static void check_thp(struct context *c, struct ksm_doctor_report *r) {
        char mode[64];
        struct ksm_finding *f;
        if (ksm_read_choice(c->in->thp_dir, "enabled", mode, sizeof(mode)) < 0)
                return; /* no THP: nothing to say */
        if (strcmp(mode, "always") == 0)
                f = add(r, "thp", KSM_VERDICT_WARN,
                        "Transparent huge pages are \"always\": KSM must split a huge page before it merges any of it, and "
                        "khugepaged may collapse merged pages again; \"madvise\" suits a KSM host better.");
        else
                f = add(r, "thp", KSM_VERDICT_OK, "Transparent huge pages are \"%s\": they do not keep guest RAM from merging.", mode);
        field_string(f, "enabled", mode);
}

static void check_zero_pages(struct context *c, struct ksm_doctor_report *r) {
        uint64_t now, v;
        struct ksm_finding *f;
        if (!c->ksm_present || read_knob_u64(c->in->ksm_dir, "use_zero_pages", &now) < 0)
                return;
        /* In a cycle the value in sysfs is the throttler's: the host's own is the one to advise on. */
        bool throttled = c->in->has_host_use_zero_pages && c->in->host_use_zero_pages != now;
        v = throttled ? c->in->host_use_zero_pages : now;
        char during[160] = "";
        if (throttled)
                snprintf(during, sizeof during, " (the host's; the throttler holds use_zero_pages=%" PRIu64
                         " during this cycle, UseZeroPages=, and gives it back after)", now);
        if (v)
                f = add(r, "use_zero_pages", KSM_VERDICT_OK,
                        "use_zero_pages=1%s: empty pages map to the zero page (counted in ksm_zero_pages).", during);
        else
                f = add(r, "use_zero_pages", KSM_VERDICT_INFO,
                        "use_zero_pages=0%s: empty pages merge into one ordinary KSM page; 1 maps them to the zero page "
                        "instead, which is cheaper for VMs with much free memory.", during);
        field_int(f, "use_zero_pages", (int64_t) v);
        if (throttled)
                field_int(f, "throttler_use_zero_pages", (int64_t) now);
}

static void check_numa(struct context *c, struct ksm_doctor_report *r) {
        char list[256];
        uint64_t across;
        struct ksm_finding *f;
        if (!c->ksm_present || ksm_read_knob(c->in->node_dir, "has_memory", list, sizeof(list)) < 0)
                return;
        int nodes = count_node_list(list);
        if (nodes < 0 || read_knob_u64(c->in->ksm_dir, "merge_across_nodes", &across) < 0)
                return;
        if (nodes <= 1)
                f = add(r, "numa", KSM_VERDICT_OK, "One NUMA node with memory: merge_across_nodes does not matter.");
        else if (across)
                f = add(r, "numa", KSM_VERDICT_WARN,
                        "%d NUMA nodes and merge_across_nodes=1: a merged page lives on one node and the others reach it remotely; "
                        "0 keeps merging per node (it can only be changed while no page is shared).",
                        nodes);
        else
                f = add(r, "numa", KSM_VERDICT_OK, "%d NUMA nodes and merge_across_nodes=0: pages merge within their node.", nodes);
        field_int(f, "nodes", nodes);
        field_int(f, "merge_across_nodes", (int64_t) across);
}

static void check_trust_domains(struct context *c, struct ksm_doctor_report *r) {
        const struct ksm_accounting *a = c->in->accounting;
        size_t n_machines = 0;
        uid_t first_uid = (uid_t) -1;
        bool several_uids = false;
        char first[KSM_GROUP_NAME_MAX] = "", second[KSM_GROUP_NAME_MAX] = "";
        struct ksm_finding *f;

        if (!a)
                return;
        for (size_t i = 0; i < a->n_groups; i++) {
                const struct ksm_group *g = &a->groups[i];
                if (g->mergeable_bytes == 0 && g->merging_pages == 0 && g->zero_pages == 0)
                        continue;
                if (g->kind == KSM_GROUP_MACHINE || g->kind == KSM_GROUP_SANDBOX) {
                        n_machines++;
                        snprintf(n_machines == 1 ? first : second, KSM_GROUP_NAME_MAX, "%s", g->name);
                }
        }
        for (size_t i = 0; i < a->n_processes; i++) {
                const struct ksm_process *p = &a->processes[i];
                if (!p->mergeable && !p->merge_any && p->merging_pages == 0)
                        continue;
                if (first_uid == (uid_t) -1)
                        first_uid = p->uid;
                else if (p->uid != first_uid)
                        several_uids = true;
        }
        if (n_machines < 2 && !several_uids) {
                f = add(r, "trust_domains", KSM_VERDICT_OK, "All mergeable memory belongs to one machine and one user.");
                field_int(f, "machines", (int64_t) n_machines);
                return;
        }
        char who[2 * KSM_GROUP_NAME_MAX + 64]; /* room for the count, the names and ", ..." */
        if (n_machines >= 2)
                snprintf(who, sizeof(who), "%zu machines (%s, %s%s)", n_machines, first, second, n_machines > 2 ? ", ..." : "");
        else
                snprintf(who, sizeof(who), "several users");
        f = add(r, "trust_domains", KSM_VERDICT_WARN,
                "Mergeable memory belongs to %s: a tenant can tell by the timing of its writes whether a page was merged "
                "with another's, a side channel across trust domains (CVE-2015-2877; see the kernel's " KSM_DOC
                "); merge only among VMs that trust each other.",
                who);
        field_int(f, "machines", (int64_t) n_machines);
        field_bool(f, "several_users", several_uids);
        field_string(f, "documentation", KSM_DOC);
}

static const struct {
        const char *id;
        void (*run)(struct context *c, struct ksm_doctor_report *r);
} checks[] = {
        { "ksm", check_ksm },
        { "run", check_run },
        { "advisor", check_advisor },
        { "throttler", check_throttler },
        { "mergeable", check_mergeable },
        { "guest_ram", check_guest_ram },
        { "thp", check_thp },
        { "use_zero_pages", check_zero_pages },
        { "numa", check_numa },
        { "trust_domains", check_trust_domains },
};

void ksm_doctor_run(const struct ksm_doctor_input *in, struct ksm_doctor_report *ret) {
        struct context c = { .in = in };
        ret->n_findings = 0;
        ret->n_dropped = 0;
        for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
                checks[i].run(&c, ret);
}

enum ksm_verdict ksm_doctor_worst(const struct ksm_doctor_report *r) {
        enum ksm_verdict worst = KSM_VERDICT_OK;
        for (size_t i = 0; i < r->n_findings; i++)
                if (r->findings[i].verdict > worst)
                        worst = r->findings[i].verdict;
        return worst;
}

void ksm_doctor_print_text(FILE *f, const struct ksm_doctor_report *r) {
        static const char *const marks[] = {
                [KSM_VERDICT_OK] = "ok  ", [KSM_VERDICT_INFO] = "info", [KSM_VERDICT_WARN] = "warn", [KSM_VERDICT_FAIL] = "FAIL",
        };
        for (size_t i = 0; i < r->n_findings; i++)
                fprintf(f, "%s  %-14s %s\n", marks[r->findings[i].verdict], r->findings[i].check, r->findings[i].sentence);
        if (r->n_dropped)
                fprintf(f, "...   %zu more findings not shown\n", r->n_dropped);
}

json_t *ksm_doctor_to_json(const struct ksm_doctor_report *r) {
        json_t *findings = json_array();
        if (!findings)
                return NULL;
        for (size_t i = 0; i < r->n_findings; i++) {
                const struct ksm_finding *x = &r->findings[i];
                json_t *o = json_pack("{s:s, s:s, s:s}", "check", x->check, "verdict", ksm_verdict_to_string(x->verdict),
                                      "message", x->sentence);
                if (!o || json_array_append_new(findings, o) < 0) {
                        json_decref(findings);
                        return NULL;
                }
                for (size_t j = 0; j < x->n_fields; j++) {
                        const struct ksm_doctor_field *d = &x->fields[j];
                        json_t *v = d->type == KSM_FIELD_STRING ? json_string(d->string)
                                  : d->type == KSM_FIELD_BOOL   ? json_boolean(d->number)
                                                                : json_integer((json_int_t) d->number);
                        if (json_object_set_new(o, d->key, v) < 0) {
                                json_decref(findings);
                                return NULL;
                        }
                }
        }
        return json_pack("{s:s, s:o, s:I}", "verdict", ksm_verdict_to_string(ksm_doctor_worst(r)), "findings", findings,
                         "dropped", (json_int_t) r->n_dropped);
}
