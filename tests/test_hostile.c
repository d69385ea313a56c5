/*
 * test_hostile.c - what a hostile neighbour or a full disk can do to the
 * files of a map (issue 16, items 2, 8, 9 and 11): FIFOs planted under the
 * map's file names, a creation that runs out of space, siblings recreated
 * by another opener, TTLs at the edge of time.  Every test is bounded by
 * the watchdog, and an open that would hang on a FIFO runs in a forked
 * child that is killed after a deadline.
 */
#include "config.h"

#include "tests/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OPEN_DEADLINE_MS 5000u

/* Wall-clock ms, as the library's expiry times (tu_now_ms is monotonic). */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct open_job {
    const char *dir;
    uint32_t flags;
};

/* Child: open and close; the exit code says what hmm_open returned. */
static int open_in_child(void *arg)
{
    const struct open_job *j = arg;
    hmm_config cfg = {.size = 1 << 20, .flags = j->flags};
    hmm_t *m;
    int rc = hmm_open(&m, j->dir, &cfg);
    hmm_close(m);
    return rc == 0 ? 0 : rc == -EINVAL ? 1 : 2;
}

/* hmm_open in a child that must finish within the deadline: its exit code
 * (a hang is killed and fails the test). */
static int open_bounded(const char *dir, uint32_t flags)
{
    struct open_job j = {dir, flags};
    int status = tu_wait(tu_fork(open_in_child, &j), OPEN_DEADLINE_MS);
    if (WIFSIGNALED(status))
        fail_msg("hmm_open on %s was killed by signal %d (hung on a FIFO?)", dir, WTERMSIG(status));
    return tu_exit_code(status);
}

static void plant_fifo(const char *dir, const char *name)
{
    char path[4200];
    tu_path(path, sizeof path, dir, name);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
}

static bool is_regular(const char *dir, const char *name)
{
    char path[4200];
    struct stat st;
    tu_path(path, sizeof path, dir, name);
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Names in dir other than the map's three files. */
static int count_strays(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "hashmmap.map") &&
            strcmp(e->d_name, "hashmmap.metrics") && strcmp(e->d_name, "hashmmap.replog"))
            n++;
    closedir(d);
    return n;
}

/* ---- item 8: FIFOs ---- */

static void test_fifo_as_map_file_is_refused_at_once_read_only_and_writable(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    plant_fifo(dir, "hashmmap.map");
    assert_int_equal(open_bounded(dir, HMM_RDONLY), 1);
    assert_int_equal(open_bounded(dir, 0), 1);
    assert_int_equal(open_bounded(dir, HMM_CREATE), 1);
    hmm_t *m;
    assert_int_equal(hmm_open(&m, dir, &(hmm_config){.flags = HMM_RDONLY}), -EINVAL);
    assert_non_null(strstr(hmm_last_error(), "FIFO"));
}

static void test_fifo_as_metrics_or_replog_is_replaced_by_a_writer_and_skipped_by_a_reader(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_close(tu_open(dir, 1 << 20, 0, 0));
    plant_fifo(dir, "hashmmap.metrics");
    plant_fifo(dir, "hashmmap.replog");
    assert_int_equal(open_bounded(dir, HMM_RDONLY), 0);
    assert_false(is_regular(dir, "hashmmap.metrics"));
    assert_int_equal(open_bounded(dir, 0), 0);
    assert_true(is_regular(dir, "hashmmap.metrics"));
    assert_true(is_regular(dir, "hashmmap.replog"));
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    TU_OK(hmm_put(m, "k", 1, "v", 1, 0, 0));
    hmm_close(m);
}

/* ---- item 2: creation that runs out of space leaves nothing ---- */

static int create_over_limit(void *arg)
{
    /* RLIMIT_FSIZE makes the creation fail as a full disk would (EFBIG
     * instead of ENOSPC), here without root or a tmpfs; the real full disk
     * (where a sparse file passed this point and died of SIGBUS later) is
     * in tests/badinput.test and tests/dnscache.test. */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {1 << 20, 1 << 20};
    setrlimit(RLIMIT_FSIZE, &rl);
    hmm_config cfg = {.size = 16 << 20, .flags = HMM_CREATE};
    hmm_t *m;
    int rc = hmm_open(&m, arg, &cfg);
    hmm_close(m);
    return rc == -EFBIG ? 0 : rc == 0 ? 1 : 2;
}

static void test_creation_without_space_fails_with_an_error_and_leaves_no_file(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    int status = tu_wait(tu_fork(create_over_limit, dir), 20000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(count_strays(dir), 0);
    assert_false(is_regular(dir, "hashmmap.map"));
}

static void test_new_map_file_is_allocated_not_sparse(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_close(tu_open(dir, 4 << 20, 0, 0));
    const char *names[] = {"hashmmap.map", "hashmmap.metrics", "hashmmap.replog"};
    for (size_t i = 0; i < 3; i++) {
        char path[4200];
        struct stat st;
        tu_path(path, sizeof path, dir, names[i]);
        assert_int_equal(stat(path, &st), 0);
        if ((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size)
            fail_msg("%s: %lld of %lld bytes allocated", names[i], (long long)st.st_blocks * 512,
                     (long long)st.st_size);
    }
    assert_int_equal(count_strays(dir), 0);
}

/* ---- item 11: recreated siblings take the map's mode ---- */

static void test_recreated_metrics_and_replog_take_the_map_files_mode(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m;
    TU_OK(hmm_open(&m, dir, &(hmm_config){.size = 1 << 20, .mode = 0660, .flags = HMM_CREATE}));
    hmm_close(m);
    char path[4200];
    tu_path(path, sizeof path, dir, "hashmmap.metrics");
    assert_int_equal(unlink(path), 0);
    tu_path(path, sizeof path, dir, "hashmmap.replog");
    assert_int_equal(unlink(path), 0);
    /* A later opener that passes no mode (0 = 0600 for new maps). */
    TU_OK(hmm_open(&m, dir, &(hmm_config){.flags = 0}));
    hmm_close(m);
    const char *names[] = {"hashmmap.metrics", "hashmmap.replog"};
    for (size_t i = 0; i < 2; i++) {
        struct stat st;
        tu_path(path, sizeof path, dir, names[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0660);
    }
    assert_int_equal(count_strays(dir), 0);
}

/* ---- item 9: TTLs at the edge ---- */

static void test_huge_ttl_saturates_instead_of_wrapping_into_the_past(void **state)
{
    (void)state;
    hmm_t *m = tu_open(tu_tmpdir(), 1 << 20, 0, 0);
    const uint64_t ttls[] = {UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - wall_ms() + 5, UINT64_MAX / 2};
    for (size_t i = 0; i < sizeof ttls / sizeof ttls[0]; i++) {
        TU_OK(hmm_put(m, "k", 1, "v", 1, ttls[i], 0));
        char v[4];
        size_t vlen = sizeof v;
        hmm_entry_info info;
        TU_OK(hmm_get_info(m, "k", 1, v, &vlen, &info));
        assert_true(info.expire_ms > wall_ms() + (UINT64_C(1) << 40));
    }
    hmm_close(m);
}

static void test_huge_default_ttl_saturates_too(void **state)
{
    (void)state;
    hmm_t *m;
    TU_OK(hmm_open(&m, tu_tmpdir(),
                   &(hmm_config){.size = 1 << 20, .default_ttl_ms = UINT64_MAX, .flags = HMM_CREATE}));
    TU_OK(hmm_put(m, "k", 1, "v", 1, 0, 0));
    char v[4];
    size_t vlen = sizeof v;
    hmm_entry_info info;
    TU_OK(hmm_get_info(m, "k", 1, v, &vlen, &info));
    assert_int_equal(info.expire_ms, UINT64_MAX);
    hmm_close(m);
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_as_map_file_is_refused_at_once_read_only_and_writable),
        cmocka_unit_test(test_fifo_as_metrics_or_replog_is_replaced_by_a_writer_and_skipped_by_a_reader),
        cmocka_unit_test(test_creation_without_space_fails_with_an_error_and_leaves_no_file),
        cmocka_unit_test(test_new_map_file_is_allocated_not_sparse),
        cmocka_unit_test(test_recreated_metrics_and_replog_take_the_map_files_mode),
        cmocka_unit_test(test_huge_ttl_saturates_instead_of_wrapping_into_the_past),
        cmocka_unit_test(test_huge_default_ttl_saturates_too),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_cleanup();
    return failed;
}
