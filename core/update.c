/*
 * update.c - put, delete, incr and cas: the update protocol of FORMAT.md §8.
 *
 * All four are one function, write_locked(), run under the key's stripe
 * lock in steps: find and decide (NX/XX/CAS/counter), write the new entry
 * whole into a fresh chunk and fill its log record, retire the old one,
 * publish with one atomic store, commit the record, free the old one inside
 * the seq-odd window.  A delete's last steps are hmm__delete_locked(),
 * which eviction (cache/evict.c) runs too.  The HMM_CRASHPOINT() lines are
 * the crash points whose recovery FORMAT.md §9 specifies.
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
    char *numbuf;          /* incr: room for the new value as text (INCR_TEXT_MAX) */
    bool index_full;       /* no slot within reach: grow the index and retry */
    bool want_growth;      /* the index is getting full: grow it after unlocking */
};


/* A counter's value is a decimal int64 in ASCII (FORMAT.md §6, vtype):
 * at most 20 characters ("-9223372036854775808") and a NUL. */
#define INCR_TEXT_MAX 24
static int parse_counter(const uint8_t *p, size_t len, int64_t *out)
{
    char buf[INCR_TEXT_MAX];
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
        int n = snprintf(r->numbuf, INCR_TEXT_MAX, "%" PRId64, r->result);
        r->val = r->numbuf;
        r->vlen = (size_t)n;
        r->vtype = HMM_TAG_COUNTER;
        return 0;
    }
    }
    return -EINVAL;
}

/* now: the time the write read, 0 if it read none yet. */
static uint64_t expiry_for(hmm_t *m, const struct write_req *r, const struct hmm_entry *cur, uint64_t now)
{
    if ((r->kind == WRITE_INCR || r->kind == WRITE_MOVE) && cur)
        return cur->expire_ms; /* counting or moving does not change an entry's lifetime */
    if (r->absolute_expiry)
        return r->expire_abs_ms;
    uint64_t ttl = r->ttl_ms ? r->ttl_ms : m->default_ttl_ms;
    if (!ttl)
        return 0;
    if (!now)
        now = hmm_now_ms();
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
    hmm__copy_small(entry_key(e), r->key, r->klen);
    hmm__copy_small(entry_val(e), r->val, r->vlen);
    e->checksum = hmm__entry_checksum(e);
    /* Cache mode (FORMAT.md §12): a new entry starts unread, so it must be read
     * before the hand comes by to stay; a moved one was kept for its reads. */
    atomic_store_explicit(&e->access, (m->flags & HMM_CACHE) && r->kind == WRITE_MOVE ? 1 : 0, memory_order_relaxed);
    /* Release: a repairer that finds it LIVE finds it whole. */
    atomic_store_explicit(&e->state, HMM_CHUNK_LIVE, memory_order_release);
    return entry_bytes(r->klen, r->vlen);
}

/* What a write found and made, handed from one step to the next. */
struct write_state {
    hmm_atomic_u64 *slot;  /* the key's index slot, when it has an entry */
    struct hmm_ix yin;     /* the index (current or draining) that holds slot */
    uint64_t y;            /* the old entry's chunk, 0 none */
    struct hmm_entry *ye;
    bool expired;          /* y has expired: the write sees the key as absent */
    uint64_t x;            /* the new entry's chunk, 0 for a delete */
    uint64_t xbytes;
    uint64_t expire_ms;
    uint64_t now;          /* ms, read once when needed; 0 not yet */
    bool logged;           /* a log record is reserved: commit or void it */
};

/* When the index grows (FORMAT.md §10).  It is sized for 80% of its
 * slots (map.c), and grows there: fuller, and lookups walk further (a
 * present key costs 1.19 buckets on average at 80%, 1.30 at 85%: linear
 * probing over 7-slot buckets); emptier, and each entry pays for more
 * index (64 / (7 x fill) bytes).
 *
 * The fill is known exactly only by summing the 1024 stripes' counts, too
 * dear for every insert, so an insert sums them only after it walked past
 * GROW_CHECK_PASSED full buckets: that starts at about 70% fill and grows
 * more frequent with the fill (~1 insert in 5 000 at 80%).  A stripe's
 * own count, scaled, is no measure: the fullest of 1024 stripes holds
 * about 3 standard deviations more than the mean, and taking it for the
 * mean grew 20 000-key indexes at 52%.  Growing on the walk alone was no
 * better: the first walk past 16 buckets came at 67-72% fill in every
 * fill simulated or measured, so indexes grew at 70% and a map sized for
 * 80% grew before it was full.  A walk past GROW_AFTER_PASSED_BUCKETS
 * grows the index whatever the count says: keys bunched in one region,
 * caught long before an insert finds no slot within its HMM_MAX_PROBE
 * (64) buckets (the longest walk at 85% fill is about 50). */
#define GROW_FILL_PCT 80u
#define GROW_CHECK_PASSED 16u
#define GROW_AFTER_PASSED_BUCKETS 48u
/* A write that found the index full grows it and retries; full again after
 * two growths means growth cannot make room (max_size reached, or other
 * writers fill each new index first): HMM_FULL rather than a loop. */
#define WRITE_FULL_RETRIES 2

/* Step 1 of FORMAT.md §8 and the decision: name the operation in the
 * stripe's intent, find the key's entry and decide whether the write
 * applies: 0, or why not (HMM_NOTFOUND also for a delete whose entry has
 * expired: the caller still reclaims it). */
static int write_find_locked(hmm_t *m, uint32_t si, struct write_req *r, struct write_state *w)
{
    struct hmm_stripe *s = &m->stripes[si];
    atomic_store_explicit(&s->intent.hash, r->hash, memory_order_relaxed);
    atomic_store_explicit(&s->intent.op, r->kind == WRITE_DEL ? HMM_OP_DEL : HMM_OP_PUT, memory_order_release);
    /* The spare (FORMAT.md §8) is likely the chunk this write fills: start
     * its miss now, to overlap with the lookup's. */
    uint64_t spare = atomic_load_explicit(&s->spare, memory_order_relaxed);
    if (spare)
        __builtin_prefetch(hmm_at(m, HMM_SPARE_OFF(spare), HMM_ENTRY_HDR), 1);

    int rc = 0;
    w->y = index_find(m, r->hash, r->key, r->klen, &w->slot, &w->yin, &rc);
    if (rc)
        return hmm_fail(rc, "%s: an index slot points outside the map", m->path);
    w->ye = w->y ? hmm__entry_whole_at(m, w->y) : NULL;
    if (w->y && !w->ye)
        return hmm_fail(HMM_CORRUPT, "%s: entry at %" PRIu64 " is out of bounds", m->path, w->y);
    /* The clock is read only for an entry with an expiry (and a TTL'd
     * put, expiry_for): most writes never need it. */
    w->now = w->ye && w->ye->expire_ms ? hmm_now_ms() : 0;
    w->expired = w->ye && hmm__entry_expired(w->ye, w->now);
    if (r->kind == WRITE_MOVE) {
        if (w->y != r->expected || !w->ye)
            return HMM_NOTFOUND; /* replaced or deleted since the evacuator looked */
        r->version = w->ye->version;
    }
    return write_decide(m, r, w->expired ? NULL : w->ye);
}

/* Steps 2-3 (and the log record, filled before the publish: FORMAT.md
 * §13): allocate the new chunk, write the entry whole, reserve and fill
 * the change's log record. */
static int write_new_entry_locked(hmm_t *m, uint32_t si, struct write_req *r, struct write_state *w)
{
    struct hmm_stripe *s = &m->stripes[si];
    if (r->kind != WRITE_DEL) {
        int rc = hmm__slab_alloc(m, si, entry_bytes(r->klen, r->vlen), &w->x);
        if (rc)
            return rc;
        w->expire_ms = expiry_for(m, r, w->expired ? NULL : w->ye, w->now);
        w->xbytes = write_entry(m, s, w->x, r, w->expire_ms);
        HMM_CRASHPOINT("written");
    }
    if (!w->logged)
        return 0;
    int rc = hmm__replog_append_locked(m, si, r->kind == WRITE_DEL ? HMM_REC_DEL : HMM_REC_PUT, r->vtype,
                                       w->expire_ms, r->key, r->klen, r->val,
                                       r->kind == WRITE_DEL ? 0 : r->vlen);
    if (rc && w->x)
        hmm__slab_free(m, si, w->x, &s->intent.new_off);
    return rc;
}

/* Step 4: name y as the chunk being retired and mark it so. */
static void retire_old_locked(hmm_t *m, uint32_t si, uint64_t y, const char *point)
{
    atomic_store_explicit(&m->stripes[si].intent.old_off, y, memory_order_release);
    hmm__entry_mark(m, y, si, HMM_CHUNK_RETIRING);
    HMM_CRASHPOINT(point);
}

/* Step 6: free the retired chunk y inside the seq-odd window (a reader that
 * copied from it retries).  keep_spare: it may stay as the stripe's spare. */
static int free_retired_locked(hmm_t *m, uint32_t si, uint64_t y, bool keep_spare)
{
    struct hmm_stripe *s = &m->stripes[si];
    hmm__seq_begin_free(s);
    int rc = keep_spare ? hmm__slab_retire(m, si, y) : hmm__slab_free(m, si, y, &s->intent.old_off);
    HMM_CRASHPOINT("freed");
    hmm__seq_end_free(s);
    return rc;
}

/* A new key's slot: claim an empty one and publish x in it.  On failure
 * the change is undone (its record voided, x freed). */
static int write_insert_locked(hmm_t *m, uint32_t si, struct write_req *r, struct write_state *w)
{
    struct hmm_ix cur, old;
    unsigned passed = 0;
    int rc = index_views(m, &cur, &old);
    HMM_CRASHPOINT("insert_viewed");
    hmm_atomic_u64 *slot = NULL;
    if (rc == 0)
        rc = hmm__index_insert_locked(m, &cur, r->hash, w->x, &passed, &slot);
    if (rc) {
        if (w->logged)
            hmm__replog_void_locked(m, si);
        hmm__slab_free(m, si, w->x, &m->stripes[si].intent.new_off);
        r->index_full = rc == HMM_FULL;
        return hmm_fail(rc, "%s: no free index slot within reach of the key's home bucket", m->path);
    }
    if (m->cells)
        hmm__cell_copy_locked(slot, (const struct hmm_entry *)(m->base + w->x));
    r->want_growth = passed >= GROW_AFTER_PASSED_BUCKETS ||
                     (passed >= GROW_CHECK_PASSED &&
                      hmm__items_total(m) * 100 >= cur.nb * ix_slots(&cur) * GROW_FILL_PCT);
    return 0;
}

/* Steps 4-6 of a put: retire the old entry, publish the new one with one
 * atomic store (or claim a new key's slot), commit the log record, free
 * the old entry. */
static int write_replace_locked(hmm_t *m, uint32_t si, struct write_req *r, struct write_state *w)
{
    struct hmm_stripe *s = &m->stripes[si];
    uint64_t ybytes = w->ye ? entry_bytes(w->ye->klen, w->ye->vlen) : 0;
    if (!w->y) {
        int rc = write_insert_locked(m, si, r, w);
        if (rc)
            return rc;
    } else {
        retire_old_locked(m, si, w->y, "retired");
        /* The publish: readers see the old entry or the new one.  In a
         * cell it also clears the old entry's copy, before the new one is
         * written (FORMAT.md §7). */
        atomic_store_explicit(w->slot, HMM_SLOT_MAKE(hash_tag(r->hash), w->x), memory_order_release);
        if (m->cells)
            hmm__cell_copy_locked(w->slot, (const struct hmm_entry *)(m->base + w->x));
    }
    HMM_CRASHPOINT("published");
    if (w->logged) {
        hmm__replog_commit_locked(m, si);
        HMM_CRASHPOINT("log_committed");
    }
    int rc = w->y ? free_retired_locked(m, si, w->y, true) : 0;
    s->items += 1 - (w->y ? 1 : 0);
    s->bytes_used += (int64_t)w->xbytes - (int64_t)ybytes;
    return rc;
}

int hmm__delete_locked(hmm_t *m, uint32_t si, const struct hmm_ix *view, uint64_t hash, hmm_atomic_u64 *slot,
                       uint64_t y, unsigned how)
{
    struct hmm_stripe *s = &m->stripes[si];
    const struct hmm_entry *e = (const struct hmm_entry *)(m->base + y);
    int64_t bytes = (int64_t)entry_bytes(e->klen, e->vlen);
    bool evicting = how & HMM_DELETE_EVICTION;
    retire_old_locked(m, si, y, evicting ? "evict_retired" : "retired");
    hmm__index_remove_locked(m, view, hash, slot);
    HMM_CRASHPOINT(evicting ? "evicted" : "published");
    if (how & HMM_DELETE_LOGGED) {
        hmm__replog_commit_locked(m, si);
        HMM_CRASHPOINT("log_committed");
    }
    /* An evicted chunk goes back to its class: the evictor needs it there. */
    int rc = free_retired_locked(m, si, y, !evicting);
    s->items--;
    s->bytes_used -= bytes;
    return rc;
}

/* The update protocol (FORMAT.md §8) for one write, its stripe locked. */
static int write_locked(hmm_t *m, uint32_t si, struct write_req *r)
{
    struct write_state w; /* write_find_locked() sets what it found, the rest is here */
    w.x = w.xbytes = w.expire_ms = 0;
    w.expired = false;
    int rc = write_find_locked(m, si, r, &w);
    /* A delete of an expired entry reclaims it and still says "not found". */
    bool reclaim_only = rc == HMM_NOTFOUND && r->kind == WRITE_DEL && w.expired;
    if (rc && !reclaim_only)
        return rc;
    /* Every change but a move and the reclaim of an expired entry is
     * logged, filled before the publish and committed after it (§13). */
    w.logged = m->rhdr && !reclaim_only && r->kind != WRITE_MOVE;
    int wrc = write_new_entry_locked(m, si, r, &w);
    if (wrc)
        return wrc;
    if (r->kind == WRITE_DEL)
        wrc = hmm__delete_locked(m, si, &w.yin, r->hash, w.slot, w.y, w.logged ? HMM_DELETE_LOGGED : 0);
    else
        wrc = write_replace_locked(m, si, r, &w);
    if (wrc && !w.y && r->kind != WRITE_DEL)
        return wrc; /* no slot for a new key: undone, nothing to clear */
    if (w.expired)
        metrics_add(m, HMM_C_EXPIRATIONS, 1);
    HMM_CRASHPOINT("done");
    struct hmm_intent *in = &m->stripes[si].intent;
    atomic_store_explicit(&in->new_off, 0, memory_order_relaxed);
    atomic_store_explicit(&in->op, HMM_OP_NONE, memory_order_release);
    return wrc ? wrc : rc;
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
    /* The handle's cached view (the lookup under the lock uses it too),
     * not a decode of the header's words. */
    struct hmm__view scratch;
    int rc = 0;
    const struct hmm__view *v = hmm__index_cached(m, &scratch, &rc);
    if (v && v->cur.nb)
        __builtin_prefetch(&v->cur.bk[hash_home(&v->cur, hash)], 0);
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
        if (!r->index_full || attempt == WRITE_FULL_RETRIES)
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

/* put and cas: store val under key (cas: only over expected_version). A
 * public entry: its refusals here set the error (hmm_fail), and
 * write_run() clears it first thing, so it is not cleared twice. */
static inline __attribute__((always_inline)) int write_value(hmm_t *m, enum write_kind kind, const void *key,
                                                             size_t klen, const void *val, size_t vlen,
                                                             uint64_t ttl_ms, unsigned flags,
                                                             uint64_t expected_version, unsigned tag)
{
    if (kind == WRITE_PUT && ((flags & ~(HMM_NX | HMM_XX)) || (flags & HMM_NX && flags & HMM_XX)))
        return hmm_fail(-EINVAL, "put flags must be 0, HMM_NX or HMM_XX");
    if (tag > HMM_TAG_MAX)
        return hmm_fail(-EINVAL, "the tag must be 0..255");
    struct write_req r = {.kind = kind, .key = key, .klen = klen, .val = val, .vlen = vlen, .ttl_ms = ttl_ms,
                          .flags = flags, .expected = expected_version, .vtype = (uint8_t)tag};
    return write_run(m, &r);
}

HMM_EXPORT int hmm_put(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ttl_ms, unsigned flags)
{
    /* write_value() itself, not hmm_put_tagged(): a call from one exported
     * function to another goes through the PLT (it may be interposed). */
    return write_value(m, WRITE_PUT, key, klen, val, vlen, ttl_ms, flags, 0, HMM_TAG_RAW);
}

HMM_EXPORT int hmm_put_tagged(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                              uint64_t ttl_ms, unsigned flags, unsigned tag)
{
    return write_value(m, WRITE_PUT, key, klen, val, vlen, ttl_ms, flags, 0, tag);
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
    char text[INCR_TEXT_MAX];
    struct write_req r = {.kind = WRITE_INCR, .key = key, .klen = klen, .delta = delta, .numbuf = text};
    int rc = write_run(m, &r);
    if (rc == 0 && result)
        *result = r.result;
    return rc;
}

HMM_EXPORT int hmm_cas(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ttl_ms, uint64_t expected_version)
{
    return write_value(m, WRITE_CAS, key, klen, val, vlen, ttl_ms, 0, expected_version, HMM_TAG_RAW);
}

HMM_EXPORT int hmm_cas_tagged(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                              uint64_t ttl_ms, uint64_t expected_version, unsigned tag)
{
    return write_value(m, WRITE_CAS, key, klen, val, vlen, ttl_ms, 0, expected_version, tag);
}

/* After an hmm_apply of rec: the map may hold a change no sync has covered
 * (also after a failure, which may have changed it partway), until a sync
 * that begins after this note ends (sync.c).  Returns rc. */
static int applied(hmm_t *m, const hmm_replog_record *rec, int rc)
{
    hmm__unsynced_note_apply(m, rec->seq);
    return rc;
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
            return applied(m, rec, write_run(m, &r));
        }
    } else if (rec->op != HMM_REC_DEL) {
        return hmm_fail(-EINVAL, "record op %u is neither HMM_REC_PUT nor HMM_REC_DEL", rec->op);
    }
    struct write_req r = {.kind = WRITE_DEL, .key = rec->key, .klen = rec->klen};
    int rc = write_run(m, &r);
    return applied(m, rec, rc == HMM_NOTFOUND ? 0 : rc); /* already absent: the state the record describes */
}
