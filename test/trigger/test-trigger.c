/* SPDX-License-Identifier: Apache-2.0 */
/* ksm-throttler-trigger against the real kernel interfaces (inotify, the process-events
 * connector, PSI files) and the real daemon on a private system-like bus. The daemon's
 * KickCount says how many kicks arrived; the trigger's log says what it saw. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct harness h;
static pid_t trigger_pid;
static char trigger_log[PATH_MAX + 32];

static void stop_trigger(void) {
        if (trigger_pid > 0) {
                kill(trigger_pid, SIGTERM);
                waitpid(trigger_pid, NULL, 0);
                trigger_pid = 0;
        }
}

static void setup(void) {
        harness_setup(&h, NULL);
        snprintf(trigger_log, sizeof trigger_log, "%s/trigger.log", h.dir);
}

static void teardown(void) {
        stop_trigger();
        harness_teardown(&h);
}

TestSuite(trigger, .init = setup, .fini = teardown, .timeout = 120);

static void path_in(char *buf, size_t size, const char *name) {
        int n = snprintf(buf, size, "%s/%s", h.dir, name);
        cr_assert(n > 0 && (size_t) n < size);
}

static void read_log(char *buf, size_t size) {
        FILE *f = fopen(trigger_log, "re");
        size_t n = 0;
        if (f) {
                n = fread(buf, 1, size - 1, f);
                fclose(f);
        }
        buf[n] = '\0';
}

static unsigned count_in_log(const char *needle) {
        static char log[1 << 16];
        unsigned n = 0;
        read_log(log, sizeof log);
        for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

static void sleep_ms(long ms) {
        struct timespec t = { ms / 1000, (ms % 1000) * 1000000 };
        nanosleep(&t, NULL);
}

/* Waits (bounded, so that a failing test ends) until the log holds needle n times. */
static void wait_log(const char *needle, unsigned n) {
        char log[1 << 14];
        for (int i = 0; i < 2000; i++) {
                if (count_in_log(needle) >= n)
                        return;
                if (trigger_pid > 0 && waitpid(trigger_pid, NULL, WNOHANG) == trigger_pid) {
                        trigger_pid = 0;
                        break;
                }
                sleep_ms(10);
        }
        read_log(log, sizeof log);
        cr_assert_fail("the trigger's log never showed \"%s\" %u time(s):\n%s", needle, n, log);
}

static uint64_t kicks(void) {
        sd_bus *bus = harness_bus(&h);
        uint64_t n = harness_get_u64(bus, "KickCount");
        sd_bus_flush_close_unref(bus);
        return n;
}

static void wait_kicks(uint64_t n) {
        char log[1 << 14];
        uint64_t now = 0;
        for (int i = 0; i < 2000 && (now = kicks()) < n; i++)
                sleep_ms(10);
        read_log(log, sizeof log);
        cr_assert_eq(now, n, "the throttler counted %llu kicks, expected %llu; trigger log:\n%s", (unsigned long long) now,
                     (unsigned long long) n, log);
}

/* The trigger with only the sources the arguments turn on, and a debounce. */
static void start_trigger(const char *debounce, const char *const extra[]) {
        const char *argv[40] = { TRIGGER_PATH, "--config=/dev/null", "--log-level=debug", "--watch=", "--machined=no",
                                 "--hypervisors=", "--pressure=no", "--debounce" };
        size_t n = 8;
        argv[n++] = debounce;
        for (size_t i = 0; extra[i] && n < 39; i++)
                argv[n++] = extra[i];
        argv[n] = NULL;
        trigger_pid = harness_spawn(&h, false, trigger_log, argv);
        wait_log("ksm-throttler-trigger " PROJECT_VERSION " running", 1);
}

static void start_throttler(void) {
        harness_write_fast_config(&h, "1h", NULL, NULL);
        harness_start_daemon(&h, NULL);
}

static void make_dir(const char *name) {
        char path[PATH_MAX];
        path_in(path, sizeof path, name);
        cr_assert_eq(mkdir(path, 0755), 0, "mkdir %s: %s", path, strerror(errno));
}

static void make_file(const char *name) {
        char path[PATH_MAX];
        path_in(path, sizeof path, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0, "create %s: %s", path, strerror(errno));
        close(fd);
}

static void rename_in(const char *from, const char *to) {
        char a[PATH_MAX], b[PATH_MAX];
        path_in(a, sizeof a, from);
        path_in(b, sizeof b, to);
        cr_assert_eq(rename(a, b), 0, "rename %s %s: %s", a, b, strerror(errno));
}

static void remove_tree(const char *name) {
        char path[PATH_MAX], cmd[PATH_MAX + 16];
        path_in(path, sizeof path, name);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
        cr_assert_eq(system(cmd), 0);
}

Test(trigger, directory_burst_kicks_once_at_once_and_holds_the_rest) {
        char sbs[PATH_MAX], watch[PATH_MAX + 16];
        start_throttler();
        make_dir("sbs");
        make_file("sbs/already-there");
        path_in(sbs, sizeof sbs, "sbs");
        snprintf(watch, sizeof watch, "--watch=%s", sbs);
        /* An hour: the trailing kick cannot come during the test, so the count is exact. */
        start_trigger("1h", (const char *const[]) { watch, NULL });
        wait_log("Watching ", 1);

        make_dir("sbs/3f2a");
        wait_kicks(1);
        cr_assert_eq(count_in_log("Kicking the throttler: directory: new sandbox"), 1, "an entry there before the trigger started is not new");
        make_file("sbs/b");
        make_dir("staging");
        make_dir("staging/c");
        rename_in("staging/c", "sbs/c");
        wait_log("Held for a kick at the end of the debounce interval", 2);
        cr_assert_eq(kicks(), 1, "events within the debounce interval must not kick again at once");
        cr_assert_eq(count_in_log("/sbs/c (moved in)"), 1, "a directory moved in is a new sandbox");
        cr_assert_eq(count_in_log("Kicking the throttler: directory: new sandbox"), 1);
}

Test(trigger, directory_burst_gives_a_trailing_kick) {
        char sbs[PATH_MAX], watch[PATH_MAX + 16];
        start_throttler();
        make_dir("sbs");
        path_in(sbs, sizeof sbs, "sbs");
        snprintf(watch, sizeof watch, "--watch=%s", sbs);
        start_trigger("2s", (const char *const[]) { watch, NULL });
        wait_log("Watching ", 1);

        make_file("sbs/1");
        make_file("sbs/2");
        make_file("sbs/3");
        make_file("sbs/4");
        make_file("sbs/5");
        wait_kicks(2);
        wait_log("(4 events since the last kick)", 1);
}

Test(trigger, directory_created_late_below_missing_parents) {
        char target[PATH_MAX], watch[PATH_MAX + 16];
        start_throttler();
        path_in(target, sizeof target, "late/vc/sbs");
        snprintf(watch, sizeof watch, "--watch=%s", target);
        start_trigger("0", (const char *const[]) { watch, NULL });
        wait_log("does not exist yet, waiting for it in", 1);

        make_dir("late");
        make_dir("late/vc");
        make_dir("late/vc/sbs");
        wait_log("appeared, watching it for new sandboxes", 1);
        cr_assert_eq(kicks(), 0, "an empty directory appearing is no sandbox");
        make_dir("late/vc/sbs/sandbox-1");
        wait_kicks(1);
        cr_assert_eq(count_in_log("Kicking the throttler: directory: new sandbox"), 1);
}

Test(trigger, directory_removed_recreated_and_moved_in) {
        char target[PATH_MAX], watch[PATH_MAX + 16];
        start_throttler();
        make_dir("sbs");
        path_in(target, sizeof target, "sbs");
        snprintf(watch, sizeof watch, "--watch=%s", target);
        start_trigger("0", (const char *const[]) { watch, NULL });
        wait_log("Watching ", 1);

        remove_tree("sbs");
        wait_log("does not exist, waiting for it in", 1);
        make_dir("sbs");
        wait_log("appeared, watching it for new sandboxes", 1);
        make_file("sbs/after-recreate");
        wait_kicks(1);

        /* A whole directory moved into place with a sandbox already in it. */
        remove_tree("sbs");
        wait_log("does not exist, waiting for it in", 2);
        make_dir("staging");
        make_dir("staging/sandbox-2");
        rename_in("staging", "sbs");
        wait_kicks(2);
        wait_log("sandbox-2 (there when the directory appeared)", 1);
}

/* Copies a program under a new name into the test directory. */
static void install_as(const char *program, const char *name, char *path, size_t size) {
        char cmd[2 * PATH_MAX];
        path_in(path, size, name);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", program, path);
        cr_assert_eq(system(cmd), 0);
}

/* Starts a copy of sleep(1) under path: a hypervisor outlives the moment the
 * trigger looks at it, and so must this. */
static pid_t start_program(const char *path) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                execl(path, path, "60", (char *) NULL);
                _exit(127);
        }
        return pid;
}

static void stop_program(pid_t pid) {
        kill(pid, SIGTERM);
        cr_assert_eq(waitpid(pid, NULL, 0), pid);
}

Test(trigger, process_exec_of_a_hypervisor_name_kicks) {
        char qemu[PATH_MAX], img[PATH_MAX], hypervisors[128], reason[PATH_MAX + 64];
        start_throttler();
        /* Names no one else on this machine runs, so that the count is ours alone. */
        snprintf(hypervisors, sizeof hypervisors, "--hypervisors=qemu-system-x86_64-%d", (int) getpid());
        start_trigger("0", (const char *const[]) { hypervisors, NULL });
        wait_log("Watching for hypervisors starting", 1);

        snprintf(reason, sizeof reason, "qemu-img-%d", (int) getpid());
        install_as("/bin/sleep", reason, img, sizeof img);
        pid_t other = start_program(img);
        snprintf(reason, sizeof reason, "qemu-system-x86_64-%d", (int) getpid());
        install_as("/bin/sleep", reason, qemu, sizeof qemu);
        pid_t vm = start_program(qemu);
        wait_kicks(1);
        stop_program(vm);
        stop_program(other);
        snprintf(reason, sizeof reason, "Kicking the throttler: process: exec of %s pid ", qemu);
        cr_assert_eq(count_in_log(reason), 1, "the kick's reason names the executable and its pid");
        cr_assert_eq(count_in_log("qemu-img-"), 0, "a program of another name is no hypervisor");
}

Test(trigger, process_default_names_match_the_real_executable_name) {
        char qemu[PATH_MAX], link[PATH_MAX], reason[PATH_MAX + 64];
        start_throttler();
        start_trigger("0", (const char *const[]) { "--hypervisors=" "qemu-system-*,qemu-kvm,cloud-hypervisor,firecracker,crosvm",
                                                   NULL });
        wait_log("Watching for hypervisors starting", 1);

        install_as("/bin/sleep", "qemu-system-x86_64", qemu, sizeof qemu);
        pid_t vm = start_program(qemu);
        snprintf(reason, sizeof reason, "Kicking the throttler: process: exec of %s pid %d ", qemu, (int) vm);
        wait_log(reason, 1);
        stop_program(vm);

        /* A symbolic link: the executable is sleep, argv[0] says firecracker. */
        path_in(link, sizeof link, "firecracker");
        cr_assert_eq(symlink("/bin/sleep", link), 0);
        vm = start_program(link);
        snprintf(reason, sizeof reason, "Kicking the throttler: process: exec of %s pid %d ", link, (int) vm);
        wait_log(reason, 1);
        stop_program(vm);
        /* Each exec kicks; others' hypervisors on this machine may add kicks. */
        for (int i = 0; i < 2000 && kicks() < 2; i++)
                sleep_ms(10);
        cr_assert_geq(kicks(), 2, "each exec kicks");
}

Test(trigger, process_source_without_cap_net_admin_says_so) {
        char out[8192];
        const char *argv[] = { TRIGGER_PATH, "--config=/dev/null", "--watch=", "--machined=no", "--pressure=no",
                               "--hypervisors=qemu-system-*", NULL };
        int status = harness_run(&h, true, out, sizeof out, argv);
        cr_assert_neq(status, 0, "with no source able to run the trigger must fail:\n%s", out);
        cr_assert(strstr(out, "CAP_NET_ADMIN"), "the message should name the missing capability:\n%s", out);
        cr_assert(strstr(out, "No event source is enabled or could start"), "%s", out);
}

static void write_pressure(const char *name, const char *avg10) {
        char path[PATH_MAX], tmp[PATH_MAX + 8];
        FILE *f;
        path_in(path, sizeof path, name);
        snprintf(tmp, sizeof tmp, "%s.new", path);
        f = fopen(tmp, "we");
        cr_assert_not_null(f);
        fprintf(f, "some avg10=%s avg60=0.00 avg300=0.00 total=1000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
                avg10);
        cr_assert_eq(fclose(f), 0);
        cr_assert_eq(rename(tmp, path), 0);
}

Test(trigger, pressure_polling_fallback_on_a_file) {
        char file[PATH_MAX], option[PATH_MAX + 32];
        start_throttler();
        write_pressure("pressure", "0.00");
        path_in(file, sizeof file, "pressure");
        snprintf(option, sizeof option, "--pressure-file=%s", file);
        start_trigger("0", (const char *const[]) { "--pressure=some 150000 1000000", option, "--pressure-interval=100ms",
                                                   NULL });
        cr_assert_eq(count_in_log("is not a kernel pressure file; polling its some avg10 every 100ms against 15.00% instead"), 1,
                     "the fallback is announced once, with its interval and threshold");

        write_pressure("pressure", "14.99");
        write_pressure("pressure", "15.00");
        wait_kicks(1);
        wait_log("some avg10=15.00% reached 15.00%", 1);
        /* Staying high is the same episode; falling and rising again is a new one. */
        write_pressure("pressure", "40.00");
        write_pressure("pressure", "0.50");
        sleep_ms(300); /* a few polls see the low value; the assertion below does not depend on it */
        write_pressure("pressure", "22.00");
        wait_kicks(2);
        cr_assert_eq(count_in_log("polling its some avg10"), 1, "the fallback is said once only");
}

Test(trigger, pressure_kernel_trigger_where_the_kernel_accepts_it) {
        start_throttler();
        if (access("/proc/pressure/memory", R_OK) < 0)
                cr_skip_test("no /proc/pressure/memory (kernel without PSI)");
        start_trigger("0", (const char *const[]) { "--pressure=some 150000 1000000", NULL });
        if (count_in_log("The kernel refuses a pressure trigger on /proc/pressure/memory")) {
                cr_assert_eq(count_in_log("polling its some avg10 every"), 1, "refused: the trigger falls back to polling");
                cr_skip_test("this kernel refuses PSI triggers (EINVAL); the polling fallback is tested on a file");
        }
        cr_assert_eq(count_in_log("Watching memory pressure with a kernel trigger on /proc/pressure/memory"), 1);
}

Test(trigger, kicks_wait_for_an_unreachable_throttler_and_survive_its_restart) {
        char sbs[PATH_MAX], watch[PATH_MAX + 16];
        make_dir("sbs");
        path_in(sbs, sizeof sbs, "sbs");
        snprintf(watch, sizeof watch, "--watch=%s", sbs);
        /* No throttler yet, and no activation file on this bus. */
        start_trigger("0", (const char *const[]) { watch, NULL });
        make_file("sbs/early");
        wait_log("Cannot reach the throttler to kick", 2);
        start_throttler();
        wait_kicks(1);
        wait_log("Kick delivered after ", 1);

        /* The throttler restarts: a kick meanwhile is retried until it is back. */
        harness_stop_daemon(&h, SIGTERM);
        make_file("sbs/while-down");
        wait_log("Cannot reach the throttler to kick", 3);
        start_throttler();
        wait_kicks(1); /* the new instance counts from zero */
        wait_log("Kick delivered after ", 2);
}

Test(trigger, invalid_configuration_exits_78_with_file_and_line) {
        char conf[PATH_MAX], out[8192], option[PATH_MAX + 16], want[PATH_MAX + 64];
        FILE *f;
        path_in(conf, sizeof conf, "trigger.conf");
        f = fopen(conf, "we");
        cr_assert_not_null(f);
        fputs("[Trigger]\n# sources\nHypervisors=qemu-*\nDebounceSec=often\n", f);
        fclose(f);
        snprintf(option, sizeof option, "--config=%s", conf);
        const char *argv[] = { TRIGGER_PATH, option, NULL };
        cr_assert_eq(harness_run(&h, false, out, sizeof out, argv), 78, "EX_CONFIG for an invalid value:\n%s", out);
        snprintf(want, sizeof want, "%s:4: invalid value \"often\" for DebounceSec", conf);
        cr_assert(strstr(out, want), "expected \"%s\" in:\n%s", want, out);

        const char *bad_option[] = { TRIGGER_PATH, "--config=/dev/null", "--machined=perhaps", NULL };
        cr_assert_eq(harness_run(&h, false, out, sizeof out, bad_option), 64, "EX_USAGE for an invalid option:\n%s", out);
        cr_assert(strstr(out, "--machined: invalid value \"perhaps\" for Machined: expected yes or no"), "%s", out);

        const char *unknown[] = { TRIGGER_PATH, "--frobnicate", NULL };
        cr_assert_eq(harness_run(&h, false, out, sizeof out, unknown), 64, "%s", out);
}
