/*
 * check.c - hmm_check(): verify (and optionally repair) the whole map.
 *
 * With a writable handle every stripe lock is taken first, in order (writers
 * hold one stripe at a time, so this cannot deadlock), then each class lock
 * and the page-table lock once (repairing an allocator that died holding
 * one), which makes the check exact: no operation is in flight.  A read-only handle cannot lock; its
 * check is a snapshot and may count a chunk of an in-flight put as
 * unreachable, or a free-list head or spare an in-flight put is taking as
 * a bad slot.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

struct check_ctx {
    hmm_t *m;
    bool repair;
    hmm_check_result *res;
    uint64_t *reach;             /* sorted offsets of reachable entries */
    size_t nreach, capreach;
    uint64_t *listed;            /* sorted offsets of chunks on free lists */
    size_t nlisted, caplisted;
    int64_t *stripe_items, *stripe_bytes;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool is_reachable(const struct check_ctx *cx, uint64_t off)
{
    return cx->nreach && bsearch(&off, cx->reach, cx->nreach, sizeof off, cmp_u64) != NULL;
}

/* Is the slot's entry whole, LIVE, checksummed, filed under its own hash? */
static bool slot_entry_valid(hmm_t *m, const struct hmm_ix *ix, uint64_t b, uint64_t s)
{
    uint64_t off = HMM_SLOT_OFF(s);
    struct hmm_entry *e = hmm__entry_whole_at(m, off);
    if (!e || hmm__slab_chunk_size(m, off) < entry_bytes(e->klen, e->vlen))
        return false;
    if (atomic_load(&e->state) != HMM_CHUNK_LIVE && atomic_load(&e->state) != HMM_CHUNK_RETIRING)
        return false;
    uint64_t h = key_hash(entry_key(e), e->klen);
    if (hash_tag(h) != HMM_SLOT_TAG(s))
        return false;
    uint64_t home = hash_home(ix, h);
    uint64_t dist = b >= home ? b - home : b + ix->nb - home;
    return dist < HMM_MAX_PROBE && hmm__entry_checksum(e) == e->checksum;
}

/* Format 2: does the copy in slot s's cell equal entry e? */
static bool cell_copy_valid(const hmm_atomic_u64 *slot, uint64_t s, const struct hmm_entry *e)
{
    unsigned shape = HMM_SLOT_SHAPE(s);
    const struct hmm_cell *c = (const struct hmm_cell *)(const void *)slot;
    uint64_t key[2] = {0, 0}, val = 0;
    if (!(shape & HMM_SHAPE_COPY) || e->expire_ms || HMM_SHAPE_KLEN(shape) != e->klen ||
        HMM_SHAPE_VLEN(shape) != e->vlen)
        return false;
    memcpy(key, entry_key((struct hmm_entry *)e), e->klen);
    memcpy(&val, entry_val((struct hmm_entry *)e), e->vlen);
    return atomic_load(&c->key[0]) == key[0] && atomic_load(&c->key[1]) == key[1] && atomic_load(&c->val) == val;
}

static int check_index(struct check_ctx *cx, const struct hmm_ix *ix)
{
    hmm_t *m = cx->m;
    for (uint64_t b = 0; b < ix->nb; b++) {
        for (unsigned j = 0; j < ix_slots(ix); j++) {
            hmm_atomic_u64 *slot = ix_slot(ix, b, j);
            uint64_t s = atomic_load(slot);
            if (s == 0)
                continue;
            if (!slot_entry_valid(m, ix, b, s)) {
                bool in_bounds = hmm__entry_whole_at(m, HMM_SLOT_OFF(s)) != NULL;
                if (in_bounds)
                    cx->res->bad_entries++;
                else
                    cx->res->bad_slots++;
                if (cx->repair) {
                    /* The chunk, if it is one, is freed below as unreachable. */
                    atomic_store(slot, 0);
                    cx->res->repaired++;
                }
                continue;
            }
            struct hmm_entry *e = entry_at(m, HMM_SLOT_OFF(s));
            if (HMM_SLOT_SHAPE(s) && (!ix_cells(ix) || !cell_copy_valid(slot, s, e))) {
                /* A copy that is not its entry's (gets would return it), or
                 * shape bits in a format-1 slot, where they are always 0. */
                cx->res->bad_slots++;
                if (cx->repair) {
                    atomic_store(slot, HMM_SLOT_BARE(s));
                    cx->res->repaired++;
                }
            }
            uint32_t stripe = HMM_SLOT_TAG(s) & m->stripe_mask;
            cx->stripe_items[stripe]++;
            cx->stripe_bytes[stripe] += (int64_t)entry_bytes(e->klen, e->vlen);
            cx->res->entries++;
            if (cx->nreach == cx->capreach) {
                size_t cap = cx->capreach ? cx->capreach * 2 : 4096;
                uint64_t *nr = realloc(cx->reach, cap * sizeof *nr);
                if (!nr)
                    return hmm_fail(-ENOMEM, "%s: check: no memory for %zu reachable offsets", m->path, cap);
                cx->reach = nr;
                cx->capreach = cap;
            }
            cx->reach[cx->nreach++] = HMM_SLOT_OFF(s);
        }
    }
    return 0;
}

static void check_chunk(struct check_ctx *cx, uint64_t off)
{
    struct hmm_entry *e = entry_at(cx->m, off);
    if (!e || atomic_load(&e->state) == HMM_CHUNK_FREE || is_reachable(cx, off))
        return;
    cx->res->unreachable++;
    if (cx->repair) {
        hmm_atomic_u64 scratch = off;
        if (hmm__slab_free(cx->m, 0, off, &scratch) == 0)
            cx->res->repaired++;
    }
}

static void check_pages(struct check_ctx *cx)
{
    hmm_t *m = cx->m;
    uint64_t npages = map_npages_mapped(m);
    for (uint64_t p = 0; p < npages; p++) {
        uint64_t v = atomic_load(&m->pagetab[p]);
        uint64_t start = map_page_off(m, p);
        if (HMM_PAGE_KIND(v) == HMM_PAGE_RUN_HEAD) {
            check_chunk(cx, start);
        } else if (HMM_PAGE_KIND(v) == HMM_PAGE_CLASS && HMM_PAGE_ARG(v) < m->nclasses) {
            uint32_t cls = (uint32_t)HMM_PAGE_ARG(v);
            uint32_t size = m->class_size[cls];
            uint64_t end = start + (m->page_size / size) * size, from, stop;
            if (hmm__class_uncarved(m, cls, &from, &stop) && from >= start && from < end)
                end = from; /* chunks past the carve pointer were never handed out */
            for (uint64_t off = start; off + size <= end; off += size)
                check_chunk(cx, off);
        }
    }
}

static bool remember_listed(struct check_ctx *cx, uint64_t off)
{
    if (cx->nlisted == cx->caplisted) {
        size_t cap = cx->caplisted ? cx->caplisted * 2 : 4096;
        uint64_t *nl = realloc(cx->listed, cap * sizeof *nl);
        if (!nl)
            return false;
        cx->listed = nl;
        cx->caplisted = cap;
    }
    cx->listed[cx->nlisted++] = off;
    return true;
}

/* Every chunk on a free list must be FREE and unreachable: a live entry on
 * a list would be handed out again while in use.  Repair cuts the list
 * before such a chunk (what follows is leaked, never used twice). */
static int walk_free_list(struct check_ctx *cx, uint32_t cls)
{
    hmm_t *m = cx->m;
    uint64_t bound = (map_npages(m) << m->page_shift) / (HMM_ENTRY_HDR + 8) + 1;
    hmm_atomic_u64 *link = &m->classes[cls].free_head;
    uint64_t off = atomic_load(link);
    for (uint64_t n = 0; off && n < bound; n++) {
        struct hmm_entry *e = entry_at(m, off);
        if (!e || atomic_load(&e->state) != HMM_CHUNK_FREE || is_reachable(cx, off)) {
            cx->res->bad_slots++;
            if (cx->repair) {
                atomic_store(link, 0);
                cx->res->repaired++;
            }
            break;
        }
        cx->res->free_chunks++;
        if (!remember_listed(cx, off))
            return hmm_fail(-ENOMEM, "%s: check: no memory for the free-list offsets", m->path);
        link = chunk_next(m, off);
        off = atomic_load(link);
    }
    return 0;
}

static int check_free_lists(struct check_ctx *cx)
{
    hmm_t *m = cx->m;
    int rc = 0;
    for (uint32_t cls = 0; rc == 0 && cls < m->nclasses; cls++) {
        /* Locking repairs a list whose allocator died mid-unlink. */
        bool locked = !m->rdonly && hmm__lock_class(m, cls) == 0;
        rc = walk_free_list(cx, cls);
        if (locked)
            hmm__unlock_class(m, cls);
    }
    if (rc == 0 && cx->nlisted)
        qsort(cx->listed, cx->nlisted, sizeof *cx->listed, cmp_u64);
    return rc;
}

/* A stripe's spare (FORMAT.md §8) is a FREE chunk of its class that
 * nothing else owns: not reachable, not on a free list. */
static void check_spares(struct check_ctx *cx)
{
    hmm_t *m = cx->m;
    for (uint32_t t = 0; t <= m->stripe_mask; t++) {
        hmm_atomic_u64 *spare = &m->stripes[t].spare;
        uint64_t w = atomic_load(spare);
        if (w == 0)
            continue;
        uint64_t off = HMM_SPARE_OFF(w);
        uint32_t cls = HMM_SPARE_CLASS(w);
        bool ok = cls < m->nclasses && hmm__slab_valid_chunk(m, cls, off) &&
                  atomic_load(&((struct hmm_entry *)(m->base + off))->state) == HMM_CHUNK_FREE &&
                  !is_reachable(cx, off) &&
                  !(cx->nlisted && bsearch(&off, cx->listed, cx->nlisted, sizeof off, cmp_u64));
        if (ok) {
            cx->res->free_chunks++;
            continue;
        }
        cx->res->bad_slots++;
        if (cx->repair) {
            atomic_store(spare, 0);
            cx->res->repaired++;
        }
    }
}

/* An allocator killed holding a class lock (or the page table's) can leave
 * a chunk marked WRITING at the head of the free list, or at the carve
 * pointer, that no intent names: only the repair that the lock's next
 * holder runs (hmm__recover_class_locked) knows it is still free.  Taking
 * each lock once runs those repairs before the pages are walked, or the
 * walk takes that chunk for a leaked one, and a repair links it into the
 * list it already heads (a loop: every later allocation of the class
 * fails).  With every stripe lock held nobody allocates afterwards, so the
 * states stay as repaired for the walk.  Lock order: stripe, class, pages. */
static int repair_dead_allocators(hmm_t *m)
{
    for (uint32_t cls = 0; cls < m->nclasses; cls++) {
        int rc = hmm__lock_class(m, cls);
        if (rc)
            return rc;
        hmm__unlock_class(m, cls);
    }
    int rc = hmm__lock_pages(m);
    if (rc == 0)
        hmm__unlock_pages(m);
    return rc;
}

/* One walk of the whole map; the caller has cleared res. */
static int check_walk(hmm_t *m, bool repair, hmm_check_result *res)
{
    uint32_t nstripes = m->stripe_mask + 1;
    struct check_ctx cx = {.m = m, .repair = repair, .res = res};
    cx.stripe_items = calloc(nstripes, sizeof *cx.stripe_items);
    cx.stripe_bytes = calloc(nstripes, sizeof *cx.stripe_bytes);
    int rc = cx.stripe_items && cx.stripe_bytes
                 ? 0
                 : hmm_fail(-ENOMEM, "%s: check: no memory for %u stripes' counts", m->path, nstripes);
    uint32_t locked = 0;
    bool grow_locked = false;
    if (!m->rdonly && rc == 0) {
        hmm__proc_slot_ensure(m);
        /* No index growth starts or finishes while we look. */
        rc = hmm__lock_grow(m);
        grow_locked = rc == 0;
        while (rc == 0 && locked < nstripes) {
            rc = hmm__lock_stripe(m, locked);
            if (rc == 0)
                locked++;
        }
        if (rc == 0)
            rc = repair_dead_allocators(m);
    }
    struct hmm_ix cur, old;
    if (rc == 0)
        rc = index_views(m, &cur, &old);
    if (rc == 0)
        rc = check_index(&cx, &cur);
    if (rc == 0)
        rc = check_index(&cx, &old);
    if (rc == 0 && cx.nreach)
        qsort(cx.reach, cx.nreach, sizeof *cx.reach, cmp_u64);
    if (rc == 0) {
        check_pages(&cx);
        rc = check_free_lists(&cx);
    }
    if (rc == 0) {
        check_spares(&cx);
        if (repair)
            for (uint32_t s = 0; s < nstripes; s++) {
                m->stripes[s].items = cx.stripe_items[s];
                m->stripes[s].bytes_used = cx.stripe_bytes[s];
            }
    }
    while (locked > 0)
        hmm__unlock_stripe(m, --locked);
    if (grow_locked)
        hmm__unlock_grow(m);
    free(cx.reach);
    free(cx.listed);
    free(cx.stripe_items);
    free(cx.stripe_bytes);
    return rc;
}

/* What a write changes, summed: a stripe's seq (every free), gauges
 * (every insert, delete or resize) and intent (a write in flight), the
 * index words, the drain position (slots moving from the old index to the
 * new one) and the page count (growth).  A read-only check cannot lock
 * the writers out, so it trusts what it found only if this did not move
 * while it walked and no write was in flight at its end (in_flight: some
 * stripe's intent names an operation; a writer paused mid-write by the
 * scheduler moves nothing, yet its new chunk is not reachable yet). */
static uint64_t write_stamp(hmm_t *m, bool *in_flight)
{
    *in_flight = false;
    uint64_t h = atomic_load(&m->hdr->index_cur) * 31 + atomic_load(&m->hdr->index_old) * 7 +
                 atomic_load(&m->hdr->migrate_next) * 17 + atomic_load(&m->hdr->generation) * 19 +
                 atomic_load(&m->hdr->npages);
    for (uint32_t s = 0; s <= m->stripe_mask; s++) {
        struct hmm_stripe *st = &m->stripes[s];
        h = h * 1000003 + atomic_load(&st->seq) + (uint64_t)*(volatile int64_t *)&st->items * 3 +
            (uint64_t)*(volatile int64_t *)&st->bytes_used * 5 + atomic_load(&st->intent.hash) +
            atomic_load(&st->intent.new_off) * 11 + atomic_load(&st->intent.old_off) * 13;
        *in_flight |= atomic_load(&st->intent.op) != HMM_OP_NONE;
    }
    return h;
}

/* Read-only walks tried before a busy map is called busy. */
#define CHECK_RDONLY_TRIES 5

/* A repair frees unreachable chunks and clears bad slots.  A writable
 * check has repaired every dead writer's work before it walks (it took
 * every lock), so what is left is damage, and damage to a few entries is
 * what a repair is for.  When more looks damaged than whole, the index
 * itself more likely is (a bucket count in the header that is not its
 * run's: the entries are whole, the index looks in the wrong places), and
 * a repair would free the map's data.  A dry walk goes first and such a
 * repair is refused. */
#define REPAIR_DAMAGE_FLOOR 64
static bool repair_would_free_the_data(const hmm_check_result *dry)
{
    uint64_t damage = dry->unreachable + dry->bad_slots + dry->bad_entries;
    return damage > REPAIR_DAMAGE_FLOOR && damage > dry->entries;
}

HMM_EXPORT int hmm_check(hmm_t *m, unsigned flags, hmm_check_result *res)
{
    hmm_check_result scratch;
    hmm__error_clear();
    if (!m)
        return hmm_fail(-EINVAL, "hmm_check: NULL handle");
    if (!res)
        res = &scratch;
    bool repair = (flags & HMM_CHECK_REPAIR) != 0;
    if (repair && m->rdonly)
        return hmm_fail(-EBADF, "%s: repair needs a writable map", m->path);
    int rc = hmm__map_refresh_limit(m); /* a truncated file: refuse, not SIGBUS */
    if (rc)
        return rc;
    if (repair) {
        memset(res, 0, sizeof *res);
        if ((rc = check_walk(m, false, res)) != 0)
            return rc;
        if (repair_would_free_the_data(res))
            return hmm_fail(HMM_CORRUPT,
                            "%s: %llu entries unreachable, %llu bad and %llu bad slots against %llu "
                            "reachable: more looks damaged than whole, so the index itself more likely is "
                            "(its bucket count in the header?); not repairing, nothing was changed",
                            m->path, (unsigned long long)res->unreachable, (unsigned long long)res->bad_entries,
                            (unsigned long long)res->bad_slots, (unsigned long long)res->entries);
    }
    uint64_t problems = 0;
    for (int attempt = 1;; attempt++) {
        memset(res, 0, sizeof *res);
        bool in_flight = false;
        uint64_t before = m->rdonly ? write_stamp(m, &in_flight) : 0;
        if ((rc = check_walk(m, repair, res)) != 0)
            return rc;
        problems = res->bad_entries + res->bad_slots + res->unreachable;
        if (!m->rdonly || problems == 0 || (write_stamp(m, &in_flight) == before && !in_flight))
            break;
        /* Writers moved under the walk: what it found may be writes in
         * flight (a chunk allocated, not yet published), not damage. */
        if (attempt == CHECK_RDONLY_TRIES)
            return hmm_fail(HMM_BUSY, "%s: writers changed the map during each of %d read-only checks, which saw "
                            "%llu problems that may be writes in flight (or the work of a writer that died "
                            "mid-write); check on a writable handle (it holds the writers off and repairs "
                            "the dead) or when the map is idle", m->path, CHECK_RDONLY_TRIES,
                            (unsigned long long)problems);
        usleep(1000u * (unsigned)attempt);
    }
    if (problems > res->repaired)
        return hmm_fail(HMM_CORRUPT, "%s: %llu problems found", m->path,
                        (unsigned long long)(problems - res->repaired));
    return hmm__result(0); /* a dead holder repaired while taking the locks leaves no detail */
}
