/*
 * cursor.c - weakly consistent iteration over the index.
 *
 * The cursor walks buckets in order and copies each bucket's entries (each
 * one validated with its stripe's seq, as a get is).  A key never moves
 * while it is present, so a key present throughout is met exactly once.
 * The one way to meet a key twice is for it to be deleted and re-inserted
 * further along its probe sequence after we returned it; every position a
 * key can take lies within HMM_MAX_PROBE buckets of its home, so we remember
 * the keys returned from the last HMM_MAX_PROBE buckets (and from the first
 * ones, for probe sequences that wrap) and skip a key met again.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"

#define CURSOR_TRIES 64

struct cursor_item {
    size_t klen, vlen;
    size_t key_at, val_at;      /* offsets into buf */
    uint64_t hash;
};

struct seen_key {
    uint64_t bucket;
    uint64_t hash;
    size_t klen;
    uint8_t *key;
};

struct hmm_cursor {
    hmm_t *m;
    uint64_t bucket;            /* next bucket to read */
    struct cursor_item batch[HMM_BUCKET_SLOTS];
    unsigned nbatch, pos;
    uint8_t *buf;
    size_t buflen, bufcap;
    struct seen_key *seen;
    size_t nseen, capseen;
};

static int buf_reserve(hmm_cursor *c, size_t more)
{
    if (c->buflen + more <= c->bufcap)
        return 0;
    size_t cap = c->bufcap ? c->bufcap : 4096;
    while (cap < c->buflen + more)
        cap *= 2;
    uint8_t *nb = realloc(c->buf, cap);
    if (!nb)
        return -ENOMEM;
    c->buf = nb;
    c->bufcap = cap;
    return 0;
}

/* Copy the entry in slot s into the batch.  1 copied, 0 skipped (expired
 * or changed), negative on error.  The caller validates with seq. */
static int copy_entry(hmm_cursor *c, uint64_t s, uint64_t now)
{
    hmm_t *m = c->m;
    uint64_t off = HMM_SLOT_OFF(s);
    struct hmm_entry *e = entry_at(m, off);
    if (!e)
        return HMM_CORRUPT;
    uint16_t klen = *(volatile uint16_t *)&e->klen;
    uint32_t vlen = *(volatile uint32_t *)&e->vlen;
    if (klen == 0 || vlen > m->max_value || !hmm_at(m, off, entry_bytes(klen, vlen)))
        return HMM_CORRUPT;
    uint64_t expire = *(volatile uint64_t *)&e->expire_ms;
    if (expire && expire <= now)
        return 0;
    if (buf_reserve(c, (size_t)klen + vlen + 1) != 0)
        return -ENOMEM;
    struct cursor_item *it = &c->batch[c->nbatch];
    it->klen = klen;
    it->vlen = vlen;
    it->key_at = c->buflen;
    memcpy(c->buf + c->buflen, entry_key(e), klen);
    it->val_at = c->buflen + klen;
    memcpy(c->buf + it->val_at, (uint8_t *)e + HMM_ENTRY_HDR + klen, vlen);
    return 1;
}

/* Read one slot of the current bucket into the batch, validated. */
static int read_slot(hmm_cursor *c, hmm_atomic_u64 *slot, uint64_t now)
{
    hmm_t *m = c->m;
    size_t mark = c->buflen;
    for (int tries = 0;; tries++) {
        uint64_t s = atomic_load_explicit(slot, memory_order_acquire);
        if (s == 0)
            return 0;
        uint32_t stripe = HMM_SLOT_TAG(s) & m->stripe_mask;
        struct hmm_stripe *st = &m->stripes[stripe];
        bool locked = false;
        if (tries >= CURSOR_TRIES) {
            if (m->rdonly) {
                struct timespec pause = {0, 1000000};
                nanosleep(&pause, NULL);
                if (tries > CURSOR_TRIES + 2000)
                    return hmm_fail(HMM_BUSY, "%s: a writer kept a stripe busy", m->path);
            } else {
                int rc = lock_stripe(m, stripe);
                if (rc)
                    return rc;
                locked = true;
                s = atomic_load(slot);
            }
        }
        uint64_t s0 = atomic_load_explicit(&st->seq, memory_order_acquire);
        if ((s0 & 1) && !locked)
            continue;
        c->buflen = mark;
        int rc = s ? copy_entry(c, s, now) : 0;
        atomic_thread_fence(memory_order_acquire);
        bool valid = locked || (atomic_load_explicit(&st->seq, memory_order_relaxed) == s0 &&
                                atomic_load_explicit(slot, memory_order_relaxed) == s);
        if (locked)
            unlock_stripe(m, stripe);
        if (!valid)
            continue;
        if (rc == 1) {
            struct cursor_item *it = &c->batch[c->nbatch++];
            it->hash = key_hash(c->buf + it->key_at, it->klen);
            c->buflen += it->klen + it->vlen;
        }
        return rc < 0 ? hmm_fail(rc, "%s: %s during iteration", m->path, hmm_strerror(rc)) : 0;
    }
}

static int fill_batch(hmm_cursor *c)
{
    hmm_t *m = c->m;
    c->nbatch = c->pos = 0;
    c->buflen = 0;
    uint64_t now = hmm_now_ms();
    while (c->nbatch == 0 && c->bucket < m->index_buckets) {
        struct hmm_bucket *bk = &m->index[c->bucket];
        for (unsigned j = 0; j < HMM_BUCKET_SLOTS; j++) {
            int rc = read_slot(c, &bk->slot[j], now);
            if (rc)
                return rc;
        }
        c->bucket++;
    }
    return 0;
}

/* Forget keys returned from buckets no key can reach back to. */
static void seen_prune(hmm_cursor *c, uint64_t bucket)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->nseen; i++) {
        struct seen_key *k = &c->seen[i];
        if (k->bucket < HMM_MAX_PROBE || k->bucket + HMM_MAX_PROBE > bucket)
            c->seen[kept++] = *k;
        else
            free(k->key);
    }
    c->nseen = kept;
}

static bool seen_before(const hmm_cursor *c, uint64_t hash, const uint8_t *key, size_t klen)
{
    for (size_t i = 0; i < c->nseen; i++)
        if (c->seen[i].hash == hash && c->seen[i].klen == klen && memcmp(c->seen[i].key, key, klen) == 0)
            return true;
    return false;
}

static int seen_add(hmm_cursor *c, uint64_t bucket, uint64_t hash, const uint8_t *key, size_t klen)
{
    if (c->nseen == c->capseen) {
        seen_prune(c, bucket);
        if (c->nseen == c->capseen) {
            size_t cap = c->capseen ? c->capseen * 2 : 256;
            struct seen_key *ns = realloc(c->seen, cap * sizeof *ns);
            if (!ns)
                return -ENOMEM;
            c->seen = ns;
            c->capseen = cap;
        }
    }
    uint8_t *copy = malloc(klen);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, key, klen);
    c->seen[c->nseen++] = (struct seen_key){bucket, hash, klen, copy};
    return 0;
}

HMM_EXPORT int hmm_cursor_open(hmm_t *m, hmm_cursor **out)
{
    if (!m || !out)
        return -EINVAL;
    hmm_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->m = m;
    *out = c;
    return 0;
}

HMM_EXPORT int hmm_cursor_next(hmm_cursor *c, const void **key, size_t *klen, const void **val,
                               size_t *vlen)
{
    if (!c || !key || !klen || !val || !vlen)
        return -EINVAL;
    hmm_t *m = c->m;
    for (;;) {
        if (c->pos == c->nbatch) {
            int rc = fill_batch(c);
            if (rc)
                return rc;
            if (c->nbatch == 0)
                return HMM_NOTFOUND;
        }
        struct cursor_item *it = &c->batch[c->pos++];
        uint64_t at = c->bucket - 1;
        uint64_t home = hash_home(m, it->hash);
        const uint8_t *k = c->buf + it->key_at;
        /* Could this key have stood in a bucket we already passed? */
        bool may_repeat = home != at || home + HMM_MAX_PROBE > m->index_buckets;
        if (may_repeat && seen_before(c, it->hash, k, it->klen))
            continue;
        /* Every key is remembered: one returned from its home bucket may
         * still come back displaced; seen_prune() bounds the memory. */
        int rc = seen_add(c, at, it->hash, k, it->klen);
        if (rc)
            return rc;
        *key = k;
        *klen = it->klen;
        *val = c->buf + it->val_at;
        *vlen = it->vlen;
        return 0;
    }
}

HMM_EXPORT void hmm_cursor_close(hmm_cursor *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nseen; i++)
        free(c->seen[i].key);
    free(c->seen);
    free(c->buf);
    free(c);
}
