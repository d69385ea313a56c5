/*
 * store_inline.c - a design experiment, not a store: what a get would cost
 * if the index held short entries inline (issue 22; bench/README.md,
 * "Inline entries: the experiment").
 *
 * Today a get reads two dependent lines, the key's bucket and then its
 * entry.  This table keeps a short entry (key + value <= 24 bytes) in its
 * bucket: two 32-byte cells per 64-byte line, each a header word (tag,
 * lengths, version) and the bytes, so a get reads one line.  The read
 * follows hashmmap's get protocol step for step, to price it honestly:
 * the stripe's seq loaded before and checked after, the index view checked
 * against the header's index word, the tag and key compared, the value
 * copied, the handle's get counter bumped.  What it leaves out is the
 * writer's side (crash-safe updates of a cell, growth, long entries), which
 * is what a format change would have to design; puts here are plain
 * stores inside a seq-odd window, one process, no crash safety.
 *
 * Only run when named: HMMBENCH_STORES=...,inline.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bench/hmmbench.h"

#define CELL_BYTES 24 /* key + value inline */
#define STRIPES 1024

/* tag (16) | klen (8) | vlen (8) | version (31) | overflow (1, cell 0 only:
 * keys whose home is this bucket went on to the next) */
struct cell {
    _Atomic uint64_t w;
    uint8_t kv[CELL_BYTES];
};
struct bucket {
    struct cell c[2];
};
_Static_assert(sizeof(struct bucket) == 64, "a bucket is one line");

#define CELL_TAG(w) ((uint16_t)((w) >> 48))
#define CELL_KLEN(w) ((unsigned)((w) >> 40) & 0xff)
#define CELL_VLEN(w) ((unsigned)((w) >> 32) & 0xff)
#define CELL_OVERFLOW 1u

struct view {
    uint64_t word; /* the header's index word this view decoded */
    struct bucket *bk;
    uint64_t nb;
};

struct inline_table {
    _Alignas(64) _Atomic uint64_t index_word; /* as hmm_header.index_cur */
    _Alignas(64) _Atomic(const struct view *) view;
    struct view v;
    _Atomic uint64_t *gets;                   /* as the handle's metrics slot */
    uint64_t counters[8];
    _Alignas(64) struct {
        _Atomic uint64_t seq;
        uint8_t pad[56];
    } stripes[STRIPES];
    size_t bytes;
};

static void *inline_open(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    (void)k;
    if (KEY_LEN + vlen > CELL_BYTES) {
        *why = "values over 8 bytes do not fit a cell (the experiment covers short entries only)";
        return NULL;
    }
    struct inline_table *t = aligned_alloc(64, sizeof *t);
    if (!t) {
        *why = "out of memory";
        return NULL;
    }
    memset(t, 0, sizeof *t);
    uint64_t nb = 16;
    while (nb * 2 * 7 < entries * 10) /* at most 70% of the cells, as the local table */
        nb <<= 1;
    t->bytes = nb * sizeof(struct bucket);
    t->v.bk = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (t->v.bk == MAP_FAILED) {
        free(t);
        *why = "out of memory";
        return NULL;
    }
    t->v.nb = nb;
    t->v.word = nb;
    atomic_store(&t->index_word, nb);
    atomic_store(&t->view, &t->v);
    t->gets = (_Atomic uint64_t *)&t->counters[0];
    return t;
}

static inline uint64_t home(const struct view *v, uint64_t h)
{
    return (uint64_t)(((unsigned __int128)(uint32_t)h * v->nb) >> 32);
}

static inline bool key_equal16(const uint8_t *a, const char *b)
{
    uint64_t a0, a1, b0, b1;
    memcpy(&a0, a, 8);
    memcpy(&a1, a + 8, 8);
    memcpy(&b0, b, 8);
    memcpy(&b1, b + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

static int inline_get(void *h, const char *key, void *val, size_t *vlen)
{
    struct inline_table *t = h;
    uint64_t hash = XXH3_64bits(key, KEY_LEN);
    uint16_t tag = (uint16_t)(hash >> 48);
    _Atomic uint64_t *seq = &t->stripes[tag & (STRIPES - 1)].seq;
    uint64_t s0 = atomic_load_explicit(seq, memory_order_acquire);
    uint64_t word = atomic_load_explicit(&t->index_word, memory_order_acquire);
    const struct view *v = atomic_load_explicit(&t->view, memory_order_acquire);
    if ((s0 & 1) || !v || v->word != word)
        return -1; /* hashmmap would take its general path */
    uint64_t b = home(v, hash);
    int rc = -1;
    for (unsigned probe = 0; probe < 64; probe++) {
        const struct bucket *bk = &v->bk[b];
        uint64_t w0 = atomic_load_explicit(&bk->c[0].w, memory_order_acquire);
        uint64_t w1 = atomic_load_explicit(&bk->c[1].w, memory_order_acquire);
        const struct cell *c = NULL;
        if (CELL_TAG(w0) == tag && CELL_KLEN(w0) == KEY_LEN && key_equal16(bk->c[0].kv, key))
            c = &bk->c[0];
        else if (CELL_TAG(w1) == tag && CELL_KLEN(w1) == KEY_LEN && key_equal16(bk->c[1].kv, key))
            c = &bk->c[1], w0 = w1;
        if (c) {
            unsigned n = CELL_VLEN(w0);
            if (n > *vlen || n > CELL_BYTES - KEY_LEN)
                break;
            uint64_t x;
            memcpy(&x, c->kv + KEY_LEN, 8); /* the cell's tail: a value of 8 bytes or less */
            memcpy(val, &x, 8 < *vlen ? 8 : *vlen);
            *vlen = n;
            rc = 0;
            break;
        }
        if (!(w0 & CELL_OVERFLOW))
            break;
        b = b + 1 == v->nb ? 0 : b + 1;
    }
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(seq, memory_order_relaxed) != s0)
        return -1;
    atomic_store_explicit(t->gets, atomic_load_explicit(t->gets, memory_order_relaxed) + 1, memory_order_relaxed);
    return rc;
}

static int inline_put(void *h, const char *key, const void *val, size_t vlen)
{
    struct inline_table *t = h;
    struct view *v = &t->v;
    uint64_t hash = XXH3_64bits(key, KEY_LEN);
    uint16_t tag = (uint16_t)(hash >> 48);
    _Atomic uint64_t *seq = &t->stripes[tag & (STRIPES - 1)].seq;
    uint64_t b = home(v, hash);
    for (uint64_t probe = 0; probe < v->nb; probe++) {
        struct bucket *bk = &v->bk[b];
        for (unsigned i = 0; i < 2; i++) {
            uint64_t w = atomic_load_explicit(&bk->c[i].w, memory_order_relaxed);
            bool mine = CELL_TAG(w) == tag && CELL_KLEN(w) == KEY_LEN && key_equal16(bk->c[i].kv, key);
            if (CELL_KLEN(w) != 0 && !mine)
                continue;
            atomic_store_explicit(seq, atomic_load(seq) + 1, memory_order_relaxed);
            atomic_thread_fence(memory_order_release);
            memcpy(bk->c[i].kv, key, KEY_LEN);
            memcpy(bk->c[i].kv + KEY_LEN, val, vlen);
            uint64_t keep = i == 0 ? (w & CELL_OVERFLOW) : 0;
            uint64_t version = ((w >> 1) & 0x7fffffff) + 1;
            atomic_store_explicit(&bk->c[i].w,
                                  (uint64_t)tag << 48 | (uint64_t)KEY_LEN << 40 | (uint64_t)vlen << 32 |
                                      version << 1 | keep,
                                  memory_order_release);
            atomic_store_explicit(seq, atomic_load(seq) + 1, memory_order_release);
            return 0;
        }
        atomic_fetch_or(&bk->c[0].w, CELL_OVERFLOW);
        b = b + 1 == v->nb ? 0 : b + 1;
    }
    return -1;
}

static void inline_close(void *h)
{
    struct inline_table *t = h;
    munmap(t->v.bk, t->bytes);
    free(t);
}

const struct store_kind store_inline = {
    .id = "inline",
    .name = "inline entries (experiment)",
    .note = "inline entries (experiment): hashmmap's get protocol over an index with short entries in the "
            "bucket (one line per get); process-local, puts not crash-safe: an estimate, not a store",
    .open = inline_open,
    .get = inline_get,
    .put = inline_put,
    .incr = NULL, /* counters are text up to 20 bytes: over a 24-byte cell with a 16-byte key */
    .close = inline_close,
    .opt_in = true,
};
