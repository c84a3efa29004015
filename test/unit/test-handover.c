/* SPDX-License-Identifier: Apache-2.0 */
/* Kicks handed from an exiting instance to the next one through the runtime directory:
 * what the next instance applies, at most once, and what it refuses. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handover.h"
#include "test-files.h"

#define NOW (1800000000ULL * 1000 * 1000)

static char tmpdir[] = "/tmp/test-handover-XXXXXX";
static char rundir[PATH_MAX];
static char file[PATH_MAX + 32], taken[PATH_MAX + 32];

static void setup(void) {
        test_mkdtemp(tmpdir);
        snprintf(rundir, sizeof rundir, "%s/run", tmpdir);
        cr_assert_eq(mkdir(rundir, 0700), 0);
        snprintf(file, sizeof file, "%s/%s", rundir, HANDOVER_FILE);
        snprintf(taken, sizeof taken, "%s/%s", rundir, HANDOVER_TAKEN_FILE);
}

static void teardown(void) {
        test_rm_rf(tmpdir);
}

TestSuite(handover, .init = setup, .fini = teardown, .timeout = 10);

static void write_text(const char *text, mode_t mode) {
        test_write_file(file, text, mode);
}

static int record(const char *reason, const char *application_id, const char *origin, const char *unit, uint64_t now) {
        struct handover k = {};
        snprintf(k.reason, sizeof k.reason, "%s", reason);
        snprintf(k.application_id, sizeof k.application_id, "%s", application_id);
        snprintf(k.origin, sizeof k.origin, "%s", origin);
        snprintf(k.unit, sizeof k.unit, "%s", unit);
        return handover_record(rundir, &k, now);
}

Test(handover, a_recorded_kick_is_taken_once_with_its_reason) {
        struct handover h;

        cr_assert_eq(record("new sandbox /run/vc/sbs/1", "ksm-throttler-trigger", "uid 0 pid 42", "kata.service", NOW), 0);
        cr_assert_eq(handover_take(rundir, NOW + 1000, &h), 0);
        cr_assert_eq(h.kicks, 1);
        cr_assert_eq(h.pid, getpid());
        cr_assert_eq(h.boottime_usec, NOW);
        cr_assert_str_eq(h.reason, "new sandbox /run/vc/sbs/1");
        cr_assert_str_eq(h.application_id, "ksm-throttler-trigger");
        cr_assert_str_eq(h.origin, "uid 0 pid 42");
        cr_assert_str_eq(h.unit, "kata.service");
        cr_assert_eq(access(file, F_OK), -1, "a taken record must be gone, or the next start applies it again");
        cr_assert_eq(access(taken, F_OK), -1, "nothing of a taken record is left");
        cr_assert_eq(handover_take(rundir, NOW, &h), -ENOENT);
}

Test(handover, kicks_of_one_instance_add_up_and_the_last_reason_wins) {
        struct handover h;

        cr_assert_eq(record("first", "a", "uid 0", "", NOW), 0);
        cr_assert_eq(record("second", "b", "uid 1000", "", NOW + 5), 0);
        cr_assert_eq(handover_take(rundir, NOW + 10, &h), 0);
        cr_assert_eq(h.kicks, 2, "two raced kicks, %llu recorded", (unsigned long long) h.kicks);
        cr_assert_str_eq(h.reason, "second");
        cr_assert_eq(h.boottime_usec, NOW + 5);
}

Test(handover, another_instances_record_is_not_counted_on) {
        struct handover h;

        write_text("kicks=7\ntime=1\npid=1\nreason=old\napplication_id=\norigin=\n", 0600);
        cr_assert_eq(record("mine", "", "", "", NOW), 0);
        cr_assert_eq(handover_take(rundir, NOW, &h), 0);
        cr_assert_eq(h.kicks, 1, "a record left by PID 1 is not this instance's to add to");
        cr_assert_str_eq(h.reason, "mine");
}

Test(handover, any_byte_of_a_reason_survives_the_round_trip) {
        struct handover h = { .kicks = 3, .boottime_usec = NOW, .pid = 9 }, back;
        char text[HANDOVER_SIZE_MAX + 1];

        snprintf(h.reason, sizeof h.reason, "line\nkicks=99\\x41\x01\x7f caf\xc3\xa9");
        snprintf(h.application_id, sizeof h.application_id, "=\r=");
        cr_assert_gt(handover_format(&h, text, sizeof text), 0);
        cr_assert_eq(strchr(text, '\r'), NULL, "control characters must be escaped in the file");
        cr_assert_eq(handover_parse(text, "test", &back), 0);
        cr_assert_eq(back.kicks, 3, "a newline in the reason must not forge a line");
        cr_assert_str_eq(back.reason, h.reason);
        cr_assert_str_eq(back.application_id, h.application_id);
}

Test(handover, the_longest_texts_fit_the_file) {
        struct handover h = { .kicks = UINT64_MAX, .boottime_usec = UINT64_MAX, .pid = INT32_MAX }, back;
        char text[HANDOVER_SIZE_MAX + 1];

        memset(h.reason, '\\', HANDOVER_TEXT_MAX);
        memset(h.application_id, '\n', HANDOVER_TEXT_MAX);
        memset(h.origin, 0x7f, HANDOVER_TEXT_MAX);
        memset(h.unit, 0x1f, HANDOVER_TEXT_MAX);
        cr_assert_gt(handover_format(&h, text, sizeof text), 0, "a record of the largest texts must fit the limit");
        cr_assert_eq(handover_parse(text, "test", &back), 0);
        cr_assert_eq(memcmp(&h, &back, sizeof h), 0);
}

Test(handover, a_record_from_long_ago_or_the_future_is_dropped) {
        struct handover h;

        cr_assert_eq(record("old", "", "", "", NOW), 0);
        cr_assert_eq(handover_take(rundir, NOW + HANDOVER_MAX_AGE_USEC + 1, &h), -ESTALE);
        cr_assert_eq(access(file, F_OK), -1, "a stale record is removed");
        cr_assert_eq(record("future", "", "", "", NOW + 2 * HANDOVER_MAX_AGE_USEC), 0);
        cr_assert_eq(handover_take(rundir, NOW, &h), -ESTALE);
}

Test(handover, damaged_records_are_refused_and_removed) {
        static const char *const damaged[] = {
                "kicks=1\n",                                     /* no time */
                "time=1\n",                                      /* no kicks */
                "kicks=0\ntime=1\n",                             /* zero kicks */
                "kicks=1\ntime=1\npid=-3\n",                     /* a negative PID */
                "kicks=1\ntime=1\nrun=2\n",                      /* an unknown key */
                "kicks=1\ntime=1\nreason=\\x00\n",               /* an escaped NUL */
                "kicks=1\ntime=1\nreason=\\q\n",                 /* a bad escape */
                "kicks=1\ntime=1\nreason=\\x4\n",                /* a cut escape */
                "kicks=1\ntime=1\nreason=\\x 4\n",               /* space in an escape */
                "kicks=1\ntime=1\nreason=\\x-1\n",               /* a sign in an escape */
                "kicks=x\ntime=1\n",                             /* not a number */
                "kicks=1\ntime=1\nno equals sign\n",
        };
        struct handover h;

        for (size_t i = 0; i < sizeof damaged / sizeof damaged[0]; i++) {
                write_text(damaged[i], 0600);
                cr_assert_eq(handover_take(rundir, 1, &h), -EINVAL, "accepted a damaged record: %s", damaged[i]);
                cr_assert_eq(access(file, F_OK), -1, "a damaged record must not be read again: %s", damaged[i]);
                cr_assert_eq(access(taken, F_OK), -1, "a damaged record must not be left under its taken name");
        }
}

Test(handover, a_reason_too_long_after_unescaping_is_refused) {
        char text[HANDOVER_SIZE_MAX + 64] = "kicks=1\ntime=1\nreason=";
        struct handover h;

        memset(text + strlen(text), 'a', HANDOVER_TEXT_MAX + 1);
        cr_assert_eq(handover_parse(text, "test", &h), -EINVAL);
}

Test(handover, a_file_others_may_write_or_a_symlink_is_refused) {
        struct handover h;

        write_text("kicks=1\ntime=1\n", 0622);
        cr_assert_eq(handover_take(rundir, 1, &h), -EPERM);
        cr_assert_eq(symlink("/etc/passwd", file), 0);
        cr_assert_eq(handover_take(rundir, 1, &h), -ELOOP);
        cr_assert_eq(access("/etc/passwd", F_OK), 0, "the target of a planted link must not be removed");
        unlink(file);
        cr_assert_eq(mkfifo(file, 0600), 0);
        cr_assert_eq(handover_take(rundir, 1, &h), -EBADFD, "a FIFO must be refused, without blocking");
}
