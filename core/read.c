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
#include "core/lookup.h"

#define OPTIMISTIC_TRIES 64
#define RDONLY_WAIT_MS 2000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Values are often a counter or an offset: inline copies up to 16 bytes
 * (overlapping 8- or 4-byte moves), memcpy beyond. */
static inline void copy_value(uint8_t *dst, const uint8_t *src, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n) {
        memcpy(dst, src, n);
    }
}

struct read_out {
    void *val;
    size_t cap;
    size_t len;
    hmm_entry_info info;
};

/* Inline in the get's optimistic loop: the call's prologue and the
 * out-struct spills were a tenth of a get's instructions, and fewer
 * instructions per get let the CPU start the next get's loads while this
 * one's are still missing. */
static inline __attribute__((always_inline)) int read_attempt_inline(hmm_t *m, uint64_t hash, const void *key,
                                                                    size_t klen, struct read_out *out,
                                                                    bool verify_checksum)
{
    int rc = 0;
    hmm_atomic_u64 *slot;
    struct hmm_ix in;
    uint64_t off = index_find(m, hash, key, klen, &slot, &in, &rc);
    if (rc)
        return rc;
    if (!off)
        return HMM_NOTFOUND;
    struct hmm_entry *e = (struct hmm_entry *)(m->base + off);
    uint32_t vlen = *(volatile uint32_t *)&e->vlen;
    if (vlen > m->max_value || !hmm_at(m, off, entry_bytes(klen, vlen)))
        return HMM_CORRUPT;
    uint64_t expire = *(volatile uint64_t *)&e->expire_ms;
    if (expire && expire <= hmm_now_ms())
        return HMM_NOTFOUND;
    if (verify_checksum && entry_checksum(e) != e->checksum)
        return HMM_CORRUPT;
    out->info.version = e->version;
    out->info.expire_ms = expire;
    out->info.tag = e->vtype;
    out->len = vlen;
    if (vlen > out->cap)
        return HMM_TOOSMALL;
    copy_value(out->val, (uint8_t *)e + HMM_ENTRY_HDR + klen, vlen);
    /* Cache mode's recency mark: relaxed, and only when clear, so a hot
     * entry's line is not written on every read (cache/evict.c).  Never by
     * a read-only handle: its mapping is PROT_READ, and it promises not to
     * write a byte of the files (FORMAT.md §13). */
    if ((m->flags & (HMM_CACHE | HMM_RDONLY)) == HMM_CACHE &&
        !atomic_load_explicit(&e->access, memory_order_relaxed))
        atomic_store_explicit(&e->access, 1, memory_order_relaxed);
    return 0;
}

/* The slow paths' copy. */
static __attribute__((noinline)) int read_attempt(hmm_t *m, uint64_t hash, const void *key, size_t klen,
                                                  struct read_out *out, bool verify_checksum)
{
    return read_attempt_inline(m, hash, key, klen, out, verify_checksum);
}

static bool stripe_owner_dead(hmm_t *m, struct hmm_stripe *s)
{
    uint32_t tag = atomic_load(&s->owner_proc);
    if (tag == 0 || tag > HMM_PROCS)
        return true; /* odd for 10 ms with no holder: left by a crash of the whole host */
    struct hmm_proc *p = &m->procs[tag - 1];
    uint64_t start = atomic_load(&p->start_time);
    return !proc_alive((int64_t)atomic_load(&p->pid), start == 1 ? 0 : start);
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
            return read_attempt(m, hash, key, klen, out, true);
        }
        nanosleep(&pause, NULL);
    }
    return hmm_fail(HMM_BUSY, "%s: a writer kept the stripe busy for %d ms", m->path, RDONLY_WAIT_MS);
}

int read_entry(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen, hmm_entry_info *info,
               bool count)
{
    int rc = check_key(m, key, klen);
    if (rc)
        return rc;
    if (!vlen || (*vlen && !val))
        return hmm_fail(-EINVAL, "NULL value length, or NULL value buffer with a capacity");
    struct read_out out = {.val = val, .cap = *vlen};
    uint64_t hash = key_hash(key, klen);
    struct hmm_stripe *s = &m->stripes[hash_stripe(m, hash)];
    rc = HMM_BUSY;
    int tries;
    for (tries = 0; tries < OPTIMISTIC_TRIES; tries++) {
        uint64_t s0 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (s0 & 1) {
            cpu_relax();
            continue;
        }
        int attempt = read_attempt_inline(m, hash, key, klen, &out, false);
        /* Pairs with the writer's release fence in seq_begin_free(). */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) == s0) {
            rc = attempt;
            goto done;
        }
    }
    if (m->rdonly) {
        rc = read_rdonly_slow(m, s, hash, key, klen, &out);
    } else {
        uint32_t stripe = hash_stripe(m, hash);
        rc = lock_stripe(m, stripe);
        if (rc == 0) {
            rc = read_attempt(m, hash, key, klen, &out, false);
            unlock_stripe(m, stripe);
        }
    }
done:
    if (count) {
        metrics_add(m, HMM_C_GETS, 1);
        if (rc == HMM_NOTFOUND)
            metrics_add(m, HMM_C_MISSES, 1);
    }
    if (tries > 0)
        metrics_add(m, HMM_C_READ_RETRIES, (uint64_t)tries);
    if (rc == HMM_CORRUPT)
        return hmm_fail(rc, "%s: an index slot or entry fails its bounds check", m->path);
    if (rc == 0 || rc == HMM_TOOSMALL) {
        *vlen = out.len;
        if (info)
            *info = out.info;
    }
    return rc;
}

HMM_EXPORT int hmm_get(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen)
{
    return read_entry(m, key, klen, val, vlen, NULL, true);
}

HMM_EXPORT int hmm_getv(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen,
                        uint64_t *version)
{
    hmm_entry_info info;
    int rc = read_entry(m, key, klen, val, vlen, &info, true);
    if ((rc == 0 || rc == HMM_TOOSMALL) && version)
        *version = info.version;
    return rc;
}

HMM_EXPORT int hmm_get_info(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen,
                            hmm_entry_info *info)
{
    return read_entry(m, key, klen, val, vlen, info, true);
}
