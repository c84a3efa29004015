/* SPDX-License-Identifier: Apache-2.0 */
/* Log lines fit where they go: "<N>" priority prefixes only when stderr is the journal,
 * which systemd says with JOURNAL_STREAM=<device>:<inode> of stderr. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static char path[] = "/tmp/ksm-throttler-test-log.XXXXXX";

/* stderr into a fresh file; each Criterion test runs in its own process. */
static void setup(void) {
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0, "cannot create %s", path);
        cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
        close(fd);
        unsetenv("JOURNAL_STREAM");
}

static void teardown(void) {
        unlink(path);
}

TestSuite(log, .init = setup, .fini = teardown);

static void set_journal_stream(int fd) {
        struct stat st;
        char stream[64];
        cr_assert_eq(fstat(fd, &st), 0);
        snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
        setenv("JOURNAL_STREAM", stream, 1);
}

static void written(char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        size_t n;
        cr_assert_not_null(f);
        n = fread(buf, 1, size - 1, f);
        buf[n] = '\0';
        fclose(f);
}

Test(log, plain_lines_without_journal_stream) {
        char text[256];
        log_warning("disk %s is full", "sda");
        fflush(stderr);
        written(text, sizeof text);
        cr_assert_str_eq(text, "disk sda is full\n", "without JOURNAL_STREAM the line was \"%s\"", text);
}

Test(log, priority_prefix_when_stderr_is_the_journal) {
        char text[256];
        set_journal_stream(STDERR_FILENO);
        log_warning("disk %s is full", "sda");
        fflush(stderr);
        written(text, sizeof text);
        cr_assert_str_eq(text, "<4>disk sda is full\n", "with stderr as the journal the line was \"%s\"", text);
}

Test(log, journal_stream_of_another_file_means_plain_lines) {
        char text[256];
        set_journal_stream(STDIN_FILENO); /* inherited from a parent run by systemd, stderr redirected since */
        log_info("ready");
        fflush(stderr);
        written(text, sizeof text);
        cr_assert_str_eq(text, "ready\n", "with JOURNAL_STREAM naming stdin the line was \"%s\"", text);
}

Test(log, malformed_journal_stream_means_plain_lines) {
        char text[256];
        setenv("JOURNAL_STREAM", "12:34:junk", 1);
        log_info("ready");
        fflush(stderr);
        written(text, sizeof text);
        cr_assert_str_eq(text, "ready\n", "with a malformed JOURNAL_STREAM the line was \"%s\"", text);
}

/* Lines anyone can cause: a burst per interval, the rest counted and said once. */
Test(log, ratelimit_lets_a_burst_through_per_interval_and_counts_the_rest) {
        struct log_ratelimit rl = LOG_RATELIMIT_INIT(10 * 1000000ULL, 3);
        const uint64_t t0 = 5000000;
        unsigned dropped, shown = 0;

        for (int i = 0; i < 10; i++) {
                shown += log_ratelimit_below(&rl, t0 + (uint64_t) i * 1000, &dropped);
                cr_assert_eq(dropped, 0, "nothing is reported within the first interval");
        }
        cr_assert_eq(shown, 3, "3 of 10 lines should pass in one interval, %u did", shown);
        cr_assert(log_ratelimit_below(&rl, t0 + 10 * 1000000ULL, &dropped), "a new interval lets a line through");
        cr_assert_eq(dropped, 7, "the 7 lines dropped before should be counted once, got %u", dropped);
        cr_assert(log_ratelimit_below(&rl, t0 + 10 * 1000000ULL + 1, &dropped));
        cr_assert_eq(dropped, 0, "the count is reported only once");
        /* A clock that went back starts a new interval rather than blocking for good. */
        for (int i = 0; i < 3; i++)
                (void) log_ratelimit_below(&rl, t0 + 10 * 1000000ULL + 2, &dropped);
        cr_assert(log_ratelimit_below(&rl, 1, &dropped), "an earlier time starts a new interval");
        cr_assert_eq(dropped, 2);

        /* Time 0 is a time like any other, not "never started". */
        struct log_ratelimit at_zero = LOG_RATELIMIT_INIT(10 * 1000000ULL, 1);
        cr_assert(log_ratelimit_below(&at_zero, 0, &dropped));
        cr_assert_not(log_ratelimit_below(&at_zero, 0, &dropped), "a second line at the same time 0 is over the burst");
}
