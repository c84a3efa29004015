/* SPDX-License-Identifier: Apache-2.0 */
#include "trigger-config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ini-file.h"
#include "log.h"
#include "parse-util.h"

static const char *const default_watch[] = {
        "/run/vc/sbs", /* Kata Containers' Go runtime */
        "/run/kata",   /* its Rust runtime */
};

static void watch_clear(struct trigger_config *c) {
        for (unsigned i = 0; i < c->n_watch; i++)
                free(c->watch[i]);
        free(c->watch);
        c->watch = NULL;
        c->n_watch = 0;
}

static int watch_add(struct trigger_config *c, const char *dir) {
        char **grown, *copy;

        for (unsigned i = 0; i < c->n_watch; i++)
                if (strcmp(c->watch[i], dir) == 0)
                        return 0;
        if (c->n_watch >= TRIGGER_WATCH_MAX)
                return -E2BIG;
        copy = strdup(dir);
        if (!copy)
                return -ENOMEM;
        grown = realloc(c->watch, (c->n_watch + 1) * sizeof *grown);
        if (!grown) {
                free(copy);
                return -ENOMEM;
        }
        c->watch = grown;
        c->watch[c->n_watch++] = copy;
        return 0;
}

static int parse_watch(struct trigger_config *c, const char *value) {
        size_t len = strlen(value);

        if (len == 0) {
                watch_clear(c);
                return 0;
        }
        if (value[0] != '/' || len >= 4096 || strstr(value, "/../") || strstr(value, "/./") ||
            (len >= 3 && strcmp(value + len - 3, "/..") == 0) || (len >= 2 && strcmp(value + len - 2, "/.") == 0))
                return -EINVAL;
        for (const char *p = value; *p; p++)
                if ((unsigned char) *p < 0x20)
                        return -EINVAL;

        /* One spelling per directory ("/run//vc/sbs/" is "/run/vc/sbs"): the source
         * compares paths to know when it watches the directory itself. */
        char normal[4096];
        size_t n = 0;
        for (const char *p = value; *p; p++)
                if (!(*p == '/' && n > 0 && normal[n - 1] == '/'))
                        normal[n++] = *p;
        while (n > 1 && normal[n - 1] == '/')
                n--;
        normal[n] = '\0';
        return watch_add(c, normal);
}

static int parse_machined(struct trigger_config *c, const char *value) {
        return parse_boolean(value, &c->machined);
}

static int parse_hypervisors(struct trigger_config *c, const char *value) {
        struct name_patterns p;
        int r = name_patterns_parse(value, &p, NULL);
        if (r < 0)
                return r;
        name_patterns_free(&c->hypervisors);
        c->hypervisors = p;
        return 0;
}

int pressure_spec_parse(const char *text, struct pressure_spec *ret) {
        char kind[8], extra;
        uint64_t stall, window;
        bool off;

        if (parse_boolean(text, &off) == 0 && !off) {
                *ret = (struct pressure_spec) { .enabled = false };
                return 0;
        }
        /* %c after the numbers catches trailing garbage; the numbers themselves are checked again below. */
        if (sscanf(text, " %7s %" SCNu64 " %" SCNu64 " %c", kind, &stall, &window, &extra) != 3)
                return -EINVAL;
        if (strcmp(kind, "some") != 0 && strcmp(kind, "full") != 0)
                return -EINVAL;
        for (const char *p = text; *p; p++)
                if (*p == '-' || *p == '+')
                        return -EINVAL;
        /* The kernel's bounds for a trigger (Documentation/accounting/psi.rst). */
        if (window < 500 * USEC_PER_MSEC || window > 10 * USEC_PER_SEC || stall == 0 || stall > window)
                return -ERANGE;
        *ret = (struct pressure_spec) {
                .enabled = true,
                .full = strcmp(kind, "full") == 0,
                .stall_usec = stall,
                .window_usec = window,
        };
        return 0;
}

double pressure_spec_threshold(const struct pressure_spec *spec) {
        return spec->window_usec ? 100.0 * (double) spec->stall_usec / (double) spec->window_usec : 0;
}

static int parse_pressure(struct trigger_config *c, const char *value) {
        return pressure_spec_parse(value, &c->pressure);
}

static int parse_pressure_file(struct trigger_config *c, const char *value) {
        return parse_absolute_path(value, &c->pressure_file);
}

static int parse_duration_between(const char *value, uint64_t min, uint64_t max, uint64_t *ret) {
        uint64_t usec;
        int r = parse_duration_usec(value, &usec);
        if (r < 0)
                return r;
        if (usec < min || usec > max)
                return -ERANGE;
        *ret = usec;
        return 0;
}

static int parse_pressure_interval(struct trigger_config *c, const char *value) {
        return parse_duration_between(value, 100 * USEC_PER_MSEC, USEC_PER_HOUR, &c->pressure_interval_usec);
}

static int parse_debounce(struct trigger_config *c, const char *value) {
        return parse_duration_between(value, 0, USEC_PER_HOUR, &c->debounce_usec);
}

static int parse_log_level(struct trigger_config *c, const char *value) {
        int level = log_level_from_string(value);
        if (level < 0)
                return level;
        c->log_level = level;
        return 0;
}

const struct trigger_key trigger_keys[] = {
        { "Watch", "watch", "DIR", "Kick for each new entry in DIR (repeatable; empty clears the list)",
          parse_watch, "an absolute directory path without \".\" or \"..\" components (or nothing, to clear the list)" },
        { "Machined", "machined", "BOOL", "Kick when systemd-machined registers a machine", parse_machined, "yes or no" },
        { "Hypervisors", "hypervisors", "GLOB[,GLOB...]", "Kick when an executable with a matching name starts (empty: off)",
          parse_hypervisors, "comma-separated file-name globs without \"/\", at most 64 (or nothing, for off)" },
        { "Pressure", "pressure", "SPEC|no", "Kick on memory pressure: \"some|full STALL_USEC WINDOW_USEC\"",
          parse_pressure,
          "\"some\" or \"full\", a stall and a window in microseconds (window 500000 to 10000000, stall at most the window), or \"no\"" },
        { "PressureFile", "pressure-file", "FILE", "Pressure file (default /proc/pressure/memory)", parse_pressure_file,
          "an absolute path" },
        { "PressureIntervalSec", "pressure-interval", "DURATION",
          "How often to read the pressure file where the kernel refuses triggers", parse_pressure_interval,
          "a duration between 100ms and 1h such as 5s" },
        { "DebounceSec", "debounce", "DURATION", "Kick at most once at the start and once at the end of DURATION",
          parse_debounce, "a duration between 0 and 1h such as 1s or 500ms" },
        { "LogLevel", "log-level", "LEVEL", "debug, info, notice, warning, err", parse_log_level,
          "debug, info, notice, warning or err" },
        {},
};

const struct trigger_key *trigger_key_by_option(const char *option) {
        for (const struct trigger_key *k = trigger_keys; k->key; k++)
                if (strcmp(k->option, option) == 0)
                        return k;
        return NULL;
}

static const struct trigger_key *key_by_name(const char *name) {
        for (const struct trigger_key *k = trigger_keys; k->key; k++)
                if (strcmp(k->key, name) == 0)
                        return k;
        return NULL;
}

int trigger_config_set(struct trigger_config *c, const struct trigger_key *key, const char *value, const char *where) {
        int r = key->parse(c, value);
        if (r == -ENOMEM)
                return log_oom();
        if (r == -E2BIG && strcmp(key->key, "Watch") == 0)
                return log_error_errno(EINVAL, "%s: too many directories to watch (at most %d)", where, TRIGGER_WATCH_MAX);
        if (r < 0)
                return log_error_errno(EINVAL, "%s: invalid value \"%s\" for %s: expected %s", where, value, key->key,
                                       key->expected);
        return 0;
}

int trigger_config_init(struct trigger_config *c) {
        *c = (struct trigger_config) {
                .machined = true,
                .pressure_interval_usec = 5 * USEC_PER_SEC, /* avg10 is a 10 s average */
                .debounce_usec = USEC_PER_SEC,
                .log_level = -1,
        };
        for (size_t i = 0; i < sizeof default_watch / sizeof default_watch[0]; i++)
                if (watch_add(c, default_watch[i]) < 0)
                        goto oom;
        if (name_patterns_parse(TRIGGER_DEFAULT_HYPERVISORS, &c->hypervisors, NULL) < 0 ||
            pressure_spec_parse(TRIGGER_DEFAULT_PRESSURE, &c->pressure) < 0 ||
            !(c->pressure_file = strdup("/proc/pressure/memory")))
                goto oom;
        return 0;
oom:
        trigger_config_done(c);
        return -ENOMEM;
}

void trigger_config_done(struct trigger_config *c) {
        watch_clear(c);
        name_patterns_free(&c->hypervisors);
        free(c->pressure_file);
        c->pressure_file = NULL;
}

static int config_copy(const struct trigger_config *from, struct trigger_config *to) {
        *to = *from;
        to->watch = NULL;
        to->n_watch = 0;
        to->hypervisors = (struct name_patterns) {};
        to->pressure_file = NULL;
        for (unsigned i = 0; i < from->n_watch; i++)
                if (watch_add(to, from->watch[i]) < 0)
                        goto oom;
        for (size_t i = 0; i < from->hypervisors.n; i++) {
                char **grown = realloc(to->hypervisors.globs, (i + 1) * sizeof *grown);
                if (!grown)
                        goto oom;
                to->hypervisors.globs = grown;
                if (!(grown[i] = strdup(from->hypervisors.globs[i])))
                        goto oom;
                to->hypervisors.n = i + 1;
        }
        if (!(to->pressure_file = strdup(from->pressure_file)))
                goto oom;
        return 0;
oom:
        trigger_config_done(to);
        return -ENOMEM;
}

static int trigger_key_handler(void *user, const char *file, unsigned line, const char *section, const char *name,
                               const char *value) {
        struct trigger_config *config = user;
        const struct trigger_key *key;
        char where[4200];

        snprintf(where, sizeof where, "%s:%u", file, line);
        if (strcmp(section, "Trigger") != 0) {
                if (section[0] == '\0')
                        log_warning("%s: key %s outside any section, ignoring", where, name);
                else
                        log_warning("%s: unknown section [%s], ignoring key %s", where, section, name);
                return 0;
        }
        key = key_by_name(name);
        if (!key) {
                log_warning("%s: unknown key %s in [Trigger], ignoring", where, name);
                return 0;
        }
        return trigger_config_set(config, key, value, where);
}

int trigger_config_load(struct trigger_config *c, const char *path, bool required) {
        struct trigger_config parsed;

        if (config_copy(c, &parsed) < 0)
                return log_error_errno(ENOMEM, "Out of memory");
        /* --config=/dev/null is how tests and benchmarks ask for no configuration. */
        if (ini_file_parse(path, (required ? INI_FILE_REQUIRED : 0) | INI_FILE_DEV_NULL_EMPTY, trigger_key_handler, &parsed,
                           NULL) < 0) {
                trigger_config_done(&parsed);
                return -EINVAL;
        }
        trigger_config_done(c);
        *c = parsed;
        return 0;
}
