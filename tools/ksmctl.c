/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ksmctl: command-line client for ksm-throttler (org.kata.KsmThrottler on the system bus).
 * This file parses the command line and dispatches to the verbs in ksmctl-*.c through the
 * verbs[] table. Verbs return the process exit status, not -errno: the status has to say
 * which of several D-Bus errors happened, and -errno cannot (sd-bus maps AccessDenied and a
 * local EACCES to the same errno).
 */

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <string.h>

#include "fd-util.h"
#include "ksmctl.h"
#include "parse-util.h"

enum json_output arg_json = JSON_OUTPUT_OFF;
bool arg_ask_password = true;
bool arg_no_block = false;
uint64_t arg_timeout_usec = 0;
const char *arg_reason = "";
const char *arg_app_id = "ksmctl";

/* Options that only some verbs take. */
enum verb_option {
        OPTION_JSON = 1 << 0,
        OPTION_NO_BLOCK = 1 << 1,
        OPTION_TIMEOUT = 1 << 2,
        OPTION_ASK_PASSWORD = 1 << 3,
        OPTION_REASON = 1 << 4,
        OPTION_APP_ID = 1 << 5,
};

static int verb_help(sd_bus *bus, int argc, char *argv[]);

static const struct verb {
        const char *name;
        int (*run)(sd_bus *bus, int argc, char *argv[]);
        bool needs_bus;
        unsigned options;     /* enum verb_option bits it accepts */
        const char *summary;  /* for help */
} verbs[] = {
        { "kick", verb_kick, true, OPTION_NO_BLOCK | OPTION_TIMEOUT | OPTION_ASK_PASSWORD | OPTION_REASON | OPTION_APP_ID,
          "Make KSM scan aggressively now (restarts the aggressive timer)" },
        { "status", verb_status, true, OPTION_JSON, "Show the state, time to the next transition, settings, savings" },
        { "stats", verb_stats, true, OPTION_JSON, "Show the live KSM counters" },
        { "monitor", verb_monitor, true, OPTION_JSON,
          "Print each state change and kick as it happens, until interrupted" },
        { "help", verb_help, false, 0, "Show this help" },
};

/* Which option set each bit, for the message when a verb does not take it. */
static const char *const option_names[] = { "--json", "--no-block", "--timeout", "--no-ask-password", "--reason",
                                            "--app-id" };

static void print_help(void) {
        printf("Usage: ksmctl [OPTIONS] COMMAND\n"
               "\n"
               "Control and inspect ksm-throttler, which makes Kernel Same-page Merging scan\n"
               "hard after a kick and then decays back to the host's own settings.\n"
               "\n"
               "Commands:\n");
        for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
                printf("  %-10s  %s\n", verbs[i].name, verbs[i].summary);
        printf("\n"
               "Options:\n"
               "  --json[=short|pretty]  status, stats, monitor: JSON output; short (the default)\n"
               "                         is one line per object, pretty is indented\n"
               "  --no-block             kick: send the kick, do not wait for the answer\n"
               "  --timeout=DURATION     kick: wait at most this long (default 120s)\n"
               "  --no-ask-password      kick: never let polkit ask for a password\n"
               "  --reason=TEXT          kick: why, for the daemon's log and LastKick (default empty)\n"
               "  --app-id=ID            kick: on whose behalf (default ksmctl)\n"
               "  -h, --help             Show this help and exit\n"
               "  --version              Show the version and exit\n"
               "\n"
               "Exit status:\n"
               "  0  success\n"
               "  1  other failure\n"
               "  2  usage error\n"
               "  3  ksm-throttler is not running or cannot start, or the system bus cannot be reached\n"
               "  4  access denied (polkit or bus policy)\n"
               "  5  KSM unavailable on this host\n"
               "\n"
               "See ksmctl(1).\n");
}

static int verb_help(sd_bus *bus, int argc, char *argv[]) {
        print_help();
        return finish_output();
}

/* Reports a mistake on the command line; returns -EINVAL. The message quotes what was typed,
 * which may hold control characters (a pasted escape sequence): they are shown escaped. */
__attribute__((format(printf, 1, 2)))
static int usage_error(const char *format, ...) {
        char message[512];
        va_list ap;

        va_start(ap, format);
        vsnprintf(message, sizeof message, format, ap);
        va_end(ap);
        fputs("ksmctl: ", stderr);
        print_escaped(stderr, message);
        fputs("\nTry 'ksmctl --help' for more information.\n", stderr);
        return -EINVAL;
}

static int parse_json_mode(const char *value) {
        static const struct {
                const char *name;
                enum json_output mode;
        } modes[] = {
                { "short", JSON_OUTPUT_SHORT },
                { "pretty", JSON_OUTPUT_PRETTY },
        };

        if (!value) {
                arg_json = JSON_OUTPUT_SHORT;
                return 0;
        }
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
                if (strcmp(value, modes[i].name) == 0) {
                        arg_json = modes[i].mode;
                        return 0;
                }
        return -EINVAL;
}

/* Returns 1 with the verb to run; 0 when there is nothing more to do (--help, --version);
 * -EINVAL after reporting a usage error. */
static int parse_argv(int argc, char *argv[], const struct verb **ret_verb) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
                ARG_NO_BLOCK,
                ARG_TIMEOUT,
                ARG_NO_ASK_PASSWORD,
                ARG_REASON,
                ARG_APP_ID,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", optional_argument, NULL, ARG_JSON },
                { "no-block", no_argument, NULL, ARG_NO_BLOCK },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "reason", required_argument, NULL, ARG_REASON },
                { "app-id", required_argument, NULL, ARG_APP_ID },
                {}
        };
        unsigned given = 0;
        const char *verb_name;
        int c;

        /* We print our own messages, with our prefix and the --help hint. */
        opterr = 0;

        /* GNU getopt permutes, so options may come before or after the verb. */
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        print_help();
                        return 0;
                case ARG_VERSION:
                        printf("ksmctl %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_JSON:
                        if (parse_json_mode(optarg) < 0)
                                return usage_error("invalid --json mode '%s' (short or pretty)", optarg);
                        given |= OPTION_JSON;
                        break;
                case ARG_NO_BLOCK:
                        arg_no_block = true;
                        given |= OPTION_NO_BLOCK;
                        break;
                case ARG_TIMEOUT:
                        if (parse_duration_usec(optarg, &arg_timeout_usec) < 0 || arg_timeout_usec == 0)
                                return usage_error("invalid --timeout '%s' (a positive duration, e.g. 30s, 500ms)",
                                                   optarg);
                        given |= OPTION_TIMEOUT;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        arg_ask_password = false;
                        given |= OPTION_ASK_PASSWORD;
                        break;
                case ARG_REASON:
                        if (strlen(optarg) > KSMT_KICK_TEXT_MAX)
                                return usage_error("--reason is %zu bytes long; at most %d are accepted", strlen(optarg),
                                                   KSMT_KICK_TEXT_MAX);
                        arg_reason = optarg;
                        given |= OPTION_REASON;
                        break;
                case ARG_APP_ID:
                        if (strlen(optarg) > KSMT_KICK_TEXT_MAX)
                                return usage_error("--app-id is %zu bytes long; at most %d are accepted", strlen(optarg),
                                                   KSMT_KICK_TEXT_MAX);
                        arg_app_id = optarg;
                        given |= OPTION_APP_ID;
                        break;
                case '?': {
                        const char *arg = argv[optind - 1];
                        const char *equals = strchr(arg, '=');

                        /* For a long option, optopt is 0 if it is unknown, and its value if it
                         * was given an argument it does not take (or lacks one it needs). */
                        if (strncmp(arg, "--", 2) != 0)
                                return usage_error("unknown option '-%c'", optopt);
                        if (optopt != 0 && equals)
                                return usage_error("option '%.*s' takes no value", (int) (equals - arg), arg);
                        if (optopt != 0)
                                return usage_error("option '%s' needs a value", arg);
                        return usage_error("unknown option '%s'", arg);
                }
                default:
                        return usage_error("unhandled option '%s'", argv[optind - 1]);
                }
        }

        if (optind >= argc)
                return usage_error("missing command (kick, status, stats, monitor or help)");
        verb_name = argv[optind];
        if (optind + 1 < argc)
                return usage_error("unexpected argument '%s'", argv[optind + 1]);
        if (arg_no_block && (given & OPTION_TIMEOUT))
                return usage_error("--timeout and --no-block exclude each other");

        for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
                if (strcmp(verbs[i].name, verb_name) != 0)
                        continue;
                for (size_t bit = 0; bit < sizeof option_names / sizeof option_names[0]; bit++)
                        if ((given & ~verbs[i].options) & (1u << bit))
                                return usage_error("%s is not valid with %s", option_names[bit], verb_name);
                *ret_verb = &verbs[i];
                return 1;
        }

        return usage_error("unknown command '%s'", verb_name);
}

/* Connects to the system bus for the verbs that talk to the daemon, then runs the verb with
 * the arguments from the verb on. */
static int dispatch_verb(const struct verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;

        if (verb->needs_bus) {
                int status = connect_bus(&bus);
                if (status != KSMT_EXIT_OK)
                        return status;
        }
        return verb->run(bus, argc - optind, argv + optind);
}

int main(int argc, char *argv[]) {
        const struct verb *verb = NULL;
        int r;

        r = parse_argv(argc, argv, &verb);
        if (r < 0)
                return KSMT_EXIT_USAGE;
        if (r == 0)
                return finish_output();
        return dispatch_verb(verb, argc, argv);
}
