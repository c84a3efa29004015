/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime directory (/run/ksm-throttler): its lock, and the small files the daemon
 * keeps there. It holds what is restored or applied as root, so only the daemon's user
 * may own it or be able to write it, and nothing in it is followed or trusted
 * blindly (docs/design.md, Persistence and recovery). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Opens dir without following a symbolic link, creating it 0700 when create is set, and
 * checks that it is owned by the daemon's user and writable by nobody else (-EPERM).
 * -ENOENT (not logged) if it does not exist and create is not set; other errors logged. */
int runtime_directory_open(const char *dir, bool create);

/* Takes the exclusive lock on dir that one daemon or --restore holds for as long as it
 * may restore or write KSM knobs (docs/design.md, One instance). The directory is created
 * 0700 when create is set, and checked like runtime_directory_open() checks it. Returns
 * the fd that holds the lock (close it to release), -EBUSY if another process holds it
 * (not logged: the caller says what that means), -ENOENT if the directory does not exist
 * and create is not set, or another -errno (logged). Never blocks. */
int runtime_directory_lock(const char *dir, bool create);

/* Writes dir/name atomically: a temporary file (mode 0600), fsync, rename, fsync of dir.
 * The directory is created if missing. Errors are logged with the path. */
int runtime_file_write(const char *dir, const char *name, const char *text, size_t len);

/* Reads dir/name, NUL-terminated, into buf; returns its length. -ENOENT (not logged) when
 * there is no such file or directory. Refuses, logged with the path: a file not owned by
 * the daemon's user or writable by others (-EPERM), a symbolic link (-ELOOP), anything
 * but a regular file (-EBADFD), more than size - 1 bytes (-EFBIG), a NUL byte (-EINVAL).
 * Never blocks, even on a FIFO planted there. */
int runtime_file_read(const char *dir, const char *name, char *buf, size_t size);

/* Renames dir/from to dir/to (replacing it). -ENOENT (not logged) when there is no
 * from or no directory; other errors logged. */
int runtime_file_rename(const char *dir, const char *from, const char *to);

/* Removes dir/name; nothing to remove is not an error. */
int runtime_file_remove(const char *dir, const char *name);
