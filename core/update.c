/*
 * update.c - put, delete, incr and cas: the update protocol of FORMAT.md §8.
 *
 * All four are one function, write_locked(), run under the key's stripe
 * lock: decide (NX/XX/CAS/counter), write the new entry whole into a fresh
 * chunk, retire the old one, publish with one atomic store, free the old
 * one inside the seq-odd window.  The HMM_CRASHPOINT() lines are the crash
 * points whose recovery FORMAT.md §9 specifies.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/lookup.h"

enum write_kind {
    WRITE_PUT, WRITE_DEL, WRITE_INCR, WRITE_CAS,
    WRITE_MOVE, /* copy an entry out of a page leaving its class, same bytes and version (compact.c) */
};

struct write_req {
    enum write_kind kind;
    const void *key;
    size_t klen;
    uint64_t hash;
    const void *val;
    size_t vlen;
    uint8_t vtype;
    uint64_t ttl_ms;
    uint64_t expire_abs_ms;/* hmm_apply: the record's absolute expiry (0 never), instead of ttl_ms */
    bool absolute_expiry;
    unsigned flags;        /* HMM_NX, HMM_XX */
    bool if_version;       /* delete: only if the entry's version is still expected */
    uint64_t expected;     /* cas, delete if_version; move: the chunk to move */
    uint64_t version;      /* move: the version the entry keeps */
    int64_t delta;         /* incr */
    int64_t result;        /* incr */
    char numbuf[24];       /* incr: the new value as text */
    bool index_full;       /* no slot within reach: grow the index and retry */
    bool want_growth;      /* the index is getting full: grow it after unlocking */
};

/* Grow the index once its fill, estimated from this stripe's share
 * (keys spread evenly over stripes), passes 85% of its slots. */
#define GROW_FILL_PCT 85u
#define GROW_MIN_STRIPE_ITEMS 32

/* A counter's value is a decimal int64 in ASCII (FORMAT.md §6, vtype). */
static int parse_counter(const uint8_t *p, size_t len, int64_t *out)
{
    char buf[24];
    if (len == 0 || len >= sizeof buf)
        return HMM_NOTNUM;
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (!(buf[0] == '-' || buf[0] == '+' || (buf[0] >= '0' && buf[0] <= '9')))
        return HMM_NOTNUM;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end || end == buf)
        return HMM_NOTNUM;
    *out = v;
    return 0;
}

/* Decide whether the operation applies to the current entry (NULL when
 * absent or expired), and compute an incr's new value. */
static int write_decide(hmm_t *m, struct write_req *r, struct hmm_entry *cur)
{
    switch (r->kind) {
    case WRITE_PUT:
        if ((r->flags & HMM_NX) && cur)
            return HMM_EXISTS;
        if ((r->flags & HMM_XX) && !cur)
            return HMM_NOTFOUND;
        return 0;
    case WRITE_CAS:
        return (cur ? cur->version : 0) == r->expected ? 0 : HMM_MISMATCH;
    case WRITE_DEL:
        if (!cur)
            return HMM_NOTFOUND;
        return r->if_version && cur->version != r->expected ? HMM_MISMATCH : 0;
    case WRITE_MOVE:
        return cur ? 0 : HMM_NOTFOUND;
    case WRITE_INCR: {
        int64_t old = 0;
        if (cur && parse_counter(entry_val(cur), cur->vlen, &old) != 0)
            return hmm_fail(HMM_NOTNUM, "value is not a decimal 64-bit integer");
        if (__builtin_add_overflow(old, r->delta, &r->result))
            return hmm_fail(HMM_NOTNUM, "counter would overflow 64 bits");
        int n = snprintf(r->numbuf, sizeof r->numbuf, "%" PRId64, r->result);
        r->val = r->numbuf;
        r->vlen = (size_t)n;
        r->vtype = HMM_TAG_COUNTER;
        return 0;
    }
    }
    return -EINVAL;
}

static uint64_t expiry_for(hmm_t *m, const struct write_req *r, const struct hmm_entry *cur, uint64_t now)
{
    if ((r->kind == WRITE_INCR || r->kind == WRITE_MOVE) && cur)
        return cur->expire_ms; /* counting or moving does not change an entry's lifetime */
    if (r->absolute_expiry)
        return r->expire_abs_ms;
    uint64_t ttl = r->ttl_ms ? r->ttl_ms : m->default_ttl_ms;
    if (!ttl)
        return 0;
    /* Saturate: now + a huge TTL would wrap to a time in the past and
     * store an entry that is expired at birth.  UINT64_MAX ms is 584
     * million years away, as good as "never" while keeping a TTL. */
    return ttl > UINT64_MAX - now ? UINT64_MAX : now + ttl;
}

static uint64_t write_entry(hmm_t *m, struct hmm_stripe *s, uint64_t off, const struct write_req *r,
                            uint64_t expire_ms)
{
    struct hmm_entry *e = (struct hmm_entry *)(m->base + off);
    e->klen = (uint16_t)r->klen;
    e->vtype = r->vtype;
    e->reserved = 0;
    e->vlen = (uint32_t)r->vlen;
    e->version = r->kind == WRITE_MOVE ? r->version : ++s->version;
    e->expire_ms = expire_ms;
    memcpy(entry_key(e), r->key, r->klen);
    if (r->vlen)
        memcpy(entry_val(e), r->val, r->vlen);
    e->checksum = hmm__entry_checksum(e);
    /* Cache mode (FORMAT.md §12): a new entry starts unread, so it must be read
     * before the hand comes by to stay; a moved one was kept for its reads. */
    atomic_store_explicit(&e->access, (m->flags & HMM_CACHE) && r->kind == WRITE_MOVE ? 1 : 0, memory_order_relaxed);
    /* Release: a repairer that finds it LIVE finds it whole. */
    atomic_store_explicit(&e->state, HMM_CHUNK_LIVE, memory_order_release);
    return entry_bytes(r->klen, r->vlen);
}

static int write_locked(hmm_t *m, uint32_t si, struct write_req *r)
{
    struct hmm_stripe *s = &m->stripes[si];
    struct hmm_intent *in = &s->intent;
    atomic_store_explicit(&in->hash, r->hash, memory_order_relaxed);
    atomic_store_explicit(&in->op, r->kind == WRITE_DEL ? HMM_OP_DEL : HMM_OP_PUT, memory_order_release);

    /* The spare (FORMAT.md §8) is likely the chunk this write fills: start
     * its miss now, to overlap with the lookup's. */
    uint64_t spare = atomic_load_explicit(&s->spare, memory_order_relaxed);
    if (spare)
        __builtin_prefetch(hmm_at(m, HMM_SPARE_OFF(spare), HMM_ENTRY_HDR), 1);

    int rc = 0;
    hmm_atomic_u64 *slot = NULL;
    struct hmm_ix yin, cur, old;
    uint64_t y = index_find(m, r->hash, r->key, r->klen, &slot, &yin, &rc);
    if (rc)
        return hmm_fail(rc, "%s: an index slot points outside the map", m->path);
    struct hmm_entry *ye = y ? hmm__entry_whole_at(m, y) : NULL;
    if (y && !ye)
        return hmm_fail(HMM_CORRUPT, "%s: entry at %" PRIu64 " is out of bounds", m->path, y);
    uint64_t now = hmm_now_ms();
    bool expired = ye && hmm__entry_expired(ye, now);
    if (r->kind == WRITE_MOVE) {
        if (y != r->expected || !ye)
            return HMM_NOTFOUND; /* replaced or deleted since the evacuator looked */
        r->version = ye->version;
    }
    rc = write_decide(m, r, expired ? NULL : ye);
    if (rc && !(rc == HMM_NOTFOUND && r->kind == WRITE_DEL && expired))
        return rc;
    /* A delete of an expired entry reclaims it and still says "not found". */

    uint64_t x = 0, xbytes = 0, expire_ms = 0;
    if (r->kind != WRITE_DEL) {
        int arc = hmm__slab_alloc(m, si, entry_bytes(r->klen, r->vlen), &x);
        if (arc)
            return arc;
        expire_ms = expiry_for(m, r, expired ? NULL : ye, now);
        xbytes = write_entry(m, s, x, r, expire_ms);
        HMM_CRASHPOINT("written");
    }
    /* Every change but a move (and the reclaim of an expired entry, rc
     * HMM_NOTFOUND here) is logged, filled before the publish and
     * committed after it (FORMAT.md §13). */
    bool logged = m->rhdr && rc == 0 && r->kind != WRITE_MOVE;
    if (logged) {
        int lrc = hmm__replog_append_locked(m, si, r->kind == WRITE_DEL ? HMM_REC_DEL : HMM_REC_PUT, r->vtype,
                                       expire_ms, r->key, r->klen, r->val, r->kind == WRITE_DEL ? 0 : r->vlen);
        if (lrc) {
            if (x)
                hmm__slab_free(m, si, x, &in->new_off);
            return lrc;
        }
    }
    uint64_t ybytes = ye ? entry_bytes(ye->klen, ye->vlen) : 0;
    if (y) {
        atomic_store_explicit(&in->old_off, y, memory_order_release);
        hmm__entry_mark(m, y, si, HMM_CHUNK_RETIRING);
        HMM_CRASHPOINT("retired");
        if (x) /* the publish: readers see the old entry or the new one */
            atomic_store_explicit(slot, HMM_SLOT_MAKE(hash_tag(r->hash), x), memory_order_release);
        else
            hmm__index_remove_locked(m, &yin, r->hash, slot);
    } else {
        unsigned passed = 0;
        int irc = index_views(m, &cur, &old);
        if (irc == 0)
            irc = hmm__index_insert_locked(m, &cur, r->hash, x, &passed);
        if (irc) {
            if (logged)
                hmm__replog_void_locked(m, si);
            hmm__slab_free(m, si, x, &in->new_off);
            r->index_full = irc == HMM_FULL;
            return hmm_fail(irc, "%s: no free index slot within reach of the key's home bucket", m->path);
        }
        uint64_t items = (uint64_t)(s->items + 1);
        r->want_growth = passed >= 16 || (items >= GROW_MIN_STRIPE_ITEMS &&
                                         items * (m->stripe_mask + 1) * 100 >
                                             cur.nb * HMM_BUCKET_SLOTS * GROW_FILL_PCT);
    }
    HMM_CRASHPOINT("published");
    if (logged) {
        hmm__replog_commit_locked(m, si);
        HMM_CRASHPOINT("log_committed");
    }
    if (expired)
        metrics_add(m, HMM_C_EXPIRATIONS, 1);
    if (y) {
        hmm__seq_begin_free(s);
        int frc = hmm__slab_retire(m, si, y);
        HMM_CRASHPOINT("freed");
        hmm__seq_end_free(s);
        if (frc)
            rc = frc;
    }
    s->items += (x ? 1 : 0) - (y ? 1 : 0);
    s->bytes_used += (int64_t)xbytes - (int64_t)ybytes;
    HMM_CRASHPOINT("done");
    atomic_store_explicit(&in->new_off, 0, memory_order_relaxed);
    atomic_store_explicit(&in->op, HMM_OP_NONE, memory_order_release);
    return rc;
}

int hmm__relocate_entry_locked(hmm_t *m, uint32_t stripe, uint64_t off)
{
    struct hmm_entry *e = hmm__entry_whole_at(m, off);
    if (!e)
        return HMM_NOTFOUND;
    /* Key and value point into the old chunk, which stays whole until the
     * new one is published (the free comes last). */
    struct write_req r = {.kind = WRITE_MOVE, .key = entry_key(e), .klen = e->klen, .val = entry_val(e),
                          .vlen = e->vlen, .vtype = e->vtype, .expected = off};
    r.hash = key_hash(r.key, r.klen);
    if (hash_stripe(m, r.hash) != stripe)
        return HMM_NOTFOUND;
    return write_locked(m, stripe, &r);
}

/* A write's first misses, the stripe's three lines and the key's
 * home bucket, do not depend on each other: start them together rather
 * than one after another behind the lock's fences. */
static void prefetch_for_write(hmm_t *m, uint32_t si, uint64_t hash)
{
    struct hmm_stripe *s = &m->stripes[si];
    __builtin_prefetch(&s->seq, 1);
    __builtin_prefetch(&s->lock, 1);
    __builtin_prefetch(&s->intent, 1);
    struct hmm_ix cur, old;
    if (index_views(m, &cur, &old) == 0 && cur.nb)
        __builtin_prefetch(&cur.bk[hash_home(&cur, hash)], 0);
}

static int write_run(hmm_t *m, struct write_req *r)
{
    hmm__error_clear();
    int rc = check_key(m, r->key, r->klen);
    if (rc)
        return rc;
    if (m->rdonly)
        return hmm_fail(-EBADF, "%s: the map is open read-only", m->path);
    /* A replica changes only through its daemon (docs/PROTOCOL.md §11). */
    if (__builtin_expect(HMM_ROLE_OF(hmm__role_word(m)) == HMM_ROLE_REPLICA, 0) && !m->replica_writer)
        return hmm__replica_refusal(m);
    if (r->kind != WRITE_DEL && r->kind != WRITE_INCR) {
        if (!r->val && r->vlen)
            return hmm_fail(-EINVAL, "NULL value with a non-zero length");
        if (r->vlen > m->max_value)
            return hmm_fail(HMM_TOOBIG, "value of %zu bytes is over the map's %u-byte limit", r->vlen,
                            m->max_value);
    }
    hmm__proc_slot_ensure(m);
    r->hash = key_hash(r->key, r->klen);
    uint32_t si = hash_stripe(m, r->hash);
    prefetch_for_write(m, si, r->hash);
    for (int attempt = 0;; attempt++) {
        r->index_full = r->want_growth = false;
        rc = hmm__lock_stripe(m, si);
        if (rc)
            return rc;
        rc = write_locked(m, si, r);
        hmm__unlock_stripe(m, si);
        /* Growth work is done holding no lock (grow.c's lock order). */
        if (r->index_full && attempt > 0)
            hmm__grow_index_finish(m); /* a growth was running: complete it, then grow again */
        if (r->index_full || r->want_growth)
            hmm__grow_index_start(m);
        hmm__grow_index_help(m);
        if (!r->index_full || attempt == 2)
            break;
    }
    static const enum hmm_counter done_counter[] = {
        [WRITE_PUT] = HMM_C_PUTS, [WRITE_CAS] = HMM_C_PUTS, [WRITE_DEL] = HMM_C_DELETES,
        [WRITE_INCR] = HMM_C_INCRS};
    if (rc == 0)
        metrics_add(m, done_counter[r->kind], 1);
    else if (rc == HMM_MISMATCH)
        metrics_add(m, HMM_C_CAS_FAILURES, 1);
    else if (rc == HMM_FULL)
        metrics_add(m, HMM_C_FULL_ERRORS, 1);
    return hmm__result(rc); /* no detail of a growth or eviction step that made room */
}

HMM_EXPORT int hmm_put(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ttl_ms, unsigned flags)
{
    return hmm_put_tagged(m, key, klen, val, vlen, ttl_ms, flags, HMM_TAG_RAW);
}

HMM_EXPORT int hmm_put_tagged(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                              uint64_t ttl_ms, unsigned flags, unsigned tag)
{
    hmm__error_clear();
    if ((flags & ~(HMM_NX | HMM_XX)) || (flags & HMM_NX && flags & HMM_XX) || tag > HMM_TAG_MAX)
        return hmm_fail(-EINVAL, "put flags must be 0, HMM_NX or HMM_XX, and the tag 0..255");
    struct write_req r = {.kind = WRITE_PUT, .key = key, .klen = klen, .val = val, .vlen = vlen,
                          .ttl_ms = ttl_ms, .flags = flags, .vtype = (uint8_t)tag};
    return write_run(m, &r);
}

HMM_EXPORT int hmm_del(hmm_t *m, const void *key, size_t klen)
{
    struct write_req r = {.kind = WRITE_DEL, .key = key, .klen = klen};
    return write_run(m, &r);
}

HMM_EXPORT int hmm_del_version(hmm_t *m, const void *key, size_t klen, uint64_t expected_version)
{
    struct write_req r = {.kind = WRITE_DEL, .key = key, .klen = klen, .if_version = true,
                          .expected = expected_version};
    return write_run(m, &r);
}

HMM_EXPORT int hmm_incr(hmm_t *m, const void *key, size_t klen, int64_t delta, int64_t *result)
{
    struct write_req r = {.kind = WRITE_INCR, .key = key, .klen = klen, .delta = delta};
    int rc = write_run(m, &r);
    if (rc == 0 && result)
        *result = r.result;
    return rc;
}

HMM_EXPORT int hmm_cas(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ttl_ms, uint64_t expected_version)
{
    return hmm_cas_tagged(m, key, klen, val, vlen, ttl_ms, expected_version, HMM_TAG_RAW);
}

HMM_EXPORT int hmm_cas_tagged(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                              uint64_t ttl_ms, uint64_t expected_version, unsigned tag)
{
    hmm__error_clear();
    if (tag > HMM_TAG_MAX)
        return hmm_fail(-EINVAL, "the tag must be 0..255");
    struct write_req r = {.kind = WRITE_CAS, .key = key, .klen = klen, .val = val, .vlen = vlen,
                          .ttl_ms = ttl_ms, .expected = expected_version, .vtype = (uint8_t)tag};
    return write_run(m, &r);
}

HMM_EXPORT int hmm_apply(hmm_t *m, const hmm_replog_record *rec)
{
    hmm__error_clear();
    if (!m || !rec)
        return hmm_fail(-EINVAL, "hmm_apply: NULL handle or record");
    if (rec->op == HMM_REC_PUT) {
        if (rec->tag > HMM_TAG_MAX)
            return hmm_fail(-EINVAL, "record tag %u is over %u", rec->tag, HMM_TAG_MAX);
        /* Expired on the way: the primary no longer has it either. */
        if (!(rec->expire_ms && rec->expire_ms <= hmm_now_ms())) {
            struct write_req r = {.kind = WRITE_PUT, .key = rec->key, .klen = rec->klen, .val = rec->val,
                                  .vlen = rec->vlen, .vtype = (uint8_t)rec->tag, .absolute_expiry = true,
                                  .expire_abs_ms = rec->expire_ms};
            return write_run(m, &r);
        }
    } else if (rec->op != HMM_REC_DEL) {
        return hmm_fail(-EINVAL, "record op %u is neither HMM_REC_PUT nor HMM_REC_DEL", rec->op);
    }
    struct write_req r = {.kind = WRITE_DEL, .key = rec->key, .klen = rec->klen};
    int rc = write_run(m, &r);
    return rc == HMM_NOTFOUND ? 0 : rc; /* already absent: the state the record describes */
}
