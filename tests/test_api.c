/*
 * test_api.c - every call of hashmmap.h and its error paths, one test per
 * behaviour.
 */
#include "config.h"

#include "tests/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#endif

static hmm_t *fresh(void)
{
    return tu_open(tu_tmpdir(), 1 << 20, 0, 0);
}

static int get_str(hmm_t *m, const char *key, char *buf, size_t cap)
{
    size_t len = cap - 1;
    int rc = hmm_get(m, key, strlen(key), buf, &len);
    buf[rc == 0 ? len : 0] = '\0';
    return rc;
}

/* ---- opening ---- */

static void test_open_with_null_config_creates_map_and_directory(void **state)
{
    char dir[4096];
    tu_path(dir, sizeof dir, tu_tmpdir(), "new/");
    dir[strlen(dir) - 1] = '\0';
    hmm_t *m;
    TU_OK(hmm_open(&m, dir, NULL));
    char path[4200];
    tu_path(path, sizeof path, dir, "hashmmap.map");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    hmm_close(m);
}

static void test_open_creates_files_with_config_mode(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_config cfg = {.size = 1 << 20, .flags = HMM_CREATE, .mode = 0640};
    hmm_t *m;
    TU_OK(hmm_open(&m, dir, &cfg));
    char path[4200];
    tu_path(path, sizeof path, dir, "hashmmap.map");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    hmm_close(m);
}

static void test_open_missing_map_without_create_returns_enoent(void **state)
{
    hmm_config cfg = {0};
    hmm_t *m;
    assert_int_equal(hmm_open(&m, tu_tmpdir(), &cfg), -ENOENT);
    assert_null(m);
}

static void test_open_excl_on_existing_map_returns_exists(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_config cfg = {.size = 1 << 20, .flags = HMM_CREATE | HMM_EXCL};
    hmm_t *m, *m2;
    TU_OK(hmm_open(&m, dir, &cfg));
    assert_int_equal(hmm_open(&m2, dir, &cfg), HMM_EXISTS);
    hmm_close(m);
}

static void test_reopen_keeps_data(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    TU_OK(hmm_put(m, "offset", 6, "1042", 4, 0, 0));
    hmm_close(m);
    m = tu_open(dir, 0, 0, 0);
    char buf[16];
    TU_OK(get_str(m, "offset", buf, sizeof buf));
    assert_string_equal(buf, "1042");
    hmm_close(m);
}

static void test_close_null_is_noop(void **state)
{
    hmm_close(NULL);
    hmm_cursor_close(NULL);
}

static void test_open_bad_arguments_return_einval(void **state)
{
    hmm_t *m;
    assert_int_equal(hmm_open(NULL, "/tmp", NULL), -EINVAL);
    assert_int_equal(hmm_open(&m, NULL, NULL), -EINVAL);
    assert_int_equal(hmm_open(&m, "", NULL), -EINVAL);
    assert_int_equal(hmm_open_anon(NULL, NULL), -EINVAL);
}

static void test_open_a_file_as_directory_returns_enotdir(void **state)
{
    char path[4200];
    tu_path(path, sizeof path, tu_tmpdir(), "plain");
    FILE *f = fopen(path, "w");
    fclose(f);
    hmm_t *m;
    assert_int_equal(hmm_open(&m, path, NULL), -ENOTDIR);
}

/* ---- read-only ---- */

static uint64_t file_hash(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint64_t h = 1469598103934665603ULL;
    int c;
    while ((c = fgetc(f)) != EOF)
        h = (h ^ (uint64_t)c) * 1099511628211ULL;
    fclose(f);
    return h;
}

static void test_rdonly_reads_and_refuses_writes_without_touching_files(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    TU_OK(hmm_put(m, "k", 1, "v", 1, 0, 0));
    hmm_close(m);
    char path[4200], mpath[4200];
    tu_path(path, sizeof path, dir, "hashmmap.map");
    tu_path(mpath, sizeof mpath, dir, "hashmmap.metrics");
    uint64_t before = file_hash(path), mbefore = file_hash(mpath);
    hmm_config cfg = {.flags = HMM_RDONLY};
    TU_OK(hmm_open(&m, dir, &cfg));
    char buf[8];
    TU_OK(get_str(m, "k", buf, sizeof buf));
    assert_string_equal(buf, "v");
    assert_int_equal(hmm_put(m, "k", 1, "w", 1, 0, 0), -EBADF);
    assert_int_equal(hmm_del(m, "k", 1), -EBADF);
    assert_int_equal(hmm_incr(m, "n", 1, 1, NULL), -EBADF);
    assert_int_equal(hmm_cas(m, "k", 1, "w", 1, 0, 0), -EBADF);
    assert_int_equal(hmm_check(m, HMM_CHECK_REPAIR, NULL), -EBADF);
    TU_OK(hmm_check(m, 0, NULL));
    hmm_cursor *c;
    TU_OK(hmm_cursor_open(m, &c));
    const void *k, *v;
    size_t kl, vl;
    TU_OK(hmm_cursor_next(c, &k, &kl, &v, &vl));
    hmm_cursor_close(c);
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    hmm_close(m);
    assert_true(file_hash(path) == before);
    assert_true(file_hash(mpath) == mbefore);
}

static void test_rdonly_anonymous_map_is_refused(void **state)
{
    hmm_config cfg = {.flags = HMM_RDONLY};
    hmm_t *m;
    assert_int_equal(hmm_open_anon(&m, &cfg), -EINVAL);
}

/* hashmmap.h's creation limits are the ones hmm_open enforces: one over
 * each is -EINVAL before anything is made (anonymous maps: no file to
 * allocate), and a size under HMM_SIZE_MIN is raised to it. */
static void test_creation_limits_are_the_headers(void **state)
{
    (void)state;
    const hmm_config over[] = {
        {.size = HMM_SIZE_MAX + 1},
        {.size = HMM_SIZE_MIN, .max_size = HMM_MAX_SIZE_MAX + 1},
        {.max_value = HMM_MAX_VALUE_MAX + 1u},
        {.replog_size = HMM_REPLOG_SIZE_MAX + 1},
    };
    hmm_t *m;
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++)
        assert_int_equal(hmm_open_anon(&m, &over[i]), -EINVAL);
    hmm_config small = {.size = HMM_SIZE_MIN - 1};
    TU_OK(hmm_open_anon(&m, &small));
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.size, HMM_SIZE_MIN);
    hmm_close(m);
}

/* ---- anonymous maps ---- */

static hmm_t *anon_map;

static int child_puts_and_reads_parent(void *arg)
{
    (void)arg;
    char buf[16];
    size_t len = sizeof buf;
    int rc = 0;
    if (hmm_get(anon_map, "parent", 6, buf, &len) != 0 || len != 2)
        rc = 1;
    else if (hmm_put(anon_map, "child", 5, "hi", 2, 0, 0) != 0)
        rc = 2;
    /* Unmap before exiting: under valgrind the exit-time leak scan of a
     * mapping reserved beyond the memfd's end faults on every word and
     * takes minutes. */
    hmm_close(anon_map);
    return rc;
}

static void test_anonymous_map_is_shared_with_forked_children(void **state)
{
    TU_OK(hmm_open_anon(&anon_map, NULL));
    TU_OK(hmm_put(anon_map, "parent", 6, "yo", 2, 0, 0));
    pid_t pid = tu_fork(child_puts_and_reads_parent, NULL);
    assert_int_equal(tu_exit_code(tu_wait(pid, 10000)), 0);
    char buf[16];
    TU_OK(get_str(anon_map, "child", buf, sizeof buf));
    assert_string_equal(buf, "hi");
    hmm_close(anon_map);
}

/* ---- get and put ---- */

static void test_get_missing_key_returns_notfound(void **state)
{
    hmm_t *m = fresh();
    char buf[8];
    assert_int_equal(get_str(m, "nope", buf, sizeof buf), HMM_NOTFOUND);
    hmm_close(m);
}

static void test_get_small_buffer_returns_toosmall_with_needed_length(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "k", 1, "123456", 6, 0, 0));
    char buf[4] = "xxx";
    size_t len = 3;
    assert_int_equal(hmm_get(m, "k", 1, buf, &len), HMM_TOOSMALL);
    assert_int_equal(len, 6);
    assert_string_equal(buf, "xxx");
    len = 0;
    assert_int_equal(hmm_get(m, "k", 1, NULL, &len), HMM_TOOSMALL);
    assert_int_equal(len, 6);
    hmm_close(m);
}

static void test_put_nx_on_existing_key_returns_exists(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "k", 1, "a", 1, 0, HMM_NX));
    assert_int_equal(hmm_put(m, "k", 1, "b", 1, 0, HMM_NX), HMM_EXISTS);
    char buf[4];
    TU_OK(get_str(m, "k", buf, sizeof buf));
    assert_string_equal(buf, "a");
    hmm_close(m);
}

static void test_put_xx_on_missing_key_returns_notfound(void **state)
{
    hmm_t *m = fresh();
    assert_int_equal(hmm_put(m, "k", 1, "a", 1, 0, HMM_XX), HMM_NOTFOUND);
    TU_OK(hmm_put(m, "k", 1, "a", 1, 0, 0));
    TU_OK(hmm_put(m, "k", 1, "b", 1, 0, HMM_XX));
    hmm_close(m);
}

static void test_put_bad_flags_return_einval(void **state)
{
    hmm_t *m = fresh();
    assert_int_equal(hmm_put(m, "k", 1, "a", 1, 0, HMM_NX | HMM_XX), -EINVAL);
    assert_int_equal(hmm_put(m, "k", 1, "a", 1, 0, 0x80), -EINVAL);
    assert_int_equal(hmm_put_tagged(m, "k", 1, "a", 1, 0, 0, 256), -EINVAL);
    hmm_close(m);
}

static void test_null_or_empty_key_returns_einval(void **state)
{
    hmm_t *m = fresh();
    char buf[4];
    size_t len = sizeof buf;
    assert_int_equal(hmm_put(m, NULL, 1, "a", 1, 0, 0), -EINVAL);
    assert_int_equal(hmm_put(m, "", 0, "a", 1, 0, 0), -EINVAL);
    assert_int_equal(hmm_get(m, "", 0, buf, &len), -EINVAL);
    assert_int_equal(hmm_del(m, NULL, 0), -EINVAL);
    assert_int_equal(hmm_incr(m, "", 0, 1, NULL), -EINVAL);
    assert_int_equal(hmm_put(m, "k", 1, NULL, 1, 0, 0), -EINVAL);
    assert_int_equal(hmm_get(m, "k", 1, buf, NULL), -EINVAL);
    hmm_close(m);
}

static void test_oversize_key_or_value_returns_toobig(void **state)
{
    hmm_t *m = tu_open(tu_tmpdir(), 8 << 20, 0, 0);
    char *big = calloc(1, (1 << 20) + 1);
    assert_int_equal(hmm_put(m, big, 65536, "v", 1, 0, 0), HMM_TOOBIG);
    memset(big, 'k', 65535);
    TU_OK(hmm_put(m, big, 65535, "v", 1, 0, 0));
    assert_int_equal(hmm_put(m, "k", 1, big, (1 << 20) + 1, 0, 0), HMM_TOOBIG);
    free(big);
    hmm_close(m);
}

static void test_one_mebibyte_value_round_trips(void **state)
{
    hmm_t *m = tu_open(tu_tmpdir(), 8 << 20, 0, 0);
    size_t n = 1 << 20;
    char *v = malloc(n), *out = malloc(n);
    tu_value(v, n, "big", 7);
    TU_OK(hmm_put(m, "big", 3, v, n, 0, 0));
    size_t len = n;
    TU_OK(hmm_get(m, "big", 3, out, &len));
    assert_int_equal(len, n);
    assert_memory_equal(v, out, n);
    TU_OK(hmm_del(m, "big", 3));
    TU_OK(hmm_check(m, 0, NULL));
    free(v);
    free(out);
    hmm_close(m);
}

static void test_empty_value_and_binary_key_round_trip(void **state)
{
    hmm_t *m = fresh();
    const char key[] = {'a', 0, 'b', 0};
    TU_OK(hmm_put(m, key, sizeof key, "", 0, 0, 0));
    char buf[4];
    size_t len = sizeof buf;
    TU_OK(hmm_get(m, key, sizeof key, buf, &len));
    assert_int_equal(len, 0);
    len = sizeof buf;
    assert_int_equal(hmm_get(m, key, 2, buf, &len), HMM_NOTFOUND);
    hmm_close(m);
}

static void test_del_removes_and_missing_returns_notfound(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "k", 1, "a", 1, 0, 0));
    TU_OK(hmm_del(m, "k", 1));
    assert_int_equal(hmm_del(m, "k", 1), HMM_NOTFOUND);
    char buf[4];
    assert_int_equal(get_str(m, "k", buf, sizeof buf), HMM_NOTFOUND);
    hmm_close(m);
}

/* ---- counters ---- */

static void test_incr_creates_counter_at_zero_and_reads_as_text(void **state)
{
    hmm_t *m = fresh();
    int64_t v;
    TU_OK(hmm_incr(m, "n", 1, 5, &v));
    assert_int_equal(v, 5);
    TU_OK(hmm_incr(m, "n", 1, -7, &v));
    assert_int_equal(v, -2);
    TU_OK(hmm_incr(m, "n", 1, 1, NULL));
    char buf[32];
    TU_OK(get_str(m, "n", buf, sizeof buf));
    assert_string_equal(buf, "-1");
    hmm_entry_info info;
    size_t len = sizeof buf;
    TU_OK(hmm_get_info(m, "n", 1, buf, &len, &info));
    assert_int_equal(info.tag, HMM_TAG_COUNTER);
    hmm_close(m);
}

static void test_incr_on_decimal_text_value_counts_on(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "n", 1, "17", 2, 0, 0));
    int64_t v;
    TU_OK(hmm_incr(m, "n", 1, 1, &v));
    assert_int_equal(v, 18);
    hmm_close(m);
}

static void test_incr_on_non_number_or_overflow_returns_notnum(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "s", 1, "abc", 3, 0, 0));
    assert_int_equal(hmm_incr(m, "s", 1, 1, NULL), HMM_NOTNUM);
    TU_OK(hmm_put(m, "e", 1, "", 0, 0, 0));
    assert_int_equal(hmm_incr(m, "e", 1, 1, NULL), HMM_NOTNUM);
    TU_OK(hmm_incr(m, "n", 1, INT64_MAX, NULL));
    assert_int_equal(hmm_incr(m, "n", 1, 1, NULL), HMM_NOTNUM);
    char buf[32];
    TU_OK(get_str(m, "n", buf, sizeof buf));
    assert_string_equal(buf, "9223372036854775807");
    hmm_close(m);
}

/* ---- versions and cas ---- */

static uint64_t version_of(hmm_t *m, const char *key)
{
    char buf[64];
    size_t len = sizeof buf;
    uint64_t v = 0;
    TU_OK(hmm_getv(m, key, strlen(key), buf, &len, &v));
    return v;
}

static void test_versions_grow_across_delete_and_reopen(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    TU_OK(hmm_put(m, "k", 1, "a", 1, 0, 0));
    uint64_t v1 = version_of(m, "k");
    TU_OK(hmm_put(m, "k", 1, "b", 1, 0, 0));
    uint64_t v2 = version_of(m, "k");
    TU_OK(hmm_del(m, "k", 1));
    TU_OK(hmm_put(m, "k", 1, "c", 1, 0, 0));
    uint64_t v3 = version_of(m, "k");
    hmm_close(m);
    m = tu_open(dir, 0, 0, 0);
    TU_OK(hmm_put(m, "k", 1, "d", 1, 0, 0));
    uint64_t v4 = version_of(m, "k");
    assert_true(v1 > 0 && v1 < v2 && v2 < v3 && v3 < v4);
    hmm_close(m);
}

static void test_cas_with_stale_version_returns_mismatch(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "k", 1, "a", 1, 0, 0));
    uint64_t v = version_of(m, "k");
    TU_OK(hmm_cas(m, "k", 1, "b", 1, 0, v));
    assert_int_equal(hmm_cas(m, "k", 1, "c", 1, 0, v), HMM_MISMATCH);
    char buf[4];
    TU_OK(get_str(m, "k", buf, sizeof buf));
    assert_string_equal(buf, "b");
    hmm_close(m);
}

static void test_cas_with_zero_requires_absent_key(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_cas(m, "k", 1, "a", 1, 0, 0));
    assert_int_equal(hmm_cas(m, "k", 1, "b", 1, 0, 0), HMM_MISMATCH);
    hmm_close(m);
}

static void test_del_version_with_stale_version_returns_mismatch_and_keeps_the_entry(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "k", 1, "a", 1, 0, 0));
    uint64_t v = version_of(m, "k");
    TU_OK(hmm_put(m, "k", 1, "b", 1, 0, 0)); /* another writer, after our read */
    assert_int_equal(hmm_del_version(m, "k", 1, v), HMM_MISMATCH);
    char buf[4];
    TU_OK(get_str(m, "k", buf, sizeof buf));
    assert_string_equal(buf, "b");
    TU_OK(hmm_del_version(m, "k", 1, version_of(m, "k")));
    assert_int_equal(get_str(m, "k", buf, sizeof buf), HMM_NOTFOUND);
    assert_int_equal(hmm_del_version(m, "k", 1, v), HMM_NOTFOUND);
    hmm_close(m);
}

static void test_cas_tagged_keeps_the_tag_and_checks_the_version(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put_tagged(m, "k", 1, "a", 1, 0, 0, 7));
    uint64_t v = version_of(m, "k");
    TU_OK(hmm_cas_tagged(m, "k", 1, "b", 1, 0, v, 9));
    assert_int_equal(hmm_cas_tagged(m, "k", 1, "c", 1, 0, v, 9), HMM_MISMATCH);
    assert_int_equal(hmm_cas_tagged(m, "k", 1, "c", 1, 0, 0, 256), -EINVAL);
    char buf[4];
    size_t len = sizeof buf;
    hmm_entry_info info;
    TU_OK(hmm_get_info(m, "k", 1, buf, &len, &info));
    assert_int_equal(info.tag, 9);
    assert_memory_equal(buf, "b", 1);
    hmm_close(m);
}

/* ---- TTL ---- */

static void test_expired_entry_reads_as_absent(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "t", 1, "x", 1, 50, 0));
    char buf[4];
    TU_OK(get_str(m, "t", buf, sizeof buf));
    usleep(150 * 1000);
    assert_int_equal(get_str(m, "t", buf, sizeof buf), HMM_NOTFOUND);
    assert_int_equal(hmm_del(m, "t", 1), HMM_NOTFOUND);
    TU_OK(hmm_put(m, "t", 1, "y", 1, 0, HMM_NX));
    hmm_close(m);
}

/* ---- batched gets ---- */

/* Keys of many lengths (1, 16 and 40 bytes: inline compares and memcmp),
 * values of 0, 8 and 100 bytes, some tagged; one expires, one has a TTL. */
static int batch_fill(hmm_t *m, char keys[][48], int n)
{
    char val[100];
    for (int i = 0; i < n; i++) {
        int kl = i % 3 == 0 ? 16 : i % 3 == 1 ? 40 : 1;
        memset(keys[i], 'a' + i % 26, 48);
        snprintf(keys[i], 12, "%d/", i);
        keys[i][strlen(keys[i])] = '.';
        keys[i][kl] = '\0';
        if (kl == 1)
            keys[i][0] = (char)(0x80 + i / 3); /* one-byte keys, distinct for i < 384 */
        size_t vl = i % 4 == 0 ? 0 : i % 4 == 1 ? 8 : 100;
        memset(val, 'v' + i % 3, sizeof val);
        TU_OK(hmm_put_tagged(m, keys[i], strlen(keys[i]), val, vl, i == 7 ? 1 : i == 8 ? 600000 : 0, 0,
                             i % 10 == 5 ? 3 : 0));
    }
    return n;
}

static void test_get_batch_returns_what_each_get_info_returns(void **state)
{
    enum { PRESENT = 200, N = 300 };
    hmm_t *m = tu_open(tu_tmpdir(), 4 << 20, 0, 0);
    static char keys[PRESENT][48], vals[N][100], want[100];
    batch_fill(m, keys, PRESENT);
    usleep(20 * 1000); /* key 7 expires */
    TU_OK(hmm_del(m, keys[9], strlen(keys[9])));
    const void *kp[N];
    size_t klens[N], vlens[N];
    void *vp[N];
    int rcs[N];
    char absent[N][16];
    for (int i = 0; i < N; i++) {
        /* Present keys, absent ones, and repeats, interleaved. */
        if (i % 5 == 4) {
            snprintf(absent[i], sizeof absent[i], "absent-%d", i);
            kp[i] = absent[i];
        } else {
            kp[i] = keys[(i * 7) % PRESENT];
        }
        klens[i] = strlen(kp[i]);
        vp[i] = vals[i];
        vlens[i] = sizeof vals[i];
    }
    static hmm_entry_info infos[N];
    TU_OK(hmm_get_batch(m, N, kp, klens, vp, vlens, rcs, infos));
    int found = 0;
    for (int i = 0; i < N; i++) {
        size_t len = sizeof want;
        hmm_entry_info info;
        int rc = hmm_get_info(m, kp[i], klens[i], want, &len, &info);
        assert_int_equal(rcs[i], rc);
        if (rc == 0) {
            found++;
            assert_int_equal(vlens[i], len);
            assert_memory_equal(vals[i], want, len);
            assert_int_equal(infos[i].version, info.version);
            assert_int_equal(infos[i].expire_ms, info.expire_ms);
            assert_int_equal(infos[i].tag, info.tag);
        }
    }
    assert_true(found > N / 2);
    hmm_close(m);
}

/* Key i of full_map_key: klen bytes, i in the first of them (little
 * endian, as many as klen allows, at least enough to tell i apart). */
static size_t full_map_key(char *key, int i)
{
    size_t need = i < 256 ? 1 : i < 65536 ? 2 : 3;
    size_t klen = 1 + (size_t)i % 40 < need ? need : 1 + (size_t)i % 40;
    memset(key, 'a' + i % 26, klen);
    for (size_t b = 0; b < klen && b < 8; b++)
        key[b] = (char)((uint64_t)i >> (8 * b) & 0xff);
    return klen;
}

/* A map that cannot grow, filled until it refuses (its index as full as
 * its data: keys past their home bucket), values of 0 to 200 bytes (with
 * and without a format-2 copy), keys of 1 to 40 bytes, expired and tagged
 * entries; asked for with room for the value, too little room, and none
 * (a NULL buffer), with infos and without.  Every answer is hmm_get_info's. */
static void test_get_batch_answers_as_get_info_in_a_full_map(void **state)
{
    enum { MAXK = 6000, N = MAXK + MAXK / 4, VMAX = 256 };
    static const size_t vls[] = {0, 1, 8, 9, 12, 16, 40, 200};
    hmm_t *m = tu_open(tu_tmpdir(), 512 << 10, 512 << 10, 0);
    static char keys[N][40], vals[N][VMAX], want[VMAX];
    static size_t klens[N], vlens[N], caps[N];
    static const void *kp[N];
    static void *vp[N];
    static int rcs[N];
    static hmm_entry_info infos[N];
    int present = 0, n = 0;
    char val[VMAX];
    for (; present < MAXK; present++) {
        int i = present;
        size_t kl = full_map_key(keys[n], i), vl = vls[i % 8];
        memset(val, 'v' + i % 3, vl);
        int rc = hmm_put_tagged(m, keys[n], kl, val, vl, i % 13 == 6 ? 1 : 0, 0, i % 10 == 5 ? 3 : 0);
        if (rc == HMM_FULL)
            break;
        TU_OK(rc);
        klens[n++] = kl;
        if (i % 4 == 3) { /* a key never put */
            klens[n] = full_map_key(keys[n], MAXK + i);
            n++;
        }
    }
    assert_true(present > 2000);
    usleep(20 * 1000); /* the 1 ms TTLs expire */
    for (int with_infos = 0; with_infos < 2; with_infos++) {
        for (int i = 0; i < n; i++) {
            kp[i] = keys[i];
            caps[i] = vlens[i] = i % 3 == 0 ? 0 : i % 3 == 1 ? 8 : VMAX;
            vp[i] = i % 3 == 0 ? NULL : vals[i];
        }
        TU_OK(hmm_get_batch(m, (size_t)n, kp, klens, vp, vlens, rcs, with_infos ? infos : NULL));
        for (int i = 0; i < n; i++) {
            size_t len = caps[i];
            hmm_entry_info info;
            int rc = hmm_get_info(m, kp[i], klens[i], caps[i] ? want : NULL, &len, &info);
            if (rcs[i] != rc || ((rc == 0 || rc == HMM_TOOSMALL) && vlens[i] != len))
                fail_msg("key %d (%zu bytes, room %zu%s): the batch said %s, %zu bytes; hmm_get_info %s, %zu",
                         i, klens[i], caps[i], with_infos ? ", infos" : "", hmm_errname(rcs[i]), vlens[i],
                         hmm_errname(rc), len);
            if (rc == 0)
                assert_memory_equal(vals[i], want, len);
            if (rc == 0 && with_infos && (infos[i].version != info.version || infos[i].expire_ms != info.expire_ms ||
                                          infos[i].tag != info.tag))
                fail_msg("key %d: the batch's info is version %" PRIu64 ", tag %u; hmm_get_info's %" PRIu64 ", %u", i,
                         infos[i].version, (unsigned)infos[i].tag, info.version, (unsigned)info.tag);
        }
    }
    hmm_close(m);
}

static void test_get_batch_reports_each_keys_own_error(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "big", 3, "0123456789", 10, 0, 0));
    TU_OK(hmm_put(m, "ok", 2, "v", 1, 0, 0));
    char small[4], roomy[16], big_key[70000];
    memset(big_key, 'k', sizeof big_key);
    const void *kp[4] = {"big", NULL, big_key, "ok"};
    size_t klens[4] = {3, 1, sizeof big_key, 2}, vlens[4] = {sizeof small, 0, 0, sizeof roomy};
    void *vp[4] = {small, NULL, NULL, roomy};
    int rcs[4];
    TU_OK(hmm_get_batch(m, 4, kp, klens, vp, vlens, rcs, NULL));
    assert_int_equal(rcs[0], HMM_TOOSMALL);
    assert_int_equal(vlens[0], 10); /* the size needed */
    assert_int_equal(rcs[1], -EINVAL);
    assert_int_equal(rcs[2], HMM_TOOBIG);
    TU_OK(rcs[3]);
    assert_int_equal(vlens[3], 1);
    assert_memory_equal(roomy, "v", 1);
    /* The call itself: NULL arrays are refused, an empty batch is fine. */
    assert_int_equal(hmm_get_batch(m, 1, NULL, klens, vp, vlens, rcs, NULL), -EINVAL);
    assert_int_equal(hmm_get_batch(NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL), -EINVAL);
    TU_OK(hmm_get_batch(m, 0, NULL, NULL, NULL, NULL, NULL, NULL));
    hmm_close(m);
}

static void test_get_batch_counts_one_get_per_key(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "a", 1, "1", 1, 0, 0));
    hmm_stats before, after;
    TU_OK(hmm_stat(m, &before));
    const void *kp[3] = {"a", "b", "a"};
    size_t klens[3] = {1, 1, 1}, vlens[3] = {4, 4, 4};
    char v[3][4];
    void *vp[3] = {v[0], v[1], v[2]};
    int rcs[3];
    TU_OK(hmm_get_batch(m, 3, kp, klens, vp, vlens, rcs, NULL));
    TU_OK(hmm_stat(m, &after));
    assert_int_equal(after.counters[HMM_C_GETS] - before.counters[HMM_C_GETS], 3);
    assert_int_equal(after.counters[HMM_C_MISSES] - before.counters[HMM_C_MISSES], 1);
    hmm_close(m);
}

/* A read-only handle never writes the file, not even cache mode's recency
 * mark (its mapping is read-only: a store would be a crash). */
static void test_read_only_handle_reads_a_cache_map_without_writing(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *w = tu_open(dir, 1 << 20, 0, HMM_CACHE);
    TU_OK(hmm_put(w, "k", 1, "v", 1, 0, 0));
    hmm_close(w);
    hmm_config cfg = {.flags = HMM_RDONLY};
    hmm_t *r;
    TU_OK(hmm_open(&r, dir, &cfg));
    char buf[4];
    TU_OK(get_str(r, "k", buf, sizeof buf));
    assert_string_equal(buf, "v");
    const void *kp[1] = {"k"};
    size_t klens[1] = {1}, vlens[1] = {sizeof buf};
    void *vp[1] = {buf};
    int rcs[1];
    TU_OK(hmm_get_batch(r, 1, kp, klens, vp, vlens, rcs, NULL));
    TU_OK(rcs[0]);
    hmm_close(r);
}

static void test_default_ttl_applies_and_survives_reopen(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_config cfg = {.size = 1 << 20, .flags = HMM_CREATE, .default_ttl_ms = 100};
    hmm_t *m;
    TU_OK(hmm_open(&m, dir, &cfg));
    hmm_close(m);
    m = tu_open(dir, 0, 0, 0);
    TU_OK(hmm_put(m, "t", 1, "x", 1, 0, 0));
    TU_OK(hmm_put(m, "long", 4, "x", 1, 60000, 0));
    hmm_entry_info info;
    char buf[4];
    size_t len = sizeof buf;
    TU_OK(hmm_get_info(m, "t", 1, buf, &len, &info));
    assert_true(info.expire_ms > 0);
    usleep(250 * 1000);
    assert_int_equal(get_str(m, "t", buf, sizeof buf), HMM_NOTFOUND);
    TU_OK(get_str(m, "long", buf, sizeof buf));
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.default_ttl_ms, 100);
    hmm_close(m);
}

/* ---- cursors ---- */

static void test_cursor_returns_every_key_exactly_once(void **state)
{
    hmm_t *m = tu_open(tu_tmpdir(), 4 << 20, 0, 0);
    enum { N = 10000 };
    char key[32];
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        TU_OK(hmm_put(m, key, (size_t)kl, key, (size_t)kl, 0, 0));
    }
    char *seen = calloc(N, 1);
    hmm_cursor *c;
    TU_OK(hmm_cursor_open(m, &c));
    const void *k, *v;
    size_t kl, vl;
    int n = 0, rc;
    while ((rc = hmm_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
        assert_true(kl == vl && memcmp(k, v, kl) == 0);
        int i = atoi((const char *)k + 4);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        n++;
    }
    assert_int_equal(rc, HMM_NOTFOUND);
    assert_int_equal(n, N);
    hmm_cursor_close(c);
    free(seen);
    hmm_close(m);
}

static void test_cursor_on_empty_map_ends_at_once(void **state)
{
    hmm_t *m = fresh();
    hmm_cursor *c;
    TU_OK(hmm_cursor_open(m, &c));
    const void *k, *v;
    size_t kl, vl;
    assert_int_equal(hmm_cursor_next(c, &k, &kl, &v, &vl), HMM_NOTFOUND);
    hmm_cursor_close(c);
    hmm_close(m);
}

static void test_cursor_with_deletes_meanwhile_never_repeats_a_key(void **state)
{
    hmm_t *m = tu_open(tu_tmpdir(), 4 << 20, 0, 0);
    enum { N = 5000 };
    char key[32];
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        TU_OK(hmm_put(m, key, (size_t)kl, "v", 1, 0, 0));
    }
    char *seen = calloc(N, 1);
    hmm_cursor *c;
    TU_OK(hmm_cursor_open(m, &c));
    const void *k, *v;
    size_t kl, vl;
    int step = 0;
    while (hmm_cursor_next(c, &k, &kl, &v, &vl) == 0) {
        int i = atoi((const char *)k + 4);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        /* delete one key, re-insert another: they may or may not show up */
        int d = (step * 7919) % N;
        int len = snprintf(key, sizeof key, "key-%d", d);
        hmm_del(m, key, (size_t)len);
        hmm_put(m, key, (size_t)len, "w", 1, 0, 0);
        step++;
    }
    hmm_cursor_close(c);
    free(seen);
    hmm_close(m);
}

/* ---- full ---- */

static void test_full_map_returns_full_and_deleting_makes_room(void **state)
{
    hmm_t *m = tu_open(tu_tmpdir(), 1 << 20, 0, 0);
    char key[32], val[200];
    memset(val, 'v', sizeof val);
    int n = 0, rc = 0;
    for (; n < 100000; n++) {
        int kl = snprintf(key, sizeof key, "k%d", n);
        rc = hmm_put(m, key, (size_t)kl, val, sizeof val, 0, 0);
        if (rc)
            break;
    }
    assert_int_equal(rc, HMM_FULL);
    assert_true(n > 1000);
    for (int i = 0; i < 100; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        TU_OK(hmm_del(m, key, (size_t)kl));
    }
    for (int i = 0; i < 100; i++) {
        int kl = snprintf(key, sizeof key, "n%d", i);
        TU_OK(hmm_put(m, key, (size_t)kl, val, sizeof val, 0, 0));
    }
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_true(st.counters[HMM_C_FULL_ERRORS] >= 1);
    TU_OK(hmm_check(m, 0, NULL));
    hmm_close(m);
}

/* DESIGN.md §4.9: HMM_FULL means the live entries fill the data area.
 * Every class in use holds at least one page, so a map of few pages was
 * full long before: with pages of 64 KiB and more (until 2026-12-05) these
 * maps were full at 2.2%, 13% and 62% of their data area (63%, 70% and
 * 81% now, bench/fillratio).  What is left is the slab classes' rounding
 * and the tails of pages (FORMAT.md §6). */
static void test_values_of_mixed_sizes_fill_a_small_map_before_it_is_full(void **state)
{
    (void)state;
    static const uint64_t sizes[] = {256 << 10, 1 << 20, 4 << 20};
    static char val[2000];
    memset(val, 'v', sizeof val);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        hmm_t *m = tu_open(tu_tmpdir(), sizes[i], 0, 0);
        uint64_t rng = 42;
        int n = 0, rc = 0;
        for (; n < 100000 && rc == 0; n++) {
            char key[32];
            int kl = snprintf(key, sizeof key, "k%d", n);
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            rc = hmm_put(m, key, (size_t)kl, val, 1 + (rng >> 33) % sizeof val, 0, 0);
        }
        assert_int_equal(rc, HMM_FULL);
        hmm_stats st;
        TU_OK(hmm_stat(m, &st));
        double fill = (double)st.bytes_used / (double)st.bytes_total;
        if (fill < 0.6)
            fail_msg("a %llu-byte map refused its value %d with %.1f%% of its data area in use (%u-byte pages)",
                     (unsigned long long)sizes[i], n, 100 * fill, st.page_size);
        hmm_close(m);
    }
}

/* Puts of vlen-byte values under prefix until the first refusal; how many. */
static int fill_until_full(hmm_t *m, const char *prefix, size_t vlen)
{
    static char val[256 << 10];
    char key[32];
    memset(val, 'v', vlen);
    int n = 0, rc = 0;
    for (; n < 100000; n++) {
        int kl = snprintf(key, sizeof key, "%s%d", prefix, n);
        if ((rc = hmm_put(m, key, (size_t)kl, val, vlen, 0, 0)) != 0)
            break;
    }
    assert_int_equal(rc, HMM_FULL);
    return n;
}

/* FORMAT.md §6: freed space serves any later size, also values that take
 * runs of whole pages.  Deletes leave a spare chunk in most stripes, spread
 * over every page of the small values' class: they must be given back, the
 * deleting process's own stripe's too, before a run is refused. */
static void test_emptied_map_stores_values_of_whole_pages_as_a_fresh_one(void **state)
{
    (void)state;
    static const size_t sizes[] = {30000, 200000}; /* a run of one page, of four */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        hmm_t *fresh_map = tu_open(tu_tmpdir(), 256 << 10, 0, 0);
        int fresh_n = fill_until_full(fresh_map, "b", sizes[i]);
        hmm_close(fresh_map);
        assert_true(fresh_n >= 1);

        hmm_t *m = tu_open(tu_tmpdir(), 256 << 10, 0, 0);
        int small = fill_until_full(m, "a", 40);
        char key[32];
        for (int k = 0; k < small; k++) {
            int kl = snprintf(key, sizeof key, "a%d", k);
            TU_OK(hmm_del(m, key, (size_t)kl));
        }
        int n = fill_until_full(m, "b", sizes[i]);
        if (n < fresh_n)
            fail_msg("%zu-byte values: %d in the emptied map, %d in a fresh one", sizes[i], n, fresh_n);
        hmm_check_result r;
        TU_OK(hmm_check(m, 0, &r));
        assert_int_equal(r.unreachable + r.bad_slots, 0);
        hmm_close(m);
    }
}

/* A class whose chunks fill a page exactly (64 bytes here) leaves its carve
 * pointer, once a page is carved to the end, on the first byte of the next
 * page.  When that page is the class's too, full of live entries, it is not
 * "a page with nothing carved yet": compaction once took it for empty and
 * handed it back, and the next class to take it wiped its entries (every
 * key of a page lost, found by test_torture's cache map).  The class here
 * gets a page, then the page before it (freed by another class), carves
 * that one to the end and is asked for its empty pages. */
static int put_sized(hmm_t *m, char prefix, int i, size_t vlen)
{
    char key[16], val[256];
    snprintf(key, sizeof key, "%c%07d", prefix, i); /* 8 bytes: 32 + 8 + 24 = 64 */
    memset(val, prefix, vlen);
    return hmm_put(m, key, 8, val, vlen, 0, 0);
}

static int op_sized(hmm_t *m, char prefix, int i, bool del)
{
    char key[16], val[256];
    size_t len = sizeof val;
    snprintf(key, sizeof key, "%c%07d", prefix, i);
    return del ? hmm_del(m, key, 8) : hmm_get(m, key, 8, val, &len);
}

static void test_page_after_a_fully_carved_page_keeps_its_entries(void **state)
{
    (void)state;
    hmm_t *m = tu_open(tu_tmpdir(), 512 << 10, 512 << 10, HMM_NOREPLOG);
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    const int per_page = (int)(st.page_size / 64);
    const size_t small = 24, other = 200;
    TU_OK(put_sized(m, 'd', 0, other));           /* another class takes the first free page */
    int n = 0, rc = 0;
    for (; n < per_page; n++)                     /* the 64-byte class: the next page, whole */
        TU_OK(put_sized(m, 'c', n, small));
    TU_OK(op_sized(m, 'd', 0, true));             /* the first page's class is empty now */
    for (; n < 100000 && (rc = put_sized(m, 'c', n, small)) == 0; n++)
        ;                                         /* on until full: the first page comes back to 'c' */
    assert_int_equal(rc, HMM_FULL);
    assert_true(n > 2 * per_page);
    for (int i = per_page; i < 2 * per_page; i++) /* a page's worth of free chunks, so it is scanned */
        TU_OK(op_sized(m, 'c', i, true));
    TU_OK(put_sized(m, 'd', 1, other));           /* needs a page: the empty ones are handed back */
    int lost = 0;
    for (int i = 0; i < n; i++)
        if ((i < per_page || i >= 2 * per_page) && op_sized(m, 'c', i, false) != 0)
            lost++;
    if (lost)
        fail_msg("%d of %d acknowledged keys lost", lost, n - per_page);
    hmm_check_result r;
    TU_OK(hmm_check(m, 0, &r));
    assert_int_equal(r.bad_entries + r.bad_slots + r.unreachable, 0);
    hmm_close(m);
}

/* A persistent map full of expired values of one page each: a put of such
 * a value reclaims them and is stored.  An expired run's pages are free at
 * once, with no class page to hand back, and the put once reclaimed all of
 * them and still said HMM_FULL (the same put again was stored). */
static void test_map_full_of_expired_runs_takes_a_run(void **state)
{
    (void)state;
    hmm_t *m = tu_open(tu_tmpdir(), 1 << 20, 1 << 20, HMM_NOREPLOG);
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    static char val[256 << 10];
    size_t vlen = st.page_size - st.page_size / 8; /* over the largest class: a run of one page */
    memset(val, 'x', vlen);
    int n = 0, rc = 0;
    for (; n < 10000; n++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "run%04d", n);
        if ((rc = hmm_put(m, key, (size_t)kl, val, vlen, 40, 0)) != 0)
            break;
    }
    assert_int_equal(rc, HMM_FULL);
    assert_true(n >= 2);
    usleep(100 * 1000);
    rc = hmm_put(m, "new", 3, val, vlen, 0, 0);
    if (rc)
        fail_msg("a run into a map of %d expired runs: %s (%s)", n, hmm_errname(rc), hmm_last_error());
    TU_OK(hmm_check(m, 0, NULL));
    hmm_close(m);
}

/* Expired entries read as absent and are not live: a persistent map full
 * of them must take new keys (reclaiming them), not say HMM_FULL. */
static void test_map_full_of_expired_entries_takes_new_keys(void **state)
{
    (void)state;
    hmm_t *m = tu_open(tu_tmpdir(), 256 << 10, 0, 0);
    char key[32], val[200];
    memset(val, 'v', sizeof val);
    int n = 0, rc = 0;
    for (; n < 100000; n++) {
        int kl = snprintf(key, sizeof key, "t%d", n);
        if ((rc = hmm_put(m, key, (size_t)kl, val, sizeof val, 50, 0)) != 0)
            break;
    }
    assert_int_equal(rc, HMM_FULL);
    usleep(150 * 1000);
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "new%d", i);
        rc = hmm_put(m, key, (size_t)kl, val, sizeof val, 0, 0);
        if (rc != 0)
            fail_msg("new key %d of %d after every entry expired: %s (%s)", i, n, hmm_errname(rc), hmm_last_error());
    }
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_true(st.counters[HMM_C_EXPIRATIONS] > 0);
    hmm_check_result r;
    TU_OK(hmm_check(m, 0, &r));
    assert_int_equal(r.unreachable + r.bad_slots, 0);
    assert_int_equal(r.entries, (uint64_t)n);
    hmm_close(m);
}

/* ---- stat, sync, check, procs, errors ---- */

static void test_stat_counts_items_and_bytes(void **state)
{
    hmm_t *m = fresh();
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.items, 0);
    TU_OK(hmm_put(m, "a", 1, "xyz", 3, 0, 0));
    TU_OK(hmm_put(m, "b", 1, "xyz", 3, 0, 0));
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.items, 2);
    uint64_t used = st.bytes_used;
    assert_true(used > 0 && st.bytes_total >= st.size - 65536);
    TU_OK(hmm_del(m, "a", 1));
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.items, 1);
    assert_true(st.bytes_used < used);
    assert_int_equal(st.format_version, tu_inline_maps() ? 4 : 3);
    assert_int_equal(st.max_key, 65535);
    assert_true(st.max_value >= 1u << 20);
    assert_int_equal(st.nprocs, 1);
    TU_OK(hmm_sync(m));
    hmm_close(m);
}

/* A process that exits without hmm_close (every program under the DNS
 * shim) leaves its process-table entry until an open reaps it; it does
 * not have the map open, so nprocs must not count it. */
static void test_stat_nprocs_leaves_out_a_process_that_exited_without_close(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tu_die_with_parent(parent);
        /* Both handles stay open, held from a static so that valgrind's
         * leak check at _exit (CI runs test_api under it, with an error
         * exit code) sees them reachable and keeps our exit code. */
        static hmm_t *kept[2];
        hmm_config cfg = {0};
        kept[0] = m;
        _exit(hmm_open(&kept[1], dir, &cfg) == 0 ? 0 : 1); /* no hmm_close */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(tu_exit_code(status), 0);
    size_t listed = 0;
    TU_OK(hmm_procs(m, NULL, 0, &listed));
    assert_int_equal(listed, 2); /* the dead entry is still there... */
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.nprocs, 1); /* ...but only this process has the map open */
    hmm_close(m);
}

/* Under valgrind a handle marks its reservation past the file's end as no
 * memory, and takes it back as it meets pages beyond what it has checked
 * (core/map.c).  Another handle (here in the same process, the same as in
 * another) grows the file with runs of whole pages; the first then puts
 * small values, whose class takes a page the growth added, checks the map
 * and walks it: memcheck must find nothing.  Meaningful only under
 * valgrind (make check-valgrind), skipped otherwise. */
static void test_pages_another_handle_added_are_memory_to_memcheck(void **state)
{
#ifdef HAVE_VALGRIND_MEMCHECK_H
    if (!RUNNING_ON_VALGRIND)
        skip();
    const char *dir = tu_tmpdir();
    hmm_t *a = tu_open(dir, 1 << 20, 64 << 20, 0);
    hmm_t *b = tu_open(dir, 1 << 20, 64 << 20, 0);
    static char val[20000];
    char key[32];
    hmm_stats before, after;
    TU_OK(hmm_stat(b, &before));
    for (int i = 0; i < 60; i++) { /* about 1.5 times the entry pages of 1 MiB */
        snprintf(key, sizeof key, "run%d", i);
        TU_OK(hmm_put(b, key, strlen(key), val, sizeof val, 0, 0));
    }
    TU_OK(hmm_stat(b, &after));
    assert_true(after.file_size > before.file_size);
    unsigned errors = VALGRIND_COUNT_ERRORS;
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "small%d", i);
        TU_OK(hmm_put(a, key, strlen(key), val, 100, 0, 0));
    }
    TU_OK(hmm_check(a, 0, NULL));
    assert_int_equal(tu_cursor_count(a), 80);
    if (VALGRIND_COUNT_ERRORS != errors)
        fail_msg("memcheck found %u errors in a handle's use of pages another handle added",
                 VALGRIND_COUNT_ERRORS - errors);
    hmm_close(b);
    hmm_close(a);
#else
    skip();
#endif
}

static void test_check_on_healthy_map_returns_zero(void **state)
{
    hmm_t *m = fresh();
    for (int i = 0; i < 100; i++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "k%d", i);
        TU_OK(hmm_put(m, key, (size_t)kl, key, (size_t)kl, 0, 0));
    }
    hmm_check_result r;
    TU_OK(hmm_check(m, 0, &r));
    assert_int_equal(r.entries, 100);
    assert_int_equal(r.unreachable + r.bad_entries + r.bad_slots, 0);
    hmm_close(m);
}

static void test_procs_lists_this_process(void **state)
{
    hmm_t *m = fresh();
    hmm_proc_info p[8];
    size_t n;
    TU_OK(hmm_procs(m, p, 8, &n));
    assert_int_equal(n, 1);
    assert_int_equal(p[0].pid, getpid());
    assert_int_equal(p[0].alive, 1);
    hmm_close(m);
}

static void test_every_code_has_a_sentence_and_a_name(void **state)
{
    static const int codes[] = {HMM_NOTFOUND, HMM_EXISTS, HMM_MISMATCH, HMM_FULL, HMM_TOOSMALL,
                                HMM_TOOBIG, HMM_NOTNUM, HMM_CORRUPT, HMM_INCOMPAT, HMM_BUSY, HMM_REPLICA};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(strlen(hmm_strerror(codes[i])) > 10);
        assert_memory_equal(hmm_errname(codes[i]), "HMM_", 4);
    }
    assert_string_equal(hmm_errname(-ENOENT), "ENOENT");
    assert_true(strlen(hmm_strerror(-ENOENT)) > 5);
    assert_string_equal(hmm_strerror(0), "success");
    int major = -1;
    assert_non_null(hmm_version(&major, NULL, NULL));
    assert_int_equal(major, HMM_VERSION_MAJOR);
    for (int i = 0; i < HMM_COUNTER_COUNT; i++)
        assert_non_null(hmm_counter_name(i));
    assert_null(hmm_counter_name(HMM_COUNTER_COUNT));
}

/* ---- hmm_last_error: the detail of this thread's latest call ---- */

static void test_last_error_describes_the_latest_failure_only(void **state)
{
    hmm_t *m = fresh();
    static char big[HMM_MAX_KEY + 1];
    memset(big, 'k', sizeof big);
    assert_int_equal(hmm_put(m, big, sizeof big, "v", 1, 0, 0), HMM_TOOBIG);
    assert_non_null(strstr(hmm_last_error(), "65536"));   /* names the key's length */

    TU_OK(hmm_put(m, "k", 1, "v", 1, 0, 0));
    assert_string_equal(hmm_last_error(), "");             /* a success keeps no older detail */

    assert_int_equal(hmm_put(m, "k", 1, "v", 1, 0, HMM_NX | HMM_XX), -EINVAL);
    assert_non_null(strstr(hmm_last_error(), "HMM_NX"));   /* the new failure, not the old one */
    assert_null(strstr(hmm_last_error(), "65536"));

    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_string_equal(hmm_last_error(), "");
    hmm_close(m);
}

static void test_last_error_names_the_map_of_a_failing_write(void **state)
{
    char *dir = tu_tmpdir();
    hmm_close(tu_open(dir, 1 << 20, 0, 0));
    hmm_config cfg = {.flags = HMM_RDONLY};
    hmm_t *r;
    TU_OK(hmm_open(&r, dir, &cfg));
    assert_int_equal(hmm_del(r, "k", 1), -EBADF);
    assert_non_null(strstr(hmm_last_error(), dir));
    assert_non_null(strstr(hmm_last_error(), "read-only"));
    hmm_close(r);
}

static void test_answers_leave_no_detail(void **state)
{
    hmm_t *m = fresh();
    assert_int_equal(hmm_put(m, "", 0, "v", 1, 0, 0), -EINVAL);
    assert_string_not_equal(hmm_last_error(), "");
    char buf[4];
    size_t len = sizeof buf;
    assert_int_equal(hmm_get(m, "absent", 6, buf, &len), HMM_NOTFOUND); /* a miss is an answer */
    assert_string_equal(hmm_last_error(), "");
    TU_OK(hmm_put(m, "k", 1, "value", 5, 0, 0));
    assert_int_equal(hmm_put(m, "k", 1, "v", 1, 0, HMM_NX), HMM_EXISTS);
    assert_string_equal(hmm_last_error(), "");
    assert_int_equal(hmm_cas(m, "k", 1, "v", 1, 0, 12345), HMM_MISMATCH);
    assert_string_equal(hmm_last_error(), "");
    len = 2;
    assert_int_equal(hmm_get(m, "k", 1, buf, &len), HMM_TOOSMALL);
    assert_string_equal(hmm_last_error(), "");
    hmm_close(m);
}

/* hmm_get's fast path (a warm handle, a quiet stripe) is a public entry too. */
static void test_a_get_on_a_warm_handle_clears_an_older_failure(void **state)
{
    hmm_t *m = fresh();
    char buf[8];
    size_t len = sizeof buf;
    TU_OK(hmm_put(m, "k", 1, "value", 5, 0, 0));
    TU_OK(hmm_get(m, "k", 1, buf, &len)); /* the index view is cached from here */
    assert_int_equal(hmm_put(m, "", 0, "v", 1, 0, 0), -EINVAL);
    assert_string_not_equal(hmm_last_error(), "");
    len = sizeof buf;
    TU_OK(hmm_get(m, "k", 1, buf, &len));
    assert_string_equal(hmm_last_error(), "");
    assert_int_equal(hmm_put(m, "", 0, "v", 1, 0, 0), -EINVAL);
    len = sizeof buf;
    assert_int_equal(hmm_get(m, "absent", 6, buf, &len), HMM_NOTFOUND);
    assert_string_equal(hmm_last_error(), "");
    hmm_close(m);
}

static void *succeed_in_a_thread(void *arg)
{
    hmm_t *m = arg;
    char buf[8];
    size_t len = sizeof buf;
    int rc = hmm_get(m, "k", 1, buf, &len);
    return (void *)(intptr_t)(rc == 0 && strcmp(hmm_last_error(), "") == 0);
}

static void test_last_error_is_per_thread_and_empty_after_success_on_a_fresh_thread(void **state)
{
    hmm_t *m = fresh();
    TU_OK(hmm_put(m, "k", 1, "v", 1, 0, 0));
    assert_int_equal(hmm_get(m, NULL, 1, NULL, NULL), -EINVAL);
    char before[512];
    snprintf(before, sizeof before, "%s", hmm_last_error());
    assert_string_not_equal(before, "");
    pthread_t t;
    void *ok = NULL;
    assert_int_equal(pthread_create(&t, NULL, succeed_in_a_thread, m), 0);
    assert_int_equal(pthread_join(t, &ok), 0);
    assert_true(ok != NULL);
    assert_string_equal(hmm_last_error(), before); /* another thread's calls leave ours alone */
    hmm_close(m);
}

static void test_cache_puts_that_evict_leave_no_detail(void **state)
{
    hmm_t *m = tu_open(tu_tmpdir(), 1 << 20, 0, HMM_CACHE);
    char key[32], val[200];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof key, "key-%d", i);
        TU_OK(hmm_put(m, key, (size_t)n, val, sizeof val, 0, 0));
        assert_string_equal(hmm_last_error(), "");
    }
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_true(st.counters[HMM_C_EVICTIONS] > 0);
    hmm_close(m);
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_with_null_config_creates_map_and_directory),
        cmocka_unit_test(test_creation_limits_are_the_headers),
        cmocka_unit_test(test_open_creates_files_with_config_mode),
        cmocka_unit_test(test_open_missing_map_without_create_returns_enoent),
        cmocka_unit_test(test_open_excl_on_existing_map_returns_exists),
        cmocka_unit_test(test_reopen_keeps_data),
        cmocka_unit_test(test_close_null_is_noop),
        cmocka_unit_test(test_open_bad_arguments_return_einval),
        cmocka_unit_test(test_open_a_file_as_directory_returns_enotdir),
        cmocka_unit_test(test_rdonly_reads_and_refuses_writes_without_touching_files),
        cmocka_unit_test(test_rdonly_anonymous_map_is_refused),
        cmocka_unit_test(test_anonymous_map_is_shared_with_forked_children),
        cmocka_unit_test(test_get_missing_key_returns_notfound),
        cmocka_unit_test(test_get_small_buffer_returns_toosmall_with_needed_length),
        cmocka_unit_test(test_put_nx_on_existing_key_returns_exists),
        cmocka_unit_test(test_put_xx_on_missing_key_returns_notfound),
        cmocka_unit_test(test_put_bad_flags_return_einval),
        cmocka_unit_test(test_null_or_empty_key_returns_einval),
        cmocka_unit_test(test_oversize_key_or_value_returns_toobig),
        cmocka_unit_test(test_one_mebibyte_value_round_trips),
        cmocka_unit_test(test_empty_value_and_binary_key_round_trip),
        cmocka_unit_test(test_del_removes_and_missing_returns_notfound),
        cmocka_unit_test(test_incr_creates_counter_at_zero_and_reads_as_text),
        cmocka_unit_test(test_incr_on_decimal_text_value_counts_on),
        cmocka_unit_test(test_incr_on_non_number_or_overflow_returns_notnum),
        cmocka_unit_test(test_versions_grow_across_delete_and_reopen),
        cmocka_unit_test(test_cas_with_stale_version_returns_mismatch),
        cmocka_unit_test(test_cas_with_zero_requires_absent_key),
        cmocka_unit_test(test_del_version_with_stale_version_returns_mismatch_and_keeps_the_entry),
        cmocka_unit_test(test_cas_tagged_keeps_the_tag_and_checks_the_version),
        cmocka_unit_test(test_expired_entry_reads_as_absent),
        cmocka_unit_test(test_get_batch_returns_what_each_get_info_returns),
        cmocka_unit_test(test_get_batch_answers_as_get_info_in_a_full_map),
        cmocka_unit_test(test_get_batch_reports_each_keys_own_error),
        cmocka_unit_test(test_get_batch_counts_one_get_per_key),
        cmocka_unit_test(test_read_only_handle_reads_a_cache_map_without_writing),
        cmocka_unit_test(test_default_ttl_applies_and_survives_reopen),
        cmocka_unit_test(test_cursor_returns_every_key_exactly_once),
        cmocka_unit_test(test_cursor_on_empty_map_ends_at_once),
        cmocka_unit_test(test_cursor_with_deletes_meanwhile_never_repeats_a_key),
        cmocka_unit_test(test_full_map_returns_full_and_deleting_makes_room),
        cmocka_unit_test(test_values_of_mixed_sizes_fill_a_small_map_before_it_is_full),
        cmocka_unit_test(test_emptied_map_stores_values_of_whole_pages_as_a_fresh_one),
        cmocka_unit_test(test_page_after_a_fully_carved_page_keeps_its_entries),
        cmocka_unit_test(test_map_full_of_expired_runs_takes_a_run),
        cmocka_unit_test(test_map_full_of_expired_entries_takes_new_keys),
        cmocka_unit_test(test_stat_counts_items_and_bytes),
        cmocka_unit_test(test_check_on_healthy_map_returns_zero),
        cmocka_unit_test(test_procs_lists_this_process),
        cmocka_unit_test(test_every_code_has_a_sentence_and_a_name),
        cmocka_unit_test(test_last_error_describes_the_latest_failure_only),
        cmocka_unit_test(test_last_error_names_the_map_of_a_failing_write),
        cmocka_unit_test(test_a_get_on_a_warm_handle_clears_an_older_failure),
        cmocka_unit_test(test_answers_leave_no_detail),
        cmocka_unit_test(test_last_error_is_per_thread_and_empty_after_success_on_a_fresh_thread),
        cmocka_unit_test(test_cache_puts_that_evict_leave_no_detail),
        cmocka_unit_test(test_stat_nprocs_leaves_out_a_process_that_exited_without_close),
        cmocka_unit_test(test_pages_another_handle_added_are_memory_to_memcheck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
