/* SPDX-License-Identifier: Apache-2.0 */
/* ksm-throttler: wires configuration, KSM, the bus and the event loop together. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "bus-object.h"
#include "config.h"
#include "daemon.h"
#include "fd-util.h"
#include "ksm.h"
#include "log.h"

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
                        if (optopt)
                                log_error("Option -%c or its argument is not valid; see --help", optopt);
                        else
                                log_error("Option %s is unknown or lacks its argument; see --help", argv[optind - 1]);
                        return -EX_USAGE;
                }
        }
        if (optind < argc) {
                log_error("Unexpected argument \"%s\"; see --help", argv[optind]);
                return -EX_USAGE;
        }
        return 1;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct daemon *d = userdata;

        log_info("Received SIG%s, restoring the host's KSM settings and exiting", sigabbrev_np((int) si->ssi_signo));
        sd_notify(false, "STOPPING=1\nSTATUS=Restoring the host's KSM settings");
        /* Restore while the bus is still up, so that watchers see the return to initial. */
        (void) daemon_restore(d);
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        const struct arguments *args = userdata;
        struct daemon *d = args->daemon;
        (void) s, (void) si;

        log_info("Received SIGHUP, reloading the configuration");
        (void) daemon_reload_config(d, args->config_path, args->config_required);
        return 0;
}

/* --restore: what ExecStopPost= runs after the daemon stopped or died. */
static int restore_only(struct daemon *d) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        /* A running daemon restores on its own when its cycle ends; restoring under it
         * would look to it like an administrator's change. */
        if (sd_bus_open_system(&bus) >= 0) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                int owned = 0;
                if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", NULL, &reply, "s", KSM_THROTTLER_BUS_NAME) >= 0 &&
                    sd_bus_message_read(reply, "b", &owned) >= 0 && owned) {
                        log_error("ksm-throttler is running (it owns %s); it restores the host's settings itself. "
                                  "Stop it instead.", KSM_THROTTLER_BUS_NAME);
                        return -EBUSY;
                }
        }

        r = daemon_recover(d);
        if (r == 0)
                log_info("Nothing to restore: no saved host settings in %s", d->runtime_directory);
        else if (r > 0)
                log_info("Restored the host's KSM settings");
        return r;
}

/* Sets up the loop and the bus, owns the name, restores a crashed instance's values,
 * and serves until a signal or the bus ends it. Returns 0, or -errno (logged). */
static int serve(struct daemon *daemon, struct arguments *args) {
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
        if ((r = sd_event_add_signal(event, NULL, SIGTERM, on_exit_signal, daemon)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGINT, on_exit_signal, daemon)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGHUP, on_reload_signal, args)) < 0) {
                log_error_errno(r, "Cannot watch signals: %m");
                return r;
        }

        r = sd_bus_open_system(&daemon->bus);
        if (r < 0) {
                log_error_errno(r, "Cannot connect to the system bus: %m");
                return r;
        }
        r = authorizer_new(daemon->bus, daemon->config.polkit_timeout_usec, &daemon->authorizer);
        if (r < 0) {
                log_error_errno(r, "Out of memory");
                return r;
        }
        if ((r = bus_object_add(daemon)) < 0)
                return r;
        r = sd_bus_attach_event(daemon->bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                log_error_errno(r, "Cannot attach the bus to the event loop: %m");
                return r;
        }
        /* If the bus goes away there is nobody left to serve: restore and exit. */
        (void) sd_bus_set_exit_on_disconnect(daemon->bus, true);

        r = sd_bus_request_name(daemon->bus, KSM_THROTTLER_BUS_NAME, 0);
        if (r < 0) {
                if (r == -EEXIST)
                        log_error("Another process already owns %s on the system bus; is ksm-throttler already running?",
                                  KSM_THROTTLER_BUS_NAME);
                else
                        log_error_errno(r, "Cannot own %s on the system bus: %m", KSM_THROTTLER_BUS_NAME);
                return r;
        }

        /* Only once the name is ours: a second instance must not undo a running cycle. */
        r = daemon_recover(daemon);
        if (r < 0)
                return r;

        char settings[256];
        log_info("ksm-throttler %s ready on %s, KSM in %s, host settings: %s", PROJECT_VERSION, KSM_THROTTLER_BUS_NAME,
                 daemon->config.ksm_directory, ksm_settings_format(&daemon->host, settings, sizeof settings));
        sd_notifyf(false, "READY=1\nSTATUS=State: initial (%s)", settings);

        r = sd_event_loop(event);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");
        else if (r > 0) {
                /* Not a signal: sd-bus ended the loop because the bus went away. */
                log_error("Lost the connection to the system bus, exiting");
                r = -ECONNRESET;
        }
        return r;
}

static int run(int argc, char *argv[]) {
        struct daemon daemon = { .ksm_dirfd = -EBADF };
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

        if (config_init(&daemon.config) < 0)
                return log_error("Out of memory"), EXIT_FAILURE;
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
                if (!daemon.config.ksm_directory)
                        return log_error("Out of memory"), EXIT_FAILURE;
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

        r = serve(&daemon, &args);
        exit_status = r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        /* Also after the bus went away or the loop failed; a no-op if already restored. */
        if (daemon_restore(&daemon) < 0)
                exit_status = EXIT_FAILURE;
        daemon_done(&daemon);
        return exit_status;
}

int main(int argc, char *argv[]) {
        return run(argc, argv);
}
