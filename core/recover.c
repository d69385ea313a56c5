/*
 * recover.c - repair of a stripe whose lock holder died (FORMAT.md §9).
 *
 * Called with the stripe's robust mutex held after EOWNERDEAD.  The intent
 * names at most one chunk being created (new_off) and one being retired
 * (old_off); the index says whether the publish happened.  Whatever is
 * reachable stays, whatever is not is freed, but only while it still
 * carries this stripe's mark, so a chunk another stripe has reused since is
 * never touched.  Every step is idempotent: a repairer that dies is
 * repaired by the next one.
 *
 * The allocator's own locks are repaired here too, by what their commit
 * stores leave (slab.c): a class whose holder died mid-allocation, and the
 * page table whose holder died mid-run.
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "core/internal.h"

#define STATE_BIT(st) (1u << (st))
#define ALL_STRIPES UINT32_MAX  /* count_entries: every stripe's, not one's */

/* Count the entries of one stripe (all of them when stripe is
 * ALL_STRIPES) into items[] and bytes[], indexed by stripe. */
static void count_entries(hmm_t *m, const struct hmm_ix *ix, uint32_t stripe, int64_t *items, int64_t *bytes)
{
    for (uint64_t b = 0; b < ix->nb; b++) {
        for (unsigned j = 0; j < ix_slots(ix); j++) {
            uint64_t s = atomic_load_explicit(ix_slot(ix, b, j), memory_order_relaxed);
            uint32_t of = HMM_SLOT_TAG(s) & m->stripe_mask;
            if (s == 0 || (stripe != ALL_STRIPES && of != stripe))
                continue;
            struct hmm_entry *e = hmm__entry_whole_at(m, HMM_SLOT_OFF(s));
            uint32_t at = stripe == ALL_STRIPES ? of : 0;
            items[at]++;
            bytes[at] += e ? (int64_t)entry_bytes(e->klen, e->vlen) : 0;
        }
    }
}

void hmm__recount_stripe_locked(hmm_t *m, uint32_t stripe)
{
    int64_t items = 0, bytes = 0;
    struct hmm_ix cur, old;
    if (index_views(m, &cur, &old) != 0)
        return;
    count_entries(m, &cur, stripe, &items, &bytes);
    count_entries(m, &old, stripe, &items, &bytes);
    m->stripes[stripe].items = items;
    m->stripes[stripe].bytes_used = bytes;
}

/* Cold start: one pass over the index for every stripe's gauges. */
static void recount_all_stripes(hmm_t *m)
{
    int64_t items[HMM_NSTRIPES] = {0}, bytes[HMM_NSTRIPES] = {0};
    struct hmm_ix cur, old;
    if (index_views(m, &cur, &old) != 0)
        return;
    count_entries(m, &cur, ALL_STRIPES, items, bytes);
    count_entries(m, &old, ALL_STRIPES, items, bytes);
    for (uint32_t s = 0; s <= m->stripe_mask; s++) {
        m->stripes[s].items = items[s];
        m->stripes[s].bytes_used = bytes[s];
    }
}

/* The repair proper, without recounting the stripe's gauges. */
static void repair_stripe_locked(hmm_t *m, uint32_t stripe)
{
    struct hmm_stripe *s = &m->stripes[stripe];
    struct hmm_intent *in = &s->intent;
    uint64_t hash = atomic_load(&in->hash);
    uint64_t x = atomic_load(&in->new_off);
    uint64_t y = atomic_load(&in->old_off);

    if (atomic_load(&in->op) == HMM_OP_MOVE) {
        hmm__grow_recover_move_locked(m, stripe);
        x = y = 0;
    }
    /* The log record first, while x and y still say whether the change was
     * published (FORMAT.md §13): a put is when its new entry is reachable,
     * a delete when the old one no longer is. */
    if (atomic_load(&s->replog_seq)) {
        bool published = atomic_load(&in->op) == HMM_OP_DEL ? y && !hmm__index_reachable_locked(m, hash, y)
                                                            : x && hmm__index_reachable_locked(m, hash, x);
        hmm__replog_recover_locked(m, stripe, published);
    }
    hmm__slab_spare_reconcile_locked(m, stripe);
    if (y)
        y = atomic_load(&in->old_off); /* 0 when the retire had finished into the spare */
    if (x) {
        if (hmm__index_reachable_locked(m, hash, x))
            atomic_store(&in->new_off, 0); /* the publish happened: the new entry stays */
        else
            hmm__slab_free_if_owned(m, stripe, x, STATE_BIT(HMM_CHUNK_WRITING) | STATE_BIT(HMM_CHUNK_LIVE),
                               &in->new_off);
    }
    if (y) {
        struct hmm_entry *ye = entry_at(m, y);
        if (ye && hmm__index_reachable_locked(m, hash, y)) {
            /* Died before the publish: the old entry is still the value. */
            if (atomic_load(&ye->state) == HMM_CHUNK_RETIRING && atomic_load(&ye->owner) == stripe + 1)
                hmm__entry_mark(m, y, HMM__NO_STRIPE, HMM_CHUNK_LIVE);
            atomic_store(&in->old_off, 0);
        } else {
            /* Published: readers that found y before may still be copying
             * it, and a writer that died before its free window never told
             * them.  Free it in a window of our own (seq odd), as the
             * update protocol does, or its next owner's bytes pass their
             * seq check. */
            bool window = !(atomic_load(&s->seq) & 1);
            if (window)
                hmm__seq_begin_free(s);
            hmm__slab_free_if_owned(m, stripe, y, STATE_BIT(HMM_CHUNK_RETIRING), &in->old_off);
            if (window)
                hmm__seq_end_free(s);
        }
    }
    hmm__slab_spare_settle_locked(m, stripe);
    /* Died inside the free window: readers would spin on the odd value. */
    if (atomic_load(&s->seq) & 1)
        hmm__seq_end_free(s);
    atomic_store(&in->op, HMM_OP_NONE);
}

void hmm__recover_stripe_locked(hmm_t *m, uint32_t stripe)
{
    repair_stripe_locked(m, stripe);
    hmm__recount_stripe_locked(m, stripe);
}

/* Finish an index growth that was under way (which frees the old run);
 * when nobody at all has the map open (alone), also free runs a finisher
 * that died before freeing them left behind. */
static void recover_grow_cold(hmm_t *m, bool alone)
{
    if (atomic_load(&m->hdr->index_old) == atomic_load(&m->hdr->index_cur))
        atomic_store(&m->hdr->index_old, 0);
    if (atomic_load(&m->hdr->index_old) && hmm__grow_index_finish(m) != 0)
        return;
    if (!alone)
        return;
    hmm__index_runs_free_retired_locked(m); /* the only writer: no lock to take */
}

/* No other writer has the map open (map.c's file lock says so): lock words
 * may name threads of a previous boot or of another host, so they are
 * rebuilt rather than trusted, and every intent is repaired as a dead
 * owner's. */
void hmm__recover_cold_start(hmm_t *m, bool alone)
{
    bool repaired = false;
    /* Rebuilding the lock words erases the EOWNERDEAD of dead owners, so
     * from here until the last repair only this cold start knows what to
     * repair: the mark tells a writer let in by our death (map.c). */
    atomic_store(hmm__cold_mark(m), (uint64_t)getpid());
    hmm__lock_init_shared(&m->hdr->pages_lock);
    atomic_store(&m->hdr->pages_owner_proc, 0);
    for (uint32_t c = 0; c < m->nclasses; c++) {
        hmm__lock_init_shared(&m->classes[c].lock);
        atomic_store(&m->classes[c].owner_proc, 0);
    }
    for (uint32_t s = 0; s <= m->stripe_mask; s++) {
        hmm__lock_init_shared(&m->stripes[s].lock);
        atomic_store(&m->stripes[s].owner_proc, 0);
    }
    for (uint32_t i = 0; i < HMM_PROCS; i++)
        hmm__metrics_fold(m, i);
    memset(m->procs, 0, HMM_PROCS * sizeof *m->procs);
    /* From here the dead owners' locks no longer say EOWNERDEAD: only this
     * cold start (or the next one) repairs their intents. */
    HMM_CRASHPOINT("cold_rebuilt");
    hmm__replog_cold_start(m);
    hmm__recover_pages_locked(m, 0);
    for (uint32_t c = 0; c < m->nclasses; c++) {
        hmm__recover_class_locked(m, c);
        /* No writer runs: a page's move is forgotten whoever its pid is now. */
        hmm__compact_recover_class_locked(m, c);
    }
    for (uint32_t s = 0; s <= m->stripe_mask; s++) {
        struct hmm_stripe *st = &m->stripes[s];
        if (atomic_load(&st->intent.op) == HMM_OP_NONE && !atomic_load(&st->intent.new_off) &&
            !atomic_load(&st->intent.old_off) && !(atomic_load(&st->seq) & 1) && !atomic_load(&st->replog_seq)) {
            hmm__slab_spare_settle_locked(m, s);
            continue;
        }
        repair_stripe_locked(m, s);
        repaired = true;
    }
    if (repaired)
        recount_all_stripes(m);
    hmm__lock_init_shared(&m->hdr->grow_lock);
    atomic_store(&m->hdr->grow_owner_proc, 0);
    recover_grow_cold(m, alone);
    if (repaired)
        atomic_fetch_add(&m->hdr->recoveries, 1);
    atomic_store_explicit(hmm__cold_mark(m), 0, memory_order_release);
}

/* ---- the allocator's locks (slab.c, FORMAT.md §6, §9) ---- */

/* Page table lock held after EOWNERDEAD. */
void hmm__recover_pages_locked(hmm_t *m, uint32_t unused)
{
    (void)unused;
    /* A run is committed by its head, written after its tails: tails
     * without a head covering them belong to an allocation that died. */
    uint64_t npages = map_npages(m), index_pages = 0;
    for (uint64_t p = 0; p < npages; p++) {
        uint64_t v = atomic_load(&m->pagetab[p]);
        unsigned kind = HMM_PAGE_KIND(v);
        index_pages += kind == HMM_PAGE_INDEX_HEAD;
        if (kind != HMM_PAGE_RUN_TAIL && kind != HMM_PAGE_INDEX_TAIL)
            continue;
        uint64_t h = HMM_PAGE_ARG(v);
        bool ok = false;
        if (h < p) {
            uint64_t hv = atomic_load(&m->pagetab[h]);
            unsigned hk = HMM_PAGE_KIND(hv);
            ok = (hk == HMM_PAGE_RUN_HEAD || hk == HMM_PAGE_INDEX_HEAD) && h + HMM_PAGE_ARG(hv) > p;
        }
        if (!ok)
            atomic_store(&m->pagetab[p], 0);
        else
            index_pages += kind == HMM_PAGE_INDEX_TAIL;
    }
    /* A death between a run's table entries and this gauge (growth's
     * allocation or freeing of an index run) left it off by the run. */
    atomic_store(&m->hdr->index_pages, index_pages);
}

static uint64_t class_pages(hmm_t *m, uint32_t cls)
{
    uint64_t n = 0, npages = map_npages_mapped(m), want = HMM_PAGE_MAKE(HMM_PAGE_CLASS, cls);
    for (uint64_t p = 0; p < npages; p++)
        n += atomic_load(&m->pagetab[p]) == want;
    return n;
}

/* Class lock held after EOWNERDEAD: finish a page's carve-pointer update,
 * and mark FREE a list head or carve chunk a dead allocator had marked. */
void hmm__recover_class_locked(hmm_t *m, uint32_t cls)
{
    struct hmm_class *c = &m->classes[cls];
    uint32_t size = m->class_size[cls];
    uint64_t pi = atomic_load(&c->page_intent);
    if (pi) {
        uint64_t p = pi - 1;
        uint64_t start = map_page_off(m, p), end = start + (m->page_size / size) * size;
        /* Nothing is carved from the new page before its intent is
         * cleared: the pointer is set when both words say its start. */
        bool carving_p = atomic_load(&c->carve_end) == end && atomic_load(&c->carve_off) == start;
        if (hmm__slab_page_of(m, start) == p &&
            atomic_load(&m->pagetab[p]) == HMM_PAGE_MAKE(HMM_PAGE_CLASS, cls) && !carving_p) {
            atomic_store(&c->carve_end, end);
            atomic_store(&c->carve_off, start);
        }
        c->pages = class_pages(m, cls); /* the grow may have died before or after counting it */
        atomic_store(&c->page_intent, 0);
    }
    uint64_t head = atomic_load(&c->free_head);
    if (head && !hmm__slab_valid_chunk(m, cls, head))
        atomic_store(&c->free_head, 0); /* a corrupt list: drop it rather than follow it */
    else if (head && atomic_load(&entry_at(m, head)->state) != HMM_CHUNK_FREE)
        hmm__entry_mark(m, head, HMM__NO_STRIPE, HMM_CHUNK_FREE);
    uint64_t carve = atomic_load(&c->carve_off);
    if (carve && carve + size <= atomic_load(&c->carve_end) && hmm__slab_valid_chunk(m, cls, carve) &&
        atomic_load(&entry_at(m, carve)->state) != HMM_CHUNK_FREE)
        hmm__entry_mark(m, carve, HMM__NO_STRIPE, HMM_CHUNK_FREE);
    /* The lock's dead holder is not always the page's mover: a mover works
     * outside the lock and may be alive.  Forgetting a live mover's move
     * let others allocate in, or hand back, the page it went on emptying,
     * and its end then handed back a page another class had taken since. */
    hmm__compact_check_owner_locked(m, cls);
}
