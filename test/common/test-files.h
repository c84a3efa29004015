/* SPDX-License-Identifier: Apache-2.0 */
/* Temporary directories, fixture files and captured stderr, for the Criterion tests. Each
 * helper fails the running test with the path and errno when the file system says no. */
#pragma once

#include <stdio.h>
#include <sys/types.h>

/* mkdtemp(template), failing the test if it cannot. Returns template. */
char *test_mkdtemp(char *template);

/* Removes path and everything below it, without following symbolic links. */
void test_rm_rf(const char *path);

/* Creates or truncates path with exactly text, and gives it mode (the umask does not apply). */
void test_write_file(const char *path, const char *text, mode_t mode);

/* The same for dir/name, mode 0644; returns the full path (static buffer, valid until the
 * next call). */
const char *test_write_at(const char *dir, const char *name, const char *text);

/* Everything the code under test writes to stderr between begin and end goes to a
 * temporary file; end puts stderr back and copies what was written into text. */
struct stderr_capture {
        FILE *file;
        int saved_fd;
};
void stderr_capture_begin(struct stderr_capture *c);
void stderr_capture_end(struct stderr_capture *c, char *text, size_t size);
