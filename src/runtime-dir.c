/* SPDX-License-Identifier: Apache-2.0 */
#include "runtime-dir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"

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

int runtime_directory_open(const char *dir, bool create) {
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

int runtime_file_write(const char *dir, const char *name, const char *text, size_t len) {
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        char temporary[256];

        if ((size_t) snprintf(temporary, sizeof temporary, "%s.tmp", name) >= sizeof temporary)
                return log_error_errno(ENAMETOOLONG, "Cannot write %s/%s: name too long", dir, name);
        dirfd = runtime_directory_open(dir, true);
        if (dirfd < 0)
                return dirfd;
        /* Whatever a dead instance left under the temporary name (even a FIFO) goes;
         * O_EXCL then guarantees a fresh regular file of ours. */
        if (unlinkat(dirfd, temporary, 0) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Cannot remove %s/%s: %m", dir, temporary);
        fd = openat(dirfd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create %s/%s: %m", dir, temporary);
        errno = 0;
        if (write(fd, text, len) != (ssize_t) len || fsync(fd) < 0) {
                int r = errno ? -errno : -EIO;
                (void) unlinkat(dirfd, temporary, 0);
                return log_error_errno(r, "Cannot write %s/%s: %m", dir, temporary);
        }
        if (renameat(dirfd, temporary, dirfd, name) < 0) {
                int r = -errno;
                (void) unlinkat(dirfd, temporary, 0);
                return log_error_errno(r, "Cannot rename %s/%s into place: %m", dir, temporary);
        }
        if (fsync(dirfd) < 0)
                return log_error_errno(errno, "Cannot sync runtime directory %s: %m", dir);
        return 0;
}

int runtime_file_read(const char *dir, const char *name, char *buf, size_t size) {
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        char path[4096];
        struct stat st;
        ssize_t n;
        int r;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        dirfd = runtime_directory_open(dir, false);
        if (dirfd < 0)
                return dirfd;
        /* O_NONBLOCK: a FIFO planted here must not hang the daemon or --restore. */
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
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
        /* One byte more than fits tells a file that is too large. */
        n = read(fd, buf, size);
        if (n < 0)
                return log_error_errno(errno, "Cannot read %s: %m", path);
        if ((size_t) n >= size)
                return log_error_errno(EFBIG, "%s is too large (more than %zu bytes); refusing it", path, size - 1);
        buf[n] = '\0';
        if (strlen(buf) != (size_t) n)
                return log_error_errno(EINVAL, "%s holds a NUL byte; refusing it", path);
        return (int) n;
}

int runtime_file_rename(const char *dir, const char *from, const char *to) {
        _cleanup_close_ int dirfd = runtime_directory_open(dir, false);

        if (dirfd < 0)
                return dirfd;
        if (renameat(dirfd, from, dirfd, to) < 0) {
                if (errno == ENOENT)
                        return -ENOENT;
                return log_error_errno(errno, "Cannot rename %s/%s to %s: %m", dir, from, to);
        }
        return 0;
}

int runtime_file_remove(const char *dir, const char *name) {
        _cleanup_close_ int dirfd = runtime_directory_open(dir, false);

        if (dirfd == -ENOENT)
                return 0;
        if (dirfd < 0)
                return dirfd;
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Cannot remove %s/%s: %m", dir, name);
        return 0;
}
