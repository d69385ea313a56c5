/*
 * hmmbench - hashmmap against the stores a user would otherwise pick, on
 * identical workloads, in one run (issue 9, targets in DESIGN.md §10).
 *
 *   make bench                          build, run, write bench/results.csv and bench/results.png
 *   HMMBENCH_QUICK=1 bench/hmmbench     a short run (10 k keys, small budgets): a smoke check
 *   bench/hmmbench --callgrind get|mget|put|none   a fixed loop for `make bench-callgrind`
 *
 * Environment: HMMBENCH_QUICK=1; HMMBENCH_BUDGET_MS (time per measurement,
 * default 240, quick 30); HMMBENCH_CSV (default bench/results.csv);
 * HMMBENCH_STORES (comma-separated store ids to run besides the local
 * table, e.g. "hmm_file,lmdb"); HMMBENCH_ONLY=footprint (only the space,
 * open and recovery section and the targets) or scaling (only the
 * processes sharing one map); HMMBENCH_WORKLOADS (comma-separated columns
 * to measure: get, put, insert, incr, mixed, mget, chain); TMPDIR (where maps,
 * databases and sockets go).
 *
 * Every figure is ns per operation and operations per second of one
 * process, with its ratio to the process-local table measured in the same
 * run: on a shared, noisy machine the ratio is what to compare.  A
 * measurement is the fastest of three slices of its time budget.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hashmmap.h>

#include "bench/hmmbench.h"

/* The stores, in table order; the local table first (every ratio is to it). */
static const struct store_kind *const stores[] = {
    &store_local,        &store_local_locked,  &store_hmm_file, &store_hmm_inline, &store_hmm_anon,
    &store_hmm_cache,    &store_hmm_noreplog,  &store_hmm_nometrics, &store_lmdb, &store_kyoto,
    &store_tkrzw,        &store_sqlite,        &store_redis,    &store_memcached,  &store_inline,
};
#define NSTORES (sizeof stores / sizeof stores[0])

const char *bench_tmpdir;
static FILE *csv;
static bool quick;
static double budget_s = 0.24;

/* ---- helpers shared with the adapters ---- */

void bench_path(char *buf, size_t cap, const char *what)
{
    static unsigned n;
    snprintf(buf, cap, "%s/%s-%u", bench_tmpdir, what, n++);
}

void bench_remove(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "hmmbench: could not remove %s\n", path);
}

int counter_parse(const void *val, size_t len, int64_t *out)
{
    char buf[24], *end;
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, val, len);
    buf[len] = '\0';
    errno = 0;
    *out = strtoll(buf, &end, 10);
    return errno || *end ? -1 : 0;
}

size_t counter_format(char *buf, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    memcpy(buf, tmp, (size_t)n);
    return (size_t)n;
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Key number i as 16 printable bytes: "k" and 15 hex digits of i
 * scrambled (a bijection on 60 bits), so consecutive numbers are not
 * neighbours in a B-tree and fresh keys land anywhere. */
void make_key(char *k, uint64_t i)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t x = (i * 0x9E3779B97F4A7C15ull) & ((1ull << 60) - 1);
    k[0] = 'k';
    for (int d = KEY_LEN - 1; d >= 1; d--, x >>= 4)
        k[d] = hex[x & 15];
}

/* ---- key streams: the keys of a workload, made before it is timed ---- */

enum dist { UNIFORM, ZIPF, FRESH };
static const char *const dist_names[] = {"uniform", "zipf", "fresh"};

struct stream {
    char (*keys)[KEY_LEN];
    uint8_t *write; /* mixed workload: 1 where the op is a put (10%) */
    uint64_t *num;  /* the key numbers (the cache's exact-LRU twin needs them) */
    size_t n;
};

static void stream_free(struct stream *s)
{
    free(s->keys);
    free(s->write);
    free(s->num);
}

/* Zipf(0.99) ranks by inverting the cumulative distribution, then spread
 * over the key numbers (rank * odd constant mod keys: the hot keys are not
 * neighbours). */
static void stream_make(struct stream *s, enum dist d, uint64_t keys, size_t n, uint64_t seed)
{
    s->n = n;
    s->keys = malloc(n * KEY_LEN);
    s->write = malloc(n);
    s->num = malloc(n * sizeof *s->num);
    double *cdf = NULL;
    if (d == ZIPF) {
        cdf = malloc(keys * sizeof *cdf);
        double sum = 0;
        for (uint64_t i = 0; i < keys; i++)
            cdf[i] = (sum += 1.0 / pow((double)(i + 1), 0.99));
        for (uint64_t i = 0; i < keys; i++)
            cdf[i] /= sum;
    }
    rng_state = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t k;
        if (d == FRESH) {
            k = keys + i;
        } else if (d == UNIFORM) {
            k = rng() % keys;
        } else {
            double u = (double)(rng() >> 11) / 9007199254740992.0;
            uint64_t lo = 0, hi = keys - 1;
            while (lo < hi) {
                uint64_t mid = (lo + hi) / 2;
                if (cdf[mid] < u)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            k = lo * 2654435761u % keys;
        }
        make_key(s->keys[i], k);
        s->num[i] = k;
        s->write[i] = rng() % 10 == 0;
    }
    free(cdf);
}

/* ---- workloads: one function each, doing n operations of a run ---- */

struct run {
    const struct store_kind *k;
    void *h;
    const struct stream *st;
    const char *val; /* what puts store */
    size_t vlen;
    size_t pos;      /* next key of the stream (wraps, except FRESH) */
    uint64_t errors;
};

static inline const char *next_key(struct run *r)
{
    const char *k = r->st->keys[r->pos];
    if (++r->pos == r->st->n)
        r->pos = 0;
    return k;
}

static void wl_get(struct run *r, size_t n)
{
    char out[VAL_MAX];
    for (size_t i = 0; i < n; i++) {
        size_t len = sizeof out;
        r->errors += r->k->get(r->h, next_key(r), out, &len) != 0;
    }
}

/* Gets that cannot overlap: the next key's position depends on the
 * value the last get returned (through a zero the compiler cannot see),
 * so this is the latency of one get, where "get" is the throughput of
 * many in flight.  At 1 M keys it counts dependent cache misses: the
 * local table has one per get, a hashmmap get two (bucket, then entry). */
static void wl_get_chain(struct run *r, size_t n)
{
    char out[VAL_MAX];
    size_t zero = 0;
    __asm__("" : "+r"(zero));
    for (size_t i = 0; i < n; i++) {
        size_t len = sizeof out;
        out[0] = 0;
        r->errors += r->k->get(r->h, next_key(r), out, &len) != 0;
        size_t step = (unsigned char)out[0] & zero;
        r->pos = (r->pos + step) % r->st->n;
    }
}

/* Batches of BATCH_MAX keys through the store's get_batch; n keys in all. */
static void wl_mget(struct run *r, size_t n)
{
    static char out[BATCH_MAX][VAL_MAX];
    const char *keys[BATCH_MAX];
    size_t lens[BATCH_MAX];
    for (size_t done = 0; done < n;) {
        size_t b = n - done < BATCH_MAX ? n - done : BATCH_MAX;
        for (size_t i = 0; i < b; i++)
            keys[i] = next_key(r);
        r->errors += (uint64_t)r->k->get_batch(r->h, keys, b, out, lens);
        done += b;
    }
}

static void wl_put(struct run *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        r->errors += r->k->put(r->h, next_key(r), r->val, r->vlen) != 0;
}

static void wl_incr(struct run *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        r->errors += r->k->incr(r->h, next_key(r)) != 0;
}

static void wl_mixed(struct run *r, size_t n)
{
    char out[VAL_MAX];
    for (size_t i = 0; i < n; i++) {
        bool write = r->st->write[r->pos];
        size_t len = sizeof out;
        const char *k = next_key(r);
        r->errors += (write ? r->k->put(r->h, k, r->val, r->vlen) : r->k->get(r->h, k, out, &len)) != 0;
    }
}

struct workload {
    const char *name;
    const char *id;   /* its name in HMMBENCH_WORKLOADS */
    void (*fn)(struct run *r, size_t n);
    enum dist dist;   /* FRESH: inserts (run once, last); else run on UNIFORM and ZIPF */
    bool small_only;  /* only with 8-byte values (incr: a counter is a short number) */
    bool batched;     /* only stores with a get_batch; the ratio is to the local table's single get */
};
enum { W_GET, W_PUT, W_INSERT, W_INCR, W_MIXED, W_MGET, W_CHAIN };
static const struct workload workloads[] = {
    [W_GET] = {"get", "get", wl_get, UNIFORM, false, false},
    [W_PUT] = {"put (overwrite)", "put", wl_put, UNIFORM, false, false},
    [W_INSERT] = {"put (insert)", "insert", wl_put, FRESH, false, false},
    [W_INCR] = {"incr", "incr", wl_incr, UNIFORM, true, false},
    [W_MIXED] = {"mixed 90/10", "mixed", wl_mixed, UNIFORM, false, false},
    [W_MGET] = {"batched get (per key)", "mget", wl_mget, UNIFORM, false, true},
    [W_CHAIN] = {"get latency (chained)", "chain", wl_get_chain, UNIFORM, false, false},
};
#define NWORK (sizeof workloads / sizeof workloads[0])

/* Time a workload: three slices of the budget, batches of 64 operations,
 * at most max_ops in all; the fastest slice's ns per operation. */
static double measure(struct run *r, const struct workload *w, double budget, uint64_t max_ops, uint64_t *ops)
{
    double best = 0;
    *ops = 0;
    for (int slice = 0; slice < 3 && *ops < max_ops; slice++) {
        uint64_t n = 0;
        double t0 = now_s(), t;
        do {
            w->fn(r, 64);
            n += 64;
        } while ((t = now_s() - t0) < budget / 3 && *ops + n < max_ops);
        double ns = t * 1e9 / (double)n;
        if (best == 0 || ns < best)
            best = ns;
        *ops += n;
    }
    return best;
}

/* ---- the comparison table ---- */

struct cell {
    double ns; /* 0: not measured */
    uint64_t ops, errors;
};
/* [store][workload][dist: UNIFORM or ZIPF; inserts are kept under UNIFORM] */
struct table {
    uint64_t keys;
    size_t vlen;
    struct cell c[NSTORES][NWORK][2];
    const char *skipped[NSTORES]; /* why a store was not measured, or NULL */
    char shape[NSTORES][128];     /* the store's describe() once filled, or "" */
};

#define SETTLE_PUTS 50000u

static void fill_store(const struct store_kind *k, void *h, uint64_t keys, const char *val, size_t vlen)
{
    enum { CHUNK = 65536 };
    static char buf[CHUNK][KEY_LEN];
    for (uint64_t i = 0; i < keys; i += CHUNK) {
        size_t n = keys - i < CHUNK ? (size_t)(keys - i) : CHUNK;
        for (size_t j = 0; j < n; j++)
            make_key(buf[j], i + j);
        int rc = 0;
        if (k->load)
            rc = k->load(h, (const char (*)[KEY_LEN])buf, n, val, vlen);
        for (size_t j = 0; !k->load && rc == 0 && j < n; j++)
            rc = k->put(h, buf[j], val, vlen);
        if (rc) {
            fprintf(stderr, "hmmbench: %s: filling failed (%d)\n", k->name, rc);
            exit(1);
        }
    }
    /* Then the first keys again, unchanged: a hashmmap index that began to
     * grow near the end of the fill is drained by writes, a few buckets
     * each (FORMAT.md §10), and what is measured is the map at rest. */
    for (uint64_t i = 0; i < keys && i < SETTLE_PUTS; i++) {
        make_key(buf[0], i);
        if (k->put(h, buf[0], val, vlen) != 0) {
            fprintf(stderr, "hmmbench: %s: overwriting failed\n", k->name);
            exit(1);
        }
    }
}

/* Is id in the comma-separated list (NULL: no list)? */
static bool listed(const char *list, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = list; (p = strstr(p, id)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

static bool wanted(const struct store_kind *k)
{
    const char *list = getenv("HMMBENCH_STORES");
    if (k == &store_local)
        return true;
    if (!list)
        return !k->opt_in;
    return listed(list, k->id);
}

/* HMMBENCH_WORKLOADS (e.g. "get,mget"): only these columns are measured. */
static bool workload_wanted(const struct workload *wl)
{
    const char *list = getenv("HMMBENCH_WORKLOADS");
    return !list || listed(list, wl->id);
}

/* Open, fill and measure every store on every workload of one size. */
static void measure_all(struct table *t, uint64_t max_inserts)
{
    struct stream st[3];
    size_t n = quick ? 1u << 16 : 1u << 20;
    stream_make(&st[UNIFORM], UNIFORM, t->keys, n, 88172645463325252ull);
    stream_make(&st[ZIPF], ZIPF, t->keys, n, 88172645463325252ull);
    stream_make(&st[FRESH], FRESH, t->keys, max_inserts, 1);
    char fillval[VAL_MAX], putval[VAL_MAX];
    memset(fillval, 'v', sizeof fillval);
    memset(putval, 'w', sizeof putval);
    if (t->vlen == 8) { /* decimal counters, so incr has numbers to add to */
        memcpy(fillval, "10000000", 8);
        memcpy(putval, "12345678", 8);
    }
    for (size_t s = 0; s < NSTORES; s++) {
        const struct store_kind *k = stores[s];
        if (!wanted(k)) {
            t->skipped[s] = "not in HMMBENCH_STORES";
            continue;
        }
        fprintf(stderr, "  %s: %llu keys, %zu-byte values...\n", k->name, (unsigned long long)t->keys, t->vlen);
        const char *why = "cannot be opened";
        void *h = k->open(k, t->keys + max_inserts, t->vlen, &why);
        if (!h) {
            t->skipped[s] = why;
            continue;
        }
        fill_store(k, h, t->keys, fillval, t->vlen);
        if (k->describe)
            k->describe(h, t->shape[s], sizeof t->shape[s]);
        /* Inserts last: a map that grows its index while they run may still
         * be draining the old one afterwards, and every write then helps
         * (FORMAT.md §10); the other columns are measured at rest. */
        for (size_t i = 0; i < NWORK; i++) {
            size_t w = i < W_INSERT ? i : i == NWORK - 1 ? W_INSERT : i + 1;
            const struct workload *wl = &workloads[w];
            if ((wl->small_only && t->vlen > 8) || (wl->batched && !k->get_batch) || (w == W_INCR && !k->incr) ||
                !workload_wanted(wl))
                continue;
            for (int d = UNIFORM; d <= ZIPF; d++) {
                enum dist dist = wl->dist == FRESH ? FRESH : (enum dist)d;
                if (dist == FRESH && d == ZIPF)
                    break;
                struct run r = {.k = k, .h = h, .st = &st[dist], .val = putval, .vlen = t->vlen};
                struct cell *c = &t->c[s][w][d];
                c->ns = measure(&r, wl, budget_s, dist == FRESH ? max_inserts : UINT64_MAX, &c->ops);
                c->errors = r.errors;
            }
        }
        k->close(h);
    }
    for (int d = 0; d < 3; d++)
        stream_free(&st[d]);
}

static void human(char *buf, size_t cap, double v)
{
    if (v >= 1e6)
        snprintf(buf, cap, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, cap, "%.1fk", v / 1e3);
    else
        snprintf(buf, cap, "%.0f", v);
}

static void print_table(const struct table *t)
{
    for (int d = UNIFORM; d <= ZIPF; d++) {
        printf("\n%llu keys, %d-byte keys, %zu-byte values, %s keys    each cell: ns/op  ops/s  x local table\n",
               (unsigned long long)t->keys, KEY_LEN, t->vlen, dist_names[d]);
        printf("%-26s", "store");
        for (size_t w = 0; w < NWORK; w++)
            printf("  %-21s", workloads[w].name);
        printf("\n");
        for (size_t s = 0; s < NSTORES; s++) {
            if (stores[s]->opt_in && !wanted(stores[s]))
                continue; /* an experiment nobody asked for is not a peer that is missing */
            printf("%-26s", stores[s]->name);
            if (t->skipped[s]) {
                printf("  skipped: %s\n", t->skipped[s]);
                continue;
            }
            for (size_t w = 0; w < NWORK; w++) {
                const struct cell *c = &t->c[s][w][d], *local = &t->c[0][workloads[w].batched ? W_GET : w][d];
                if (!c->ns) {
                    printf("  %-21s", workloads[w].dist == FRESH ? "(uniform only)" : "-");
                    continue;
                }
                char rate[16];
                human(rate, sizeof rate, 1e9 / c->ns);
                double ratio = local->ns ? c->ns / local->ns : 0;
                printf("  %7.*f %6s %5.2fx%s", c->ns < 100 ? 1 : 0, c->ns, rate, ratio, c->errors ? "!" : " ");
                fprintf(csv, "single,%s,%llu,%zu,%s,%s,%s,%.1f,%.0f,%.3f,%llu,%llu\n", workloads[w].name,
                        (unsigned long long)t->keys, t->vlen,
                        workloads[w].dist == FRESH ? "fresh" : dist_names[d], stores[s]->id, stores[s]->name,
                        c->ns, 1e9 / c->ns, ratio, (unsigned long long)c->ops, (unsigned long long)c->errors);
            }
            printf("\n");
        }
    }
    for (size_t s = 0; s < NSTORES; s++)
        if (t->shape[s][0])
            printf("  %s: %s\n", stores[s]->name, t->shape[s]);
    for (size_t s = 0; s < NSTORES; s++)
        for (size_t w = 0; w < NWORK; w++)
            for (int d = 0; d < 2; d++)
                if (t->c[s][w][d].errors)
                    printf("  ! %s, %s, %s: %llu of %llu operations failed\n", stores[s]->name, workloads[w].name,
                           dist_names[d], (unsigned long long)t->c[s][w][d].errors,
                           (unsigned long long)t->c[s][w][d].ops);
    fflush(stdout);
}

/* ---- processes sharing one map ---- */

/* procs processes run workload w on one store for `seconds`, all through
 * the handle they inherit from the parent (as prefork servers do); the
 * aggregate operations per second. */
static double run_procs(const struct store_kind *k, void *h, const struct workload *w, const struct stream *st,
                        int procs, double seconds)
{
    int go[2], res[2];
    if (pipe(go) != 0 || pipe(res) != 0)
        return 0;
    for (int p = 0; p < procs; p++) {
        if (fork() == 0) {
            close(go[1]);
            char c;
            if (read(go[0], &c, 1) < 0) /* returns 0 when the parent closes: everyone starts together */
                _exit(1);
            struct run r = {.k = k, .h = h, .st = st, .val = "12345678", .vlen = 8, .pos = (size_t)p * st->n / 2};
            uint64_t n = 0;
            double t0 = now_s();
            do {
                w->fn(&r, 256);
                n += 256;
            } while (now_s() - t0 < seconds);
            double rate = (double)n / (now_s() - t0);
            _exit(write(res[1], &rate, sizeof rate) == sizeof rate ? 0 : 1);
        }
    }
    close(go[0]);
    close(go[1]);
    close(res[1]);
    double total = 0, rate;
    while (read(res[0], &rate, sizeof rate) == sizeof rate)
        total += rate;
    close(res[0]);
    while (wait(NULL) > 0)
        ;
    return total;
}

static double loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static double scaling_read_ratio; /* for the targets */

/* 1 and 2 processes on one hashmmap file map, and the same with the local
 * table (each process reads the parent's copy; its writes go to private
 * copy-on-write pages) as the control: what two cores give for plain
 * memory references on this machine. */
static void scaling(uint64_t keys, double seconds)
{
    const struct store_kind *kinds[] = {&store_hmm_file, &store_local};
    void *h[2];
    const char *why = "";
    for (int i = 0; i < 2; i++) {
        if (!(h[i] = kinds[i]->open(kinds[i], keys, 8, &why))) {
            printf("\nprocesses sharing one map: skipped (%s)\n", why);
            return;
        }
        fill_store(kinds[i], h[i], keys, "10000000", 8);
    }
    struct stream st;
    stream_make(&st, UNIFORM, keys, quick ? 1u << 16 : 1u << 20, 7);
    double load = loadavg();
    printf("\nprocesses sharing one map: %llu keys, 8-byte values, uniform keys, %.1f s each, forked children"
           " using the parent's handle; aggregate throughput (load average before: %.2f%s)\n",
           (unsigned long long)keys, seconds, load,
           load > 0.5 ? " -- other processes are busy: these figures understate scaling" : "");
    static const size_t which[] = {0, 1, 4}; /* get, put (overwrite), mixed 90/10 */
    for (size_t i = 0; i < 3; i++) {
        const struct workload *w = &workloads[which[i]];
        for (int s = 0; s < 2; s++) {
            double one = run_procs(kinds[s], h[s], w, &st, 1, seconds);
            double two = run_procs(kinds[s], h[s], w, &st, 2, seconds);
            if (i == 0 && s == 0)
                scaling_read_ratio = two / one;
            char a[16], b[16];
            human(a, sizeof a, one);
            human(b, sizeof b, two);
            printf("  %-16s %-22s 1 process %8s ops/s   2 processes %8s ops/s   2-proc/1-proc %5.2fx\n",
                   w->name, kinds[s]->name, a, b, two / one);
            fprintf(csv, "scaling,%s,%llu,8,uniform,%s,%s 1 process,%.1f,%.0f,1.000,0,0\n", w->name,
                    (unsigned long long)keys, kinds[s]->id, kinds[s]->name, 1e9 / one, one);
            fprintf(csv, "scaling,%s,%llu,8,uniform,%s,%s 2 processes,%.1f,%.0f,%.3f,0,0\n", w->name,
                    (unsigned long long)keys, kinds[s]->id, kinds[s]->name, 1e9 / two, two, two / one);
        }
    }
    stream_free(&st);
    for (int i = 0; i < 2; i++)
        kinds[i]->close(h[i]);
}

/* ---- growth: inserting into a map that grows, against a pre-sized one ---- */

static void growth_cost(uint64_t keys)
{
    hmm_t *grow, *sized;
    char gdir[512], sdir[512], k[KEY_LEN];
    bench_path(gdir, sizeof gdir, "grow");
    bench_path(sdir, sizeof sdir, "sized");
    hmm_config gc = {.size = 1 << 20, .max_size = 4ull << 30, .flags = HMM_CREATE};
    hmm_config sc = {.size = keys * 160, .flags = HMM_CREATE};
    if (hmm_open(&grow, gdir, &gc) || hmm_open(&sized, sdir, &sc))
        return;
    double ns[2];
    hmm_t *maps[2] = {sized, grow};
    for (int i = 0; i < 2; i++) {
        double t0 = now_s();
        for (uint64_t n = 0; n < keys; n++) {
            make_key(k, n);
            hmm_put(maps[i], k, KEY_LEN, "10000000", 8, 0, 0);
        }
        ns[i] = (now_s() - t0) * 1e9 / (double)keys;
    }
    hmm_stats st;
    hmm_stat(grow, &st);
    printf("\ngrowth: %llu inserts of 8-byte values\n", (unsigned long long)keys);
    printf("  pre-sized map %7.1f ns/insert;  map growing from 1 MiB %7.1f ns/insert (%.2fx; %llu growth steps,"
           " file %llu MiB)\n",
           ns[0], ns[1], ns[1] / ns[0], (unsigned long long)st.counters[HMM_C_GROWTH_STEPS],
           (unsigned long long)(st.file_size >> 20));
    fprintf(csv, "growth,put (insert),%llu,8,fresh,hmm_file,growing map,%.1f,%.0f,%.3f,%llu,0\n",
            (unsigned long long)keys, ns[1], 1e9 / ns[1], ns[1] / ns[0], (unsigned long long)keys);
    hmm_close(grow);
    hmm_close(sized);
    bench_remove(gdir);
    bench_remove(sdir);
}

/* ---- cache mode: hit ratio against an exact LRU of the same byte budget ---- */

struct lru { /* exact LRU over key numbers: key -> node, a doubly linked list */
    uint64_t *prev, *next, *key_of;
    int64_t *where;
    uint64_t head, tail, used, cap;
};

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

static void cache_hit_ratio(uint64_t keys, uint64_t requests)
{
    enum { VLEN = 100 };
    uint64_t budget = 16ull << 20;
    hmm_t *m;
    char dir[512], v[VLEN], out[VAL_MAX];
    memset(v, 'z', sizeof v);
    bench_path(dir, sizeof dir, "zipf-cache");
    hmm_config cfg = {.size = budget, .flags = HMM_CREATE | HMM_CACHE};
    if (hmm_open(&m, dir, &cfg) != 0)
        return;
    /* The same bytes for the exact LRU: as many items as the data area
     * holds when every chunk is the size class of one item. */
    hmm_stats st;
    hmm_class_stats cs[64];
    size_t nclasses;
    hmm_stat(m, &st);
    hmm_stat_classes(m, cs, 64, &nclasses);
    uint64_t chunk = 32 + KEY_LEN + VLEN;
    for (size_t i = 0; i < nclasses && i < 64; i++)
        if (cs[i].chunk_size >= chunk) {
            chunk = cs[i].chunk_size;
            break;
        }
    struct lru l = {.head = UINT64_MAX, .tail = UINT64_MAX};
    l.cap = (st.bytes_total / st.page_size) * (st.page_size / chunk);
    l.prev = calloc(l.cap, 8);
    l.next = calloc(l.cap, 8);
    l.key_of = calloc(l.cap, 8);
    l.where = malloc(keys * sizeof *l.where);
    memset(l.where, 0xff, keys * sizeof *l.where);
    struct stream zs;
    stream_make(&zs, ZIPF, keys, requests, 42);
    uint64_t hits = 0, lru_hits = 0;
    double t0 = now_s();
    for (uint64_t r = 0; r < requests; r++) {
        size_t len = sizeof out;
        if (hmm_get(m, zs.keys[r], KEY_LEN, out, &len) == 0)
            hits++;
        else
            hmm_put(m, zs.keys[r], KEY_LEN, v, VLEN, 0, 0); /* a miss fetches and caches */
    }
    double ns = (now_s() - t0) * 1e9 / (double)requests;
    for (uint64_t r = 0; r < requests; r++)
        lru_hits += lru_access(&l, zs.num[r]);
    stream_free(&zs);
    printf("\ncache mode: Zipf(0.99) over %llu keys, %llu requests, %d-byte values, %llu MiB map\n",
           (unsigned long long)keys, (unsigned long long)requests, VLEN, (unsigned long long)(budget >> 20));
    printf("  hashmmap cache hit ratio %6.2f%%   exact LRU of the same bytes (%llu items) %6.2f%%   difference"
           " %+.2f points;  %.1f ns per request (get, and a put on a miss)\n",
           100.0 * (double)hits / (double)requests, (unsigned long long)l.cap,
           100.0 * (double)lru_hits / (double)requests, 100.0 * ((double)hits - (double)lru_hits) / (double)requests,
           ns);
    fprintf(csv, "cache,zipf hit ratio,%llu,%d,zipf,hmm_cache,hashmmap cache map,%.1f,%.0f,%.4f,%llu,0\n",
            (unsigned long long)keys, VLEN, ns, 1e9 / ns, (double)hits / (double)requests,
            (unsigned long long)requests);
    fprintf(csv, "cache,zipf hit ratio,%llu,%d,zipf,lru,exact LRU,0,0,%.4f,%llu,0\n", (unsigned long long)keys, VLEN,
            (double)lru_hits / (double)requests, (unsigned long long)requests);
    free(l.prev);
    free(l.next);
    free(l.key_of);
    free(l.where);
    hmm_close(m);
    bench_remove(dir);
}

/* ---- the targets of DESIGN.md §10 ---- */

static double cell_ns(const struct table *t, const struct store_kind *k, size_t w)
{
    for (size_t s = 0; s < NSTORES; s++)
        if (stores[s] == k)
            return t->c[s][w][UNIFORM].ns;
    return 0;
}

/* a / b, or NAN when either figure is missing (0: not measured). */
static double ratio(double a, double b)
{
    return a > 0 && b > 0 ? a / b : NAN;
}

/* measured NAN: a figure is missing.  It may be negative (an overhead
 * within the noise). */
static void target(const char *what, double measured, double goal, bool lower_is_better, const char *unit)
{
    if (!isfinite(measured)) {
        printf("  %-52s %10s   goal %s%.2f%s  not measured\n", what, "-", lower_is_better ? "<= " : ">= ", goal,
               unit);
        return;
    }
    bool met = lower_is_better ? measured <= goal : measured >= goal;
    printf("  %-52s %9.2f%s   goal %s%.2f%s  %s\n", what, measured, unit, lower_is_better ? "<= " : ">= ", goal,
           unit, met ? "met" : "SHORT");
    fprintf(csv, "target,%s,0,0,,,,%.3f,0,%.3f,0,%d\n", what, measured, goal, met);
}

/* A figure the targets block shows beside the goals, without a goal of its own. */
static void info(const char *what, double measured, const char *unit)
{
    if (!isfinite(measured)) {
        printf("  %-52s %10s   (information, no goal)  not measured\n", what, "-");
        return;
    }
    printf("  %-52s %9.2f%s   (information, no goal)\n", what, measured, unit);
    fprintf(csv, "info,%s,0,0,,,,%.3f,0,0,0,0\n", what, measured);
}

/* Goals of DESIGN.md section 10 and issue 22.  tabs: the 8-byte-value tables
 * at 10 k, 100 k and 1 M keys (NULL when not run, as in a quick run); t is
 * the largest run. */
static void targets(const struct table *t, const struct table *const tabs[3], const struct footprint_figures *fp)
{
    double local_get = cell_ns(t, &store_local, W_GET), local_put = cell_ns(t, &store_local, W_PUT);
    double get = cell_ns(t, &store_hmm_file, W_GET), put = cell_ns(t, &store_hmm_file, W_PUT);
    char what[96];
    printf("\ntargets (DESIGN.md section 10, issue 22; %llu keys, %zu-byte values, uniform keys, hashmmap file map):\n",
           (unsigned long long)t->keys, t->vlen);
    for (int i = 0; i < 3; i++) {
        if (!tabs[i])
            continue;
        snprintf(what, sizeof what, "get at %llu keys: x local table", (unsigned long long)tabs[i]->keys);
        target(what, ratio(cell_ns(tabs[i], &store_hmm_file, W_GET), cell_ns(tabs[i], &store_local, W_GET)), 1.1,
               true, "x");
    }
    info("get latency (chained): x local table (dependent misses)",
         ratio(cell_ns(t, &store_hmm_file, W_CHAIN), cell_ns(t, &store_local, W_CHAIN)), "x");
    /* The same goals for a map made with HMM_INLINE (format 2), when run. */
    for (int i = 0; i < 3; i++) {
        if (!tabs[i])
            continue;
        snprintf(what, sizeof what, "HMM_INLINE: get at %llu keys: x local table",
                 (unsigned long long)tabs[i]->keys);
        target(what, ratio(cell_ns(tabs[i], &store_hmm_inline, W_GET), cell_ns(tabs[i], &store_local, W_GET)), 1.1,
               true, "x");
    }
    target("HMM_INLINE: batched get per key: x local's get",
           ratio(cell_ns(t, &store_hmm_inline, W_MGET), local_get), 0.5, true, "x");
    target("HMM_INLINE: get: times faster than LMDB", ratio(cell_ns(t, &store_lmdb, W_GET),
                                                                cell_ns(t, &store_hmm_inline, W_GET)),
           5.0, false, "x");
    target("batched get, per key: x local table's single get", ratio(cell_ns(t, &store_hmm_file, W_MGET), local_get),
           0.5, true, "x");
    double put_nolog = cell_ns(t, &store_hmm_noreplog, W_PUT);
    target("put (overwrite) with the replication log: x local", ratio(put, local_put), 1.5, true, "x");
    info("put (overwrite) without the log: x local table", ratio(put_nolog, local_put), "x");
    /* The floor of the put target: invariant 4's mutex alone, on the same table. */
    info("put: local table with a robust mutex, x local",
         ratio(cell_ns(t, &store_local_locked, W_PUT), local_put), "x");
    info("put with the log: x the locked local table",
         ratio(put, cell_ns(t, &store_local_locked, W_PUT)), "x");
    target("put (overwrite): replication log overhead", 100.0 * (ratio(put, put_nolog) - 1.0), 30.0, true, "%");
    for (int i = 0; i < 3; i += 2) {
        const struct table *x = tabs[i];
        if (!x)
            continue;
        double p = cell_ns(x, &store_hmm_file, W_PUT);
        snprintf(what, sizeof what, "put at %llu keys: times faster than Kyoto Cabinet", (unsigned long long)x->keys);
        target(what, ratio(cell_ns(x, &store_kyoto, W_PUT), p), 1.0, false, "x");
        snprintf(what, sizeof what, "put at %llu keys: times faster than Tkrzw", (unsigned long long)x->keys);
        target(what, ratio(cell_ns(x, &store_tkrzw, W_PUT), p), 1.0, false, "x");
    }
    target("get: times faster than LMDB", ratio(cell_ns(t, &store_lmdb, W_GET), get), 5.0, false, "x");
    target("put (overwrite): times faster than LMDB", ratio(cell_ns(t, &store_lmdb, W_PUT), put), 4.0, false, "x");
    target("get: times faster than Redis", ratio(cell_ns(t, &store_redis, W_GET), get), 100.0, false, "x");
    target("get: times faster than memcached", ratio(cell_ns(t, &store_memcached, W_GET), get), 100.0, false, "x");
    target("two processes reading: x one process", ratio(scaling_read_ratio, 1), 1.9, false, "x");
    snprintf(what, sizeof what, "space at %llu entries: bytes/entry over key+value", (unsigned long long)fp->entries);
    target(what, fp->overhead_file, 48, true, "B");
    info("space: the same for the allocated part of the file", fp->overhead_alloc, "B");
    target("open of the existing map (median)", fp->open_ms, 5, true, "ms");
    target("recovery after a crash (worst of all measured)", fp->recover_ms, 1000, true, "ms");
}

/* ---- callgrind: a fixed loop, to count instructions per operation ---- */

/* 100 000 gets, batched gets (mget) or puts (uniform keys) on a prepared 100 000-key map;
 * `make bench-callgrind` subtracts the "none" run (same setup, no loop). */
static int callgrind(const char *what)
{
    enum { N = 100000 };
    const char *why = "";
    /* "put-nolog", "none-nolog": the same on a map made with HMM_NOREPLOG;
     * "get-local", "put-local", "none-local": the local table, the
     * baseline of issue 22's ratios, counted the same way ("-locked": with
     * its robust mutex a put, store_local_locked); "get-inline",
     * "none-inline": the inline-entries experiment (store_inline.c);
     * "-kyoto", "-tkrzw": the file-backed peers of issue 22's put target. */
    const struct store_kind *k = strstr(what, "-nolog")    ? &store_hmm_noreplog
                                 : strstr(what, "-locked") ? &store_local_locked
                                 : strstr(what, "-local")  ? &store_local
                                 : strstr(what, "-inline") ? &store_inline /* the experiment: get only */
                                 : strstr(what, "-kyoto")  ? &store_kyoto
                                 : strstr(what, "-tkrzw")  ? &store_tkrzw
                                 : strstr(what, "-hmminline") ? &store_hmm_inline
                                                           : &store_hmm_file;
    void *h = k->open(k, N, 8, &why);
    if (!h)
        return 1;
    fill_store(k, h, N, "10000000", 8);
    struct stream st;
    stream_make(&st, UNIFORM, N, N, 3);
    struct run r = {.k = k, .h = h, .st = &st, .val = "12345678", .vlen = 8};
    if (strncmp(what, "mget", 4) == 0)
        wl_mget(&r, N);
    else if (strncmp(what, "get", 3) == 0)
        wl_get(&r, N);
    else if (strncmp(what, "put", 3) == 0)
        wl_put(&r, N);
    else if (strncmp(what, "none", 4) != 0)
        fprintf(stderr, "hmmbench: --callgrind get|mget|put|none[-nolog|-local|-locked|-inline|-kyoto|-tkrzw]\n");
    stream_free(&st);
    k->close(h);
    return r.errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    static char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/hmmbench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    bench_tmpdir = mkdtemp(tmpl);
    if (!bench_tmpdir) {
        perror("hmmbench: mkdtemp");
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "--callgrind") == 0) {
        int rc = callgrind(argv[2]);
        bench_remove(bench_tmpdir);
        return rc;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: hmmbench [--callgrind get|mget|put|none]  (environment: see bench/README.md)\n");
        return 2;
    }
    quick = getenv("HMMBENCH_QUICK") && strcmp(getenv("HMMBENCH_QUICK"), "0") != 0;
    budget_s = quick ? 0.03 : 0.24;
    if (getenv("HMMBENCH_BUDGET_MS"))
        budget_s = atof(getenv("HMMBENCH_BUDGET_MS")) / 1000.0;
    const char *csv_path = getenv("HMMBENCH_CSV") ? getenv("HMMBENCH_CSV") : "bench/results.csv";
    csv = fopen(csv_path, "w");
    if (!csv) {
        fprintf(stderr, "hmmbench: %s: %s (writing the CSV to /dev/null)\n", csv_path, strerror(errno));
        csv = fopen("/dev/null", "w");
    }
    fprintf(csv, "section,workload,keys,value_bytes,keys_dist,store_id,store,ns_per_op,ops_per_s,x_local,ops,"
                 "errors\n");
    double t0 = now_s();
    printf("hmmbench: hashmmap %s, %ld CPUs, load average %.2f%s; %.0f ms per measurement (fastest of 3 slices)\n",
           hmm_version(NULL, NULL, NULL), sysconf(_SC_NPROCESSORS_ONLN), loadavg(), quick ? ", QUICK run" : "",
           budget_s * 1e3);
    printf("notes:\n");
    for (size_t s = 0; s < NSTORES; s++)
        if (stores[s]->note && (!stores[s]->opt_in || wanted(stores[s])))
            printf("  %s\n", stores[s]->note);
    printf("  incr: counters are decimal text (hmm_incr's contract), measured with 8-byte values only;"
           " put (insert) stores fresh keys, measured last\n");

    static struct table small8, small256, mid8, big8, big256;
    struct table *tables[] = {&big8, &big256, &mid8, &small8, &small256};
    big8 = (struct table){.keys = 1000000, .vlen = 8};
    big256 = (struct table){.keys = 1000000, .vlen = 256};
    mid8 = (struct table){.keys = 100000, .vlen = 8};
    small8 = (struct table){.keys = 10000, .vlen = 8};
    small256 = (struct table){.keys = 10000, .vlen = 256};
    /* HMMBENCH_ONLY=footprint: the space, open and recovery section alone
     * (the other targets then say "not measured"); =scaling: the processes
     * sharing one map alone. */
    const char *only = getenv("HMMBENCH_ONLY");
    bool only_fp = only && strcmp(only, "footprint") == 0;
    if (only && strcmp(only, "scaling") == 0) {
        scaling(quick ? 10000 : 1000000, quick ? 0.2 : 1.0);
        fclose(csv);
        bench_remove(bench_tmpdir);
        return 0;
    }
    for (size_t i = quick ? 3 : 0; i < 5 && !only_fp; i++) {
        uint64_t max_inserts = quick ? 20000 : tables[i]->keys >= 1000000 ? 500000 : 200000;
        measure_all(tables[i], max_inserts);
        print_table(tables[i]);
    }
    if (!only_fp) {
        scaling(quick ? 10000 : 1000000, quick ? 0.2 : 1.0);
        growth_cost(quick ? 100000 : 1000000);
    }
    struct footprint_figures fp;
    footprint(csv, quick ? 10000 : 1000000, 20, &fp); /* quick: 10 k entries */
    if (!only_fp)
        cache_hit_ratio(quick ? 100000 : 1000000, quick ? 500000 : 3000000);
    const struct table *const by_size[3] = {small8.keys && !only_fp ? &small8 : NULL,
                                             quick || only_fp ? NULL : &mid8, quick || only_fp ? NULL : &big8};
    targets(quick ? &small8 : &big8, by_size, &fp);
    fclose(csv);
    bench_remove(bench_tmpdir);
    printf("\nCSV: %s   (%.0f s in all)\n", csv_path, now_s() - t0);
    return 0;
}
