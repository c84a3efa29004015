/* SPDX-License-Identifier: Apache-2.0 */
/* Kicks handed from an instance exiting when idle to the next one, through the runtime
 * directory. Under a service manager the next instance starts only once this one has
 * exited, so a kick that raced with the exit cannot be relayed and answered over the
 * bus: it is recorded here, its caller is answered, and the next instance applies it
 * (docs/design.md, On-demand start). */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#define HANDOVER_FILE "kick-handover"
#define HANDOVER_TAKEN_FILE HANDOVER_FILE ".taken"
/* The largest file accepted: four texts of HANDOVER_TEXT_MAX bytes, each escaped at
 * worst to 4 bytes a byte, and a few numbers. */
#define HANDOVER_TEXT_MAX 512
#define HANDOVER_SIZE_MAX (4 * 4 * HANDOVER_TEXT_MAX + 256)
/* A record older than this is not a kick that raced with an exit, but one whose next
 * instance never came (or came by other means much later): dropped, and logged. */
#define HANDOVER_MAX_AGE_USEC (60ULL * 1000 * 1000)

struct handover {
        uint64_t kicks;         /* the kicks recorded, at least 1 */
        uint64_t boottime_usec; /* CLOCK_BOOTTIME of the last: steps of the wall clock do not age it */
        pid_t pid;              /* the instance that recorded them */
        /* Those of the last kick; NUL-free UTF-8 as the bus delivered them. */
        char reason[HANDOVER_TEXT_MAX + 1];
        char application_id[HANDOVER_TEXT_MAX + 1];
        char origin[HANDOVER_TEXT_MAX + 1]; /* the caller, as the log and LastKick show it */
        char unit[HANDOVER_TEXT_MAX + 1];   /* the caller's systemd unit, "" if not known */
};

/* Adds one kick to dir's record (creating it, or counting on from one this process
 * wrote): the texts of k are cut to HANDOVER_TEXT_MAX bytes; kicks, time and pid are set
 * here. */
int handover_record(const char *dir, const struct handover *k, uint64_t now_boottime_usec);
/* Takes dir's record: renames it to a name nothing reads again, then reads and removes
 * it, so that it is applied at most once. -ENOENT when there is none, -ESTALE (logged)
 * when it is older than HANDOVER_MAX_AGE_USEC or from the future, other errors logged. */
int handover_take(const char *dir, uint64_t now_boottime_usec, struct handover *ret);

/* Serialization, exposed for tests. */
int handover_format(const struct handover *h, char *buf, size_t size);
int handover_parse(const char *text, const char *where, struct handover *ret);
