/* SPDX-License-Identifier: Apache-2.0 */
#include "source-machined.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "machine-set.h"

#define SOURCE "machined"
#define MACHINED_NAME "org.freedesktop.machine1"
/* Class look-ups on their way at once; past this a machine is reported without one. */
#define LOOKUPS_MAX 32
/* Machines remembered, so that those a restarted machined announces again are not
 * taken for new ones. */
#define MACHINES_MAX 4096

struct lookup {
        struct source_machined *source;
        sd_bus_slot *slot;
        char name[256]; /* escaped for the log */
};

struct source_machined {
        sd_bus *bus;
        struct trigger *trigger;
        sd_bus_slot *match;
        sd_bus_slot *match_removed;
        struct machine_set *known;
        struct lookup lookups[LOOKUPS_MAX];
};

static void report(struct source_machined *s, const char *name, const char *class) {
        trigger_event(s->trigger, SOURCE, "machine %s (%s) registered", name, class);
}

static int on_class(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct lookup *l = userdata;
        const char *class = NULL;
        char escaped[64];
        (void) ret_error;

        /* The machine may be gone already: it was still registered, so it still counts. */
        if (!sd_bus_message_is_method_error(m, NULL) && sd_bus_message_read(m, "v", "s", &class) >= 0 && class)
                report(l->source, l->name, text_escape(class, escaped, sizeof escaped));
        else
                report(l->source, l->name, "class unknown");
        l->slot = sd_bus_slot_unref(l->slot);
        return 0;
}

/* Reads the (name, object path) of a MachineNew or MachineRemoved signal, and the name
 * escaped for the log. A malformed signal is logged and gives a negative errno. */
static int read_machine_signal(sd_bus_message *m, const char **ret_name, const char **ret_path, char *escaped,
                               size_t escaped_size) {
        int r = sd_bus_message_read(m, "so", ret_name, ret_path);
        if (r < 0)
                return log_warning_errno(r, "Malformed %s signal from %s: %m", sd_bus_message_get_member(m) ?: "?",
                                         sd_bus_message_get_sender(m) ?: "?");
        text_escape(*ret_name, escaped, escaped_size);
        return 0;
}

static int on_machine_new(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct source_machined *s = userdata;
        const char *name, *path;
        char escaped[256];
        int r;
        (void) ret_error;

        if (read_machine_signal(m, &name, &path, escaped, sizeof escaped) < 0)
                return 0;
        log_debug("machined: MachineNew %s %s", escaped, path);
        if (strcmp(name, ".host") == 0)
                return 0; /* the host itself, not a new machine */
        r = machine_set_add(s->known, name, path);
        if (r == 0) {
                /* machined restarted and announces the machines it knows again. */
                log_debug("machined: machine %s announced again, not removed since: not a new machine, no kick", escaped);
                return 0;
        }
        if (r < 0)
                log_debug_errno(r, "machined: cannot remember machine %s, taking it as new: %m", escaped);

        /* The class (vm or container) is a property of the machine's object. */
        for (unsigned i = 0; i < LOOKUPS_MAX; i++) {
                struct lookup *l = &s->lookups[i];
                if (l->slot)
                        continue;
                r = sd_bus_call_method_async(s->bus, &l->slot, MACHINED_NAME, path, "org.freedesktop.DBus.Properties", "Get",
                                             on_class, l, "ss", "org.freedesktop.machine1.Machine", "Class");
                if (r < 0)
                        break;
                l->source = s;
                snprintf(l->name, sizeof l->name, "%s", escaped);
                return 0;
        }
        report(s, escaped, "class unknown");
        return 0;
}

static int on_machine_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct source_machined *s = userdata;
        const char *name, *path;
        char escaped[256];
        (void) ret_error;

        if (read_machine_signal(m, &name, &path, escaped, sizeof escaped) < 0)
                return 0;
        if (machine_set_remove(s->known, name) > 0)
                log_debug("machined: MachineRemoved %s %s", escaped, path);
        return 0;
}

int source_machined_new(sd_bus *bus, struct trigger *trigger, struct source_machined **ret) {
        struct source_machined *s = calloc(1, sizeof *s);
        int r;

        if (!s)
                return log_error_errno(ENOMEM, "Out of memory");
        s->bus = sd_bus_ref(bus);
        s->trigger = trigger;
        r = machine_set_new(MACHINES_MAX, &s->known);
        if (r < 0) {
                source_machined_free(s);
                return log_error_errno(r, "Cannot make the set of known machines: %m");
        }
        /* Asynchronous: the trigger does not wait for the bus at start. */
        r = sd_bus_match_signal_async(bus, &s->match, MACHINED_NAME, "/org/freedesktop/machine1",
                                      "org.freedesktop.machine1.Manager", "MachineNew", on_machine_new, NULL, s);
        if (r < 0) {
                source_machined_free(s);
                return log_error_errno(r, "Cannot listen for machined's MachineNew: %m");
        }
        r = sd_bus_match_signal_async(bus, &s->match_removed, MACHINED_NAME, "/org/freedesktop/machine1",
                                      "org.freedesktop.machine1.Manager", "MachineRemoved", on_machine_removed, NULL, s);
        if (r < 0) {
                source_machined_free(s);
                return log_error_errno(r, "Cannot listen for machined's MachineRemoved: %m");
        }
        log_info("Listening for machines registered with systemd-machined");
        *ret = s;
        return 0;
}

struct source_machined *source_machined_free(struct source_machined *s) {
        if (!s)
                return NULL;
        for (unsigned i = 0; i < LOOKUPS_MAX; i++)
                sd_bus_slot_unref(s->lookups[i].slot);
        sd_bus_slot_unref(s->match);
        sd_bus_slot_unref(s->match_removed);
        machine_set_free(s->known);
        sd_bus_unref(s->bus);
        free(s);
        return NULL;
}
