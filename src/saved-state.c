/* SPDX-License-Identifier: Apache-2.0 */
#include "saved-state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"

#define WRITTEN_PREFIX "written."

static int format_settings(const struct ksm_settings *s, const char *prefix, char *buf, size_t size, size_t *used) {
        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                char value[KSM_KNOB_VALUE_MAX];
                int n;
                if (!ksm_settings_has(s, k))
                        continue;
                n = snprintf(buf + *used, size - *used, "%s%s=%s\n", prefix, ksm_knob_name(k),
                             ksm_knob_format_value(k, s->value[k], value));
                if (n < 0 || (size_t) n >= size - *used)
                        return -ENOBUFS;
                *used += (size_t) n;
        }
        return 0;
}

int saved_state_format(const struct saved_state *state, char *buf, size_t size) {
        size_t used = 0;
        int r;

        if (size > 0)
                buf[0] = '\0';
        r = format_settings(&state->host, "", buf, size, &used);
        if (r >= 0)
                r = format_settings(&state->written, WRITTEN_PREFIX, buf, size, &used);
        return r < 0 ? r : (int) used;
}

int saved_state_parse(const char *text, const char *where, struct saved_state *ret) {
        struct saved_state state = {};
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

                /* "knob=value" is the host's; "written.knob=value" the throttler's last write. */
                bool written = strncmp(line, WRITTEN_PREFIX, strlen(WRITTEN_PREFIX)) == 0;
                const char *name = written ? line + strlen(WRITTEN_PREFIX) : line;
                struct ksm_settings *s = written ? &state.written : &state.host;
                eq = strchr(line, '=');
                if (eq) {
                        *eq = '\0';
                        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                                if (strcmp(name, ksm_knob_name(k)) == 0)
                                        knob = k;
                }
                if (knob < 0 || ksm_knob_parse(knob, eq + 1, &s->value[knob]) < 0)
                        return log_error_errno(EINVAL, "%s:%u: not a saved KSM setting: \"%s%s%s\"", where, line_number, line,
                                               eq ? "=" : "", eq ? eq + 1 : "");
                s->present |= 1u << knob;
        }

        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (ksm_knob_is_required(k) && !ksm_settings_has(&state.host, k))
                        return log_error_errno(EINVAL, "%s: the saved value of %s is missing", where, ksm_knob_name(k));
        *ret = state;
        return 0;
}

int saved_state_save(const char *dir, const struct saved_state *state) {
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        char text[512];
        int len;

        len = saved_state_format(state, text, sizeof text);
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

int saved_state_load(const char *dir, struct saved_state *ret) {
        _cleanup_close_ int fd = -EBADF;
        char path[4096], text[1024];
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
