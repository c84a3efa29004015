/* SPDX-License-Identifier: Apache-2.0 */
/* Hypervisor names against globs, as the process source matches them. */
#include <criterion/criterion.h>
#include <errno.h>

#include "match.h"
#include "trigger-config.h"

static struct name_patterns defaults(void) {
        struct name_patterns p;
        cr_assert_eq(name_patterns_parse(TRIGGER_DEFAULT_HYPERVISORS, &p, NULL), 0);
        return p;
}

Test(match, default_list_matches_the_hypervisors) {
        struct name_patterns p = defaults();
        const char *yes[] = { "qemu-system-x86_64", "qemu-system-aarch64", "qemu-kvm", "cloud-hypervisor", "firecracker",
                              "crosvm" };
        const char *no[] = { "qemu-img", "qemu-system", "qemu-kvm-helper", "cloud-hypervisor.old", "bash", "", "kvm",
                             "xqemu-kvm" };
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
                cr_assert_not_null(name_patterns_match(&p, yes[i]), "%s should be taken for a hypervisor", yes[i]);
        for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
                cr_assert_null(name_patterns_match(&p, no[i]), "%s should not be taken for a hypervisor", no[i]);
        name_patterns_free(&p);
}

Test(match, reports_which_glob_matched) {
        struct name_patterns p = defaults();
        cr_assert_str_eq(name_patterns_match(&p, "qemu-system-s390x"), "qemu-system-*");
        cr_assert_str_eq(name_patterns_match(&p, "firecracker"), "firecracker");
        name_patterns_free(&p);
}

Test(match, task_names_cut_by_the_kernel_still_match) {
        struct name_patterns p = defaults();
        /* comm keeps 15 characters: "qemu-system-x86_64" → "qemu-system-x86", "cloud-hypervisor" → "cloud-hyperviso". */
        cr_assert_not_null(name_patterns_match_comm(&p, "qemu-system-x86"));
        cr_assert_not_null(name_patterns_match_comm(&p, "cloud-hyperviso"), "a cut comm is the start of cloud-hypervisor");
        cr_assert_null(name_patterns_match_comm(&p, "cloud-hyper"), "a short comm is whole: not cut, no match");
        cr_assert_null(name_patterns_match_comm(&p, "cloud-hypervisX"), "a cut comm that differs does not match");
        cr_assert_null(name_patterns_match(&p, "cloud-hyperviso"), "file names are never cut: whole match only");
        name_patterns_free(&p);
}

Test(match, glob_syntax) {
        cr_assert(glob_match("a*b", "ab", false));
        cr_assert(glob_match("a*b", "axxb", false));
        cr_assert_not(glob_match("a*b", "axxbc", false));
        cr_assert(glob_match("a?c", "abc", false));
        cr_assert_not(glob_match("a?c", "ac", false));
        cr_assert(glob_match("qemu-[a-c]", "qemu-b", false));
        cr_assert_not(glob_match("qemu-[a-c]", "qemu-d", false));
        cr_assert(glob_match("qemu-[!a-c]", "qemu-d", false));
        cr_assert(glob_match("a\\*", "a*", false), "an escaped star is literal");
        cr_assert_not(glob_match("a\\*", "ab", false));
        cr_assert(glob_match("**", "", false));
        cr_assert(glob_match("x*", "x", true));
        cr_assert(glob_match("abcdef", "abc", true), "prefix mode: abc can be the start of abcdef");
        cr_assert_not(glob_match("abcdef", "abd", true));
}

Test(match, list_parsing) {
        struct name_patterns p;
        const char *bad = NULL;
        char buf[256];

        cr_assert_eq(name_patterns_parse("", &p, NULL), 0, "an empty list is valid: the source is off");
        cr_assert_eq(p.n, 0);
        name_patterns_free(&p);

        cr_assert_eq(name_patterns_parse(" qemu-* , firecracker ", &p, NULL), 0);
        cr_assert_eq(p.n, 2);
        cr_assert_str_eq(name_patterns_format(&p, buf, sizeof buf), "qemu-*,firecracker", "blanks around items are dropped");
        name_patterns_free(&p);

        const char *invalid[] = { "qemu,", ",qemu", "a,,b", "/usr/bin/qemu", "qemu-[ab", "qemu\\", "a\tb\x01" };
        for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
                cr_assert_eq(name_patterns_parse(invalid[i], &p, &bad), -EINVAL, "\"%s\" should be refused", invalid[i]);

        char many[1024] = "";
        for (int i = 0; i < NAME_PATTERNS_MAX + 1; i++)
                strcat(many, i ? ",q" : "q");
        cr_assert_eq(name_patterns_parse(many, &p, &bad), -E2BIG, "more than %d globs must be refused", NAME_PATTERNS_MAX);
}
