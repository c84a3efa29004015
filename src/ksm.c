/* SPDX-License-Identifier: Apache-2.0 */
#include "ksm.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/inotify.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "fd-util.h"
#include "fileio.h"
#include "log.h"
#include "parse-util.h"

static const char *const knob_names[_KSM_KNOB_MAX] = {
        [KSM_KNOB_ADVISOR_MODE] = "advisor_mode",
        [KSM_KNOB_PAGES_TO_SCAN] = "pages_to_scan",
        [KSM_KNOB_SLEEP_MILLISECS] = "sleep_millisecs",
        [KSM_KNOB_SMART_SCAN] = "smart_scan",
        [KSM_KNOB_USE_ZERO_PAGES] = "use_zero_pages",
        [KSM_KNOB_RUN] = "run",
};

static const char *const advisor_mode_names[] = {
        [KSM_ADVISOR_NONE] = "none",
        [KSM_ADVISOR_SCAN_TIME] = "scan-time",
};

const enum ksm_knob ksm_knob_display_order[_KSM_KNOB_MAX] = {
        KSM_KNOB_RUN,          KSM_KNOB_PAGES_TO_SCAN, KSM_KNOB_SLEEP_MILLISECS,
        KSM_KNOB_ADVISOR_MODE, KSM_KNOB_SMART_SCAN,    KSM_KNOB_USE_ZERO_PAGES,
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
        /* advisor_mode exists only since Linux 6.8, smart_scan since 6.7, use_zero_pages since 4.11. */
        return knob != KSM_KNOB_ADVISOR_MODE && knob != KSM_KNOB_SMART_SCAN && knob != KSM_KNOB_USE_ZERO_PAGES;
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
        if (value > UINT32_MAX || (ksm_knob_is_switch(knob) && value > 1))
                return -ERANGE;
        *ret = (uint32_t) value;
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

/* In a test directory of plain files, a write that truncates first can be cut by a crash
 * and leave an empty knob, which sysfs never does: there the file is replaced whole. */
static int replace_plain_file_at(int dirfd, const char *name, const char *text, size_t len) {
        char temporary[64];
        _cleanup_close_ int fd = -EBADF;

        snprintf(temporary, sizeof temporary, ".%s.new", name);
        (void) unlinkat(dirfd, temporary, 0);
        fd = openat(dirfd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        if (write(fd, text, len) != (ssize_t) len || renameat(dirfd, temporary, dirfd, name) < 0) {
                int r = errno ? -errno : -EIO;
                (void) unlinkat(dirfd, temporary, 0);
                return r;
        }
        return 0;
}

int ksm_knob_write(int dirfd, enum ksm_knob knob, uint32_t value) {
        _cleanup_close_ int fd = -EBADF;
        char text[32], formatted[KSM_KNOB_VALUE_MAX];
        struct statfs fs;
        int len;
        ssize_t n;

        len = snprintf(text, sizeof text, "%s\n", ksm_knob_format_value(knob, value, formatted));

        fd = openat(dirfd, knob_names[knob], O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstatfs(fd, &fs) >= 0 && fs.f_type != SYSFS_MAGIC)
                return replace_plain_file_at(dirfd, knob_names[knob], text, (size_t) len);
        n = write(fd, text, (size_t) len);
        if (n < 0)
                return -errno;
        if (n != len)
                return -EIO;
        return 0;
}

/* use_zero_pages is managed only where the kernel counts what it saves (the ksm_zero_pages
 * counter of newer kernels): without it, an empty page merged with the zero page vanishes
 * from every figure the throttler reads (docs/design.md, after the kernel advisor). */
static bool knob_managed_here(int dirfd, enum ksm_knob knob) {
        return knob != KSM_KNOB_USE_ZERO_PAGES || faccessat(dirfd, "ksm_zero_pages", F_OK, 0) == 0;
}

int ksm_settings_read(int dirfd, struct ksm_settings *ret, enum ksm_knob *ret_failed) {
        struct ksm_settings s = {};

        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                uint32_t value;
                if (!knob_managed_here(dirfd, k))
                        continue;
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

int ksm_directory_open_unchecked(const char *path) {
        int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                if (errno == ENOENT)
                        return log_error_errno(errno, "KSM directory %s does not exist: kernel built without CONFIG_KSM?", path);
                return log_error_errno(errno, "Cannot open KSM directory %s: %m", path);
        }
        return dirfd;
}

int ksm_directory_open(const char *path) {
        _cleanup_close_ int dirfd = ksm_directory_open_unchecked(path);

        if (dirfd < 0)
                return dirfd;

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

/* Whether moving from now to target writes knob k: only knobs both have, whose value
 * changes, and never pages_to_scan while the kernel's advisor owns it (writes fail with
 * EINVAL then). */
static bool knob_needs_write(const struct ksm_settings *now, const struct ksm_settings *target, enum ksm_knob k) {
        if (!ksm_settings_has(target, k) || !ksm_settings_has(now, k) || now->value[k] == target->value[k])
                return false;
        return !(k == KSM_KNOB_PAGES_TO_SCAN && ksm_settings_has(now, KSM_KNOB_ADVISOR_MODE) &&
                 now->value[KSM_KNOB_ADVISOR_MODE] == KSM_ADVISOR_SCAN_TIME);
}

/* After a write of knob k: changing advisor_mode resets pages_to_scan in the kernel, so
 * its new value is read into *now, or the next check would take the kernel's reset for
 * someone else's write. */
static int reread_after_write(int dirfd, struct ksm_settings *now, enum ksm_knob k) {
        if (k != KSM_KNOB_ADVISOR_MODE || !ksm_settings_has(now, KSM_KNOB_PAGES_TO_SCAN))
                return 0;
        return ksm_knob_read(dirfd, KSM_KNOB_PAGES_TO_SCAN, &now->value[KSM_KNOB_PAGES_TO_SCAN]);
}

int ksm_settings_apply(int dirfd, const struct ksm_settings *current, const struct ksm_settings *target,
                       struct ksm_settings *ret_now, enum ksm_knob *ret_failed) {
        struct ksm_settings now = *current;
        enum ksm_knob written[_KSM_KNOB_MAX];
        uint32_t previous[_KSM_KNOB_MAX];
        int n_written = 0, r;

        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                if (!knob_needs_write(&now, target, k))
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

                r = reread_after_write(dirfd, &now, k);
                if (r < 0) {
                        *ret_failed = KSM_KNOB_PAGES_TO_SCAN;
                        goto rollback;
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

int ksm_settings_restore(int dirfd, const struct ksm_settings *current, const struct ksm_settings *target,
                         struct ksm_settings *ret_now, unsigned *ret_failed, int errors[_KSM_KNOB_MAX]) {
        struct ksm_settings now = *current;
        unsigned failed = 0;
        int n_written = 0, first_error = 0;

        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                int r;

                errors[k] = 0;
                if (!knob_needs_write(&now, target, k))
                        continue;
                r = ksm_knob_write(dirfd, k, target->value[k]);
                if (r < 0) {
                        failed |= 1u << k;
                        errors[k] = r;
                        first_error = first_error ?: r;
                        continue;
                }
                n_written++;
                now.value[k] = target->value[k];
                r = reread_after_write(dirfd, &now, k);
                if (r < 0) {
                        failed |= 1u << KSM_KNOB_PAGES_TO_SCAN;
                        errors[KSM_KNOB_PAGES_TO_SCAN] = r;
                        first_error = first_error ?: r;
                }
        }
        *ret_now = now;
        *ret_failed = failed;
        return first_error < 0 ? first_error : n_written;
}

int ksm_knob_watch_open(int dirfd) {
        _cleanup_close_ int fd = -EBADF;
        char path[64];

        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* Through the directory already open, so that it is the same directory. */
        snprintf(path, sizeof path, "/proc/self/fd/%d", dirfd);
        if (inotify_add_watch(fd, path,
                              IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                      IN_DELETE_SELF | IN_MOVE_SELF) < 0)
                return -errno;
        return fd_move(&fd);
}

static bool is_knob_name(const char *name) {
        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (strcmp(name, knob_names[k]) == 0)
                        return true;
        return false;
}

int ksm_knob_watch_drain(int fd) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool written = false;
        ssize_t n;

        while ((n = read(fd, buf, sizeof buf)) > 0)
                for (char *p = buf; p < buf + n; p += sizeof(struct inotify_event) + ((struct inotify_event *) p)->len) {
                        const struct inotify_event *e = (const struct inotify_event *) p;
                        if (e->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))
                                return -ESTALE; /* the directory is gone: the watch sees nothing any more */
                        /* Lost events, or a knob (the counters and temporary files do not matter). */
                        if ((e->mask & IN_Q_OVERFLOW) || (e->len > 0 && is_knob_name(e->name)))
                                written = true;
                }
        if (n < 0 && errno != EAGAIN)
                return -errno;
        return written;
}

int64_t ksm_saved_bytes(int dirfd, const struct ksm_sample *sample, bool *ret_gross) {
        uint64_t page_size = (uint64_t) sysconf(_SC_PAGESIZE);
        uint64_t pages = ksm_sample_saved_pages(sample);
        int64_t profit;

        bool gross = ksm_counter_read(dirfd, "general_profit", &profit) < 0;
        if (ret_gross)
                *ret_gross = gross;
        if (!gross)
                return profit;
        return pages > (uint64_t) INT64_MAX / page_size ? INT64_MAX : (int64_t) (pages * page_size);
}

int ksm_sample_read(int dirfd, struct ksm_sample *ret) {
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
        *ret = s;
        return 0;
}
