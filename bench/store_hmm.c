/*
 * store_hmm.c - hashmmap itself, in the variants the benchmark compares:
 * a map in a directory, an anonymous (memfd) map, a cache map, a map
 * created without a replication log, and a handle that counts no metrics.
 * One adapter; the variant is the kind's `arg` (hmm_config flags, plus
 * ANON below).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <hashmmap.h>

#include "bench/hmmbench.h"

#define ANON 0x80000000u /* not an hmm_config flag: use hmm_open_anon */

struct hmm_store {
    hmm_t *m;
    char dir[512];
};

static void *hmm_store_open(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    struct hmm_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    /* Room for every entry (header, key, value, slab rounding) with
     * slack, and leave to grow to twice that if the estimate is short.
     * At 1 M entries of 8 bytes that is about 130 MiB. */
    uint64_t size = entries * (32 + KEY_LEN + vlen + 16) * 3 / 2 + (16u << 20);
    hmm_config cfg = {.size = size, .max_size = 2 * size, .flags = HMM_CREATE | (k->arg & ~ANON)};
    int rc;
    if (k->arg & ANON) {
        rc = hmm_open_anon(&s->m, &cfg);
    } else {
        bench_path(s->dir, sizeof s->dir, k->id);
        rc = hmm_open(&s->m, s->dir, &cfg);
    }
    if (rc) {
        fprintf(stderr, "hmmbench: %s: %s (%s)\n", k->name, hmm_strerror(rc), hmm_last_error());
        *why = "hmm_open failed";
        free(s);
        return NULL;
    }
    return s;
}

static int hmm_store_get(void *h, const char *key, void *val, size_t *vlen)
{
    return hmm_get(((struct hmm_store *)h)->m, key, KEY_LEN, val, vlen);
}

static int hmm_store_get_batch(void *h, const char *const keys[], size_t n, char (*vals)[VAL_MAX], size_t vlens[])
{
    size_t klens[BATCH_MAX] = {0};
    void *vp[BATCH_MAX] = {0};
    int rcs[BATCH_MAX], failed = 0;
    for (size_t i = 0; i < n; i++) {
        klens[i] = KEY_LEN;
        vp[i] = vals[i];
        vlens[i] = VAL_MAX;
    }
    if (hmm_get_batch(((struct hmm_store *)h)->m, n, (const void *const *)keys, klens, vp, vlens, rcs, NULL) != 0)
        return (int)n;
    for (size_t i = 0; i < n; i++)
        failed += rcs[i] != 0;
    return failed;
}

static int hmm_store_put(void *h, const char *key, const void *val, size_t vlen)
{
    return hmm_put(((struct hmm_store *)h)->m, key, KEY_LEN, val, vlen, 0, 0);
}

static int hmm_store_incr(void *h, const char *key)
{
    return hmm_incr(((struct hmm_store *)h)->m, key, KEY_LEN, 1, NULL);
}

/* The index's fill: past about half of a format-2 index's slots, a share
 * of the keys lies past its home bucket and its gets read two lines
 * (bench/README.md, eleventh stop). */
static void hmm_store_describe(void *h, char *buf, size_t cap)
{
    hmm_stats st;
    if (hmm_stat(((struct hmm_store *)h)->m, &st) != 0 || st.index_slots == 0) {
        snprintf(buf, cap, "no statistics");
        return;
    }
    snprintf(buf, cap, "index %.0f%% full (%llu entries, %llu slots in %llu buckets), format %u",
             100.0 * (double)st.items / (double)st.index_slots, (unsigned long long)st.items,
             (unsigned long long)st.index_slots, (unsigned long long)st.index_buckets, st.format_version);
}

static void hmm_store_close(void *h)
{
    struct hmm_store *s = h;
    hmm_close(s->m);
    if (s->dir[0])
        bench_remove(s->dir);
    free(s);
}

#define HMM_KIND(ident, label, flags, what)                                                                 \
    const struct store_kind ident = {.id = #ident + 6, .name = label, .note = what, .open = hmm_store_open, \
                                     .get = hmm_store_get, .get_batch = hmm_store_get_batch,              \
                                     .put = hmm_store_put, .incr = hmm_store_incr,   \
                                     .describe = hmm_store_describe, .close = hmm_store_close, .arg = flags}

HMM_KIND(store_hmm_file, "hashmmap file map", 0,
         "hashmmap file map: a map in a directory, with its replication log (every put appended to"
         " DIR/hashmmap.replog)");
HMM_KIND(store_hmm_anon, "hashmmap anonymous map", ANON, "hashmmap anonymous map: hmm_open_anon (memfd)");
HMM_KIND(store_hmm_cache, "hashmmap cache map", HMM_CACHE,
         "hashmmap cache map: HMM_CACHE; sized so that nothing is evicted here, so this is the plain map"
         " plus the recency marks");
HMM_KIND(store_hmm_noreplog, "hashmmap no replog", HMM_NOREPLOG,
         "hashmmap no replog: a file map created with HMM_NOREPLOG, the cost of the replication log");
HMM_KIND(store_hmm_nometrics, "hashmmap metrics off", HMM_NOMETRICS,
         "hashmmap metrics off: HMM_NOMETRICS, the cost of counting");
HMM_KIND(store_hmm_inline, "hashmmap HMM_INLINE map", HMM_INLINE,
         "hashmmap HMM_INLINE map: a file map of format 2, whose index cells keep a copy of each entry of"
         " up to 16 + 8 bytes, with its replication log");
