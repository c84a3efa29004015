/* SPDX-License-Identifier: Apache-2.0 */
/* The set of machines machined announced: a re-announced machine is not new, a
 * removed one is new again, and the set stays within its bound. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "machine-set.h"

static struct machine_set *set;

static void fini(void) {
        set = machine_set_free(set);
}

TestSuite(machine_set, .fini = fini);

Test(machine_set, a_machine_announced_again_is_not_new) {
        cr_assert_eq(machine_set_new(8, &set), 0);
        cr_assert_eq(machine_set_add(set, "qemu-1-win10", "/org/freedesktop/machine1/machine/qemu_2d1_2dwin10"), 1,
                     "the first announcement is a new machine");
        cr_assert_eq(machine_set_add(set, "qemu-1-win10", "/org/freedesktop/machine1/machine/qemu_2d1_2dwin10"), 0,
                     "machined restarted and announced it again: not a new machine");
        cr_assert_eq(machine_set_add(set, "qemu-2-linux", "/org/freedesktop/machine1/machine/qemu_2d2_2dlinux"), 1,
                     "another name is another machine");
        cr_assert_eq(machine_set_size(set), 2);
}

Test(machine_set, a_removed_machine_is_new_when_announced_again) {
        cr_assert_eq(machine_set_new(8, &set), 0);
        cr_assert_eq(machine_set_add(set, "vm", "/m/vm"), 1);
        cr_assert_eq(machine_set_remove(set, "vm"), 1, "a known machine is removed");
        cr_assert_eq(machine_set_remove(set, "vm"), 0, "removed twice: unknown the second time");
        cr_assert_null(machine_set_path(set, "vm"), "a removed machine has no path");
        cr_assert_eq(machine_set_add(set, "vm", "/m/vm"), 1, "started again after it was removed: new");
        cr_assert_eq(machine_set_remove(set, "never-seen"), 0);
}

Test(machine_set, the_path_follows_the_latest_announcement) {
        cr_assert_eq(machine_set_new(8, &set), 0);
        cr_assert_eq(machine_set_add(set, "vm", "/m/old"), 1);
        cr_assert_eq(machine_set_add(set, "vm", "/m/new"), 0);
        cr_assert_str_eq(machine_set_path(set, "vm"), "/m/new");
}

Test(machine_set, past_its_bound_the_oldest_is_forgotten) {
        char name[32];
        cr_assert_eq(machine_set_new(4, &set), 0);
        for (int i = 0; i < 6; i++) {
                snprintf(name, sizeof name, "vm-%d", i);
                cr_assert_eq(machine_set_add(set, name, "/m"), 1, "%s is new", name);
                cr_assert_leq(machine_set_size(set), 4, "the set never holds more than its bound");
        }
        cr_assert_eq(machine_set_size(set), 4);
        cr_assert_null(machine_set_path(set, "vm-0"), "the oldest entries make room");
        cr_assert_null(machine_set_path(set, "vm-1"));
        cr_assert_eq(machine_set_add(set, "vm-5", "/m"), 0, "the newest is still known");
        cr_assert_eq(machine_set_add(set, "vm-2", "/m"), 0, "the oldest kept is still known");
        cr_assert_eq(machine_set_add(set, "vm-0", "/m"), 1, "a forgotten machine counts as new: a kick too many, none missed");
        cr_assert_eq(machine_set_size(set), 4);
}

Test(machine_set, names_and_paths_too_long_are_refused) {
        char long_name[MACHINE_NAME_MAX + 2], long_path[MACHINE_PATH_MAX + 2];
        memset(long_name, 'a', sizeof long_name - 1);
        long_name[sizeof long_name - 1] = '\0';
        memset(long_path, '/', sizeof long_path - 1);
        long_path[sizeof long_path - 1] = '\0';
        cr_assert_eq(machine_set_new(8, &set), 0);
        cr_assert_eq(machine_set_add(set, long_name, "/m"), -EINVAL);
        cr_assert_eq(machine_set_add(set, "vm", long_path), -EINVAL);
        cr_assert_eq(machine_set_size(set), 0, "nothing refused is kept");
        long_name[MACHINE_NAME_MAX] = '\0';
        cr_assert_eq(machine_set_add(set, long_name, "/m"), 1, "a name of the longest length kept is kept");
}
