/*
 * test_inline.c - maps of format 2 (HMM_INLINE, FORMAT.md §7): every
 * operation answers as in format 1 whatever the entry's shape (with or
 * without a copy in its cell), a batch answers as single gets do in a full
 * index, a copy that differs from its entry is found
 * and repaired by hmm_check, a growth moves keys by their copies but
 * trusts no damaged one, readers racing writers in other processes
 * only ever see whole values of their own key, and writers killed at
 * random leave no copy that hmm_check objects to.  (The other cmocka
 * programs run on format-2 maps too: make check-inline.)
 */
#include "config.h"

#include "tests/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static hmm_t *inline_map(const char *dir, uint64_t size, uint64_t max_size)
{
    hmm_config cfg = {.size = size, .max_size = max_size, .flags = HMM_CREATE | HMM_INLINE};
    hmm_t *m = NULL;
    TU_OK(hmm_open(&m, dir, &cfg));
    return m;
}

/* A key of klen bytes (1-24) and a value of vlen bytes (0-12) made from
 * i and a round: the first 4 bytes are the round, the others a mix of
 * key and round, so a torn value or another key's never passes for key i
 * and readers can tell an older round from a newer one. */
static void make_key(char *key, size_t klen, unsigned i)
{
    for (size_t b = 0; b < klen; b++)
        key[b] = (char)('A' + (i * 7 + b * 3) % 26);
    key[0] = (char)('a' + i % 26);
    if (klen > 1)
        key[1] = (char)('a' + i / 26 % 26);
}

static void make_value(uint8_t *val, size_t vlen, unsigned i, uint32_t round)
{
    for (size_t b = 0; b < vlen; b++)
        val[b] = (uint8_t)(i * 131 + round * 17 + b * (29 + 2 * i) + 1);
    if (vlen >= 4)
        memcpy(val, &round, 4);
}

static void reads_back(hmm_t *m, const char *key, size_t klen, const uint8_t *want, size_t wlen)
{
    uint8_t got[64];
    size_t len = sizeof got;
    TU_OK(hmm_get(m, key, klen, got, &len));
    assert_int_equal(len, wlen);
    assert_memory_equal(got, want, wlen);
    if (wlen > 0) {
        /* One byte short: HMM_TOOSMALL with the length, as in format 1. */
        len = wlen - 1;
        assert_int_equal(hmm_get(m, key, klen, got, &len), HMM_TOOSMALL);
        assert_int_equal(len, wlen);
    }
}

static void check_clean(hmm_t *m, uint64_t entries)
{
    hmm_check_result res;
    TU_OK(hmm_check(m, 0, &res));
    assert_int_equal(res.entries, entries);
    assert_int_equal(res.bad_entries, 0);
    assert_int_equal(res.bad_slots, 0);
    assert_int_equal(res.unreachable, 0);
}

/* Put, and read back, key i of every length from 1 to 24 with a value of
 * every length from 0 to 12 (round 1: 12 - that length, so that short
 * entries become long ones and back).  Returns how many. */
static unsigned put_every_shape(hmm_t *m, uint32_t round)
{
    char key[24];
    uint8_t val[12];
    unsigned i = 0;
    for (size_t klen = 1; klen <= sizeof key; klen++)
        for (size_t n = 0; n <= sizeof val; n++, i++) {
            size_t vlen = round ? sizeof val - n : n;
            make_key(key, klen, i);
            make_value(val, vlen, i, round);
            TU_OK(hmm_put(m, key, klen, val, vlen, 0, 0));
            reads_back(m, key, klen, val, vlen);
        }
    return i;
}

/* Every key length from 1 to 24 with every value length from 0 to 12:
 * short ones get a copy, the others do not; an overwrite moves a key from
 * one kind to the other and back. */
static void test_every_shape_of_entry_reads_back(void **state)
{
    (void)state;
    hmm_t *m = inline_map(tu_tmpdir(), 1 << 20, 64 << 20);
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.format_version, 4);
    assert_true(st.flags & HMM_INLINE);
    assert_int_equal(st.index_slots, st.index_buckets * 2);
    unsigned i = put_every_shape(m, 0);
    check_clean(m, i);
    put_every_shape(m, 1);
    check_clean(m, i);
    char key[24];
    uint8_t val[12];
    i = 0;
    for (size_t klen = 1; klen <= sizeof key; klen++)
        for (size_t vlen = 0; vlen <= sizeof val; vlen++, i++) {
            make_key(key, klen, i);
            if (i % 2)
                continue;
            TU_OK(hmm_del(m, key, klen));
            size_t len = sizeof val;
            assert_int_equal(hmm_get(m, key, klen, val, &len), HMM_NOTFOUND);
        }
    check_clean(m, i / 2);
    hmm_close(m);
}

/* hmm_get_batch answers as hmm_get does for every kind of key of a full
 * index: a copy in its home bucket, a cell naming an entry (a value over 8
 * bytes, whose line the batch prefetches), keys that probed past a full
 * home bucket (whose overflow count and next bucket it prefetches), and
 * absent keys. */
static void test_a_batch_answers_as_single_gets_do(void **state)
{
    (void)state;
    enum { MAXN = 8192, ABSENT_EVERY = 80, NABSENT = MAXN / ABSENT_EVERY + 1, MAXB = MAXN + NABSENT };
    hmm_t *m = inline_map(tu_tmpdir(), 1 << 20, 1 << 20);
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    static char keys[MAXN][16], absent[NABSENT][16];
    static uint8_t vals[MAXN][12], got[MAXB][12], want[12];
    unsigned n = (unsigned)(st.index_slots * 6 / 10); /* under the fill that grows the index */
    if (n > MAXN)
        n = MAXN;
    for (unsigned i = 0; i < n; i++) {
        size_t vlen = i % 3 == 0 ? 12 : 8; /* a third without a copy */
        snprintf(keys[i], sizeof keys[i], "k%u", i);
        make_value(vals[i], vlen, i, 1);
        TU_OK(hmm_put(m, keys[i], strlen(keys[i]), vals[i], vlen, 0, 0));
    }
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.items, n);
    static const void *kp[MAXB];
    static size_t klens[MAXB], vlens[MAXB];
    static void *vp[MAXB];
    static int rcs[MAXB];
    unsigned total = 0;
    for (unsigned i = 0; i < n; i++) {
        if (i % ABSENT_EVERY == 0) {
            snprintf(absent[i / ABSENT_EVERY], sizeof absent[0], "absent%u", i);
            kp[total++] = absent[i / ABSENT_EVERY];
        }
        kp[total++] = keys[i];
    }
    for (unsigned i = 0; i < total; i++) {
        klens[i] = strlen(kp[i]);
        vp[i] = got[i];
        vlens[i] = sizeof got[i];
    }
    TU_OK(hmm_get_batch(m, total, kp, klens, vp, vlens, rcs, NULL));
    for (unsigned i = 0; i < total; i++) {
        size_t len = sizeof want;
        int rc = hmm_get(m, kp[i], klens[i], want, &len);
        if (rcs[i] != rc || (rc == 0 && (vlens[i] != len || memcmp(got[i], want, len) != 0)))
            fail_msg("key %u of %u (%s): the batch says %s (%zu bytes), a get %s (%zu bytes)", i, total,
                     (const char *)kp[i], hmm_errname(rcs[i]), vlens[i], hmm_errname(rc), len);
    }
    hmm_close(m);
}

/* TTL'd entries never get a copy (their expiry is in the chunk); counters,
 * compare-and-swap and versions behave as in format 1. */
static void test_expiry_counters_and_versions(void **state)
{
    (void)state;
    hmm_t *m = inline_map(tu_tmpdir(), 1 << 20, 0);
    TU_OK(hmm_put(m, "brief", 5, "12345678", 8, 100, 0));
    reads_back(m, "brief", 5, (const uint8_t *)"12345678", 8);
    usleep(150 * 1000);
    char buf[32];
    size_t len = sizeof buf;
    assert_int_equal(hmm_get(m, "brief", 5, buf, &len), HMM_NOTFOUND);
    int64_t n = 0;
    for (int k = 0; k < 1000; k++)
        TU_OK(hmm_incr(m, "hits", 4, 7, &n));
    assert_int_equal(n, 7000);
    reads_back(m, "hits", 4, (const uint8_t *)"7000", 4);
    uint64_t v1, v2;
    len = sizeof buf;
    TU_OK(hmm_put(m, "cas", 3, "one", 3, 0, 0));
    TU_OK(hmm_getv(m, "cas", 3, buf, &len, &v1));
    assert_int_equal(hmm_cas(m, "cas", 3, "two", 3, 0, v1 + 1), HMM_MISMATCH);
    TU_OK(hmm_cas(m, "cas", 3, "two", 3, 0, v1));
    len = sizeof buf;
    TU_OK(hmm_getv(m, "cas", 3, buf, &len, &v2));
    assert_true(v2 > v1);
    reads_back(m, "cas", 3, (const uint8_t *)"two", 3);
    hmm_close(m);
}

/* HMM_INLINE is set at creation, kept at every open, and not offered with
 * HMM_CACHE. */
static void test_the_format_is_chosen_at_creation(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = NULL;
    hmm_config both = {.flags = HMM_CREATE | HMM_INLINE | HMM_CACHE};
    assert_int_equal(hmm_open(&m, dir, &both), -EINVAL);
    assert_non_null(strstr(hmm_last_error(), "HMM_INLINE"));
    m = inline_map(dir, 1 << 20, 0);
    TU_OK(hmm_put(m, "k", 1, "v", 1, 0, 0));
    hmm_close(m);
    TU_OK(hmm_open(&m, dir, NULL));
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.format_version, 4);
    reads_back(m, "k", 1, (const uint8_t *)"v", 1);
    hmm_close(m);
    /* A map of format 1 stays so when opened with the flag (make check-inline
     * makes every map of format 2: nothing to see then). */
    if (tu_inline_maps())
        return;
    const char *plain = tu_tmpdir();
    hmm_config cfg = {.flags = HMM_CREATE};
    TU_OK(hmm_open(&m, plain, &cfg));
    hmm_close(m);
    cfg.flags = HMM_INLINE;
    TU_OK(hmm_open(&m, plain, &cfg));
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(st.format_version, 3);
    hmm_close(m);
}

/* Offset of the n-th place in the file where the 8 bytes of pattern follow
 * a nonzero word (a cell: its word, key, value) rather than a zero word. */
static off_t find_copy(const char *path, uint64_t pattern)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    uint8_t *all = malloc((size_t)sb.st_size);
    assert_non_null(all);
    assert_int_equal(pread(fd, all, (size_t)sb.st_size, 0), sb.st_size);
    close(fd);
    off_t at = -1;
    for (off_t o = 24; o + 8 <= sb.st_size && at < 0; o += 8) {
        uint64_t w, word;
        memcpy(&w, all + o, 8);
        memcpy(&word, all + o - 24, 8);
        if (w == pattern && word != 0 && (word >> 40 & 0x80))
            at = o;
    }
    free(all);
    return at;
}

/* A copy is trusted by gets, so a copy that no longer equals its entry
 * (a media error in the index) must be found by hmm_check and repaired:
 * the cell then reads through its chunk again. */
static void test_a_copy_unlike_its_entry_is_found_and_repaired(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = inline_map(dir, 1 << 20, 0);
    uint64_t v = UINT64_C(0x1122334455667788);
    TU_OK(hmm_put(m, "sixteen-byte-key", 16, &v, 8, 0, 0));
    hmm_close(m);
    char path[4200];
    tu_path(path, sizeof path, dir, "hashmmap.map");
    off_t at = find_copy(path, v);
    assert_true(at > 0);
    uint64_t bad = v ^ 0xff;
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &bad, 8, at), 8);
    close(fd);
    TU_OK(hmm_open(&m, dir, NULL));
    hmm_check_result res;
    assert_int_equal(hmm_check(m, 0, &res), HMM_CORRUPT);
    assert_int_equal(res.bad_slots, 1);
    assert_int_equal(res.entries, 1);
    TU_OK(hmm_check(m, HMM_CHECK_REPAIR, &res));
    assert_int_equal(res.repaired, 1);
    reads_back(m, "sixteen-byte-key", 16, (const uint8_t *)&v, 8);
    check_clean(m, 1);
    hmm_close(m);
}

/* A growth moves a key by its cell's copy when it has one (the key to hash
 * and the bytes), reading no chunk.  A copy whose key was damaged hashes
 * to another tag: the move must then take the key from its chunk, or the
 * key would land where no get of it looks. */
static void test_a_growth_moves_copies_and_trusts_no_damaged_one(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = inline_map(dir, 1 << 20, 64 << 20);
    uint64_t v = UINT64_C(0x1122334455667788);
    TU_OK(hmm_put(m, "sixteen-byte-key", 16, &v, 8, 0, 0));
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    uint64_t slots = st.index_slots;
    hmm_close(m);
    char path[4200];
    tu_path(path, sizeof path, dir, "hashmmap.map");
    off_t at = find_copy(path, v);
    assert_true(at > 0);
    uint8_t b;
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, at - 16), 1); /* the key's first byte */
    b ^= 0x20;
    assert_int_equal(pwrite(fd, &b, 1, at - 16), 1);
    close(fd);
    TU_OK(hmm_open(&m, dir, NULL));
    /* Fresh keys until the index has grown, then until the old one is
     * drained: the damaged key reads back once its move is done. */
    char key[16];
    unsigned i = 0;
    bool found = false;
    for (; i < 200000 && !found; i++) {
        make_key(key, sizeof key, i);
        memcpy(key + 8, &i, sizeof i);
        uint64_t x = i;
        TU_OK(hmm_put(m, key, sizeof key, &x, sizeof x, 0, 0));
        if (i % 512 == 0) {
            TU_OK(hmm_stat(m, &st));
            uint64_t got = 0;
            size_t len = sizeof got;
            found = st.index_slots >= 2 * slots && hmm_get(m, "sixteen-byte-key", 16, &got, &len) == 0 && got == v;
        }
    }
    assert_true(found);
    for (unsigned j = 0; j < i; j++) {
        make_key(key, sizeof key, j);
        memcpy(key + 8, &j, sizeof j);
        uint64_t x = j;
        reads_back(m, key, sizeof key, (const uint8_t *)&x, sizeof x);
    }
    check_clean(m, i + 1);
    hmm_close(m);
}

/* ---- processes racing ---- */

enum { RACE_KEYS = 48, RACE_MS = 1500 };
static const char *race_dir;

/* Writer w: overwrites, deletes and puts again keys of both kinds, now
 * and then a value too long for a copy, so cells change shape under the
 * readers. */
static int race_writer(void *arg)
{
    unsigned w = (unsigned)(uintptr_t)arg;
    hmm_t *m = NULL;
    if (hmm_open(&m, race_dir, NULL) != 0)
        return 10;
    uint64_t end = tu_now_ms() + RACE_MS;
    char key[24];
    uint8_t val[12];
    for (unsigned round = 1 + w; tu_now_ms() < end; round += 2) {
        for (unsigned i = w; i < RACE_KEYS; i += 2) {
            size_t klen = 1 + i % 20, vlen = (round + i) % 5 == 0 ? 12 : 8;
            make_key(key, klen, i);
            make_value(val, vlen, i, round);
            int rc = (round + i) % 7 == 0 ? hmm_del(m, key, klen) : hmm_put(m, key, klen, val, vlen, 0, 0);
            if (rc != 0 && rc != HMM_NOTFOUND)
                return 11;
        }
    }
    hmm_close(m);
    return 0;
}

/* Does val (vlen bytes) belong to key i?  Its round in *round. */
static bool value_of(const uint8_t *val, size_t vlen, unsigned i, uint32_t *round)
{
    if (vlen != 8 && vlen != 12)
        return false;
    memcpy(round, val, 4);
    uint8_t want[12];
    make_value(want, vlen, i, *round);
    return memcmp(want, val, vlen) == 0;
}

static int race_reader(void *arg)
{
    bool batched = arg != NULL;
    hmm_t *m = NULL;
    if (hmm_open(&m, race_dir, NULL) != 0)
        return 20;
    uint64_t end = tu_now_ms() + RACE_MS, seen = 0;
    uint32_t last[RACE_KEYS] = {0};
    char keys[RACE_KEYS][24];
    const void *kp[RACE_KEYS];
    size_t klens[RACE_KEYS], vlens[RACE_KEYS];
    uint8_t vals[RACE_KEYS][16];
    void *vp[RACE_KEYS];
    int rcs[RACE_KEYS];
    for (unsigned i = 0; i < RACE_KEYS; i++) {
        klens[i] = 1 + i % 20;
        make_key(keys[i], klens[i], i);
        kp[i] = keys[i];
        vp[i] = vals[i];
    }
    while (tu_now_ms() < end) {
        if (batched) {
            for (unsigned i = 0; i < RACE_KEYS; i++)
                vlens[i] = sizeof vals[i];
            if (hmm_get_batch(m, RACE_KEYS, kp, klens, vp, vlens, rcs, NULL) != 0)
                return 21;
        } else {
            for (unsigned i = 0; i < RACE_KEYS; i++) {
                vlens[i] = sizeof vals[i];
                rcs[i] = hmm_get(m, keys[i], klens[i], vals[i], &vlens[i]);
            }
        }
        for (unsigned i = 0; i < RACE_KEYS; i++) {
            if (rcs[i] == HMM_NOTFOUND)
                continue;
            if (rcs[i] != 0)
                return 22;
            uint32_t round;
            if (!value_of(vals[i], vlens[i], i, &round)) {
                fprintf(stderr, "key %u: a value of %zu bytes that is not one of its own\n", i, vlens[i]);
                return 23;
            }
            /* One writer per key, rounds only grow: an older one is stale. */
            if (round < last[i]) {
                fprintf(stderr, "key %u: round %u read after round %u\n", i, round, last[i]);
                return 25;
            }
            last[i] = round;
            seen++;
        }
    }
    hmm_close(m);
    return seen > 0 ? 0 : 24;
}

/* Two writers change cells (copy, no copy, gone, back) while three readers,
 * one of them batched, check that every value read is one of its key's. */
static void test_readers_only_see_whole_values_of_their_own_key(void **state)
{
    (void)state;
    race_dir = tu_tmpdir();
    hmm_t *m = inline_map(race_dir, 1 << 20, 0);
    pid_t p[5];
    p[0] = tu_fork(race_writer, (void *)(uintptr_t)0);
    p[1] = tu_fork(race_writer, (void *)(uintptr_t)1);
    p[2] = tu_fork(race_reader, NULL);
    p[3] = tu_fork(race_reader, NULL);
    p[4] = tu_fork(race_reader, (void *)1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tu_exit_code(tu_wait(p[i], RACE_MS + 20000)), 0);
    hmm_check_result res;
    TU_OK(hmm_check(m, 0, &res));
    assert_int_equal(res.bad_slots + res.bad_entries + res.unreachable, 0);
    hmm_close(m);
}

/* ---- writers killed ---- */

static int overwriter(void *arg)
{
    (void)arg;
    hmm_t *m = NULL;
    if (hmm_open(&m, race_dir, NULL) != 0)
        return 30;
    char key[24];
    uint8_t val[12];
    for (unsigned round = 1;; round++)
        for (unsigned i = 0; i < RACE_KEYS; i++) {
            size_t klen = 1 + i % 20, vlen = (round + i) % 3 ? 8 : 12;
            make_key(key, klen, i);
            make_value(val, vlen, i, round);
            if (hmm_put(m, key, klen, val, vlen, 0, 0) != 0)
                return 31;
        }
}

/* SIGKILL a writer at random moments, 20 times: after each, the map checks
 * clean (no copy unlike its entry) and every key reads one of its values. */
static void test_writers_killed_leave_no_false_copy(void **state)
{
    (void)state;
    race_dir = tu_tmpdir();
    hmm_t *m = inline_map(race_dir, 1 << 20, 0);
    srand(7);
    for (int kill_no = 0; kill_no < 20; kill_no++) {
        pid_t w = tu_fork(overwriter, NULL);
        usleep((useconds_t)(2000 + rand() % 30000));
        kill(w, SIGKILL);
        tu_wait(w, 5000);
        hmm_t *after = NULL;
        TU_OK(hmm_open(&after, race_dir, NULL)); /* repairs what the dead writer left */
        hmm_check_result res;
        TU_OK(hmm_check(after, 0, &res));
        assert_int_equal(res.bad_slots + res.bad_entries, 0);
        char key[24];
        uint8_t val[16];
        for (unsigned i = 0; i < RACE_KEYS; i++) {
            size_t klen = 1 + i % 20, vlen = sizeof val;
            make_key(key, klen, i);
            int rc = hmm_get(after, key, klen, val, &vlen);
            assert_true(rc == 0 || rc == HMM_NOTFOUND);
            uint32_t round;
            assert_true(rc == HMM_NOTFOUND || value_of(val, vlen, i, &round));
        }
        hmm_close(after);
    }
    hmm_close(m);
}

int main(void)
{
    tu_watchdog(180);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_shape_of_entry_reads_back),
        cmocka_unit_test(test_a_batch_answers_as_single_gets_do),
        cmocka_unit_test(test_expiry_counters_and_versions),
        cmocka_unit_test(test_the_format_is_chosen_at_creation),
        cmocka_unit_test(test_a_copy_unlike_its_entry_is_found_and_repaired),
        cmocka_unit_test(test_a_growth_moves_copies_and_trusts_no_damaged_one),
        cmocka_unit_test(test_readers_only_see_whole_values_of_their_own_key),
        cmocka_unit_test(test_writers_killed_leave_no_false_copy),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_cleanup();
    return failed;
}
