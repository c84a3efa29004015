/* SPDX-License-Identifier: Apache-2.0 */
#include "source-pressure.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "parse-util.h"

#define SOURCE "pressure"

struct source_pressure {
        struct trigger *trigger;
        struct pressure_spec spec;
        char *path;
        int fd;                 /* the trigger's, while the kernel's trigger is used */
        sd_event_source *io;    /* EPOLLPRI on fd */
        sd_event_source *timer; /* polling */
        uint64_t interval_usec;
        double threshold;
        bool above; /* at the last poll */
};

int pressure_parse_avg10(const char *text, bool full, double *ret) {
        const char *want = full ? "full " : "some ";
        for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
                const char *avg;
                char *end;
                double v;
                if (strncmp(line, want, 5) != 0)
                        continue;
                avg = strstr(line, "avg10=");
                const char *eol = strchr(line, '\n');
                if (!avg || (eol && avg > eol))
                        return -EINVAL;
                errno = 0;
                v = strtod(avg + 6, &end);
                if (errno != 0 || end == avg + 6 || !(v >= 0 && v <= 100) || (*end != ' ' && *end != '\n' && *end != '\0'))
                        return -EINVAL;
                *ret = v;
                return 0;
        }
        return -ENOENT;
}

static const char *kind(const struct source_pressure *s) {
        return s->spec.full ? "full" : "some";
}

static int on_trigger(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct source_pressure *s = userdata;
        (void) fd;

        if (revents & EPOLLERR) {
                /* The cgroup whose pressure file this is went away. */
                log_error("%s is gone; the memory-pressure source stops", s->path);
                sd_event_source_set_enabled(source, SD_EVENT_OFF);
                return 0;
        }
        trigger_event(s->trigger, SOURCE, "%s memory stall of %" PRIu64 "ms within %" PRIu64 "ms (%s)", kind(s),
                      s->spec.stall_usec / USEC_PER_MSEC, s->spec.window_usec / USEC_PER_MSEC, s->path);
        return 0;
}

static int on_poll(sd_event_source *source, uint64_t usec, void *userdata) {
        struct source_pressure *s = userdata;
        char text[512];
        double avg10;
        int r;

        {
                _cleanup_close_ int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
                if (n < 0) {
                        log_warning_errno(errno, "Cannot read %s: %m", s->path);
                        goto rearm;
                }
                text[n] = '\0';
        }
        r = pressure_parse_avg10(text, s->spec.full, &avg10);
        if (r < 0) {
                log_warning("%s: no \"%s avg10=\" line that reads as a percentage", s->path, kind(s));
                goto rearm;
        }
        /* Rising edge only: pressure that stays high is one event, not one per poll. */
        if (avg10 >= s->threshold && !s->above)
                trigger_event(s->trigger, SOURCE, "%s avg10=%.2f%% reached %.2f%% (%s)", kind(s), avg10, s->threshold,
                              s->path);
        s->above = avg10 >= s->threshold;
rearm:
        (void) sd_event_source_set_time(source, usec + s->interval_usec);
        (void) sd_event_source_set_enabled(source, SD_EVENT_ON);
        return 0;
}

/* Tries the kernel's trigger: only on procfs or cgroupfs, where writing the spec
 * asks for a trigger (elsewhere it would overwrite a file). Returns 0 when it is in
 * place, -errno when the kernel refused it. */
static int try_kernel_trigger(struct source_pressure *s, sd_event *event) {
        char line[64];
        struct statfs fs;
        int r, fd;

        fd = open(s->path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstatfs(fd, &fs) < 0 || (fs.f_type != PROC_SUPER_MAGIC && fs.f_type != CGROUP2_SUPER_MAGIC)) {
                close(fd);
                return -ENOTTY;
        }
        snprintf(line, sizeof line, "%s %" PRIu64 " %" PRIu64, kind(s), s->spec.stall_usec, s->spec.window_usec);
        if (write(fd, line, strlen(line) + 1) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        s->fd = fd;
        r = sd_event_add_io(event, &s->io, fd, EPOLLPRI, on_trigger, s);
        if (r < 0)
                return r;
        return 0;
}

int source_pressure_new(sd_event *event, struct trigger *trigger, const struct pressure_spec *spec, const char *path,
                        uint64_t interval_usec, struct source_pressure **ret) {
        struct source_pressure *s = calloc(1, sizeof *s);
        char interval[64];
        int r;

        if (!s)
                return log_error_errno(ENOMEM, "Out of memory");
        s->trigger = trigger;
        s->spec = *spec;
        s->fd = -EBADF;
        s->interval_usec = interval_usec;
        s->threshold = pressure_spec_threshold(spec);
        s->path = strdup(path);
        if (!s->path) {
                source_pressure_free(s);
                return log_error_errno(ENOMEM, "Out of memory");
        }

        r = try_kernel_trigger(s, event);
        if (r == 0) {
                log_info("Watching memory pressure with a kernel trigger on %s: %s %" PRIu64 " %" PRIu64, path, kind(s),
                         spec->stall_usec, spec->window_usec);
                *ret = s;
                return 0;
        }
        if (r == -ENOENT || ((r == -EACCES || r == -EPERM) && access(path, R_OK) < 0)) {
                r = log_error_errno(r, "Cannot open %s: %m", path);
                source_pressure_free(s);
                return r;
        }
        s->io = sd_event_source_disable_unref(s->io);
        if (s->fd >= 0)
                close(s->fd);
        s->fd = -EBADF;
        /* Said once: this is how the source works from now on. */
        if (r == -ENOTTY)
                log_notice("%s is not a kernel pressure file; polling its %s avg10 every %s against %.2f%% instead", path,
                           kind(s), format_duration_usec(interval, sizeof interval, interval_usec), s->threshold);
        else
                log_internal(LOG_NOTICE, r, "The kernel refuses a pressure trigger on %s (%m); polling its %s avg10 every %s against "
                                 "%.2f%% instead", path, kind(s), format_duration_usec(interval, sizeof interval, interval_usec),
                                 s->threshold);

        /* Coalesced with other wake-ups: a tenth of the interval late is fine. */
        r = sd_event_add_time_relative(event, &s->timer, CLOCK_MONOTONIC, interval_usec, interval_usec / 10, on_poll, s);
        if (r < 0) {
                source_pressure_free(s);
                return log_error_errno(r, "Cannot set up the pressure polling timer: %m");
        }
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ON);
        *ret = s;
        return 0;
}

struct source_pressure *source_pressure_free(struct source_pressure *s) {
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->io);
        sd_event_source_disable_unref(s->timer);
        if (s->fd >= 0)
                close(s->fd);
        free(s->path);
        free(s);
        return NULL;
}
