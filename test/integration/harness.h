/* SPDX-License-Identifier: Apache-2.0 */
/* Integration test harness: a private system-like dbus-daemon, a fake KSM directory,
 * the real daemon, and real clients (busctl, ksmctl). Every process it starts it
 * stops by PID. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

struct harness {
        char dir[64];                /* temporary directory for everything below */
        char ksm_dir[PATH_MAX];      /* fake /sys/kernel/mm/ksm, or the real one */
        char runtime_dir[PATH_MAX];
        char meminfo[PATH_MAX];
        char config[PATH_MAX];
        char daemon_log[PATH_MAX];
        char bus_address[PATH_MAX + 32];
        char notify_socket[PATH_MAX]; /* NOTIFY_SOCKET for the daemon, when set */
        pid_t bus_pid;
        pid_t daemon_pid;
        pid_t polkit_pid;
};

/* AnonPages in the fake meminfo: 100000 pages of 4 KiB, so that
 * aggressive = 10000, standard = 1000, slow = 200 pages_to_scan. */
#define HARNESS_ANON_KB 400000

/* Creates the directory, a fake KSM directory with host values run=0,
 * pages_to_scan=100, sleep_millisecs=20 (and advisor_mode when advisor is
 * non-NULL, e.g. "[none] scan-time"), a fake meminfo, and starts the bus. */
void harness_setup(struct harness *h, const char *advisor);
/* Points the daemon at the real /sys/kernel/mm/ksm and /proc/meminfo. */
void harness_use_real_ksm(struct harness *h);
/* Stops everything it started and removes the directory. */
void harness_teardown(struct harness *h);

/* Writes the daemon's config file (h->config). */
void harness_write_config(struct harness *h, const char *text);
/* Sub-second schedule: aggressive 1 s, standard 600 ms, slow 600 ms, unless overridden. */
void harness_write_fast_config(struct harness *h, const char *aggressive, const char *standard, const char *slow);

/* Starts the daemon with --config, --ksm-dir, --meminfo, --runtime-dir and extra
 * arguments (NULL-terminated), and waits until it owns its name. */
void harness_start_daemon(struct harness *h, ...);
/* The common start of a test: a schedule whose aggressive state lasts an hour, the
 * daemon started, and one kick (from root) so that it is aggressive. */
void harness_start_aggressive(struct harness *h);
/* Likewise in standard, which lasts an hour: aggressive lasts 300 ms after the kick.
 * Returns a client connection, for the test to go on with. */
sd_bus *harness_start_in_standard(struct harness *h);
/* Asserts the three knobs the schedule writes; when says at what point. */
void harness_assert_knobs(struct harness *h, uint32_t run, uint32_t pages, uint32_t sleep_ms, const char *when);

/* The usual suite: each test gets harness (a struct harness the file defines) set up
 * as harness_setup(&harness, advisor) does, and torn down after it. Expands to a
 * Criterion TestSuite(name, ...). */
#define HARNESS_SUITE(name, harness, advisor, timeout_sec)                          \
        static void name##_setup(void) {                                            \
                harness_setup(&(harness), (advisor));                               \
        }                                                                           \
        static void name##_teardown(void) {                                         \
                harness_teardown(&(harness));                                       \
        }                                                                           \
        TestSuite(name, .init = name##_setup, .fini = name##_teardown, .timeout = (timeout_sec))

/* Sends sig and waits for the exit; returns the exit status (or 128+signal). */
int harness_stop_daemon(struct harness *h, int sig);
/* Runs the daemon in the foreground until it exits; returns its exit status. */
int harness_run_daemon(struct harness *h, char *output, size_t size, ...);

/* Runs a command with the private bus as system bus; stdout+stderr into output.
 * With as_nobody, it runs as uid/gid 65534 through setpriv. Returns the exit status. */
int harness_run(struct harness *h, bool as_nobody, char *output, size_t size, const char *const argv[]);

/* A client connection to the private bus, created in the test process. */
sd_bus *harness_bus(struct harness *h);

/* Knob values from files. */
uint32_t harness_knob(struct harness *h, const char *name);
void harness_knob_text(struct harness *h, const char *name, char *buf, size_t size);
void harness_set_knob(struct harness *h, const char *name, const char *text);

/* Property State over the bus. */
void harness_get_state(sd_bus *bus, char *buf, size_t size);
/* Waits (up to timeout_sec, for the test not to hang) until State is state. */
bool harness_wait_state(sd_bus *bus, const char *state, double timeout_sec);
void harness_kick(sd_bus *bus);
/* Replaces the bus by one whose configuration (test/data/system-bus.conf.in) has
 * extra_config (policies, a <servicedir>), on the same socket. */
void harness_restart_bus(struct harness *h, const char *extra_config);
/* The PID owning org.kata.KsmThrottler on bus, 0 if nobody does. */
pid_t harness_owner_pid(sd_bus *bus);
/* Waits (bounded) until pid, which need not be our child, is gone; true if it is. */
bool harness_wait_gone(pid_t pid, double timeout_sec);
uint64_t harness_get_u64(sd_bus *bus, const char *property);

/* Starts python3-dbusmock as org.freedesktop.PolicyKit1: with its polkitd template,
 * or bare (for tests that add their own CheckAuthorization), and waits for the name. */
void harness_start_polkit(struct harness *h, bool template);
/* Calls a method of the mock (interface org.freedesktop.DBus.Mock unless given). */
void harness_polkit_call(struct harness *h, const char *member, const char *signature, ...);
/* How many CheckAuthorization calls the mock received. */
unsigned harness_polkit_checks(struct harness *h);

/* Makes n concurrent Kick() calls from one connection as uid 65534 (in a child
 * process), with or without interactive authorization allowed. results gets one
 * line per call, in order: "OK" or "ERROR.NAME: message". Returns how many were OK. */
int harness_kick_as_nobody(struct harness *h, unsigned n, bool interactive, char *results, size_t size);

/* Starts argv in the background (as uid 65534 with as_nobody), output into a file; returns its PID. */
pid_t harness_spawn(struct harness *h, bool as_nobody, const char *output_path, const char *const argv[]);

/* Reads the whole daemon log into buf. */
void harness_daemon_log(struct harness *h, char *buf, size_t size);

/* A failure inside a harness function is reported at the line of the test that called
 * it (the harness's own line is named in the message), and an integration test that
 * fails prints the last lines of the daemon's log under its report. Each call records
 * where it comes from; harness.c itself defines HARNESS_IMPLEMENTATION and calls the
 * functions directly. */
void harness_called_from(const char *file, unsigned line);
#ifndef HARNESS_IMPLEMENTATION
#define HARNESS_CALL_(f, ...) (harness_called_from(__FILE__, __LINE__), f(__VA_ARGS__))
#define harness_setup(...) HARNESS_CALL_(harness_setup, __VA_ARGS__)
#define harness_use_real_ksm(...) HARNESS_CALL_(harness_use_real_ksm, __VA_ARGS__)
#define harness_write_config(...) HARNESS_CALL_(harness_write_config, __VA_ARGS__)
#define harness_write_fast_config(...) HARNESS_CALL_(harness_write_fast_config, __VA_ARGS__)
#define harness_start_daemon(...) HARNESS_CALL_(harness_start_daemon, __VA_ARGS__)
#define harness_start_aggressive(...) HARNESS_CALL_(harness_start_aggressive, __VA_ARGS__)
#define harness_start_in_standard(...) HARNESS_CALL_(harness_start_in_standard, __VA_ARGS__)
#define harness_assert_knobs(...) HARNESS_CALL_(harness_assert_knobs, __VA_ARGS__)
#define harness_stop_daemon(...) HARNESS_CALL_(harness_stop_daemon, __VA_ARGS__)
#define harness_run_daemon(...) HARNESS_CALL_(harness_run_daemon, __VA_ARGS__)
#define harness_run(...) HARNESS_CALL_(harness_run, __VA_ARGS__)
#define harness_bus(...) HARNESS_CALL_(harness_bus, __VA_ARGS__)
#define harness_restart_bus(...) HARNESS_CALL_(harness_restart_bus, __VA_ARGS__)
#define harness_knob(...) HARNESS_CALL_(harness_knob, __VA_ARGS__)
#define harness_knob_text(...) HARNESS_CALL_(harness_knob_text, __VA_ARGS__)
#define harness_set_knob(...) HARNESS_CALL_(harness_set_knob, __VA_ARGS__)
#define harness_get_state(...) HARNESS_CALL_(harness_get_state, __VA_ARGS__)
#define harness_wait_state(...) HARNESS_CALL_(harness_wait_state, __VA_ARGS__)
#define harness_kick(...) HARNESS_CALL_(harness_kick, __VA_ARGS__)
#define harness_get_u64(...) HARNESS_CALL_(harness_get_u64, __VA_ARGS__)
#define harness_start_polkit(...) HARNESS_CALL_(harness_start_polkit, __VA_ARGS__)
#define harness_polkit_call(...) HARNESS_CALL_(harness_polkit_call, __VA_ARGS__)
#define harness_polkit_checks(...) HARNESS_CALL_(harness_polkit_checks, __VA_ARGS__)
#define harness_kick_as_nobody(...) HARNESS_CALL_(harness_kick_as_nobody, __VA_ARGS__)
#define harness_spawn(...) HARNESS_CALL_(harness_spawn, __VA_ARGS__)
#endif
