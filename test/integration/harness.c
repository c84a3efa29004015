/* SPDX-License-Identifier: Apache-2.0 */
#define HARNESS_IMPLEMENTATION
#include "harness.h"
#include "ksmt-client.h"
#include "test-files.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* --- failure reports ----------------------------------------------------------------
 * The test binaries are linked with -Wl,--wrap=criterion_send_assert: every failed
 * assertion passes through here, in the test's own process. One that failed inside the
 * harness is moved to the test's line that called the harness, and the failure is noted
 * so that harness_teardown prints the daemon's log under it. */

static struct {
        const char *file;
        unsigned line;
} caller;
static bool test_failed;

void harness_called_from(const char *file, unsigned line) {
        caller.file = file;
        caller.line = line;
}

void __real_criterion_send_assert(struct criterion_assert_stats *stats);
void __wrap_criterion_send_assert(struct criterion_assert_stats *stats);
void __wrap_criterion_send_assert(struct criterion_assert_stats *stats) {
        static char message[4096];
        const char *base;

        if (!stats->passed) {
                test_failed = true;
                base = strrchr(stats->file, '/');
                base = base ? base + 1 : stats->file;
                if (caller.file && strcmp(base, "harness.c") == 0) {
                        snprintf(message, sizeof message, "%s [in harness.c:%u]",
                                 stats->message && *stats->message ? stats->message : "(no message)", stats->line);
                        stats->message = message;
                        stats->file = caller.file;
                        stats->line = caller.line;
                }
        }
        __real_criterion_send_assert(stats);
}

#define DAEMON_LOG_TAIL_LINES 50

/* The last lines of the daemon's log on stderr, which meson shows under a failed test. */
static void print_daemon_log_tail(struct harness *h) {
        char *text = NULL;
        const char *start;
        struct stat st;
        size_t n = 0;
        int lines = 0;
        FILE *f;

        f = fopen(h->daemon_log, "re");
        if (!f)
                return;
        if (fstat(fileno(f), &st) == 0 && st.st_size > 0 && (text = malloc((size_t) st.st_size + 1)))
                n = fread(text, 1, (size_t) st.st_size, f);
        fclose(f);
        if (!text || n == 0) {
                free(text);
                return;
        }
        text[n] = '\0';
        for (start = text + n; start > text; start--)
                if (start[-1] == '\n' && start != text + n && ++lines > DAEMON_LOG_TAIL_LINES)
                        break;
        fprintf(stderr, "---- the daemon's log, last %d lines (%s%s) ----\n%s%s---- end of the daemon's log ----\n",
                DAEMON_LOG_TAIL_LINES, h->daemon_log,
                getenv("KSM_THROTTLER_TEST_KEEP") ? ", kept" : "; KSM_THROTTLER_TEST_KEEP=1 keeps it", start,
                text[n - 1] == '\n' ? "" : "\n");
        free(text);
}

#ifdef HARNESS_LOCK_REAL_KSM
/* --- the real KSM, one checkout at a time ----------------------------------------------
 * /sys/kernel/mm/ksm is global to the machine: a binary that tests on it holds
 * /tmp/ksm-real.lock (KSM_THROTTLER_KSM_LOCK) for its whole run, before any test saves a
 * knob. A parent that holds it already (flock /tmp/ksm-real.lock meson test ...) counts. */

static bool lock_held_by_a_parent(int fd) {
        char line[256], status_path[64];
        pid_t holders[64];
        size_t n_holders = 0;
        struct stat st;
        FILE *f;

        if (fstat(fd, &st) < 0 || !(f = fopen("/proc/locks", "re")))
                return false;
        /* "1: FLOCK  ADVISORY  WRITE 4610 fe:00:10953027 0 EOF"; waiters have "->" after "1:". */
        while (fgets(line, sizeof line, f) && n_holders < 64) {
                char kind[16], id[64];
                unsigned long long inode;
                int pid;
                const char *colon;
                if (sscanf(line, "%*s %15s %*s %*s %d %63s", kind, &pid, id) != 3 || strcmp(kind, "FLOCK") != 0)
                        continue;
                colon = strrchr(id, ':');
                if (colon && sscanf(colon + 1, "%llu", &inode) == 1 && inode == (unsigned long long) st.st_ino)
                        holders[n_holders++] = pid;
        }
        fclose(f);

        for (pid_t pid = getppid(); pid > 1;) {
                int parent = 0;
                for (size_t i = 0; i < n_holders; i++)
                        if (holders[i] == pid)
                                return true;
                snprintf(status_path, sizeof status_path, "/proc/%d/status", (int) pid);
                if (!(f = fopen(status_path, "re")))
                        break;
                while (fgets(line, sizeof line, f))
                        if (sscanf(line, "PPid: %d", &parent) == 1)
                                break;
                fclose(f);
                pid = parent;
        }
        return false;
}

/* Waits up to KSM_THROTTLER_KSM_LOCK_TIMEOUT seconds (default 600; meson's timeout for the
 * suite leaves room for it); after that the run is skipped as TAP, naming the holder. */
static void on_lock_alarm(int sig) {
        (void) sig; /* only interrupts flock() */
}

__attribute__((constructor)) static void lock_real_ksm(void) {
        struct sigaction previous;
        int r;
        const char *path = getenv("KSM_THROTTLER_KSM_LOCK") ?: "/tmp/ksm-real.lock";
        const char *timeout_text = getenv("KSM_THROTTLER_KSM_LOCK_TIMEOUT");
        long timeout = timeout_text ? strtol(timeout_text, NULL, 10) : 600;
        int fd;

        if (access("/sys/kernel/mm/ksm/run", W_OK) < 0)
                return; /* nothing to share: the tests skip themselves */
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
                fprintf(stderr, "# cannot open %s (%s): running without the real-KSM lock\n", path, strerror(errno));
                return;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
                return; /* held until the process exits; the daemon does not inherit it (O_CLOEXEC) */
        if (lock_held_by_a_parent(fd)) {
                close(fd);
                return;
        }
        fprintf(stderr, "# waiting up to %ld s for %s: another checkout is using the real KSM\n", timeout, path);
        /* A blocking wait, cut short by SIGALRM: polling with LOCK_NB would lose every
         * hand-over to the blocked waiters of other checkouts. */
        sigaction(SIGALRM, &(struct sigaction) { .sa_handler = on_lock_alarm }, &previous);
        alarm((unsigned) (timeout > 0 ? timeout : 1));
        r = flock(fd, LOCK_EX);
        alarm(0);
        sigaction(SIGALRM, &previous, NULL);
        if (r < 0) {
                printf("1..0 # SKIP the real KSM has been in use by another checkout for %ld s (%s is held)\n", timeout,
                       path);
                exit(EXIT_SUCCESS);
        }
}
#endif

static void write_file(const char *path, const char *text) {
        test_write_file(path, text, 0644);
}

static void path_join(char *buf, size_t size, const char *dir, const char *name) {
        int n = snprintf(buf, size, "%s/%s", dir, name);
        cr_assert(n > 0 && (size_t) n < size, "path too long");
}

void harness_set_knob(struct harness *h, const char *name, const char *text) {
        char path[PATH_MAX + 64];
        path_join(path, sizeof path, h->ksm_dir, name);
        write_file(path, text);
}

/* Appends template to out, replacing each @KEY@ by its value. */
static void substitute(char *out, size_t size, const char *template, const char *const keys[], const char *const values[]) {
        size_t used = 0;
        while (*template) {
                const char *value = NULL;
                size_t skip = 1;
                for (size_t k = 0; keys[k]; k++)
                        if (strncmp(template, keys[k], strlen(keys[k])) == 0) {
                                value = values[k];
                                skip = strlen(keys[k]);
                        }
                size_t len = value ? strlen(value) : 1;
                cr_assert_lt(used + len, size, "bus configuration too long");
                memcpy(out + used, value ?: template, len);
                used += len;
                template += skip;
        }
        out[used] = '\0';
}

static void start_bus(struct harness *h, const char *extra_config) {
        static const char *const keys[] = { "@DIR@", "@POLICY@", "@EXTRA@", NULL };
        const char *values[] = { h->dir, SOURCE_ROOT "/dbus/org.kata.KsmThrottler.conf", extra_config };
        char config_path[PATH_MAX + 32], template[8192], config[16384];
        int pipefd[2];
        ssize_t n;
        FILE *f;

        f = fopen(SOURCE_ROOT "/test/data/system-bus.conf.in", "re");
        cr_assert_not_null(f);
        n = (ssize_t) fread(template, 1, sizeof template - 1, f);
        fclose(f);
        template[n] = '\0';
        substitute(config, sizeof config, template, keys, values);
        path_join(config_path, sizeof config_path, h->dir, "bus.conf");
        write_file(config_path, config);

        cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
        h->bus_pid = fork();
        cr_assert_geq(h->bus_pid, 0);
        if (h->bus_pid == 0) {
                char fd_arg[32], log_path[PATH_MAX + 32];
                int log_fd;
                dup2(pipefd[1], 3);
                /* Its complaints (e.g. about the fd limit) go to a log in the test directory. */
                path_join(log_path, sizeof log_path, h->dir, "bus.log");
                log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (log_fd >= 0) {
                        dup2(log_fd, STDOUT_FILENO);
                        dup2(log_fd, STDERR_FILENO);
                }
                snprintf(fd_arg, sizeof fd_arg, "--print-address=3");
                execlp("dbus-daemon", "dbus-daemon", "--config-file", config_path, "--nofork", fd_arg, "--nosyslog",
                       (char *) NULL);
                _exit(127);
        }
        close(pipefd[1]);
        n = read(pipefd[0], h->bus_address, sizeof h->bus_address - 1);
        close(pipefd[0]);
        cr_assert_gt(n, 0, "dbus-daemon did not start");
        h->bus_address[n] = '\0';
        h->bus_address[strcspn(h->bus_address, "\n")] = '\0';
}

void harness_restart_bus(struct harness *h, const char *extra_config) {
        char socket_path[PATH_MAX + 32];

        if (h->bus_pid > 0) {
                kill(h->bus_pid, SIGTERM);
                cr_assert_eq(waitpid(h->bus_pid, NULL, 0), h->bus_pid);
                h->bus_pid = 0;
        }
        path_join(socket_path, sizeof socket_path, h->dir, "bus");
        unlink(socket_path);
        start_bus(h, extra_config);
}

void harness_setup(struct harness *h, const char *advisor) {
        char text[256];

        *h = (struct harness) {};
        test_failed = false;
        snprintf(h->dir, sizeof h->dir, "/tmp/ksm-throttler-test.XXXXXX");
        test_mkdtemp(h->dir);
        /* Reachable by the unprivileged test user (uid 65534). */
        cr_assert_eq(chmod(h->dir, 0755), 0);

        path_join(h->ksm_dir, sizeof h->ksm_dir, h->dir, "ksm");
        path_join(h->runtime_dir, sizeof h->runtime_dir, h->dir, "run");
        path_join(h->meminfo, sizeof h->meminfo, h->dir, "meminfo");
        path_join(h->config, sizeof h->config, h->dir, "ksm-throttler.conf");
        path_join(h->daemon_log, sizeof h->daemon_log, h->dir, "daemon.log");
        cr_assert_eq(mkdir(h->ksm_dir, 0755), 0);

        harness_set_knob(h, "run", "0\n");
        harness_set_knob(h, "pages_to_scan", "100\n");
        harness_set_knob(h, "sleep_millisecs", "20\n");
        if (advisor)
                harness_set_knob(h, "advisor_mode", advisor);
        harness_set_knob(h, "pages_shared", "1000\n");
        harness_set_knob(h, "pages_sharing", "5000\n");
        harness_set_knob(h, "pages_unshared", "300\n");
        harness_set_knob(h, "pages_volatile", "20\n");
        harness_set_knob(h, "full_scans", "7\n");
        harness_set_knob(h, "general_profit", "20185088\n");

        snprintf(text, sizeof text, "MemTotal:       24000000 kB\nMemFree:        20000000 kB\nAnonPages:      %d kB\nMapped:  1000 kB\n",
                 HARNESS_ANON_KB);
        write_file(h->meminfo, text);

        /* As on a system with polkit installed: its policy lets anyone call it. The mock runs as root. */
        start_bus(h, "  <policy user=\"root\">\n"
                     "    <allow own=\"org.freedesktop.PolicyKit1\"/>\n"
                     "  </policy>\n"
                     "  <policy context=\"default\">\n"
                     "    <allow send_destination=\"org.freedesktop.PolicyKit1\"/>\n"
                     "  </policy>\n");
}

void harness_use_real_ksm(struct harness *h) {
        snprintf(h->ksm_dir, sizeof h->ksm_dir, "/sys/kernel/mm/ksm");
        snprintf(h->meminfo, sizeof h->meminfo, "/proc/meminfo");
}

static int wait_exit(pid_t pid, double timeout_sec) {
        struct timespec delay = { 0, 10 * 1000 * 1000 };
        int status;

        for (int i = 0; i < timeout_sec * 100; i++) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (r < 0)
                        return -errno;
                nanosleep(&delay, NULL);
        }
        return -ETIMEDOUT;
}

static void stop_process(pid_t *pid, int sig) {
        if (*pid <= 0)
                return;
        kill(*pid, sig);
        if (wait_exit(*pid, 10) == -ETIMEDOUT) {
                kill(*pid, SIGKILL);
                waitpid(*pid, NULL, 0);
        }
        *pid = 0;
}

void harness_teardown(struct harness *h) {
        if (h->daemon_pid > 0 && getenv("KSM_THROTTLER_TEST_WRAPPER")) {
                /* Under valgrind, a clean SIGTERM exit is the verdict: no leak, no error. */
                char log[16384];
                kill(h->daemon_pid, SIGTERM);
                int status = wait_exit(h->daemon_pid, 60);
                h->daemon_pid = 0;
                harness_daemon_log(h, log, sizeof log);
                cr_expect_eq(status, 0, "the daemon exited with %d under %s:\n%s", status,
                             getenv("KSM_THROTTLER_TEST_WRAPPER"), log);
        }
        stop_process(&h->daemon_pid, SIGTERM);
        if (test_failed)
                print_daemon_log_tail(h); /* after the stop: it holds the daemon's last words */
        stop_process(&h->polkit_pid, SIGTERM);
        stop_process(&h->bus_pid, SIGTERM);
        if (h->dir[0] && getenv("KSM_THROTTLER_TEST_KEEP") == NULL)
                test_rm_rf(h->dir);
}

void harness_write_config(struct harness *h, const char *text) {
        write_file(h->config, text);
}

void harness_write_fast_config(struct harness *h, const char *aggressive, const char *standard, const char *slow) {
        char text[512];
        snprintf(text, sizeof text,
                 "[Aggressive]\nDurationSec=%s\n[Standard]\nDurationSec=%s\n[Slow]\nDurationSec=%s\n",
                 aggressive ?: "1s", standard ?: "600ms", slow ?: "600ms");
        harness_write_config(h, text);
}

/* A tool to run the daemon under, from KSM_THROTTLER_TEST_WRAPPER (e.g. valgrind, set by
 * "meson test --setup=valgrind"), split at spaces into argv. */
static size_t wrapper_argv(const char *argv[], size_t max) {
        static char words[1024];
        const char *wrapper = getenv("KSM_THROTTLER_TEST_WRAPPER");
        size_t n = 0;

        if (!wrapper || !*wrapper)
                return 0;
        snprintf(words, sizeof words, "%s", wrapper);
        for (char *save = NULL, *word = strtok_r(words, " ", &save); word && n < max; word = strtok_r(NULL, " ", &save))
                argv[n++] = word;
        return n;
}

/* argv for the daemon: the standard options, then extras from the va_list. */
static void daemon_argv(struct harness *h, const char *argv[], size_t max, va_list ap) {
        size_t n = wrapper_argv(argv, 8);
        const char *extra;

        argv[n++] = KSM_THROTTLER_PATH;
        argv[n++] = "--config";
        argv[n++] = h->config;
        argv[n++] = "--ksm-dir";
        argv[n++] = h->ksm_dir;
        argv[n++] = "--meminfo";
        argv[n++] = h->meminfo;
        argv[n++] = "--runtime-dir";
        argv[n++] = h->runtime_dir;
        while ((extra = va_arg(ap, const char *)) && n < max - 1)
                argv[n++] = extra;
        argv[n] = NULL;
}

/* With as_journal, the program is told that its stderr is the journal (JOURNAL_STREAM names
 * its device and inode), as systemd tells a service: the daemon then writes "<N>" prefixes. */
static pid_t spawn(struct harness *h, const char *const argv[], int out_fd, bool as_nobody, bool as_journal) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                const char *nobody_argv[64] = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                                "--inh-caps=-all" };
                setenv("DBUS_SYSTEM_BUS_ADDRESS", h->bus_address, 1);
                if (h->notify_socket[0])
                        setenv("NOTIFY_SOCKET", h->notify_socket, 1);
                else
                        unsetenv("NOTIFY_SOCKET");
                unsetenv("RUNTIME_DIRECTORY");
                unsetenv("JOURNAL_STREAM");
                if (out_fd >= 0) {
                        struct stat st;
                        dup2(out_fd, STDOUT_FILENO);
                        dup2(out_fd, STDERR_FILENO);
                        if (as_journal && fstat(STDERR_FILENO, &st) == 0) {
                                char stream[64];
                                snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long) st.st_dev,
                                         (unsigned long long) st.st_ino);
                                setenv("JOURNAL_STREAM", stream, 1);
                        }
                }
                if (as_nobody) {
                        size_t n = 5;
                        for (size_t i = 0; argv[i] && n < 63; i++)
                                nobody_argv[n++] = argv[i];
                        nobody_argv[n] = NULL;
                        execvp(nobody_argv[0], (char **) nobody_argv);
                } else
                        execvp(argv[0], (char **) argv);
                _exit(127);
        }
        return pid;
}

sd_bus *harness_bus(struct harness *h) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        cr_assert_geq(r, 0);
        cr_assert_geq(sd_bus_set_address(bus, h->bus_address), 0);
        cr_assert_geq(sd_bus_set_bus_client(bus, true), 0);
        r = sd_bus_start(bus);
        cr_assert_geq(r, 0, "cannot connect to the private bus: %s", strerror(-r));
        return bus;
}

void harness_daemon_log(struct harness *h, char *buf, size_t size) {
        FILE *f = fopen(h->daemon_log, "re");
        size_t n = 0;
        if (f) {
                n = fread(buf, 1, size - 1, f);
                fclose(f);
        }
        buf[n] = '\0';
}

void harness_start_daemon(struct harness *h, ...) {
        const char *argv[48];
        sd_bus *bus;
        va_list ap;
        int log_fd, status;

        va_start(ap, h);
        daemon_argv(h, argv, 48, ap);
        va_end(ap);

        log_fd = open(h->daemon_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        cr_assert_geq(log_fd, 0);
        h->daemon_pid = spawn(h, argv, log_fd, false, true);
        close(log_fd);

        bus = harness_bus(h);
        for (int i = 0; i < 3000; i++) {
                struct timespec delay = { 0, 10 * 1000 * 1000 };
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int owned;

                if (waitpid(h->daemon_pid, &status, WNOHANG) == h->daemon_pid) {
                        char log[8192];
                        h->daemon_pid = 0;
                        harness_daemon_log(h, log, sizeof log);
                        sd_bus_flush_close_unref(bus);
                        cr_assert_fail("the daemon exited at start (status %d):\n%s", status, log);
                }
                owned = ksmt_name_has_owner(bus, KSM_THROTTLER_BUS_NAME);
                if (owned > 0) {
                        /* Owning the name comes before recovery and READY=1; an answered Ping
                         * means the daemon is serving. */
                        int r = sd_bus_call_method(bus, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH,
                                                   "org.freedesktop.DBus.Peer", "Ping", &error, NULL, NULL);
                        cr_assert_geq(r, 0, "the daemon owns its name but does not answer: %s",
                                      error.message ?: strerror(-r));
                        sd_bus_error_free(&error);
                        sd_bus_flush_close_unref(bus);
                        return;
                }
                nanosleep(&delay, NULL);
        }
        sd_bus_flush_close_unref(bus);
        cr_assert_fail("the daemon did not own " KSM_THROTTLER_BUS_NAME " within 30 s");
}

int harness_stop_daemon(struct harness *h, int sig) {
        int status;
        cr_assert_gt(h->daemon_pid, 0, "no daemon to stop");
        kill(h->daemon_pid, sig);
        status = wait_exit(h->daemon_pid, 20);
        cr_assert_neq(status, -ETIMEDOUT, "the daemon did not exit within 20 s of signal %d", sig);
        h->daemon_pid = 0;
        return status;
}

static int collect(pid_t pid, int fd, char *output, size_t size) {
        size_t used = 0;
        int status;

        for (;;) {
                char discard[4096];
                ssize_t n = used < size - 1 ? read(fd, output + used, size - 1 - used) : read(fd, discard, sizeof discard);
                if (n <= 0)
                        break;
                if (used < size - 1)
                        used += (size_t) n;
        }
        output[used] = '\0';
        close(fd);
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run_collect(struct harness *h, bool as_nobody, bool as_journal, char *output, size_t size,
                       const char *const argv[]) {
        int pipefd[2];
        pid_t pid;

        cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid = spawn(h, argv, pipefd[1], as_nobody, as_journal);
        close(pipefd[1]);
        return collect(pid, pipefd[0], output, size);
}

int harness_run(struct harness *h, bool as_nobody, char *output, size_t size, const char *const argv[]) {
        return run_collect(h, as_nobody, false, output, size, argv);
}

int harness_run_daemon(struct harness *h, char *output, size_t size, ...) {
        const char *argv[48];
        va_list ap;

        va_start(ap, size);
        daemon_argv(h, argv, 48, ap);
        va_end(ap);
        return run_collect(h, false, true, output, size, argv);
}

void harness_knob_text(struct harness *h, const char *name, char *buf, size_t size) {
        char path[PATH_MAX + 64];
        FILE *f;
        size_t n;

        path_join(path, sizeof path, h->ksm_dir, name);
        f = fopen(path, "re");
        cr_assert_not_null(f, "cannot read %s: %s", path, strerror(errno));
        n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
}

uint32_t harness_knob(struct harness *h, const char *name) {
        char text[64], *end;
        unsigned long v;

        harness_knob_text(h, name, text, sizeof text);
        errno = 0;
        v = strtoul(text, &end, 10);
        cr_assert(errno == 0 && end != text && (*end == '\n' || *end == '\0'), "knob %s holds \"%s\"", name, text);
        return (uint32_t) v;
}

void harness_get_state(sd_bus *bus, char *buf, size_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *state = NULL;
        int r;

        r = sd_bus_get_property_string(bus, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE,
                                       "State", &error, &state);
        cr_assert_geq(r, 0, "Get State failed: %s", error.message ?: strerror(-r));
        snprintf(buf, size, "%s", state);
        free(state);
        sd_bus_error_free(&error);
}

bool harness_wait_state(sd_bus *bus, const char *state, double timeout_sec) {
        struct timespec delay = { 0, 10 * 1000 * 1000 };
        char now[32];

        for (int i = 0; i < timeout_sec * 100; i++) {
                harness_get_state(bus, now, sizeof now);
                if (strcmp(now, state) == 0)
                        return true;
                nanosleep(&delay, NULL);
        }
        return false;
}

void harness_kick(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH, KSM_THROTTLER_INTERFACE, "Kick",
                                   &error, NULL, NULL);
        cr_assert_geq(r, 0, "Kick failed: %s: %s", error.name, error.message);
        sd_bus_error_free(&error);
}

uint64_t harness_get_u64(sd_bus *bus, const char *property) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t value = 0;
        int r = sd_bus_get_property_trivial(bus, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH,
                                            KSM_THROTTLER_INTERFACE, property, &error, 't', &value);
        cr_assert_geq(r, 0, "Get %s failed: %s", property, error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        return value;
}

pid_t harness_owner_pid(sd_bus *bus) {
        sd_bus_message *reply = NULL;
        uint32_t pid = 0;

        if (sd_bus_call_method(bus, DBUS_DRIVER_NAME, DBUS_DRIVER_PATH, DBUS_DRIVER_INTERFACE,
                               "GetConnectionUnixProcessID", NULL, &reply, "s", KSM_THROTTLER_BUS_NAME) < 0)
                return 0;
        cr_assert_geq(sd_bus_message_read(reply, "u", &pid), 0);
        sd_bus_message_unref(reply);
        return (pid_t) pid;
}

bool harness_wait_gone(pid_t pid, double timeout_sec) {
        struct timespec delay = { 0, 10 * 1000 * 1000 };
        for (int i = 0; i < timeout_sec * 100 && (kill(pid, 0) == 0 || errno != ESRCH); i++)
                nanosleep(&delay, NULL);
        return kill(pid, 0) < 0 && errno == ESRCH;
}

pid_t harness_spawn(struct harness *h, bool as_nobody, const char *output_path, const char *const argv[]) {
        int fd = open(output_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        pid_t pid;

        cr_assert_geq(fd, 0);
        pid = spawn(h, argv, fd, as_nobody, false);
        close(fd);
        return pid;
}

static bool name_has_owner(sd_bus *bus, const char *name) {
        return ksmt_name_has_owner(bus, name) > 0;
}

void harness_start_polkit(struct harness *h, bool template) {
        const char *with_template[] = { "/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "polkitd", NULL };
        const char *bare[] = { "/usr/bin/python3", "-m", "dbusmock", "--system", "org.freedesktop.PolicyKit1",
                               "/org/freedesktop/PolicyKit1/Authority", "org.freedesktop.PolicyKit1.Authority", NULL };
        char log_path[PATH_MAX + 32];
        sd_bus *bus = harness_bus(h);

        path_join(log_path, sizeof log_path, h->dir, "polkit.log");
        h->polkit_pid = harness_spawn(h, false, log_path, template ? with_template : bare);
        for (int i = 0; i < 1000 && !name_has_owner(bus, "org.freedesktop.PolicyKit1"); i++) {
                struct timespec delay = { 0, 10 * 1000 * 1000 };
                cr_assert_eq(waitpid(h->polkit_pid, NULL, WNOHANG), 0, "the polkit mock exited; see %s", log_path);
                nanosleep(&delay, NULL);
        }
        cr_assert(name_has_owner(bus, "org.freedesktop.PolicyKit1"), "the polkit mock did not come up");
        sd_bus_flush_close_unref(bus);
}

void harness_polkit_call(struct harness *h, const char *member, const char *signature, ...) {
        sd_bus *bus = harness_bus(h);
        sd_bus_message *call = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        cr_assert_geq(sd_bus_message_new_method_call(bus, &call, "org.freedesktop.PolicyKit1",
                                                     "/org/freedesktop/PolicyKit1/Authority", "org.freedesktop.DBus.Mock",
                                                     member),
                      0);
        va_start(ap, signature);
        r = sd_bus_message_appendv(call, signature, ap);
        va_end(ap);
        cr_assert_geq(r, 0);
        r = sd_bus_call(bus, call, 0, &error, NULL);
        cr_assert_geq(r, 0, "mock %s failed: %s", member, error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(call);
        sd_bus_flush_close_unref(bus);
}

unsigned harness_polkit_checks(struct harness *h) {
        sd_bus *bus = harness_bus(h);
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        unsigned n = 0;
        int r;

        r = sd_bus_call_method(bus, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                               "org.freedesktop.DBus.Mock", "GetMethodCalls", &error, &reply, "s", "CheckAuthorization");
        cr_assert_geq(r, 0, "GetMethodCalls failed: %s", error.message ?: strerror(-r));
        cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "(tav)"), 0);
        while ((r = sd_bus_message_skip(reply, "(tav)")) > 0)
                n++;
        cr_assert_geq(r, 0);
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return n;
}

struct kick_result {
        bool done;
        char line[256];
};

static int on_kick_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct kick_result *result = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        (void) ret_error;
        if (e)
                snprintf(result->line, sizeof result->line, "%s: %s", e->name, e->message ?: "");
        else
                snprintf(result->line, sizeof result->line, "OK");
        result->done = true;
        return 0;
}

/* In the child: drop to nobody, fire n Kick() calls at once, print one line per reply. */
static int kick_as_nobody_child(struct harness *h, unsigned n, bool interactive, int out_fd) {
        struct kick_result results[64] = {};
        sd_bus *bus = NULL;
        unsigned done = 0;

        if (n > 64 || setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                return 2;
        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, h->bus_address) < 0 || sd_bus_set_bus_client(bus, true) < 0 ||
            sd_bus_start(bus) < 0)
                return 3;
        sd_bus_set_allow_interactive_authorization(bus, interactive);
        for (unsigned i = 0; i < n; i++)
                if (sd_bus_call_method_async(bus, NULL, KSM_THROTTLER_BUS_NAME, KSM_THROTTLER_OBJECT_PATH,
                                             KSM_THROTTLER_INTERFACE, "Kick", on_kick_reply, &results[i], NULL) < 0)
                        return 4;
        while (done < n) {
                if (sd_bus_process(bus, NULL) == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        return 5;
                done = 0;
                for (unsigned i = 0; i < n; i++)
                        done += results[i].done;
        }
        for (unsigned i = 0; i < n; i++)
                dprintf(out_fd, "%s\n", results[i].line);
        sd_bus_flush_close_unref(bus);
        return 0;
}

int harness_kick_as_nobody(struct harness *h, unsigned n, bool interactive, char *results, size_t size) {
        int pipefd[2], status, ok = 0;
        pid_t pid;

        cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(pipefd[0]);
                _exit(kick_as_nobody_child(h, n, interactive, pipefd[1]));
        }
        close(pipefd[1]);
        status = collect(pid, pipefd[0], results, size);
        cr_assert_eq(status, 0, "the unprivileged client failed with %d", status);
        for (const char *line = results; (line = strstr(line, "OK\n")); line += 3)
                ok++;
        return ok;
}

void harness_start_aggressive(struct harness *h) {
        sd_bus *bus;

        harness_write_fast_config(h, "1h", NULL, NULL);
        harness_start_daemon(h, NULL);
        bus = harness_bus(h);
        harness_kick(bus);
        sd_bus_flush_close_unref(bus);
}

sd_bus *harness_start_in_standard(struct harness *h) {
        sd_bus *bus;

        harness_write_fast_config(h, "300ms", "1h", NULL);
        harness_start_daemon(h, NULL);
        bus = harness_bus(h);
        harness_kick(bus);
        cr_assert(harness_wait_state(bus, "standard", 10), "the daemon never reached standard after a kick");
        return bus;
}

void harness_assert_knobs(struct harness *h, uint32_t run, uint32_t pages, uint32_t sleep_ms, const char *when) {
        uint32_t now;
        now = harness_knob(h, "run");
        cr_assert_eq(now, run, "%s: run is %u, expected %u", when, now, run);
        now = harness_knob(h, "pages_to_scan");
        cr_assert_eq(now, pages, "%s: pages_to_scan is %u, expected %u", when, now, pages);
        now = harness_knob(h, "sleep_millisecs");
        cr_assert_eq(now, sleep_ms, "%s: sleep_millisecs is %u, expected %u", when, now, sleep_ms);
}
