/*
 * cursor.c - weakly consistent iteration in hash order.
 *
 * A key's home bucket is (h32 * buckets) >> 32 (index.c), which grows with
 * h32, the low 32 bits of the key's hash, whatever the index's size.  The
 * cursor therefore walks h32 in ranges: for a range it reads the buckets
 * that keys of the range can live in (their homes, plus HMM_MAX_PROBE
 * buckets of displacement), keeps the keys whose h32 falls in the range and
 * drops duplicates within it.  Every key belongs to exactly one range, so no
 * key comes twice, and a key never moves while present, so a key present
 * throughout is found in its range.  Values are read when the key is
 * returned (as a get would), so a batch holds keys only.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"

#define CURSOR_TRIES 64
#define RANGE_BUCKETS 1024u     /* home buckets per batch */
#define H32_END (UINT64_C(1) << 32)

struct batch_key {
    uint64_t hash;
    size_t at, len;             /* in keybuf */
};

struct hmm_cursor {
    hmm_t *m;
    uint64_t next_h32;          /* the next range starts here; H32_END when done */
    struct batch_key *keys;
    size_t nkeys, capkeys, pos;
    uint8_t *keybuf;
    size_t keylen, keycap;
    uint8_t *val;
    size_t valcap;
    hmm_entry_info info;        /* of the entry last returned */
};

static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *nb = realloc(*buf, n * elem);
    if (!nb)
        return hmm_fail(-ENOMEM, "cursor: no memory for %zu items of %zu bytes", n, elem);
    *buf = nb;
    *cap = n;
    return 0;
}

/* Copy the key of the entry in slot s, if its h32 lies in [lo, hi).
 * 1 copied, 0 not in range, negative on error; the caller validates. */
static int copy_key(hmm_cursor *c, uint64_t s, uint64_t lo, uint64_t hi)
{
    hmm_t *m = c->m;
    uint64_t off = HMM_SLOT_OFF(s);
    struct hmm_entry *e = entry_at(m, off);
    if (!e)
        return HMM_CORRUPT;
    uint16_t klen = *(volatile uint16_t *)&e->klen;
    if (klen == 0 || !hmm_at(m, off, entry_bytes(klen, 0)))
        return HMM_CORRUPT;
    int rc = grow((void **)&c->keybuf, &c->keycap, c->keylen + klen, 1);
    if (rc == 0)
        rc = grow((void **)&c->keys, &c->capkeys, c->nkeys + 1, sizeof *c->keys);
    if (rc)
        return rc;
    memcpy(c->keybuf + c->keylen, entry_key(e), klen);
    uint64_t h = key_hash(c->keybuf + c->keylen, klen);
    if ((uint32_t)h < lo || (uint32_t)h >= hi)
        return 0;
    c->keys[c->nkeys] = (struct batch_key){h, c->keylen, klen};
    return 1;
}

/* Read one slot's key into the batch, validated with its stripe's seq. */
static int read_slot_key(hmm_cursor *c, hmm_atomic_u64 *slot, uint64_t lo, uint64_t hi)
{
    hmm_t *m = c->m;
    struct timespec pause = {0, 1000000};
    for (int tries = 0;; tries++) {
        uint64_t s = atomic_load_explicit(slot, memory_order_acquire);
        if (s == 0)
            return 0;
        uint32_t stripe = HMM_SLOT_TAG(s) & m->stripe_mask;
        struct hmm_stripe *st = &m->stripes[stripe];
        bool locked = false;
        if (tries >= CURSOR_TRIES) {
            if (m->rdonly) {
                if (tries > CURSOR_TRIES + 2000)
                    return hmm_fail(HMM_BUSY, "%s: a writer kept a stripe busy", m->path);
                nanosleep(&pause, NULL);
            } else {
                int rc = hmm__lock_stripe(m, stripe);
                if (rc)
                    return rc;
                locked = true;
                s = atomic_load(slot);
            }
        }
        uint64_t s0 = atomic_load_explicit(&st->seq, memory_order_acquire);
        if ((s0 & 1) && !locked)
            continue;
        int rc = s ? copy_key(c, s, lo, hi) : 0;
        atomic_thread_fence(memory_order_acquire);
        bool valid = locked || (atomic_load_explicit(&st->seq, memory_order_relaxed) == s0 &&
                                atomic_load_explicit(slot, memory_order_relaxed) == s);
        if (locked)
            hmm__unlock_stripe(m, stripe);
        if (!valid)
            continue;
        if (rc == 1) {
            c->keylen += c->keys[c->nkeys].len;
            c->nkeys++;
        }
        return rc < 0 ? hmm_fail(rc, "%s: %s during iteration", m->path, hmm_strerror(rc)) : 0;
    }
}

static int cmp_batch_key(const void *a, const void *b, void *arg)
{
    const struct batch_key *x = a, *y = b;
    const uint8_t *buf = arg;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(buf + x->at, buf + y->at, x->len);
}

/* Read the slots of ix where keys with h32 in [lo, hi) can live. */
static int read_range(hmm_cursor *c, const struct hmm_ix *ix, uint64_t lo, uint64_t hi)
{
    if (ix->nb == 0)
        return 0;
    uint64_t first = (lo * ix->nb) >> 32;
    uint64_t last = ((hi - 1) * ix->nb) >> 32;  /* home of the range's last h32 */
    uint64_t span = last - first + 1 + HMM_MAX_PROBE;
    if (span > ix->nb)
        span = ix->nb;
    for (uint64_t i = 0, b = first; i < span; i++, b = ix_next(ix, b))
        for (unsigned j = 0; j < ix_slots(ix); j++) {
            int rc = read_slot_key(c, ix_slot(ix, b, j), lo, hi);
            if (rc)
                return rc;
        }
    return 0;
}

/* Collect the keys whose h32 lies in the next range. */
static int fill_batch(hmm_cursor *c)
{
    hmm_t *m = c->m;
    c->nkeys = c->pos = c->keylen = 0;
    while (c->nkeys == 0 && c->next_h32 < H32_END) {
        uint64_t wc = atomic_load(&m->hdr->index_cur), wo = atomic_load(&m->hdr->index_old);
        struct hmm_ix cur, old;
        int rc = index_views(m, &cur, &old);
        if (rc)
            return rc;
        HMM_CRASHPOINT("cursor_viewed");
        uint64_t lo = c->next_h32;
        uint64_t hi = lo + (H32_END / cur.nb + 1) * RANGE_BUCKETS;
        if (hi > H32_END)
            hi = H32_END;
        /* Keys only move from the old index to the current one, so the old
         * one is read first: a key moved meanwhile is met in the current. */
        rc = read_range(c, &old, lo, hi);
        if (rc == 0)
            rc = read_range(c, &cur, lo, hi);
        if (atomic_load(&m->hdr->index_cur) != wc || atomic_load(&m->hdr->index_old) != wo) {
            /* A growth started or ended under us: keys may have moved to an
             * index we did not read, and the one we read may be freed and
             * reused (FORMAT.md §10), which explains an error met there
             * (its detail is cleared when the call succeeds).  Read the
             * range again. */
            c->nkeys = c->keylen = 0;
            continue;
        }
        if (rc)
            return rc;
        c->next_h32 = hi;
    }
    /* Sort, so that a key met twice in one range (moved while we read) is dropped. */
    if (c->nkeys > 1)
        qsort_r(c->keys, c->nkeys, sizeof *c->keys, cmp_batch_key, c->keybuf);
    size_t kept = 0;
    for (size_t i = 0; i < c->nkeys; i++)
        if (kept == 0 || cmp_batch_key(&c->keys[kept - 1], &c->keys[i], c->keybuf) != 0)
            c->keys[kept++] = c->keys[i];
    c->nkeys = kept;
    return 0;
}

HMM_EXPORT int hmm_cursor_open(hmm_t *m, hmm_cursor **out)
{
    hmm__error_clear();
    if (!m || !out)
        return hmm_fail(-EINVAL, "hmm_cursor_open: NULL handle or cursor pointer");
    int rc = hmm__map_refresh_limit(m); /* a truncated file: refuse, not SIGBUS */
    if (rc)
        return rc;
    hmm_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return hmm_fail(-ENOMEM, "hmm_cursor_open: no memory for a cursor");
    c->m = m;
    *out = c;
    return 0;
}

HMM_EXPORT int hmm_cursor_next(hmm_cursor *c, const void **key, size_t *klen, const void **val,
                               size_t *vlen)
{
    hmm__error_clear();
    if (!c || !key || !klen || !val || !vlen)
        return hmm_fail(-EINVAL, "hmm_cursor_next: NULL cursor or out-pointer");
    for (;;) {
        if (c->pos == c->nkeys) {
            int rc = fill_batch(c);
            if (rc)
                return rc;
            if (c->nkeys == 0)
                return hmm__result(HMM_NOTFOUND);
        }
        struct batch_key *k = &c->keys[c->pos++];
        const uint8_t *kp = c->keybuf + k->at;
        size_t len = c->valcap;
        int rc = hmm__read_entry(c->m, kp, k->len, c->val, &len, &c->info, false);
        while (rc == HMM_TOOSMALL) { /* the value may grow again between tries */
            if (grow((void **)&c->val, &c->valcap, len + 1, 1) != 0)
                return -ENOMEM; /* grow() gave the detail */
            len = c->valcap;
            rc = hmm__read_entry(c->m, kp, k->len, c->val, &len, &c->info, false);
        }
        if (rc == HMM_NOTFOUND)
            continue; /* deleted meanwhile */
        if (rc)
            return rc;
        *key = kp;
        *klen = k->len;
        *val = c->val ? c->val : (const void *)"";
        *vlen = len;
        /* Attempts discarded on the way (a range read again after a
         * growth, a stripe read under its lock) may have left a detail. */
        return hmm__result(0);
    }
}

HMM_EXPORT int hmm_cursor_info(hmm_cursor *c, hmm_entry_info *info)
{
    hmm__error_clear();
    if (!c || !info)
        return hmm_fail(-EINVAL, "hmm_cursor_info: NULL cursor or info");
    *info = c->info;
    return 0;
}

HMM_EXPORT void hmm_cursor_close(hmm_cursor *c)
{
    if (!c)
        return;
    free(c->keys);
    free(c->keybuf);
    free(c->val);
    free(c);
}
