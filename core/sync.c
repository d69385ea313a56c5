/*
 * sync.c - hmm_sync(), and which changes hmm_apply made through a handle no
 * completed sync covers yet (docs/FORMAT.md §13, replica position, "What
 * the library checks").  A replica position may name only synced changes;
 * repl_state.c asks hmm__unsynced_below() before it stores one and counts
 * a store that names an uncovered change (unsynced_positions).
 *
 * A sync covers the changes made before it began, so the note taken at its
 * start says what it will cover once its flush ends without error.  Changes
 * made while it flushes go to the open note and wait for the next sync: a
 * replica daemon syncs in one thread while it applies in another.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/internal.h"

/* After an hmm_apply of record seq (also a failed one, which may have
 * changed the map partway): the map holds a change no sync covers yet.
 * The mutex orders the change's stores before the note, and so before the
 * flush of any sync that takes the note over. */
void hmm__unsynced_note_apply(hmm_t *m, uint64_t seq)
{
    pthread_mutex_lock(&m->unsynced.mutex);
    if (seq < m->unsynced.open_low)
        m->unsynced.open_low = seq;
    pthread_mutex_unlock(&m->unsynced.mutex);
}

/* Whether a change of a record below seq is not covered by a completed
 * sync: a position naming it (next_seq = seq) could reach the disk first. */
bool hmm__unsynced_below(hmm_t *m, uint64_t seq)
{
    pthread_mutex_lock(&m->unsynced.mutex);
    bool below = m->unsynced.open_low < seq || m->unsynced.flushing_low < seq;
    pthread_mutex_unlock(&m->unsynced.mutex);
    return below;
}

/* A sync begins: what is open now is what its flush will cover.  Returns
 * the sync's number, for flush_ended. */
static uint64_t flush_begins(hmm_t *m)
{
    pthread_mutex_lock(&m->unsynced.mutex);
    if (m->unsynced.open_low < m->unsynced.flushing_low)
        m->unsynced.flushing_low = m->unsynced.open_low;
    m->unsynced.open_low = UINT64_MAX;
    uint64_t number = ++m->unsynced.flushes_begun;
    pthread_mutex_unlock(&m->unsynced.mutex);
    return number;
}

/* A sync's flush ended.  Only the latest sync to begin clears the note:
 * an earlier one that ends after it began did not cover what it noted (it
 * may have flushed before those changes).  A failed flush clears nothing:
 * its changes stay uncovered until a later sync ends well. */
static void flush_ended(hmm_t *m, uint64_t number, bool ok)
{
    pthread_mutex_lock(&m->unsynced.mutex);
    if (ok && number == m->unsynced.flushes_begun)
        m->unsynced.flushing_low = UINT64_MAX;
    pthread_mutex_unlock(&m->unsynced.mutex);
}

/* msync and fsync the map, then its replication log.  0 or -errno (set). */
static int sync_files(hmm_t *m)
{
    uint64_t len = atomic_load(&m->limit);
    if (msync(m->base, len, MS_SYNC) != 0)
        return hmm_fail(-errno, "%s: msync: %s", m->path, strerror(errno));
    if (fsync(m->fd) != 0)
        return hmm_fail(-errno, "%s: fsync: %s", m->path, strerror(errno));
    /* The replication log too: a replica resumes from its sequence numbers. */
    if (m->rhdr && (msync(m->rhdr, HMM_REPLOG_HDR_SIZE + m->rcap, MS_SYNC) != 0 || fsync(m->rfd) != 0))
        return hmm_fail(-errno, "%s: replication log sync: %s", m->path, strerror(errno));
    return 0;
}

HMM_EXPORT int hmm_sync(hmm_t *m)
{
    hmm__error_clear();
    if (!m)
        return hmm_fail(-EINVAL, "hmm_sync: NULL handle");
    if (m->anon || m->rdonly)
        return 0;
    uint64_t number = flush_begins(m);
    int rc = sync_files(m);
    flush_ended(m, number, rc == 0);
    if (rc == 0)
        metrics_add(m, HMM_C_SYNCS, 1);
    return rc;
}
