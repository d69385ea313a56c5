/*
 * entry.c - the entry (chunk) layout of FORMAT.md §6: the checksum and
 * the key's error path; the small accessors (bounds-checked access,
 * expiry, marking) are inline in internal.h, as every write uses them.
 */
#include "config.h"

#include <errno.h>

#include "core/internal.h"

uint32_t hmm__entry_checksum(const struct hmm_entry *e)
{
    const uint8_t *from = (const uint8_t *)e + offsetof(struct hmm_entry, klen);
    size_t len = entry_bytes(e->klen, e->vlen) - offsetof(struct hmm_entry, klen);
    return (uint32_t)XXH3_64bits(from, len);
}

int hmm__check_key_fail(const hmm_t *m, const void *key, size_t klen)
{
    if (!m || !key || klen == 0)
        return hmm_fail(-EINVAL, "NULL handle, NULL key or empty key");
    if (klen > HMM_MAX_KEY)
        return hmm_fail(HMM_TOOBIG, "key of %zu bytes is over the %u-byte limit", klen, HMM_MAX_KEY);
    return hmm_fail(-EINVAL, "key of %zu bytes is not valid", klen); /* not reached: check_key() tested the above */
}
