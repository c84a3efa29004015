/* SPDX-License-Identifier: Apache-2.0 */
/* ksm-throttler: wires configuration, KSM, the bus and the event loop together. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "bus-connection.h"
#include "bus-names.h"
#include "bus-object.h"
#include "config.h"
#include "daemon.h"
#include "fd-util.h"
#include "idle-exit.h"
#include "ksm.h"
#include "log.h"
#include "parse-util.h"
#include "runtime-dir.h"
#include "saved-state.h"

/* How the event loop ends: 0 after SIGTERM/SIGINT; sd-bus ends it with EXIT_FAILURE when
 * the bus goes away; START_FAILED when the daemon could not own its name or recover. */
enum { LOOP_EXIT_BUS_LOST = EXIT_FAILURE, LOOP_EXIT_START_FAILED = 2 };

/* How long the bus has to let the daemon own its name. Start-up waits on the event loop,
 * so SIGTERM is served meanwhile; a bus that never answers ends it here. */
#define START_TIMEOUT_USEC (30 * USEC_PER_SEC)

struct arguments {
        const char *config_path;
        bool config_required;
        const char *ksm_directory;
        const char *meminfo_path;
        const char *runtime_directory;
        bool restore_only;
        bool check_config;
        struct daemon *daemon; /* for the SIGHUP handler */
};

/* The edges main.c wires to the daemon: the bus connection, polkit, and the object. */
struct bus_service {
        struct daemon *daemon;
        sd_bus *bus;
        sd_event_source *bus_drain; /* reads the bus in batches (bus-connection) */
        struct authorizer *authorizer;
        struct bus_object *object;
        struct idle_exit *idle;
        int lock_fd; /* the runtime directory's lock, held until the host's values are back */
};

/* Answers pending kicks ("shutting down"), unregisters the object, closes the bus. */
static void bus_service_done(struct bus_service *s) {
        if (s->daemon)
                daemon_set_observer(s->daemon, NULL, NULL);
        s->idle = idle_exit_free(s->idle);
        s->authorizer = authorizer_free(s->authorizer);
        s->object = bus_object_free(s->object);
        s->bus_drain = sd_event_source_disable_unref(s->bus_drain);
        s->bus = sd_bus_flush_close_unref(s->bus);
        if (s->lock_fd >= 0)
                close(s->lock_fd);
        s->lock_fd = -EBADF;
}

static void help(void) {
        printf("Usage: ksm-throttler [OPTIONS...]\n"
               "\n"
               "Drives Kernel Same-page Merging hard after a Kick() on the system bus\n"
               "(org.kata.KsmThrottler), then decays back to the host's own settings.\n"
               "\n"
               "  -h --help               Show this help and exit\n"
               "     --version            Show the version and exit\n"
               "     --config=FILE        Configuration file (default %s),\n"
               "                          followed by FILE.d/*.conf drop-ins\n"
               "     --ksm-dir=DIR        KSM sysfs directory (default from the\n"
               "                          configuration, else %s)\n"
               "     --meminfo=FILE       Where to read AnonPages (default /proc/meminfo)\n"
               "     --runtime-dir=DIR    Where the host's values are saved\n"
               "                          (default $RUNTIME_DIRECTORY, else /run/ksm-throttler)\n"
               "     --log-level=LEVEL    debug, info, notice, warning, err (default info)\n"
               "     --restore            Restore the host's values saved by a daemon that\n"
               "                          did not exit cleanly, then exit\n"
               "     --check-config       Check the configuration and its drop-ins, then exit\n"
               "                          (status 78 if invalid)\n"
               "\n"
               "See ksm-throttler(8) and ksm-throttler.conf(5).\n",
               CONFIG_DEFAULT_PATH, KSM_DEFAULT_DIRECTORY);
}

/* Returns 1 to run, 0 to exit successfully (--help), or an exit status < 0 negated. */
static int parse_arguments(int argc, char *argv[], struct arguments *args) {
        enum { ARG_VERSION = 0x100, ARG_CONFIG, ARG_KSM_DIR, ARG_MEMINFO, ARG_RUNTIME_DIR, ARG_LOG_LEVEL, ARG_RESTORE, ARG_CHECK_CONFIG };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "ksm-dir", required_argument, NULL, ARG_KSM_DIR },
                { "meminfo", required_argument, NULL, ARG_MEMINFO },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "restore", no_argument, NULL, ARG_RESTORE },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                {},
        };
        int c, level;

        *args = (struct arguments) {
                .config_path = CONFIG_DEFAULT_PATH,
                .meminfo_path = "/proc/meminfo",
                .runtime_directory = getenv("RUNTIME_DIRECTORY") ?: "/run/ksm-throttler",
        };

        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("ksm-throttler %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_CONFIG:
                        args->config_path = optarg;
                        args->config_required = true;
                        break;
                case ARG_KSM_DIR:
                        args->ksm_directory = optarg;
                        break;
                case ARG_MEMINFO:
                        args->meminfo_path = optarg;
                        break;
                case ARG_RUNTIME_DIR:
                        args->runtime_directory = optarg;
                        break;
                case ARG_LOG_LEVEL:
                        level = log_level_from_string(optarg);
                        if (level < 0) {
                                log_error("Invalid --log-level=%s: expected debug, info, notice, warning or err", optarg);
                                return -EX_USAGE;
                        }
                        log_set_max_level(level);
                        break;
                case ARG_RESTORE:
                        args->restore_only = true;
                        break;
                case ARG_CHECK_CONFIG:
                        args->check_config = true;
                        break;
                case '?':
                        return log_getopt_error(argv);
                }
        }
        return log_unexpected_arguments(argc, argv) ?: 1;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct bus_service *service = userdata;
        struct daemon *d = service->daemon;

        log_info("Received SIG%s, restoring the host's KSM settings and exiting", sigabbrev_np((int) si->ssi_signo));
        sd_notify(false, "STOPPING=1\nSTATUS=Restoring the host's KSM settings");
        /* Restore while the bus is still up, so that watchers see the return to initial. */
        (void) daemon_restore(d);
        /* Callers waiting for polkit hear why now: sd-bus flushes and closes the bus as
         * soon as the loop exits. */
        authorizer_shutdown(service->authorizer);
        /* Still authenticating or saying Hello (a stuck bus): a flush would wait for the
         * bus for up to 90 s, and nobody can be waiting for an answer yet. */
        if (service->bus && sd_bus_is_ready(service->bus) <= 0)
                (void) sd_bus_close(service->bus);
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        const struct arguments *args = userdata;
        struct daemon *d = args->daemon;

        log_info("Received SIGHUP, reloading the configuration");
        (void) daemon_reload_config(d, args->config_path, args->config_required);
        return 0;
}

/* --restore: what ExecStopPost= runs after the daemon stopped or died. */
static int restore_only(struct daemon *d) {
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        /* A running daemon restores on its own when its cycle ends; restoring under it
         * would look to it like an administrator's change. Without the directory no daemon
         * runs (it creates it at start), and nothing is saved. */
        lock_fd = runtime_directory_lock(d->runtime_directory, false);
        if (lock_fd == -EBUSY) {
                log_error("ksm-throttler is running (it holds the lock on %s); it restores the host's settings itself. "
                          "Stop it instead.", d->runtime_directory);
                return -EBUSY;
        }
        if (lock_fd < 0 && lock_fd != -ENOENT)
                return lock_fd;

        r = daemon_recover(d);
        if (r == 0)
                log_info("Nothing to restore: no saved host settings in %s", d->runtime_directory);
        else if (r > 0)
                log_info("Restored the host's KSM settings");
        return r;
}

struct start {
        struct bus_service *service;
        sd_event_source *timeout;
        sd_bus_slot *request;
};

static int start_failed(struct start *start) {
        start->timeout = sd_event_source_disable_unref(start->timeout);
        return sd_event_exit(start->service->daemon->event, LOOP_EXIT_START_FAILED);
}

static int on_start_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        char timeout[32];

        log_error("The system bus did not let ksm-throttler own %s within %s; exiting", KSM_THROTTLER_BUS_NAME,
                  format_duration_usec(timeout, sizeof timeout, START_TIMEOUT_USEC));
        return start_failed(userdata);
}

/* The name is ours (or not): tell systemd. Recovery and the object came before the
 * request (see serve()): the bus hands a bus-activated daemon the calls queued for it
 * before it answers RequestName. */
static int on_request_name_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct start *start = userdata;
        struct daemon *daemon = start->service->daemon;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint32_t result = 0;
        int r;

        if (e) {
                log_error("Cannot own %s on the system bus: %s", KSM_THROTTLER_BUS_NAME, e->message ?: e->name);
                return start_failed(start);
        }
        r = sd_bus_message_read(reply, "u", &result);
        /* 1: primary owner, 4: already the owner. Without queueing, 3 means taken. */
        if (r < 0 || (result != 1 && result != 4)) {
                if (result == 3)
                        log_error("Another process already owns %s on the system bus; is ksm-throttler already running "
                                  "with another runtime directory?",
                                  KSM_THROTTLER_BUS_NAME);
                else
                        log_error("Cannot own %s on the system bus (RequestName answered %u)", KSM_THROTTLER_BUS_NAME,
                                  (unsigned) result);
                return start_failed(start);
        }
        start->timeout = sd_event_source_disable_unref(start->timeout);
        idle_exit_set_ready(start->service->idle);

        char settings[256];
        log_info("ksm-throttler %s ready on %s, KSM in %s, host settings: %s", PROJECT_VERSION, KSM_THROTTLER_BUS_NAME,
                 daemon->config.ksm_directory, ksm_settings_format(&daemon->host, settings, sizeof settings));
        sd_notifyf(false, "READY=1\nSTATUS=State: initial (%s)", settings);
        return 0;
}

/* Takes the runtime directory's lock, restores a crashed instance's values, sets up the
 * loop and the bus, registers the object, owns the name, and serves until a signal or
 * the bus ends it. Nothing here waits for the bus: owning the name runs on the loop,
 * which serves SIGTERM from the start. Returns 0, or -errno (logged). */
static int serve(struct bus_service *service, struct arguments *args) {
        struct daemon *daemon = service->daemon;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        int r;

        r = sd_event_default(&event);
        if (r < 0) {
                log_error_errno(r, "Cannot create the event loop: %m");
                return r;
        }
        /* Pings systemd's watchdog when the unit sets WatchdogSec= (and only then). */
        r = sd_event_set_watchdog(event, true);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the watchdog: %m");
                return r;
        }
        if (r > 0)
                log_debug("Watchdog enabled");
        r = daemon_init(daemon, event);
        if (r < 0)
                return r;

        /* One instance per runtime directory: only the holder of its lock may restore a
         * crashed instance's values, so a second instance never undoes a running cycle.
         * Recovery and the object then come before the name, so that no kick, not even one
         * the bus queued while activating this daemon, is served before the recovery
         * (docs/design.md, One instance). */
        service->lock_fd = runtime_directory_lock(daemon->runtime_directory, true);
        if (service->lock_fd == -EBUSY) {
                log_error("Another ksm-throttler holds the lock on %s: it is already running (or a --restore is); "
                          "not starting", daemon->runtime_directory);
                return -EBUSY;
        }
        if (service->lock_fd < 0)
                return service->lock_fd;
        r = daemon_recover(daemon);
        if (r < 0)
                return r;
        if ((r = sd_event_add_signal(event, NULL, SIGTERM, on_exit_signal, service)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGINT, on_exit_signal, service)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGHUP, on_reload_signal, args)) < 0) {
                log_error_errno(r, "Cannot watch signals: %m");
                return r;
        }

        r = bus_connection_open(&service->bus);
        if (r < 0) {
                log_error_errno(r, "Cannot connect to the system bus: %m");
                return r;
        }
        r = authorizer_new(service->bus, daemon->config.polkit_timeout_usec, &service->authorizer);
        if (r < 0)
                return r;
        r = bus_connection_attach(service->bus, event, &service->bus_drain);
        if (r < 0) {
                log_error_errno(r, "Cannot attach the bus to the event loop: %m");
                return r;
        }
        /* If the bus goes away there is nobody left to serve: restore and exit. */
        (void) sd_bus_set_exit_on_disconnect(service->bus, true);

        r = bus_object_new(service->bus, daemon, service->authorizer, &service->object);
        if (r < 0)
                return r;
        daemon_set_observer(daemon, &bus_object_observer, service->object);
        r = idle_exit_new(event, service->bus, daemon, service->authorizer, &service->lock_fd, &service->idle);
        if (r < 0)
                return r;
        /* A kick the previous instance took while it exited idle: older than any the bus
         * queued for this start, so applied before them. */
        (void) bus_object_apply_handover(service->object, clock_now_usec(CLOCK_BOOTTIME));

        /* Owning the name happens on the loop (on_request_name_reply). */
        struct start start = { .service = service };
        r = sd_event_add_time_relative(event, &start.timeout, CLOCK_MONOTONIC, START_TIMEOUT_USEC, 0, on_start_timeout,
                                       &start);
        if (r < 0) {
                log_error_errno(r, "Cannot create the start-up timer: %m");
                return r;
        }
        r = sd_bus_request_name_async(service->bus, &start.request, KSM_THROTTLER_BUS_NAME, 0, on_request_name_reply,
                                      &start);
        if (r < 0) {
                start.timeout = sd_event_source_disable_unref(start.timeout);
                log_error_errno(r, "Cannot ask to own %s on the system bus: %m", KSM_THROTTLER_BUS_NAME);
                return r;
        }

        r = idle_exit_loop(service->idle);
        start.timeout = sd_event_source_disable_unref(start.timeout);
        start.request = sd_bus_slot_unref(start.request);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");
        else if (r == LOOP_EXIT_START_FAILED)
                r = -EIO; /* logged where it failed */
        else if (r > 0) {
                /* Not a signal: sd-bus ended the loop because the bus went away. */
                log_error("Lost the connection to the system bus, exiting");
                r = -ECONNRESET;
        }
        return r;
}

static int run(int argc, char *argv[]) {
        struct daemon daemon = { .ksm_dirfd = -EBADF };
        struct bus_service service = { .daemon = &daemon, .lock_fd = -EBADF };
        struct arguments args;
        sigset_t mask;
        int r, exit_status = EXIT_SUCCESS;

        /* Blocked from the start, so that an early SIGHUP or SIGTERM is handled by the
         * loop rather than killing the daemon half-way through a restore. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = parse_arguments(argc, argv, &args);
        if (r <= 0)
                return -r;
        args.daemon = &daemon;

        if (config_init(&daemon.config) < 0) {
                log_oom();
                return EXIT_FAILURE;
        }
        /* ExecStopPost= runs --restore after every stop, also after a start that a bad file
         * refused: with nothing saved there is nothing to restore, and the file's errors,
         * logged by that start, are not repeated. */
        if (args.restore_only && !saved_state_exists(args.runtime_directory)) {
                log_info("Nothing to restore: no saved host settings in %s", args.runtime_directory);
                config_done(&daemon.config);
                return EXIT_SUCCESS;
        }
        r = config_load(&daemon.config, args.config_path, args.config_required);
        if (args.check_config) {
                /* What ExecReload= runs before SIGHUP, so that systemctl reload reports a bad file. */
                if (r >= 0)
                        log_info("Configuration is valid: %s", daemon.config.sources ?: "built-in defaults (no file found)");
                else
                        log_error("Invalid configuration");
                config_done(&daemon.config);
                return r < 0 ? EX_CONFIG : EXIT_SUCCESS;
        }
        if (r < 0) {
                if (!args.restore_only) {
                        log_error("Invalid configuration, not starting");
                        config_done(&daemon.config);
                        return EX_CONFIG;
                }
                /* Giving the host its values back must not depend on a well-formed file. */
                log_warning("Invalid configuration; restoring with the built-in defaults%s",
                            args.ksm_directory ? " and --ksm-dir" : "");
        }
        daemon.ksm_directory_from_config = !args.ksm_directory;
        if (args.ksm_directory) {
                free(daemon.config.ksm_directory);
                daemon.config.ksm_directory = strdup(args.ksm_directory);
                if (!daemon.config.ksm_directory) {
                        log_oom();
                        return EXIT_FAILURE;
                }
        }
        daemon.meminfo_path = args.meminfo_path;
        daemon.runtime_directory = args.runtime_directory;

        /* --restore writes every knob it can, so it does not insist on all of them. */
        daemon.ksm_dirfd = args.restore_only ? ksm_directory_open_unchecked(daemon.config.ksm_directory)
                                             : ksm_directory_open(daemon.config.ksm_directory);
        if (daemon.ksm_dirfd < 0) {
                config_done(&daemon.config);
                return EX_UNAVAILABLE;
        }

        if (args.restore_only) {
                r = restore_only(&daemon);
                daemon_done(&daemon);
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }

        r = serve(&service, &args);
        exit_status = r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        /* Also after the bus went away or the loop failed; a no-op if already restored. */
        if (daemon_restore(&daemon) < 0)
                exit_status = EXIT_FAILURE;
        bus_service_done(&service);
        daemon_done(&daemon);
        return exit_status;
}

int main(int argc, char *argv[]) {
        return run(argc, argv);
}
