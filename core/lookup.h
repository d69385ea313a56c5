/*
 * lookup.h - finding a key in the hash index (FORMAT.md §7), inline because
 * it is most of a get.  Lock-free: callers validate with the stripe's seq,
 * or hold the stripe lock.
 */
#ifndef HMM_LOOKUP_H
#define HMM_LOOKUP_H

#include <string.h>

#include "core/internal.h"

static inline uint64_t index_lookup(hmm_t *m, const struct hmm_ix *ix, uint64_t hash, const void *key, size_t klen,
                      hmm_atomic_u64 **slot, int *rc)
{
    uint16_t tag = hash_tag(hash);
    uint64_t b = hash_home(ix, hash);
    for (unsigned probe = 0; probe < HMM_MAX_PROBE; probe++) {
        struct hmm_bucket *bk = &ix->bk[b];
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
        b = ix_next(ix, b);
    }
    return 0;
}

static inline uint64_t index_find(hmm_t *m, uint64_t hash, const void *key, size_t klen, hmm_atomic_u64 **slot,
                    struct hmm_ix *in, int *rc)
{
    struct hmm_ix cur, old;
    *rc = index_views(m, &cur, &old);
    if (*rc)
        return 0;
    uint64_t off = index_lookup(m, &cur, hash, key, klen, slot, rc);
    *in = cur;
    if (off || *rc || old.nb == 0)
        return off;
    *in = old;
    return index_lookup(m, &old, hash, key, klen, slot, rc);
}

#endif /* HMM_LOOKUP_H */
