/* SPDX-License-Identifier: Apache-2.0 */
/* ksmctl kick */

#include <string.h>
#include <unistd.h>

#include "fd-util.h"
#include "ksmctl.h"

int verb_kick(sd_bus *bus, int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        unsigned flags = 0;
        int r;

        /* Let polkit ask for a password only if someone is there to type it; in scripts
         * the call must fail fast instead of hanging on an agent. */
        if (arg_ask_password && isatty(STDIN_FILENO))
                flags |= KSMT_KICK_INTERACTIVE;

        if (arg_no_block) {
                /* Wait until the daemon has read it, not for its verdict. */
                r = ksmt_kick_with_reason_no_wait(bus, arg_reason, arg_app_id, flags | KSMT_KICK_CONFIRM_RECEIPT, &error);
                if (r < 0)
                        return report_call_failure("send the kick", &error, r);
                return KSMT_EXIT_OK;
        }

        r = ksmt_kick_with_reason(bus, arg_reason, arg_app_id, arg_timeout_usec, flags, &error);
        if (r < 0)
                return report_call_failure("kick", &error, r);
        return KSMT_EXIT_OK;
}
