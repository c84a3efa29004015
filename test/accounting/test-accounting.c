/* SPDX-License-Identifier: Apache-2.0 */
/* Per-VM accounting on fake /proc trees: parsing, grouping, sums, bounds. */
#include <math.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>

#include "fixture.h"
#include "ksm-accounting.h"

#define KSM_STAT(rmap, zero, merging, profit, any, mergeable)                                               \
        "ksm_rmap_items " #rmap "\nksm_zero_pages " #zero "\nksm_merging_pages " #merging                     \
        "\nksm_process_profit " #profit "\nksm_merge_any: " any "\nksm_mergeable: " mergeable "\n"

#define NOT_TAKING_PART KSM_STAT(0, 0, 0, 0, "no", "no")

static void add_process(const char *root, int pid, const char *comm, const char *ksm_stat, const char *cgroup,
                        const char *cmdline, size_t cmdline_len, const char *smaps) {
        char rel[64], text[64];
        snprintf(rel, sizeof(rel), "%d/comm", pid);
        snprintf(text, sizeof(text), "%s\n", comm);
        fixture_write(root, rel, text);
        if (ksm_stat) {
                snprintf(rel, sizeof(rel), "%d/ksm_stat", pid);
                fixture_write(root, rel, ksm_stat);
        }
        snprintf(rel, sizeof(rel), "%d/cgroup", pid);
        fixture_write(root, rel, cgroup ? cgroup : "0::/\n");
        snprintf(rel, sizeof(rel), "%d/cmdline", pid);
        fixture_write_n(root, rel, cmdline ? cmdline : "", cmdline ? (ssize_t) cmdline_len : 0);
        if (smaps) {
                snprintf(rel, sizeof(rel), "%d/smaps", pid);
                fixture_write(root, rel, smaps);
        }
}

static const struct ksm_group *find_group(const struct ksm_accounting *a, enum ksm_group_kind kind, const char *name) {
        for (size_t i = 0; i < a->n_groups; i++)
                if (a->groups[i].kind == kind && strcmp(a->groups[i].name, name) == 0)
                        return &a->groups[i];
        return NULL;
}

Test(accounting, ksm_stat_parse_reads_every_field) {
        struct ksm_process p = {};
        cr_assert_eq(ksm_stat_parse(KSM_STAT(10, 3, 7, -4096, "yes", "yes") "some_future_key 12\n", &p), 0,
                     "a full ksm_stat (with a key this code does not know) must parse");
        cr_expect_eq(p.rmap_items, 10);
        cr_expect_eq(p.zero_pages, 3);
        cr_expect_eq(p.merging_pages, 7);
        cr_expect_eq(p.profit_bytes, -4096, "ksm_process_profit is signed: KSM's metadata can cost more than it saves");
        cr_expect(p.merge_any && p.mergeable);
}

Test(accounting, ksm_stat_parse_refuses_garbage) {
        struct ksm_process p = {};
        cr_expect_eq(ksm_stat_parse("ksm_merging_pages 12abc\n", &p), -EINVAL, "a number with trailing junk is refused");
        cr_expect_eq(ksm_stat_parse("ksm_merging_pages -1\n", &p), -EINVAL, "a negative page count is refused");
        cr_expect_eq(ksm_stat_parse("ksm_merge_any: maybe\nksm_merging_pages 1\n", &p), -EINVAL, "a flag other than yes/no is refused");
        cr_expect_eq(ksm_stat_parse("", &p), -EINVAL, "a kernel thread's empty ksm_stat is not a process");
}

Test(accounting, cgroup_path_prefers_the_systemd_hierarchy) {
        char path[256];
        cr_assert_eq(ksm_cgroup_path_parse("0::/system.slice/foo.service\n", path, sizeof(path)), 0);
        cr_expect_str_eq(path, "/system.slice/foo.service");
        cr_assert_eq(ksm_cgroup_path_parse("4:memory:/x\n1:name=systemd:/machine.slice/machine-vm.scope\n0::/\n", path,
                                           sizeof(path)),
                     0);
        cr_expect_str_eq(path, "/machine.slice/machine-vm.scope", "on hybrid hosts units live in name=systemd, not in 0::/");
        cr_expect_eq(ksm_cgroup_path_parse("4:memory:/x\n", path, sizeof(path)), -EINVAL);
}

Test(accounting, unit_is_the_innermost_unit_component) {
        char unit[128];
        cr_assert_eq(ksm_unit_from_cgroup("/user.slice/user-1000.slice/user@1000.service/app.slice/editor.service", unit,
                                          sizeof(unit)),
                     0);
        cr_expect_str_eq(unit, "editor.service");
        cr_assert_eq(ksm_unit_from_cgroup("/system.slice/containerd.service/payload", unit, sizeof(unit)), 0);
        cr_expect_str_eq(unit, "containerd.service", "delegated sub-cgroups belong to the unit above them");
        cr_expect_eq(ksm_unit_from_cgroup("/", unit, sizeof(unit)), -ENOENT);
        cr_expect_eq(ksm_unit_from_cgroup("/kubepods/besteffort/pod1", unit, sizeof(unit)), -ENOENT);
}

Test(accounting, machine_scope_names_are_unescaped) {
        char name[128];
        cr_assert_eq(ksm_machine_from_cgroup("/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/vcpu0", name,
                                             sizeof(name)),
                     0);
        cr_expect_str_eq(name, "qemu-1-vm1", "libvirt's scope carries the machine name with systemd's escaping");
        cr_expect_eq(ksm_machine_from_cgroup("/system.slice/machine.service", name, sizeof(name)), -ENOENT);
}

Test(accounting, kata_sandbox_from_command_line_and_cgroup) {
        static const char qemu[] = "/usr/bin/qemu-system-x86_64\0-name\0sandbox-3f2a9c,debug-threads=on\0-m\0" "2048M";
        static const char clh[] = "/usr/bin/cloud-hypervisor\0--api-socket\0/run/vc/vm/ab12cd/clh-api.sock";
        static const char rust[] = "/opt/kata/bin/qemu\0-qmp\0unix:/run/kata/ffee0011/qmp.sock,server=on";
        static const char fc[] = "/usr/bin/firecracker\0--api-sock\0/run/vc/firecracker/99ab/root/run/fc.sock";
        static const char plain[] = "/usr/bin/qemu-system-x86_64\0-name\0guest=web,debug-threads=on";
        char id[128];

        cr_assert_eq(ksm_sandbox_from_cmdline(qemu, sizeof(qemu), id, sizeof(id)), 0);
        cr_expect_str_eq(id, "3f2a9c");
        cr_assert_eq(ksm_sandbox_from_cmdline(clh, sizeof(clh), id, sizeof(id)), 0);
        cr_expect_str_eq(id, "ab12cd");
        cr_assert_eq(ksm_sandbox_from_cmdline(rust, sizeof(rust), id, sizeof(id)), 0);
        cr_expect_str_eq(id, "ffee0011");
        cr_assert_eq(ksm_sandbox_from_cmdline(fc, sizeof(fc), id, sizeof(id)), 0);
        cr_expect_str_eq(id, "99ab", "Firecracker's jail directory names the sandbox");
        cr_expect_eq(ksm_sandbox_from_cmdline(plain, sizeof(plain), id, sizeof(id)), -ENOENT,
                     "a libvirt VM is not a Kata sandbox");
        cr_assert_eq(ksm_sandbox_from_cgroup("/kubepods/burstable/pod9/kata_77aa", id, sizeof(id)), 0);
        cr_expect_str_eq(id, "77aa");
}

Test(accounting, hypervisor_names) {
        cr_expect(ksm_comm_is_hypervisor("qemu-system-x86"), "comm is cut to 15 characters");
        cr_expect(ksm_comm_is_hypervisor("cloud-hyperviso"));
        cr_expect(ksm_comm_is_hypervisor("firecracker"));
        cr_expect(!ksm_comm_is_hypervisor("bash"));
        cr_expect(!ksm_comm_is_hypervisor("qemu-img"));
}

static const char vm1_smaps[] =
        "7f0000000000-7f0040000000 rw-p 00000000 00:00 0 \n"
        "Size:            1048576 kB\n"
        "Rss:               40960 kB\n"
        "KSM:               20480 kB\n"
        "VmFlags: rd wr mr mw me ac mg \n"
        "7f1000000000-7f1000100000 rw-s 00000000 00:01 5          /memfd:ring (deleted)\n"
        "Size:               1024 kB\n"
        "Rss:                1024 kB\n"
        "VmFlags: rd wr sh mr mw me ms \n"
        "7f2000000000-7f2000010000 rw-p 00000000 00:00 0 \n"
        "Size:                 64 kB\n"
        "Rss:                  64 kB\n"
        "VmFlags: rd wr mr mw me ac \n";

static const char shared_vm_smaps[] =
        "7f0000000000-7f0020000000 rw-s 00000000 00:01 9          /memfd:guest-ram (deleted)\n"
        "Size:             524288 kB\n"
        "Rss:              524288 kB\n"
        "VmFlags: rd wr sh mr mw me ms \n";

Test(accounting, scan_groups_by_machine_sandbox_unit_process) {
        char *root = fixture_dir();
        static const char kata_cmdline[] = "/usr/bin/qemu-system-x86_64\0-name\0sandbox-c0ffee";
        /* Two processes of one machined machine, found by its unit and by its leader. */
        add_process(root, 100, "qemu-system-x86", KSM_STAT(100, 2, 50, 200000, "no", "yes"),
                    "0::/machine.slice/machine-qemu\\x2d1\\x2dweb.scope/libvirt/emulator\n", NULL, 0, vm1_smaps);
        add_process(root, 101, "vhost-100", KSM_STAT(10, 0, 5, 20000, "no", "yes"), "0::/elsewhere\n", NULL, 0, NULL);
        /* A Kata sandbox known only by its command line. */
        add_process(root, 200, "qemu-system-x86", KSM_STAT(20, 0, 10, 40000, "no", "yes"), "0::/kubepods/pod1/ctr\n",
                    kata_cmdline, sizeof(kata_cmdline), NULL);
        /* A service with MemoryKSM=yes. */
        add_process(root, 300, "java", KSM_STAT(40, 0, 30, 120000, "yes", "yes"),
                    "0::/system.slice/app.service\n", NULL, 0, NULL);
        /* A bare process. */
        add_process(root, 400, "workload", KSM_STAT(4, 1, 1, 4000, "no", "yes"), "0::/\n", NULL, 0, NULL);
        /* Not taking part: left out. */
        add_process(root, 500, "bash", NOT_TAKING_PART, "0::/\n", NULL, 0, NULL);
        /* A hypervisor that takes no part (guest RAM shared): kept for the doctor. */
        add_process(root, 600, "qemu-system-x86", NOT_TAKING_PART, "0::/\n", NULL, 0, shared_vm_smaps);
        /* A kernel without ksm_stat for this one; and entries that are no process. */
        add_process(root, 700, "old", NULL, "0::/\n", NULL, 0, NULL);
        fixture_write(root, "self", "not a pid");
        fixture_write(root, "meminfo", "MemTotal: 1 kB\n");

        struct ksm_machine machines[] = {
                { .name = "web", .unit = "machine-qemu\\x2d1\\x2dweb.scope", .leader = 101 },
        };
        struct ksm_accounting_options o = {
                .proc_dir = root, .page_size = 4096, .read_smaps = true, .machines = machines, .n_machines = 1,
        };
        struct ksm_accounting a;
        cr_assert_eq(ksm_accounting_scan(&o, &a), 0, "the scan of a fake /proc must succeed");

        cr_expect_eq(a.n_scanned, 8, "8 numeric entries were looked at, 'self' and 'meminfo' are no processes");
        cr_expect_eq(a.n_processes, 6, "5 processes take part in KSM, 1 hypervisor is kept; bash and pid 700 are not");
        cr_expect_eq(a.n_groups, 5);

        const struct ksm_group *web = find_group(&a, KSM_GROUP_MACHINE, "web");
        cr_assert(web, "pids 100 (by unit) and 101 (the machine's leader) form machine 'web'");
        cr_expect_eq(web->n_processes, 2);
        cr_expect_eq(web->profit_bytes, 220000);
        cr_expect_eq(web->merging_pages, 55);
        cr_expect_eq(web->zero_pages, 2);
        cr_expect_eq(web->pid, 100);
        cr_expect(!web->mergeable_known, "pid 101 has no smaps in the fixture: the group's mergeable size is incomplete");

        const struct ksm_group *kata = find_group(&a, KSM_GROUP_SANDBOX, "c0ffee");
        cr_assert(kata, "the Kata VM is grouped under its sandbox id");
        cr_expect_eq(kata->profit_bytes, 40000);

        const struct ksm_group *app = find_group(&a, KSM_GROUP_UNIT, "app.service");
        cr_assert(app, "the service is grouped under its unit");
        cr_expect_eq(app->merging_pages, 30);

        const struct ksm_group *bare = find_group(&a, KSM_GROUP_PROCESS, "workload[400]");
        cr_assert(bare, "a process in no unit is its own group");
        cr_expect_eq(bare->pid, 400);

        const struct ksm_group *shared = find_group(&a, KSM_GROUP_PROCESS, "qemu-system-x86[600]");
        cr_assert(shared, "a hypervisor that takes no part still shows, with nothing saved");
        cr_expect_eq(shared->profit_bytes, 0);
        cr_expect(shared->mergeable_known && shared->mergeable_bytes == 0);
        cr_expect_eq(shared->merged_share, 0.0);

        /* Sorted by profit, largest first. */
        cr_expect_str_eq(a.groups[0].name, "web");
        cr_expect_str_eq(a.groups[1].name, "app.service");
        cr_expect_str_eq(a.groups[2].name, "c0ffee");
        for (size_t i = 1; i < a.n_groups; i++)
                cr_expect_geq(a.groups[i - 1].profit_bytes, a.groups[i].profit_bytes, "groups are sorted by profit");

        /* smaps: the "mg" area's Rss plus the zero pages; the shared ring is not mergeable. */
        for (size_t i = 0; i < a.n_processes; i++) {
                const struct ksm_process *p = &a.processes[i];
                if (p->pid == 100) {
                        cr_expect_eq(p->mergeable_source, KSM_MERGEABLE_SMAPS);
                        cr_expect_eq(p->mergeable_bytes, 40960 * 1024ull + 2 * 4096, "Rss of mg areas + zero pages");
                        cr_expect_eq(p->shared_writable_bytes, 1024 * 1024ull);
                        cr_expect_eq(p->private_writable_bytes, 64 * 1024ull, "the private area not flagged mg");
                        cr_expect(p->hypervisor);
                } else if (p->pid == 600) {
                        cr_expect_eq(p->shared_writable_bytes, 512 * 1024 * 1024ull, "the memfd guest RAM is shared");
                        cr_expect_eq(p->mergeable_bytes, 0);
                }
        }
        ksm_accounting_free(&a);
        fixture_remove(root);
}

Test(accounting, merged_share_and_machine_fallback_without_machined) {
        char *root = fixture_dir();
        add_process(root, 10, "qemu-system-x86", KSM_STAT(10240, 0, 5120, 20000000, "no", "yes"),
                    "1:name=systemd:/machine.slice/machine-db.scope\n0::/\n", NULL, 0,
                    "7f0000000000-7f0004000000 rw-p 00000000 00:00 0 \nRss: 40960 kB\nVmFlags: rd wr mg \n");
        struct ksm_accounting_options o = { .proc_dir = root, .page_size = 4096, .read_smaps = true };
        struct ksm_accounting a;
        cr_assert_eq(ksm_accounting_scan(&o, &a), 0);
        cr_assert_eq(a.n_groups, 1);
        cr_expect_eq(a.groups[0].kind, KSM_GROUP_MACHINE, "without machined the machine scope still names the machine");
        cr_expect_str_eq(a.groups[0].name, "db");
        cr_expect_eq(a.groups[0].mergeable_bytes, 40960 * 1024ull);
        cr_expect_float_eq(a.groups[0].merged_share, 0.5, 1e-9, "5120 of 10240 resident mergeable pages are merged");
        ksm_accounting_free(&a);
        fixture_remove(root);
}

Test(accounting, the_number_of_processes_kept_is_bounded) {
        char *root = fixture_dir();
        for (int pid = 1; pid <= 20; pid++)
                add_process(root, pid, "w", KSM_STAT(1, 0, 1, 10, "no", "yes"), "0::/\n", NULL, 0, NULL);
        struct ksm_accounting_options o = { .proc_dir = root, .page_size = 4096, .max_processes = 5 };
        struct ksm_accounting a;
        cr_assert_eq(ksm_accounting_scan(&o, &a), 0);
        cr_expect_eq(a.n_processes, 5, "no more than max_processes are kept");
        cr_expect(a.truncated, "the caller is told that processes were left out");
        cr_expect_eq(a.n_scanned, 20);
        cr_expect(isnan(a.groups[0].merged_share), "without smaps the merged share is unknown, not 0");
        ksm_accounting_free(&a);
        fixture_remove(root);
}

Test(accounting, a_missing_proc_dir_is_an_error) {
        struct ksm_accounting_options o = { .proc_dir = "/nonexistent/proc" };
        struct ksm_accounting a;
        cr_expect_eq(ksm_accounting_scan(&o, &a), -ENOENT);
}

Test(accounting, json_rows) {
        struct ksm_group g[] = {
                { .kind = KSM_GROUP_MACHINE, .name = "vm \"a\"", .pid = 7, .n_processes = 2, .profit_bytes = -5,
                  .merging_pages = 3, .zero_pages = 1, .mergeable_bytes = 8192, .merged_share = 0.5,
                  .mergeable_known = true, .uid = 0 },
                { .kind = KSM_GROUP_PROCESS, .name = "w[9]", .pid = 9, .n_processes = 1, .merged_share = NAN,
                  .uid = (uid_t) -1 },
        };
        struct ksm_accounting a = { .page_size = 4096, .groups = g, .n_groups = 2, .n_scanned = 40, .n_denied = 3 };
        json_t *j = ksm_accounting_to_json(&a, 0);
        cr_assert(j);
        char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        cr_expect_str_eq(text,
                         "{\"groups\":[{\"kind\":\"machine\",\"mergeable_bytes\":8192,\"merged_share\":0.5,\"merging_pages\":3,"
                         "\"name\":\"vm \\\"a\\\"\",\"pid\":7,\"processes\":2,\"profit_bytes\":-5,\"rmap_items\":0,\"saved_bytes\":16384,"
                         "\"uid\":0,\"zero_pages\":1},"
                         "{\"kind\":\"process\",\"mergeable_bytes\":null,\"merged_share\":null,\"merging_pages\":0,"
                         "\"name\":\"w[9]\",\"pid\":9,\"processes\":1,\"profit_bytes\":0,\"rmap_items\":0,\"saved_bytes\":0,\"uid\":null,"
                         "\"zero_pages\":0}],"
                         "\"processes_scanned\":40,\"processes_unreadable\":3,\"smaps_skipped\":0,\"truncated\":false}",
                         "every figure is in the row; what is unknown is null, not 0");
        free(text);
        json_decref(j);
        j = ksm_accounting_to_json(&a, 1);
        cr_expect_eq(json_array_size(json_object_get(j, "groups")), 1, "the limit bounds the rows");
        json_decref(j);
}

Test(accounting, group_by_process) {
        char *root = fixture_dir();
        add_process(root, 5, "a", KSM_STAT(1, 0, 1, 10, "no", "yes"), "0::/system.slice/x.service\n", NULL, 0, NULL);
        add_process(root, 6, "b", KSM_STAT(1, 0, 2, 20, "no", "yes"), "0::/system.slice/x.service\n", NULL, 0, NULL);
        struct ksm_accounting_options o = { .proc_dir = root, .page_size = 4096, .group_by_process = true };
        struct ksm_accounting a;
        cr_assert_eq(ksm_accounting_scan(&o, &a), 0);
        cr_assert_eq(a.n_groups, 2, "two processes of one unit are two rows when grouped by process");
        cr_expect_str_eq(a.groups[0].name, "b[6]");
        cr_expect_eq(a.groups[0].pid, 6);
        ksm_accounting_free(&a);
        fixture_remove(root);
}

Test(accounting, hostile_names_are_made_safe) {
        char s1[] = "ok-\xc3\xa9\xff\x1b[31m\xe2\x82";
        ksm_sanitize_name(s1);
        cr_expect_str_eq(s1, "ok-\xc3\xa9??[31m??", "valid UTF-8 stays; a stray byte, ESC and a cut sequence become '?'");
        char s2[] = "\xe0\x88\x9d|\xed\xa0\x80|\xf4\x90\x80\x80|\xf0\x9f\x98\x80";
        ksm_sanitize_name(s2);
        cr_expect_str_eq(s2, "???|???|????|\xf0\x9f\x98\x80",
                         "an overlong form, a surrogate and a code point above U+10FFFF are not UTF-8; an emoji is");

        /* Any process may name itself so; JSON output must still work. */
        char *root = fixture_dir();
        add_process(root, 9, "\xff\x1b]0;pwn\x07", KSM_STAT(1, 0, 1, 10, "no", "yes"),
                    "0::/system.slice/bad\xfe.service\n", NULL, 0, NULL);
        add_process(root, 10, "w", KSM_STAT(1, 0, 1, 10, "no", "yes"), "0::/\n", NULL, 0, NULL);
        struct ksm_accounting_options o = { .proc_dir = root, .page_size = 4096 };
        struct ksm_accounting a;
        cr_assert_eq(ksm_accounting_scan(&o, &a), 0);
        cr_expect(find_group(&a, KSM_GROUP_UNIT, "bad?.service"), "the unit's stray byte is replaced");
        for (size_t i = 0; i < a.n_processes; i++)
                if (a.processes[i].pid == 9)
                        cr_expect_str_eq(a.processes[i].comm, "??]0;pwn?", "comm has no escape sequence left");
        json_t *j = ksm_accounting_to_json(&a, 0);
        cr_expect(j, "JSON output does not fail on names that were not UTF-8");
        json_decref(j);
        ksm_accounting_free(&a);
        fixture_remove(root);
}

Test(accounting, rows_marshal_for_a_bus_method) {
        struct ksm_group g[] = {
                { .kind = KSM_GROUP_MACHINE, .name = "web", .pid = 7, .n_processes = 2, .profit_bytes = -5,
                  .merging_pages = 3, .zero_pages = 1, .rmap_items = 9, .mergeable_bytes = 8192, .merged_share = 0.5,
                  .mergeable_known = true },
                { .kind = KSM_GROUP_UNIT, .name = "a.service", .pid = 9, .n_processes = 1, .merged_share = NAN },
        };
        struct ksm_accounting a = { .page_size = 4096, .groups = g, .n_groups = 2 };
        int fds[2];
        sd_bus *bus = NULL;
        sd_bus_message *m = NULL;

        /* A message needs a started bus; one end of a socket pair is enough to build it. */
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        cr_assert_geq(sd_bus_new(&bus), 0);
        cr_assert_geq(sd_bus_set_fd(bus, fds[0], fds[0]), 0);
        cr_assert_geq(sd_bus_start(bus), 0);
        cr_assert_geq(sd_bus_message_new_method_call(bus, &m, "org.kata.KsmThrottler", "/", "x.y", "Z"), 0);
        cr_assert_geq(ksm_accounting_append_rows(m, &a, 0), 0, "the rows must marshal as a" KSM_ACCOUNTING_ROW_SIGNATURE);
        cr_assert_geq(sd_bus_message_seal(m, 1, 0), 0);
        cr_assert_geq(sd_bus_message_rewind(m, true), 0);
        cr_expect_str_eq(sd_bus_message_get_signature(m, true), "a(ssuuxttttd)");

        const char *kind, *name;
        uint32_t pid, n;
        int64_t profit;
        uint64_t merging, zero, rmap, mergeable;
        double share;
        cr_assert_geq(sd_bus_message_enter_container(m, 'a', KSM_ACCOUNTING_ROW_SIGNATURE), 0);
        cr_assert_eq(sd_bus_message_read(m, KSM_ACCOUNTING_ROW_SIGNATURE, &kind, &name, &pid, &n, &profit, &merging, &zero,
                                         &rmap, &mergeable, &share), 1);
        cr_expect(strcmp(kind, "machine") == 0 && strcmp(name, "web") == 0 && pid == 7 && n == 2 && profit == -5 &&
                  merging == 3 && zero == 1 && rmap == 9 && mergeable == 8192 && share == 0.5,
                  "the first row carries every figure");
        cr_assert_eq(sd_bus_message_read(m, KSM_ACCOUNTING_ROW_SIGNATURE, &kind, &name, &pid, &n, &profit, &merging, &zero,
                                         &rmap, &mergeable, &share), 1);
        cr_expect_eq(mergeable, UINT64_MAX, "an unknown mergeable size is UINT64_MAX, not 0");
        cr_expect_eq(share, -1.0, "an unknown share is -1, not NaN");
        sd_bus_message_unref(m);
        sd_bus_close_unref(bus); /* no flush: nobody reads the other end */
        close(fds[1]);
}
