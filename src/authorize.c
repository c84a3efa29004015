/* SPDX-License-Identifier: Apache-2.0 */
#include "authorize.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-names.h"
#include "fd-util.h"
#include "log.h"
#include "parse-util.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* polkit CheckAuthorization flag: the caller may be asked for a password. */
#define POLKIT_ALLOW_USER_INTERACTION 1u

struct waiter {
        sd_bus_message *message;
        authorize_callback_t callback;
        void *userdata;
        struct waiter *next;
};

/* A sender not seen lately is first asked about (its user ID, from the bus), then, if
 * not privileged, checked with polkit. */
enum check_phase { CHECK_CREDENTIALS, CHECK_POLKIT };

/* One bus call in flight, shared by every request of one sender, action and
 * interactivity. */
struct check {
        struct authorizer *authorizer;
        char *sender;
        char *action;
        bool interactive;
        enum check_phase phase;
        sd_bus_slot *slot;
        struct waiter *waiters, *last; /* answered in the order they came */
        unsigned n_waiters;
        bool refusal_logged;
        struct caller caller; /* as far as known: after the credentials phase, or remembered */
        struct check *next; /* in its bucket */
};

/* What unprivileged callers can make the daemon hold while polkit is slow or silent:
 * each waiting kick keeps its message. A sender's kicks share one polkit call, so a
 * few dozen are plenty for any real client; beyond that, and beyond the total, kicks
 * are refused at once. Root never waits for polkit. Kicks of senders whose user ID
 * is still being asked for have their own total, so that a full polkit queue never
 * refuses root's first kick on a new connection. */
#define WAITERS_PER_SENDER_MAX 64
#define WAITERS_MAX 512
#define CREDENTIAL_WAITERS_MAX 512
/* Checks hashed by sender, so that finding a sender's check costs the same however
 * many are in flight (at most WAITERS_MAX). */
#define CHECK_BUCKETS 256

#define POLKIT_BUS_NAME "org.freedesktop.PolicyKit1"

/* Whether a connection is privileged (root), and who it is. A connection's uid and
 * pid are fixed when it authenticates and unique names are never reused on a bus, so
 * the answer holds for the connection's life: remembering it saves a
 * GetConnectionCredentials round trip and a read of /proc/PID/cgroup per call (the
 * unit is the one the process was in at its first call). Privileged entries are evicted last, so that many connections of other
 * users cannot push root's out. This is not a cache of polkit grants, which are
 * asked for every call. */
#define PRIVILEGE_CACHE_SIZE 32
struct privilege_entry {
        char sender[64];
        bool privileged;
        uint64_t last_used;
        struct caller caller;
};

struct authorizer {
        sd_bus *bus;
        uint64_t timeout_usec;
        struct check *checks[CHECK_BUCKETS];
        unsigned n_waiters;            /* waiting for polkit */
        unsigned n_credential_waiters; /* waiting for the bus to say who the sender is */
        bool total_refusal_logged;
        /* The unique name that owns org.freedesktop.PolicyKit1 as the bus driver last
         * said, NULL if none: the only sender whose verdict counts. */
        char *polkit_owner;
        sd_bus_slot *owner_match, *owner_query;
        struct privilege_entry privilege_cache[PRIVILEGE_CACHE_SIZE];
        uint64_t privilege_clock;
        const char *proc_path;
        struct log_ratelimit refusals_logged; /* anyone can cause refusals, as many as they like */
};

/* Whether a refusal's line may be logged, within LOG_RATELIMIT_REFUSALS. */
static bool may_log_refusal(struct authorizer *a) {
        return log_ratelimit_allow(&a->refusals_logged, clock_now_usec(CLOCK_MONOTONIC), "refused authorization checks");
}

/* FNV-1a */
static struct check **bucket_of(struct authorizer *a, const char *sender) {
        uint32_t h = 2166136261u;
        for (const unsigned char *p = (const unsigned char *) sender; *p; p++)
                h = (h ^ *p) * 16777619u;
        return &a->checks[h % CHECK_BUCKETS];
}

static int polkit_owner_set(struct authorizer *a, const char *owner) {
        char *copy = NULL;

        if (owner && *owner) {
                copy = strdup(owner);
                if (!copy)
                        return -ENOMEM;
        }
        if (!(a->polkit_owner && copy && strcmp(a->polkit_owner, copy) == 0))
                log_debug("polkit is %s", copy ?: "not on the bus");
        free(a->polkit_owner);
        a->polkit_owner = copy;
        return 0;
}

static int on_polkit_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct authorizer *a = userdata;
        const char *name, *old_owner, *new_owner;

        /* The match names the bus driver as sender; sd-bus checks it on every message. */
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || strcmp(name, POLKIT_BUS_NAME) != 0)
                return 0;
        (void) polkit_owner_set(a, new_owner);
        return 0;
}

static int on_polkit_owner_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct authorizer *a = userdata;
        const char *sender = sd_bus_message_get_sender(reply), *owner = NULL;

        a->owner_query = sd_bus_slot_unref(a->owner_query);
        if (!sender || strcmp(sender, DBUS_DRIVER_NAME) != 0) {
                log_warning("Ignoring an answer about polkit's owner from %s instead of the bus", sender ?: "nobody");
                return 0;
        }
        if (!sd_bus_message_is_method_error(reply, NULL))
                (void) sd_bus_message_read(reply, "s", &owner);
        (void) polkit_owner_set(a, owner);
        return 0;
}

/* Asked once the match is in place, so that no change between the two is missed. */
static int on_polkit_owner_match_installed(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct authorizer *a = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        if (e)
                log_warning("Cannot watch polkit's bus name (%s); unprivileged kicks will be refused", e->message ?: e->name);
        r = sd_bus_call_method_async(a->bus, &a->owner_query, DBUS_DRIVER_NAME, DBUS_DRIVER_PATH, DBUS_DRIVER_INTERFACE,
                                     "GetNameOwner", on_polkit_owner_reply, a, "s", POLKIT_BUS_NAME);
        if (r < 0)
                log_warning_errno(r, "Cannot ask who owns %s (%m); unprivileged kicks will be refused", POLKIT_BUS_NAME);
        return 0;
}

int authorizer_new(sd_bus *bus, uint64_t polkit_timeout_usec, struct authorizer **ret) {
        struct authorizer *a = calloc(1, sizeof *a);
        int r;

        if (!a)
                return log_oom();
        a->bus = sd_bus_ref(bus);
        a->timeout_usec = polkit_timeout_usec;
        a->refusals_logged = (struct log_ratelimit) LOG_RATELIMIT_REFUSALS;
        a->proc_path = "/proc";
        /* Asynchronous: start-up never waits for the bus. */
        r = sd_bus_add_match_async(bus, &a->owner_match,
                                   "type='signal',sender='" DBUS_DRIVER_NAME "',path='" DBUS_DRIVER_PATH "',"
                                   "interface='" DBUS_DRIVER_INTERFACE "',member='NameOwnerChanged',arg0='" POLKIT_BUS_NAME "'",
                                   on_polkit_owner_changed, on_polkit_owner_match_installed, a);
        if (r < 0) {
                authorizer_free(a);
                return log_error_errno(r, "Cannot watch polkit's bus name: %m");
        }
        *ret = a;
        return 0;
}

void authorizer_set_timeout(struct authorizer *a, uint64_t polkit_timeout_usec) {
        a->timeout_usec = polkit_timeout_usec;
}

static struct check *check_free(struct check *c);

/* Unlinks the check, answers each waiter, and frees it. */
static void check_finish(struct check *c, const sd_bus_error *verdict) {
        struct check **p = bucket_of(c->authorizer, c->sender);

        while (*p != c)
                p = &(*p)->next;
        *p = c->next;
        if (c->phase == CHECK_POLKIT)
                c->authorizer->n_waiters -= c->n_waiters;
        else
                c->authorizer->n_credential_waiters -= c->n_waiters;
        if (c->authorizer->n_waiters < WAITERS_MAX && c->authorizer->n_credential_waiters < CREDENTIAL_WAITERS_MAX)
                c->authorizer->total_refusal_logged = false;
        for (struct waiter *w = c->waiters, *next; w; w = next) {
                next = w->next;
                w->callback(w->message, verdict, &c->caller, w->userdata);
                sd_bus_message_unref(w->message);
                free(w);
        }
        check_free(c);
}

/* What each action is called in logs and refusals; the kick's words are the documented ones. */
static const struct action_text {
        const char *action, *call, *what;
} action_texts[] = {
        { POLKIT_ACTION_KICK, "Kick", "kick the KSM throttler" },
        { POLKIT_ACTION_READ_SAVINGS, "GetSavings", "read other processes' KSM savings" },
};

static const struct action_text *action_text(const char *action) {
        static const struct action_text unknown = { NULL, "Call", "make this call" };

        for (size_t i = 0; i < sizeof action_texts / sizeof action_texts[0]; i++)
                if (strcmp(action_texts[i].action, action) == 0)
                        return &action_texts[i];
        return &unknown;
}

static int on_polkit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct check *c = userdata;
        sd_bus_error verdict = SD_BUS_ERROR_NULL;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *from = sd_bus_message_get_sender(reply);
        const struct action_text *t = action_text(c->action);
        int authorized = 0, challenge = 0, r;

        /* On a bus that passes replies nobody asked for, anyone could answer in
         * polkit's place. Errors from the bus driver or from sd-bus itself (timeout,
         * disconnection) are fine: they refuse anyway. */
        bool from_polkit = from && c->authorizer->polkit_owner && strcmp(from, c->authorizer->polkit_owner) == 0;
        if (!from_polkit && !(e && (!from || strcmp(from, DBUS_DRIVER_NAME) == 0))) {
                if (may_log_refusal(c->authorizer))
                        log_warning("%s from %s refused: the answer to its polkit check came from %s, not from polkit (%s)",
                            t->call, c->sender, from ?: "nobody", c->authorizer->polkit_owner ?: "not on the bus");
                sd_bus_error_set(&verdict, SD_BUS_ERROR_ACCESS_DENIED,
                                 "The answer to the polkit check did not come from polkit; not authorized");
                check_finish(c, &verdict);
                sd_bus_error_free(&verdict);
                return 0;
        }

        if (e) {
                if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                        if (may_log_refusal(c->authorizer))
                                log_notice("%s from %s refused: polkit is not running, so only root may %s", t->call,
                                           c->sender, t->what);
                        sd_bus_error_setf(&verdict, SD_BUS_ERROR_ACCESS_DENIED,
                                          "polkit is not available to authorize this call; only root may %s",
                                          t == &action_texts[0] ? "kick" : t->what);
                } else if (sd_bus_error_has_names(e, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT) &&
                           sd_bus_is_open(c->authorizer->bus) > 0) {
                        char timeout[32];
                        format_duration_usec(timeout, sizeof timeout, c->authorizer->timeout_usec);
                        if (may_log_refusal(c->authorizer))
                                log_warning("%s from %s refused: polkit did not answer within %s", t->call, c->sender,
                                            timeout);
                        sd_bus_error_setf(&verdict, SD_BUS_ERROR_ACCESS_DENIED,
                                          "polkit did not answer within %s; not authorized", timeout);
                } else {
                        if (may_log_refusal(c->authorizer))
                                log_warning("%s from %s refused: polkit failed: %s: %s", t->call, c->sender, e->name,
                                            e->message);
                        sd_bus_error_setf(&verdict, SD_BUS_ERROR_ACCESS_DENIED, "polkit failed to check authorization: %s",
                                          e->message ?: e->name);
                }
                check_finish(c, &verdict);
                sd_bus_error_free(&verdict);
                return 0;
        }

        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0) {
                if (may_log_refusal(c->authorizer))
                        log_warning_errno(r, "%s from %s refused: cannot parse polkit's answer: %m", t->call, c->sender);
                sd_bus_error_set(&verdict, SD_BUS_ERROR_ACCESS_DENIED, "polkit gave an answer that cannot be read");
        } else if (authorized) {
                log_debug("polkit authorized %s for %s", c->sender, c->action);
        } else if (challenge) {
                sd_bus_error_setf(&verdict, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                  c->interactive ? "Authentication is required to %s, and no polkit "
                                                   "authentication agent could ask for it"
                                                 : "Authentication is required to %s; call with "
                                                   "interactive authorization allowed (e.g. ksmctl kick from a terminal)",
                                  t->what);
        } else {
                if (may_log_refusal(c->authorizer))
                        log_notice("%s from %s refused by polkit (action %s)", t->call, c->sender, c->action);
                sd_bus_error_setf(&verdict, SD_BUS_ERROR_ACCESS_DENIED, "Not authorized by polkit to %s", t->what);
        }
        check_finish(c, r >= 0 && authorized ? NULL : &verdict);
        sd_bus_error_free(&verdict);
        return 0;
}

static struct check *check_free(struct check *c) {
        if (!c)
                return NULL;
        sd_bus_slot_unref(c->slot);
        free(c->sender);
        free(c->action);
        free(c);
        return NULL;
}

static void check_freep(struct check **c) {
        check_free(*c);
}

static int polkit_call_start(struct check *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        struct authorizer *a = c->authorizer;
        int r;

        r = sd_bus_message_new_method_call(a->bus, &call, POLKIT_BUS_NAME, "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s", c->sender, c->action, 0,
                                  c->interactive ? POLKIT_ALLOW_USER_INTERACTION : 0u, "");
        if (r < 0)
                return r;
        /* The timeout bounds how long a caller waits; the loop never blocks on polkit. */
        c->slot = sd_bus_slot_unref(c->slot);
        return sd_bus_call_async(a->bus, &c->slot, call, on_polkit_reply, c, a->timeout_usec);
}

static struct privilege_entry *privilege_find(struct authorizer *a, const char *sender) {
        for (size_t i = 0; i < PRIVILEGE_CACHE_SIZE; i++)
                if (strcmp(a->privilege_cache[i].sender, sender) == 0)
                        return &a->privilege_cache[i];
        return NULL;
}

static void privilege_remember(struct authorizer *a, const char *sender, bool privileged, const struct caller *caller) {
        struct privilege_entry *entry = privilege_find(a, sender);

        if (strlen(sender) >= sizeof entry->sender)
                return;
        if (!entry) {
                /* An empty slot, else the least recently used unprivileged entry, else the
                 * least recently used one. */
                entry = &a->privilege_cache[0];
                for (size_t i = 1; i < PRIVILEGE_CACHE_SIZE; i++) {
                        struct privilege_entry *e = &a->privilege_cache[i];
                        if (!entry->sender[0])
                                break;
                        if (!e->sender[0] || (entry->privileged && !e->privileged) ||
                            (entry->privileged == e->privileged && e->last_used < entry->last_used))
                                entry = e;
                }
        }
        strcpy(entry->sender, sender);
        entry->privileged = privileged;
        entry->caller = *caller;
        entry->last_used = ++a->privilege_clock;
}

/* UnixUserID and ProcessID from GetConnectionCredentials' a{sv}; other entries are
 * skipped, whatever their type. */
static int credentials_parse(sd_bus_message *reply, struct caller *ret) {
        const char *key;
        int r;

        *ret = CALLER_UNKNOWN;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                uint32_t *field = strcmp(key, "UnixUserID") == 0 ? &ret->uid
                                  : strcmp(key, "ProcessID") == 0 ? &ret->pid
                                                                  : NULL;
                if (field && sd_bus_message_peek_type(reply, NULL, NULL) >= 0 &&
                    sd_bus_message_enter_container(reply, 'v', "u") > 0) {
                        r = sd_bus_message_read(reply, "u", field);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(reply);
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

static void check_refuse_all(struct check *c, const char *name, const char *message) {
        sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(name, message);
        check_finish(c, &e);
}

/* Refuses, with LimitsExceeded, the waiters of c (still asking the bus) after the first
 * keep. */
static void check_refuse_beyond(struct check *c, unsigned keep) {
        sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(SD_BUS_ERROR_LIMITS_EXCEEDED,
                                                 "Too many kicks are waiting for polkit (limit " STRINGIFY(WAITERS_MAX)
                                                 "); try again later");
        struct waiter *last = c->waiters, *rest;

        for (unsigned i = 1; i < keep; i++)
                last = last->next;
        rest = last->next;
        last->next = NULL;
        c->last = last;
        c->authorizer->n_credential_waiters -= c->n_waiters - keep;
        c->n_waiters = keep;
        for (struct waiter *next; rest; rest = next) {
                next = rest->next;
                rest->callback(rest->message, &e, &c->caller, rest->userdata);
                sd_bus_message_unref(rest->message);
                free(rest);
        }
}

/* The bus said who the sender is: root (or the daemon's own user, as
 * sd_bus_query_sender_privilege has it where capabilities are unknown, which they are
 * with dbus-daemon) passes; anyone else goes on to polkit. */
static int on_credentials_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct check *c = userdata;
        struct authorizer *a = c->authorizer;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *from = sd_bus_message_get_sender(reply);
        int r;

        /* Only the bus driver speaks for the bus (errors may also come from sd-bus itself). */
        if (!(from ? strcmp(from, DBUS_DRIVER_NAME) == 0 : e != NULL)) {
                if (may_log_refusal(a))
                        log_warning("%s from %s refused: the answer about who it is came from %s, not from the bus",
                            action_text(c->action)->call, c->sender, from ?: "nobody");
                check_refuse_all(c, SD_BUS_ERROR_ACCESS_DENIED, "Cannot tell who the caller is; not authorized");
                return 0;
        }
        if (e || credentials_parse(reply, &c->caller) < 0 || c->caller.uid == CALLER_UID_UNKNOWN) {
                if (may_log_refusal(a))
                        log_warning("%s from %s refused: cannot tell who it is: %s", action_text(c->action)->call, c->sender,
                            e ? e->message ?: e->name : "unreadable answer");
                check_refuse_all(c, SD_BUS_ERROR_ACCESS_DENIED, "Cannot tell who the caller is; not authorized");
                return 0;
        }

        caller_read_unit(&c->caller, a->proc_path);
        bool privileged = c->caller.uid == 0 || c->caller.uid == (uint32_t) getuid();
        privilege_remember(a, c->sender, privileged, &c->caller);
        if (privileged) {
                check_finish(c, NULL);
                return 0;
        }

        /* As many as fit go on to polkit, in the order they came; the rest are refused. */
        unsigned room = a->n_waiters < WAITERS_MAX ? WAITERS_MAX - a->n_waiters : 0;
        if (room == 0) {
                check_refuse_all(c, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                 "Too many kicks are waiting for polkit (limit " STRINGIFY(WAITERS_MAX) "); try again later");
                return 0;
        }
        if (c->n_waiters > room)
                check_refuse_beyond(c, room);
        a->n_credential_waiters -= c->n_waiters;
        c->phase = CHECK_POLKIT;
        a->n_waiters += c->n_waiters;
        r = polkit_call_start(c);
        if (r < 0) {
                log_error_errno(r, "Cannot ask polkit about %s: %m", c->sender);
                check_refuse_all(c, SD_BUS_ERROR_ACCESS_DENIED, "Cannot ask polkit; not authorized");
        }
        return 0;
}

static int credentials_call_start(struct check *c) {
        return sd_bus_call_method_async(c->authorizer->bus, &c->slot, DBUS_DRIVER_NAME, DBUS_DRIVER_PATH,
                                        DBUS_DRIVER_INTERFACE, "GetConnectionCredentials", on_credentials_reply, c, "s",
                                        c->sender);
}

/* A new check, in its first phase, with its bus call sent. */
static int check_start(struct authorizer *a, const char *sender, const char *action, bool interactive,
                       enum check_phase phase, const struct caller *caller, struct check **ret) {
        _cleanup_(check_freep) struct check *c = NULL;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->authorizer = a;
        c->interactive = interactive;
        c->phase = phase;
        c->caller = *caller;
        c->sender = strdup(sender);
        c->action = strdup(action);
        if (!c->sender || !c->action)
                return -ENOMEM;
        r = phase == CHECK_POLKIT ? polkit_call_start(c) : credentials_call_start(c);
        if (r < 0)
                return r;

        struct check **bucket = bucket_of(a, sender);
        c->next = *bucket;
        *bucket = c;
        *ret = c;
        c = NULL;
        return 0;
}

int authorize(struct authorizer *a, sd_bus_message *m, const char *action, authorize_callback_t callback,
              void *userdata) {
        const char *sender = sd_bus_message_get_sender(m);
        bool interactive = sd_bus_message_get_allow_interactive_authorization(m) > 0;
        struct check *c = NULL;
        struct waiter *w;
        const struct caller unknown = CALLER_UNKNOWN;
        int r;

        if (!sender)
                return -EBADMSG;
        /* Root passes without polkit. */
        struct privilege_entry *known = privilege_find(a, sender);
        if (known) {
                known->last_used = ++a->privilege_clock;
                if (known->privileged) {
                        callback(m, NULL, &known->caller, userdata);
                        return 0;
                }
        }

        struct check *any = NULL; /* of this sender: logs its refusals once */
        unsigned sender_waiters = 0;
        for (struct check *i = *bucket_of(a, sender); i; i = i->next)
                if (strcmp(i->sender, sender) == 0) {
                        sender_waiters += i->n_waiters;
                        any = i;
                        if (i->interactive == interactive && strcmp(i->action, action) == 0)
                                c = i;
                }
        if (sender_waiters >= WAITERS_PER_SENDER_MAX) {
                if (!any->refusal_logged && may_log_refusal(a))
                        log_notice("%s has %u kicks waiting for polkit; refusing more until polkit answers", sender,
                                   sender_waiters);
                any->refusal_logged = true;
                sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(SD_BUS_ERROR_LIMITS_EXCEEDED,
                                                         "Too many kicks of this caller are waiting for polkit (limit "
                                                         STRINGIFY(WAITERS_PER_SENDER_MAX) "); try again once they are answered");
                callback(m, &e, known ? &known->caller : &unknown, userdata);
                return 0;
        }
        /* A known unprivileged sender goes straight to polkit; an unknown one is asked about first. */
        enum check_phase phase = c ? c->phase : known ? CHECK_POLKIT : CHECK_CREDENTIALS;
        if (phase == CHECK_POLKIT ? a->n_waiters >= WAITERS_MAX : a->n_credential_waiters >= CREDENTIAL_WAITERS_MAX) {
                if (!a->total_refusal_logged && may_log_refusal(a))
                        log_notice("%u kicks are waiting for polkit and %u for the bus; refusing more until they are answered",
                                   a->n_waiters, a->n_credential_waiters);
                a->total_refusal_logged = true;
                sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(SD_BUS_ERROR_LIMITS_EXCEEDED,
                                                         "Too many kicks are waiting for polkit (limit "
                                                         STRINGIFY(WAITERS_MAX) "); try again later");
                callback(m, &e, known ? &known->caller : &unknown, userdata);
                return 0;
        }

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        if (!c) {
                r = check_start(a, sender, action, interactive, phase, known ? &known->caller : &unknown, &c);
                if (r < 0) {
                        free(w);
                        return log_error_errno(r, "Cannot ask the bus or polkit about %s: %m", sender);
                }
        }
        w->message = sd_bus_message_ref(m);
        w->callback = callback;
        w->userdata = userdata;
        if (c->last)
                c->last->next = w;
        else
                c->waiters = w;
        c->last = w;
        c->n_waiters++;
        if (phase == CHECK_POLKIT)
                a->n_waiters++;
        else
                a->n_credential_waiters++;
        return 0;
}

void authorizer_shutdown(struct authorizer *a) {
        sd_bus_error shutting_down = SD_BUS_ERROR_MAKE_CONST(SD_BUS_ERROR_ACCESS_DENIED,
                                                             "ksm-throttler is shutting down; not authorized");
        if (!a)
                return;
        for (size_t i = 0; i < CHECK_BUCKETS; i++)
                while (a->checks[i])
                        check_finish(a->checks[i], &shutting_down);
}

struct authorizer *authorizer_free(struct authorizer *a) {
        if (!a)
                return NULL;
        authorizer_shutdown(a);
        sd_bus_slot_unref(a->owner_match);
        sd_bus_slot_unref(a->owner_query);
        free(a->polkit_owner);
        sd_bus_unref(a->bus);
        free(a);
        return NULL;
}

unsigned authorizer_pending(const struct authorizer *a) {
        return a ? a->n_waiters + a->n_credential_waiters : 0;
}
