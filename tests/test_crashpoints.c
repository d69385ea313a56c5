/*
 * test_crashpoints.c - for every crash point of FORMAT.md §8-§13, a writer
 * is stopped exactly there (SIGKILL from inside, libhashmmap-crash) and the
 * outcome is checked against what FORMAT.md §9 says recovery does: dying
 * before the publish leaves the old state, dying at or after it the new one,
 * with no leaked space, through every recovery path: a survivor meeting the
 * dead owner's lock, an open that scans the process table while another
 * process has the map open, and a cold start (the first writer to open it).
 */
#include "config.h"

#include "tests/testutil.h"
#include "core/crashpoint.h"
#include "core/internal.h"
#include "core/lookup.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum op { OP_PUT, OP_INSERT, OP_DEL, OP_INCR, OP_CAS, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"put", "insert", "del", "incr", "cas"};

struct scenario {
    hmm_t *m;
    enum op op;
    const char *point;
};

static int run_op(void *p)
{
    struct scenario *s = p;
    hmm_crashpoint_arm(s->point, 1);
    int rc;
    switch (s->op) {
    case OP_PUT:
        rc = hmm_put(s->m, "k", 1, "99", 2, 0, 0);
        break;
    case OP_INSERT:
        rc = hmm_put(s->m, "n", 1, "1", 1, 0, 0);
        break;
    case OP_DEL:
        rc = hmm_del(s->m, "k", 1);
        break;
    case OP_INCR:
        rc = hmm_incr(s->m, "k", 1, 1, NULL);
        break;
    default: {
        char buf[8];
        size_t len = sizeof buf;
        uint64_t v = 0;
        rc = hmm_getv(s->m, "k", 1, buf, &len, &v);
        if (rc == 0)
            rc = hmm_cas(s->m, "k", 1, "99", 2, 0, v);
        break;
    }
    }
    return rc == 0 ? 0 : 1;
}

/* Does the operation pass this point, and is the point at or after its publish? */
static bool passes(enum op op, const char *point, bool *after_publish)
{
    static const char *const order[] = {"alloc_marked", "alloc", "written", "log_numbered", "log_locked",
                                        "log_reserved", "log_written", "retired", "published", "log_committed",
                                        "free_linked", "freed", "done"};
    enum { FIRST_LOG = 3, RETIRED = 7, PUBLISHED = 8, FREE_LINKED = 10, FREED = 11, ORDER = 13 };
    if (strcmp(point, "cell_copying") == 0) {
        /* Format 2 only (make check-inline), after the publish, and not on
         * a delete, which leaves no copy to write. */
        *after_publish = true;
        return tu_inline_maps() && op != OP_DEL;
    }
    int at = -1;
    for (int i = 0; i < ORDER; i++)
        if (strcmp(order[i], point) == 0)
            at = i;
    *after_publish = at >= PUBLISHED;
    if (at < 0)
        return false; /* growth and eviction points: not on this path */
    if (op == OP_INSERT)
        return at != RETIRED && at != FREE_LINKED && at != FREED; /* nothing to retire or free */
    if (op == OP_DEL)
        return at >= FIRST_LOG; /* allocates nothing */
    return true;
}

static void check_outcome(hmm_t *m, enum op op, bool new_state, const char *point)
{
    char buf[16];
    size_t len = sizeof buf - 1;
    const char *key = op == OP_INSERT ? "n" : "k";
    int rc = hmm_get(m, key, 1, buf, &len);
    buf[rc == 0 ? len : 0] = '\0';
    const char *want;
    switch (op) {
    case OP_INSERT:
        want = new_state ? "1" : NULL;
        break;
    case OP_DEL:
        want = new_state ? NULL : "7";
        break;
    case OP_INCR:
        want = new_state ? "8" : "7";
        break;
    default:
        want = new_state ? "99" : "7";
        break;
    }
    if (want == NULL && rc != HMM_NOTFOUND)
        fail_msg("%s at %s: expected '%s' absent, got %s '%s'", op_names[op], point, key, hmm_errname(rc), buf);
    if (want && (rc != 0 || strcmp(buf, want) != 0))
        fail_msg("%s at %s: expected '%s', got %s '%s'", op_names[op], point, want, hmm_errname(rc), buf);
}

/* The log must hold exactly the changes the map kept, in order, and never
 * stall: "k"=7 (the setup), the dead operation's record when its change
 * happened, check_clean's "k"=5, then nothing (FORMAT.md §13). */
static void check_log(hmm_t *m, enum op op, bool new_state, const char *point, uint64_t first_seq)
{
    static const char *const want_key[OP_COUNT] = {"k", "n", "k", "k", "k"};
    static const char *const want_val[OP_COUNT] = {"99", "1", NULL, "8", "99"};
    const char *keys[3] = {"k", NULL, "k"}, *vals[3] = {"7", NULL, "5"};
    if (new_state) {
        keys[1] = want_key[op];
        vals[1] = want_val[op];
    }
    hmm_replog_reader *r;
    TU_OK(hmm_replog_open(m, first_seq, &r));
    hmm_replog_record rec;
    uint64_t last = 0;
    for (int i = 0; i < 3; i++) {
        if (!keys[i])
            continue;
        int rc = hmm_replog_next(r, &rec);
        if (rc)
            fail_msg("%s at %s: log record %d: %s (%s)", op_names[op], point, i, hmm_errname(rc), hmm_last_error());
        bool del = vals[i] == NULL;
        if (rec.klen != 1 || memcmp(rec.key, keys[i], 1) != 0 || rec.op != (del ? HMM_REC_DEL : HMM_REC_PUT) ||
            (!del && (rec.vlen != strlen(vals[i]) || memcmp(rec.val, vals[i], rec.vlen) != 0)) || rec.seq <= last)
            fail_msg("%s at %s: log record %d is not %s %s=%s", op_names[op], point, i, del ? "del" : "put", keys[i],
                     del ? "" : vals[i]);
        if (op == OP_INCR && i == 1 && rec.tag != HMM_TAG_COUNTER)
            fail_msg("incr at %s: logged without the counter tag", point);
        last = rec.seq;
    }
    int rc = hmm_replog_next(r, &rec);
    if (rc != HMM_NOTFOUND)
        fail_msg("%s at %s: the log goes on after the last change: %s seq %llu", op_names[op], point, hmm_errname(rc),
                 (unsigned long long)rec.seq);
    hmm_replog_close(r);
}

static void check_clean(hmm_t *m, const char *what, const char *point)
{
    /* A survivor's write to the same key must not stall. */
    TU_OK(hmm_put(m, "k", 1, "5", 1, 0, 0));
    hmm_check_result r;
    int rc = hmm_check(m, 0, &r);
    if (rc || r.unreachable)
        fail_msg("%s at %s: check %s, %llu unreachable", what, point, hmm_errname(rc),
                 (unsigned long long)r.unreachable);
}

/* A read-only reader of the log (hashmmap-tail, a follower) settles
 * nothing: it must still read through to check_clean's put, not stop at a
 * record the dead writer left RESERVED. */
static void check_log_read_only(const char *dir, enum op op, const char *point, uint64_t first_seq)
{
    hmm_t *ro = NULL;
    hmm_config cfg = {.flags = HMM_RDONLY};
    TU_OK(hmm_open(&ro, dir, &cfg));
    hmm_replog_reader *r;
    TU_OK(hmm_replog_open(ro, first_seq, &r));
    hmm_replog_record rec;
    int rc, n = 0;
    bool clean_last = false;
    while ((rc = hmm_replog_next(r, &rec)) == 0) {
        n++;
        clean_last = rec.op == HMM_REC_PUT && rec.klen == 1 && memcmp(rec.key, "k", 1) == 0 && rec.vlen == 1 &&
                     memcmp(rec.val, "5", 1) == 0;
    }
    if (rc != HMM_NOTFOUND || !clean_last)
        fail_msg("%s at %s: a read-only reader of the log stops after %d records (%s), short of the survivor's put",
                 op_names[op], point, n, hmm_errname(rc));
    hmm_replog_close(r);
    hmm_close(ro);
}

/* hmm_stat's gauges are those of the map the reader walks, before any
 * write repairs the dead writer's stripe: an insert or delete killed after
 * its publish, before it counted itself, is counted as it left the map. */
static void check_items(hmm_t *m, enum op op, const char *point)
{
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    long walked = tu_cursor_count(m);
    if (walked < 0 || st.items != (uint64_t)walked)
        fail_msg("%s at %s: hmm_stat counts %llu items, a cursor walks %ld", op_names[op], point,
                 (unsigned long long)st.items, walked);
}

enum path { PATH_SURVIVOR, PATH_OPEN_SCAN, PATH_COLD_START };

/* with_spare: "k" is overwritten once before, so its stripe keeps the
 * old chunk as its spare (FORMAT.md §8) and the operation's allocation
 * takes that instead of a chunk of the class's free list. */
static void run_point(enum op op, const char *point, enum path path, bool with_spare)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    if (with_spare)
        TU_OK(hmm_put(m, "k", 1, "6", 1, 0, 0));
    TU_OK(hmm_put(m, "k", 1, "7", 1, 0, 0));
    hmm_stats before;
    TU_OK(hmm_stat(m, &before));
    struct scenario s = {m, op, point};
    pid_t pid = tu_fork(run_op, &s);
    int status = tu_wait(pid, 10000);
    bool after_publish;
    bool passed = passes(op, point, &after_publish);
    if (passed && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        fail_msg("%s at %s: the writer was not killed there", op_names[op], point);
    if (!passed && tu_exit_code(status) != 0)
        fail_msg("%s at %s: the operation failed", op_names[op], point);
    hmm_t *reader = m;
    if (path == PATH_COLD_START) {
        hmm_close(m);
        m = NULL;
    }
    if (path != PATH_SURVIVOR)
        reader = tu_open(dir, 0, 0, 0);
    check_items(reader, op, point);
    check_outcome(reader, op, !passed || after_publish, point);
    check_clean(reader, op_names[op], point);
    check_log_read_only(dir, op, point, with_spare ? 2 : 1);
    check_log(reader, op, !passed || after_publish, point, with_spare ? 2 : 1);
    hmm_stats after;
    TU_OK(hmm_stat(reader, &after));
    if (passed && after.recoveries <= before.recoveries)
        fail_msg("%s at %s: no recovery counted", op_names[op], point);
    if (reader != m)
        hmm_close(reader);
    hmm_close(m);
}

static void run_all_points(enum path path, bool with_spare)
{
    for (int op = 0; op < OP_COUNT; op++)
        for (int i = 0; i < HMM_CRASHPOINT_COUNT; i++)
            if (strncmp(hmm_crashpoint_names[i], "reclaim_", 8) != 0) /* only a full class gets there: below */
                run_point((enum op)op, hmm_crashpoint_names[i], path, with_spare);
}

static void test_every_update_crash_point_recovers_through_a_survivors_lock(void **state)
{
    run_all_points(PATH_SURVIVOR, false);
}

static void test_every_crash_point_with_a_spare_chunk_recovers_through_a_survivors_lock(void **state)
{
    run_all_points(PATH_SURVIVOR, true);
}

static void test_every_crash_point_with_a_spare_chunk_recovers_at_cold_start(void **state)
{
    run_all_points(PATH_COLD_START, true);
}

static void test_every_update_crash_point_recovers_when_another_process_opens(void **state)
{
    run_all_points(PATH_OPEN_SCAN, false);
}

static void test_every_update_crash_point_recovers_at_cold_start(void **state)
{
    run_all_points(PATH_COLD_START, false);
}

/* ---- giving a spare back: a class runs out in a map that cannot grow ---- */

#define BIG 200 /* value bytes of the filled class */

static uint32_t stripe_of(hmm_t *m, const char *key)
{
    return hash_stripe(m, key_hash(key, strlen(key)));
}

struct reclaimer {
    hmm_t *m;
    const char *point;
    const char *key;
};

static int insert_until_killed(void *p)
{
    struct reclaimer *r = p;
    char val[BIG];
    tu_value(val, BIG, r->key, 1);
    hmm_crashpoint_arm(r->point, 1);
    return hmm_put(r->m, r->key, strlen(r->key), val, BIG, 0, 0) == 0 ? 0 : 1;
}

static void expect_stored(hmm_t *m, const char *key, const char *want, const char *point)
{
    char buf[BIG + 1];
    size_t len = sizeof buf - 1;
    int rc = hmm_get(m, key, strlen(key), buf, &len);
    bool ok = rc == 0 && (want ? len == strlen(want) && memcmp(buf, want, len) == 0 : tu_value_ok(buf, len, key, NULL));
    if (!ok)
        fail_msg("reclaim at %s: %s is %s, not %s", point, key, hmm_errname(rc), want ? want : "its value");
}

static void check_sound(hmm_t *m, const char *point, const char *when)
{
    hmm_check_result r;
    int rc = hmm_check(m, 0, &r);
    if (rc || r.unreachable || r.bad_slots || r.bad_entries)
        fail_msg("at %s, %s: check %s, %llu unreachable, %llu owned twice, %llu bad", point, when,
                 hmm_errname(rc), (unsigned long long)r.unreachable, (unsigned long long)r.bad_slots,
                 (unsigned long long)r.bad_entries);
}

/* Only FULL when no class that could hold the entry has a chunk left. */
static void expect_insert_fits(hmm_t *m, const char *key, const char *point)
{
    char val[BIG];
    tu_value(val, BIG, key, 2);
    int rc = hmm_put(m, key, strlen(key), val, BIG, 0, 0);
    if (rc == HMM_FULL) {
        hmm_class_stats cs[64];
        size_t n = 0;
        TU_OK(hmm_stat_classes(m, cs, 64, &n));
        for (size_t i = 0; i < n && i < 64; i++)
            if (cs[i].chunk_size >= BIG + strlen(key) && cs[i].chunks_used < cs[i].chunks_total)
                fail_msg("reclaim at %s: FULL with %llu of %llu chunks of %u bytes used (leaked)", point,
                         (unsigned long long)cs[i].chunks_used, (unsigned long long)cs[i].chunks_total,
                         cs[i].chunk_size);
    } else if (rc != 0) {
        fail_msg("reclaim at %s: insert after recovery: %s", point, hmm_errname(rc));
    }
    if (rc == 0)
        expect_stored(m, key, NULL, point);
}

/* "s" gives the small class a page (so a small overwrite still fits), "k"
 * a BIG chunk, fillers "f<i>" the rest until the map is full; then k's
 * overwrite frees its big chunk into its stripe's spare, the only free
 * chunk of the class.  Returns the number of fillers. */
static int fill_leaving_one_spare(hmm_t *m)
{
    char key[32], val[BIG];
    TU_OK(hmm_put(m, "s", 1, "small", 5, 0, 0));
    tu_value(val, BIG, "k", 1);
    TU_OK(hmm_put(m, "k", 1, val, BIG, 0, 0));
    int n = 0, rc = 0;
    for (; n < 100000; n++) {
        snprintf(key, sizeof key, "f%d", n);
        tu_value(val, BIG, key, 1);
        rc = hmm_put(m, key, strlen(key), val, BIG, 0, 0);
        if (rc)
            break;
    }
    assert_int_equal(rc, HMM_FULL);
    assert_true(n > 1000);
    TU_OK(hmm_put(m, "k", 1, "k2", 2, 0, 0));
    return n;
}

/* r's writer (fn) must die at r->point; then the path's recovery: a cold
 * start reopens the map, a survivor meets the dead writer's lock of k's
 * stripe by overwriting k.  Returns the handle to go on with. */
static hmm_t *die_and_recover(const char *dir, struct reclaimer *r, int (*fn)(void *), enum path path,
                              const char *what)
{
    int status = tu_wait(tu_fork(fn, r), 10000);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        fail_msg("%s at %s: the writer was not killed there (exit %d)", what, r->point, tu_exit_code(status));
    if (path == PATH_COLD_START) {
        hmm_close(r->m);
        return tu_open(dir, 0, 0, 0);
    }
    TU_OK(hmm_put(r->m, "k", 1, "k3", 2, 0, 0));
    return r->m;
}

/* What fill_leaving_one_spare stored, as the recovery must leave it. */
static void expect_fill_kept(hmm_t *m, int n, enum path path, const char *point)
{
    char key[32];
    expect_stored(m, "s", "small", point);
    expect_stored(m, "k", path == PATH_COLD_START ? "k2" : "k3", point);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "f%d", i);
        expect_stored(m, key, NULL, point);
    }
}

static void run_reclaim_point(const char *point, enum path path)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    char val[BIG];
    int n = fill_leaving_one_spare(m), rc = 0;
    uint32_t spare_stripe = stripe_of(m, "k");
    char fresh[32], helper[32];
    for (int i = 0;; i++) {
        snprintf(fresh, sizeof fresh, "n%d", i);
        if (stripe_of(m, fresh) != spare_stripe)
            break;
    }
    for (int i = 0;; i++) {
        snprintf(helper, sizeof helper, "h%d", i);
        if (stripe_of(m, helper) == stripe_of(m, fresh))
            break;
    }
    struct reclaimer r = {m, point, fresh};
    m = die_and_recover(dir, &r, insert_until_killed, path, "reclaim");
    if (path != PATH_COLD_START) /* and the stripe it took the spare of */
        TU_OK(hmm_put(m, helper, strlen(helper), "h", 1, 0, 0));
    check_sound(m, point, "after recovery");
    expect_fill_kept(m, n, path, point);
    rc = hmm_get(m, fresh, strlen(fresh), val, &(size_t){sizeof val});
    if (rc != HMM_NOTFOUND)
        fail_msg("reclaim at %s: the dead insert of %s left %s", point, fresh, hmm_errname(rc));
    expect_insert_fits(m, fresh, point);
    check_sound(m, point, "after the insert");
    hmm_close(m);
}

static void test_giving_a_spare_back_recovers_at_each_crash_point(void **state)
{
    static const char *const points[] = {"reclaim_marked", "reclaim_named", "reclaim_taken"};
    for (size_t p = 0; p < 3; p++) {
        run_reclaim_point(points[p], PATH_SURVIVOR);
        run_reclaim_point(points[p], PATH_COLD_START);
    }
}

/* The same points when the spare given back is the writer's own stripe's
 * (spares_reclaim): an insert in k's stripe of a value
 * of a class that has no page, in a full map, gives back its own stripe's
 * spare (k's old chunk) through its own intent.old_off while its put is in
 * progress (intent.op PUT, intent.hash its key's). */
#define MID 100 /* a class with no page in the filled map */

static int insert_mid_until_killed(void *p)
{
    struct reclaimer *r = p;
    char val[MID];
    tu_value(val, MID, r->key, 1);
    hmm_crashpoint_arm(r->point, 1);
    int rc = hmm_put(r->m, r->key, strlen(r->key), val, MID, 0, 0);
    return rc == 0 ? 0 : rc == HMM_FULL ? 2 : 1;
}

static void run_own_reclaim_point(const char *point, enum path path)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    char val[BIG];
    int n = fill_leaving_one_spare(m), rc = 0;
    uint32_t spare_stripe = stripe_of(m, "k");
    char fresh[32];
    for (int i = 0;; i++) {
        snprintf(fresh, sizeof fresh, "n%d", i);
        if (stripe_of(m, fresh) == spare_stripe && strcmp(fresh, "k") != 0)
            break;
    }
    struct reclaimer r = {m, point, fresh};
    m = die_and_recover(dir, &r, insert_mid_until_killed, path, "own reclaim");
    check_sound(m, point, "after recovery (own spare)");
    expect_fill_kept(m, n, path, point);
    rc = hmm_get(m, fresh, strlen(fresh), val, &(size_t){sizeof val});
    if (rc != HMM_NOTFOUND)
        fail_msg("own reclaim at %s: the dead insert of %s left %s", point, fresh, hmm_errname(rc));
    char mid[MID];
    tu_value(mid, MID, fresh, 2);
    rc = hmm_put(m, fresh, strlen(fresh), mid, MID, 0, 0);
    if (rc != 0 && rc != HMM_FULL)
        fail_msg("own reclaim at %s: insert after recovery: %s", point, hmm_errname(rc));
    check_sound(m, point, "after the insert (own spare)");
    hmm_close(m);
}

static void test_giving_the_own_stripes_spare_back_recovers_at_each_crash_point(void **state)
{
    static const char *const points[] = {"reclaim_marked", "reclaim_named", "reclaim_taken"};
    for (size_t p = 0; p < 3; p++) {
        run_own_reclaim_point(points[p], PATH_SURVIVOR);
        run_own_reclaim_point(points[p], PATH_COLD_START);
    }
}

/* ---- growth and eviction points: a writer fills the map until it dies ---- */

struct filler {
    const char *dir;
    const char *point;
    unsigned nth;
    int fd;
    bool short_values; /* 8 bytes: every entry gets a copy in a map of format 2 */
};

static int fill_until_killed(void *p)
{
    struct filler *f = p;
    hmm_t *m;
    if (hmm_open(&m, f->dir, NULL) != 0)
        return 10;
    hmm_crashpoint_arm(f->point, f->nth);
    char key[32], val[300];
    for (uint32_t i = 0; i < 200000; i++) {
        snprintf(key, sizeof key, "k%u", i);
        size_t len = f->short_values ? sizeof(uint64_t) : 24 + i % 250;
        if (f->short_values) {
            uint64_t v = (uint64_t)i * 2654435761u + 1; /* the key's own value, no room for tu_value's header */
            memcpy(val, &v, sizeof v);
        } else {
            tu_value(val, len, key, i);
        }
        if (hmm_put(m, key, strlen(key), val, len, 0, 0) != 0)
            return 11;
        if (write(f->fd, &i, sizeof i) != sizeof i)
            return 12;
    }
    return 0;
}

static void run_fill_point_of(const char *point, unsigned nth, bool cache, bool short_values)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, cache ? 0 : 256 << 20, cache ? HMM_CACHE : 0);
    hmm_close(m);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct filler f = {dir, point, nth, fds[1], short_values};
    pid_t pid = tu_fork(fill_until_killed, &f);
    close(fds[1]);
    uint32_t acked = 0, i;
    bool any = false;
    while (read(fds[0], &i, sizeof i) == sizeof i) {
        acked = i;
        any = true;
    }
    close(fds[0]);
    int status = tu_wait(pid, 60000);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        fail_msg("%s #%u: the writer was not killed there (status %d)", point, nth, tu_exit_code(status));
    m = tu_open(dir, 0, 0, 0);
    char key[32], val[300];
    for (uint32_t k = 0; any && k <= acked; k++) {
        snprintf(key, sizeof key, "k%u", k);
        size_t len = sizeof val;
        int rc = hmm_get(m, key, strlen(key), val, &len);
        uint64_t want = (uint64_t)k * 2654435761u + 1;
        bool ok = short_values ? len == sizeof want && memcmp(val, &want, sizeof want) == 0
                               : tu_value_ok(val, len, key, NULL);
        if (rc == 0 && !ok)
            fail_msg("%s #%u: torn value for %s", point, nth, key);
        if (!cache && rc != 0)
            fail_msg("%s #%u: acknowledged %s lost (%s)", point, nth, key, hmm_errname(rc));
    }
    check_clean(m, cache ? "cache fill" : "growing fill", point);
    hmm_close(m);
}

static void run_fill_point(const char *point, unsigned nth, bool cache)
{
    run_fill_point_of(point, nth, cache, false);
}

static void test_growth_crash_points_lose_no_acknowledged_put(void **state)
{
    static const char *const points[] = {"grown", "index_grown", "moved", "index_retired", "index_fenced"};
    for (size_t p = 0; p < 5; p++)
        for (unsigned nth = 1; nth <= 3; nth++)
            run_fill_point(points[p], nth * (p == 2 ? 50 : 1), false);
    /* Format 2 (make check-inline): a growth moves a key with a copy by
     * that copy, writing the new cell's copy as a put does.  Killed in
     * the middle of that copy: a drain writes 28 copies per put and a put
     * one, so the kills past the first growth land in moves. */
    if (tu_inline_maps())
        for (unsigned nth = 1; nth <= 3; nth++)
            run_fill_point_of("cell_copying", nth * 20000, false, true);
}

/* ---- handing pages back (FORMAT.md §6, "Pages come back") ---- */

#define SMALL 200  /* the size the map is filled with first */
#define LARGE 1000 /* the size that then needs the pages back */

struct compactor {
    hmm_t *m;
    const char *point;
    unsigned nth;
};

/* Put LARGE values until killed at the armed point (or the map is full). */
static int large_until_killed(void *p)
{
    struct compactor *c = p;
    if (c->point)
        hmm_crashpoint_arm(c->point, c->nth);
    char key[32], val[LARGE];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "L%d", i);
        tu_value(val, LARGE, key, 1);
        if (hmm_put(c->m, key, strlen(key), val, LARGE, 0, 0) != 0)
            return 1;
    }
    return 2;
}

static long fill_with(hmm_t *m, const char *prefix, size_t vlen)
{
    char key[32], val[LARGE];
    long n = 0;
    for (;; n++) {
        snprintf(key, sizeof key, "%s%ld", prefix, n);
        tu_value(val, vlen, key, 1);
        int rc = hmm_put(m, key, strlen(key), val, vlen, 0, 0);
        if (rc == HMM_FULL)
            return n;
        if (rc != 0)
            fail_msg("filling %s: %s (%s)", prefix, hmm_errname(rc), hmm_last_error());
    }
}

/* A 1 MiB map filled with SMALL values, then all deleted (sparse: all but
 * every keep-th), killed at point while LARGE values need the pages. */
static void run_compact_point(const char *point, unsigned nth, int keep, enum path path)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    long n = fill_with(m, "S", SMALL);
    char key[32], val[LARGE];
    for (long i = 0; i < n; i++)
        if (keep == 0 || i % keep != 0) {
            snprintf(key, sizeof key, "S%ld", i);
            TU_OK(hmm_del(m, key, strlen(key)));
        }
    struct compactor c = {m, point, nth};
    int status = tu_wait(tu_fork(large_until_killed, &c), 20000);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("compaction at %s: the writer was not killed there (exit %d)", point, tu_exit_code(status));
    if (path == PATH_COLD_START) {
        hmm_close(m);
        m = tu_open(dir, 0, 0, 0);
    }
    /* The survivor needs the pages too: it meets the dead owner's lock or
     * evacuation and repairs, then everything kept is whole. */
    fill_with(m, "T", LARGE);
    for (long i = 0; keep && i < n; i += keep) {
        snprintf(key, sizeof key, "S%ld", i);
        size_t len = sizeof val;
        int rc = hmm_get(m, key, strlen(key), val, &len);
        if (rc != 0 || !tu_value_ok(val, len, key, NULL))
            fail_msg("compaction at %s: kept key %s is %s", point, key, hmm_errname(rc));
    }
    hmm_check_result r;
    int rc = hmm_check(m, 0, &r);
    if (rc || r.unreachable || r.bad_slots || r.bad_entries)
        fail_msg("compaction at %s: check %s, %llu unreachable, %llu owned twice, %llu bad", point,
                 hmm_errname(rc), (unsigned long long)r.unreachable, (unsigned long long)r.bad_slots,
                 (unsigned long long)r.bad_entries);
    hmm_close(m);
}

static void test_handing_pages_back_recovers_at_each_crash_point(void **state)
{
    static const char *const points[] = {"page_leaving", "page_unlinked", "page_returned"};
    for (int p = 0; p < 3; p++) {
        run_compact_point(points[p], 1, 0, PATH_SURVIVOR);
        run_compact_point(points[p], 1, 0, PATH_COLD_START);
    }
}

/* Sparse pages: the first page_leaving is an evacuation, and the first
 * publishes of the dying writer are the moves of other keys.  One key in
 * KEEP_EVERY is kept: a 4 KiB page of SMALL values (16 chunks) keeps five,
 * so the third publish is still a move (with one in ten, it was the dying
 * writer's own put once pages became 4 KiB). */
#define KEEP_EVERY 3
static void test_moving_entries_out_of_a_page_recovers_when_killed(void **state)
{
    run_compact_point("page_leaving", 1, KEEP_EVERY, PATH_SURVIVOR);
    run_compact_point("published", 3, KEEP_EVERY, PATH_SURVIVOR);
    run_compact_point("published", 3, KEEP_EVERY, PATH_COLD_START);
}

/* ---- a class repair while a page's mover lives (FORMAT.md §6, §9) ----
 *
 * A mover empties its page outside the class lock.  Another process that
 * dies holding that lock is not the mover, and the repair that follows
 * must leave the live mover's move alone: it once forgot it (evac_page
 * cleared, the page's chunks back on the list), so others allocated in the
 * page, or handed it back, while the mover went on, and the mover's end
 * handed back a page another class had taken since, its entries still
 * indexed (test_torture's cache map: a slot to a chunk reused by another
 * key, a class whose page count was one short). */

/* LARGE puts, stopped (SIGSTOP) at the nth pass of point. */
static int large_until_stalled(void *p)
{
    struct compactor *c = p;
    hmm_crashpoint_stall(c->point, c->nth);
    c->point = NULL; /* the child's copy: large_until_killed must not arm again */
    return large_until_killed(c);
}

struct class_holder {
    hmm_t *m;
    uint32_t cls;
};

static int die_holding_class(void *p)
{
    struct class_holder *h = p;
    if (hmm__lock_class(h->m, h->cls) != 0)
        return 1;
    raise(SIGKILL);
    return 2;
}

static void test_a_class_repair_leaves_a_live_movers_page_alone(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    long n = fill_with(m, "S", SMALL);
    char key[32], val[LARGE];
    for (long i = 0; i < n; i++)
        if (i % KEEP_EVERY != 0) {
            snprintf(key, sizeof key, "S%ld", i);
            TU_OK(hmm_del(m, key, strlen(key)));
        }
    /* The mover: its third publish is the move of a kept key out of the
     * page it empties (see test_moving_entries_out_of_a_page_recovers_when_killed). */
    struct compactor c = {m, "published", 3};
    pid_t mover = tu_fork(large_until_stalled, &c);
    int status;
    assert_int_equal(waitpid(mover, &status, WUNTRACED), mover);
    assert_true(WIFSTOPPED(status));
    uint32_t cls = UINT32_MAX;
    for (uint32_t k = 0; k < m->nclasses; k++)
        if (atomic_load(&m->classes[k].evac_page))
            cls = k;
    uint64_t move = cls == UINT32_MAX ? 0 : atomic_load(&m->classes[cls].evac_page);
    const char *why = move && HMM_EVAC_PID(move) == mover ? NULL : "the mover stopped outside a page's move";
    if (!why) {
        struct class_holder h = {m, cls};
        status = tu_wait(tu_fork(die_holding_class, &h), 10000);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
            why = "the class lock's holder did not die holding it";
    }
    if (!why) {
        TU_OK(hmm__lock_class(m, cls)); /* EOWNERDEAD: the class is repaired */
        if (atomic_load(&m->classes[cls].evac_page) != move)
            why = "the class repair forgot the live mover's move";
        hmm__unlock_class(m, cls);
    }
    if (why) {
        kill(mover, SIGKILL); /* a stopped child would outlive the test */
        tu_wait(mover, 10000);
        fail_msg("%s (class %u, page %llu, mover pid %d)", why, cls, (unsigned long long)HMM_EVAC_PAGE(move),
                 (int)mover);
    }

    kill(mover, SIGCONT);
    status = tu_wait(mover, 30000);
    assert_true(WIFEXITED(status));
    fill_with(m, "T", LARGE);
    for (long i = 0; i < n; i += KEEP_EVERY) {
        snprintf(key, sizeof key, "S%ld", i);
        size_t len = sizeof val;
        int rc = hmm_get(m, key, strlen(key), val, &len);
        if (rc != 0 || !tu_value_ok(val, len, key, NULL))
            fail_msg("kept key %s is %s after the mover went on", key, hmm_errname(rc));
    }
    hmm_check_result r;
    TU_OK(hmm_check(m, 0, &r));
    assert_int_equal(r.unreachable + r.bad_slots + r.bad_entries, 0);
    hmm_close(m);
}

static void test_eviction_crash_points_leave_no_dangling_entry(void **state)
{
    /* freed: an eviction's free step is the update protocol's (hmm__delete_locked). */
    static const char *const points[] = {"evict_retired", "evicted", "free_linked", "freed"};
    for (size_t p = 0; p < 4; p++)
        for (unsigned nth = 1; nth <= 3; nth++)
            run_fill_point(points[p], nth * 97 + (p == 2 ? 20000 : 0), true);
}

/* ---- a reader stalled while its chunk is reused (FORMAT.md §12) ----
 *
 * A get reads without a lock: the chunk it copied from may be freed and
 * its page given to another class while it is stopped.  Its seq check
 * discards what it read then; it must also write nothing there (cache
 * mode's recency mark), or a byte in the middle of another key's value
 * changes.  Readers are stopped at a stall point (crashpoint.h) over
 * small entries, every small key is deleted and zero-filled values of
 * another class take the pages; then the readers go on. */

#define STALLED_READERS 6
#define SMALL_KEYS 3000
#define ZERO_VALUE 4000
#define ZERO_KEYS 400

struct stalled_reader {
    const char *dir, *point;
    int key;
    bool getv;
};

static int read_until_stalled(void *p)
{
    struct stalled_reader *r = p;
    hmm_t *m = NULL;
    if (hmm_open(&m, r->dir, NULL) != 0)
        return 1;
    char key[32], val[SMALL];
    snprintf(key, sizeof key, "S%d", r->key);
    size_t len = sizeof val;
    uint64_t version;
    hmm_crashpoint_stall(r->point, 1);
    int rc = r->getv ? hmm_getv(m, key, strlen(key), val, &len, &version) : hmm_get(m, key, strlen(key), val, &len);
    hmm_close(m);
    return rc == 0 || rc == HMM_NOTFOUND ? 0 : 2;
}

static void wait_until_stopped(pid_t pid, const char *point)
{
    for (int waited = 0; waited < 10000; waited++) {
        int status;
        pid_t got = waitpid(pid, &status, WUNTRACED | WNOHANG);
        if (got == pid && WIFSTOPPED(status))
            return;
        if (got == pid)
            fail_msg("a process armed at %s ended (0x%x) before it stopped there", point, status);
        usleep(1000);
    }
    fail_msg("a process armed at %s did not stop there within 10 s", point);
}

static void run_stalled_readers(const char *point, bool getv)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 1 << 20, HMM_CACHE);
    char key[32], val[ZERO_VALUE];
    for (int i = 0; i < SMALL_KEYS; i++) {
        snprintf(key, sizeof key, "S%d", i);
        tu_value(val, SMALL, key, 1);
        TU_OK(hmm_put(m, key, strlen(key), val, SMALL, 0, 0));
    }
    struct stalled_reader rs[STALLED_READERS];
    pid_t kids[STALLED_READERS];
    for (int i = 0; i < STALLED_READERS; i++) {
        rs[i] = (struct stalled_reader){dir, point, (i + 1) * SMALL_KEYS / (STALLED_READERS + 1), getv};
        kids[i] = tu_fork(read_until_stalled, &rs[i]);
        wait_until_stopped(kids[i], point);
    }
    for (int i = 0; i < SMALL_KEYS; i++) {
        snprintf(key, sizeof key, "S%d", i);
        int rc = hmm_del(m, key, strlen(key));
        assert_true(rc == 0 || rc == HMM_NOTFOUND);
    }
    memset(val, 0, sizeof val);
    for (int i = 0; i < ZERO_KEYS; i++) { /* more than the map holds: every page is taken */
        snprintf(key, sizeof key, "Z%d", i);
        TU_OK(hmm_put(m, key, strlen(key), val, ZERO_VALUE, 0, 0));
    }
    for (int i = 0; i < STALLED_READERS; i++) {
        kill(kids[i], SIGCONT);
        int status = tu_wait(kids[i], 10000);
        if (tu_exit_code(status) != 0)
            fail_msg("a reader stalled at %s ended with 0x%x", point, status);
    }
    int present = 0;
    for (int i = 0; i < ZERO_KEYS; i++) {
        snprintf(key, sizeof key, "Z%d", i);
        size_t len = sizeof val;
        int rc = hmm_get(m, key, strlen(key), val, &len);
        if (rc == HMM_NOTFOUND)
            continue; /* evicted */
        TU_OK(rc);
        present++;
        for (size_t b = 0; b < len; b++)
            if (val[b] != 0)
                fail_msg("a reader stalled at %s (%s) wrote 0x%02x into byte %zu of key %s's value", point,
                         getv ? "hmm_getv" : "hmm_get", (unsigned char)val[b], b, key);
    }
    assert_true(present > ZERO_KEYS / 4);
    check_sound(m, point, "after the stalled readers went on");
    hmm_close(m);
}

/* ---- keys past their home bucket stay on the fast path ----
 *
 * A get walks the probe sequence itself when the key is not in its home
 * bucket (format 2: not a copy there, or in a cell without a copy, for a
 * value over 8 bytes or a key over 16).  Until 2026-12-05 format 2's walk took its own
 * "found" (1) for the general path's signal (GET_GENERAL, also 1), so each
 * such key was looked up twice, and a batch looked it up alone,
 * unprefetched: 130 ns a key where keys in their home bucket took 27; and
 * format 1 had no walk at all.  A reader stalled at read_general has left
 * the fast path. */
#define WALK_KEYS 8000

#define WALK_KEY_MAX 40

/* One key in five is over 16 bytes: no format-2 copy holds it. */
static void walk_key(char *key, size_t cap, int i)
{
    snprintf(key, cap, i % 5 == 0 ? "W%d, a key over sixteen bytes" : "W%d", i);
}

static size_t walk_value(int i)
{
    return i % 4 == 0 ? 12 : 8; /* one in four without a copy */
}

/* Key i's value: its number, then dots, walk_value(i) bytes. */
static void walk_fill(char *val, int i)
{
    char num[16];
    memset(val, '.', walk_value(i));
    memcpy(val, num, (size_t)snprintf(num, sizeof num, "%d", i));
}

static bool walk_value_ok(const char *val, size_t len, int i)
{
    char want[16];
    walk_fill(want, i);
    return len == walk_value(i) && memcmp(val, want, len) == 0;
}

struct walk_reader {
    const char *dir;
    int keys;
    const int *home; /* the keys whose slot lies in their home bucket */
    int nhome;
};

static int read_everything_unstalled(void *p)
{
    const struct walk_reader *r = p;
    hmm_t *m = NULL;
    if (hmm_open(&m, r->dir, NULL) != 0)
        return 1;
    static char keys[WALK_KEYS][WALK_KEY_MAX], vals[WALK_KEYS][16];
    static const void *kp[WALK_KEYS];
    static void *vp[WALK_KEYS];
    static size_t klens[WALK_KEYS], vlens[WALK_KEYS];
    static int rcs[WALK_KEYS];
    size_t len = sizeof vals[0];
    (void)hmm_get(m, "absent", 6, vals[0], &len); /* the handle's first get decodes its index view */
    hmm_crashpoint_stall("read_general", 1);
    for (int i = 0; i < r->keys; i++) {
        walk_key(keys[i], sizeof keys[i], i);
        len = sizeof vals[i];
        if (hmm_get(m, keys[i], strlen(keys[i]), vals[i], &len) != 0 || !walk_value_ok(vals[i], len, i))
            return 2;
        kp[i] = keys[i];
        klens[i] = strlen(keys[i]);
        vp[i] = vals[i];
        vlens[i] = sizeof vals[i];
    }
    if (hmm_get_batch(m, (size_t)r->keys, kp, klens, vp, vlens, rcs, NULL) != 0)
        return 3;
    for (int i = 0; i < r->keys; i++)
        if (rcs[i] != 0 || !walk_value_ok(vals[i], vlens[i], i))
            return 4;
    /* With infos, the keys in their home bucket (a walk fills no info: the
     * others go alone).  Format 2 reads a copy's entry for them. */
    static hmm_entry_info infos[WALK_KEYS];
    for (int j = 0; j < r->nhome; j++) {
        kp[j] = keys[r->home[j]];
        klens[j] = strlen(keys[r->home[j]]);
        vp[j] = vals[j];
        vlens[j] = sizeof vals[j];
    }
    if (hmm_get_batch(m, (size_t)r->nhome, kp, klens, vp, vlens, rcs, infos) != 0)
        return 5;
    for (int j = 0; j < r->nhome; j++)
        if (rcs[j] != 0 || !walk_value_ok(vals[j], vlens[j], r->home[j]) || infos[j].version == 0)
            return 6;
    hmm_close(m);
    return 0;
}

/* Which of the first `keys` keys have their slot (format 2: cell) in their
 * home bucket, into home[]; how many. */
static int keys_in_their_home_bucket(hmm_t *m, const struct hmm__view *v, int keys, int *home)
{
    int n = 0;
    for (int i = 0; i < keys; i++) {
        char key[WALK_KEY_MAX];
        walk_key(key, sizeof key, i);
        uint64_t hash = key_hash(key, strlen(key));
        hmm_atomic_u64 *slot = NULL;
        int rc = 0;
        assert_true(index_lookup(m, &v->cur, hash, key, strlen(key), &slot, &rc) != 0 && rc == 0);
        uint64_t b = hash_home(&v->cur, hash);
        const char *bucket = ix_cells(&v->cur) ? (const char *)ix_cell(&v->cur, b, 0) : (const char *)&v->cur.bk[b];
        if ((const char *)slot >= bucket && (const char *)slot < bucket + 64)
            home[n++] = i;
    }
    return n;
}

/* A batch that asks for infos walks no key itself (a walk fills none):
 * its answers and infos are hmm_getv's. */
static void batch_with_infos_answers_as_getv(hmm_t *m, int keys)
{
    static char names[WALK_KEYS][WALK_KEY_MAX], vals[WALK_KEYS][16];
    static const void *kp[WALK_KEYS];
    static void *vp[WALK_KEYS];
    static size_t klens[WALK_KEYS], vlens[WALK_KEYS];
    static int rcs[WALK_KEYS];
    static hmm_entry_info infos[WALK_KEYS];
    for (int i = 0; i < keys; i++) {
        walk_key(names[i], sizeof names[i], i);
        kp[i] = names[i];
        klens[i] = strlen(names[i]);
        vp[i] = vals[i];
        vlens[i] = sizeof vals[i];
    }
    TU_OK(hmm_get_batch(m, (size_t)keys, kp, klens, vp, vlens, rcs, infos));
    for (int i = 0; i < keys; i++) {
        char want[16];
        size_t len = sizeof want;
        uint64_t version = 0;
        TU_OK(hmm_getv(m, names[i], klens[i], want, &len, &version));
        if (rcs[i] != 0 || !walk_value_ok(vals[i], vlens[i], i) || infos[i].version != version)
            fail_msg("key %s: the batch with infos said %s, version %" PRIu64 " (hmm_getv: version %" PRIu64 ")",
                     names[i], hmm_errname(rcs[i]), infos[i].version, version);
    }
}

/* The status of a reader armed at read_general, which must end without
 * stopping there (what: what it did, for the failure). */
static int wait_for_unstalled_reader(pid_t reader, const char *what)
{
    int status = 0;
    for (int waited = 0; waited < 60000; waited++) { /* 60 s: valgrind runs this too */
        pid_t got = waitpid(reader, &status, WUNTRACED | WNOHANG);
        if (got == reader && WIFSTOPPED(status)) {
            kill(reader, SIGKILL);
            tu_wait(reader, 10000);
            fail_msg("%s went down the general path (stopped at read_general)", what);
        }
        if (got == reader)
            return status;
        usleep(1000);
    }
    kill(reader, SIGKILL);
    tu_wait(reader, 10000);
    fail_msg("%s: the reader did not end within 60 s", what);
    return status;
}

/* A map that cannot grow, filled with up to WALK_KEYS keys (format 1's
 * index is sized for its data area, so its fill is the data's). */
static void gets_past_the_home_bucket_stay_on_the_fast_path(uint64_t size, uint32_t flags)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, size, size, flags);
    char key[WALK_KEY_MAX], val[16];
    struct walk_reader r = {.dir = dir};
    for (; r.keys < WALK_KEYS; r.keys++) {
        walk_key(key, sizeof key, r.keys);
        walk_fill(val, r.keys);
        int rc = hmm_put(m, key, strlen(key), val, walk_value(r.keys), 0, 0);
        if (rc == HMM_FULL)
            break;
        TU_OK(rc);
    }
    /* The scenario needs keys that probed past their home (FORMAT.md §7's
     * overflow counts). */
    size_t len = sizeof val;
    TU_OK(hmm_get(m, "W1", 2, val, &len)); /* the handle's first get decodes its index view */
    const struct hmm__view *v = atomic_load_explicit(&m->view, memory_order_acquire);
    assert_non_null(v);
    assert_int_equal(v->old.nb, 0);
    uint64_t passed = 0;
    for (uint64_t b = 0; b < v->cur.nb; b++)
        passed += ix_overflow(&v->cur, b);
    if (passed < 50)
        fail_msg("only %" PRIu64 " keys probed past their home bucket (%" PRIu64 " buckets)", passed, v->cur.nb);
    static int home[WALK_KEYS];
    r.home = home;
    r.nhome = keys_in_their_home_bucket(m, v, r.keys, home);
    assert_true(r.nhome > r.keys / 2);
    char what[128];
    snprintf(what, sizeof what, "a get of %d keys (%" PRIu64 " probed past their home)", r.keys, passed);
    int status = wait_for_unstalled_reader(tu_fork(read_everything_unstalled, &r), what);
    if (tu_exit_code(status) != 0)
        fail_msg("the reader ended with 0x%x (2: a get, 3-4: the batch, 5-6: the batch with infos read a value"
                 " wrong)", status);
    batch_with_infos_answers_as_getv(m, r.keys);
    hmm_close(m);
}

static void test_format_1_gets_past_the_home_bucket_stay_on_the_fast_path(void **state)
{
    (void)state;
    gets_past_the_home_bucket_stay_on_the_fast_path(512 << 10, 0);
}

static void test_format_2_gets_past_the_home_bucket_stay_on_the_fast_path(void **state)
{
    (void)state;
    gets_past_the_home_bucket_stay_on_the_fast_path(2 << 20, HMM_INLINE);
}

/* ---- a batch's key whose tag another key of its home bucket shares ----
 *
 * Stage 2 of a batch tries the first slot (format 2: cell without a copy)
 * of the key's 16-bit tag in its home bucket.  When that is another key's,
 * stage 3 walks the key from its home bucket as hmm_get does; it used to
 * send it alone. */
#define TWIN_SEARCH (1u << 20)

struct twin_reader {
    const char *dir;
    char keys[2][16];
};

static int read_twins_unstalled(void *p)
{
    const struct twin_reader *r = p;
    hmm_t *m = NULL;
    if (hmm_open(&m, r->dir, NULL) != 0)
        return 1;
    char vals[2][16];
    size_t len = sizeof vals[0];
    (void)hmm_get(m, "absent", 6, vals[0], &len); /* the handle's first get decodes its index view */
    hmm_crashpoint_stall("read_general", 1);
    const void *kp[2] = {r->keys[0], r->keys[1]};
    size_t klens[2] = {strlen(r->keys[0]), strlen(r->keys[1])}, vlens[2] = {sizeof vals[0], sizeof vals[1]};
    void *vp[2] = {vals[0], vals[1]};
    int rcs[2];
    if (hmm_get_batch(m, 2, kp, klens, vp, vlens, rcs, NULL) != 0)
        return 2;
    for (int i = 0; i < 2; i++) {
        char want[16];
        memset(want, '0' + i, 12);
        if (rcs[i] != 0 || vlens[i] != 12 || memcmp(vals[i], want, 12) != 0)
            return 3;
    }
    hmm_close(m);
    return 0;
}

/* Two keys "T<n>" with the same tag and home bucket in v's index. */
static void find_twins(const struct hmm__view *v, char keys[2][16])
{
    static uint64_t seen[TWIN_SEARCH]; /* (tag << 20 | home) << 24 | n + 1, open addressing */
    memset(seen, 0, sizeof seen);
    assert_true(v->cur.nb <= (1u << 20));
    for (uint32_t n = 0; n < (1u << 24); n++) {
        char key[16];
        snprintf(key, sizeof key, "T%u", n);
        uint64_t hash = key_hash(key, strlen(key));
        uint64_t id = (uint64_t)hash_tag(hash) << 20 | hash_home(&v->cur, hash);
        for (uint64_t i = (id * 0x9E3779B97F4A7C15ull) >> 44;; i = (i + 1) % TWIN_SEARCH) {
            if (seen[i] == 0) {
                seen[i] = id << 24 | (n + 1);
                break;
            }
            if (seen[i] >> 24 == id) {
                snprintf(keys[0], 16, "T%u", (unsigned)(seen[i] & 0xffffff) - 1);
                snprintf(keys[1], 16, "T%u", n);
                uint64_t h0 = key_hash(keys[0], strlen(keys[0])), h1 = key_hash(keys[1], strlen(keys[1]));
                assert_int_equal(hash_tag(h0), hash_tag(h1));
                assert_int_equal(hash_home(&v->cur, h0), hash_home(&v->cur, h1));
                return;
            }
        }
        if (n > TWIN_SEARCH / 2)
            break;
    }
    fail_msg("no two of %u keys share a tag and a home bucket", TWIN_SEARCH / 2);
}

static void a_batch_walks_a_key_whose_tag_another_key_shares(uint32_t flags)
{
    struct twin_reader r = {.dir = tu_tmpdir()};
    hmm_t *m = tu_open(r.dir, 1 << 20, 1 << 20, flags);
    char val[16];
    size_t len = sizeof val;
    assert_int_equal(hmm_get(m, "absent", 6, val, &len), HMM_NOTFOUND); /* decodes the handle's view */
    const struct hmm__view *v = atomic_load_explicit(&m->view, memory_order_acquire);
    assert_non_null(v);
    find_twins(v, r.keys);
    for (int i = 0; i < 2; i++) { /* 12-byte values: format 2 keeps no copy of them */
        memset(val, '0' + i, 12);
        TU_OK(hmm_put(m, r.keys[i], strlen(r.keys[i]), val, 12, 0, 0));
    }
    char what[96];
    snprintf(what, sizeof what, "a batch of %s and %s (one tag, one home bucket)", r.keys[0], r.keys[1]);
    int status = wait_for_unstalled_reader(tu_fork(read_twins_unstalled, &r), what);
    if (tu_exit_code(status) != 0)
        fail_msg("%s: the reader ended with 0x%x", what, status);
    hmm_close(m);
}

static void test_a_batch_walks_a_key_whose_tag_another_key_shares(void **state)
{
    (void)state;
    a_batch_walks_a_key_whose_tag_another_key_shares(0);
    a_batch_walks_a_key_whose_tag_another_key_shares(HMM_INLINE);
}

/* ---- a reader over an old entry whose writer died after the publish ----
 *
 * A get that found a key's entry before a put published the new one may
 * still be copying the old; the put's free tells it (seq odd).  A writer
 * killed between its publish and its free never opened that window, and
 * the stripe repair freed the old entry without one: a reader stopped
 * before its copy then copied the chunk's next owner and passed its seq
 * check (test_torture's cache map: a batched get of an 8 321-byte value
 * returned zeros from byte 3 104 on). */

struct old_reader {
    const char *dir;
};

static int read_old_entry_after_a_stall(void *p)
{
    struct old_reader *r = p;
    hmm_t *m = NULL;
    if (hmm_open(&m, r->dir, NULL) != 0)
        return 1;
    char val[SMALL];
    size_t len = sizeof val;
    hmm_crashpoint_stall("read_found", 1);
    int rc = hmm_get(m, "K", 1, val, &len);
    hmm_close(m);
    return rc != 0 ? 2 : tu_value_ok(val, len, "K", NULL) ? 0 : 3;
}

/* One put of a vlen-byte value under key, killed at point (its first pass). */
struct dying_put {
    hmm_t *m;
    const char *key;
    size_t vlen;
    const char *point;
};

static int put_dying_at(void *p)
{
    struct dying_put *d = p;
    char val[1024];
    if (d->vlen > sizeof val)
        return 2;
    tu_value(val, d->vlen, d->key, 2);
    hmm_crashpoint_arm(d->point, 1);
    return hmm_put(d->m, d->key, strlen(d->key), val, d->vlen, 0, 0) == 0 ? 0 : 1;
}

static void test_a_reader_of_an_entry_freed_by_a_repair_reads_again(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    char key[32], val[SMALL];
    tu_value(val, SMALL, "K", 1);
    TU_OK(hmm_put(m, "K", 1, val, SMALL, 0, 0));
    struct old_reader r = {dir};
    pid_t reader = tu_fork(read_old_entry_after_a_stall, &r);
    wait_until_stopped(reader, "read_found");
    struct dying_put w = {m, "K", SMALL, "published"};
    int status = tu_wait(tu_fork(put_dying_at, &w), 10000);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        kill(reader, SIGKILL);
        tu_wait(reader, 10000);
        fail_msg("the writer was not killed at published (0x%x)", status);
    }
    uint32_t stripe = hash_stripe(m, key_hash("K", 1));
    TU_OK(hmm__lock_stripe(m, stripe)); /* EOWNERDEAD: the repair frees the old entry */
    hmm__unlock_stripe(m, stripe);
    for (int i = 0; i < 64; i++) { /* its chunk goes to one of these */
        snprintf(key, sizeof key, "Z%d", i);
        memset(val, 'Z', sizeof val);
        TU_OK(hmm_put(m, key, strlen(key), val, SMALL, 0, 0));
    }
    kill(reader, SIGCONT);
    int code = tu_exit_code(tu_wait(reader, 10000));
    if (code != 0)
        fail_msg("the stopped reader's get of K %s", code == 3 ? "returned another key's bytes as its value"
                                                            : "failed");
    check_sound(m, "published", "after the repair and the reader");
    hmm_close(m);
}

static void test_a_stalled_reader_writes_nothing_into_a_chunk_reused_meanwhile(void **state)
{
    run_stalled_readers("read_copied", false);
    run_stalled_readers("read_copied", true);
    run_stalled_readers("read_validated", false);
    run_stalled_readers("read_validated", true);
}

/* ---- the sweep of expired entries (compact.c) ----
 *
 * A writer that finds a full map reclaims expired entries, looking at
 * each chunk without its stripe's lock.  Stopped there, over key K's
 * expired chunk x, while K is put twice without a TTL (the second put
 * takes x back as its stripe's spare), it must not then delete K's live
 * entry in x. */

#define RECLAIM_VALUE 200 /* under HMM_SPARE_MAX_CHUNK: retired chunks stay as spares */

static int put_until_stalled(void *p)
{
    const char *dir = p;
    hmm_t *m = NULL;
    if (hmm_open(&m, dir, NULL) != 0)
        return 1;
    char val[RECLAIM_VALUE];
    tu_value(val, sizeof val, "N", 1);
    hmm_crashpoint_stall("reclaim_looked", 1);
    int rc = hmm_put(m, "N", 1, val, sizeof val, 0, 0);
    hmm_close(m);
    return rc == 0 || rc == HMM_FULL ? 0 : 2;
}

/* The n-th filler ("F<i>") of stripe st, of n_fill. */
static long filler_of_stripe(hmm_t *m, uint32_t st, long n_fill, int nth)
{
    char key[32];
    for (long i = 0; i < n_fill; i++) {
        snprintf(key, sizeof key, "F%ld", i);
        if (stripe_of(m, key) == st && nth-- == 0)
            return i;
    }
    fail_msg("no filler %d of stripe %u among %ld", nth, st, n_fill);
    return -1;
}

static void test_a_stalled_sweep_of_expired_entries_deletes_no_live_put(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 1 << 20, 0);
    char key[32], val[RECLAIM_VALUE];
    uint32_t ks = stripe_of(m, "K");
    assert_int_not_equal(ks, stripe_of(m, "N")); /* the stalled writer holds N's stripe */
    /* Full, then K takes the place of a filler of its stripe: K expires
     * only after the fill, which a slow machine may make long. */
    long n = fill_with(m, "F", RECLAIM_VALUE);
    long d1 = filler_of_stripe(m, ks, n, 0), d2 = filler_of_stripe(m, ks, n, 1);
    snprintf(key, sizeof key, "F%ld", d1);
    TU_OK(hmm_del(m, key, strlen(key)));
    tu_value(val, sizeof val, "K", 1);
    TU_OK(hmm_put(m, "K", 1, val, sizeof val, 30, 0)); /* the only entry that expires */
    usleep(60 * 1000);
    pid_t kid = tu_fork(put_until_stalled, (void *)dir);
    wait_until_stopped(kid, "reclaim_looked");
    snprintf(key, sizeof key, "F%ld", d2);
    TU_OK(hmm_del(m, key, strlen(key)));
    tu_value(val, sizeof val, "K", 2);
    TU_OK(hmm_put(m, "K", 1, val, sizeof val, 0, 0)); /* K's expired chunk x becomes the spare */
    tu_value(val, sizeof val, "K", 3);
    TU_OK(hmm_put(m, "K", 1, val, sizeof val, 0, 0)); /* and holds K again, live */
    kill(kid, SIGCONT);
    int status = tu_wait(kid, 10000);
    if (tu_exit_code(status) != 0)
        fail_msg("the stalled writer ended with 0x%x", status);
    size_t len = sizeof val;
    uint64_t seq = 0;
    int rc = hmm_get(m, "K", 1, val, &len);
    if (rc != 0 || !tu_value_ok(val, len, "K", &seq) || seq != 3)
        fail_msg("K's last put (no TTL) is gone after the stalled sweep went on: %s", hmm_errname(rc));
    check_sound(m, "reclaim_looked", "after the stalled sweep went on");
    hmm_close(m);
}

/* ---- growth's end: the old index freed, and the writers it waits for (FORMAT.md §10) ---- */

/* Put keys "<prefix><i>" (i from *next on), skipping those of stripe
 * avoid (UINT32_MAX: none), until the index has grown once more and that
 * growth has ended: 0, or the failed put's code (-1: no growth ended
 * within 4 M puts, which a doubling of keys always brings).  Forked
 * children call it too, hence no cmocka assertion inside. */
static int grow_once(hmm_t *m, const char *prefix, uint32_t *next, uint32_t avoid)
{
    uint64_t start = atomic_load(&m->hdr->index_cur);
    char key[32], val[40];
    for (uint32_t n = 0; n < 4000000; n++, (*next)++) {
        if (atomic_load(&m->hdr->index_cur) != start && atomic_load(&m->hdr->index_old) == 0)
            return 0;
        snprintf(key, sizeof key, "%s%u", prefix, *next);
        if (avoid != UINT32_MAX && stripe_of(m, key) == avoid)
            continue;
        tu_value(val, sizeof val, key, *next);
        int rc = hmm_put(m, key, strlen(key), val, sizeof val, 0, 0);
        if (rc)
            return rc;
    }
    return -1;
}

/* Pages the page table gives to index runs, beside the current index's. */
static void expect_index_pages(hmm_t *m, bool only_current, const char *when)
{
    uint64_t cur = atomic_load(&m->hdr->index_cur);
    uint64_t want = HMM_PAGE_ARG(atomic_load(&m->pagetab[HMM_INDEX_PAGE(cur)]));
    uint64_t in_table = 0, npages = map_npages(m);
    for (uint64_t p = 0; p < npages; p++) {
        unsigned kind = HMM_PAGE_KIND(atomic_load(&m->pagetab[p]));
        in_table += kind == HMM_PAGE_INDEX_HEAD || kind == HMM_PAGE_INDEX_TAIL;
    }
    uint64_t gauge = atomic_load(&m->hdr->index_pages);
    if (gauge != in_table)
        fail_msg("%s: index_pages says %llu, the page table %llu", when, (unsigned long long)gauge,
                 (unsigned long long)in_table);
    if (only_current ? in_table != want : in_table <= want)
        fail_msg("%s: %llu pages of index runs, the current index has %llu (%s)", when,
                 (unsigned long long)in_table, (unsigned long long)want,
                 only_current ? "a retired run was not freed" : "the dead finisher's run is gone already");
}

struct finisher {
    const char *dir;
    const char *point;
};

static int grow_until_killed(void *p)
{
    struct finisher *f = p;
    hmm_t *m = NULL;
    if (hmm_open(&m, f->dir, NULL) != 0)
        return 10;
    hmm_crashpoint_arm(f->point, 1);
    uint32_t next = 0;
    for (int g = 0; g < 8; g++)
        if (grow_once(m, "D", &next, UINT32_MAX) != 0)
            return 11;
    return 0; /* not killed: the caller says so */
}

static void test_a_growth_frees_the_index_it_retires(void **state)
{
    static const char *const points[] = {"index_retired", "index_fenced"};
    for (size_t p = 0; p < 2; p++) {
        const char *dir = tu_tmpdir();
        hmm_t *m = tu_open(dir, 1 << 20, 256 << 20, 0);
        uint32_t next = 0;
        for (int g = 0; g < 3; g++) {
            assert_int_equal(grow_once(m, "P", &next, UINT32_MAX), 0);
            expect_index_pages(m, true, "after a growth");
        }
        /* A finisher killed before it freed the run leaves it; the next
         * growth's finisher (here, with the map open all along: no cold
         * start) frees it. */
        struct finisher f = {dir, points[p]};
        int status = tu_wait(tu_fork(grow_until_killed, &f), 60000);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("a finisher armed at %s was not killed there (0x%x)", points[p], status);
        expect_index_pages(m, false, points[p]);
        assert_int_equal(grow_once(m, "P", &next, UINT32_MAX), 0);
        expect_index_pages(m, true, "after the growth that followed the dead finisher");
        check_sound(m, points[p], "after the next growth");
        hmm_close(m);
    }
}

static int insert_k_until_stalled(void *dir)
{
    hmm_t *m = NULL;
    if (hmm_open(&m, dir, NULL) != 0)
        return 1;
    hmm_crashpoint_stall("insert_viewed", 1);
    int rc = hmm_put(m, "K", 1, "kept", 4, 0, 0);
    hmm_close(m);
    return rc == 0 ? 0 : 2;
}

static int grow_avoiding_stripe(void *p)
{
    const char *dir = p;
    hmm_t *m = NULL;
    if (hmm_open(&m, dir, NULL) != 0)
        return 1;
    uint32_t next = 0;
    int rc = grow_once(m, "G", &next, stripe_of(m, "K"));
    hmm_close(m);
    return rc == 0 ? 0 : 2;
}

/* A writer holds K's stripe with the index words it decoded, stopped
 * before it inserts K.  Meanwhile the index grows, from keys of every
 * other stripe, so no drain needs K's stripe.  The growth must not end
 * before the writer lets go: its insert goes into the index it decoded,
 * now the old one, and a growth that ended (and freed that run) would
 * lose K, whose put returned 0. */
static void test_a_growth_does_not_end_under_a_writer_that_decoded_the_old_index(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 256 << 20, 0);
    pid_t writer = tu_fork(insert_k_until_stalled, (void *)dir);
    wait_until_stopped(writer, "insert_viewed");
    pid_t grower = tu_fork(grow_avoiding_stripe, (void *)dir);
    /* Give the grower time to end its growth, if it can. */
    int status = 0;
    bool grower_done = false;
    for (int waited = 0; waited < 1500 && !grower_done; waited += 10) {
        grower_done = waitpid(grower, &status, WNOHANG) == grower;
        if (!grower_done)
            usleep(10 * 1000);
    }
    kill(writer, SIGCONT);
    if (tu_exit_code(tu_wait(writer, 20000)) != 0)
        fail_msg("the stalled writer's put of K failed");
    if (!grower_done)
        status = tu_wait(grower, 60000);
    if (tu_exit_code(status) != 0)
        fail_msg("the grower failed (0x%x)", status);
    char buf[16];
    size_t len = sizeof buf;
    int rc = hmm_get(m, "K", 1, buf, &len);
    if (rc != 0 || len != 4 || memcmp(buf, "kept", 4) != 0)
        fail_msg("K, put by the writer that held the old index's words, is %s after the growth (the grower %s "
                 "before the writer went on)", hmm_errname(rc), grower_done ? "had ended" : "had not ended");
    check_sound(m, "insert_viewed", "after the growth");
    hmm_close(m);
}

#define KEY_A "AAAAAAAA"  /* 8 bytes: the values after it stay 8-aligned */
#define FORGED_VALUE 496    /* whole 8-byte words, a class away from A's */

/* Fill forged: FORGED_VALUE bytes, every word forged (a slot naming some
 * entry). */
static void forge_words(uint64_t words[FORGED_VALUE / 8], uint64_t forged)
{
    for (size_t i = 0; i < FORGED_VALUE / 8; i++)
        words[i] = forged;
}

/* Put forged values under keys "F<n>" (n from *next on; none of stripe
 * avoid, UINT32_MAX: any) until the growth of index c has ended and bucket
 * b of c, freed by it, holds a forged word: true, or false if 400 000
 * puts did not get there. */
static bool forge_into(hmm_t *m, uint64_t c, uint64_t b, uint64_t forged, uint32_t avoid, uint32_t *next)
{
    uint64_t words[FORGED_VALUE / 8];
    forge_words(words, forged);
    struct hmm_ix cix;
    TU_OK(index_view(m, c, &cix));
    char key[16];
    for (uint32_t n = 0; n < 400000; n++, (*next)++) {
        snprintf(key, sizeof key, "F%07u", *next);
        if (avoid != UINT32_MAX && stripe_of(m, key) == avoid)
            continue;
        TU_OK(hmm_put(m, key, 8, words, sizeof words, 0, 0));
        if (atomic_load(&m->hdr->index_cur) == c || atomic_load(&m->hdr->index_old) != 0)
            continue;
        for (unsigned j = 0; j < ix_slots(&cix); j++)
            if (atomic_load(ix_slot(&cix, b, j)) == forged)
                return true;
    }
    return false;
}

/* forge_into, or kill the stalled process and fail, naming where. */
static void forge_into_or_fail(hmm_t *m, pid_t stalled, uint64_t c, uint64_t b, uint64_t forged, uint32_t avoid,
                               uint32_t *next, const char *where)
{
    if (forge_into(m, c, b, forged, avoid, next))
        return;
    kill(stalled, SIGKILL);
    tu_wait(stalled, 10000);
    fail_msg("the forged values never reached %s of the retired index", where);
}

static int get_a_until_stalled(void *dir)
{
    hmm_t *m = NULL;
    if (hmm_open(&m, dir, NULL) != 0)
        return 1;
    char buf[64];
    size_t len = sizeof buf;
    hmm_get(m, "warm", 4, buf, &len); /* caches the index view: A's get takes the fast path */
    hmm_crashpoint_stall("read_viewed", 1);
    len = sizeof buf;
    int rc = hmm_get(m, KEY_A, 8, buf, &len);
    hmm_close(m);
    return rc == HMM_NOTFOUND ? 0 : rc == 0 ? 3 : 2;
}

/* A get stopped after it checked its cached view of index C, while C's
 * growth ends, C is freed, and a size class takes C's pages for values
 * someone forged: words that read as slots naming key A's deleted entry
 * (its chunk, kept as the stripe's spare, still holds A and its value).
 * Nothing changed A's stripe meanwhile, so only the growth's second
 * barrier tells the get that what it is about to read is not an index. */
static void test_a_get_that_viewed_a_retired_index_does_not_read_its_new_owner(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 256 << 20, 0);
    uint32_t sa = stripe_of(m, KEY_A);
    assert_int_not_equal(sa, stripe_of(m, "warm"));
    TU_OK(hmm_put(m, "warm", 4, "w", 1, 0, 0));
    TU_OK(hmm_put(m, KEY_A, 8, "A-first", 7, 0, 0));
    TU_OK(hmm_put(m, KEY_A, 8, "A-second", 8, 0, 0)); /* A's first chunk becomes the spare */
    uint64_t dead = HMM_SPARE_OFF(atomic_load(&m->stripes[sa].spare));
    assert_true(dead != 0);
    TU_OK(hmm_del(m, KEY_A, 8));
    pid_t reader = tu_fork(get_a_until_stalled, (void *)dir);
    wait_until_stopped(reader, "read_viewed");

    uint64_t c = atomic_load(&m->hdr->index_cur);
    uint64_t hash = key_hash(KEY_A, 8);
    struct hmm_ix cix;
    TU_OK(index_view(m, c, &cix));
    uint32_t next = 0;
    forge_into_or_fail(m, reader, c, hash_home(&cix, hash), HMM_SLOT_MAKE(hash_tag(hash), dead), sa, &next,
                       "A's home bucket");
    kill(reader, SIGCONT);
    int code = tu_exit_code(tu_wait(reader, 10000));
    if (code != 0)
        fail_msg("the get of deleted key A, stopped over the retired index, %s", code == 3 ? "returned A's old value"
                                                                                      : "failed");
    check_sound(m, "read_viewed", "after the stalled get went on");
    hmm_close(m);
}

/* A new map that may grow, holding key E, open in *m; and a child that
 * runs fn(dir), stopped at stall point point. */
static pid_t stalled_over_a_map_holding_e(hmm_t **m, int (*fn)(void *), const char *point)
{
    const char *dir = tu_tmpdir();
    *m = tu_open(dir, 1 << 20, 256 << 20, 0);
    TU_OK(hmm_put(*m, "E", 1, "e", 1, 0, 0));
    pid_t pid = tu_fork(fn, (void *)dir);
    wait_until_stopped(pid, point);
    return pid;
}

static int drain_until_stalled(void *dir)
{
    hmm_t *m = NULL;
    if (hmm_open(&m, dir, NULL) != 0)
        return 1;
    hmm_crashpoint_stall("drain_viewed", 1);
    uint32_t next = 0;
    /* Stops in the first put that helps a growth (the helper's own, or
     * the caller's, whichever starts first); then grows on. */
    return grow_once(m, "H", &next, UINT32_MAX) == 0 ? 0 : 2;
}

/* A writer helping a growth stopped after it decoded the old index C
 * without a lock.  Meanwhile that growth ends, C is freed, its pages take
 * forged values (words that read as slots naming entry E), and the next
 * growth begins, so the helper's claim of buckets succeeds again.  It must
 * find that C is no longer the index being drained, and move nothing out
 * of someone's values. */
static void test_a_helper_that_viewed_a_retired_index_drains_nothing_from_it(void **state)
{
    hmm_t *m;
    pid_t helper = stalled_over_a_map_holding_e(&m, drain_until_stalled, "drain_viewed");
    uint64_t c = atomic_load(&m->hdr->index_old); /* the helper's view */
    assert_true(c != 0);
    /* E's slot, for a forged copy of it. */
    uint64_t he = key_hash("E", 1);
    uint64_t forged = 0;
    struct hmm_ix cur, old;
    TU_OK(index_views(m, &cur, &old));
    for (int pass = 0; pass < 2 && !forged; pass++) {
        const struct hmm_ix *ix = pass ? &old : &cur;
        for (uint64_t b = 0; b < ix->nb && !forged; b++)
            for (unsigned j = 0; j < ix_slots(ix); j++) {
                uint64_t sj = atomic_load(ix_slot(ix, b, j));
                if (sj && HMM_SLOT_TAG(sj) == hash_tag(he) && !memcmp(entry_key(entry_at(m, HMM_SLOT_OFF(sj))), "E", 1))
                    forged = sj;
            }
    }
    assert_true(forged != 0);
    uint32_t next = 0;
    forge_into_or_fail(m, helper, c, 4, forged, UINT32_MAX, &next, "bucket 4");
    /* The next growth: the helper's claims land in its range again. */
    uint64_t d = atomic_load(&m->hdr->index_cur);
    char key[16];
    uint64_t words[FORGED_VALUE / 8];
    forge_words(words, forged);
    while (atomic_load(&m->hdr->index_cur) == d) {
        snprintf(key, sizeof key, "F%07u", next++);
        TU_OK(hmm_put(m, key, 8, words, sizeof words, 0, 0));
        if (next > 2000000)
            fail_msg("the index did not grow again within 2 M puts");
    }
    kill(helper, SIGCONT);
    int code = tu_exit_code(tu_wait(helper, 60000));
    if (code != 0)
        fail_msg("the helper stopped over the retired index then failed (%d)", code);
    /* Every forged value is as it was put, and E is where it was. */
    uint64_t back[FORGED_VALUE / 8];
    for (uint32_t i = 0; i < next; i++) {
        snprintf(key, sizeof key, "F%07u", i);
        size_t len = sizeof back;
        TU_OK(hmm_get(m, key, 8, back, &len));
        if (len != sizeof back || memcmp(back, words, sizeof back) != 0)
            fail_msg("%s's value changed after the helper went on: it drained a retired index's new owner", key);
    }
    check_sound(m, "drain_viewed", "after the helper went on");
    hmm_close(m);
}

static int open_until_stalled(void *dir)
{
    hmm_crashpoint_stall("open_viewed", 1);
    hmm_t *m = NULL;
    int rc = hmm_open(&m, dir, NULL);
    if (rc) {
        fprintf(stderr, "open: %s (%s)\n", hmm_errname(rc), hmm_last_error());
        return 2;
    }
    hmm_close(m);
    return 0;
}

/* An opener stopped after it loaded the index words, before it checked
 * that the page table holds index runs where they point, while the growth
 * of those indexes ends and frees their runs (with no growth under way
 * when it loaded them, and with one being drained).  A run freed by growth
 * is not damage: the open must succeed. */
static void test_an_open_that_loaded_the_index_words_before_a_growth_ended_succeeds(void **state)
{
    for (int draining = 0; draining < 2; draining++) {
        const char *dir = tu_tmpdir();
        hmm_t *m = tu_open(dir, 1 << 20, 256 << 20, 0);
        uint32_t next = 0;
        char key[32], val[40];
        while (draining && atomic_load(&m->hdr->index_old) == 0) { /* a growth begins */
            snprintf(key, sizeof key, "P%u", next);
            tu_value(val, sizeof val, key, next++);
            TU_OK(hmm_put(m, key, strlen(key), val, sizeof val, 0, 0));
            if (next > 4000000)
                fail_msg("no growth began within 4 M puts");
        }
        pid_t opener = tu_fork(open_until_stalled, (void *)dir);
        wait_until_stopped(opener, "open_viewed");
        /* Ends the growth under way (the opener's index_old is freed), or
         * grows once (its index_cur is). */
        while (draining && atomic_load(&m->hdr->index_old) != 0) {
            snprintf(key, sizeof key, "P%u", next);
            tu_value(val, sizeof val, key, next++);
            TU_OK(hmm_put(m, key, strlen(key), val, sizeof val, 0, 0));
        }
        if (!draining)
            assert_int_equal(grow_once(m, "P", &next, UINT32_MAX), 0);
        expect_index_pages(m, true, "after the growth under the stalled opener");
        kill(opener, SIGCONT);
        int code = tu_exit_code(tu_wait(opener, 20000));
        if (code != 0)
            fail_msg("an open stopped over index words a growth then retired (%s) failed (%d)",
                     draining ? "one being drained" : "none being drained", code);
        check_sound(m, "open_viewed", "after the stalled open went on");
        hmm_close(m);
    }
}

/* Walk the whole map from a cursor stopped before its first range; every
 * call that returns 0 or HMM_NOTFOUND must leave hmm_last_error() empty. */
static int walk_until_stalled(void *dir)
{
    hmm_t *m = NULL;
    hmm_cursor *c = NULL;
    if (hmm_open(&m, dir, NULL) != 0 || hmm_cursor_open(m, &c) != 0)
        return 1;
    hmm_crashpoint_stall("cursor_viewed", 1);
    const void *k, *v;
    size_t kl, vl;
    int rc, walked = 0, found_e = 0;
    while ((rc = hmm_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
        if (hmm_last_error()[0]) {
            printf("# after a successful hmm_cursor_next: \"%s\"\n", hmm_last_error());
            fflush(stdout);
            return 3;
        }
        walked++;
        found_e += kl == 1 && memcmp(k, "E", 1) == 0;
    }
    if (rc != HMM_NOTFOUND || hmm_last_error()[0])
        return 4;
    hmm_cursor_close(c);
    hmm_close(m);
    return walked > 0 && found_e == 1 ? 0 : 5;
}

/* A cursor stopped after it decoded the index words for its first range,
 * while that index's growth ends and its pages take forged values (words
 * that read as slots naming an offset past the map).  Going on, it meets
 * them, finds the index changed under it and reads the range again
 * (cursor.c): the walk succeeds, and must not keep the detail of the
 * attempt it discarded. */
static void test_a_cursor_that_read_a_retired_index_leaves_no_error_detail(void **state)
{
    if (tu_inline_maps())
        skip(); /* the forging waits for values to cover a format-1 bucket's slots; a cell's
                 * word sits at 0 or 32 of the line and the values never landed there */
    hmm_t *m;
    pid_t walker = stalled_over_a_map_holding_e(&m, walk_until_stalled, "cursor_viewed");
    uint64_t c = atomic_load(&m->hdr->index_cur);
    assert_true(atomic_load(&m->hdr->index_old) == 0);
    uint32_t next = 0;
    forge_into_or_fail(m, walker, c, 0, HMM_SLOT_MAKE(1, UINT64_C(1) << 50), UINT32_MAX, &next, "bucket 0");
    kill(walker, SIGCONT);
    int code = tu_exit_code(tu_wait(walker, 60000));
    if (code != 0)
        fail_msg("the cursor stopped over the retired index %s (%d)",
                 code == 3 ? "kept an error detail after a success" : "failed", code);
    check_sound(m, "cursor_viewed", "after the cursor went on");
    hmm_close(m);
}

/* ---- a cold start killed before it finished (FORMAT.md §10) ---- */

static int cold_start_until_killed(void *dir)
{
    hmm_crashpoint_arm("cold_rebuilt", 1);
    hmm_t *m;
    if (hmm_open(&m, dir, NULL) != 0)
        return 10;
    return 11; /* not killed: no cold start ran */
}

struct waiter {
    const char *dir;
    int fd; /* the parent's descriptor holding the shared lock: not ours to keep */
};

/* The dead put's new chunk must have been freed and "k" must still read 7. */
static int open_and_check(void *p)
{
    struct waiter *w = p;
    close(w->fd);
    hmm_t *m;
    if (hmm_open(&m, w->dir, NULL) != 0)
        return 10;
    hmm_check_result r;
    if (hmm_check(m, 0, &r) != 0 || r.unreachable)
        return 11;
    char buf[8];
    size_t len = sizeof buf;
    if (hmm_get(m, "k", 1, buf, &len) != 0 || len != 1 || buf[0] != '7')
        return 12;
    hmm_close(m);
    return 0;
}

/* A writer dies in a put; the next opener, alone, starts the cold start,
 * which rebuilds the lock words (the dead writer's lock no longer says
 * EOWNERDEAD) and is killed before it repairs the intent.  A writer that
 * was waiting for the cold starter's exclusive lock gets its shared one at
 * that moment (simulated: this process holds the shared lock while it
 * opens, and lets go later).  It must not take the map as repaired: the
 * cold start has to be done again before anyone writes.  Two such writers
 * both find the cold starter's mark, and one of them redoes it. */
/* ---- hmm_check meets the lock of an allocator that died ---- */

#define UNSPARED 1000 /* value bytes: a chunk over 512 is never kept as a spare (FORMAT.md §8) */

/* A writer killed at alloc_marked holds its class's lock, the head of the
 * free list marked WRITING and not yet named in its intent: only the class
 * repair (the next lock of the class) knows the chunk is still free.  A
 * writable hmm_check that walked the pages before anything locked that
 * class took the chunk for a leaked one: without repair it called the
 * sound map corrupt; with repair (`hashmmap check --repair`) it linked the
 * chunk into the list it already headed, a loop, and every later put of
 * the class failed with HMM_CORRUPT. */
static void test_check_after_an_allocator_died_holding_its_class_lock_frees_nothing_in_use(void **state)
{
    (void)state;
    for (int repair = 0; repair < 2; repair++) {
        hmm_t *m = tu_open(tu_tmpdir(), 1 << 20, 0, 0);
        char key[32], val[UNSPARED];
        for (int i = 0; i < 20; i++) {
            snprintf(key, sizeof key, "fill-%d", i);
            tu_value(val, UNSPARED, key, 1);
            TU_OK(hmm_put(m, key, strlen(key), val, UNSPARED, 0, 0));
        }
        for (int i = 0; i < 10; i++) { /* the class gets a free list */
            snprintf(key, sizeof key, "fill-%d", i);
            TU_OK(hmm_del(m, key, strlen(key)));
        }
        struct dying_put w = {m, "new", UNSPARED, "alloc_marked"};
        int status = tu_wait(tu_fork(put_dying_at, &w), 10000);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("the writer was not killed at alloc_marked");
        hmm_check_result r;
        int rc = hmm_check(m, repair ? HMM_CHECK_REPAIR : 0, &r);
        if (rc || r.unreachable || r.bad_slots || r.repaired)
            fail_msg("check%s after the death: %s, %llu unreachable, %llu bad slots, %llu repaired",
                     repair ? " with repair" : "", hmm_errname(rc), (unsigned long long)r.unreachable,
                     (unsigned long long)r.bad_slots, (unsigned long long)r.repaired);
        for (int i = 100; i < 140; i++) {
            snprintf(key, sizeof key, "after-%d", i);
            tu_value(val, UNSPARED, key, 2);
            TU_OK(hmm_put(m, key, strlen(key), val, UNSPARED, 0, 0));
        }
        for (int i = 100; i < 140; i++) {
            snprintf(key, sizeof key, "after-%d", i);
            size_t len = sizeof val;
            TU_OK(hmm_get(m, key, strlen(key), val, &len));
            assert_true(tu_value_ok(val, len, key, NULL));
        }
        TU_OK(hmm_check(m, 0, &r));
        hmm_close(m);
    }
}

static void test_a_cold_start_killed_midway_is_done_again_by_the_next_writer(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    TU_OK(hmm_put(m, "k", 1, "7", 1, 0, 0));
    struct scenario s = {m, OP_PUT, "written"};
    int status = tu_wait(tu_fork(run_op, &s), 10000);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    hmm_close(m);
    status = tu_wait(tu_fork(cold_start_until_killed, (void *)dir), 10000);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        fail_msg("the cold start was not killed at cold_rebuilt (exit %d)", tu_exit_code(status));
    char path[4096];
    tu_path(path, sizeof path, dir, "hashmmap.map");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
    /* Two writers wait: both find the mark, and they must not take turns
     * backing off for ever (each redo is bounded; one of them wins). */
    struct waiter w = {dir, fd};
    pid_t waiters[2] = {tu_fork(open_and_check, &w), tu_fork(open_and_check, &w)};
    usleep(200 * 1000);
    close(fd);
    static const char *const why[] = {"", "", "", "", "", "", "", "", "", "", "its open failed",
                                      "the dead put's chunk leaked", "the old value is gone"};
    for (int i = 0; i < 2; i++) {
        int code = tu_exit_code(tu_wait(waiters[i], 20000));
        if (code != 0)
            fail_msg("writer %d of 2 that waited for the killed cold start: %s (status %d)", i + 1,
                     code >= 10 && code <= 12 ? why[code] : "died", code);
    }
    m = tu_open(dir, 0, 0, 0);
    check_outcome(m, OP_PUT, false, "cold_rebuilt");
    check_clean(m, "cold start", "cold_rebuilt");
    hmm_close(m);
}

int main(void)
{
    tu_watchdog(300);
    if (getenv("HMM_CRASHPOINTS_ONLY"))
        cmocka_set_test_filter(getenv("HMM_CRASHPOINTS_ONLY"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_update_crash_point_recovers_through_a_survivors_lock),
        cmocka_unit_test(test_every_update_crash_point_recovers_when_another_process_opens),
        cmocka_unit_test(test_every_update_crash_point_recovers_at_cold_start),
        cmocka_unit_test(test_every_crash_point_with_a_spare_chunk_recovers_through_a_survivors_lock),
        cmocka_unit_test(test_every_crash_point_with_a_spare_chunk_recovers_at_cold_start),
        cmocka_unit_test(test_giving_a_spare_back_recovers_at_each_crash_point),
        cmocka_unit_test(test_giving_the_own_stripes_spare_back_recovers_at_each_crash_point),
        cmocka_unit_test(test_growth_crash_points_lose_no_acknowledged_put),
        cmocka_unit_test(test_eviction_crash_points_leave_no_dangling_entry),
        cmocka_unit_test(test_handing_pages_back_recovers_at_each_crash_point),
        cmocka_unit_test(test_moving_entries_out_of_a_page_recovers_when_killed),
        cmocka_unit_test(test_a_class_repair_leaves_a_live_movers_page_alone),
        cmocka_unit_test(test_a_cold_start_killed_midway_is_done_again_by_the_next_writer),
        cmocka_unit_test(test_check_after_an_allocator_died_holding_its_class_lock_frees_nothing_in_use),
        cmocka_unit_test(test_a_stalled_reader_writes_nothing_into_a_chunk_reused_meanwhile),
        cmocka_unit_test(test_a_reader_of_an_entry_freed_by_a_repair_reads_again),
        cmocka_unit_test(test_format_1_gets_past_the_home_bucket_stay_on_the_fast_path),
        cmocka_unit_test(test_format_2_gets_past_the_home_bucket_stay_on_the_fast_path),
        cmocka_unit_test(test_a_batch_walks_a_key_whose_tag_another_key_shares),
        cmocka_unit_test(test_a_stalled_sweep_of_expired_entries_deletes_no_live_put),
        cmocka_unit_test(test_a_growth_frees_the_index_it_retires),
        cmocka_unit_test(test_a_growth_does_not_end_under_a_writer_that_decoded_the_old_index),
        cmocka_unit_test(test_a_get_that_viewed_a_retired_index_does_not_read_its_new_owner),
        cmocka_unit_test(test_a_helper_that_viewed_a_retired_index_drains_nothing_from_it),
        cmocka_unit_test(test_an_open_that_loaded_the_index_words_before_a_growth_ended_succeeds),
        cmocka_unit_test(test_a_cursor_that_read_a_retired_index_leaves_no_error_detail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
