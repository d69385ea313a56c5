/*
 * replog_read.c - reading the replication log (FORMAT.md §13):
 * hmm_replog_info, hmm_replog_open/next/close.
 *
 * A reader takes no lock and writes nothing (a writable handle may settle a
 * record whose writer died, which takes that writer's stripe lock).  It
 * copies a committed record, then checks after an acquire fence that the
 * record still carries its sequence number and that the ring's tail has not
 * passed it: a writer that lapped the reader during the copy is detected
 * (HMM_MISMATCH), never returned torn.  Every length and position read from
 * the ring is bounds-checked; a damaged log gives HMM_CORRUPT.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

struct hmm_replog_reader {
    hmm_t *m;
    uint64_t pos;               /* position of the next record to look at */
    uint64_t want;              /* its sequence number */
    uint8_t *buf;               /* private copy of the last record returned */
    uint64_t epoch;             /* its epoch */
    size_t cap;
};

static int no_log(hmm_t *m)
{
    if (m->flags & HMM_NOREPLOG)
        return hmm_fail(-ENOTSUP, "%s: the map was created without a replication log", m->path);
    return hmm_fail(-ENOENT, "%s: the replication log is missing or damaged", m->path);
}

HMM_EXPORT int hmm_replog_info(hmm_t *m, struct hmm_replog_info *info)
{
    hmm__error_clear();
    if (!m || !info)
        return hmm_fail(-EINVAL, "hmm_replog_info: NULL handle or info");
    if (!m->rhdr)
        return no_log(m);
    memset(info, 0, sizeof *info);
    memcpy(info->map_id, m->hdr->map_id, sizeof info->map_id);
    info->first_seq = atomic_load_explicit(&m->rhdr->first_seq, memory_order_acquire);
    info->last_seq = atomic_load_explicit(&m->rhdr->last_seq, memory_order_acquire);
    info->capacity = m->rcap;
    info->created_ms = m->rhdr->created_ms;
    return 0;
}

static bool lapped(hmm_t *m, uint64_t pos)
{
    return atomic_load_explicit(&m->rhdr->tail, memory_order_acquire) > pos;
}

/* Length of the record at pos if it is sane, else 0. */
static uint32_t rec_len(hmm_t *m, const struct hmm_replog_rec *r, uint64_t pos)
{
    uint64_t room = m->rcap - pos % m->rcap;
    uint32_t len = r->len;
    return len >= HMM_REPLOG_REC_HDR && len % 8 == 0 && len <= room ? len : 0;
}

/* Find the position of record from_seq by walking from the tail. */
static int locate(hmm_t *m, uint64_t from, uint64_t *pos_out)
{
    struct hmm_replog_header *h = m->rhdr;
    for (int attempt = 0; attempt < 16; attempt++) {
        uint64_t tail = atomic_load_explicit(&h->tail, memory_order_acquire);
        uint64_t first = atomic_load_explicit(&h->first_seq, memory_order_acquire);
        uint64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
        uint64_t next = atomic_load_explicit(&h->next_seq, memory_order_acquire);
        if (from < first)
            return hmm_fail(HMM_MISMATCH, "%s: sequence number %llu has left the replication log (oldest %llu)",
                            m->path, (unsigned long long)from, (unsigned long long)first);
        if (from > next)
            return hmm_fail(HMM_MISMATCH, "%s: sequence number %llu is newer than the replication log (next %llu)",
                            m->path, (unsigned long long)from, (unsigned long long)next);
        if (head < tail || head - tail > m->rcap || head % 8 || tail % 8)
            return hmm_fail(HMM_CORRUPT, "%s: replication log window is inconsistent", m->path);
        uint64_t p = tail;
        bool retry = false;
        while (p < head) {
            uint64_t off = p % m->rcap;
            if (m->rcap - off < HMM_REPLOG_REC_HDR) {
                p += m->rcap - off;
                continue;
            }
            struct hmm_replog_rec *r = (struct hmm_replog_rec *)(m->ring + off);
            uint64_t st = atomic_load_explicit(&r->state, memory_order_acquire);
            uint32_t len = rec_len(m, r, p);
            if (!len || lapped(m, p)) {
                retry = true; /* overwritten under us, or damaged: look again */
                break;
            }
            if (st != HMM__REC_PAD && HMM__REC_SEQ(st) >= from)
                break;
            p += len;
        }
        if (retry)
            continue;
        *pos_out = p;
        return 0;
    }
    return hmm_fail(HMM_CORRUPT, "%s: cannot find a sequence number in the replication log", m->path);
}

HMM_EXPORT int hmm_replog_open(hmm_t *m, uint64_t from_seq, hmm_replog_reader **out)
{
    hmm__error_clear();
    if (!m || !out)
        return hmm_fail(-EINVAL, "hmm_replog_open: NULL handle or reader pointer");
    *out = NULL;
    if (!m->rhdr)
        return no_log(m);
    uint64_t from = from_seq ? from_seq : 1;
    uint64_t pos = 0;
    int rc = locate(m, from, &pos);
    if (rc)
        return rc;
    hmm_replog_reader *r = calloc(1, sizeof *r);
    if (!r)
        return hmm_fail(-ENOMEM, "%s: no memory for a replication log reader", m->path);
    r->m = m;
    r->pos = pos;
    r->want = from;
    *out = r;
    return 0;
}

HMM_EXPORT void hmm_replog_close(hmm_replog_reader *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

static int reserve_buf(hmm_replog_reader *r, size_t len)
{
    if (len <= r->cap)
        return 0;
    uint8_t *b = realloc(r->buf, len);
    if (!b)
        return hmm_fail(-ENOMEM, "%s: no memory for a replication log record of %zu bytes", r->m->path, len);
    r->buf = b;
    r->cap = len;
    return 0;
}

/* A record whose writer has not committed yet: a writable handle settles
 * it when the writer is gone (0: look again), else the caller polls. */
static int uncommitted(hmm_replog_reader *r, const struct hmm_replog_rec *rec, uint64_t seq)
{
    hmm_t *m = r->m;
    if (m->rdonly)
        return HMM_NOTFOUND; /* a writer's open or lock repairs it */
    hmm__proc_slot_ensure(m);
    int rc = hmm__replog_settle(m, rec->stripe, r->pos, seq);
    if (rc == -EBUSY)
        return HMM_NOTFOUND;
    return rc;
}

/* Check the private copy of record seq and describe it in *out. */
static int decode(hmm_replog_reader *r, uint32_t len, uint64_t seq, hmm_replog_record *out)
{
    const struct hmm_replog_rec *c = (const struct hmm_replog_rec *)r->buf;
    if ((uint64_t)HMM_REPLOG_REC_HDR + c->klen + c->vlen > len || c->klen == 0 || c->klen > HMM_MAX_KEY ||
        (c->op != HMM_REC_PUT && c->op != HMM_REC_DEL) || (c->op == HMM_REC_DEL && c->vlen) ||
        hmm__replog_checksum(c, seq) != c->checksum)
        return hmm_fail(HMM_CORRUPT, "%s: replication log record %llu fails its checks", r->m->path,
                        (unsigned long long)seq);
    out->seq = seq;
    out->op = c->op;
    out->tag = c->tag;
    out->expire_ms = c->expire_ms;
    out->key = r->buf + HMM_REPLOG_REC_HDR;
    out->klen = c->klen;
    out->val = c->op == HMM_REC_PUT ? r->buf + HMM_REPLOG_REC_HDR + c->klen : NULL;
    out->vlen = c->vlen;
    r->epoch = c->epoch;
    return 0;
}

HMM_EXPORT int hmm_replog_next(hmm_replog_reader *r, hmm_replog_record *out)
{
    hmm__error_clear();
    if (!r || !out)
        return hmm_fail(-EINVAL, "hmm_replog_next: NULL reader or record");
    hmm_t *m = r->m;
    struct hmm_replog_header *h = m->rhdr;
    /* Every step moves pos on by at least 8 bytes or returns, so a damaged
     * log cannot keep a reader here for more than one lap. */
    for (uint64_t steps = 0; steps < m->rcap / 8 + 4; steps++) {
        uint64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
        if (r->pos == head)
            return HMM_NOTFOUND;
        if (r->pos > head || head - r->pos > m->rcap || head % 8 || lapped(m, r->pos))
            return hmm_fail(HMM_MISMATCH, "%s: the replication log wrapped past the reader", m->path);
        uint64_t off = r->pos % m->rcap;
        if (m->rcap - off < HMM_REPLOG_REC_HDR) {
            r->pos += m->rcap - off;
            continue;
        }
        struct hmm_replog_rec *rec = (struct hmm_replog_rec *)(m->ring + off);
        /* Acquire pairs with the writer's release CAS of the commit. */
        uint64_t st = atomic_load_explicit(&rec->state, memory_order_acquire);
        uint32_t len = rec_len(m, rec, r->pos);
        if (!len)
            return lapped(m, r->pos) ? hmm_fail(HMM_MISMATCH, "%s: the replication log wrapped past the reader", m->path)
                                     : hmm_fail(HMM_CORRUPT, "%s: replication log record length out of bounds", m->path);
        if (st == HMM__REC_PAD) {
            r->pos += len;
            continue;
        }
        uint64_t seq = HMM__REC_SEQ(st);
        if (seq != r->want)
            return lapped(m, r->pos) || seq > r->want
                       ? hmm_fail(HMM_MISMATCH, "%s: replication log holds %llu where %llu was expected", m->path,
                                  (unsigned long long)seq, (unsigned long long)r->want)
                       : hmm_fail(HMM_CORRUPT, "%s: replication log sequence numbers go backwards", m->path);
        if (st & HMM__REC_VOID) {
            r->pos += len;
            r->want++;
            continue;
        }
        if (st & HMM__REC_RESERVED) {
            int rc = uncommitted(r, rec, seq);
            if (rc)
                return rc;
            continue; /* settled: look at it again */
        }
        int rc = reserve_buf(r, len);
        if (rc)
            return rc;
        memcpy(r->buf, rec, len);
        /* The copy is good only if the record was not overwritten meanwhile:
         * the fence orders the copy before the second look (FORMAT.md §13). */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&rec->state, memory_order_relaxed) != st || lapped(m, r->pos))
            return hmm_fail(HMM_MISMATCH, "%s: the replication log wrapped past the reader", m->path);
        rc = decode(r, len, seq, out);
        if (rc)
            return rc;
        r->pos += len;
        r->want++;
        return hmm__result(0); /* a dead writer's record settled on the way leaves no detail */
    }
    return hmm_fail(HMM_CORRUPT, "%s: replication log holds no record where one should be", m->path);
}

HMM_EXPORT uint64_t hmm_replog_epoch(const hmm_replog_reader *r)
{
    return r ? r->epoch : 0;
}
