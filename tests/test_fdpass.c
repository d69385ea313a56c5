/*
 * test_fdpass.c - hmm_fd / hmm_open_fd: an anonymous map handed to a
 * process that was not forked from its creator.  The receiver here is an
 * exec'ed program (this one, re-run with --child), which inherits nothing
 * from the creator but the descriptors it was given; tests/fdpass.test
 * passes them over a unix socket (SCM_RIGHTS) with examples/anon-share.
 */
#include "config.h"

#include "tests/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_INCRS 2000

/* The exec'ed receiver: argv holds the three descriptor numbers. */
static int child_main(char **argv)
{
    int fds[HMM_FD_COUNT];
    for (int i = 0; i < HMM_FD_COUNT; i++)
        fds[i] = atoi(argv[i]);
    hmm_t *m;
    if (hmm_open_fd(&m, fds, 0) != 0)
        return 10;
    for (int i = 0; i < HMM_FD_COUNT; i++)
        if (fds[i] >= 0)
            close(fds[i]); /* the handle keeps its own */
    char val[64];
    size_t vlen = sizeof val;
    if (hmm_get(m, "from-parent", 11, val, &vlen) != 0 || vlen != 5 || memcmp(val, "hello", 5) != 0)
        return 11;
    if (hmm_put(m, "from-child", 10, "world", 5, 0, 0) != 0)
        return 12;
    for (int i = 0; i < CHILD_INCRS; i++)
        if (hmm_incr(m, "counter", 7, 1, NULL) != 0)
            return 13;
    hmm_close(m);
    return 0;
}

/* fork + exec of this program with the map's descriptors made inheritable. */
static pid_t spawn_receiver(hmm_t *m)
{
    int fds[HMM_FD_COUNT];
    TU_OK(hmm_fd(m, fds));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        tu_die_with_parent(parent);
        char args[HMM_FD_COUNT][16];
        for (int i = 0; i < HMM_FD_COUNT; i++)
            snprintf(args[i], sizeof args[i], "%d", fds[i] >= 0 ? dup(fds[i]) : -1); /* dup: no O_CLOEXEC */
        execl("/proc/self/exe", "test_fdpass", "--child", args[0], args[1], args[2], (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void test_an_exec_ed_process_given_the_descriptors_shares_the_map(void **state)
{
    (void)state;
    hmm_t *m;
    hmm_config cfg = {.size = 1u << 20};
    TU_OK(hmm_open_anon(&m, &cfg));
    TU_OK(hmm_put(m, "from-parent", 11, "hello", 5, 0, 0));
    pid_t pid = spawn_receiver(m);
    assert_true(pid > 0);
    /* Both count at once: one map, one set of stripe locks. */
    for (int i = 0; i < CHILD_INCRS; i++)
        TU_OK(hmm_incr(m, "counter", 7, 1, NULL));
    assert_int_equal(tu_exit_code(tu_wait(pid, 60000)), 0);
    char val[64];
    size_t vlen = sizeof val;
    TU_OK(hmm_get(m, "from-child", 10, val, &vlen));
    assert_memory_equal(val, "world", 5);
    int64_t total;
    TU_OK(hmm_incr(m, "counter", 7, 0, &total));
    assert_int_equal(total, 2 * CHILD_INCRS);
    /* The receiver counted into the shared metrics, and its slot was folded
     * into the totals when it closed. */
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_true(st.counters[HMM_C_INCRS] >= 2 * CHILD_INCRS);
    assert_true(st.counters[HMM_C_PUTS] >= 2);
    assert_int_equal(st.nprocs, 1);
    /* The changes of both processes are in the one log, in order. */
    struct hmm_replog_info li;
    TU_OK(hmm_replog_info(m, &li));
    assert_true(li.last_seq >= 2 + 2 * CHILD_INCRS);
    hmm_close(m);
}

static void test_a_received_map_outlives_the_creator_s_handle(void **state)
{
    (void)state;
    hmm_t *a, *b;
    int fds[HMM_FD_COUNT];
    hmm_config cfg = {.size = 1u << 20, .flags = HMM_CACHE};
    TU_OK(hmm_open_anon(&a, &cfg));
    TU_OK(hmm_put(a, "k", 1, "v", 1, 0, 0));
    TU_OK(hmm_fd(a, fds));
    TU_OK(hmm_open_fd(&b, fds, 0));
    hmm_close(a);
    char val[8];
    size_t vlen = sizeof val;
    TU_OK(hmm_get(b, "k", 1, val, &vlen));
    assert_int_equal(vlen, 1);
    hmm_stats st;
    TU_OK(hmm_stat(b, &st));
    assert_true(st.flags & HMM_CACHE);
    TU_OK(hmm_fd(b, fds)); /* and it may be passed on again */
    hmm_close(b);
}

static void test_hmm_fd_of_a_map_kept_in_a_directory_is_refused(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1u << 20, 0, 0);
    int fds[HMM_FD_COUNT];
    assert_int_equal(hmm_fd(m, fds), -EINVAL);
    assert_int_equal(hmm_fd(NULL, fds), -EINVAL);
    hmm_close(m);
}

static void test_descriptors_in_the_wrong_places_or_of_another_map_are_refused(void **state)
{
    (void)state;
    hmm_t *a, *b, *r;
    int fa[HMM_FD_COUNT], fb[HMM_FD_COUNT];
    TU_OK(hmm_open_anon(&a, NULL));
    TU_OK(hmm_open_anon(&b, NULL));
    TU_OK(hmm_fd(a, fa));
    TU_OK(hmm_fd(b, fb));
    assert_true(fa[HMM_FD_METRICS] >= 0 && fa[HMM_FD_REPLOG] >= 0);
    int swapped[HMM_FD_COUNT] = {fa[HMM_FD_METRICS], fa[HMM_FD_MAP], fa[HMM_FD_REPLOG]};
    assert_int_equal(hmm_open_fd(&r, swapped, 0), HMM_CORRUPT); /* metrics are not a map */
    assert_null(r);
    int foreign_log[HMM_FD_COUNT] = {fa[HMM_FD_MAP], fa[HMM_FD_METRICS], fb[HMM_FD_REPLOG]};
    assert_int_equal(hmm_open_fd(&r, foreign_log, 0), -EINVAL);
    int foreign_metrics[HMM_FD_COUNT] = {fa[HMM_FD_MAP], fb[HMM_FD_METRICS], fa[HMM_FD_REPLOG]};
    assert_int_equal(hmm_open_fd(&r, foreign_metrics, 0), -EINVAL);
    int no_log[HMM_FD_COUNT] = {fa[HMM_FD_MAP], fa[HMM_FD_METRICS], -1};
    assert_int_equal(hmm_open_fd(&r, no_log, 0), -EINVAL); /* a writer must log */
    int no_map[HMM_FD_COUNT] = {-1, fa[HMM_FD_METRICS], fa[HMM_FD_REPLOG]};
    assert_int_equal(hmm_open_fd(&r, no_map, 0), -EINVAL);
    assert_int_equal(hmm_open_fd(&r, fa, HMM_CACHE), -EINVAL);
    hmm_close(b);
    hmm_close(a);
}

static void test_a_read_only_receiver_needs_only_the_map_and_never_writes(void **state)
{
    (void)state;
    hmm_t *a, *r;
    int fds[HMM_FD_COUNT];
    TU_OK(hmm_open_anon(&a, NULL));
    TU_OK(hmm_put(a, "k", 1, "v", 1, 0, 0));
    TU_OK(hmm_fd(a, fds));
    int only_map[HMM_FD_COUNT] = {fds[HMM_FD_MAP], -1, -1};
    TU_OK(hmm_open_fd(&r, only_map, HMM_RDONLY));
    char val[8];
    size_t vlen = sizeof val;
    TU_OK(hmm_get(r, "k", 1, val, &vlen));
    assert_int_equal(hmm_put(r, "k", 1, "w", 1, 0, 0), -EBADF);
    hmm_stats st;
    TU_OK(hmm_stat(r, &st));
    assert_int_equal(st.nprocs, 1); /* a reader takes no process slot */
    hmm_close(r);
    hmm_close(a);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0)
        return child_main(argv + 2);
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_exec_ed_process_given_the_descriptors_shares_the_map),
        cmocka_unit_test(test_a_received_map_outlives_the_creator_s_handle),
        cmocka_unit_test(test_hmm_fd_of_a_map_kept_in_a_directory_is_refused),
        cmocka_unit_test(test_descriptors_in_the_wrong_places_or_of_another_map_are_refused),
        cmocka_unit_test(test_a_read_only_receiver_needs_only_the_map_and_never_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
