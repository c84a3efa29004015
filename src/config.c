/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "parse-util.h"

struct parse_context {
        struct config *config;
        const char *file;
        unsigned line;           /* line the handler is called for */
        unsigned lines_complete; /* newlines read so far */
        FILE *stream;
        int read_error;          /* errno of a failed read of stream, 0 if none */
        char *line_buffer;
        size_t line_buffer_size;
        unsigned n_errors;
        char *sources;           /* the files read so far, ", "-separated */
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

static int parse_absolute_path_field(const char *value, const struct config_key *key, void *field) {
        char *copy;
        if (value[0] != '/')
                return -EINVAL;
        copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*(char **) field);
        *(char **) field = copy;
        return 0;
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
            "a whole percentage of one CPU from 1 to 100")

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

static int config_ini_handler(void *user, const char *section, const char *key, const char *value) {
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
                if (r == -ENOMEM) {
                        log_oom();
                        ctx->n_errors++;
                } else if (r < 0) {
                        log_error("%s:%u: invalid value \"%s\" for %s in [%s]: expected %s", ctx->file, ctx->line, value, key,
                                  section, k->expected);
                        ctx->n_errors++;
                } else if (k->remember == REMEMBER_MIN_PAGES)
                        snprintf(ctx->min_where, sizeof ctx->min_where, "%s:%u", ctx->file, ctx->line);
                else if (k->remember == REMEMBER_MAX_PAGES)
                        snprintf(ctx->max_where, sizeof ctx->max_where, "%s:%u", ctx->file, ctx->line);
                return 1;
        }

        if (section_known)
                log_warning("%s:%u: unknown key %s in [%s], ignoring", ctx->file, ctx->line, key, section);
        else if (section[0] == '\0')
                log_warning("%s:%u: key %s outside any section, ignoring", ctx->file, ctx->line, key);
        else
                log_warning("%s:%u: unknown section [%s], ignoring key %s", ctx->file, ctx->line, section, key);
        return 1;
}

/* Reads one whole line, however long, into a growing buffer. Returns its length or -1 at EOF. */
static ssize_t read_whole_line(struct parse_context *ctx) {
        ssize_t len;

        errno = 0;
        len = getline(&ctx->line_buffer, &ctx->line_buffer_size, ctx->stream);
        if (len < 0 && ferror(ctx->stream))
                ctx->read_error = errno ?: EIO; /* reported once the stream ends, with the file */
        return len;
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

/* Appends a file read to ctx->sources, for messages such as the reload's. */
static void note_source(struct parse_context *ctx, const char *path) {
        char *joined = NULL;

        if (asprintf(&joined, "%s%s%s", ctx->sources ?: "", ctx->sources ? ", " : "", path) < 0)
                return; /* only a message loses a name */
        free(ctx->sources);
        ctx->sources = joined;
}

static int config_parse_file(struct parse_context *ctx, const char *path, bool required) {
        _cleanup_(fclosep) FILE *f = NULL;
        struct stat st;
        int fd, r;

        /* O_NONBLOCK: a FIFO in place of the file must not hang start-up or a reload. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd >= 0 && fstat(fd, &st) < 0) {
                int saved = errno;
                close(fd);
                fd = -1;
                errno = saved;
        } else if (fd >= 0 && !S_ISREG(st.st_mode)) {
                close(fd);
                fd = -1;
                errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        }
        if (fd >= 0) {
                f = fdopen(fd, "re");
                if (!f)
                        close(fd);
        }
        if (!f) {
                if (errno == ENOENT && !required)
                        return 0;
                if (errno == EINVAL)
                        log_error("Cannot read configuration file %s: not a regular file", path);
                else
                        log_error_errno(errno, "Cannot read configuration file %s: %m", path);
                ctx->n_errors++;
                return -errno;
        }

        ctx->file = path;
        ctx->stream = f;
        ctx->read_error = 0;
        ctx->line = ctx->lines_complete = 0;
        unsigned errors_before = ctx->n_errors;
        r = ini_parse_stream(config_ini_reader, ctx, config_ini_handler, ctx);
        if (ctx->read_error != 0) {
                /* A read that failed part-way is not the end of the file: nothing of it counts. */
                log_error_errno(ctx->read_error, "Cannot read configuration file %s (after line %u): %m", path,
                                ctx->lines_complete);
                ctx->n_errors++;
                return -ctx->read_error;
        }
        if (r > 0 && ctx->n_errors == errors_before) {
                /* Something inih rejected that the reader let through (e.g. "[Section" without "]"). */
                log_error("%s:%d: syntax error: expected [Section] or Key=Value", path, r);
                ctx->n_errors++;
        } else if (r < 0) {
                log_error("%s: cannot parse: out of memory", path);
                ctx->n_errors++;
        }
        note_source(ctx, path);
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

        parsed.sources = NULL;
        parsed.ksm_directory = strdup(c->ksm_directory);
        if (!parsed.ksm_directory)
                return log_oom();

        config_parse_file(&ctx, path, required);

        if (asprintf(&dropin_dir, "%s.d", path) < 0) {
                free(ctx.sources);
                config_done(&parsed);
                return log_oom();
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
        parsed.sources = ctx.sources;

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
