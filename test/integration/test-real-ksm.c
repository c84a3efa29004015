/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon on the real /sys/kernel/mm/ksm with a process holding duplicate
 * mergeable pages. KSM is global to the machine: these tests run serially, save
 * every writable knob first and put each back afterwards, also on failure. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define KSM_DIR "/sys/kernel/mm/ksm"
#define WORKLOAD_MIB 64

struct saved_knob {
        char name[64];
        char value[64]; /* as written back: "[none] scan-time" is stored as "none" */
};

static struct harness h;
/* The machine's values before the test (put back by teardown) and the host
 * values a test sets up and expects the daemon to restore. */
struct knob_set {
        struct saved_knob knob[64];
        int n;
};
static struct knob_set original, expected;
static pid_t workload_pid;
static bool ksm_writable;

static int read_text(const char *name, char *buf, size_t size) {
        char path[512];
        FILE *f;
        size_t n;

        snprintf(path, sizeof path, KSM_DIR "/%s", name);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        /* advisor_mode lists every mode and brackets the active one. */
        char *open = strchr(buf, '[');
        if (open) {
                char *close = strchr(open, ']');
                if (close) {
                        memmove(buf, open + 1, (size_t) (close - open - 1));
                        buf[close - open - 1] = '\0';
                }
        }
        return 0;
}

static int write_text(const char *name, const char *value) {
        char path[512];
        int fd, r = 0;

        snprintf(path, sizeof path, KSM_DIR "/%s", name);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, value, strlen(value)) < 0)
                r = -errno;
        close(fd);
        return r;
}

static void save_knobs(struct knob_set *set) {
        DIR *dir = opendir(KSM_DIR);
        struct dirent *de;

        set->n = 0;
        cr_assert_not_null(dir);
        while ((de = readdir(dir)) && set->n < 64) {
                struct saved_knob *k = &set->knob[set->n];
                struct stat st;
                char path[512];
                snprintf(path, sizeof path, KSM_DIR "/%s", de->d_name);
                if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof k->name || stat(path, &st) < 0 ||
                    !S_ISREG(st.st_mode) || !(st.st_mode & S_IWUSR))
                        continue;
                memcpy(k->name, de->d_name, strlen(de->d_name) + 1);
                cr_assert_eq(read_text(de->d_name, k->value, sizeof k->value), 0);
                set->n++;
        }
        closedir(dir);
}

/* Puts every saved knob back: advisor_mode first (it resets pages_to_scan), run last. */
static void restore_knobs(const struct knob_set *set) {
        const struct saved_knob *saved = set->knob;
        char now[64];
        for (int pass = 0; pass < 3; pass++)
                for (int i = 0; i < set->n; i++) {
                        bool advisor = strcmp(saved[i].name, "advisor_mode") == 0, run = strcmp(saved[i].name, "run") == 0;
                        if ((pass == 0) != advisor || (pass == 2) != run)
                                continue;
                        if (read_text(saved[i].name, now, sizeof now) == 0 && strcmp(now, saved[i].value) == 0)
                                continue;
                        if (write_text(saved[i].name, saved[i].value) < 0)
                                fprintf(stderr, "warning: cannot restore %s/%s=%s: %s\n", KSM_DIR, saved[i].name,
                                        saved[i].value, strerror(errno));
                }
}

static void assert_knobs_as_expected(bool skip_pages_to_scan) {
        const struct saved_knob *saved = expected.knob;
        char now[64];
        for (int i = 0; i < expected.n; i++) {
                if (skip_pages_to_scan && strcmp(saved[i].name, "pages_to_scan") == 0)
                        continue;
                cr_assert_eq(read_text(saved[i].name, now, sizeof now), 0);
                cr_expect_str_eq(now, saved[i].value, "%s is %s, was %s before the test", saved[i].name, now,
                                 saved[i].value);
        }
}

static void setup(void) {
        char run[16];
        ksm_writable = access(KSM_DIR "/run", W_OK) == 0 && read_text("run", run, sizeof run) == 0 &&
                       write_text("run", run) == 0;
        if (!ksm_writable)
                return;
        save_knobs(&original);
        harness_setup(&h, NULL);
        harness_use_real_ksm(&h);
}

static void teardown(void) {
        if (workload_pid > 0) {
                kill(workload_pid, SIGKILL);
                waitpid(workload_pid, NULL, 0);
                workload_pid = 0;
        }
        if (!ksm_writable)
                return;
        harness_teardown(&h); /* SIGTERMs the daemon, which restores */
        restore_knobs(&original); /* and whatever a failure left behind */
}

TestSuite(real_ksm, .init = setup, .fini = teardown, .timeout = 120);

static void skip_unless_writable(void) {
        if (!ksm_writable)
                cr_skip_test("%s is not writable here (needs root and a kernel with CONFIG_KSM); real-KSM test skipped",
                             KSM_DIR);
}

/* A child holding WORKLOAD_MIB of identical, mergeable pages. */
static void start_workload(void) {
        int pipefd[2];
        char ready;

        cr_assert_eq(pipe(pipefd), 0);
        workload_pid = fork();
        cr_assert_geq(workload_pid, 0);
        if (workload_pid == 0) {
                size_t size = (size_t) WORKLOAD_MIB << 20;
                long page = sysconf(_SC_PAGESIZE);
                char *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (memory == MAP_FAILED || madvise(memory, size, MADV_MERGEABLE) < 0)
                        _exit(1);
                for (size_t off = 0; off < size; off += (size_t) page)
                        memset(memory + off, 0x5a, (size_t) page); /* same non-zero content on every page */
                (void) write(pipefd[1], "r", 1);
                for (;;)
                        pause();
        }
        close(pipefd[1]);
        cr_assert_eq(read(pipefd[0], &ready, 1), 1, "the workload did not start");
        close(pipefd[0]);
}

static long counter(const char *name);

/* Pages of the workload that KSM merged: its own count where the kernel has it (5.19+),
 * which stale rmap items of earlier processes cannot blur; else the global growth. */
static long workload_merged_pages(long pages_sharing_before) {
        char path[64];
        FILE *f;
        long merged;

        snprintf(path, sizeof path, "/proc/%d/ksm_merging_pages", (int) workload_pid);
        f = fopen(path, "re");
        if (f) {
                int n = fscanf(f, "%ld", &merged);
                fclose(f);
                if (n == 1)
                        return merged;
        }
        return counter("pages_sharing") - pages_sharing_before;
}

static long counter(const char *name) {
        char text[64];
        cr_assert_eq(read_text(name, text, sizeof text), 0);
        return strtol(text, NULL, 10);
}

Test(real_ksm, kick_merges_duplicate_pages_and_stop_restores_every_knob) {
        long pages = (WORKLOAD_MIB << 20) / sysconf(_SC_PAGESIZE), before, sharing = 0;
        sd_bus *bus;

        skip_unless_writable();
        /* Host values that differ from what aggressive writes, so a restore is visible. */
        if (access(KSM_DIR "/advisor_mode", F_OK) == 0)
                cr_assert_eq(write_text("advisor_mode", "none"), 0);
        cr_assert_eq(write_text("run", "0"), 0);
        cr_assert_eq(write_text("sleep_millisecs", "200"), 0);
        cr_assert_eq(write_text("pages_to_scan", "100"), 0);
        save_knobs(&expected); /* these are the host's values the daemon must give back */

        start_workload();
        before = counter("pages_sharing");
        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);

        /* Half of the workload's pages merged is proof enough; the timeout only keeps a broken run from hanging. */
        for (int i = 0; i < 600 && sharing < pages / 2; i++) {
                usleep(100 * 1000);
                sharing = workload_merged_pages(before);
        }
        cr_assert_geq(sharing, pages / 2, "%ld of the workload's pages merged, expected at least %ld", sharing, pages / 2);
        sd_bus_flush_close_unref(bus);

        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        assert_knobs_as_expected(false);
}

Test(real_ksm, advisor_scan_time_is_handed_back) {
        char text[64];
        sd_bus *bus;

        skip_unless_writable();
        if (access(KSM_DIR "/advisor_mode", F_OK) != 0)
                cr_skip_test("this kernel has no %s/advisor_mode (Linux < 6.8)", KSM_DIR);

        cr_assert_eq(write_text("run", "0"), 0);
        cr_assert_eq(write_text("sleep_millisecs", "200"), 0);
        cr_assert_eq(write_text("advisor_mode", "scan-time"), 0);
        save_knobs(&expected);

        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        /* The original wrote pages_to_scan under the advisor and failed with EINVAL. */
        harness_kick(bus);
        cr_assert_eq(read_text("advisor_mode", text, sizeof text), 0);
        cr_assert_str_eq(text, "none");
        cr_assert_eq(read_text("run", text, sizeof text), 0);
        cr_assert_str_eq(text, "1");
        cr_assert_eq(read_text("sleep_millisecs", text, sizeof text), 0);
        cr_assert_str_eq(text, "1");
        sd_bus_flush_close_unref(bus);

        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        /* The kernel resets pages_to_scan when the advisor comes back; it owns that knob. */
        assert_knobs_as_expected(true);
}

Test(real_ksm, adaptive_leaves_aggressive_once_merging_settled) {
        long pages = (WORKLOAD_MIB << 20) / sysconf(_SC_PAGESIZE), before;
        char log[65536], state[32];
        sd_bus *bus;

        skip_unless_writable();
        if (access(KSM_DIR "/advisor_mode", F_OK) == 0)
                cr_assert_eq(write_text("advisor_mode", "none"), 0);
        cr_assert_eq(write_text("run", "0"), 0);
        save_knobs(&expected);

        start_workload();
        before = counter("pages_sharing");
        /* Aggressive would last an hour on the fixed schedule. */
        harness_write_config(&h, "[Throttler]\nAdaptive=yes\n[Aggressive]\nDurationSec=1h\n");
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        cr_assert(harness_wait_state(bus, "standard", 60), "adaptive mode did not leave aggressive within 60 s");
        cr_assert_geq(workload_merged_pages(before), pages / 2, "it left before merging");
        harness_get_state(bus, state, sizeof state);
        harness_daemon_log(&h, log, sizeof log);
        cr_assert_not_null(strstr(log, "(was aggressive, merging settled after "), "%s", log);
        sd_bus_flush_close_unref(bus);

        cr_assert_eq(harness_stop_daemon(&h, SIGTERM), 0);
        assert_knobs_as_expected(false);
}

Test(real_ksm, fixed_schedule_stays_aggressive) {
        sd_bus *bus;
        char state[32];

        skip_unless_writable();
        start_workload();
        harness_write_config(&h, "[Throttler]\nAdaptive=no\n[Aggressive]\nDurationSec=1h\n");
        harness_start_daemon(&h, NULL);
        bus = harness_bus(&h);
        harness_kick(bus);
        /* Long enough for adaptive mode to have settled on this workload. */
        sleep(10);
        harness_get_state(bus, state, sizeof state);
        cr_assert_str_eq(state, "aggressive", "Adaptive=no keeps the fixed schedule");
        sd_bus_flush_close_unref(bus);
}
