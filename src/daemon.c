/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "parse-util.h"
#include "proc.h"
#include "saved-state.h"

/* A transition that failed to write is tried again after this long. */
#define RETRY_USEC (5 * USEC_PER_SEC)

/* The throttler is in next from now on: the one place that changes the state. */
static void throttle_set(struct daemon *d, const struct throttle *next) {
        daemon_stats_enter(&d->stats, next->state, clock_now_usec(CLOCK_MONOTONIC));
        d->throttle = *next;
}

void daemon_time_in_state(const struct daemon *d, uint64_t ret[_THROTTLE_STATE_MAX]) {
        daemon_stats_state_usec(&d->stats, clock_now_usec(CLOCK_MONOTONIC), ret);
}

static int timer_arm(struct daemon *d, uint64_t when) {
        int r;

        if (when == 0)
                return sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
        r = sd_event_source_set_time(d->timer, when);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

static void observer_changed(struct daemon *d) {
        if (d->observer && d->observer->changed)
                d->observer->changed(d, d->observer_userdata);
}

static void observer_reset(struct daemon *d) {
        if (d->observer && d->observer->reset)
                d->observer->reset(d, d->observer_userdata);
}

void daemon_set_observer(struct daemon *d, const struct daemon_observer *observer, void *userdata) {
        d->observer = observer;
        d->observer_userdata = userdata;
}

/* Says what failed, if the caller asked and nothing failed before in this call. */
static void failure_set(struct daemon_failure *ret_failure, enum daemon_failure_kind kind, enum ksm_knob knob) {
        if (ret_failure && ret_failure->kind == DAEMON_FAILURE_NONE)
                *ret_failure = (struct daemon_failure) { kind, knob };
}

static void notify_status(struct daemon *d) {
        char settings[256];

        sd_notifyf(false, "STATUS=State: %s (%s)", throttle_state_to_string(d->throttle.state),
                   ksm_settings_format(&d->applied, settings, sizeof settings));
}

/* Reads every knob from sysfs; logs which one could not be read. */
static int read_knobs(struct daemon *d, struct ksm_settings *ret, enum ksm_knob *ret_failed) {
        enum ksm_knob failed = 0;
        int r;

        r = ksm_settings_read(d->ksm_dirfd, ret, &failed);
        if (r < 0) {
                if (ret_failed)
                        *ret_failed = failed;
                return log_error_errno(r, "Cannot read KSM knob %s/%s: %m", d->config.ksm_directory, ksm_knob_name(failed));
        }
        return 0;
}

/* Knob values as the host's own, to restore at the end of a cycle. run=2 ("stop and
 * unmerge everything") is a one-shot command, not a state to return to: writing it back
 * would unmerge all that the cycle merged, so it is taken as run=0. */
static struct ksm_settings host_values(const struct ksm_settings *values) {
        struct ksm_settings host = *values;

        if (ksm_settings_has(&host, KSM_KNOB_RUN) && host.value[KSM_KNOB_RUN] == 2) {
                log_notice("KSM run=2 (unmerge all) is a command, not a setting; the host's run is taken as 0");
                host.value[KSM_KNOB_RUN] = 0;
        }
        return host;
}

/* Adaptive mode samples KSM's counters while a cycle runs, at a pace set by the state. */
static void sample_timer_arm(struct daemon *d) {
        uint64_t interval = d->config.adaptive ? adaptive_sample_interval_usec(&d->adaptive, d->throttle.state) : 0;
        int r;

        if (interval == 0) {
                (void) sd_event_source_set_enabled(d->sample_timer, SD_EVENT_OFF);
                return;
        }
        r = sd_event_source_set_time_relative(d->sample_timer, interval);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->sample_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Cannot arm the sampling timer: %m");
}

/* The knob watch runs outside initial only: in initial nothing of the throttler's is in
 * sysfs, and the host's own writes must not wake the daemon. */
static void knob_watch_arm(struct daemon *d) {
        if (d->knob_watch)
                (void) sd_event_source_set_enabled(d->knob_watch,
                                                   d->throttle.state == THROTTLE_INITIAL ? SD_EVENT_OFF : SD_EVENT_ON);
}

static int sample_read(struct daemon *d, struct ksm_sample *ret) {
        uint64_t anon_before = 0, ksmd_cpu_usec = 0;
        bool has_ksmd_cpu = d->ksmd_pid > 0 && proc_cpu_usec(d->ksmd_pid, &ksmd_cpu_usec) >= 0;
        /* AnonPages right around the counters: a merge moves pages from AnonPages to
         * pages_sharing while they are read (docs/design.md, Adaptive mode). */
        bool has_before = meminfo_read_anon_pages(d->meminfo_path, &anon_before) >= 0;
        int r = ksm_sample_read(d->ksm_dirfd, ret);
        if (r < 0)
                return log_debug_errno(r, "Cannot read the KSM counters: %m");
        ret->anon_pages_before = anon_before;
        ret->has_anon_pages_before = has_before;
        ret->ksmd_cpu_usec = ksmd_cpu_usec;
        ret->has_ksmd_cpu = has_ksmd_cpu;
        /* Memory being filled after a kick (docs/design.md, Adaptive mode). */
        if (meminfo_read_anon_pages(d->meminfo_path, &ret->anon_pages) >= 0)
                ret->has_anon_pages = true;
        ret->time_usec = clock_now_usec(CLOCK_MONOTONIC);
        return 0;
}

/* The knobs of to whose value differs from from: what a transition wrote. */
static const char *format_written(const struct ksm_settings *from, const struct ksm_settings *to, char *buf, size_t size) {
        struct ksm_settings written = *to;

        written.present = 0;
        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (ksm_settings_has(to, k) && (!ksm_settings_has(from, k) || from->value[k] != to->value[k]))
                        written.present |= 1u << k;
        if (written.present == 0)
                return "nothing written";
        ksm_settings_format(&written, buf, size);
        return buf;
}

/* Whether target would change a knob of now. */
static bool settings_differ(const struct ksm_settings *now, const struct ksm_settings *target) {
        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (ksm_settings_has(target, k) && ksm_settings_has(now, k) && now->value[k] != target->value[k])
                        return true;
        return false;
}

/* Gives the host its values back at the end of a cycle: every knob that can be written
 * is, none is put back, and each that cannot is reported. Returns 0 or the first -errno. */
static int restore_host_values(struct daemon *d, const struct ksm_settings *target,
                               struct daemon_failure *ret_failure) {
        struct ksm_settings now;
        int errors[_KSM_KNOB_MAX];
        unsigned failed;
        int r;

        r = ksm_settings_restore(d->ksm_dirfd, &d->applied, target, &now, &failed, errors);
        d->applied = now;
        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (failed & (1u << k)) {
                        char value[KSM_KNOB_VALUE_MAX];
                        log_error_errno(errors[k], "Cannot restore KSM knob %s/%s to %s: %m", d->config.ksm_directory,
                                        ksm_knob_name(k), ksm_knob_format_value(k, target->value[k], value));
                        failure_set(ret_failure, DAEMON_FAILURE_RESTORE_KNOB, k);
                }
        return r < 0 ? r : 0;
}

static int daemon_enter(struct daemon *d, const struct throttle *next, const char *reason,
                        struct daemon_failure *ret_failure);

/* When to compare sysfs with what the throttler wrote (docs/design.md, Outside changes). */
enum outside_check {
        CHECK_ALWAYS,     /* read every knob: timers, the stop, before a write */
        CHECK_IF_WRITTEN, /* only if the watch saw a knob written (or cannot tell): kicks */
};
static int daemon_detect_outside_change(struct daemon *d, enum outside_check check);

/* The values about to be written could not be recorded: a crash now could not be told
 * from an outside change, so the cycle ends and the host gets its values back. */
static int daemon_abandon_cycle(struct daemon *d, int error_code, struct daemon_failure *ret_failure) {
        log_error("Cannot record the KSM values about to be written in %s: not throttling; %s", d->runtime_directory,
                  d->throttle.state == THROTTLE_INITIAL ? "nothing was written" : "restoring the host's values");
        failure_set(ret_failure, DAEMON_FAILURE_SAVE_STATE, 0);
        if (d->throttle.state != THROTTLE_INITIAL) {
                struct throttle initial;
                throttle_init(&initial);
                (void) daemon_enter(d, &initial, "cannot record its writes", NULL);
        }
        return error_code;
}

/* Moves sysfs and the state machine to next. Each write is recorded before it is made
 * (the values about to be written, beside those in sysfs), so that a crash at any point
 * leaves a record that tells the throttler's values from anyone else's. Failure-atomic
 * while throttling: if a knob cannot be written, sysfs is put back and the state stays.
 * The return to initial instead writes every knob it can and reports the others.
 * Before writing anything else, sysfs is compared with what the throttler wrote, so that
 * no write lands on an administrator's value: if one changed, the cycle ends instead.
 * Returns 0, 1 if the cycle ended that way (next was not entered), or -errno. */
static int daemon_enter(struct daemon *d, const struct throttle *next, const char *reason,
                        struct daemon_failure *ret_failure) {
        enum throttle_state previous = d->throttle.state;
        struct ksm_settings target, now;
        enum ksm_knob failed = 0;
        uint64_t anon_pages = 0;
        char written[256];
        int r;

        if (next->state != THROTTLE_INITIAL) {
                r = meminfo_read_anon_pages(d->meminfo_path, &anon_pages);
                if (r < 0)
                        log_warning_errno(r, "Cannot read AnonPages from %s (%m); using MinPagesToScan", d->meminfo_path);
        }
        throttle_settings(&d->config.throttle, next->state, anon_pages, &d->host, &target);
        if (d->config.adaptive && next->state != THROTTLE_INITIAL) {
                uint32_t pages;
                if (next->state != previous)
                        adaptive_on_state_change(&d->adaptive);
                pages = adaptive_pages_to_scan(&d->adaptive, &d->config.adaptive_config, &d->config.throttle, next->state,
                                               d->applied.value[KSM_KNOB_PAGES_TO_SCAN],
                                               target.value[KSM_KNOB_PAGES_TO_SCAN]);
                if (pages > 0)
                        target.value[KSM_KNOB_PAGES_TO_SCAN] = pages;
        }

        struct ksm_settings before = d->applied;
        if (next->state == THROTTLE_INITIAL) {
                /* Restoring needs no new record: a knob already back at the host's value no
                 * longer holds what the record says the throttler wrote, and is left as it is. */
                r = restore_host_values(d, &target, ret_failure);
                d->knobs_unverified = true;
                if (r < 0) {
                        log_error("Could not give every KSM knob the host's value; staying %s, the record in %s stays "
                                  "for ksm-throttler --restore",
                                  throttle_state_to_string(previous), d->runtime_directory);
                        (void) saved_state_save(d->runtime_directory,
                                                &(struct saved_state) { .host = d->host, .written = d->applied });
                        observer_changed(d);
                        return r;
                }
                r = settings_differ(&before, &d->applied);
        } else {
                if (settings_differ(&d->applied, &target)) {
                        if (daemon_detect_outside_change(d, CHECK_ALWAYS) > 0)
                                return 1;
                        r = saved_state_save(d->runtime_directory, &(struct saved_state) {
                                                                           .host = d->host,
                                                                           .written = d->applied,
                                                                           .pending = target,
                                                                   });
                        if (r < 0)
                                return daemon_abandon_cycle(d, r, ret_failure);
                }
                r = ksm_settings_apply(d->ksm_dirfd, &d->applied, &target, &now, &failed);
                d->applied = now;
                if (r != 0)
                        d->knobs_unverified = true; /* the watch saw these writes as anyone's */
                if (r < 0) {
                        log_error_errno(r, "Cannot write KSM knob %s/%s for state %s: %m; staying %s", d->config.ksm_directory,
                                        ksm_knob_name(failed), throttle_state_to_string(next->state),
                                        throttle_state_to_string(previous));
                        failure_set(ret_failure, DAEMON_FAILURE_WRITE_KNOB, failed);
                        /* What the rollback left, recorded as ours. */
                        (void) saved_state_save(d->runtime_directory,
                                                &(struct saved_state) { .host = d->host, .written = d->applied });
                        observer_changed(d);
                        return r;
                }
        }

        bool deadline_moved = next->deadline_usec != d->throttle.deadline_usec || next->state != previous;
        throttle_set(d, next);
        if (next->state == THROTTLE_INITIAL)
                (void) saved_state_remove(d->runtime_directory); /* the host has its values back */
        else if (r > 0)
                /* Done: what was pending is what is written. If this fails, the record of
                 * the intent still tells our values from someone else's. */
                (void) saved_state_save(d->runtime_directory,
                                        &(struct saved_state) { .host = d->host, .written = d->applied });
        if (deadline_moved) {
                d->next_transition_usec = next->deadline_usec == 0 ? 0
                                                                   : clock_now_usec(CLOCK_REALTIME) +
                                                                             (next->deadline_usec - clock_now_usec(CLOCK_MONOTONIC));
                r = timer_arm(d, next->deadline_usec);
                if (r < 0)
                        log_error_errno(r, "Cannot arm the decay timer: %m");
        }
        if (next->state != previous) {
                d->resizing_suspended = false;
                sample_timer_arm(d);
                knob_watch_arm(d);
        }

        if (previous != next->state) {
                log_info("State %s (was %s, %s): %s", throttle_state_to_string(next->state),
                         throttle_state_to_string(previous), reason, format_written(&before, &d->applied, written, sizeof written));
                notify_status(d);
        } else
                log_debug("State %s (%s): %d knob(s) written", throttle_state_to_string(next->state), reason, r);

        observer_changed(d);
        return 0;
}

/* Whether a knob may have been written by anyone since sysfs was last compared: the
 * watch's queue is emptied here, so that a compare that follows covers what it held. */
static bool knobs_maybe_written(struct daemon *d) {
        int r;

        if (!d->knob_watch)
                return true; /* no watch: only reading tells */
        r = ksm_knob_watch_drain(sd_event_source_get_io_fd(d->knob_watch));
        if (r < 0) {
                log_warning_errno(r, "Cannot watch %s for writes any more (%m); each kick now reads every knob",
                                  d->config.ksm_directory);
                d->knob_watch = sd_event_source_disable_unref(d->knob_watch);
                return true;
        }
        return r > 0 || d->knobs_unverified;
}

/* If a knob no longer holds what the throttler wrote, an administrator or another tool
 * (ksmtuned, tuned) is managing KSM: the cycle ends in initial. The knobs that were
 * changed become the host's values and stay as they are; the others, which only the
 * throttler wrote, get the host's values back. Returns 1 if that happened.
 * With CHECK_IF_WRITTEN, sysfs is read only if the watch saw a knob written (or the
 * throttler wrote since the last compare): a kick that writes nothing reads nothing. */
static int daemon_detect_outside_change(struct daemon *d, enum outside_check check) {
        struct ksm_settings now, changed = {};
        char wrote[256], holds[256];
        int r;

        bool maybe_written = knobs_maybe_written(d);
        if (d->throttle.state == THROTTLE_INITIAL || (check == CHECK_IF_WRITTEN && !maybe_written))
                return 0; /* nothing of ours in sysfs, or nobody wrote a knob */
        if (ksm_settings_read(d->ksm_dirfd, &now, NULL) < 0) {
                d->knobs_unverified = true;
                return 0; /* unreadable: the next write reports it */
        }
        d->knobs_unverified = false;

        /* While throttling, advisor_mode is none: the kernel moves none of these by itself. */
        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (ksm_settings_has(&now, k) && ksm_settings_has(&d->applied, k) && now.value[k] != d->applied.value[k])
                        ksm_settings_set(&changed, k, now.value[k]);
        if (changed.present == 0)
                return 0;

        log_notice("KSM knobs were changed from outside during %s (the throttler wrote %s; they hold %s): "
                   "ending the cycle; these are now the host's values, the other knobs get the host's values back",
                   throttle_state_to_string(d->throttle.state), format_written(&now, &d->applied, wrote, sizeof wrote),
                   ksm_settings_format(&changed, holds, sizeof holds));
        struct ksm_settings adopted = host_values(&changed);
        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (ksm_settings_has(&adopted, k))
                        ksm_settings_set(&d->host, k, adopted.value[k]);
        d->applied = now;

        struct throttle initial;
        throttle_init(&initial);
        r = daemon_enter(d, &initial, "changed from outside", NULL);
        if (r < 0) {
                /* Reported; the record stays for --restore. Throttling does not resume
                 * over the administrator's values. */
                throttle_set(d, &initial);
                d->next_transition_usec = 0;
                (void) timer_arm(d, 0);
                sample_timer_arm(d);
                knob_watch_arm(d);
                notify_status(d);
                observer_changed(d);
        }
        return 1;
}

/* One attempt at a kick. Returns 1 if the cycle ended on an outside change found just
 * before the first write (nothing written: the caller starts over from initial). */
static int kick_once(struct daemon *d, struct daemon_failure *ret_failure) {
        struct throttle next = d->throttle;
        struct ksm_sample sample;
        bool sampled = false;
        int r;

        if (d->throttle.state == THROTTLE_INITIAL) {
                /* A new cycle starts from whatever the host has now. */
                struct ksm_settings now;
                enum ksm_knob failed = 0;
                r = read_knobs(d, &now, &failed);
                if (r < 0) {
                        failure_set(ret_failure, DAEMON_FAILURE_READ_KNOB, failed);
                        return r;
                }
                /* Saved by daemon_enter() with the first values it writes, before writing them. */
                d->host = host_values(&now);
                d->applied = now;
        }

        /* The convergence watch starts over, from now or (counters unreadable) the next
         * sample. In aggressive the sampling timer takes that sample within its interval,
         * so that a kick there reads no sysfs file. */
        if (d->config.adaptive && d->throttle.state != THROTTLE_AGGRESSIVE)
                sampled = sample_read(d, &sample) >= 0;
        adaptive_on_kick(&d->adaptive, sampled ? &sample : NULL);
        throttle_on_kick(&next, &d->config.throttle, clock_now_usec(CLOCK_MONOTONIC));
        return daemon_enter(d, &next, "kicked", ret_failure);
}

int daemon_kick(struct daemon *d, const char *origin, struct daemon_failure *ret_failure) {
        int r;

        if (ret_failure)
                *ret_failure = (struct daemon_failure) { .kind = DAEMON_FAILURE_NONE };

        /* Reads sysfs only if the watch saw a knob written; a kick that writes is checked
         * again just before its first write, in daemon_enter(). */
        (void) daemon_detect_outside_change(d, CHECK_IF_WRITTEN);
        r = kick_once(d, ret_failure);
        if (r > 0)
                /* Someone else's values were found before the first write: the cycle ended,
                 * and the kick starts a new one from them (from initial, which reads them
                 * as the host's: this cannot end that way again). */
                r = kick_once(d, ret_failure);
        if (r < 0) {
                /* Rolled back to the host's values? Then nothing needs restoring later; if the
                 * rollback itself failed, the saved file is what gives them back. */
                if (d->throttle.state == THROTTLE_INITIAL && ksm_settings_equal(&d->applied, &d->host))
                        (void) saved_state_remove(d->runtime_directory);
                return r;
        }

        d->kick_count++;
        d->last_kick_usec = clock_now_usec(CLOCK_REALTIME);
        daemon_stats_count_kick(&d->stats, origin);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct daemon *d = userdata;
        struct throttle next = d->throttle;

        if (clock_now_usec(CLOCK_MONOTONIC) >= d->throttle.deadline_usec && daemon_detect_outside_change(d, CHECK_ALWAYS) > 0)
                return 0;
        if (!throttle_on_timer(&next, &d->config.throttle, clock_now_usec(CLOCK_MONOTONIC))) {
                /* Woken early (timer slack): wait for the real deadline. */
                timer_arm(d, d->throttle.deadline_usec);
                return 0;
        }
        if (daemon_enter(d, &next, "no kick", NULL) < 0 && d->throttle.state != THROTTLE_INITIAL) {
                /* Stay, and try again soon; show when. (Back in initial, the cycle was
                 * abandoned: nothing to retry.) */
                d->throttle.deadline_usec = clock_now_usec(CLOCK_MONOTONIC) + RETRY_USEC;
                d->next_transition_usec = clock_now_usec(CLOCK_REALTIME) + RETRY_USEC;
                if (timer_arm(d, d->throttle.deadline_usec) < 0)
                        log_error("Cannot arm the decay timer: KSM stays in %s until the next kick or stop",
                                  throttle_state_to_string(d->throttle.state));
                observer_changed(d);
        }
        return 0;
}

/* A knob was written, by the throttler or anyone: compared at once, so that an outside
 * change ends the cycle without waiting for a timer or a kick. */
static int on_knob_watch(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) daemon_detect_outside_change(userdata, CHECK_IF_WRITTEN);
        return 0;
}

static int on_sample_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct daemon *d = userdata;
        struct throttle next = d->throttle;
        struct ksm_sample sample;

        if (d->throttle.state == THROTTLE_INITIAL || daemon_detect_outside_change(d, CHECK_ALWAYS) > 0)
                return 0;
        if (sample_read(d, &sample) < 0) {
                sample_timer_arm(d);
                return 0;
        }

        if (adaptive_on_sample(&d->adaptive, &d->config.adaptive_config, d->throttle.state,
                               d->applied.value[KSM_KNOB_PAGES_TO_SCAN], &sample) &&
            throttle_on_converged(&next, &d->config.throttle, sample.time_usec)) {
                char reason[128];
                /* KSM's own net gain, the figure ksmctl shows (gross pages on kernels without it). */
                int64_t saved = ksm_saved_bytes(d->ksm_dirfd, &sample, NULL);
                snprintf(reason, sizeof reason, "merging settled after %" PRIu64 " full scans, %.1f MiB saved",
                         sample.full_scans - d->adaptive.kick.full_scans, (double) saved / (1024.0 * 1024.0));
                if (daemon_enter(d, &next, reason, NULL) >= 0)
                        return 0; /* daemon_enter armed the sampling for the new state */
        } else {
                /* Same state: re-size pages_to_scan from what was measured (written only if it moved). */
                log_debug("Sample: ksmd at %u.%u%% of a CPU, ceiling %u, %" PRIu64 " pages/s, %" PRIu64
                          " pages per full scan, pages_to_scan %u",
                          d->adaptive.cpu_permille / 10, d->adaptive.cpu_permille % 10, d->adaptive.cpu_ceiling,
                          d->adaptive.scan_rate, d->adaptive.pages_per_full_scan, d->applied.value[KSM_KNOB_PAGES_TO_SCAN]);
                if (!d->resizing_suspended && daemon_enter(d, &next, "re-sized", NULL) < 0)
                        d->resizing_suspended = true; /* logged once; retried at the next transition */
        }
        sample_timer_arm(d);
        return 0;
}

int daemon_reload_config(struct daemon *d, const char *path, bool required) {
        struct config fresh;
        int r;

        r = config_init(&fresh);
        if (r < 0)
                return log_error_errno(r, "Cannot reload the configuration: %m");
        r = config_load(&fresh, path, required);
        if (r < 0) {
                config_done(&fresh);
                return log_error_errno(r, "Configuration reload rejected; the running configuration stays in force");
        }
        bool was_adaptive = d->config.adaptive;
        /* The knobs' directory is opened once at start; moving it needs a restart. */
        if (strcmp(fresh.ksm_directory, d->config.ksm_directory) != 0 && d->ksm_directory_from_config)
                log_warning("KsmDirectory=%s takes effect only after a restart; still using %s", fresh.ksm_directory,
                            d->config.ksm_directory);
        free(fresh.ksm_directory);
        fresh.ksm_directory = d->config.ksm_directory;
        d->config.ksm_directory = NULL;
        config_done(&d->config);
        d->config = fresh;
        if (d->config.adaptive && !was_adaptive)
                adaptive_on_kick(&d->adaptive, NULL); /* no watch ran: start one from the next sample */
        sample_timer_arm(d); /* Adaptive= may have changed */
        log_info("Reloaded the configuration from %s; new values apply from the next transition%s",
                 d->config.sources ?: "built-in defaults (no file found)",
                 d->config.adaptive ? " (adaptive sizing from the next sample)" : "");
        if (d->observer && d->observer->config_reloaded)
                d->observer->config_reloaded(d, d->observer_userdata);
        return 0;
}

int daemon_restore(struct daemon *d) {
        struct throttle initial;
        int r;

        if (d->throttle.state == THROTTLE_INITIAL || daemon_detect_outside_change(d, CHECK_ALWAYS) > 0)
                return 0;
        throttle_init(&initial);
        r = daemon_enter(d, &initial, "shutting down", NULL);
        if (r < 0)
                return r;
        return 0;
}

/* Whether a knob still holds a value the dead instance wrote or was about to write. A
 * knob the record says nothing about is taken as the throttler's (older records). */
static bool knob_holds_throttler_value(const struct saved_state *state, const struct ksm_settings *current, enum ksm_knob k) {
        bool known = false;

        if (ksm_settings_has(&state->written, k)) {
                known = true;
                if (current->value[k] == state->written.value[k])
                        return true;
        }
        if (ksm_settings_has(&state->pending, k)) {
                known = true;
                if (current->value[k] == state->pending.value[k])
                        return true;
        }
        /* A pending change of advisor_mode makes the kernel reset pages_to_scan to its own default. */
        if (k == KSM_KNOB_PAGES_TO_SCAN && ksm_settings_has(&state->pending, KSM_KNOB_ADVISOR_MODE) &&
            ksm_settings_has(&state->written, KSM_KNOB_ADVISOR_MODE) &&
            state->pending.value[KSM_KNOB_ADVISOR_MODE] != state->written.value[KSM_KNOB_ADVISOR_MODE])
                return true;
        return !known;
}

int daemon_recover(struct daemon *d) {
        struct saved_state state;
        struct ksm_settings saved, current = {}, now;
        int errors[_KSM_KNOB_MAX] = {}, write_errors[_KSM_KNOB_MAX];
        unsigned failed = 0, write_failed;
        char text[256];
        int r;

        r = saved_state_load(d->runtime_directory, &state);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;

        /* Knob by knob: one that cannot be read is reported, the others are still restored. */
        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                uint32_t value;
                if (!ksm_settings_has(&state.host, k))
                        continue;
                r = ksm_knob_read(d->ksm_dirfd, k, &value);
                if (r == -ENOENT && !ksm_knob_is_required(k))
                        continue; /* this kernel lacks it: nothing to restore */
                if (r < 0) {
                        failed |= 1u << k;
                        errors[k] = r;
                        continue;
                }
                ksm_settings_set(&current, k, value);
        }
        saved = host_values(&state.host);
        saved.present &= current.present;
        /* A knob that holds neither what the dead instance wrote nor what it was about to
         * write was changed by someone else after it: theirs stands. */
        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                if (ksm_settings_has(&saved, k) && current.value[k] != saved.value[k] &&
                    !knob_holds_throttler_value(&state, &current, k)) {
                        log_notice("KSM knob %s was changed after the throttler wrote it; leaving it as it is",
                                   ksm_knob_name(k));
                        saved.value[k] = current.value[k];
                }
        log_notice("A previous ksm-throttler did not restore the host's KSM settings; restoring %s from %s/%s",
                   ksm_settings_format(&saved, text, sizeof text), d->runtime_directory, SAVED_STATE_FILE);
        r = ksm_settings_restore(d->ksm_dirfd, &current, &saved, &now, &write_failed, write_errors);
        for (int k = 0; k < _KSM_KNOB_MAX; k++) {
                char value[KSM_KNOB_VALUE_MAX];
                if (write_failed & (1u << k))
                        errors[k] = write_errors[k];
                else if (!(failed & (1u << k)))
                        continue;
                failed |= 1u << k;
                log_error_errno(errors[k], "Cannot restore KSM knob %s/%s to %s: %m", d->config.ksm_directory, ksm_knob_name(k),
                                ksm_knob_format_value(k, state.host.value[k], value));
        }
        if (failed != 0) {
                log_error("Some KSM knobs still lack the host's values; %s/%s is kept for the next ksm-throttler --restore",
                          d->runtime_directory, SAVED_STATE_FILE);
                return r < 0 ? r : -EIO;
        }
        r = saved_state_remove(d->runtime_directory);
        if (r < 0)
                return r;
        /* What sysfs holds now is the host's own again. */
        d->host = d->applied = now;
        observer_reset(d);
        return 1;
}

int daemon_init(struct daemon *d, sd_event *event) {
        int r;

        throttle_init(&d->throttle);
        daemon_stats_init(&d->stats, d->throttle.state, clock_now_usec(CLOCK_MONOTONIC));
        r = read_knobs(d, &d->applied, NULL);
        if (r < 0)
                return r;
        d->host = host_values(&d->applied);
        d->event = sd_event_ref(event);

        r = sd_event_add_time(event, &d->timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC, on_timer, d);
        if (r < 0)
                return log_error_errno(r, "Cannot create the decay timer: %m");
        r = sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Cannot create the decay timer: %m");

        r = sd_event_add_time(event, &d->sample_timer, CLOCK_MONOTONIC, UINT64_MAX, 10 * USEC_PER_MSEC, on_sample_timer, d);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->sample_timer, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Cannot create the sampling timer: %m");
        /* Optional: without it every kick reads every knob (docs/design.md, Outside changes). */
        r = ksm_knob_watch_open(d->ksm_dirfd);
        if (r >= 0) {
                int fd = r;
                r = sd_event_add_io(event, &d->knob_watch, fd, EPOLLIN, on_knob_watch, d);
                if (r < 0)
                        close(fd);
                else {
                        (void) sd_event_source_set_io_fd_own(d->knob_watch, true);
                        /* Before a kick read in the same loop iteration (a kick read in a
                         * batch, after it, drains the watch itself: knobs_maybe_written). */
                        (void) sd_event_source_set_priority(d->knob_watch, SD_EVENT_PRIORITY_IMPORTANT);
                        r = sd_event_source_set_enabled(d->knob_watch, SD_EVENT_OFF);
                }
        }
        if (r < 0) {
                log_info_errno(r, "Cannot watch %s for writes (%m); each kick reads every knob", d->config.ksm_directory);
                d->knob_watch = sd_event_source_disable_unref(d->knob_watch);
        }

        r = ksmd_find("/proc", &d->ksmd_pid);
        if (r >= 0)
                log_debug("ksmd is PID %d", (int) d->ksmd_pid);
        else if (d->config.adaptive)
                log_info("ksmd is not visible in /proc; adaptive mode runs without a CPU budget");

        observer_reset(d); /* nothing to announce at start */
        return 0;
}

void daemon_done(struct daemon *d) {
        d->timer = sd_event_source_disable_unref(d->timer);
        d->sample_timer = sd_event_source_disable_unref(d->sample_timer);
        d->knob_watch = sd_event_source_disable_unref(d->knob_watch);
        d->event = sd_event_unref(d->event);
        if (d->ksm_dirfd >= 0)
                close(d->ksm_dirfd);
        d->ksm_dirfd = -EBADF;
        config_done(&d->config);
}
