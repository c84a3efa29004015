/* SPDX-License-Identifier: Apache-2.0 */
#include "handover.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "parse-util.h"
#include "runtime-dir.h"

/* The texts, by key. */
static const struct {
        const char *key;
        size_t offset;
} texts[] = {
        { "reason", offsetof(struct handover, reason) },
        { "application_id", offsetof(struct handover, application_id) },
        { "origin", offsetof(struct handover, origin) },
        { "unit", offsetof(struct handover, unit) },
};

static char *text_field(struct handover *h, size_t i) {
        return (char *) h + texts[i].offset;
}

/* One line per value: backslash, and bytes below 0x20 or 0x7f as \xHH. */
static int append_escaped(char *buf, size_t size, size_t *used, const char *key, const char *value) {
        int n = snprintf(buf + *used, size - *used, "%s=", key);
        if (n < 0 || (size_t) n >= size - *used)
                return -ENOBUFS;
        *used += (size_t) n;
        for (const unsigned char *p = (const unsigned char *) value; *p; p++) {
                if (*p == '\\' || *p < 0x20 || *p == 0x7f)
                        n = snprintf(buf + *used, size - *used, "\\x%02x", *p);
                else
                        n = snprintf(buf + *used, size - *used, "%c", *p);
                if (n < 0 || (size_t) n >= size - *used)
                        return -ENOBUFS;
                *used += (size_t) n;
        }
        if (size - *used < 2)
                return -ENOBUFS;
        buf[(*used)++] = '\n';
        buf[*used] = '\0';
        return 0;
}

int handover_format(const struct handover *h, char *buf, size_t size) {
        size_t used = 0;
        int n, r = 0;

        n = snprintf(buf, size, "kicks=%" PRIu64 "\ntime=%" PRIu64 "\npid=%ld\n", h->kicks, h->boottime_usec, (long) h->pid);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        used = (size_t) n;
        for (size_t i = 0; i < sizeof texts / sizeof texts[0] && r >= 0; i++)
                r = append_escaped(buf, size, &used, texts[i].key, text_field((struct handover *) h, i));
        return r < 0 ? r : (int) used;
}

/* A key from the file, for a message: it comes from a damaged file, so only a short
 * run of [a-z_] is shown as it is. */
static const char *printable_key(const char *key) {
        return strlen(key) <= 32 && key[strspn(key, "abcdefghijklmnopqrstuvwxyz_")] == '\0' ? key : "a key";
}

static int unescape(const char *from, char *to, size_t size) {
        size_t n = 0;

        for (const char *p = from; *p; p++) {
                char c = *p;
                if (c == '\\') {
                        unsigned value;
                        if (p[1] != 'x' || !isxdigit((unsigned char) p[2]) || !isxdigit((unsigned char) p[3]) ||
                            sscanf(p + 2, "%2x", &value) != 1 || value == 0)
                                return -EINVAL;
                        c = (char) value;
                        p += 3;
                }
                if (n + 1 >= size)
                        return -E2BIG;
                to[n++] = c;
        }
        to[n] = '\0';
        return 0;
}

int handover_parse(const char *text, const char *where, struct handover *ret) {
        struct handover h = {};
        unsigned line_number = 0;
        bool have_kicks = false, have_time = false;

        while (*text) {
                const char *end = strchr(text, '\n');
                size_t len = end ? (size_t) (end - text) : strlen(text);
                char line[HANDOVER_SIZE_MAX + 1], *value;
                uint64_t number;
                bool known = false;

                line_number++;
                if (len >= sizeof line)
                        return log_error_errno(EINVAL, "%s:%u: line too long", where, line_number);
                memcpy(line, text, len);
                line[len] = '\0';
                text += len + (end ? 1 : 0);
                value = strchr(line, '=');
                if (!value)
                        return log_error_errno(EINVAL, "%s:%u: expected KEY=VALUE", where, line_number);
                *value++ = '\0';
                for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
                        if (strcmp(line, texts[i].key) == 0) {
                                if (unescape(value, text_field(&h, i), HANDOVER_TEXT_MAX + 1) < 0)
                                        return log_error_errno(EINVAL, "%s:%u: %s is damaged or too long", where,
                                                               line_number, line);
                                known = true;
                        }
                if (known)
                        continue;
                if (parse_uint64(value, &number) < 0)
                        return log_error_errno(EINVAL, "%s:%u: the value of %s is not a number", where, line_number,
                                               printable_key(line));
                if (strcmp(line, "kicks") == 0 && number > 0)
                        h.kicks = number, have_kicks = true;
                else if (strcmp(line, "time") == 0)
                        h.boottime_usec = number, have_time = true;
                else if (strcmp(line, "pid") == 0 && number > 0 && number <= INT32_MAX)
                        h.pid = (pid_t) number;
                else
                        return log_error_errno(EINVAL, "%s:%u: unexpected or out-of-range %s", where, line_number,
                                               printable_key(line));
        }
        if (!have_kicks || !have_time)
                return log_error_errno(EINVAL, "%s: the number of kicks or their time is missing", where);
        *ret = h;
        return 0;
}

int handover_take(const char *dir, uint64_t now_boottime_usec, struct handover *ret) {
        char text[HANDOVER_SIZE_MAX + 1], path[4096];
        struct handover h;
        int r;

        /* Taken first, whatever it holds: a record is applied at most once, and a damaged
         * one is not read again by every later start. */
        r = runtime_file_rename(dir, HANDOVER_FILE, HANDOVER_TAKEN_FILE);
        if (r < 0)
                return r;
        r = runtime_file_read(dir, HANDOVER_TAKEN_FILE, text, sizeof text);
        (void) runtime_file_remove(dir, HANDOVER_TAKEN_FILE);
        if (r < 0)
                return r == -ENOENT ? -EIO : r;
        snprintf(path, sizeof path, "%s/%s", dir, HANDOVER_FILE);
        r = handover_parse(text, path, &h);
        if (r < 0)
                return r;
        if (h.boottime_usec > now_boottime_usec + HANDOVER_MAX_AGE_USEC ||
            now_boottime_usec > h.boottime_usec + HANDOVER_MAX_AGE_USEC)
                return log_notice_errno(ESTALE,
                                        "Dropping %s: %" PRIu64 " kick(s) handed over by PID %ld more than 60 s away from "
                                        "now, not a kick that raced with that instance's exit",
                                        path, h.kicks, (long) h.pid);
        *ret = h;
        return 0;
}

int handover_record(const char *dir, const struct handover *k, uint64_t now_boottime_usec) {
        char text[HANDOVER_SIZE_MAX + 1];
        struct handover h = {};
        int len, r;

        /* Counting on only from this process's own record: anything else there is not
         * ours to add to (a record nobody took is overwritten). */
        r = runtime_file_read(dir, HANDOVER_FILE, text, sizeof text);
        if (r >= 0 && handover_parse(text, HANDOVER_FILE, &h) >= 0 && h.pid == getpid() && h.kicks < UINT64_MAX)
                h.kicks++;
        else
                h = (struct handover) { .kicks = 1, .pid = getpid() };
        h.boottime_usec = now_boottime_usec;
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
                snprintf(text_field(&h, i), HANDOVER_TEXT_MAX + 1, "%s", text_field((struct handover *) k, i));

        len = handover_format(&h, text, sizeof text);
        if (len < 0)
                return log_error_errno(len, "Cannot format the kick to hand over: %m");
        return runtime_file_write(dir, HANDOVER_FILE, text, (size_t) len);
}
