/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the parsers of what other processes control or the kernel
 * prints about them (ksm_stat, cgroup, command line, smaps, names). Besides not
 * crashing: every name comes out terminated within its buffer, and a sanitized
 * name is always valid UTF-8 without control characters (jansson accepts it). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksm-accounting.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *name, size_t size) {
        if (strnlen(name, size) >= size)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = malloc(size + 1), out[KSM_GROUP_NAME_MAX], path[1024];
        struct ksm_process p = {};
        struct ksm_smaps_totals totals;

        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';

        (void) ksm_stat_parse(text, &p);
        if (ksm_cgroup_path_parse(text, path, sizeof(path)) == 0) {
                check_name(path, sizeof(path));
                if (ksm_unit_from_cgroup(path, out, sizeof(out)) == 0)
                        check_name(out, sizeof(out));
                if (ksm_machine_from_cgroup(path, out, sizeof(out)) == 0)
                        check_name(out, sizeof(out));
                if (ksm_sandbox_from_cgroup(path, out, sizeof(out)) == 0)
                        check_name(out, sizeof(out));
        }
        if (ksm_sandbox_from_cmdline((const char *) data, size, out, sizeof(out)) == 0)
                check_name(out, sizeof(out));

        FILE *f = fmemopen((void *) data, size ? size : 1, "r");
        if (f) {
                (void) ksm_smaps_parse(f, &totals);
                fclose(f);
        }

        ksm_sanitize_name(text);
        json_t *j = json_string(text);
        if (!j)
                abort(); /* not valid UTF-8 after sanitizing */
        json_decref(j);
        for (const unsigned char *c = (const unsigned char *) text; *c; c++)
                if (*c < 0x20 || *c == 0x7f)
                        abort();
        free(text);
        return 0;
}
