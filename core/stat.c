/*
 * stat.c - hmm_stat(): sizes from the header, gauges summed over stripes.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "core/internal.h"

uint64_t hmm__items_total(hmm_t *m)
{
    int64_t items = 0;
    for (uint32_t i = 0; i <= m->stripe_mask; i++)
        items += *(volatile int64_t *)&m->stripes[i].items;
    return items > 0 ? (uint64_t)items : 0;
}

HMM_EXPORT int hmm_stat(hmm_t *m, hmm_stats *st)
{
    hmm__error_clear();
    if (!m || !st)
        return hmm_fail(-EINVAL, "hmm_stat: NULL handle or stats");
    memset(st, 0, sizeof *st);
    /* A writer killed holding its stripe may have published its change and
     * not yet counted it: the gauges move last (FORMAT.md §8), and only the
     * stripe's repair recounts them.  A writable handle repairs dead
     * processes' locks first, so a delete that died after its publish is
     * not still counted as an item. */
    if (!m->rdonly && hmm__proc_slot_ensure(m) == 0)
        hmm__proc_repair_dead_locks(m);
    int64_t bytes = 0;
    for (uint32_t i = 0; i <= m->stripe_mask; i++)
        bytes += m->stripes[i].bytes_used;
    uint64_t npages = map_npages(m);
    uint64_t index_pages = 0;
    for (uint64_t p = 0; p < npages; p++) {
        unsigned kind = HMM_PAGE_KIND(atomic_load_explicit(&m->pagetab[p], memory_order_relaxed));
        index_pages += kind == HMM_PAGE_INDEX_HEAD || kind == HMM_PAGE_INDEX_TAIL;
    }
    st->items = hmm__items_total(m);
    st->bytes_used = bytes > 0 ? (uint64_t)bytes : 0;
    st->bytes_total = (npages - index_pages) << m->page_shift;
    st->size = m->hdr->size;
    st->max_size = m->hdr->max_size;
    st->file_size = m->data_off + (npages << m->page_shift);
    struct hmm_ix cur, old;
    if (index_views(m, &cur, &old) == 0) {
        st->index_buckets = cur.nb;
        st->index_slots = cur.nb * ix_slots(&cur);
    }
    st->generation = atomic_load(&m->hdr->generation);
    st->recoveries = atomic_load(&m->hdr->recoveries);
    st->default_ttl_ms = m->default_ttl_ms;
    st->max_key = HMM_MAX_KEY;
    st->max_value = m->max_value;
    st->page_size = m->page_size;
    st->nstripes = m->stripe_mask + 1;
    st->nclasses = m->nclasses;
    st->nprocs = hmm__procs_alive(m); /* not the dead entries no open has reaped yet */
    st->format_version = m->hdr->format_version;
    st->created_ms = m->hdr->created_ms;
    st->flags = m->flags;
    if (!m->mslots) /* hmm__metrics_open left counting off: the zeros below mean nothing */
        st->flags |= HMM_STAT_NOMETRICS;
    hmm__metrics_sum(m, st->counters);
    /* hits are not counted on the hot path; recoveries live in the map header. */
    uint64_t gets = st->counters[HMM_C_GETS], misses = st->counters[HMM_C_MISSES];
    st->counters[HMM_C_HITS] = gets > misses ? gets - misses : 0;
    st->counters[HMM_C_RECOVERIES] = st->recoveries;
    return 0;
}

HMM_EXPORT int hmm_stat_classes(hmm_t *m, hmm_class_stats *out, size_t cap, size_t *n)
{
    hmm__error_clear();
    if (!m || !n || (!out && cap))
        return hmm_fail(-EINVAL, "hmm_stat_classes: NULL handle or count, or NULL array with a capacity");
    for (uint32_t c = 0; c < m->nclasses && c < cap; c++) {
        const struct hmm_class *cl = &m->classes[c];
        out[c] = (hmm_class_stats){
            .chunk_size = m->class_size[c],
            .pages = cl->pages,
            .chunks_used = cl->chunks_used,
            .chunks_total = cl->pages * (m->page_size / m->class_size[c]),
        };
    }
    /* The class counts a chunk kept as a stripe's spare as handed out;
     * it holds no entry (FORMAT.md §8). */
    for (uint32_t t = 0; t <= m->stripe_mask; t++) {
        uint64_t w = atomic_load_explicit(&m->stripes[t].spare, memory_order_relaxed);
        uint32_t c = HMM_SPARE_CLASS(w);
        if (w && c < m->nclasses && c < cap && out[c].chunks_used > 0)
            out[c].chunks_used--;
    }
    *n = m->nclasses;
    return 0;
}
