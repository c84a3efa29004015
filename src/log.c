/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int max_level = LOG_INFO;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",  [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

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
                fprintf(stderr, "<%d>%s\n", priority, message);
        }

        errno = saved_errno;
        return -error;
}
