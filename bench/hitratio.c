/*
 * hitratio.c - cache mode's hit ratio against exact reference policies
 * (issue 17, FORMAT.md §12).
 *
 *   bench/hitratio                       every trace, CSV on stdout
 *   HITRATIO_QUICK=1 bench/hitratio      short traces: a smoke check
 *   bench/hitratio --callgrind get|put|none   a fixed loop on a full cache,
 *                                        for instruction counts (bench/README.md)
 *   bench/hitratio --callgrind trace|trace-none   a look-aside trace on it
 *
 * Each trace (bench/hitsim.c: Zipf 0.6 / 0.9 / 1.2, each with 0% and 30%
 * one-time keys, and Zipf 0.9 whose hot set moves halfway) is run
 * look-aside against a real map created with HMM_CACHE: hmm_get, and on a
 * miss hmm_put of the key.  The map's entry count at the end (every value
 * has the same size, so one slab class holds them all) is then the capacity
 * of the simulations: exact LRU, SIEVE, and a one-bit CLOCK whose new
 * entries take the victim's slot (what hashmmap did before issue 17).
 */
#include "config.h"

#include <hashmmap.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/hitsim.h"

#define VALUE_BYTES 200

struct trace_case {
    const char *name;
    double zipf_s;
    unsigned onetime_pct;
    bool shift;
};

static const struct trace_case cases[] = {
    {"zipf0.6", 0.6, 0, false},         {"zipf0.6+onetime30", 0.6, 30, false},
    {"zipf0.9", 0.9, 0, false},         {"zipf0.9+onetime30", 0.9, 30, false},
    {"zipf1.2", 1.2, 0, false},         {"zipf1.2+onetime30", 1.2, 30, false},
    {"zipf0.9+shift", 0.9, 0, true},
};

static hmm_t *open_cache(uint64_t size_bytes)
{
    hmm_config cfg = {.size = size_bytes, .flags = HMM_CACHE | HMM_NOREPLOG};
    hmm_t *m = NULL;
    int rc = hmm_open_anon(&m, &cfg);
    if (rc) {
        fprintf(stderr, "hitratio: hmm_open_anon: %s\n", hmm_strerror(rc));
        return NULL;
    }
    return m;
}

/* The trace against a fresh cache map: hit % and the entries it held. */
static int run_hashmmap(const struct hs_trace *t, uint64_t size_bytes, double *hit_pct, uint64_t *entries)
{
    hmm_t *m = open_cache(size_bytes);
    if (!m)
        return 1;
    int rc = hs_run_map(m, t, VALUE_BYTES, hit_pct);
    hmm_stats st;
    if (rc == 0)
        rc = hmm_stat(m, &st);
    hmm_close(m);
    if (rc) {
        fprintf(stderr, "hitratio: %s\n", hmm_strerror(rc));
        return 1;
    }
    *entries = st.items;
    return 0;
}

static int run_all(bool quick)
{
    uint64_t universe = quick ? 20000 : 200000, requests = quick ? 300000 : 2000000;
    uint64_t size_bytes = quick ? (UINT64_C(1) << 20) : (UINT64_C(8) << 20);
    printf("trace,zipf_s,onetime_pct,shift,requests,universe,map_bytes,entries,"
           "hashmmap_pct,lru_pct,sieve_pct,clock1bit_pct,hashmmap_minus_lru\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct trace_case *c = &cases[i];
        struct hs_trace_spec spec = {.zipf_s = c->zipf_s, .universe = universe, .requests = requests,
                                     .onetime_pct = c->onetime_pct, .shift = c->shift, .seed = 42 + i};
        struct hs_trace t;
        if (hs_trace_make(&t, &spec) != 0) {
            fprintf(stderr, "hitratio: out of memory for the trace\n");
            return 1;
        }
        double hmm_pct = 0;
        uint64_t entries = 0;
        if (run_hashmmap(&t, size_bytes, &hmm_pct, &entries) != 0 || entries == 0) {
            hs_trace_free(&t);
            return 1;
        }
        double lru = hs_simulate(HS_LRU, entries, &t, 0);
        double sieve = hs_simulate(HS_SIEVE, entries, &t, 0);
        double clock = hs_simulate(HS_CLOCK, entries, &t, 0);
        printf("%s,%.1f,%u,%d,%llu,%llu,%llu,%llu,%.2f,%.2f,%.2f,%.2f,%+.2f\n", c->name, c->zipf_s,
               c->onetime_pct, c->shift, (unsigned long long)requests, (unsigned long long)universe,
               (unsigned long long)size_bytes, (unsigned long long)entries, hmm_pct, lru, sieve, clock,
               hmm_pct - lru);
        fflush(stdout);
        hs_trace_free(&t);
    }
    return 0;
}

/* For callgrind: the short Zipf 0.9 trace with 30% one-time keys
 * (300 000 requests, look-aside) on the filled cache, or only its
 * generation ("trace-none"): reads give the hand credits to walk over, so
 * the puts' evictions cost what they cost in use. */
static int callgrind_trace(hmm_t *m, const char *what)
{
    struct hs_trace_spec spec = {.zipf_s = 0.9, .universe = 20000, .requests = 300000, .onetime_pct = 30, .seed = 17};
    struct hs_trace t = {0};
    double hit_pct = 0;
    int rc = hs_trace_make(&t, &spec);
    if (rc == 0 && strcmp(what, "trace") == 0)
        rc = hs_run_map(m, &t, VALUE_BYTES, &hit_pct);
    else if (rc == 0 && strcmp(what, "trace-none") != 0)
        rc = -1;
    hs_trace_free(&t);
    hmm_close(m);
    return rc ? 1 : 0;
}

/* A fixed loop for callgrind: a 4 MiB cache filled with 200-byte values
 * (full: every later put of a new key evicts), then 100 000 gets of
 * resident keys or 100 000 puts of new keys, or nothing ("none", the
 * baseline to subtract).  Keys are made before the loop, in every mode, so
 * that only the operations differ between the runs. */
static int callgrind(const char *what)
{
    enum { OPS = 100000, FILL = 40000, KEY = 16 };
    static char keys[OPS][KEY + 1];
    hmm_t *m = open_cache(UINT64_C(4) << 20);
    if (!m)
        return 1;
    char key[KEY + 1], val[VALUE_BYTES];
    memset(val, 'v', sizeof val);
    for (uint64_t i = 0; i < FILL; i++) {
        hs_key(i, key);
        if (hmm_put(m, key, KEY, val, sizeof val, 0, 0) != 0)
            return 1;
    }
    if (strncmp(what, "trace", 5) == 0)
        return callgrind_trace(m, what);
    bool get = strcmp(what, "get") == 0;
    /* Gets: the newest keys of the fill, resident whatever the policy; puts: new keys. */
    for (uint64_t i = 0; i < OPS; i++)
        hs_key(get ? FILL - 1 - i % 1000 : FILL + i, keys[i]);
    int errors = 0;
    if (get) {
        for (uint64_t i = 0; i < OPS; i++) {
            size_t len = sizeof val;
            errors += hmm_get(m, keys[i], KEY, val, &len) != 0;
        }
    } else if (strcmp(what, "put") == 0) {
        for (uint64_t i = 0; i < OPS; i++)
            errors += hmm_put(m, keys[i], KEY, val, sizeof val, 0, 0) != 0;
    } else if (strcmp(what, "none") != 0) {
        fprintf(stderr, "hitratio: --callgrind get|put|none|trace|trace-none\n");
        errors = 1;
    }
    hmm_close(m);
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--callgrind") == 0)
        return callgrind(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: hitratio [--callgrind get|put|none|trace|trace-none]  (HITRATIO_QUICK=1: short traces)\n");
        return 2;
    }
    const char *quick = getenv("HITRATIO_QUICK");
    return run_all(quick && *quick && strcmp(quick, "0") != 0);
}
