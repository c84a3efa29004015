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

/* The trigger run by unshare(1), which blocks SIGTERM itself: stopped by its own PID,
 * and unshare then exits with it. */
static pid_t trigger_in_namespace_pid;

static void stop_trigger(void) {
        if (trigger_in_namespace_pid > 0) {
                kill(trigger_in_namespace_pid, SIGTERM);
                trigger_in_namespace_pid = 0;
        }
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

/* Throttlers that the bus started (activation) are not our children: stopped by their
 * PIDs all the same, and waited for until they are gone. */
static pid_t activated[128];
static size_t n_activated;

static void remember_activated(pid_t pid) {
        for (size_t i = 0; i < n_activated; i++)
                if (activated[i] == pid)
                        return;
        if (pid > 0 && n_activated < sizeof activated / sizeof activated[0])
                activated[n_activated++] = pid;
}

static void stop_activated(void) {
        for (size_t i = 0; i < n_activated; i++)
                if (kill(activated[i], SIGTERM) == 0)
                        harness_wait_gone(activated[i], 10);
        n_activated = 0;
}

static void teardown(void) {
        stop_trigger();
        stop_activated();
        harness_teardown(&h);
}

TestSuite(trigger, .init = setup, .fini = teardown, .timeout = 120);

/* Criterion does not run .fini for a skipped test: stop everything first. */
#define skip_test(...)                           \
        do {                                     \
                teardown();                      \
                cr_skip_test(__VA_ARGS__);       \
        } while (0)

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

/* The one child of pid, waited for until pid has forked it. */
static pid_t child_of(pid_t pid) {
        char path[64], buf[64] = "";
        for (int i = 0; i < 2000; i++) {
                snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int) pid, (int) pid);
                FILE *f = fopen(path, "re");
                cr_assert_not_null(f, "%s: %s", path, strerror(errno));
                size_t n = fread(buf, 1, sizeof buf - 1, f);
                fclose(f);
                buf[n] = '\0';
                if (n > 0)
                        return (pid_t) atoi(buf);
                sleep_ms(10);
        }
        cr_assert_fail("process %d never started its child", (int) pid);
        return 0;
}

/* In a PID namespace of its own (a container, a pod without hostPID) the kernel never
 * answers the subscription, and events that another subscriber brings carry host PIDs
 * that mean other processes in this /proc: the trigger says so and turns the source
 * off. The directory source keeps it running. unshare(1) is stopped by its PID, and
 * --kill-child takes the trigger with it. */
Test(trigger, process_source_in_a_pid_namespace_says_it_needs_the_hosts) {
        char sbs[PATH_MAX], watch[PATH_MAX + 16];
        char out[256];
        const char *probe[] = { "unshare", "--pid", "--fork", "--mount-proc", "true", NULL };
        if (harness_run(&h, false, out, sizeof out, probe) != 0)
                skip_test("cannot make a PID namespace here: %s", out);
        make_dir("sbs");
        path_in(sbs, sizeof sbs, "sbs");
        snprintf(watch, sizeof watch, "--watch=%s", sbs);
        const char *argv[] = { "unshare", "--pid", "--mount-proc", "--kill-child=SIGTERM", TRIGGER_PATH,
                               "--config=/dev/null", "--log-level=debug", "--watch=", watch, "--machined=no", "--pressure=no",
                               "--hypervisors=qemu-system-*", NULL };
        trigger_pid = harness_spawn(&h, false, trigger_log, argv);
        trigger_in_namespace_pid = child_of(trigger_pid);
        wait_log("ksm-throttler-trigger " PROJECT_VERSION " running: directory;", 1);
        cr_assert_eq(count_in_log("the process source needs the host's PID namespace (hostPID); "
                                  "it will see no hypervisor starts here"),
                     1, "the trigger must say once why the process source is off");
        cr_assert_eq(count_in_log("Watching for hypervisors starting"), 0, "the process source must be off");
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
        if (access("/proc/pressure/memory", R_OK) < 0)
                skip_test("no /proc/pressure/memory (kernel without PSI)");
        start_throttler();
        /* The default: a 2 s window, which kernels take without CAP_SYS_RESOURCE. */
        start_trigger("0", (const char *const[]) { "--pressure=some 300000 2000000", NULL });
        if (count_in_log("The kernel refuses a pressure trigger on /proc/pressure/memory")) {
                cr_assert_eq(count_in_log("polling its some avg10 every"), 1, "refused: the trigger falls back to polling");
                skip_test("this kernel refuses PSI triggers; the polling fallback is tested on a file");
        }
        cr_assert_eq(count_in_log("Watching memory pressure with a kernel trigger on /proc/pressure/memory: some 300000 2000000"),
                     1, "the kernel took the trigger; the log should say so");
}

Test(trigger, pressure_trigger_the_kernel_refuses_falls_back_to_polling) {
        if (access("/proc/pressure/memory", R_OK) < 0)
                skip_test("no /proc/pressure/memory (kernel without PSI)");
        start_throttler();
        /* A 1 s window: refused (EINVAL) by kernels that do not count us privileged. */
        start_trigger("0", (const char *const[]) { "--pressure=some 150000 1000000", NULL });
        if (count_in_log("Watching memory pressure with a kernel trigger"))
                skip_test("this kernel takes a 1 s trigger window from the trigger: nothing to fall back from");
        cr_assert_eq(count_in_log("The kernel refuses a pressure trigger on /proc/pressure/memory (Invalid argument); "
                                  "polling its some avg10 every 5s against 15.00% instead"),
                     1, "the fallback is announced once, with the kernel's error, the interval and the threshold");
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

/* A throttler that owns its name but has not yet registered its object, as one that
 * is starting: the bus name answers, the object does not (UnknownObject). Such a
 * kick is retried, not dropped. The stand-in is stopped by its PID. */
static pid_t start_name_without_object(void) {
        int ready[2];
        char c;
        cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                sd_bus *bus = NULL;
                close(ready[0]);
                if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, h.bus_address) < 0 ||
                    sd_bus_set_bus_client(bus, true) < 0 || sd_bus_start(bus) < 0 ||
                    sd_bus_request_name(bus, "org.kata.KsmThrottler", 0) < 0)
                        _exit(1);
                if (write(ready[1], "r", 1) != 1)
                        _exit(1);
                for (;;) /* sd-bus answers every call with UnknownObject: no object is registered */
                        if (sd_bus_process(bus, NULL) == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                                _exit(1);
        }
        close(ready[1]);
        cr_assert_eq(read(ready[0], &c, 1), 1, "the stand-in could not own org.kata.KsmThrottler");
        close(ready[0]);
        return pid;
}

Test(trigger, kick_answered_unknown_object_by_a_starting_throttler_is_retried) {
        char sbs[PATH_MAX], watch[PATH_MAX + 16];
        make_dir("sbs");
        path_in(sbs, sizeof sbs, "sbs");
        snprintf(watch, sizeof watch, "--watch=%s", sbs);
        pid_t starting = start_name_without_object();
        start_trigger("0", (const char *const[]) { watch, NULL });
        make_file("sbs/while-starting");
        wait_log("org.freedesktop.DBus.Error.UnknownObject", 1);
        kill(starting, SIGTERM);
        cr_assert_eq(waitpid(starting, NULL, 0), starting);
        start_throttler();
        wait_kicks(1);
        wait_log("Kick delivered after ", 1);
        cr_assert_eq(count_in_log("refused the kick"), 0, "UnknownObject is a throttler starting, not a refusal");
}

/* Replaces the harness's bus by one that activates the throttler from an activation
 * file, as the system bus does (there through systemd). */
static void restart_bus_with_activation(void) {
        char services[PATH_MAX], file[PATH_MAX + 64], extra[PATH_MAX + 64];
        FILE *f;

        path_in(services, sizeof services, "services");
        cr_assert_eq(mkdir(services, 0755), 0);
        snprintf(file, sizeof file, "%s/org.kata.KsmThrottler.service", services);
        f = fopen(file, "we");
        cr_assert_not_null(f);
        fprintf(f, "[D-BUS Service]\nName=org.kata.KsmThrottler\nExec=%s --config %s --ksm-dir %s --meminfo %s --runtime-dir %s\n"
                   "User=root\n", KSM_THROTTLER_PATH, h.config, h.ksm_dir, h.meminfo, h.runtime_dir);
        cr_assert_eq(fclose(f), 0);
        snprintf(extra, sizeof extra, "<servicedir>%s</servicedir>", services);
        harness_restart_bus(&h, extra);
}

/* A bus that activates the throttler, and the trigger watching sbs/ with no debounce.
 * Returns a connection to that bus. */
static sd_bus *start_trigger_on_an_activating_bus(void) {
        char sbs[PATH_MAX], watch[PATH_MAX + 16];

        restart_bus_with_activation();
        make_dir("sbs");
        path_in(sbs, sizeof sbs, "sbs");
        snprintf(watch, sizeof watch, "--watch=%s", sbs);
        start_trigger("0", (const char *const[]) { watch, NULL });
        return harness_bus(&h);
}

Test(trigger, first_kick_starts_the_throttler_through_bus_activation) {
        sd_bus *bus;

        harness_write_fast_config(&h, "1h", NULL, NULL);
        bus = start_trigger_on_an_activating_bus();
        cr_assert_not(harness_owner_pid(bus) > 0, "nothing should have started the throttler yet");

        make_dir("sbs/first");
        for (int i = 0; i < 2000 && harness_owner_pid(bus) == 0; i++)
                sleep_ms(10);
        cr_assert(harness_owner_pid(bus) > 0, "the kick should have started the throttler");
        remember_activated(harness_owner_pid(bus));
        sd_bus_flush_close_unref(bus);
        wait_kicks(1);
        cr_assert_eq(count_in_log("Cannot reach the throttler"), 0, "the activating kick must not fail:\n");
        harness_assert_knobs(&h, 1, 10000, 1, "after the activating kick");
}

/* A throttler with IdleExitSec=100ms and a cycle of a few ms exits about 100 ms after each
 * kick. New sandboxes appear at offsets that sweep that moment in steps of 250 us, so
 * that kicks land before the exit, while the old instance is releasing its name, and
 * while the bus starts the next one. Every one must be delivered, none given up. */
Test(trigger, kicks_around_the_throttlers_idle_exit_are_not_lost) {
        char name[64], log[1 << 14];
        unsigned rounds = 80, instances = 0;
        pid_t last = 0;
        sd_bus *bus;

        harness_write_config(&h, "[Throttler]\nIdleExitSec=100ms\nAdaptive=no\n"
                                 "[Aggressive]\nDurationSec=1ms\n[Standard]\nDurationSec=1ms\n[Slow]\nDurationSec=1ms\n");
        bus = start_trigger_on_an_activating_bus();

        for (unsigned round = 0; round < rounds; round++) {
                struct timespec delay = { 0, (100 + round % 80 / 4) * 1000 * 1000 + (round % 4) * 250 * 1000 };
                snprintf(name, sizeof name, "sbs/sandbox-%u", round);
                make_dir(name);
                nanosleep(&delay, NULL);
                pid_t pid = harness_owner_pid(bus);
                if (pid > 0 && pid != last) {
                        remember_activated(pid);
                        instances++;
                        last = pid;
                }
        }
        /* On a loaded machine the sweep may never see an exit: one more sandbox after the
         * idle exit is certain makes this test always cover a restart. */
        if (last > 0)
                cr_assert(harness_wait_gone(last, 20), "throttler %d did not exit when idle", (int) last);
        make_dir("sbs/after-the-exit");
        for (int i = 0; i < 2000 && (harness_owner_pid(bus) <= 0 || harness_owner_pid(bus) == last); i++)
                sleep_ms(10);
        if (harness_owner_pid(bus) > 0 && harness_owner_pid(bus) != last) {
                remember_activated(harness_owner_pid(bus));
                instances++;
        }
        rounds++;
        /* Sandboxes that appear while a kick is on its way (an activation on a loaded
         * machine takes longer than the sweep's step) are one more call, sent when it
         * is answered: the calls are the kicks asked for, less those held, plus those
         * follow-ups. Each call must be answered. */
        unsigned calls = 0, answered_twice = 0;
        for (int i = 0; i < 2000 && count_in_log("Giving up") == 0 && answered_twice < 2; i++) {
                calls = rounds - count_in_log("A kick is on its way; one more follows") -
                        count_in_log("A kick waits for its retry") +
                        count_in_log("Sending the kick asked for while the last one was on its way");
                /* Twice, 10 ms apart: a follow-up is logged just after the answer before it. */
                bool answered = count_in_log("Kick accepted") + count_in_log("Kick delivered after ") >= calls;
                answered_twice = answered ? answered_twice + 1 : 0;
                sleep_ms(10);
        }
        read_log(log, sizeof log);
        cr_assert_eq(count_in_log("Kicking the throttler: directory: new sandbox"), rounds,
                     "each new sandbox should have been one kick (debounce 0):\n%s", log);
        cr_assert_eq(count_in_log("Kick accepted") + count_in_log("Kick delivered after "), calls,
                     "every kick should have reached a throttler (%u calls):\n%s", calls, log);
        cr_assert_eq(count_in_log("Giving up") + count_in_log("refused the kick"), 0, "no kick may be lost:\n%s", log);
        cr_assert_geq(instances, 2, "the throttler should have exited when idle and been started again (%u instances)",
                      instances);
        /* The last kick may have started one more instance: each exits when idle. */
        for (int quiet = 0, t = 0; quiet < 50 && t < 3000; t++) {
                pid_t pid = harness_owner_pid(bus);
                quiet = pid > 0 ? 0 : quiet + 1;
                if (pid > 0) {
                        remember_activated(pid);
                        cr_assert(harness_wait_gone(pid, 20), "throttler %d did not exit when idle", (int) pid);
                }
                sleep_ms(10);
        }
        cr_assert(kill(trigger_pid, 0) == 0, "the trigger should still be running");
        harness_assert_knobs(&h, 0, 100, 20, "after the last idle exit: the host's values");
        sd_bus_flush_close_unref(bus);
}

/* examples/libvirt-hooks-qemu, run as libvirt runs it, with this build's ksmctl first in PATH. */
static int run_hook(const char *operation, char *out, size_t size) {
        char path[PATH_MAX + 64], ksmctl_dir[PATH_MAX];
        snprintf(ksmctl_dir, sizeof ksmctl_dir, "%s", KSMCTL_PATH);
        *strrchr(ksmctl_dir, '/') = '\0';
        snprintf(path, sizeof path, "PATH=%s:/usr/sbin:/usr/bin:/sbin:/bin", ksmctl_dir);
        const char *argv[] = { "env", path, SOURCE_ROOT "/examples/libvirt-hooks-qemu", "guest-1", operation, "begin", "-",
                               NULL };
        return harness_run(&h, false, out, size, argv);
}

Test(trigger, libvirt_hook_kicks_when_a_guest_started_and_never_fails) {
        char out[4096];
        start_throttler();
        cr_assert_eq(run_hook("prepare", out, sizeof out), 0, "%s", out);
        cr_assert_eq(run_hook("start", out, sizeof out), 0, "%s", out);
        cr_assert_eq(kicks(), 0, "only \"started\" kicks");
        cr_assert_eq(run_hook("started", out, sizeof out), 0, "%s", out);
        wait_kicks(1);
        cr_assert_str_eq(out, "", "the hook prints nothing for libvirtd");

        /* No throttler: the guest still starts. */
        harness_stop_daemon(&h, SIGTERM);
        cr_assert_eq(run_hook("started", out, sizeof out), 0, "the hook must exit 0 whatever happens to the kick: %s", out);
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
