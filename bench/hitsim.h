/*
 * hitsim.h - generated key traces and exact simulations of eviction
 * policies, shared by the hit-ratio benchmark (bench/hitratio.c) and the
 * eviction policy test (tests/test_evict_policy.c), so that both judge
 * hashmmap against the same traces, the same look-aside loop and the same
 * reference policies.
 *
 * A trace is a sequence of key ids.  Each request picks, with probability
 * onetime_pct %, a key id that never occurs again (ids >= HS_ONETIME_BASE),
 * else a rank from a Zipf(s) distribution over `universe` keys; with
 * `shift`, ranks map to other ids from the middle of the trace on, so the
 * hot set changes.  Traces are look-aside: every miss is followed by a put
 * of the key, which is what the simulations model.
 */
#ifndef HMM_BENCH_HITSIM_H
#define HMM_BENCH_HITSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hashmmap.h>

#define HS_ONETIME_BASE (UINT64_C(1) << 40)

struct hs_trace_spec {
    double zipf_s;          /* skew: 0.6 mild, 0.9 web-like, 1.2 steep */
    uint64_t universe;      /* keys the Zipf part draws from */
    uint64_t requests;
    unsigned onetime_pct;   /* share of requests for keys seen only once */
    bool shift;             /* the hot set moves to other keys halfway */
    uint64_t seed;
};

struct hs_trace {
    uint64_t *ids;
    uint64_t n;
};

/* Generate a trace; 0, or -ENOMEM / -EINVAL (then t is empty).  Same spec, same trace. */
int hs_trace_make(struct hs_trace *t, const struct hs_trace_spec *spec);
void hs_trace_free(struct hs_trace *t);
/* The key of an id as the fixed-width string the benchmark stores
 * (16 hex digits: every entry has the same size, so one slab class). */
void hs_key(uint64_t id, char key[17]);

enum hs_policy {
    HS_LRU,   /* exact least recently used */
    HS_SIEVE, /* SIEVE (Zhang et al., NSDI'24): FIFO order, one visited bit, retained objects stay in place */
    HS_CLOCK, /* CLOCK whose new entries take the victim's slot unmarked (what a slab's LIFO reuse does) */
};

struct hs_cache;

/* A cache of `capacity` entries under the policy; NULL when out of memory. */
struct hs_cache *hs_cache_new(enum hs_policy policy, uint64_t capacity);
void hs_cache_free(struct hs_cache *c);
/* One look-aside request: true on a hit; a miss inserts the key. */
bool hs_cache_access(struct hs_cache *c, uint64_t id);
/* Hits of the trace's requests from request `from` on (earlier ones only warm the cache), in %. */
double hs_simulate(enum hs_policy policy, uint64_t capacity, const struct hs_trace *t, uint64_t from);
const char *hs_policy_name(enum hs_policy policy);

/* The trace look-aside against a real map: hmm_get of each key (16 bytes,
 * hs_key), and on a miss hmm_put of a value_bytes value.  0 and the hit %,
 * or the first error of the map. */
int hs_run_map(hmm_t *m, const struct hs_trace *t, size_t value_bytes, double *hit_pct);

#endif
