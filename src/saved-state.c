/* SPDX-License-Identifier: Apache-2.0 */
#include "saved-state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"

int saved_state_format(const struct ksm_settings *s, char *buf, size_t size) {
        size_t used = 0;

        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                int n;
                if (!ksm_settings_has(s, k))
                        continue;
                if (k == KSM_KNOB_ADVISOR_MODE)
                        n = snprintf(buf + used, size - used, "%s=%s\n", ksm_knob_name(k), ksm_advisor_mode_to_string(s->value[k]));
                else
                        n = snprintf(buf + used, size - used, "%s=%u\n", ksm_knob_name(k), s->value[k]);
                if (n < 0 || (size_t) n >= size - used)
                        return -ENOBUFS;
                used += (size_t) n;
        }
        return (int) used;
}

int saved_state_parse(const char *text, const char *where, struct ksm_settings *ret) {
        struct ksm_settings s = {};
        unsigned line_number = 0;

        while (*text) {
                const char *end = strchr(text, '\n');
                size_t len = end ? (size_t) (end - text) : strlen(text);
                char line[128];
                char *eq;
                int knob = -1;

                line_number++;
                if (len >= sizeof line)
                        return log_error_errno(EINVAL, "%s:%u: line too long", where, line_number);
                memcpy(line, text, len);
                line[len] = '\0';
                text += len + (end ? 1 : 0);
                if (len == 0)
                        continue;

                eq = strchr(line, '=');
                if (eq) {
                        *eq = '\0';
                        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                                if (strcmp(line, ksm_knob_name(k)) == 0)
                                        knob = k;
                }
                if (knob < 0 || ksm_knob_parse(knob, eq + 1, &s.value[knob]) < 0)
                        return log_error_errno(EINVAL, "%s:%u: not a saved KSM setting: \"%s%s%s\"", where, line_number, line,
                                               eq ? "=" : "", eq ? eq + 1 : "");
                s.present |= 1u << knob;
        }

        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (ksm_knob_is_required(k) && !ksm_settings_has(&s, k))
                        return log_error_errno(EINVAL, "%s: the saved value of %s is missing", where, ksm_knob_name(k));
        *ret = s;
        return 0;
}

int saved_state_save(const char *dir, const struct ksm_settings *host) {
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        char text[256];
        int len;

        len = saved_state_format(host, text, sizeof text);
        if (len < 0)
                return log_error_errno(len, "Cannot format the host's KSM settings: %m");

        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create runtime directory %s: %m", dir);
        dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return log_error_errno(errno, "Cannot open runtime directory %s: %m", dir);

        fd = openat(dirfd, SAVED_STATE_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create %s/%s.tmp: %m", dir, SAVED_STATE_FILE);
        if (write(fd, text, (size_t) len) != len || fsync(fd) < 0) {
                int r = errno ? -errno : -EIO;
                (void) unlinkat(dirfd, SAVED_STATE_FILE ".tmp", 0);
                return log_error_errno(r, "Cannot write %s/%s.tmp: %m", dir, SAVED_STATE_FILE);
        }
        if (renameat(dirfd, SAVED_STATE_FILE ".tmp", dirfd, SAVED_STATE_FILE) < 0) {
                int r = -errno;
                (void) unlinkat(dirfd, SAVED_STATE_FILE ".tmp", 0);
                return log_error_errno(r, "Cannot rename %s/%s.tmp into place: %m", dir, SAVED_STATE_FILE);
        }
        if (fsync(dirfd) < 0)
                return log_error_errno(errno, "Cannot sync runtime directory %s: %m", dir);
        return 0;
}

int saved_state_load(const char *dir, struct ksm_settings *ret) {
        _cleanup_close_ int fd = -EBADF;
        char path[4096], text[512];
        ssize_t n;

        snprintf(path, sizeof path, "%s/%s", dir, SAVED_STATE_FILE);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno == ENOENT)
                        return -ENOENT;
                return log_error_errno(errno, "Cannot open %s: %m", path);
        }
        n = read(fd, text, sizeof text - 1);
        if (n < 0)
                return log_error_errno(errno, "Cannot read %s: %m", path);
        text[n] = '\0';
        return saved_state_parse(text, path, ret);
}

int saved_state_remove(const char *dir) {
        char path[4096];

        snprintf(path, sizeof path, "%s/%s", dir, SAVED_STATE_FILE);
        if (unlink(path) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Cannot remove %s: %m", path);
        return 0;
}
