/* SPDX-License-Identifier: Apache-2.0 */
/* Who a bus caller is, for the log and the LastKick property: the user and process
 * IDs the bus gives for its connection, and the systemd unit its process runs in, read
 * from /proc/PID/cgroup (docs/design.md, Who kicked). Everything here is bounded and
 * fixed-size: a caller cannot make the daemon hold more. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CALLER_UID_UNKNOWN UINT32_MAX
/* A unit name is at most 255 bytes (systemd's UNIT_NAME_MAX). */
#define CALLER_UNIT_MAX 256
/* "uid 4294967295 pid 4294967295 unit " and a unit name escaped (up to 4 bytes per byte). */
#define CALLER_ORIGIN_MAX (48 + 4 * CALLER_UNIT_MAX)

struct caller {
        uint32_t uid;                /* CALLER_UID_UNKNOWN if not known */
        uint32_t pid;                /* 0 if not known */
        char unit[CALLER_UNIT_MAX];  /* "" if not known; as read, not escaped */
};

#define CALLER_UNKNOWN ((struct caller) { .uid = CALLER_UID_UNKNOWN })

/* The unit of a process from the text of its /proc/PID/cgroup: the first component of
 * the cgroup v2 ("0::") path that names a unit other than a slice
 * ("/system.slice/libvirtd.service" → "libvirtd.service",
 * "/user.slice/user-1000.slice/session-2.scope" → "session-2.scope"). Returns 0, or
 * -ENOENT if none, -ENAMETOOLONG if longer than size allows. */
int caller_unit_from_cgroup(const char *text, char *ret, size_t size);

/* Reads /proc/PID/cgroup (at most 4 KiB) under proc_path and fills caller->unit;
 * leaves it "" when it cannot. Best effort: the process may have exited or moved. */
void caller_read_unit(struct caller *caller, const char *proc_path);

/* "uid 0 pid 4242 unit libvirtd.service", with what is not known left out
 * ("unknown caller" when nothing is), control characters escaped. */
void caller_format(const struct caller *caller, char *buf, size_t size);

/* s with control characters, DEL, and backslashes escaped as in C ("\n", "\x1b", "\\"),
 * truncated to fit buf (size ≥ 1) without cutting an escape in half. */
void escape_into(char *buf, size_t size, const char *s);
