/*
 * index.c - the hash index (FORMAT.md §7): buckets of 7 slots on one cache
 * line, linear probing between buckets, and a per-bucket overflow count
 * instead of tombstones.
 *
 * Invariant: for every published key K living d buckets past its home,
 * each of those d buckets has an overflow count that includes K.  Inserts
 * count before they publish, deletes uncount after they unpublish, so a
 * lock-free reader that stops at a bucket with a zero count has not missed
 * a key that was present throughout its read.
 *
 * While the index grows (grow.c) there are two: new keys go to the current
 * one, and lookups try the current one, then the one being drained.
 */
#include "config.h"

#include <string.h>

#include "core/internal.h"

int hmm__index_view_slow(hmm_t *m, uint64_t word, struct hmm_ix *ix)
{
    ix->nb = 0;
    ix->bk = NULL;
    /* Only index_cur reaches here with a word that may be 0 (index_old 0
     * means "none" and is filtered out before): a map always has an index. */
    if (word == 0)
        return hmm_fail(HMM_CORRUPT, "%s: the map has no hash index (index_cur is 0)", m->path);
    uint64_t nb = HMM_INDEX_BUCKETS(word);
    uint64_t off = map_page_off(m, HMM_INDEX_PAGE(word));
    void *p = nb >= HMM_MAX_PROBE ? hmm_at(m, off, nb * sizeof(struct hmm_bucket)) : NULL;
    if (!p)
        return hmm_fail(HMM_CORRUPT, "%s: the index lies outside the map", m->path);
    ix->bk = p;
    ix->nb = nb;
    return 0;
}

/* Decode both words into v (the rule of index_views(): old equal to current
 * is a growth's crash state and reads as none). */
static int view_decode(hmm_t *m, uint64_t wc, uint64_t wo, struct hmm__view *v)
{
    v->word_cur = wc;
    v->word_old = wo;
    v->old.nb = 0;
    v->old.bk = NULL;
    int rc = index_view(m, wc, &v->cur);
    if (rc == 0 && wo != 0 && wo != wc)
        rc = index_view(m, wo, &v->old);
    return rc;
}

const struct hmm__view *hmm__index_view_refresh(hmm_t *m, uint64_t wc, uint64_t wo, struct hmm__view *scratch,
                                                int *rc)
{
    *rc = view_decode(m, wc, wo, scratch);
    if (*rc)
        return NULL;
    /* Another thread filling the cache right now: this get uses its own
     * copy rather than wait. */
    if (atomic_flag_test_and_set_explicit(&m->view_building, memory_order_acquire))
        return scratch;
    uint32_t used = atomic_load_explicit(&m->views_used, memory_order_relaxed);
    if (used < HMM_VIEW_SLOTS) {
        m->views[used] = *scratch;
        atomic_store_explicit(&m->views_used, used + 1, memory_order_relaxed);
        /* Release: a reader that loads the pointer sees the fields. */
        atomic_store_explicit(&m->view, &m->views[used], memory_order_release);
    }
    /* Release pairs with the next filler's acquire of the flag. */
    atomic_flag_clear_explicit(&m->view_building, memory_order_release);
    return scratch;
}

int hmm__index_insert_locked(hmm_t *m, const struct hmm_ix *ix, uint64_t hash, uint64_t off, unsigned *passed)
{
    uint64_t want = HMM_SLOT_MAKE(hash_tag(hash), off);
    uint64_t b = hash_home(ix, hash);
    unsigned n;
    for (n = 0; n < HMM_MAX_PROBE; n++) {
        struct hmm_bucket *bk = &ix->bk[b];
        for (unsigned j = 0; j < HMM_BUCKET_SLOTS; j++) {
            uint64_t expect = 0;
            /* Slots are shared with keys of other stripes: claim by CAS.
             * Release publishes the entry and the overflow counts before it. */
            if (atomic_load_explicit(&bk->slot[j], memory_order_relaxed) == 0 &&
                atomic_compare_exchange_strong_explicit(&bk->slot[j], &expect, want, memory_order_release,
                                                        memory_order_relaxed)) {
                *passed = n;
                return 0;
            }
        }
        atomic_fetch_add_explicit(&bk->meta, 1, memory_order_relaxed);
        b = ix_next(ix, b);
    }
    /* No room within reach: take our counts back. */
    b = hash_home(ix, hash);
    for (unsigned i = 0; i < n; i++, b = ix_next(ix, b))
        atomic_fetch_sub_explicit(&ix->bk[b].meta, 1, memory_order_relaxed);
    *passed = n;
    return HMM_FULL;
}

void hmm__index_remove_locked(hmm_t *m, const struct hmm_ix *ix, uint64_t hash, hmm_atomic_u64 *slot)
{
    atomic_store_explicit(slot, 0, memory_order_release);
    uint64_t at = (uint64_t)((uint8_t *)slot - (uint8_t *)ix->bk) / sizeof(struct hmm_bucket);
    for (uint64_t b = hash_home(ix, hash); b != at; b = ix_next(ix, b)) {
        /* Never below zero: a crash may leave counts too high, never too low. */
        uint64_t v = atomic_load_explicit(&ix->bk[b].meta, memory_order_relaxed);
        while (v > 0 && !atomic_compare_exchange_weak_explicit(&ix->bk[b].meta, &v, v - 1,
                                                               memory_order_relaxed, memory_order_relaxed))
            ;
    }
}

hmm_atomic_u64 *hmm__index_slot_of_locked(const struct hmm_ix *ix, uint64_t hash, uint64_t off)
{
    /* Recovery does not trust the overflow counts: it looks at every
     * bucket a key can live in. */
    if (ix->nb == 0)
        return NULL;
    uint64_t want = HMM_SLOT_MAKE(hash_tag(hash), off);
    uint64_t b = hash_home(ix, hash);
    for (unsigned probe = 0; probe < HMM_MAX_PROBE; probe++, b = ix_next(ix, b))
        for (unsigned j = 0; j < HMM_BUCKET_SLOTS; j++)
            if (atomic_load(&ix->bk[b].slot[j]) == want)
                return &ix->bk[b].slot[j];
    return NULL;
}

bool hmm__index_reachable_locked(hmm_t *m, uint64_t hash, uint64_t off)
{
    struct hmm_ix cur, old;
    if (index_views(m, &cur, &old) != 0)
        return false;
    return hmm__index_slot_of_locked(&cur, hash, off) || hmm__index_slot_of_locked(&old, hash, off);
}
