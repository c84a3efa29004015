/* SPDX-License-Identifier: Apache-2.0 */
#include "machine-set.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct machine {
        char *name;
        char *path;
};

/* Oldest first. A list scanned whole: machines come and go a few times a minute at
 * most, and the bound keeps each scan short. */
struct machine_set {
        struct machine *machines;
        size_t n, max;
};

int machine_set_new(size_t max, struct machine_set **ret) {
        struct machine_set *s;
        if (max == 0)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->machines = calloc(max, sizeof *s->machines);
        if (!s->machines) {
                free(s);
                return -ENOMEM;
        }
        s->max = max;
        *ret = s;
        return 0;
}

static void forget(struct machine_set *s, size_t i) {
        free(s->machines[i].name);
        free(s->machines[i].path);
        memmove(&s->machines[i], &s->machines[i + 1], (s->n - i - 1) * sizeof *s->machines);
        s->n--;
}

struct machine_set *machine_set_free(struct machine_set *s) {
        if (!s)
                return NULL;
        while (s->n > 0)
                forget(s, s->n - 1);
        free(s->machines);
        free(s);
        return NULL;
}

static struct machine *find(const struct machine_set *s, const char *name) {
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->machines[i].name, name) == 0)
                        return &s->machines[i];
        return NULL;
}

int machine_set_add(struct machine_set *s, const char *name, const char *path) {
        struct machine *m;
        char *copy;

        if (strnlen(name, MACHINE_NAME_MAX + 1) > MACHINE_NAME_MAX || strnlen(path, MACHINE_PATH_MAX + 1) > MACHINE_PATH_MAX)
                return -EINVAL;
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        m = find(s, name);
        if (m) {
                free(m->path);
                m->path = copy;
                return 0;
        }
        char *name_copy = strdup(name);
        if (!name_copy) {
                free(copy);
                return -ENOMEM;
        }
        if (s->n == s->max)
                forget(s, 0);
        s->machines[s->n++] = (struct machine) { .name = name_copy, .path = copy };
        return 1;
}

int machine_set_remove(struct machine_set *s, const char *name) {
        struct machine *m = find(s, name);
        if (!m)
                return 0;
        forget(s, (size_t) (m - s->machines));
        return 1;
}

const char *machine_set_path(const struct machine_set *s, const char *name) {
        const struct machine *m = find(s, name);
        return m ? m->path : NULL;
}

size_t machine_set_size(const struct machine_set *s) {
        return s->n;
}
