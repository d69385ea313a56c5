/*
 * replog.c - the writer half of the replication log (FORMAT.md §13): the
 * file, reserving and committing records, and their recovery.
 *
 * A change is logged in two steps around its publish, both under the key's
 * stripe lock, so records of one key are in commit order:
 *   1. before the publish, a record is reserved under the short append
 *      lock (the lock covers only head, tail and sequence numbers, never
 *      the copy) and then filled outside it: RESERVED|seq;
 *   2. after the publish, the writer commits it with one release CAS of
 *      its state word to seq (or voids it, VOID|seq, when the change was
 *      abandoned).
 * The stripe records the reservation (replog_pos, replog_seq), so the
 * repair of a dead holder commits the record when the index shows its
 * change published and voids it otherwise.  A reserved record whose
 * stripe lock is free has no writer any more: whoever holds that lock may
 * void it (hmm__replog_settle).  Readers therefore never wait on a dead writer.
 *
 * Invariant: records are laid out in sequence order (seq and position are
 * handed out together under the append lock), and the ring never drops a
 * RESERVED record: an append that needs its bytes waits until the writer
 * commits it, or settles it when the writer is gone.  So a writer's copy
 * never lands on a newer record, and a commit CAS can only meet its own
 * record.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

/* How long an append waits for a stopped writer whose record it must
 * overwrite before it gives up with HMM_BUSY. */
#define APPEND_WAIT_MS 10000u

static uint64_t round8(uint64_t v)
{
    return (v + 7) & ~UINT64_C(7);
}

uint64_t hmm__replog_record_bytes(size_t klen, size_t vlen)
{
    return round8(HMM_REPLOG_REC_HDR + (uint64_t)klen + (uint64_t)vlen);
}

/* The ring holds at least four of the largest records, so one big value
 * does not wrap the log past a reader at once. */
uint64_t hmm__replog_capacity_for(uint64_t replog_size, uint32_t max_value)
{
    uint64_t cap = replog_size ? replog_size : HMM_REPLOG_DEFAULT_CAPACITY;
    uint64_t min = 4 * hmm__replog_record_bytes(HMM_MAX_KEY, max_value);
    if (cap < min)
        cap = min;
    return (cap + 4095) & ~UINT64_C(4095);
}

static struct hmm_replog_rec *rec_at(hmm_t *m, uint64_t pos)
{
    return (struct hmm_replog_rec *)(m->ring + pos % m->rcap);
}

/* ---- populating ahead of the head ----
 *
 * Appends walk the ring page by page, and each page a process has not
 * written since it mapped the log (or since writeback cleaned it) takes a
 * write fault: a trap and the filesystem's page_mkwrite, once per 4 KiB,
 * so on a fresh log once every ~50 puts.  The appender that enters a
 * window of the ring makes the next window present and writable in this
 * process with one madvise(MADV_POPULATE_WRITE): the same kernel work, one
 * trap per window instead of one per page (bench/README.md has what it
 * saves, and what the first lap of a ring still costs on our VMs).  Per
 * handle, since page tables are per process; advice only: a kernel without
 * it (before 5.14) just faults as before. */
#define HMM_REPLOG_WINDOW (UINT64_C(256) << 10)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older C libraries lack the name */
#endif

static void populate_ring(hmm_t *m, uint64_t window)
{
    uint64_t off = window * HMM_REPLOG_WINDOW % m->rcap;
    uint64_t len = HMM_REPLOG_WINDOW < m->rcap ? HMM_REPLOG_WINDOW : m->rcap;
    while (len) {
        uint64_t part = len < m->rcap - off ? len : m->rcap - off;
        if (madvise(m->ring + off, part, MADV_POPULATE_WRITE) != 0 && errno == EINVAL) {
            atomic_store_explicit(&m->rpopulated, UINT64_MAX, memory_order_relaxed);
            return;
        }
        len -= part;
        off = 0; /* a window across the ring's end goes on at its start */
    }
}

/* The record at [pos, pos + len) was reserved: make sure the window after
 * it is populated.  One thread of the handle wins each window. */
static inline void populate_ahead(hmm_t *m, uint64_t pos, uint64_t len)
{
    uint64_t next = (pos + len) / HMM_REPLOG_WINDOW + 1;
    uint64_t have = atomic_load_explicit(&m->rpopulated, memory_order_relaxed);
    if (__builtin_expect(have > next, 1))
        return;
    /* have == UINT64_MAX never gets here.  A handle that wrote nothing for
     * a while starts at the head's window, not at the ones it skipped. */
    uint64_t from = have;
    if (from + 1 < next)
        from = next - 1;
    if (!atomic_compare_exchange_strong_explicit(&m->rpopulated, &have, next + 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return; /* another thread of this handle does it */
    for (uint64_t w = from; w <= next; w++)
        populate_ring(m, w);
}

/* ---- the file ---- */

static void init_header(struct hmm_replog_header *h, const uint8_t *map_id, uint64_t cap, uint64_t first_seq)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, HMM_REPLOG_MAGIC, 8);
    h->version = HMM_REPLOG_VERSION;
    h->byte_order = HMM_BYTE_ORDER_MARK;
    memcpy(h->map_id, map_id, sizeof h->map_id);
    h->capacity = cap;
    h->created_ms = hmm_now_ms();
    atomic_store(&h->next_seq, first_seq);
    atomic_store(&h->first_seq, first_seq);
}

/* Write a fresh log into fd (sized to HDR + cap, zero-filled). */
/* A log made for a map that was written before (its log was deleted or
 * damaged) must not reuse numbers a replica may already hold: it starts
 * far beyond any the old log can have reached (milliseconds since the
 * epoch times 2^16), so a replica's position is older than first_seq and it
 * is told HMM_MISMATCH.  A new map's log starts at 1. */
static uint64_t first_seq_for(hmm_t *m)
{
    for (uint32_t s = 0; s <= m->stripe_mask; s++)
        if (m->stripes[s].version)
            return hmm_now_ms() << 16;
    return 1;
}

static int init_file(int fd, const uint8_t *map_id, uint64_t cap, uint64_t first_seq)
{
    int rc = hmm__file_allocate(fd, HMM_REPLOG_HDR_SIZE + cap);
    if (rc)
        return rc;
    struct hmm_replog_header *h = mmap(NULL, HMM_REPLOG_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED)
        return -errno;
    init_header(h, map_id, cap, first_seq);
    rc = hmm__lock_init_shared(&h->lock);
    munmap(h, HMM_REPLOG_HDR_SIZE);
    return rc;
}

static bool header_valid(hmm_t *m, const struct hmm_replog_header *h, uint64_t cap, uint64_t file_size)
{
    return file_size >= HMM_REPLOG_HDR_SIZE + cap && memcmp(h->magic, HMM_REPLOG_MAGIC, 8) == 0 &&
           h->version == HMM_REPLOG_VERSION && h->byte_order == HMM_BYTE_ORDER_MARK && h->capacity == cap &&
           memcmp(h->map_id, m->hdr->map_id, sizeof h->map_id) == 0;
}

/* Make DIR/hashmmap.replog: complete where nobody sees it, allocated
 * (appends store into the mapping: a hole on a full disk would be SIGBUS),
 * with the map file's mode and owner, then moved into place.  replace:
 * rename over a damaged or foreign log; otherwise link(), which leaves a
 * log another opener made first alone. */
static int create_file(hmm_t *m, const char *dir, const char *path, uint64_t cap, unsigned mode, bool replace)
{
    struct hmm__newfile nf;
    int rc = hmm__newfile_open(&nf, dir, HMM_REPLOG_FILE);
    if (rc)
        return rc;
    rc = hmm__sibling_access(nf.fd, m->fd, mode);
    if (rc == 0)
        rc = hmm__allocate(nf.fd, 0, HMM_REPLOG_HDR_SIZE + cap);
    if (rc == 0)
        rc = init_file(nf.fd, m->hdr->map_id, cap, first_seq_for(m));
    if (rc == 0)
        rc = hmm__newfile_publish(&nf, path, replace);
    if (rc == -EEXIST)
        rc = 0; /* another opener made it first: theirs is used */
    hmm__newfile_close(&nf);
    return rc;
}

static int map_file(hmm_t *m, int fd, uint64_t cap)
{
    int prot = m->rdonly ? PROT_READ : PROT_READ | PROT_WRITE;
    /* A log made sparse (by an older build, or a copy) gets its blocks now,
     * so an append never meets a hole on a full disk (fileio.c). */
    int rc = m->rdonly ? 0 : hmm__file_allocate(fd, HMM_REPLOG_HDR_SIZE + cap);
    if (rc)
        return rc;
    void *p = mmap(NULL, HMM_REPLOG_HDR_SIZE + cap, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    m->rfd = fd;
    m->rhdr = p;
    m->ring = (uint8_t *)p + HMM_REPLOG_HDR_SIZE;
    m->rcap = cap;
    return 0;
}

/* The log is part of the map: a writable handle that cannot log fails to
 * open (its changes would never reach a replica).  A read-only handle
 * without a usable log just has none (hmm_replog_* say -ENOENT). */
int hmm__replog_open(hmm_t *m, const char *dir, unsigned mode)
{
    m->rfd = -1;
    if (m->flags & HMM_NOREPLOG)
        return 0;
    uint64_t cap = hmm__replog_capacity_for(m->hdr->replog_size, m->max_value);
    if (m->anon) {
        int fd = memfd_create("hashmmap-replog", MFD_CLOEXEC);
        int rc = fd < 0 ? -errno : init_file(fd, m->hdr->map_id, cap, first_seq_for(m));
        if (rc == 0)
            rc = map_file(m, fd, cap);
        if (rc && fd >= 0)
            close(fd);
        return rc ? hmm_fail(rc, "replication log memfd: %s", strerror(-rc)) : 0;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, HMM_REPLOG_FILE) >= (int)sizeof path)
        return hmm_fail(-ENAMETOOLONG, "%s: path too long", dir);
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        /* A FIFO or other non-file here counts as damaged: replaced. */
        int fd = hmm__open_regular(path, m->rdonly ? O_RDONLY : O_RDWR);
        struct stat st;
        struct hmm_replog_header h;
        bool exists = fd != -ENOENT;
        if (fd >= 0 && fstat(fd, &st) == 0 && pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
            header_valid(m, &h, cap, (uint64_t)st.st_size)) {
            rc = map_file(m, fd, cap);
            if (rc == 0)
                return 0;
        }
        if (fd >= 0)
            close(fd);
        if (m->rdonly)
            return 0;
        /* Missing: make it.  Damaged or another map's: replace it; its
         * sequence numbers restart, and a replica that asks for a newer
         * one than the new log has is told HMM_MISMATCH (FORMAT.md §13). */
        rc = create_file(m, dir, path, cap, mode, exists);
        if (rc)
            break;
    }
    return hmm_fail(rc ? rc : HMM_CORRUPT, "%s: cannot open or create the replication log%s%s", path,
                    rc ? ": " : "", rc ? strerror(-rc) : "");
}

/* An anonymous map's log memfd received from another process
 * (hmm_open_fd).  Every sharer must append to the same ring: stripe
 * intents name positions in it, and sequence numbers are the map's.  So a
 * writable handle of a map that logs refuses to open without it. */
int hmm__replog_adopt(hmm_t *m, int fd)
{
    m->rfd = -1;
    if (m->flags & HMM_NOREPLOG)
        return 0;
    if (fd < 0)
        return m->rdonly ? 0 : hmm_fail(-EINVAL, "this map keeps a replication log: its fd is needed");
    uint64_t cap = hmm__replog_capacity_for(m->hdr->replog_size, m->max_value);
    struct stat st;
    struct hmm_replog_header h;
    if (fstat(fd, &st) != 0 || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
        !header_valid(m, &h, cap, (uint64_t)st.st_size))
        return hmm_fail(-EINVAL, "fd %d is not the replication log of this map", fd);
    return hmm__adopt_fd(m, fd, "replication log", map_file, cap);
}

void hmm__replog_close(hmm_t *m)
{
    if (m->rhdr)
        munmap(m->rhdr, HMM_REPLOG_HDR_SIZE + m->rcap);
    if (m->rfd >= 0)
        close(m->rfd);
    m->rhdr = NULL;
    m->ring = NULL;
    m->rfd = -1;
}

/* Move a RESERVED record's state on.  Whoever decides a record holds the
 * stripe lock its writer held (the writer itself, the repair of a dead
 * writer, a settler, an append of the same stripe), and a RESERVED record
 * is never overwritten, so a load and a store suffice: no read-modify-write
 * on the hot path.  One record is voided under the append lock instead: one
 * its dead writer never named (repair_append_locked); a settler that voids
 * it at the same time stores the same state. */
static bool state_cas(struct hmm_replog_rec *r, uint64_t from, uint64_t to)
{
    if (atomic_load_explicit(&r->state, memory_order_relaxed) != from)
        return false;
    /* Release: a reader that acquires the committed state sees the bytes
     * the writer copied before (replog_next's acquire load). */
    atomic_store_explicit(&r->state, to, memory_order_release);
    return true;
}

static void note_decided(hmm_t *m, uint64_t seq)
{
    uint64_t cur = atomic_load_explicit(&m->rhdr->last_seq, memory_order_relaxed);
    while (cur < seq && !atomic_compare_exchange_weak_explicit(&m->rhdr->last_seq, &cur, seq,
                                                                memory_order_release, memory_order_relaxed))
        ;
}

/* ---- the append lock ---- */

/* First non-pad record's sequence number at or after tail, or next_seq. */
static uint64_t seq_from(hmm_t *m, uint64_t tail, uint64_t head)
{
    for (uint64_t p = tail, n = 0; p < head && n < m->rcap / 8; n++) {
        uint64_t off = p % m->rcap;
        if (m->rcap - off < HMM_REPLOG_REC_HDR) {
            p += m->rcap - off;
            continue;
        }
        struct hmm_replog_rec *r = rec_at(m, p);
        uint64_t st = atomic_load(&r->state);
        if (st != HMM__REC_PAD)
            return HMM__REC_SEQ(st);
        if (r->len < HMM_REPLOG_REC_HDR || r->len % 8 || r->len > m->rcap - off)
            break;
        p += r->len;
    }
    return atomic_load(&m->rhdr->next_seq);
}

static bool len_valid(hmm_t *m, const struct hmm_replog_rec *r, uint64_t pos)
{
    uint64_t room = m->rcap - pos % m->rcap;
    return r->len >= HMM_REPLOG_REC_HDR && r->len % 8 == 0 && r->len <= room;
}

/* The holder of the append lock died.  It may have bumped next_seq and
 * written its record's header without advancing head: then advance head,
 * so the sequence number is not lost.  If its stripe names the record, the
 * stripe's repair settles it (the change may have been published); if not,
 * the holder died before naming it, so before any publish: void it here.
 * Left RESERVED, nothing but a writable reader or the ring's wrap would
 * ever settle it, and every read-only reader of the log (hashmmap-tail, a
 * follower) stopped at it for good.
 * It may have stored first_seq and not tail: recompute first_seq. */
static void repair_append_locked(hmm_t *m)
{
    struct hmm_replog_header *h = m->rhdr;
    uint64_t head = atomic_load(&h->head), tail = atomic_load(&h->tail);
    uint64_t next = atomic_load(&h->next_seq);
    uint64_t off = head % m->rcap;
    if (m->rcap - off >= HMM_REPLOG_REC_HDR && next > 1) {
        struct hmm_replog_rec *r = rec_at(m, head);
        uint64_t st = atomic_load(&r->state);
        if (st != HMM__REC_PAD && HMM__REC_SEQ(st) == next - 1 && len_valid(m, r, head)) {
            uint64_t seq = next - 1;
            bool named = r->stripe <= m->stripe_mask && atomic_load(&m->stripes[r->stripe].replog_seq) == seq;
            if ((st & HMM__REC_RESERVED) && !named && state_cas(r, st, HMM__REC_VOID | seq))
                note_decided(m, seq);
            atomic_store_explicit(&h->head, head + r->len, memory_order_release);
        }
    }
    if (tail <= head)
        atomic_store(&h->first_seq, seq_from(m, tail, atomic_load(&h->head)));
}

static void repair_append(hmm_t *m, uint32_t unused)
{
    (void)unused;
    repair_append_locked(m);
}

static int lock_append(hmm_t *m)
{
    int rc = hmm__lock_robust(m, &m->rhdr->lock, repair_append, 0, "replication log");
    if (rc == 0)
        atomic_store_explicit(&m->rhdr->lock_owner_proc, hmm__proc_self_tag(m), memory_order_relaxed);
    return rc;
}

static void unlock_append(hmm_t *m)
{
    atomic_store_explicit(&m->rhdr->lock_owner_proc, 0, memory_order_relaxed);
    pthread_mutex_unlock(&m->rhdr->lock);
}

void hmm__replog_repair_dead(hmm_t *m, uint32_t tag)
{
    if (m->rhdr && !m->rdonly && atomic_load(&m->rhdr->lock_owner_proc) == tag && lock_append(m) == 0)
        unlock_append(m);
}

void hmm__replog_cold_start(hmm_t *m)
{
    if (!m->rhdr)
        return;
    hmm__lock_init_shared(&m->rhdr->lock);
    atomic_store(&m->rhdr->lock_owner_proc, 0);
    repair_append_locked(m);
}

/* ---- settling a record whose writer is gone ---- */

/* The record at pos is RESERVED|seq and names stripe as its writer.  Take
 * that stripe's lock without waiting: a dead holder is repaired on the way
 * (which commits or voids the record), and a record still RESERVED while
 * we hold the lock has no writer left (it died between reserving and
 * naming the record in its stripe): void it.  0 when settled, -EBUSY when
 * a live writer holds the stripe (it will commit soon). */
int hmm__replog_settle(hmm_t *m, uint32_t stripe, uint64_t pos, uint64_t seq)
{
    if (stripe > m->stripe_mask)
        return hmm_fail(HMM_CORRUPT, "%s: replication log record %llu names stripe %u of %u", m->path,
                        (unsigned long long)seq, stripe, m->stripe_mask + 1);
    int rc = hmm__trylock_stripe(m, stripe);
    if (rc)
        return rc;
    struct hmm_replog_rec *r = rec_at(m, pos);
    if (state_cas(r, HMM__REC_RESERVED | seq, HMM__REC_VOID | seq))
        note_decided(m, seq);
    hmm__unlock_stripe(m, stripe);
    return 0;
}

/* ---- appending ---- */

/* Drop records from the tail until the ring has room up to position end.
 * A RESERVED record is never dropped: -EAGAIN with its writer's stripe,
 * position and seq in *blocked. */
struct blocked {
    uint32_t stripe;
    uint64_t pos, seq;
};

/* A damaged window or tail record (only a damaged file gets here): the log
 * is an aid to the map, so writes go on.  Every record is dropped (a reader
 * behind is told HMM_MISMATCH and takes a snapshot) and positions and
 * numbers are made sane again. */
static void reset_window_locked(hmm_t *m)
{
    struct hmm_replog_header *h = m->rhdr;
    uint64_t head = atomic_load(&h->head), next = atomic_load(&h->next_seq);
    head = head >= HMM__REC_VOID ? 0 : round8(head);
    if (next == 0 || next >= HMM__REC_VOID)
        next = 1;
    atomic_store(&h->next_seq, next);
    atomic_store(&h->first_seq, next);
    atomic_store_explicit(&h->tail, head, memory_order_release);
    atomic_store_explicit(&h->head, head, memory_order_release);
    atomic_fetch_add(&m->hdr->recoveries, 1);
    hmm_fail(HMM_CORRUPT, "%s: the replication log was damaged; its records were dropped", m->path);
}

static bool window_sane(hmm_t *m)
{
    struct hmm_replog_header *h = m->rhdr;
    uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    uint64_t next = atomic_load_explicit(&h->next_seq, memory_order_relaxed);
    return head % 8 == 0 && tail % 8 == 0 && tail <= head && head - tail <= m->rcap && head < HMM__REC_VOID &&
           next > 0 && next < HMM__REC_VOID;
}

static int make_room_locked(hmm_t *m, uint64_t end, uint32_t own_stripe, struct blocked *b)
{
    struct hmm_replog_header *h = m->rhdr;
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    uint64_t first = atomic_load_explicit(&h->first_seq, memory_order_relaxed);
    int rc = 0;
    while (tail + m->rcap < end) {
        uint64_t off = tail % m->rcap;
        if (tail >= head)
            return -ESTALE; /* damaged: the caller resets the window */
        if (m->rcap - off < HMM_REPLOG_REC_HDR) {
            tail += m->rcap - off; /* too short for a record: skipped by everyone */
            continue;
        }
        struct hmm_replog_rec *r = rec_at(m, tail);
        uint64_t st = atomic_load_explicit(&r->state, memory_order_acquire);
        if (!len_valid(m, r, tail))
            return -ESTALE;
        if (st != HMM__REC_PAD && (st & HMM__REC_RESERVED)) {
            uint64_t seq = HMM__REC_SEQ(st);
            /* Our own stripe's: its writer is not running (we hold the lock). */
            if (r->stripe != own_stripe || !state_cas(r, st, HMM__REC_VOID | seq)) {
                *b = (struct blocked){r->stripe, tail, seq};
                rc = -EAGAIN;
                break;
            }
            note_decided(m, seq);
        }
        if (st != HMM__REC_PAD)
            first = HMM__REC_SEQ(st) + 1;
        tail += r->len;
    }
    /* first_seq before tail: a reader that loads tail and then first_seq
     * never sees a first_seq older than the records tail has dropped. */
    atomic_store_explicit(&h->first_seq, first, memory_order_release);
    /* Release, and before any byte of the dropped records is overwritten:
     * a reader that copied one loads tail after its copy and sees it
     * moved past (hmm_replog_next). */
    atomic_store_explicit(&h->tail, tail, memory_order_release);
    return rc;
}

/* An append waits for the writer of a record it must drop. */
static int wait_for_writer(hmm_t *m, const struct blocked *b, uint64_t started_ms)
{
    int rc = hmm__replog_settle(m, b->stripe, b->pos, b->seq);
    if (rc == 0)
        return 0;
    if (rc != -EBUSY)
        return rc;
    if (hmm_now_ms() - started_ms > APPEND_WAIT_MS)
        return hmm_fail(HMM_BUSY, "%s: a writer stopped in the middle of a replication log append", m->path);
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
    return 0;
}

/* Reserve len bytes for one record; the holder's stripe names it. */
static int reserve_locked(hmm_t *m, uint32_t stripe, uint64_t len, uint64_t *pos_out, uint64_t *seq_out,
                          struct blocked *b)
{
    struct hmm_replog_header *h = m->rhdr;
    if (!window_sane(m))
        reset_window_locked(m);
    uint64_t pos, gap;
    int rc;
    for (int attempt = 0;; attempt++) {
        pos = atomic_load_explicit(&h->head, memory_order_relaxed);
        gap = m->rcap - pos % m->rcap;
        if (gap >= len)
            gap = 0; /* fits before the ring's end */
        rc = make_room_locked(m, pos + gap + len, stripe, b);
        if (rc != -ESTALE || attempt > 0)
            break;
        reset_window_locked(m);
    }
    if (rc)
        return rc == -ESTALE ? hmm_fail(HMM_CORRUPT, "%s: replication log cannot be repaired", m->path) : rc;
    if (gap) {
        if (gap >= HMM_REPLOG_REC_HDR) {
            struct hmm_replog_rec *pad = rec_at(m, pos);
            pad->len = (uint32_t)gap;
            pad->stripe = UINT32_MAX;
            /* Release: a writer killed here leaves len with the state. */
            atomic_store_explicit(&pad->state, HMM__REC_PAD, memory_order_release);
        }
        pos += gap;
        /* Release: readers that pass the new head see the pad. */
        atomic_store_explicit(&h->head, pos, memory_order_release);
    }
    uint64_t seq = atomic_load_explicit(&h->next_seq, memory_order_relaxed);
    struct hmm_replog_rec *r = rec_at(m, pos);
    r->len = (uint32_t)len;
    r->stripe = stripe;
    /* Release keeps len and stripe ahead of the state, also for the
     * compiler: a writer killed at any instruction never leaves a state
     * whose length or stripe is stale (repair_append_locked, settling). */
    atomic_store_explicit(&r->state, HMM__REC_RESERVED | seq, memory_order_release);
    atomic_store_explicit(&h->next_seq, seq + 1, memory_order_relaxed);
    HMM_CRASHPOINT("log_numbered");
    /* Named in the stripe only now, after next_seq moved on: a seq the
     * stripe names is never handed out again (see repair_append_locked). */
    struct hmm_stripe *s = &m->stripes[stripe];
    atomic_store_explicit(&s->replog_pos, pos, memory_order_relaxed);
    atomic_store_explicit(&s->replog_seq, seq, memory_order_release);
    HMM_CRASHPOINT("log_locked");
    /* Release: a reader that loads head sees the record's header. */
    atomic_store_explicit(&h->head, pos + len, memory_order_release);
    *pos_out = pos;
    *seq_out = seq;
    return 0;
}

int hmm__replog_append_locked(hmm_t *m, uint32_t stripe, unsigned op, unsigned tag, uint64_t expire_ms,
                         const void *key, size_t klen, const void *val, size_t vlen)
{
    if (!m->rhdr)
        return 0;
    uint64_t len = hmm__replog_record_bytes(klen, vlen);
    if (len > m->rcap)
        return hmm_fail(HMM_TOOBIG, "%s: change of %llu bytes does not fit the replication log", m->path,
                        (unsigned long long)len);
    uint64_t pos = 0, seq = 0, started = 0;
    for (;;) {
        struct blocked b = {0, 0, 0};
        int rc = lock_append(m);
        if (rc)
            return rc;
        rc = reserve_locked(m, stripe, len, &pos, &seq, &b);
        unlock_append(m);
        if (rc == 0)
            break;
        if (rc != -EAGAIN)
            return rc;
        if (!started)
            started = hmm_now_ms();
        if ((rc = wait_for_writer(m, &b, started)) != 0)
            return rc;
    }
    HMM_CRASHPOINT("log_reserved");
    populate_ahead(m, pos, len);
    struct hmm_replog_rec *r = rec_at(m, pos);
    r->op = (uint8_t)op;
    r->tag = (uint8_t)tag;
    r->reserved0 = 0;
    r->klen = (uint32_t)klen;
    r->vlen = (uint32_t)vlen;
    r->epoch = (uint32_t)HMM_EPOCH_OF(hmm__role_word(m)); /* ≤ HMM_EPOCH_MAX (hmm_role_set) */
    r->expire_ms = expire_ms;
    uint8_t *data = (uint8_t *)r + HMM_REPLOG_REC_HDR;
    /* The zero padding (under 8 bytes, len is a multiple of 8) is the last
     * word's tail: zero that word, then copy over its head.  It lies past
     * the header, as the key has at least one byte. */
    static const uint64_t zero_word;
    memcpy((uint8_t *)r + len - sizeof zero_word, &zero_word, sizeof zero_word);
    hmm__copy_small(data, key, klen);
    hmm__copy_small(data + klen, val, vlen);
    r->checksum = hmm__replog_checksum(r, seq);
    HMM_CRASHPOINT("log_written");
    return 0;
}

uint64_t hmm__replog_checksum(const struct hmm_replog_rec *r, uint64_t seq)
{
    const uint8_t *p = (const uint8_t *)r + offsetof(struct hmm_replog_rec, len);
    size_t n = HMM_REPLOG_REC_HDR - offsetof(struct hmm_replog_rec, len) + (size_t)r->klen + r->vlen;
    return XXH3_64bits_withSeed(p, n, seq);
}

/* Decide the record the holder of stripe reserved: to (seq) commits it,
 * to (VOID|seq) voids it.  Idempotent: a record already decided is left. */
static void decide_locked(hmm_t *m, uint32_t stripe, bool commit)
{
    if (!m->rhdr)
        return;
    struct hmm_stripe *s = &m->stripes[stripe];
    uint64_t seq = atomic_load_explicit(&s->replog_seq, memory_order_acquire);
    if (!seq)
        return;
    uint64_t pos = atomic_load_explicit(&s->replog_pos, memory_order_relaxed);
    /* A damaged stripe could name any position: the record must fit. */
    if (m->rcap - pos % m->rcap >= HMM_REPLOG_REC_HDR && seq < HMM__REC_VOID) {
        struct hmm_replog_rec *r = rec_at(m, pos);
        if (state_cas(r, HMM__REC_RESERVED | seq, commit ? seq : HMM__REC_VOID | seq))
            note_decided(m, seq);
    }
    atomic_store_explicit(&s->replog_seq, 0, memory_order_release);
}

void hmm__replog_commit_locked(hmm_t *m, uint32_t stripe)
{
    decide_locked(m, stripe, true);
}

void hmm__replog_void_locked(hmm_t *m, uint32_t stripe)
{
    decide_locked(m, stripe, false);
}

void hmm__replog_recover_locked(hmm_t *m, uint32_t stripe, bool published)
{
    /* The record was filled before the publish (update.c), so a published
     * change's record is whole: committing it is all that is left. */
    decide_locked(m, stripe, published);
}
