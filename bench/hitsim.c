/*
 * hitsim.c - traces and reference eviction policies for hit-ratio
 * comparisons (see hitsim.h).  Process-local and exact: the simulations are
 * the yardstick hashmmap's cache mode is measured against, so they keep
 * whole entry counts, a real recency list and real hands.
 */
#include "bench/hitsim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

/* ---- traces ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * 0x1.0p-53;
}

/* Cumulative Zipf(s) probabilities of ranks 1..n, normalised to 1. */
static double *zipf_cdf(uint64_t n, double s)
{
    double *cdf = malloc(n * sizeof *cdf);
    if (!cdf)
        return NULL;
    double sum = 0;
    for (uint64_t i = 0; i < n; i++)
        cdf[i] = (sum += pow((double)(i + 1), -s));
    for (uint64_t i = 0; i < n; i++)
        cdf[i] /= sum;
    return cdf;
}

/* Rank (0 = most popular) of a uniform draw u: the first cdf entry >= u. */
static uint64_t zipf_rank(const double *cdf, uint64_t n, double u)
{
    uint64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] >= u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int hs_trace_make(struct hs_trace *t, const struct hs_trace_spec *spec)
{
    t->ids = NULL;
    t->n = 0;
    if (spec->universe == 0 || spec->universe >= HS_ONETIME_BASE || spec->onetime_pct > 100)
        return -EINVAL;
    double *cdf = zipf_cdf(spec->universe, spec->zipf_s);
    t->ids = malloc((spec->requests ? spec->requests : 1) * sizeof *t->ids);
    if (!cdf || !t->ids) {
        free(cdf);
        free(t->ids);
        t->ids = NULL;
        return -ENOMEM;
    }
    uint64_t rng = spec->seed, onetime = HS_ONETIME_BASE;
    for (uint64_t i = 0; i < spec->requests; i++) {
        if (uniform01(&rng) * 100 < spec->onetime_pct) {
            t->ids[i] = onetime++;
            continue;
        }
        uint64_t rank = zipf_rank(cdf, spec->universe, uniform01(&rng));
        /* After the shift the popular ranks are keys that were lukewarm at best. */
        if (spec->shift && i >= spec->requests / 2)
            rank = (rank + spec->universe / 2) % spec->universe;
        t->ids[i] = rank;
    }
    t->n = spec->requests;
    free(cdf);
    return 0;
}

void hs_trace_free(struct hs_trace *t)
{
    free(t->ids);
    t->ids = NULL;
    t->n = 0;
}

void hs_key(uint64_t id, char key[17])
{
    snprintf(key, 17, "%016llx", (unsigned long long)id);
}

/* ---- the simulated caches ---- */

/* One entry: its id, its place in the policy's order (newer/older), its
 * hash chain, and the mark SIEVE and CLOCK keep. */
struct node {
    uint64_t id;
    uint32_t newer, older, chain;
    bool visited;
};

struct hs_cache {
    enum hs_policy policy;
    uint32_t capacity, used;
    struct node *nodes;
    uint32_t *buckets, mask;
    uint32_t newest, oldest; /* LRU: most and least recently used; SIEVE: insertion order */
    uint32_t hand;           /* SIEVE: the node to look at next (NONE: start at the oldest); CLOCK: slot */
};

static uint32_t bucket_of(const struct hs_cache *c, uint64_t id)
{
    uint64_t s = id;
    return (uint32_t)splitmix64(&s) & c->mask;
}

struct hs_cache *hs_cache_new(enum hs_policy policy, uint64_t capacity)
{
    if (capacity == 0 || capacity >= NONE / 4)
        return NULL;
    struct hs_cache *c = calloc(1, sizeof *c);
    uint32_t nb = 1;
    while (nb < 2 * capacity)
        nb *= 2;
    if (c) {
        c->nodes = calloc(capacity, sizeof *c->nodes);
        c->buckets = malloc(nb * sizeof *c->buckets);
    }
    if (!c || !c->nodes || !c->buckets) {
        hs_cache_free(c);
        return NULL;
    }
    for (uint32_t i = 0; i < nb; i++)
        c->buckets[i] = NONE;
    c->policy = policy;
    c->capacity = (uint32_t)capacity;
    c->mask = nb - 1;
    c->newest = c->oldest = c->hand = NONE;
    if (policy == HS_CLOCK)
        c->hand = 0;
    return c;
}

void hs_cache_free(struct hs_cache *c)
{
    if (!c)
        return;
    free(c->nodes);
    free(c->buckets);
    free(c);
}

static uint32_t lookup(const struct hs_cache *c, uint64_t id)
{
    for (uint32_t n = c->buckets[bucket_of(c, id)]; n != NONE; n = c->nodes[n].chain)
        if (c->nodes[n].id == id)
            return n;
    return NONE;
}

static void hash_insert(struct hs_cache *c, uint32_t n)
{
    uint32_t b = bucket_of(c, c->nodes[n].id);
    c->nodes[n].chain = c->buckets[b];
    c->buckets[b] = n;
}

static void hash_remove(struct hs_cache *c, uint32_t n)
{
    uint32_t *p = &c->buckets[bucket_of(c, c->nodes[n].id)];
    while (*p != n)
        p = &c->nodes[*p].chain;
    *p = c->nodes[n].chain;
}

static void list_unlink(struct hs_cache *c, uint32_t n)
{
    struct node *x = &c->nodes[n];
    if (x->newer != NONE)
        c->nodes[x->newer].older = x->older;
    else
        c->newest = x->older;
    if (x->older != NONE)
        c->nodes[x->older].newer = x->newer;
    else
        c->oldest = x->newer;
}

static void list_push_newest(struct hs_cache *c, uint32_t n)
{
    struct node *x = &c->nodes[n];
    x->newer = NONE;
    x->older = c->newest;
    if (c->newest != NONE)
        c->nodes[c->newest].newer = n;
    else
        c->oldest = n;
    c->newest = n;
}

/* SIEVE's eviction: the hand walks from old to new, clearing marks, and
 * wraps to the oldest; the first unmarked node goes.  Returns its slot. */
static uint32_t sieve_evict(struct hs_cache *c)
{
    uint32_t p = c->hand != NONE ? c->hand : c->oldest;
    while (c->nodes[p].visited) {
        c->nodes[p].visited = false;
        p = c->nodes[p].newer != NONE ? c->nodes[p].newer : c->oldest;
    }
    c->hand = c->nodes[p].newer; /* NONE: start over at the oldest */
    list_unlink(c, p);
    return p;
}

/* CLOCK over a ring of slots: the victim's slot takes the new entry and
 * the hand moves past it, so a new entry is looked at after a full turn. */
static uint32_t clock_evict(struct hs_cache *c)
{
    while (c->nodes[c->hand].visited) {
        c->nodes[c->hand].visited = false;
        c->hand = (c->hand + 1) % c->capacity;
    }
    uint32_t p = c->hand;
    c->hand = (c->hand + 1) % c->capacity;
    return p;
}

bool hs_cache_access(struct hs_cache *c, uint64_t id)
{
    uint32_t n = lookup(c, id);
    if (n != NONE) {
        if (c->policy == HS_LRU) {
            list_unlink(c, n);
            list_push_newest(c, n);
        } else {
            c->nodes[n].visited = true;
        }
        return true;
    }
    if (c->used < c->capacity) {
        n = c->used++;
    } else {
        if (c->policy == HS_LRU) {
            n = c->oldest;
            list_unlink(c, n);
        } else if (c->policy == HS_SIEVE) {
            n = sieve_evict(c);
        } else {
            n = clock_evict(c);
        }
        hash_remove(c, n);
    }
    c->nodes[n].id = id;
    c->nodes[n].visited = false;
    hash_insert(c, n);
    if (c->policy != HS_CLOCK)
        list_push_newest(c, n);
    return false;
}

double hs_simulate(enum hs_policy policy, uint64_t capacity, const struct hs_trace *t, uint64_t from)
{
    struct hs_cache *c = hs_cache_new(policy, capacity);
    if (!c)
        return -1;
    uint64_t hits = 0;
    for (uint64_t i = 0; i < t->n; i++)
        if (hs_cache_access(c, t->ids[i]) && i >= from)
            hits++;
    hs_cache_free(c);
    return t->n > from ? 100.0 * (double)hits / (double)(t->n - from) : 0;
}

const char *hs_policy_name(enum hs_policy policy)
{
    switch (policy) {
    case HS_LRU:
        return "lru";
    case HS_SIEVE:
        return "sieve";
    case HS_CLOCK:
        return "clock";
    }
    return "?";
}

/* ---- the real map ---- */

int hs_run_map(hmm_t *m, const struct hs_trace *t, size_t value_bytes, double *hit_pct)
{
    char key[17], *val = malloc(value_bytes ? value_bytes : 1);
    if (!val)
        return -ENOMEM;
    uint64_t hits = 0;
    int rc = 0;
    for (uint64_t i = 0; i < t->n && rc == 0; i++) {
        hs_key(t->ids[i], key);
        size_t len = value_bytes;
        rc = hmm_get(m, key, 16, val, &len);
        if (rc == 0) {
            hits++;
        } else if (rc == HMM_NOTFOUND) {
            memset(val, (int)(t->ids[i] & 0xff), value_bytes);
            rc = hmm_put(m, key, 16, val, value_bytes, 0, 0);
        }
    }
    free(val);
    *hit_pct = t->n ? 100.0 * (double)hits / (double)t->n : 0;
    return rc;
}
