/*
 * evict.c - cache mode (FORMAT.md §12): a map created with HMM_CACHE
 * evicts instead of saying "full".
 *
 * Recency (FORMAT.md §12): a get sets the entry's access byte to 1 with a
 * relaxed store, only if it is 0 (so a hot entry's line is not dirtied on
 * every read); a new entry starts at 0.  Each size class runs a hand over
 * its chunks in memory order.  At the hand, 0 is the victim (an expired
 * entry is one whatever its byte); 1, a read since the hand last passed,
 * becomes a credit of CREDIT_PASSES passes; a credit is spent one per pass.
 * Entries that were read are thus passed over for a while, so a turn of the
 * hand evicts few entries and one that was never read leaves after few
 * evictions: the quick demotion of SIEVE and S3-FIFO, which a plain CLOCK
 * lacks here because a slab reuses the victim's chunk for the new entry
 * (LIFO free list), right behind the hand.
 *
 * Eviction is a delete done on behalf of the victim's stripe: it takes that
 * stripe's lock (trylock: the evictor already holds its own stripe, and two
 * evictors must not wait on each other) and runs the delete protocol of
 * FORMAT.md §8, so a killed evictor is repaired like a killed delete and
 * never leaves a dangling index entry.
 *
 * Rebalancing (memcached's slab automove): a class that has evicted a page's
 * worth of entries since it last gained a page takes one from another class,
 * chosen by a global page hand (round robin, never a class's last page).
 * The page's live entries are evicted (or moved, when used lately) and it
 * goes back to the page table as free for the needy class to take: the
 * page move itself, shared with persistent maps, is core/compact.c's.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <unistd.h>

#include "core/internal.h"

#define EVICT_ATTEMPTS 16
/* An entry being moved out of a page that leaves its class (compact.c)
 * needs a chunk of the class too; if two evictions find none, the mover
 * evicts that entry instead of moving it (HMM_FULL), which ends the page's
 * hand-back sooner than waiting would. */
#define MOVE_EVICT_ATTEMPTS 2
/* evict_one's answer when the hand found no entry it may take: trying
 * again at once finds none either, so nobody waits for one. */
#define EVICT_NONE 2
/* Pages of other classes tried for a class that has none at all: each try
 * empties a whole page, so a few is enough when any page can be had. */
#define DONOR_TRIES 8
/* Pages whose entries are counted for one pick of a donor page: the count
 * reads every chunk of a page, and a cache whose every page is hot would
 * otherwise have each pick read all of it. */
#define DONOR_PAGES_LOOKED 16u
/* Windows of pages tried for a value that takes a run of whole pages: a
 * window fails when a page of it is the index, is being emptied already,
 * or holds the caller's own entry or one a busy stripe's writer holds. */
#define RUN_WINDOW_TRIES 8
/* The access byte (FORMAT.md §12): 0 not read since the hand passed, 1 read
 * (set by readers, only over 0), 2..CREDIT_MARK a credit of (value - 1)
 * passes.  A reader does not write over a credit, so reads during one are
 * not seen: the credit must outlast a hot entry's gaps between reads, and
 * 64 passes measured best among 16..64 (bench/README.md, hit ratio). */
#define ACCESS_READ 1u
#define CREDIT_PASSES 64u
#define CREDIT_MARK (1u + CREDIT_PASSES)
/* A walk visits at most this many chunks, then takes the least credited
 * entry it saw: credits must not make one eviction walk the class dozens
 * of times (all entries read once, then a flood).  Typical walks are a
 * few chunks (bench/README.md). */
#define HAND_WALK_MAX 512u

static uint32_t chunks_per_page(const hmm_t *m, uint32_t cls)
{
    return m->page_size / m->class_size[cls];
}

/* ---- evicting one entry ---- */

/* Delete the entry in chunk x if it still is the LIVE entry of hash, on
 * behalf of its stripe; with rescue, move it elsewhere in its class when it
 * was used since the hand last passed.  1 done, 0 skipped (busy, changed),
 * < 0 error.
 *
 * The victim may belong to the stripe the caller holds: its operation is
 * still before its first commit (hmm__slab_alloc runs before anything is
 * published), so the stripe's intent can describe this delete meanwhile and
 * is given back afterwards.  Such a victim is evicted, never moved, and is
 * never the entry of the caller's own key. */
int hmm__evict_chunk(hmm_t *m, uint32_t held, uint64_t x, uint64_t hash, bool expired, bool rescue)
{
    uint32_t t = hash_stripe(m, hash);
    bool own = t == held;
    /* Never the caller's own key: its operation holds that entry. */
    if (own && atomic_load(&m->stripes[t].intent.hash) == hash)
        return 0;
    if (!own) {
        int rc = hmm__trylock_stripe(m, t);
        if (rc)
            return rc == -EBUSY ? 0 : rc;
    }
    /* A rescue runs inside a page move (compact.c), which has set this
     * thread's relocating flag for the move's allocation. */
    if (!own && rescue && !expired && atomic_load(&hmm__chunk(m, x)->access)) {
        int moved = hmm__relocate_entry_locked(m, t, x);
        if (moved == 0) {
            metrics_add(m, HMM_C_ENTRIES_MOVED, 1);
            hmm__unlock_stripe(m, t);
            return 1;
        }
    }
    struct hmm_stripe *st = &m->stripes[t];
    struct hmm_entry *e = hmm__entry_whole_at(m, x);
    struct hmm_ix cur, old, *in = NULL;
    hmm_atomic_u64 *slot = NULL;
    /* A map that is not a cache loses an entry only when it has expired
     * (hmm__reclaim_expired), checked again here under the stripe's lock:
     * the caller looked without it, and the chunk may since hold another
     * put of the key, one that has not expired. */
    bool may_go = (m->flags & HMM_CACHE) || (e && hmm__entry_expired(e, hmm_now_ms()));
    if (e && may_go && atomic_load(&e->state) == HMM_CHUNK_LIVE && key_hash(entry_key(e), e->klen) == hash &&
        index_views(m, &cur, &old) == 0) {
        if ((slot = hmm__index_slot_of_locked(&cur, hash, x)))
            in = &cur;
        else if ((slot = hmm__index_slot_of_locked(&old, hash, x)))
            in = &old;
    }
    if (!slot) {
        if (!own)
            hmm__unlock_stripe(m, t);
        return 0;
    }
    struct hmm_intent *it = &st->intent;
    uint32_t saved_op = atomic_load(&it->op);
    uint64_t saved_hash = atomic_load(&it->hash);
    assert(!own || (atomic_load(&it->new_off) == 0 && atomic_load(&it->old_off) == 0));
    atomic_store_explicit(&it->hash, hash, memory_order_relaxed);
    atomic_store_explicit(&it->new_off, 0, memory_order_relaxed);
    atomic_store_explicit(&it->op, HMM_OP_DEL, memory_order_release);
    int rc = hmm__delete_locked(m, t, in, hash, slot, x, HMM_DELETE_EVICTION);
    if (own) {
        atomic_store_explicit(&it->hash, saved_hash, memory_order_relaxed);
        atomic_store_explicit(&it->op, saved_op, memory_order_release);
    } else {
        atomic_store_explicit(&it->op, HMM_OP_NONE, memory_order_release);
        hmm__unlock_stripe(m, t);
    }
    metrics_add(m, expired ? HMM_C_EXPIRATIONS : HMM_C_EVICTIONS, 1);
    return rc ? rc : 1;
}

/* ---- the CLOCK hand ---- */

/* First chunk of the next page of class cls at or after page p (wrapping), 0 if none. */
static uint64_t first_chunk_from(hmm_t *m, uint32_t cls, uint64_t p)
{
    uint64_t npages = map_npages_mapped(m), want = HMM_PAGE_MAKE(HMM_PAGE_CLASS, cls);
    for (uint64_t i = 0; i < npages; i++) {
        uint64_t q = (p + i) % npages;
        if (atomic_load_explicit(&m->pagetab[q], memory_order_relaxed) == want)
            return map_page_off(m, q);
    }
    return 0;
}

static uint64_t hand_next(hmm_t *m, uint32_t cls, uint64_t x)
{
    uint32_t size = m->class_size[cls];
    uint64_t p = hmm__slab_page_of(m, x);
    uint64_t next = x + size;
    if (p != UINT64_MAX && next - map_page_off(m, p) + size <= m->page_size)
        return next;
    return first_chunk_from(m, cls, p == UINT64_MAX ? 0 : p + 1);
}

/* The hand's verdict on a LIVE, unexpired entry's access byte (class lock
 * held): true if it stays, after spending its read mark or one credit;
 * *left is the byte it keeps. */
static bool hand_passes(struct hmm_entry *e, uint8_t *left)
{
    uint8_t a = atomic_load_explicit(&e->access, memory_order_relaxed);
    *left = a;
    if (a == 0)
        return false;
    /* Relaxed: the byte is a hint.  A reader's 1 stored between this load
     * and the store below is lost, which costs that entry at most one turn;
     * every store here happens under the class lock, so hands never race. */
    uint8_t next = a == ACCESS_READ ? CREDIT_MARK : a > 2 ? (uint8_t)(a - 1) : 0;
    atomic_store_explicit(&e->access, next, memory_order_relaxed);
    *left = next;
    return true;
}

/* Walk the hand to a victim (class lock held).  Returns its offset and
 * hash, or 0 when the walk found no LIVE entry it may take. */
static uint64_t clock_pick_locked(hmm_t *m, uint32_t cls, uint64_t *hash, bool *expired)
{
    struct hmm_class *c = &m->classes[cls];
    uint64_t x = atomic_load(&c->hand);
    if (!x || !hmm__slab_valid_chunk(m, cls, x))
        x = first_chunk_from(m, cls, 0);
    uint64_t now = hmm_now_ms();
    uint64_t budget = 2 * c->pages * chunks_per_page(m, cls) + 1;
    if (budget > HAND_WALK_MAX)
        budget = HAND_WALK_MAX;
    uint64_t victim = 0, fallback = 0;
    uint8_t fallback_credit = UINT8_MAX;
    uint64_t uncarved = 0, uncarved_end = 0;
    hmm__class_uncarved(m, cls, &uncarved, &uncarved_end);
    for (uint64_t n = 0; x && n < budget && !victim; n++) {
        struct hmm_entry *e = hmm__chunk(m, x);
        uint64_t at = x;
        x = hand_next(m, cls, x);
        if (at >= uncarved && at < uncarved_end)
            continue; /* never handed out */
        if (atomic_load_explicit(&e->state, memory_order_relaxed) != HMM_CHUNK_LIVE ||
            hmm__page_leaving(m, cls, at) || !hmm__entry_whole_at(m, at))
            continue;
        *expired = e->expire_ms && e->expire_ms <= now;
        uint8_t credit;
        if (!*expired && hand_passes(e, &credit)) {
            if (credit <= fallback_credit) {
                fallback = at;
                fallback_credit = credit;
            }
            continue;
        }
        victim = at;
    }
    if (!victim && fallback) {
        victim = fallback; /* a long walk: the least credited entry seen goes */
        *expired = false;
    }
    atomic_store(&c->hand, x);
    if (victim) {
        struct hmm_entry *v = hmm__chunk(m, victim);
        *hash = key_hash(entry_key(v), v->klen);
    }
    return victim;
}

static int evict_one(hmm_t *m, uint32_t held, uint32_t cls)
{
    uint64_t hash = 0;
    bool expired = false;
    int rc = hmm__lock_class(m, cls);
    if (rc)
        return rc;
    uint64_t x = clock_pick_locked(m, cls, &hash, &expired);
    hmm__unlock_class(m, cls);
    if (!x)
        return EVICT_NONE;
    rc = hmm__evict_chunk(m, held, x, hash, expired, false);
    if (rc == 1 && hmm__lock_class(m, cls) == 0) {
        m->classes[cls].pressure++;
        m->classes[cls].evictions++;
        hmm__unlock_class(m, cls);
    }
    return rc;
}

/* ---- moving a page between classes (slab automove) ---- */

/* Pages a class can allocate from: a page being evacuated does not count. */
static uint64_t usable_pages(hmm_t *m, uint32_t cls)
{
    const struct hmm_class *c = &m->classes[cls];
    uint64_t leaving = atomic_load_explicit(&c->evac_page, memory_order_relaxed) != 0;
    return c->pages > leaving ? c->pages - leaving : 0;
}

/* Could class d give page p without losing entries read lately?  Those
 * the page holds are moved into the class's other pages, evicting what
 * the hand finds there, so they must find room beside the class's other
 * entries read lately: counted here on this page and taken as typical of
 * the class, they may fill at most half of what is left.  Chunks of the
 * carve region were never handed out and read as FREE. */
static bool page_may_give(hmm_t *m, uint32_t d, uint64_t p)
{
    uint32_t size = m->class_size[d];
    uint64_t per_page = chunks_per_page(m, d), pages = usable_pages(m, d);
    uint64_t x = map_page_off(m, p), end = x + per_page * size, read = 0;
    if (pages < 2)
        return false; /* another process took its other pages meanwhile */
    for (; x + size <= end; x += size) {
        struct hmm_entry *e = hmm__chunk(m, x);
        read += atomic_load_explicit(&e->state, memory_order_relaxed) == HMM_CHUNK_LIVE &&
                atomic_load_explicit(&e->access, memory_order_relaxed) != 0;
    }
    return 2 * read * pages <= (pages - 1) * per_page;
}

/* Pick a page of another class (page hand).  A class keeps its last page
 * unless the needy class has none at all: then any class gives, so that
 * every size can be stored even when there are more classes than pages.
 * A class that has pages and only evicts takes none whose class would
 * then evict entries read lately: its one-time entries would push out
 * another class's hot ones (with pages of 8 KiB, a flood of one-time keys
 * took pages from the class of 100 keys read all along until 22 of them
 * went). */
static uint64_t pick_donor_page(hmm_t *m, uint32_t needy, uint32_t *donor)
{
    uint64_t npages = map_npages_mapped(m);
    bool must = usable_pages(m, needy) == 0;
    uint64_t keep = must ? 1 : 2;
    uint64_t start = atomic_fetch_add(&m->hdr->page_hand, 1);
    unsigned looked = 0;
    for (uint64_t i = 0; i < npages; i++) {
        uint64_t p = (start + i) % npages;
        uint64_t v = atomic_load(&m->pagetab[p]);
        if (HMM_PAGE_KIND(v) != HMM_PAGE_CLASS || HMM_PAGE_ARG(v) >= m->nclasses)
            continue;
        uint32_t d = (uint32_t)HMM_PAGE_ARG(v);
        if (d == needy || usable_pages(m, d) < keep)
            continue;
        if (!must && !page_may_give(m, d, p)) {
            if (++looked < DONOR_PAGES_LOOKED)
                continue;
            atomic_store(&m->hdr->page_hand, p + 1); /* the next pick looks further on */
            return UINT64_MAX;
        }
        atomic_store(&m->hdr->page_hand, p + 1);
        *donor = d;
        return p;
    }
    return UINT64_MAX;
}

static int empty_window(hmm_t *m, uint32_t held, uint64_t n, bool runs_only);

/* Empty a page of another class (evicting its entries, rescuing those used
 * lately) and hand it back for the needy class to take (compact.c).  With
 * no class page to take (a cache filled with values of whole pages), the
 * entry of a run goes: before, such a cache refused every smaller value. */
static int evacuate_page_for(hmm_t *m, uint32_t held, uint32_t needy)
{
    uint32_t d;
    uint64_t p = pick_donor_page(m, needy, &d);
    if (p == UINT64_MAX)
        return hmm__relocating() ? HMM_FULL : empty_window(m, held, 1, true);
    int rc = hmm__page_evacuate(m, held, d, p);
    /* The page could not be emptied (it may hold the caller's own entry,
     * which its put holds, and be the only class page there is): a page of
     * a run will do as well. */
    if (rc == HMM_FULL && !hmm__relocating())
        rc = empty_window(m, held, 1, true);
    return rc;
}

int hmm__evict_for_class(hmm_t *m, uint32_t held, uint32_t cls)
{
    struct hmm_class *c = &m->classes[cls];
    int rc = hmm__lock_class(m, cls);
    if (rc)
        return rc;
    hmm__compact_check_owner_locked(m, cls);
    bool starved = !hmm__relocating() && (usable_pages(m, cls) == 0 || c->pressure >= chunks_per_page(m, cls));
    if (starved)
        c->pressure = 0;
    hmm__unlock_class(m, cls);
    /* A class without pages cannot evict: try a few donors before giving up. */
    for (int donor = 0; starved && donor < (usable_pages(m, cls) == 0 ? DONOR_TRIES : 1); donor++)
        if (evacuate_page_for(m, held, cls) == 0)
            return 0;
    /* A move out of the class's only page (every entry of the class is on
     * the page that leaves) has nothing to evict for: its entry goes
     * instead.  Before, each chunk of such a page waited out its attempts,
     * and two writers beside two readers put 170 times fewer values. */
    if (hmm__relocating() && usable_pages(m, cls) == 0)
        return HMM_FULL;
    for (int attempt = 0; attempt < (hmm__relocating() ? MOVE_EVICT_ATTEMPTS : EVICT_ATTEMPTS); attempt++) {
        rc = evict_one(m, held, cls);
        if (rc == 1)
            return 0;
        if (rc < 0)
            return rc;
        if (rc == EVICT_NONE)
            break;
        sched_yield(); /* a busy stripe, or a raced entry: it will be free soon */
    }
    if (hmm__relocating())
        return HMM_FULL; /* the entry is evicted instead of moved */
    /* Nothing evictable here (empty class, every stripe busy): take a page. */
    rc = evacuate_page_for(m, held, cls);
    if (rc == HMM_FULL)
        sched_yield(); /* let the holders of the busy stripes finish */
    return rc;
}

/* ---- room for a run of whole pages ----
 *
 * A value over the largest class takes a run of n free pages.  A cache
 * whose pages all belong to classes (every full cache) has none, and no
 * class eviction makes one: before this, such a cache refused every value
 * over the largest class for good once it had filled.  So a window of n
 * pages, chosen by the page hand among pages that hold entries (of classes
 * or of other runs, never the index), is emptied: class pages as slab
 * automove empties a donor page (entries read lately are moved elsewhere
 * in their class, the others evicted), runs by evicting their entry. */

/* Evict the entry that owns the run whose head is page h. */
static bool run_vacate(hmm_t *m, uint32_t held, uint64_t h)
{
    uint64_t x = map_page_off(m, h);
    struct hmm_entry *e = hmm__entry_whole_at(m, x);
    if (!e || atomic_load(&e->state) != HMM_CHUNK_LIVE)
        return false; /* being written or freed by its stripe: not now */
    /* No lock holds the entry still: klen read once and bounds-checked
     * before the key is hashed (hmm__evict_chunk checks all again under
     * the stripe's lock). */
    uint16_t klen = *(volatile uint16_t *)&e->klen;
    if (klen == 0 || !hmm_at(m, x, HMM_ENTRY_HDR + (uint64_t)klen))
        return false;
    uint64_t hash = key_hash(entry_key(e), klen);
    uint64_t expire = *(volatile uint64_t *)&e->expire_ms;
    bool expired = expire && expire <= hmm_now_ms();
    return hmm__evict_chunk(m, held, x, hash, expired, false) == 1;
}

/* Can page q be emptied for a run: free, a class page, or part of an
 * entry's run (runs_only: only the last). */
static bool run_window_page_ok(hmm_t *m, uint64_t q, bool runs_only)
{
    uint64_t v = atomic_load(&m->pagetab[q]);
    switch (HMM_PAGE_KIND(v)) {
    case HMM_PAGE_FREE:
        return !runs_only;
    case HMM_PAGE_RUN_HEAD:
    case HMM_PAGE_RUN_TAIL:
        return true;
    case HMM_PAGE_CLASS:
        return !runs_only && HMM_PAGE_ARG(v) < m->nclasses;
    default:
        return false; /* the index: never evicted */
    }
}

/* Empty page q of a window; true when it is free afterwards. */
static bool run_window_vacate_page(hmm_t *m, uint32_t held, uint64_t q)
{
    uint64_t v = atomic_load(&m->pagetab[q]);
    switch (HMM_PAGE_KIND(v)) {
    case HMM_PAGE_FREE:
        return true;
    case HMM_PAGE_CLASS:
        if (HMM_PAGE_ARG(v) < m->nclasses)
            hmm__page_evacuate(m, held, (uint32_t)HMM_PAGE_ARG(v), q);
        break;
    case HMM_PAGE_RUN_HEAD:
        run_vacate(m, held, q);
        break;
    case HMM_PAGE_RUN_TAIL:
        if (HMM_PAGE_ARG(v) < q)
            run_vacate(m, held, HMM_PAGE_ARG(v));
        break;
    default:
        break;
    }
    return atomic_load(&m->pagetab[q]) == 0;
}

/* Empty a window of n pages (runs_only: a page of a run); 0 or HMM_FULL. */
static int empty_window(hmm_t *m, uint32_t held, uint64_t n, bool runs_only)
{
    uint64_t npages = map_npages_mapped(m);
    if (n == 0 || n > npages)
        return HMM_FULL;
    uint64_t start = atomic_fetch_add(&m->hdr->page_hand, 1);
    int tried = 0;
    for (uint64_t i = 0; i < npages && tried < RUN_WINDOW_TRIES; i++) {
        uint64_t p = (start + i) % npages;
        if (p + n > npages)
            continue;
        bool usable = true;
        for (uint64_t q = p; usable && q < p + n; q++)
            usable = run_window_page_ok(m, q, runs_only);
        if (!usable)
            continue;
        tried++;
        bool emptied = true;
        for (uint64_t q = p; emptied && q < p + n; q++)
            emptied = run_window_vacate_page(m, held, q);
        if (emptied) {
            atomic_store(&m->hdr->page_hand, p + n);
            return 0;
        }
        i += n - 1; /* the next window starts past this one */
    }
    return HMM_FULL;
}

int hmm__evict_for_run(hmm_t *m, uint32_t held, uint64_t n)
{
    return empty_window(m, held, n, false);
}
