/* SPDX-License-Identifier: Apache-2.0 */
/* What the throttler reads from procfs: AnonPages from meminfo, and ksmd's CPU time. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

/* AnonPages from a meminfo file, in pages. */
int meminfo_read_anon_pages(const char *path, uint64_t *ret_pages);
/* The same, from meminfo text. */
int meminfo_parse_anon_pages(const char *text, uint64_t page_size, uint64_t *ret_pages);

/* The PID of the ksmd kernel thread, found once by its name; -ESRCH if not visible. */
int ksmd_find(const char *proc_path, pid_t *ret);
/* utime+stime of a process in microseconds, from /proc/PID/stat. */
int proc_cpu_usec(pid_t pid, uint64_t *ret);
/* The same, from /proc/PID/stat text and the clock tick rate. */
int proc_stat_parse_cpu_usec(const char *text, long ticks_per_sec, uint64_t *ret);
