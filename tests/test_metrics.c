/*
 * test_metrics.c - the counters of DIR/hashmmap.metrics: exact after a known
 * sequence of operations from several processes, one of them SIGKILLed;
 * kept across close and reopen; nothing counted by read-only or
 * HMM_NOMETRICS handles.
 */
#include "config.h"

#include "tests/testutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t counter(hmm_t *m, enum hmm_counter c)
{
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    return st.counters[c];
}

/* 10 puts, 4 gets of which 1 misses, 2 deletes, 3 incrs, 1 failed cas. */
static void known_sequence(hmm_t *m, const char *tag)
{
    char key[32], buf[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "%s-%d", tag, i);
        TU_OK(hmm_put(m, key, strlen(key), "v", 1, 0, 0));
    }
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%s-%d", tag, i == 3 ? 99 : i);
        size_t len = sizeof buf;
        int rc = hmm_get(m, key, strlen(key), buf, &len);
        assert_int_equal(rc, i == 3 ? HMM_NOTFOUND : 0);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "%s-%d", tag, i);
        TU_OK(hmm_del(m, key, strlen(key)));
    }
    for (int i = 0; i < 3; i++)
        TU_OK(hmm_incr(m, tag, strlen(tag), 1, NULL));
    assert_int_equal(hmm_cas(m, tag, strlen(tag), "x", 1, 0, 12345), HMM_MISMATCH);
}

struct child {
    const char *dir;
    char tag[16];
    bool die;
};

static int child_main(void *p)
{
    struct child *c = p;
    hmm_t *m;
    if (hmm_open(&m, c->dir, NULL) != 0)
        return 10;
    known_sequence(m, c->tag);
    if (c->die)
        kill(getpid(), SIGKILL); /* counted, never closed */
    hmm_close(m);
    return 0;
}

static void test_counts_are_exact_across_processes_including_a_killed_one(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    known_sequence(m, "parent");
    struct child kids[3] = {{dir, "a", false}, {dir, "b", true}, {dir, "c", false}};
    for (int i = 0; i < 3; i++) {
        int status = tu_wait(tu_fork(child_main, &kids[i]), 20000);
        assert_true(kids[i].die ? WIFSIGNALED(status) : tu_exit_code(status) == 0);
    }
    /* A fresh open also folds the dead child's slot; counts must not change. */
    hmm_t *again = tu_open(dir, 0, 0, 0);
    for (int pass = 0; pass < 2; pass++) {
        hmm_t *h = pass ? again : m;
        assert_int_equal(counter(h, HMM_C_PUTS), 40);
        assert_int_equal(counter(h, HMM_C_GETS), 16);
        assert_int_equal(counter(h, HMM_C_HITS), 12);
        assert_int_equal(counter(h, HMM_C_MISSES), 4);
        assert_int_equal(counter(h, HMM_C_DELETES), 8);
        assert_int_equal(counter(h, HMM_C_INCRS), 12);
        assert_int_equal(counter(h, HMM_C_CAS_FAILURES), 4);
    }
    hmm_close(again);
    hmm_close(m);
    /* ...and they survive every process closing the map. */
    m = tu_open(dir, 0, 0, 0);
    assert_int_equal(counter(m, HMM_C_PUTS), 40);
    hmm_close(m);
}

static void test_read_only_and_nometrics_handles_count_nothing(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    TU_OK(hmm_put(m, "k", 1, "v", 1, 0, 0));
    hmm_close(m);
    hmm_config ro = {.flags = HMM_RDONLY}, quiet = {.flags = HMM_NOMETRICS};
    hmm_t *r, *q;
    TU_OK(hmm_open(&r, dir, &ro));
    TU_OK(hmm_open(&q, dir, &quiet));
    char buf[4];
    size_t len = sizeof buf;
    TU_OK(hmm_get(r, "k", 1, buf, &len));
    TU_OK(hmm_put(q, "k", 1, "w", 1, 0, 0));
    assert_int_equal(counter(r, HMM_C_GETS), 0);
    assert_int_equal(counter(r, HMM_C_PUTS), 1);
    hmm_close(q);
    hmm_close(r);
}

static void test_growth_expiration_and_full_are_counted(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 8 << 20, 0);
    TU_OK(hmm_put(m, "t", 1, "x", 1, 1, 0));
    usleep(20 * 1000);
    TU_OK(hmm_put(m, "t", 1, "y", 1, 0, 0)); /* reclaims the expired one */
    assert_int_equal(counter(m, HMM_C_EXPIRATIONS), 1);
    char key[32], val[512] = {0};
    int rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++) {
        snprintf(key, sizeof key, "k%d", i);
        rc = hmm_put(m, key, strlen(key), val, sizeof val, 0, 0);
    }
    assert_int_equal(rc, HMM_FULL);
    assert_true(counter(m, HMM_C_GROWTH_STEPS) > 0);
    assert_int_equal(counter(m, HMM_C_FULL_ERRORS), 1);
    hmm_close(m);
}

static void test_class_statistics_follow_the_entries(void **state)
{
    hmm_t *m = tu_open(tu_tmpdir(), 1 << 20, 0, 0);
    TU_OK(hmm_put(m, "small", 5, "v", 1, 0, 0));
    char big[1000] = {0}; /* a class of its own in pages of any size (4 KiB and up) */
    TU_OK(hmm_put(m, "big", 3, big, sizeof big, 0, 0));
    hmm_class_stats cs[64];
    size_t n;
    TU_OK(hmm_stat_classes(m, cs, 64, &n));
    uint64_t used = 0, classes_with_pages = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        used += cs[i].chunks_used;
        classes_with_pages += cs[i].pages > 0;
        assert_true(cs[i].chunks_used <= cs[i].chunks_total);
    }
    assert_int_equal(used, 2);
    assert_int_equal(classes_with_pages, 2);
    hmm_close(m);
}

/* n gets of which every other one misses. */
static void *gets_half_missing(void *p)
{
    hmm_t *m = p;
    char buf[16];
    for (int i = 0; i < 5000; i++) {
        size_t len = sizeof buf;
        int rc = hmm_get(m, i % 2 ? "absent" : "present", i % 2 ? 6 : 7, buf, &len);
        if (rc != (i % 2 ? HMM_NOTFOUND : 0))
            return (void *)1;
    }
    return NULL;
}

static int child_gets_then_dies(void *p)
{
    if (gets_half_missing(p))
        return 1;
    kill(getpid(), SIGKILL); /* counted, never closed */
    return 0;
}

/* One thread of a handle counts with plain adds (metrics.c); the others,
 * and a child that inherited the handle, must lose nothing to it. */
static void test_threads_sharing_a_handle_and_a_forked_child_count_exactly(void **state)
{
    hmm_t *m = tu_open(tu_tmpdir(), 1 << 20, 0, 0);
    TU_OK(hmm_put(m, "present", 7, "v", 1, 0, 0));
    assert_null(gets_half_missing(m)); /* this thread first: it owns the slot */
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, gets_half_missing, m), 0);
    assert_null(gets_half_missing(m)); /* meanwhile */
    for (int i = 0; i < 4; i++) {
        void *rc;
        assert_int_equal(pthread_join(t[i], &rc), 0);
        assert_null(rc);
    }
    int status = tu_wait(tu_fork(child_gets_then_dies, m), 20000);
    assert_true(WIFSIGNALED(status));
    assert_null(gets_half_missing(m));
    assert_int_equal(counter(m, HMM_C_GETS), 8 * 5000);
    assert_int_equal(counter(m, HMM_C_MISSES), 8 * 2500);
    hmm_close(m);
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_are_exact_across_processes_including_a_killed_one),
        cmocka_unit_test(test_read_only_and_nometrics_handles_count_nothing),
        cmocka_unit_test(test_threads_sharing_a_handle_and_a_forked_child_count_exactly),
        cmocka_unit_test(test_growth_expiration_and_full_are_counted),
        cmocka_unit_test(test_class_statistics_follow_the_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
