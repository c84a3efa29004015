/* SPDX-License-Identifier: Apache-2.0 */
#include "test-files.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *test_mkdtemp(char *template) {
        cr_assert_not_null(mkdtemp(template), "cannot create %s: %s", template, strerror(errno));
        return template;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

void test_rm_rf(const char *path) {
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void test_write_file(const char *path, const char *text, mode_t mode) {
        size_t length = strlen(text);
        struct stat st;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        cr_assert_geq(fd, 0, "cannot create %s: %s", path, strerror(errno));
        cr_assert_eq(write(fd, text, length), (ssize_t) length, "cannot write %s: %s", path, strerror(errno));
        /* Only when it differs: a knob in sysfs keeps its mode. */
        cr_assert_eq(fstat(fd, &st), 0);
        if ((st.st_mode & 07777) != mode)
                cr_assert_eq(fchmod(fd, mode), 0, "cannot chmod %s: %s", path, strerror(errno));
        cr_assert_eq(close(fd), 0, "cannot close %s: %s", path, strerror(errno));
}

const char *test_write_at(const char *dir, const char *name, const char *text) {
        static char path[PATH_MAX];

        snprintf(path, sizeof path, "%s/%s", dir, name);
        test_write_file(path, text, 0644);
        return path;
}

void stderr_capture_begin(struct stderr_capture *c) {
        c->file = tmpfile();
        cr_assert_not_null(c->file, "cannot create a file for stderr: %s", strerror(errno));
        fflush(stderr);
        c->saved_fd = dup(STDERR_FILENO);
        cr_assert_geq(c->saved_fd, 0);
        cr_assert_geq(dup2(fileno(c->file), STDERR_FILENO), 0);
}

void stderr_capture_end(struct stderr_capture *c, char *text, size_t size) {
        size_t n;

        fflush(stderr);
        dup2(c->saved_fd, STDERR_FILENO);
        close(c->saved_fd);
        rewind(c->file);
        n = fread(text, 1, size - 1, c->file);
        text[n] = '\0';
        fclose(c->file);
}
