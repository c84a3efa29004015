/* SPDX-License-Identifier: Apache-2.0 */
#include "source-directory.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/inotify.h>

#include "fd-util.h"
#include "log.h"

#define SOURCE "directory"
/* One mask for every watch: two configured directories may share a parent, and
 * inotify keeps one mask per inode. */
#define WATCH_MASK (IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct watched_dir {
        char *path;     /* as configured */
        char *watching; /* path itself, or its nearest existing parent */
        int wd;         /* -1: nothing watched (an error was logged) */
};

struct source_directory {
        struct trigger *trigger;
        int fd;
        sd_event_source *io;
        struct watched_dir *dirs;
        unsigned n_dirs;
};

static bool watching_target(const struct watched_dir *d) {
        return d->wd >= 0 && d->watching && strcmp(d->watching, d->path) == 0;
}

/* Removes the watch unless another configured directory still uses it. */
static void release_wd(struct source_directory *s, int wd) {
        for (unsigned i = 0; i < s->n_dirs; i++)
                if (s->dirs[i].wd == wd)
                        return;
        (void) inotify_rm_watch(s->fd, wd);
}

/* Watches the directory, or else its nearest existing parent. */
static void arm(struct source_directory *s, struct watched_dir *d) {
        char path[PATH_MAX];
        int old = d->wd;

        d->wd = -1;
        snprintf(path, sizeof path, "%s", d->path);
        for (unsigned retries = 0;;) {
                int wd = inotify_add_watch(s->fd, path, WATCH_MASK);
                if (wd >= 0 && strcmp(path, d->path) != 0 && retries < 16) {
                        /* The next component may have been created after it was found missing
                         * and before this watch was in place, unseen by it: look again. */
                        char next[PATH_MAX];
                        size_t len = strcmp(path, "/") == 0 ? 0 : strlen(path);
                        const char *end = strchr(d->path + len + 1, '/');
                        snprintf(next, sizeof next, "%.*s", (int) (end ? (size_t) (end - d->path) : strlen(d->path)),
                                 d->path);
                        if (access(next, F_OK) == 0) {
                                release_wd(s, wd);
                                retries++;
                                snprintf(path, sizeof path, "%s", d->path);
                                continue;
                        }
                }
                if (wd >= 0) {
                        char *copy = strdup(path);
                        if (!copy) {
                                log_error("Out of memory");
                                break;
                        }
                        free(d->watching);
                        d->watching = copy;
                        d->wd = wd;
                        break;
                }
                if (errno != ENOENT && errno != ENOTDIR) {
                        log_error_errno(errno, "Cannot watch %s for %s: %m; not watching %s", path, d->path, d->path);
                        break;
                }
                char *slash = strrchr(path, '/');
                if (!slash || slash == path) {
                        if (strcmp(path, "/") == 0)
                                break;
                        snprintf(path, sizeof path, "/");
                } else
                        *slash = '\0';
        }
        if (old >= 0 && old != d->wd)
                release_wd(s, old);
}

/* The directory appeared (created, moved in, or recreated): what is in it already
 * came with it, and may be a sandbox created before the watch was in place. */
static void report_existing(struct source_directory *s, const struct watched_dir *d) {
        _cleanup_(closedirp) DIR *dir = opendir(d->path);
        char first[NAME_MAX * 4 + 8] = "", path[256];
        unsigned n = 0;
        struct dirent *de;

        log_info("%s appeared, watching it for new sandboxes", text_escape(d->path, path, sizeof path));
        if (!dir)
                return;
        while ((de = readdir(dir))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (n++ == 0)
                        text_escape(de->d_name, first, sizeof first);
        }
        if (n == 1)
                trigger_event(s->trigger, SOURCE, "new sandbox %s/%s (there when the directory appeared)", path, first);
        else if (n > 1)
                trigger_event(s->trigger, SOURCE, "%u entries in %s when it appeared, %s among them", n, path, first);
}

static void rearm(struct source_directory *s, struct watched_dir *d) {
        bool before = watching_target(d);
        arm(s, d);
        if (watching_target(d) && !before)
                report_existing(s, d);
        else if (!watching_target(d) && d->wd >= 0) {
                char path[256], parent[256];
                log_info("%s does not exist, waiting for it in %s", text_escape(d->path, path, sizeof path),
                         text_escape(d->watching, parent, sizeof parent));
        }
}

/* Is name the next component of d->path below what d watches? */
static bool leads_to_target(const struct watched_dir *d, const char *name) {
        size_t len = strlen(d->watching);
        const char *rest = d->path + (strcmp(d->watching, "/") == 0 ? 0 : len);
        size_t name_len = strlen(name);

        if (strncmp(d->path, d->watching, len) != 0 || rest[0] != '/')
                return false;
        rest++;
        return strncmp(rest, name, name_len) == 0 && (rest[name_len] == '/' || rest[name_len] == '\0');
}

static void handle_event(struct source_directory *s, const struct inotify_event *ev) {
        char path[256], name[NAME_MAX * 4 + 8];

        if (ev->mask & IN_Q_OVERFLOW) {
                log_warning("inotify queue overflowed, some directory events were lost");
                for (unsigned i = 0; i < s->n_dirs; i++)
                        rearm(s, &s->dirs[i]);
                trigger_event(s->trigger, SOURCE, "events lost (inotify queue overflow), sandboxes may have started");
                return;
        }
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
                /* Whatever we watched there is gone or elsewhere: every directory that
                 * relied on it looks again. */
                bool any = false;
                for (unsigned i = 0; i < s->n_dirs; i++)
                        if (s->dirs[i].wd == ev->wd) {
                                s->dirs[i].wd = -1;
                                any = true;
                        }
                if (!any)
                        return;
                (void) inotify_rm_watch(s->fd, ev->wd);
                for (unsigned i = 0; i < s->n_dirs; i++)
                        if (s->dirs[i].wd == -1 && s->dirs[i].watching) {
                                log_debug("%s: %s went away", text_escape(s->dirs[i].path, path, sizeof path),
                                          s->dirs[i].watching);
                                free(s->dirs[i].watching);
                                s->dirs[i].watching = NULL;
                                rearm(s, &s->dirs[i]);
                        }
                return;
        }
        if (!(ev->mask & (IN_CREATE | IN_MOVED_TO)) || ev->len == 0)
                return;
        for (unsigned i = 0; i < s->n_dirs; i++) {
                struct watched_dir *d = &s->dirs[i];
                if (d->wd != ev->wd)
                        continue;
                if (watching_target(d))
                        trigger_event(s->trigger, SOURCE, "new sandbox %s/%s%s", text_escape(d->path, path, sizeof path),
                                      text_escape(ev->name, name, sizeof name),
                                      ev->mask & IN_MOVED_TO ? " (moved in)" : "");
                else if (leads_to_target(d, ev->name))
                        rearm(s, d);
        }
}

static int on_inotify(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct source_directory *s = userdata;
        union {
                struct inotify_event ev;
                char bytes[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)];
        } buffer;
        (void) source, (void) revents;

        for (;;) {
                ssize_t n = read(fd, &buffer, sizeof buffer);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        log_error_errno(errno, "Cannot read directory events: %m");
                        return 0;
                }
                for (char *p = buffer.bytes; p < buffer.bytes + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *) p;
                        handle_event(s, ev);
                        p += sizeof *ev + ev->len;
                }
        }
}

int source_directory_new(sd_event *event, struct trigger *trigger, char *const *dirs, unsigned n_dirs,
                         struct source_directory **ret) {
        struct source_directory *s;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return log_error_errno(ENOMEM, "Out of memory");
        s->trigger = trigger;
        s->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (s->fd < 0) {
                r = log_error_errno(errno, "Cannot set up inotify: %m");
                free(s);
                return r;
        }
        s->dirs = calloc(n_dirs, sizeof *s->dirs);
        if (!s->dirs) {
                source_directory_free(s);
                return log_error_errno(ENOMEM, "Out of memory");
        }
        for (unsigned i = 0; i < n_dirs; i++) {
                s->dirs[i].wd = -1;
                if (!(s->dirs[i].path = strdup(dirs[i]))) {
                        source_directory_free(s);
                        return log_error_errno(ENOMEM, "Out of memory");
                }
                s->n_dirs++;
        }
        r = sd_event_add_io(event, &s->io, s->fd, EPOLLIN, on_inotify, s);
        if (r < 0) {
                source_directory_free(s);
                return log_error_errno(r, "Cannot watch inotify events: %m");
        }
        /* What is there already is not new: only watch. */
        for (unsigned i = 0; i < s->n_dirs; i++) {
                char path[256], parent[256];
                arm(s, &s->dirs[i]);
                if (watching_target(&s->dirs[i]))
                        log_info("Watching %s for new sandboxes", text_escape(s->dirs[i].path, path, sizeof path));
                else if (s->dirs[i].wd >= 0)
                        log_info("%s does not exist yet, waiting for it in %s",
                                 text_escape(s->dirs[i].path, path, sizeof path),
                                 text_escape(s->dirs[i].watching, parent, sizeof parent));
        }
        *ret = s;
        return 0;
}

struct source_directory *source_directory_free(struct source_directory *s) {
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->io);
        for (unsigned i = 0; i < s->n_dirs; i++) {
                free(s->dirs[i].path);
                free(s->dirs[i].watching);
        }
        free(s->dirs);
        if (s->fd >= 0)
                close(s->fd);
        free(s);
        return NULL;
}
