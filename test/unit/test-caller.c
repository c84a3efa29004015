/* SPDX-License-Identifier: Apache-2.0 */
/* The caller's unit from /proc/PID/cgroup text, its origin line, and escaping. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "caller.h"

static void assert_unit(const char *text, const char *expected) {
        char unit[CALLER_UNIT_MAX];
        int r = caller_unit_from_cgroup(text, unit, sizeof unit);
        cr_assert_eq(r, 0, "no unit found in %s", text);
        cr_assert_str_eq(unit, expected, "wrong unit for %s", text);
}

Test(caller, unit_is_the_first_non_slice_unit_of_the_unified_path) {
        assert_unit("0::/system.slice/libvirtd.service\n", "libvirtd.service");
        assert_unit("0::/user.slice/user-1000.slice/session-2.scope", "session-2.scope");
        assert_unit("0::/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service\n", "user@1000.service");
        assert_unit("12:pids:/system.slice/old.service\n0::/machine.slice/libpod-abc.scope/container\n",
                    "libpod-abc.scope");
}

Test(caller, no_unit_is_enoent_and_overlong_is_refused) {
        char unit[CALLER_UNIT_MAX], big[600];
        cr_assert_eq(caller_unit_from_cgroup("0::/\n", unit, sizeof unit), -ENOENT, "the root cgroup names no unit");
        cr_assert_eq(caller_unit_from_cgroup("0::/init.scope.d/x\n", unit, sizeof unit), -ENOENT);
        cr_assert_eq(caller_unit_from_cgroup("1:name=systemd:/system.slice/a.service\n", unit, sizeof unit), -ENOENT,
                     "only the unified hierarchy counts");
        cr_assert_eq(caller_unit_from_cgroup("", unit, sizeof unit), -ENOENT);
        strcpy(big, "0::/system.slice/");
        memset(big + strlen(big), 'x', 400);
        strcpy(big + 17 + 400, ".service");
        cr_assert_eq(caller_unit_from_cgroup(big, unit, sizeof unit), -ENAMETOOLONG, "a unit longer than the buffer");
}

Test(caller, origin_names_what_is_known_and_escapes_the_unit) {
        char buf[CALLER_ORIGIN_MAX];
        struct caller c = { .uid = 0, .pid = 4242 };
        strcpy(c.unit, "libvirtd.service");
        caller_format(&c, buf, sizeof buf);
        cr_assert_str_eq(buf, "uid 0 pid 4242 unit libvirtd.service");
        strcpy(c.unit, "evil\x1b[2J.service");
        caller_format(&c, buf, sizeof buf);
        cr_assert_str_eq(buf, "uid 0 pid 4242 unit evil\\x1b[2J.service", "control characters must be escaped");
        c = CALLER_UNKNOWN;
        caller_format(&c, buf, sizeof buf);
        cr_assert_str_eq(buf, "unknown caller");
}

Test(caller, escape_never_cuts_an_escape_in_half) {
        char buf[6];
        escape_into(buf, sizeof buf, "ab\n\x01");
        cr_assert_str_eq(buf, "ab\\n", "a partial \\x01 was written: %s", buf);
        escape_into(buf, sizeof buf, "a\\b");
        cr_assert_str_eq(buf, "a\\\\b");
}
