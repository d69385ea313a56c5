/*
 * header.c - every field of the map header checked against the others
 * (FORMAT.md §3, "Range table").
 *
 * The rest of the code trusts what this file accepts: geometry (offsets,
 * page size, class sizes) is recomputed from the creation parameters and
 * must match exactly; counters that change at run time (npages, the index
 * words) must lie inside what the geometry allows.  Values that processes
 * change while others open the map are only range-checked here, and every
 * use of them is checked again (hmm_at, hmm__slab_valid_chunk).  A field outside
 * its range is HMM_CORRUPT (HMM_INCOMPAT for identity fields) with the
 * field's name in the detail, never a signal later.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "core/internal.h"
#include "core/crashpoint.h"

/* Creation flags a header may carry (FORMAT.md §3). */
#define HEADER_FLAGS (HMM_CACHE | HMM_NOREPLOG | HMM_INLINE)

static int header_check_identity(const hmm_t *m, const struct hmm_header *h)
{
    const char *p = m->path;
    if (memcmp(h->magic, HMM_MAGIC, 8) != 0)
        return hmm_fail(HMM_CORRUPT, "%s: not a hashmmap map (bad magic)", p);
    if (h->byte_order != HMM_BYTE_ORDER_MARK)
        return hmm_fail(HMM_INCOMPAT, "%s: made on a host of another byte order", p);
    if (!hmm__format_known(h->format_version))
        return hmm_fail(HMM_INCOMPAT,
                        "%s: format version %u, this library reads versions %u to %u (migrate with "
                        "'hashmmap dump' of the old tools and 'hashmmap load' of these)",
                        p, h->format_version, HMM_FORMAT_OLD_PAGES, HMM_FORMAT_CELLS);
    /* Versions 2 and 4 are maps made with HMM_INLINE, and only such maps. */
    if (hmm__format_cells(h->format_version) != ((h->flags & HMM_INLINE) != 0) ||
        (h->flags & HMM_INLINE && h->flags & HMM_CACHE))
        return hmm_fail(HMM_CORRUPT, "%s: header fields format_version (%u) and flags (0x%x) disagree", p,
                        h->format_version, h->flags);
    if (h->word_size != sizeof(void *))
        return hmm_fail(HMM_INCOMPAT, "%s: made on a %u-bit host", p, h->word_size * 8);
    if (h->layout_sig != hmm__layout_signature())
        return hmm_fail(HMM_INCOMPAT, "%s: made by a build with another structure layout", p);
    return 0;
}

/* Geometry: recomputed from size, max_size, max_value and the slab factor,
 * it must match every stored offset and size. */
static int header_check_geometry(const hmm_t *m, const struct hmm_header *h, struct hmm_geometry *g)
{
    const char *p = m->path;
    if (h->flags & ~HEADER_FLAGS)
        return hmm_fail(HMM_CORRUPT, "%s: header field flags has unknown bits 0x%x", p,
                        h->flags & ~HEADER_FLAGS);
    if (h->replog_size > HMM_REPLOG_MAX_CAPACITY)
        return hmm_fail(HMM_CORRUPT, "%s: header field replog_size %llu is over %llu", p,
                        (unsigned long long)h->replog_size, (unsigned long long)HMM_REPLOG_MAX_CAPACITY);
    hmm_config cfg = {.size = h->size, .max_size = h->max_size, .max_value = h->max_value,
                      .slab_factor_pct = h->slab_factor_pct, .flags = h->flags & HMM_INLINE};
    /* A map of version 1 or 2 has the pages of the rule before 2026-12-05;
     * the rest of its geometry follows from them as from today's. */
    uint32_t pages = hmm__format_old_pages(h->format_version) ? hmm__page_size_before_20261205(h->size) : 0;
    if (h->size == 0 || h->max_value == 0 || h->slab_factor_pct == 0 || hmm__plan_geometry(&cfg, pages, g) != 0)
        return hmm_fail(HMM_CORRUPT, "%s: header fields size, max_size, max_value or slab_factor_pct "
                        "are out of range", p);
    if (g->size != h->size || g->max_size != h->max_size || g->max_value != h->max_value ||
        g->page_size != h->page_size || g->proc_off != h->proc_off || g->stripe_off != h->stripe_off ||
        g->class_off != h->class_off || g->pagetab_off != h->pagetab_off || g->data_off != h->data_off ||
        g->pagetab_cap != h->pagetab_cap || h->nstripes != HMM_NSTRIPES)
        return hmm_fail(HMM_CORRUPT, "%s: header geometry is inconsistent (offsets, page size or stripes)", p);
    if (h->index_buckets0 != 0 && h->index_buckets0 != g->index_buckets)
        return hmm_fail(HMM_CORRUPT, "%s: header field index_buckets0 %llu is not the %llu its size gives", p,
                        (unsigned long long)h->index_buckets0, (unsigned long long)g->index_buckets);
    uint32_t sizes[HMM_MAX_CLASSES];
    uint32_t n = hmm__slab_compute_classes(h->page_size, h->slab_factor_pct, sizes);
    if (n != h->nclasses || memcmp(sizes, h->class_size, n * sizeof sizes[0]) != 0)
        return hmm_fail(HMM_CORRUPT, "%s: header fields nclasses or class_size are inconsistent", p);
    return 0;
}

/* Run-time fields: only ranges here; their users check them again. */
static int header_check_counters(const hmm_t *m, struct hmm_header *h, const struct hmm_geometry *g,
                                 uint64_t file_size)
{
    const char *p = m->path;
    uint64_t npages = atomic_load(&h->npages);
    if (npages < g->index_pages + 1 || npages > h->pagetab_cap)
        return hmm_fail(HMM_CORRUPT, "%s: header field npages %llu is out of range", p,
                        (unsigned long long)npages);
    uint64_t need = h->data_off + (npages << g->page_shift);
    if (file_size < need)
        return hmm_fail(HMM_CORRUPT, "%s: truncated: %llu bytes, the header needs %llu", p,
                        (unsigned long long)file_size, (unsigned long long)need);
    if (atomic_load(&h->generation) == 0)
        return hmm_fail(HMM_CORRUPT, "%s: header field generation is 0", p);
    if (atomic_load(&h->index_pages) > npages)
        return hmm_fail(HMM_CORRUPT, "%s: header field index_pages is over npages", p);
    if (atomic_load(&h->pages_owner_proc) > HMM_PROCS || atomic_load(&h->grow_owner_proc) > HMM_PROCS)
        return hmm_fail(HMM_CORRUPT, "%s: header field pages_owner_proc or grow_owner_proc is out of range", p);
    return 0;
}

int hmm__header_validate(hmm_t *m, const union hmm_header_block *blk, uint64_t file_size)
{
    struct hmm_header *h = (struct hmm_header *)&blk->h;
    struct hmm_geometry g;
    int rc = header_check_identity(m, h);
    m->cells = hmm__format_cells(h->format_version); /* the index's geometry, needed by the checks below */
    if (rc == 0)
        rc = header_check_geometry(m, h, &g);
    if (rc == 0)
        rc = header_check_counters(m, h, &g, file_size);
    if (rc)
        return rc;
    m->page_size = h->page_size;
    m->page_shift = g.page_shift;
    m->data_off = h->data_off;
    m->pagetab_cap = h->pagetab_cap;
    m->stripe_mask = HMM_NSTRIPES - 1;
    m->nclasses = h->nclasses;
    memcpy(m->class_size, h->class_size, sizeof m->class_size);
    for (uint32_t i = 0; i < m->nclasses; i++)
        m->class_magic[i] = UINT64_MAX / m->class_size[i] + 1;
    m->max_value = h->max_value;
    m->flags = h->flags;
    m->default_ttl_ms = h->default_ttl_ms;
    m->reserve = h->data_off + (h->pagetab_cap << g.page_shift);
    atomic_store(&m->limit, h->data_off + (atomic_load(&h->npages) << g.page_shift));
    return 0;
}

/* A bucket count an index may have: the creation count doubled k times.
 * Any other count looks in the wrong buckets for every key while the run
 * still covers it (an open that took half the count hid 2 471 of 3 001
 * entries).  Maps made before index_buckets0 are not checked. */
static bool index_buckets_sane(const hmm_t *m, uint64_t nb)
{
    uint64_t b0 = m->hdr->index_buckets0;
    if (b0 == 0)
        return true;
    for (uint64_t b = b0; b <= UINT32_MAX; b *= 2)
        if (b == nb)
            return true;
    return false;
}

/* An index word names a run of pages holding at least its buckets, whose
 * head the page table marks as an index run (FORMAT.md §7). */
static bool index_word_sane(hmm_t *m, uint64_t word)
{
    uint64_t page = HMM_INDEX_PAGE(word), nb = HMM_INDEX_BUCKETS(word);
    uint64_t npages = map_npages(m);
    if (nb < HMM_MAX_PROBE || page >= npages || !index_buckets_sane(m, nb))
        return false;
    uint64_t pages = (hmm__index_run_bytes(nb, m->cells) + m->page_size - 1) >> m->page_shift;
    uint64_t head = atomic_load(&m->pagetab[page]);
    /* A run is allocated for exactly its count (map.c, grow.c): where the
     * count is checked, so is the run's length. */
    return pages <= npages - page && HMM_PAGE_KIND(head) == HMM_PAGE_INDEX_HEAD &&
           (m->hdr->index_buckets0 ? HMM_PAGE_ARG(head) == pages : HMM_PAGE_ARG(head) >= pages);
}

/* Index words the page table may no longer back: a growth that ended
 * after they were loaded freed their runs (FORMAT.md §10).  Words never
 * repeat, so words found unchanged after a failed check are damage. */
#define OPEN_INDEX_TRIES 64

int hmm__header_validate_mapped(hmm_t *m)
{
    for (int tries = 1;; tries++) {
        uint64_t cur = atomic_load(&m->hdr->index_cur), old = atomic_load(&m->hdr->index_old);
        HMM_CRASHPOINT("open_viewed");
        bool cur_ok = cur != 0 && index_word_sane(m, cur);
        bool old_ok = old == 0 || index_word_sane(m, old);
        if (cur_ok && old_ok)
            break;
        /* A run is freed only after the header stopped naming it (seq_cst
         * loads: a table entry seen freed comes with the words' change). */
        bool changed = atomic_load(&m->hdr->index_cur) != cur || atomic_load(&m->hdr->index_old) != old;
        if (changed && tries < OPEN_INDEX_TRIES)
            continue;
        if (!cur_ok)
            return hmm_fail(HMM_CORRUPT, "%s: header field index_cur 0x%llx names no index run", m->path,
                            (unsigned long long)cur);
        return hmm_fail(HMM_CORRUPT, "%s: header field index_old 0x%llx names no index run", m->path,
                        (unsigned long long)old);
    }
    for (uint32_t c = 0; c < m->nclasses; c++)
        if (m->classes[c].size != m->class_size[c])
            return hmm_fail(HMM_CORRUPT, "%s: class %u records chunk size %u, the header says %u", m->path, c,
                            m->classes[c].size, m->class_size[c]);
    return 0;
}
