/* SPDX-License-Identifier: Apache-2.0 */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fd-util.h"
#include "fileio.h"
#include "parse-util.h"

int meminfo_parse_anon_pages(const char *text, uint64_t page_size, uint64_t *ret_pages) {
        const char *line = text;

        while (line && *line) {
                if (strncmp(line, "AnonPages:", 10) == 0) {
                        const char *p = line + 10;
                        char number[32];
                        size_t len;
                        uint64_t kib;
                        int r;

                        p += strspn(p, " \t");
                        len = strspn(p, "0123456789");
                        if (len == 0 || len >= sizeof number)
                                return -EINVAL;
                        memcpy(number, p, len);
                        number[len] = '\0';
                        p += len;
                        p += strspn(p, " \t");
                        if (strncmp(p, "kB", 2) != 0)
                                return -EINVAL;
                        r = parse_uint64(number, &kib);
                        if (r < 0)
                                return r;
                        if (kib > UINT64_MAX / 1024)
                                return -ERANGE;
                        *ret_pages = kib * 1024 / page_size;
                        return 0;
                }
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return -ENODATA;
}

int meminfo_read_anon_pages(const char *path, uint64_t *ret_pages) {
        char text[16384];
        int r;

        r = read_small_file_at(AT_FDCWD, path, text, sizeof text);
        if (r < 0)
                return r;
        return meminfo_parse_anon_pages(text, (uint64_t) sysconf(_SC_PAGESIZE), ret_pages);
}

int proc_stat_parse_cpu_usec(const char *text, long ticks_per_sec, uint64_t *ret) {
        /* "pid (comm) state ppid ..." where comm may hold spaces and parentheses:
         * fields are counted from the last ')'. utime and stime are fields 14 and 15. */
        const char *p = strrchr(text, ')');
        unsigned long long utime, stime;

        if (!p || ticks_per_sec <= 0)
                return -EINVAL;
        if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
                return -EINVAL;
        if (utime + stime > UINT64_MAX / 1000000)
                return -ERANGE;
        *ret = (uint64_t) (utime + stime) * 1000000 / (uint64_t) ticks_per_sec;
        return 0;
}

int proc_cpu_usec(pid_t pid, uint64_t *ret) {
        char path[64], text[1024];
        int r;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        r = read_small_file_at(AT_FDCWD, path, text, sizeof text);
        if (r < 0)
                return r;
        return proc_stat_parse_cpu_usec(text, sysconf(_SC_CLK_TCK), ret);
}

int ksmd_find(const char *proc_path, pid_t *ret) {
        _cleanup_(closedirp) DIR *proc = opendir(proc_path);
        struct dirent *de;

        if (!proc)
                return -errno;
        while ((de = readdir(proc))) {
                char path[PATH_MAX], comm[32];
                uint64_t pid;

                if (parse_uint64(de->d_name, &pid) < 0 || pid > INT32_MAX)
                        continue;
                snprintf(path, sizeof path, "%s/%s/comm", proc_path, de->d_name);
                if (read_small_file_at(AT_FDCWD, path, comm, sizeof comm) < 0 || strcmp(comm, "ksmd\n") != 0)
                        continue;
                /* The kernel thread, a child of kthreadd (PID 2), not a process that took its name. */
                char stat[512];
                int ppid;
                snprintf(path, sizeof path, "%s/%s/stat", proc_path, de->d_name);
                if (read_small_file_at(AT_FDCWD, path, stat, sizeof stat) < 0 || !strrchr(stat, ')') ||
                    sscanf(strrchr(stat, ')') + 1, " %*c %d", &ppid) != 1 || ppid != 2)
                        continue;
                *ret = (pid_t) pid;
                return 0;
        }
        return -ESRCH;
}
