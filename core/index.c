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
#include "core/lookup.h"

int hmm__index_view_slow(hmm_t *m, uint64_t word, struct hmm_ix *ix)
{
    ix->nb = 0;
    ix->bk = NULL;
    ix->ovf = NULL;
    /* Only index_cur reaches here with a word that may be 0 (index_old 0
     * means "none" and is filtered out before): a map always has an index. */
    if (word == 0)
        return hmm_fail(HMM_CORRUPT, "%s: the map has no hash index (index_cur is 0)", m->path);
    uint64_t nb = HMM_INDEX_BUCKETS(word);
    uint64_t off = map_page_off(m, HMM_INDEX_PAGE(word));
    void *p = nb >= HMM_MAX_PROBE ? hmm_at(m, off, hmm__index_run_bytes(nb, m->cells)) : NULL;
    if (!p)
        return hmm_fail(HMM_CORRUPT, "%s: the index lies outside the map", m->path);
    ix->bk = p;
    ix->nb = nb;
    ix->ovf = m->cells ? (_Atomic uint8_t *)(void *)(ix->bk + nb) : NULL;
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
    v->old.ovf = NULL;
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

int hmm__index_insert_locked(hmm_t *m, const struct hmm_ix *ix, uint64_t hash, uint64_t off, unsigned *passed,
                             hmm_atomic_u64 **slot)
{
    (void)m;
    uint64_t want = HMM_SLOT_MAKE(hash_tag(hash), off);
    uint64_t b = hash_home(ix, hash);
    unsigned n, slots = ix_slots(ix);
    for (n = 0; n < HMM_MAX_PROBE; n++) {
        for (unsigned j = 0; j < slots; j++) {
            hmm_atomic_u64 *sj = ix_slot(ix, b, j);
            uint64_t expect = 0;
            /* Slots are shared with keys of other stripes: claim by CAS.
             * Release publishes the entry and the overflow counts before it. */
            if (atomic_load_explicit(sj, memory_order_relaxed) == 0 &&
                atomic_compare_exchange_strong_explicit(sj, &expect, want, memory_order_release,
                                                        memory_order_relaxed)) {
                *passed = n;
                if (slot)
                    *slot = sj;
                return 0;
            }
        }
        ix_overflow_add(ix, b);
        b = ix_next(ix, b);
    }
    /* No room within reach: take our counts back. */
    b = hash_home(ix, hash);
    for (unsigned i = 0; i < n; i++, b = ix_next(ix, b))
        ix_overflow_sub(ix, b);
    *passed = n;
    return HMM_FULL;
}

void hmm__index_remove_locked(hmm_t *m, const struct hmm_ix *ix, uint64_t hash, hmm_atomic_u64 *slot)
{
    (void)m;
    atomic_store_explicit(slot, 0, memory_order_release);
    uint64_t at = ix_bucket_of(ix, slot);
    /* Never below zero: a crash may leave counts too high, never too low. */
    for (uint64_t b = hash_home(ix, hash); b != at; b = ix_next(ix, b))
        ix_overflow_sub(ix, b);
}

/* Write a copy into a cell whose word the caller stored without one. */
static void cell_write_copy(hmm_atomic_u64 *slot, unsigned shape, const uint64_t key[2], uint64_t val)
{
    struct hmm_cell *c = (struct hmm_cell *)(void *)slot; /* the word is the cell's first field */
    /* The word without a copy was stored first: a reader that sees one of
     * the bytes below and then fences sees that word changed (read.c). */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&c->key[0], key[0], memory_order_relaxed);
    HMM_CRASHPOINT("cell_copying");
    atomic_store_explicit(&c->key[1], key[1], memory_order_relaxed);
    atomic_store_explicit(&c->val, val, memory_order_relaxed);
    uint64_t w = atomic_load_explicit(slot, memory_order_relaxed);
    /* Release: a reader that sees the shape sees the bytes. */
    atomic_store_explicit(slot, HMM_SLOT_WITH_SHAPE(w, shape), memory_order_release);
}

void hmm__cell_copy_locked(hmm_atomic_u64 *slot, const struct hmm_entry *e)
{
    size_t klen = e->klen, vlen = e->vlen;
    if (klen - 1 >= HMM_CELL_KEY_MAX || vlen - 1 >= HMM_CELL_VAL_MAX || e->expire_ms)
        return; /* no copy: gets read the chunk, whose expiry they must check */
    uint64_t key[2], val[2];
    cell_words((const uint8_t *)e + HMM_ENTRY_HDR, klen, key);
    cell_words((const uint8_t *)e + HMM_ENTRY_HDR + klen, vlen, val);
    cell_write_copy(slot, HMM_SHAPE_MAKE(klen, vlen), key, val[0]);
}

void hmm__cell_copy_cell_locked(hmm_atomic_u64 *slot, const struct hmm_cell *from)
{
    uint64_t key[2] = {atomic_load_explicit(&from->key[0], memory_order_relaxed),
                       atomic_load_explicit(&from->key[1], memory_order_relaxed)};
    cell_write_copy(slot, HMM_SLOT_SHAPE(atomic_load_explicit(&from->word, memory_order_relaxed)), key,
                    atomic_load_explicit(&from->val, memory_order_relaxed));
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
        for (unsigned j = 0; j < ix_slots(ix); j++) {
            hmm_atomic_u64 *sj = ix_slot(ix, b, j);
            if (HMM_SLOT_BARE(atomic_load(sj)) == want)
                return sj;
        }
    return NULL;
}

bool hmm__index_reachable_locked(hmm_t *m, uint64_t hash, uint64_t off)
{
    struct hmm_ix cur, old;
    if (index_views(m, &cur, &old) != 0)
        return false;
    return hmm__index_slot_of_locked(&cur, hash, off) || hmm__index_slot_of_locked(&old, hash, off);
}
