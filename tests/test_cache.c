/*
 * test_cache.c - cache mode: never full under a flood, hot keys survive it,
 * TTLs (also the map's default after reopen), a shift of value sizes moves
 * pages to the class that needs them, writers contending for a small
 * cache's space refuse a put only after evicting patiently, emptying a
 * class's only page never waits for an eviction that cannot come, and
 * evicting processes killed at random never leave a dangling entry.
 */
#include "config.h"

#include "tests/testutil.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static hmm_t *cache_map(const char *dir, uint64_t size)
{
    return tu_open(dir, size, 0, HMM_CACHE);
}

static void flood(hmm_t *m, const char *prefix, int n, size_t vlen, int hot_every)
{
    char key[32], val[4096];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s%d", prefix, i);
        tu_value(val, vlen, key, (uint64_t)i);
        TU_OK(hmm_put(m, key, strlen(key), val, vlen, 0, 0));
        if (hot_every && i % hot_every == 0)
            for (int h = 0; h < 100; h++) {
                snprintf(key, sizeof key, "hot%d", h);
                size_t len = sizeof val;
                hmm_get(m, key, strlen(key), val, &len);
            }
    }
}

static void test_flood_never_returns_full_and_hot_keys_survive(void **state)
{
    hmm_t *m = cache_map(tu_tmpdir(), 4 << 20);
    flood(m, "hot", 100, 64, 0);
    flood(m, "cold", 200000, 64, 50);
    char key[32], val[128];
    int alive = 0;
    for (int h = 0; h < 100; h++) {
        snprintf(key, sizeof key, "hot%d", h);
        size_t len = sizeof val;
        if (hmm_get(m, key, strlen(key), val, &len) == 0) {
            assert_true(tu_value_ok(val, len, key, NULL));
            alive++;
        }
    }
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_int_equal(alive, 100);
    assert_true(st.counters[HMM_C_EVICTIONS] > 100000);
    assert_int_equal(st.counters[HMM_C_FULL_ERRORS], 0);
    hmm_check_result r;
    TU_OK(hmm_check(m, 0, &r));
    assert_int_equal(r.unreachable, 0);
    hmm_close(m);
}

/* Three writers of a small cache, with values of every class and of whole
 * pages: what one eviction frees, another writer may take first, and a
 * page of the needed class may be held by a writer in the middle of its
 * put.  A put says HMM_FULL only after evicting for EVICT_PATIENCE_MS
 * (slab.c, 250 ms); before, it gave up after 64 quick tries, and a 512 KiB
 * cache said HMM_FULL to 2-10 of 60 000 such puts.  How often that still
 * happens depends on the machine's load, so what is checked is the time
 * each refusal took; the count is printed. */
#define CONTENDED_WRITERS 3
#define CONTENDED_PUTS 20000
#define PATIENCE_MS 250

static int put_mixed_sizes(void *p)
{
    hmm_t *m = p;
    static char val[60000];
    char key[32];
    srand((unsigned)getpid());
    int full = 0;
    for (int i = 0; i < CONTENDED_PUTS; i++) {
        int klen = snprintf(key, sizeof key, "w%d-%d", (int)getpid(), rand() % 5000);
        int r = rand() % 100;
        size_t vlen = r < 70 ? 32 + rand() % 200 : r < 95 ? 200 + rand() % 3000 : 20000 + rand() % 40000;
        uint64_t t0 = tu_now_ms();
        int rc = hmm_put(m, key, (size_t)klen, val, vlen, 0, 0);
        uint64_t took = tu_now_ms() - t0;
        if (rc == HMM_FULL) {
            printf("# put %d of %zu bytes: HMM_FULL after %llu ms\n", i, vlen, (unsigned long long)took);
            if (took < PATIENCE_MS)
                return 1; /* gave up before evicting for its patience */
            full++;
        } else if (rc) {
            return 2;
        }
    }
    printf("# writer %d: %d of %d puts said HMM_FULL\n", (int)getpid(), full, CONTENDED_PUTS);
    fflush(stdout);
    return 0;
}

static void test_contending_writers_of_a_small_cache_refuse_only_after_evicting_patiently(void **state)
{
    hmm_t *m = cache_map(tu_tmpdir(), 512 << 10);
    pid_t kids[CONTENDED_WRITERS];
    for (int i = 0; i < CONTENDED_WRITERS; i++)
        kids[i] = tu_fork(put_mixed_sizes, m);
    for (int i = 0; i < CONTENDED_WRITERS; i++) {
        int status = tu_wait(kids[i], 120000);
        if (tu_exit_code(status) != 0)
            fail_msg("writer %d: %s (status 0x%x)", i,
                     tu_exit_code(status) == 1 ? "HMM_FULL before its patience ran out" : "failed", status);
    }
    hmm_check_result r;
    TU_OK(hmm_check(m, 0, &r));
    assert_int_equal(r.unreachable, 0);
    hmm_close(m);
}

static void test_expired_entries_read_as_absent_and_count_as_expirations(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_config cfg = {.size = 1 << 20, .flags = HMM_CREATE | HMM_CACHE, .default_ttl_ms = 100};
    hmm_t *m;
    TU_OK(hmm_open(&m, dir, &cfg));
    hmm_close(m);
    m = tu_open(dir, 0, 0, 0); /* the default TTL is the map's, after reopen too */
    TU_OK(hmm_put(m, "d", 1, "x", 1, 0, 0));
    TU_OK(hmm_put(m, "own", 3, "x", 1, 30, 0));
    TU_OK(hmm_put(m, "long", 4, "x", 1, 60000, 0));
    usleep(200 * 1000);
    char buf[4];
    size_t len = sizeof buf;
    assert_int_equal(hmm_get(m, "d", 1, buf, &len), HMM_NOTFOUND);
    len = sizeof buf;
    assert_int_equal(hmm_get(m, "own", 3, buf, &len), HMM_NOTFOUND);
    len = sizeof buf;
    TU_OK(hmm_get(m, "long", 4, buf, &len));
    /* A flood in their size class reclaims the expired ones through eviction. */
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "f%d", i % 100000);
        TU_OK(hmm_put(m, key, strlen(key), "x", 1, 0, 0));
    }
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_true(st.counters[HMM_C_EXPIRATIONS] >= 1);
    hmm_close(m);
}

static void test_value_size_shift_moves_pages_to_the_new_class(void **state)
{
    hmm_t *m = cache_map(tu_tmpdir(), 4 << 20);
    flood(m, "small", 100000, 48, 0);
    flood(m, "big", 20000, 2000, 0);
    /* The most recent big values must be there: the big class got pages. */
    char key[32], val[4096];
    int present = 0;
    for (int i = 19000; i < 20000; i++) {
        snprintf(key, sizeof key, "big%d", i);
        size_t len = sizeof val;
        if (hmm_get(m, key, strlen(key), val, &len) == 0 && tu_value_ok(val, len, key, NULL))
            present++;
    }
    assert_true(present > 900);
    hmm_class_stats cs[64];
    size_t n;
    TU_OK(hmm_stat_classes(m, cs, 64, &n));
    uint64_t big_pages = 0, all_pages = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        all_pages += cs[i].pages;
        if (cs[i].chunk_size >= 2000)
            big_pages += cs[i].pages;
    }
    assert_true(big_pages * 2 > all_pages);
    TU_OK(hmm_check(m, 0, NULL));
    hmm_close(m);
}

/* Puts of n vlen-byte values under prefix into a cache: every one must be stored. */
static void cache_puts_all(hmm_t *m, const char *prefix, int n, size_t vlen)
{
    static char val[256 << 10];
    char key[32];
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "%s%d", prefix, i);
        tu_value(val, vlen, key, (uint64_t)i);
        int rc = hmm_put(m, key, (size_t)kl, val, vlen, 0, 0);
        if (rc != 0)
            fail_msg("a %zu-byte value into a full cache: %s (%s)", vlen, hmm_errname(rc), hmm_last_error());
    }
    int kl = snprintf(key, sizeof key, "%s%d", prefix, n - 1);
    size_t len = sizeof val;
    TU_OK(hmm_get(m, key, (size_t)kl, val, &len));
    assert_true(tu_value_ok(val, len, key, NULL));
}

/* FORMAT.md §12: a value over the largest class takes a run of whole
 * pages.  A cache filled with such values has no class page to give a
 * small value, and a cache full of small values has no free page for a
 * run: both must evict, not refuse. */
static void test_full_cache_takes_values_of_whole_pages_and_small_ones_after_them(void **state)
{
    hmm_t *m = cache_map(tu_tmpdir(), 4 << 20);
    cache_puts_all(m, "first", 200, 65536);  /* runs of two pages fill the fresh cache */
    cache_puts_all(m, "small", 20000, 64);   /* then small values must take pages back */
    cache_puts_all(m, "one", 200, 30000);    /* and runs of one, two and four pages */
    cache_puts_all(m, "two", 200, 65536);
    cache_puts_all(m, "four", 100, 200000);
    cache_puts_all(m, "again", 20000, 64);
    hmm_check_result r;
    TU_OK(hmm_check(m, 0, &r));
    assert_int_equal(r.unreachable + r.bad_entries + r.bad_slots, 0);
    hmm_close(m);
}

/* A 512 KiB cache that cannot grow and keeps no log, with its stats and
 * its classes as created. */
struct small_cache {
    hmm_t *m;
    hmm_stats st;
    hmm_class_stats cs[64];
    size_t ncls;
};

static void small_cache_open(struct small_cache *c)
{
    c->m = tu_open(tu_tmpdir(), 512 << 10, 512 << 10, HMM_CACHE | HMM_NOREPLOG);
    TU_OK(hmm_stat(c->m, &c->st));
    TU_OK(hmm_stat_classes(c->m, c->cs, 64, &c->ncls));
}

/* A cache whose every data page is a class page of entries read lately: a
 * value of two pages must still be stored.  Emptying a window of pages
 * moves the entries read lately elsewhere in their class; such moves once
 * took the pages the window had just freed, so entries bounced between
 * them until the put was refused (2 479 moves, HMM_FULL, with one entry in
 * each 64 KiB page of this cache; its pages are 4 KiB since 2026-12-05). */
static void test_full_cache_of_read_entries_takes_a_run_of_two_pages(void **state)
{
    (void)state;
    static struct small_cache sc;
    small_cache_open(&sc);
    static char val[200000];
    memset(val, 'v', sizeof val);
    /* Entries of the largest class, each read once, until the cache is full. */
    for (int i = 0; sc.st.counters[HMM_C_EVICTIONS] == 0; i++) {
        assert_true((uint64_t)i * sc.cs[sc.ncls - 1].chunk_size <= 2 * sc.st.bytes_total);
        char key[16];
        int kl = snprintf(key, sizeof key, "k%d", i);
        size_t vlen = sc.cs[sc.ncls - 1].chunk_size - TU_ENTRY_HDR - (size_t)kl - 8;
        TU_OK(hmm_put(sc.m, key, (size_t)kl, val, vlen, 0, 0));
        size_t len = sizeof val;
        TU_OK(hmm_get(sc.m, key, (size_t)kl, val, &len));
        TU_OK(hmm_stat(sc.m, &sc.st));
    }
    int rc = hmm_put(sc.m, "big", 3, val, 2 * sc.st.page_size - sc.st.page_size / 2, 0, 0);
    if (rc)
        fail_msg("a value of two pages into a cache of read entries: %s (%s)", hmm_errname(rc), hmm_last_error());
    hmm_check_result r;
    TU_OK(hmm_check(sc.m, 0, &r));
    assert_int_equal(r.unreachable + r.bad_entries + r.bad_slots, 0);
    hmm_close(sc.m);
}

/* A small value of a class with no page, in a cache whose only class page
 * holds the caller's own old entry (its put holds it: it cannot be
 * evicted) and whose other pages are runs: a run is evicted for it.  The
 * donor page hunt once picked that one page again and again, and the put
 * was refused although seven runs could go. */
static void test_small_value_takes_a_runs_page_when_the_class_page_holds_its_own_key(void **state)
{
    (void)state;
    static struct small_cache sc;
    small_cache_open(&sc);
    static char val[100000];
    memset(val, 'v', sizeof val);
    int npages = (int)(sc.st.bytes_total / sc.st.page_size);
    TU_OK(hmm_put(sc.m, "K", 1, val, 128 - TU_ENTRY_HDR - 1, 0, 0)); /* a 128-byte chunk */
    for (int i = 0; i < npages - 1; i++) {                             /* every other page a run */
        char key[16];
        int kl = snprintf(key, sizeof key, "r%d", i);
        TU_OK(hmm_put(sc.m, key, (size_t)kl, val, sc.st.page_size - sc.st.page_size / 16, 0, 0));
    }
    int rc = hmm_put(sc.m, "K", 1, val, 64 - TU_ENTRY_HDR - 1, 0, 0); /* a 64-byte chunk */
    if (rc)
        fail_msg("the key again, in a class with no page: %s (%s)", hmm_errname(rc), hmm_last_error());
    size_t len = sizeof val;
    TU_OK(hmm_get(sc.m, "K", 1, val, &len));
    assert_int_equal(len, 64 - TU_ENTRY_HDR - 1);
    hmm_close(sc.m);
}

/* Every sched_yield of this process, the library's included: the
 * executable's definition takes the calls of the shared library. */
static unsigned long yields;

int sched_yield(void)
{
    yields++;
    return (int)syscall(SYS_sched_yield);
}

/* A cache full of values of a page each (runs), then half a page of
 * entries of one class, each read: that class's only page, taken from a
 * run.  A value of a class with no page then empties it, and its entries,
 * read lately, are first offered a chunk elsewhere in their class.  There
 * is none (the page leaving is the class's only one), so each goes at
 * once.  Each once waited two yields for an eviction that could not come:
 * beside two reader threads that spin, two writers put 170 times fewer
 * values (12 864 against 2.2 M in 5 s). */
static void test_moving_entries_out_of_their_classs_only_page_never_waits(void **state)
{
    (void)state;
    static struct small_cache sc;
    small_cache_open(&sc);
    static char val[1 << 16];
    memset(val, 'v', sizeof val);
    assert_true(sc.st.page_size <= sizeof val);
    for (int i = 0; sc.st.counters[HMM_C_EVICTIONS] == 0; i++) {
        assert_true((uint64_t)i * sc.st.page_size <= 2 * sc.st.bytes_total);
        char key[16];
        int kl = snprintf(key, sizeof key, "run%d", i);
        TU_OK(hmm_put(sc.m, key, (size_t)kl, val, sc.st.page_size - sc.st.page_size / 8, 0, 0));
        TU_OK(hmm_stat(sc.m, &sc.st));
    }
    size_t c = 0;
    while (c < sc.ncls && sc.cs[c].chunk_size < 64)
        c++; /* the first class whose chunks take our keys */
    uint64_t half = sc.st.page_size / sc.cs[c].chunk_size / 2;
    for (uint64_t i = 0; i < half; i++) {
        char key[24];
        int kl = snprintf(key, sizeof key, "c%llu", (unsigned long long)i);
        TU_OK(hmm_put(sc.m, key, (size_t)kl, val, sc.cs[c].chunk_size - TU_ENTRY_HDR - (size_t)kl, 0, 0));
        size_t len = sizeof val;
        TU_OK(hmm_get(sc.m, key, (size_t)kl, val, &len));
    }
    hmm_class_stats now[64];
    TU_OK(hmm_stat_classes(sc.m, now, 64, &sc.ncls));
    assert_int_equal(now[c].pages, 1);
    yields = 0;
    int rc = hmm_put(sc.m, "new", 3, val, sc.cs[c + 1].chunk_size - TU_ENTRY_HDR - 3, 0, 0);
    if (rc)
        fail_msg("a value of a class with no page: %s (%s)", hmm_errname(rc), hmm_last_error());
    TU_OK(hmm_stat_classes(sc.m, now, 64, &sc.ncls));
    assert_int_equal(now[c].pages, 0); /* the page was emptied for the new class */
    if (yields > 4)
        fail_msg("emptying a page of %llu entries read lately yielded the CPU %lu times",
                 (unsigned long long)half, yields);
    hmm_check_result r;
    TU_OK(hmm_check(sc.m, 0, &r));
    assert_int_equal(r.unreachable + r.bad_entries + r.bad_slots, 0);
    hmm_close(sc.m);
}

static int flooder(void *arg)
{
    const char *dir = arg;
    hmm_t *m;
    if (hmm_open(&m, dir, NULL) != 0)
        return 10;
    srand((unsigned)getpid());
    char key[32], val[2100];
    for (;;) {
        snprintf(key, sizeof key, "k%d", rand() % 100000);
        size_t len = 24 + (size_t)(rand() % 2000);
        tu_value(val, len, key, (uint64_t)rand());
        if (hmm_put(m, key, strlen(key), val, len, 0, 0) != 0)
            return 11;
    }
}

static void test_sigkill_during_eviction_leaves_no_dangling_entry(void **state)
{
    const char *dir = tu_tmpdir();
    /* Filled first, so the flooders evict from their first put and every
     * kill can land inside an eviction, however loaded the machine is. */
    hmm_t *fill = cache_map(dir, 16 << 20);
    hmm_stats fst;
    char fkey[32], fval[2100];
    for (int i = 0; i < 200000; i++) {
        snprintf(fkey, sizeof fkey, "k%d", i % 100000);
        size_t len = 24 + (size_t)(i * 7919 % 2000);
        tu_value(fval, len, fkey, (uint64_t)i);
        TU_OK(hmm_put(fill, fkey, strlen(fkey), fval, len, 0, 0));
        if (i % 1000 == 999 && hmm_stat(fill, &fst) == 0 && fst.counters[HMM_C_EVICTIONS] > 0)
            break;
    }
    TU_OK(hmm_stat(fill, &fst));
    assert_true(fst.counters[HMM_C_EVICTIONS] > 0);
    hmm_close(fill);
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = tu_fork(flooder, (void *)dir);
    srand(99);
    for (int kill_no = 0; kill_no < 150; kill_no++) {
        usleep((useconds_t)(rand() % 5000));
        int v = rand() % 3;
        kill(pids[v], SIGKILL);
        int status = tu_wait(pids[v], 10000);
        if (!WIFSIGNALED(status))
            fail_msg("a flooder stopped by itself (status %d): cache mode refused a put", tu_exit_code(status));
        pids[v] = tu_fork(flooder, (void *)dir);
    }
    for (int i = 0; i < 3; i++) {
        kill(pids[i], SIGKILL);
        tu_wait(pids[i], 10000);
    }
    hmm_t *m = tu_open(dir, 0, 0, 0);
    hmm_check_result r;
    TU_OK(hmm_check(m, 0, &r));
    assert_int_equal(r.unreachable + r.bad_entries + r.bad_slots, 0);
    hmm_cursor *c;
    TU_OK(hmm_cursor_open(m, &c));
    const void *k, *v;
    size_t kl, vl;
    char key[32];
    while (hmm_cursor_next(c, &k, &kl, &v, &vl) == 0) {
        snprintf(key, sizeof key, "%.*s", (int)kl, (const char *)k);
        assert_true(tu_value_ok(v, vl, key, NULL));
    }
    hmm_cursor_close(c);
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    assert_true(st.counters[HMM_C_EVICTIONS] > 0);
    hmm_close(m);
}

int main(void)
{
    tu_watchdog(240);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_never_returns_full_and_hot_keys_survive),
        cmocka_unit_test(test_contending_writers_of_a_small_cache_refuse_only_after_evicting_patiently),
        cmocka_unit_test(test_expired_entries_read_as_absent_and_count_as_expirations),
        cmocka_unit_test(test_value_size_shift_moves_pages_to_the_new_class),
        cmocka_unit_test(test_full_cache_takes_values_of_whole_pages_and_small_ones_after_them),
        cmocka_unit_test(test_full_cache_of_read_entries_takes_a_run_of_two_pages),
        cmocka_unit_test(test_small_value_takes_a_runs_page_when_the_class_page_holds_its_own_key),
        cmocka_unit_test(test_moving_entries_out_of_their_classs_only_page_never_waits),
        cmocka_unit_test(test_sigkill_during_eviction_leaves_no_dangling_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
