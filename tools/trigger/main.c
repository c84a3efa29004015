/* SPDX-License-Identifier: Apache-2.0 */
/* ksm-throttler-trigger: wires the configuration, the sources, the debounce and the
 * kicker together on one event loop. */
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

#include "fd-util.h"
#include "kick.h"
#include "log.h"
#include "parse-util.h"
#include "source-directory.h"
#include "source-machined.h"
#include "source-pressure.h"
#include "source-process.h"
#include "trigger-config.h"
#include "trigger.h"

#define OPTIONS_MAX 32

/* A key given on the command line, applied after the configuration files. */
struct option_value {
        const struct trigger_key *key;
        const char *value;
};

struct arguments {
        const char *config_path;
        bool config_required;
        struct option_value values[256];
        unsigned n_values;
};

static void help(void) {
        printf("Usage: ksm-throttler-trigger [OPTIONS...]\n"
               "\n"
               "Kicks the KSM throttler (org.kata.KsmThrottler) when a VM, sandbox or container\n"
               "starts: new entries in sandbox directories, machines registered with\n"
               "systemd-machined, hypervisor processes, memory pressure.\n"
               "\n"
               "  -h --help                    Show this help and exit\n"
               "     --version                 Show the version and exit\n"
               "     --config=FILE             Configuration file (default %s),\n"
               "                               followed by FILE.d/*.conf drop-ins\n",
               TRIGGER_CONFIG_DEFAULT_PATH);
        for (const struct trigger_key *k = trigger_keys; k->key; k++) {
                char left[64];
                snprintf(left, sizeof left, "--%s=%s", k->option, k->argument);
                if (strlen(left) > 25)
                        printf("     %s\n     %-25s %s\n", left, "", k->help);
                else
                        printf("     %-25s %s\n", left, k->help);
        }
        printf("\nEach option is also a key in the [Trigger] section of the configuration;\n"
               "options win. See ksm-throttler-trigger(8) and trigger.conf(5).\n");
}

/* Returns 1 to run, 0 to exit successfully (--help, --version), or an exit status negated. */
static int parse_arguments(int argc, char *argv[], struct arguments *args) {
        enum { ARG_VERSION = 0x100, ARG_CONFIG, ARG_KEY };
        struct option options[OPTIONS_MAX] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, ARG_CONFIG },
        };
        size_t n = 3;
        int c, index;

        for (const struct trigger_key *k = trigger_keys; k->key && n < OPTIONS_MAX - 1; k++)
                options[n++] = (struct option) { k->option, required_argument, NULL, ARG_KEY };

        *args = (struct arguments) { .config_path = TRIGGER_CONFIG_DEFAULT_PATH };
        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", options, &index)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("ksm-throttler-trigger %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_CONFIG:
                        args->config_path = optarg;
                        args->config_required = true;
                        break;
                case ARG_KEY: {
                        const struct trigger_key *key = trigger_key_by_option(options[index].name);
                        if (args->n_values >= sizeof args->values / sizeof args->values[0]) {
                                log_error("Too many options; see --help");
                                return -EX_USAGE;
                        }
                        args->values[args->n_values++] = (struct option_value) { key, optarg };
                        /* Early, so that the configuration's own messages follow it. */
                        if (strcmp(key->key, "LogLevel") == 0 && log_level_from_string(optarg) >= 0)
                                log_set_max_level(log_level_from_string(optarg));
                        break;
                }
                case '?':
                        return log_getopt_error(argv);
                }
        }
        return log_unexpected_arguments(argc, argv) ?: 1;
}

struct sources {
        struct source_directory *directory;
        struct source_machined *machined;
        struct source_process *process;
        struct source_pressure *pressure;
};

static void sources_free(struct sources *s) {
        s->directory = source_directory_free(s->directory);
        s->machined = source_machined_free(s->machined);
        s->process = source_process_free(s->process);
        s->pressure = source_pressure_free(s->pressure);
}

/* Starts each enabled source. A source that cannot start is logged and the others
 * carry on; returns how many run. */
static unsigned sources_start(struct sources *s, const struct trigger_config *c, sd_event *event, sd_bus *bus,
                              struct trigger *trigger, char *status, size_t size) {
        unsigned n = 0;
        size_t used = 0;

        status[0] = '\0';
#define STARTED(name) (n++, used += (size_t) snprintf(status + used, used < size ? size - used : 0, "%s%s", used ? ", " : "", name))
        if (c->n_watch > 0 && source_directory_new(event, trigger, c->watch, c->n_watch, &s->directory) >= 0)
                STARTED("directory");
        if (c->machined && source_machined_new(bus, trigger, &s->machined) >= 0)
                STARTED("machined");
        if (c->hypervisors.n > 0 && source_process_new(event, trigger, &c->hypervisors, &s->process) >= 0)
                STARTED("process");
        if (c->pressure.enabled &&
            source_pressure_new(event, trigger, &c->pressure, c->pressure_file, c->pressure_interval_usec, &s->pressure) >= 0)
                STARTED("pressure");
#undef STARTED
        return n;
}

static int serve(const struct trigger_config *config) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        struct kicker *kicker = NULL;
        struct trigger trigger = {};
        struct sources sources = {};
        char status[128], debounce[64];
        int r;

        if ((r = sd_event_default(&event)) < 0)
                return log_error_errno(r, "Cannot create the event loop: %m");
        (void) sd_event_set_watchdog(event, true);
        if ((r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL)) < 0)
                return log_error_errno(r, "Cannot watch signals: %m");
        if ((r = sd_bus_open_system(&bus)) < 0)
                return log_error_errno(r, "Cannot connect to the system bus: %m");
        if ((r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL)) < 0)
                return log_error_errno(r, "Cannot attach the bus to the event loop: %m");
        (void) sd_bus_set_exit_on_disconnect(bus, true);

        if ((r = kicker_new(bus, event, &kicker)) < 0)
                return log_error_errno(r, "Out of memory");
        trigger_init(&trigger, event, kicker, config->debounce_usec);

        if (sources_start(&sources, config, event, bus, &trigger, status, sizeof status) == 0) {
                log_error("No event source is enabled or could start; nothing to do");
                r = -ENOENT;
        } else {
                log_info("ksm-throttler-trigger %s running: %s; debounce %s", PROJECT_VERSION, status,
                         format_duration_usec(debounce, sizeof debounce, config->debounce_usec));
                sd_notifyf(false, "READY=1\nSTATUS=Watching: %s", status);
                r = sd_event_loop(event);
                if (r < 0)
                        log_error_errno(r, "Event loop failed: %m");
                else if (r > 0) {
                        log_error("Lost the connection to the system bus, exiting");
                        r = -ECONNRESET;
                }
                sd_notify(false, "STOPPING=1");
        }
        sources_free(&sources);
        trigger_done(&trigger);
        kicker_free(kicker);
        return r;
}

int main(int argc, char *argv[]) {
        struct trigger_config config;
        struct arguments args;
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = parse_arguments(argc, argv, &args);
        if (r <= 0)
                return -r;
        if (trigger_config_init(&config) < 0) {
                log_oom();
                return EXIT_FAILURE;
        }
        if (trigger_config_load(&config, args.config_path, args.config_required) < 0) {
                log_error("Invalid configuration, not starting");
                trigger_config_done(&config);
                return EX_CONFIG;
        }
        for (unsigned i = 0; i < args.n_values; i++) {
                char where[64];
                snprintf(where, sizeof where, "--%s", args.values[i].key->option);
                if (trigger_config_set(&config, args.values[i].key, args.values[i].value, where) < 0) {
                        trigger_config_done(&config);
                        return EX_USAGE;
                }
        }
        if (config.log_level >= 0)
                log_set_max_level(config.log_level);

        r = serve(&config);
        trigger_config_done(&config);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
