/* SPDX-License-Identifier: Apache-2.0 */
/* Reading the small text files of sysfs and procfs. */
#pragma once

#include <stddef.h>

/* Reads name (relative to dirfd, or AT_FDCWD) into buf, NUL-terminated. -EFBIG if it
 * does not fit: these files are a few bytes, a bigger one is not what we expect. */
int read_small_file_at(int dirfd, const char *name, char *buf, size_t size);
