/* SPDX-License-Identifier: Apache-2.0 */
#include "source-process.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"

#define SOURCE "process"

/* Linux 6.6 lets a listener ask for some event types only (struct proc_input); older
 * headers lack it. */
struct proc_listen_filtered {
        uint32_t mcast_op;   /* enum proc_cn_mcast_op */
        uint32_t event_type; /* enum proc_cn_event: a mask of PROC_EVENT_* */
};

struct source_process {
        struct trigger *trigger;
        const struct name_patterns *patterns;
        int fd;
        sd_event_source *io;
        unsigned lost; /* times the kernel dropped events */
};

static bool kernel_filters_events(void) {
        struct utsname u;
        unsigned major = 0, minor = 0;
        if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
                return false;
        return major > 6 || (major == 6 && minor >= 6);
}

/* The kernel refuses a listener without CAP_NET_ADMIN silently (events just never
 * come), so ask first. */
static bool have_cap_net_admin(void) {
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
        if (syscall(SYS_capget, &header, data) < 0)
                return true; /* cannot tell: let the kernel decide */
        return data[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32));
}

/* The kernel's initial namespaces have fixed inode numbers (PROC_PID_INIT_INO and
 * PROC_USER_INIT_INO in the kernel's proc_ns.h). Neither comparing with PID 1's
 * namespace nor NSpid in /proc/self/status can tell: inside a container PID 1 and
 * /proc are the container's own. */
#define INITIAL_PID_NAMESPACE_INODE 0xEFFFFFFCu
#define INITIAL_USER_NAMESPACE_INODE 0xEFFFFFFDu

/* 1 in the kernel's initial PID and user namespaces, 0 not, -errno cannot tell. */
static int in_initial_namespaces(void) {
        struct stat pid_ns, user_ns;
        if (stat("/proc/self/ns/pid", &pid_ns) < 0 || stat("/proc/self/ns/user", &user_ns) < 0)
                return -errno;
        return pid_ns.st_ino == INITIAL_PID_NAMESPACE_INODE && user_ns.st_ino == INITIAL_USER_NAMESPACE_INODE;
}

static int send_op(int fd, enum proc_cn_mcast_op op) {
        struct {
                struct nlmsghdr nl;
                struct cn_msg cn;
                struct proc_listen_filtered listen;
        } __attribute__((packed)) msg = {};
        /* Before 6.6 the kernel ignores anything but a bare operation. */
        size_t data_len = kernel_filters_events() ? sizeof msg.listen : sizeof msg.listen.mcast_op;

        msg.nl.nlmsg_len = (uint32_t) (NLMSG_LENGTH(sizeof msg.cn + data_len));
        msg.nl.nlmsg_type = NLMSG_DONE;
        msg.nl.nlmsg_pid = 0;
        msg.cn.id.idx = CN_IDX_PROC;
        msg.cn.id.val = CN_VAL_PROC;
        msg.cn.ack = 1; /* a kernel that answers does so with PROC_EVENT_NONE and an error, if any */
        msg.cn.len = (uint16_t) data_len;
        msg.listen.mcast_op = op;
        msg.listen.event_type = PROC_EVENT_EXEC;
        if (send(fd, &msg, msg.nl.nlmsg_len, 0) < 0)
                return -errno;
        return 0;
}

static int read_file_line(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;
        if (fd < 0)
                return -errno;
        n = read(fd, buf, size - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        return (int) n;
}

static const char *base_name(const char *path) {
        const char *slash = strrchr(path, '/');
        return slash ? slash + 1 : path;
}

/* Is the exec'd program a hypervisor? Tries the executable (which only processes
 * we may trace show us), then argv[0] (a symbolic link's name), and only without a
 * command line the task name: this runs for every exec on the machine.
 * what gets the name to report. */
static const char *match_exec(struct source_process *s, pid_t pid, char *what, size_t size) {
        char path[64], buf[PATH_MAX + 1];
        const char *glob;
        ssize_t n;

        snprintf(path, sizeof path, "/proc/%d/exe", (int) pid);
        n = readlink(path, buf, sizeof buf - 1);
        if (n > 0) {
                buf[n] = '\0';
                char *deleted = strstr(buf, " (deleted)");
                if (deleted && deleted[10] == '\0')
                        *deleted = '\0';
                if ((glob = name_patterns_match(s->patterns, base_name(buf)))) {
                        text_escape(buf, what, size);
                        return glob;
                }
        }
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int) pid);
        if (read_file_line(path, buf, sizeof buf) > 0 && buf[0]) {
                if ((glob = name_patterns_match(s->patterns, base_name(buf)))) {
                        text_escape(buf, what, size);
                        return glob;
                }
                return NULL;
        }
        /* No command line (the process is gone, or hides it): the kernel's task name. */
        snprintf(path, sizeof path, "/proc/%d/comm", (int) pid);
        if (read_file_line(path, buf, sizeof buf) > 0) {
                buf[strcspn(buf, "\n")] = '\0';
                if ((glob = name_patterns_match_comm(s->patterns, buf))) {
                        text_escape(buf, what, size);
                        return glob;
                }
        }
        return NULL;
}

static void handle_event(struct source_process *s, const struct cn_msg *cn) {
        struct proc_event event;
        const struct proc_event *ev = &event;
        char what[512];
        const char *glob;

        if (cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC || cn->len < sizeof event)
                return;
        /* The event follows the 20-byte connector header: copied out, as it is not aligned
         * for its 64-bit timestamp. */
        memcpy(&event, cn->data, sizeof event);
        switch (ev->what) {
        case PROC_EVENT_NONE:
                if (ev->event_data.ack.err != 0)
                        log_error_errno((int) ev->event_data.ack.err,
                                        "The kernel refused to send process events: %m (this needs CAP_NET_ADMIN)");
                else
                        log_debug("The kernel sends process events");
                return;
        case PROC_EVENT_EXEC: {
                pid_t pid = ev->event_data.exec.process_tgid;
                if (pid <= 0)
                        return;
                glob = match_exec(s, pid, what, sizeof what);
                if (glob)
                        trigger_event(s->trigger, SOURCE, "exec of %s pid %d (matches %s)", what, (int) pid, glob);
                return;
        }
        default:
                return;
        }
}

static int on_netlink(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct source_process *s = userdata;
        union {
                struct nlmsghdr nl;
                char bytes[8192];
        } buffer;
        (void) source, (void) revents;

        for (;;) {
                struct sockaddr_nl from = {};
                socklen_t from_len = sizeof from;
                ssize_t n = recvfrom(fd, &buffer, sizeof buffer, 0, (struct sockaddr *) &from, &from_len);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        if (errno == ENOBUFS) {
                                /* The kernel's queue for us overflowed: events are lost, the socket still works. */
                                s->lost++;
                                log_warning("Process events were lost (the socket's queue overflowed, %u time%s so far); "
                                            "a hypervisor started meanwhile was missed",
                                            s->lost, s->lost == 1 ? "" : "s");
                                continue;
                        }
                        log_error_errno(errno, "Cannot read process events: %m");
                        return 0;
                }
                /* Only the kernel sends to this group; anything else is not to be trusted. */
                if (from_len != sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0)
                        continue;
                size_t len = (size_t) n;
                for (struct nlmsghdr *nl = &buffer.nl; NLMSG_OK(nl, len); nl = NLMSG_NEXT(nl, len)) {
                        if (nl->nlmsg_type == NLMSG_ERROR || nl->nlmsg_type == NLMSG_NOOP)
                                continue;
                        if (nl->nlmsg_len < NLMSG_LENGTH(sizeof(struct cn_msg)))
                                continue;
                        const struct cn_msg *cn = NLMSG_DATA(nl);
                        if (NLMSG_LENGTH(sizeof *cn + cn->len) > nl->nlmsg_len)
                                continue;
                        handle_event(s, cn);
                }
        }
}

int source_process_new(sd_event *event, struct trigger *trigger, const struct name_patterns *patterns,
                       struct source_process **ret) {
        struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC, .nl_pid = 0 };
        struct source_process *s;
        char globs[1024];
        int r;

        if (!have_cap_net_admin())
                return log_error_errno(EPERM, "Cannot listen to process events without CAP_NET_ADMIN; "
                                              "the hypervisor process source is off");
        /* The kernel ignores a subscription from any other namespace without a word, and
         * the events another host process subscribed to carry host PIDs, which name
         * other processes (or none) in this /proc. */
        r = in_initial_namespaces();
        if (r == 0) {
                log_warning("Not in the host's PID and user namespaces: the process source needs the host's PID "
                            "namespace (hostPID); it will see no hypervisor starts here. The process source is off.");
                return -EOPNOTSUPP;
        }
        if (r < 0)
                log_debug_errno(r, "Cannot tell whether this is the host's PID namespace, trying anyway: %m");
        s = calloc(1, sizeof *s);
        if (!s)
                return log_error_errno(ENOMEM, "Out of memory");
        s->trigger = trigger;
        s->patterns = patterns;
        s->fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR);
        if (s->fd < 0) {
                r = log_error_errno(errno, "Cannot open the kernel's process-events connector: %m");
                goto fail;
        }
        if (bind(s->fd, (struct sockaddr *) &addr, sizeof addr) < 0) {
                r = log_error_errno(errno, "Cannot listen to process events: %m%s",
                                    errno == EPERM ? " (this needs CAP_NET_ADMIN)" : "");
                goto fail;
        }
        r = send_op(s->fd, PROC_CN_MCAST_LISTEN);
        if (r < 0) {
                log_error_errno(r, "Cannot ask the kernel for process events: %m%s",
                                r == -EPERM ? " (this needs CAP_NET_ADMIN)" : "");
                goto fail;
        }
        r = sd_event_add_io(event, &s->io, s->fd, EPOLLIN, on_netlink, s);
        if (r < 0) {
                log_error_errno(r, "Cannot watch process events: %m");
                goto fail;
        }
        log_info("Watching for hypervisors starting: %s", name_patterns_format(patterns, globs, sizeof globs));
        *ret = s;
        return 0;
fail:
        source_process_free(s);
        return r;
}

struct source_process *source_process_free(struct source_process *s) {
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->io);
        if (s->fd >= 0) {
                /* Kernels before 6.6 count listeners by these operations only, and
                 * generate events for as long as they count one. */
                (void) send_op(s->fd, PROC_CN_MCAST_IGNORE);
                close(s->fd);
        }
        free(s);
        return NULL;
}
