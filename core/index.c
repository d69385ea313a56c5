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
 */
#include "config.h"

#include <string.h>

#include "core/internal.h"

static inline uint64_t next_bucket(const hmm_t *m, uint64_t b)
{
    return b + 1 == m->index_buckets ? 0 : b + 1;
}

uint64_t index_lookup(hmm_t *m, uint64_t hash, const void *key, size_t klen,
                      hmm_atomic_u64 **slot, int *rc)
{
    uint16_t tag = hash_tag(hash);
    uint64_t b = hash_home(m, hash);
    for (unsigned probe = 0; probe < HMM_MAX_PROBE; probe++) {
        struct hmm_bucket *bk = &m->index[b];
        for (unsigned j = 0; j < HMM_BUCKET_SLOTS; j++) {
            /* Acquire pairs with the publisher's release: the entry's bytes
             * are visible once its slot is. */
            uint64_t s = atomic_load_explicit(&bk->slot[j], memory_order_acquire);
            if (s == 0 || HMM_SLOT_TAG(s) != tag)
                continue;
            uint64_t off = HMM_SLOT_OFF(s);
            struct hmm_entry *e = entry_at(m, off);
            if (!e || !hmm_at(m, off, entry_bytes(klen, 0))) {
                /* Out of bounds: corrupt, unless a racing writer reused the
                 * chunk (the caller's seq check tells which). */
                *rc = HMM_CORRUPT;
                return 0;
            }
            if (*(volatile uint16_t *)&e->klen != klen || memcmp(entry_key(e), key, klen) != 0)
                continue;
            *slot = &bk->slot[j];
            return off;
        }
        if (atomic_load_explicit(&bk->meta, memory_order_relaxed) == 0)
            break;
        b = next_bucket(m, b);
    }
    return 0;
}

int index_insert_locked(hmm_t *m, uint64_t hash, uint64_t off)
{
    uint64_t want = HMM_SLOT_MAKE(hash_tag(hash), off);
    uint64_t b = hash_home(m, hash);
    unsigned passed;
    for (passed = 0; passed < HMM_MAX_PROBE; passed++) {
        struct hmm_bucket *bk = &m->index[b];
        for (unsigned j = 0; j < HMM_BUCKET_SLOTS; j++) {
            uint64_t expect = 0;
            /* Slots are shared with keys of other stripes: claim by CAS.
             * Release publishes the entry and the overflow counts before it. */
            if (atomic_load_explicit(&bk->slot[j], memory_order_relaxed) == 0 &&
                atomic_compare_exchange_strong_explicit(&bk->slot[j], &expect, want, memory_order_release,
                                                        memory_order_relaxed))
                return 0;
        }
        atomic_fetch_add_explicit(&bk->meta, 1, memory_order_relaxed);
        b = next_bucket(m, b);
    }
    /* No room within reach: take our counts back. */
    b = hash_home(m, hash);
    for (unsigned i = 0; i < passed; i++, b = next_bucket(m, b))
        atomic_fetch_sub_explicit(&m->index[b].meta, 1, memory_order_relaxed);
    return HMM_FULL;
}

void index_remove_locked(hmm_t *m, uint64_t hash, hmm_atomic_u64 *slot)
{
    atomic_store_explicit(slot, 0, memory_order_release);
    uint64_t at = (uint64_t)((uint8_t *)slot - (uint8_t *)m->index) / sizeof(struct hmm_bucket);
    for (uint64_t b = hash_home(m, hash); b != at; b = next_bucket(m, b)) {
        /* Never below zero: a crash may leave counts too high, never too low. */
        uint64_t v = atomic_load_explicit(&m->index[b].meta, memory_order_relaxed);
        while (v > 0 && !atomic_compare_exchange_weak_explicit(&m->index[b].meta, &v, v - 1,
                                                               memory_order_relaxed, memory_order_relaxed))
            ;
    }
}

bool index_reachable_locked(hmm_t *m, uint64_t hash, uint64_t off)
{
    /* Recovery does not trust the overflow counts: it looks at every
     * bucket a key can live in. */
    uint64_t want = HMM_SLOT_MAKE(hash_tag(hash), off);
    uint64_t b = hash_home(m, hash);
    for (unsigned probe = 0; probe < HMM_MAX_PROBE; probe++, b = next_bucket(m, b))
        for (unsigned j = 0; j < HMM_BUCKET_SLOTS; j++)
            if (atomic_load(&m->index[b].slot[j]) == want)
                return true;
    return false;
}
