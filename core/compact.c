/*
 * compact.c - pages come back (FORMAT.md §6 "Pages come back", §9, §12).
 *
 * A slab page belongs to one size class while it holds chunks of it.  Once
 * it holds none, or when the map is out of pages and it holds few, it goes
 * back to the free pages, where any class, large value or index run can
 * take it.  Without this a long-lived map calcifies: the pages of the sizes
 * it once held stay with them for ever.
 *
 * A chunk is *class-free* when its state is FREE and its owner is 0: on its
 * class's free list or never handed out.  A stripe's spare is FREE with the
 * owner set (stripe + 1), so it is never mistaken for one.  Chunks leave
 * the class-free state only under the class lock, so a page whose every
 * chunk is class-free, seen under that lock, stays empty until the lock is
 * released: that is when it can be handed back.
 *
 * Handing a page back: under the class lock, evac_page names it (so a
 * repair after a death rebuilds the free list from chunk states), the free
 * list is rebuilt without it, then the page-table entry is cleared (the
 * commit).  Making a page empty first (the map is out of pages): evac_page
 * names the page while its live entries are moved elsewhere in their class
 * (a put of the same bytes, expiry and version, under the entry's stripe),
 * or, in cache mode, evicted unless recently used; allocations skip the
 * page meanwhile.  A mover that dies leaves evac_page naming a dead pid:
 * the next allocation in the class rebuilds the list and forgets the move.
 */
#include "config.h"

#include <assert.h>
#include <sched.h>
#include <unistd.h>

#include "core/internal.h"

#define VACATE_TRIES 200        /* per chunk: busy stripes and in-flight writes are waited out */
#define RETURN_BATCH 64u        /* empty pages handed back under one hold of a class lock */

/* Set while this thread empties a page: the moves' allocations never start
 * another compaction (which could move entries in turn, without end), never
 * take or keep a stripe's spare (it may lie in the leaving page), and in
 * cache mode one failed eviction is final. */
/* initial-exec: read on every allocation (three times a put), and the
 * default model for a shared library calls __tls_get_addr each time; one
 * byte of static TLS is available also when the library is dlopen'ed. */
_Thread_local bool hmm__relocating_flag __attribute__((tls_model("initial-exec")));

static inline uint32_t chunks_per_page(const hmm_t *m, uint32_t cls)
{
    return m->page_size / m->class_size[cls];
}

static inline bool class_free(struct hmm_entry *e)
{
    return atomic_load_explicit(&e->state, memory_order_acquire) == HMM_CHUNK_FREE &&
           atomic_load_explicit(&e->owner, memory_order_relaxed) == 0;
}

/* Free chunks class cls holds, never-carved ones included (class lock held). */
static uint64_t class_free_chunks_locked(hmm_t *m, uint32_t cls)
{
    const struct hmm_class *c = &m->classes[cls];
    uint64_t total = c->pages * chunks_per_page(m, cls);
    return total > c->chunks_used ? total - c->chunks_used : 0;
}

/* First and end offset of the chunks of page p in class cls; never-carved
 * chunks of the carve page are left out (they hold no header yet). */
static uint64_t page_chunks_end(hmm_t *m, uint32_t cls, uint64_t p, uint64_t *start)
{
    uint32_t size = m->class_size[cls];
    *start = map_page_off(m, p);
    uint64_t end = *start + chunks_per_page(m, cls) * (uint64_t)size;
    uint64_t from, stop;
    if (hmm__class_uncarved(m, cls, &from, &stop) && from >= *start && from < end)
        end = from;
    return end;
}

static bool in_list(uint64_t p, const uint64_t *pages, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pages[i] == p)
            return true;
    return false;
}

/* Rebuild class cls's free list from chunk states, leaving out the chunks
 * of the pages in skip (class lock held).  Idempotent: it reads only
 * states, so a repairer may run it again after any death. */
static void rebuild_free_list_locked(hmm_t *m, uint32_t cls, const uint64_t *skip, size_t nskip)
{
    struct hmm_class *c = &m->classes[cls];
    uint32_t size = m->class_size[cls];
    uint64_t npages = map_npages_mapped(m), want = HMM_PAGE_MAKE(HMM_PAGE_CLASS, cls);
    uint64_t head = 0, pages = 0, used = 0;
    for (uint64_t p = 0; p < npages; p++) {
        if (atomic_load(&m->pagetab[p]) != want)
            continue;
        pages++;
        uint64_t start, end = page_chunks_end(m, cls, p, &start);
        bool skipped = in_list(p, skip, nskip);
        for (uint64_t x = start; x + size <= end; x += size) {
            if (!class_free(hmm__chunk(m, x))) {
                used++; /* live, in flight, or a stripe's spare */
            } else if (!skipped) {
                atomic_store(chunk_next(m, x), head);
                head = x;
            }
        }
    }
    atomic_store_explicit(&c->free_head, head, memory_order_release);
    c->pages = pages;
    c->chunks_used = used;
}

/* ---- the page marked as leaving its class ---- */

bool hmm__page_leaving(hmm_t *m, uint32_t cls, uint64_t off)
{
    uint64_t ev = atomic_load_explicit(&m->classes[cls].evac_page, memory_order_relaxed);
    return ev && hmm__slab_page_of(m, off) == HMM_EVAC_PAGE(ev);
}

void hmm__compact_recover_class_locked(hmm_t *m, uint32_t cls)
{
    struct hmm_class *c = &m->classes[cls];
    if (atomic_load(&c->evac_page) == 0)
        return;
    /* The mover died: forget the move; pages not yet handed back stay. */
    atomic_store(&c->evac_page, 0);
    rebuild_free_list_locked(m, cls, NULL, 0);
}

void hmm__compact_check_owner_locked(hmm_t *m, uint32_t cls)
{
    uint64_t ev = atomic_load_explicit(&m->classes[cls].evac_page, memory_order_relaxed);
    if (ev && !hmm__proc_pid_alive(m, HMM_EVAC_PID(ev)))
        hmm__compact_recover_class_locked(m, cls);
}

/* Rebuild without pages, then clear their page-table entries: each store
 * is the commit of one page (class lock held, evac_page set). */
static void hand_back_pages_locked(hmm_t *m, uint32_t cls, const uint64_t *pages, size_t n)
{
    struct hmm_class *c = &m->classes[cls];
    rebuild_free_list_locked(m, cls, pages, n);
    HMM_CRASHPOINT("page_unlinked");
    if (in_list(hmm__class_carve_page(m, cls), pages, n)) {
        atomic_store(&c->carve_off, 0);
        atomic_store(&c->carve_end, 0);
    }
    if (hmm__lock_pages(m) != 0)
        return; /* the pages stay with the class; the list lacks them until a repair */
    for (size_t i = 0; i < n; i++) {
        atomic_store_explicit(&m->pagetab[pages[i]], 0, memory_order_release); /* commit */
        c->pages--;
        metrics_add(m, HMM_C_PAGES_RETURNED, 1);
        if (i == 0)
            HMM_CRASHPOINT("page_returned");
    }
    hmm__unlock_pages(m);
}

/* ---- empty pages ---- */

static bool page_empty_locked(hmm_t *m, uint32_t cls, uint64_t p)
{
    uint32_t size = m->class_size[cls];
    uint64_t start, end = page_chunks_end(m, cls, p, &start);
    for (uint64_t x = start; x + size <= end; x += size)
        if (!class_free(hmm__chunk(m, x)))
            return false;
    return true;
}

/* Hand back the empty pages of class cls (class lock held); how many. */
static size_t return_empty_pages_locked(hmm_t *m, uint32_t cls)
{
    struct hmm_class *c = &m->classes[cls];
    uint64_t pages[RETURN_BATCH], npages = map_npages_mapped(m), want = HMM_PAGE_MAKE(HMM_PAGE_CLASS, cls);
    size_t n = 0;
    for (uint64_t p = 0; p < npages && n < RETURN_BATCH; p++)
        if (atomic_load(&m->pagetab[p]) == want && page_empty_locked(m, cls, p))
            pages[n++] = p;
    if (n == 0)
        return 0;
    atomic_store(&c->evac_page, HMM_EVAC_MAKE(getpid(), pages[0]));
    HMM_CRASHPOINT("page_leaving");
    hand_back_pages_locked(m, cls, pages, n);
    atomic_store(&c->evac_page, 0);
    return n;
}

size_t hmm__pages_return_empty(hmm_t *m)
{
    size_t returned = 0;
    for (uint32_t d = 0; d < m->nclasses; d++) {
        if (hmm__lock_class(m, d) != 0)
            continue;
        uint64_t free_chunks = class_free_chunks_locked(m, d);
        /* A class holding less than a page of free chunks has no empty
         * page; one whose free count did not grow by a page since a scan
         * here found none is not scanned again (a per-process hint). */
        if (free_chunks >= chunks_per_page(m, d) && atomic_load(&m->classes[d].evac_page) == 0 &&
            free_chunks >= m->fruitless_free[d] + chunks_per_page(m, d)) {
            size_t n = return_empty_pages_locked(m, d);
            m->fruitless_free[d] = n ? 0 : free_chunks;
            returned += n;
        }
        hmm__unlock_class(m, d);
    }
    return returned;
}

/* ---- making a page empty ---- */

/* Give stripe t's spare x back to its class (FORMAT.md §8, "give back"). */
static int vacate_spare(hmm_t *m, uint32_t held, uint32_t t, uint64_t x)
{
    if (t > m->stripe_mask)
        return 0;
    bool own = t == held;
    if (!own && hmm__trylock_stripe(m, t) != 0)
        return 0;
    uint64_t w = atomic_load(&m->stripes[t].spare);
    int done = w && HMM_SPARE_OFF(w) == x && hmm__slab_spare_give_back_locked(m, t) == 0;
    if (!own)
        hmm__unlock_stripe(m, t);
    return done;
}

/* Move the live entry in chunk x elsewhere in its class, under its stripe.
 * Never the entry of the caller's own key: its operation holds it. */
static int vacate_by_moving(hmm_t *m, uint32_t held, uint64_t x, uint64_t hash)
{
    uint32_t t = hash_stripe(m, hash);
    struct hmm_intent *it = &m->stripes[t].intent;
    bool own = t == held;
    if (own && atomic_load(&it->hash) == hash)
        return -1;
    if (!own && hmm__trylock_stripe(m, t) != 0)
        return 0;
    /* On our own stripe the caller's operation has committed nothing yet
     * (allocation comes first): its intent is kept across the move. */
    uint32_t saved_op = atomic_load(&it->op);
    uint64_t saved_hash = atomic_load(&it->hash);
    assert(!own || (atomic_load(&it->new_off) == 0 && atomic_load(&it->old_off) == 0));
    int rc = hmm__relocate_entry_locked(m, t, x);
    if (own) {
        atomic_store_explicit(&it->hash, saved_hash, memory_order_relaxed);
        atomic_store_explicit(&it->op, saved_op, memory_order_release);
    } else {
        hmm__unlock_stripe(m, t);
    }
    if (rc == 0)
        metrics_add(m, HMM_C_ENTRIES_MOVED, 1);
    return rc == 0 ? 1 : rc == HMM_NOTFOUND ? 0 : -1;
}

/* 1: chunk x of leaving page is (or is becoming) class-free; 0: try again;
 * < 0: it cannot be vacated now. */
static int vacate_chunk(hmm_t *m, uint32_t held, uint64_t x)
{
    struct hmm_entry *e = hmm__chunk(m, x);
    uint8_t state = atomic_load_explicit(&e->state, memory_order_acquire);
    uint16_t owner = atomic_load_explicit(&e->owner, memory_order_relaxed);
    if (state == HMM_CHUNK_FREE)
        return owner == 0 ? 1 : vacate_spare(m, held, (uint32_t)owner - 1, x);
    struct hmm_entry *whole = state == HMM_CHUNK_LIVE ? hmm__entry_whole_at(m, x) : NULL;
    if (!whole)
        return 0; /* an operation is writing or retiring it */
    uint64_t hash = key_hash(entry_key(whole), whole->klen);
    if (m->flags & HMM_CACHE)
        return hmm__evict_chunk(m, held, x, hash, false, true) == 1;
    return vacate_by_moving(m, held, x, hash);
}

static bool vacate_page(hmm_t *m, uint32_t held, uint32_t cls, uint64_t p)
{
    uint32_t size = m->class_size[cls];
    uint64_t start = map_page_off(m, p), end = start + chunks_per_page(m, cls) * (uint64_t)size;
    hmm__set_relocating(true);
    bool ok = true;
    for (uint64_t x = start; ok && x + size <= end; x += size) {
        for (int tries = 0;; tries++) {
            int rc = vacate_chunk(m, held, x);
            if (rc == 1 && class_free(hmm__chunk(m, x)))
                break;
            if (rc < 0 || tries >= VACATE_TRIES) {
                ok = false;
                break;
            }
            if (rc != 1)
                sched_yield(); /* a busy stripe, or an operation in flight on the chunk */
        }
    }
    hmm__set_relocating(false);
    return ok;
}

/* Empty page p of class cls and hand it back.  0 done, HMM_FULL not now. */
int hmm__page_evacuate(hmm_t *m, uint32_t held, uint32_t cls, uint64_t p)
{
    struct hmm_class *c = &m->classes[cls];
    int rc = hmm__lock_class(m, cls);
    if (rc)
        return rc;
    if (atomic_load(&c->evac_page) || atomic_load(&m->pagetab[p]) != HMM_PAGE_MAKE(HMM_PAGE_CLASS, cls)) {
        hmm__unlock_class(m, cls);
        return HMM_FULL;
    }
    atomic_store(&c->evac_page, HMM_EVAC_MAKE(getpid(), p));
    HMM_CRASHPOINT("page_leaving");
    if (hmm__class_carve_page(m, cls) == p) {
        atomic_store(&c->carve_off, 0); /* allocations do not carve from a leaving page */
        atomic_store(&c->carve_end, 0);
    }
    hmm__unlock_class(m, cls);

    bool emptied = vacate_page(m, held, cls, p);

    rc = hmm__lock_class(m, cls);
    if (rc)
        return rc; /* evac_page names us: the next holder repairs after we are gone */
    /* Still our move of a page of the class?  Never hand back a page on the
     * strength of chunk states read through another class's layout. */
    bool ours = atomic_load(&c->evac_page) == HMM_EVAC_MAKE(getpid(), p) &&
                atomic_load(&m->pagetab[p]) == HMM_PAGE_MAKE(HMM_PAGE_CLASS, cls);
    bool returned = false;
    if (ours && emptied && page_empty_locked(m, cls, p)) {
        hand_back_pages_locked(m, cls, &p, 1);
        returned = atomic_load(&m->pagetab[p]) == 0;
    } else if (ours) {
        rebuild_free_list_locked(m, cls, NULL, 0); /* allocations skipped the page's chunks */
    }
    if (ours)
        atomic_store(&c->evac_page, 0);
    hmm__unlock_class(m, cls);
    return returned ? 0 : HMM_FULL;
}

/* The sparsest page of a class that holds at least a page of free chunks
 * elsewhere: its live entries fit in the class's other pages (F >= cpp and
 * L <= cpp - (F - free of the page) give F - free(p) >= L). */
static uint64_t pick_sparsest_page(hmm_t *m, uint32_t needy, uint32_t *donor)
{
    bool candidate[HMM_MAX_CLASSES] = {false};
    for (uint32_t d = 0; d < m->nclasses; d++) {
        if (d == needy || hmm__lock_class(m, d) != 0)
            continue;
        candidate[d] = class_free_chunks_locked(m, d) >= chunks_per_page(m, d) &&
                       atomic_load(&m->classes[d].evac_page) == 0;
        hmm__unlock_class(m, d);
    }
    uint64_t best = UINT64_MAX, best_live = 0, best_cpp = 1, npages = map_npages_mapped(m);
    for (uint64_t p = 0; p < npages; p++) {
        uint64_t v = atomic_load(&m->pagetab[p]);
        uint32_t d = (uint32_t)HMM_PAGE_ARG(v);
        if (HMM_PAGE_KIND(v) != HMM_PAGE_CLASS || d >= m->nclasses || !candidate[d])
            continue;
        /* Counted without the lock: a hint, checked again as the page is emptied. */
        uint32_t size = m->class_size[d], cpp = chunks_per_page(m, d);
        uint64_t live = 0, start, end = page_chunks_end(m, d, p, &start);
        for (uint64_t x = start; x + size <= end; x += size)
            live += !class_free(hmm__chunk(m, x));
        /* The fewest live chunks for the page's capacity: live/cpp below best's. */
        if (best == UINT64_MAX || live * best_cpp < best_live * cpp) {
            best = p;
            best_live = live;
            best_cpp = cpp;
            *donor = d;
        }
    }
    return best;
}

int hmm__compact_for_class(hmm_t *m, uint32_t held, uint32_t needy)
{
    uint32_t donor = 0;
    uint64_t p = pick_sparsest_page(m, needy, &donor);
    if (p == UINT64_MAX)
        return HMM_FULL;
    return hmm__page_evacuate(m, held, donor, p);
}

/* ---- expired entries ----
 *
 * An expired entry reads as absent, but in a persistent map nothing but a
 * write of its own key reclaimed it: a map whose entries had all expired
 * said HMM_FULL to every new key.  Expired entries are not live, so before
 * the allocator gives up it reclaims them (a delete on behalf of their
 * stripe, as an eviction: not logged, a replica expires them by itself).
 * The sweep is bounded and resumes where the last one stopped. */
#define EXPIRED_SWEEP_CHUNKS 4096u

/* Reclaim the entry in chunk x if it has expired by now; 1 if it did. */
static int reclaim_if_expired(hmm_t *m, uint32_t held, uint64_t x, uint64_t now)
{
    struct hmm_entry *e = hmm__entry_whole_at(m, x);
    if (!e || atomic_load_explicit(&e->state, memory_order_acquire) != HMM_CHUNK_LIVE)
        return 0;
    uint64_t expire = *(volatile uint64_t *)&e->expire_ms;
    /* klen read once and checked: no lock keeps the chunk from being reused
     * meanwhile; hmm__evict_chunk checks everything again under the stripe. */
    uint16_t klen = *(volatile uint16_t *)&e->klen;
    uint32_t vlen = *(volatile uint32_t *)&e->vlen;
    if (!expire || expire > now || klen == 0 || vlen > m->max_value || !hmm_at(m, x, entry_bytes(klen, vlen)))
        return 0;
    HMM_CRASHPOINT("reclaim_looked");
    return hmm__evict_chunk(m, held, x, key_hash(entry_key(e), klen), true, false) == 1;
}

size_t hmm__reclaim_expired(hmm_t *m, uint32_t held)
{
    uint64_t now = hmm_now_ms(), npages = map_npages_mapped(m);
    uint64_t start = atomic_load(&m->hdr->page_hand);
    size_t reclaimed = 0, looked = 0;
    for (uint64_t i = 0; i < npages && looked < EXPIRED_SWEEP_CHUNKS; i++) {
        uint64_t p = (start + i) % npages, v = atomic_load(&m->pagetab[p]);
        uint64_t first = map_page_off(m, p), size = 0, end = first;
        if (HMM_PAGE_KIND(v) == HMM_PAGE_CLASS && HMM_PAGE_ARG(v) < m->nclasses) {
            size = m->class_size[HMM_PAGE_ARG(v)];
            end = first + chunks_per_page(m, (uint32_t)HMM_PAGE_ARG(v)) * size;
        } else if (HMM_PAGE_KIND(v) == HMM_PAGE_RUN_HEAD) {
            size = end = first + 1; /* one entry, at the head */
        }
        for (uint64_t x = first; x < end; x += size, looked++)
            reclaimed += (size_t)reclaim_if_expired(m, held, x, now);
        atomic_store(&m->hdr->page_hand, p + 1);
    }
    return reclaimed;
}
