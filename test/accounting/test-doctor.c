/* SPDX-License-Identifier: Apache-2.0 */
/* The doctor's checks on fake sysfs trees and hand-made accounting results. */
#include "fixture.h"
#include "ksm-doctor.h"

struct tree {
        char *root;
        char ksm[4200], thp[4200], node[4200];
};

static void make_tree(struct tree *t, const char *run, const char *zero, const char *across, const char *thp,
                      const char *nodes) {
        t->root = fixture_dir();
        snprintf(t->ksm, sizeof(t->ksm), "%s/ksm", t->root);
        snprintf(t->thp, sizeof(t->thp), "%s/thp", t->root);
        snprintf(t->node, sizeof(t->node), "%s/node", t->root);
        fixture_write(t->root, "ksm/run", run);
        fixture_write(t->root, "ksm/use_zero_pages", zero);
        fixture_write(t->root, "ksm/merge_across_nodes", across);
        fixture_write(t->root, "ksm/advisor_mode", "[none] scan-time\n");
        fixture_write(t->root, "thp/enabled", thp);
        fixture_write(t->root, "node/has_memory", nodes);
}

static const struct ksm_finding *find(const struct ksm_doctor_report *r, const char *check, size_t nth) {
        for (size_t i = 0; i < r->n_findings; i++)
                if (strcmp(r->findings[i].check, check) == 0 && nth-- == 0)
                        return &r->findings[i];
        return NULL;
}

static struct ksm_process vm(pid_t pid, const char *comm, enum ksm_group_kind kind, const char *group, uint64_t mergeable,
                             uint64_t shared, uid_t uid) {
        struct ksm_process p = {
                .pid = pid, .uid = uid, .hypervisor = true, .kind = kind, .mergeable = mergeable > 0,
                .mergeable_source = KSM_MERGEABLE_SMAPS, .mergeable_bytes = mergeable, .shared_writable_bytes = shared,
        };
        snprintf(p.comm, sizeof(p.comm), "%s", comm);
        snprintf(p.group, sizeof(p.group), "%s", group);
        return p;
}

#define MiB (1024ull * 1024)

Test(doctor, a_vm_with_shared_guest_ram_is_named_and_fails) {
        struct tree t;
        make_tree(&t, "1\n", "1\n", "1\n", "always [madvise] never\n", "0\n");
        struct ksm_process procs[] = {
                vm(10, "qemu-system-x86", KSM_GROUP_MACHINE, "good-vm", 2048 * MiB, 1 * MiB, 0),
                vm(20, "qemu-system-x86", KSM_GROUP_MACHINE, "vfs-vm", 0, 4096 * MiB, 0),
        };
        struct ksm_group groups[] = {
                { .kind = KSM_GROUP_MACHINE, .name = "good-vm", .mergeable_bytes = 2048 * MiB, .merging_pages = 9 },
                { .kind = KSM_GROUP_MACHINE, .name = "vfs-vm" },
        };
        struct ksm_accounting a = { .page_size = 4096, .processes = procs, .n_processes = 2, .groups = groups, .n_groups = 2 };
        struct ksm_doctor_input in = { .ksm_dir = t.ksm, .thp_dir = t.thp, .node_dir = t.node, .accounting = &a,
                                       .throttler_state = "aggressive" };
        struct ksm_doctor_report r;
        ksm_doctor_run(&in, &r);

        const struct ksm_finding *f = find(&r, "guest_ram", 0);
        cr_assert(f, "the guest_ram check must report the VM with shared guest RAM");
        cr_expect_eq(f->verdict, KSM_VERDICT_FAIL);
        cr_expect(strstr(f->sentence, "vfs-vm"), "the sentence names the VM: %s", f->sentence);
        cr_expect(strstr(f->sentence, "MAP_SHARED"), "the sentence says why: %s", f->sentence);
        cr_expect(!strstr(f->sentence, "good-vm"));
        cr_expect(!find(&r, "guest_ram", 1), "the VM whose RAM is mergeable is not reported");
        cr_expect_eq(ksm_doctor_worst(&r), KSM_VERDICT_FAIL, "a VM that can never merge makes the verdict fail");

        cr_expect_eq(find(&r, "run", 0)->verdict, KSM_VERDICT_OK);
        cr_expect_eq(find(&r, "numa", 0)->verdict, KSM_VERDICT_OK, "one node: merge_across_nodes does not matter");
        cr_expect_eq(find(&r, "thp", 0)->verdict, KSM_VERDICT_OK);
        cr_expect_eq(find(&r, "use_zero_pages", 0)->verdict, KSM_VERDICT_OK);
        cr_expect_eq(find(&r, "throttler", 0)->verdict, KSM_VERDICT_OK);
        fixture_remove(t.root);
}

Test(doctor, two_machines_warn_about_trust_domains) {
        struct tree t;
        make_tree(&t, "1\n", "0\n", "1\n", "[always] madvise never\n", "0-1\n");
        struct ksm_process procs[] = {
                vm(10, "qemu-system-x86", KSM_GROUP_MACHINE, "tenant-a", 512 * MiB, 0, 107),
                vm(20, "qemu-system-x86", KSM_GROUP_MACHINE, "tenant-b", 512 * MiB, 0, 107),
        };
        struct ksm_group groups[] = {
                { .kind = KSM_GROUP_MACHINE, .name = "tenant-a", .mergeable_bytes = 512 * MiB },
                { .kind = KSM_GROUP_MACHINE, .name = "tenant-b", .mergeable_bytes = 512 * MiB },
        };
        struct ksm_accounting a = { .page_size = 4096, .processes = procs, .n_processes = 2, .groups = groups, .n_groups = 2 };
        struct ksm_doctor_input in = { .ksm_dir = t.ksm, .thp_dir = t.thp, .node_dir = t.node, .accounting = &a };
        struct ksm_doctor_report r;
        ksm_doctor_run(&in, &r);

        const struct ksm_finding *f = find(&r, "trust_domains", 0);
        cr_assert(f);
        cr_expect_eq(f->verdict, KSM_VERDICT_WARN);
        cr_expect(strstr(f->sentence, "tenant-a") && strstr(f->sentence, "tenant-b"), "names the machines: %s", f->sentence);
        cr_expect(strstr(f->sentence, "side channel"), "says what the risk is: %s", f->sentence);
        cr_expect(strstr(f->sentence, "Documentation/admin-guide/mm/ksm.rst"), "points to the kernel documentation");

        cr_expect_eq(find(&r, "numa", 0)->verdict, KSM_VERDICT_WARN, "two nodes with merge_across_nodes=1 warn");
        cr_expect_eq(find(&r, "thp", 0)->verdict, KSM_VERDICT_WARN, "THP always works against KSM");
        cr_expect_eq(find(&r, "use_zero_pages", 0)->verdict, KSM_VERDICT_INFO);
        cr_expect_eq(find(&r, "throttler", 0)->verdict, KSM_VERDICT_WARN, "no daemon state was given: it did not answer");
        cr_expect_eq(find(&r, "guest_ram", 0)->verdict, KSM_VERDICT_OK);
        cr_expect_eq(ksm_doctor_worst(&r), KSM_VERDICT_WARN);
        fixture_remove(t.root);
}

/* During a cycle use_zero_pages in sysfs is the throttler's (UseZeroPages=): the advice
 * is about the host's own, from InitialSettings, and the sentence says which is which. */
Test(doctor, use_zero_pages_during_a_cycle_is_judged_by_the_hosts_value) {
        struct tree t;
        make_tree(&t, "1\n", "1\n", "1\n", "always [madvise] never\n", "0\n");
        struct ksm_accounting a = { .page_size = 4096 };
        struct ksm_doctor_input in = { .ksm_dir = t.ksm, .thp_dir = t.thp, .node_dir = t.node, .accounting = &a,
                                       .throttler_state = "aggressive", .has_host_use_zero_pages = true,
                                       .host_use_zero_pages = 0 };
        struct ksm_doctor_report r;
        ksm_doctor_run(&in, &r);
        const struct ksm_finding *f = find(&r, "use_zero_pages", 0);
        cr_assert(f);
        cr_expect_eq(f->verdict, KSM_VERDICT_INFO, "the host's use_zero_pages=0 is what to advise on, not the cycle's 1: %s",
                     f->sentence);
        cr_expect(strstr(f->sentence, "use_zero_pages=0 (the host's") && strstr(f->sentence, "holds use_zero_pages=1"),
                  "the sentence tells the host's value from the throttler's: %s", f->sentence);

        /* The same value in both: nothing to tell apart. */
        in.host_use_zero_pages = 1;
        ksm_doctor_run(&in, &r);
        f = find(&r, "use_zero_pages", 0);
        cr_assert(f);
        cr_expect_eq(f->verdict, KSM_VERDICT_OK);
        cr_expect(!strstr(f->sentence, "the host's"), "%s", f->sentence);
        fixture_remove(t.root);
}

Test(doctor, no_mergeable_memory_fails_and_stopped_ksmd_in_initial_is_info) {
        struct tree t;
        make_tree(&t, "0\n", "0\n", "1\n", "never\n", "0\n");
        struct ksm_accounting a = { .page_size = 4096 };
        struct ksm_doctor_input in = { .ksm_dir = t.ksm, .thp_dir = t.thp, .node_dir = t.node, .accounting = &a,
                                       .throttler_state = "initial" };
        struct ksm_doctor_report r;
        ksm_doctor_run(&in, &r);
        cr_expect_eq(find(&r, "mergeable", 0)->verdict, KSM_VERDICT_FAIL, "nothing to merge is the first reason");
        cr_expect(strstr(find(&r, "mergeable", 0)->sentence, "MADV_MERGEABLE"), "says how to make memory mergeable");
        cr_expect_eq(find(&r, "run", 0)->verdict, KSM_VERDICT_INFO, "run=0 in initial is the host's own choice");
        fixture_remove(t.root);
}

Test(doctor, without_ksm_the_knob_checks_stay_silent) {
        struct ksm_accounting a = { .page_size = 4096 };
        struct ksm_doctor_input in = { .ksm_dir = "/nonexistent/ksm", .thp_dir = "/nonexistent/thp",
                                       .node_dir = "/nonexistent/node", .accounting = &a };
        struct ksm_doctor_report r;
        ksm_doctor_run(&in, &r);
        const struct ksm_finding *f = find(&r, "ksm", 0);
        cr_assert(f);
        cr_expect_eq(f->verdict, KSM_VERDICT_FAIL);
        cr_expect(strstr(f->sentence, "CONFIG_KSM"), "%s", f->sentence);
        cr_expect(!find(&r, "run", 0) && !find(&r, "use_zero_pages", 0), "no knob checks without KSM");
}

Test(doctor, json_carries_verdicts_and_fields) {
        struct tree t;
        make_tree(&t, "2\n", "1\n", "0\n", "never\n", "0\n");
        struct ksm_accounting a = { .page_size = 4096 };
        struct ksm_doctor_input in = { .ksm_dir = t.ksm, .thp_dir = t.thp, .node_dir = t.node, .accounting = &a,
                                       .throttler_state = "slow" };
        struct ksm_doctor_report r;
        ksm_doctor_run(&in, &r);
        json_t *j = ksm_doctor_to_json(&r);
        cr_assert(j);
        char *buf = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        cr_expect(strncmp(buf, "{\"verdict\":\"fail\",", 18) == 0, "the overall verdict leads: %s", buf);
        cr_expect(strstr(buf, "{\"check\":\"run\",\"verdict\":\"fail\",\"message\":\"run=2:"), "%s", buf);
        cr_expect(strstr(buf, "\"run\":2}"), "the knob value is a JSON field: %s", buf);
        cr_expect(strstr(buf, "\"state\":\"slow\""), "%s", buf);
        free(buf);
        fixture_remove(t.root);
}

Test(doctor, unreadable_maps_and_old_kernels_are_said_so) {
        struct tree t;
        make_tree(&t, "1\n", "1\n", "1\n", "never\n", "0\n");
        struct ksm_process procs[] = { vm(10, "firecracker", KSM_GROUP_PROCESS, "firecracker[10]", 0, 0, 0) };
        procs[0].mergeable_source = KSM_MERGEABLE_NONE;
        struct ksm_accounting a = { .page_size = 4096, .processes = procs, .n_processes = 1 };
        struct ksm_doctor_input in = { .ksm_dir = t.ksm, .thp_dir = t.thp, .node_dir = t.node, .accounting = &a,
                                       .throttler_state = "initial" };
        struct ksm_doctor_report r;
        ksm_doctor_run(&in, &r);
        const struct ksm_finding *f = find(&r, "guest_ram", 0);
        cr_assert(f);
        cr_expect_eq(f->verdict, KSM_VERDICT_INFO, "a VM whose maps could not be read is unknown, not ok or failed");
        cr_expect(strstr(f->sentence, "could not be read"), "%s", f->sentence);
        cr_expect(!find(&r, "guest_ram", 1), "no 'ok' when nothing could be checked");

        struct ksm_accounting old = { .page_size = 4096, .ksm_stat_missing = true };
        in.accounting = &old;
        ksm_doctor_run(&in, &r);
        f = find(&r, "mergeable", 0);
        cr_assert(f);
        cr_expect_eq(f->verdict, KSM_VERDICT_INFO, "without ksm_stat the doctor cannot tell, and says so");
        cr_expect(strstr(f->sentence, "6.1"), "%s", f->sentence);

        in.accounting = NULL;
        in.accounting_error = -EACCES;
        ksm_doctor_run(&in, &r);
        f = find(&r, "mergeable", 0);
        cr_assert(f);
        cr_expect_eq(f->verdict, KSM_VERDICT_WARN);
        cr_expect(strstr(f->sentence, strerror(EACCES)), "the scan's error is in the sentence: %s", f->sentence);
        fixture_remove(t.root);
}

Test(doctor, a_vm_whose_guest_ram_is_not_marked_mergeable_fails) {
        struct tree t;
        make_tree(&t, "1\n", "1\n", "1\n", "never\n", "0\n");
        struct ksm_process procs[] = {
                vm(30, "qemu-system-x86", KSM_GROUP_MACHINE, "nosharepages-vm", 0, 0, 0),
                vm(31, "qemu-system-x86", KSM_GROUP_MACHINE, "small-vm", 0, 0, 0),
        };
        procs[0].private_writable_bytes = 2048 * MiB;
        procs[1].private_writable_bytes = 8 * MiB; /* a helper, not guest RAM */
        struct ksm_accounting a = { .page_size = 4096, .processes = procs, .n_processes = 2 };
        struct ksm_doctor_input in = { .ksm_dir = t.ksm, .thp_dir = t.thp, .node_dir = t.node, .accounting = &a,
                                       .throttler_state = "initial" };
        struct ksm_doctor_report r;
        ksm_doctor_run(&in, &r);
        const struct ksm_finding *f = find(&r, "guest_ram", 0);
        cr_assert(f);
        cr_expect_eq(f->verdict, KSM_VERDICT_FAIL);
        cr_expect(strstr(f->sentence, "nosharepages-vm") && strstr(f->sentence, "mem-merge"),
                  "names the VM and how to mark its RAM: %s", f->sentence);
        cr_expect(!find(&r, "guest_ram", 1), "the VM with 8 MiB of private memory is not reported");
        fixture_remove(t.root);
}
