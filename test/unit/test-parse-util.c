/* SPDX-License-Identifier: Apache-2.0 */
/* Strict parsers: durations, integers from config and sysfs, booleans, absolute paths. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "parse-util.h"

static const struct {
        const char *text;
        uint64_t usec;
} good_durations[] = {
        { "500ms", 500 * USEC_PER_MSEC },
        { "30s", 30 * USEC_PER_SEC },
        { "2min", 2 * USEC_PER_MINUTE },
        { "1h", USEC_PER_HOUR },
        { "30", 30 * USEC_PER_SEC }, /* a bare number is seconds */
        { "0", 0 },
        { "1.5s", 1500 * USEC_PER_MSEC },
        { "1.5", 1500 * USEC_PER_MSEC },
        { "0.25min", 15 * USEC_PER_SEC },
        { "1min 30s", 90 * USEC_PER_SEC },
        { "1h 2min 3s 4ms", USEC_PER_HOUR + 2 * USEC_PER_MINUTE + 3 * USEC_PER_SEC + 4 * USEC_PER_MSEC },
        { " 2 min ", 2 * USEC_PER_MINUTE },
        { "2min\n", 2 * USEC_PER_MINUTE },
        { "10us", 10 },
        { "250msec", 250 * USEC_PER_MSEC },
        { "5sec", 5 * USEC_PER_SEC },
        { "3 seconds", 3 * USEC_PER_SEC },
        { "2 minutes", 2 * USEC_PER_MINUTE },
        { "1 hour", USEC_PER_HOUR },
        { "24h", 24 * USEC_PER_HOUR },
};

Test(parse_duration, accepts_units_fractions_and_sums) {
        for (size_t i = 0; i < sizeof good_durations / sizeof good_durations[0]; i++) {
                uint64_t usec = UINT64_C(0xdeadbeef);
                int r = parse_duration_usec(good_durations[i].text, &usec);
                cr_assert_eq(r, 0, "parse_duration_usec(\"%s\") = %d, expected 0", good_durations[i].text, r);
                cr_assert_eq(usec, good_durations[i].usec, "parse_duration_usec(\"%s\") gave %llu µs, expected %llu",
                             good_durations[i].text, (unsigned long long) usec,
                             (unsigned long long) good_durations[i].usec);
        }
}

Test(parse_duration, rejects_malformed_text_and_leaves_result_alone) {
        static const char *const bad[] = {
                "", "   ", "abc", "5x", "-1", "1.", ".5s", "s", "1 2x", "30s garbage", "1min -5s", "10 parsecs", "1e3",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                uint64_t usec = 4242;
                int r = parse_duration_usec(bad[i], &usec);
                cr_assert_eq(r, -EINVAL, "parse_duration_usec(\"%s\") = %d, expected -EINVAL", bad[i], r);
                cr_assert_eq(usec, 4242, "parse_duration_usec(\"%s\") wrote its result on failure", bad[i]);
        }
}

Test(parse_duration, reports_overflow_as_erange) {
        static const char *const huge[] = {
                "99999999999999999999h",
                "99999999999999999999",
                "18446744073709551615h",
                "5124095577h",             /* the number fits in 64 bits, the product does not */
                "18446744073710s",
                "5124095576h 5124095576h", /* each part fits, the sum does not */
        };
        for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
                uint64_t usec = 4242;
                int r = parse_duration_usec(huge[i], &usec);
                cr_assert_eq(r, -ERANGE, "parse_duration_usec(\"%s\") = %d, expected -ERANGE", huge[i], r);
                cr_assert_eq(usec, 4242);
        }
}

Test(parse_duration, format_round_trips) {
        static const uint64_t values[] = {
                0,
                1,
                500 * USEC_PER_MSEC,
                30 * USEC_PER_SEC,
                90 * USEC_PER_SEC,
                2 * USEC_PER_MINUTE,
                USEC_PER_HOUR + 1,
                25 * USEC_PER_HOUR + 59 * USEC_PER_MINUTE + 59 * USEC_PER_SEC + 999 * USEC_PER_MSEC + 999,
        };
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
                char buf[64];
                uint64_t back = 4242;
                const char *text = format_duration_usec(buf, sizeof buf, values[i]);
                cr_assert_eq(text, buf);
                cr_assert_eq(parse_duration_usec(text, &back), 0, "cannot parse back \"%s\"", text);
                cr_assert_eq(back, values[i], "\"%s\" parsed back as %llu, expected %llu", text,
                             (unsigned long long) back, (unsigned long long) values[i]);
        }
}

Test(parse_duration, format_is_readable) {
        char buf[64];
        cr_assert_str_eq(format_duration_usec(buf, sizeof buf, 150 * USEC_PER_SEC), "2min 30s");
        cr_assert_str_eq(format_duration_usec(buf, sizeof buf, 500 * USEC_PER_MSEC), "500ms");
        cr_assert_str_eq(format_duration_usec(buf, sizeof buf, 30 * USEC_PER_SEC), "30s");
        cr_assert_str_eq(format_duration_usec(buf, sizeof buf, 0), "0");
}

Test(parse_uint64, accepts_numbers_with_surrounding_whitespace) {
        uint64_t v = 1;
        cr_assert_eq(parse_uint64("42", &v), 0);
        cr_assert_eq(v, 42);
        cr_assert_eq(parse_uint64("42\n", &v), 0); /* sysfs text ends with a newline */
        cr_assert_eq(v, 42);
        cr_assert_eq(parse_uint64("  7 ", &v), 0);
        cr_assert_eq(v, 7);
        cr_assert_eq(parse_uint64("0", &v), 0);
        cr_assert_eq(v, 0);
        cr_assert_eq(parse_uint64("18446744073709551615", &v), 0);
        cr_assert_eq(v, UINT64_MAX);
}

Test(parse_uint64, rejects_garbage_and_overflow) {
        static const char *const bad[] = { "", " ", "\n", "4 2", "-5", "+5", "x", "42x", "0x10", "1.0" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                uint64_t v = 4242;
                int r = parse_uint64(bad[i], &v);
                cr_assert_eq(r, -EINVAL, "parse_uint64(\"%s\") = %d, expected -EINVAL", bad[i], r);
                cr_assert_eq(v, 4242);
        }
        uint64_t v = 4242;
        cr_assert_eq(parse_uint64("18446744073709551616", &v), -ERANGE);
        cr_assert_eq(parse_uint64("99999999999999999999999", &v), -ERANGE);
        cr_assert_eq(v, 4242);
}

Test(parse_int64, accepts_signed_numbers) {
        int64_t v = 1;
        cr_assert_eq(parse_int64("-5", &v), 0);
        cr_assert_eq(v, -5);
        cr_assert_eq(parse_int64("-4096\n", &v), 0);
        cr_assert_eq(v, -4096);
        cr_assert_eq(parse_int64("42\n", &v), 0);
        cr_assert_eq(v, 42);
        cr_assert_eq(parse_int64("9223372036854775807", &v), 0);
        cr_assert_eq(v, INT64_MAX);
        cr_assert_eq(parse_int64("-9223372036854775808", &v), 0);
        cr_assert_eq(v, INT64_MIN);
}

Test(parse_int64, rejects_garbage_and_overflow) {
        static const char *const bad[] = { "", "4 2", "--5", "-", "5-", "abc", "+-5", "- 5" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                int64_t v = 4242;
                int r = parse_int64(bad[i], &v);
                cr_assert_eq(r, -EINVAL, "parse_int64(\"%s\") = %d, expected -EINVAL", bad[i], r);
                cr_assert_eq(v, 4242);
        }
        int64_t v = 4242;
        cr_assert_eq(parse_int64("9223372036854775808", &v), -ERANGE);
        cr_assert_eq(parse_int64("-9223372036854775809", &v), -ERANGE);
        cr_assert_eq(parse_int64("99999999999999999999", &v), -ERANGE);
        cr_assert_eq(v, 4242);
}

Test(parse_boolean, accepts_the_usual_spellings) {
        static const char *const yes[] = { "1", "yes", "YES", "true", "True", "on", "y", "t" };
        static const char *const no[] = { "0", "no", "No", "false", "FALSE", "off", "n", "f" };
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
                bool b = false;
                cr_assert_eq(parse_boolean(yes[i], &b), 0, "parse_boolean(\"%s\") failed", yes[i]);
                cr_assert(b, "parse_boolean(\"%s\") gave false", yes[i]);
        }
        for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
                bool b = true;
                cr_assert_eq(parse_boolean(no[i], &b), 0, "parse_boolean(\"%s\") failed", no[i]);
                cr_assert_not(b, "parse_boolean(\"%s\") gave true", no[i]);
        }
}

Test(parse_boolean, rejects_other_words) {
        static const char *const bad[] = { "", "2", "maybe", "yess", "nope", "-1" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                bool b = true;
                cr_assert_eq(parse_boolean(bad[i], &b), -EINVAL, "parse_boolean(\"%s\") accepted", bad[i]);
                cr_assert(b);
        }
}

Test(parse_absolute_path, replaces_the_value_only_with_an_absolute_path) {
        char *path = NULL;

        cr_assert_eq(parse_absolute_path("/sys/kernel/mm/ksm", &path), 0);
        cr_assert_str_eq(path, "/sys/kernel/mm/ksm");
        cr_assert_eq(parse_absolute_path("/tmp/ksm", &path), 0);
        cr_assert_str_eq(path, "/tmp/ksm", "a second value should replace the first");
        /* A relative path would depend on the daemon's working directory: refused, and the
         * value set before stays. */
        cr_assert_eq(parse_absolute_path("tmp/ksm", &path), -EINVAL);
        cr_assert_eq(parse_absolute_path("", &path), -EINVAL);
        cr_assert_str_eq(path, "/tmp/ksm", "a refused path changed the value");
        free(path);
}
