/* SPDX-License-Identifier: Apache-2.0 */
#include "authorize.h"

#include <linux/capability.h>

#include "log.h"

int authorize_kick(sd_bus_message *m, authorize_callback_t callback, void *userdata) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        /* Root and CAP_SYS_ADMIN pass (sd-bus also passes senders with our own uid). */
        r = sd_bus_query_sender_privilege(m, CAP_SYS_ADMIN);
        if (r < 0)
                return log_error_errno(r, "Cannot determine the privileges of %s: %m", sd_bus_message_get_sender(m));
        if (r == 0) {
                log_notice("Kick from %s refused: caller lacks CAP_SYS_ADMIN", sd_bus_message_get_sender(m));
                sd_bus_error_set(&error, SD_BUS_ERROR_ACCESS_DENIED,
                                 "Kicking the KSM throttler requires CAP_SYS_ADMIN");
        }
        callback(m, r > 0 ? NULL : &error, userdata);
        sd_bus_error_free(&error);
        return 0;
}
