/*
 * test_corrupt.c - hostile and damaged files: refused with a clear code and
 * a message naming the file, or read without ever crashing or hanging.
 */
#include "config.h"

#include "tests/testutil.h"
#include "core/format.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { KEYS = 300 };

static const char *filled_map(char *path, size_t len)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    char key[32], val[100];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        size_t vl = 24 + (size_t)(i % 70);
        tu_value(val, vl, key, (uint64_t)i);
        TU_OK(hmm_put(m, key, strlen(key), val, vl, 0, 0));
    }
    hmm_close(m);
    tu_path(path, len, dir, "hashmmap.map");
    return dir;
}

static void patch(const char *path, off_t at, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, n, at), (ssize_t)n);
    close(fd);
}

static void expect_open_fails(const char *dir, const char *path, int want)
{
    hmm_t *m = NULL;
    int rc = hmm_open(&m, dir, NULL);
    assert_int_equal(rc, want);
    assert_null(m);
    assert_non_null(strstr(hmm_last_error(), path));
}

/* Every key of filled_map() reads back whole, and a check finds the map sound. */
static void expect_all_keys(const char *dir)
{
    hmm_t *m = tu_open(dir, 0, 0, 0);
    char key[32], val[100];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        size_t len = sizeof val;
        int rc = hmm_get(m, key, strlen(key), val, &len);
        if (rc != 0 || !tu_value_ok(val, len, key, NULL))
            fail_msg("key %s is %s", key, hmm_errname(rc));
    }
    hmm_check_result r;
    TU_OK(hmm_check(m, 0, &r));
    hmm_close(m);
}

static uint64_t index_word_of(const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint64_t word = 0;
    assert_int_equal(pread(fd, &word, sizeof word, (off_t)offsetof(struct hmm_header, index_cur)),
                     (ssize_t)sizeof word);
    close(fd);
    return word;
}

/* A bucket count in index_cur that is not its run's: the entries are
 * whole, but the index would look in the wrong buckets for every key.  The
 * open refuses it, as it refuses every damaged header field: the count
 * must be the creation count doubled k times, its run exactly its size. */
static void test_a_bucket_count_that_is_not_its_indexs_is_corrupt(void **state)
{
    const long deltas[] = {-1, +1, -64};
    for (int i = 0; i < 5; i++) {
        char path[4200];
        const char *dir = filled_map(path, sizeof path);
        uint64_t word = index_word_of(path), nb = HMM_INDEX_BUCKETS(word);
        uint64_t bad = i == 3 ? nb / 2 : i == 4 ? nb * 2 : (uint64_t)((long)nb + deltas[i]);
        uint64_t damaged = HMM_INDEX_MAKE(HMM_INDEX_PAGE(word), bad);
        patch(path, (off_t)offsetof(struct hmm_header, index_cur), &damaged, sizeof damaged);
        expect_open_fails(dir, path, HMM_CORRUPT);
        assert_non_null(strstr(hmm_last_error(), "index_cur"));
    }
}

/* The same damage in a map made before the creation count was recorded
 * (index_buckets0 0): the open cannot tell, and the index looks in the
 * wrong buckets, so most entries seem unreachable.  A repair once freed
 * them all but a few; it must refuse and change nothing. */
static void test_a_repair_does_not_free_the_entries_of_a_map_whose_index_word_is_damaged(void **state)
{
    char path[4200];
    const char *dir = filled_map(path, sizeof path);
    uint64_t word = index_word_of(path), none = 0;
    off_t at = (off_t)offsetof(struct hmm_header, index_cur);
    patch(path, (off_t)offsetof(struct hmm_header, index_buckets0), &none, sizeof none);
    uint64_t damaged = HMM_INDEX_MAKE(HMM_INDEX_PAGE(word), HMM_INDEX_BUCKETS(word) / 2);
    patch(path, at, &damaged, sizeof damaged);
    hmm_t *m = tu_open(dir, 0, 0, 0);
    hmm_check_result r;
    int rc = hmm_check(m, HMM_CHECK_REPAIR, &r);
    if (rc != HMM_CORRUPT)
        fail_msg("a repair over a halved bucket count answered %s, %llu repaired", hmm_errname(rc),
                 (unsigned long long)r.repaired);
    assert_int_equal(r.repaired, 0);
    hmm_close(m);
    patch(path, at, &word, sizeof word);
    expect_all_keys(dir);
}

static void test_truncated_file_is_corrupt(void **state)
{
    char path[4200];
    const char *dir = filled_map(path, sizeof path);
    assert_int_equal(truncate(path, 100), 0);
    expect_open_fails(dir, path, HMM_CORRUPT);
    char p2[4200];
    dir = filled_map(p2, sizeof p2);
    struct stat st;
    stat(p2, &st);
    assert_int_equal(truncate(p2, st.st_size / 2), 0);
    expect_open_fails(dir, p2, HMM_CORRUPT);
}

static void test_bad_magic_is_corrupt(void **state)
{
    char path[4200];
    const char *dir = filled_map(path, sizeof path);
    patch(path, 0, "NOTAMAP!", 8);
    expect_open_fails(dir, path, HMM_CORRUPT);
}

static void test_other_format_version_is_incompatible(void **state)
{
    char path[4200];
    const char *dir = filled_map(path, sizeof path);
    uint32_t v = HMM_FORMAT_CELLS + 1; /* versions 1 to 4 are all this library's */
    patch(path, offsetof(struct hmm_header, format_version), &v, sizeof v);
    expect_open_fails(dir, path, HMM_INCOMPAT);
    assert_non_null(strstr(hmm_last_error(), "version"));
}

static void test_other_byte_order_is_incompatible(void **state)
{
    char path[4200];
    const char *dir = filled_map(path, sizeof path);
    uint32_t v = __builtin_bswap32(HMM_BYTE_ORDER_MARK);
    patch(path, offsetof(struct hmm_header, byte_order), &v, sizeof v);
    expect_open_fails(dir, path, HMM_INCOMPAT);
}

static void test_other_word_size_is_incompatible(void **state)
{
    char path[4200];
    const char *dir = filled_map(path, sizeof path);
    uint32_t v = 4;
    patch(path, offsetof(struct hmm_header, word_size), &v, sizeof v);
    expect_open_fails(dir, path, HMM_INCOMPAT);
}

static void test_inconsistent_geometry_is_corrupt(void **state)
{
    char path[4200];
    const char *dir = filled_map(path, sizeof path);
    uint64_t v = 1u << 20; /* data area claimed to start a mebibyte further */
    patch(path, offsetof(struct hmm_header, data_off), &v, sizeof v);
    expect_open_fails(dir, path, HMM_CORRUPT);
}

/* A map holding one key, whose index slot (the only one set) is at *slot_at
 * in the file and holds *slot. */
static const char *one_key_map(char *path, size_t len, off_t *slot_at, uint64_t *slot, struct hmm_header *h)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    TU_OK(hmm_put(m, "the-key", 7, "12345678", 8, 0, 0));
    hmm_close(m);
    tu_path(path, len, dir, "hashmmap.map");
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, h, sizeof *h, 0), (ssize_t)sizeof *h);
    uint64_t word = atomic_load(&h->index_cur);
    off_t at = (off_t)(h->data_off + (HMM_INDEX_PAGE(word) << __builtin_ctz(h->page_size)));
    *slot = 0;
    for (uint64_t b = 0; b < HMM_INDEX_BUCKETS(word) && !*slot; b++) {
        struct hmm_bucket bk;
        assert_int_equal(pread(fd, &bk, sizeof bk, at + (off_t)(b * sizeof bk)), (ssize_t)sizeof bk);
        for (unsigned j = 0; j < HMM_BUCKET_SLOTS && !*slot; j++) {
            *slot = atomic_load(&bk.slot[j]);
            *slot_at = at + (off_t)(b * sizeof bk + offsetof(struct hmm_bucket, slot) + j * 8);
        }
    }
    close(fd);
    assert_true(*slot != 0);
    return dir;
}

/* A slot whose offset leads outside the data area, or to an entry whose
 * header, key or value would run past the file's end, or whose value
 * length is over the map's maximum: a get says HMM_CORRUPT, never reads
 * past the mapping (a crash fails the test: it runs in a child). */
static int get_says_corrupt(void *arg)
{
    hmm_t *m = NULL;
    if (hmm_open(&m, arg, NULL) != 0)
        return 2;
    char val[16];
    size_t len = sizeof val;
    int rc = hmm_get(m, "the-key", 7, val, &len);
    hmm_close(m);
    return rc == HMM_CORRUPT ? 0 : 3;
}

static void test_slot_or_lengths_out_of_bounds_are_corrupt(void **state)
{
    if (tu_inline_maps())
        skip(); /* it finds and patches a slot where format 1 keeps it */
    char path[4200];
    off_t slot_at = 0;
    uint64_t slot;
    struct hmm_header h;
    const char *dir = one_key_map(path, sizeof path, &slot_at, &slot, &h);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    uint64_t tag = slot >> 48, entry = HMM_SLOT_OFF(slot), end = (uint64_t)st.st_size;
    const uint64_t bad_offsets[] = {
        h.data_off - 8,                /* below the data area */
        end,                           /* at the end of the file */
        end + 4096,                    /* past it */
        end - 16,                      /* a header that runs past the end */
        end - HMM_ENTRY_HDR - 8,       /* the entry copied here: header and key fit, the value does not */
    };
    uint8_t whole[HMM_ENTRY_HDR + 7];
    int fd = open(path, O_RDONLY);
    assert_int_equal(pread(fd, whole, sizeof whole, (off_t)entry), (ssize_t)sizeof whole);
    close(fd);
    patch(path, (off_t)(end - HMM_ENTRY_HDR - 8), whole, sizeof whole);
    for (size_t i = 0; i < sizeof bad_offsets / sizeof bad_offsets[0]; i++) {
        uint64_t bad = HMM_SLOT_MAKE(tag, bad_offsets[i]);
        patch(path, slot_at, &bad, sizeof bad);
        int status = tu_wait(tu_fork(get_says_corrupt, (void *)dir), 20000);
        if (tu_exit_code(status) != 0)
            fail_msg("offset %zu (%llu): status %d", i, (unsigned long long)bad_offsets[i], status);
    }
    patch(path, slot_at, &slot, sizeof slot);
    uint32_t huge = UINT32_MAX >> 1; /* over max_value, and past the end */
    patch(path, (off_t)(entry + offsetof(struct hmm_entry, vlen)), &huge, sizeof huge);
    int status = tu_wait(tu_fork(get_says_corrupt, (void *)dir), 20000);
    assert_int_equal(tu_exit_code(status), 0);
}

/* Open a damaged copy and use everything; any return code is fine, a crash
 * or a hang is not.  Runs in a child so a crash fails the test, not the run. */
static int use_damaged_map(void *arg)
{
    const char *dir = arg;
    alarm(10);
    hmm_t *m = NULL;
    if (hmm_open(&m, dir, NULL) != 0)
        return 0;
    char key[32], val[256];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        size_t len = sizeof val;
        hmm_get(m, key, strlen(key), val, &len);
        if (i % 7 == 0)
            hmm_put(m, key, strlen(key), "x", 1, 0, 0);
        if (i % 11 == 0)
            hmm_del(m, key, strlen(key));
    }
    /* The batched path too: its candidate entries are read before the
     * key is compared. */
    enum { N = 40 };
    char bk[N][32], bv[N][256];
    const void *kp[N];
    size_t klens[N], vlens[N];
    void *vp[N];
    int rcs[N];
    for (int i = 0; i < N; i++) {
        snprintf(bk[i], sizeof bk[i], "key-%d", i * 7 % KEYS);
        kp[i] = bk[i];
        klens[i] = strlen(bk[i]);
        vp[i] = bv[i];
        vlens[i] = sizeof bv[i];
    }
    hmm_get_batch(m, N, kp, klens, vp, vlens, rcs, NULL);
    hmm_cursor *c;
    if (hmm_cursor_open(m, &c) == 0) {
        const void *k, *v;
        size_t kl, vl;
        for (int n = 0; n < 10 * KEYS && hmm_cursor_next(c, &k, &kl, &v, &vl) == 0; n++)
            ;
        hmm_cursor_close(c);
    }
    hmm_check(m, 0, NULL);
    hmm_check(m, HMM_CHECK_REPAIR, NULL);
    hmm_stats st;
    hmm_stat(m, &st);
    hmm_close(m);
    return 0;
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void test_randomly_damaged_maps_never_crash_or_hang(void **state)
{
    char orig[4200];
    filled_map(orig, sizeof orig);
    struct stat st;
    assert_int_equal(stat(orig, &st), 0);
    srand(777);
    int iterations = getenv("HMM_FUZZ_ITERATIONS") ? atoi(getenv("HMM_FUZZ_ITERATIONS")) : 300;
    const char *dir = tu_tmpdir();
    char path[4200], metrics[4200];
    tu_path(path, sizeof path, dir, "hashmmap.map");
    tu_path(metrics, sizeof metrics, dir, "hashmmap.metrics");
    for (int it = 0; it < iterations; it++) {
        copy_file(orig, path);
        unlink(metrics);
        int fd = open(path, O_RDWR);
        int flips = 1 + rand() % 16;
        for (int f = 0; f < flips; f++) {
            /* Anywhere past the magic, with a bias towards the fixed part
             * and the index, where offsets live. */
            off_t at = rand() % 2 ? 64 + rand() % (256 << 10) : 64 + (off_t)((uint64_t)rand() % (uint64_t)(st.st_size - 64));
            uint8_t b = (uint8_t)rand();
            assert_int_equal(pwrite(fd, &b, 1, at), 1);
        }
        close(fd);
        int status = tu_wait(tu_fork(use_damaged_map, (void *)dir), 20000);
        if (tu_exit_code(status) != 0)
            fail_msg("iteration %d: the process using a damaged map died (status %d)", it, status);
    }
}

int main(void)
{
    tu_watchdog(300);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_file_is_corrupt),
        cmocka_unit_test(test_a_bucket_count_that_is_not_its_indexs_is_corrupt),
        cmocka_unit_test(test_a_repair_does_not_free_the_entries_of_a_map_whose_index_word_is_damaged),
        cmocka_unit_test(test_bad_magic_is_corrupt),
        cmocka_unit_test(test_other_format_version_is_incompatible),
        cmocka_unit_test(test_other_byte_order_is_incompatible),
        cmocka_unit_test(test_other_word_size_is_incompatible),
        cmocka_unit_test(test_inconsistent_geometry_is_corrupt),
        cmocka_unit_test(test_slot_or_lengths_out_of_bounds_are_corrupt),
        cmocka_unit_test(test_randomly_damaged_maps_never_crash_or_hang),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
