/*
 * test_hardening.c - what an adversarial review found (issue 16): a
 * read-only reader of a cache map, a header whose fields are damaged one by
 * one with boundary values, a full filesystem, a filesystem without
 * fallocate(2).  Every case runs the map in
 * a forked child, so a signal is a failed test instead of a dead suite.
 */
#include "config.h"

#include "tests/testutil.h"
#include "core/format.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
    long walked = tu_cursor_count(m);
    if (walked < 0)
        return 3;
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

/* A map cut short under an open handle, by less than its free pages at the
 * end, then asked for more pages than it has: the growth must refuse, not
 * lengthen the file over the cut (which hid the damage, and the lost page
 * read as zeros).  Only the lost page's table entry is looked at (the
 * table lies in the part of the file that remains); the put touches no
 * lost page before it grows. */
static const char *cut_dir;

static int grow_a_cut_map(void *arg)
{
    (void)arg;
    hmm_t *m;
    if (hmm_open(&m, cut_dir, NULL) != 0 || hmm_put(m, "small", 5, "v", 1, 0, 0) != 0)
        return 60;
    char path[4200];
    tu_path(path, sizeof path, cut_dir, "hashmmap.map");
    int fd = open(path, O_RDWR);
    union hmm_header_block blk;
    if (fd < 0 || pread(fd, &blk, sizeof blk, 0) != (ssize_t)sizeof blk)
        return 61;
    uint64_t npages = atomic_load(&blk.h.npages), last = npages - 1;
    uint64_t entry;
    if (pread(fd, &entry, sizeof entry, (off_t)(blk.h.pagetab_off + last * sizeof entry)) != (ssize_t)sizeof entry ||
        entry != 0)
        return 62; /* the last page is in use: cutting it would not leave the put a path around it */
    uint64_t full = blk.h.data_off + npages * blk.h.page_size, cut = full - blk.h.page_size;
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != full || ftruncate(fd, (off_t)cut) != 0)
        return 63;
    /* A value larger than every free run: the put must grow the file. */
    size_t big = (size_t)npages * blk.h.page_size;
    if (big > blk.h.max_value)
        big = blk.h.max_value;
    char *val = calloc(1, big);
    int rc = hmm_put(m, "big", 3, val, big, 0, 0);
    free(val);
    printf("# put after the cut: %s (%s)\n", hmm_errname(rc), hmm_last_error());
    fflush(stdout);
    if (rc != HMM_CORRUPT)
        return 64;
    char want[64];
    snprintf(want, sizeof want, "%llu bytes", (unsigned long long)cut);
    if (!strstr(hmm_last_error(), "truncated") || !strstr(hmm_last_error(), want))
        return 65;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != cut)
        return 66; /* lengthened over the cut */
    close(fd);
    hmm_close(m);
    return 0;
}

static void test_growth_of_a_map_truncated_under_it_is_corrupt_and_keeps_the_length(void **state)
{
    (void)state;
    cut_dir = tu_tmpdir();
    hmm_close(tu_open(cut_dir, 1 << 20, 64 << 20, HMM_NOREPLOG));
    expect_child_clean(tu_fork(grow_a_cut_map, NULL), "growth of a map truncated under it");
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

/* Whether the puts of keys prefix0 .. prefix(acked - 1), each with
 * tu_value(key, its number), all read back whole. */
static bool acked_puts_read_back(hmm_t *m, const char *prefix, int acked)
{
    char key[32], val[256];
    for (int i = 0; i < acked; i++) {
        int kl = snprintf(key, sizeof key, "%s%d", prefix, i);
        size_t vl = sizeof val;
        uint64_t seq;
        if (hmm_get(m, key, (size_t)kl, val, &vl) != 0 || !tu_value_ok(val, vl, key, &seq) || seq != (uint64_t)i)
            return false;
    }
    return true;
}

/* ---- a filesystem without fallocate(2) (FORMAT.md §10) ---- */

/* Make this process's fallocate(2) fail with EOPNOTSUPP, as on a
 * filesystem that has none (a seccomp filter: the test needs no such
 * filesystem, and the library no test hook).  0, or -1 where seccomp
 * filters cannot be installed.  Only in forked children: it cannot be
 * undone. */
static int without_fallocate(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fallocate, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EOPNOTSUPP & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return -1;
    return 0;
}

static int try_without_fallocate(void *arg)
{
    (void)arg;
    return without_fallocate() != 0;
}

/* Skip the test where without_fallocate() cannot work. */
static void skip_unless_fallocate_can_be_filtered(void)
{
    int st = tu_wait(tu_fork(try_without_fallocate, NULL), CHILD_MS);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("# skipped: no seccomp filter here\n");
        skip();
    }
}

enum { SWEEP_MS = 1500, SWEEP_VALUE = 200 };
static const char *sweep_dir;

/* A new 1 MiB map in sweep_dir that may grow to 64 MiB; skips the test
 * where fallocate(2) cannot be made to fail. */
static hmm_t *new_map_to_grow_without_fallocate(void)
{
    skip_unless_fallocate_can_be_filtered();
    sweep_dir = tu_tmpdir();
    return tu_open(sweep_dir, 1 << 20, 64 << 20, HMM_NOREPLOG);
}

/* Grow the map without fallocate(2), for SWEEP_MS: open, put until the
 * file has grown, close; each open and each growth allocates the file. */
static int grow_without_fallocate(void *arg)
{
    (void)arg;
    if (without_fallocate() != 0)
        return 40;
    uint64_t t0 = tu_now_ms();
    char key[32], val[SWEEP_VALUE];
    int i = 0;
    while (tu_now_ms() - t0 < SWEEP_MS) {
        hmm_t *m;
        if (hmm_open(&m, sweep_dir, NULL) != 0)
            return 41;
        for (int n = 0; n < 500; n++, i++) {
            int kl = snprintf(key, sizeof key, "g-%d", i);
            tu_value(val, sizeof val, key, (uint64_t)i);
            int rc = hmm_put(m, key, (size_t)kl, val, sizeof val, 0, 0);
            if (rc == HMM_FULL) { /* at max_size: the growing is over (a fast machine, format 2's larger index) */
                hmm_close(m);
                return 0;
            }
            if (rc != 0)
                return 42;
        }
        hmm_close(m);
    }
    return 0;
}

/* The victim value: a marker, then zeros, past two 4 KiB boundaries. */
#define VICTIM_MARK "victim-value-marker-0123456789"
enum { VICTIM_LEN = 12288 };

/* Another process grows the map on a filesystem without fallocate(2) while
 * this one stores into the map's pages below the old end, as a writer's
 * put does through its mapping: the stores must all stay.  glibc's
 * posix_fallocate emulates fallocate by reading a byte of every 4 KiB
 * block and writing a zero back where it read one, so a store between its
 * read and its write was lost (the library called it on the whole file at
 * every growth and every writable open). */
static void test_growth_without_fallocate_keeps_the_stores_made_meanwhile(void **state)
{
    (void)state;
    hmm_t *m = new_map_to_grow_without_fallocate();
    static char victim[VICTIM_LEN];
    memcpy(victim, VICTIM_MARK, sizeof VICTIM_MARK);
    TU_OK(hmm_put(m, "victim", 6, victim, sizeof victim, 0, 0));
    hmm_close(m);

    /* This process's own mapping of the file; the byte it stores to lies
     * inside the victim's value, at the end of a 4 KiB block (where the
     * emulation reads and writes). */
    char path[4200];
    tu_path(path, sizeof path, sweep_dir, "hashmmap.map");
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    size_t len = (size_t)st.st_size;
    volatile uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    const uint8_t *at = memmem((const void *)p, len, VICTIM_MARK, sizeof VICTIM_MARK);
    assert_non_null(at);
    size_t x = (size_t)(at - (const uint8_t *)p) + 64;
    x += 4095 - x % 4096;
    assert_true(x < (size_t)(at - (const uint8_t *)p) + VICTIM_LEN);

    pid_t grower = tu_fork(grow_without_fallocate, NULL);
    unsigned long stores = 0, lost = 0;
    int status = 0;
    for (;;) {
        if (stores % 1024 == 0 && waitpid(grower, &status, WNOHANG) == grower)
            break;
        p[x] = 1;
        for (int spin = 0; spin < 20; spin++)
            __asm__ __volatile__("" ::: "memory");
        if (p[x] != 1)
            lost++;
        p[x] = 0;
        stores++;
    }
    munmap((void *)p, len);
    close(fd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the grower without fallocate failed: status 0x%x", status);
    if (lost)
        fail_msg("%lu of %lu stores into the map's pages were lost to a growth without fallocate", lost, stores);

    /* The map grew, its blocks are allocated, everything is there. */
    assert_int_equal(stat(path, &st), 0);
    assert_true((uint64_t)st.st_size > len);
    assert_true((uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size);
    m = tu_open(sweep_dir, 0, 0, 0);
    hmm_check_result res;
    TU_OK(hmm_check(m, 0, &res));
    static char got[VICTIM_LEN];
    size_t vl = sizeof got;
    TU_OK(hmm_get(m, "victim", 6, got, &vl));
    assert_true(vl == sizeof victim && memcmp(got, victim, vl) == 0);
    hmm_close(m);
}

/* Without fallocate(2), a growth that cannot have its blocks (here a
 * file-size limit, SIGXFSZ ignored: the write past it fails with EFBIG)
 * fails the put that needed it, leaves the file at its old length, and
 * loses nothing acknowledged. */
static int grow_past_the_size_limit(void *arg)
{
    (void)arg;
    if (without_fallocate() != 0)
        return 50;
    signal(SIGXFSZ, SIG_IGN);
    hmm_t *m;
    if (hmm_open(&m, sweep_dir, NULL) != 0)
        return 51;
    char path[4200];
    tu_path(path, sizeof path, sweep_dir, "hashmmap.map");
    struct stat st;
    if (stat(path, &st) != 0)
        return 52;
    /* Room for part of the next step: the zeros are written, then cut off. */
    struct rlimit lim = {(rlim_t)st.st_size + 100000, (rlim_t)st.st_size + 100000};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 53;
    char key[32], val[SWEEP_VALUE];
    int acked = 0, rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++) {
        int kl = snprintf(key, sizeof key, "f-%d", i);
        tu_value(val, sizeof val, key, (uint64_t)i);
        if ((rc = hmm_put(m, key, (size_t)kl, val, sizeof val, 0, 0)) == 0)
            acked++;
    }
    if (rc != -EFBIG || acked == 0)
        return 54;
    if (!strstr(hmm_last_error(), "cannot grow"))
        return 55;
    struct stat after;
    if (stat(path, &after) != 0 || after.st_size != st.st_size)
        return 56; /* the zeros written before the limit are still there */
    if (hmm_put(m, "once-more", 9, val, sizeof val, 0, 0) != -EFBIG)
        return 57;
    hmm_check_result res;
    if (hmm_check(m, 0, &res) != 0)
        return 58;
    if (!acked_puts_read_back(m, "f-", acked))
        return 59;
    hmm_close(m);
    return 0;
}

static void test_growth_without_fallocate_past_a_size_limit_fails_and_keeps_the_length(void **state)
{
    (void)state;
    hmm_close(new_map_to_grow_without_fallocate());
    int st = tu_wait(tu_fork(grow_past_the_size_limit, NULL), CHILD_MS);
    if (WIFSIGNALED(st))
        fail_msg("growth past a size limit without fallocate: killed by signal %d", WTERMSIG(st));
    assert_int_equal(tu_exit_code(st), 0);
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
    if (!acked_puts_read_back(m, "key-", acked))
        return 24;
    hmm_close(m);
    return 0;
}

static int fill_until_error_without_fallocate(void *arg)
{
    return without_fallocate() != 0 ? 17 : fill_until_error(arg);
}

/* Run fill in a child on a tmpfs of the given size at fs_dir. */
static void fill_a_small_filesystem(const char *size, int (*fill)(void *), const char *what)
{
    const char *base = tu_tmpdir();
    char opts[32];
    snprintf(opts, sizeof opts, "size=%s", size);
    snprintf(fs_dir, sizeof fs_dir, "%s/fs", base);
    if (mkdir(fs_dir, 0700) != 0 || mount("hmm-test", fs_dir, "tmpfs", 0, opts) != 0) {
        printf("# skipped: cannot mount a tmpfs here (%s)\n", strerror(errno));
        skip();
    }
    pid_t pid = tu_fork(fill, NULL);
    int st = tu_wait(pid, 60000);
    umount2(fs_dir, MNT_DETACH);
    if (WIFSIGNALED(st))
        fail_msg("%s: killed by signal %d", what, WTERMSIG(st));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_full_filesystem_gives_enospc_and_loses_nothing_acknowledged(void **state)
{
    (void)state;
    fill_a_small_filesystem("3m", fill_until_error, "full filesystem");
}

/* The same where fallocate(2) is missing: the zeros written in its stead
 * run the disk full, the file is cut back, the put says -ENOSPC. */
static void test_full_filesystem_without_fallocate_gives_enospc_and_loses_nothing(void **state)
{
    (void)state;
    skip_unless_fallocate_can_be_filtered();
    fill_a_small_filesystem("3m", fill_until_error_without_fallocate, "full filesystem without fallocate");
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
    fill_a_small_filesystem("2m", cache_fill_full_disk, "cache on a full filesystem");
}

int main(void)
{
    tu_watchdog(600);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_only_reader_of_a_cache_map_reads_and_writes_nothing),
        cmocka_unit_test(test_zero_index_word_is_corrupt_at_open),
        cmocka_unit_test(test_replog_size_that_would_wrap_is_corrupt_at_open),
        cmocka_unit_test(test_map_truncated_under_an_open_handle_is_refused_by_the_walkers),
        cmocka_unit_test(test_growth_of_a_map_truncated_under_it_is_corrupt_and_keeps_the_length),
        cmocka_unit_test(test_every_header_field_at_boundary_values_is_refused_or_harmless),
        cmocka_unit_test(test_full_filesystem_gives_enospc_and_loses_nothing_acknowledged),
        cmocka_unit_test(test_growth_without_fallocate_keeps_the_stores_made_meanwhile),
        cmocka_unit_test(test_growth_without_fallocate_past_a_size_limit_fails_and_keeps_the_length),
        cmocka_unit_test(test_full_filesystem_without_fallocate_gives_enospc_and_loses_nothing),
        cmocka_unit_test(test_cache_on_a_full_filesystem_evicts_instead_of_enospc),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_cleanup();
    return rc;
}
