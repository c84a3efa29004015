/* SPDX-License-Identifier: Apache-2.0 */
/* Executable names against a list of shell globs ("qemu-system-*"). Pure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define NAME_PATTERNS_MAX 64
#define NAME_PATTERN_LENGTH_MAX 255
/* The kernel keeps a task's name (comm) in 16 bytes: names are cut to 15 characters. */
#define COMM_LENGTH_MAX 15

struct name_patterns {
        char **globs;
        size_t n;
};

/* Comma-separated globs, blanks around each ignored; "" gives an empty list.
 * -EINVAL for an empty item, a '/', a control character, an unbalanced '[' or a
 * trailing '\'; -E2BIG past NAME_PATTERNS_MAX globs or NAME_PATTERN_LENGTH_MAX characters.
 * On error *ret is untouched and *bad (when given) points into text at the item. */
int name_patterns_parse(const char *text, struct name_patterns *ret, const char **bad);
void name_patterns_free(struct name_patterns *p);
/* The list as text, comma-separated, into buf. */
const char *name_patterns_format(const struct name_patterns *p, char *buf, size_t size);

/* One glob against a whole name: '*', '?', '[a-z]', '[!x]' and '\' escapes, as fnmatch(3)
 * without flags. With prefix_only, a name that ends while the glob still wants more
 * counts as a match: the name is the start of one that matches. */
bool glob_match(const char *glob, const char *name, bool prefix_only);

/* The first glob that matches an executable's file name (its basename), or NULL. */
const char *name_patterns_match(const struct name_patterns *p, const char *name);
/* The same for a task name (comm), which the kernel cut to COMM_LENGTH_MAX characters:
 * a name of that length also matches a glob that a longer name starting with it would. */
const char *name_patterns_match_comm(const struct name_patterns *p, const char *comm);
