/* SPDX-License-Identifier: Apache-2.0 */
/* The saved host values in the runtime directory: format, parse, and what a hostile
 * runtime directory must not make the daemon do (block, follow, restore a stranger's file). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "saved-state.h"
#include "test-files.h"

static char tmpdir[] = "/tmp/test-saved-state-XXXXXX";
static char rundir[PATH_MAX];    /* tmpdir/run, 0700 like systemd's RuntimeDirectoryMode= */
static char stderr_text[8192];   /* what the last capture logged */

static void setup(void) {
        test_mkdtemp(tmpdir);
        snprintf(rundir, sizeof rundir, "%s/run", tmpdir);
        cr_assert_eq(mkdir(rundir, 0700), 0);
}

static void teardown(void) {
        test_rm_rf(tmpdir);
}

/* Every test is bounded: a test that blocks in open() or read() fails instead of hanging. */
TestSuite(saved_state, .init = setup, .fini = teardown, .timeout = 10);

static const char *path_in(const char *dir, const char *name) {
        static char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        return path;
}

static struct saved_state sample_state(void) {
        struct saved_state s = {};
        ksm_settings_set(&s.host, KSM_KNOB_RUN, 0);
        ksm_settings_set(&s.host, KSM_KNOB_PAGES_TO_SCAN, 100);
        ksm_settings_set(&s.host, KSM_KNOB_SLEEP_MILLISECS, 20);
        ksm_settings_set(&s.written, KSM_KNOB_RUN, 1);
        ksm_settings_set(&s.written, KSM_KNOB_PAGES_TO_SCAN, 10000);
        ksm_settings_set(&s.written, KSM_KNOB_SLEEP_MILLISECS, 1);
        return s;
}

/* saved_state_load(rundir) with stderr captured into stderr_text. */
static int load_capturing(struct saved_state *ret) {
        struct stderr_capture capture;
        int r;

        stderr_capture_begin(&capture);
        r = saved_state_load(rundir, ret);
        stderr_capture_end(&capture, stderr_text, sizeof stderr_text);
        return r;
}

static void assert_logged(const char *text) {
        cr_assert_not_null(strstr(stderr_text, text), "expected a message with \"%s\", got:\n%s", text, stderr_text);
}

Test(saved_state, save_then_load_gives_the_same_values) {
        struct saved_state s = sample_state(), loaded;
        struct stat st;

        cr_assert_eq(saved_state_save(rundir, &s), 0);
        cr_assert_eq(stat(path_in(rundir, SAVED_STATE_FILE), &st), 0);
        cr_assert(S_ISREG(st.st_mode));
        cr_assert_eq(st.st_mode & 022, 0, "the saved file is writable by others: %o", st.st_mode);
        cr_assert_eq(load_capturing(&loaded), 0, "%s", stderr_text);
        cr_assert(ksm_settings_equal(&loaded.host, &s.host));
        cr_assert(ksm_settings_equal(&loaded.written, &s.written));
        cr_assert_eq(saved_state_remove(rundir), 0);
        cr_assert_eq(load_capturing(&loaded), -ENOENT);
}

Test(saved_state, nothing_saved_is_enoent_without_a_message) {
        struct saved_state loaded;
        cr_assert_eq(load_capturing(&loaded), -ENOENT);
        cr_assert_str_eq(stderr_text, "");
}

Test(saved_state, damaged_file_names_file_and_line) {
        struct saved_state loaded;
        test_write_file(path_in(rundir, SAVED_STATE_FILE), "run=0\npages_to_scan=lots\n", 0600);
        cr_assert_eq(load_capturing(&loaded), -EINVAL);
        assert_logged("host-settings:2:");
}

Test(saved_state, out_of_range_values_are_refused) {
        static const struct {
                const char *text;
                const char *message;
        } bad[] = {
                /* run=2 would unmerge everything, and the kernel knows no run above 2. */
                { "run=7\npages_to_scan=100\nsleep_millisecs=20\n", "host-settings:1:" },
                { "run=2\npages_to_scan=100\nsleep_millisecs=20\n", "host-settings:1:" },
                { "run=0\npages_to_scan=100\nsleep_millisecs=20\nwritten.run=9\n", "host-settings:4:" },
                { "run=0\npages_to_scan=4294967296\nsleep_millisecs=20\n", "host-settings:2:" },
                { "run=0\npages_to_scan=100\nsleep_millisecs=-1\n", "host-settings:3:" },
                /* smart_scan is a boolean in sysfs. */
                { "run=0\npages_to_scan=100\nsleep_millisecs=20\nsmart_scan=2\n", "host-settings:4:" },
                { "run=0\npages_to_scan=100\nsleep_millisecs=20\npending.smart_scan=9\n", "host-settings:4:" },
                { "run=0\npages_to_scan=100\nsleep_millisecs=20\nuse_zero_pages=3\n", "host-settings:4:" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct saved_state loaded;
                test_write_file(path_in(rundir, SAVED_STATE_FILE), bad[i].text, 0600);
                cr_assert_eq(load_capturing(&loaded), -EINVAL, "case %zu accepted:\n%s", i, bad[i].text);
                assert_logged(bad[i].message);
        }
}

Test(saved_state, oversized_file_is_refused_not_cut) {
        char text[2048];
        struct saved_state loaded;
        size_t len;

        /* Padded with blank lines so that the 1023rd byte falls inside "10000". */
        len = (size_t) snprintf(text, sizeof text, "run=0\nsleep_millisecs=20\n");
        memset(text + len, '\n', 1021 - len - strlen("pages_to_scan="));
        len = 1021 - strlen("pages_to_scan=");
        snprintf(text + len, sizeof text - len, "pages_to_scan=10000\n");
        test_write_file(path_in(rundir, SAVED_STATE_FILE), text, 0600);
        cr_assert_eq(load_capturing(&loaded), -EFBIG, "a file of %zu bytes was accepted (pages_to_scan=%u)", strlen(text),
                     loaded.host.value[KSM_KNOB_PAGES_TO_SCAN]);
        assert_logged("too large");
}

Test(saved_state, directory_of_another_user_is_refused) {
        struct saved_state loaded;
        test_write_file(path_in(rundir, SAVED_STATE_FILE), "run=1\npages_to_scan=4294967295\nsleep_millisecs=0\n", 0600);
        cr_assert_eq(chown(path_in(rundir, SAVED_STATE_FILE), 65534, 65534), 0);
        cr_assert_eq(chown(rundir, 65534, 65534), 0);
        cr_assert_eq(load_capturing(&loaded), -EPERM, "another user's file was loaded");
        assert_logged("owned by");
        assert_logged(rundir);
}

Test(saved_state, file_of_another_user_is_refused) {
        struct saved_state loaded;
        test_write_file(path_in(rundir, SAVED_STATE_FILE), "run=1\npages_to_scan=4294967295\nsleep_millisecs=0\n", 0600);
        cr_assert_eq(chown(path_in(rundir, SAVED_STATE_FILE), 65534, 65534), 0);
        cr_assert_eq(load_capturing(&loaded), -EPERM, "another user's file was loaded");
        assert_logged("owned by");
}

Test(saved_state, directory_writable_by_others_is_refused) {
        struct saved_state loaded, s = sample_state();
        test_write_file(path_in(rundir, SAVED_STATE_FILE), "run=0\npages_to_scan=100\nsleep_millisecs=20\n", 0600);
        cr_assert_eq(chmod(rundir, 0777), 0);
        cr_assert_eq(load_capturing(&loaded), -EPERM);
        assert_logged("writable");
        cr_assert_lt(saved_state_save(rundir, &s), 0, "saved into a world-writable directory");
}

Test(saved_state, symlinked_directory_is_not_followed) {
        char link[PATH_MAX - 64];
        struct saved_state loaded, s = sample_state();

        test_write_file(path_in(rundir, SAVED_STATE_FILE), "run=0\npages_to_scan=100\nsleep_millisecs=20\n", 0600);
        snprintf(link, sizeof link, "%.64s/link", tmpdir);
        cr_assert_eq(symlink(rundir, link), 0);
        snprintf(rundir, sizeof rundir, "%s", link);
        cr_assert_lt(load_capturing(&loaded), 0, "loaded through a symlink");
        assert_logged(link);
        cr_assert_lt(saved_state_save(link, &s), 0, "saved through a symlink");
}

Test(saved_state, fifo_as_saved_file_does_not_block_load) {
        struct saved_state loaded;
        cr_assert_eq(mkfifo(path_in(rundir, SAVED_STATE_FILE), 0600), 0);
        cr_assert_lt(load_capturing(&loaded), 0);
        assert_logged("not a regular file");
}

Test(saved_state, fifo_as_temporary_file_does_not_block_save) {
        struct saved_state s = sample_state(), loaded;
        cr_assert_eq(mkfifo(path_in(rundir, SAVED_STATE_FILE ".tmp"), 0600), 0);
        /* A stale entry of ours is replaced by a fresh regular file. */
        cr_assert_eq(saved_state_save(rundir, &s), 0);
        cr_assert_eq(load_capturing(&loaded), 0, "%s", stderr_text);
        cr_assert(ksm_settings_equal(&loaded.host, &s.host));
}

Test(saved_state, symlinked_file_is_not_followed) {
        struct saved_state loaded;
        char target[PATH_MAX + 16];
        snprintf(target, sizeof target, "%s/elsewhere", tmpdir);
        test_write_file(target, "run=0\npages_to_scan=100\nsleep_millisecs=20\n", 0600);
        cr_assert_eq(symlink(target, path_in(rundir, SAVED_STATE_FILE)), 0);
        cr_assert_lt(load_capturing(&loaded), 0);
        assert_logged(SAVED_STATE_FILE);
}

Test(saved_state, intent_round_trips_with_written_and_pending_values) {
        struct saved_state s = sample_state(), loaded;
        char text[1024];

        ksm_settings_set(&s.host, KSM_KNOB_ADVISOR_MODE, KSM_ADVISOR_SCAN_TIME);
        ksm_settings_set(&s.written, KSM_KNOB_ADVISOR_MODE, KSM_ADVISOR_NONE);
        ksm_settings_set(&s.pending, KSM_KNOB_RUN, 1);
        ksm_settings_set(&s.pending, KSM_KNOB_PAGES_TO_SCAN, 1000);
        ksm_settings_set(&s.pending, KSM_KNOB_SLEEP_MILLISECS, 10);
        ksm_settings_set(&s.host, KSM_KNOB_SMART_SCAN, 1);
        ksm_settings_set(&s.written, KSM_KNOB_SMART_SCAN, 1);
        ksm_settings_set(&s.pending, KSM_KNOB_SMART_SCAN, 0);
        cr_assert_gt(saved_state_format(&s, text, sizeof text), 0);
        cr_assert_not_null(strstr(text, "\nsmart_scan=1\n"), "the host's smart_scan is not saved:\n%s", text);
        cr_assert_not_null(strstr(text, "pending.smart_scan=0\n"), "%s", text);
        cr_assert_not_null(strstr(text, "pending.pages_to_scan=1000\n"), "%s", text);
        cr_assert_not_null(strstr(text, "written.advisor_mode=none\n"), "%s", text);
        cr_assert_not_null(strstr(text, "advisor_mode=scan-time\n"), "%s", text);
        cr_assert_eq(saved_state_parse(text, "test", &loaded), 0);
        cr_assert(ksm_settings_equal(&loaded.host, &s.host));
        cr_assert(ksm_settings_equal(&loaded.written, &s.written));
        cr_assert(ksm_settings_equal(&loaded.pending, &s.pending));

        /* The largest state the daemon writes fits the size limit with room to spare. */
        cr_assert_lt(strlen(text), SAVED_STATE_SIZE_MAX / 2);
}

Test(saved_state, a_host_run_of_2_read_at_the_kick_may_be_recorded_as_written) {
        struct saved_state loaded;
        /* The host's run=2 is restored as 0, but sysfs did hold 2 before the first write. */
        cr_assert_eq(saved_state_parse("run=0\npages_to_scan=100\nsleep_millisecs=20\nwritten.run=2\npending.run=1\n", "test",
                                       &loaded),
                     0);
        cr_assert_eq(loaded.written.value[KSM_KNOB_RUN], 2);
        cr_assert_eq(loaded.pending.value[KSM_KNOB_RUN], 1);
}

Test(saved_state, exists_tells_a_record_or_anything_in_its_place_from_none) {
        struct saved_state state = sample_state();

        cr_assert_not(saved_state_exists(rundir), "an empty directory holds no record");
        cr_assert_eq(saved_state_save(rundir, &state), 0);
        cr_assert(saved_state_exists(rundir), "a saved record should be found");
        cr_assert_eq(saved_state_remove(rundir), 0);
        cr_assert_not(saved_state_exists(rundir), "a removed record should be gone");
        /* A dangling link in its place is not "nothing": loading it says what is wrong. */
        cr_assert_eq(symlink("/nonexistent", path_in(rundir, SAVED_STATE_FILE)), 0);
        cr_assert(saved_state_exists(rundir), "a link in the record's place must not count as no record");
}
