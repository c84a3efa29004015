/* SPDX-License-Identifier: Apache-2.0 */
/* ksm-workload: stands in for a VM. Holds N MiB of anonymous MADV_MERGEABLE memory,
 * a given share of it pages with identical content (the rest unique), optionally
 * rewrites a share of the pages every second, and prints "ready" once the memory
 * is filled. Runs until killed or --seconds have passed. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *out) {
        fprintf(out, "Usage: ksm-workload [--mib N] [--duplicate-percent P] [--rewrite-percent R] [--seconds S]\n"
                     "  --mib N                 anonymous memory to hold (default 64)\n"
                     "  --duplicate-percent P   share of pages that duplicate others (default 75)\n"
                     "  --copies C              each duplicate content appears on C pages (default 0:\n"
                     "                          all duplicate pages share one content)\n"
                     "  --rewrite-percent R     pages rewritten every second, as a share of all pages,\n"
                     "                          taken from the unique ones (default 0)\n"
                     "  --seconds S             exit after S seconds (default: run until killed)\n");
}

static int parse_number(const char *arg, const char *name, unsigned long max, unsigned long *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(arg, &end, 10);
        if (errno || end == arg || *end || v > max) {
                fprintf(stderr, "ksm-workload: invalid %s \"%s\" (0..%lu)\n", name, arg, max);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

/* Unique content: the page index and a per-run salt in every 64-bit word. */
static void fill_unique(uint64_t *page, size_t words, uint64_t index, uint64_t salt) {
        for (size_t w = 0; w < words; w++)
                page[w] = (index << 20) ^ salt ^ w;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "mib", required_argument, NULL, 'm' },     { "duplicate-percent", required_argument, NULL, 'd' },
                { "rewrite-percent", required_argument, NULL, 'r' }, { "seconds", required_argument, NULL, 's' },
                { "copies", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },          {},
        };
        unsigned long mib = 64, duplicate = 75, rewrite = 0, seconds = 0, copies = 0;
        size_t page_size = (size_t) sysconf(_SC_PAGESIZE), size, n_pages, n_duplicate;
        uint64_t salt = (uint64_t) getpid() * 0x9e3779b97f4a7c15ULL;
        char *memory;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                int r = 0;
                switch (c) {
                case 'm': r = parse_number(optarg, "--mib", 1 << 20, &mib); break;
                case 'd': r = parse_number(optarg, "--duplicate-percent", 100, &duplicate); break;
                case 'r': r = parse_number(optarg, "--rewrite-percent", 100, &rewrite); break;
                case 's': r = parse_number(optarg, "--seconds", 1UL << 31, &seconds); break;
                case 'c': r = parse_number(optarg, "--copies", 1UL << 31, &copies); break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
                if (r < 0)
                        return 2;
        }

        size = (size_t) mib << 20;
        n_pages = size / page_size;
        n_duplicate = n_pages * duplicate / 100;
        memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) {
                fprintf(stderr, "ksm-workload: cannot map %lu MiB: %s\n", mib, strerror(errno));
                return 1;
        }
        if (madvise(memory, size, MADV_MERGEABLE) < 0) {
                fprintf(stderr, "ksm-workload: madvise(MADV_MERGEABLE) failed: %s (kernel without CONFIG_KSM?)\n",
                        strerror(errno));
                return 1;
        }
        for (size_t i = 0; i < n_pages; i++) {
                char *page = memory + i * page_size;
                if (i < n_duplicate && copies == 0)
                        memset(page, 0x5a, page_size);
                else if (i < n_duplicate)
                        /* Groups of copies: same content within a group, and the same in every
                         * run and process (the salt is fixed), as pages of one guest image are. */
                        fill_unique((uint64_t *) page, page_size / 8, i / copies, 0x5a5a5a5a5a5a5a5aULL);
                else
                        fill_unique((uint64_t *) page, page_size / 8, i, salt);
        }
        printf("ready %lu MiB, %zu pages, %zu duplicate\n", mib, n_pages, n_duplicate);
        fflush(stdout);

        for (unsigned long t = 0; seconds == 0 || t < seconds; t++) {
                sleep(1);
                /* Volatile pages: a rotating window of the unique pages (a guest's own data; its
                 * duplicates, like a shared image, stay) gets fresh content every second. */
                size_t n_unique = n_pages - n_duplicate, n_rewrite = n_pages * rewrite / 100;
                if (n_unique == 0)
                        continue;
                for (size_t j = 0; j < n_rewrite; j++) {
                        size_t i = n_duplicate + (t * n_rewrite + j) % n_unique;
                        fill_unique((uint64_t *) (memory + i * page_size), page_size / 8, i, salt + t + 1);
                }
        }
        return 0;
}
