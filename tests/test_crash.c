/*
 * test_crash.c - SIGKILL torture: writers are killed at random instants,
 * also while they hold locks, and restarted.  Each reports every operation
 * the library acknowledged (returned 0) through a pipe.  Afterwards: no torn
 * value, no lost acknowledged put or increment, no leaked space, and a writer
 * that is never killed never stalls on a lock a dead process held.
 *
 * HMM_TORTURE_KILLS (default 200) and HMM_TORTURE_SECONDS (default 30)
 * bound it; `make torture` runs a long one.  HMM_TORTURE_CACHE=1 runs it on
 * a small cache-mode map, so writers are also killed while evicting.
 */
#include "config.h"

#include "tests/testutil.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { KILLABLE = 3, WRITERS = KILLABLE + 1, KEYS = 64, STALL_MS = 3000 };
enum ack_type { ACK_PUT = 1, ACK_INCR = 2, ACK_PROGRESS = 3 };

struct ack {
    uint8_t type;
    uint8_t writer;
    uint16_t key;
    uint32_t pad;
    uint64_t seq;
};

struct writer_arg {
    const char *dir;
    int id;
    int fd;
    bool tolerate_full; /* a map smaller than the writers' peak: HMM_FULL is an honest answer */
};

static void key_of(char *buf, size_t len, int writer, int n)
{
    snprintf(buf, len, "w%d-%d", writer, n);
}

static int writer_main(void *p)
{
    struct writer_arg *a = p;
    hmm_t *m = NULL;
    if (hmm_open(&m, a->dir, NULL) != 0)
        return 10;
    srand((unsigned)getpid());
    /* Sequence numbers only grow, across restarts too. */
    uint64_t seq = tu_now_ms() * 1000;
    char key[32], val[1200], ctr[16];
    snprintf(ctr, sizeof ctr, "c%d", a->id);
    for (;;) {
        int n = rand() % KEYS;
        key_of(key, sizeof key, a->id, n);
        size_t len = 24 + (size_t)(rand() % 1100);
        tu_value(val, len, key, ++seq);
        struct ack ack = {.writer = (uint8_t)a->id, .key = (uint16_t)n, .seq = seq};
        int rc;
        if (rand() % 4 == 0) {
            rc = hmm_incr(m, ctr, strlen(ctr), 1, NULL);
            ack.type = ACK_INCR;
        } else {
            rc = hmm_put(m, key, strlen(key), val, len, 0, 0);
            ack.type = a->id == KILLABLE ? ACK_PROGRESS : ACK_PUT;
        }
        if (rc == HMM_FULL && a->tolerate_full)
            continue; /* not acknowledged, so not checked */
        if (rc != 0)
            return 11;
        if (write(a->fd, &ack, sizeof ack) != (ssize_t)sizeof ack)
            return 12;
    }
}

struct tally {
    uint64_t put_seq[WRITERS][KEYS];
    uint64_t incrs[WRITERS];
    uint64_t kills[WRITERS];
    uint64_t last_progress_ms;
    uint64_t worst_gap_ms;
};

static void drain(int fd, struct tally *t, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    struct ack buf[256];
    while (poll(&pfd, 1, timeout_ms) > 0) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (size_t i = 0; i < (size_t)n / sizeof buf[0]; i++) {
            struct ack *a = &buf[i];
            if (a->writer >= WRITERS || a->key >= KEYS)
                fail_msg("malformed ack");
            if (a->type == ACK_INCR)
                t->incrs[a->writer]++;
            else if (a->seq > t->put_seq[a->writer][a->key])
                t->put_seq[a->writer][a->key] = a->seq;
            if (a->writer == KILLABLE)
                t->last_progress_ms = tu_now_ms();
        }
        timeout_ms = 0;
    }
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* Kill and restart writers on the map in dir until max_kills or the
 * deadline, then check every acknowledged write against the map. */
static void run_torture(const char *dir, long max_kills, long seconds, bool must_compact)
{
    uint64_t deadline = tu_now_ms() + 1000 * (uint64_t)seconds;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    static struct tally t;
    memset(&t, 0, sizeof t);
    struct writer_arg args[WRITERS];
    pid_t pids[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        args[i] = (struct writer_arg){dir, i, fds[1], must_compact};
        pids[i] = tu_fork(writer_main, &args[i]);
    }
    t.last_progress_ms = tu_now_ms();
    long kills = 0;
    srand(12345);
    while (kills < max_kills && tu_now_ms() < deadline) {
        drain(fds[0], &t, rand() % 6);
        int victim = rand() % KILLABLE;
        kill(pids[victim], SIGKILL);
        int status = tu_wait(pids[victim], 10000);
        assert_true(WIFSIGNALED(status) || tu_exit_code(status) == 0);
        if (!WIFSIGNALED(status))
            fail_msg("writer %d exited by itself with status %d", victim, tu_exit_code(status));
        t.kills[victim]++;
        kills++;
        pids[victim] = tu_fork(writer_main, &args[victim]);
        uint64_t gap = tu_now_ms() - t.last_progress_ms;
        if (gap > t.worst_gap_ms)
            t.worst_gap_ms = gap;
    }
    for (int i = 0; i < WRITERS; i++) {
        kill(pids[i], SIGKILL);
        int status = tu_wait(pids[i], 10000);
        if (!WIFSIGNALED(status))
            fail_msg("writer %d exited by itself with status %d", i, tu_exit_code(status));
    }
    drain(fds[0], &t, 0);
    close(fds[0]);
    close(fds[1]);

    hmm_t *m = tu_open(dir, 0, 0, 0);
    uint64_t torn = 0, lost = 0;
    char key[32], val[1200];
    for (int w = 0; w < WRITERS; w++) {
        for (int n = 0; n < KEYS; n++) {
            key_of(key, sizeof key, w, n);
            size_t len = sizeof val;
            uint64_t seq = 0;
            int rc = hmm_get(m, key, strlen(key), val, &len);
            if (rc == 0 && !tu_value_ok(val, len, key, &seq))
                torn++;
            else if (t.put_seq[w][n] && (rc != 0 || seq < t.put_seq[w][n]))
                lost++;
        }
        char ctr[16], num[32];
        snprintf(ctr, sizeof ctr, "c%d", w);
        size_t len = sizeof num - 1;
        uint64_t c = 0;
        if (hmm_get(m, ctr, strlen(ctr), num, &len) == 0) {
            num[len] = '\0';
            c = strtoull(num, NULL, 10);
        }
        /* A kill may land after an increment applied and before its ack. */
        if (c < t.incrs[w] || c > t.incrs[w] + t.kills[w] + 1)
            lost++;
    }
    hmm_check_result r;
    int crc = hmm_check(m, 0, &r);
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    printf("# torture: %ld kills, %llu recoveries, torn %llu, lost %llu, unreachable %llu, owned twice %llu, "
           "worst stall %llu ms, %llu pages handed back, %llu entries moved\n",
           kills, (unsigned long long)st.recoveries, (unsigned long long)torn, (unsigned long long)lost,
           (unsigned long long)r.unreachable, (unsigned long long)r.bad_slots, (unsigned long long)t.worst_gap_ms,
           (unsigned long long)st.counters[HMM_C_PAGES_RETURNED], (unsigned long long)st.counters[HMM_C_ENTRIES_MOVED]);
    /* Pages come back in every run; whether one also needs entries moved
     * depends on how far the writers get between kills. */
    if (must_compact)
        assert_true(st.counters[HMM_C_PAGES_RETURNED] > 0);
    assert_int_equal(torn, 0);
    assert_int_equal(lost, 0);
    assert_int_equal(crc, 0);
    assert_int_equal(r.unreachable, 0);
    assert_int_equal(r.bad_slots, 0);
    assert_true(st.recoveries > 0);
    assert_true(t.worst_gap_ms < STALL_MS);
    hmm_close(m);
}

/* Puts of vlen-byte values until the map says full. */
static long fill_count(hmm_t *m, size_t vlen)
{
    static char val[4096];
    char key[32];
    long n = 0;
    for (;; n++) {
        snprintf(key, sizeof key, "fill-%ld", n);
        int rc = hmm_put(m, key, strlen(key), val, vlen, 0, 0);
        if (rc == HMM_FULL)
            return n;
        if (rc != 0)
            fail_msg("filling: %s (%s)", hmm_errname(rc), hmm_last_error());
    }
}

/* Delete everything the torture left, then the map must take >= 90% of
 * the 1000-byte values a fresh map of the same geometry takes (FORMAT.md
 * §6, "Pages come back"). */
static void check_capacity_after_emptying(const char *dir, uint64_t size, uint64_t max_size)
{
    hmm_t *m = tu_open(dir, 0, 0, 0);
    char key[32];
    for (int w = 0; w < WRITERS; w++) {
        for (int n = 0; n < KEYS; n++) {
            key_of(key, sizeof key, w, n);
            hmm_del(m, key, strlen(key));
        }
        snprintf(key, sizeof key, "c%d", w);
        hmm_del(m, key, strlen(key));
    }
    long after = fill_count(m, 1000);
    hmm_close(m);
    hmm_t *fresh = tu_open(tu_tmpdir(), size, max_size, 0);
    long before = fill_count(fresh, 1000);
    hmm_close(fresh);
    printf("# capacity for 1000-byte values after the torture, emptied: %ld of a fresh map's %ld (%.1f%%)\n",
           after, before, 100.0 * (double)after / (double)before);
    assert_true(after * 10 >= before * 9);
}

static void test_sigkilled_writers_lose_nothing_acknowledged_and_tear_nothing(void **state)
{
    const char *dir = tu_tmpdir();
    bool cache = env_long("HMM_TORTURE_CACHE", 0) != 0;
    hmm_t *m = tu_open(dir, cache ? 16 << 20 : 8 << 20, cache ? 0 : 64 << 20, cache ? HMM_CACHE : 0);
    hmm_close(m);
    run_torture(dir, env_long("HMM_TORTURE_KILLS", 200), env_long("HMM_TORTURE_SECONDS", 30), false);
    if (!cache)
        check_capacity_after_emptying(dir, 8 << 20, 64 << 20);
}

/* A map that cannot grow and has fewer pages than the writers' sizes need
 * at their peaks (the smallest map: 64 pages of 4 KiB for about 150 KB of
 * live entries in 20 classes): writers are killed while pages are handed
 * back and entries moved out of sparse pages (core/compact.c). */
static void test_sigkilled_writers_of_a_map_that_must_reuse_pages_lose_nothing(void **state)
{
    const char *dir = tu_tmpdir();
    hmm_close(tu_open(dir, HMM_SIZE_MIN, 0, 0));
    run_torture(dir, env_long("HMM_TORTURE_KILLS", 200) / 2, env_long("HMM_TORTURE_SECONDS", 30) / 2, true);
    check_capacity_after_emptying(dir, HMM_SIZE_MIN, 0);
}

int main(void)
{
    tu_watchdog((unsigned)env_long("HMM_TORTURE_SECONDS", 30) * 2 + 180);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkilled_writers_lose_nothing_acknowledged_and_tear_nothing),
        cmocka_unit_test(test_sigkilled_writers_of_a_map_that_must_reuse_pages_lose_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
