/*
 * lookup.h - finding a key in the hash index (FORMAT.md §7), inline because
 * it is most of a get.  Lock-free: callers validate with the stripe's seq,
 * or hold the stripe lock.
 */
#ifndef HMM_LOOKUP_H
#define HMM_LOOKUP_H

#include <string.h>

#include "core/internal.h"

/* The slots of a bucket whose tag matches, as a bit mask, with the slots'
 * values in s[].  Computed without a branch per slot: which slot holds a
 * key is random, so such branches mispredict about once a lookup, and the
 * misprediction resolves only when the bucket's line arrives from memory,
 * squashing the work (the next lookup's loads) the CPU had started past it. */
static inline unsigned bucket_match(struct hmm_bucket *bk, uint16_t tag, uint64_t s[HMM_BUCKET_SLOTS])
{
    uint64_t want = (uint64_t)tag << 48;
    unsigned mask = 0;
#pragma GCC unroll 8
    for (unsigned j = 0; j < HMM_BUCKET_SLOTS; j++) {
        /* Acquire pairs with the publisher's release: the entry's bytes
         * are visible once its slot is. */
        s[j] = atomic_load_explicit(&bk->slot[j], memory_order_acquire);
        /* An empty slot (0) matches tag 0 too; the caller skips it. */
        mask |= (unsigned)((s[j] ^ want) >> 48 == 0) << j;
    }
    return mask;
}

/* Keys are short (16 bytes is the common case): two overlapping 8-byte
 * loads per side instead of a call to memcmp. */
static inline bool key_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a0, a1, b0, b1;
        memcpy(&a0, a, 8);
        memcpy(&a1, a + n - 8, 8);
        memcpy(&b0, b, 8);
        memcpy(&b1, b + n - 8, 8);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    return memcmp(a, b, n) == 0;
}

static inline __attribute__((always_inline)) uint64_t index_lookup(hmm_t *m, const struct hmm_ix *ix, uint64_t hash, const void *key, size_t klen,
                      hmm_atomic_u64 **slot, int *rc)
{
    uint16_t tag = hash_tag(hash);
    uint64_t b = hash_home(ix, hash);
    for (unsigned probe = 0; probe < HMM_MAX_PROBE; probe++) {
        struct hmm_bucket *bk = &ix->bk[b];
        uint64_t s[HMM_BUCKET_SLOTS];
        for (unsigned mask = bucket_match(bk, tag, s); mask; mask &= mask - 1) {
            unsigned j = (unsigned)__builtin_ctz(mask);
            if (__builtin_expect(s[j] == 0, 0))
                continue;
            uint64_t off = HMM_SLOT_OFF(s[j]);
            struct hmm_entry *e = entry_at(m, off);
            if (!e || !hmm_at(m, off, entry_bytes(klen, 0))) {
                /* Out of bounds: corrupt, unless a racing writer reused the
                 * chunk (the caller's seq check tells which). */
                *rc = HMM_CORRUPT;
                return 0;
            }
            if (*(volatile uint16_t *)&e->klen != klen || !key_equal(entry_key(e), key, klen))
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

static inline __attribute__((always_inline)) uint64_t index_find(hmm_t *m, uint64_t hash, const void *key, size_t klen, hmm_atomic_u64 **slot,
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
