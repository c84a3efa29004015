/* SPDX-License-Identifier: Apache-2.0 */
/* GetSavings on a private system-like bus: the rows the daemon reads from the real
 * /proc (every process has a ksm_stat; KSM need not run for a process that marked
 * memory MADV_MERGEABLE to be listed), who may read them (root, or whom polkit
 * allows), and the bounds on the limit a caller may ask for. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define READ_SAVINGS "org.kata.ksmthrottler.read-savings"
#define CHILD_COMM "savings-child"
#define CHILD_BYTES (4u << 20)

static struct harness h;
static pid_t child = -1;

static void setup(void) {
        harness_setup(&h, NULL);
        harness_write_config(&h, "");
        harness_start_polkit(&h, true);
        harness_start_daemon(&h, NULL);
}

static void teardown(void) {
        if (child > 0) {
                kill(child, SIGKILL);
                waitpid(child, NULL, 0);
                child = -1;
        }
        harness_teardown(&h);
}

TestSuite(savings, .init = setup, .fini = teardown, .timeout = 60);

/* A child with CHILD_BYTES of anonymous memory marked MADV_MERGEABLE, as a VM's guest RAM
 * is; returns once the memory is marked. */
static pid_t start_mergeable_child(void) {
        int fds[2];
        char ready;

        cr_assert_eq(pipe(fds), 0, "pipe: %s", strerror(errno));
        pid_t pid = fork();
        cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
        if (pid == 0) {
                close(fds[0]);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                prctl(PR_SET_NAME, CHILD_COMM);
                char *p = mmap(NULL, CHILD_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED || madvise(p, CHILD_BYTES, MADV_MERGEABLE) < 0)
                        _exit(1);
                memset(p, 0x5a, CHILD_BYTES);
                if (write(fds[1], "r", 1) != 1)
                        _exit(1);
                for (;;)
                        pause();
        }
        close(fds[1]);
        cr_assert_eq(read(fds[0], &ready, 1), 1, "the child could not mark its memory MADV_MERGEABLE");
        close(fds[0]);
        return pid;
}

struct row {
        char kind[16];
        char name[160];
        uint32_t pid, n_processes;
        int64_t profit_bytes;
        uint64_t merging_pages, zero_pages, rmap_items, mergeable_bytes;
        double merged_share;
};

/* Calls GetSavings(limit) as root; returns the number of rows (up to max kept in rows),
 * or -1 with the error in error_name. */
static int get_savings(uint32_t limit, struct row *rows, size_t max, uint64_t *page_size, char *error_name,
                       size_t error_size) {
        sd_bus *bus = harness_bus(&h);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        struct row r;
        const char *kind, *name;
        int n = 0, k;

        if (sd_bus_call_method(bus, "org.kata.KsmThrottler", "/org/kata/KsmThrottler", "org.kata.KsmThrottler",
                               "GetSavings", &error, &reply, "u", limit) < 0) {
                snprintf(error_name, error_size, "%s: %s", error.name, error.message);
                sd_bus_error_free(&error);
                sd_bus_flush_close_unref(bus);
                return -1;
        }
        cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "(ssuuxttttd)"), 0, "the reply has no row array");
        while ((k = sd_bus_message_read(reply, "(ssuuxttttd)", &kind, &name, &r.pid, &r.n_processes, &r.profit_bytes,
                                        &r.merging_pages, &r.zero_pages, &r.rmap_items, &r.mergeable_bytes,
                                        &r.merged_share)) > 0) {
                snprintf(r.kind, sizeof r.kind, "%s", kind);
                snprintf(r.name, sizeof r.name, "%s", name);
                if ((size_t) n < max)
                        rows[n] = r;
                n++;
        }
        cr_assert_geq(k, 0, "a row does not read as (ssuuxttttd): %s", strerror(-k));
        cr_assert_geq(sd_bus_message_exit_container(reply), 0);
        cr_assert_gt(sd_bus_message_read(reply, "t", page_size), 0, "the reply has no page size");
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return n;
}

/* The innermost systemd unit in pid's cgroup ("" when none): the daemon groups the
 * process under it. */
static void unit_of(pid_t pid, char *unit, size_t size) {
        char path[64], line[4096];
        FILE *f;

        unit[0] = '\0';
        snprintf(path, sizeof path, "/proc/%d/cgroup", (int) pid);
        f = fopen(path, "re");
        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        while (fgets(line, sizeof line, f)) {
                if (strncmp(line, "0::", 3) != 0 && !strstr(line, ":name=systemd:"))
                        continue;
                line[strcspn(line, "\n")] = '\0';
                for (char *c = strtok(strchr(line, '/') ?: line, "/"); c; c = strtok(NULL, "/")) {
                        size_t len = strlen(c);
                        if ((len > 8 && strcmp(c + len - 8, ".service") == 0) ||
                            (len > 6 && strcmp(c + len - 6, ".scope") == 0))
                                snprintf(unit, size, "%s", c);
                }
        }
        fclose(f);
}

Test(savings, root_gets_the_row_of_a_process_with_mergeable_memory) {
        static struct row rows[1000];
        char error[512], unit[256], expected[64];
        uint64_t page_size = 0;
        int n;

        child = start_mergeable_child();
        n = get_savings(1000, rows, 1000, &page_size, error, sizeof error);
        cr_assert_geq(n, 1, "root's GetSavings failed or returned no rows: %s", n < 0 ? error : "0 rows");
        cr_assert_eq(page_size, (uint64_t) sysconf(_SC_PAGESIZE), "page_size %llu is not the kernel's page size",
                     (unsigned long long) page_size);

        unit_of(child, unit, sizeof unit);
        snprintf(expected, sizeof expected, CHILD_COMM "[%d]", (int) child);
        const struct row *found = NULL;
        for (int i = 0; i < n && i < 1000; i++)
                if (unit[0] ? strcmp(rows[i].kind, "unit") == 0 && strcmp(rows[i].name, unit) == 0
                            : strcmp(rows[i].kind, "process") == 0 && rows[i].pid == (uint32_t) child)
                        found = &rows[i];
        cr_assert_not_null(found, "no row for the child %d with mergeable memory (expected %s \"%s\") among %d rows",
                           (int) child, unit[0] ? "unit" : "process", unit[0] ? unit : expected, n);
        if (!unit[0])
                cr_assert_str_eq(found->name, expected, "the child's row is not named after its comm and pid");
        cr_assert_geq(found->n_processes, 1, "the child's row counts no process");
        cr_assert_eq(found->mergeable_bytes, UINT64_MAX,
                     "the daemon reads no smaps, so mergeable_bytes must say unknown, not %llu",
                     (unsigned long long) found->mergeable_bytes);
        cr_assert(found->merged_share == -1.0, "merged_share must be -1 (unknown) without smaps, not %g",
                  found->merged_share);
        for (int i = 1; i < n && i < 1000; i++)
                cr_assert_geq(rows[i - 1].profit_bytes, rows[i].profit_bytes, "rows %d and %d are not sorted by profit",
                              i - 1, i);
        cr_assert_eq(harness_polkit_checks(&h), 0, "root's GetSavings must not ask polkit");
}

Test(savings, limit_bounds_the_rows_and_an_excessive_limit_is_refused) {
        static struct row rows[1000];
        char error[512] = "";
        uint64_t page_size;
        int n;

        child = start_mergeable_child();
        n = get_savings(1, rows, 1000, &page_size, error, sizeof error);
        cr_assert_eq(n, 1, "GetSavings(1) returned %d rows (%s), wanted exactly 1: the child has mergeable memory", n,
                     error);
        n = get_savings(0, rows, 1000, &page_size, error, sizeof error);
        cr_assert(n >= 1 && n <= 100, "GetSavings(0) returned %d rows (%s), wanted 1..100 (the default)", n, error);
        n = get_savings(1001, rows, 1000, &page_size, error, sizeof error);
        cr_assert_eq(n, -1, "GetSavings(1001) was answered with %d rows; at most 1000 may be asked for", n);
        cr_assert_not_null(strstr(error, "org.freedesktop.DBus.Error.InvalidArgs"), "wrong error: %s", error);
        cr_assert_not_null(strstr(error, "at most 1000"), "the error does not say the bound: %s", error);
        n = get_savings(UINT32_MAX, rows, 1000, &page_size, error, sizeof error);
        cr_assert_eq(n, -1, "GetSavings(UINT32_MAX) was answered with %d rows", n);
}

Test(savings, nobody_is_refused_unless_polkit_allows_reading_savings) {
        const char *call[] = { "busctl", "call", "org.kata.KsmThrottler", "/org/kata/KsmThrottler",
                               "org.kata.KsmThrottler", "GetSavings", "u", "5", NULL };
        char output[65536];
        unsigned n_rows;

        child = start_mergeable_child(); /* root's: nobody sees it only when allowed */
        cr_assert_neq(harness_run(&h, true, output, sizeof output, call), 0, "nobody read the savings: %s", output);
        cr_assert_not_null(strstr(output, "Access denied"), "not refused as access denied: %s", output);

        /* Being allowed to kick is not being allowed to read other users' savings. */
        harness_polkit_call(&h, "SetAllowed", "as", 1, "org.kata.ksmthrottler.kick");
        cr_assert_neq(harness_run(&h, true, output, sizeof output, call), 0,
                      "the kick action let nobody read the savings: %s", output);

        harness_polkit_call(&h, "SetAllowed", "as", 1, READ_SAVINGS);
        cr_assert_eq(harness_run(&h, true, output, sizeof output, call), 0, "polkit allowed " READ_SAVINGS
                     " but nobody was refused: %s", output);
        cr_assert_eq(sscanf(output, "a(ssuuxttttd)t %u ", &n_rows), 1, "not a row array and page size: %s", output);
        cr_assert(n_rows >= 1 && n_rows <= 5, "nobody, allowed, got %u rows for limit 5, wanted at least root's child: %s",
                  n_rows, output);
        cr_assert_geq(harness_polkit_checks(&h), 3, "each of nobody's calls must ask polkit");
}
