/*
 * offset.c - "the highest offset committed" per key, for consumers that
 * track positions (Kafka-style topic/partition offsets, log positions).
 *
 * The value is a decimal ASCII number, like a counter (FORMAT.md §6), so
 * `hashmmap get`, hmm_get and hmm_incr all read it.  A commit never moves
 * the value backwards: it is a compare-and-swap loop on the entry's
 * version (hmm_getv / hmm_cas), so two processes committing out of order
 * (a consumer that lost its partition in a rebalance still committing an
 * old offset) leave the larger one in place.  No lock is held across the
 * loop: a process killed in the middle leaves the old or the new value.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

/* Each failed CAS means another committer changed the value in between,
 * so the loop is lock-free; the bound only guards against a livelock with
 * a pathological number of writers hammering one key. */
#define OFFSET_CAS_RETRIES 10000

/* Parse a stored offset: decimal digits only, at most INT64_MAX (so the
 * value is also a valid counter). */
static int offset_parse(const char *p, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return HMM_NOTNUM;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return HMM_NOTNUM;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return HMM_NOTNUM;
    *out = v;
    return 0;
}

/* Read the offset and the entry's version; HMM_NOTFOUND when absent. */
static int offset_read(hmm_t *m, const void *key, size_t klen, uint64_t *offset, uint64_t *version)
{
    char buf[32];
    size_t len = sizeof buf;
    int rc = hmm_getv(m, key, klen, buf, &len, version);
    if (rc == HMM_TOOSMALL)
        return hmm_fail(HMM_NOTNUM, "offset value of %zu bytes is not a decimal offset", len);
    if (rc)
        return rc;
    rc = offset_parse(buf, len, offset);
    if (rc)
        return hmm_fail(rc, "offset value \"%.*s\" is not a decimal offset", (int)len, buf);
    return 0;
}

HMM_EXPORT int hmm_offset_get(hmm_t *m, const void *key, size_t klen, uint64_t *offset)
{
    uint64_t version;
    hmm__error_clear();
    if (!m || !offset)
        return hmm_fail(-EINVAL, "hmm_offset_get: NULL handle or offset");
    return offset_read(m, key, klen, offset, &version);
}

HMM_EXPORT int hmm_offset_commit(hmm_t *m, const void *key, size_t klen, uint64_t offset,
                                 uint64_t *stored)
{
    hmm__error_clear();
    if (!m)
        return hmm_fail(-EINVAL, "hmm_offset_commit: NULL handle");
    if (offset > (uint64_t)INT64_MAX)
        return hmm_fail(-EINVAL, "%s: offset %" PRIu64 " is over INT64_MAX", m->path, offset);
    char text[24];
    int tlen = snprintf(text, sizeof text, "%" PRIu64, offset);

    for (int attempt = 0; attempt < OFFSET_CAS_RETRIES; attempt++) {
        uint64_t current = 0, version = 0;
        int rc = offset_read(m, key, klen, &current, &version);
        if (rc == HMM_NOTFOUND)
            version = 0; /* hmm_cas with 0: create only if still absent */
        else if (rc)
            return rc;
        else if (current >= offset) {
            /* Never backwards: a later commit already went further. */
            if (stored)
                *stored = current;
            return 0;
        }
        rc = hmm_cas(m, key, klen, text, (size_t)tlen, 0, version);
        if (rc == 0) {
            if (stored)
                *stored = offset;
            return 0;
        }
        /* HMM_MISMATCH: someone committed (or deleted) in between: re-read. */
        if (rc != HMM_MISMATCH)
            return rc;
    }
    return hmm_fail(HMM_BUSY, "offset commit: %d concurrent changes in a row", OFFSET_CAS_RETRIES);
}

HMM_EXPORT int hmm_offset_key(char *buf, size_t cap, const char *topic, int32_t partition,
                              size_t *klen)
{
    hmm__error_clear();
    if (!buf || !topic || !klen)
        return hmm_fail(-EINVAL, "hmm_offset_key: NULL buffer, topic or length");
    if (partition < 0 || topic[0] == '\0')
        return hmm_fail(-EINVAL, "hmm_offset_key: empty topic or partition %" PRId32 " < 0", partition);
    int n = snprintf(buf, cap, "%s/%" PRId32, topic, partition);
    if (n < 0)
        return hmm_fail(-EINVAL, "hmm_offset_key: the key cannot be formatted");
    *klen = (size_t)n;
    if ((size_t)n >= cap)
        return HMM_TOOSMALL; /* an answer: *klen says how much is needed */
    if ((size_t)n > HMM_MAX_KEY)
        return hmm_fail(HMM_TOOBIG, "key of %d bytes is over the %u-byte limit", n, HMM_MAX_KEY);
    return 0;
}
