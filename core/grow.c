/*
 * grow.c - online growth (FORMAT.md §10): the file grows by appending
 * pages, the index by doubling into a new run that writers drain the old
 * one into, a few buckets at a time, while readers look in both.
 *
 * Moving a key takes its stripe lock and makes the stripe's seq odd, so a
 * reader that looked in the new index before the move and in the old one
 * after it finds out and retries.  Nothing that holds a lock moves: locks
 * live in the fixed part of the file, which growth never touches, and each
 * process's mapping was reserved at the largest size the file can reach.
 *
 * Lock order: grow, stripe, class, pages.  Helpers drain holding no lock
 * but the one stripe they move a key of.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

#define HELP_BUCKETS 4u         /* old buckets a writer drains per operation */
#define GROW_FILE_DIVISOR 8u    /* the file grows by this fraction of its entry pages */

/* Repair of the growth lock's dead holder (lock.c calls it on EOWNERDEAD). */
void hmm__grow_recover_locked(hmm_t *m, uint32_t unused)
{
    (void)unused;
    /* Died between publishing the old index and the new current one. */
    if (atomic_load(&m->hdr->index_old) == atomic_load(&m->hdr->index_cur))
        atomic_store(&m->hdr->index_old, 0);
}

int hmm__grow_file_locked(hmm_t *m, uint64_t n, bool for_index)
{
    struct hmm_header *h = m->hdr;
    uint64_t npages = map_npages(m);
    uint64_t entry_pages = npages - atomic_load(&h->index_pages);
    uint64_t max_entry_pages = (h->max_size + m->page_size - 1) >> m->page_shift;
    uint64_t step = n;
    if (!for_index) {
        if (entry_pages + n > max_entry_pages)
            return HMM_FULL;
        /* An eighth more: still a logarithmic number of steps for a map
         * filled from small size, and the file stays within an eighth of
         * what it holds (a doubling left up to half of it unused, and
         * allocated on disk). */
        step = entry_pages / GROW_FILE_DIVISOR < 16 ? 16 : entry_pages / GROW_FILE_DIVISOR;
        if (step < n)
            step = n;
        if (entry_pages + step > max_entry_pages)
            step = max_entry_pages - entry_pages;
    }
    if (npages + step > m->pagetab_cap)
        return hmm_fail(HMM_FULL, "%s: page table is full", m->path);
    /* The file must be as long as the pages the header counts.  One cut
     * short under the map (damage from outside) is refused, not lengthened
     * over the cut: that hid the damage, and the lost pages read as zeros. */
    int rc = hmm__map_refresh_limit(m);
    if (rc)
        return rc;
    uint64_t size = m->data_off + ((npages + step) << m->page_shift);
    rc = hmm__file_allocate(m->fd, size);
    if (rc)
        return hmm_fail(rc, "%s: cannot grow the map from %llu to %llu bytes: %s (the file keeps its size)",
                        m->path, (unsigned long long)(m->data_off + (npages << m->page_shift)),
                        (unsigned long long)size, strerror(-rc));
    HMM_CRASHPOINT("grown");
    /* The file is long enough before anyone may use the pages: release
     * pairs with the acquire in map_npages(). */
    atomic_store_explicit(&h->npages, npages + step, memory_order_release);
    atomic_fetch_add_explicit(&h->generation, 1, memory_order_release);
    metrics_add(m, HMM_C_GROWTH_STEPS, 1);
    return hmm__map_refresh_limit(m);
}

/* A zeroed run of n pages for an index: empty slab pages are handed back
 * first, the file grows only when there are none. */
static int alloc_index_run(hmm_t *m, uint64_t n, uint64_t *p)
{
    int rc = hmm__lock_pages(m);
    if (rc)
        return rc;
    rc = hmm__pages_alloc_run_locked(m, n, HMM_PAGE_INDEX_HEAD, false, p);
    if (rc == HMM__NOPAGE) {
        hmm__unlock_pages(m);
        hmm__pages_return_empty(m);
        if ((rc = hmm__lock_pages(m)) != 0)
            return rc;
        rc = hmm__pages_alloc_run_locked(m, n, HMM_PAGE_INDEX_HEAD, true, p);
    }
    if (rc == 0) {
        memset(m->base + map_page_off(m, *p), 0, n << m->page_shift);
        atomic_store_explicit(&m->pagetab[*p], HMM_PAGE_MAKE(HMM_PAGE_INDEX_HEAD, n), memory_order_release);
        atomic_fetch_add(&m->hdr->index_pages, n);
    }
    hmm__unlock_pages(m);
    return rc;
}

int hmm__grow_index_start(hmm_t *m)
{
    int rc = hmm__lock_grow(m);
    if (rc)
        return rc;
    struct hmm_header *h = m->hdr;
    uint64_t wc = atomic_load(&h->index_cur);
    if (atomic_load(&h->index_old) != 0 || HMM_INDEX_BUCKETS(wc) > UINT32_MAX / 2) {
        hmm__unlock_grow(m);
        return 0;
    }
    uint64_t nb = HMM_INDEX_BUCKETS(wc) * 2;
    uint64_t n = (hmm__index_run_bytes(nb, m->cells) + m->page_size - 1) >> m->page_shift;
    uint64_t p;
    rc = alloc_index_run(m, n, &p);
    if (rc == 0) {
        atomic_store(&h->migrate_next, 0);
        /* Old before current: a reader that sees the new current also sees
         * where the keys not yet moved are (index_views()). */
        atomic_store_explicit(&h->index_old, wc, memory_order_release);
        HMM_CRASHPOINT("index_grown");
        atomic_store_explicit(&h->index_cur, HMM_INDEX_MAKE(p, nb), memory_order_release);
        atomic_fetch_add_explicit(&h->generation, 1, memory_order_release);
        metrics_add(m, HMM_C_GROWTH_STEPS, 1);
    }
    hmm__unlock_grow(m);
    return rc;
}

/* The cell of a format-2 slot s when it holds a copy, else NULL.  A move
 * then needs nothing from the entry: the copy has the key to hash and the
 * bytes for the new cell, where reading the chunk was a cache miss per
 * slot, 28 a write while a growth drained (4-5 us an incr at 1.5 M keys). */
static const struct hmm_cell *copy_of_slot(const struct hmm_ix *old, uint64_t s, hmm_atomic_u64 *slot)
{
    if (!ix_cells(old) || !(HMM_SLOT_SHAPE(s) & HMM_SHAPE_COPY))
        return NULL;
    return (const struct hmm_cell *)(const void *)slot; /* the word is the cell's first field */
}

static uint64_t cell_key_hash(const struct hmm_cell *c, uint64_t s)
{
    uint64_t kw[2] = {atomic_load_explicit(&c->key[0], memory_order_relaxed),
                      atomic_load_explicit(&c->key[1], memory_order_relaxed)};
    uint8_t key[sizeof kw];
    memcpy(key, kw, sizeof key); /* the copy's words are the key's bytes as memcpy laid them (lookup.h) */
    return key_hash(key, HMM_SHAPE_KLEN(HMM_SLOT_SHAPE(s)));
}

int hmm__grow_move_slot_locked(hmm_t *m, uint32_t stripe, const struct hmm_ix *old, uint64_t word_old,
                               hmm_atomic_u64 *slot)
{
    /* A helper decoded the words without a lock: if the growth ended
     * since, the old run may be freed and reused, and this "slot" is
     * someone's data (FORMAT.md §10).  Holding the stripe lock, a word
     * still current stays so until we let go (the second barrier). */
    if (atomic_load(&m->hdr->index_old) != word_old)
        return 0;
    uint64_t s = atomic_load(slot);
    /* Slots of the old index are only cleared or updated in place by their
     * key's stripe, so one that changed stripe is gone, not ours. */
    if (s == 0 || (HMM_SLOT_TAG(s) & m->stripe_mask) != stripe)
        return 0;
    uint64_t off = HMM_SLOT_OFF(s);
    const struct hmm_cell *from = copy_of_slot(old, s, slot);
    struct hmm_entry *e = NULL;
    uint64_t hash = from ? cell_key_hash(from, s) : 0;
    if (!from || hash_tag(hash) != HMM_SLOT_TAG(s)) { /* no copy, or a damaged one: the chunk decides */
        from = NULL;
        e = hmm__entry_whole_at(m, off);
        if (!e)
            return hmm_fail(HMM_CORRUPT, "%s: index slot points outside the map", m->path);
        hash = key_hash(entry_key(e), e->klen);
    }
    struct hmm_ix cur, ignored;
    int rc = index_views(m, &cur, &ignored);
    if (rc)
        return rc;
    struct hmm_stripe *st = &m->stripes[stripe];
    struct hmm_intent *in = &st->intent;
    atomic_store_explicit(&in->hash, hash, memory_order_relaxed);
    atomic_store_explicit(&in->new_off, off, memory_order_relaxed);
    atomic_store_explicit(&in->op, HMM_OP_MOVE, memory_order_release);
    hmm__seq_begin_free(st);
    unsigned passed;
    hmm_atomic_u64 *moved_to;
    rc = hmm__index_insert_locked(m, &cur, hash, off, &passed, &moved_to);
    if (rc == 0) {
        if (from)
            hmm__cell_copy_cell_locked(moved_to, from);
        else if (ix_cells(&cur))
            hmm__cell_copy_locked(moved_to, e);
        HMM_CRASHPOINT("moved");
        hmm__index_remove_locked(m, old, hash, slot);
    }
    hmm__seq_end_free(st);
    atomic_store_explicit(&in->new_off, 0, memory_order_relaxed);
    atomic_store_explicit(&in->op, HMM_OP_NONE, memory_order_release);
    return rc;
}

void hmm__grow_recover_move_locked(hmm_t *m, uint32_t stripe)
{
    struct hmm_intent *in = &m->stripes[stripe].intent;
    uint64_t hash = atomic_load(&in->hash), off = atomic_load(&in->new_off);
    struct hmm_ix cur, old;
    if (!off || index_views(m, &cur, &old) != 0)
        return;
    /* In both: the mover died between insert and remove; in one: nothing to do. */
    hmm_atomic_u64 *in_old = hmm__index_slot_of_locked(&old, hash, off);
    if (in_old && hmm__index_slot_of_locked(&cur, hash, off))
        hmm__index_remove_locked(m, &old, hash, in_old);
    atomic_store(&in->new_off, 0);
}

static int drain_bucket(hmm_t *m, const struct hmm_ix *old, uint64_t word_old, uint64_t b)
{
    for (unsigned j = 0; j < ix_slots(old); j++) {
        hmm_atomic_u64 *slot = ix_slot(old, b, j);
        uint64_t s = atomic_load(slot);
        if (s == 0)
            continue;
        uint32_t stripe = HMM_SLOT_TAG(s) & m->stripe_mask;
        int rc = hmm__lock_stripe(m, stripe);
        if (rc)
            return rc;
        rc = hmm__grow_move_slot_locked(m, stripe, old, word_old, slot);
        hmm__unlock_stripe(m, stripe);
        if (rc)
            return rc;
    }
    return 0;
}

/* Take and release every stripe lock in turn: whoever held one with the
 * index words it had decoded has let go (FORMAT.md §10, growth steps 1 and
 * 4).  With fence, also make each stripe's seq odd and even while holding
 * it, so a lock-free reader whose get overlapped the retirement retries. */
static int stripes_barrier(hmm_t *m, bool fence)
{
    for (uint32_t i = 0; i <= m->stripe_mask; i++) {
        int rc = hmm__lock_stripe(m, i);
        if (rc)
            return rc;
        if (fence) {
            hmm__seq_begin_free(&m->stripes[i]);
            hmm__seq_end_free(&m->stripes[i]);
            if (i == 0)
                HMM_CRASHPOINT("index_fenced");
        }
        hmm__unlock_stripe(m, i);
    }
    return 0;
}

void hmm__index_runs_free_retired_locked(hmm_t *m)
{
    uint64_t keep = HMM_INDEX_PAGE(atomic_load(&m->hdr->index_cur));
    uint64_t wo = atomic_load(&m->hdr->index_old);
    uint64_t npages = map_npages(m);
    for (uint64_t p = 0; p < npages; p++) {
        uint64_t v = atomic_load(&m->pagetab[p]);
        if (HMM_PAGE_KIND(v) != HMM_PAGE_INDEX_HEAD || p == keep || (wo && p == HMM_INDEX_PAGE(wo)))
            continue;
        /* The head first: tails no head covers are the page lock's repair. */
        uint64_t n = HMM_PAGE_ARG(v);
        atomic_store(&m->pagetab[p], 0);
        for (uint64_t i = 1; i < n && p + i < npages; i++)
            atomic_store(&m->pagetab[p + i], 0);
        atomic_fetch_sub(&m->hdr->index_pages, n);
    }
}

int hmm__grow_index_finish(hmm_t *m)
{
    int rc = hmm__lock_grow(m);
    if (rc)
        return rc;
    /* The grow lock keeps index_old as it is until we change it. */
    struct hmm_ix old = {0};
    uint64_t word_old = atomic_load(&m->hdr->index_old);
    if (word_old && word_old != atomic_load(&m->hdr->index_cur))
        rc = index_view(m, word_old, &old);
    if (rc == 0 && old.nb) {
        rc = stripes_barrier(m, false);
        for (uint64_t b = 0; rc == 0 && b < old.nb; b++)
            rc = drain_bucket(m, &old, word_old, b);
        if (rc == 0) {
            atomic_store_explicit(&m->hdr->index_old, 0, memory_order_release);
            atomic_fetch_add_explicit(&m->hdr->generation, 1, memory_order_release);
            HMM_CRASHPOINT("index_retired");
            rc = stripes_barrier(m, true);
        }
        if (rc == 0 && (rc = hmm__lock_pages(m)) == 0) {
            hmm__index_runs_free_retired_locked(m);
            hmm__unlock_pages(m);
        }
    }
    hmm__unlock_grow(m);
    return rc;
}

void hmm__grow_index_help(hmm_t *m)
{
    struct hmm_ix old;
    uint64_t word_old = atomic_load(&m->hdr->index_old);
    if (word_old == 0 || word_old == atomic_load(&m->hdr->index_cur) || index_view(m, word_old, &old) != 0)
        return;
    HMM_CRASHPOINT("drain_viewed");
    /* The same number of slots a write in either format: format 2's
     * buckets hold 2, format 1's 7. */
    unsigned buckets = HELP_BUCKETS * HMM_BUCKET_SLOTS / ix_slots(&old);
    for (unsigned i = 0; i < buckets; i++) {
        uint64_t b = atomic_fetch_add(&m->hdr->migrate_next, 1);
        if (b >= old.nb) {
            /* Every bucket was claimed; the finisher rescans for buckets
             * whose claimant died before draining them. */
            hmm__grow_index_finish(m);
            return;
        }
        if (drain_bucket(m, &old, word_old, b) != 0)
            return;
    }
}
