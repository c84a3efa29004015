/* SPDX-License-Identifier: Apache-2.0 */
/* trigger.conf and its drop-ins: defaults, keys, file:line errors, and the pressure
 * spec and file parsers. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "parse-util.h"
#include "source-pressure.h"
#include "trigger-config.h"
#include "test-files.h"

static char dir[] = "/tmp/ksm-trigger-config.XXXXXX";
static char path[sizeof dir + 32];

static void setup(void) {
        test_mkdtemp(dir);
        snprintf(path, sizeof path, "%s/trigger.conf", dir);
        cr_redirect_stderr();
}

static void teardown(void) {
        test_rm_rf(dir);
}

static void write_text(const char *file, const char *text) {
        test_write_file(file, text, 0644);
}

TestSuite(trigger_config, .init = setup, .fini = teardown);

Test(trigger_config, defaults_are_what_a_kata_or_libvirt_host_needs) {
        struct trigger_config c;
        char buf[256];
        cr_assert_eq(trigger_config_init(&c), 0);
        cr_assert_eq(trigger_config_load(&c, path, false), 0, "a missing optional file leaves the defaults");
        cr_assert_eq(c.n_watch, 2);
        cr_assert_str_eq(c.watch[0], "/run/vc/sbs");
        cr_assert_str_eq(c.watch[1], "/run/kata");
        cr_assert(c.machined);
        cr_assert_str_eq(name_patterns_format(&c.hypervisors, buf, sizeof buf),
                         "qemu-system-*,qemu-kvm,cloud-hypervisor,firecracker,crosvm");
        cr_assert(c.pressure.enabled);
        cr_assert_eq(c.debounce_usec, USEC_PER_SEC);
        cr_assert_str_eq(c.pressure_file, "/proc/pressure/memory");
        trigger_config_done(&c);
}

Test(trigger_config, every_key_is_read) {
        struct trigger_config c;
        write_text(path, "[Trigger]\nWatch=\nWatch=/srv//sandboxes/\nWatch=/run/other\nWatch=/run/other/\nMachined=no\n"
                         "Hypervisors=firecracker\nPressure=full 200000 2000000\nPressureFile=/sys/fs/cgroup/memory.pressure\n"
                         "PressureIntervalSec=500ms\nDebounceSec=2s\nLogLevel=debug\n");
        cr_assert_eq(trigger_config_init(&c), 0);
        cr_assert_eq(trigger_config_load(&c, path, true), 0);
        cr_assert_eq(c.n_watch, 2, "Watch= with no value clears the defaults; a directory spelt twice counts once");
        cr_assert_str_eq(c.watch[0], "/srv/sandboxes", "doubled and trailing slashes are dropped");
        cr_assert_not(c.machined);
        cr_assert_eq(c.hypervisors.n, 1);
        cr_assert(c.pressure.full);
        cr_assert_eq(c.pressure.stall_usec, 200000);
        cr_assert_str_eq(c.pressure_file, "/sys/fs/cgroup/memory.pressure");
        cr_assert_eq(c.pressure_interval_usec, 500 * USEC_PER_MSEC);
        cr_assert_eq(c.debounce_usec, 2 * USEC_PER_SEC);
        cr_assert_eq(c.log_level, LOG_DEBUG);
        trigger_config_done(&c);
}

Test(trigger_config, dropins_apply_in_order_after_the_file) {
        struct trigger_config c;
        char dropins[sizeof path + 8], file[sizeof path + 32];
        write_text(path, "[Trigger]\nDebounceSec=5s\n");
        snprintf(dropins, sizeof dropins, "%s.d", path);
        cr_assert_eq(mkdir(dropins, 0755), 0);
        snprintf(file, sizeof file, "%s/20-b.conf", dropins);
        write_text(file, "[Trigger]\nDebounceSec=3s\n");
        snprintf(file, sizeof file, "%s/10-a.conf", dropins);
        write_text(file, "[Trigger]\nDebounceSec=4s\nHypervisors=\n");
        snprintf(file, sizeof file, "%s/30-c.conf.disabled", dropins);
        write_text(file, "[Trigger]\nDebounceSec=9s\n");
        cr_assert_eq(trigger_config_init(&c), 0);
        cr_assert_eq(trigger_config_load(&c, path, true), 0);
        cr_assert_eq(c.debounce_usec, 3 * USEC_PER_SEC, "20-b.conf comes last; files not ending in .conf are skipped");
        cr_assert_eq(c.hypervisors.n, 0, "Hypervisors= with no value turns the process source off");
        trigger_config_done(&c);
}

Test(trigger_config, invalid_values_name_file_and_line_and_keep_the_old_config) {
        struct trigger_config c;
        char log[4096] = "";
        write_text(path, "[Trigger]\nDebounceSec=2s\n\nDebounceSec=soon\nWatch=relative/dir\nPressure=some 10 100\n");
        cr_assert_eq(trigger_config_init(&c), 0);
        cr_assert_eq(trigger_config_load(&c, path, true), -EINVAL);
        cr_assert_eq(c.debounce_usec, USEC_PER_SEC, "a rejected file changes nothing");
        trigger_config_done(&c);
        fflush(stderr);
        FILE *f = cr_get_redirected_stderr();
        fread(log, 1, sizeof log - 1, f);
        char want[sizeof path + 64];
        snprintf(want, sizeof want, "%s:4: invalid value \"soon\" for DebounceSec", path);
        cr_assert(strstr(log, want), "expected \"%s\" in:\n%s", want, log);
        snprintf(want, sizeof want, "%s:5: invalid value \"relative/dir\" for Watch", path);
        cr_assert(strstr(log, want), "expected \"%s\" in:\n%s", want, log);
        snprintf(want, sizeof want, "%s:6: invalid value \"some 10 100\" for Pressure", path);
        cr_assert(strstr(log, want), "expected \"%s\" in:\n%s", want, log);
}

Test(trigger_config, unknown_keys_warn_with_file_and_line) {
        struct trigger_config c;
        char log[4096] = "";
        write_text(path, "[Trigger]\nWatchh=/x\n[Other]\nA=1\n");
        cr_assert_eq(trigger_config_init(&c), 0);
        cr_assert_eq(trigger_config_load(&c, path, true), 0, "unknown keys are warnings, not errors");
        trigger_config_done(&c);
        fflush(stderr);
        fread(log, 1, sizeof log - 1, cr_get_redirected_stderr());
        cr_assert(strstr(log, ":2: unknown key Watchh in [Trigger]"), "%s", log);
        cr_assert(strstr(log, ":4: unknown section [Other]"), "%s", log);
}

Test(trigger_config, too_many_directories) {
        struct trigger_config c;
        char text[16384] = "[Trigger]\nWatch=\n";
        for (int i = 0; i <= TRIGGER_WATCH_MAX; i++)
                snprintf(text + strlen(text), sizeof text - strlen(text), "Watch=/run/d%d\n", i);
        write_text(path, text);
        cr_assert_eq(trigger_config_init(&c), 0);
        cr_assert_eq(trigger_config_load(&c, path, true), -EINVAL, "more than %d directories is an error", TRIGGER_WATCH_MAX);
        trigger_config_done(&c);
}

Test(trigger_config, every_key_has_an_option) {
        for (const struct trigger_key *k = trigger_keys; k->key; k++) {
                cr_assert_not_null(k->option, "%s has no option", k->key);
                cr_assert_eq(trigger_key_by_option(k->option), k);
        }
}

Test(pressure, spec) {
        struct pressure_spec s;
        cr_assert_eq(pressure_spec_parse("some 150000 1000000", &s), 0);
        cr_assert(s.enabled);
        cr_assert_not(s.full);
        cr_assert_float_eq(pressure_spec_threshold(&s), 15.0, 1e-9, "150 ms of 1 s is 15 %%");
        cr_assert_eq(pressure_spec_parse("no", &s), 0);
        cr_assert_not(s.enabled);
        const char *bad[] = { "some", "some 1", "half 1 1000000", "some 0 1000000", "some 2000000 1000000",
                              "some 100 400000", "some 100 20000000", "some -1 1000000", "some 1 1000000 x", "yes" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                cr_assert_lt(pressure_spec_parse(bad[i], &s), 0, "\"%s\" should be refused", bad[i]);
}

Test(pressure, avg10) {
        const char *text = "some avg10=12.50 avg60=1.00 avg300=0.10 total=12345\n"
                           "full avg10=3.25 avg60=0.00 avg300=0.00 total=100\n";
        double v;
        cr_assert_eq(pressure_parse_avg10(text, false, &v), 0);
        cr_assert_float_eq(v, 12.5, 1e-9);
        cr_assert_eq(pressure_parse_avg10(text, true, &v), 0);
        cr_assert_float_eq(v, 3.25, 1e-9);
        cr_assert_eq(pressure_parse_avg10("full avg10=1.00 avg60=0 avg300=0 total=0\n", false, &v), -ENOENT);
        cr_assert_eq(pressure_parse_avg10("some avg10=abc avg60=0\n", false, &v), -EINVAL);
        cr_assert_eq(pressure_parse_avg10("some avg10=250.00 avg60=0\n", false, &v), -EINVAL, "over 100 %% is not a share");
        cr_assert_eq(pressure_parse_avg10("some avg60=1.00\nfull avg10=1.00\n", false, &v), -EINVAL,
                     "avg10 must be on the some line");
}

static void read_stderr(char *log, size_t size) {
        fflush(stderr);
        FILE *f = cr_get_redirected_stderr();
        size_t n = fread(log, 1, size - 1, f);
        log[n] = '\0';
}

Test(trigger_config, config_naming_a_directory_is_refused) {
        struct trigger_config c;
        char log[4096];
        char want[sizeof path + 128];
        cr_assert_eq(mkdir(path, 0755), 0);
        cr_assert_eq(trigger_config_init(&c), 0);
        cr_assert_eq(trigger_config_load(&c, path, true), -EINVAL, "a directory was read as an empty file");
        /* Also when the file is optional: a directory there is a mistake, not an absence. */
        cr_assert_eq(trigger_config_load(&c, path, false), -EINVAL, "an optional directory was read as an empty file");
        trigger_config_done(&c);
        read_stderr(log, sizeof log);
        snprintf(want, sizeof want, "Cannot read configuration file %s: %s", path, strerror(EISDIR));
        cr_assert(strstr(log, want), "expected \"%s\" in:\n%s", want, log);
}

Test(trigger_config, dropin_whose_read_fails_is_an_error_naming_file_and_errno) {
        struct trigger_config c;
        char log[4096], dropin_dir[sizeof path + 8], dropin[sizeof path + 64];
        char want[sizeof dropin + 128];
        write_text(path, "[Trigger]\nDebounceSec=2s\n");
        snprintf(dropin_dir, sizeof dropin_dir, "%s.d", path);
        cr_assert_eq(mkdir(dropin_dir, 0755), 0);
        /* Reading /proc/self/mem at offset 0 fails with EIO, as a failing disk would. */
        snprintf(dropin, sizeof dropin, "%s/50-unreadable.conf", dropin_dir);
        cr_assert_eq(symlink("/proc/self/mem", dropin), 0);

        cr_assert_eq(trigger_config_init(&c), 0);
        cr_assert_eq(trigger_config_load(&c, path, true), -EINVAL, "an unreadable drop-in was taken as empty");
        cr_assert_eq(c.debounce_usec, USEC_PER_SEC, "a configuration with an unreadable drop-in changed the settings");
        trigger_config_done(&c);
        read_stderr(log, sizeof log);
        snprintf(want, sizeof want, "Cannot read configuration file %s (after line 0): %s", dropin, strerror(EIO));
        cr_assert(strstr(log, want), "expected \"%s\" in:\n%s", want, log);
}

Test(trigger_config, dev_null_is_an_empty_configuration) {
        struct trigger_config c;
        cr_assert_eq(trigger_config_init(&c), 0);
        cr_assert_eq(trigger_config_load(&c, "/dev/null", true), 0, "--config=/dev/null must mean no configuration");
        cr_assert_eq(c.debounce_usec, USEC_PER_SEC, "/dev/null changed a setting");
        trigger_config_done(&c);
}
