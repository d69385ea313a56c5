/*
 * test_multiproc.c - several forked writers and readers on one map: no torn
 * value, exact counters, no leaked space.  Then the same on an anonymous map
 * shared through fork, and on a map that grows while they run.  Last, the
 * harness itself: a killed test's workers do not outlive it.
 */
#include "config.h"

#include "tests/testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { WRITERS = 4, READERS = 2, KEYS = 400, OPS = 20000, SHARED_KEYS = 20 };

struct world {
    const char *dir;   /* NULL: use anon */
    hmm_t *anon;
    uint64_t size, max_size;
    int id;
};

static hmm_t *attach(struct world *w)
{
    if (!w->dir)
        return w->anon;
    hmm_t *m = NULL;
    return hmm_open(&m, w->dir, NULL) == 0 ? m : NULL;
}

static void detach(struct world *w, hmm_t *m)
{
    if (w->dir)
        hmm_close(m);
}

/* Writer w: its own keys ("w<id>-<n>") and keys shared by all ("s-<n>"),
 * values of varying length, and one shared counter. */
static int writer(void *arg)
{
    struct world *w = arg;
    hmm_t *m = attach(w);
    if (!m)
        return 10;
    srand((unsigned)getpid());
    char key[32], val[2100];
    for (int op = 0; op < OPS; op++) {
        int shared = rand() % 4 == 0;
        int n = rand() % (shared ? SHARED_KEYS : KEYS);
        if (shared)
            snprintf(key, sizeof key, "s-%d", n);
        else
            snprintf(key, sizeof key, "w%d-%d", w->id, n);
        size_t len = 24 + (size_t)(rand() % 2000);
        tu_value(val, len, key, (uint64_t)op);
        int rc = rand() % 10 == 0 ? hmm_del(m, key, strlen(key)) : hmm_put(m, key, strlen(key), val, len, 0, 0);
        if (rc && rc != HMM_NOTFOUND)
            return 11;
        if (op % 10 == 0 && hmm_incr(m, "counter", 7, 1, NULL) != 0)
            return 12;
    }
    detach(w, m);
    return 0;
}

/* Reader: every value read must be a whole value of its key. */
static int reader(void *arg)
{
    struct world *w = arg;
    hmm_t *m = attach(w);
    if (!m)
        return 20;
    srand((unsigned)getpid());
    char key[32], val[2100];
    for (int op = 0; op < OPS * 2; op++) {
        if (rand() % 4 == 0)
            snprintf(key, sizeof key, "s-%d", rand() % SHARED_KEYS);
        else
            snprintf(key, sizeof key, "w%d-%d", rand() % WRITERS, rand() % KEYS);
        size_t len = sizeof val;
        int rc = hmm_get(m, key, strlen(key), val, &len);
        if (rc == HMM_NOTFOUND)
            continue;
        if (rc || !tu_value_ok(val, len, key, NULL))
            return 21;
    }
    detach(w, m);
    return 0;
}

static void run_world(struct world *base)
{
    pid_t pids[WRITERS + READERS];
    struct world ws[WRITERS + READERS];
    for (int i = 0; i < WRITERS + READERS; i++) {
        ws[i] = *base;
        ws[i].id = i;
        pids[i] = tu_fork(i < WRITERS ? writer : reader, &ws[i]);
    }
    for (int i = 0; i < WRITERS + READERS; i++)
        assert_int_equal(tu_exit_code(tu_wait(pids[i], 60000)), 0);
}

static void check_outcome(hmm_t *m)
{
    char buf[32];
    size_t len = sizeof buf - 1;
    TU_OK(hmm_get(m, "counter", 7, buf, &len));
    buf[len] = '\0';
    assert_int_equal(atoi(buf), WRITERS * OPS / 10);
    hmm_check_result r;
    TU_OK(hmm_check(m, 0, &r));
    assert_int_equal(r.unreachable, 0);
    assert_int_equal(r.bad_entries + r.bad_slots, 0);
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.items, r.entries);
}

static void test_writers_and_readers_on_a_file_map_see_whole_values(void **state)
{
    struct world w = {.dir = tu_tmpdir()};
    hmm_t *m = tu_open(w.dir, 16 << 20, 0, 0);
    run_world(&w);
    check_outcome(m);
    hmm_close(m);
}

static void test_writers_and_readers_on_an_anonymous_map_see_whole_values(void **state)
{
    hmm_config cfg = {.size = 16 << 20};
    struct world w = {0};
    TU_OK(hmm_open_anon(&w.anon, &cfg));
    run_world(&w);
    check_outcome(w.anon);
    hmm_close(w.anon);
}

static void test_writers_and_readers_while_the_map_grows(void **state)
{
    struct world w = {.dir = tu_tmpdir()};
    hmm_t *m = tu_open(w.dir, 1 << 20, 256 << 20, 0);
    run_world(&w);
    check_outcome(m);
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_true(st.generation > 1);
    hmm_close(m);
}

/* A writer of fresh keys, overwrites of other sizes and deletes, for a
 * bounded time: enough writes in flight for a read-only check to meet. */
static int busy_writer(void *arg)
{
    hmm_t *m = NULL;
    if (hmm_open(&m, (const char *)arg, NULL) != 0)
        return 1;
    char key[32], val[600];
    memset(val, 'v', sizeof val);
    uint64_t end = tu_now_ms() + 1500;
    for (unsigned i = 0; tu_now_ms() < end; i++) {
        snprintf(key, sizeof key, "busy%u", i % 3000);
        size_t len = 8 + (i * 7919u) % (sizeof val - 8);
        if (hmm_put(m, key, strlen(key), val, len, 0, 0) != 0)
            return 2;
        if (i % 5 == 4)
            (void)hmm_del(m, key, strlen(key));
    }
    hmm_close(m);
    return 0;
}

/* A read-only handle cannot hold writers off, so a check through it must
 * not call a healthy map damaged for seeing a write half done: it is sound,
 * or HMM_BUSY when writers kept moving under every walk. */
static void test_a_read_only_check_of_a_busy_map_never_calls_it_damaged(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *w = tu_open(dir, 256 << 10, 64 << 20, 0);
    pid_t pid = tu_fork(busy_writer, (void *)dir);
    hmm_config cfg = {.flags = HMM_RDONLY};
    hmm_t *r = NULL;
    TU_OK(hmm_open(&r, dir, &cfg));
    unsigned checks = 0, sound = 0;
    for (uint64_t end = tu_now_ms() + 1200; tu_now_ms() < end && checks < 200; checks++) {
        hmm_check_result res;
        int rc = hmm_check(r, 0, &res);
        if (rc != 0 && rc != HMM_BUSY)
            fail_msg("check %u of a busy healthy map: %s (%s; unreachable %llu, bad entries %llu, bad slots %llu)",
                     checks, hmm_errname(rc), hmm_last_error(), (unsigned long long)res.unreachable,
                     (unsigned long long)res.bad_entries, (unsigned long long)res.bad_slots);
        sound += rc == 0;
    }
    assert_int_equal(tu_exit_code(tu_wait(pid, 20000)), 0);
    hmm_check_result res;
    TU_OK(hmm_check(r, 0, &res)); /* idle now: sound, and said so */
    print_message("read-only checks of a busy map: %u, %u sound, the rest busy\n", checks, sound);
    hmm_close(r);
    hmm_close(w);
}

/* ---- the harness: a test's children never outlive it ---- */

static int spin_until_killed(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return 0;
}

/* Stands for a test process: forks a worker, says its pid, waits to be
 * killed alone (as timeout(1) kills a test; the watchdog's _exit alike). */
static int test_process_stand_in(void *arg)
{
    int fd = *(int *)arg;
    pid_t worker = tu_fork(spin_until_killed, NULL);
    if (write(fd, &worker, sizeof worker) != (ssize_t)sizeof worker)
        return 1;
    for (;;)
        pause();
}

/* Last stop's orphans: test_torture's readers outlived their test and
 * spun beside the rest of the suite.  A worker of a killed test must be
 * gone within seconds; we reap it as the subreaper its orphans come to. */
static void test_a_killed_tests_workers_die_with_it(void **state)
{
    (void)state;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t test = tu_fork(test_process_stand_in, &pfd[1]);
    pid_t worker = 0;
    assert_int_equal(read(pfd[0], &worker, sizeof worker), (ssize_t)sizeof worker);
    close(pfd[0]);
    close(pfd[1]);
    kill(test, SIGKILL);
    assert_int_equal(waitpid(test, NULL, 0), test);
    int status = 0;
    pid_t r = 0;
    for (int ms = 0; ms < 5000 && (r = waitpid(worker, &status, WNOHANG)) == 0; ms++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    if (r == 0)
        kill(worker, SIGKILL); /* do not leave it behind ourselves */
    assert_int_equal(r, worker);
    /* SIGKILL, or 98: its test was gone before it could ask for the signal. */
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) && tu_exit_code(status) != 98)
        fail_msg("the worker ended with status 0x%x, not by its test's death", status);
}

int main(void)
{
    tu_watchdog(240);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writers_and_readers_on_a_file_map_see_whole_values),
        cmocka_unit_test(test_writers_and_readers_on_an_anonymous_map_see_whole_values),
        cmocka_unit_test(test_writers_and_readers_while_the_map_grows),
        cmocka_unit_test(test_a_read_only_check_of_a_busy_map_never_calls_it_damaged),
        cmocka_unit_test(test_a_killed_tests_workers_die_with_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
