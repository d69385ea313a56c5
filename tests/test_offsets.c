/*
 * test_offsets.c - hmm_offset_commit / hmm_offset_get / hmm_offset_key:
 * the stored offset is the highest ever committed, also when forked
 * processes commit out of order at once; and examples/offset-consumer,
 * whose consumers are SIGKILLed and resumed, neither skips a record nor
 * moves an offset backwards.
 */
#include "config.h"

#include "tests/testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define COMMITTERS 4
#define KEYS 4
#define OFFSETS_PER_KEY 1500

static hmm_t *open_fresh(char **dir_out)
{
    char *dir = tu_tmpdir();
    char path[4096];
    tu_path(path, sizeof path, dir, "map");
    if (dir_out)
        *dir_out = dir;
    return tu_open(path, 8u << 20, 0, HMM_CREATE);
}

static void test_commit_on_absent_key_stores_the_offset(void **state)
{
    hmm_t *m = open_fresh(NULL);
    uint64_t stored = 0, got = 0;
    TU_OK(hmm_offset_commit(m, "orders/0", 8, 42, &stored));
    assert_int_equal(stored, 42);
    TU_OK(hmm_offset_get(m, "orders/0", 8, &got));
    assert_int_equal(got, 42);
    hmm_close(m);
}

static void test_commit_of_a_lower_offset_keeps_the_higher_one(void **state)
{
    hmm_t *m = open_fresh(NULL);
    uint64_t stored = 0, got = 0;
    TU_OK(hmm_offset_commit(m, "orders/1", 8, 100, NULL));
    TU_OK(hmm_offset_commit(m, "orders/1", 8, 7, &stored));
    assert_int_equal(stored, 100);
    TU_OK(hmm_offset_commit(m, "orders/1", 8, 100, &stored));
    assert_int_equal(stored, 100);
    TU_OK(hmm_offset_commit(m, "orders/1", 8, 101, &stored));
    assert_int_equal(stored, 101);
    TU_OK(hmm_offset_get(m, "orders/1", 8, &got));
    assert_int_equal(got, 101);
    hmm_close(m);
}

static void test_offset_value_is_decimal_text_that_get_and_incr_read(void **state)
{
    hmm_t *m = open_fresh(NULL);
    char buf[32];
    size_t len = sizeof buf;
    int64_t after = 0;
    uint64_t got = 0;
    TU_OK(hmm_offset_commit(m, "t/2", 3, 1234567890123ull, NULL));
    TU_OK(hmm_get(m, "t/2", 3, buf, &len));
    assert_int_equal(len, 13);
    assert_memory_equal(buf, "1234567890123", 13);
    TU_OK(hmm_incr(m, "t/2", 3, 1, &after));
    assert_int_equal(after, 1234567890124ll);
    TU_OK(hmm_offset_get(m, "t/2", 3, &got));
    assert_int_equal(got, 1234567890124ull);
    hmm_close(m);
}

static void test_get_of_a_never_committed_key_returns_notfound(void **state)
{
    hmm_t *m = open_fresh(NULL);
    uint64_t got = 99;
    assert_int_equal(hmm_offset_get(m, "none/0", 6, &got), HMM_NOTFOUND);
    hmm_close(m);
}

static void test_commit_on_a_value_that_is_not_an_offset_returns_notnum(void **state)
{
    hmm_t *m = open_fresh(NULL);
    uint64_t got;
    TU_OK(hmm_put(m, "k", 1, "hello", 5, 0, 0));
    assert_int_equal(hmm_offset_commit(m, "k", 1, 5, NULL), HMM_NOTNUM);
    assert_int_equal(hmm_offset_get(m, "k", 1, &got), HMM_NOTNUM);
    TU_OK(hmm_put(m, "neg", 3, "-5", 2, 0, 0));
    assert_int_equal(hmm_offset_get(m, "neg", 3, &got), HMM_NOTNUM);
    hmm_close(m);
}

static void test_commit_rejects_offsets_above_int64_max(void **state)
{
    hmm_t *m = open_fresh(NULL);
    assert_int_equal(hmm_offset_commit(m, "k", 1, (uint64_t)INT64_MAX + 1, NULL), -EINVAL);
    TU_OK(hmm_offset_commit(m, "k", 1, (uint64_t)INT64_MAX, NULL));
    hmm_close(m);
}

static void test_offset_key_is_topic_slash_partition(void **state)
{
    char buf[32];
    size_t klen = 0;
    TU_OK(hmm_offset_key(buf, sizeof buf, "orders", 3, &klen));
    assert_string_equal(buf, "orders/3");
    assert_int_equal(klen, 8);
    assert_int_equal(hmm_offset_key(buf, 4, "orders", 3, &klen), HMM_TOOSMALL);
    assert_int_equal(klen, 8);
    assert_int_equal(hmm_offset_key(buf, sizeof buf, "", 3, &klen), -EINVAL);
    assert_int_equal(hmm_offset_key(buf, sizeof buf, "orders", -1, &klen), -EINVAL);
}

/* A committer: every offset 1..OFFSETS_PER_KEY of every key, in its own
 * shuffled order (so commits arrive out of order and race each other);
 * each commit must report a stored value >= what it committed and >= what
 * this process saw stored before for that key. */
static int committer(void *arg)
{
    const char *path = arg;
    hmm_t *m;
    if (hmm_open(&m, path, NULL) != 0)
        return 10;
    static uint64_t order[KEYS * OFFSETS_PER_KEY];
    uint64_t seen[KEYS] = {0};
    size_t n = 0;
    for (uint64_t k = 0; k < KEYS; k++)
        for (uint64_t o = 1; o <= OFFSETS_PER_KEY; o++)
            order[n++] = k << 32 | o;
    srand((unsigned)getpid());
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1);
        uint64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        char key[16];
        unsigned k = (unsigned)(order[i] >> 32);
        uint64_t off = order[i] & 0xffffffffu, stored = 0;
        int klen = snprintf(key, sizeof key, "topic/%u", k);
        if (hmm_offset_commit(m, key, (size_t)klen, off, &stored) != 0)
            return 11;
        if (stored < off || stored < seen[k])
            return 12;
        seen[k] = stored;
    }
    hmm_close(m);
    return 0;
}

static void test_concurrent_out_of_order_commits_never_move_backwards(void **state)
{
    char *dir;
    hmm_t *m = open_fresh(&dir);
    char path[4096];
    tu_path(path, sizeof path, dir, "map");
    pid_t pids[COMMITTERS];
    for (int i = 0; i < COMMITTERS; i++)
        pids[i] = tu_fork(committer, path);

    /* Watch from here meanwhile: each key's value only ever grows. */
    uint64_t last[KEYS] = {0};
    int running = COMMITTERS, backwards = 0, failed = 0;
    while (running > 0) {
        for (unsigned k = 0; k < KEYS; k++) {
            char key[16];
            uint64_t off;
            int klen = snprintf(key, sizeof key, "topic/%u", k);
            int rc = hmm_offset_get(m, key, (size_t)klen, &off);
            if (rc == HMM_NOTFOUND)
                continue;
            TU_OK(rc);
            backwards += off < last[k];
            if (off > last[k])
                last[k] = off;
        }
        for (int i = 0; i < COMMITTERS; i++) {
            int st;
            if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                failed += tu_exit_code(st) != 0;
                pids[i] = -1;
                running--;
            }
        }
    }
    assert_int_equal(failed, 0);
    assert_int_equal(backwards, 0);
    for (unsigned k = 0; k < KEYS; k++) {
        char key[16];
        uint64_t off;
        int klen = snprintf(key, sizeof key, "topic/%u", k);
        TU_OK(hmm_offset_get(m, key, (size_t)klen, &off));
        assert_int_equal(off, OFFSETS_PER_KEY);
    }
    hmm_close(m);
}

/* Run examples/offset-consumer with kills; its own checks decide the exit
 * status, and its summary line must show kills and no skipped record. */
static void test_offset_consumer_example_resumes_after_sigkill_without_skipping(void **state)
{
    char exe[4096], dir[4096], line[512] = "";
    const char *b = getenv("builddir");
    snprintf(exe, sizeof exe, "%s/examples/offset-consumer", b && *b ? b : ".");
    tu_path(dir, sizeof dir, tu_tmpdir(), "run");
    int out[2];
    assert_int_equal(pipe(out), 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        tu_die_with_parent(parent);
        dup2(out[1], 1);
        close(out[0]);
        execl(exe, exe, dir, "-p", "4", "-r", "3000", "-c", "3", "-k", "25", "-b", "4", "-s", "7",
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    int status = tu_wait(pid, 60000);
    print_message("%s", line);
    assert_non_null(got);
    assert_int_equal(tu_exit_code(status), 0);
    int kills = 0;
    unsigned long long reprocessed = 0, skipped = 1;
    assert_int_equal(sscanf(line, "partitions=4 records=3000 consumers=3 kills=%d batch=4 reprocessed=%llu "
                                  "skipped=%llu", &kills, &reprocessed, &skipped), 3);
    assert_true(kills >= 5);
    assert_int_equal(skipped, 0);
    assert_true(reprocessed <= (unsigned long long)kills * 4);
    assert_non_null(strstr(line, "backwards=0 unfinished=0 failures=0: OK"));
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_on_absent_key_stores_the_offset),
        cmocka_unit_test(test_commit_of_a_lower_offset_keeps_the_higher_one),
        cmocka_unit_test(test_offset_value_is_decimal_text_that_get_and_incr_read),
        cmocka_unit_test(test_get_of_a_never_committed_key_returns_notfound),
        cmocka_unit_test(test_commit_on_a_value_that_is_not_an_offset_returns_notnum),
        cmocka_unit_test(test_commit_rejects_offsets_above_int64_max),
        cmocka_unit_test(test_offset_key_is_topic_slash_partition),
        cmocka_unit_test(test_concurrent_out_of_order_commits_never_move_backwards),
        cmocka_unit_test(test_offset_consumer_example_resumes_after_sigkill_without_skipping),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_cleanup();
    return failed;
}
