/* SPDX-License-Identifier: Apache-2.0 */
/* The procfs readers: AnonPages from meminfo, ksmd's PID and CPU time, against text and a
 * temporary directory laid out like /proc. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"
#include "test-files.h"

static char tmpdir[] = "/tmp/test-proc-XXXXXX";

/* Writes tmpdir/name, creating its directory. */
static void put(const char *name, const char *text) {
        char path[PATH_MAX], *slash;

        snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        slash = strrchr(path, '/');
        *slash = '\0';
        (void) mkdir(path, 0755);
        *slash = '/';
        test_write_file(path, text, 0644);
}

static void setup(void) {
        test_mkdtemp(tmpdir);
}

static void teardown(void) {
        test_rm_rf(tmpdir);
}

TestSuite(proc, .init = setup, .fini = teardown);

static const char meminfo[] =
        "MemTotal:       32594948 kB\n"
        "MemFree:         9876543 kB\n"
        "MemAvailable:   20000000 kB\n"
        "Buffers:          123456 kB\n"
        "Cached:          9000000 kB\n"
        "SwapCached:            0 kB\n"
        "Active:          8000000 kB\n"
        "Inactive:        7000000 kB\n"
        "Active(anon):     900000 kB\n"
        "Inactive(anon):   124000 kB\n"
        "AnonPages:        1024000 kB\n"
        "Mapped:           800000 kB\n"
        "Shmem:            200000 kB\n"
        "AnonHugePages:    409600 kB\n"
        "HugePages_Total:       0\n";

Test(proc, meminfo_parse_anon_pages) {
        uint64_t pages = 1;
        cr_assert_eq(meminfo_parse_anon_pages(meminfo, 4096, &pages), 0);
        cr_assert_eq(pages, 256000);
        cr_assert_eq(meminfo_parse_anon_pages(meminfo, 16384, &pages), 0);
        cr_assert_eq(pages, 64000);
        cr_assert_eq(meminfo_parse_anon_pages("AnonPages: 0 kB\n", 4096, &pages), 0);
        cr_assert_eq(pages, 0);
        /* The last line need not end with a newline. */
        cr_assert_eq(meminfo_parse_anon_pages("MemTotal: 1 kB\nAnonPages: 8 kB", 4096, &pages), 0);
        cr_assert_eq(pages, 2);
}

Test(proc, meminfo_parse_anon_pages_rejects) {
        uint64_t pages = 77;
        cr_assert_eq(meminfo_parse_anon_pages("MemTotal: 1 kB\nAnonHugePages: 2048 kB\n", 4096, &pages), -ENODATA);
        cr_assert_eq(meminfo_parse_anon_pages("", 4096, &pages), -ENODATA);
        cr_assert_eq(meminfo_parse_anon_pages("MemTotal: 1 kB\nXAnonPages: 4096 kB\n", 4096, &pages), -ENODATA);
        cr_assert_eq(meminfo_parse_anon_pages("AnonPages: lots kB\n", 4096, &pages), -EINVAL);
        cr_assert_eq(meminfo_parse_anon_pages("AnonPages: 1024\n", 4096, &pages), -EINVAL);
        cr_assert_eq(meminfo_parse_anon_pages("AnonPages: -1024 kB\n", 4096, &pages), -EINVAL);
        cr_assert_eq(pages, 77);
}

Test(proc, meminfo_read_anon_pages) {
        char path[PATH_MAX];
        uint64_t pages = 0, expected = 0;

        put("meminfo", meminfo);
        snprintf(path, sizeof path, "%s/meminfo", tmpdir);
        cr_assert_eq(meminfo_read_anon_pages(path, &pages), 0);
        cr_assert_eq(meminfo_parse_anon_pages(meminfo, (uint64_t) sysconf(_SC_PAGESIZE), &expected), 0);
        cr_assert_eq(pages, expected);

        snprintf(path, sizeof path, "%s/no-meminfo", tmpdir);
        cr_assert_eq(meminfo_read_anon_pages(path, &pages), -ENOENT);
}

Test(proc, proc_stat_parse_cpu_usec) {
        uint64_t usec;
        /* A comm with spaces and parentheses; utime 150, stime 250 ticks at 100 Hz. */
        cr_assert_eq(proc_stat_parse_cpu_usec("37 (ks md) (x)) S 2 0 0 0 -1 2129984 0 0 0 0 150 250 0 0 39 19 1 0 5",
                                              100, &usec),
                     0);
        cr_assert_eq(usec, 4000000);
        cr_assert_eq(proc_stat_parse_cpu_usec("37 ksmd S 2", 100, &usec), -EINVAL);
        cr_assert_eq(proc_stat_parse_cpu_usec("37 (ksmd) S 2 0", 100, &usec), -EINVAL);
}

Test(proc, proc_cpu_usec_of_this_process) {
        uint64_t usec = UINT64_MAX;
        cr_assert_eq(proc_cpu_usec(getpid(), &usec), 0, "cannot read /proc/self's CPU time");
        cr_assert_neq(usec, UINT64_MAX, "the CPU time was not filled in");
        cr_assert_eq(proc_cpu_usec(0, &usec), -ENOENT, "PID 0 has no /proc entry");
}

/* A process table with a user process named ksmd (parent 1) before the kernel thread
 * (parent kthreadd, PID 2), and entries that are not processes. */
Test(proc, ksmd_find_takes_the_kernel_thread) {
        pid_t pid = 0;

        put("1/comm", "systemd\n");
        put("1/stat", "1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 1 2 0 0 20 0 1 0 5\n");
        put("4000/comm", "ksmd\n");
        put("4000/stat", "4000 (ksmd) S 1 4000 4000 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5\n");
        put("37/comm", "ksmd\n");
        put("37/stat", "37 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 150 250 0 0 39 19 1 0 5\n");
        put("self/comm", "ksmd\n");
        put("meminfo", "AnonPages: 4 kB\n");

        cr_assert_eq(ksmd_find(tmpdir, &pid), 0, "ksmd not found in %s", tmpdir);
        cr_assert_eq(pid, 37, "found PID %d, not the kernel thread 37", (int) pid);
}

Test(proc, ksmd_find_without_ksmd) {
        char path[PATH_MAX];
        pid_t pid = 0;

        put("4000/comm", "ksmd\n");
        put("4000/stat", "4000 (ksmd) S 1 4000 4000 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5\n");
        cr_assert_eq(ksmd_find(tmpdir, &pid), -ESRCH, "a user process named ksmd was taken for the kernel thread");
        snprintf(path, sizeof path, "%s/none", tmpdir);
        cr_assert_eq(ksmd_find(path, &pid), -ENOENT);
}
