/* SPDX-License-Identifier: Apache-2.0 */
#include "ksm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "adaptive.h"
#include "fd-util.h"
#include "log.h"
#include "parse-util.h"

static const char *const knob_names[_KSM_KNOB_MAX] = {
        [KSM_KNOB_ADVISOR_MODE] = "advisor_mode",
        [KSM_KNOB_PAGES_TO_SCAN] = "pages_to_scan",
        [KSM_KNOB_SLEEP_MILLISECS] = "sleep_millisecs",
        [KSM_KNOB_RUN] = "run",
};

static const char *const advisor_mode_names[] = {
        [KSM_ADVISOR_NONE] = "none",
        [KSM_ADVISOR_SCAN_TIME] = "scan-time",
};

const enum ksm_knob ksm_knob_display_order[_KSM_KNOB_MAX] = {
        KSM_KNOB_RUN, KSM_KNOB_PAGES_TO_SCAN, KSM_KNOB_SLEEP_MILLISECS, KSM_KNOB_ADVISOR_MODE,
};

const char *const ksm_statistics_names[] = {
        "pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
        "full_scans",   "general_profit", "ksm_zero_pages",
};
const size_t ksm_statistics_count = sizeof ksm_statistics_names / sizeof ksm_statistics_names[0];

const char *ksm_knob_name(enum ksm_knob knob) {
        return knob >= 0 && knob < _KSM_KNOB_MAX ? knob_names[knob] : NULL;
}

bool ksm_knob_is_required(enum ksm_knob knob) {
        /* advisor_mode exists only since Linux 6.8. */
        return knob != KSM_KNOB_ADVISOR_MODE;
}

const char *ksm_advisor_mode_to_string(uint32_t mode) {
        return mode < sizeof advisor_mode_names / sizeof advisor_mode_names[0] ? advisor_mode_names[mode] : "unknown";
}

const char *ksm_knob_format_value(enum ksm_knob knob, uint32_t value, char buf[static KSM_KNOB_VALUE_MAX]) {
        if (knob == KSM_KNOB_ADVISOR_MODE)
                return ksm_advisor_mode_to_string(value);
        snprintf(buf, KSM_KNOB_VALUE_MAX, "%u", value);
        return buf;
}

bool ksm_settings_equal(const struct ksm_settings *a, const struct ksm_settings *b) {
        if (a->present != b->present)
                return false;
        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (ksm_settings_has(a, k) && a->value[k] != b->value[k])
                        return false;
        return true;
}

const char *ksm_settings_format(const struct ksm_settings *s, char *buf, size_t size) {
        size_t used = 0;

        if (size == 0)
                return buf;
        buf[0] = '\0';
        for (size_t i = 0; i < _KSM_KNOB_MAX; i++) {
                enum ksm_knob k = ksm_knob_display_order[i];
                char value[KSM_KNOB_VALUE_MAX];
                int n;

                if (!ksm_settings_has(s, k))
                        continue;
                n = snprintf(buf + used, size - used, "%s%s=%s", used ? " " : "", knob_names[k],
                             ksm_knob_format_value(k, s->value[k], value));
                if (n < 0 || (size_t) n >= size - used)
                        break;
                used += (size_t) n;
        }
        return buf;
}

int ksm_knob_parse(enum ksm_knob knob, const char *text, uint32_t *ret) {
        uint64_t value;
        int r;

        if (knob == KSM_KNOB_ADVISOR_MODE) {
                /* The kernel shows every mode and brackets the active one: "[none] scan-time". */
                const char *open = strchr(text, '[');
                char word[32];
                size_t len;

                if (open) {
                        const char *close = strchr(open, ']');
                        if (!close)
                                return -EINVAL;
                        text = open + 1;
                        len = (size_t) (close - text);
                } else {
                        text += strspn(text, " \t\n");
                        len = strcspn(text, " \t\n");
                        if (text[len + strspn(text + len, " \t\n")] != '\0')
                                return -EINVAL;
                }
                if (len == 0 || len >= sizeof word)
                        return -EINVAL;
                memcpy(word, text, len);
                word[len] = '\0';
                for (uint32_t m = 0; m < sizeof advisor_mode_names / sizeof advisor_mode_names[0]; m++)
                        if (strcmp(word, advisor_mode_names[m]) == 0) {
                                *ret = m;
                                return 0;
                        }
                return -EINVAL;
        }

        r = parse_uint64(text, &value);
        if (r < 0)
                return r;
        if (value > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) value;
        return 0;
}

/* Reads a small sysfs file into buf, NUL-terminated. */
static int read_small_file_at(int dirfd, const char *name, char *buf, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, size - 1);
        if (n < 0)
                return -errno;
        if ((size_t) n == size - 1)
                return -EFBIG; /* not a knob: knobs are a few bytes */
        buf[n] = '\0';
        return 0;
}

int ksm_knob_read(int dirfd, enum ksm_knob knob, uint32_t *ret) {
        char text[128];
        int r;

        r = read_small_file_at(dirfd, knob_names[knob], text, sizeof text);
        if (r < 0)
                return r;
        return ksm_knob_parse(knob, text, ret);
}

int ksm_knob_write(int dirfd, enum ksm_knob knob, uint32_t value) {
        _cleanup_close_ int fd = -EBADF;
        char text[32], formatted[KSM_KNOB_VALUE_MAX];
        int len;
        ssize_t n;

        len = snprintf(text, sizeof text, "%s\n", ksm_knob_format_value(knob, value, formatted));

        /* O_TRUNC matters for a test directory of plain files; sysfs ignores it. */
        fd = openat(dirfd, knob_names[knob], O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = write(fd, text, (size_t) len);
        if (n < 0)
                return -errno;
        if (n != len)
                return -EIO;
        return 0;
}

int ksm_settings_read(int dirfd, struct ksm_settings *ret, enum ksm_knob *ret_failed) {
        struct ksm_settings s = {};

        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                uint32_t value;
                int r = ksm_knob_read(dirfd, k, &value);
                if (r == -ENOENT && !ksm_knob_is_required(k))
                        continue;
                if (r < 0) {
                        if (ret_failed)
                                *ret_failed = k;
                        return r;
                }
                ksm_settings_set(&s, k, value);
        }
        *ret = s;
        return 0;
}

int ksm_counter_read(int dirfd, const char *name, int64_t *ret) {
        char text[64];
        int r;

        r = read_small_file_at(dirfd, name, text, sizeof text);
        if (r < 0)
                return r;
        return parse_int64(text, ret);
}

int ksm_directory_open(const char *path) {
        _cleanup_close_ int dirfd = -EBADF;

        dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                if (errno == ENOENT)
                        return log_error_errno(errno, "KSM directory %s does not exist: kernel built without CONFIG_KSM?", path);
                return log_error_errno(errno, "Cannot open KSM directory %s: %m", path);
        }

        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                uint32_t value;
                int r;

                if (faccessat(dirfd, knob_names[k], F_OK, 0) < 0 && errno == ENOENT && !ksm_knob_is_required(k))
                        continue;
                if (faccessat(dirfd, knob_names[k], R_OK | W_OK, 0) < 0) {
                        if (errno == ENOENT)
                                return log_error_errno(errno, "KSM knob %s/%s is missing: kernel built without CONFIG_KSM?",
                                                       path, knob_names[k]);
                        return log_error_errno(errno, "KSM knob %s/%s is not readable and writable: %m", path, knob_names[k]);
                }
                r = ksm_knob_read(dirfd, k, &value);
                if (r == -EINVAL || r == -ERANGE || r == -EFBIG)
                        return log_error_errno(r, "KSM knob %s/%s holds something that is not a valid value", path, knob_names[k]);
                if (r < 0)
                        return log_error_errno(r, "Cannot read KSM knob %s/%s: %m", path, knob_names[k]);
        }

        return fd_move(&dirfd);
}

int ksm_settings_apply(int dirfd, const struct ksm_settings *current, const struct ksm_settings *target,
                       struct ksm_settings *ret_now, enum ksm_knob *ret_failed) {
        struct ksm_settings now = *current;
        enum ksm_knob written[_KSM_KNOB_MAX];
        uint32_t previous[_KSM_KNOB_MAX];
        int n_written = 0, r;

        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                if (!ksm_settings_has(target, k) || !ksm_settings_has(&now, k))
                        continue;
                /* While the kernel's advisor is on it owns pages_to_scan (writes fail with EINVAL). */
                if (k == KSM_KNOB_PAGES_TO_SCAN && ksm_settings_has(&now, KSM_KNOB_ADVISOR_MODE) &&
                    now.value[KSM_KNOB_ADVISOR_MODE] == KSM_ADVISOR_SCAN_TIME)
                        continue;
                if (now.value[k] == target->value[k])
                        continue;

                r = ksm_knob_write(dirfd, k, target->value[k]);
                if (r < 0) {
                        *ret_failed = k;
                        goto rollback;
                }
                written[n_written] = k;
                previous[n_written] = now.value[k];
                n_written++;
                now.value[k] = target->value[k];

                if (k == KSM_KNOB_ADVISOR_MODE) {
                        /* Changing advisor_mode resets pages_to_scan in the kernel: know the new value,
                         * or the next check would take our own write for someone else's. */
                        r = ksm_knob_read(dirfd, KSM_KNOB_PAGES_TO_SCAN, &now.value[KSM_KNOB_PAGES_TO_SCAN]);
                        if (r < 0) {
                                *ret_failed = KSM_KNOB_PAGES_TO_SCAN;
                                goto rollback;
                        }
                }
        }

        *ret_now = now;
        return n_written;

rollback:
        /* Put back what this call changed, newest first, then report what sysfs really holds
         * (if it cannot be read, what this call believes it left). */
        while (n_written > 0) {
                n_written--;
                if (ksm_knob_write(dirfd, written[n_written], previous[n_written]) >= 0)
                        now.value[written[n_written]] = previous[n_written];
        }
        if (ksm_settings_read(dirfd, ret_now, NULL) < 0)
                *ret_now = now;
        return r;
}

int meminfo_parse_anon_pages(const char *text, uint64_t page_size, uint64_t *ret_pages) {
        const char *line = text;

        while (line && *line) {
                if (strncmp(line, "AnonPages:", 10) == 0) {
                        const char *p = line + 10;
                        char number[32];
                        size_t len;
                        uint64_t kib;
                        int r;

                        p += strspn(p, " \t");
                        len = strspn(p, "0123456789");
                        if (len == 0 || len >= sizeof number)
                                return -EINVAL;
                        memcpy(number, p, len);
                        number[len] = '\0';
                        p += len;
                        p += strspn(p, " \t");
                        if (strncmp(p, "kB", 2) != 0)
                                return -EINVAL;
                        r = parse_uint64(number, &kib);
                        if (r < 0)
                                return r;
                        if (kib > UINT64_MAX / 1024)
                                return -ERANGE;
                        *ret_pages = kib * 1024 / page_size;
                        return 0;
                }
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return -ENODATA;
}

int meminfo_read_anon_pages(const char *path, uint64_t *ret_pages) {
        char text[16384];
        int r;

        r = read_small_file_at(AT_FDCWD, path, text, sizeof text);
        if (r < 0)
                return r;
        return meminfo_parse_anon_pages(text, (uint64_t) sysconf(_SC_PAGESIZE), ret_pages);
}

int ksm_sample_read(int dirfd, pid_t ksmd_pid, struct ksm_sample *ret) {
        static const struct {
                const char *name;
                size_t offset;
        } counters[] = {
                { "full_scans", offsetof(struct ksm_sample, full_scans) },
                { "pages_shared", offsetof(struct ksm_sample, pages_shared) },
                { "pages_sharing", offsetof(struct ksm_sample, pages_sharing) },
                { "pages_unshared", offsetof(struct ksm_sample, pages_unshared) },
                { "pages_volatile", offsetof(struct ksm_sample, pages_volatile) },
                { "ksm_zero_pages", offsetof(struct ksm_sample, ksm_zero_pages) },
                { "pages_scanned", offsetof(struct ksm_sample, pages_scanned) },
                { "pages_skipped", offsetof(struct ksm_sample, pages_skipped) },
        };
        struct ksm_sample s = {};
        int r;

        for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
                int64_t value;
                r = ksm_counter_read(dirfd, counters[i].name, &value);
                if (r == -ENOENT && i > 0)
                        continue; /* newer counters; full_scans is always there */
                if (r < 0)
                        return r;
                *(uint64_t *) ((char *) &s + counters[i].offset) = value > 0 ? (uint64_t) value : 0;
                if (strcmp(counters[i].name, "pages_scanned") == 0)
                        s.has_pages_scanned = true;
        }
        if (ksmd_pid > 0 && proc_cpu_usec(ksmd_pid, &s.ksmd_cpu_usec) >= 0)
                s.has_ksmd_cpu = true;
        *ret = s;
        return 0;
}

int proc_stat_parse_cpu_usec(const char *text, long ticks_per_sec, uint64_t *ret) {
        /* "pid (comm) state ppid ..." where comm may hold spaces and parentheses:
         * fields are counted from the last ')'. utime and stime are fields 14 and 15. */
        const char *p = strrchr(text, ')');
        unsigned long long utime, stime;

        if (!p || ticks_per_sec <= 0)
                return -EINVAL;
        if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
                return -EINVAL;
        if (utime + stime > UINT64_MAX / 1000000)
                return -ERANGE;
        *ret = (uint64_t) (utime + stime) * 1000000 / (uint64_t) ticks_per_sec;
        return 0;
}

int proc_cpu_usec(pid_t pid, uint64_t *ret) {
        char path[64], text[1024];
        int r;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        r = read_small_file_at(AT_FDCWD, path, text, sizeof text);
        if (r < 0)
                return r;
        return proc_stat_parse_cpu_usec(text, sysconf(_SC_CLK_TCK), ret);
}

int ksmd_find(const char *proc_path, pid_t *ret) {
        _cleanup_(closedirp) DIR *proc = opendir(proc_path);
        struct dirent *de;

        if (!proc)
                return -errno;
        while ((de = readdir(proc))) {
                char path[PATH_MAX], comm[32];
                uint64_t pid;

                if (parse_uint64(de->d_name, &pid) < 0 || pid > INT32_MAX)
                        continue;
                snprintf(path, sizeof path, "%s/%s/comm", proc_path, de->d_name);
                if (read_small_file_at(AT_FDCWD, path, comm, sizeof comm) < 0 || strcmp(comm, "ksmd\n") != 0)
                        continue;
                /* The kernel thread, a child of kthreadd (PID 2), not a process that took its name. */
                char stat[512];
                int ppid;
                snprintf(path, sizeof path, "%s/%s/stat", proc_path, de->d_name);
                if (read_small_file_at(AT_FDCWD, path, stat, sizeof stat) < 0 || !strrchr(stat, ')') ||
                    sscanf(strrchr(stat, ')') + 1, " %*c %d", &ppid) != 1 || ppid != 2)
                        continue;
                *ret = (pid_t) pid;
                return 0;
        }
        return -ESRCH;
}
