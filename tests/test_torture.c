/*
 * test_torture.c - every kind of writer killed at random instants while
 * readers check invariants, openers come and go, a reader is stopped and a
 * replica follows the log; then the map, the log and the replica must agree.
 *
 * Writers put (with and without TTL, NX, XX), delete, cas and incr keys of
 * 4..3500 bytes with self-checking values of 32 bytes..600 KiB, so every
 * slab class, page runs, file and index growth (map created at 256 KiB) or
 * compaction (a 1 MiB map that cannot grow, value sizes changing every
 * second) all run; each writer also arms a random crash point of
 * libhashmmap-crash (FORMAT.md §8-§13) and dies there if it gets so far.
 * The test SIGKILLs writers and openers, stops a reader for up to 1.5 s,
 * and now and then kills every writable process at once (the next opener
 * cold-starts).  What must hold:
 *   - readers (hmm_getv, hmm_get_batch, cursors; one of them read-only):
 *     a value read is one a writer wrote for that key, whole; a key's
 *     version never goes back; a writer's older write never reappears
 *     after a newer one was read; a counter never goes back; a cursor
 *     returns no key twice and every counter present throughout;
 *   - openers (writable and read-only, racing growth and cold starts) open,
 *     read whole values and find the map sound with hmm_check;
 *   - afterwards: hmm_check finds the map sound (read-only, as `hashmmap
 *     check` opens it, and writable); a key each writer owns holds its last
 *     acknowledged state or the one in flight when it was killed; a
 *     counter lies between its acknowledged and attempted increments;
 *   - the log: sequence numbers increase, every record decodes, the last
 *     record of each key agrees with the map, and a follower that applied
 *     the log to an anonymous mirror as it was written (like a replica,
 *     when it never fell behind the ring) holds what the map holds.
 *
 * HMM_TORTURE_SECONDS (per scenario, default 5) makes it longer.
 */
#include "config.h"

#include "tests/testutil.h"
#include "core/crashpoint.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    WRITERS = 4,            /* killable writer processes, a second thread each in some scenarios */
    SLOTS = 2 * WRITERS,    /* writer ids: process i is slot i, its thread slot WRITERS + i */
    READERS = 2,            /* reader 1 opens read-only */
    OPENERS = 2,
    KEYS = 1024,            /* "k<i>:..." keys */
    OWNED = 256,            /* keys below OWNED are written by one writer only: i % WRITERS */
    COUNTERS = 8,           /* "ctr<i>", only ever incremented */
    PENDING = 6,            /* in-flight writes of an owned key remembered across kills */
    MSGS = 8,
    MAX_VAL = 640 * 1024,
};

enum scenario_flags {
    GROWING = 1,            /* 256 KiB map growing to 512 MiB, log ring at its minimum: it wraps */
    COMPACTING = 2,         /* 1 MiB map that cannot grow: pages change class */
    CACHE = 4,              /* cache mode: evictions, so presence is not checked */
    THREADS = 8,            /* a second writer thread per process on the same handle */
    CHECKS = 16,            /* openers run hmm_check (and repair) while writers run */
    MASSACRE = 32,          /* now and then every writable process at once */
};

/* What a writer's owned key may hold: the last acknowledged write, or one
 * still in flight when its writer was killed (it may or may not have
 * happened).  Written only by the key's writer: one process at a time. */
struct owned_key {
    uint64_t acked;         /* writer seq of the acknowledged state, 0 = never written */
    uint8_t acked_del;
    uint8_t overflow;       /* more in flight than remembered: not checked */
    uint8_t npend;
    uint64_t pend[PENDING];
    uint8_t pend_del[PENDING];
};

/* Shared by the test and every child (MAP_SHARED | MAP_ANONYMOUS). */
struct shared {
    _Atomic uint64_t wseq[SLOTS];       /* last seq handed out per writer slot */
    _Atomic uint64_t fresh_acked;       /* "g..." keys acknowledged (never deleted) */
    _Atomic uint64_t ops, reads, walks, opens, checks;
    _Atomic uint64_t ctr_acked[COUNTERS], ctr_tried[COUNTERS];
    _Atomic int stop;                   /* 1: writers and readers stop; 2: the follower drains */
    _Atomic int nviolations;
    char msg[MSGS][256];
    struct owned_key own[OWNED];
    int armed[WRITERS];                 /* crash point each writer armed */
    uint64_t follower_applied, follower_compared;
    int follower_lapped;
    uint64_t log_last_committed;        /* set before the follower drains (stop 2) */
};

static struct shared *sh;
static const char *map_dir;
static unsigned flags;

static void violation(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    int i = atomic_fetch_add(&sh->nviolations, 1);
    if (i < MSGS)
        memcpy(sh->msg[i], buf, sizeof buf);
    fprintf(stderr, "# violation (pid %d): %s\n", (int)getpid(), buf);
}

static _Thread_local uint64_t rng;

static void rng_seed(uint64_t extra)
{
    rng = ((uint64_t)getpid() << 32) ^ tu_now_ms() ^ (extra * 0x9E3779B97F4A7C15ull) ^ 0x2545F4914F6CDD1Dull;
}

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* ---- keys and self-checking values ---- */

/* Key i: "k<i>:" padded to 4..123 bytes, every 97th to 1000..3499. */
static size_t key_of(char *buf, unsigned i)
{
    int n = sprintf(buf, "k%u:", i);
    size_t len = 4 + ((i * 2654435761u) >> 7) % 120;
    if (i % 97 == 5)
        len = 1000 + (i * 31) % 2500;
    if (len < (size_t)n)
        len = (size_t)n;
    for (size_t j = (size_t)n; j < len; j++)
        buf[j] = (char)('a' + (i + j) % 26);
    return len;
}

/* The index of a key made by key_of, or -1. */
static int key_index(const void *key, size_t klen)
{
    char head[16], ref[4096];
    size_t n = klen < sizeof head - 1 ? klen : sizeof head - 1;
    memcpy(head, key, n);
    head[n] = '\0';
    char *end;
    unsigned long i = head[0] == 'k' ? strtoul(head + 1, &end, 10) : KEYS;
    if (i >= KEYS || *end != ':' || key_of(ref, (unsigned)i) != klen || memcmp(ref, key, klen) != 0)
        return -1;
    return (int)i;
}

/* The counter index of "ctr<i>", or -1. */
static int counter_index(const void *key, size_t klen)
{
    const char *k = key;
    if (klen != 4 || memcmp(k, "ctr", 3) != 0 || k[3] < '0' || k[3] >= '0' + COUNTERS)
        return -1;
    return k[3] - '0';
}

struct value_head {
    uint32_t magic;
    uint16_t writer;
    uint16_t zero;
    uint64_t seq;           /* the writer slot's sequence number */
    uint64_t keyhash;
    uint32_t len;
    uint32_t sum;           /* over the head (sum 0) and the padding */
};
#define VALUE_MAGIC 0x4c415654u

static uint32_t value_sum(const struct value_head *h, const uint8_t *pad, size_t padlen)
{
    struct value_head z = *h;
    z.sum = 0;
    return (uint32_t)fnv(pad, padlen, fnv(&z, sizeof z, 7));
}

static size_t make_value(uint8_t *buf, size_t len, unsigned writer, uint64_t seq, const void *key, size_t klen)
{
    struct value_head h = {VALUE_MAGIC, (uint16_t)writer, 0, seq, fnv(key, klen, 1), 0, 0};
    if (len < sizeof h)
        len = sizeof h;
    h.len = (uint32_t)len;
    for (size_t i = sizeof h; i < len; i++)
        buf[i] = (uint8_t)(seq * 31 + i * 7 + (i >> 8));
    h.sum = value_sum(&h, buf + sizeof h, len - sizeof h);
    memcpy(buf, &h, sizeof h);
    return len;
}

/* NULL if val is a whole value some writer made for key, else why not. */
/* Which bytes of a value whose head is whole differ from what its writer
 * wrote (the padding follows from the head): where a damage starts and
 * what lies there tells a torn copy from a chunk another write reused. */
static const char *value_damage(const uint8_t *val, const struct value_head *h)
{
    static _Thread_local char why[160];
    size_t first = 0, last = 0, n = 0;
    for (size_t i = sizeof *h; i < h->len; i++) {
        if (val[i] == (uint8_t)(h->seq * 31 + i * 7 + (i >> 8)))
            continue;
        if (!n++)
            first = i;
        last = i;
    }
    uint32_t there = 0;
    if (n)
        memcpy(&there, val + first, first + sizeof there <= h->len ? sizeof there : 1);
    snprintf(why, sizeof why, "checksum: %zu of %u bytes differ, from %zu to %zu (0x%08x there)%s", n, h->len,
             first, last, there, there == VALUE_MAGIC ? ", another value's head" : "");
    return why;
}

static const char *value_problem(const void *val, size_t len, const void *key, size_t klen, struct value_head *out)
{
    struct value_head h;
    if (len < sizeof h)
        return "shorter than a value's head";
    memcpy(&h, val, sizeof h);
    if (h.magic != VALUE_MAGIC || h.len != len)
        return "not a value, or torn";
    if (h.keyhash != fnv(key, klen, 1))
        return "the value of another key";
    if (h.sum != value_sum(&h, (const uint8_t *)val + sizeof h, len - sizeof h))
        return value_damage(val, &h);
    if (h.writer >= SLOTS || h.seq == 0 || h.seq > atomic_load(&sh->wseq[h.writer]))
        return "a sequence number no writer handed out";
    if (out)
        *out = h;
    return NULL;
}

static size_t value_len(void)
{
    if (flags & COMPACTING) {
        static const size_t sizes[3] = {40, 1400, 180};
        return sizes[(wall_ms() / 1000) % 3] + rnd() % 16;
    }
    uint64_t r = rnd() % 1000;
    if (r < 600)
        return 32 + rnd() % 170;
    if (r < 900)
        return 200 + rnd() % 1800;
    if (r < 990 || (flags & CACHE))
        return 2000 + rnd() % 20000;
    return 100000 + rnd() % 500000; /* page runs */
}

/* ---- who may answer what ---- */

static void expect_rc(int rc, const char *what)
{
    if (rc == 0 || rc == HMM_NOTFOUND || rc == HMM_EXISTS || rc == HMM_MISMATCH)
        return;
    /* A map that cannot grow is full now and then; a cache refuses only
     * values that need a run of pages. */
    if (rc == HMM_FULL && (flags & (COMPACTING | CACHE)))
        return;
    violation("%s: %s (%s)", what, hmm_errname(rc), hmm_last_error());
}

static void owned_begin(unsigned k, uint64_t seq, bool del)
{
    struct owned_key *o = &sh->own[k];
    if (o->npend >= PENDING) {
        o->overflow = 1;
        return;
    }
    o->pend[o->npend] = seq;
    o->pend_del[o->npend] = del;
    atomic_thread_fence(memory_order_seq_cst); /* the slot before the count: a kill leaves a superset */
    o->npend++;
}

static void owned_ack(unsigned k, uint64_t seq, bool del)
{
    struct owned_key *o = &sh->own[k];
    o->acked = seq;
    o->acked_del = del;
    atomic_thread_fence(memory_order_seq_cst);
    o->npend = 0;
    o->overflow = 0;
}

/* ---- writers ---- */

struct writer_ctx {
    hmm_t *m;
    int slot;
    bool owns;              /* the process's main thread: writes its owned keys */
    uint8_t *val, *got;
};

static void write_counter(struct writer_ctx *w)
{
    unsigned c = (unsigned)(rnd() % COUNTERS);
    char key[8];
    int klen = sprintf(key, "ctr%u", c);
    atomic_fetch_add(&sh->ctr_tried[c], 1);
    int rc = hmm_incr(w->m, key, (size_t)klen, 1, NULL);
    if (rc == 0)
        atomic_fetch_add(&sh->ctr_acked[c], 1);
    expect_rc(rc, "incr");
}

/* A key never written before: the index keeps growing. */
static void write_fresh(struct writer_ctx *w)
{
    char key[48];
    uint64_t seq = atomic_fetch_add(&sh->wseq[w->slot], 1) + 1;
    int klen = sprintf(key, "g%d-%llu", w->slot, (unsigned long long)seq);
    size_t vlen = make_value(w->val, 32 + rnd() % 64, (unsigned)w->slot, seq, key, (size_t)klen);
    int rc = hmm_put(w->m, key, (size_t)klen, w->val, vlen, 0, 0);
    if (rc == 0)
        atomic_fetch_add(&sh->fresh_acked, 1);
    expect_rc(rc, "put of a fresh key");
}

static void write_key(struct writer_ctx *w, uint64_t r)
{
    char key[4096];
    bool owned = w->owns && rnd() % 2 == 0;
    unsigned k = owned ? (unsigned)(rnd() % (OWNED / WRITERS)) * WRITERS + (unsigned)w->slot
                       : OWNED + (unsigned)(rnd() % (KEYS - OWNED));
    size_t klen = key_of(key, k);
    uint64_t seq = atomic_fetch_add(&sh->wseq[w->slot], 1) + 1;
    size_t vlen = make_value(w->val, value_len(), (unsigned)w->slot, seq, key, klen);
    bool deleting = (flags & COMPACTING) && (wall_ms() / 1000) % 3 == 1 ? r < 55 : r < 25;
    int rc;
    if (owned)
        owned_begin(k, seq, deleting);
    if (deleting) {
        rc = hmm_del(w->m, key, klen);
        if (rc == HMM_NOTFOUND)
            rc = 0; /* absent is the state a delete leaves */
    } else if (r < 70) {
        /* TTLs: owned keys' outlive the test, others expire while it runs */
        uint64_t ttl = r % 5 ? 0 : owned ? 600000 : 1 + rnd() % 300;
        rc = hmm_put(w->m, key, klen, w->val, vlen, ttl, 0);
    } else if (r < 80) {
        rc = hmm_put(w->m, key, klen, w->val, vlen, 0, r % 2 ? HMM_NX : HMM_XX);
    } else {
        size_t glen = MAX_VAL;
        uint64_t version = 0;
        int g = hmm_getv(w->m, key, klen, w->got, &glen, &version);
        if (g == 0 && value_problem(w->got, glen, key, klen, NULL))
            violation("writer's getv of key %u: %s", k, value_problem(w->got, glen, key, klen, NULL));
        rc = g == 0 || g == HMM_NOTFOUND ? hmm_cas(w->m, key, klen, w->val, vlen, 0, g == 0 ? version : 0) : g;
    }
    if (owned && rc == 0)
        owned_ack(k, seq, deleting);
    expect_rc(rc, deleting ? "del" : "put or cas");
}

static void writer_loop(struct writer_ctx *w)
{
    while (!atomic_load(&sh->stop)) {
        uint64_t r = rnd() % 100;
        if (r < 10)
            write_counter(w);
        else if (r < 25 && (flags & GROWING))
            write_fresh(w);
        else
            write_key(w, r);
        atomic_fetch_add(&sh->ops, 1);
    }
}

static void *writer_thread(void *p)
{
    struct writer_ctx *w = p;
    rng_seed((uint64_t)w->slot);
    writer_loop(w);
    return NULL;
}

static int writer_main(void *p)
{
    int slot = (int)(intptr_t)p;
    rng_seed((uint64_t)slot);
    /* A random crash point (FORMAT.md §8-§13): the common ones at a random
     * pass, those of growth, compaction, eviction and cold start (rare) at
     * one of their first passes. */
    unsigned cp = (unsigned)(rnd() % HMM_CRASHPOINT_COUNT);
    static const char *const common[] = {"alloc_marked", "alloc", "written", "retired", "published",
                                         "free_linked", "freed", "done", "log_numbered", "log_locked", "log_reserved",
                                         "log_written", "log_committed"};
    bool is_common = false;
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        is_common |= strcmp(common[i], hmm_crashpoint_names[cp]) == 0;
    sh->armed[slot] = (int)cp;
    hmm_crashpoint_arm(hmm_crashpoint_names[cp], 1 + (unsigned)(rnd() % (is_common ? 300 : 3)));
    hmm_t *m = NULL;
    int rc = hmm_open(&m, map_dir, NULL);
    if (rc) {
        violation("writer's open: %s (%s)", hmm_errname(rc), hmm_last_error());
        return 1;
    }
    struct writer_ctx main_ctx = {m, slot, true, malloc(MAX_VAL), malloc(MAX_VAL)};
    struct writer_ctx thread_ctx = {m, WRITERS + slot, false, malloc(MAX_VAL), malloc(MAX_VAL)};
    pthread_t t;
    bool threaded = (flags & THREADS) && pthread_create(&t, NULL, writer_thread, &thread_ctx) == 0;
    writer_loop(&main_ctx);
    if (threaded)
        pthread_join(t, NULL);
    hmm_close(m);
    return 0;
}

/* ---- readers ---- */

struct reader_state {
    uint64_t version[KEYS + COUNTERS];
    uint64_t seq[KEYS][SLOTS];          /* newest write of each writer seen per key */
    int64_t counter[COUNTERS];
};

static void seen_value(struct reader_state *st, unsigned k, const struct value_head *h, uint64_t version,
                       const char *how)
{
    if (version < st->version[k])
        violation("%s: key %u's version went back from %llu to %llu", how, k,
                  (unsigned long long)st->version[k], (unsigned long long)version);
    st->version[k] = version;
    if (h->seq < st->seq[k][h->writer])
        violation("%s: key %u: writer %u's write %llu reappeared after its write %llu", how, k, h->writer,
                  (unsigned long long)h->seq, (unsigned long long)st->seq[k][h->writer]);
    st->seq[k][h->writer] = h->seq;
}

static void read_counter(hmm_t *m, struct reader_state *st)
{
    unsigned c = (unsigned)(rnd() % COUNTERS);
    char key[8], num[32];
    int klen = sprintf(key, "ctr%u", c);
    size_t len = sizeof num - 1;
    uint64_t version;
    int rc = hmm_getv(m, key, (size_t)klen, num, &len, &version);
    bool cache = flags & CACHE; /* an evicted counter starts again at 0 */
    if (rc == HMM_NOTFOUND) {
        if (st->counter[c] && !cache)
            violation("counter %u vanished at %lld", c, (long long)st->counter[c]);
        return;
    }
    if (rc) {
        expect_rc(rc, "getv of a counter");
        return;
    }
    num[len] = '\0';
    char *end;
    long long v = strtoll(num, &end, 10);
    if (len == 0 || *end)
        violation("counter %u holds '%s'", c, num);
    if (v < st->counter[c] && !cache)
        violation("counter %u went back from %lld to %lld", c, (long long)st->counter[c], v);
    if (version < st->version[KEYS + c])
        violation("counter %u's version went back", c);
    st->counter[c] = v;
    st->version[KEYS + c] = version;
}

static void read_key(hmm_t *m, struct reader_state *st, uint8_t *buf)
{
    char key[4096];
    unsigned k = (unsigned)(rnd() % KEYS);
    size_t klen = key_of(key, k);
    size_t len = MAX_VAL;
    uint64_t version;
    int rc = hmm_getv(m, key, klen, buf, &len, &version);
    atomic_fetch_add(&sh->reads, 1);
    if (rc) {
        expect_rc(rc, "getv");
        return;
    }
    struct value_head h;
    const char *why = value_problem(buf, len, key, klen, &h);
    if (why)
        violation("getv of key %u: %s", k, why);
    else
        seen_value(st, k, &h, version, "getv");
}

/* hmm_get_batch: the pipelined read path. */
static void read_batch(hmm_t *m, struct reader_state *st)
{
    enum { N = 24, CAP = 65536 };
    static char keys[N][4096];
    static uint8_t vals[N][CAP];
    const void *kp[N];
    void *vp[N];
    size_t klens[N], vlens[N];
    unsigned ks[N];
    int rcs[N];
    hmm_entry_info infos[N];
    for (int i = 0; i < N; i++) {
        ks[i] = (unsigned)(rnd() % KEYS);
        klens[i] = key_of(keys[i], ks[i]);
        kp[i] = keys[i];
        vp[i] = vals[i];
        vlens[i] = CAP;
    }
    int rc = hmm_get_batch(m, N, kp, klens, vp, vlens, rcs, infos);
    if (rc) {
        violation("hmm_get_batch: %s", hmm_errname(rc));
        return;
    }
    for (int i = 0; i < N; i++) {
        atomic_fetch_add(&sh->reads, 1);
        if (rcs[i] == HMM_TOOSMALL)
            continue;
        if (rcs[i]) {
            expect_rc(rcs[i], "hmm_get_batch's key");
            continue;
        }
        struct value_head h;
        const char *why = value_problem(vals[i], vlens[i], keys[i], klens[i], &h);
        if (why)
            violation("batch read of key %u: %s", ks[i], why);
        else
            seen_value(st, ks[i], &h, infos[i].version, "batch");
    }
}

/* A cursor walk: whole values, no key twice, every counter that was there
 * before the walk (they are never deleted) and at least as many fresh keys
 * as were acknowledged before it. */
static void walk(hmm_t *m, struct reader_state *st)
{
    static uint8_t seen[KEYS];
    bool counter_seen[COUNTERS] = {false};
    memset(seen, 0, sizeof seen);
    uint64_t fresh_before = atomic_load(&sh->fresh_acked), fresh = 0;
    int64_t counters_before[COUNTERS];
    memcpy(counters_before, st->counter, sizeof counters_before);
    hmm_cursor *c;
    int rc = hmm_cursor_open(m, &c);
    if (rc) {
        expect_rc(rc, "cursor_open");
        return;
    }
    const void *key, *val;
    size_t klen, vlen;
    while ((rc = hmm_cursor_next(c, &key, &klen, &val, &vlen)) == 0) {
        int ci = counter_index(key, klen), k = key_index(key, klen);
        if (ci >= 0) {
            if (counter_seen[ci])
                violation("cursor: counter %d twice", ci);
            counter_seen[ci] = true;
            continue;
        }
        if (klen > 1 && *(const char *)key == 'g')
            fresh++;
        else if (k < 0)
            violation("cursor: a key no writer writes (%zu bytes)", klen);
        else if (seen[k]++)
            violation("cursor: key %d twice", k);
        const char *why = value_problem(val, vlen, key, klen, NULL);
        if (why)
            violation("cursor: key %d: %s", k, why);
    }
    hmm_cursor_close(c);
    if (rc != HMM_NOTFOUND) {
        expect_rc(rc, "cursor_next");
        return;
    }
    atomic_fetch_add(&sh->walks, 1);
    if (flags & CACHE)
        return;
    for (int i = 0; i < COUNTERS; i++)
        if (counters_before[i] && !counter_seen[i])
            violation("cursor: counter %d, present throughout, not returned", i);
    if (fresh < fresh_before)
        violation("cursor: %llu fresh keys returned, %llu were acknowledged before the walk",
                  (unsigned long long)fresh, (unsigned long long)fresh_before);
}

static int reader_main(void *p)
{
    int id = (int)(intptr_t)p;
    rng_seed(100 + (uint64_t)id);
    hmm_t *m = NULL;
    hmm_config cfg = {.flags = id == 1 ? HMM_RDONLY : 0};
    int rc = hmm_open(&m, map_dir, &cfg);
    if (rc) {
        violation("reader's open: %s (%s)", hmm_errname(rc), hmm_last_error());
        return 1;
    }
    struct reader_state *st = calloc(1, sizeof *st);
    uint8_t *buf = malloc(MAX_VAL);
    for (uint64_t n = 1; !atomic_load(&sh->stop); n++) {
        uint64_t r = rnd() % 16;
        if (n % 5000 == 0)
            walk(m, st);
        else if (r < 2)
            read_counter(m, st);
        else if (r < 6)
            read_batch(m, st);
        else
            read_key(m, st, buf);
    }
    hmm_close(m);
    return 0;
}

/* ---- openers: open, read, maybe check, close; killed now and then ---- */

static int opener_main(void *p)
{
    rng_seed(200 + (uint64_t)(intptr_t)p);
    uint8_t *buf = malloc(MAX_VAL);
    char key[4096];
    while (!atomic_load(&sh->stop)) {
        hmm_config cfg = {.flags = rnd() % 3 == 0 ? HMM_RDONLY : 0};
        hmm_t *m = NULL;
        int rc = hmm_open(&m, map_dir, &cfg);
        if (rc) {
            violation("opener's open%s: %s (%s)", cfg.flags ? " (read-only)" : "", hmm_errname(rc),
                      hmm_last_error());
            continue;
        }
        atomic_fetch_add(&sh->opens, 1);
        if ((flags & CHECKS) && rnd() % 4 == 0) {
            /* Writable: exact (writers held off); read-only: may be busy. */
            unsigned how = !cfg.flags && rnd() % 3 == 0 ? HMM_CHECK_REPAIR : 0;
            hmm_check_result res;
            rc = hmm_check(m, how, &res);
            atomic_fetch_add(&sh->checks, 1);
            /* HMM_BUSY: writes moved under each read-only walk, so its counts say nothing */
            if ((rc && rc != HMM_BUSY) || (rc == 0 && (res.repaired || res.bad_entries || res.bad_slots || res.unreachable)))
                violation("hmm_check%s%s under load: %s, %llu bad entries, %llu bad slots, %llu unreachable, "
                          "%llu repaired", cfg.flags ? " (read-only)" : "", how ? " with repair" : "",
                          hmm_errname(rc), (unsigned long long)res.bad_entries, (unsigned long long)res.bad_slots,
                          (unsigned long long)res.unreachable, (unsigned long long)res.repaired);
        }
        for (int i = 0; i < 20; i++) {
            unsigned k = (unsigned)(rnd() % KEYS);
            size_t klen = key_of(key, k), len = MAX_VAL;
            rc = hmm_get(m, key, klen, buf, &len);
            if (rc == 0 && value_problem(buf, len, key, klen, NULL))
                violation("opener's get of key %u: %s", k, value_problem(buf, len, key, klen, NULL));
            else if (rc)
                expect_rc(rc, "opener's get");
        }
        hmm_close(m);
    }
    return 0;
}

/* ---- the follower: a replica in a process ---- */

/* Apply the log to an anonymous mirror as it is written; once the test
 * says so (stop 2, every writer gone) drain it and compare both ways.  A
 * follower lapped by the ring (HMM_MISMATCH) cannot compare. */
static void compare_mirror(hmm_t *m, hmm_t *mirror)
{
    uint8_t *buf = malloc(MAX_VAL);
    uint64_t now = wall_ms();
    for (int pass = 0; pass < 2; pass++) {
        hmm_t *from = pass ? m : mirror, *to = pass ? mirror : m;
        hmm_cursor *c;
        if (hmm_cursor_open(from, &c) != 0) {
            violation("follower: cursor_open");
            break;
        }
        const void *key, *val;
        size_t klen, vlen;
        while (hmm_cursor_next(c, &key, &klen, &val, &vlen) == 0) {
            hmm_entry_info info;
            hmm_cursor_info(c, &info);
            size_t len = MAX_VAL;
            int rc = hmm_get(to, key, klen, buf, &len);
            if (rc == HMM_NOTFOUND && info.expire_ms && info.expire_ms <= now + 100)
                continue; /* expired on one side while compared */
            if (rc || len != vlen || memcmp(buf, val, vlen) != 0)
                violation("replica: '%.*s' is in the %s, %s in the %s", (int)(klen < 24 ? klen : 24),
                          (const char *)key, pass ? "map" : "mirror", rc ? hmm_errname(rc) : "different",
                          pass ? "mirror" : "map");
            sh->follower_compared++;
        }
        hmm_cursor_close(c);
    }
    free(buf);
}

static int follower_main(void *p)
{
    (void)p;
    hmm_t *m = NULL, *mirror = NULL;
    /* Read-only, as a replication daemon's reader could be, and so that
     * killing every writable process leaves nobody holding the map for
     * writing: the next writer then cold-starts. */
    hmm_config cfg = {.flags = HMM_RDONLY}, mc = {.size = 256 << 20, .flags = HMM_NOREPLOG};
    if (hmm_open(&m, map_dir, &cfg) != 0 || hmm_open_anon(&mirror, &mc) != 0) {
        violation("follower's open: %s", hmm_last_error());
        return 1;
    }
    hmm_replog_reader *r = NULL;
    uint64_t next = 1;
    bool stuck = false;
    for (;;) {
        if (!r) {
            int rc = hmm_replog_open(m, next, &r);
            if (rc == HMM_MISMATCH) { /* the ring dropped records we did not apply */
                sh->follower_lapped = 1;
                struct hmm_replog_info info;
                TU_OK(hmm_replog_info(m, &info));
                next = info.first_seq;
                continue;
            }
            if (rc) {
                violation("follower: replog_open: %s (%s)", hmm_errname(rc), hmm_last_error());
                return 1;
            }
        }
        hmm_replog_record rec;
        int rc = hmm_replog_next(r, &rec);
        if (rc == 0) {
            if (rec.seq < next)
                violation("follower: seq %llu after %llu", (unsigned long long)rec.seq,
                          (unsigned long long)next);
            next = rec.seq + 1;
            if (rec.op == HMM_REC_PUT && counter_index(rec.key, rec.klen) < 0 &&
                value_problem(rec.val, rec.vlen, rec.key, rec.klen, NULL))
                violation("follower: record %llu: %s", (unsigned long long)rec.seq,
                          value_problem(rec.val, rec.vlen, rec.key, rec.klen, NULL));
            if ((rc = hmm_apply(mirror, &rec)) != 0)
                violation("follower: hmm_apply: %s", hmm_errname(rc));
            sh->follower_applied++;
        } else if (rc == HMM_MISMATCH) {
            sh->follower_lapped = 1;
            hmm_replog_close(r);
            r = NULL;
        } else if (rc != HMM_NOTFOUND) {
            violation("follower: replog_next: %s (%s)", hmm_errname(rc), hmm_last_error());
            return 1;
        } else if (atomic_load(&sh->stop) == 2) {
            /* Drained: a record no reader can pass (left RESERVED by a
             * dead writer) would leave the mirror behind, unexplained. */
            stuck = next <= sh->log_last_committed;
            if (stuck)
                violation("follower: stopped at record %llu; the log's last committed record is %llu (its mirror "
                          "is not compared)", (unsigned long long)next, (unsigned long long)sh->log_last_committed);
            break;
        } else {
            usleep(500);
        }
    }
    hmm_replog_close(r);
    if (!sh->follower_lapped && !stuck && !(flags & CACHE)) /* a cache evicts without logging */
        compare_mirror(m, mirror);
    hmm_close(mirror);
    hmm_close(m);
    return 0;
}

/* ---- after the run ---- */

static void check_owned_and_counters(hmm_t *m)
{
    uint8_t *buf = malloc(MAX_VAL);
    char key[4096];
    for (unsigned k = 0; k < OWNED && !(flags & CACHE); k++) {
        struct owned_key *o = &sh->own[k];
        size_t klen = key_of(key, k), len = MAX_VAL;
        int rc = hmm_get(m, key, klen, buf, &len);
        struct value_head h = {0};
        if (rc == 0 && value_problem(buf, len, key, klen, &h)) {
            violation("key %u: %s", k, value_problem(buf, len, key, klen, NULL));
            continue;
        }
        if ((rc && rc != HMM_NOTFOUND) || o->overflow)
            continue;
        bool present = rc == 0;
        bool ok = present ? o->acked == h.seq && !o->acked_del : o->acked == 0 || o->acked_del;
        for (int i = 0; i < o->npend && !ok; i++)
            ok = present ? o->pend[i] == h.seq && !o->pend_del[i] : o->pend_del[i];
        if (!ok)
            violation("owned key %u %s (seq %llu); acknowledged: seq %llu%s, %d in flight", k,
                      present ? "present" : "absent", (unsigned long long)h.seq, (unsigned long long)o->acked,
                      o->acked_del ? " (a delete)" : "", o->npend);
    }
    for (unsigned c = 0; c < COUNTERS && !(flags & CACHE); c++) {
        char num[32];
        int klen = sprintf(key, "ctr%u", c);
        size_t len = sizeof num - 1;
        int rc = hmm_get(m, key, (size_t)klen, num, &len);
        num[rc == 0 ? len : 0] = '\0';
        uint64_t v = rc == 0 ? strtoull(num, NULL, 10) : 0;
        uint64_t acked = atomic_load(&sh->ctr_acked[c]), tried = atomic_load(&sh->ctr_tried[c]);
        if (v < acked || v > tried)
            violation("counter %u is %llu: %llu increments acknowledged, %llu tried", c, (unsigned long long)v,
                      (unsigned long long)acked, (unsigned long long)tried);
    }
    free(buf);
}

/* The last record of every key in the log's window against the map. */
static void check_log_against_map(hmm_t *m)
{
    struct hmm_replog_info info;
    TU_OK(hmm_replog_info(m, &info));
    hmm_replog_reader *r;
    TU_OK(hmm_replog_open(m, info.first_seq, &r));
    static int last_op[KEYS + COUNTERS];
    static uint64_t last_sum[KEYS + COUNTERS], last_expire[KEYS + COUNTERS];
    memset(last_op, 0, sizeof last_op);
    uint8_t *buf = malloc(MAX_VAL);
    hmm_replog_record rec;
    uint64_t prev = 0;
    int rc;
    while ((rc = hmm_replog_next(r, &rec)) == 0) {
        if (rec.seq <= prev)
            violation("log: seq %llu after %llu", (unsigned long long)rec.seq, (unsigned long long)prev);
        prev = rec.seq;
        int ci = counter_index(rec.key, rec.klen), k = key_index(rec.key, rec.klen);
        if (ci < 0 && rec.op == HMM_REC_PUT && value_problem(rec.val, rec.vlen, rec.key, rec.klen, NULL))
            violation("log: record %llu: %s", (unsigned long long)rec.seq,
                      value_problem(rec.val, rec.vlen, rec.key, rec.klen, NULL));
        if (ci < 0 && k < 0) { /* a fresh key: put once, never deleted */
            size_t len = MAX_VAL;
            int g = hmm_get(m, rec.key, rec.klen, buf, &len);
            if (rec.op != HMM_REC_PUT || (!(flags & CACHE) && (g || len != rec.vlen || memcmp(buf, rec.val, len))))
                violation("log: fresh key's record %llu disagrees with the map (%s)", (unsigned long long)rec.seq,
                          hmm_errname(g));
            continue;
        }
        int i = ci >= 0 ? KEYS + ci : k;
        last_op[i] = (int)rec.op;
        last_expire[i] = rec.expire_ms;
        last_sum[i] = rec.op == HMM_REC_PUT ? fnv(rec.val, rec.vlen, 1) : 0;
    }
    if (rc != HMM_NOTFOUND)
        violation("log: replog_next: %s (%s)", hmm_errname(rc), hmm_last_error());
    hmm_replog_close(r);
    char key[4096];
    for (int i = 0; i < KEYS + COUNTERS && !(flags & CACHE); i++) {
        if (!last_op[i])
            continue;
        size_t klen = i < KEYS ? key_of(key, (unsigned)i) : (size_t)sprintf(key, "ctr%d", i - KEYS);
        size_t len = MAX_VAL;
        int g = hmm_get(m, key, klen, buf, &len);
        /* The clock after the get: a put whose TTL ran out between an
         * earlier reading and the get is absent, legally. */
        bool expired = last_expire[i] && last_expire[i] <= wall_ms();
        if (last_op[i] == HMM_REC_DEL ? g != HMM_NOTFOUND
                                      : g == 0 ? fnv(buf, len, 1) != last_sum[i] : !expired)
            violation("log: the last record of key %d (%s) disagrees with the map (%s)", i,
                      last_op[i] == HMM_REC_DEL ? "a delete" : "a put", hmm_errname(g));
    }
    free(buf);
}

static void check_map(const char *dir)
{
    /* `hashmmap check` opens read-only: it finds the map sound once a
     * writable open has repaired what the dead left. */
    hmm_t *m = tu_open(dir, 0, 0, 0);
    hmm_t *ro = NULL;
    hmm_config cfg = {.flags = HMM_RDONLY};
    TU_OK(hmm_open(&ro, dir, &cfg));
    hmm_check_result res;
    int rc = hmm_check(ro, 0, &res);
    if (rc)
        violation("read-only hmm_check: %s (%s)", hmm_errname(rc), hmm_last_error());
    hmm_close(ro);
    rc = hmm_check(m, 0, &res);
    if (rc || res.bad_entries || res.bad_slots || res.unreachable)
        violation("hmm_check: %s, %llu bad entries, %llu bad slots, %llu unreachable", hmm_errname(rc),
                  (unsigned long long)res.bad_entries, (unsigned long long)res.bad_slots,
                  (unsigned long long)res.unreachable);
    check_owned_and_counters(m);
    check_log_against_map(m);
    hmm_stats st;
    TU_OK(hmm_stat(m, &st));
    printf("# %llu entries, file %llu KiB, %llu growth steps, %llu pages handed back, %llu entries moved, "
           "%llu evictions, %llu recoveries\n",
           (unsigned long long)st.items, (unsigned long long)(st.file_size >> 10),
           (unsigned long long)st.counters[HMM_C_GROWTH_STEPS],
           (unsigned long long)st.counters[HMM_C_PAGES_RETURNED],
           (unsigned long long)st.counters[HMM_C_ENTRIES_MOVED], (unsigned long long)st.counters[HMM_C_EVICTIONS],
           (unsigned long long)st.recoveries);
    hmm_close(m);
}

/* ---- the run ---- */

struct crew {
    pid_t writers[WRITERS], readers[READERS], openers[OPENERS], follower;
    int stopped;            /* reader stopped, -1 none */
    uint64_t resume_ms;
    unsigned long kills, crash_deaths, opener_kills, stops, massacres;
};

static void reap_crash_deaths(struct crew *c)
{
    for (int i = 0; i < WRITERS; i++) {
        int status;
        if (waitpid(c->writers[i], &status, WNOHANG) != c->writers[i])
            continue;
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
            violation("writer %d ended by itself with status 0x%x", i, status);
        c->crash_deaths++;
        c->writers[i] = tu_fork(writer_main, (void *)(intptr_t)i);
    }
    for (int i = 0; i < OPENERS; i++) {
        int status;
        if (waitpid(c->openers[i], &status, WNOHANG) == c->openers[i]) {
            violation("opener %d ended by itself with status 0x%x", i, status);
            c->openers[i] = tu_fork(opener_main, (void *)(intptr_t)i);
        }
    }
}

static void kill_and_wait(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Every writable process at once: the next writer to open cold-starts. */
static void massacre(struct crew *c)
{
    if (c->stopped == 0) {
        kill(c->readers[0], SIGCONT);
        c->stopped = -1;
    }
    kill(c->readers[0], SIGKILL); /* the one writable reader; reader 1 stays (read-only) */
    for (int i = 0; i < WRITERS; i++)
        kill(c->writers[i], SIGKILL);
    for (int i = 0; i < OPENERS; i++)
        kill(c->openers[i], SIGKILL);
    for (int i = 0; i < WRITERS; i++)
        waitpid(c->writers[i], NULL, 0);
    for (int i = 0; i < OPENERS; i++)
        waitpid(c->openers[i], NULL, 0);
    waitpid(c->readers[0], NULL, 0);
    /* Writers first: one of them cold-starts (and may have armed cold_rebuilt). */
    for (int i = 0; i < WRITERS; i++)
        c->writers[i] = tu_fork(writer_main, (void *)(intptr_t)i);
    for (int i = 0; i < OPENERS; i++)
        c->openers[i] = tu_fork(opener_main, (void *)(intptr_t)i);
    c->readers[0] = tu_fork(reader_main, (void *)(intptr_t)0);
    c->massacres++;
}

static void one_step(struct crew *c)
{
    struct timespec pause = {0, (long)(rnd() % 12000000)};
    nanosleep(&pause, NULL);
    reap_crash_deaths(c);
    if (c->stopped >= 0 && tu_now_ms() >= c->resume_ms) {
        kill(c->readers[c->stopped], SIGCONT);
        c->stopped = -1;
    }
    uint64_t a = rnd() % 100;
    if (a < 85) {
        int i = (int)(rnd() % WRITERS);
        kill_and_wait(c->writers[i]);
        c->writers[i] = tu_fork(writer_main, (void *)(intptr_t)i);
        c->kills++;
    } else if (a < 93) {
        int i = (int)(rnd() % OPENERS);
        kill_and_wait(c->openers[i]);
        c->openers[i] = tu_fork(opener_main, (void *)(intptr_t)i);
        c->opener_kills++;
    } else if (a < 95 && (flags & MASSACRE)) {
        massacre(c);
    } else if (a >= 97 && c->stopped < 0) {
        c->stopped = (int)(rnd() % READERS);
        kill(c->readers[c->stopped], SIGSTOP);
        c->resume_ms = tu_now_ms() + 300 + rnd() % 1200;
        c->stops++;
    }
}

static void finish(struct crew *c)
{
    if (c->stopped >= 0)
        kill(c->readers[c->stopped], SIGCONT);
    for (int i = 0; i < WRITERS; i++)
        kill_and_wait(c->writers[i]); /* the last kills land mid-write too */
    for (int i = 0; i < OPENERS; i++)
        kill_and_wait(c->openers[i]);
    atomic_store(&sh->stop, 1);
    for (int i = 0; i < READERS; i++) {
        int status = tu_wait_traced(c->readers[i], 30000, "a reader told to stop");
        if (tu_exit_code(status) != 0)
            violation("reader %d ended with status 0x%x", i, status);
    }
    /* A read-only follower waits for a writable handle to settle the
     * records the killed writers left reserved: an open does.  Where the
     * follower must get to: the last committed record (the last decided
     * ones may be void, which a reader passes without a word). */
    hmm_t *m = tu_open(map_dir, 0, 0, 0);
    hmm_replog_reader *r = NULL;
    hmm_replog_record rec;
    struct hmm_replog_info info;
    TU_OK(hmm_replog_info(m, &info));
    TU_OK(hmm_replog_open(m, info.first_seq, &r));
    while (hmm_replog_next(r, &rec) == 0)
        sh->log_last_committed = rec.seq;
    hmm_replog_close(r);
    hmm_close(m);
    atomic_store(&sh->stop, 2);
    int status = tu_wait_traced(c->follower, 60000, "the follower told to stop");
    if (tu_exit_code(status) != 0)
        violation("the follower ended with status 0x%x", status);
}

/* The map of a failed run outlives the test's cleanup, for `hashmmap
 * check` and a debugger. */
static void keep_for_inspection(const char *dir)
{
    char kept[256], cmd[1024];
    snprintf(kept, sizeof kept, "%s/hmm-torture-failed.%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", dir, kept);
    if (system(cmd) == 0)
        printf("# the map is kept in %s\n", kept);
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static void run_scenario(unsigned scenario_flags)
{
    flags = scenario_flags;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    rng_seed(scenario_flags);
    map_dir = tu_tmpdir();
    hmm_config cfg = {.flags = HMM_CREATE | (flags & CACHE ? HMM_CACHE : 0)};
    if (flags & GROWING) {
        cfg.size = 256 << 10;
        cfg.max_size = 512 << 20;
        cfg.replog_size = 1; /* the minimum: the ring wraps, the follower is lapped */
    } else {
        cfg.size = 1 << 20; /* full soon: pages move between classes, a cache evicts */
        cfg.max_size = cfg.size;
        cfg.replog_size = 256 << 20; /* the follower keeps up, its mirror is compared */
    }
    hmm_t *m = NULL;
    TU_OK(hmm_open(&m, map_dir, &cfg));
    hmm_close(m);

    struct crew c = {.stopped = -1};
    for (int i = 0; i < WRITERS; i++)
        c.writers[i] = tu_fork(writer_main, (void *)(intptr_t)i);
    for (int i = 0; i < READERS; i++)
        c.readers[i] = tu_fork(reader_main, (void *)(intptr_t)i);
    for (int i = 0; i < OPENERS; i++)
        c.openers[i] = tu_fork(opener_main, (void *)(intptr_t)i);
    c.follower = tu_fork(follower_main, NULL);
    uint64_t deadline = tu_now_ms() + 1000 * (uint64_t)env_long("HMM_TORTURE_SECONDS", 5);
    while (tu_now_ms() < deadline)
        one_step(&c);
    finish(&c);
    check_map(map_dir);
    printf("# %lu kills, %lu crash-point deaths, %lu openers killed, %lu massacres, %lu readers stopped; "
           "%llu writes, %llu reads, %llu walks, %llu opens, %llu checks; follower applied %llu, %s\n",
           c.kills, c.crash_deaths, c.opener_kills, c.massacres, c.stops, (unsigned long long)sh->ops,
           (unsigned long long)sh->reads, (unsigned long long)sh->walks, (unsigned long long)sh->opens,
           (unsigned long long)sh->checks, (unsigned long long)sh->follower_applied,
           sh->follower_lapped ? "lapped by the ring" : flags & CACHE ? "not compared (a cache evicts unlogged)"
                                                                       : "compared its mirror");
    int n = atomic_load(&sh->nviolations);
    for (int i = 0; i < n && i < MSGS; i++)
        printf("# violation: %s\n", sh->msg[i]);
    if (n)
        keep_for_inspection(map_dir);
    if (n)
        fail_msg("%d violations (the first ones above)", n);
    if (!(flags & GROWING) && !(flags & CACHE) && !sh->follower_lapped && sh->follower_compared == 0)
        fail_msg("the follower compared nothing");
    munmap(sh, sizeof *sh);
}

static void test_killed_writers_of_a_growing_map_keep_every_invariant(void **state)
{
    (void)state;
    run_scenario(GROWING | CHECKS | MASSACRE);
}

static void test_killed_writers_of_a_compacting_map_keep_every_invariant(void **state)
{
    (void)state;
    run_scenario(COMPACTING | THREADS | CHECKS);
}

static void test_killed_writers_of_a_cache_keep_every_invariant(void **state)
{
    (void)state;
    run_scenario(CACHE | THREADS | MASSACRE);
}

int main(void)
{
    tu_watchdog((unsigned)env_long("HMM_TORTURE_SECONDS", 5) * 3 + 120);
    /* HMM_TORTURE_ONLY=*cache*: one scenario, to chase a finding. */
    if (getenv("HMM_TORTURE_ONLY"))
        cmocka_set_test_filter(getenv("HMM_TORTURE_ONLY"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_writers_of_a_growing_map_keep_every_invariant),
        cmocka_unit_test(test_killed_writers_of_a_compacting_map_keep_every_invariant),
        cmocka_unit_test(test_killed_writers_of_a_cache_keep_every_invariant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
