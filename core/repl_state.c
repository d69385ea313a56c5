/*
 * repl_state.c - small replication records besides the log (FORMAT.md §13,
 * §11): a replica's position in its primary's log (in the map header's
 * last line), the map's role and epoch (the two lines before it) and the
 * replication daemon's status (in the metrics header).
 *
 * Both are seqlocks: the writer makes seq odd (a CAS, so two writers never
 * interleave), stores the words, makes seq even with release; a reader
 * loads seq (acquire), the words, then seq again after an acquire fence,
 * and retries while it was odd or moved.  Readers write nothing, so they
 * work on read-only handles.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "core/internal.h"

_Static_assert(sizeof(hmm_repl_status) == 8 * HMM_REPL_STATUS_WORDS, "status is whole words");

#define READ_TRIES 10000 /* with a yield each: a writer left odd by a crash costs the reader milliseconds */

/* An odd seq that stays odd was left by a writer that died mid-write: after
 * a short wait the next writer takes it over (keeps it odd, rewrites every
 * word, makes it even), so a dead daemon never blocks its successor. */
#define TAKEOVER_TRIES 1000

static void seq_write_begin(hmm_atomic_u64 *seq)
{
    for (int i = 0;; i++) {
        uint64_t v = atomic_load_explicit(seq, memory_order_relaxed);
        if ((v & 1) && i >= TAKEOVER_TRIES)
            break;
        if (!(v & 1) && atomic_compare_exchange_weak_explicit(seq, &v, v + 1, memory_order_acquire,
                                                              memory_order_relaxed))
            break;
        sched_yield();
    }
    /* The odd value is visible before any word changes (pairs with the
     * reader's acquire fence before its second load). */
    atomic_thread_fence(memory_order_release);
}

static void seq_write_end(hmm_atomic_u64 *seq)
{
    uint64_t v = atomic_load_explicit(seq, memory_order_relaxed);
    atomic_store_explicit(seq, v + 1, memory_order_release);
}

/* Copy n words under seq; HMM_BUSY if a writer never let go (it died
 * mid-write; the next write repairs it). */
static int seq_read(hmm_atomic_u64 *seq, hmm_atomic_u64 *words, uint64_t *out, size_t n)
{
    for (int i = 0; i < READ_TRIES; i++) {
        uint64_t s1 = atomic_load_explicit(seq, memory_order_acquire);
        if (s1 & 1) {
            sched_yield();
            continue;
        }
        for (size_t w = 0; w < n; w++)
            out[w] = atomic_load_explicit(&words[w], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(seq, memory_order_relaxed) == s1)
            return 0;
    }
    return HMM_BUSY;
}

/* The start of every setter below: the last error cleared, the handle and
 * the other pointer arguments present (args_ok), the handle writable. */
static int setter_begin(hmm_t *m, bool args_ok, const char *fn, const char *what)
{
    hmm__error_clear();
    if (!m || !args_ok)
        return hmm_fail(-EINVAL, "%s: NULL %s", fn, what);
    if (m->rdonly)
        return hmm_fail(-EBADF, "%s: the map is open read-only", m->path);
    return 0;
}

/* ---- replica position ---- */

static struct hmm_replica_pos *position(hmm_t *m)
{
    return (struct hmm_replica_pos *)((uint8_t *)m->hdr + HMM_REPLICA_POS_OFF);
}

HMM_EXPORT int hmm_replica_position_get_with_digest(hmm_t *m, uint8_t primary_id[16], uint64_t *next_seq,
                                                    uint64_t *digest_seq, uint64_t *digest)
{
    hmm__error_clear();
    if (!m || !primary_id || !next_seq || !digest_seq || !digest)
        return hmm_fail(-EINVAL, "hmm_replica_position_get: NULL handle or out-pointer");
    struct hmm_replica_pos *p = position(m);
    uint64_t w[6];
    /* primary_id[0..1], next_seq, valid, digest_seq, digest are consecutive
     * words after seq: one seqlock read, so the proof belongs to next_seq. */
    if (seq_read(&p->seq, p->primary_id, w, 6) != 0)
        return hmm_fail(HMM_BUSY, "%s: replica position is being rewritten", m->path);
    if (w[3] != 1)
        return HMM_NOTFOUND;
    memcpy(primary_id, w, 16);
    *next_seq = w[2];
    *digest_seq = w[4];
    *digest = w[5];
    return 0;
}

HMM_EXPORT int hmm_replica_position_get(hmm_t *m, uint8_t primary_id[16], uint64_t *next_seq)
{
    uint64_t digest_seq, digest;
    return hmm_replica_position_get_with_digest(m, primary_id, next_seq, &digest_seq, &digest);
}

/* Whether storing next_seq for primary id raises the stored position past
 * a change applied through m that no completed sync covers (FORMAT.md §13,
 * replica position, what the library checks): such a position may reach
 * the disk before it.  Keeping or lowering next_seq names nothing new (a
 * proof written ahead, a snapshot's start).  Only the daemon writes the
 * position, so the relaxed reads of the words it wrote last are its own. */
static bool names_unsynced_changes(hmm_t *m, struct hmm_replica_pos *p, const uint64_t id[2], uint64_t next_seq)
{
    bool same = atomic_load_explicit(&p->valid, memory_order_relaxed) == 1 &&
                atomic_load_explicit(&p->primary_id[0], memory_order_relaxed) == id[0] &&
                atomic_load_explicit(&p->primary_id[1], memory_order_relaxed) == id[1];
    uint64_t stored = same ? atomic_load_explicit(&p->next_seq, memory_order_relaxed) : 0;
    return next_seq > stored && hmm__unsynced_below(m, next_seq);
}

/* Every word of the position in one seqlock write (FORMAT.md §13, replica
 * position, write order): a daemon killed in the middle leaves seq odd, and
 * readers get HMM_BUSY rather than a next_seq with another write's proof. */
HMM_EXPORT int hmm_replica_position_set_with_digest(hmm_t *m, const uint8_t primary_id[16], uint64_t next_seq,
                                                    uint64_t digest_seq, uint64_t digest)
{
    int rc = setter_begin(m, primary_id != NULL, "hmm_replica_position_set", "handle or primary id");
    if (rc)
        return rc;
    struct hmm_replica_pos *p = position(m);
    uint64_t id[2];
    memcpy(id, primary_id, 16);
    if (names_unsynced_changes(m, p, id, next_seq))
        metrics_add(m, HMM_C_UNSYNCED_POSITIONS, 1);
    seq_write_begin(&p->seq);
    atomic_store_explicit(&p->primary_id[0], id[0], memory_order_relaxed);
    atomic_store_explicit(&p->primary_id[1], id[1], memory_order_relaxed);
    atomic_store_explicit(&p->next_seq, next_seq, memory_order_relaxed);
    atomic_store_explicit(&p->valid, 1, memory_order_relaxed);
    atomic_store_explicit(&p->digest_seq, digest_seq, memory_order_relaxed);
    atomic_store_explicit(&p->digest, digest, memory_order_relaxed);
    seq_write_end(&p->seq);
    return 0;
}

HMM_EXPORT int hmm_replica_position_set(hmm_t *m, const uint8_t primary_id[16], uint64_t next_seq)
{
    return hmm_replica_position_set_with_digest(m, primary_id, next_seq, 0, 0);
}

HMM_EXPORT int hmm_replica_position_clear(hmm_t *m)
{
    int rc = setter_begin(m, true, "hmm_replica_position_clear", "handle");
    if (rc)
        return rc;
    struct hmm_replica_pos *p = position(m);
    seq_write_begin(&p->seq);
    atomic_store_explicit(&p->valid, 0, memory_order_relaxed);
    seq_write_end(&p->seq);
    return 0;
}

_Static_assert(offsetof(struct hmm_replica_pos, primary_id) + 16 == offsetof(struct hmm_replica_pos, next_seq) &&
                   offsetof(struct hmm_replica_pos, next_seq) + 8 == offsetof(struct hmm_replica_pos, valid) &&
                   offsetof(struct hmm_replica_pos, valid) + 8 == offsetof(struct hmm_replica_pos, digest_seq) &&
                   offsetof(struct hmm_replica_pos, digest_seq) + 8 == offsetof(struct hmm_replica_pos, digest) &&
                   offsetof(struct hmm_replica_pos, digest_seq) == 40,
               "position words are consecutive");

/* ---- role and epoch ---- */

static struct hmm_role_block *role_block(hmm_t *m)
{
    return (struct hmm_role_block *)((uint8_t *)m->hdr + HMM_ROLE_OFF);
}

HMM_EXPORT int hmm_role_get(hmm_t *m, hmm_role_info *ri)
{
    hmm__error_clear();
    if (!m || !ri)
        return hmm_fail(-EINVAL, "hmm_role_get: NULL handle or role info");
    struct hmm_role_block *rb = role_block(m);
    uint64_t w[HMM_ROLE_ADDR_LEN / 8];
    memset(ri, 0, sizeof *ri);
    uint64_t word = atomic_load_explicit(&rb->role_epoch, memory_order_relaxed);
    ri->role = HMM_ROLE_OF(word);
    ri->epoch = HMM_EPOCH_OF(word);
    if (seq_read(&rb->seq, rb->addr, w, HMM_ROLE_ADDR_LEN / 8) == 0) {
        memcpy(ri->primary, w, sizeof ri->primary - 1);
        /* The file may hold anything: keep what a message or JSON string can print as is. */
        for (size_t i = 0; ri->primary[i]; i++)
            if (ri->primary[i] < 0x20 || ri->primary[i] > 0x7e || ri->primary[i] == '"' || ri->primary[i] == '\\')
                ri->primary[i] = '?';
    }
    return 0;
}

HMM_EXPORT int hmm_role_set(hmm_t *m, unsigned role, uint64_t epoch, const char *primary)
{
    int rc = setter_begin(m, true, "hmm_role_set", "handle");
    if (rc)
        return rc;
    if (role != HMM_ROLE_PRIMARY && role != HMM_ROLE_REPLICA)
        return hmm_fail(-EINVAL, "%s: role %u is neither HMM_ROLE_PRIMARY nor HMM_ROLE_REPLICA", m->path, role);
    size_t len = primary ? strlen(primary) : 0;
    if (len >= HMM_ROLE_ADDR_LEN)
        return hmm_fail(-EINVAL, "primary address of %zu bytes is over %u", len, HMM_ROLE_ADDR_LEN - 1);
    if (epoch > HMM_EPOCH_MAX)
        return hmm_fail(-EOVERFLOW, "epoch %llu is over %llu", (unsigned long long)epoch,
                        (unsigned long long)HMM_EPOCH_MAX);
    struct hmm_role_block *rb = role_block(m);
    uint64_t cur = atomic_load_explicit(&rb->role_epoch, memory_order_relaxed);
    if (epoch < HMM_EPOCH_OF(cur))
        return hmm_fail(-EINVAL, "%s: epoch %llu is older than the map's %llu", m->path,
                        (unsigned long long)epoch, (unsigned long long)HMM_EPOCH_OF(cur));
    uint64_t w[HMM_ROLE_ADDR_LEN / 8] = {0};
    if (len)
        memcpy(w, primary, len);
    seq_write_begin(&rb->seq);
    for (unsigned i = 0; i < HMM_ROLE_ADDR_LEN / 8; i++)
        atomic_store_explicit(&rb->addr[i], w[i], memory_order_relaxed);
    seq_write_end(&rb->seq);
    /* The role last: a writer that sees "replica" finds the address set. */
    atomic_store_explicit(&rb->role_epoch, HMM_ROLE_MAKE(role, epoch), memory_order_release);
    return 0;
}

int hmm__replica_refusal(hmm_t *m)
{
    hmm_role_info ri;
    hmm_role_get(m, &ri);
    return hmm_fail(HMM_REPLICA, "%s: this map is a replica of %s (epoch %llu); promote it to write "
                    "(hashmmap-replicate --promote DIR)", m->path, ri.primary[0] ? ri.primary : "its primary",
                    (unsigned long long)ri.epoch);
}

/* ---- daemon status ---- */

static struct hmm_metrics_header *metrics_header(hmm_t *m)
{
    if (!m->mslots)
        return NULL;
    return (struct hmm_metrics_header *)((uint8_t *)m->mslots - sizeof(struct hmm_metrics_header));
}

HMM_EXPORT int hmm_repl_status_set(hmm_t *m, const hmm_repl_status *st)
{
    int rc = setter_begin(m, st != NULL, "hmm_repl_status_set", "handle or status");
    if (rc)
        return rc;
    struct hmm_metrics_header *h = metrics_header(m);
    if (!h)
        return hmm_fail(-ENOENT, "%s: no metrics file to keep the status in", m->path);
    uint64_t w[HMM_REPL_STATUS_WORDS];
    memcpy(w, st, sizeof w);
    seq_write_begin(&h->repl_seq);
    for (unsigned i = 0; i < HMM_REPL_STATUS_WORDS; i++)
        atomic_store_explicit(&h->repl_words[i], w[i], memory_order_relaxed);
    seq_write_end(&h->repl_seq);
    return 0;
}

HMM_EXPORT int hmm_repl_status_get(hmm_t *m, hmm_repl_status *st)
{
    hmm__error_clear();
    if (!m || !st)
        return hmm_fail(-EINVAL, "hmm_repl_status_get: NULL handle or status");
    struct hmm_metrics_header *h = metrics_header(m);
    if (!h)
        return HMM_NOTFOUND; /* no metrics file: no daemon could report */
    uint64_t w[HMM_REPL_STATUS_WORDS];
    if (seq_read(&h->repl_seq, h->repl_words, w, HMM_REPL_STATUS_WORDS) != 0)
        return hmm_fail(HMM_BUSY, "%s: replication status is being rewritten", m->path);
    if (atomic_load_explicit(&h->repl_seq, memory_order_relaxed) == 0)
        return HMM_NOTFOUND; /* never written */
    memcpy(st, w, sizeof w);
    return 0;
}
