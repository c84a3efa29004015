/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm-standin: a process that looks to KSM like a VM's guest RAM. Holds N MiB
 * filled with one repeated page (so that all of it can merge), marked
 * MADV_MERGEABLE; with --shared the memory is MAP_SHARED, which KSM never
 * merges (the kernel accepts the madvise and ignores it), as a hypervisor's
 * guest RAM is with virtio-fs or vhost-user. --comm renames the process (e.g.
 * to a hypervisor's name). Prints "ready" once filled, then waits to be killed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "mib", required_argument, NULL, 'm' },
                { "shared", no_argument, NULL, 's' },
                { "comm", required_argument, NULL, 'c' },
                { "pattern", required_argument, NULL, 'p' },
                {},
        };
        unsigned long mib = 32;
        int shared = 0, pattern = 0x5a, c;
        const char *comm = NULL;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'm': mib = strtoul(optarg, NULL, 10); break;
                case 's': shared = 1; break;
                case 'c': comm = optarg; break;
                case 'p': pattern = (int) strtol(optarg, NULL, 0) & 0xff; break;
                default:
                        fprintf(stderr, "usage: vm-standin [--mib N] [--shared] [--comm NAME] [--pattern BYTE]\n");
                        return 2;
                }
        if (mib == 0 || mib > 4096) {
                fprintf(stderr, "vm-standin: --mib must be 1..4096\n");
                return 2;
        }
        if (comm && prctl(PR_SET_NAME, comm, 0, 0, 0) < 0) {
                fprintf(stderr, "vm-standin: cannot rename to %s: %m\n", comm);
                return 1;
        }
        size_t size = mib << 20;
        char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
                fprintf(stderr, "vm-standin: mmap %lu MiB: %m\n", mib);
                return 1;
        }
        if (madvise(m, size, MADV_MERGEABLE) < 0) {
                fprintf(stderr, "vm-standin: madvise(MADV_MERGEABLE): %m\n");
                return 1;
        }
        memset(m, pattern, size);
        printf("ready\n");
        fflush(stdout);
        for (;;)
                pause();
}
