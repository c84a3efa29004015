/* SPDX-License-Identifier: Apache-2.0 */
/* The throttling schedule, driven with injected times. */
#include <criterion/criterion.h>

#include "parse-util.h"
#include "state-machine.h"

#define T0 UINT64_C(1000)

static struct throttle_config config;
static struct throttle t;

static void setup(void) {
        throttle_config_default(&config);
        throttle_init(&t);
}

TestSuite(throttle, .init = setup);

static void assert_state(enum throttle_state state, uint64_t deadline) {
        cr_assert_eq(t.state, state, "state is %s, expected %s", throttle_state_to_string(t.state),
                     throttle_state_to_string(state));
        cr_assert_eq(t.deadline_usec, deadline, "deadline is %llu, expected %llu", (unsigned long long) t.deadline_usec,
                     (unsigned long long) deadline);
}

static struct ksm_settings host_settings(bool advisor) {
        struct ksm_settings s = {};
        if (advisor)
                ksm_settings_set(&s, KSM_KNOB_ADVISOR_MODE, KSM_ADVISOR_SCAN_TIME);
        ksm_settings_set(&s, KSM_KNOB_PAGES_TO_SCAN, 100);
        ksm_settings_set(&s, KSM_KNOB_SLEEP_MILLISECS, 20);
        ksm_settings_set(&s, KSM_KNOB_RUN, 0);
        return s;
}

static void assert_throttled(const struct ksm_settings *s, uint32_t pages, uint32_t sleep_ms) {
        cr_assert(ksm_settings_has(s, KSM_KNOB_RUN));
        cr_assert_eq(s->value[KSM_KNOB_RUN], 1);
        cr_assert(ksm_settings_has(s, KSM_KNOB_PAGES_TO_SCAN));
        cr_assert_eq(s->value[KSM_KNOB_PAGES_TO_SCAN], pages, "pages_to_scan is %u, expected %u",
                     s->value[KSM_KNOB_PAGES_TO_SCAN], pages);
        cr_assert(ksm_settings_has(s, KSM_KNOB_SLEEP_MILLISECS));
        cr_assert_eq(s->value[KSM_KNOB_SLEEP_MILLISECS], sleep_ms, "sleep_millisecs is %u, expected %u",
                     s->value[KSM_KNOB_SLEEP_MILLISECS], sleep_ms);
}

Test(throttle, starts_initial_without_deadline) {
        assert_state(THROTTLE_INITIAL, 0);
}

Test(throttle, timer_in_initial_does_nothing) {
        cr_assert_not(throttle_on_timer(&t, &config, 0));
        assert_state(THROTTLE_INITIAL, 0);
        cr_assert_not(throttle_on_timer(&t, &config, 500 * USEC_PER_SEC));
        assert_state(THROTTLE_INITIAL, 0);
}

Test(throttle, full_cycle_after_one_kick) {
        uint64_t now = T0;

        throttle_on_kick(&t, &config, now);
        assert_state(THROTTLE_AGGRESSIVE, now + 30 * USEC_PER_SEC);

        /* Early timer: not due yet. */
        cr_assert_not(throttle_on_timer(&t, &config, now + 30 * USEC_PER_SEC - 1));
        assert_state(THROTTLE_AGGRESSIVE, now + 30 * USEC_PER_SEC);

        now += 30 * USEC_PER_SEC;
        cr_assert(throttle_on_timer(&t, &config, now));
        assert_state(THROTTLE_STANDARD, now + 120 * USEC_PER_SEC);

        cr_assert_not(throttle_on_timer(&t, &config, now + 60 * USEC_PER_SEC));
        assert_state(THROTTLE_STANDARD, now + 120 * USEC_PER_SEC);

        now += 120 * USEC_PER_SEC;
        cr_assert(throttle_on_timer(&t, &config, now));
        assert_state(THROTTLE_SLOW, now + 120 * USEC_PER_SEC);

        now += 120 * USEC_PER_SEC;
        cr_assert(throttle_on_timer(&t, &config, now));
        assert_state(THROTTLE_INITIAL, 0);

        /* And it stays there. */
        cr_assert_not(throttle_on_timer(&t, &config, now + 1000 * USEC_PER_SEC));
        assert_state(THROTTLE_INITIAL, 0);
}

Test(throttle, late_timer_still_decays_one_step) {
        throttle_on_kick(&t, &config, T0);
        cr_assert(throttle_on_timer(&t, &config, T0 + 31 * USEC_PER_SEC));
        cr_assert_eq(t.state, THROTTLE_STANDARD);
        cr_assert_geq(t.deadline_usec, T0 + 31 * USEC_PER_SEC, "the new deadline is in the past");
}

Test(throttle, kick_in_standard_goes_back_to_aggressive) {
        throttle_on_kick(&t, &config, T0);
        cr_assert(throttle_on_timer(&t, &config, T0 + 30 * USEC_PER_SEC));
        cr_assert_eq(t.state, THROTTLE_STANDARD);

        uint64_t kick = T0 + 50 * USEC_PER_SEC;
        throttle_on_kick(&t, &config, kick);
        assert_state(THROTTLE_AGGRESSIVE, kick + 30 * USEC_PER_SEC);
}

Test(throttle, kick_in_slow_goes_back_to_aggressive) {
        uint64_t now = T0;
        throttle_on_kick(&t, &config, now);
        cr_assert(throttle_on_timer(&t, &config, now += 30 * USEC_PER_SEC));
        cr_assert(throttle_on_timer(&t, &config, now += 120 * USEC_PER_SEC));
        cr_assert_eq(t.state, THROTTLE_SLOW);

        throttle_on_kick(&t, &config, now + 5);
        assert_state(THROTTLE_AGGRESSIVE, now + 5 + 30 * USEC_PER_SEC);
}

Test(throttle, kick_in_aggressive_restarts_deadline) {
        throttle_on_kick(&t, &config, T0);
        throttle_on_kick(&t, &config, T0 + 20 * USEC_PER_SEC);
        assert_state(THROTTLE_AGGRESSIVE, T0 + 50 * USEC_PER_SEC);

        /* The first kick's deadline no longer counts. */
        cr_assert_not(throttle_on_timer(&t, &config, T0 + 30 * USEC_PER_SEC));
        assert_state(THROTTLE_AGGRESSIVE, T0 + 50 * USEC_PER_SEC);
        cr_assert(throttle_on_timer(&t, &config, T0 + 50 * USEC_PER_SEC));
        cr_assert_eq(t.state, THROTTLE_STANDARD);
}

Test(throttle, init_forgets_the_cycle) {
        throttle_on_kick(&t, &config, T0);
        throttle_init(&t);
        assert_state(THROTTLE_INITIAL, 0);
        cr_assert_not(throttle_on_timer(&t, &config, T0 + 30 * USEC_PER_SEC));
}

Test(throttle, converged_aggressive_gives_way_to_standard_now) {
        cr_assert_not(throttle_on_converged(&t, &config, T0), "nothing to leave in initial");
        throttle_on_kick(&t, &config, T0);
        cr_assert(throttle_on_converged(&t, &config, T0 + 5 * USEC_PER_SEC));
        assert_state(THROTTLE_STANDARD, T0 + 125 * USEC_PER_SEC);
        cr_assert_not(throttle_on_converged(&t, &config, T0 + 6 * USEC_PER_SEC), "only aggressive converges");
        assert_state(THROTTLE_STANDARD, T0 + 125 * USEC_PER_SEC);
}

Test(throttle, custom_durations) {
        config.level[THROTTLE_AGGRESSIVE].duration_usec = 200 * USEC_PER_MSEC;
        config.level[THROTTLE_STANDARD].duration_usec = 300 * USEC_PER_MSEC;
        config.level[THROTTLE_SLOW].duration_usec = 5 * USEC_PER_SEC;

        throttle_on_kick(&t, &config, T0);
        assert_state(THROTTLE_AGGRESSIVE, T0 + 200 * USEC_PER_MSEC);
        cr_assert(throttle_on_timer(&t, &config, T0 + 200 * USEC_PER_MSEC));
        assert_state(THROTTLE_STANDARD, T0 + 500 * USEC_PER_MSEC);
        cr_assert(throttle_on_timer(&t, &config, T0 + 500 * USEC_PER_MSEC));
        assert_state(THROTTLE_SLOW, T0 + 5500 * USEC_PER_MSEC);
        cr_assert_not(throttle_on_timer(&t, &config, T0 + 5499 * USEC_PER_MSEC));
        cr_assert(throttle_on_timer(&t, &config, T0 + 5500 * USEC_PER_MSEC));
        assert_state(THROTTLE_INITIAL, 0);
}

Test(throttle, settings_initial_are_the_hosts) {
        struct ksm_settings host = host_settings(true), s;
        throttle_settings(&config, THROTTLE_INITIAL, 1000000, &host, &s);
        cr_assert(ksm_settings_equal(&s, &host));
        cr_assert_eq(s.value[KSM_KNOB_ADVISOR_MODE], KSM_ADVISOR_SCAN_TIME);

        host = host_settings(false);
        throttle_settings(&config, THROTTLE_INITIAL, 1000000, &host, &s);
        cr_assert(ksm_settings_equal(&s, &host));
        cr_assert_not(ksm_settings_has(&s, KSM_KNOB_ADVISOR_MODE));
}

Test(throttle, settings_aggressive) {
        struct ksm_settings host = host_settings(false), s;

        /* AnonPages / 10 = 100000, clamped by MaxPagesToScan. */
        throttle_settings(&config, THROTTLE_AGGRESSIVE, 1000000, &host, &s);
        assert_throttled(&s, 30000, 1);

        throttle_settings(&config, THROTTLE_AGGRESSIVE, 100000, &host, &s);
        assert_throttled(&s, 10000, 1);
}

Test(throttle, settings_standard_and_slow) {
        struct ksm_settings host = host_settings(false), s;

        throttle_settings(&config, THROTTLE_STANDARD, 1000000, &host, &s);
        assert_throttled(&s, 10000, 10);

        throttle_settings(&config, THROTTLE_SLOW, 1000000, &host, &s);
        assert_throttled(&s, 2000, 100);
}

Test(throttle, settings_clamped_to_min) {
        struct ksm_settings host = host_settings(false), s;

        throttle_settings(&config, THROTTLE_AGGRESSIVE, 100, &host, &s);
        assert_throttled(&s, 64, 1);
        throttle_settings(&config, THROTTLE_SLOW, 0, &host, &s);
        assert_throttled(&s, 64, 100);
}

Test(throttle, settings_follow_custom_config) {
        struct ksm_settings host = host_settings(false), s;

        config.min_pages_to_scan = 10;
        config.max_pages_to_scan = 1000000;
        config.level[THROTTLE_STANDARD].pages_per_scan_factor = 3;
        config.level[THROTTLE_STANDARD].sleep_millisecs = 7;
        throttle_settings(&config, THROTTLE_STANDARD, 3000000, &host, &s);
        assert_throttled(&s, 1000000, 7);
        throttle_settings(&config, THROTTLE_STANDARD, 300, &host, &s);
        assert_throttled(&s, 100, 7);
        throttle_settings(&config, THROTTLE_STANDARD, 3, &host, &s);
        assert_throttled(&s, 10, 7);
}

Test(throttle, settings_turn_advisor_off_only_where_the_kernel_has_it) {
        struct ksm_settings host = host_settings(true), s;

        for (enum throttle_state st = THROTTLE_AGGRESSIVE; st <= THROTTLE_SLOW; st++) {
                throttle_settings(&config, st, 1000000, &host, &s);
                cr_assert(ksm_settings_has(&s, KSM_KNOB_ADVISOR_MODE), "%s", throttle_state_to_string(st));
                cr_assert_eq(s.value[KSM_KNOB_ADVISOR_MODE], KSM_ADVISOR_NONE, "%s", throttle_state_to_string(st));
        }

        host = host_settings(false);
        throttle_settings(&config, THROTTLE_AGGRESSIVE, 1000000, &host, &s);
        cr_assert_not(ksm_settings_has(&s, KSM_KNOB_ADVISOR_MODE));
}

/* smart_scan, like advisor_mode, exists only on some kernels (6.7+): managed where it does. */
Test(throttle, settings_set_smart_scan_per_state_only_where_the_kernel_has_it) {
        struct ksm_settings host = host_settings(false), s;
        struct throttle_config c;

        throttle_config_default(&c);
        ksm_settings_set(&host, KSM_KNOB_SMART_SCAN, 1);
        throttle_settings(&c, THROTTLE_AGGRESSIVE, 1000000, &host, &s);
        cr_assert(ksm_settings_has(&s, KSM_KNOB_SMART_SCAN));
        cr_assert_eq(s.value[KSM_KNOB_SMART_SCAN], 0, "aggressive leaves smart_scan on by default");
        for (enum throttle_state st = THROTTLE_STANDARD; st <= THROTTLE_SLOW; st++) {
                throttle_settings(&c, st, 1000000, &host, &s);
                cr_assert_eq(s.value[KSM_KNOB_SMART_SCAN], 1, "%s does not keep the host's smart_scan=1",
                             throttle_state_to_string(st));
        }
        throttle_settings(&c, THROTTLE_INITIAL, 1000000, &host, &s);
        cr_assert_eq(s.value[KSM_KNOB_SMART_SCAN], 1, "initial is not the host's smart_scan");

        /* Configured on in standard, host's in aggressive, for a host that has it off. */
        host.value[KSM_KNOB_SMART_SCAN] = 0;
        c.level[THROTTLE_STANDARD].smart_scan = THROTTLE_SWITCH_ON;
        c.level[THROTTLE_AGGRESSIVE].smart_scan = THROTTLE_SWITCH_HOST;
        throttle_settings(&c, THROTTLE_STANDARD, 1000000, &host, &s);
        cr_assert_eq(s.value[KSM_KNOB_SMART_SCAN], 1, "SmartScan=yes in standard not applied");
        throttle_settings(&c, THROTTLE_AGGRESSIVE, 1000000, &host, &s);
        cr_assert_eq(s.value[KSM_KNOB_SMART_SCAN], 0, "SmartScan=host in aggressive not the host's 0");

        /* A kernel without smart_scan: nothing about it in any state. */
        host = host_settings(false);
        for (enum throttle_state st = THROTTLE_INITIAL; st <= THROTTLE_SLOW; st++) {
                throttle_settings(&c, st, 1000000, &host, &s);
                cr_assert_not(ksm_settings_has(&s, KSM_KNOB_SMART_SCAN), "smart_scan set in %s on a kernel without it",
                              throttle_state_to_string(st));
        }

        /* use_zero_pages: on in aggressive by default, the host's elsewhere, nothing
         * on a kernel without it. */
        host = host_settings(false);
        throttle_config_default(&c);
        throttle_settings(&c, THROTTLE_AGGRESSIVE, 1000000, &host, &s);
        cr_assert_not(ksm_settings_has(&s, KSM_KNOB_USE_ZERO_PAGES), "use_zero_pages set on a kernel without it");
        ksm_settings_set(&host, KSM_KNOB_USE_ZERO_PAGES, 0);
        throttle_settings(&c, THROTTLE_AGGRESSIVE, 1000000, &host, &s);
        cr_assert_eq(s.value[KSM_KNOB_USE_ZERO_PAGES], 1, "aggressive does not turn use_zero_pages on by default");
        for (enum throttle_state st = THROTTLE_INITIAL; st <= THROTTLE_SLOW; st++) {
                if (st == THROTTLE_AGGRESSIVE)
                        continue;
                throttle_settings(&c, st, 1000000, &host, &s);
                cr_assert_eq(s.value[KSM_KNOB_USE_ZERO_PAGES], 0, "%s does not keep the host's use_zero_pages=0",
                             throttle_state_to_string(st));
        }
        c.level[THROTTLE_SLOW].use_zero_pages = THROTTLE_SWITCH_ON;
        c.level[THROTTLE_AGGRESSIVE].use_zero_pages = THROTTLE_SWITCH_OFF;
        host.value[KSM_KNOB_USE_ZERO_PAGES] = 1;
        throttle_settings(&c, THROTTLE_AGGRESSIVE, 1000000, &host, &s);
        cr_assert_eq(s.value[KSM_KNOB_USE_ZERO_PAGES], 0, "UseZeroPages=no in aggressive not applied");
        host.value[KSM_KNOB_USE_ZERO_PAGES] = 0;
        throttle_settings(&c, THROTTLE_SLOW, 1000000, &host, &s);
        cr_assert_eq(s.value[KSM_KNOB_USE_ZERO_PAGES], 1, "UseZeroPages=yes in slow not applied");

        cr_assert_eq(throttle_switch_from_string("host"), THROTTLE_SWITCH_HOST);
        cr_assert_eq(throttle_switch_from_string("no"), THROTTLE_SWITCH_OFF);
        cr_assert_eq(throttle_switch_from_string("yes"), THROTTLE_SWITCH_ON);
        cr_assert_eq(throttle_switch_from_string("maybe"), _THROTTLE_SWITCH_MAX);
        cr_assert_str_eq(throttle_switch_to_string(THROTTLE_SWITCH_OFF), "no");
}

Test(throttle, settings_do_not_depend_on_host_values) {
        struct ksm_settings host = host_settings(false), a, b;

        throttle_settings(&config, THROTTLE_STANDARD, 500000, &host, &a);
        ksm_settings_set(&host, KSM_KNOB_PAGES_TO_SCAN, 12345);
        ksm_settings_set(&host, KSM_KNOB_SLEEP_MILLISECS, 999);
        ksm_settings_set(&host, KSM_KNOB_RUN, 1);
        throttle_settings(&config, THROTTLE_STANDARD, 500000, &host, &b);
        cr_assert(ksm_settings_equal(&a, &b));
        assert_throttled(&b, 5000, 10);
}

Test(throttle, state_names) {
        static const struct {
                enum throttle_state state;
                const char *name;
        } names[] = {
                { THROTTLE_INITIAL, "initial" },
                { THROTTLE_AGGRESSIVE, "aggressive" },
                { THROTTLE_STANDARD, "standard" },
                { THROTTLE_SLOW, "slow" },
        };
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                cr_assert_str_eq(throttle_state_to_string(names[i].state), names[i].name);
                cr_assert_eq(throttle_state_from_string(names[i].name), names[i].state);
        }
        cr_assert_null(throttle_state_to_string(_THROTTLE_STATE_MAX));
        cr_assert_eq(throttle_state_from_string("bogus"), _THROTTLE_STATE_MAX);
        cr_assert_eq(throttle_state_from_string(""), _THROTTLE_STATE_MAX);
        cr_assert_eq(throttle_state_from_string("Aggressive"), _THROTTLE_STATE_MAX);
}
