/* SPDX-License-Identifier: Apache-2.0 */
/* Per-VM KSM accounting from /proc/<pid>/ksm_stat, smaps and cgroup; see ksm-accounting.h. */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "ksm-accounting.h"

#define _cleanup_(f) __attribute__((cleanup(f)))

static void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}
static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
static void freep(void *p) {
        free(*(void **) p);
}

/* Hypervisors whose guest RAM is a mapping in their own address space. */
static const char *const hypervisor_comms[] = {
        "qemu-system-*", "qemu-kvm", "kvm", "cloud-hyperviso*", "firecracker", "fc_vcpu*",
        "crosvm", "lkvm", "dragonball", "stratovirt", "acrn-dm", "virtualbox*", "VBoxHeadless",
};

const char *ksm_group_kind_to_string(enum ksm_group_kind kind) {
        static const char *const names[_KSM_GROUP_KIND_MAX] = {
                [KSM_GROUP_MACHINE] = "machine",
                [KSM_GROUP_SANDBOX] = "sandbox",
                [KSM_GROUP_UNIT] = "unit",
                [KSM_GROUP_PROCESS] = "process",
        };
        return kind >= 0 && kind < _KSM_GROUP_KIND_MAX ? names[kind] : "unknown";
}

bool ksm_comm_is_hypervisor(const char *comm) {
        for (size_t i = 0; i < sizeof(hypervisor_comms) / sizeof(hypervisor_comms[0]); i++)
                if (fnmatch(hypervisor_comms[i], comm, 0) == 0)
                        return true;
        return false;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* Copies src into dst (size bytes), truncating; dst is always terminated. */
static void copy_string(char *dst, size_t size, const char *src, size_t len) {
        if (size == 0)
                return;
        if (len >= size)
                len = size - 1;
        memcpy(dst, src, len);
        dst[len] = '\0';
}

/* Reads at most size-1 bytes of dir_fd/path into buf, terminated. Returns the
 * length or -errno. */
static ssize_t read_small_file(int dir_fd, const char *path, char *buf, size_t size, struct stat *st) {
        _cleanup_(closep) int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        size_t n = 0;

        if (fd < 0)
                return -errno;
        if (st && fstat(fd, st) < 0)
                return -errno;
        while (n < size - 1) {
                ssize_t k = read(fd, buf + n, size - 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = '\0';
        return (ssize_t) n;
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        if (!isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || (*end && !isspace((unsigned char) *end)))
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_i64(const char *s, int64_t *ret) {
        char *end;
        if (!isdigit((unsigned char) *s) && !(*s == '-' && isdigit((unsigned char) s[1])))
                return -EINVAL;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || (*end && !isspace((unsigned char) *end)))
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_yes_no(const char *s, bool *ret) {
        if (strncmp(s, "yes", 3) == 0 && (!s[3] || isspace((unsigned char) s[3])))
                *ret = true;
        else if (strncmp(s, "no", 2) == 0 && (!s[2] || isspace((unsigned char) s[2])))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

int ksm_stat_parse(const char *text, struct ksm_process *p) {
        /* Kernels print "key value" (counters) and "key: yes|no" (flags); unknown
         * keys are skipped so that newer kernels keep working. */
        static const struct {
                const char *key;
                size_t offset;
                char type; /* 'u' uint64, 'i' int64, 'b' bool */
        } fields[] = {
                { "ksm_rmap_items", offsetof(struct ksm_process, rmap_items), 'u' },
                { "ksm_zero_pages", offsetof(struct ksm_process, zero_pages), 'u' },
                { "ksm_merging_pages", offsetof(struct ksm_process, merging_pages), 'u' },
                { "ksm_process_profit", offsetof(struct ksm_process, profit_bytes), 'i' },
                { "ksm_merge_any", offsetof(struct ksm_process, merge_any), 'b' },
                { "ksm_mergeable", offsetof(struct ksm_process, mergeable), 'b' },
        };
        bool seen_merging = false;

        for (const char *line = text; line && *line;) {
                const char *eol = strchr(line, '\n');
                size_t len = eol ? (size_t) (eol - line) : strlen(line);
                char buf[128];

                if (len < sizeof(buf)) {
                        memcpy(buf, line, len);
                        buf[len] = '\0';
                        size_t klen = strcspn(buf, ": \t");
                        const char *value = buf + klen;
                        value += strspn(value, ": \t");
                        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                                if (strlen(fields[i].key) != klen || strncmp(buf, fields[i].key, klen) != 0)
                                        continue;
                                void *dst = (char *) p + fields[i].offset;
                                int r = fields[i].type == 'u' ? parse_u64(value, dst)
                                      : fields[i].type == 'i' ? parse_i64(value, dst)
                                                              : parse_yes_no(value, dst);
                                if (r < 0)
                                        return r;
                                if (fields[i].offset == offsetof(struct ksm_process, merging_pages))
                                        seen_merging = true;
                        }
                }
                line = eol ? eol + 1 : NULL;
        }
        return seen_merging ? 0 : -EINVAL;
}

int ksm_cgroup_path_parse(const char *text, char *ret, size_t size) {
        const char *unified = NULL, *named = NULL;

        for (const char *line = text; line && *line;) {
                const char *eol = strchr(line, '\n');
                if (strncmp(line, "0::", 3) == 0)
                        unified = line + 3;
                else {
                        const char *c = strchr(line, ':');
                        if (c && c < (eol ? eol : line + strlen(line)) && strncmp(c + 1, "name=systemd:", 13) == 0)
                                named = c + 14;
                }
                line = eol ? eol + 1 : NULL;
        }
        /* On hybrid hosts systemd keeps its units in the named hierarchy and "0::" is "/". */
        const char *pick = named ? named : unified;
        if (!pick || *pick != '/')
                return -EINVAL;
        copy_string(ret, size, pick, strcspn(pick, "\n"));
        return 0;
}

static bool has_suffix(const char *s, size_t len, const char *suffix) {
        size_t n = strlen(suffix);
        return len > n && memcmp(s + len - n, suffix, n) == 0;
}

int ksm_unit_from_cgroup(const char *path, char *ret, size_t size) {
        static const char *const unit_suffixes[] = { ".service", ".scope", ".socket", ".mount", ".swap" };
        const char *found = NULL;
        size_t found_len = 0;

        for (const char *c = path; *c;) {
                c += strspn(c, "/");
                size_t len = strcspn(c, "/");
                for (size_t i = 0; i < sizeof(unit_suffixes) / sizeof(unit_suffixes[0]); i++)
                        if (has_suffix(c, len, unit_suffixes[i])) {
                                found = c;
                                found_len = len;
                        }
                c += len;
        }
        if (!found)
                return -ENOENT;
        copy_string(ret, size, found, found_len);
        return 0;
}

static int unhex(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int ksm_machine_from_cgroup(const char *path, char *ret, size_t size) {
        for (const char *c = path; *c;) {
                c += strspn(c, "/");
                size_t len = strcspn(c, "/");
                if (len > strlen("machine-.scope") && strncmp(c, "machine-", 8) == 0 && has_suffix(c, len, ".scope")) {
                        /* systemd escapes the name: "\x2d" is '-'. */
                        const char *s = c + 8, *end = c + len - strlen(".scope");
                        size_t n = 0;
                        while (s < end && n + 1 < size) {
                                int hi, lo;
                                if (s + 3 < end && s[0] == '\\' && s[1] == 'x' && (hi = unhex(s[2])) >= 0 &&
                                    (lo = unhex(s[3])) >= 0 && (hi || lo)) {
                                        ret[n++] = (char) (hi << 4 | lo);
                                        s += 4;
                                } else
                                        ret[n++] = *s++;
                        }
                        ret[n] = '\0';
                        return 0;
                }
                c += len;
        }
        return -ENOENT;
}

/* Sandbox ids are hex or UUID-like; anything else is not taken. */
static size_t sandbox_id_len(const char *s, size_t max) {
        size_t n = 0;
        while (n < max && (isalnum((unsigned char) s[n]) || s[n] == '-' || s[n] == '_'))
                n++;
        return n;
}

static int take_sandbox_id(const char *s, size_t max, char *ret, size_t size) {
        size_t n = sandbox_id_len(s, max);
        if (n == 0)
                return -ENOENT;
        copy_string(ret, size, s, n);
        return 0;
}

int ksm_sandbox_from_cmdline(const char *cmdline, size_t len, char *ret, size_t size) {
        /* Kata's runtimes name the VM "sandbox-<id>" (QEMU -name) and keep its
         * sockets in /run/vc/vm/<id>/ (Go runtime) or /run/kata/<id>/ (Rust runtime);
         * Firecracker runs jailed in /run/vc/firecracker/<id>/. "sandbox-" stays last:
         * it is checked for its position. */
        static const char *const markers[] = { "/run/vc/vm/", "/run/kata/", "/run/vc/firecracker/", "sandbox-" };
        const char *end = cmdline + len;

        for (const char *arg = cmdline; arg < end; arg += strnlen(arg, (size_t) (end - arg)) + 1) {
                size_t alen = strnlen(arg, (size_t) (end - arg));
                for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
                        const char *m = memmem(arg, alen, markers[i], strlen(markers[i]));
                        if (!m)
                                continue;
                        /* "sandbox-" only as a whole -name value or its first part. */
                        if (i == sizeof(markers) / sizeof(markers[0]) - 1 && m != arg && m[-1] != '=' && m[-1] != ',')
                                continue;
                        const char *id = m + strlen(markers[i]);
                        if (take_sandbox_id(id, (size_t) (arg + alen - id), ret, size) == 0)
                                return 0;
                }
        }
        return -ENOENT;
}

int ksm_sandbox_from_cgroup(const char *path, char *ret, size_t size) {
        for (const char *c = path; *c;) {
                c += strspn(c, "/");
                size_t len = strcspn(c, "/");
                /* "kata_<id>", and systemd's "kata-<id>.scope"-style "...:kata:<id>" paths. */
                const char *k = memmem(c, len, "kata_", 5);
                if (k && (k == c || k[-1] == '-' || k[-1] == ':'))
                        if (take_sandbox_id(k + 5, (size_t) (c + len - k - 5), ret, size) == 0)
                                return 0;
                c += len;
        }
        return -ENOENT;
}

static uint64_t add_saturating(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int ksm_smaps_parse(FILE *f, struct ksm_smaps_totals *ret) {
        _cleanup_(freep) char *line = NULL;
        size_t cap = 0;
        uint64_t vma_size = 0, vma_rss = 0, mergeable = 0, shared = 0, private_rss = 0;

        while (getline(&line, &cap, f) >= 0) {
                unsigned long long start, end;
                if (isxdigit((unsigned char) line[0]) && sscanf(line, "%llx-%llx ", &start, &end) == 2) {
                        vma_size = end >= start ? end - start : 0;
                        vma_rss = 0;
                } else if (strncmp(line, "Rss:", 4) == 0) {
                        unsigned long long kb;
                        if (sscanf(line + 4, "%llu", &kb) == 1)
                                vma_rss = kb > UINT64_MAX / 1024 ? UINT64_MAX : kb * 1024u;
                } else if (strncmp(line, "VmFlags:", 8) == 0) {
                        bool mg = false, sh = false, wr = false;
                        for (char *tok = line + 8; *tok;) {
                                tok += strspn(tok, " \n");
                                size_t len = strcspn(tok, " \n");
                                if (len == 2) {
                                        mg |= memcmp(tok, "mg", 2) == 0;
                                        sh |= memcmp(tok, "sh", 2) == 0;
                                        wr |= memcmp(tok, "wr", 2) == 0;
                                }
                                tok += len;
                        }
                        if (mg)
                                mergeable = add_saturating(mergeable, vma_rss);
                        else if (sh && wr)
                                shared = add_saturating(shared, vma_size);
                        else if (wr)
                                private_rss = add_saturating(private_rss, vma_rss);
                }
        }
        if (ferror(f))
                return -EIO;
        *ret = (struct ksm_smaps_totals) {
                .mergeable_rss = mergeable, .shared_writable = shared, .private_writable_rss = private_rss,
        };
        return 0;
}

/* Reads dir_fd/path (smaps) into p's mergeable and shared sizes. */
static int read_smaps(int dir_fd, const char *path, struct ksm_process *p) {
        _cleanup_(closep) int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_(fclosep) FILE *f = NULL;
        int r;

        if (fd < 0)
                return -errno;
        f = fdopen(fd, "re");
        if (!f)
                return -errno;
        fd = -1;
        struct ksm_smaps_totals t;
        r = ksm_smaps_parse(f, &t);
        if (r < 0)
                return r;
        p->mergeable_bytes = t.mergeable_rss;
        p->shared_writable_bytes = t.shared_writable;
        p->private_writable_bytes = t.private_writable_rss;
        /* KSM's zero pages are not in Rss (the zero page is no normal page): the
         * caller, which knows the page size, adds them. */
        p->mergeable_source = KSM_MERGEABLE_SMAPS;
        return 0;
}

/* Names come from other processes (comm, cgroup names, command lines, machined): a
 * byte that is not valid UTF-8 or is a control character becomes '?', so that JSON
 * (which must be UTF-8) and Prometheus labels can always carry them and no name
 * drives a terminal. */
void ksm_sanitize_name(char *s) {
        unsigned char *c = (unsigned char *) s;
        while (*c) {
                size_t len = *c < 0x80 ? 1 : (*c & 0xe0) == 0xc0 ? 2 : (*c & 0xf0) == 0xe0 ? 3 : (*c & 0xf8) == 0xf0 ? 4 : 0;
                bool valid = len > 0 && !(len == 2 && *c < 0xc2) && !(len == 4 && *c > 0xf4);
                for (size_t i = 1; valid && i < len; i++)
                        valid = (c[i] & 0xc0) == 0x80;
                /* No overlong forms, no UTF-16 surrogates, nothing above U+10FFFF (RFC 3629). */
                if (valid && len >= 3)
                        valid = !(c[0] == 0xe0 && c[1] < 0xa0) && !(c[0] == 0xed && c[1] > 0x9f) &&
                                !(c[0] == 0xf0 && c[1] < 0x90) && !(c[0] == 0xf4 && c[1] > 0x8f);
                if (!valid || (len == 1 && (*c < 0x20 || *c == 0x7f))) {
                        *c++ = '?';
                        continue;
                }
                c += len;
        }
}

static bool takes_part(const struct ksm_process *p) {
        return p->mergeable || p->merge_any || p->merging_pages > 0 || p->zero_pages > 0 || p->rmap_items > 0;
}

static const struct ksm_machine *machine_of(const struct ksm_accounting_options *o, pid_t pid, const char *cgroup) {
        for (size_t i = 0; i < o->n_machines; i++) {
                const struct ksm_machine *m = &o->machines[i];
                if (m->leader > 0 && m->leader == pid)
                        return m;
                if (!m->unit[0])
                        continue;
                size_t ulen = strlen(m->unit);
                for (const char *c = cgroup; *c;) {
                        c += strspn(c, "/");
                        size_t len = strcspn(c, "/");
                        if (len == ulen && memcmp(c, m->unit, len) == 0)
                                return m;
                        c += len;
                }
        }
        return NULL;
}

/* Fills in kind and group: machine, else sandbox, else unit, else process. */
static void classify_raw(const struct ksm_accounting_options *o, int dir_fd, struct ksm_process *p);

static void classify(const struct ksm_accounting_options *o, int dir_fd, struct ksm_process *p) {
        classify_raw(o, dir_fd, p);
        ksm_sanitize_name(p->group);
}

static void classify_raw(const struct ksm_accounting_options *o, int dir_fd, struct ksm_process *p) {
        char text[4096], cgroup[1024] = "";
        const struct ksm_machine *m;
        ssize_t n;

        if (o->group_by_process) {
                p->kind = KSM_GROUP_PROCESS;
                snprintf(p->group, sizeof(p->group), "%s[%d]", p->comm, (int) p->pid);
                return;
        }

        if (read_small_file(dir_fd, "cgroup", text, sizeof(text), NULL) >= 0)
                (void) ksm_cgroup_path_parse(text, cgroup, sizeof(cgroup));

        m = machine_of(o, p->pid, cgroup);
        if (m) {
                p->kind = KSM_GROUP_MACHINE;
                snprintf(p->group, sizeof(p->group), "%s", m->name);
                return;
        }
        /* Without machined, libvirt's and nspawn's scopes still carry the name. */
        if (ksm_machine_from_cgroup(cgroup, p->group, sizeof(p->group)) == 0) {
                p->kind = KSM_GROUP_MACHINE;
                return;
        }
        if (ksm_sandbox_from_cgroup(cgroup, p->group, sizeof(p->group)) == 0) {
                p->kind = KSM_GROUP_SANDBOX;
                return;
        }
        n = read_small_file(dir_fd, "cmdline", text, sizeof(text), NULL);
        if (n > 0 && ksm_sandbox_from_cmdline(text, (size_t) n, p->group, sizeof(p->group)) == 0) {
                p->kind = KSM_GROUP_SANDBOX;
                return;
        }
        if (ksm_unit_from_cgroup(cgroup, p->group, sizeof(p->group)) == 0) {
                p->kind = KSM_GROUP_UNIT;
                return;
        }
        p->kind = KSM_GROUP_PROCESS;
        snprintf(p->group, sizeof(p->group), "%s[%d]", p->comm, (int) p->pid);
}

static int compare_groups(const void *a, const void *b) {
        const struct ksm_group *x = a, *y = b;
        if (x->profit_bytes != y->profit_bytes)
                return x->profit_bytes > y->profit_bytes ? -1 : 1;
        if (x->kind != y->kind)
                return x->kind < y->kind ? -1 : 1;
        return strcmp(x->name, y->name);
}

static int compare_processes(const void *a, const void *b) {
        const struct ksm_process *x = a, *y = b;
        if (x->kind != y->kind)
                return x->kind < y->kind ? -1 : 1;
        int c = strcmp(x->group, y->group);
        if (c)
                return c;
        return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static int build_groups(struct ksm_accounting *a) {
        if (a->n_processes > 0) /* qsort's array may not be NULL, even for no elements */
                qsort(a->processes, a->n_processes, sizeof(a->processes[0]), compare_processes);
        a->groups = calloc(a->n_processes ? a->n_processes : 1, sizeof(a->groups[0]));
        if (!a->groups)
                return -ENOMEM;

        for (size_t i = 0; i < a->n_processes; i++) {
                const struct ksm_process *p = &a->processes[i];
                struct ksm_group *g = a->n_groups ? &a->groups[a->n_groups - 1] : NULL;

                if (!g || g->kind != p->kind || strcmp(g->name, p->group) != 0) {
                        g = &a->groups[a->n_groups++];
                        g->kind = p->kind;
                        snprintf(g->name, sizeof(g->name), "%s", p->group);
                        g->uid = p->uid;
                        g->pid = p->pid;
                        g->mergeable_known = true;
                }
                g->n_processes++;
                g->profit_bytes += p->profit_bytes;
                g->merging_pages += p->merging_pages;
                g->zero_pages += p->zero_pages;
                g->rmap_items += p->rmap_items;
                g->mergeable_bytes += p->mergeable_bytes;
                if (p->mergeable_source != KSM_MERGEABLE_SMAPS)
                        g->mergeable_known = false;
                if (g->uid != p->uid)
                        g->uid = (uid_t) -1;
        }
        for (size_t i = 0; i < a->n_groups; i++) {
                struct ksm_group *g = &a->groups[i];
                double merged = (double) (g->merging_pages + g->zero_pages) * (double) a->page_size;
                if (!g->mergeable_known || g->mergeable_bytes == 0)
                        g->merged_share = g->mergeable_known && merged == 0 ? 0.0 : NAN;
                else
                        g->merged_share = fmin(1.0, merged / (double) g->mergeable_bytes);
        }
        qsort(a->groups, a->n_groups, sizeof(a->groups[0]), compare_groups);
        return 0;
}

void ksm_accounting_free(struct ksm_accounting *a) {
        free(a->processes);
        free(a->groups);
        *a = (struct ksm_accounting) {};
}

static bool is_pid(const char *name) {
        if (!*name || *name == '0')
                return false;
        for (const char *c = name; *c; c++)
                if (!isdigit((unsigned char) *c))
                        return false;
        return strlen(name) < 11;
}

int ksm_accounting_scan(const struct ksm_accounting_options *opts, struct ksm_accounting *ret) {
        _cleanup_(closedirp) DIR *proc = NULL;
        struct ksm_accounting a = {
                .page_size = opts->page_size ? opts->page_size : (size_t) sysconf(_SC_PAGESIZE),
        };
        size_t max = opts->max_processes ? opts->max_processes : KSM_ACCOUNTING_MAX_PROCESSES;
        size_t cap = 0, n_no_ksm_stat = 0;
        uint64_t smaps_spent = 0;
        struct dirent *de;
        int r;

        proc = opendir(opts->proc_dir ? opts->proc_dir : "/proc");
        if (!proc)
                return -errno;

        while ((errno = 0, de = readdir(proc))) {
                _cleanup_(closep) int dir_fd = -1;
                char text[1024];
                struct stat st;
                struct ksm_process p = {};
                ssize_t n;

                if (!is_pid(de->d_name))
                        continue;
                a.n_scanned++;
                dir_fd = openat(dirfd(proc), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dir_fd < 0)
                        continue; /* exited meanwhile */
                p.pid = (pid_t) atol(de->d_name);

                n = read_small_file(dir_fd, "comm", text, sizeof(text), NULL);
                if (n < 0)
                        continue;
                copy_string(p.comm, sizeof(p.comm), text, strcspn(text, "\n"));
                ksm_sanitize_name(p.comm);
                p.hypervisor = ksm_comm_is_hypervisor(p.comm);

                n = read_small_file(dir_fd, "ksm_stat", text, sizeof(text), &st);
                if (n == -EACCES || n == -EPERM) {
                        a.n_denied++;
                        continue;
                }
                if (n == -ENOENT) {
                        n_no_ksm_stat++;
                        continue;
                }
                /* Kernel threads have an empty ksm_stat: no mm. */
                if (n < 0 || ksm_stat_parse(text, &p) < 0)
                        continue;
                p.uid = st.st_uid;
                if (!takes_part(&p) && !p.hypervisor)
                        continue;

                if (a.n_processes >= max) {
                        a.truncated = true;
                        continue;
                }
                if (a.n_processes == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        struct ksm_process *np = reallocarray(a.processes, ncap, sizeof(*np));
                        if (!np) {
                                ksm_accounting_free(&a);
                                return -ENOMEM;
                        }
                        a.processes = np;
                        cap = ncap;
                }

                if (opts->read_smaps) {
                        if (opts->smaps_budget_usec && smaps_spent >= opts->smaps_budget_usec)
                                a.n_smaps_skipped++;
                        else {
                                uint64_t t0 = now_usec();
                                if (read_smaps(dir_fd, "smaps", &p) >= 0)
                                        p.mergeable_bytes = add_saturating(p.mergeable_bytes, p.zero_pages * a.page_size);
                                smaps_spent += now_usec() - t0;
                        }
                }
                classify(opts, dir_fd, &p);
                a.processes[a.n_processes++] = p;
        }
        if (errno) {
                r = -errno;
                ksm_accounting_free(&a);
                return r;
        }
        a.ksm_stat_missing = a.n_scanned > 0 && n_no_ksm_stat == a.n_scanned;

        r = build_groups(&a);
        if (r < 0) {
                ksm_accounting_free(&a);
                return r;
        }
        *ret = a;
        return 0;
}

int ksm_accounting_append_rows(sd_bus_message *m, const struct ksm_accounting *a, size_t limit) {
        int r = sd_bus_message_open_container(m, 'a', KSM_ACCOUNTING_ROW_SIGNATURE);
        if (r < 0)
                return r;
        for (size_t i = 0; i < a->n_groups && (limit == 0 || i < limit); i++) {
                const struct ksm_group *g = &a->groups[i];
                r = sd_bus_message_append(m, KSM_ACCOUNTING_ROW_SIGNATURE, ksm_group_kind_to_string(g->kind), g->name,
                                          (uint32_t) g->pid, g->n_processes, g->profit_bytes, g->merging_pages,
                                          g->zero_pages, g->rmap_items, g->mergeable_known ? g->mergeable_bytes : UINT64_MAX,
                                          isnan(g->merged_share) ? -1.0 : g->merged_share);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

#define MACHINED "org.freedesktop.machine1"
#define MACHINED_CALL_TIMEOUT_USEC (2 * UINT64_C(1000000))
#define MACHINED_BUDGET_USEC (500 * UINT64_C(1000))

/* One call to machined that never starts it: a machined that is not running
 * has no machines registered. */
static int machined_call(sd_bus *bus, const char *path, const char *interface, const char *member,
                         const char *property, sd_bus_message **reply) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(bus, &m, MACHINED, path, property ? "org.freedesktop.DBus.Properties" : interface,
                                               property ? "Get" : member);
        if (r < 0)
                return r;
        if (property && (r = sd_bus_message_append(m, "ss", interface, property)) < 0)
                return r;
        if ((r = sd_bus_message_set_auto_start(m, false)) < 0)
                return r;
        return sd_bus_call(bus, m, MACHINED_CALL_TIMEOUT_USEC, NULL, reply);
}

int ksm_machines_from_machined(sd_bus *bus, struct ksm_machine **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(freep) struct ksm_machine *machines = NULL;
        size_t n = 0, cap = 0;
        const char *name, *class, *service, *path;
        uint64_t deadline = now_usec() + MACHINED_BUDGET_USEC;
        int r;

        r = machined_call(bus, "/org/freedesktop/machine1", MACHINED ".Manager", "ListMachines", NULL, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssso)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "(ssso)", &name, &class, &service, &path)) > 0) {
                /* A host with more machines than this is beyond what a table shows. */
                if (n >= 4096)
                        break;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 8;
                        struct ksm_machine *nm = reallocarray(machines, ncap, sizeof(*nm));
                        if (!nm)
                                return -ENOMEM;
                        machines = nm;
                        cap = ncap;
                }
                struct ksm_machine *m = &machines[n++];
                *m = (struct ksm_machine) {};
                snprintf(m->name, sizeof(m->name), "%s", name);

                /* Two round trips a machine: past the budget, a machine keeps its name only,
                 * and its processes are still found by their machine-NAME.scope cgroup. */
                if (now_usec() > deadline)
                        continue;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *unit = NULL, *leader = NULL;
                const char *s;
                uint32_t pid;
                if (machined_call(bus, path, MACHINED ".Machine", NULL, "Unit", &unit) >= 0 &&
                    sd_bus_message_read(unit, "v", "s", &s) > 0)
                        snprintf(m->unit, sizeof(m->unit), "%s", s);
                if (machined_call(bus, path, MACHINED ".Machine", NULL, "Leader", &leader) >= 0 &&
                    sd_bus_message_read(leader, "v", "u", &pid) > 0)
                        m->leader = (pid_t) pid;
        }
        if (r < 0)
                return r;
        *ret = machines;
        machines = NULL;
        return (int) n;
}

json_t *ksm_group_to_json(const struct ksm_group *g, size_t page_size) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                              "kind", ksm_group_kind_to_string(g->kind),
                              "name", g->name,
                              "pid", (json_int_t) g->pid,
                              "processes", (json_int_t) g->n_processes,
                              "profit_bytes", (json_int_t) g->profit_bytes,
                              "merging_pages", (json_int_t) g->merging_pages,
                              "zero_pages", (json_int_t) g->zero_pages,
                              "rmap_items", (json_int_t) g->rmap_items,
                              "saved_bytes", (json_int_t) ((g->merging_pages + g->zero_pages) * page_size));
        if (!o)
                return NULL;
        /* Unknown is null, not 0: a VM whose maps could not be read is not "nothing mergeable". */
        if (json_object_set_new(o, "mergeable_bytes", g->mergeable_known ? json_integer((json_int_t) g->mergeable_bytes) : json_null()) < 0 ||
            json_object_set_new(o, "merged_share", isnan(g->merged_share) ? json_null() : json_real(g->merged_share)) < 0 ||
            json_object_set_new(o, "uid", g->uid == (uid_t) -1 ? json_null() : json_integer((json_int_t) g->uid)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

json_t *ksm_accounting_to_json(const struct ksm_accounting *a, size_t limit) {
        json_t *groups = json_array();
        if (!groups)
                return NULL;
        for (size_t i = 0; i < a->n_groups && (limit == 0 || i < limit); i++)
                if (json_array_append_new(groups, ksm_group_to_json(&a->groups[i], a->page_size)) < 0) {
                        json_decref(groups);
                        return NULL;
                }
        return json_pack("{s:o, s:I, s:I, s:I, s:b}",
                         "groups", groups,
                         "processes_scanned", (json_int_t) a->n_scanned,
                         "processes_unreadable", (json_int_t) a->n_denied,
                         "smaps_skipped", (json_int_t) a->n_smaps_skipped,
                         "truncated", (int) a->truncated);
}
