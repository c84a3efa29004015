/* SPDX-License-Identifier: Apache-2.0 */
#include "ini-file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"

struct ini_context {
        ini_file_handler handler;
        void *userdata;
        const char *file;
        unsigned line;           /* line the handler is called for */
        unsigned lines_complete; /* newlines read so far */
        FILE *stream;
        int read_error;          /* errno of a failed read of stream, 0 if none */
        char *line_buffer;
        size_t line_buffer_size;
        unsigned n_errors;
        char *sources; /* the files read so far, ", "-separated */
};

static int key_value_handler(void *user, const char *section, const char *key, const char *value) {
        struct ini_context *ctx = user;
        if (ctx->handler(ctx->userdata, ctx->file, ctx->line, section, key, value) < 0)
                ctx->n_errors++;
        return 1;
}

/* Reads one whole line, however long, into a growing buffer. Returns its length or -1 at EOF. */
static ssize_t read_whole_line(struct ini_context *ctx) {
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
static char *line_reader(char *str, int num, void *user) {
        struct ini_context *ctx = user;
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
static void note_source(struct ini_context *ctx, const char *path) {
        char *joined = NULL;

        if (asprintf(&joined, "%s%s%s", ctx->sources ?: "", ctx->sources ? ", " : "", path) < 0)
                return; /* only a message loses a name */
        free(ctx->sources);
        ctx->sources = joined;
}

/* Opens a regular file (or /dev/null, when allowed) for reading, or fails with -errno
 * (-EISDIR for a directory, -EINVAL for anything else not a regular file). */
static int open_regular_file(const char *path, bool allow_dev_null, FILE **ret) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        FILE *f;

        /* O_NONBLOCK: a FIFO in place of the file must not hang start-up or a reload. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) && !(allow_dev_null && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        f = fdopen(fd, "re");
        if (!f)
                return -errno;
        fd = -EBADF; /* now f's */
        *ret = f;
        return 0;
}

static void parse_one_file(struct ini_context *ctx, const char *path, bool required, bool allow_dev_null) {
        _cleanup_(fclosep) FILE *f = NULL;
        unsigned errors_before = ctx->n_errors;
        int r;

        r = open_regular_file(path, allow_dev_null, &f);
        if (r < 0) {
                if (r == -ENOENT && !required)
                        return;
                if (r == -EINVAL)
                        log_error("Cannot read configuration file %s: not a regular file", path);
                else
                        log_error_errno(r, "Cannot read configuration file %s: %m", path);
                ctx->n_errors++;
                return;
        }

        ctx->file = path;
        ctx->stream = f;
        ctx->read_error = 0;
        ctx->line = ctx->lines_complete = 0;
        r = ini_parse_stream(line_reader, ctx, key_value_handler, ctx);
        if (ctx->read_error != 0) {
                /* A read that failed part-way is not the end of the file: nothing of it counts,
                 * and the error makes the caller keep its old configuration. */
                log_error_errno(ctx->read_error, "Cannot read configuration file %s (after line %u): %m", path,
                                ctx->lines_complete);
                ctx->n_errors++;
                return;
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
}

static int is_conf_file(const struct dirent *de) {
        size_t len = strlen(de->d_name);
        return de->d_name[0] != '.' && len > 5 && strcmp(de->d_name + len - 5, ".conf") == 0;
}

int ini_file_parse(const char *path, enum ini_file_flags flags, ini_file_handler handler, void *userdata, char **ret_sources) {
        struct ini_context ctx = { .handler = handler, .userdata = userdata };
        _cleanup_free_ char *dropin_dir = NULL;
        struct dirent **entries = NULL;
        int n;

        parse_one_file(&ctx, path, flags & INI_FILE_REQUIRED, flags & INI_FILE_DEV_NULL_EMPTY);

        if (asprintf(&dropin_dir, "%s.d", path) < 0) {
                dropin_dir = NULL;
                log_oom();
                n = 0;
                ctx.n_errors++;
        } else {
                n = scandir(dropin_dir, &entries, is_conf_file, alphasort);
                if (n < 0 && errno != ENOENT && errno != ENOTDIR) {
                        log_error_errno(errno, "Cannot read drop-in directory %s: %m", dropin_dir);
                        ctx.n_errors++;
                }
        }
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *dropin = NULL;
                if (asprintf(&dropin, "%s/%s", dropin_dir, entries[i]->d_name) >= 0)
                        parse_one_file(&ctx, dropin, true, false);
                else {
                        dropin = NULL;
                        log_oom();
                        ctx.n_errors++;
                }
                free(entries[i]);
        }
        free(entries);
        free(ctx.line_buffer);

        if (ret_sources)
                *ret_sources = ctx.sources;
        else
                free(ctx.sources);
        return ctx.n_errors > 0 ? -EINVAL : 0;
}
