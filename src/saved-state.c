/* SPDX-License-Identifier: Apache-2.0 */
#include "saved-state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"

#define TEMPORARY_FILE SAVED_STATE_FILE ".tmp"

/* The three sets a file holds, by the prefix of their lines. */
static const struct {
        const char *prefix;
        size_t offset;
} sections[] = {
        { "", offsetof(struct saved_state, host) },
        { "written.", offsetof(struct saved_state, written) },
        { "pending.", offsetof(struct saved_state, pending) },
};

static struct ksm_settings *section_settings(struct saved_state *state, size_t i) {
        return (struct ksm_settings *) ((char *) state + sections[i].offset);
}

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
        int r = 0;

        if (size > 0)
                buf[0] = '\0';
        for (size_t i = 0; i < sizeof sections / sizeof sections[0] && r >= 0; i++)
                r = format_settings(section_settings((struct saved_state *) state, i), sections[i].prefix, buf, size, &used);
        return r < 0 ? r : (int) used;
}

/* Values the kernel takes, and for the host's run only 0 and 1: run=2 ("unmerge
 * everything") is a command that is never restored. */
static bool value_in_range(enum ksm_knob knob, uint32_t value, bool host) {
        if (knob == KSM_KNOB_RUN)
                return value <= (host ? 1u : 2u);
        if (knob == KSM_KNOB_SMART_SCAN)
                return value <= 1; /* also refused by ksm_knob_parse() */
        return true; /* the others take any 32-bit value; the parser bounds them */
}

int saved_state_parse(const char *text, const char *where, struct saved_state *ret) {
        struct saved_state state = {};
        unsigned line_number = 0;

        while (*text) {
                const char *end = strchr(text, '\n');
                size_t len = end ? (size_t) (end - text) : strlen(text);
                char line[128];
                const char *name = line;
                char *eq;
                int knob = -1;
                size_t section = 0;

                line_number++;
                if (len >= sizeof line)
                        return log_error_errno(EINVAL, "%s:%u: line too long", where, line_number);
                memcpy(line, text, len);
                line[len] = '\0';
                text += len + (end ? 1 : 0);
                if (len == 0)
                        continue;

                for (size_t i = 1; i < sizeof sections / sizeof sections[0]; i++)
                        if (strncmp(line, sections[i].prefix, strlen(sections[i].prefix)) == 0) {
                                section = i;
                                name = line + strlen(sections[i].prefix);
                        }
                struct ksm_settings *s = section_settings(&state, section);
                eq = strchr(line, '=');
                if (eq) {
                        *eq = '\0';
                        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                                if (strcmp(name, ksm_knob_name(k)) == 0)
                                        knob = k;
                }
                if (knob < 0 || ksm_knob_parse(knob, eq + 1, &s->value[knob]) < 0 ||
                    !value_in_range(knob, s->value[knob], section == 0))
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

/* Only the daemon's user may have put or be able to change what is restored as root. */
static int check_owner_and_mode(const struct stat *st, const char *path) {
        if (st->st_uid != geteuid())
                return log_error_errno(EPERM, "%s is owned by UID %u, not by the daemon's UID %u; refusing to use it", path,
                                       (unsigned) st->st_uid, (unsigned) geteuid());
        if (st->st_mode & (S_IWGRP | S_IWOTH))
                return log_error_errno(EPERM, "%s is writable by group or others (mode %04o); refusing to use it", path,
                                       (unsigned) (st->st_mode & 07777));
        return 0;
}

/* Opens the runtime directory without following a symbolic link and checks it. */
static int runtime_directory_open(const char *dir, bool create) {
        _cleanup_close_ int dirfd = -EBADF;
        struct stat st;
        int r;

        if (create && mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create runtime directory %s: %m", dir);
        dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dirfd < 0) {
                if (errno == ENOENT && !create)
                        return -ENOENT;
                if (errno == ELOOP)
                        return log_error_errno(ELOOP, "Runtime directory %s is a symbolic link; refusing to follow it", dir);
                return log_error_errno(errno, "Cannot open runtime directory %s: %m", dir);
        }
        if (fstat(dirfd, &st) < 0)
                return log_error_errno(errno, "Cannot check runtime directory %s: %m", dir);
        r = check_owner_and_mode(&st, dir);
        if (r < 0)
                return r;
        return fd_move(&dirfd);
}

int saved_state_save(const char *dir, const struct saved_state *state) {
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        char text[SAVED_STATE_SIZE_MAX + 1];
        int len;

        len = saved_state_format(state, text, sizeof text);
        if (len < 0)
                return log_error_errno(len, "Cannot format the host's KSM settings: %m");

        dirfd = runtime_directory_open(dir, true);
        if (dirfd < 0)
                return dirfd;
        /* Whatever a dead instance left under the temporary name (even a FIFO) goes;
         * O_EXCL then guarantees a fresh regular file of ours. */
        if (unlinkat(dirfd, TEMPORARY_FILE, 0) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Cannot remove %s/%s: %m", dir, TEMPORARY_FILE);
        fd = openat(dirfd, TEMPORARY_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create %s/%s: %m", dir, TEMPORARY_FILE);
        errno = 0;
        if (write(fd, text, (size_t) len) != len || fsync(fd) < 0) {
                int r = errno ? -errno : -EIO;
                (void) unlinkat(dirfd, TEMPORARY_FILE, 0);
                return log_error_errno(r, "Cannot write %s/%s: %m", dir, TEMPORARY_FILE);
        }
        if (renameat(dirfd, TEMPORARY_FILE, dirfd, SAVED_STATE_FILE) < 0) {
                int r = -errno;
                (void) unlinkat(dirfd, TEMPORARY_FILE, 0);
                return log_error_errno(r, "Cannot rename %s/%s into place: %m", dir, TEMPORARY_FILE);
        }
        if (fsync(dirfd) < 0)
                return log_error_errno(errno, "Cannot sync runtime directory %s: %m", dir);
        return 0;
}

int saved_state_load(const char *dir, struct saved_state *ret) {
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        char path[4096], text[SAVED_STATE_SIZE_MAX + 2];
        struct stat st;
        ssize_t n;
        int r;

        snprintf(path, sizeof path, "%s/%s", dir, SAVED_STATE_FILE);
        dirfd = runtime_directory_open(dir, false);
        if (dirfd < 0)
                return dirfd;
        /* O_NONBLOCK: a FIFO planted here must not hang the daemon or --restore. */
        fd = openat(dirfd, SAVED_STATE_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return -ENOENT;
                if (errno == ELOOP)
                        return log_error_errno(ELOOP, "%s is a symbolic link; refusing to follow it", path);
                return log_error_errno(errno, "Cannot open %s: %m", path);
        }
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Cannot check %s: %m", path);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(EBADFD, "%s is not a regular file; refusing to read it", path);
        r = check_owner_and_mode(&st, path);
        if (r < 0)
                return r;
        n = read(fd, text, sizeof text - 1);
        if (n < 0)
                return log_error_errno(errno, "Cannot read %s: %m", path);
        if (n > SAVED_STATE_SIZE_MAX)
                return log_error_errno(EFBIG, "%s is too large (more than %d bytes) to be a saved state; refusing it", path,
                                       SAVED_STATE_SIZE_MAX);
        text[n] = '\0';
        if (strlen(text) != (size_t) n)
                return log_error_errno(EINVAL, "%s holds a NUL byte: not a saved state", path);
        return saved_state_parse(text, path, ret);
}

int saved_state_remove(const char *dir) {
        _cleanup_close_ int dirfd = runtime_directory_open(dir, false);

        if (dirfd == -ENOENT)
                return 0;
        if (dirfd < 0)
                return dirfd;
        if (unlinkat(dirfd, SAVED_STATE_FILE, 0) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Cannot remove %s/%s: %m", dir, SAVED_STATE_FILE);
        return 0;
}

int runtime_directory_lock(const char *dir, bool create) {
        _cleanup_close_ int dirfd = runtime_directory_open(dir, create);

        if (dirfd < 0)
                return dirfd;
        /* On the directory itself, not on a file in it: nothing to leave behind or plant,
         * and the directory's owner and mode are checked above. */
        if (flock(dirfd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return -EBUSY;
                return log_error_errno(errno, "Cannot lock runtime directory %s: %m", dir);
        }
        return fd_move(&dirfd);
}
