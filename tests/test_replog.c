/*
 * test_replog.c - the replication log (FORMAT.md §13) as hashmmap.h
 * promises it: sequence numbers from 1, gap-free and in commit order across
 * processes; every change logged with its tag and absolute expiry, nothing
 * else; a wrapped log says HMM_MISMATCH; HMM_NOREPLOG has none; read-only
 * handles write nothing; hmm_apply makes a mirror; the replica position and
 * the daemon status persist; a damaged log is refused, never crashes.
 * Crash points of the append are covered in test_crashpoints.c.
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
#include <sys/mman.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define SMALL_LOG (1u << 20) /* raised to the minimum: 4 records of the largest size */

static hmm_t *open_cfg(const char *dir, uint32_t flags, uint64_t replog_size)
{
    hmm_config cfg = {.size = 8u << 20, .flags = flags | HMM_CREATE, .replog_size = replog_size};
    hmm_t *m = NULL;
    TU_OK(hmm_open(&m, dir, &cfg));
    return m;
}

/* Read every record from from_seq to the end into a callback; returns how
 * many.  Callers that kill nobody also check the count against the range,
 * which makes it gap-free. */
static uint64_t read_all(hmm_t *m, uint64_t from_seq, void (*fn)(const hmm_replog_record *, void *), void *arg)
{
    hmm_replog_reader *r;
    TU_OK(hmm_replog_open(m, from_seq, &r));
    hmm_replog_record rec;
    uint64_t n = 0, want = from_seq;
    int rc;
    while ((rc = hmm_replog_next(r, &rec)) == 0) {
        /* Increasing; a gap is a voided record (a change that did not
         * happen), which only killed writers leave. */
        if (rec.seq < want)
            fail_msg("record %" PRIu64 " after %" PRIu64, rec.seq, want - 1);
        want = rec.seq;
        want++;
        n++;
        if (fn)
            fn(&rec, arg);
    }
    if (rc != HMM_NOTFOUND)
        fail_msg("log reading ended with %s (%s)", hmm_errname(rc), hmm_last_error());
    hmm_replog_close(r);
    return n;
}

static void test_empty_log_starts_at_one(void **state)
{
    (void)state;
    hmm_t *m = open_cfg(tu_tmpdir(), 0, 0);
    struct hmm_replog_info info;
    TU_OK(hmm_replog_info(m, &info));
    assert_int_equal(info.first_seq, 1);
    assert_int_equal(info.last_seq, 0);
    assert_true(info.capacity >= (16u << 20));
    assert_int_equal(read_all(m, 1, NULL, NULL), 0);
    TU_OK(hmm_put(m, "a", 1, "1", 1, 0, 0));
    TU_OK(hmm_replog_info(m, &info));
    assert_int_equal(info.last_seq, 1);
    assert_int_equal(read_all(m, 1, NULL, NULL), 1);
    assert_int_equal(read_all(m, 2, NULL, NULL), 0);
    hmm_replog_reader *r;
    assert_int_equal(hmm_replog_open(m, 3, &r), HMM_MISMATCH); /* newer than the log */
    hmm_close(m);
}

struct expect {
    unsigned n;
    hmm_replog_record want[8];
    const char *vals[8];
};

static void check_expected_record(const hmm_replog_record *rec, void *arg)
{
    struct expect *e = arg;
    assert_true(e->n < 8);
    const hmm_replog_record *w = &e->want[e->n];
    const char *v = e->vals[e->n++];
    if (rec->op != w->op || rec->tag != w->tag || rec->klen != w->klen || memcmp(rec->key, w->key, w->klen) != 0 ||
        (v && (rec->vlen != strlen(v) || memcmp(rec->val, v, rec->vlen) != 0)) || (!v && rec->vlen != 0))
        fail_msg("record %u (seq %" PRIu64 ") differs: op %u tag %u key %.*s", e->n, rec->seq, rec->op, rec->tag,
                 (int)rec->klen, (const char *)rec->key);
    /* Expiry is absolute: within the test's run of now + ttl. */
    if (w->expire_ms == 0 ? rec->expire_ms != 0
                          : rec->expire_ms < w->expire_ms - 60000 || rec->expire_ms > w->expire_ms + 60000)
        fail_msg("record %u: expiry %" PRIu64 ", expected about %" PRIu64, e->n, rec->expire_ms, w->expire_ms);
}

static void test_every_kind_of_change_is_logged_and_nothing_else(void **state)
{
    (void)state;
    hmm_t *m = open_cfg(tu_tmpdir(), 0, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000;
    TU_OK(hmm_put(m, "p", 1, "one", 3, 0, 0));
    TU_OK(hmm_put_tagged(m, "t", 1, "two", 3, 3600000, 0, 7));
    TU_OK(hmm_incr(m, "c", 1, 5, NULL));
    uint64_t v = 0;
    char buf[16];
    size_t len = sizeof buf;
    TU_OK(hmm_getv(m, "p", 1, buf, &len, &v));
    TU_OK(hmm_cas(m, "p", 1, "three", 5, 0, v));
    TU_OK(hmm_del(m, "t", 1));
    /* Refused changes are not logged. */
    assert_int_equal(hmm_put(m, "p", 1, "x", 1, 0, HMM_NX), HMM_EXISTS);
    assert_int_equal(hmm_cas(m, "p", 1, "x", 1, 0, 1), HMM_MISMATCH);
    assert_int_equal(hmm_del(m, "zz", 2), HMM_NOTFOUND);
    assert_int_equal(hmm_put(m, "q", 1, "x", 1, 0, HMM_XX), HMM_NOTFOUND);
    /* An expiration reclaimed by a delete is not a logged change either. */
    TU_OK(hmm_put(m, "e", 1, "gone", 4, 1, 0));
    usleep(20000);
    assert_int_equal(hmm_del(m, "e", 1), HMM_NOTFOUND);

    struct expect e = {0};
    e.want[0] = (hmm_replog_record){.op = HMM_REC_PUT, .tag = HMM_TAG_RAW, .key = "p", .klen = 1};
    e.vals[0] = "one";
    e.want[1] = (hmm_replog_record){.op = HMM_REC_PUT, .tag = 7, .key = "t", .klen = 1, .expire_ms = now + 3600000};
    e.vals[1] = "two";
    e.want[2] = (hmm_replog_record){.op = HMM_REC_PUT, .tag = HMM_TAG_COUNTER, .key = "c", .klen = 1};
    e.vals[2] = "5";
    e.want[3] = (hmm_replog_record){.op = HMM_REC_PUT, .tag = HMM_TAG_RAW, .key = "p", .klen = 1};
    e.vals[3] = "three";
    e.want[4] = (hmm_replog_record){.op = HMM_REC_DEL, .key = "t", .klen = 1};
    e.vals[4] = NULL;
    e.want[5] = (hmm_replog_record){.op = HMM_REC_PUT, .tag = HMM_TAG_RAW, .key = "e", .klen = 1, .expire_ms = now};
    e.vals[5] = "gone";
    assert_int_equal(read_all(m, 1, check_expected_record, &e), 6);
    hmm_close(m);
}

/* ---- several writer processes ---- */

struct writer {
    const char *dir;
    int id;
    int n;
    bool same_key;
};

static int writer_main(void *p)
{
    struct writer *w = p;
    hmm_t *m;
    if (hmm_open(&m, w->dir, NULL) != 0)
        return 10;
    char key[32];
    for (int i = 0; i < w->n; i++) {
        if (w->same_key) {
            if (hmm_incr(m, "shared", 6, 1, NULL) != 0)
                return 11;
            continue;
        }
        snprintf(key, sizeof key, "w%d-%d", w->id, i);
        if (hmm_put(m, key, strlen(key), key, strlen(key), 0, 0) != 0)
            return 12;
    }
    hmm_close(m);
    return 0;
}

static void run_writers(const char *dir, int nwriters, int n, bool same_key)
{
    struct writer w[4];
    pid_t pid[4];
    for (int i = 0; i < nwriters; i++) {
        w[i] = (struct writer){dir, i, n, same_key};
        pid[i] = tu_fork(writer_main, &w[i]);
    }
    for (int i = 0; i < nwriters; i++)
        assert_int_equal(tu_exit_code(tu_wait(pid[i], 60000)), 0);
}

struct per_writer {
    int next[4];
};

static void check_writer_order(const hmm_replog_record *rec, void *arg)
{
    struct per_writer *pw = arg;
    int id, i;
    char key[32];
    snprintf(key, sizeof key, "%.*s", (int)rec->klen, (const char *)rec->key);
    if (sscanf(key, "w%d-%d", &id, &i) != 2 || id < 0 || id > 3)
        fail_msg("unexpected key %s", key);
    if (i != pw->next[id] || rec->vlen != rec->klen || memcmp(rec->val, rec->key, rec->klen) != 0)
        fail_msg("writer %d: record %d where %d was expected", id, i, pw->next[id]);
    pw->next[id]++;
}

static void test_sequence_numbers_are_gap_free_across_processes(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_close(open_cfg(dir, 0, 0));
    run_writers(dir, 4, 2000, false);
    hmm_t *m = open_cfg(dir, 0, 0);
    struct per_writer pw = {{0}};
    /* read_all checks that seqs run 1, 2, 3, ... without a gap. */
    assert_int_equal(read_all(m, 1, check_writer_order, &pw), 8000);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pw.next[i], 2000);
    struct hmm_replog_info info;
    TU_OK(hmm_replog_info(m, &info));
    assert_int_equal(info.last_seq, 8000);
    hmm_close(m);
}

static void check_counter_order(const hmm_replog_record *rec, void *arg)
{
    int64_t *last = arg;
    char buf[24];
    snprintf(buf, sizeof buf, "%.*s", (int)rec->vlen, (const char *)rec->val);
    int64_t v = strtoll(buf, NULL, 10);
    if (rec->tag != HMM_TAG_COUNTER || v != *last + 1)
        fail_msg("counter record %" PRIu64 " holds %s after %" PRId64, rec->seq, buf, *last);
    *last = v;
}

static void test_records_of_one_key_are_in_commit_order_from_two_writers(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_close(open_cfg(dir, 0, 0));
    run_writers(dir, 2, 3000, true);
    hmm_t *m = open_cfg(dir, 0, 0);
    int64_t last = 0;
    assert_int_equal(read_all(m, 1, check_counter_order, &last), 6000);
    assert_int_equal(last, 6000);
    hmm_close(m);
}

/* A reader that follows two writers live sees every record once, in order. */
static void test_a_live_reader_sees_every_change_while_processes_write(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, 0, 0);
    struct writer w[2] = {{dir, 0, 5000, false}, {dir, 1, 5000, false}};
    pid_t pid[2] = {tu_fork(writer_main, &w[0]), tu_fork(writer_main, &w[1])};
    hmm_replog_reader *r;
    TU_OK(hmm_replog_open(m, 1, &r));
    struct per_writer pw = {{0}};
    hmm_replog_record rec;
    uint64_t want = 1, start = tu_now_ms();
    while (want <= 10000 && tu_now_ms() - start < 60000) {
        int rc = hmm_replog_next(r, &rec);
        if (rc == HMM_NOTFOUND) {
            usleep(100);
            continue;
        }
        TU_OK(rc);
        assert_int_equal(rec.seq, want);
        check_writer_order(&rec, &pw);
        want++;
    }
    assert_int_equal(want, 10001);
    assert_int_equal(hmm_replog_next(r, &rec), HMM_NOTFOUND);
    hmm_replog_close(r);
    for (int i = 0; i < 2; i++)
        assert_int_equal(tu_exit_code(tu_wait(pid[i], 60000)), 0);
    hmm_close(m);
}

/* ---- wrapping ---- */

static void test_wrapped_log_says_mismatch_on_open_and_to_a_lapped_reader(void **state)
{
    (void)state;
    hmm_t *m = open_cfg(tu_tmpdir(), 0, SMALL_LOG);
    struct hmm_replog_info info;
    TU_OK(hmm_replog_info(m, &info));
    uint64_t cap = info.capacity;
    assert_true(cap < (8u << 20));
    static char val[60000];
    memset(val, 'v', sizeof val);
    TU_OK(hmm_put(m, "k0", 2, val, sizeof val, 0, 0));
    hmm_replog_reader *lapped;
    TU_OK(hmm_replog_open(m, 1, &lapped));
    hmm_replog_record rec;
    TU_OK(hmm_replog_next(lapped, &rec)); /* seq 1 read, position at 2 */
    int n = (int)(2 * cap / sizeof val) + 4;
    char key[16];
    for (int i = 1; i < n; i++) {
        snprintf(key, sizeof key, "k%d", i % 20);
        TU_OK(hmm_put(m, key, strlen(key), val, sizeof val, 0, 0));
    }
    assert_int_equal(hmm_replog_next(lapped, &rec), HMM_MISMATCH);
    hmm_replog_close(lapped);
    TU_OK(hmm_replog_info(m, &info));
    assert_true(info.first_seq > 2);
    assert_int_equal(info.last_seq, (uint64_t)n);
    hmm_replog_reader *r;
    assert_int_equal(hmm_replog_open(m, 1, &r), HMM_MISMATCH);
    assert_int_equal(hmm_replog_open(m, info.first_seq - 1, &r), HMM_MISMATCH);
    /* What is left reads whole, to the newest record. */
    assert_int_equal(read_all(m, info.first_seq, NULL, NULL), info.last_seq - info.first_seq + 1);
    assert_true((info.last_seq - info.first_seq + 1) * sizeof val <= cap);
    hmm_close(m);
}

/* Trapped page faults of this process from now on (a perf software
 * counter: unlike getrusage's, it leaves out the faults madvise takes on
 * the process's behalf), or -1 where perf events are not allowed. */
static int fault_counter_open(void)
{
    struct perf_event_attr a = {.type = PERF_TYPE_SOFTWARE, .size = sizeof a,
                                .config = PERF_COUNT_SW_PAGE_FAULTS, .exclude_hv = 1};
    return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}

/* Appends make the log's pages present a window (256 KiB) ahead of the
 * head, one madvise each, instead of trapping once per 4 KiB page: 4 MiB
 * of fresh log must cost this process far fewer than its 1 024 faults.
 * Skipped where the kernel has no MADV_POPULATE_WRITE (before 5.14) or
 * perf events are not allowed. */
static void test_appends_populate_the_log_ahead_instead_of_faulting_per_page(void **state)
{
    (void)state;
    void *probe = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(probe != MAP_FAILED);
    int unsupported = madvise(probe, 4096, 23 /* MADV_POPULATE_WRITE */) != 0 && errno == EINVAL;
    munmap(probe, 4096);
    int fc = unsupported ? -1 : fault_counter_open();
    if (fc < 0)
        skip();
    hmm_t *m = open_cfg(tu_tmpdir(), 0, 8u << 20);
    static char val[4000];
    memset(val, 'v', sizeof val);
    TU_OK(hmm_put(m, "warm", 4, val, sizeof val, 0, 0)); /* the map's own first touches */
    uint64_t before = 0, after = 0;
    assert_int_equal(read(fc, &before, sizeof before), sizeof before);
    enum { LOG_BYTES = 4u << 20, PAGES = LOG_BYTES / 4096 };
    char key[16];
    for (unsigned i = 0; i < LOG_BYTES / sizeof val; i++) {
        snprintf(key, sizeof key, "k%u", i % 8); /* overwrites: the map reuses its chunks */
        TU_OK(hmm_put(m, key, strlen(key), val, sizeof val, 0, 0));
    }
    assert_int_equal(read(fc, &after, sizeof after), sizeof after);
    close(fc);
    if (after - before >= PAGES / 4)
        fail_msg("%" PRIu64 " page faults for %u pages of log: not populated ahead", after - before,
                 (unsigned)PAGES);
    struct hmm_replog_info info;
    TU_OK(hmm_replog_info(m, &info));
    assert_int_equal(info.last_seq, 1 + LOG_BYTES / sizeof val);
    hmm_close(m);
}

/* ---- no log, read-only ---- */

static void test_noreplog_map_has_no_log_file_and_says_enotsup(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, HMM_NOREPLOG, 0);
    TU_OK(hmm_put(m, "a", 1, "1", 1, 0, 0));
    char path[512];
    tu_path(path, sizeof path, dir, "hashmmap.replog");
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
    struct hmm_replog_info info;
    hmm_replog_reader *r;
    assert_int_equal(hmm_replog_info(m, &info), -ENOTSUP);
    assert_int_equal(hmm_replog_open(m, 1, &r), -ENOTSUP);
    hmm_close(m);
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = malloc((size_t)st.st_size);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static void test_read_only_handle_reads_the_log_and_writes_nothing(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, 0, 0);
    for (int i = 0; i < 100; i++)
        TU_OK(hmm_incr(m, "n", 1, 1, NULL));
    hmm_close(m);
    char lpath[512], mpath[512];
    tu_path(lpath, sizeof lpath, dir, "hashmmap.replog");
    tu_path(mpath, sizeof mpath, dir, "hashmmap.map");
    size_t llen, mlen;
    char *lbefore = slurp(lpath, &llen), *mbefore = slurp(mpath, &mlen);
    chmod(lpath, 0400);
    hmm_config cfg = {.flags = HMM_RDONLY};
    TU_OK(hmm_open(&m, dir, &cfg));
    assert_int_equal(read_all(m, 1, NULL, NULL), 100);
    assert_int_equal(read_all(m, 50, NULL, NULL), 51);
    uint8_t id[16];
    uint64_t next;
    assert_int_equal(hmm_replica_position_get(m, id, &next), HMM_NOTFOUND);
    assert_int_equal(hmm_replica_position_set(m, id, 5), -EBADF);
    hmm_close(m);
    size_t l2, m2;
    char *lafter = slurp(lpath, &l2), *mafter = slurp(mpath, &m2);
    assert_int_equal(llen, l2);
    assert_int_equal(mlen, m2);
    assert_memory_equal(lbefore, lafter, llen);
    assert_memory_equal(mbefore, mafter, mlen);
    free(lbefore);
    free(lafter);
    free(mbefore);
    free(mafter);
}

/* ---- hmm_apply ---- */

static void apply_to(const hmm_replog_record *rec, void *arg)
{
    TU_OK(hmm_apply(arg, rec));
}

/* Every entry of a is in b with the same value, tag and expiry, and back. */
static uint64_t compare_maps(hmm_t *a, hmm_t *b)
{
    hmm_cursor *c;
    TU_OK(hmm_cursor_open(a, &c));
    const void *k, *v;
    size_t kl, vl;
    uint64_t n = 0;
    static char buf[1 << 16];
    while (hmm_cursor_next(c, &k, &kl, &v, &vl) == 0) {
        hmm_entry_info ia, ib;
        TU_OK(hmm_cursor_info(c, &ia));
        size_t len = sizeof buf;
        int rc = hmm_get_info(b, k, kl, buf, &len, &ib);
        if (rc || len != vl || memcmp(buf, v, vl) != 0 || ia.tag != ib.tag || ia.expire_ms != ib.expire_ms)
            fail_msg("key %.*s differs in the mirror (%s)", (int)kl, (const char *)k, hmm_errname(rc));
        n++;
    }
    hmm_cursor_close(c);
    return n;
}

static void test_apply_makes_a_mirror_that_logs_its_own_changes(void **state)
{
    (void)state;
    hmm_t *p = open_cfg(tu_tmpdir(), 0, 0);
    hmm_t *r;
    hmm_config acfg = {.size = 8u << 20};
    TU_OK(hmm_open_anon(&r, &acfg));
    char key[32], val[64];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        snprintf(val, sizeof val, "value-%d", i * 7);
        TU_OK(hmm_put_tagged(p, key, strlen(key), val, strlen(val), i % 3 ? 0 : 3600000, 0, (unsigned)(i % 5)));
    }
    for (int i = 0; i < 500; i += 4) {
        snprintf(key, sizeof key, "key-%d", i);
        TU_OK(hmm_del(p, key, strlen(key)));
    }
    for (int i = 0; i < 50; i++)
        TU_OK(hmm_incr(p, "hits", 4, i, NULL));
    /* A record that expired on the way removes the key on the replica. */
    TU_OK(hmm_put(r, "stale", 5, "x", 1, 0, 0));
    hmm_replog_record expired = {.op = HMM_REC_PUT, .key = "stale", .klen = 5, .val = "y", .vlen = 1,
                                 .expire_ms = 1000};
    TU_OK(hmm_apply(r, &expired));
    size_t len = sizeof val;
    assert_int_equal(hmm_get(r, "stale", 5, val, &len), HMM_NOTFOUND);
    hmm_replog_record del_absent = {.op = HMM_REC_DEL, .key = "never", .klen = 5};
    TU_OK(hmm_apply(r, &del_absent));

    uint64_t applied = read_all(p, 1, apply_to, r);
    assert_int_equal(applied, 500 + 125 + 50);
    /* Applying the whole log twice is harmless: records are whole states. */
    read_all(p, 1, apply_to, r);
    hmm_stats sp, sr;
    TU_OK(hmm_stat(p, &sp));
    TU_OK(hmm_stat(r, &sr));
    assert_int_equal(sp.items, sr.items);
    assert_int_equal(compare_maps(p, r), sp.items);
    assert_int_equal(compare_maps(r, p), sp.items);
    /* The replica logged what it applied, under its own numbers. */
    struct hmm_replog_info ip, ir;
    TU_OK(hmm_replog_info(p, &ip));
    TU_OK(hmm_replog_info(r, &ir));
    assert_memory_not_equal(ip.map_id, ir.map_id, 16);
    assert_true(ir.last_seq >= 2 * applied);
    hmm_replog_record bad = {.op = 9, .key = "k", .klen = 1};
    assert_int_equal(hmm_apply(r, &bad), -EINVAL);
    hmm_close(p);
    hmm_close(r);
}

/* ---- position and status ---- */

static void test_replica_position_persists_across_reopen(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, HMM_NOREPLOG, 0);
    uint8_t id[16], got[16];
    uint64_t next = 0;
    assert_int_equal(hmm_replica_position_get(m, got, &next), HMM_NOTFOUND);
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(i * 17 + 3);
    TU_OK(hmm_replica_position_set(m, id, 12345));
    TU_OK(hmm_replica_position_set(m, id, 12346));
    hmm_close(m);
    m = open_cfg(dir, 0, 0);
    TU_OK(hmm_replica_position_get(m, got, &next));
    assert_memory_equal(got, id, 16);
    assert_int_equal(next, 12346);
    hmm_close(m);
}

/* The proof is stored and read with the position, in one write; the plain
 * set and a position of an older build (zero bytes there) say 0. */
static void test_replica_position_keeps_the_proof_of_its_history(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, 0, 0);
    uint8_t id[16] = {7}, got[16];
    uint64_t next = 0, dseq = 1, digest = 1;
    assert_int_equal(hmm_replica_position_get_with_digest(m, got, &next, &dseq, &digest), HMM_NOTFOUND);
    TU_OK(hmm_replica_position_set_with_digest(m, id, 41, 41, 0xabcdef0123456789ull));
    hmm_close(m);
    m = open_cfg(dir, 0, 0);
    TU_OK(hmm_replica_position_get_with_digest(m, got, &next, &dseq, &digest));
    assert_memory_equal(got, id, 16);
    assert_int_equal(next, 41);
    assert_int_equal(dseq, 41);
    assert_true(digest == 0xabcdef0123456789ull);
    TU_OK(hmm_replica_position_get(m, got, &next));
    assert_int_equal(next, 41);
    TU_OK(hmm_replica_position_set(m, id, 42));
    TU_OK(hmm_replica_position_get_with_digest(m, got, &next, &dseq, &digest));
    assert_int_equal(next, 42);
    assert_int_equal(dseq, 0);
    assert_int_equal(digest, 0);
    TU_OK(hmm_replica_position_clear(m));
    assert_int_equal(hmm_replica_position_get_with_digest(m, got, &next, &dseq, &digest), HMM_NOTFOUND);
    hmm_close(m);
}

static uint64_t counter_of(hmm_t *m, enum hmm_counter c)
{
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    return st.counters[c];
}

/* A position that raises next_seq over changes applied and not synced could
 * reach the disk before them (docs/FORMAT.md §13, replica position,
 * durability): it is counted.  After hmm_sync it is not; nor is a store
 * that keeps next_seq (the proof written ahead) or lowers it. */
static void test_a_position_stored_ahead_of_unsynced_changes_is_counted(void **state)
{
    (void)state;
    hmm_t *m = open_cfg(tu_tmpdir(), 0, 0);
    uint8_t id[16] = {9};
    hmm_replog_record rec = {.op = HMM_REC_PUT, .key = "k", .klen = 1, .val = "v", .vlen = 1};
    TU_OK(hmm_replica_position_set_with_digest(m, id, 1, 0, 0)); /* nothing applied yet */
    rec.seq = 1;
    TU_OK(hmm_apply(m, &rec));
    TU_OK(hmm_replica_position_set_with_digest(m, id, 1, 1, 11)); /* proof ahead, next_seq kept */
    assert_int_equal(counter_of(m, HMM_C_UNSYNCED_POSITIONS), 0);
    TU_OK(hmm_replica_position_set_with_digest(m, id, 2, 1, 11)); /* names record 1, not synced */
    assert_int_equal(counter_of(m, HMM_C_UNSYNCED_POSITIONS), 1);
    uint64_t syncs = counter_of(m, HMM_C_SYNCS);
    rec.seq = 2;
    TU_OK(hmm_apply(m, &rec));
    TU_OK(hmm_sync(m));
    assert_int_equal(counter_of(m, HMM_C_SYNCS), syncs + 1);
    TU_OK(hmm_replica_position_set_with_digest(m, id, 3, 2, 22)); /* synced first */
    rec.seq = 3;
    TU_OK(hmm_apply(m, &rec));
    TU_OK(hmm_replica_position_set_with_digest(m, id, 0, 0, 0)); /* a snapshot's start names nothing */
    assert_int_equal(counter_of(m, HMM_C_UNSYNCED_POSITIONS), 1);
    hmm_close(m);
}

/* A sync covers what was applied before it: a position naming only those
 * records is not counted while later records (applied during or after the
 * sync, as a replica daemon's sync thread lets it) are still unsynced; one
 * that names a later record is.  A record of seq 0 (a snapshot's entry, a
 * stale key's delete) is named by every position until a sync covers it. */
static void test_a_position_is_counted_only_when_it_names_an_unsynced_record(void **state)
{
    (void)state;
    hmm_t *m = open_cfg(tu_tmpdir(), 0, 0);
    uint8_t id[16] = {7};
    hmm_replog_record rec = {.op = HMM_REC_PUT, .key = "k", .klen = 1, .val = "v", .vlen = 1};
    for (rec.seq = 1; rec.seq <= 4; rec.seq++)
        TU_OK(hmm_apply(m, &rec));
    TU_OK(hmm_sync(m));
    for (rec.seq = 5; rec.seq <= 6; rec.seq++)
        TU_OK(hmm_apply(m, &rec));
    TU_OK(hmm_replica_position_set_with_digest(m, id, 5, 6, 66)); /* records 1-4: synced */
    assert_int_equal(counter_of(m, HMM_C_UNSYNCED_POSITIONS), 0);
    TU_OK(hmm_replica_position_set_with_digest(m, id, 6, 6, 66)); /* names record 5 */
    assert_int_equal(counter_of(m, HMM_C_UNSYNCED_POSITIONS), 1);
    TU_OK(hmm_sync(m));
    TU_OK(hmm_replica_position_set_with_digest(m, id, 7, 6, 66));
    assert_int_equal(counter_of(m, HMM_C_UNSYNCED_POSITIONS), 1);
    TU_OK(hmm_replica_position_set_with_digest(m, id, 0, 0, 0)); /* a snapshot starts */
    rec.seq = 0;
    TU_OK(hmm_apply(m, &rec)); /* one of its entries */
    TU_OK(hmm_replica_position_set_with_digest(m, id, 2, 1, 11));
    assert_int_equal(counter_of(m, HMM_C_UNSYNCED_POSITIONS), 2);
    TU_OK(hmm_sync(m));
    TU_OK(hmm_replica_position_set_with_digest(m, id, 3, 2, 22));
    assert_int_equal(counter_of(m, HMM_C_UNSYNCED_POSITIONS), 2);
    hmm_close(m);
}

/* ---- role and epoch (issue 19) ---- */

static void test_a_map_made_before_roles_reads_as_primary_at_epoch_zero(void **state)
{
    (void)state;
    hmm_t *m = open_cfg(tu_tmpdir(), 0, 0);
    hmm_role_info ri;
    TU_OK(hmm_role_get(m, &ri));
    assert_int_equal(ri.role, HMM_ROLE_PRIMARY);
    assert_int_equal(ri.epoch, 0);
    assert_string_equal(ri.primary, "");
    hmm_close(m);
}

static void test_a_replica_map_refuses_local_writes_but_not_reads_nor_its_daemon(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, 0, 0);
    TU_OK(hmm_put(m, "k", 1, "v1", 2, 0, 0));
    TU_OK(hmm_role_set(m, HMM_ROLE_REPLICA, 3, "db1.example:7411"));
    assert_int_equal(hmm_put(m, "k", 1, "LOCAL", 5, 0, 0), HMM_REPLICA);
    assert_non_null(strstr(hmm_last_error(), "replica of db1.example:7411"));
    assert_int_equal(hmm_del(m, "k", 1), HMM_REPLICA);
    assert_int_equal(hmm_incr(m, "n", 1, 1, NULL), HMM_REPLICA);
    assert_int_equal(hmm_cas(m, "k", 1, "x", 1, 0, 0), HMM_REPLICA);
    char buf[16];
    size_t len = sizeof buf;
    TU_OK(hmm_get(m, "k", 1, buf, &len));
    assert_memory_equal(buf, "v1", 2);
    hmm_close(m);
    /* The role is in the file: it holds for the next opener, daemon or not. */
    m = open_cfg(dir, 0, 0);
    assert_int_equal(hmm_put(m, "zz", 2, "local", 5, 0, 0), HMM_REPLICA);
    hmm_t *daemon = open_cfg(dir, HMM_REPLICA_WRITER, 0);
    hmm_replog_record rec = {.op = HMM_REC_PUT, .key = "k", .klen = 1, .val = "v2", .vlen = 2};
    TU_OK(hmm_apply(daemon, &rec));
    len = sizeof buf;
    TU_OK(hmm_get(m, "k", 1, buf, &len));
    assert_memory_equal(buf, "v2", 2);
    /* Promotion: writable again, at a newer epoch. */
    TU_OK(hmm_role_set(daemon, HMM_ROLE_PRIMARY, 4, NULL));
    TU_OK(hmm_put(m, "zz", 2, "local", 5, 0, 0));
    hmm_close(daemon);
    hmm_close(m);
}

static void test_every_log_record_carries_the_epoch_it_was_written_in(void **state)
{
    (void)state;
    hmm_t *m = open_cfg(tu_tmpdir(), 0, 0);
    TU_OK(hmm_put(m, "a", 1, "1", 1, 0, 0));
    TU_OK(hmm_role_set(m, HMM_ROLE_PRIMARY, 7, NULL));
    TU_OK(hmm_put(m, "b", 1, "2", 1, 0, 0));
    TU_OK(hmm_del(m, "a", 1));
    hmm_replog_reader *r;
    hmm_replog_record rec;
    TU_OK(hmm_replog_open(m, 1, &r));
    static const uint64_t want[] = {0, 7, 7};
    for (int i = 0; i < 3; i++) {
        TU_OK(hmm_replog_next(r, &rec));
        assert_int_equal(hmm_replog_epoch(r), want[i]);
    }
    assert_int_equal(hmm_replog_next(r, &rec), HMM_NOTFOUND);
    hmm_replog_close(r);
    hmm_close(m);
}

static void test_the_epoch_never_goes_down_nor_past_32_bits(void **state)
{
    (void)state;
    hmm_t *m = open_cfg(tu_tmpdir(), 0, 0);
    TU_OK(hmm_role_set(m, HMM_ROLE_REPLICA, 5, "h:1"));
    assert_int_equal(hmm_role_set(m, HMM_ROLE_PRIMARY, 4, NULL), -EINVAL);
    assert_int_equal(hmm_role_set(m, HMM_ROLE_PRIMARY, HMM_EPOCH_MAX + 1, NULL), -EOVERFLOW);
    char longer[200];
    memset(longer, 'h', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(hmm_role_set(m, HMM_ROLE_REPLICA, 5, longer), -EINVAL);
    assert_int_equal(hmm_role_set(m, 9, 5, NULL), -EINVAL);
    TU_OK(hmm_replica_position_set(m, (const uint8_t *)"0123456789abcdef", 10));
    TU_OK(hmm_replica_position_clear(m));
    uint8_t id[16];
    uint64_t next;
    assert_int_equal(hmm_replica_position_get(m, id, &next), HMM_NOTFOUND);
    hmm_role_info ri;
    TU_OK(hmm_role_get(m, &ri));
    assert_true(ri.role == HMM_ROLE_REPLICA && ri.epoch == 5 && strcmp(ri.primary, "h:1") == 0);
    hmm_close(m);
}

static void test_repl_status_is_kept_in_the_metrics_file(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, 0, 0);
    hmm_repl_status st, got;
    assert_int_equal(hmm_repl_status_get(m, &got), HMM_NOTFOUND);
    memset(&st, 0, sizeof st);
    st.role = HMM_REPL_ROLE_PRIMARY;
    st.state = HMM_REPL_STREAMING;
    st.peers = 2;
    st.pid = getpid();
    st.primary_seq = 1000;
    st.acked_seq = 990;
    st.lag_seqs = 10;
    st.bytes_sent = 1u << 30;
    TU_OK(hmm_repl_status_set(m, &st));
    hmm_close(m);
    hmm_config cfg = {.flags = HMM_RDONLY};
    TU_OK(hmm_open(&m, dir, &cfg));
    TU_OK(hmm_repl_status_get(m, &got));
    assert_memory_equal(&got, &st, sizeof st);
    assert_int_equal(hmm_repl_status_set(m, &st), -EBADF);
    hmm_close(m);
}

/* ---- anonymous maps, damaged logs ---- */

static int anon_child(void *p)
{
    hmm_t *m = p;
    return hmm_put(m, "child", 5, "1", 1, 0, 0) == 0 ? 0 : 1;
}

static void test_anonymous_map_logs_changes_of_forked_children(void **state)
{
    (void)state;
    hmm_t *m;
    TU_OK(hmm_open_anon(&m, NULL));
    TU_OK(hmm_put(m, "parent", 6, "1", 1, 0, 0));
    assert_int_equal(tu_exit_code(tu_wait(tu_fork(anon_child, m), 10000)), 0);
    assert_int_equal(read_all(m, 1, NULL, NULL), 2);
    hmm_close(m);
}

static void test_damaged_log_gives_corrupt_or_mismatch_never_a_crash(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, 0, 0);
    for (int i = 0; i < 200; i++)
        TU_OK(hmm_put(m, "k", 1, "some value", 10, 0, 0));
    char path[512];
    tu_path(path, sizeof path, dir, "hashmmap.replog");
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    srand(42);
    unsigned refused = 0;
    for (int round = 0; round < 300; round++) {
        /* Damage up to 8 bytes of the first records (the ring starts at 4096). */
        off_t at = 4096 + rand() % (200 * 64);
        uint8_t saved[8], junk[8];
        for (int i = 0; i < 8; i++)
            junk[i] = (uint8_t)rand();
        size_t n_junk = 1 + (size_t)(rand() % 8);
        assert_int_equal(pread(fd, saved, 8, at), 8);
        assert_int_equal(pwrite(fd, junk, n_junk, at), (ssize_t)n_junk);
        hmm_replog_reader *r = NULL;
        int rc = hmm_replog_open(m, 1, &r);
        hmm_replog_record rec;
        while (rc == 0 && (rc = hmm_replog_next(r, &rec)) == 0)
            ;
        if (rc != HMM_NOTFOUND && rc != HMM_CORRUPT && rc != HMM_MISMATCH)
            fail_msg("damaged log: %s", hmm_errname(rc));
        refused += rc != HMM_NOTFOUND;
        hmm_replog_close(r);
        assert_int_equal(pwrite(fd, saved, 8, at), 8);
    }
    /* Most damage is seen (only padding bytes after a value are not checked). */
    assert_true(refused > 200);
    close(fd);
    assert_int_equal(read_all(m, 1, NULL, NULL), 200);
    hmm_close(m);
}

/* Damage where a writer must look (the tail record, the window): writes
 * go on, the old records are dropped, and what follows reads whole. */
static void test_writers_get_past_a_damaged_log(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, 0, SMALL_LOG);
    struct hmm_replog_info info;
    TU_OK(hmm_replog_info(m, &info));
    static char val[60000];
    memset(val, 'v', sizeof val);
    int n = (int)(2 * info.capacity / sizeof val);
    for (int i = 0; i < n; i++)
        TU_OK(hmm_put(m, "big", 3, val, sizeof val, 0, 0));
    char path[512];
    tu_path(path, sizeof path, dir, "hashmmap.replog");
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    for (int damage = 0; damage < 2; damage++) {
        uint64_t tail, head;
        assert_int_equal(pread(fd, &tail, 8, 128), 8);
        assert_int_equal(pread(fd, &head, 8, 112), 8);
        if (damage == 0) {
            uint32_t bad_len = 3; /* the tail record's length */
            assert_int_equal(pwrite(fd, &bad_len, 4, (off_t)(4096 + tail % info.capacity + 16)), 4);
        } else {
            head += 3; /* an unaligned head */
            assert_int_equal(pwrite(fd, &head, 8, 112), 8);
        }
        hmm_stats before, st;
        TU_OK(hmm_stat(m, &before));
        for (int i = 0; i < 8; i++)
            TU_OK(hmm_put(m, "big", 3, val, sizeof val, 0, 0));
        TU_OK(hmm_put(m, "last", 4, "x", 1, 0, 0));
        TU_OK(hmm_stat(m, &st));
        assert_int_equal(st.recoveries, before.recoveries + 1); /* the window was reset once */
        struct hmm_replog_info after;
        TU_OK(hmm_replog_info(m, &after));
        hmm_replog_reader *r;
        assert_int_equal(hmm_replog_open(m, 1, &r), HMM_MISMATCH);
        TU_OK(hmm_replog_open(m, after.first_seq, &r));
        hmm_replog_record rec;
        int rc, seen = 0;
        while ((rc = hmm_replog_next(r, &rec)) == 0)
            seen++;
        assert_int_equal(rc, HMM_NOTFOUND);
        assert_true(seen >= 1);
        assert_int_equal(rec.seq, after.last_seq);
        assert_int_equal(rec.klen, 4);
        assert_memory_equal(rec.key, "last", 4);
        hmm_replog_close(r);
    }
    close(fd);
    hmm_close(m);
}

/* A log deleted under a map that was written is remade with numbers beyond
 * any the old one reached: a replica's old position is refused. */
static void test_a_remade_log_never_reuses_sequence_numbers(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, 0, 0);
    for (int i = 0; i < 10; i++)
        TU_OK(hmm_incr(m, "n", 1, 1, NULL));
    hmm_close(m);
    char path[512];
    tu_path(path, sizeof path, dir, "hashmmap.replog");
    assert_int_equal(unlink(path), 0);
    m = open_cfg(dir, 0, 0);
    TU_OK(hmm_put(m, "after", 5, "1", 1, 0, 0));
    struct hmm_replog_info info;
    TU_OK(hmm_replog_info(m, &info));
    assert_true(info.first_seq > 1000000);
    assert_int_equal(info.last_seq, info.first_seq);
    hmm_replog_reader *r;
    assert_int_equal(hmm_replog_open(m, 5, &r), HMM_MISMATCH);
    assert_int_equal(read_all(m, info.first_seq, NULL, NULL), 1);
    hmm_close(m);
}

/* ---- killed writers ---- */

struct churner {
    const char *dir;
    unsigned seed;
    unsigned max_ops; /* then wait to be killed; 0: no limit */
};

/* A round's cap for writers killed at random: two writers' worth (about
 * 80 bytes a record) stay well inside the default 16 MiB ring, so a test
 * that oversleeps its usleep on a loaded machine is not lapped by them
 * ("the log wrapped past the reader"). */
#define CHURN_ROUND_OPS 40000u

/* Puts, deletes and incrs on a few shared keys until killed. */
static int churn_main(void *p)
{
    struct churner *c = p;
    hmm_t *m;
    if (hmm_open(&m, c->dir, NULL) != 0)
        return 10;
    srand(c->seed);
    char key[16], val[64];
    for (unsigned i = 0; c->max_ops == 0 || i < c->max_ops; i++) {
        snprintf(key, sizeof key, "k%d", rand() % 50);
        int what = rand() % 10, rc;
        if (what < 6) {
            int n = snprintf(val, sizeof val, "%u-%u-%d", c->seed, i, rand());
            rc = hmm_put_tagged(m, key, strlen(key), val, (size_t)n, what == 0 ? 3600000 : 0, 0, (unsigned)what);
        } else if (what < 8) {
            rc = hmm_del(m, key, strlen(key));
        } else {
            snprintf(key, sizeof key, "n%d", rand() % 5);
            rc = hmm_incr(m, key, strlen(key), 1, NULL);
        }
        if (rc != 0 && rc != HMM_NOTFOUND)
            return 11;
    }
    for (;;)
        pause();
}

/* Writers SIGKILLed at random instants, many times over: the log, applied
 * to an empty map, gives exactly the map the writers left, and reading it
 * to the end never stalls on a dead writer's record. */
static void test_log_mirrors_the_map_after_writers_are_killed_at_random(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, 0, 0);
    hmm_t *mirror;
    hmm_config acfg = {.size = 8u << 20, .flags = HMM_NOREPLOG};
    TU_OK(hmm_open_anon(&mirror, &acfg));
    hmm_replog_reader *r;
    TU_OK(hmm_replog_open(m, 1, &r));
    hmm_replog_record rec;
    uint64_t n = 0, last = 0;
    int rc;
    srand(7);
    for (unsigned round = 0; round < 30; round++) {
        struct churner c[2] = {{dir, round * 2 + 1, CHURN_ROUND_OPS}, {dir, round * 2 + 2, CHURN_ROUND_OPS}};
        pid_t pid[2] = {tu_fork(churn_main, &c[0]), tu_fork(churn_main, &c[1])};
        usleep(2000 + (useconds_t)(rand() % 20000));
        for (int i = 0; i < 2; i++) {
            kill(pid[i], SIGKILL);
            int status = tu_wait(pid[i], 10000);
            if (!WIFSIGNALED(status))
                fail_msg("round %u: writer %d ended by itself (%d)", round, i, tu_exit_code(status));
        }
        /* Follow the log as a replica would, so it never wraps past us. */
        while ((rc = hmm_replog_next(r, &rec)) == 0) {
            assert_true(rec.seq > last);
            last = rec.seq;
            TU_OK(hmm_apply(mirror, &rec));
            n++;
        }
        if (rc != HMM_NOTFOUND)
            fail_msg("round %u: %s (%s)", round, hmm_errname(rc), hmm_last_error());
    }
    hmm_replog_close(r);
    assert_true(n > 100);
    hmm_stats sm, sr;
    TU_OK(hmm_stat(m, &sm));
    TU_OK(hmm_stat(mirror, &sr));
    assert_int_equal(compare_maps(m, mirror), sm.items);
    assert_int_equal(compare_maps(mirror, m), sr.items);
    assert_int_equal(sm.items, sr.items);
    hmm_close(mirror);
    hmm_close(m);
}

/* A writer stopped (SIGSTOP) at any instant, perhaps between reserving and
 * committing: readers, read-only or not, never wait for it: each call
 * returns at once, and once it runs again every record shows up. */
static void test_a_stopped_writer_never_blocks_readers(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = open_cfg(dir, 0, 0), *ro;
    hmm_config rcfg = {.flags = HMM_RDONLY};
    TU_OK(hmm_open(&ro, dir, &rcfg));
    hmm_replog_reader *rw_r, *ro_r;
    TU_OK(hmm_replog_open(m, 1, &rw_r));
    TU_OK(hmm_replog_open(ro, 1, &ro_r));
    struct churner c = {dir, 99, 0};
    pid_t pid = tu_fork(churn_main, &c);
    hmm_replog_record rec;
    for (int stop = 0; stop < 20; stop++) {
        usleep(1000 + (useconds_t)(rand() % 3000));
        kill(pid, SIGSTOP);
        usleep(2000);
        uint64_t t0 = tu_now_ms();
        int rc1, rc2;
        while ((rc1 = hmm_replog_next(rw_r, &rec)) == 0)
            ;
        while ((rc2 = hmm_replog_next(ro_r, &rec)) == 0)
            ;
        assert_int_equal(rc1, HMM_NOTFOUND);
        assert_int_equal(rc2, HMM_NOTFOUND);
        assert_true(tu_now_ms() - t0 < 5000);
        kill(pid, SIGCONT);
    }
    kill(pid, SIGKILL);
    tu_wait(pid, 10000);
    /* A writer's put settles what the killed one left; both readers then
     * reach the same end. */
    TU_OK(hmm_put(m, "end", 3, "1", 1, 0, 0));
    uint64_t last1 = 0, last2 = 0;
    while (hmm_replog_next(rw_r, &rec) == 0)
        last1 = rec.seq;
    /* The read-write reader settled the killed writer's record, if any. */
    while (hmm_replog_next(ro_r, &rec) == 0)
        last2 = rec.seq;
    assert_true(last1 != 0);
    assert_int_equal(last1, last2);
    hmm_replog_close(rw_r);
    hmm_replog_close(ro_r);
    hmm_close(ro);
    hmm_close(m);
}

int main(void)
{
    tu_watchdog(240);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_log_starts_at_one),
        cmocka_unit_test(test_every_kind_of_change_is_logged_and_nothing_else),
        cmocka_unit_test(test_sequence_numbers_are_gap_free_across_processes),
        cmocka_unit_test(test_records_of_one_key_are_in_commit_order_from_two_writers),
        cmocka_unit_test(test_a_live_reader_sees_every_change_while_processes_write),
        cmocka_unit_test(test_wrapped_log_says_mismatch_on_open_and_to_a_lapped_reader),
        cmocka_unit_test(test_appends_populate_the_log_ahead_instead_of_faulting_per_page),
        cmocka_unit_test(test_noreplog_map_has_no_log_file_and_says_enotsup),
        cmocka_unit_test(test_read_only_handle_reads_the_log_and_writes_nothing),
        cmocka_unit_test(test_apply_makes_a_mirror_that_logs_its_own_changes),
        cmocka_unit_test(test_replica_position_persists_across_reopen),
        cmocka_unit_test(test_replica_position_keeps_the_proof_of_its_history),
        cmocka_unit_test(test_a_position_stored_ahead_of_unsynced_changes_is_counted),
        cmocka_unit_test(test_a_position_is_counted_only_when_it_names_an_unsynced_record),
        cmocka_unit_test(test_repl_status_is_kept_in_the_metrics_file),
        cmocka_unit_test(test_a_map_made_before_roles_reads_as_primary_at_epoch_zero),
        cmocka_unit_test(test_a_replica_map_refuses_local_writes_but_not_reads_nor_its_daemon),
        cmocka_unit_test(test_every_log_record_carries_the_epoch_it_was_written_in),
        cmocka_unit_test(test_the_epoch_never_goes_down_nor_past_32_bits),
        cmocka_unit_test(test_anonymous_map_logs_changes_of_forked_children),
        cmocka_unit_test(test_damaged_log_gives_corrupt_or_mismatch_never_a_crash),
        cmocka_unit_test(test_writers_get_past_a_damaged_log),
        cmocka_unit_test(test_a_remade_log_never_reuses_sequence_numbers),
        cmocka_unit_test(test_a_stopped_writer_never_blocks_readers),
        cmocka_unit_test(test_log_mirrors_the_map_after_writers_are_killed_at_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
