/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ini-file.h"
#include "log.h"
#include "parse-util.h"

struct parse_context {
        struct config *config;
        /* Where each pages bound was last set, to blame the right line. */
        char min_where[512], max_where[512];
};

struct config_key;
/* Stores value into field, or returns -EINVAL (out of bounds, not parsable) or -ENOMEM. */
typedef int (*config_parser)(const char *value, const struct config_key *key, void *field);

/* One configuration key: where it goes and what it accepts. Level keys are listed once
 * per level section. */
struct config_key {
        const char *section;
        const char *key;
        config_parser parse;
        size_t offset;     /* of the field in struct config */
        uint64_t min, max; /* bounds, in the field's unit (microseconds for durations) */
        const char *expected; /* what an error says is expected */
        enum { REMEMBER_NONE, REMEMBER_MIN_PAGES, REMEMBER_MAX_PAGES } remember;
};

static int parse_duration_field(const char *value, const struct config_key *key, void *field) {
        uint64_t usec;
        if (parse_duration_usec(value, &usec) < 0 || usec < key->min || usec > key->max)
                return -EINVAL;
        *(uint64_t *) field = usec;
        return 0;
}

/* A duration, or 0 for "never". */
static int parse_duration_or_never_field(const char *value, const struct config_key *key, void *field) {
        uint64_t usec;
        if (parse_duration_usec(value, &usec) < 0 || (usec != 0 && (usec < key->min || usec > key->max)))
                return -EINVAL;
        *(uint64_t *) field = usec;
        return 0;
}

static int parse_uint32_field(const char *value, const struct config_key *key, void *field) {
        uint64_t v;
        if (parse_uint64(value, &v) < 0 || v < key->min || v > key->max || v > UINT32_MAX)
                return -EINVAL;
        *(uint32_t *) field = (uint32_t) v;
        return 0;
}

static int parse_boolean_field(const char *value, const struct config_key *key, void *field) {
        return parse_boolean(value, (bool *) field) < 0 ? -EINVAL : 0;
}

static int parse_switch_field(const char *value, const struct config_key *key, void *field) {
        enum throttle_switch v = throttle_switch_from_string(value);
        if (v == _THROTTLE_SWITCH_MAX)
                return -EINVAL;
        *(enum throttle_switch *) field = v;
        return 0;
}

static int parse_absolute_path_field(const char *value, const struct config_key *key, void *field) {
        return parse_absolute_path(value, (char **) field);
}

#define KEY(section_, key_, parse_, field, min_, max_, expected_, ...)                                              \
        {                                                                                                          \
                .section = section_, .key = key_, .parse = parse_, .offset = offsetof(struct config, field),      \
                .min = min_, .max = max_, .expected = expected_, __VA_ARGS__                                       \
        }

#define LEVEL_KEYS(name, state)                                                                                    \
        KEY(name, "DurationSec", parse_duration_field, throttle.level[state].duration_usec, USEC_PER_MSEC,        \
            24 * USEC_PER_HOUR, "a duration between 1ms and 24h such as 500ms, 30s, 2min (a bare number is seconds)"), \
        KEY(name, "PagesPerScanFactor", parse_uint32_field, throttle.level[state].pages_per_scan_factor, 1,        \
            UINT32_MAX, "a whole number of at least 1"),                                                           \
        KEY(name, "SleepMillisecs", parse_uint32_field, throttle.level[state].sleep_millisecs, 1, 60000,           \
            "a whole number of milliseconds from 1 to 60000"),                                                    \
        KEY(name, "FullScanSec", parse_duration_field, adaptive_config.level[state].full_scan_usec,                \
            10 * USEC_PER_MSEC, 24 * USEC_PER_HOUR, "a duration between 10ms and 24h such as 1s or 2min"),         \
        KEY(name, "MaxCpuPercent", parse_uint32_field, adaptive_config.level[state].max_cpu_percent, 1, 100,       \
            "a whole percentage of one CPU from 1 to 100"),                                                       \
        KEY(name, "SmartScan", parse_switch_field, throttle.level[state].smart_scan, 0, 0,                     \
            "yes, no or host (the host's own smart_scan)"),                                                       \
        KEY(name, "UseZeroPages", parse_switch_field, throttle.level[state].use_zero_pages, 0, 0,                  \
            "yes, no or host (the host's own use_zero_pages)")

static const struct config_key config_keys[] = {
        KEY("Throttler", "KsmDirectory", parse_absolute_path_field, ksm_directory, 0, 0, "an absolute path"),
        KEY("Throttler", "Adaptive", parse_boolean_field, adaptive, 0, 0, "yes or no"),
        KEY("Throttler", "ConvergedPercent", parse_uint32_field, adaptive_config.converged_percent, 1, 100,
            "a whole percentage from 1 to 100"),
        KEY("Throttler", "ConvergedScans", parse_uint32_field, adaptive_config.converged_scans, 1, 100,
            "a whole number of full scans from 1 to 100"),
        /* At most 100 s: ksmctl waits 120 s for the daemon's verdict. */
        KEY("Throttler", "PolkitTimeoutSec", parse_duration_field, polkit_timeout_usec, USEC_PER_MSEC, 100 * USEC_PER_SEC,
            "a duration between 1ms and 100s such as 25s"),
        KEY("Throttler", "IdleExitSec", parse_duration_or_never_field, idle_exit_usec, 100 * USEC_PER_MSEC,
            24 * USEC_PER_HOUR, "0 (never) or a duration between 100ms and 24h such as 5min"),
        KEY("Throttler", "MinPagesToScan", parse_uint32_field, throttle.min_pages_to_scan, 1, UINT32_MAX,
            "a whole number of at least 1", .remember = REMEMBER_MIN_PAGES),
        KEY("Throttler", "MaxPagesToScan", parse_uint32_field, throttle.max_pages_to_scan, 1, UINT32_MAX,
            "a whole number of at least 1", .remember = REMEMBER_MAX_PAGES),
        LEVEL_KEYS("Aggressive", THROTTLE_AGGRESSIVE),
        LEVEL_KEYS("Standard", THROTTLE_STANDARD),
        LEVEL_KEYS("Slow", THROTTLE_SLOW),
};

static int config_key_handler(void *user, const char *file, unsigned line, const char *section, const char *key,
                              const char *value) {
        struct parse_context *ctx = user;
        bool section_known = false;

        for (size_t i = 0; i < sizeof config_keys / sizeof config_keys[0]; i++) {
                const struct config_key *k = &config_keys[i];
                int r;

                if (strcmp(section, k->section) != 0)
                        continue;
                section_known = true;
                if (strcmp(key, k->key) != 0)
                        continue;
                r = k->parse(value, k, (char *) ctx->config + k->offset);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0) {
                        log_error("%s:%u: invalid value \"%s\" for %s in [%s]: expected %s", file, line, value, key,
                                  section, k->expected);
                        return -EINVAL;
                }
                if (k->remember == REMEMBER_MIN_PAGES)
                        snprintf(ctx->min_where, sizeof ctx->min_where, "%s:%u", file, line);
                else if (k->remember == REMEMBER_MAX_PAGES)
                        snprintf(ctx->max_where, sizeof ctx->max_where, "%s:%u", file, line);
                return 0;
        }

        if (section_known)
                log_warning("%s:%u: unknown key %s in [%s], ignoring", file, line, key, section);
        else if (section[0] == '\0')
                log_warning("%s:%u: key %s outside any section, ignoring", file, line, key);
        else
                log_warning("%s:%u: unknown section [%s], ignoring key %s", file, line, section, key);
        return 0;
}

int config_load(struct config *c, const char *path, bool required) {
        struct config parsed = *c;
        struct parse_context ctx = { .config = &parsed };
        int r;

        parsed.sources = NULL;
        parsed.ksm_directory = strdup(c->ksm_directory);
        if (!parsed.ksm_directory)
                return log_oom();

        r = ini_file_parse(path, required ? INI_FILE_REQUIRED : 0, config_key_handler, &ctx, &parsed.sources);

        if (r == 0 && parsed.throttle.min_pages_to_scan > parsed.throttle.max_pages_to_scan) {
                log_error("%s: MinPagesToScan=%u is greater than MaxPagesToScan=%u (%s)",
                          ctx.min_where[0] ? ctx.min_where : "built-in default", parsed.throttle.min_pages_to_scan,
                          parsed.throttle.max_pages_to_scan, ctx.max_where[0] ? ctx.max_where : "built-in default");
                r = -EINVAL;
        }

        if (r < 0) {
                config_done(&parsed);
                return -EINVAL;
        }

        free(c->ksm_directory);
        free(c->sources);
        *c = parsed;
        return 0;
}

int config_init(struct config *c) {
        *c = (struct config) {};
        c->ksm_directory = strdup(KSM_DEFAULT_DIRECTORY);
        if (!c->ksm_directory)
                return -ENOMEM;
        c->polkit_timeout_usec = 25 * USEC_PER_SEC; /* sd-bus's own default method call timeout */
        throttle_config_default(&c->throttle);
        c->adaptive = true;
        adaptive_config_default(&c->adaptive_config);
        return 0;
}

void config_done(struct config *c) {
        free(c->ksm_directory);
        c->ksm_directory = NULL;
        free(c->sources);
        c->sources = NULL;
}
