/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <sys/stat.h>
#include <unistd.h>

static int max_level = LOG_INFO;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",  [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

/* systemd's rule (sd_journal_stream_fd(3), systemd.exec(5)): stderr is the journal when
 * JOURNAL_STREAM names its device and inode; "<N>" prefixes are for the journal alone, a
 * terminal or a file gets plain lines. Checked once, at the first line: the daemon never
 * moves its stderr. */
static bool stderr_is_journal(void) {
        static int cached = -1;
        const char *stream;
        unsigned long long dev, ino;
        struct stat st;
        char end;

        if (cached >= 0)
                return cached;
        stream = getenv("JOURNAL_STREAM");
        cached = stream && sscanf(stream, "%llu:%llu%c", &dev, &ino, &end) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
                 (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
        return cached;
}

int log_level_from_string(const char *s) {
        for (int i = 0; i <= LOG_DEBUG; i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return i;
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_internal(int priority, int error, const char *format, ...) {
        int saved_errno = errno;
        if (error < 0)
                error = -error;

        if (priority <= max_level) {
                char message[2048];
                va_list ap;

                /* %m in format refers to the error passed in, as in systemd. */
                errno = error;
                va_start(ap, format);
                vsnprintf(message, sizeof message, format, ap);
                va_end(ap);
                if (stderr_is_journal())
                        fprintf(stderr, "<%d>%s\n", priority, message);
                else
                        fprintf(stderr, "%s\n", message);
        }

        errno = saved_errno;
        return -error;
}

int log_getopt_error(char *const argv[]) {
        if (optopt)
                log_error("Option -%c or its argument is not valid; see --help", optopt);
        else
                log_error("Option %s is unknown or lacks its argument; see --help", argv[optind - 1]);
        return -EX_USAGE;
}

int log_unexpected_arguments(int argc, char *const argv[]) {
        if (optind >= argc)
                return 0;
        log_error("Unexpected argument \"%s\"; see --help", argv[optind]);
        return -EX_USAGE;
}

bool log_ratelimit_below(struct log_ratelimit *rl, uint64_t now_usec, unsigned *ret_dropped) {
        *ret_dropped = 0;
        if (!rl->started || now_usec < rl->begin_usec || now_usec - rl->begin_usec >= rl->interval_usec) {
                *ret_dropped = rl->dropped;
                rl->started = true;
                rl->begin_usec = now_usec;
                rl->shown = rl->dropped = 0;
        }
        if (rl->shown < rl->burst) {
                rl->shown++;
                return true;
        }
        rl->dropped++;
        return false;
}

bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_usec, const char *what) {
        unsigned dropped;

        if (!log_ratelimit_below(rl, now_usec, &dropped)) {
                if (rl->dropped == 1)
                        log_notice("More than %u %s within %llu s: not logging further ones for now", rl->burst, what,
                                   (unsigned long long) (rl->interval_usec / 1000000));
                return false;
        }
        if (dropped > 0)
                log_notice("%u %s were not logged", dropped, what);
        return true;
}
