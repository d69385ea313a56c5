/*
 * read.c - lock-free gets (FORMAT.md §5).
 *
 * A get copies the value between two loads of its stripe's seq.  Equal and
 * even means no entry of the stripe was freed meanwhile, so the bytes came
 * from a complete, published entry.  Anything read before that check may be
 * garbage from a reused chunk, so every length is captured once and
 * bounds-checked before it is used.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "core/crashpoint.h"
#include "core/lookup.h"

#define OPTIMISTIC_TRIES 64
#define RDONLY_WAIT_MS 2000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct read_out {
    void *val;
    size_t cap;
    size_t len;
    hmm_entry_info info;
    struct hmm_entry *mark;     /* entry to mark read once the read is validated, or NULL */
    uint64_t mark_word;         /* its first word as the read saw it */
};

/* Cache mode's recency mark (FORMAT.md §12), in two halves.  The read
 * notes the entry's first word (state, access, owner, checksum); only
 * after the seq check has said the read was good does recency_mark() set
 * the access byte, by a compare-and-swap of that whole word.  A reader
 * stalled after its check, while the chunk was freed and its page given
 * to another class, finds other bytes there and writes none: a plain
 * store set one byte in the middle of another key's value (test_torture,
 * cache map: "1 of 8880 bytes differ ... (0x77706901 there)").  Never by
 * a read-only handle: its mapping is PROT_READ, and it promises not to
 * write a byte of the files (FORMAT.md §12). */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ACCESS_SHIFT (8 * offsetof(struct hmm_entry, access))
#else
#define ACCESS_SHIFT (8 * (7 - offsetof(struct hmm_entry, access)))
#endif
#define ACCESS_MASK ((uint64_t)0xff << ACCESS_SHIFT)

static inline hmm_atomic_u64 *entry_first_word(struct hmm_entry *e)
{
    return (hmm_atomic_u64 *)(void *)e; /* chunks are 8-byte aligned (FORMAT.md §6) */
}

/* The word to mark, or NULL: not a writable cache (one byte of the
 * handle, set at open), or marked already (the load keeps a hot entry's
 * line from being written on every read). */
static inline struct hmm_entry *recency_note(hmm_t *m, struct hmm_entry *e, uint64_t *word)
{
    if (__builtin_expect(!m->recency_marks, 1))
        return NULL;
    *word = atomic_load_explicit(entry_first_word(e), memory_order_relaxed);
    return *word & ACCESS_MASK ? NULL : e;
}

static inline void recency_mark(struct hmm_entry *e, uint64_t word)
{
    HMM_CRASHPOINT("read_validated");
    if (e)
        atomic_compare_exchange_strong_explicit(entry_first_word(e), &word, word | ((uint64_t)1 << ACCESS_SHIFT),
                                                memory_order_relaxed, memory_order_relaxed);
}

/* Copy the value of the entry e, which a lookup found holding the key
 * (klen bytes, bounds-checked), its vlen read once and checked with the
 * entry's bounds by the caller.  Everything read here may come from a
 * chunk a writer is reusing; the caller's seq check decides. */
static inline __attribute__((always_inline)) int read_value_of(hmm_t *m, struct hmm_entry *e, size_t klen,
                                                              uint32_t vlen, struct read_out *out, bool want_info,
                                                              bool verify_checksum)
{
    uint64_t expire = *(volatile uint64_t *)&e->expire_ms;
    if (expire && expire <= hmm_now_ms())
        return HMM_NOTFOUND;
    if (verify_checksum && hmm__entry_checksum(e) != e->checksum)
        return HMM_CORRUPT;
    if (want_info) {
        out->info.version = e->version;
        out->info.expire_ms = expire;
        out->info.tag = e->vtype;
    }
    out->len = vlen;
    if (vlen > out->cap)
        return HMM_TOOSMALL;
    HMM_CRASHPOINT("read_found");
    hmm__copy_small(out->val, (uint8_t *)e + HMM_ENTRY_HDR + klen, vlen);
    HMM_CRASHPOINT("read_copied");
    out->mark = recency_note(m, e, &out->mark_word); /* set by the caller once validated */
    return 0;
}

/* read_value_of the entry at off, bounds-checked here. */
static inline __attribute__((always_inline)) int read_value(hmm_t *m, uint64_t off, size_t klen,
                                                           struct read_out *out, bool want_info,
                                                           bool verify_checksum)
{
    struct hmm_entry *e = (struct hmm_entry *)(m->base + off);
    uint32_t vlen = *(volatile uint32_t *)&e->vlen;
    if (__builtin_expect(vlen > m->max_value || !hmm_at(m, off, entry_bytes(klen, vlen)), 0))
        return HMM_CORRUPT;
    return read_value_of(m, e, klen, vlen, out, want_info, verify_checksum);
}

/* One attempt of a get, inline in its optimistic loop: the call's prologue
 * and the out-struct spills were a tenth of a get's instructions, and
 * fewer instructions per get let the CPU start the next get's loads while
 * this one's are still missing. */
static inline __attribute__((always_inline)) int read_attempt_inline(hmm_t *m, uint64_t hash, const void *key,
                                                                    size_t klen, struct read_out *out,
                                                                    bool want_info, bool verify_checksum)
{
    int rc = 0;
    struct hmm__view scratch;
    const struct hmm__view *v = hmm__index_cached(m, &scratch, &rc);
    if (__builtin_expect(!v, 0))
        return rc;
    hmm_atomic_u64 *slot;
    const struct hmm_ix *in;
    uint64_t off = index_find_in(m, v, hash, key, klen, &slot, &in, &rc);
    if (rc)
        return rc;
    if (!off)
        return HMM_NOTFOUND;
    return read_value(m, off, klen, out, want_info, verify_checksum);
}

/* The slow paths' copy. */
static __attribute__((noinline)) int read_attempt(hmm_t *m, uint64_t hash, const void *key, size_t klen,
                                                  struct read_out *out, bool verify_checksum)
{
    return read_attempt_inline(m, hash, key, klen, out, true, verify_checksum);
}

static bool stripe_owner_dead(hmm_t *m, struct hmm_stripe *s)
{
    uint32_t tag = atomic_load(&s->owner_proc);
    if (tag == 0 || tag > HMM_PROCS)
        return true; /* odd for 10 ms with no holder: left by a crash of the whole host */
    return !hmm__proc_slot_alive(m, tag);
}

/* A read-only handle cannot take the lock (that writes the file).  It waits
 * for the writer; if the writer is dead, nobody will move the stripe until
 * a writable process repairs it, so an entry whose checksum verifies is the
 * published one. */
static int read_rdonly_slow(hmm_t *m, struct hmm_stripe *s, uint64_t hash, const void *key, size_t klen,
                            struct read_out *out)
{
    struct timespec pause = {0, 1000000};
    for (int waited = 0; waited < RDONLY_WAIT_MS; waited++) {
        uint64_t s0 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (!(s0 & 1)) {
            int rc = read_attempt(m, hash, key, klen, out, false);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&s->seq, memory_order_relaxed) == s0)
                return rc;
        } else if (waited >= 10 && stripe_owner_dead(m, s)) {
            int rc = read_attempt(m, hash, key, klen, out, true);
            /* Unless a writable process repaired the stripe meanwhile (a
             * growth's barrier does, FORMAT.md §10): then read again. */
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&s->seq, memory_order_relaxed) == s0)
                return rc;
        }
        nanosleep(&pause, NULL);
    }
    return hmm_fail(HMM_BUSY, "%s: a writer kept the stripe busy for %d ms", m->path, RDONLY_WAIT_MS);
}

/* The get's first attempt lost a race with a writer (or found seq odd):
 * retry optimistically, then read under the stripe lock (a read-only
 * handle cannot lock: it waits for the writer).  Counts the retries. */
static __attribute__((noinline)) int read_contended(hmm_t *m, uint64_t hash, const void *key, size_t klen,
                                                    struct read_out *out)
{
    struct hmm_stripe *s = &m->stripes[hash_stripe(m, hash)];
    int rc = HMM_BUSY;
    unsigned tries;
    for (tries = 1; tries < OPTIMISTIC_TRIES; tries++) {
        uint64_t s0 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (s0 & 1) {
            cpu_relax();
            continue;
        }
        int attempt = read_attempt(m, hash, key, klen, out, false);
        /* Pairs with the writer's release fence in hmm__seq_begin_free(). */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) == s0) {
            if (attempt == 0)
                recency_mark(out->mark, out->mark_word);
            rc = attempt;
            goto done;
        }
    }
    if (m->rdonly) {
        rc = read_rdonly_slow(m, s, hash, key, klen, out);
    } else {
        uint32_t stripe = hash_stripe(m, hash);
        rc = hmm__lock_stripe(m, stripe);
        if (rc == 0) {
            rc = read_attempt(m, hash, key, klen, out, false);
            if (rc == 0)
                recency_mark(out->mark, out->mark_word); /* the lock keeps the entry */
            hmm__unlock_stripe(m, stripe);
        }
    }
done:
    metrics_add(m, HMM_C_READ_RETRIES, tries);
    return rc;
}

/* One optimistic read of key under its stripe's seq (FORMAT.md §5),
 * falling back to read_contended() when a writer got in the way. */
static inline __attribute__((always_inline)) int read_validated(hmm_t *m, uint64_t hash, const void *key,
                                                               size_t klen, struct read_out *out, bool want_info)
{
    struct hmm_stripe *s = &m->stripes[hash_stripe(m, hash)];
    uint64_t s0 = atomic_load_explicit(&s->seq, memory_order_acquire);
    if (__builtin_expect(!(s0 & 1), 1)) {
        int rc = read_attempt_inline(m, hash, key, klen, out, want_info, false);
        /* Pairs with the writer's release fence in hmm__seq_begin_free(). */
        atomic_thread_fence(memory_order_acquire);
        if (__builtin_expect(atomic_load_explicit(&s->seq, memory_order_relaxed) == s0, 1)) {
            if (rc == 0)
                recency_mark(out->mark, out->mark_word);
            return rc;
        }
    }
    return read_contended(m, hash, key, klen, out);
}

static __attribute__((noinline, cold)) int read_corrupt(hmm_t *m)
{
    return hmm_fail(HMM_CORRUPT, "%s: an index slot or entry fails its bounds check", m->path);
}

static inline __attribute__((always_inline)) int read_entry_inline(hmm_t *m, const void *key, size_t klen,
                                                                  void *val, size_t *vlen, hmm_entry_info *info,
                                                                  bool count)
{
    int rc = check_key(m, key, klen);
    if (rc)
        return rc;
    if (__builtin_expect(!vlen || (*vlen && !val), 0))
        return hmm_fail(-EINVAL, "NULL value length, or NULL value buffer with a capacity");
    struct read_out out = {.val = val, .cap = *vlen};
    rc = read_validated(m, key_hash(key, klen), key, klen, &out, info != NULL);
    if (count) {
        metrics_add(m, HMM_C_GETS, 1);
        if (rc == HMM_NOTFOUND)
            metrics_add(m, HMM_C_MISSES, 1);
    }
    if (__builtin_expect(rc == HMM_CORRUPT, 0))
        return read_corrupt(m);
    if (rc == 0 || rc == HMM_TOOSMALL) {
        *vlen = out.len;
        if (info)
            *info = out.info;
    }
    return rc;
}

int hmm__read_entry(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen, hmm_entry_info *info,
               bool count)
{
    return read_entry_inline(m, key, klen, val, vlen, info, count);
}

/* ---- hmm_get ----
 *
 * The common case, on one path with no call: the key's stripe is quiet,
 * the cached index view is current and no index is being drained, and
 * the key is in its home bucket or provably absent (no match there and an
 * overflow count of 0).  A key past its home bucket is walked out of line
 * (get_walk, get_cell_walk) under the same seq.  Everything else (a writer
 * in the way, growth, a bounds check that fails, which may only mean
 * another process grew the file) returns GET_GENERAL and the get starts
 * over on the general path above, which decides. */
#define GET_GENERAL 1

/* Gets of a writable handle that take the general path while an index is
 * being drained help drain it, once in GET_HELPS_GROWTH: writers drain a
 * few buckets each (grow.c), so a growth begun by the last writes of a
 * fill would otherwise stay half done, and every get on the general path,
 * until the next writes. */
#define GET_HELPS_GROWTH 8u

static __attribute__((noinline)) int get_general(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen)
{
    HMM_CRASHPOINT("read_general");
    int rc = read_entry_inline(m, key, klen, val, vlen, NULL, true);
    if (!m->rdonly && atomic_load_explicit(&m->hdr->index_old, memory_order_relaxed) != 0 &&
        atomic_fetch_add_explicit(&m->general_gets, 1, memory_order_relaxed) % GET_HELPS_GROWTH == 0)
        hmm__grow_index_help(m);
    return rc;
}

/* Where both fast paths start: the stripe's seq, even, into *s0, and the
 * handle's cached view, still current (current word first, as in
 * hmm__index_cached()) and with no index being drained; NULL sends the get
 * general. */
static inline __attribute__((always_inline)) const struct hmm__view *fast_view(hmm_t *m, uint64_t hash,
                                                                              struct hmm_stripe **sp, uint64_t *s0)
{
    struct hmm_stripe *s = *sp = &m->stripes[hash_tag(hash) & m->stripe_mask];
    *s0 = atomic_load_explicit(&s->seq, memory_order_acquire);
    struct hmm_header *h = m->hdr; /* fixed at open: loaded once, not after each acquire */
    uint64_t wc = atomic_load_explicit(&h->index_cur, memory_order_acquire);
    uint64_t wo = atomic_load_explicit(&h->index_old, memory_order_acquire);
    const struct hmm__view *v = atomic_load_explicit(&m->view, memory_order_acquire);
    if (__builtin_expect((*s0 & 1) || !v, 0))
        return NULL;
    if (__builtin_expect(((v->word_cur ^ wc) | (v->word_old ^ wo) | v->old.nb) != 0, 0))
        return NULL;
    HMM_CRASHPOINT("read_viewed");
    return v;
}

/* A key as the two words a copy of it would be, for comparing with copies;
 * a key over 16 bytes has no copy, and words that compare with none (its
 * length does not match any copy's first). */
static inline __attribute__((always_inline)) void key_cell_words(const void *key, size_t klen, uint64_t kw[2])
{
    if (__builtin_expect(klen <= HMM_CELL_KEY_MAX, 1)) {
        cell_words(key, klen, kw);
    } else {
        kw[0] = 0;
        kw[1] = 0;
    }
}

/* What a search of one bucket saw (format 1's slots, format 2's cells).
 * Not GET_GENERAL's values: that is 1, and format 2's walk once took its
 * own "found" for it, sending every key past its home bucket and every
 * entry without a copy down the general path (twice the instructions, and
 * in a batch no prefetch: 130-190 ns a key where its home's keys took 27). */
enum cell_find { CELL_ABSENT, CELL_FOUND, CELL_UNSURE };

/* The key among the slots of bucket bk that have its tag: CELL_FOUND with
 * its entry in *ep and value length in *np, CELL_ABSENT, or CELL_UNSURE
 * when a bounds check fails.  Bounds, each checked before the bytes it
 * covers are read (a writer may be reusing the chunk; the seq check
 * discards what a race let through): the header within [data_off, limit
 * - header], that is its place in the data area, at, within span; then
 * key and value within limit, at + klen + n within span (no overflow: n
 * has 32 bits, klen 16).  A failure may only mean that another process
 * grew the file: the general path decides. */
static inline __attribute__((always_inline)) enum cell_find slot_bucket_find(hmm_t *m, const struct hmm_bucket *bk,
                                                                            uint16_t tag, const void *key,
                                                                            size_t klen, uint64_t span,
                                                                            struct hmm_entry **ep, uint32_t *np)
{
    for (unsigned mask = bucket_match(bk, tag); mask; mask &= mask - 1) {
        /* Acquire pairs with the publisher's release (index_lookup). */
        uint64_t sj = atomic_load_explicit(bucket_word(bk, mask), memory_order_acquire);
        if (__builtin_expect(HMM_SLOT_TAG(sj) != tag, 0))
            continue;
        uint64_t off = HMM_SLOT_OFF(sj);
        uint64_t at = off - m->data_off; /* below data_off wraps: fails too */
        if (__builtin_expect(at > span, 0)) {
            if (sj == 0)
                continue; /* an empty slot, matched by a tag of 0: tested only here, off being 0 */
            return CELL_UNSURE;
        }
        struct hmm_entry *c = (struct hmm_entry *)(m->base + off);
        uint32_t n = *(volatile uint32_t *)&c->vlen; /* read once: checked, then used */
        if (__builtin_expect(n > m->max_value || at + klen + n > span, 0))
            return CELL_UNSURE;
        if (lookup_entry_holds(c, key, klen)) {
            *ep = c;
            *np = n;
            return CELL_FOUND;
        }
    }
    return CELL_ABSENT;
}

/* The end of a format-1 get: the value of e (NULL: absent) copied out
 * under the seq check. */
static inline __attribute__((always_inline)) int get_entry_finish(hmm_t *m, struct hmm_stripe *s, uint64_t s0,
                                                                 struct hmm_entry *e, uint32_t n, size_t klen,
                                                                 void *val, size_t *vlen)
{
    struct hmm_entry *mark = NULL;
    uint64_t mark_word = 0;
    int rc = HMM_NOTFOUND;
    if (e) {
        uint64_t expire = *(volatile uint64_t *)&e->expire_ms;
        if (__builtin_expect(expire != 0, 0) && expire <= hmm_now_ms()) {
            rc = HMM_NOTFOUND;
        } else if (__builtin_expect(n > *vlen, 0)) {
            rc = HMM_TOOSMALL;
        } else {
            HMM_CRASHPOINT("read_found");
            hmm__copy_small(val, (uint8_t *)e + HMM_ENTRY_HDR + klen, n);
            HMM_CRASHPOINT("read_copied");
            mark = recency_note(m, e, &mark_word);
            rc = 0;
        }
    }
    /* Pairs with the writer's release fence in hmm__seq_begin_free(). */
    atomic_thread_fence(memory_order_acquire);
    if (__builtin_expect(atomic_load_explicit(&s->seq, memory_order_relaxed) != s0, 0))
        return GET_GENERAL; /* with *vlen untouched: it is the general path's capacity */
    if (rc != HMM_NOTFOUND)
        *vlen = n;
    recency_mark(mark, mark_word);
    return rc;
}

/* A format-1 get past its home bucket: the probe sequence from probe
 * `first` on (1: the next bucket, its home searched already; 0: the home
 * bucket too), while the overflow counts say the key may lie further. */
static __attribute__((noinline)) int get_walk(hmm_t *m, const struct hmm_ix *ix, uint64_t hash, struct hmm_stripe *s,
                                              uint64_t s0, const void *key, size_t klen, void *val, size_t *vlen,
                                              unsigned first)
{
    uint64_t span = atomic_load_explicit(&m->limit, memory_order_relaxed) - HMM_ENTRY_HDR - m->data_off;
    struct hmm_entry *e = NULL;
    uint32_t n = 0;
    uint64_t b = hash_home(ix, hash);
    if (first)
        b = ix_next(ix, b);
    for (unsigned probe = first; probe < HMM_MAX_PROBE; probe++, b = ix_next(ix, b)) {
        enum cell_find found = slot_bucket_find(m, &ix->bk[b], hash_tag(hash), key, klen, span, &e, &n);
        if (found == CELL_UNSURE)
            return GET_GENERAL;
        if (found == CELL_FOUND || atomic_load_explicit(&ix->bk[b].meta, memory_order_relaxed) == 0)
            break; /* no key probed past this bucket: absent */
    }
    return get_entry_finish(m, s, s0, e, n, klen, val, vlen);
}

static inline __attribute__((always_inline)) int get_fast(hmm_t *m, const void *key, size_t klen, void *val,
                                                         size_t *vlen)
{
    uint64_t hash = key_hash(key, klen);
    struct hmm_stripe *s;
    uint64_t s0;
    const struct hmm__view *v = fast_view(m, hash, &s, &s0);
    if (__builtin_expect(!v, 0))
        return GET_GENERAL;
    const struct hmm_bucket *bk = &v->cur.bk[hash_home(&v->cur, hash)];
    uint64_t span = atomic_load_explicit(&m->limit, memory_order_relaxed) - HMM_ENTRY_HDR - m->data_off;
    struct hmm_entry *e = NULL;
    uint32_t n = 0;
    enum cell_find found = slot_bucket_find(m, bk, hash_tag(hash), key, klen, span, &e, &n);
    if (__builtin_expect(found == CELL_UNSURE, 0))
        return GET_GENERAL;
    if (found == CELL_ABSENT && atomic_load_explicit(&bk->meta, memory_order_relaxed) != 0)
        return get_walk(m, &v->cur, hash, s, s0, key, klen, val, vlen, 1); /* keys probed past this bucket */
    return get_entry_finish(m, s, s0, e, n, klen, val, vlen);
}

/* hmm_get in a map of format 2 (FORMAT.md §7): how a cell's copy is read.
 * The cell's word is loaded before the copy and again after it, behind an
 * acquire fence.  A writer clears the copy's shape before it writes new
 * bytes (index.c, hmm__cell_copy_locked), so an unchanged word means the
 * bytes were the copy it described; the stripe's seq covers a word that
 * came back to the same value (a delete and an insert in between free a
 * chunk, with seq odd).  A cell of the key's tag without a copy (a TTL'd
 * or long entry, or one whose copy is not written yet) is read through
 * its chunk, bounds-checked as get_fast reads a slot. */
struct cell_read {
    const struct hmm_cell *copy; /* the cell whose copy was read, or NULL */
    const struct hmm_entry *e;   /* else the entry read through its chunk, or NULL */
    uint64_t word, value;        /* copy: the word it was read under, and the value */
    uint32_t n;                  /* the value's length */
};

/* Look for the key in the cells of bucket b: CELL_FOUND (in *r), CELL_ABSENT,
 * or CELL_UNSURE when a bounds check fails (the general path decides). */
static inline __attribute__((always_inline)) enum cell_find cell_bucket_find(hmm_t *m, const struct hmm_ix *ix, uint64_t b,
                                                                 uint16_t tag, const void *key, size_t klen,
                                                                 const uint64_t kw[2], uint64_t span,
                                                                 struct cell_read *r)
{
    const struct hmm_cell *c = ix_cell(ix, b, 0);
    for (unsigned j = 0; j < HMM_CELL_SLOTS; j++, c++) {
        /* Acquire pairs with the publisher's and the copy's release. */
        uint64_t w = atomic_load_explicit(&c->word, memory_order_acquire);
        if (HMM_SLOT_TAG(w) != tag || w == 0)
            continue;
        unsigned shape = HMM_SLOT_SHAPE(w);
        if (shape & HMM_SHAPE_COPY) {
            if (HMM_SHAPE_KLEN(shape) != klen || atomic_load_explicit(&c->key[0], memory_order_relaxed) != kw[0] ||
                atomic_load_explicit(&c->key[1], memory_order_relaxed) != kw[1])
                continue;
            r->value = atomic_load_explicit(&c->val, memory_order_relaxed);
            r->n = HMM_SHAPE_VLEN(shape);
            r->word = w;
            r->copy = c;
            return CELL_FOUND;
        }
        uint64_t off = HMM_SLOT_OFF(w);
        uint64_t at = off - m->data_off; /* below data_off wraps: fails too */
        if (__builtin_expect(at > span, 0))
            return CELL_UNSURE;
        const struct hmm_entry *e = (const struct hmm_entry *)(m->base + off);
        uint32_t n = *(const volatile uint32_t *)&e->vlen; /* read once: checked, then used */
        if (__builtin_expect(n > m->max_value || at + klen + n > span, 0))
            return CELL_UNSURE;
        if (lookup_entry_holds(e, key, klen)) {
            r->e = e;
            r->n = n;
            return CELL_FOUND;
        }
    }
    return CELL_ABSENT;
}

/* Finish a format-2 get: copy the value out, validate, answer. */
static inline __attribute__((always_inline)) int cell_read_finish(struct hmm_stripe *s, uint64_t s0, size_t klen,
                                                                 const struct cell_read *r, void *val, size_t *vlen)
{
    int rc = HMM_NOTFOUND;
    uint32_t n = r->n;
    if (r->copy) {
        rc = n <= *vlen ? 0 : HMM_TOOSMALL;
        if (rc == 0)
            hmm__copy_small(val, (const uint8_t *)&r->value, n);
        HMM_CRASHPOINT("read_copied");
    } else if (r->e) {
        uint64_t expire = *(const volatile uint64_t *)&r->e->expire_ms;
        if (__builtin_expect(expire != 0, 0) && expire <= hmm_now_ms()) {
            rc = HMM_NOTFOUND;
        } else if (__builtin_expect(n > *vlen, 0)) {
            rc = HMM_TOOSMALL;
        } else {
            HMM_CRASHPOINT("read_found");
            hmm__copy_small(val, (const uint8_t *)r->e + HMM_ENTRY_HDR + klen, n);
            HMM_CRASHPOINT("read_copied");
            rc = 0;
        }
    }
    /* Pairs with the release fences of the copy and of hmm__seq_begin_free(). */
    atomic_thread_fence(memory_order_acquire);
    if (r->copy && __builtin_expect(atomic_load_explicit(&r->copy->word, memory_order_relaxed) != r->word, 0))
        return GET_GENERAL;
    if (__builtin_expect(atomic_load_explicit(&s->seq, memory_order_relaxed) != s0, 0))
        return GET_GENERAL; /* with *vlen untouched: it is the general path's capacity */
    if (rc != HMM_NOTFOUND)
        *vlen = n;
    return rc;
}

/* A format-2 get past its home bucket's copies: the probe sequence, while
 * the overflow counts say the key may lie further. */
static __attribute__((noinline)) int get_cell_walk(hmm_t *m, const struct hmm_ix *ix, uint64_t hash,
                                                   struct hmm_stripe *s, uint64_t s0, const void *key, size_t klen,
                                                   const uint64_t kw[2], void *val, size_t *vlen)
{
    uint64_t span = atomic_load_explicit(&m->limit, memory_order_relaxed) - HMM_ENTRY_HDR - m->data_off;
    struct cell_read r = {0};
    uint64_t b = hash_home(ix, hash);
    for (unsigned probe = 0; probe < HMM_MAX_PROBE; probe++, b = ix_next(ix, b)) {
        enum cell_find found = cell_bucket_find(m, ix, b, hash_tag(hash), key, klen, kw, span, &r);
        if (found == CELL_UNSURE)
            return GET_GENERAL;
        if (found == CELL_FOUND || ix_overflow(ix, b) == 0)
            break; /* no key probed past this bucket: absent */
    }
    return cell_read_finish(s, s0, klen, &r, val, vlen);
}

/* The common case of a format-2 get on one path with no call: a copy in
 * the home bucket, or a home bucket that no key probed past. */
static inline __attribute__((always_inline)) int get_cell_hashed(hmm_t *m, uint64_t hash, const void *key,
                                                                size_t klen, void *val, size_t *vlen)
{
    uint16_t tag = hash_tag(hash);
    struct hmm_stripe *s;
    uint64_t s0;
    const struct hmm__view *v = fast_view(m, hash, &s, &s0);
    if (__builtin_expect(!v, 0))
        return GET_GENERAL;
    const struct hmm_ix *ix = &v->cur;
    uint64_t b = hash_home(ix, hash);
    uint64_t kw[2];
    key_cell_words(key, klen, kw);
    const struct hmm_cell *c = ix_cell(ix, b, 0), *copy = NULL;
    uint64_t word = 0, value = 0;
    unsigned n = 0;
    for (unsigned j = 0; j < HMM_CELL_SLOTS; j++, c++) {
        /* Acquire pairs with the publisher's and the copy's release. */
        uint64_t w = atomic_load_explicit(&c->word, memory_order_acquire);
        if (HMM_SLOT_TAG(w) != tag || w == 0)
            continue;
        unsigned shape = HMM_SLOT_SHAPE(w);
        if (!(shape & HMM_SHAPE_COPY))
            return get_cell_walk(m, ix, hash, s, s0, key, klen, kw, val, vlen);
        if (HMM_SHAPE_KLEN(shape) != klen || atomic_load_explicit(&c->key[0], memory_order_relaxed) != kw[0] ||
            atomic_load_explicit(&c->key[1], memory_order_relaxed) != kw[1])
            continue;
        value = atomic_load_explicit(&c->val, memory_order_relaxed);
        n = HMM_SHAPE_VLEN(shape);
        word = w;
        copy = c;
        HMM_CRASHPOINT("read_copied");
        break;
    }
    if (!copy && atomic_load_explicit(&ix->ovf[b], memory_order_relaxed) != 0)
        return get_cell_walk(m, ix, hash, s, s0, key, klen, kw, val, vlen);
    /* Pairs with the release fences of the copy and of hmm__seq_begin_free(). */
    atomic_thread_fence(memory_order_acquire);
    if (copy && __builtin_expect(atomic_load_explicit(&copy->word, memory_order_relaxed) != word, 0))
        return GET_GENERAL;
    if (__builtin_expect(atomic_load_explicit(&s->seq, memory_order_relaxed) != s0, 0))
        return GET_GENERAL; /* with *vlen untouched: it is the general path's capacity */
    if (!copy)
        return HMM_NOTFOUND;
    size_t cap = *vlen;
    *vlen = n;
    if (__builtin_expect(n > cap, 0))
        return HMM_TOOSMALL;
    hmm__copy_small(val, (const uint8_t *)&value, n);
    return 0;
}

static inline __attribute__((always_inline)) int get_cell_fast(hmm_t *m, const void *key, size_t klen, void *val,
                                                              size_t *vlen)
{
    return get_cell_hashed(m, key_hash(key, klen), key, klen, val, vlen);
}

/* A get of any key: get_fast with the calls a longer key needs (XXH3's
 * long path, memcmp). */
static __attribute__((noinline)) int get_any_key(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen)
{
    if (__builtin_expect(!m || !key || klen - 1 >= HMM_MAX_KEY || !vlen || (*vlen && !val), 0))
        return get_general(m, key, klen, val, vlen); /* says what is wrong */
    /* Format 2: no copy holds a key over 16 bytes, but its cell names its
     * entry, which get_cell_fast reads as it reads a long value's. */
    int rc = m->cells ? get_cell_fast(m, key, klen, val, vlen) : get_fast(m, key, klen, val, vlen);
    if (__builtin_expect(rc == GET_GENERAL, 0))
        return get_general(m, key, klen, val, vlen);
    metrics_count_get(m, rc == HMM_NOTFOUND);
    return rc;
}

/* Keys of 1 to 16 bytes, the common case, take a copy of get_fast in
 * which the compiler knows the length is one of those: XXH3's long path
 * and memcmp drop out of it, and with them the branches that chose them
 * and the registers kept across their calls. */
HMM_EXPORT int hmm_get(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen)
{
    hmm__error_clear(); /* one store into initial-exec TLS, on the fast path too */
    /* val is tested first: it is rarely NULL, and then *vlen need not be read */
    if (__builtin_expect(klen - 1 >= 16 || !m || !key || !vlen || (!val && *vlen), 0))
        return get_any_key(m, key, klen, val, vlen); /* which also says what is wrong */
    int rc = __builtin_expect(m->cells, 0) ? get_cell_fast(m, key, klen, val, vlen) : get_fast(m, key, klen, val, vlen);
    if (__builtin_expect(rc == GET_GENERAL, 0))
        return get_general(m, key, klen, val, vlen);
    metrics_count_get(m, rc == HMM_NOTFOUND);
    return rc;
}

HMM_EXPORT int hmm_getv(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen,
                        uint64_t *version)
{
    hmm_entry_info info;
    hmm__error_clear();
    int rc = hmm__read_entry(m, key, klen, val, vlen, &info, true);
    if ((rc == 0 || rc == HMM_TOOSMALL) && version)
        *version = info.version;
    return rc;
}

HMM_EXPORT int hmm_get_info(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen,
                            hmm_entry_info *info)
{
    hmm__error_clear();
    return hmm__read_entry(m, key, klen, val, vlen, info, true);
}

/* ---- batched gets ----
 *
 * A get spends most of its time waiting for two dependent lines: the
 * key's bucket, then its entry.  hmm_get_batch looks keys up in groups of
 * BATCH_GROUP, each group in three stages:
 *   1. hash every key; prefetch its home bucket and its stripe's seq;
 *   2. load seq, match the bucket's tags, prefetch the candidate entry
 *      (format 2: read the key's copy from its home bucket, or prefetch
 *      what stage 3 will read past it);
 *   3. compare the key, copy the value, check seq (format 2: check the
 *      copy's word and seq, or walk past the home bucket as hmm_get).
 * The stages of consecutive groups are software-pipelined: while group g
 * is finished (stage 3), group g+1 is probed (stage 2) and group g+2
 * hashed (stage 1), so a line prefetched in one stage has a whole step of
 * other groups' work to arrive before it is read, instead of the first
 * key of the next stage waiting for it.
 * A key past its home bucket is walked at stage 3 as hmm_get walks it
 * (not in calls that ask for infos: a walk fills none), and so is a key
 * whose candidate is another key's (a tag collision: stage 2 tries only the
 * first slot or cell of its tag), from its home bucket.  A key of a map
 * whose index is being drained, or one whose stripe a writer changed, is
 * looked up again alone, the way hmm_get does it. */
#define BATCH_GROUP 16
/* Keys per group in a map of format 1, whose keys wait for two lines, the
 * second prefetched one step before it is read: in a call of 32 keys
 * (hmmbench's) groups of 16 make two steps, and the last group's entries
 * have only one group's finish to arrive behind; groups of 8 make four.
 * A 1 M-key map, calls of 32 keys, three runs each: 37-41 ns a key with
 * groups of 8, 44-45 ns with 16.  Format 2 (one line a key): 34-36 ns
 * with 8, 30-36 ns with 16, so it keeps 16. */
#define BATCH_GROUP_ENTRIES 8
#define BATCH_DEPTH 3 /* groups in flight: one per stage */

/* BATCH_COPY: format 2 only. */
enum batch_state { BATCH_ALONE, BATCH_CANDIDATE, BATCH_ABSENT, BATCH_COPY, BATCH_WALK };

struct batch_key {
    uint64_t hash;
    uint64_t s0;                /* the stripe's seq at stage 2 */
    union {
        uint64_t off;           /* BATCH_CANDIDATE: the entry */
        struct {                /* BATCH_COPY: the cell, its word and value as read */
            const struct hmm_cell *cell;
            uint64_t word, value;
        } copy;
    };
    struct hmm_stripe *s;
    struct hmm_bucket *home;
};

/* One group in flight: keys [first, first + n) of the call. */
struct batch_group {
    size_t first, n;
    const struct hmm__view *v;  /* as loaded at stage 1; NULL: every key alone */
    struct hmm__view scratch;
    struct batch_key b[BATCH_GROUP];
    uint8_t st[BATCH_GROUP];
};

/* The call's arrays, as hmm_get_batch received them. */
struct batch_call {
    const void *const *keys;
    const size_t *klens;
    void *const *vals;
    size_t *vlens;
    int *rcs;
    hmm_entry_info *infos;
    uint64_t gets, misses;
};

/* A key of the batch the general way, as hmm_get but filling info. */
static __attribute__((noinline)) int batch_alone(hmm_t *m, uint64_t hash, const void *key, size_t klen,
                                                 struct read_out *out, bool want_info)
{
    HMM_CRASHPOINT("read_general");
    return read_validated(m, hash, key, klen, out, want_info);
}

/* Stage 1: check and hash each key, prefetch its home bucket and seq. */
static void batch_stage_hash(hmm_t *m, struct batch_call *c, struct batch_group *g)
{
    int vrc = 0;
    g->v = hmm__index_cached(m, &g->scratch, &vrc);
    /* While an index is drained a key may be in either: each alone. */
    bool passes = g->v && g->v->old.nb == 0;
    /* This group's slices of the call's arrays, in locals: stores through
     * them cannot alias the call struct's fields for the compiler. */
    const void *const *keys = c->keys + g->first;
    const size_t *klens = c->klens + g->first;
    int *rcs = c->rcs + g->first;
    for (size_t i = 0; i < g->n; i++) {
        struct batch_key *b = &g->b[i];
        g->st[i] = BATCH_ALONE;
        rcs[i] = check_key(m, keys[i], klens[i]);
        if (rcs[i] == 0 && !c->vals[g->first + i] && c->vlens[g->first + i])
            rcs[i] = hmm_fail(-EINVAL, "NULL value buffer with a capacity");
        if (rcs[i])
            continue;
        b->hash = key_hash(keys[i], klens[i]);
        if (!passes)
            continue;
        b->s = &m->stripes[hash_stripe(m, b->hash)];
        b->home = &g->v->cur.bk[hash_home(&g->v->cur, b->hash)];
        g->st[i] = BATCH_CANDIDATE;
        __builtin_prefetch(b->home);
        __builtin_prefetch(&b->s->seq);
    }
}

/* The first lines of the entry at off, for stage 3.  A prefetch never
 * faults: inside the reservation is enough here, stage 3 checks the entry
 * against the validated part.  Always inline: out of line, GCC finds the
 * function free of side effects and drops its calls (it did: format 1's
 * batch took 89 ns a key instead of 39). */
static inline __attribute__((always_inline)) void batch_prefetch_entry(const hmm_t *m, uint64_t off)
{
    if (off + 64 <= m->reserve) {
        __builtin_prefetch(m->base + off);
        __builtin_prefetch(m->base + off + 56); /* a small entry's end */
    }
}

/* Stage 2 for one key, its seq s0 loaded and even: which slot of the home
 * bucket may hold it, or that none does.  What it finds counts only once
 * batch_stage_probe has seen the header still name the view. */
static inline enum batch_state batch_probe(hmm_t *m, const struct hmm__view *v, struct batch_key *b)
{
    uint16_t tag = hash_tag(b->hash);
    unsigned mask = bucket_match(b->home, tag);
    if (mask == 0) {
        if (atomic_load_explicit(&b->home->meta, memory_order_relaxed) == 0)
            return BATCH_ABSENT;
        /* Keys probed past the home bucket: stage 3 walks on from the next. */
        const struct hmm_ix *ix = &v->cur;
        __builtin_prefetch(&ix->bk[ix_next(ix, (uint64_t)(b->home - ix->bk))]);
        return BATCH_WALK;
    }
    /* Acquire pairs with the publisher's release (as in index_lookup). */
    uint64_t sj = atomic_load_explicit(bucket_word(b->home, mask), memory_order_acquire);
    if (__builtin_expect(HMM_SLOT_TAG(sj) != tag, 0))
        return BATCH_ALONE;
    b->off = HMM_SLOT_OFF(sj); /* 0 for an empty slot (matched by a tag of 0): stage 3's bounds check sends it alone */
    batch_prefetch_entry(m, b->off);
    return BATCH_CANDIDATE;
}

/* Stage 2 for one key of a map of format 2, as batch_probe: the key's copy
 * in the home bucket stage 1 prefetched, read as get_cell_hashed reads it
 * (word, key, value), so that stage 3 only checks the word and seq.  A
 * cell of the key's tag without a copy (a value over 8 bytes, a key over
 * 16) names an entry, prefetched here and read at stage 3 as format 1's
 * are.  A key in neither is walked by stage 3 as hmm_get walks it, on the
 * bucket's overflow count and the next bucket, prefetched here (a key
 * that probed past). */
static inline enum batch_state batch_probe_cells(hmm_t *m, const struct hmm__view *v, struct batch_key *b,
                                                 const void *key, size_t klen, bool want_info)
{
    const struct hmm_ix *ix = &v->cur;
    const struct hmm_cell *c = ((const struct hmm_cell_bucket *)(const void *)b->home)->cell;
    uint16_t tag = hash_tag(b->hash);
    uint64_t kw[2];
    key_cell_words(key, klen, kw);
    for (unsigned j = 0; j < HMM_CELL_SLOTS; j++, c++) {
        /* Acquire pairs with the publisher's and the copy's release. */
        uint64_t w = atomic_load_explicit(&c->word, memory_order_acquire);
        if (HMM_SLOT_TAG(w) != tag || w == 0)
            continue;
        unsigned shape = HMM_SLOT_SHAPE(w);
        if (!(shape & HMM_SHAPE_COPY)) {
            b->off = HMM_SLOT_OFF(w);
            batch_prefetch_entry(m, b->off);
            return BATCH_CANDIDATE; /* the entry is read as in format 1, by batch_finish */
        }
        if (HMM_SHAPE_KLEN(shape) != klen || atomic_load_explicit(&c->key[0], memory_order_relaxed) != kw[0] ||
            atomic_load_explicit(&c->key[1], memory_order_relaxed) != kw[1])
            continue;
        if (want_info) { /* a copy has no version or tag: its entry, as a cell without one */
            b->off = HMM_SLOT_OFF(w);
            batch_prefetch_entry(m, b->off);
            return BATCH_CANDIDATE;
        }
        b->copy.value = atomic_load_explicit(&c->val, memory_order_relaxed);
        b->copy.word = w;
        b->copy.cell = c;
        return BATCH_COPY;
    }
    uint64_t home = (uint64_t)(b->home - ix->bk);
    __builtin_prefetch(&ix->ovf[home]);
    __builtin_prefetch(ix_cell(ix, ix_next(ix, home), 0));
    return BATCH_WALK;
}

/* The view was loaded before each key's s0, so what a key found in it
 * counts only if the header still names it after that s0 (a get loads the
 * words after s0): else a growth begun in between may have moved the key
 * where v does not look, or one that ended may have freed the run v reads
 * (FORMAT.md §10), and the seq check would not tell.  The words are loaded
 * once, after every s0 of the group: what was read from v before is only
 * kept when they still name it (v's runs stay mapped, and a prefetch of
 * a line no longer the key's only costs the line). */
static void batch_stage_probe(hmm_t *m, struct batch_call *c, struct batch_group *g)
{
    const void *const *keys = c->keys + g->first;
    const size_t *klens = c->klens + g->first;
    for (size_t i = 0; i < g->n; i++) {
        if (g->st[i] != BATCH_CANDIDATE)
            continue;
        struct batch_key *b = &g->b[i];
        b->s0 = atomic_load_explicit(&b->s->seq, memory_order_acquire);
        if (__builtin_expect(b->s0 & 1, 0))
            g->st[i] = BATCH_ALONE;
        else if (m->cells)
            g->st[i] = (uint8_t)batch_probe_cells(m, g->v, b, keys[i], klens[i], c->infos != NULL);
        else
            g->st[i] = (uint8_t)batch_probe(m, g->v, b);
    }
    if (__builtin_expect(atomic_load_explicit(&m->hdr->index_cur, memory_order_acquire) != g->v->word_cur ||
                             atomic_load_explicit(&m->hdr->index_old, memory_order_acquire) != g->v->word_old,
                         0))
        memset(g->st, BATCH_ALONE, g->n);
}

/* The key of a candidate that is another key's (its 16-bit tag matched):
 * walked from its home bucket, every slot of its tag, as hmm_get does.
 * Not for calls that ask for infos (a walk fills none). */
static __attribute__((noinline)) int batch_walk_from_home(hmm_t *m, const struct hmm__view *v,
                                                          const struct batch_key *b, const void *key, size_t klen,
                                                          struct read_out *out)
{
    size_t len = out->cap;
    int rc;
    if (m->cells) {
        uint64_t kw[2];
        key_cell_words(key, klen, kw);
        rc = get_cell_walk(m, &v->cur, b->hash, b->s, b->s0, key, klen, kw, out->val, &len);
    } else {
        rc = get_walk(m, &v->cur, b->hash, b->s, b->s0, key, klen, out->val, &len, 0);
    }
    if (rc == 0 || rc == HMM_TOOSMALL)
        out->len = len;
    return rc;
}

/* Stage 3 for one key: 0 / HMM_NOTFOUND / HMM_TOOSMALL / HMM_CORRUPT as
 * hmm_get; GET_GENERAL when it must be looked up alone; BATCH_COLLIDED when
 * its candidate is another key's (batch_walk_from_home, out of this path:
 * a call here cost every key 10 instructions). */
#define BATCH_COLLIDED 2
static inline int batch_finish(hmm_t *m, uint64_t span, struct batch_key *b, enum batch_state st, const void *key,
                               size_t klen, struct read_out *out, bool want_info)
{
    int rc = HMM_NOTFOUND;
    if (st == BATCH_CANDIDATE) {
        /* get_fast's bounds, each before the bytes it covers: the header
         * at `at` within span, then key and value. */
        uint64_t at = b->off - m->data_off; /* below data_off wraps: fails too */
        if (__builtin_expect(at > span, 0))
            return GET_GENERAL;
        struct hmm_entry *e = (struct hmm_entry *)(m->base + b->off);
        uint32_t n = *(volatile uint32_t *)&e->vlen; /* read once: checked, then used */
        if (__builtin_expect(n > m->max_value || at + klen + n > span, 0))
            return GET_GENERAL; /* out of bounds: alone decides */
        if (__builtin_expect(!lookup_entry_holds(e, key, klen), 0)) /* a tag collision */
            return want_info ? GET_GENERAL : BATCH_COLLIDED;
        rc = read_value_of(m, e, klen, n, out, want_info, false);
    }
    /* Pairs with the writer's release fence in hmm__seq_begin_free(). */
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&b->s->seq, memory_order_relaxed) != b->s0)
        return GET_GENERAL;
    if (rc == 0)
        recency_mark(out->mark, out->mark_word);
    return rc;
}

/* Stage 3 for a key read from the index itself: a format-2 copy's word
 * and seq checked as get_cell_hashed checks them (the value was read
 * before, at stage 2), or the walk of a key past its home bucket, as
 * hmm_get's (get_walk, get_cell_walk).  *vlen is left alone on GET_GENERAL. */
static inline int batch_finish_index(hmm_t *m, const struct hmm__view *v, const struct batch_key *b,
                                     enum batch_state st, const void *key, size_t klen, void *val, size_t *vlen)
{
    if (st == BATCH_WALK && !m->cells)
        return get_walk(m, &v->cur, b->hash, b->s, b->s0, key, klen, val, vlen, 1);
    if (st == BATCH_WALK) {
        uint64_t kw[2];
        key_cell_words(key, klen, kw);
        return get_cell_walk(m, &v->cur, b->hash, b->s, b->s0, key, klen, kw, val, vlen);
    }
    HMM_CRASHPOINT("read_copied");
    /* Pairs with the release fences of the copy and of hmm__seq_begin_free(). */
    atomic_thread_fence(memory_order_acquire);
    if (__builtin_expect(atomic_load_explicit(&b->copy.cell->word, memory_order_relaxed) != b->copy.word ||
                             atomic_load_explicit(&b->s->seq, memory_order_relaxed) != b->s0,
                         0))
        return GET_GENERAL;
    unsigned n = HMM_SHAPE_VLEN(HMM_SLOT_SHAPE(b->copy.word));
    size_t cap = *vlen;
    *vlen = n;
    if (__builtin_expect(n > cap, 0))
        return HMM_TOOSMALL;
    hmm__copy_small(val, (const uint8_t *)&b->copy.value, n);
    return 0;
}

static void batch_stage_finish(hmm_t *m, struct batch_call *c, struct batch_group *g)
{
    const void *const *keys = c->keys + g->first;
    const size_t *klens = c->klens + g->first;
    void *const *vals = c->vals + g->first;
    size_t *vlens = c->vlens + g->first;
    int *rcs = c->rcs + g->first;
    hmm_entry_info *infos = c->infos ? c->infos + g->first : NULL;
    uint64_t gets = 0, misses = 0;
    /* Not cleared per key: what a read leaves in it is read only when it
     * says so (len and info for 0 and HMM_TOOSMALL, mark for 0). */
    struct read_out out;
    /* The limit only grows: one from before a growth only sends a key alone. */
    uint64_t span = atomic_load_explicit(&m->limit, memory_order_relaxed) - HMM_ENTRY_HDR - m->data_off;
    for (size_t i = 0; i < g->n; i++) {
        if (rcs[i])
            continue;
        out.val = vals[i];
        out.cap = vlens[i];
        int rc;
        enum batch_state st = g->st[i];
        if (st == BATCH_CANDIDATE || st == BATCH_ABSENT) { /* format 1's common case first */
            rc = batch_finish(m, span, &g->b[i], st, keys[i], klens[i], &out, infos != NULL);
        } else if (st == BATCH_COPY || (st == BATCH_WALK && !infos)) {
            size_t len = vlens[i]; /* a walk fills no info: with infos a walked key goes alone */
            rc = batch_finish_index(m, g->v, &g->b[i], st, keys[i], klens[i], vals[i], &len);
            out.len = len;
        } else {
            rc = GET_GENERAL;
        }
        if (__builtin_expect(rc > 0, 0)) { /* GET_GENERAL or BATCH_COLLIDED: one test for both */
            if (rc == BATCH_COLLIDED)
                rc = batch_walk_from_home(m, g->v, &g->b[i], keys[i], klens[i], &out);
            if (rc == GET_GENERAL)
                rc = batch_alone(m, g->b[i].hash, keys[i], klens[i], &out, infos != NULL);
        }
        if (__builtin_expect(rc == HMM_CORRUPT, 0))
            rc = read_corrupt(m);
        if (rc == 0 || rc == HMM_TOOSMALL) {
            vlens[i] = out.len;
            if (infos)
                infos[i] = out.info;
        }
        rcs[i] = rc;
        gets++;
        misses += rc == HMM_NOTFOUND;
    }
    c->gets += gets;
    c->misses += misses;
}

HMM_EXPORT int hmm_get_batch(hmm_t *m, size_t n, const void *const keys[], const size_t klens[],
                             void *const vals[], size_t vlens[], int rcs[], hmm_entry_info infos[])
{
    hmm__error_clear();
    if (!m || (n && (!keys || !klens || !vals || !vlens || !rcs)))
        return hmm_fail(-EINVAL, "hmm_get_batch: NULL handle or array");
    struct batch_call c = {.keys = keys, .klens = klens, .vals = vals, .vlens = vlens, .rcs = rcs,
                           .infos = infos};
    struct batch_group g[BATCH_DEPTH];
    size_t per = m->cells ? BATCH_GROUP : BATCH_GROUP_ENTRIES;
    size_t groups = n / per + (n % per != 0); /* n + per - 1 could wrap */
    /* Step t hashes group t, probes group t - 1 and finishes group t - 2. */
    for (size_t t = 0; t < groups + BATCH_DEPTH - 1; t++) {
        if (t < groups) {
            struct batch_group *h = &g[t % BATCH_DEPTH];
            h->first = t * per;
            h->n = n - h->first < per ? n - h->first : per;
            batch_stage_hash(m, &c, h);
        }
        if (t >= 1 && t - 1 < groups && g[(t - 1) % BATCH_DEPTH].v)
            batch_stage_probe(m, &c, &g[(t - 1) % BATCH_DEPTH]);
        if (t >= 2)
            batch_stage_finish(m, &c, &g[(t - 2) % BATCH_DEPTH]);
    }
    /* One add per counter per call: the batch also saves the counting. */
    if (c.gets)
        metrics_add(m, HMM_C_GETS, c.gets);
    if (c.misses)
        metrics_add(m, HMM_C_MISSES, c.misses);
    return 0;
}
