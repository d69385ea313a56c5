/*
 * test_hardening.c - what an adversarial review found (issue 16): a
 * read-only reader of a cache map, a header whose fields are damaged one by
 * one with boundary values, a full filesystem.  Every case runs the map in
 * a forked child, so a signal is a failed test instead of a dead suite.
 */
#include "config.h"

#include "tests/testutil.h"
#include "core/format.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { CHILD_MS = 20000 };

static void expect_child_clean(pid_t pid, const char *what)
{
    int st = tu_wait(pid, CHILD_MS);
    if (WIFSIGNALED(st))
        fail_msg("%s: killed by signal %d", what, WTERMSIG(st));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s: child exit status %d", what, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static uint64_t file_digest(const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint64_t h = 1469598103934665603u;
    uint8_t buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 1099511628211u;
    close(fd);
    return h;
}

/* ---- item 1: a read-only reader of a cache map ---- */

static const char *ro_dir;

static int read_everything_read_only(void *arg)
{
    (void)arg;
    hmm_t *m;
    hmm_config cfg = {.flags = HMM_RDONLY};
    if (hmm_open(&m, ro_dir, &cfg) != 0)
        return 2;
    char val[200];
    int found = 0;
    for (int i = 0; i < 6000; i++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "k%d", i);
        size_t vl = sizeof val;
        found += hmm_get(m, key, (size_t)kl, val, &vl) == 0;
    }
    hmm_cursor *c;
    if (hmm_cursor_open(m, &c) != 0)
        return 3;
    const void *k, *v;
    size_t kl, vl;
    int walked = 0;
    while (hmm_cursor_next(c, &k, &kl, &v, &vl) == 0)
        walked++;
    hmm_cursor_close(c);
    hmm_close(m);
    return found > 0 && walked > 0 ? 0 : 4;
}

static void test_read_only_reader_of_a_cache_map_reads_and_writes_nothing(void **state)
{
    (void)state;
    ro_dir = tu_tmpdir();
    hmm_t *m = tu_open(ro_dir, 256 << 10, 0, HMM_CACHE);
    char key[16], val[100];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 6000; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        TU_OK(hmm_put(m, key, (size_t)kl, val, sizeof val, 0, 0));
    }
    hmm_close(m);
    char path[4200];
    tu_path(path, sizeof path, ro_dir, "hashmmap.map");
    uint64_t before = file_digest(path);
    expect_child_clean(tu_fork(read_everything_read_only, NULL), "read-only reader of a cache map");
    assert_true(file_digest(path) == before);
}

/* ---- the range table of FORMAT.md §3, walked field by field ---- */

struct field {
    const char *name;
    size_t off, len;
    bool strict; /* any other value is refused at open */
};
#define HF(f, strict) {#f, offsetof(struct hmm_header, f), sizeof(((struct hmm_header *)0)->f), strict}
static const struct field fields[] = {
    HF(magic, true), HF(format_version, true), HF(byte_order, true), HF(word_size, true),
    HF(layout_sig, true), HF(created_ms, false), HF(flags, false), HF(page_size, true),
    HF(size, false), HF(max_size, false), HF(default_ttl_ms, false), HF(replog_size, false),
    HF(max_value, false), HF(nstripes, true), HF(nclasses, true), HF(slab_factor_pct, false),
    HF(proc_off, true), HF(stripe_off, true), HF(class_off, true), HF(pagetab_off, true),
    HF(pagetab_cap, false), HF(data_off, true), HF(npages, false), HF(generation, false),
    HF(index_cur, false), HF(index_old, false), HF(recoveries, false),
    {"class_size[0]", offsetof(struct hmm_header, class_size), 4, true},
    {"class_size[5]", offsetof(struct hmm_header, class_size) + 20, 4, true},
    HF(pages_owner_proc, false), HF(index_pages, false), HF(migrate_next, false),
    HF(grow_owner_proc, false), HF(page_hand, false),
};

static const char *walk_src, *walk_dir;

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(in >= 0 && out >= 0);
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

/* Everything a tool does with a map: get, put, delete, walk, check. */
static int use_damaged_map(void *arg)
{
    const struct field *f = arg;
    hmm_t *m;
    int rc = hmm_open(&m, walk_dir, NULL);
    if (rc != 0)
        return rc == HMM_CORRUPT || rc == HMM_INCOMPAT ? 0 : 10;
    if (f->strict)
        return 11; /* a field that must match was accepted with another value */
    char val[256];
    for (int i = 0; i < 50; i++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "key-%d", i);
        size_t vl = sizeof val;
        hmm_get(m, key, (size_t)kl, val, &vl);
        hmm_put(m, key, (size_t)kl, "x", 1, 0, 0);
        if (i % 3 == 0)
            hmm_del(m, key, (size_t)kl);
    }
    hmm_cursor *c;
    if (hmm_cursor_open(m, &c) == 0) {
        const void *k, *v;
        size_t kl, vl;
        for (int n = 0; n < 100000 && hmm_cursor_next(c, &k, &kl, &v, &vl) == 0; n++)
            ;
        hmm_cursor_close(c);
    }
    hmm_check_result res;
    hmm_check(m, 0, &res);
    hmm_stats st;
    hmm_stat(m, &st);
    hmm_close(m);
    return 0;
}

static void patch_field(const char *path, const struct field *f, uint64_t value)
{
    uint8_t bytes[8];
    memcpy(bytes, &value, sizeof bytes); /* little end first on the hosts we build for */
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    size_t n = f->len < 8 ? f->len : 8;
    assert_int_equal(pwrite(fd, bytes, n, (off_t)f->off), (ssize_t)n);
    close(fd);
}

static bool field_holds(const char *path, const struct field *f, uint64_t value)
{
    uint8_t now[8] = {0}, want[8];
    memcpy(want, &value, sizeof want);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size_t n = f->len < 8 ? f->len : 8;
    assert_int_equal(pread(fd, now, n, (off_t)f->off), (ssize_t)n);
    close(fd);
    return memcmp(now, want, n) == 0;
}

static void test_every_header_field_at_boundary_values_is_refused_or_harmless(void **state)
{
    (void)state;
    walk_src = tu_tmpdir();
    hmm_t *m = tu_open(walk_src, 1 << 20, 4 << 20, 0);
    char val[128];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 300; i++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "key-%d", i);
        TU_OK(hmm_put(m, key, (size_t)kl, val, (size_t)kl * (size_t)(i % 7), 0, 0));
    }
    hmm_close(m);
    char src[4200], dst[4200];
    tu_path(src, sizeof src, walk_src, "hashmmap.map");
    walk_dir = tu_tmpdir();
    tu_path(dst, sizeof dst, walk_dir, "hashmmap.map");
    const uint64_t values[] = {0, 1, 2, 63, 64, 4095, 0x7fffffffu, 0xffffffffu, UINT64_C(0x100000000),
                               UINT64_C(0x10000000000), UINT64_C(0x7fffffffffffffff), UINT64_MAX,
                               UINT64_MAX - 255};
    for (size_t fi = 0; fi < sizeof fields / sizeof fields[0]; fi++) {
        for (size_t vi = 0; vi < sizeof values / sizeof values[0]; vi++) {
            copy_file(src, dst);
            if (field_holds(dst, &fields[fi], values[vi]))
                continue; /* the healthy value itself */
            patch_field(dst, &fields[fi], values[vi]);
            char what[128];
            snprintf(what, sizeof what, "header field %s = 0x%llx", fields[fi].name,
                     (unsigned long long)values[vi]);
            pid_t pid = tu_fork(use_damaged_map, (void *)&fields[fi]);
            int st = tu_wait(pid, CHILD_MS);
            if (WIFSIGNALED(st))
                fail_msg("%s: killed by signal %d", what, WTERMSIG(st));
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail_msg("%s: %s", what, WEXITSTATUS(st) == 11 ? "accepted" : "unexpected error");
        }
    }
}

static void test_zero_index_word_is_corrupt_at_open(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_close(tu_open(dir, 1 << 20, 0, 0));
    char path[4200];
    tu_path(path, sizeof path, dir, "hashmmap.map");
    patch_field(path, &(struct field)HF(index_cur, false), 0);
    hmm_t *m = NULL;
    assert_int_equal(hmm_open(&m, dir, NULL), HMM_CORRUPT);
    assert_non_null(strstr(hmm_last_error(), "index_cur"));
}

/* Item 7 of the hardening review: a file cut short under an open handle.
 * Nothing can keep a load or store into the lost pages from being SIGBUS
 * (docs/RELIABILITY.md, "Files truncated under a mapping"), but the calls
 * that walk the whole data area look at the file's size first and refuse. */
static void test_map_truncated_under_an_open_handle_is_refused_by_the_walkers(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    char key[32], val[64];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        size_t vlen = tu_value(val, sizeof val, key, (uint64_t)i);
        TU_OK(hmm_put(m, key, strlen(key), val, vlen, 0, 0));
    }
    assert_int_equal(hmm_check(m, 0, NULL), 0);
    char path[4200];
    tu_path(path, sizeof path, dir, "hashmmap.map");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);

    hmm_check_result res;
    assert_int_equal(hmm_check(m, 0, &res), HMM_CORRUPT);
    assert_non_null(strstr(hmm_last_error(), "truncated under the map"));
    hmm_cursor *c = NULL;
    assert_int_equal(hmm_cursor_open(m, &c), HMM_CORRUPT);
    assert_null(c);
    assert_non_null(strstr(hmm_last_error(), "truncated under the map"));
    hmm_close(m);
    /* And a later open says so before mapping anything. */
    assert_int_equal(hmm_open(&m, dir, NULL), HMM_CORRUPT);
    assert_non_null(strstr(hmm_last_error(), "truncated"));
}

static void test_replog_size_that_would_wrap_is_corrupt_at_open(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_close(tu_open(dir, 1 << 20, 0, 0));
    char path[4200];
    tu_path(path, sizeof path, dir, "hashmmap.map");
    const uint64_t bad[] = {UINT64_C(0xFFFFFFFFFFFFFF00), UINT64_C(0x10000000000)};
    for (int i = 0; i < 2; i++) {
        patch_field(path, &(struct field)HF(replog_size, false), bad[i]);
        hmm_t *m = NULL;
        assert_int_equal(hmm_open(&m, dir, NULL), HMM_CORRUPT);
        assert_non_null(strstr(hmm_last_error(), "replog_size"));
    }
    hmm_config cfg = {.flags = HMM_CREATE, .replog_size = UINT64_C(0xFFFFFFFFFFFFFF00)};
    hmm_t *m = NULL;
    assert_int_equal(hmm_open(&m, tu_tmpdir(), &cfg), -EINVAL);
}

/* ---- item 2: a full filesystem ---- */

static char fs_dir[256];

static int fill_until_error(void *arg)
{
    (void)arg;
    /* A map whose log alone is larger than the disk: refused at once, and
     * the temporary file of the atomic creation is gone. */
    char sub[300];
    snprintf(sub, sizeof sub, "%s/withlog", fs_dir);
    hmm_t *m;
    if (hmm_open(&m, sub, NULL) != -ENOSPC)
        return 19;
    hmm_close(m);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", sub);
    if (system(cmd) != 0)
        return 18;
    /* No log: the puts themselves run the disk full as the file grows. */
    hmm_config cfg = {.flags = HMM_CREATE | HMM_NOREPLOG, .size = 1 << 20, .max_size = 64 << 20};
    int rc = hmm_open(&m, fs_dir, &cfg);
    if (rc != 0)
        return 20;
    char key[32], val[200];
    int acked = 0;
    for (int i = 0; i < 40000; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        tu_value(val, sizeof val, key, (uint64_t)i);
        rc = hmm_put(m, key, (size_t)kl, val, sizeof val, 0, 0);
        if (rc != 0)
            break;
        acked++;
    }
    if (rc != -ENOSPC || acked == 0)
        return 21; /* never filled the disk, or failed with something else */
    /* Later puts fail the same way, and nothing acknowledged is lost. */
    for (int i = 0; i < 100; i++) {
        int kl = snprintf(key, sizeof key, "later-%d", i);
        rc = hmm_put(m, key, (size_t)kl, val, sizeof val, 0, 0);
        if (rc != -ENOSPC && rc != 0)
            return 22;
    }
    hmm_close(m);
    if (hmm_open(&m, fs_dir, NULL) != 0)
        return 23;
    for (int i = 0; i < acked; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        size_t vl = sizeof val;
        uint64_t seq;
        if (hmm_get(m, key, (size_t)kl, val, &vl) != 0 || !tu_value_ok(val, vl, key, &seq) || seq != (uint64_t)i)
            return 24;
    }
    hmm_close(m);
    return 0;
}

static void test_full_filesystem_gives_enospc_and_loses_nothing_acknowledged(void **state)
{
    (void)state;
    const char *base = tu_tmpdir();
    snprintf(fs_dir, sizeof fs_dir, "%s/fs", base);
    if (mkdir(fs_dir, 0700) != 0 || mount("hmm-test", fs_dir, "tmpfs", 0, "size=3m") != 0) {
        printf("# skipped: cannot mount a tmpfs here (%s)\n", strerror(errno));
        skip();
    }
    pid_t pid = tu_fork(fill_until_error, NULL);
    int st = tu_wait(pid, 60000);
    umount2(fs_dir, MNT_DETACH);
    if (WIFSIGNALED(st))
        fail_msg("full filesystem: killed by signal %d", WTERMSIG(st));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* A cache that may grow meets the full disk: it evicts within the file it
 * has, as at max_size (FORMAT.md §12), instead of -ENOSPC for every put. */
static int cache_fill_full_disk(void *arg)
{
    (void)arg;
    hmm_config cfg = {.flags = HMM_CREATE | HMM_CACHE | HMM_NOREPLOG, .size = 256 << 10, .max_size = 64 << 20};
    hmm_t *m;
    if (hmm_open(&m, fs_dir, &cfg) != 0)
        return 30;
    char key[32], val[3000];
    int refused = 0;
    for (int i = 0; i < 20000; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        size_t len = i % 3 == 0 ? 100 : i % 3 == 1 ? 1000 : sizeof val;
        tu_value(val, len, key, (uint64_t)i);
        int rc = hmm_put(m, key, (size_t)kl, val, len, 0, 0);
        if (rc != 0 && rc != -ENOSPC)
            return 31;
        refused += rc != 0;
    }
    if (refused)
        return 32; /* a put the cache could have made room for was refused */
    hmm_stats st;
    hmm_check_result res;
    if (hmm_stat(m, &st) != 0 || st.counters[HMM_C_EVICTIONS] == 0)
        return 33; /* never filled the disk */
    if (hmm_check(m, 0, &res) != 0 || res.unreachable + res.bad_slots + res.bad_entries)
        return 34;
    for (int i = 19990; i < 20000; i++) { /* the latest puts are there */
        int kl = snprintf(key, sizeof key, "key-%d", i);
        size_t vl = sizeof val;
        if (hmm_get(m, key, (size_t)kl, val, &vl) != 0 || !tu_value_ok(val, vl, key, NULL))
            return 35;
    }
    hmm_close(m);
    return 0;
}

static void test_cache_on_a_full_filesystem_evicts_instead_of_enospc(void **state)
{
    (void)state;
    const char *base = tu_tmpdir();
    snprintf(fs_dir, sizeof fs_dir, "%s/fs", base);
    if (mkdir(fs_dir, 0700) != 0 || mount("hmm-test", fs_dir, "tmpfs", 0, "size=2m") != 0) {
        printf("# skipped: cannot mount a tmpfs here (%s)\n", strerror(errno));
        skip();
    }
    pid_t pid = tu_fork(cache_fill_full_disk, NULL);
    int st = tu_wait(pid, 60000);
    umount2(fs_dir, MNT_DETACH);
    if (WIFSIGNALED(st))
        fail_msg("cache on a full filesystem: killed by signal %d", WTERMSIG(st));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    tu_watchdog(600);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_only_reader_of_a_cache_map_reads_and_writes_nothing),
        cmocka_unit_test(test_zero_index_word_is_corrupt_at_open),
        cmocka_unit_test(test_replog_size_that_would_wrap_is_corrupt_at_open),
        cmocka_unit_test(test_map_truncated_under_an_open_handle_is_refused_by_the_walkers),
        cmocka_unit_test(test_every_header_field_at_boundary_values_is_refused_or_harmless),
        cmocka_unit_test(test_full_filesystem_gives_enospc_and_loses_nothing_acknowledged),
        cmocka_unit_test(test_cache_on_a_full_filesystem_evicts_instead_of_enospc),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_cleanup();
    return rc;
}
