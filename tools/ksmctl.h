/* SPDX-License-Identifier: Apache-2.0 */
/* What the ksmctl verbs share: the parsed options and the output helpers. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ksmt-client.h"

enum json_output {
        JSON_OUTPUT_OFF,
        JSON_OUTPUT_SHORT,  /* one object on one line */
        JSON_OUTPUT_PRETTY, /* indented */
};

extern enum json_output arg_json;
extern bool arg_ask_password;   /* may polkit ask for a password (on a terminal) */
extern bool arg_no_block;       /* kick: send, do not wait */
extern uint64_t arg_timeout_usec; /* kick: 0 for the default */
extern const char *arg_reason;    /* kick: "" by default */
extern const char *arg_app_id;    /* kick: "ksmctl" by default */
extern uint64_t arg_watch_usec;   /* top: refresh this often; 0: once */
extern size_t arg_limit;          /* top: rows; metrics: per-VM series; 0: all / the default */
extern bool arg_per_process;      /* top: one row per process */
extern const char *arg_output;    /* metrics: write this file atomically instead of stdout */
extern const char *arg_proc_dir;  /* top, doctor, metrics: "/proc" (a host's, mounted elsewhere) */
extern const char *arg_sys_dir;   /* doctor, metrics: "/sys" */

/* Verbs get the system bus connection (NULL for verbs that need none) and the arguments
 * from the verb on, and return the exit status (enum ksmt_exit_status). */
int verb_kick(sd_bus *bus, int argc, char *argv[]);
int verb_status(sd_bus *bus, int argc, char *argv[]);
int verb_stats(sd_bus *bus, int argc, char *argv[]);
int verb_monitor(sd_bus *bus, int argc, char *argv[]);
/* top, doctor and metrics get NULL: they work without the bus and connect themselves. */
int verb_top(sd_bus *bus, int argc, char *argv[]);
int verb_doctor(sd_bus *bus, int argc, char *argv[]);
int verb_metrics(sd_bus *bus, int argc, char *argv[]);

/* "ksmctl: message" on stderr. */
void log_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* The same with %m naming error (negative or positive); returns -abs(error). */
int log_error_errno(int error, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Connects to the system bus; says why not and returns the exit status. */
int connect_bus(sd_bus **ret);
/* Says why action failed and returns the exit status for it. */
int report_call_failure(const char *action, const sd_bus_error *error, int r);
/* The same for a read: a reply that does not parse is reported as such, naming call. */
int report_read_failure(const char *action, const char *call, const sd_bus_error *error, int r);

/* Text from the bus on a terminal or in a log: control characters escaped. */
void print_escaped(FILE *f, const char *s);

/* The JSON builders, and the one place JSON is written: short or pretty, then a newline.
 * Takes the reference; json may be NULL after an allocation failure. */
json_t *json_from_settings(const struct ksmt_settings *settings);
json_t *json_from_counters(const struct ksmt_counters *counters);
json_t *json_from_u64(uint64_t value);
/* LastKick as {usec, reason, application_id, origin}; null if there was none. */
json_t *json_from_kick(const struct ksmt_kick *k);
int print_json(json_t *json);

/* Output goes to pipes in scripts and tests: a full disk or a closed reader must show in
 * the exit status, not vanish. Returns the exit status. */
int finish_output(void);

uint64_t now_realtime_usec(void);
