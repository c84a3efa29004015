/* SPDX-License-Identifier: Apache-2.0 */
/*
 * accounting-bench: how long one accounting scan takes on a host with many
 * processes. Starts N children (optionally each with mergeable memory, the
 * worst case: every one of them is then read in full), times scans of /proc
 * side by side with a ps-like baseline (reading every /proc/<pid>/stat), and
 * stops every child by its PID. Run by test/bench/accounting.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ksm-accounting.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

static pid_t *children;
static size_t n_children;

static void stop_children(void) {
        for (size_t i = 0; i < n_children; i++)
                kill(children[i], SIGKILL);
        for (size_t i = 0; i < n_children; i++)
                waitpid(children[i], NULL, 0);
        n_children = 0;
}

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static void child(int ready_fd, bool mergeable, size_t pages) {
        if (mergeable && prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) < 0)
                _exit(2);
        size_t ps = (size_t) sysconf(_SC_PAGESIZE);
        char *m = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
                _exit(2);
        for (size_t i = 0; i < pages; i++)
                m[i * ps] = 1;
        if (write(ready_fd, "r", 1) != 1)
                _exit(2);
        close(ready_fd);
        for (;;)
                pause();
}

/* What `ps` does: read every /proc/<pid>/stat. */
static size_t baseline_scan(void) {
        DIR *d = opendir("/proc");
        struct dirent *de;
        size_t n = 0;
        char path[300], buf[1024];
        while (d && (de = readdir(d))) {
                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                if (read(fd, buf, sizeof(buf)) > 0)
                        n++;
                close(fd);
        }
        if (d)
                closedir(d);
        return n;
}

static int compare_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "processes", required_argument, NULL, 'n' },
                { "mergeable", no_argument, NULL, 'm' },
                { "rounds", required_argument, NULL, 'r' },
                { "pages", required_argument, NULL, 'p' },
                { "ksmctl", required_argument, NULL, 'k' },
                {},
        };
        size_t n = 2000, rounds = 7, pages = 16;
        bool mergeable = false;
        const char *ksmctl = NULL;
        int c, pipefd[2];

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'n': n = strtoul(optarg, NULL, 10); break;
                case 'm': mergeable = true; break;
                case 'r': rounds = strtoul(optarg, NULL, 10); break;
                case 'p': pages = strtoul(optarg, NULL, 10); break;
                case 'k': ksmctl = optarg; break;
                default:
                        fprintf(stderr, "usage: accounting-bench [--processes N] [--mergeable] [--rounds R] [--pages P] [--ksmctl PATH]\n");
                        return 2;
                }
        if (rounds == 0 || rounds > 100)
                rounds = 7;

        children = calloc(n ? n : 1, sizeof(*children));
        if (!children || pipe2(pipefd, O_CLOEXEC) < 0)
                return 1;
        atexit(stop_children);
        for (size_t i = 0; i < n; i++) {
                pid_t pid = fork();
                if (pid < 0) {
                        fprintf(stderr, "accounting-bench: fork after %zu children: %m\n", i);
                        return 1;
                }
                if (pid == 0) {
                        close(pipefd[0]);
                        child(pipefd[1], mergeable, pages);
                }
                children[n_children++] = pid;
        }
        close(pipefd[1]);
        for (size_t i = 0; i < n; i++) {
                char b;
                if (read(pipefd[0], &b, 1) != 1) {
                        fprintf(stderr, "accounting-bench: a child failed to start\n");
                        return 1;
                }
        }

        static const struct {
                const char *name;
                bool smaps;
                uint64_t budget;
        } modes[] = {
                { "ksm_stat only", false, 0 },
                { "ksm_stat + smaps, default budget", true, KSM_ACCOUNTING_SMAPS_BUDGET_USEC },
                { "ksm_stat + smaps, no budget", true, 0 },
        };
        double base[100], t[3][100];
        size_t found[3] = {}, skipped[3] = {}, scanned = 0;

        for (size_t r = 0; r < rounds; r++) {
                double t0 = now_ms();
                scanned = baseline_scan();
                base[r] = now_ms() - t0;
                for (size_t m = 0; m < 3; m++) {
                        struct ksm_accounting_options o = {
                                .proc_dir = "/proc", .read_smaps = modes[m].smaps, .smaps_budget_usec = modes[m].budget,
                        };
                        struct ksm_accounting a;
                        t0 = now_ms();
                        if (ksm_accounting_scan(&o, &a) < 0) {
                                fprintf(stderr, "accounting-bench: scan failed\n");
                                return 1;
                        }
                        t[m][r] = now_ms() - t0;
                        found[m] = a.n_processes;
                        skipped[m] = a.n_smaps_skipped;
                        ksm_accounting_free(&a);
                }
        }
        qsort(base, rounds, sizeof(double), compare_double);
        printf("%zu children (%s), %zu processes in /proc, median of %zu rounds\n", n,
               mergeable ? "each with mergeable memory" : "no mergeable memory", scanned, rounds);
        printf("  %-36s %8.1f ms\n", "baseline: read every /proc/PID/stat", base[rounds / 2]);
        for (size_t m = 0; m < 3; m++) {
                qsort(t[m], rounds, sizeof(double), compare_double);
                printf("  %-36s %8.1f ms  (%.1f× baseline; %zu processes kept, %zu smaps skipped)\n", modes[m].name,
                       t[m][rounds / 2], t[m][rounds / 2] / base[rounds / 2], found[m], skipped[m]);
        }
        if (ksmctl) {
                /* The whole command as a user runs it: start-up, machined, the scan, JSON out. */
                double k[100];
                for (size_t r = 0; r < rounds; r++) {
                        double t0 = now_ms();
                        pid_t pid = fork();
                        if (pid == 0) {
                                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                                if (null >= 0)
                                        dup2(null, STDOUT_FILENO);
                                execl(ksmctl, ksmctl, "top", "--json", (char *) NULL);
                                _exit(127);
                        }
                        int status = 0;
                        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                                fprintf(stderr, "accounting-bench: %s top --json failed\n", ksmctl);
                                return 1;
                        }
                        k[r] = now_ms() - t0;
                }
                qsort(k, rounds, sizeof(double), compare_double);
                printf("  %-36s %8.1f ms  (%.1f× baseline)\n", "ksmctl top --json (whole command)", k[rounds / 2],
                       k[rounds / 2] / base[rounds / 2]);
        }
        stop_children();
        return 0;
}
