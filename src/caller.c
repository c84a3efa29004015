/* SPDX-License-Identifier: Apache-2.0 */
#include "caller.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Suffixes of units a process can run in (a slice only groups them). */
static bool is_process_unit(const char *name, size_t length) {
        static const char *const suffixes[] = { ".service", ".scope" };

        for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
                size_t n = strlen(suffixes[i]);
                if (length > n && memcmp(name + length - n, suffixes[i], n) == 0)
                        return true;
        }
        return false;
}

int caller_unit_from_cgroup(const char *text, char *ret, size_t size) {
        /* Only the unified hierarchy's line names systemd's units reliably. */
        for (const char *line = text; line && *line;) {
                const char *end = strchrnul(line, '\n');
                if (strncmp(line, "0::/", 4) == 0) {
                        const char *p = line + 4;
                        while (p < end) {
                                const char *slash = memchr(p, '/', (size_t) (end - p));
                                size_t length = (size_t) ((slash ? slash : end) - p);
                                if (is_process_unit(p, length)) {
                                        if (length >= size)
                                                return -ENAMETOOLONG;
                                        memcpy(ret, p, length);
                                        ret[length] = '\0';
                                        return 0;
                                }
                                if (!slash)
                                        break;
                                p = slash + 1;
                        }
                        return -ENOENT;
                }
                line = *end ? end + 1 : NULL;
        }
        return -ENOENT;
}

void caller_read_unit(struct caller *caller, const char *proc_path) {
        char path[128], text[4096];
        ssize_t n;
        int fd;

        caller->unit[0] = '\0';
        if (caller->pid == 0)
                return;
        snprintf(path, sizeof path, "%s/%u/cgroup", proc_path, caller->pid);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return;
        n = read(fd, text, sizeof text - 1);
        close(fd);
        if (n <= 0)
                return;
        text[n] = '\0';
        if (caller_unit_from_cgroup(text, caller->unit, sizeof caller->unit) < 0)
                caller->unit[0] = '\0';
}

void escape_into(char *buf, size_t size, const char *s) {
        size_t at = 0;

        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                char piece[5];
                if (*p == '\\')
                        strcpy(piece, "\\\\");
                else if (*p == '\n')
                        strcpy(piece, "\\n");
                else if (*p == '\t')
                        strcpy(piece, "\\t");
                else if (*p < 0x20 || *p == 0x7f)
                        snprintf(piece, sizeof piece, "\\x%02x", *p);
                else {
                        piece[0] = (char) *p;
                        piece[1] = '\0';
                }
                size_t n = strlen(piece);
                if (at + n >= size)
                        break;
                memcpy(buf + at, piece, n);
                at += n;
        }
        buf[at] = '\0';
}

void caller_format(const struct caller *caller, char *buf, size_t size) {
        char unit[4 * CALLER_UNIT_MAX];
        int n = 0;

        buf[0] = '\0';
        if (caller->uid != CALLER_UID_UNKNOWN)
                n += snprintf(buf + n, size - (size_t) n, "uid %u", caller->uid);
        if (caller->pid != 0 && (size_t) n < size)
                n += snprintf(buf + n, size - (size_t) n, "%spid %u", n ? " " : "", caller->pid);
        if (caller->unit[0] && (size_t) n < size) {
                escape_into(unit, sizeof unit, caller->unit);
                n += snprintf(buf + n, size - (size_t) n, "%sunit %s", n ? " " : "", unit);
        }
        if (n == 0)
                snprintf(buf, size, "unknown caller");
}
