/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: parse_duration_usec, and format_duration_usec reading back the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char text[256], formatted[256];
        uint64_t usec, again;

        if (size >= sizeof text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        if (parse_duration_usec(text, &usec) < 0)
                return 0;
        /* Whatever parses formats to text that parses to the same value. */
        format_duration_usec(formatted, sizeof formatted, usec);
        if (parse_duration_usec(formatted, &again) < 0 || again != usec)
                abort();
        return 0;
}
