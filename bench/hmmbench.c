/*
 * hmmbench - hashmmap against a process-local hash table (the reference for
 * "memory speed") and LMDB, on identical workloads, in one run; plus the
 * costs the issues ask about: metrics on/off, growth, cache mode.
 *
 *   make bench                  # builds and runs it
 *   HMMBENCH_QUICK=1 bench/hmmbench   # a short run (10k keys only)
 *   bench/hmmbench --callgrind get|put   # a fixed loop for instruction counts
 *
 * Figures are ns per operation and operations per second; every figure is
 * also given as a ratio to the local table measured in the same run, which
 * is what to compare on a shared, noisy machine.  Results go to stdout and,
 * as CSV, to bench/results.csv.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <hashmmap.h>
#ifdef HAVE_LMDB
#include <lmdb.h>
#endif

#define KEY_LEN 16

static FILE *csv;
static char tmpdir[] = "/tmp/hmmbench.XXXXXX";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_key(char *k, uint64_t i)
{
    snprintf(k, KEY_LEN + 1, "key%013llu", (unsigned long long)i);
}

static uint64_t rng_state = 88172645463325252ULL;
static inline uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- stores behind one small interface ---- */

struct store {
    const char *name;
    void *h;
    int (*get)(void *h, const char *k, void *v, size_t *vlen);
    int (*put)(void *h, const char *k, const void *v, size_t vlen);
    int (*incr)(void *h, const char *k);
    void (*close)(void *h);
};

static int hmm_get_op(void *h, const char *k, void *v, size_t *vlen)
{
    return hmm_get(h, k, KEY_LEN, v, vlen);
}
static int hmm_put_op(void *h, const char *k, const void *v, size_t vlen)
{
    return hmm_put(h, k, KEY_LEN, v, vlen, 0, 0);
}
static int hmm_incr_op(void *h, const char *k)
{
    return hmm_incr(h, k, KEY_LEN, 1, NULL);
}
static void hmm_close_op(void *h)
{
    hmm_close(h);
}

static bool open_hmm(struct store *s, const char *name, const char *sub, uint64_t size, uint64_t max,
                     uint32_t flags, bool anon)
{
    hmm_config cfg = {.size = size, .max_size = max, .flags = HMM_CREATE | flags};
    char dir[256];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, sub);
    hmm_t *m;
    int rc = anon ? hmm_open_anon(&m, &cfg) : hmm_open(&m, dir, &cfg);
    if (rc) {
        fprintf(stderr, "hmmbench: %s: %s (%s)\n", name, hmm_strerror(rc), hmm_last_error());
        return false;
    }
    *s = (struct store){name, m, hmm_get_op, hmm_put_op, hmm_incr_op, hmm_close_op};
    return true;
}

/* A plain open-addressing table with keys and values inline: what an
 * in-process hash map costs, the reference for "memory speed". */
struct local_slot {
    uint64_t hash;
    char key[KEY_LEN];
    uint64_t len;
    char val[256];
};
struct local_table {
    struct local_slot *slots;
    uint64_t mask;
};

static struct local_slot *local_find(struct local_table *t, const char *k, bool insert)
{
    uint64_t h = XXH3_64bits(k, KEY_LEN) | 1;
    for (uint64_t i = h & t->mask;; i = (i + 1) & t->mask) {
        struct local_slot *s = &t->slots[i];
        if (s->hash == h && memcmp(s->key, k, KEY_LEN) == 0)
            return s;
        if (s->hash == 0) {
            if (!insert)
                return NULL;
            s->hash = h;
            memcpy(s->key, k, KEY_LEN);
            return s;
        }
    }
}
static int local_get(void *h, const char *k, void *v, size_t *vlen)
{
    struct local_slot *s = local_find(h, k, false);
    if (!s)
        return -1;
    memcpy(v, s->val, s->len);
    *vlen = s->len;
    return 0;
}
static int local_put(void *h, const char *k, const void *v, size_t vlen)
{
    struct local_slot *s = local_find(h, k, true);
    memcpy(s->val, v, vlen);
    s->len = vlen;
    return 0;
}
static int local_incr(void *h, const char *k)
{
    struct local_slot *s = local_find(h, k, true);
    uint64_t n;
    memcpy(&n, s->val, 8);
    n++;
    memcpy(s->val, &n, 8);
    s->len = 8;
    return 0;
}
static void local_close(void *h)
{
    struct local_table *t = h;
    free(t->slots);
    free(t);
}
static bool open_local(struct store *s, uint64_t keys)
{
    struct local_table *t = calloc(1, sizeof *t);
    uint64_t cap = 1;
    while (cap < keys * 2)
        cap <<= 1;
    t->slots = calloc(cap, sizeof *t->slots);
    t->mask = cap - 1;
    *s = (struct store){"local table", t, local_get, local_put, local_incr, local_close};
    return t->slots != NULL;
}

#ifdef HAVE_LMDB
struct lmdb {
    MDB_env *env;
    MDB_dbi dbi;
};
static int lmdb_get(void *h, const char *k, void *v, size_t *vlen)
{
    struct lmdb *l = h;
    MDB_txn *txn;
    mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    MDB_val key = {KEY_LEN, (void *)k}, val;
    int rc = mdb_get(txn, l->dbi, &key, &val);
    if (rc == 0) {
        memcpy(v, val.mv_data, val.mv_size);
        *vlen = val.mv_size;
    }
    mdb_txn_abort(txn);
    return rc;
}
static int lmdb_put(void *h, const char *k, const void *v, size_t vlen)
{
    struct lmdb *l = h;
    MDB_txn *txn;
    mdb_txn_begin(l->env, NULL, 0, &txn);
    MDB_val key = {KEY_LEN, (void *)k}, val = {vlen, (void *)v};
    int rc = mdb_put(txn, l->dbi, &key, &val, 0);
    return rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
}
static int lmdb_incr(void *h, const char *k)
{
    struct lmdb *l = h;
    MDB_txn *txn;
    mdb_txn_begin(l->env, NULL, 0, &txn);
    MDB_val key = {KEY_LEN, (void *)k}, val;
    uint64_t n = 0;
    if (mdb_get(txn, l->dbi, &key, &val) == 0 && val.mv_size == 8)
        memcpy(&n, val.mv_data, 8);
    n++;
    val = (MDB_val){8, &n};
    mdb_put(txn, l->dbi, &key, &val, 0);
    return mdb_txn_commit(txn);
}
static void lmdb_close(void *h)
{
    struct lmdb *l = h;
    mdb_env_close(l->env);
    free(l);
}
static bool open_lmdb(struct store *s)
{
    static int opened;
    struct lmdb *l = calloc(1, sizeof *l);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/lmdb%d", tmpdir, opened++);
    if (mkdir(dir, 0700) != 0 || mdb_env_create(&l->env) != 0 || mdb_env_set_mapsize(l->env, 1ULL << 31) != 0 ||
        mdb_env_open(l->env, dir, MDB_NOSYNC | MDB_NOMETASYNC, 0600) != 0) {
        fprintf(stderr, "hmmbench: LMDB cannot be opened; skipped\n");
        return false;
    }
    MDB_txn *txn;
    mdb_txn_begin(l->env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &l->dbi);
    mdb_txn_commit(txn);
    *s = (struct store){"LMDB", l, lmdb_get, lmdb_put, lmdb_incr, lmdb_close};
    return true;
}
#endif

/* ---- workloads ---- */

struct result {
    double ns;
};

static void report(const char *workload, uint64_t keys, size_t vlen, const char *store, double ns, double local_ns)
{
    double ratio = local_ns > 0 ? ns / local_ns : 0;
    printf("  %-22s %-26s %9.1f ns %12.0f ops/s   %6.2fx local\n", workload, store, ns, 1e9 / ns, ratio);
    fprintf(csv, "%s,%llu,%zu,%s,%.1f,%.0f,%.3f\n", workload, (unsigned long long)keys, vlen, store, ns, 1e9 / ns,
            ratio);
}

enum workload { W_GET, W_PUT_OVERWRITE, W_PUT_INSERT, W_INCR, W_MIXED, W_COUNT };
static const char *const workload_names[W_COUNT] = {"get", "put (overwrite)", "put (insert)", "incr", "mixed 90/10"};

static void fill(struct store *s, uint64_t keys, size_t vlen)
{
    char k[KEY_LEN + 1], v[256];
    memset(v, 'v', sizeof v);
    for (uint64_t i = 0; i < keys; i++) {
        make_key(k, i);
        if (s->put(s->h, k, v, vlen) != 0) {
            fprintf(stderr, "hmmbench: %s: fill failed at %llu\n", s->name, (unsigned long long)i);
            exit(1);
        }
    }
}

static double run(struct store *s, enum workload w, uint64_t keys, size_t vlen, uint64_t ops)
{
    char k[KEY_LEN + 1], v[256], out[256];
    memset(v, 'w', sizeof v);
    rng_state = 88172645463325252ULL;
    double t0 = now_s();
    for (uint64_t n = 0; n < ops; n++) {
        uint64_t i = w == W_PUT_INSERT ? keys + n : rng() % keys;
        make_key(k, i);
        size_t len = sizeof out;
        switch (w) {
        case W_GET:
            s->get(s->h, k, out, &len);
            break;
        case W_MIXED:
            if (rng() % 10)
                s->get(s->h, k, out, &len);
            else
                s->put(s->h, k, v, vlen);
            break;
        case W_INCR:
            s->incr(s->h, k);
            break;
        default:
            s->put(s->h, k, v, vlen);
            break;
        }
    }
    return (now_s() - t0) * 1e9 / (double)ops;
}

static void compare_stores(uint64_t keys, size_t vlen, uint64_t ops)
{
    printf("\n%llu keys of %d bytes, %zu-byte values, uniform keys, %llu ops each\n", (unsigned long long)keys,
           KEY_LEN, vlen, (unsigned long long)ops);
    uint64_t size = (keys + ops) * (vlen + 64) * 2;
    if (size < (8u << 20))
        size = 8u << 20;
    struct store stores[6];
    int n = 0;
    if (open_local(&stores[n], keys + ops))
        n++;
    char sub[64];
    snprintf(sub, sizeof sub, "file-%llu-%zu", (unsigned long long)keys, vlen);
    if (open_hmm(&stores[n], "hashmmap file map", sub, size, 0, 0, false))
        n++;
    if (open_hmm(&stores[n], "hashmmap anonymous map", NULL, size, 0, 0, true))
        n++;
    snprintf(sub, sizeof sub, "nometrics-%llu-%zu", (unsigned long long)keys, vlen);
    if (open_hmm(&stores[n], "hashmmap, metrics off", sub, size, 0, HMM_NOMETRICS, false))
        n++;
    snprintf(sub, sizeof sub, "cache-%llu-%zu", (unsigned long long)keys, vlen);
    if (open_hmm(&stores[n], "hashmmap cache map", sub, size, 0, HMM_CACHE, false))
        n++;
#ifdef HAVE_LMDB
    if (keys <= 1000000 && open_lmdb(&stores[n]))
        n++;
#else
    printf("  (LMDB not found at configure time: install liblmdb-dev to compare)\n");
#endif
    for (int i = 0; i < n; i++)
        fill(&stores[i], keys, vlen);
    for (int w = 0; w < W_COUNT; w++) {
        double local_ns = 0;
        for (int i = 0; i < n; i++) {
            double ns = run(&stores[i], (enum workload)w, keys, vlen, ops);
            if (i == 0)
                local_ns = ns;
            report(workload_names[w], keys, vlen, stores[i].name, ns, local_ns);
        }
    }
    for (int i = 0; i < n; i++)
        stores[i].close(stores[i].h);
}

/* Two processes reading (or writing) one map at once, against one. */
static void scaling(uint64_t keys, uint64_t ops)
{
    struct store s;
    if (!open_hmm(&s, "hashmmap file map", "scaling", keys * 200, 0, 0, false))
        return;
    fill(&s, keys, 8);
    printf("\nprocesses sharing one map (%llu keys, %llu ops per process)\n", (unsigned long long)keys,
           (unsigned long long)ops);
    for (int w = 0; w < 2; w++) {
        double single = 0;
        for (int procs = 1; procs <= 2; procs++) {
            int fds[2];
            if (pipe(fds) != 0)
                return;
            double t0 = now_s();
            for (int p = 0; p < procs; p++)
                if (fork() == 0) {
                    rng_state += (uint64_t)p * 7919;
                    run(&s, w ? W_PUT_OVERWRITE : W_GET, keys, 8, ops);
                    _exit(0);
                }
            while (wait(NULL) > 0)
                ;
            double rate = (double)procs * (double)ops / (now_s() - t0);
            close(fds[0]);
            close(fds[1]);
            if (procs == 1)
                single = rate;
            printf("  %-22s %d process%s %14.0f ops/s   %5.2fx one process\n", w ? "put (overwrite)" : "get", procs,
                   procs > 1 ? "es" : "  ", rate, rate / single);
            fprintf(csv, "%s x%d,%llu,8,hashmmap file map,%.1f,%.0f,%.3f\n", w ? "put" : "get", procs,
                    (unsigned long long)keys, 1e9 / rate, rate, rate / single);
        }
    }
    s.close(s.h);
}

/* Inserting into a map that grows from 1 MiB, against one made big enough. */
static void growth_cost(uint64_t keys)
{
    struct store grow, sized;
    if (!open_hmm(&grow, "growing from 1 MiB", "grow", 1 << 20, 4ULL << 30, 0, false) ||
        !open_hmm(&sized, "pre-sized", "sized", keys * 160, 0, 0, false))
        return;
    printf("\ngrowth: %llu inserts of 8-byte values\n", (unsigned long long)keys);
    double t0 = now_s();
    fill(&sized, keys, 8);
    double sized_ns = (now_s() - t0) * 1e9 / (double)keys;
    t0 = now_s();
    fill(&grow, keys, 8);
    double grow_ns = (now_s() - t0) * 1e9 / (double)keys;
    hmm_stats st;
    hmm_stat(grow.h, &st);
    printf("  %-22s %9.1f ns/insert\n  %-22s %9.1f ns/insert  %5.2fx pre-sized (%llu growth steps, file %llu MiB)\n",
           "pre-sized map", sized_ns, "growing map", grow_ns, grow_ns / sized_ns,
           (unsigned long long)st.counters[HMM_C_GROWTH_STEPS], (unsigned long long)(st.file_size >> 20));
    fprintf(csv, "insert while growing,%llu,8,hashmmap file map,%.1f,%.0f,%.3f\n", (unsigned long long)keys, grow_ns,
            1e9 / grow_ns, grow_ns / sized_ns);
    grow.close(grow.h);
    sized.close(sized.h);
}

/* ---- cache mode: hit ratio against an exact LRU of the same byte budget ---- */

/* Zipf(s) over n ranks by inverting the cumulative distribution. */
struct zipf {
    double *cdf;
    uint64_t n;
};
static void zipf_init(struct zipf *z, uint64_t n, double s)
{
    z->n = n;
    z->cdf = malloc(n * sizeof *z->cdf);
    double sum = 0;
    for (uint64_t i = 0; i < n; i++)
        z->cdf[i] = (sum += 1.0 / pow((double)(i + 1), s));
    for (uint64_t i = 0; i < n; i++)
        z->cdf[i] /= sum;
}
static uint64_t zipf_next(const struct zipf *z)
{
    double u = (double)(rng() >> 11) / 9007199254740992.0;
    uint64_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Scatter ranks over key space so popular keys are not neighbours. */
    return (lo * 2654435761u) % z->n;
}

/* Exact LRU over fixed-size items: a hash of key -> node, a doubly linked list. */
struct lru {
    uint64_t *prev, *next, *key_of;
    int64_t *where;       /* key -> node, -1 absent */
    uint64_t head, tail, used, cap;
};
static void lru_init(struct lru *l, uint64_t keys, uint64_t cap)
{
    l->prev = calloc(cap, 8);
    l->next = calloc(cap, 8);
    l->key_of = calloc(cap, 8);
    l->where = malloc(keys * sizeof *l->where);
    memset(l->where, 0xff, keys * sizeof *l->where);
    l->head = l->tail = UINT64_MAX;
    l->used = 0;
    l->cap = cap;
}
static void lru_unlink(struct lru *l, uint64_t n)
{
    if (l->prev[n] != UINT64_MAX)
        l->next[l->prev[n]] = l->next[n];
    else
        l->head = l->next[n];
    if (l->next[n] != UINT64_MAX)
        l->prev[l->next[n]] = l->prev[n];
    else
        l->tail = l->prev[n];
}
static void lru_front(struct lru *l, uint64_t n)
{
    l->prev[n] = UINT64_MAX;
    l->next[n] = l->head;
    if (l->head != UINT64_MAX)
        l->prev[l->head] = n;
    l->head = n;
    if (l->tail == UINT64_MAX)
        l->tail = n;
}
static bool lru_access(struct lru *l, uint64_t key)
{
    int64_t n = l->where[key];
    if (n >= 0) {
        lru_unlink(l, (uint64_t)n);
        lru_front(l, (uint64_t)n);
        return true;
    }
    uint64_t node;
    if (l->used < l->cap) {
        node = l->used++;
    } else {
        node = l->tail;
        lru_unlink(l, node);
        l->where[l->key_of[node]] = -1;
    }
    l->key_of[node] = key;
    l->where[key] = (int64_t)node;
    lru_front(l, node);
    return false;
}

static void cache_hit_ratio(uint64_t keys, uint64_t requests, size_t vlen)
{
    uint64_t budget = 16ULL << 20;
    struct store c;
    if (!open_hmm(&c, "hashmmap cache", "zipf", budget, 0, HMM_CACHE, false))
        return;
    hmm_stats st;
    hmm_stat(c.h, &st);
    hmm_t *m = c.h;
    char k[KEY_LEN + 1], v[256], out[256];
    memset(v, 'z', sizeof v);
    struct zipf z;
    zipf_init(&z, keys, 0.99);
    /* The same budget for the exact LRU: as many items as the cache's data
     * area holds when every chunk is the size class of one item. */
    hmm_class_stats cs[64];
    size_t nclasses;
    uint64_t item_bytes = 32 + KEY_LEN + vlen;
    hmm_stat_classes(m, cs, 64, &nclasses);
    uint64_t chunk = item_bytes;
    for (size_t i = 0; i < nclasses && i < 64; i++)
        if (cs[i].chunk_size >= item_bytes) {
            chunk = cs[i].chunk_size;
            break;
        }
    uint64_t lru_items = (st.bytes_total / st.page_size) * (st.page_size / chunk);
    struct lru l;
    lru_init(&l, keys, lru_items);
    uint64_t hits = 0, lru_hits = 0;
    rng_state = 42;
    double t0 = now_s();
    for (uint64_t r = 0; r < requests; r++) {
        uint64_t key = zipf_next(&z);
        make_key(k, key);
        size_t len = sizeof out;
        if (hmm_get(m, k, KEY_LEN, out, &len) == 0)
            hits++;
        else
            hmm_put(m, k, KEY_LEN, v, vlen, 0, 0); /* a miss fetches and caches */
        lru_hits += lru_access(&l, key);
    }
    double ns = (now_s() - t0) * 1e9 / (double)requests;
    printf("\ncache mode: Zipf(0.99) over %llu keys, %llu requests, %zu-byte values, %llu MiB\n",
           (unsigned long long)keys, (unsigned long long)requests, vlen, (unsigned long long)(budget >> 20));
    printf("  hashmmap cache hit ratio %6.2f%%   exact LRU (same bytes, %llu items) %6.2f%%   difference %+.2f points\n",
           100.0 * (double)hits / (double)requests, (unsigned long long)lru_items,
           100.0 * (double)lru_hits / (double)requests, 100.0 * ((double)hits - (double)lru_hits) / (double)requests);
    printf("  %.1f ns per request (get, and a set on a miss)\n", ns);
    fprintf(csv, "zipf hit ratio,%llu,%zu,hashmmap cache,%.1f,%.0f,%.4f\n", (unsigned long long)keys, vlen, ns,
            1e9 / ns, (double)hits / (double)requests);
    fprintf(csv, "zipf hit ratio,%llu,%zu,exact LRU,0,0,%.4f\n", (unsigned long long)keys, vlen,
            (double)lru_hits / (double)requests);
    /* 100% fill: every set evicts. */
    t0 = now_s();
    for (uint64_t n = 0; n < requests; n++) {
        make_key(k, keys + n);
        hmm_put(m, k, KEY_LEN, v, vlen, 0, 0);
    }
    double set_ns = (now_s() - t0) * 1e9 / (double)requests;
    printf("  sets at 100%% fill (every set evicts): %.1f ns\n", set_ns);
    fprintf(csv, "set at full cache,%llu,%zu,hashmmap cache,%.1f,%.0f,0\n", (unsigned long long)keys, vlen, set_ns,
            1e9 / set_ns);
    c.close(c.h);
    free(z.cdf);
}

/* A fixed loop to count instructions with callgrind: 100000 gets or puts
 * over keys made beforehand, so the count is the library's alone once the
 * "none" run (same setup, no loop) is subtracted. */
static int callgrind(const char *what)
{
    enum { N = 100000 };
    struct store s;
    if (!open_hmm(&s, "hashmmap", "callgrind", 64u << 20, 0, 0, false))
        return 1;
    fill(&s, N, 8);
    static char keys[N][KEY_LEN + 1];
    for (uint64_t i = 0; i < N; i++)
        make_key(keys[i], (i * 7919) % N);
    char v[8] = "12345678", out[16];
    bool put = strcmp(what, "put") == 0, get = strcmp(what, "get") == 0;
    for (uint64_t i = 0; (put || get) && i < N; i++) {
        size_t len = sizeof out;
        if (put)
            s.put(s.h, keys[i], v, sizeof v);
        else
            s.get(s.h, keys[i], out, &len);
    }
    s.close(s.h);
    return 0;
}

static int remove_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

int main(int argc, char **argv)
{
    if (!mkdtemp(tmpdir)) {
        perror("hmmbench: mkdtemp");
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "--callgrind") == 0) {
        int rc = callgrind(argv[2]);
        remove_tree(tmpdir);
        return rc;
    }
    const char *csv_path = getenv("HMMBENCH_CSV") ? getenv("HMMBENCH_CSV") : "bench/results.csv";
    csv = fopen(csv_path, "w");
    if (!csv)
        csv = fopen("/dev/null", "w");
    fprintf(csv, "workload,keys,value_bytes,store,ns_per_op,ops_per_s,ratio\n");
    bool quick = getenv("HMMBENCH_QUICK") != NULL;
    printf("hmmbench: hashmmap %s; ratios are against the process-local table in the same run\n",
           hmm_version(NULL, NULL, NULL));
    compare_stores(10000, 8, quick ? 100000 : 1000000);
    compare_stores(10000, 256, quick ? 100000 : 1000000);
    if (!quick) {
        compare_stores(1000000, 8, 2000000);
        compare_stores(1000000, 256, 1000000);
    }
    scaling(quick ? 10000 : 1000000, quick ? 200000 : 2000000);
    growth_cost(quick ? 100000 : 1000000);
    cache_hit_ratio(quick ? 100000 : 1000000, quick ? 500000 : 5000000, 100);
    fclose(csv);
    remove_tree(tmpdir);
    printf("\nCSV: %s\n", csv_path);
    return 0;
}
