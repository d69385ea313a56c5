/*
 * entry.c - the entry (chunk) layout of FORMAT.md §6: bounds-checked
 * access, checksum, expiry, and the key hash.
 */
#include "config.h"

#include <errno.h>

#include "core/internal.h"

struct hmm_entry *hmm__entry_whole_at(hmm_t *m, uint64_t off)
{
    struct hmm_entry *e = entry_at(m, off);
    if (!e)
        return NULL;
    /* klen and vlen are read once: a concurrent writer may change them, and
     * the check must hold for the values the caller then uses. */
    uint32_t vlen = *(volatile uint32_t *)&e->vlen;
    uint16_t klen = *(volatile uint16_t *)&e->klen;
    if (klen == 0 || vlen > m->max_value || !hmm_at(m, off, entry_bytes(klen, vlen)))
        return NULL;
    return e;
}

uint32_t hmm__entry_checksum(const struct hmm_entry *e)
{
    const uint8_t *from = (const uint8_t *)e + offsetof(struct hmm_entry, klen);
    size_t len = entry_bytes(e->klen, e->vlen) - offsetof(struct hmm_entry, klen);
    return (uint32_t)XXH3_64bits(from, len);
}

bool hmm__entry_expired(const struct hmm_entry *e, uint64_t now_ms)
{
    return e->expire_ms != 0 && e->expire_ms <= now_ms;
}

int hmm__check_key_fail(const hmm_t *m, const void *key, size_t klen)
{
    if (!m || !key || klen == 0)
        return hmm_fail(-EINVAL, "NULL handle, NULL key or empty key");
    if (klen > HMM_MAX_KEY)
        return hmm_fail(HMM_TOOBIG, "key of %zu bytes is over the %u-byte limit", klen, HMM_MAX_KEY);
    return hmm_fail(-EINVAL, "key of %zu bytes is not valid", klen); /* not reached: check_key() tested the above */
}

/* Set a chunk's owner (stripe + 1; HMM__NO_STRIPE wraps to 0, "nobody") and
 * state.  Release: the state is stored last, so whoever sees the state
 * also sees the owner. */
void hmm__entry_mark(hmm_t *m, uint64_t off, uint32_t stripe, uint8_t state)
{
    struct hmm_entry *e = (struct hmm_entry *)(m->base + off);
    atomic_store_explicit(&e->owner, (uint16_t)(stripe + 1), memory_order_relaxed);
    atomic_store_explicit(&e->state, state, memory_order_release);
}
