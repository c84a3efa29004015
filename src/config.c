/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fd-util.h"
#include "log.h"
#include "parse-util.h"

struct parse_context {
        struct config *config;
        const char *file;
        unsigned line;           /* line the handler is called for */
        unsigned lines_complete; /* newlines read so far */
        FILE *stream;
        char *line_buffer;
        size_t line_buffer_size;
        unsigned n_errors;
        /* Where each pages bound was last set, to blame the right line. */
        char min_where[512], max_where[512];
};

static void context_where(const struct parse_context *ctx, char *buf, size_t size) {
        snprintf(buf, size, "%s:%u", ctx->file, ctx->line);
}

static int invalid_value(struct parse_context *ctx, const char *section, const char *key, const char *value,
                         const char *expected) {
        log_error("%s:%u: invalid value \"%s\" for %s in [%s]: expected %s", ctx->file, ctx->line, value, key, section,
                  expected);
        ctx->n_errors++;
        return 0;
}

static int parse_uint32_in_range(const char *value, uint32_t min, uint32_t max, uint32_t *ret) {
        uint64_t v;
        int r = parse_uint64(value, &v);
        if (r < 0)
                return r;
        if (v < min || v > max)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

static int handle_level_key(struct parse_context *ctx, struct throttle_level *level, struct adaptive_level *adaptive,
                            const char *section, const char *key, const char *value) {
        if (strcmp(key, "DurationSec") == 0) {
                uint64_t usec;
                if (parse_duration_usec(value, &usec) < 0 || usec < USEC_PER_MSEC || usec > 24 * USEC_PER_HOUR)
                        return invalid_value(ctx, section, key, value,
                                             "a duration between 1ms and 24h such as 500ms, 30s, 2min (a bare number is seconds)");
                level->duration_usec = usec;
        } else if (strcmp(key, "PagesPerScanFactor") == 0) {
                if (parse_uint32_in_range(value, 1, UINT32_MAX, &level->pages_per_scan_factor) < 0)
                        return invalid_value(ctx, section, key, value, "a whole number of at least 1");
        } else if (strcmp(key, "SleepMillisecs") == 0) {
                if (parse_uint32_in_range(value, 1, 60000, &level->sleep_millisecs) < 0)
                        return invalid_value(ctx, section, key, value, "a whole number of milliseconds from 1 to 60000");
        } else if (strcmp(key, "FullScanSec") == 0) {
                uint64_t usec;
                if (parse_duration_usec(value, &usec) < 0 || usec < 10 * USEC_PER_MSEC || usec > 24 * USEC_PER_HOUR)
                        return invalid_value(ctx, section, key, value, "a duration between 10ms and 24h such as 1s or 2min");
                adaptive->full_scan_usec = usec;
        } else if (strcmp(key, "MaxCpuPercent") == 0) {
                if (parse_uint32_in_range(value, 1, 100, &adaptive->max_cpu_percent) < 0)
                        return invalid_value(ctx, section, key, value, "a whole percentage of one CPU from 1 to 100");
        } else
                log_warning("%s:%u: unknown key %s in [%s], ignoring", ctx->file, ctx->line, key, section);
        return 1;
}

static int handle_throttler_key(struct parse_context *ctx, const char *section, const char *key, const char *value) {
        struct config *c = ctx->config;

        if (strcmp(key, "KsmDirectory") == 0) {
                char *copy;
                if (value[0] != '/')
                        return invalid_value(ctx, section, key, value, "an absolute path");
                copy = strdup(value);
                if (!copy)
                        return log_error("Out of memory"), 0;
                free(c->ksm_directory);
                c->ksm_directory = copy;
        } else if (strcmp(key, "Adaptive") == 0) {
                if (parse_boolean(value, &c->adaptive) < 0)
                        return invalid_value(ctx, section, key, value, "yes or no");
        } else if (strcmp(key, "ConvergedPercent") == 0) {
                if (parse_uint32_in_range(value, 1, 100, &c->adaptive_config.converged_percent) < 0)
                        return invalid_value(ctx, section, key, value, "a whole percentage from 1 to 100");
        } else if (strcmp(key, "ConvergedScans") == 0) {
                if (parse_uint32_in_range(value, 1, 100, &c->adaptive_config.converged_scans) < 0)
                        return invalid_value(ctx, section, key, value, "a whole number of full scans from 1 to 100");
        } else if (strcmp(key, "PolkitTimeoutSec") == 0) {
                uint64_t usec;
                /* At most 100 s: ksmctl waits 120 s for the daemon's verdict. */
                if (parse_duration_usec(value, &usec) < 0 || usec < USEC_PER_MSEC || usec > 100 * USEC_PER_SEC)
                        return invalid_value(ctx, section, key, value, "a duration between 1ms and 100s such as 25s");
                c->polkit_timeout_usec = usec;
        } else if (strcmp(key, "MinPagesToScan") == 0) {
                if (parse_uint32_in_range(value, 1, UINT32_MAX, &c->throttle.min_pages_to_scan) < 0)
                        return invalid_value(ctx, section, key, value, "a whole number of at least 1");
                context_where(ctx, ctx->min_where, sizeof ctx->min_where);
        } else if (strcmp(key, "MaxPagesToScan") == 0) {
                if (parse_uint32_in_range(value, 1, UINT32_MAX, &c->throttle.max_pages_to_scan) < 0)
                        return invalid_value(ctx, section, key, value, "a whole number of at least 1");
                context_where(ctx, ctx->max_where, sizeof ctx->max_where);
        } else
                log_warning("%s:%u: unknown key %s in [%s], ignoring", ctx->file, ctx->line, key, section);
        return 1;
}

static int config_ini_handler(void *user, const char *section, const char *key, const char *value) {
        struct parse_context *ctx = user;
        static const struct {
                const char *name;
                enum throttle_state state;
        } level_sections[] = {
                { "Aggressive", THROTTLE_AGGRESSIVE },
                { "Standard", THROTTLE_STANDARD },
                { "Slow", THROTTLE_SLOW },
        };

        if (strcmp(section, "Throttler") == 0)
                return handle_throttler_key(ctx, section, key, value);
        for (size_t i = 0; i < sizeof level_sections / sizeof level_sections[0]; i++)
                if (strcmp(section, level_sections[i].name) == 0)
                        return handle_level_key(ctx, &ctx->config->throttle.level[level_sections[i].state],
                                                &ctx->config->adaptive_config.level[level_sections[i].state], section,
                                                key, value);

        if (section[0] == '\0')
                log_warning("%s:%u: key %s outside any section, ignoring", ctx->file, ctx->line, key);
        else
                log_warning("%s:%u: unknown section [%s], ignoring key %s", ctx->file, ctx->line, section, key);
        return 1;
}

/* Reads one whole line, however long, into a growing buffer. Returns its length or -1 at EOF. */
static ssize_t read_whole_line(struct parse_context *ctx) {
        return getline(&ctx->line_buffer, &ctx->line_buffer_size, ctx->stream);
}

/* inih reads lines through this, so that the handler knows the line it is called for,
 * and so that lines inih would cut (it reads at most INI_MAX_LINE bytes) or call
 * malformed are reported here with their real file:line. Such lines reach inih blank. */
static char *config_ini_reader(char *str, int num, void *user) {
        struct parse_context *ctx = user;
        ssize_t len = read_whole_line(ctx);
        const char *text;

        if (len < 0)
                return NULL;
        ctx->line = ++ctx->lines_complete;
        text = ctx->line_buffer + strspn(ctx->line_buffer, " \t\r\n");

        if (*text == '\0' || *text == ';' || *text == '#') {
                /* Blank or a comment, however long: nothing for inih to do. */
                snprintf(str, (size_t) num, "\n");
                return str;
        }
        if (len > num - 1) {
                log_error("%s:%u: line too long (at most %d characters)", ctx->file, ctx->line, num - 2);
                ctx->n_errors++;
                snprintf(str, (size_t) num, "\n");
                return str;
        }
        if (*text == '[' ? !strchr(text, ']') : !strchr(text, '=')) {
                log_error("%s:%u: syntax error: expected [Section] or Key=Value", ctx->file, ctx->line);
                ctx->n_errors++;
                snprintf(str, (size_t) num, "\n");
                return str;
        }
        memcpy(str, ctx->line_buffer, (size_t) len + 1);
        return str;
}

static int config_parse_file(struct parse_context *ctx, const char *path, bool required) {
        _cleanup_(fclosep) FILE *f = NULL;
        int r;

        f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT && !required)
                        return 0;
                log_error_errno(errno, "Cannot read configuration file %s: %m", path);
                ctx->n_errors++;
                return -errno;
        }

        ctx->file = path;
        ctx->stream = f;
        ctx->line = ctx->lines_complete = 0;
        unsigned errors_before = ctx->n_errors;
        r = ini_parse_stream(config_ini_reader, ctx, config_ini_handler, ctx);
        if (r > 0 && ctx->n_errors == errors_before) {
                /* Something inih rejected that the reader let through (e.g. "[Section" without "]"). */
                log_error("%s:%d: syntax error: expected [Section] or Key=Value", path, r);
                ctx->n_errors++;
        } else if (r < 0) {
                log_error("%s: cannot parse: out of memory", path);
                ctx->n_errors++;
        }
        return 0;
}

static int is_conf_file(const struct dirent *de) {
        size_t len = strlen(de->d_name);
        return de->d_name[0] != '.' && len > 5 && strcmp(de->d_name + len - 5, ".conf") == 0;
}

int config_load(struct config *c, const char *path, bool required) {
        struct config parsed = *c;
        struct parse_context ctx = { .config = &parsed };
        _cleanup_free_ char *dropin_dir = NULL;
        struct dirent **entries = NULL;
        int n;

        parsed.ksm_directory = strdup(c->ksm_directory);
        if (!parsed.ksm_directory)
                return log_error_errno(ENOMEM, "Out of memory");

        config_parse_file(&ctx, path, required);

        if (asprintf(&dropin_dir, "%s.d", path) < 0) {
                config_done(&parsed);
                return log_error_errno(ENOMEM, "Out of memory");
        }
        n = scandir(dropin_dir, &entries, is_conf_file, alphasort);
        if (n < 0 && errno != ENOENT && errno != ENOTDIR) {
                log_error_errno(errno, "Cannot read drop-in directory %s: %m", dropin_dir);
                ctx.n_errors++;
        }
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *dropin = NULL;
                if (asprintf(&dropin, "%s/%s", dropin_dir, entries[i]->d_name) >= 0)
                        config_parse_file(&ctx, dropin, true);
                free(entries[i]);
        }
        free(entries);
        free(ctx.line_buffer);

        if (ctx.n_errors == 0 && parsed.throttle.min_pages_to_scan > parsed.throttle.max_pages_to_scan) {
                log_error("%s: MinPagesToScan=%u is greater than MaxPagesToScan=%u (%s)",
                          ctx.min_where[0] ? ctx.min_where : "built-in default", parsed.throttle.min_pages_to_scan,
                          parsed.throttle.max_pages_to_scan, ctx.max_where[0] ? ctx.max_where : "built-in default");
                ctx.n_errors++;
        }

        if (ctx.n_errors > 0) {
                config_done(&parsed);
                return -EINVAL;
        }

        free(c->ksm_directory);
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
}
