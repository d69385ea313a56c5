/*
 * lookup.h - finding a key in the hash index (FORMAT.md §7), inline because
 * it is most of a get.  Lock-free: callers validate with the stripe's seq,
 * or hold the stripe lock.
 */
#ifndef HMM_LOOKUP_H
#define HMM_LOOKUP_H

#include <string.h>

#include "core/internal.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The slots of a bucket whose tag matches, as a bit mask: bit 2j + 3 for
 * slot j (bucket_word() turns the lowest set bit into the slot; the bits are
 * where the compare leaves them, which saves gathering them).  Computed
 * without a branch per slot: which slot holds a key is random, so such
 * branches mispredict about once a lookup, and the misprediction resolves
 * only when the bucket's line arrives from memory, squashing the work (the
 * next lookup's loads) the CPU had started past it.  An empty slot (0)
 * matches tag 0 too; the caller loads each matching slot and skips it.
 * Only a hint: the caller's load of the slot decides. */
static inline unsigned bucket_match(const struct hmm_bucket *bk, uint16_t tag)
{
#if defined(__SSE2__)
    /* The bucket is one aligned line: four 16-byte loads, each 8-byte half
     * read whole, compared as 16-bit lanes; a word's tag is its top lane
     * (3 and 7 of each load).  Two saturating packs fold each such lane
     * into the sign of an odd byte: the first keeps lanes as bytes (0 or
     * -1), the second reads byte pairs as 16-bit lanes, whose sign is the
     * odd byte's.  So word w (0 being meta) lands on bit 2w + 1. */
    const __m128i *line = (const __m128i *)(const void *)bk;
    __m128i want = _mm_set1_epi16((short)tag);
    __m128i p01 = _mm_packs_epi16(_mm_cmpeq_epi16(_mm_load_si128(line), want),
                                  _mm_cmpeq_epi16(_mm_load_si128(line + 1), want));
    __m128i p23 = _mm_packs_epi16(_mm_cmpeq_epi16(_mm_load_si128(line + 2), want),
                                  _mm_cmpeq_epi16(_mm_load_si128(line + 3), want));
    return (unsigned)_mm_movemask_epi8(_mm_packs_epi16(p01, p23)) & 0xaaa8u; /* drop meta */
#else
    uint64_t want = (uint64_t)tag << 48;
    unsigned mask = 0;
#pragma GCC unroll 8
    for (unsigned j = 0; j < HMM_BUCKET_SLOTS; j++)
        mask |= (unsigned)((atomic_load_explicit(&bk->slot[j], memory_order_relaxed) ^ want) >> 48 == 0) << (2 * j + 3);
    return mask;
#endif
}
_Static_assert(HMM_BUCKET_SLOTS == 7 && sizeof(struct hmm_bucket) == 64, "bucket_match reads one 64-byte line");

/* The slot of a bucket_match() mask's lowest bit, as a pointer: bit
 * 2w + 1 stands for the line's word w (meta being word 0), at byte
 * 8w = 4 * (bit - 1), so the address is one scaled add of the bit's
 * index (turning the bit into the slot's number j first took four more
 * instructions). */
static inline hmm_atomic_u64 *bucket_word(const struct hmm_bucket *bk, unsigned mask)
{
    return (hmm_atomic_u64 *)(void *)((uint8_t *)(uintptr_t)bk + 4 * (size_t)(unsigned)__builtin_ctz(mask) - 4);
}
_Static_assert(offsetof(struct hmm_bucket, slot) == 8 && sizeof(hmm_atomic_u64) == 8, "bucket_word's arithmetic");

/* The bits that differ between a and b (n bytes) in their first and in
 * their last w bytes (w is 8 or 4, n at least w): the two loads overlap
 * when n < 2w. */
static inline __attribute__((always_inline)) uint64_t key_ends_diff(const uint8_t *a, const uint8_t *b, size_t n,
                                                                    size_t w)
{
    uint64_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
    memcpy(&a0, a, w);
    memcpy(&a1, a + n - w, w);
    memcpy(&b0, b, w);
    memcpy(&b1, b + n - w, w);
    return (a0 ^ b0) | (a1 ^ b1);
}

/* Keys are short (16 bytes is the common case): up to 16 bytes are
 * compared inline, by two overlapping loads from each end (8 or 4 bytes),
 * or for 1 to 3 bytes the first, middle and last, which cover them all:
 * no call to memcmp, whose registers the caller would have to keep.  Each
 * way leaves the bits that differ in one word, tested once. */
static inline bool key_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint64_t diff;
    if (__builtin_expect(n - 8 <= 8, 1)) /* 8 to 16 bytes */
        diff = key_ends_diff(a, b, n, 8);
    else if (n - 4 < 4)
        diff = key_ends_diff(a, b, n, 4);
    else if (n - 1 < 3)
        diff = (unsigned)(a[0] ^ b[0]) | (unsigned)(a[n / 2] ^ b[n / 2]) | (unsigned)(a[n - 1] ^ b[n - 1]);
    else
        return memcmp(a, b, n) == 0; /* longer, or 0 bytes */
    return diff == 0;
}

/* 1 to 16 bytes (a key, or a value of up to 8) as a cell keeps its copy:
 * zero-padded, in the host's order of two words (what memcpy into them
 * gives).  Never more than 16: the shifts below would be undefined. */
static inline __attribute__((always_inline)) void cell_words(const uint8_t *k, size_t klen, uint64_t w[2])
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Overlapping loads, shifted into place: no call to memcpy for a
     * length the compiler does not know. */
    uint64_t a = 0, b = 0;
    uint32_t x = 0, y = 0;
    if (klen >= 8) {
        memcpy(&a, k, 8);
        if (klen > 8) {
            memcpy(&b, k + klen - 8, 8);
            b >>= 8 * (16 - klen);
        }
    } else if (klen >= 4) {
        memcpy(&x, k, 4);
        memcpy(&y, k + klen - 4, 4);
        a = x | (uint64_t)y << (8 * (klen - 4));
    } else {
        a = k[0] | (uint64_t)k[klen / 2] << (8 * (klen / 2)) | (uint64_t)k[klen - 1] << (8 * (klen - 1));
    }
    w[0] = a;
    w[1] = b;
#else
    w[0] = w[1] = 0;
    memcpy(w, k, klen);
#endif
}

/* The entry at a slot's offset with room for its header and a key of klen
 * bytes, or NULL when that lies outside the data area this process has
 * validated.  Slots hold offsets in units of 8 bytes, so alignment holds by
 * construction. */
static inline struct hmm_entry *lookup_entry_at(hmm_t *m, uint64_t off, size_t klen)
{
    if (__builtin_expect(off < m->data_off, 0))
        return NULL;
    return (struct hmm_entry *)hmm_at(m, off, HMM_ENTRY_HDR + klen);
}

/* Does the entry e (bounds-checked for klen bytes of key) hold key?  Its
 * klen is read once: a racing writer may be reusing the chunk, and the
 * caller's seq check discards whatever was compared then. */
static inline bool lookup_entry_holds(const struct hmm_entry *e, const void *key, size_t klen)
{
    return *(const volatile uint16_t *)&e->klen == klen && key_equal(entry_key((struct hmm_entry *)e), key, klen);
}

/* The match of one slot word sj holding the key's tag: the entry's offset
 * when it holds the key, 0 when not, 0 with *rc set when out of bounds. */
static inline __attribute__((always_inline)) uint64_t lookup_slot(hmm_t *m, uint64_t sj, const void *key,
                                                                 size_t klen, int *rc)
{
    uint64_t off = HMM_SLOT_OFF(sj);
    struct hmm_entry *e = lookup_entry_at(m, off, klen);
    if (__builtin_expect(!e, 0)) {
        /* Out of bounds: corrupt, unless a racing writer reused the
         * chunk (the caller's seq check tells which). */
        *rc = HMM_CORRUPT;
        return 0;
    }
    return lookup_entry_holds(e, key, klen) ? off : 0;
}

/* index_lookup() in format 2: two cells a bucket, read through the chunk
 * (the copies are the fast path's, read.c). */
static inline uint64_t cells_lookup(hmm_t *m, const struct hmm_ix *ix, uint64_t hash, const void *key, size_t klen,
                                    hmm_atomic_u64 **slot, int *rc)
{
    uint16_t tag = hash_tag(hash);
    uint64_t b = hash_home(ix, hash);
    for (unsigned probe = 0; probe < HMM_MAX_PROBE; probe++) {
        for (unsigned j = 0; j < HMM_CELL_SLOTS; j++) {
            hmm_atomic_u64 *word = &ix_cell(ix, b, j)->word;
            uint64_t sj = atomic_load_explicit(word, memory_order_acquire);
            if (sj == 0 || HMM_SLOT_TAG(sj) != tag)
                continue;
            uint64_t off = lookup_slot(m, sj, key, klen, rc);
            if (*rc)
                return 0;
            if (off) {
                *slot = word;
                return off;
            }
        }
        if (ix_overflow(ix, b) == 0)
            break;
        b = ix_next(ix, b);
    }
    return 0;
}

static inline __attribute__((always_inline)) uint64_t index_lookup(hmm_t *m, const struct hmm_ix *ix, uint64_t hash,
                                                                  const void *key, size_t klen, hmm_atomic_u64 **slot,
                                                                  int *rc)
{
    if (ix_cells(ix))
        return cells_lookup(m, ix, hash, key, klen, slot, rc);
    uint16_t tag = hash_tag(hash);
    uint64_t b = hash_home(ix, hash);
    for (unsigned probe = 0; probe < HMM_MAX_PROBE; probe++) {
        struct hmm_bucket *bk = &ix->bk[b];
        for (unsigned mask = bucket_match(bk, tag); mask; mask &= mask - 1) {
            hmm_atomic_u64 *word = bucket_word(bk, mask);
            /* Acquire pairs with the publisher's release: the entry's
             * bytes are visible once its slot is. */
            uint64_t sj = atomic_load_explicit(word, memory_order_acquire);
            if (__builtin_expect(sj == 0 || HMM_SLOT_TAG(sj) != tag, 0))
                continue;
            uint64_t off = HMM_SLOT_OFF(sj);
            struct hmm_entry *e = lookup_entry_at(m, off, klen);
            if (__builtin_expect(!e, 0)) {
                /* Out of bounds: corrupt, unless a racing writer reused the
                 * chunk (the caller's seq check tells which). */
                *rc = HMM_CORRUPT;
                return 0;
            }
            if (!lookup_entry_holds(e, key, klen))
                continue;
            *slot = word;
            return off;
        }
        if (atomic_load_explicit(&bk->meta, memory_order_relaxed) == 0)
            break;
        b = ix_next(ix, b);
    }
    return 0;
}

/* The key in the current index, else in the one being drained. */
static inline __attribute__((always_inline)) uint64_t index_find_in(hmm_t *m, const struct hmm__view *v, uint64_t hash,
                                                                   const void *key, size_t klen, hmm_atomic_u64 **slot,
                                                                   const struct hmm_ix **in, int *rc)
{
    uint64_t off = index_lookup(m, &v->cur, hash, key, klen, slot, rc);
    *in = &v->cur;
    if (off || *rc || v->old.nb == 0)
        return off;
    *in = &v->old;
    return index_lookup(m, &v->old, hash, key, klen, slot, rc);
}

static inline __attribute__((always_inline)) uint64_t index_find(hmm_t *m, uint64_t hash, const void *key, size_t klen,
                                                                hmm_atomic_u64 **slot, struct hmm_ix *in, int *rc)
{
    struct hmm__view scratch;
    *rc = 0;
    const struct hmm__view *v = hmm__index_cached(m, &scratch, rc);
    if (!v)
        return 0;
    const struct hmm_ix *where;
    uint64_t off = index_find_in(m, v, hash, key, klen, slot, &where, rc);
    *in = *where;
    return off;
}

#endif /* HMM_LOOKUP_H */
