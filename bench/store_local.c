/*
 * store_local.c - the reference for "memory speed": a plain process-local
 * open-addressing hash table, as one would write it for this job.
 *
 * Linear probing over a power-of-two array of fixed-size slots, each
 * holding the key's 64-bit XXH3 hash (0 = empty), the 16-byte key, the
 * value's length and the value inline; at most 70% full.  A slot for
 * 8-byte values is exactly one 64-byte cache line (aligned), so a get
 * that hits its home slot touches one line.  The array is mapped and
 * pre-faulted at open, so inserts measure the table and not the kernel's
 * page faults.  No deletes, hence no tombstones.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bench/hmmbench.h"

struct slot_hdr {
    uint64_t hash;
    char key[KEY_LEN];
    uint32_t vlen;
    uint32_t pad;
    /* value bytes follow */
};

struct local {
    uint8_t *slots;
    size_t bytes;
    uint64_t mask;
    size_t stride;
};

static inline struct slot_hdr *slot_at(struct local *t, uint64_t i)
{
    return (struct slot_hdr *)(t->slots + i * t->stride);
}

/* The key's slot, or the empty slot where it would go (insert true), or NULL. */
static inline struct slot_hdr *find(struct local *t, const char *key, bool insert)
{
    uint64_t h = XXH3_64bits(key, KEY_LEN) | 1;
    for (uint64_t i = h & t->mask;; i = (i + 1) & t->mask) {
        struct slot_hdr *s = slot_at(t, i);
        if (s->hash == h && memcmp(s->key, key, KEY_LEN) == 0)
            return s;
        if (s->hash == 0) {
            if (!insert)
                return NULL;
            s->hash = h;
            memcpy(s->key, key, KEY_LEN);
            return s;
        }
    }
}

static void *local_open(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    struct local *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->stride = (sizeof(struct slot_hdr) + vlen + 63) & ~(size_t)63;
    if (t->stride > 64)
        t->stride = (sizeof(struct slot_hdr) + vlen + 15) & ~(size_t)15;
    uint64_t cap = 16;
    while (cap * 7 < entries * 10)
        cap <<= 1;
    t->mask = cap - 1;
    t->bytes = cap * t->stride;
    t->slots = mmap(NULL, t->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (t->slots == MAP_FAILED) {
        free(t);
        *why = "out of memory";
        return NULL;
    }
    return t;
}

static int local_get(void *h, const char *key, void *val, size_t *vlen)
{
    struct slot_hdr *s = find(h, key, false);
    if (!s || s->vlen > *vlen)
        return -1;
    memcpy(val, s + 1, s->vlen);
    *vlen = s->vlen;
    return 0;
}

static int local_put(void *h, const char *key, const void *val, size_t vlen)
{
    struct slot_hdr *s = find(h, key, true);
    memcpy(s + 1, val, vlen);
    s->vlen = (uint32_t)vlen;
    return 0;
}

/* The same contract as hmm_incr: the value is a decimal counter in ASCII. */
static int local_incr(void *h, const char *key)
{
    struct slot_hdr *s = find(h, key, true);
    int64_t n = 0;
    if (s->vlen && counter_parse(s + 1, s->vlen, &n) != 0)
        return -1;
    s->vlen = (uint32_t)counter_format((char *)(s + 1), n + 1);
    return 0;
}

static void local_close(void *h)
{
    struct local *t = h;
    munmap(t->slots, t->bytes);
    free(t);
}

const struct store_kind store_local = {
    .id = "local",
    .name = "local table",
    .note = "local table: process-local open addressing, XXH3, 16-byte keys and values inline, <=70% full",
    .open = local_open,
    .get = local_get,
    .put = local_put,
    .incr = local_incr,
    .close = local_close,
};
