/* SPDX-License-Identifier: Apache-2.0 */
/* Cleanup helpers for __attribute__((cleanup)). */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}

static inline void freep(void *p) {
        free(*(void **) p);
}

/* Hands an fd out of a _cleanup_close_ variable. */
static inline int fd_move(int *fd) {
        int r = *fd;
        *fd = -EBADF;
        return r;
}

#include <stdio.h>
static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

#include <dirent.h>
static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
