/* SPDX-License-Identifier: Apache-2.0 */
/* Small fake /proc and /sys trees for the accounting, doctor and metrics tests. */
#pragma once

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh directory under $TMPDIR; removed by the test's own process exit is not
 * guaranteed, so every test calls fixture_remove(). */
static inline char *fixture_dir(void) {
        char *d = strdup("/tmp/ksm-accounting-test.XXXXXX");
        cr_assert(d && mkdtemp(d), "cannot make a temporary directory: %s", strerror(errno));
        return d;
}

/* Writes len bytes of content (or strlen if len < 0) to root/rel, making parent directories. */
static inline void fixture_write_n(const char *root, const char *rel, const char *content, ssize_t len) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
                *s = '\0';
                cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
                *s = '/';
        }
        FILE *f = fopen(path, "we");
        cr_assert(f, "cannot write %s: %s", path, strerror(errno));
        fwrite(content, 1, len < 0 ? strlen(content) : (size_t) len, f);
        cr_assert(fclose(f) == 0);
}

static inline void fixture_write(const char *root, const char *rel, const char *content) {
        fixture_write_n(root, rel, content, -1);
}

static inline void fixture_remove(char *root) {
        char cmd[4200];
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", root);
        cr_assert(system(cmd) == 0, "cannot remove %s", root);
        free(root);
}
