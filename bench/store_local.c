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
 *
 * store_local_locked is the same table with what DESIGN.md section 4
 * (invariant 4) asks of every writer: a process-shared robust mutex, one
 * of 1024 by hash, taken around each put and incr after a prefetch of the
 * key's home slot (gets stay lock-free, as hashmmap's).  Its put over the
 * plain table's is the least that invariant costs any put, before the
 * update protocol and the log do anything.
 */
#include "config.h"

#include <pthread.h>
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

#define LOCKED_STRIPES 1024u

struct local {
    uint8_t *slots;
    size_t bytes;
    uint64_t mask;
    size_t stride;
    /* store_local_locked: LOCKED_STRIPES mutexes, one 64-byte line each,
     * in shared memory as a map's stripes are; NULL in the plain table. */
    uint8_t *locks;
};

static uint64_t key_hash(const char *key)
{
    return XXH3_64bits(key, KEY_LEN) | 1;
}

static inline struct slot_hdr *slot_at(struct local *t, uint64_t i)
{
    return (struct slot_hdr *)(t->slots + i * t->stride);
}

/* The key's slot (h: key_hash(key)), or the empty slot where it would go
 * (insert true), or NULL. */
static inline struct slot_hdr *find(struct local *t, const char *key, uint64_t h, bool insert)
{
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
    struct slot_hdr *s = find(h, key, key_hash(key), false);
    if (!s || s->vlen > *vlen)
        return -1;
    memcpy(val, s + 1, s->vlen);
    *vlen = s->vlen;
    return 0;
}

static void put_at(struct local *t, const char *key, uint64_t h, const void *val, size_t vlen)
{
    struct slot_hdr *s = find(t, key, h, true);
    memcpy(s + 1, val, vlen);
    s->vlen = (uint32_t)vlen;
}

/* The same contract as hmm_incr: the value is a decimal counter in ASCII. */
static int incr_at(struct local *t, const char *key, uint64_t h)
{
    struct slot_hdr *s = find(t, key, h, true);
    int64_t n = 0;
    if (s->vlen && counter_parse(s + 1, s->vlen, &n) != 0)
        return -1;
    s->vlen = (uint32_t)counter_format((char *)(s + 1), n + 1);
    return 0;
}

static int local_put(void *h, const char *key, const void *val, size_t vlen)
{
    put_at(h, key, key_hash(key), val, vlen);
    return 0;
}

static int local_incr(void *h, const char *key)
{
    return incr_at(h, key, key_hash(key));
}

static void local_close(void *h)
{
    struct local *t = h;
    munmap(t->slots, t->bytes);
    if (t->locks)
        munmap(t->locks, 64 * LOCKED_STRIPES);
    free(t);
}

/* ---- store_local_locked ---- */

static pthread_mutex_t *stripe_lock(struct local *t, uint64_t h)
{
    return (pthread_mutex_t *)(void *)(t->locks + 64 * ((h >> 32) % LOCKED_STRIPES));
}

static void *local_locked_open(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    _Static_assert(sizeof(pthread_mutex_t) <= 64, "a mutex a line");
    struct local *t = local_open(k, entries, vlen, why);
    if (!t)
        return NULL;
    void *locks = mmap(NULL, 64 * LOCKED_STRIPES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t a;
    if (locks == MAP_FAILED || pthread_mutexattr_init(&a) != 0) {
        if (locks != MAP_FAILED)
            munmap(locks, 64 * LOCKED_STRIPES);
        local_close(t);
        *why = "out of memory";
        return NULL;
    }
    t->locks = locks;
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    for (unsigned i = 0; i < LOCKED_STRIPES; i++)
        pthread_mutex_init((pthread_mutex_t *)(void *)(t->locks + 64 * i), &a);
    pthread_mutexattr_destroy(&a);
    return t;
}

/* Lock a key's stripe.  Its home slot is prefetched first, as hashmmap's
 * put prefetches its bucket: taken before the table's miss, the lock would
 * serialise it (1 M keys: 114-119 ns a put without the prefetch, 86-100
 * with it, against 55-59 unlocked; bench/README.md, twelfth stop).  Nobody dies
 * holding these (one process), so EOWNERDEAD never comes. */
static pthread_mutex_t *lock_key(struct local *t, uint64_t h)
{
    __builtin_prefetch(slot_at(t, h & t->mask), 1);
    pthread_mutex_t *mu = stripe_lock(t, h);
    return pthread_mutex_lock(mu) == 0 ? mu : NULL;
}

static int local_locked_put(void *h, const char *key, const void *val, size_t vlen)
{
    uint64_t kh = key_hash(key);
    pthread_mutex_t *mu = lock_key(h, kh);
    if (!mu)
        return -1;
    put_at(h, key, kh, val, vlen);
    pthread_mutex_unlock(mu);
    return 0;
}

static int local_locked_incr(void *h, const char *key)
{
    uint64_t kh = key_hash(key);
    pthread_mutex_t *mu = lock_key(h, kh);
    if (!mu)
        return -1;
    int rc = incr_at(h, key, kh);
    pthread_mutex_unlock(mu);
    return rc;
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

const struct store_kind store_local_locked = {
    .id = "local-locked",
    .name = "local table, locked",
    .note = "local table, locked: the same table with a process-shared robust mutex (1 of 1024 by hash) around each "
            "put and incr (the key's slot prefetched first), as DESIGN.md section 4 asks of every writer: the least "
            "that costs a put",
    .open = local_locked_open,
    .get = local_get,
    .put = local_locked_put,
    .incr = local_locked_incr,
    .close = local_close,
};
