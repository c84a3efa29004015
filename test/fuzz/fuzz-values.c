/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the parsers of what the kernel and the runtime directory give us:
 * knob values, counters, /proc/meminfo, the saved host settings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ksm.h"
#include "log.h"
#include "parse-util.h"
#include "proc.h"
#include "saved-state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char text[4096];
        uint64_t pages;
        int64_t counter;
        uint32_t value;
        struct saved_state settings;

        if (size >= sizeof text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        log_set_max_level(LOG_CRIT);

        for (int k = 0; k < _KSM_KNOB_MAX; k++)
                (void) ksm_knob_parse(k, text, &value);
        (void) parse_int64(text, &counter);
        (void) meminfo_parse_anon_pages(text, 4096, &pages);

        if (saved_state_parse(text, "fuzz", &settings) == 0) {
                /* What parses formats back to text that parses to the same settings. */
                char formatted[512];
                struct saved_state again;
                if (saved_state_format(&settings, formatted, sizeof formatted) < 0 ||
                    saved_state_parse(formatted, "fuzz", &again) < 0 || !ksm_settings_equal(&settings.host, &again.host) ||
                    !ksm_settings_equal(&settings.written, &again.written))
                        abort();
        }
        return 0;
}
