/* SPDX-License-Identifier: Apache-2.0 */
#include "parse-util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *skip_space(const char *s) {
        while (isspace((unsigned char) *s))
                s++;
        return s;
}

int parse_uint64(const char *s, uint64_t *ret) {
        uint64_t value = 0;

        s = skip_space(s);
        if (!isdigit((unsigned char) *s))
                return -EINVAL;
        for (; isdigit((unsigned char) *s); s++) {
                unsigned digit = (unsigned) (*s - '0');
                if (value > (UINT64_MAX - digit) / 10)
                        return -ERANGE;
                value = value * 10 + digit;
        }
        if (*skip_space(s) != '\0')
                return -EINVAL;
        *ret = value;
        return 0;
}

int parse_int64(const char *s, int64_t *ret) {
        bool negative = false;
        uint64_t magnitude;
        int r;

        s = skip_space(s);
        if (*s == '-') {
                negative = true;
                s++;
                if (!isdigit((unsigned char) *s))
                        return -EINVAL; /* "- 5" */
        }
        r = parse_uint64(s, &magnitude);
        if (r < 0)
                return r;
        if (negative ? magnitude > (uint64_t) INT64_MAX + 1 : magnitude > (uint64_t) INT64_MAX)
                return -ERANGE;
        *ret = negative ? (int64_t) (0 - magnitude) : (int64_t) magnitude;
        return 0;
}

static const struct {
        const char *suffix;
        uint64_t usec;
} duration_units[] = {
        /* Longest suffixes first, so "ms" is not read as "m" + "s". */
        { "usec", 1 },
        { "msec", USEC_PER_MSEC },
        { "ms", USEC_PER_MSEC },
        { "us", 1 },
        { "seconds", USEC_PER_SEC },
        { "second", USEC_PER_SEC },
        { "sec", USEC_PER_SEC },
        { "s", USEC_PER_SEC },
        { "minutes", USEC_PER_MINUTE },
        { "minute", USEC_PER_MINUTE },
        { "min", USEC_PER_MINUTE },
        { "m", USEC_PER_MINUTE },
        { "hours", USEC_PER_HOUR },
        { "hour", USEC_PER_HOUR },
        { "hr", USEC_PER_HOUR },
        { "h", USEC_PER_HOUR },
};

int parse_duration_usec(const char *s, uint64_t *ret) {
        uint64_t total = 0;
        bool any = false;

        s = skip_space(s);
        while (*s) {
                uint64_t whole = 0, unit = USEC_PER_SEC, fraction_usec = 0;
                uint64_t fraction = 0, fraction_scale = 1;
                size_t unit_len = 0;

                if (!isdigit((unsigned char) *s))
                        return -EINVAL;
                for (; isdigit((unsigned char) *s); s++) {
                        if (whole > (UINT64_MAX - 9) / 10)
                                return -ERANGE;
                        whole = whole * 10 + (uint64_t) (*s - '0');
                }
                if (*s == '.') {
                        s++;
                        if (!isdigit((unsigned char) *s))
                                return -EINVAL;
                        for (; isdigit((unsigned char) *s); s++)
                                if (fraction_scale < UINT64_C(1000000000)) {
                                        fraction = fraction * 10 + (uint64_t) (*s - '0');
                                        fraction_scale *= 10;
                                }
                }
                s = skip_space(s);
                for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
                        size_t n = strlen(duration_units[i].suffix);
                        if (strncasecmp(s, duration_units[i].suffix, n) == 0 && !isalpha((unsigned char) s[n])) {
                                unit = duration_units[i].usec;
                                unit_len = n;
                                break;
                        }
                }
                if (unit_len == 0 && isalpha((unsigned char) *s))
                        return -EINVAL; /* unknown unit */
                s = skip_space(s + unit_len);

                if (whole > UINT64_MAX / unit)
                        return -ERANGE;
                fraction_usec = fraction * unit / fraction_scale;
                uint64_t part = whole * unit;
                if (part > UINT64_MAX - fraction_usec)
                        return -ERANGE;
                part += fraction_usec;
                if (total > UINT64_MAX - part)
                        return -ERANGE;
                total += part;
                any = true;
        }
        if (!any)
                return -EINVAL;
        *ret = total;
        return 0;
}

int parse_absolute_path(const char *s, char **ret) {
        char *copy;
        if (s[0] != '/')
                return -EINVAL;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        free(*ret);
        *ret = copy;
        return 0;
}

int parse_boolean(const char *s, bool *ret) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

const char *format_duration_usec(char *buf, size_t size, uint64_t usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } parts[] = { { "h", USEC_PER_HOUR }, { "min", USEC_PER_MINUTE }, { "s", USEC_PER_SEC }, { "ms", USEC_PER_MSEC }, { "us", 1 } };
        size_t used = 0;

        if (size == 0)
                return buf;
        buf[0] = '\0';
        if (usec == 0) {
                snprintf(buf, size, "0");
                return buf;
        }
        for (size_t i = 0; i < sizeof parts / sizeof parts[0] && usec > 0; i++) {
                uint64_t n = usec / parts[i].usec;
                if (n == 0)
                        continue;
                usec -= n * parts[i].usec;
                int written = snprintf(buf + used, size - used, "%s%llu%s", used ? " " : "", (unsigned long long) n, parts[i].suffix);
                if (written < 0 || (size_t) written >= size - used)
                        break;
                used += (size_t) written;
        }
        return buf;
}
