/* SPDX-License-Identifier: Apache-2.0 */
#include "match.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Matches a bracket expression at *glob (just after '['); advances *glob past ']'.
 * Returns 1 on a match, 0 on none, -1 if the expression is not closed. */
static int match_bracket(const char **glob, char c) {
        const char *p = *glob;
        bool negate = false, matched = false;

        if (*p == '!' || *p == '^') {
                negate = true;
                p++;
        }
        /* A ']' first is a literal. */
        for (bool first = true; first || *p != ']'; first = false) {
                char lo, hi;
                if (*p == '\0')
                        return -1;
                if (*p == '\\' && p[1])
                        p++;
                lo = hi = *p++;
                if (*p == '-' && p[1] && p[1] != ']') {
                        p++;
                        if (*p == '\\' && p[1])
                                p++;
                        hi = *p++;
                }
                if ((unsigned char) c >= (unsigned char) lo && (unsigned char) c <= (unsigned char) hi)
                        matched = true;
        }
        *glob = p + 1;
        return matched != negate;
}

bool glob_match(const char *glob, const char *name, bool prefix_only) {
        while (*glob) {
                switch (*glob) {
                case '*':
                        while (*glob == '*')
                                glob++;
                        if (*glob == '\0')
                                return true;
                        /* Try every split; names are short (at most a file name). */
                        for (const char *n = name; ; n++) {
                                if (glob_match(glob, n, prefix_only))
                                        return true;
                                if (*n == '\0')
                                        return false;
                        }
                case '?':
                        if (*name == '\0')
                                return prefix_only;
                        glob++, name++;
                        break;
                case '[': {
                        const char *after = glob + 1;
                        if (*name == '\0')
                                return prefix_only;
                        int r = match_bracket(&after, *name);
                        if (r < 0) {
                                /* Not a bracket expression: a literal '['. */
                                if (*name != '[')
                                        return false;
                                glob++, name++;
                        } else if (r == 0)
                                return false;
                        else
                                glob = after, name++;
                        break;
                }
                case '\\':
                        if (glob[1])
                                glob++;
                        /* fall through */
                default:
                        if (*name == '\0')
                                return prefix_only;
                        if (*glob != *name)
                                return false;
                        glob++, name++;
                }
        }
        return *name == '\0';
}

static int check_glob(const char *glob) {
        size_t len = strlen(glob);

        if (len == 0)
                return -EINVAL;
        if (len > NAME_PATTERN_LENGTH_MAX)
                return -E2BIG;
        for (const char *p = glob; *p; p++) {
                if (*p == '/' || (unsigned char) *p < 0x20 || *p == 0x7f)
                        return -EINVAL;
                if (*p == '\\') {
                        if (p[1] == '\0')
                                return -EINVAL;
                        p++;
                } else if (*p == '[') {
                        const char *after = p + 1;
                        if (match_bracket(&after, 'a') < 0)
                                return -EINVAL;
                        p = after - 1;
                }
        }
        return 0;
}

int name_patterns_parse(const char *text, struct name_patterns *ret, const char **bad) {
        struct name_patterns p = {};
        const char *item = text;
        int r = 0;

        while (*text) {
                const char *end = strchr(item, ',');
                size_t len = end ? (size_t) (end - item) : strlen(item);
                const char *start = item;
                char *glob;

                while (len > 0 && (*start == ' ' || *start == '\t'))
                        start++, len--;
                while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
                        len--;
                if (p.n >= NAME_PATTERNS_MAX)
                        r = -E2BIG;
                else if (len > NAME_PATTERN_LENGTH_MAX)
                        r = -E2BIG;
                else if (!(glob = strndup(start, len)))
                        r = -ENOMEM;
                else if ((r = check_glob(glob)) < 0)
                        free(glob);
                else {
                        char **grown = realloc(p.globs, (p.n + 1) * sizeof *grown);
                        if (!grown) {
                                free(glob);
                                r = -ENOMEM;
                        } else {
                                p.globs = grown;
                                p.globs[p.n++] = glob;
                        }
                }
                if (r < 0) {
                        if (bad)
                                *bad = item;
                        name_patterns_free(&p);
                        return r;
                }
                if (!end)
                        break;
                item = end + 1;
        }
        *ret = p;
        return 0;
}

void name_patterns_free(struct name_patterns *p) {
        for (size_t i = 0; i < p->n; i++)
                free(p->globs[i]);
        free(p->globs);
        *p = (struct name_patterns) {};
}

const char *name_patterns_format(const struct name_patterns *p, char *buf, size_t size) {
        size_t used = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < p->n && used < size; i++) {
                int n = snprintf(buf + used, size - used, "%s%s", i ? "," : "", p->globs[i]);
                if (n < 0)
                        break;
                used += (size_t) n;
        }
        return buf;
}

const char *name_patterns_match(const struct name_patterns *p, const char *name) {
        for (size_t i = 0; i < p->n; i++)
                if (glob_match(p->globs[i], name, false))
                        return p->globs[i];
        return NULL;
}

const char *name_patterns_match_comm(const struct name_patterns *p, const char *comm) {
        bool cut = strlen(comm) >= COMM_LENGTH_MAX;

        for (size_t i = 0; i < p->n; i++)
                if (glob_match(p->globs[i], comm, cut))
                        return p->globs[i];
        return NULL;
}
