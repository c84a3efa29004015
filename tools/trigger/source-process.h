/* SPDX-License-Identifier: Apache-2.0 */
/* Hypervisor process source: the kernel's process-events connector (netlink
 * NETLINK_CONNECTOR, CN_IDX_PROC); each exec whose executable's name matches one of
 * the globs is a new VM. Covers hosts where nothing registers machines (KubeVirt's
 * virt-launcher pods). Listening needs CAP_NET_ADMIN. */
#pragma once

#include <systemd/sd-event.h>

#include "match.h"
#include "trigger.h"

struct source_process;

/* patterns must outlive the source. */
int source_process_new(sd_event *event, struct trigger *trigger, const struct name_patterns *patterns,
                       struct source_process **ret);
struct source_process *source_process_free(struct source_process *s);
