/*
 * slab.c - pages, slab size classes and chunks (FORMAT.md §6, §8, §9).
 *
 * Every allocation and free has exactly one commit store (unlinking from
 * or linking into a free list, advancing a carve pointer, writing a run's
 * head page).  The chunk is marked with its state and the owning stripe
 * before the commit, and the stripe's intent records it in the same locked
 * section, so a process killed anywhere leaves either the old or the new
 * allocator state plus a mark that recovery can classify:
 *
 *   - a free-list head or carve chunk that is not FREE was being popped
 *     (or pushed) by a dead process: it is on the list, so it is FREE;
 *   - a WRITING or RETIRING chunk owned by stripe S and named in S's intent
 *     is recovered by S's repair, which frees it unless it is reachable.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"

#define CHUNK_STATE_BIT(st) (1u << (st))
/* Cache mode: a chunk or the pages an eviction frees may be taken by
 * another writer first, or be held by one in the middle of its put.  A
 * cache never says full for a value that fits (DESIGN.md §1), so the
 * allocation keeps evicting: EVICT_RETRIES tries at once (one is the rule),
 * then with a pause between tries until EVICT_PATIENCE_MS have passed.
 * The bound keeps a put's work finite: a cache whose every page a stopped
 * writer holds still says full. */
#define EVICT_RETRIES 64
#define EVICT_PATIENCE_MS 250
#define COMPACT_ATTEMPTS 8      /* pages emptied by moving entries for one allocation */

uint32_t hmm__slab_compute_classes(uint32_t page_size, uint32_t factor_pct, uint32_t *sizes)
{
    uint32_t n = 0;
    uint32_t size = HMM_ENTRY_HDR + 8;
    /* 8-byte steps up to 128 bytes, where small keys and values live and
     * rounding waste would dominate, then geometric steps. */
    while (size <= 128 && n < HMM_MAX_CLASSES) {
        sizes[n++] = size;
        size += 8;
    }
    size = 128;
    while (n < HMM_MAX_CLASSES) {
        uint64_t next = ((uint64_t)size * factor_pct / 100 + 7) & ~UINT64_C(7);
        if (next <= size)
            next = size + 8;
        if (next > page_size / 2)
            break;
        size = (uint32_t)next;
        sizes[n++] = size;
    }
    return n;
}

uint32_t hmm__slab_class_for_size(const hmm_t *m, uint64_t bytes)
{
    /* Up to 128 bytes the classes are 40, 48, ..., 128 (above; open
     * checks the header's sizes equal these): the class is arithmetic,
     * not a walk, for the small entries most puts write. */
    const uint64_t first = HMM_ENTRY_HDR + 8;
    if (bytes <= 128) {
        uint32_t c = bytes <= first ? 0 : (uint32_t)((bytes - first + 7) >> 3);
        if (c < m->nclasses) {
            assert(bytes <= m->class_size[c] && (c == 0 || bytes > m->class_size[c - 1]));
            return c;
        }
    }
    for (uint32_t c = 0; c < m->nclasses; c++)
        if (bytes <= m->class_size[c])
            return c;
    return HMM_CLASS_RUN;
}


/* Page number of a data offset, or UINT64_MAX outside the data area. */
static inline uint64_t page_of(hmm_t *m, uint64_t off)
{
    if (off < m->data_off)
        return UINT64_MAX;
    uint64_t p = (off - m->data_off) >> m->page_shift;
    return p < map_npages(m) ? p : UINT64_MAX;
}

uint64_t hmm__slab_page_of(hmm_t *m, uint64_t off)
{
    return page_of(m, off);
}

/* Is off the start of a chunk of class cls, given that it lies in page p
 * and the page table gives p to cls (on a boundary, in bounds)? */
static inline bool chunk_in_class_page(hmm_t *m, uint32_t cls, uint64_t off, uint64_t p)
{
    if (off & (HMM_ALIGN - 1))
        return false;
    uint64_t rel = off - map_page_off(m, p);
    uint32_t size = m->class_size[cls];
    /* rel % size == 0 without a division (every put checks two chunks):
     * for rel < 2^32, rel * ceil(2^64 / size) wraps below the magic
     * exactly when size divides rel. */
    return rel + size <= m->page_size && rel * m->class_magic[cls] < m->class_magic[cls] &&
           hmm_at(m, off, size) != NULL;
}

/* Is off the start of a chunk of class cls (in bounds, on a boundary)?
 * Inline here: a put checks its spare twice (taken, kept). */
static inline bool valid_chunk(hmm_t *m, uint32_t cls, uint64_t off)
{
    uint64_t p = page_of(m, off);
    if (p == UINT64_MAX)
        return false;
    if (atomic_load_explicit(&m->pagetab[p], memory_order_acquire) != HMM_PAGE_MAKE(HMM_PAGE_CLASS, cls))
        return false;
    return chunk_in_class_page(m, cls, off, p);
}

bool hmm__slab_valid_chunk(hmm_t *m, uint32_t cls, uint64_t off)
{
    return valid_chunk(m, cls, off);
}

uint64_t hmm__slab_chunk_size(hmm_t *m, uint64_t off)
{
    uint64_t p = hmm__slab_page_of(m, off);
    if (p == UINT64_MAX)
        return 0;
    uint64_t v = atomic_load(&m->pagetab[p]);
    switch (HMM_PAGE_KIND(v)) {
    case HMM_PAGE_CLASS:
        if (HMM_PAGE_ARG(v) < m->nclasses && hmm__slab_valid_chunk(m, (uint32_t)HMM_PAGE_ARG(v), off))
            return m->class_size[HMM_PAGE_ARG(v)];
        return 0;
    case HMM_PAGE_RUN_HEAD:
        return off == map_page_off(m, p) ? HMM_PAGE_ARG(v) << m->page_shift : 0;
    default:
        return 0;
    }
}

/* ---- pages ---- */

static bool run_is_free(hmm_t *m, uint64_t first, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (atomic_load_explicit(&m->pagetab[first + i], memory_order_relaxed) != 0)
            return false;
    return true;
}

static bool find_free_run(hmm_t *m, uint64_t n, uint64_t *page)
{
    uint64_t npages = map_npages_mapped(m);
    for (uint64_t p = 0; p + n <= npages; p++) {
        if (run_is_free(m, p, n)) {
            *page = p;
            return true;
        }
    }
    return false;
}

int hmm__pages_alloc_run_locked(hmm_t *m, uint64_t n, unsigned head_kind, bool may_grow, uint64_t *page)
{
    uint64_t p;
    if (!find_free_run(m, n, &p)) {
        if (!may_grow)
            return HMM__NOPAGE;
        int rc = hmm__grow_file_locked(m, n, head_kind == HMM_PAGE_INDEX_HEAD);
        if (rc)
            return rc;
        if (!find_free_run(m, n, &p))
            return HMM_FULL;
    }
    /* Tails first, head last (by the caller): the head is the commit. */
    unsigned tail_kind = head_kind == HMM_PAGE_INDEX_HEAD ? HMM_PAGE_INDEX_TAIL : HMM_PAGE_RUN_TAIL;
    for (uint64_t i = 1; i < n; i++)
        atomic_store_explicit(&m->pagetab[p + i], HMM_PAGE_MAKE(tail_kind, p), memory_order_release);
    *page = p;
    return 0;
}

/* Give a fresh page to class cls (class lock held).  FORMAT.md §9: the
 * page table entry is the commit; page_intent lets class repair finish the
 * carve-pointer update if we die between the two. */
static int class_grow_locked(hmm_t *m, uint32_t cls, bool may_grow)
{
    struct hmm_class *c = &m->classes[cls];
    int rc = hmm__lock_pages(m);
    if (rc)
        return rc;
    uint64_t p;
    rc = hmm__pages_alloc_run_locked(m, 1, HMM_PAGE_CLASS, may_grow, &p);
    if (rc) {
        hmm__unlock_pages(m);
        return rc;
    }
    uint64_t start = map_page_off(m, p);
    memset(m->base + start, 0, m->page_size);
    atomic_store_explicit(&c->page_intent, p + 1, memory_order_release);
    atomic_store_explicit(&m->pagetab[p], HMM_PAGE_MAKE(HMM_PAGE_CLASS, cls), memory_order_release);
    hmm__unlock_pages(m);
    uint32_t size = m->class_size[cls];
    atomic_store_explicit(&c->carve_end, start + (m->page_size / size) * size, memory_order_relaxed);
    atomic_store_explicit(&c->carve_off, start, memory_order_release);
    c->pages++; /* before the intent is cleared: a repair recounts while it is set */
    atomic_store_explicit(&c->page_intent, 0, memory_order_release);
    return 0;
}

/* ---- allocation ---- */

static int run_alloc(hmm_t *m, uint32_t stripe, uint64_t bytes, bool may_grow, uint64_t *off)
{
    uint64_t n = (bytes + m->page_size - 1) >> m->page_shift;
    int rc = hmm__lock_pages(m);
    if (rc)
        return rc;
    uint64_t p;
    rc = hmm__pages_alloc_run_locked(m, n, HMM_PAGE_RUN_HEAD, may_grow, &p);
    if (rc == 0) {
        uint64_t x = map_page_off(m, p);
        hmm__entry_mark(m, x, stripe, HMM_CHUNK_WRITING);
        HMM_CRASHPOINT("alloc_marked");
        atomic_store_explicit(&m->stripes[stripe].intent.new_off, x, memory_order_release);
        atomic_store_explicit(&m->pagetab[p], HMM_PAGE_MAKE(HMM_PAGE_RUN_HEAD, n), memory_order_release);
        *off = x;
    }
    hmm__unlock_pages(m);
    return rc;
}

static int class_alloc(hmm_t *m, uint32_t stripe, uint32_t cls, bool may_grow, uint64_t *off)
{
    int rc = hmm__lock_class(m, cls);
    if (rc)
        return rc;
    struct hmm_class *c = &m->classes[cls];
    hmm_atomic_u64 *intent_new = &m->stripes[stripe].intent.new_off;
    if (__builtin_expect(atomic_load_explicit(&c->evac_page, memory_order_relaxed) != 0, 0))
        hmm__compact_check_owner_locked(m, cls); /* a page mover that died outside the lock */
    uint64_t x = atomic_load_explicit(&c->free_head, memory_order_relaxed);
    /* Chunks of a page leaving the class are dropped from the list (the
     * mover rebuilds it when it is done; compact.c). */
    while (x && atomic_load_explicit(&c->evac_page, memory_order_relaxed) && hmm__slab_valid_chunk(m, cls, x) &&
           hmm__page_leaving(m, cls, x)) {
        x = atomic_load_explicit(chunk_next(m, x), memory_order_relaxed);
        atomic_store_explicit(&c->free_head, x, memory_order_release);
    }
    if (x) {
        if (!hmm__slab_valid_chunk(m, cls, x)) {
            rc = hmm_fail(HMM_CORRUPT, "%s: free list of class %u points outside its pages", m->path, cls);
            goto unlock;
        }
        uint64_t next = atomic_load_explicit(chunk_next(m, x), memory_order_relaxed);
        hmm__entry_mark(m, x, stripe, HMM_CHUNK_WRITING);
        HMM_CRASHPOINT("alloc_marked");
        atomic_store_explicit(intent_new, x, memory_order_release);
        atomic_store_explicit(&c->free_head, next, memory_order_release); /* commit */
    } else {
        uint32_t size = m->class_size[cls];
        uint64_t carve = atomic_load(&c->carve_off);
        if (carve && !hmm__slab_valid_chunk(m, cls, carve))
            carve = 0; /* damaged carve pointer: start a fresh page rather than trust it */
        if (carve == 0 || carve + size > atomic_load(&c->carve_end)) {
            /* A move out of a page being emptied goes to its class's free
             * chunks only: taking a free page for it undoes the emptying,
             * and in a cache the pages a window for a run had just freed
             * went back to classes, entries bouncing between them until
             * the run was refused (cache/evict.c). */
            if (hmm__relocating()) {
                rc = HMM_FULL;
                goto unlock;
            }
            rc = class_grow_locked(m, cls, may_grow);
            if (rc)
                goto unlock;
        }
        x = atomic_load(&c->carve_off);
        hmm__entry_mark(m, x, stripe, HMM_CHUNK_WRITING);
        HMM_CRASHPOINT("alloc_marked");
        atomic_store_explicit(intent_new, x, memory_order_release);
        atomic_store_explicit(&c->carve_off, x + size, memory_order_release); /* commit */
    }
    c->chunks_used++;
    *off = x;
unlock:
    hmm__unlock_class(m, cls);
    return rc;
}

/* ---- the stripe's spare chunk (FORMAT.md §8) ----
 *
 * An overwrite frees a chunk of the size it allocates; keeping that chunk
 * in the stripe spares both class locks of the next write.  Not in cache
 * mode, where pages move between classes under the class lock alone. */

static bool spare_usable(hmm_t *m, uint64_t w)
{
    uint32_t cls = HMM_SPARE_CLASS(w);
    uint64_t off = HMM_SPARE_OFF(w);
    return cls < m->nclasses && valid_chunk(m, cls, off);
}

/* Take the spare for a chunk of class cls; false when it has none of that class. */
static bool spare_take(hmm_t *m, uint32_t stripe, uint32_t cls, uint64_t *off)
{
    struct hmm_stripe *s = &m->stripes[stripe];
    uint64_t w = atomic_load_explicit(&s->spare, memory_order_relaxed);
    if (w == 0 || HMM_SPARE_CLASS(w) != cls)
        return false;
    uint64_t x = HMM_SPARE_OFF(w);
    if (!spare_usable(m, w) || atomic_load_explicit(&hmm__chunk(m, x)->state, memory_order_relaxed) != HMM_CHUNK_FREE) {
        atomic_store_explicit(&s->spare, 0, memory_order_relaxed); /* damaged: leak it rather than trust it */
        return false;
    }
    hmm__entry_mark(m, x, stripe, HMM_CHUNK_WRITING);
    HMM_CRASHPOINT("alloc_marked");
    atomic_store_explicit(&s->intent.new_off, x, memory_order_release);
    atomic_store_explicit(&s->spare, 0, memory_order_release); /* commit */
    *off = x;
    return true;
}

int hmm__slab_retire(hmm_t *m, uint32_t stripe, uint64_t off)
{
    struct hmm_stripe *s = &m->stripes[stripe];
    if (!(m->flags & HMM_CACHE) && !hmm__relocating() && atomic_load_explicit(&s->spare, memory_order_relaxed) == 0) {
        uint64_t p = page_of(m, off);
        uint64_t v = p == UINT64_MAX ? 0 : atomic_load_explicit(&m->pagetab[p], memory_order_acquire);
        uint32_t cls = (uint32_t)HMM_PAGE_ARG(v);
        /* The page and its class are checked here: the rest of the
         * chunk's check, not the page table again. */
        if (HMM_PAGE_KIND(v) == HMM_PAGE_CLASS && cls < m->nclasses &&
            m->class_size[cls] <= HMM_SPARE_MAX_CHUNK && chunk_in_class_page(m, cls, off, p)) {
            atomic_store_explicit(&s->spare, HMM_SPARE_MAKE(cls, off), memory_order_release); /* commit */
            HMM_CRASHPOINT("free_linked");
            atomic_store_explicit(&s->intent.old_off, 0, memory_order_release);
            /* FREE, but owned: a spare is not class-free (compact.c). */
            hmm__entry_mark(m, off, stripe, HMM_CHUNK_FREE);
            return 0;
        }
    }
    return hmm__slab_free(m, stripe, off, &s->intent.old_off);
}

void hmm__slab_spare_reconcile_locked(hmm_t *m, uint32_t stripe)
{
    struct hmm_stripe *s = &m->stripes[stripe];
    uint64_t w = atomic_load(&s->spare);
    if (w == 0)
        return;
    uint64_t off = HMM_SPARE_OFF(w);
    /* Died between naming it the new chunk and the commit that takes it:
     * the intent's repair decides what becomes of it. */
    if (off == atomic_load(&s->intent.new_off))
        atomic_store(&s->spare, 0);
    /* Died after the commit that kept the old chunk: the retire is done. */
    else if (off == atomic_load(&s->intent.old_off))
        atomic_store(&s->intent.old_off, 0);
}

void hmm__slab_spare_settle_locked(hmm_t *m, uint32_t stripe)
{
    struct hmm_stripe *s = &m->stripes[stripe];
    uint64_t w = atomic_load(&s->spare);
    if (w == 0)
        return;
    if (!spare_usable(m, w) || (m->flags & HMM_CACHE)) {
        atomic_store(&s->spare, 0);
        return;
    }
    /* FREE and owned by this stripe; a spare kept by an older build (owner
     * 0) is marked too, so page compaction never takes it for class-free. */
    struct hmm_entry *e = hmm__chunk(m, HMM_SPARE_OFF(w));
    if (atomic_load(&e->state) != HMM_CHUNK_FREE || atomic_load(&e->owner) != stripe + 1)
        hmm__entry_mark(m, HMM_SPARE_OFF(w), stripe, HMM_CHUNK_FREE);
}

int hmm__slab_spare_give_back_locked(hmm_t *m, uint32_t t)
{
    struct hmm_stripe *s = &m->stripes[t];
    uint64_t w = atomic_load(&s->spare);
    if (w == 0)
        return HMM_NOTFOUND;
    /* Through the stripe's intent, as a retire, so a death in between
     * leaves a chunk that the stripe's repair frees. */
    uint64_t x = HMM_SPARE_OFF(w);
    hmm__entry_mark(m, x, t, HMM_CHUNK_RETIRING);
    HMM_CRASHPOINT("reclaim_marked");
    atomic_store(&s->intent.old_off, x);
    HMM_CRASHPOINT("reclaim_named");
    atomic_store(&s->spare, 0);
    HMM_CRASHPOINT("reclaim_taken");
    return hmm__slab_free(m, t, x, &s->intent.old_off);
}

/* The map is out of pages: give the stripes' spares of class cls (any
 * class with HMM_CLASS_RUN) back, so they can be allocated or their pages
 * emptied.  Only stripes whose lock is free: we hold our own, and waiting
 * for another could deadlock.  Our own stripe's spare goes back too (its
 * operation has named no chunk yet: the give-back's intent use is free):
 * left out, that one chunk kept the last page of an emptied class from
 * ever being handed back.  Returns how many came back. */
static int spares_reclaim(hmm_t *m, uint32_t held, uint32_t cls)
{
    int n = 0;
    for (uint32_t t = 0; t <= m->stripe_mask; t++) {
        struct hmm_stripe *s = &m->stripes[t];
        uint64_t w = atomic_load_explicit(&s->spare, memory_order_relaxed);
        bool wanted = cls == HMM_CLASS_RUN || HMM_SPARE_CLASS(w) == cls;
        if (w == 0 || !wanted || (t != held && hmm__trylock_stripe(m, t) != 0))
            continue;
        w = atomic_load(&s->spare);
        wanted = cls == HMM_CLASS_RUN || HMM_SPARE_CLASS(w) == cls;
        if (w && wanted && hmm__slab_spare_give_back_locked(m, t) == 0)
            n++;
        if (t != held)
            hmm__unlock_stripe(m, t);
    }
    return n;
}

/* A class allocation that may make room: the free list, the carve page or a
 * free page first; then empty pages of other classes handed back; then a
 * longer file; then (map at its size) the sparsest pages of other classes
 * emptied by moving their entries.  Only the caller's stripe is held. */
static int class_alloc_compacting(hmm_t *m, uint32_t stripe, uint32_t cls, uint64_t *off)
{
    int rc = class_alloc(m, stripe, cls, false, off);
    if (rc != HMM__NOPAGE)
        return rc;
    if (hmm__relocating())
        return HMM_FULL; /* a move never starts another compaction */
    if (hmm__pages_return_empty(m) > 0 && (rc = class_alloc(m, stripe, cls, false, off)) != HMM__NOPAGE)
        return rc;
    rc = class_alloc(m, stripe, cls, true, off);
    if ((rc != HMM_FULL && rc != -ENOSPC) || (m->flags & HMM_CACHE))
        return rc;
    int full_rc = rc;
    /* Expired entries are not live: once reclaimed, their chunks serve and
     * their pages empty (a second pass). */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (hmm__reclaim_expired(m, stripe) == 0)
                break;
            if ((rc = class_alloc(m, stripe, cls, false, off)) != HMM__NOPAGE)
                return rc;
        }
        if (spares_reclaim(m, stripe, cls) > 0 && (rc = class_alloc(m, stripe, cls, false, off)) != HMM__NOPAGE)
            return rc;
        /* Spares of other classes may be all that keeps a page from being empty. */
        if ((spares_reclaim(m, stripe, HMM_CLASS_RUN) > 0 || pass == 1) && hmm__pages_return_empty(m) > 0 &&
            (rc = class_alloc(m, stripe, cls, false, off)) != HMM__NOPAGE)
            return rc;
        for (int attempt = 0; attempt < COMPACT_ATTEMPTS; attempt++) {
            if (hmm__compact_for_class(m, stripe, cls) != 0)
                break;
            rc = class_alloc(m, stripe, cls, false, off);
            if (rc != HMM__NOPAGE)
                return rc;
        }
    }
    return full_rc;
}

/* A run of whole pages: a free run, then empty pages handed back, then a
 * longer file; then (map at its size) as a class allocation does: the
 * stripes' spares given back, which may be all that keeps a page from
 * being empty (a map emptied by deletes leaves a spare in most stripes,
 * spread over every page of the class), and the sparsest pages emptied by
 * moving their entries, a page per attempt, until a run of free pages is
 * there.  Not in cache mode, which keeps no spares and evicts instead. */
static int run_alloc_compacting(hmm_t *m, uint32_t stripe, uint64_t bytes, uint64_t *off)
{
    int rc = run_alloc(m, stripe, bytes, false, off);
    if (rc != HMM__NOPAGE)
        return rc;
    if (!hmm__relocating() && hmm__pages_return_empty(m) > 0 &&
        (rc = run_alloc(m, stripe, bytes, false, off)) != HMM__NOPAGE)
        return rc;
    rc = run_alloc(m, stripe, bytes, true, off);
    if ((rc != HMM_FULL && rc != -ENOSPC) || (m->flags & HMM_CACHE) || hmm__relocating())
        return rc;
    int full_rc = rc;
    uint64_t pages = (bytes + m->page_size - 1) >> m->page_shift;
    for (int pass = 0; pass < 2; pass++) { /* the second after reclaiming expired entries */
        if (pass == 1) {
            if (hmm__reclaim_expired(m, stripe) == 0)
                break;
            /* An expired run's pages are free at once: no page to hand back. */
            if ((rc = run_alloc(m, stripe, bytes, false, off)) != HMM__NOPAGE)
                return rc;
        }
        if ((spares_reclaim(m, stripe, HMM_CLASS_RUN) > 0 || pass == 1) && hmm__pages_return_empty(m) > 0 &&
            (rc = run_alloc(m, stripe, bytes, false, off)) != HMM__NOPAGE)
            return rc;
        for (uint64_t attempt = 0; attempt < COMPACT_ATTEMPTS + pages; attempt++) {
            if (hmm__compact_for_class(m, stripe, HMM_CLASS_RUN) != 0)
                break;
            rc = run_alloc(m, stripe, bytes, false, off);
            if (rc != HMM__NOPAGE)
                return rc;
        }
    }
    return full_rc;
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether a cache's allocation evicts once more (EVICT_PATIENCE_MS);
 * *since is 0 until the tries at once are used up.  A move out of a page
 * being emptied is not patient: it holds a second stripe's lock, and its
 * entry is evicted instead (compact.c). */
static bool evict_again(unsigned attempt, uint64_t *since)
{
    if (attempt < EVICT_RETRIES)
        return true;
    if (hmm__relocating())
        return false;
    uint64_t now = monotonic_ms();
    if (!*since)
        *since = now;
    if (now - *since >= EVICT_PATIENCE_MS)
        return false;
    struct timespec pause = {0, 100000};
    nanosleep(&pause, NULL); /* the holder of what we need runs meanwhile */
    return true;
}

/* A file that could not grow for want of disk space: a cache evicts
 * instead, as when max_size is reached. */
static bool disk_full(int rc)
{
    return rc == -ENOSPC || rc == -EDQUOT;
}

int hmm__slab_alloc(hmm_t *m, uint32_t stripe, uint64_t bytes, uint64_t *off)
{
    uint32_t cls = hmm__slab_class_for_size(m, bytes);
    bool cache = m->flags & HMM_CACHE;
    int rc, disk_rc = 0;
    uint64_t since = 0;
    if (cls != HMM_CLASS_RUN && !hmm__relocating() && spare_take(m, stripe, cls, off)) {
        rc = 0;
    } else if (cls == HMM_CLASS_RUN) {
        rc = run_alloc_compacting(m, stripe, bytes, off);
        /* A cache never says full for a value that fits: empty a window of
         * pages (cache/evict.c); another writer may take the pages first. */
        uint64_t pages = (bytes + m->page_size - 1) >> m->page_shift;
        for (unsigned attempt = 0; (rc == HMM_FULL || disk_full(rc)) && cache && !hmm__relocating() &&
                                   pages <= map_npages(m) && evict_again(attempt, &since);
             attempt++) {
            if (disk_full(rc))
                disk_rc = rc;
            int erc = hmm__evict_for_run(m, stripe, pages);
            if (erc == HMM_FULL)
                continue; /* every window held for now: again, patiently */
            if (erc != 0) {
                rc = erc;
                break;
            }
            rc = run_alloc(m, stripe, bytes, false, off);
            if (rc == HMM__NOPAGE)
                rc = HMM_FULL;
        }
    } else {
        rc = class_alloc_compacting(m, stripe, cls, off);
        /* A cache never says full: evict (holding only our stripe) and
         * retry; once the disk refused to grow the file, without growing. */
        for (unsigned attempt = 0; (rc == HMM_FULL || disk_full(rc)) && cache && evict_again(attempt, &since);
             attempt++) {
            if (disk_full(rc))
                disk_rc = rc;
            int erc = hmm__evict_for_class(m, stripe, cls);
            if (erc != 0 && erc != HMM_FULL) {
                rc = erc;
                break;
            }
            if (erc == HMM_FULL && hmm__relocating())
                break;
            rc = class_alloc(m, stripe, cls, disk_rc == 0, off);
        }
    }
    if (disk_rc && (rc == HMM__NOPAGE || rc == HMM_FULL || disk_full(rc)))
        rc = hmm_fail(disk_rc, "%s: no room for %llu bytes: the disk is full and nothing could be evicted",
                      m->path, (unsigned long long)bytes);
    if (rc == HMM__NOPAGE || rc == HMM_FULL)
        rc = hmm_fail(HMM_FULL, "%s: no room for %llu bytes: the data area is full and the map at its max_size "
                      "(%llu bytes)", m->path, (unsigned long long)bytes, (unsigned long long)m->hdr->max_size);
    if (rc == 0)
        HMM_CRASHPOINT("alloc");
    return rc;
}

/* ---- freeing ---- */

static void free_run_locked(hmm_t *m, uint64_t p, uint64_t n, uint64_t off, hmm_atomic_u64 *intent_field)
{
    atomic_store_explicit(&m->pagetab[p], 0, memory_order_release); /* commit */
    HMM_CRASHPOINT("free_linked");
    atomic_store_explicit(intent_field, 0, memory_order_release);
    hmm__entry_mark(m, off, HMM__NO_STRIPE, HMM_CHUNK_FREE);
    for (uint64_t i = 1; i < n; i++)
        atomic_store_explicit(&m->pagetab[p + i], 0, memory_order_relaxed);
}

void hmm__slab_free_chunk_locked(hmm_t *m, uint32_t cls, uint64_t off, hmm_atomic_u64 *intent_field)
{
    struct hmm_class *c = &m->classes[cls];
    atomic_store_explicit(chunk_next(m, off), atomic_load(&c->free_head), memory_order_relaxed);
    atomic_store_explicit(&c->free_head, off, memory_order_release); /* commit */
    HMM_CRASHPOINT("free_linked");
    atomic_store_explicit(intent_field, 0, memory_order_release);
    hmm__entry_mark(m, off, HMM__NO_STRIPE, HMM_CHUNK_FREE);
    c->chunks_used--;
}

/* Free off if it is a chunk whose state is in states_mask and whose owner
 * is stripe (0 mask: any state, any owner).  The chunk's kind is re-read
 * under the lock that guards it. */
static int free_checked(hmm_t *m, uint32_t stripe, uint64_t off, unsigned states_mask,
                        hmm_atomic_u64 *intent_field)
{
    uint64_t p = hmm__slab_page_of(m, off);
    if (p == UINT64_MAX)
        goto not_ours;
    uint64_t v = atomic_load(&m->pagetab[p]);
    if (HMM_PAGE_KIND(v) == HMM_PAGE_CLASS && HMM_PAGE_ARG(v) < m->nclasses) {
        uint32_t cls = (uint32_t)HMM_PAGE_ARG(v);
        int rc = hmm__lock_class(m, cls);
        if (rc)
            return rc;
        bool ok = hmm__slab_valid_chunk(m, cls, off);
        if (ok && states_mask) {
            struct hmm_entry *e = hmm__chunk(m, off);
            ok = (states_mask & CHUNK_STATE_BIT(atomic_load(&e->state))) &&
                 atomic_load(&e->owner) == stripe + 1;
        }
        if (ok)
            hmm__slab_free_chunk_locked(m, cls, off, intent_field);
        hmm__unlock_class(m, cls);
        if (ok)
            return 0;
        goto not_ours;
    }
    int rc = hmm__lock_pages(m);
    if (rc)
        return rc;
    v = atomic_load(&m->pagetab[p]);
    bool ok = HMM_PAGE_KIND(v) == HMM_PAGE_RUN_HEAD && off == map_page_off(m, p);
    if (ok && states_mask) {
        struct hmm_entry *e = hmm__chunk(m, off);
        ok = (states_mask & CHUNK_STATE_BIT(atomic_load(&e->state))) && atomic_load(&e->owner) == stripe + 1;
    }
    if (ok)
        free_run_locked(m, p, HMM_PAGE_ARG(v), off, intent_field);
    hmm__unlock_pages(m);
    if (ok)
        return 0;
not_ours:
    atomic_store(intent_field, 0);
    return states_mask ? 0 : hmm_fail(HMM_CORRUPT, "%s: freeing %llu, which is not a chunk", m->path,
                                      (unsigned long long)off);
}

int hmm__slab_free(hmm_t *m, uint32_t stripe, uint64_t off, hmm_atomic_u64 *intent_field)
{
    return free_checked(m, stripe, off, 0, intent_field);
}

int hmm__slab_free_if_owned(hmm_t *m, uint32_t stripe, uint64_t off, unsigned states_mask,
                       hmm_atomic_u64 *intent_field)
{
    return free_checked(m, stripe, off, states_mask, intent_field);
}
