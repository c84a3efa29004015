/* SPDX-License-Identifier: Apache-2.0 */
/* Every configuration key and every command-line option of ksm-throttler-trigger is
 * documented: options in ksm-throttler-trigger(8), keys in trigger.conf(5). The
 * table the trigger parses both from is the list checked. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "trigger-config.h"

static char page8[65536], page5[65536];

static void read_page(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "cannot read %s", path);
        size_t n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
}

static void setup(void) {
        read_page(SOURCE_ROOT "/man/ksm-throttler-trigger.8.scd", page8, sizeof page8);
        read_page(SOURCE_ROOT "/man/trigger.conf.5.scd", page5, sizeof page5);
}

TestSuite(man, .init = setup);

Test(man, every_option_is_in_the_trigger_page) {
        const char *fixed[] = { "*--help*", "*--version*", "*--config=*" };
        char want[128];
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
                cr_assert(strstr(page8, fixed[i]), "ksm-throttler-trigger(8) does not document %s", fixed[i]);
        for (const struct trigger_key *k = trigger_keys; k->key; k++) {
                snprintf(want, sizeof want, "\n*--%s=*", k->option);
                cr_assert(strstr(page8, want), "ksm-throttler-trigger(8) has no entry for --%s", k->option);
        }
}

Test(man, every_key_is_in_the_configuration_page) {
        char want[128];
        for (const struct trigger_key *k = trigger_keys; k->key; k++) {
                snprintf(want, sizeof want, "\n*%s=*", k->key);
                cr_assert(strstr(page5, want), "trigger.conf(5) has no entry for %s=", k->key);
                snprintf(want, sizeof want, "(*%s=*)", k->key);
                cr_assert(strstr(page8, want), "ksm-throttler-trigger(8) does not name the key %s= at its option", k->key);
        }
}
