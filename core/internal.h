/*
 * internal.h - the process-local handle and the interfaces between the
 * core's files.  Included by the files of core/ and by cache/evict.c:
 * eviction is the allocator's other half in a cache map (hmm__slab_alloc
 * calls it holding the caller's stripe, and it deletes through the update
 * protocol under the core's locks), so it sees the core as the core's
 * files do.  Besides, only white-box tests that must name a key's stripe
 * (tests/test_crashpoints.c) include it; the tools, the SQLite extension,
 * the DNS shim and the bindings program against hashmmap.h alone.
 *
 * Lock order: grow (grow.c), then stripe, then class, then pages.  A function whose caller must
 * hold a lock ends in _locked.
 */
#ifndef HMM_INTERNAL_H
#define HMM_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Inlined: a get hashes its key once, and a call into the shared library
 * costs as much as hashing a short key. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "hashmmap.h"
#include "core/crashpoint.h"
#include "core/format.h"

/* One hash index as this process sees it: validated place and size. */
struct hmm_ix {
    struct hmm_bucket *bk;      /* format 2: struct hmm_cell_bucket, as ix_cell() reads it */
    uint64_t nb;                /* buckets; 0 for "no index" */
    _Atomic uint8_t *ovf;       /* format 2: the overflow counts after the buckets; NULL in format 1 */
};
/* Both indexes, decoded from the header's two words (index.c). */
struct hmm__view {
    uint64_t word_cur, word_old; /* hdr->index_cur, index_old as loaded */
    struct hmm_ix cur, old;     /* old.nb == 0: no index being drained */
};
#define HMM_VIEW_SLOTS 128u

/* Process-local state of one open map (shared state is in format.h). */
struct hmm {
    int fd;
    bool rdonly;
    bool anon;
    bool nometrics;             /* HMM_NOMETRICS: never bind a counting slot */
    bool replica_writer;        /* HMM_REPLICA_WRITER: may write while the map is a replica */
    /* sync.c: the changes hmm_apply made through this handle that no
     * completed hmm_sync covers, as the lowest record seq among them
     * (UINT64_MAX: none); repl_state.c counts a replica position stored
     * past one (FORMAT.md §13, replica position).  open: made since the
     * latest sync began; flushing: noted by a sync that has not ended
     * well yet.  Under mutex, held for a few instructions, never across a
     * flush (a sync thread flushes while another thread applies). */
    struct {
        pthread_mutex_t mutex;
        uint64_t open_low, flushing_low;
        uint64_t flushes_begun; /* numbers the syncs: only the latest clears */
    } unsynced;
    char *path;                 /* the map file, for messages; "(anonymous)" */
    uint8_t *base;              /* start of this process's mapping */
    size_t reserve;             /* bytes of address space reserved for the file */
    _Atomic uint64_t limit;     /* bytes of the mapping validated against the file size */
    struct hmm_header *hdr;
    struct hmm_proc *procs;
    struct hmm_stripe *stripes;
    struct hmm_class *classes;
    hmm_atomic_u64 *pagetab;
    uint64_t data_off;
    uint64_t pagetab_cap;
    uint32_t page_size;
    uint32_t page_shift;
    uint32_t stripe_mask;
    uint32_t nclasses;
    uint32_t class_size[HMM_MAX_CLASSES]; /* validated copy of hdr->class_size */
    uint64_t class_magic[HMM_MAX_CLASSES]; /* UINT64_MAX / class_size + 1: hmm__slab_valid_chunk's divisibility test */
    uint32_t max_value;
    uint32_t flags;             /* header flags | HMM_RDONLY for this handle */
    bool recency_marks;         /* a writable cache-mode handle: gets mark what they read (read.c) */
    bool cells;                 /* a map of format 2 (HMM_INLINE): buckets of cells (FORMAT.md §7) */
    _Atomic uint32_t general_gets; /* read.c: gets on the general path during a growth */
    uint64_t default_ttl_ms;

    int mfd;                    /* metrics file (or memfd), -1 when none */
    struct hmm_metrics_slot *mslots; /* HMM_METRICS_SLOTS slots, NULL when none */
    _Atomic(struct hmm_metrics_slot *) mslot; /* where this process counts, NULL: nowhere */
    /* The thread that counts into mslot with plain (unlocked) adds: its
     * hmm__thread_id, claimed by the first thread that counts after a
     * bind (never 0, which is a thread's number before it has one); every other thread adds atomically into slot
     * HMM_METRICS_UNOWNED (metrics.c says why). */
    _Atomic uint64_t counting_thread;

    int rfd;                    /* replication log file (or memfd), -1 when none */
    struct hmm_replog_header *rhdr; /* NULL: no log (HMM_NOREPLOG, or it could not be opened) */
    uint8_t *ring;              /* the log's ring, rcap bytes */
    uint64_t rcap;              /* validated copy of rhdr->capacity */
    _Atomic uint64_t rpopulated;/* replog.c: the first window of the log (absolute position / HMM_REPLOG_WINDOW)
                                 * this handle has not populated ahead of its appends; UINT64_MAX: cannot */

    /* The decoded index words last seen (index.c, hmm__index_cached): each
     * of views[] is written once, before it is published through view,
     * and never reused, because another thread may still be reading an
     * older one.  A map changes its index words twice per doubling, so
     * HMM_VIEW_SLOTS outlasts any map; past it, gets decode on the stack. */
    _Atomic(const struct hmm__view *) view;
    _Atomic uint32_t views_used;
    atomic_flag view_building;  /* one thread fills a view at a time */
    struct hmm__view views[HMM_VIEW_SLOTS];

    pthread_mutex_t slot_mutex; /* serialises claiming a process slot (after fork) */
    _Atomic uint32_t proc_slot; /* our slot + 1, 0 when none */
    _Atomic uint64_t slot_epoch;/* fork epoch when the slot was claimed */

    /* compact.c: free chunks a class held when a scan for its empty pages
     * last found none (read and written under that class's lock). */
    uint64_t fruitless_free[HMM_MAX_CLASSES];
};

/* ---- errors.c: one error path ----
 * Every public function that can fail calls hmm__error_clear() first, and
 * every failure it returns goes through hmm_fail(), so hmm_last_error()
 * describes the thread's latest call: "" after a success or an answer
 * (HMM_NOTFOUND, HMM_EXISTS, HMM_MISMATCH, HMM_TOOSMALL: the key is absent,
 * present, changed, longer than the buffer; hashmmap.h names the two
 * answers that carry a detail), the failure otherwise. */
/* Record the detail for hmm_last_error() and return rc. */
int hmm_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Initial-exec TLS: the flag is one byte at a fixed offset from the thread
 * pointer, so clearing it is a single store even in a shared library
 * (the default model calls __tls_get_addr), cheap enough for every get. */
#define HMM__TLS_FAST __attribute__((tls_model("initial-exec")))
extern _Thread_local bool hmm__error_set HMM__TLS_FAST; /* the detail is this call's */
static inline void hmm__error_clear(void)
{
    hmm__error_set = false;
}
static inline bool hmm__is_answer(int rc)
{
    return rc == HMM_NOTFOUND || rc == HMM_EXISTS || rc == HMM_MISMATCH || rc == HMM_TOOSMALL;
}
/* The end of a public call whose inner steps may fail and be recovered
 * from (a put that grew the index, an open whose metrics are off): a
 * success or an answer keeps no detail of them. */
static inline int hmm__result(int rc)
{
    if (rc == 0 || hmm__is_answer(rc))
        hmm__error_clear();
    return rc;
}

/* ---- fileio.c: opening and making the files of a map ---- */
/* open(path, flags) of a regular file only: a FIFO, device or directory is
 * refused with -EINVAL (and a detail) without ever blocking.  fd or -errno. */
int hmm__open_regular(const char *path, int flags);
/* Allocate [off, off+len) of fd now, so later stores into a mapping of it
 * cannot meet a full disk (SIGBUS): fallocate(2), or where the filesystem
 * has none, zeros written past the file's old end (never below: other
 * processes store there).  0, or -errno (-ENOSPC, -EFBIG) with the file's
 * size unchanged. */
int hmm__allocate(int fd, uint64_t off, uint64_t len);
/* A file under construction: unnamed (O_TMPFILE) or, where the filesystem
 * lacks that, a dot-name in the same directory.  Every path ends in
 * hmm__newfile_close, which closes it and removes any name it still has. */
struct hmm__newfile {
    int fd;
    char tmp[PATH_MAX]; /* the temporary name, "" when unnamed or moved */
};
int hmm__newfile_open(struct hmm__newfile *nf, const char *dir, const char *name);
/* Link the complete file at path: replace renames over what is there,
 * otherwise -EEXIST when path exists (another process was first). */
int hmm__newfile_publish(struct hmm__newfile *nf, const char *path, bool replace);
void hmm__newfile_close(struct hmm__newfile *nf);
/* Give the new file fd the map file's mode, owner and group as far as we
 * may (fallback_mode when the map file cannot be looked at). */
int hmm__sibling_access(int fd, int map_fd, unsigned fallback_mode);

/* ---- map.c ---- */
uint64_t hmm_now_ms(void);
/* Pointer to len bytes at file offset off, or NULL when any of it lies
 * outside what this process has validated.  Every offset read from the
 * file goes through here (or hmm_entry_at) before use. */
void *hmm_at_slow(hmm_t *m, uint64_t off, uint64_t len);
static inline void *hmm_at(hmm_t *m, uint64_t off, uint64_t len)
{
    uint64_t limit = atomic_load_explicit(&m->limit, memory_order_relaxed);
    if (__builtin_expect(off > limit || len > limit - off, 0))
        return hmm_at_slow(m, off, len); /* maybe another process grew the file */
    return m->base + off;
}
/* Refresh m->limit after another process grew the file; HMM_CORRUPT when
 * the file is shorter than its pages (truncated under the mapping: the
 * walkers call it first, so they refuse instead of taking SIGBUS). */
int hmm__map_refresh_limit(hmm_t *m);

/* sync.c: an hmm_apply of record seq made a change no sync covers yet;
 * whether such a change of a record below seq is still uncovered. */
void hmm__unsynced_note_apply(hmm_t *m, uint64_t seq);
bool hmm__unsynced_below(hmm_t *m, uint64_t seq);
static inline uint64_t map_page_off(const hmm_t *m, uint64_t page) { return m->data_off + (page << m->page_shift); }
static inline uint64_t map_npages(const hmm_t *m)
{
    return atomic_load_explicit(&m->hdr->npages, memory_order_acquire);
}
/* The page count, for a walk of the page table that touches the pages
 * themselves (allocation, compaction, eviction, check): another process may
 * have grown the file past what this handle has validated, and such a page
 * is met through the table, not through hmm_at, so the limit is raised
 * first (under valgrind that also makes the new pages memory again, map.c).
 * Only pages within the limit are counted: a file cut short under the map
 * is not walked past its end. */
static inline uint64_t map_npages_mapped(hmm_t *m)
{
    uint64_t n = map_npages(m);
    uint64_t limit = atomic_load_explicit(&m->limit, memory_order_relaxed);
    if (__builtin_expect(map_page_off(m, n) > limit, 0)) {
        (void)hmm__map_refresh_limit(m); /* on failure, the limit stays and bounds the walk */
        limit = atomic_load_explicit(&m->limit, memory_order_relaxed);
        uint64_t within = limit > m->data_off ? (limit - m->data_off) >> m->page_shift : 0;
        if (n > within)
            n = within;
    }
    return n;
}

/* Geometry of a map, computed from its creation parameters alone: creation
 * lays the file out by it, and every open recomputes it to check the header. */
struct hmm_geometry {
    uint64_t size, max_size;
    uint32_t page_size, page_shift, max_value, factor_pct;
    uint64_t index_buckets, index_pages, entry_pages, pagetab_cap;
    uint64_t proc_off, stripe_off, class_off, pagetab_off, data_off, file_size;
};
/* The geometry a map of cfg has: with page_size 0, the pages of today's
 * rule (FORMAT.md §2); else those pages (a map of format version 1 or 2). */
int hmm__plan_geometry(const hmm_config *cfg, uint32_t page_size, struct hmm_geometry *g);
/* The page size of maps of format versions 1 and 2, made before
 * 2026-12-05: 64 to 127 pages of at least 64 KiB (header.c). */
uint32_t hmm__page_size_before_20261205(uint64_t size);
uint32_t hmm__layout_signature(void);

/* ---- fileio.c ---- */
/* Keep a received descriptor of one of the map's files (hmm_open_fd): a
 * close-on-exec copy of fd, mapped by map(m, copy, arg); the caller has
 * checked the file is the right one.  0 or a failure naming what. */
int hmm__adopt_fd(hmm_t *m, int fd, const char *what, int (*map)(hmm_t *m, int fd, uint64_t arg), uint64_t arg);
/* Make fd size bytes long with every block allocated: hmm__allocate of
 * [0, size).  0, or -ENOSPC (or another -errno) with the size unchanged. */
int hmm__file_allocate(int fd, uint64_t size);

/* ---- header.c (FORMAT.md §3, the range table) ---- */
/* Check every header field of a map file against the others, from a copy
 * read before mapping; fill the handle's geometry.  HMM_CORRUPT or
 * HMM_INCOMPAT with the field named in the detail. */
int hmm__header_validate(hmm_t *m, const union hmm_header_block *blk, uint64_t file_size);
/* The checks that need the page table (index words), once mapped. */
int hmm__header_validate_mapped(hmm_t *m);

/* ---- metrics.c ---- */
int hmm__metrics_open(hmm_t *m, const char *dir, unsigned mode);
void hmm__metrics_close(hmm_t *m);
int hmm__metrics_adopt(hmm_t *m, int fd); /* hmm_open_fd: map a received metrics fd (-1: none) */
void hmm__metrics_bind(hmm_t *m, uint32_t proc_slot_tag); /* count into this process's slot */
void hmm__metrics_fold(hmm_t *m, uint32_t proc_slot_index); /* a closed or dead process's counts into the totals */
void hmm__metrics_sum(hmm_t *m, uint64_t *counters);
/* This thread's number for counting_thread, 0 until it first counts; a
 * fork's child starts again at 0 (proc.c), so it never passes for the
 * parent's thread.  initial-exec: one %fs-relative load, no call. */
extern _Thread_local uint64_t hmm__thread_id __attribute__((tls_model("initial-exec")));
void hmm__metrics_add_other(hmm_t *m, enum hmm_counter c, uint64_t n);
void hmm__metrics_forget_thread(void); /* fork's child (proc.c) */
/* Counting, usually a plain add on a line only this process writes (no
 * lock prefix: a locked add is a full barrier that keeps the next get's
 * loads from starting; metrics.c). */
static inline void metrics_add(hmm_t *m, enum hmm_counter c, uint64_t n)
{
    struct hmm_metrics_slot *s = atomic_load_explicit(&m->mslot, memory_order_relaxed);
    if (!s)
        return;
    if (__builtin_expect(atomic_load_explicit(&m->counting_thread, memory_order_relaxed) == hmm__thread_id, 1)) {
        /* Only this thread writes this word while it is bound (or a
         * folder after this process died or closed): a relaxed load and
         * store is a plain add, and loses nothing. */
        atomic_store_explicit(&s->c[c], atomic_load_explicit(&s->c[c], memory_order_relaxed) + n,
                              memory_order_relaxed);
        return;
    }
    hmm__metrics_add_other(m, c, n);
}
/* A get: gets + 1, misses + miss, with one look at the slot. */
static inline void metrics_count_get(hmm_t *m, bool miss)
{
    struct hmm_metrics_slot *s = atomic_load_explicit(&m->mslot, memory_order_relaxed);
    if (!s)
        return;
    if (__builtin_expect(atomic_load_explicit(&m->counting_thread, memory_order_relaxed) == hmm__thread_id, 1)) {
        atomic_store_explicit(&s->c[HMM_C_GETS], atomic_load_explicit(&s->c[HMM_C_GETS], memory_order_relaxed) + 1,
                              memory_order_relaxed);
        if (miss)
            atomic_store_explicit(&s->c[HMM_C_MISSES],
                                  atomic_load_explicit(&s->c[HMM_C_MISSES], memory_order_relaxed) + 1,
                                  memory_order_relaxed);
        return;
    }
    hmm__metrics_add_other(m, HMM_C_GETS, 1);
    if (miss)
        hmm__metrics_add_other(m, HMM_C_MISSES, 1);
}

/* ---- replog.c (FORMAT.md §13) ---- */
int hmm__replog_open(hmm_t *m, const char *dir, unsigned mode);
void hmm__replog_close(hmm_t *m);
int hmm__replog_adopt(hmm_t *m, int fd);  /* hmm_open_fd: map a received log fd (-1: none) */
/* Reserve and fill the log record of the change the holder of stripe is
 * making (stripe lock held); commit or void it once the change is
 * published or abandoned. */
int hmm__replog_append_locked(hmm_t *m, uint32_t stripe, unsigned op, unsigned tag, uint64_t expire_ms,
                         const void *key, size_t klen, const void *val, size_t vlen);
void hmm__replog_commit_locked(hmm_t *m, uint32_t stripe);
void hmm__replog_void_locked(hmm_t *m, uint32_t stripe);
/* Recovery of a dead holder's record: commit it when its change was
 * published, else void it (stripe lock held). */
void hmm__replog_recover_locked(hmm_t *m, uint32_t stripe, bool published);
/* The process with slot tag died: repair the append lock if it held it. */
void hmm__replog_repair_dead(hmm_t *m, uint32_t tag);
/* Cold start: rebuild the append lock and finish a reservation its dead holder left. */
void hmm__replog_cold_start(hmm_t *m);
uint64_t hmm__replog_record_bytes(size_t klen, size_t vlen);
uint64_t hmm__replog_capacity_for(uint64_t replog_size, uint32_t max_value);
uint64_t hmm__replog_checksum(const struct hmm_replog_rec *r, uint64_t seq);
/* Settle the RESERVED record seq at pos whose writer held stripe: 0 when
 * it is decided now, -EBUSY while a live writer holds the stripe. */
int hmm__replog_settle(hmm_t *m, uint32_t stripe, uint64_t pos, uint64_t seq);

/* The cold-start mark (FORMAT.md §10): a cold starter's pid while it runs. */
static inline hmm_atomic_u64 *hmm__cold_mark(const hmm_t *m)
{
    return (hmm_atomic_u64 *)((uint8_t *)m->hdr + HMM_COLD_OFF);
}

/* ---- repl_state.c (FORMAT.md §3, role block) ---- */
/* The role word, HMM_ROLE_MAKE(role, epoch): one relaxed load, since a
 * role changes only while no writer but the daemon runs (a promotion
 * stops the replica daemon first), so no ordering is needed with data. */
static inline uint64_t hmm__role_word(const hmm_t *m)
{
    const struct hmm_role_block *rb = (const struct hmm_role_block *)((const uint8_t *)m->hdr + HMM_ROLE_OFF);
    return atomic_load_explicit(&rb->role_epoch, memory_order_relaxed);
}
/* HMM_REPLICA with a detail naming the primary. */
int hmm__replica_refusal(hmm_t *m);

/* ---- proc.c ---- */
/* Bumped in a fork's child (proc.c); a handle whose slot_epoch equals it
 * has its slot in this process. */
extern _Atomic uint64_t hmm__fork_epoch;
int hmm__proc_slot_claim(hmm_t *m);           /* hmm__proc_slot_ensure's slow path */
/* Claim our slot (again after fork).  Inline, since every write asks: the
 * usual answer is one compare.  Equal epochs mean this process claimed the
 * slot, on the slow path, which registered the fork handler first. */
static inline int hmm__proc_slot_ensure(hmm_t *m)
{
    /* Acquire pairs with the claimer's release store of slot_epoch: the
     * slot it claimed (proc_slot, the metrics binding) is seen with it. */
    if (__builtin_expect(atomic_load_explicit(&m->slot_epoch, memory_order_acquire) ==
                             atomic_load_explicit(&hmm__fork_epoch, memory_order_relaxed),
                         1))
        return 0;
    return hmm__proc_slot_claim(m);
}
void hmm__proc_slot_release(hmm_t *m);
/* The process of slot tag (slot + 1) is alive, or cannot be checked from
 * here (another pid namespace): 1; dead or a free slot: 0. */
int hmm__proc_slot_alive(hmm_t *m, uint32_t tag);
/* A pid a process recorded of itself (getpid()): 1 alive, or presumed so
 * when a slot of the table names that pid in another pid namespace. */
int hmm__proc_pid_alive(hmm_t *m, int64_t pid);
uint64_t hmm__proc_start_time(int64_t pid);
void hmm__proc_repair_dead(hmm_t *m);         /* open-time scan of the process table */
void hmm__proc_repair_dead_locks(hmm_t *m);   /* the same without reaping slots (hmm_stat) */
/* Our slot + 1 for owner_proc fields (0: no slot). */
static inline uint32_t hmm__proc_self_tag(hmm_t *m)
{
    return atomic_load_explicit(&m->proc_slot, memory_order_relaxed);
}
/* Entries of live processes: one that exited without hmm_close (a program
 * under the DNS shim always does) keeps its entry until an open reaps it. */
uint32_t hmm__procs_alive(hmm_t *m);

/* ---- lock.c ---- */
int hmm__lock_init_shared(pthread_mutex_t *mu);
/* hmm__lock_robust() when its trylock answered trylock_rc (lock.c). */
int hmm__lock_robust_slow(hmm_t *m, pthread_mutex_t *mu, int trylock_rc, void (*repair)(hmm_t *, uint32_t),
                          uint32_t arg, const char *what);
/* Lock a robust mutex of the map, waiting; when its holder died, run
 * repair(m, arg) first (what and arg name the lock in an error).  Inline:
 * the replication log's append lock is taken on every logged write, and
 * uncontended it is a trylock and a test. */
static inline int hmm__lock_robust(hmm_t *m, pthread_mutex_t *mu, void (*repair)(hmm_t *, uint32_t), uint32_t arg,
                                   const char *what)
{
    int rc = pthread_mutex_trylock(mu);
    if (__builtin_expect(rc != 0, 0))
        return hmm__lock_robust_slow(m, mu, rc, repair, arg, what);
    return 0;
}
int hmm__lock_stripe_slow(hmm_t *m, uint32_t stripe, int trylock_rc, bool wait);
void hmm__seq_end_free(struct hmm_stripe *s);
/* The stripe's lock was just taken: name the holder's process, and make
 * sure seq is even (odd with the lock free is impossible unless the file
 * was damaged; left so, every reader of the stripe would take the slow
 * path). */
static inline void hmm__stripe_locked(hmm_t *m, struct hmm_stripe *s)
{
    atomic_store_explicit(&s->owner_proc, hmm__proc_self_tag(m), memory_order_relaxed);
    if (__builtin_expect(atomic_load_explicit(&s->seq, memory_order_relaxed) & 1, 0))
        hmm__seq_end_free(s);
}
/* Lock a key's stripe, waiting; a dead holder's work is repaired first.
 * Inline, as every write takes one: the uncontended lock is a trylock,
 * two stores and a test; waiting, EOWNERDEAD and errors are lock.c's. */
static inline int hmm__lock_stripe(hmm_t *m, uint32_t stripe)
{
    struct hmm_stripe *s = &m->stripes[stripe];
    int rc = pthread_mutex_trylock(&s->lock);
    if (__builtin_expect(rc != 0, 0))
        return hmm__lock_stripe_slow(m, stripe, rc, true);
    hmm__stripe_locked(m, s);
    return 0;
}
static inline void hmm__unlock_stripe(hmm_t *m, uint32_t stripe)
{
    struct hmm_stripe *s = &m->stripes[stripe];
    atomic_store_explicit(&s->owner_proc, 0, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
}
int hmm__lock_class(hmm_t *m, uint32_t cls);
void hmm__unlock_class(hmm_t *m, uint32_t cls);
int hmm__lock_pages(hmm_t *m);
void hmm__unlock_pages(hmm_t *m);
void hmm__seq_begin_free(struct hmm_stripe *s);
/* 0 locked, -EBUSY held by another (an evictor must not wait for a stripe). */
int hmm__trylock_stripe(hmm_t *m, uint32_t stripe);
/* The growth lock: one index growth runs at a time (grow.c). */
int hmm__lock_grow(hmm_t *m);
void hmm__unlock_grow(hmm_t *m);

/* ---- slab.c ---- */
#define HMM_CLASS_RUN UINT32_MAX        /* "no class": a run of whole pages */
uint32_t hmm__slab_class_for_size(const hmm_t *m, uint64_t bytes);
uint32_t hmm__slab_compute_classes(uint32_t page_size, uint32_t factor_pct, uint32_t *sizes);
/* Allocate a chunk of at least bytes for stripe's operation; records it in
 * the stripe's intent.new_off as part of the commit (FORMAT.md §8 step 2). */
int hmm__slab_alloc(hmm_t *m, uint32_t stripe, uint64_t bytes, uint64_t *off);
/* Free a chunk of stripe's operation; clears *intent_field at the commit. */
int hmm__slab_free(hmm_t *m, uint32_t stripe, uint64_t off, hmm_atomic_u64 *intent_field);
/* Retire the old chunk of stripe's operation (intent.old_off): keep it as
 * the stripe's spare (FORMAT.md §8) or free it into its class. */
int hmm__slab_retire(hmm_t *m, uint32_t stripe, uint64_t off);
/* Recovery (stripe lock held): the spare against the dead operation's
 * intent, before the intent's chunks are repaired ... */
void hmm__slab_spare_reconcile_locked(hmm_t *m, uint32_t stripe);
/* ... and after: a spare left marked by a dead writer is FREE again, a
 * damaged one is dropped. */
void hmm__slab_spare_settle_locked(hmm_t *m, uint32_t stripe);
/* Recovery: free off only if it is still a chunk that stripe's dead
 * operation owns (state in states_mask, owner stripe + 1). */
int hmm__slab_free_if_owned(hmm_t *m, uint32_t stripe, uint64_t off, unsigned states_mask,
                       hmm_atomic_u64 *intent_field);
static inline hmm_atomic_u64 *chunk_next(hmm_t *m, uint64_t off)
{
    return (hmm_atomic_u64 *)(m->base + off + HMM_FREE_NEXT_OFF);
}
uint64_t hmm__slab_page_of(hmm_t *m, uint64_t off);            /* page number, UINT64_MAX outside */
bool hmm__slab_valid_chunk(hmm_t *m, uint32_t cls, uint64_t off);
/* Link a chunk of class cls into its free list (class lock held). */
void hmm__slab_free_chunk_locked(hmm_t *m, uint32_t cls, uint64_t off, hmm_atomic_u64 *intent_field);
/* Size in bytes of the chunk at off, 0 if off is not a chunk boundary. */
uint64_t hmm__slab_chunk_size(hmm_t *m, uint64_t off);
/* Allocate n whole pages as a run of the given head kind; *page receives the
 * first.  Without may_grow, HMM__NOPAGE when no free run is there. */
int hmm__pages_alloc_run_locked(hmm_t *m, uint64_t n, unsigned head_kind, bool may_grow, uint64_t *page);
#define HMM__NOPAGE (-30999)    /* internal: no free page, the file was not grown */
/* Give stripe t's spare back to its class (stripe t locked; FORMAT.md §8). */
int hmm__slab_spare_give_back_locked(hmm_t *m, uint32_t t);

/* The page class cls carves from (carve_end lies at its chunks' end), or
 * UINT64_MAX: the page to stop carving from when it leaves the class. */
static inline uint64_t hmm__class_carve_page(hmm_t *m, uint32_t cls)
{
    uint64_t stop = atomic_load_explicit(&m->classes[cls].carve_end, memory_order_relaxed);
    return stop ? hmm__slab_page_of(m, stop - 1) : UINT64_MAX;
}

/* The chunks class cls has not carved yet: [*from, *end), inside one page
 * (the carve page), or false when there are none.  carve_off alone cannot
 * say which page that is: once a page's last chunk is carved it equals
 * carve_end, and for a class whose chunks fill a page exactly that is the
 * first byte of the next page, which may be a page of this very class full
 * of live entries.  Read as "nothing carved there", such a page looked
 * empty, was handed back and reused with its entries still indexed. */
static inline bool hmm__class_uncarved(hmm_t *m, uint32_t cls, uint64_t *from, uint64_t *end)
{
    const struct hmm_class *c = &m->classes[cls];
    uint64_t off = atomic_load_explicit(&c->carve_off, memory_order_relaxed);
    uint64_t stop = atomic_load_explicit(&c->carve_end, memory_order_relaxed);
    if (off == 0 || off >= stop)
        return false;
    *from = off;
    *end = stop;
    return true;
}

/* ---- compact.c (FORMAT.md §6 "Pages come back") ---- */
/* Hand the empty pages of every class back to the free pages; how many. */
size_t hmm__pages_return_empty(hmm_t *m);
/* The map is out of pages: empty the sparsest page of another class than
 * needy by moving its entries, and hand it back.  0, or HMM_FULL. */
int hmm__compact_for_class(hmm_t *m, uint32_t held_stripe, uint32_t needy);
/* Empty page p of class cls (moving, or in cache mode evicting, its
 * entries) and hand it back.  0, or HMM_FULL when it could not be emptied. */
int hmm__page_evacuate(hmm_t *m, uint32_t held_stripe, uint32_t cls, uint64_t p);
/* Reclaim expired entries (deleted on behalf of their stripes, not logged),
 * a bounded sweep from the page hand; how many.  Holding only held_stripe. */
size_t hmm__reclaim_expired(hmm_t *m, uint32_t held_stripe);
/* Is off in the page leaving class cls?  (class lock held) */
bool hmm__page_leaving(hmm_t *m, uint32_t cls, uint64_t off);
/* Class repair of an interrupted page hand-back or move (class lock held). */
void hmm__compact_recover_class_locked(hmm_t *m, uint32_t cls);
/* The same when the mover (named by pid) died outside the lock. */
void hmm__compact_check_owner_locked(hmm_t *m, uint32_t cls);
/* This thread is emptying a page (see compact.c).  Inline, one %fs-relative
 * byte: the allocator asks three times a put. */
extern _Thread_local bool hmm__relocating_flag __attribute__((tls_model("initial-exec")));
static inline void hmm__set_relocating(bool on) { hmm__relocating_flag = on; }
static inline bool hmm__relocating(void) { return hmm__relocating_flag; }

/* ---- entry.c ---- */
/* The entry header at off, bounds- and alignment-checked, or NULL. */
static inline struct hmm_entry *entry_at(hmm_t *m, uint64_t off)
{
    if (off < m->data_off || (off & (HMM_ALIGN - 1)))
        return NULL;
    return hmm_at(m, off, HMM_ENTRY_HDR);
}
/* The chunk at off, unchecked: for offsets the allocator itself keeps
 * (free lists, page walks, the eviction hand), never ones read from the index. */
static inline struct hmm_entry *hmm__chunk(hmm_t *m, uint64_t off) { return (struct hmm_entry *)(m->base + off); }
static inline uint8_t *entry_key(struct hmm_entry *e) { return (uint8_t *)e + HMM_ENTRY_HDR; }
static inline uint8_t *entry_val(struct hmm_entry *e) { return (uint8_t *)e + HMM_ENTRY_HDR + e->klen; }
static inline uint64_t entry_bytes(uint64_t klen, uint64_t vlen) { return HMM_ENTRY_HDR + klen + vlen; }
/* Entry with key and value in bounds, or NULL.  These small accessors are
 * inline: a put uses each once or more, and their calls cost as much as
 * their bodies. */
static inline struct hmm_entry *hmm__entry_whole_at(hmm_t *m, uint64_t off)
{
    struct hmm_entry *e = entry_at(m, off);
    if (!e)
        return NULL;
    /* klen and vlen are read once: a concurrent writer may change them, and
     * the check must hold for the values the caller then uses. */
    uint32_t vlen = *(volatile uint32_t *)&e->vlen;
    uint16_t klen = *(volatile uint16_t *)&e->klen;
    if (klen == 0 || vlen > m->max_value || !hmm_at(m, off, entry_bytes(klen, vlen)))
        return NULL;
    return e;
}
uint32_t hmm__entry_checksum(const struct hmm_entry *e);
/* Set a chunk's owner (stripe + 1; HMM__NO_STRIPE wraps to 0, "nobody") and
 * state.  Release: the state is stored last, so whoever sees the state
 * also sees the owner. */
static inline void hmm__entry_mark(hmm_t *m, uint64_t off, uint32_t stripe, uint8_t state)
{
    struct hmm_entry *e = (struct hmm_entry *)(m->base + off);
    atomic_store_explicit(&e->owner, (uint16_t)(stripe + 1), memory_order_relaxed);
    atomic_store_explicit(&e->state, state, memory_order_release);
}
/* The stripe of a chunk no operation holds (FREE, or LIVE again after a
 * repair): the owner field keeps stripe + 1, so this stores 0, "nobody". */
#define HMM__NO_STRIPE UINT32_MAX
static inline bool hmm__entry_expired(const struct hmm_entry *e, uint64_t now_ms)
{
    return e->expire_ms != 0 && e->expire_ms <= now_ms;
}
/* XXH3_64bits (the index's hash: part of the format), with the branch for
 * short keys inline: the call and XXH3's dispatch on length were a third
 * of hashing a 16-byte key. */
static inline __attribute__((always_inline)) uint64_t key_hash(const void *key, size_t klen)
{
    if (__builtin_expect(klen <= 16, 1))
        return XXH3_len_0to16_64b((const xxh_u8 *)key, klen, XXH3_kSecret, 0);
    return XXH3_64bits(key, klen);
}

/* Keys and values are often short (a 16-byte key, a counter or an
 * offset): inline copies up to 16 bytes (overlapping 8- or 4-byte moves),
 * memcpy beyond.  A get copies the value out, a put the key and value
 * into the entry and into its log record. */
static inline void hmm__copy_small(uint8_t *dst, const uint8_t *src, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n) {
        memcpy(dst, src, n);
    }
}

/* ---- index.c ---- */
static inline uint16_t hash_tag(uint64_t h) { return (uint16_t)(h >> 48); }
static inline uint32_t hash_stripe(const hmm_t *m, uint64_t h) { return hash_tag(h) & m->stripe_mask; }
/* Home bucket: grows with the hash's low 32 bits whatever the index size,
 * which is what lets cursors walk in hash order across growth. */
static inline uint64_t hash_home(const struct hmm_ix *ix, uint64_t h)
{
    return (uint64_t)(((unsigned __int128)(uint32_t)h * ix->nb) >> 32);
}
static inline uint64_t ix_next(const struct hmm_ix *ix, uint64_t b) { return b + 1 == ix->nb ? 0 : b + 1; }

/* ---- the bucket's geometry: 7 slots and a count in format 1, 2 cells and
 * a count byte after the buckets in format 2 (FORMAT.md §7) ---- */
static inline bool ix_cells(const struct hmm_ix *ix) { return ix->ovf != NULL; }
static inline unsigned ix_slots(const struct hmm_ix *ix) { return ix_cells(ix) ? HMM_CELL_SLOTS : HMM_BUCKET_SLOTS; }
static inline struct hmm_cell *ix_cell(const struct hmm_ix *ix, uint64_t b, unsigned j)
{
    return &((struct hmm_cell_bucket *)(void *)&ix->bk[b])->cell[j];
}
static inline hmm_atomic_u64 *ix_slot(const struct hmm_ix *ix, uint64_t b, unsigned j)
{
    return ix_cells(ix) ? &ix_cell(ix, b, j)->word : &ix->bk[b].slot[j];
}
/* The bucket a slot of ix lies in. */
static inline uint64_t ix_bucket_of(const struct hmm_ix *ix, const hmm_atomic_u64 *slot)
{
    return (uint64_t)((const uint8_t *)slot - (const uint8_t *)ix->bk) / sizeof(struct hmm_bucket);
}
/* Keys that probed past bucket b (a hint for lock-free readers: relaxed). */
static inline uint64_t ix_overflow(const struct hmm_ix *ix, uint64_t b)
{
    return ix_cells(ix) ? atomic_load_explicit(&ix->ovf[b], memory_order_relaxed)
                        : atomic_load_explicit(&ix->bk[b].meta, memory_order_relaxed);
}
/* A key probes past bucket b.  A count byte stops at 255: past a crash's
 * leftovers (counts are never too low, and may be too high) it then only
 * makes lookups walk further, until the next growth starts from zero. */
static inline void ix_overflow_add(const struct hmm_ix *ix, uint64_t b)
{
    if (!ix_cells(ix)) {
        atomic_fetch_add_explicit(&ix->bk[b].meta, 1, memory_order_relaxed);
        return;
    }
    uint8_t v = atomic_load_explicit(&ix->ovf[b], memory_order_relaxed);
    while (v < UINT8_MAX && !atomic_compare_exchange_weak_explicit(&ix->ovf[b], &v, (uint8_t)(v + 1),
                                                                   memory_order_relaxed, memory_order_relaxed))
        ;
}
/* A key that probed past bucket b went: never below zero, and a count byte
 * that stopped at 255 stays (it no longer knows how many it stands for). */
static inline void ix_overflow_sub(const struct hmm_ix *ix, uint64_t b)
{
    if (!ix_cells(ix)) {
        uint64_t v = atomic_load_explicit(&ix->bk[b].meta, memory_order_relaxed);
        while (v > 0 && !atomic_compare_exchange_weak_explicit(&ix->bk[b].meta, &v, v - 1, memory_order_relaxed,
                                                               memory_order_relaxed))
            ;
        return;
    }
    uint8_t v = atomic_load_explicit(&ix->ovf[b], memory_order_relaxed);
    while (v > 0 && v < UINT8_MAX &&
           !atomic_compare_exchange_weak_explicit(&ix->ovf[b], &v, (uint8_t)(v - 1), memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}
/* Bytes of an index run of nb buckets: format 2's count bytes follow the
 * buckets, rounded to a line. */
static inline uint64_t hmm__index_run_bytes(uint64_t nb, bool cells)
{
    return nb * sizeof(struct hmm_bucket) + (cells ? (nb + 63) / 64 * 64 : 0);
}
/* Decode and bounds-check an index word of the header (0 is HMM_CORRUPT). */
int hmm__index_view_slow(hmm_t *m, uint64_t word, struct hmm_ix *ix);
static inline int index_view(hmm_t *m, uint64_t word, struct hmm_ix *ix)
{
    uint64_t nb = HMM_INDEX_BUCKETS(word);
    uint64_t off = m->data_off + (HMM_INDEX_PAGE(word) << m->page_shift);
    uint64_t limit = atomic_load_explicit(&m->limit, memory_order_relaxed);
    if (__builtin_expect(word == 0 || nb < HMM_MAX_PROBE || off > limit ||
                             hmm__index_run_bytes(nb, m->cells) > limit - off, 0))
        return hmm__index_view_slow(m, word, ix);
    ix->bk = (struct hmm_bucket *)(m->base + off);
    ix->nb = nb;
    ix->ovf = m->cells ? (_Atomic uint8_t *)(void *)(ix->bk + nb) : NULL;
    return 0;
}
/* The current index and the one being drained (old->nb == 0 when none). */
static inline int index_views(hmm_t *m, struct hmm_ix *cur, struct hmm_ix *old)
{
    /* Current first: a grower stores old before it stores the new current
     * (release), so seeing the new current implies seeing the old one. */
    uint64_t wc = atomic_load_explicit(&m->hdr->index_cur, memory_order_acquire);
    uint64_t wo = atomic_load_explicit(&m->hdr->index_old, memory_order_acquire);
    int rc = index_view(m, wc, cur);
    old->nb = 0;
    old->bk = NULL;
    if (__builtin_expect(rc == 0 && wo != 0 && wo != wc, 0))
        rc = index_view(m, wo, old);
    return rc;
}
/* Both indexes as the header names them now, decoded once per change of
 * the header's words and cached in the handle; scratch holds them when
 * the cache cannot (it is full, or another thread is filling it).  NULL
 * (and *rc) when an index fails its bounds check. */
const struct hmm__view *hmm__index_view_refresh(hmm_t *m, uint64_t wc, uint64_t wo, struct hmm__view *scratch,
                                                int *rc);
static inline const struct hmm__view *hmm__index_cached(hmm_t *m, struct hmm__view *scratch, int *rc)
{
    /* Current first, as index_views(): a grower stores old before the new
     * current (release), so seeing the new current implies seeing old. */
    uint64_t wc = atomic_load_explicit(&m->hdr->index_cur, memory_order_acquire);
    uint64_t wo = atomic_load_explicit(&m->hdr->index_old, memory_order_acquire);
    /* Acquire pairs with the release store that published the view
     * after its fields were written. */
    const struct hmm__view *v = atomic_load_explicit(&m->view, memory_order_acquire);
    if (__builtin_expect(v != NULL && v->word_cur == wc && v->word_old == wo, 1))
        return v;
    return hmm__index_view_refresh(m, wc, wo, scratch, rc);
}
/* Keys in the map: the stripes' counts summed without their locks, so
 * only an estimate while writers run (stat.c). */
uint64_t hmm__items_total(hmm_t *m);
/* index_lookup() and index_find() are in lookup.h (inline). */
/* Claim an empty slot for a new key and publish off in it (FORMAT.md §7).
 * *passed receives how many full buckets the insert walked past, *slot
 * (when not NULL) the slot claimed. */
int hmm__index_insert_locked(hmm_t *m, const struct hmm_ix *ix, uint64_t hash, uint64_t off, unsigned *passed,
                             hmm_atomic_u64 **slot);
/* Format 2: give the cell of a slot just published (without a copy) the
 * copy of entry e, when e can have one (FORMAT.md §7). */
void hmm__cell_copy_locked(hmm_atomic_u64 *slot, const struct hmm_entry *e);
/* The same from a cell with a copy, both held by the caller's stripe. */
void hmm__cell_copy_cell_locked(hmm_atomic_u64 *slot, const struct hmm_cell *from);
/* Clear a slot of ix found by a lookup and fix the overflow counts. */
void hmm__index_remove_locked(hmm_t *m, const struct hmm_ix *ix, uint64_t hash, hmm_atomic_u64 *slot);
/* The slot of ix holding off in hash's probe sequence, or NULL. */
hmm_atomic_u64 *hmm__index_slot_of_locked(const struct hmm_ix *ix, uint64_t hash, uint64_t off);
bool hmm__index_reachable_locked(hmm_t *m, uint64_t hash, uint64_t off);

/* ---- grow.c ---- */
/* Extend the file by at least n pages (pages lock held).  HMM_FULL at max_size. */
int hmm__grow_file_locked(hmm_t *m, uint64_t n, bool for_index);
/* Start doubling the index unless a growth runs; takes no lock the caller holds. */
int hmm__grow_index_start(hmm_t *m);
/* Move a few buckets of the index being drained; called holding no lock. */
void hmm__grow_index_help(hmm_t *m);
/* Move the key in old index slot (stripe lock held), FORMAT.md §10. */
int hmm__grow_move_slot_locked(hmm_t *m, uint32_t stripe, const struct hmm_ix *old, uint64_t word_old,
                               hmm_atomic_u64 *slot);
/* Free every index run that is neither index_cur nor index_old (FORMAT.md
 * §10, growth step 5).  Pages lock held. */
void hmm__index_runs_free_retired_locked(hmm_t *m);
/* Repair a move whose mover died (stripe lock held). */
void hmm__grow_recover_move_locked(hmm_t *m, uint32_t stripe);
/* Drain all of the old index now (cold start, or a growth whose helpers died). */
int hmm__grow_index_finish(hmm_t *m);
/* Repair of the growth lock's dead holder (lock held; the second argument,
 * unused, makes it a lock repair like the others, lock.c). */
void hmm__grow_recover_locked(hmm_t *m, uint32_t unused);

/* ---- cache/evict.c ---- */
/* Cache mode: make room in class cls by evicting (CLOCK) or by taking a page
 * from another class.  Called holding only the caller's stripe. */
int hmm__evict_for_class(hmm_t *m, uint32_t held_stripe, uint32_t cls);
/* Cache mode: make a run of n free pages by emptying a window of pages
 * that hold entries (never the index).  0 when it did, else HMM_FULL.
 * Called holding only the caller's stripe. */
int hmm__evict_for_run(hmm_t *m, uint32_t held_stripe, uint64_t n);
/* Evict the entry in chunk x if it still is hash's LIVE entry (with rescue:
 * move it instead when it was used lately).  1 done, 0 skipped, < 0 error. */
int hmm__evict_chunk(hmm_t *m, uint32_t held, uint64_t x, uint64_t hash, bool expired, bool rescue);

/* ---- update.c ---- */
/* Move the entry in chunk off to another chunk of its class, as a put of
 * the same bytes, expiry and version (stripe lock held). */
int hmm__relocate_entry_locked(hmm_t *m, uint32_t stripe, uint64_t off);
/* Delete chunk y, the LIVE entry of hash that slot of view holds, under
 * stripe's lock, its intent naming a delete of hash (update.c): steps 4-6
 * of FORMAT.md §8, retire, unpublish, free, and the stripe's gauges.  how:
 * HMM_DELETE_LOGGED commits the record the stripe reserved after the
 * unpublish; HMM_DELETE_EVICTION passes eviction's crash points (§12) and
 * frees the chunk into its class, never keeping it as the stripe's spare.
 * The caller clears (or gives back) the intent. */
#define HMM_DELETE_LOGGED 1u
#define HMM_DELETE_EVICTION 2u
int hmm__delete_locked(hmm_t *m, uint32_t stripe, const struct hmm_ix *view, uint64_t hash, hmm_atomic_u64 *slot,
                       uint64_t y, unsigned how);
int hmm__trylock_stripe(hmm_t *m, uint32_t stripe);

/* ---- read.c ---- */
int hmm__read_entry(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen,
               hmm_entry_info *info, bool count);

/* ---- recover.c ---- */
void hmm__recover_stripe_locked(hmm_t *m, uint32_t stripe);
/* Repair of the allocator's locks after EOWNERDEAD (lock held). */
void hmm__recover_class_locked(hmm_t *m, uint32_t cls);
void hmm__recover_pages_locked(hmm_t *m, uint32_t unused); /* unused: as the others (lock.c) */
void hmm__recount_stripe_locked(hmm_t *m, uint32_t stripe);
void hmm__recover_cold_start(hmm_t *m, bool alone);

/* ---- common argument checks ---- */
int hmm__check_key_fail(const hmm_t *m, const void *key, size_t klen); /* the error, with its message */
static inline int check_key(const hmm_t *m, const void *key, size_t klen)
{
    if (__builtin_expect(!m || !key || klen - 1 >= HMM_MAX_KEY, 0))
        return hmm__check_key_fail(m, key, klen);
    return 0;
}

#endif /* HMM_INTERNAL_H */
