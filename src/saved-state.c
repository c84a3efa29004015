/* SPDX-License-Identifier: Apache-2.0 */
#include "saved-state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "runtime-dir.h"

/* The three sets a file holds, by the prefix of their lines. */
static const struct {
        const char *prefix;
        size_t offset;
} sections[] = {
        { "", offsetof(struct saved_state, host) },
        { "written.", offsetof(struct saved_state, written) },
        { "pending.", offsetof(struct saved_state, pending) },
};

static struct ksm_settings *section_settings(struct saved_state *state, size_t i) {
        return (struct ksm_settings *) ((char *) state + sections[i].offset);
}

static int format_settings(const struct ksm_settings *s, const char *prefix, char *buf, size_t size, size_t *used) {
        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                char value[KSM_KNOB_VALUE_MAX];
                int n;
                if (!ksm_settings_has(s, k))
                        continue;
                n = snprintf(buf + *used, size - *used, "%s%s=%s\n", prefix, ksm_knob_name(k),
                             ksm_knob_format_value(k, s->value[k], value));
                if (n < 0 || (size_t) n >= size - *used)
                        return -ENOBUFS;
                *used += (size_t) n;
        }
        return 0;
}

int saved_state_format(const struct saved_state *state, char *buf, size_t size) {
        size_t used = 0;
        int r = 0;

        if (size > 0)
                buf[0] = '\0';
        for (size_t i = 0; i < sizeof sections / sizeof sections[0] && r >= 0; i++)
                r = format_settings(section_settings((struct saved_state *) state, i), sections[i].prefix, buf, size, &used);
        return r < 0 ? r : (int) used;
}

/* Values the kernel takes, and for the host's run only 0 and 1: run=2 ("unmerge
 * everything") is a command that is never restored. */
static bool value_in_range(enum ksm_knob knob, uint32_t value, bool host) {
        if (knob == KSM_KNOB_RUN)
                return value <= (host ? 1u : 2u);
        if (ksm_knob_is_switch(knob))
                return value <= 1; /* also refused by ksm_knob_parse() */
        return true; /* the others take any 32-bit value; the parser bounds them */
}

int saved_state_parse(const char *text, const char *where, struct saved_state *ret) {
        struct saved_state state = {};
        unsigned line_number = 0;

        while (*text) {
                const char *end = strchr(text, '\n');
                size_t len = end ? (size_t) (end - text) : strlen(text);
                char line[128];
                const char *name = line;
                char *eq;
                int knob = -1;
                size_t section = 0;

                line_number++;
                if (len >= sizeof line)
                        return log_error_errno(EINVAL, "%s:%u: line too long", where, line_number);
                memcpy(line, text, len);
                line[len] = '\0';
                text += len + (end ? 1 : 0);
                if (len == 0)
                        continue;

                for (size_t i = 1; i < sizeof sections / sizeof sections[0]; i++)
                        if (strncmp(line, sections[i].prefix, strlen(sections[i].prefix)) == 0) {
                                section = i;
                                name = line + strlen(sections[i].prefix);
                        }
                struct ksm_settings *s = section_settings(&state, section);
                eq = strchr(line, '=');
                if (eq) {
                        *eq = '\0';
                        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                                if (strcmp(name, ksm_knob_name(k)) == 0)
                                        knob = k;
                }
                if (knob < 0 || ksm_knob_parse(knob, eq + 1, &s->value[knob]) < 0 ||
                    !value_in_range(knob, s->value[knob], section == 0))
                        return log_error_errno(EINVAL, "%s:%u: not a saved KSM setting: \"%s%s%s\"", where, line_number, line,
                                               eq ? "=" : "", eq ? eq + 1 : "");
                s->present |= 1u << knob;
        }

        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (ksm_knob_is_required(k) && !ksm_settings_has(&state.host, k))
                        return log_error_errno(EINVAL, "%s: the saved value of %s is missing", where, ksm_knob_name(k));
        *ret = state;
        return 0;
}

int saved_state_save(const char *dir, const struct saved_state *state) {
        char text[SAVED_STATE_SIZE_MAX + 1];
        int len;

        len = saved_state_format(state, text, sizeof text);
        if (len < 0)
                return log_error_errno(len, "Cannot format the host's KSM settings: %m");
        return runtime_file_write(dir, SAVED_STATE_FILE, text, (size_t) len);
}

int saved_state_load(const char *dir, struct saved_state *ret) {
        char path[4096], text[SAVED_STATE_SIZE_MAX + 1];
        int r;

        r = runtime_file_read(dir, SAVED_STATE_FILE, text, sizeof text);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "%s/%s", dir, SAVED_STATE_FILE);
        return saved_state_parse(text, path, ret);
}

int saved_state_remove(const char *dir) {
        return runtime_file_remove(dir, SAVED_STATE_FILE);
}

bool saved_state_exists(const char *dir) {
        char path[PATH_MAX];

        if (snprintf(path, sizeof path, "%s/" SAVED_STATE_FILE, dir) >= (int) sizeof path)
                return true; /* let saved_state_load() say what is wrong */
        struct stat st;
        return fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}
