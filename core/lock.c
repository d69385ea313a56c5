/*
 * lock.c - process-shared robust mutexes and the seqlock half of a stripe.
 *
 * EOWNERDEAD is not an error for the caller: the previous holder died, and
 * we now hold the lock over whatever it left half done.  We repair that
 * (recover.c, slab.c), then pthread_mutex_consistent() makes the mutex
 * usable again.  If the repairer dies too, the next locker gets EOWNERDEAD
 * again and repeats the (idempotent) repair.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "core/internal.h"

int hmm__lock_init_shared(pthread_mutex_t *mu)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0)
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutex_init(mu, &attr);
    pthread_mutexattr_destroy(&attr);
    return -rc;
}

/* How long a writer that found a lock busy watches it before glibc puts it
 * to sleep: about 9 us here (18 ns a round).  A robust mutex does not spin
 * by itself: its lock goes straight to FUTEX_WAIT and the holder's unlock
 * to FUTEX_WAKE.  On a virtual machine a sleep can idle the waiter's vCPU,
 * and waking it costs the host an interrupt and a VM entry: two processes
 * writing one map spent 60% of a core in the kernel, most on the log's
 * append lock, which is held for a few hundred ns (bench/README.md,
 * "seventh stop"). */
#ifndef LOCK_SPIN_ROUNDS
#define LOCK_SPIN_ROUNDS 512
#endif

/* Watch a busy mutex for LOCK_SPIN_ROUNDS rounds and take it when it comes
 * free: the trylock's answer then (0, or EOWNERDEAD from a holder that died
 * meanwhile), EBUSY when it did not.  The watching reads glibc's lock word
 * (the holder's thread id, 0 when free), so the line stays shared while the
 * holder works; a trylock per round would take it from the holder each
 * time.  A holder that dies leaves its word nonzero (FUTEX_OWNER_DIED), so
 * it is met after the spin by pthread_mutex_lock's EOWNERDEAD, as before. */
static int lock_spin(pthread_mutex_t *mu)
{
#if defined(__GLIBC__)
    const int *word = &mu->__data.__lock;
    for (unsigned i = 0; i < LOCK_SPIN_ROUNDS; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
        if (__atomic_load_n(word, __ATOMIC_RELAXED) == 0) {
            int rc = pthread_mutex_trylock(mu);
            if (rc != EBUSY)
                return rc;
        }
    }
#else
    (void)mu;
#endif
    return EBUSY;
}

/* lock_robust() when the trylock did not take the lock at once: rc is its
 * answer.  Out of line, so the uncontended lock is a call and a test. */
static __attribute__((noinline)) int lock_robust_slow(hmm_t *m, pthread_mutex_t *mu, int rc,
                                                      void (*repair)(hmm_t *, uint32_t), uint32_t arg,
                                                      const char *what, bool wait)
{
    if (rc == EBUSY) {
        if (!wait)
            return -EBUSY;
        metrics_add(m, HMM_C_LOCK_WAITS, 1);
        rc = lock_spin(mu);
        if (rc == EBUSY)
            rc = pthread_mutex_lock(mu);
    }
    if (rc == 0)
        return 0;
    if (rc == EOWNERDEAD) {
        repair(m, arg);
        atomic_fetch_add(&m->hdr->recoveries, 1);
        pthread_mutex_consistent(mu);
        return 0;
    }
    if (rc == ENOTRECOVERABLE)
        return hmm_fail(HMM_CORRUPT, "%s: %s lock %u is unrecoverable", m->path, what, arg);
    return hmm_fail(-rc, "%s: %s lock %u: %s", m->path, what, arg, strerror(rc));
}

/* Lock mu (wait: block when busy, else -EBUSY); on EOWNERDEAD run
 * repair(m, arg) before making it consistent. */
static inline __attribute__((always_inline)) int lock_robust(hmm_t *m, pthread_mutex_t *mu,
                                                             void (*repair)(hmm_t *, uint32_t), uint32_t arg,
                                                             const char *what, bool wait)
{
    int rc = pthread_mutex_trylock(mu);
    return __builtin_expect(rc == 0, 1) ? 0 : lock_robust_slow(m, mu, rc, repair, arg, what, wait);
}

int hmm__lock_robust_slow(hmm_t *m, pthread_mutex_t *mu, int trylock_rc, void (*repair)(hmm_t *, uint32_t),
                          uint32_t arg, const char *what)
{
    return lock_robust_slow(m, mu, trylock_rc, repair, arg, what, true);
}

/* hmm__lock_stripe() when its trylock answered rc: wait (or -EBUSY when
 * !wait), or repair a dead holder's work, then as the fast path. */
int hmm__lock_stripe_slow(hmm_t *m, uint32_t stripe, int rc, bool wait)
{
    struct hmm_stripe *s = &m->stripes[stripe];
    rc = lock_robust_slow(m, &s->lock, rc, hmm__recover_stripe_locked, stripe, "stripe", wait);
    if (rc)
        return rc;
    hmm__stripe_locked(m, s);
    return 0;
}

/* 0 locked, -EBUSY held by another.  A dead holder's work is repaired as
 * by hmm__lock_stripe(); the caller must hold no class or page lock. */
int hmm__trylock_stripe(hmm_t *m, uint32_t stripe)
{
    struct hmm_stripe *s = &m->stripes[stripe];
    int rc = pthread_mutex_trylock(&s->lock);
    if (rc)
        return hmm__lock_stripe_slow(m, stripe, rc, false);
    hmm__stripe_locked(m, s);
    return 0;
}

/* The class, page-table and growth locks name their holder's process
 * (owner: slot + 1) so a check or repair can tell a dead holder's work. */
static int lock_owned(hmm_t *m, pthread_mutex_t *mu, hmm_atomic_u32 *owner, void (*repair)(hmm_t *, uint32_t),
                      uint32_t arg, const char *what)
{
    int rc = lock_robust(m, mu, repair, arg, what, true);
    if (rc == 0)
        atomic_store_explicit(owner, hmm__proc_self_tag(m), memory_order_relaxed);
    return rc;
}

static void unlock_owned(pthread_mutex_t *mu, hmm_atomic_u32 *owner)
{
    atomic_store_explicit(owner, 0, memory_order_relaxed);
    pthread_mutex_unlock(mu);
}

int hmm__lock_class(hmm_t *m, uint32_t cls)
{
    struct hmm_class *c = &m->classes[cls];
    return lock_owned(m, &c->lock, &c->owner_proc, hmm__recover_class_locked, cls, "class");
}

void hmm__unlock_class(hmm_t *m, uint32_t cls)
{
    unlock_owned(&m->classes[cls].lock, &m->classes[cls].owner_proc);
}

int hmm__lock_pages(hmm_t *m)
{
    return lock_owned(m, &m->hdr->pages_lock, &m->hdr->pages_owner_proc, hmm__recover_pages_locked, 0,
                      "page table");
}

void hmm__unlock_pages(hmm_t *m)
{
    unlock_owned(&m->hdr->pages_lock, &m->hdr->pages_owner_proc);
}

/* The growth lock (grow.c, lock order: grow, stripe, class, pages).  A
 * dead holder's half-published index is repaired before the lock is made
 * consistent. */
void hmm__unlock_grow(hmm_t *m)
{
    unlock_owned(&m->hdr->grow_lock, &m->hdr->grow_owner_proc);
}

int hmm__lock_grow(hmm_t *m)
{
    return lock_owned(m, &m->hdr->grow_lock, &m->hdr->grow_owner_proc, hmm__grow_recover_locked, 0, "growth");
}

/* seq odd: a chunk reachable through this stripe may be freed (and reused
 * by another stripe) from here on.  The release fence keeps the odd value
 * ahead of every store of the free, pairing with the reader's acquire
 * fence before its second load of seq. */
void hmm__seq_begin_free(struct hmm_stripe *s)
{
    uint64_t v = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, v + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

/* seq even again; release pairs with the reader's acquire load of seq. */
void hmm__seq_end_free(struct hmm_stripe *s)
{
    uint64_t v = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, v + 1, memory_order_release);
}
