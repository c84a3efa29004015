/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the configuration file parser (a file with a drop-in directory). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char path[64];
        struct config c;
        FILE *f;

        if (!path[0]) {
                snprintf(path, sizeof path, "/tmp/ksm-throttler-fuzz-%d.conf", (int) getpid());
                log_set_max_level(LOG_CRIT); /* every input is full of warnings */
        }
        f = fopen(path, "we");
        if (!f)
                abort();
        fwrite(data, 1, size, f);
        fclose(f);

        if (config_init(&c) < 0)
                abort();
        if (config_load(&c, path, true) == 0) {
                /* Accepted configurations are consistent. */
                if (c.throttle.min_pages_to_scan > c.throttle.max_pages_to_scan || !c.ksm_directory ||
                    c.ksm_directory[0] != '/')
                        abort();
                for (int s = THROTTLE_AGGRESSIVE; s < _THROTTLE_STATE_MAX; s++)
                        if (c.throttle.level[s].duration_usec == 0 || c.throttle.level[s].pages_per_scan_factor == 0)
                                abort();
        }
        config_done(&c);
        unlink(path);
        return 0;
}
