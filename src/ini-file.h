/* SPDX-License-Identifier: Apache-2.0 */
/* Reading an INI configuration file and its drop-ins with libinih, for the daemon's and the
 * trigger's configuration: safe opening, file:line messages, read errors. The keys are the
 * caller's: each key=value found is handed to its handler. */
#pragma once

#include <stdbool.h>

/* Called for each key=value, with the file and line it comes from. Returns 0, or a negative
 * errno for a value it refused and has logged (counted as an error). */
typedef int (*ini_file_handler)(void *userdata, const char *file, unsigned line, const char *section,
                                const char *key, const char *value);

enum ini_file_flags {
        INI_FILE_REQUIRED = 1 << 0,    /* path must exist (its drop-ins never must) */
        INI_FILE_DEV_NULL_EMPTY = 1 << 1, /* path may be /dev/null, read as an empty file ("no configuration") */
};

/* Reads path (which must exist with INI_FILE_REQUIRED; a directory or other non-regular file is refused
 * even when optional), then path + ".d/" "*.conf" in lexical order, each opened non-blocking.
 * Unreadable files, lines too long, syntax errors and failed reads (e.g. EIO) are logged with
 * the file (and line or errno). Returns 0, or -EINVAL once everything was read if any error was
 * logged (by this or by the handler). When ret_sources is not NULL it receives the files
 * actually read, ", "-separated (NULL if none), also on error. */
int ini_file_parse(const char *path, enum ini_file_flags flags, ini_file_handler handler, void *userdata, char **ret_sources);
