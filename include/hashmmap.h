/*
 * hashmmap.h - a persistent, shared, crash-safe hash map in an mmap'ed file.
 *
 * This header is the whole public interface and its manual.
 *
 * A map lives in a directory (hmm_open) or in shared anonymous memory
 * (hmm_open_anon).  Every process that opens the same directory shares the
 * same map; children forked after hmm_open_anon share the parent's map.
 * A get is a handful of memory references and takes no lock; a put takes
 * one striped, process-shared, robust mutex.  A process killed at any
 * instruction, also while it holds a lock, leaves no torn entry, no stuck
 * lock and no leaked space: the next process that meets its work repairs
 * it (see docs/FORMAT.md).
 *
 * Conventions of every function:
 *   - 0 is success; anything else is negative: -errno for system errors
 *     (-ENOENT, -EACCES, -EINVAL for bad arguments, -ENOMEM, ...) or one of
 *     the HMM_* codes below.  hmm_strerror() has a sentence for each.
 *   - Four codes are answers rather than failures: HMM_NOTFOUND (the key
 *     is absent or expired), HMM_EXISTS (present), HMM_MISMATCH (its
 *     version changed), HMM_TOOSMALL (the value is longer than the buffer).
 *     A miss is a normal outcome of a lookup and costs no message.
 *   - hmm_last_error() describes the calling thread's latest call: after a
 *     failure, what failed (which map, which key length or limit, which
 *     check); after a success or an answer, "" (but for the two answers
 *     named at hmm_last_error).  Every call that can fail clears it on
 *     entry, so it never speaks of an older call.
 *   - A handle (hmm_t) may be used by many threads at once, and by a child
 *     after fork() (the child gets its own process-table slot lazily).
 *   - Keys are 1..65535 bytes; values 0..max_value bytes (fixed at creation,
 *     at least 1 MiB).
 *
 * Quick start:
 *
 *     hmm_t *m;
 *     int rc = hmm_open(&m, "/var/lib/app/offsets", NULL);
 *     if (rc) { fprintf(stderr, "%s\n", hmm_strerror(rc)); return 1; }
 *     hmm_put(m, "orders/3", 8, "1042", 4, 0, 0);
 *     char buf[64]; size_t len = sizeof buf;
 *     if (hmm_get(m, "orders/3", 8, buf, &len) == 0) printf("%.*s\n", (int)len, buf);
 *     hmm_close(m);
 */
#ifndef HASHMMAP_H
#define HASHMMAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(HMM_BUILDING_LIBRARY)
#define HMM_EXPORT __attribute__((visibility("default")))
#else
#define HMM_EXPORT
#endif

/* API version (the ABI version is libtool's -version-info; the file format
 * version is in docs/FORMAT.md and checked at open). */
#define HMM_VERSION_MAJOR 0
#define HMM_VERSION_MINOR 1
#define HMM_VERSION_PATCH 0

/* Return codes of the library itself, below the errno range.  The X-macro
 * keeps the enum, hmm_strerror() and hmm_errname() in one table. */
#define HMM_ERRNO_MAP(XX)                                                        \
    XX(NOTFOUND, -30900, "key not found (absent or expired)")                    \
    XX(EXISTS,   -30901, "key already exists")                                   \
    XX(MISMATCH, -30902, "entry version does not match the expected one")        \
    XX(FULL,     -30903, "map is full")                                          \
    XX(TOOSMALL, -30904, "buffer too small for the value")                       \
    XX(TOOBIG,   -30905, "key or value exceeds the map's size limits")           \
    XX(NOTNUM,   -30906, "value is not a 64-bit integer counter")                \
    XX(CORRUPT,  -30907, "map file is corrupted and cannot be repaired")         \
    XX(INCOMPAT, -30908, "map file has another format version, word size or byte order") \
    XX(BUSY,     -30909, "map is busy: a writer holds it and could not be waited for") \
    XX(REPLICA,  -30910, "map is a replica: only its replication daemon may write it until it is promoted")

enum hmm_error {
#define HMM_ERR_ENUM(name, value, text) HMM_##name = (value),
    HMM_ERRNO_MAP(HMM_ERR_ENUM)
#undef HMM_ERR_ENUM
};

/* hmm_config.flags */
#define HMM_CREATE   0x0001u /* create the map if it does not exist */
#define HMM_EXCL     0x0002u /* with HMM_CREATE: fail with HMM_EXISTS if it exists */
#define HMM_RDONLY   0x0004u /* open read-only: never writes a byte of the files */
#define HMM_CACHE    0x0008u /* cache mode: evict instead of HMM_FULL (set at creation) */
#define HMM_NOREPLOG 0x0010u /* no replication log (set at creation) */
#define HMM_NOMETRICS 0x0020u /* this handle counts nothing (the metrics file is still kept) */
/* This handle is the replication daemon's: it may write a map whose role is
 * replica (every other handle gets HMM_REPLICA from put, del, incr, cas).
 * A guard against mistakes, as Redis' replica-read-only, not access
 * control: file permissions are that. */
#define HMM_REPLICA_WRITER 0x0040u
/* Index cells keep a copy of each short entry (key of 1-16 bytes, value of
 * 1-8 bytes, no TTL), so a get of it reads one cache line instead of two;
 * the index takes about 30 bytes more per entry.  Set at creation, not
 * with HMM_CACHE; the map is then of format 2, which libraries before it
 * refuse to open (docs/FORMAT.md §7). */
#define HMM_INLINE 0x0080u
/* In hmm_stats.flags only: this handle has no metrics file mapped (it is
 * missing, truncated, of another format version or of another map; a
 * writable open makes it anew, a read-only one never writes it).  The
 * counters then read 0 but are unknown, not zero: show them as missing. */
#define HMM_STAT_NOMETRICS 0x80000000u

/* hmm_put flags */
#define HMM_NX 0x1u /* store only if the key is absent, else HMM_EXISTS */
#define HMM_XX 0x2u /* store only if the key is present, else HMM_NOTFOUND */

/* Limits. */
#define HMM_MAX_KEY 65535u
#define HMM_MIN_MAX_VALUE (1u << 20)
/* What hmm_open takes in hmm_config when it creates a map: over these it
 * fails with -EINVAL, so tools can refuse bad input before they create
 * anything. */
#define HMM_SIZE_MIN (UINT64_C(256) << 10)       /* a smaller size is raised to this */
#define HMM_SIZE_MAX UINT64_C(1539316278527)     /* ~1.4 TiB: the hash index stays under 2^32 buckets */
#define HMM_MAX_SIZE_MAX (UINT64_C(1) << 42)     /* max_size: 4 TiB */
#define HMM_MAX_VALUE_MAX (UINT32_MAX >> 1)      /* max_value: 2 GiB - 1 byte */
#define HMM_REPLOG_SIZE_MAX (UINT64_C(64) << 30) /* replog_size: 64 GiB */

typedef struct hmm hmm_t; /* opaque; one per process (thread-safe) */

/* Creation parameters; a zeroed struct gives the defaults.  Only flags and
 * mode matter when the map already exists: the rest is fixed at creation. */
typedef struct hmm_config {
    uint64_t size;           /* bytes for entries at creation; 0 = 64 MiB */
    uint64_t max_size;       /* the map may grow up to this; 0 = no growth beyond size */
    uint32_t flags;          /* HMM_CREATE, HMM_EXCL, HMM_RDONLY, HMM_CACHE, HMM_NOREPLOG,
                              * HMM_NOMETRICS, HMM_REPLICA_WRITER (see their definitions) */
    uint32_t mode;           /* permission bits of created files; 0 = 0600 */
    uint64_t default_ttl_ms; /* TTL for puts that pass 0; 0 = entries never expire */
    uint64_t replog_size;    /* bytes of the replication log ring; 0 = default */
    uint32_t max_value;      /* largest value in bytes; 0 = 1 MiB; raised to at least 1 MiB */
    uint32_t slab_factor_pct;/* growth factor of slab size classes in percent; 0 = 125 */
} hmm_config;

/* Event counters (metrics), kept in DIR/hashmmap.metrics in per-process
 * slots and summed by hmm_stat().  A process's counts survive its exit.
 * Handles opened HMM_RDONLY count nothing (they never write the files).
 * The X-macro gives each its index (HMM_C_...), its name and its meaning. */
#define HMM_COUNTER_MAP(XX)                                                             \
    XX(GETS, gets, "lookups (hmm_get, hmm_getv, cursor reads excluded)")                \
    XX(HITS, hits, "lookups that found the key")                                        \
    XX(MISSES, misses, "lookups that did not find the key (absent or expired)")         \
    XX(PUTS, puts, "entries stored (hmm_put, hmm_cas)")                                 \
    XX(DELETES, deletes, "entries deleted (hmm_del)")                                   \
    XX(INCRS, incrs, "counter increments (hmm_incr)")                                   \
    XX(CAS_FAILURES, cas_failures, "hmm_cas calls refused with HMM_MISMATCH")           \
    XX(EVICTIONS, evictions, "entries evicted to make room (cache mode)")               \
    XX(EXPIRATIONS, expirations, "expired entries reclaimed")                           \
    XX(RECOVERIES, recoveries, "repairs of work left behind by dead processes")         \
    XX(READ_RETRIES, read_retries, "optimistic reads retried after a concurrent write") \
    XX(LOCK_WAITS, lock_waits, "lock acquisitions that had to wait for another holder") \
    XX(GROWTH_STEPS, growth_steps, "file and index growth steps")                       \
    XX(FULL_ERRORS, full_errors, "writes refused with HMM_FULL")                       \
    XX(PAGES_RETURNED, pages_returned, "slab pages handed back to the free pages")       \
    XX(ENTRIES_MOVED, entries_moved, "entries moved out of pages being emptied")         \
    XX(SYNCS, syncs, "hmm_sync calls that flushed the map to stable storage")           \
    XX(UNSYNCED_POSITIONS, unsynced_positions,                                          \
       "replica positions stored ahead of changes applied but not yet synced")

enum hmm_counter {
#define HMM_COUNTER_ENUM(id, name, help) HMM_C_##id,
    HMM_COUNTER_MAP(HMM_COUNTER_ENUM)
#undef HMM_COUNTER_ENUM
    HMM_COUNTER_COUNT
};
#define HMM_COUNTERS_MAX 32 /* capacity of hmm_stats.counters; never shrinks */

/* Counters and sizes of a map, filled by hmm_stat(). */
typedef struct hmm_stats {
    uint64_t items;          /* live entries (expired ones not yet reclaimed included); a
                              * writable handle first repairs what dead writers left, a
                              * read-only one may be off by their last changes */
    uint64_t bytes_used;     /* bytes of live entries (header, key and value) */
    uint64_t bytes_total;    /* bytes of the data area available for entries */
    uint64_t size;           /* configured size at creation */
    uint64_t max_size;       /* growth limit (== size when the map cannot grow) */
    uint64_t file_size;      /* current size of the map file (or shared memory) */
    uint64_t index_buckets;  /* hash index buckets */
    uint64_t index_slots;    /* hash index slots (entries the index can address) */
    uint64_t generation;     /* bumped on every growth step */
    uint64_t recoveries;     /* repairs of work left behind by dead processes */
    uint64_t default_ttl_ms; /* TTL of puts that pass 0, fixed at creation; 0 = never expire */
    uint32_t max_key;        /* longest key in bytes (HMM_MAX_KEY) */
    uint32_t max_value;      /* longest value in bytes, fixed at creation */
    uint32_t page_size;      /* bytes of a slab page */
    uint32_t nstripes;       /* writer lock stripes */
    uint32_t nclasses;       /* slab size classes */
    uint32_t nprocs;         /* processes that have the map open now (live ones: a
                              * process that exited without hmm_close, not yet reaped
                              * by an open, is listed by hmm_procs as dead, not counted) */
    uint32_t format_version; /* version of the file format (docs/FORMAT.md) */
    uint32_t flags;          /* HMM_CACHE, HMM_NOREPLOG as created; HMM_RDONLY for this handle;
                              * HMM_STAT_NOMETRICS when the counters are unknown */
    uint64_t counters[HMM_COUNTERS_MAX]; /* indexed by enum hmm_counter */
    uint64_t created_ms;     /* when the map was made (ms since the epoch) */
    uint64_t reserved[15];   /* zero; room for later fields without an ABI break */
} hmm_stats;

/* Use of one slab size class, as listed by hmm_stat_classes(). */
typedef struct hmm_class_stats {
    uint32_t chunk_size;     /* bytes per chunk */
    uint32_t reserved0;
    uint64_t pages;          /* pages given to the class */
    uint64_t chunks_used;    /* chunks holding entries (or being written) */
    uint64_t chunks_total;   /* chunks the class's pages hold */
} hmm_class_stats;

/* One process that has the map open, as listed by hmm_procs(). */
typedef struct hmm_proc_info {
    int64_t  pid;
    uint64_t start_time;     /* process start time in clock ticks since boot */
    uint64_t opened_ms;      /* wall clock (ms since the epoch) when it opened the map */
    int      alive;          /* 1 if the process still exists, 0 if dead and not yet cleaned */
} hmm_proc_info;

/* What hmm_check() found. */
typedef struct hmm_check_result {
    uint64_t entries;        /* live, reachable, valid entries */
    uint64_t bad_entries;    /* reachable entries whose checksum or bounds fail */
    uint64_t bad_slots;      /* index slots pointing outside the data or at non-entries,
                              * free-list links and stripes' spare chunks naming chunks in use,
                              * and (HMM_INLINE maps) index copies that differ from their entry */
    uint64_t unreachable;    /* allocated chunks no index slot points at (leaked) */
    uint64_t free_chunks;    /* chunks on free lists or kept as a stripe's spare */
    uint64_t repaired;       /* problems fixed (with HMM_CHECK_REPAIR) */
} hmm_check_result;

#define HMM_CHECK_REPAIR 0x1u /* fix what can be fixed: drop bad entries, free leaked chunks */

/* ---- opening and closing ---- */

/* Open (and with HMM_CREATE, create) the map kept in directory dir.
 * cfg NULL means: create if missing, with defaults.  The directory is
 * created (mode plus search bits) when missing and HMM_CREATE is set.
 * Creation is atomic: other processes never see a half-made map.
 * Returns 0 and *m, or -ENOENT (missing, no HMM_CREATE), HMM_EXISTS
 * (HMM_EXCL and it exists), -EACCES, HMM_INCOMPAT, HMM_CORRUPT, -EINVAL.
 * Opening repairs the half-done work of processes found dead. */
HMM_EXPORT int hmm_open(hmm_t **m, const char *dir, const hmm_config *cfg);

/* Create a map in shared anonymous memory (a memfd).  Children forked
 * afterwards share it through the same handle.  HMM_RDONLY is refused. */
HMM_EXPORT int hmm_open_anon(hmm_t **m, const hmm_config *cfg);

/* Passing an anonymous map to an unrelated process (one that was not
 * forked from its creator: a re-exec'ed worker, a process a supervisor
 * hands it to).  An anonymous map is held by up to HMM_FD_COUNT file
 * descriptors (memfds): the map, its metrics and its replication log.
 * Send all of them, for instance over a unix socket with SCM_RIGHTS
 * (examples/anon_share.c), and open them with hmm_open_fd in the receiver.
 *
 * hmm_fd fills fds[HMM_FD_MAP], fds[HMM_FD_METRICS] and fds[HMM_FD_REPLOG]
 * (-1 where the map has none: no metrics, or HMM_NOREPLOG).  They belong to
 * the handle: do not close them; they stay valid until hmm_close (dup them
 * to keep them longer).  They carry O_CLOEXEC.  -EINVAL for a map kept in
 * a directory (other processes open the directory instead).
 *
 * hmm_open_fd opens the map those descriptors hold.  It duplicates them:
 * the caller may close its own at once.  flags: 0, HMM_RDONLY (never
 * writes a byte), HMM_NOMETRICS.  fds[HMM_FD_METRICS] may be -1 (this
 * handle then counts nothing); fds[HMM_FD_REPLOG] is required for a
 * writable handle of a map that keeps a log (every writer appends to the
 * same ring).  The header is validated as hmm_open validates a file:
 * HMM_CORRUPT, HMM_INCOMPAT, or -EINVAL when a descriptor is not what its
 * place says or belongs to another map.  The new handle is one more
 * sharer, like a forked child: it may itself be passed on with hmm_fd.
 * Sender and receiver must be in one pid namespace (the process table
 * tells live processes from dead ones by pid and start time). */
#define HMM_FD_MAP     0
#define HMM_FD_METRICS 1
#define HMM_FD_REPLOG  2
#define HMM_FD_COUNT   3
HMM_EXPORT int hmm_fd(hmm_t *m, int fds[HMM_FD_COUNT]);
HMM_EXPORT int hmm_open_fd(hmm_t **m, const int fds[HMM_FD_COUNT], unsigned flags);

/* Unmap and free the handle.  NULL is a no-op.  Must not race with other
 * calls on the same handle. */
HMM_EXPORT void hmm_close(hmm_t *m);

/* ---- entries ---- */

/* Copy the value of key into val.  *vlen in: capacity of val; out: the
 * value's length.  HMM_TOOSMALL when it does not fit (*vlen then holds the
 * size needed; val is untouched unless a put of the key raced the read, whose
 * first attempt may then have copied the older, shorter value into it);
 * HMM_NOTFOUND when absent or expired.  Takes no lock; sees a put entirely
 * or not at all. */
HMM_EXPORT int hmm_get(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen);

/* Like hmm_get, and also returns the entry's version (for hmm_cas).
 * Versions of one key only increase, also across deletes and restarts. */
HMM_EXPORT int hmm_getv(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen,
                        uint64_t *version);

/* Store val under key, atomically.  ttl_ms 0 means the map's default TTL
 * (none unless set at creation); any other value counts from now, and one
 * so large that now + ttl_ms would pass UINT64_MAX expires at UINT64_MAX
 * (saturates: in practice never, never wrapped into the past).
 * flags: 0, HMM_NX (only if absent: else HMM_EXISTS), HMM_XX (only if
 * present: else HMM_NOTFOUND).
 * HMM_TOOBIG for oversize keys or values; -EINVAL for a NULL or empty key;
 * -EBADF on a read-only handle; -ENOSPC when the disk has no room for the
 * file to grow.  HMM_FULL only when the file cannot grow and no size class
 * holds a page's worth of free chunks: freed space serves any size, and a
 * put succeeds whenever used chunk bytes + its chunk <= data area - one page
 * per size class in use (docs/FORMAT.md §6, "Pages come back"). */
HMM_EXPORT int hmm_put(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ttl_ms, unsigned flags);

/* Remove key.  HMM_NOTFOUND if absent or expired. */
HMM_EXPORT int hmm_del(hmm_t *m, const void *key, size_t klen);

/* Remove key only if its version (hmm_getv, hmm_get_info) is still
 * expected_version: the delete of an optimistic read-modify-write, which
 * never removes a value another writer stored since the read.
 * HMM_MISMATCH when the version differs, HMM_NOTFOUND if absent or expired. */
HMM_EXPORT int hmm_del_version(hmm_t *m, const void *key, size_t klen, uint64_t expected_version);

/* Add delta to the counter under key (created at 0 when absent) and return
 * the new value in *result (may be NULL).  A counter is a value holding a
 * decimal int64 in ASCII ("42", "-7"), so hmm_get returns readable text.
 * HMM_NOTNUM if the value is not such a number or the sum overflows. */
HMM_EXPORT int hmm_incr(hmm_t *m, const void *key, size_t klen, int64_t delta, int64_t *result);

/* Store val only if the key's version is still expected_version
 * (0: the key must be absent).  HMM_MISMATCH otherwise. */
HMM_EXPORT int hmm_cas(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ttl_ms, uint64_t expected_version);

/* ---- committed offsets ----
 *
 * For consumers that track a position per (topic, partition) or per file:
 * the value under key is "the highest offset committed", a decimal ASCII
 * number 0..INT64_MAX (so hmm_get, hmm_incr and `hashmmap get` read it;
 * FORMAT.md §6).  Commits never move it backwards, also when several
 * processes commit out of order: each commit is a hmm_getv/hmm_cas loop
 * that stores max(current, offset).  A process killed during a commit
 * leaves the old or the new value.  Key convention: "topic/partition"
 * ("orders/3"), built by hmm_offset_key.  Commit after processing: a
 * consumer killed in between reprocesses from the committed offset
 * (at-least-once), never skips.  Offsets are stored with the map's default
 * TTL and, in a cache map, may be evicted: keep them in a plain map
 * without a default TTL. */

/* Store max(current, offset) under key; *stored (may be NULL) receives the
 * value now stored (offset, or a larger one already there).  -EINVAL for
 * offset > INT64_MAX; HMM_NOTNUM when the key holds something that is not a
 * decimal offset; HMM_BUSY after 10000 lost races in a row. */
HMM_EXPORT int hmm_offset_commit(hmm_t *m, const void *key, size_t klen, uint64_t offset,
                                 uint64_t *stored);
/* The committed offset of key; HMM_NOTFOUND when nothing was committed
 * (start from the beginning), HMM_NOTNUM when the value is not an offset. */
HMM_EXPORT int hmm_offset_get(hmm_t *m, const void *key, size_t klen, uint64_t *offset);
/* Build the key "topic/partition" in buf (NUL-terminated); *klen gets its
 * length.  HMM_TOOSMALL when cap is too small (*klen then says how much is
 * needed, without the NUL); -EINVAL for an empty topic or partition < 0. */
HMM_EXPORT int hmm_offset_key(char *buf, size_t cap, const char *topic, int32_t partition,
                              size_t *klen);

/* What is kept with a value besides its bytes. */
typedef struct hmm_entry_info {
    uint64_t version;        /* as hmm_getv returns it */
    uint64_t expire_ms;      /* absolute expiry, ms since the epoch (wall clock); 0 = never */
    uint32_t tag;            /* type tag: HMM_TAG_RAW, HMM_TAG_COUNTER, or the application's */
    uint32_t reserved;
} hmm_entry_info;
#define HMM_TAG_RAW 0u       /* bytes stored by hmm_put / hmm_cas */
#define HMM_TAG_COUNTER 1u   /* a counter written by hmm_incr (decimal ASCII) */
#define HMM_TAG_MAX 255u     /* tags 2..255 are the application's (the SQLite extension uses some) */

/* Like hmm_get, and fills *info (may be NULL). */
HMM_EXPORT int hmm_get_info(hmm_t *m, const void *key, size_t klen, void *val, size_t *vlen,
                            hmm_entry_info *info);

/* Look up n keys at once: for each i, as hmm_get_info(m, keys[i], klens[i],
 * vals[i], &vlens[i], &infos[i]) would, with the result in rcs[i] (0,
 * HMM_NOTFOUND, HMM_TOOSMALL with vlens[i] the size needed, HMM_CORRUPT, or
 * an argument error for that key alone).  infos may be NULL; infos[i] is
 * filled when rcs[i] is 0 or HMM_TOOSMALL.  The keys are hashed first and
 * their index lines and entries prefetched together, so their cache misses
 * overlap: at sizes beyond the CPU's caches a key costs a fraction of a
 * hmm_get.  Each key is read as one hmm_get (lock-free, a put seen entirely
 * or not at all); the batch is not a snapshot: a put between two keys'
 * reads may be seen by one and not the other.  A key may appear several
 * times.  Counted as n gets.  Returns 0 (the results are in rcs), or
 * -EINVAL for a NULL handle or a NULL array (other than infos) with n > 0. */
HMM_EXPORT int hmm_get_batch(hmm_t *m, size_t n, const void *const keys[], const size_t klens[],
                             void *const vals[], size_t vlens[], int rcs[], hmm_entry_info infos[]);

/* Like hmm_put, and stores tag (0..HMM_TAG_MAX, else -EINVAL) with the value,
 * for applications that keep a type beside the bytes. */
HMM_EXPORT int hmm_put_tagged(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                              uint64_t ttl_ms, unsigned flags, unsigned tag);

/* Like hmm_cas, and stores tag (0..HMM_TAG_MAX, else -EINVAL) with the value:
 * an optimistic update that keeps the value's type (the SQLite extension's
 * UPDATE).  HMM_MISMATCH when the version is no longer expected_version. */
HMM_EXPORT int hmm_cas_tagged(hmm_t *m, const void *key, size_t klen, const void *val, size_t vlen,
                              uint64_t ttl_ms, uint64_t expected_version, unsigned tag);

/* ---- iteration ---- */

/* Weakly consistent iteration: a key present for the whole iteration is
 * returned exactly once; a key added or removed meanwhile may or may not
 * be; no key twice.  Never blocks writers.  Order is unspecified. */
typedef struct hmm_cursor hmm_cursor;
HMM_EXPORT int  hmm_cursor_open(hmm_t *m, hmm_cursor **c);
/* 0 and the next entry, or HMM_NOTFOUND at the end.  The pointers stay
 * valid until the next call on this cursor (they point at a private copy). */
HMM_EXPORT int  hmm_cursor_next(hmm_cursor *c, const void **key, size_t *klen,
                                const void **val, size_t *vlen);
HMM_EXPORT void hmm_cursor_close(hmm_cursor *c); /* NULL is a no-op */
/* Version, expiry and tag of the entry the last hmm_cursor_next returned. */
HMM_EXPORT int  hmm_cursor_info(hmm_cursor *c, hmm_entry_info *info);

/* ---- administration ---- */

/* Fill *st (every field, reserved ones zeroed) with the map's sizes as
 * they are now and the event counters summed over every process that has
 * or had the map open.  Takes no lock: under concurrent writers the gauges
 * (items, bytes_used) are each a recent value, not one snapshot.  0, or
 * -EINVAL for a NULL argument. */
HMM_EXPORT int hmm_stat(hmm_t *m, hmm_stats *st);
/* Flush the map to stable storage (msync + fsync of the map, then of its
 * replication log).  No-op for anonymous maps and read-only handles.  The
 * cost is that of writing every page dirtied since the last flush, plus a
 * journal commit: a replica daemon calls it once per position it stores,
 * not once per change.  It covers every change made before it began; it
 * may run in one thread while others write through the same handle (their
 * changes wait for the next sync).  Counted in the "syncs" counter. */
HMM_EXPORT int hmm_sync(hmm_t *m);
/* Name ("gets") and one-line meaning of counter id (enum hmm_counter);
 * NULL for an id out of range. */
HMM_EXPORT const char *hmm_counter_name(int id);
HMM_EXPORT const char *hmm_counter_help(int id);
/* Per size class use: fills up to cap entries of out, *n receives the
 * number of classes. */
HMM_EXPORT int hmm_stat_classes(hmm_t *m, hmm_class_stats *out, size_t cap, size_t *n);
/* List processes that have the map open: fills up to cap entries of out,
 * *n receives the total (which may exceed cap). */
HMM_EXPORT int hmm_procs(hmm_t *m, hmm_proc_info *out, size_t cap, size_t *n);
/* Verify every index slot and every allocated chunk.  With HMM_CHECK_REPAIR
 * (needs a writable handle) bad entries are dropped and leaked chunks freed;
 * writers wait meanwhile (a writable handle always holds them off).  A
 * read-only handle cannot: it walks again while writers move under it and
 * returns HMM_BUSY when they did during each of its walks.  Returns 0 when
 * the map is sound (or was made sound), HMM_CORRUPT when problems remain.
 * A repair is refused (HMM_CORRUPT, nothing changed, res as a check without
 * it) when more than 64 entries look damaged and more than look whole: the
 * index itself is then more likely damaged, and dropping would free data. */
HMM_EXPORT int hmm_check(hmm_t *m, unsigned flags, hmm_check_result *res);

/* ---- replication (docs/FORMAT.md, replication log; docs/PROTOCOL.md) ----
 *
 * Every put, delete, and the result of every incr and cas is appended to a
 * ring in DIR/hashmmap.replog (sized by hmm_config.replog_size, absent with
 * HMM_NOREPLOG) with a 64-bit sequence number and a checksum, in commit
 * order per key.  Records carry whole states (the value after the change,
 * absolute expiry), so applying a record twice is harmless: a replica that
 * restarts may re-apply from a slightly older position.  Evictions and
 * expirations are not logged: a replica's cache evicts on its own. */

/* The map's identity and the window of its log.  -ENOTSUP when the map was
 * created with HMM_NOREPLOG.  last_seq 0 means nothing was logged yet; the
 * log then holds [first_seq, last_seq] (first_seq > last_seq: empty). */
/* No typedef: C gives a typedef and a function one name space. */
struct hmm_replog_info {
    uint8_t  map_id[16];     /* random identity made at creation */
    uint64_t first_seq;      /* oldest record still in the ring */
    uint64_t last_seq;       /* newest committed (or voided) sequence number */
    uint64_t capacity;       /* bytes of the ring */
    uint64_t created_ms;     /* when this log was made (ms since the epoch): later than the map's
                              * (hmm_stats.created_ms) when a writer replaced a lost or damaged
                              * log, and replicas must then resync (HMM_MISMATCH) */
    uint64_t reserved[4];
};
HMM_EXPORT int hmm_replog_info(hmm_t *m, struct hmm_replog_info *info);

#define HMM_REC_PUT 1u       /* key now holds val (tag, expire_ms) */
#define HMM_REC_DEL 2u       /* key is now absent */

/* One change, as read from the log or applied to a replica. */
typedef struct hmm_replog_record {
    uint64_t seq;
    uint32_t op;             /* HMM_REC_PUT or HMM_REC_DEL */
    uint32_t tag;            /* HMM_TAG_RAW, HMM_TAG_COUNTER or the application's */
    uint64_t expire_ms;      /* absolute, ms since the epoch; 0 = never */
    const void *key;
    size_t klen;
    const void *val;         /* NULL/0 for HMM_REC_DEL */
    size_t vlen;
} hmm_replog_record;

/* Read the log from from_seq on.  hmm_replog_next() returns 0 and the next
 * record (pointers valid until the next call on r), HMM_NOTFOUND when no
 * newer record is committed yet (poll again later), or HMM_MISMATCH when the
 * ring has wrapped past the reader's position (records were lost to it: the
 * replica needs a full snapshot).  Returned sequence numbers increase; one
 * is skipped only where a writer killed mid-change did not make its change
 * (its record is void).  A writable handle settles the record of a writer
 * found dead; a read-only one waits (HMM_NOTFOUND) for a writer to do so.
 * hmm_replog_open() returns HMM_MISMATCH at once when from_seq is already
 * older than first_seq, or newer than the log's next sequence number (the
 * log was replaced).  from_seq 0 means 1.  Read-only handles may read the
 * log; reading never blocks writers. */
typedef struct hmm_replog_reader hmm_replog_reader;
HMM_EXPORT int  hmm_replog_open(hmm_t *m, uint64_t from_seq, hmm_replog_reader **r);
HMM_EXPORT int  hmm_replog_next(hmm_replog_reader *r, hmm_replog_record *rec);
HMM_EXPORT void hmm_replog_close(hmm_replog_reader *r); /* NULL is a no-op */

/* Apply a change received from a primary (rec->seq is ignored): a put with
 * the record's absolute expiry and tag (an already expired one is dropped),
 * or a delete (absent is not an error).  The change is logged in this map's
 * own log under this map's own sequence numbers, so a replica can later
 * serve replicas of its own. */
HMM_EXPORT int hmm_apply(hmm_t *m, const hmm_replog_record *rec);

/* Where a replica stands in its primary's log: kept in the replica's map
 * files, so a restarted replica asks to continue from there.  next_seq is
 * the first sequence number not yet applied.  get: HMM_NOTFOUND when never
 * set. */
HMM_EXPORT int hmm_replica_position_get(hmm_t *m, uint8_t primary_id[16], uint64_t *next_seq);
HMM_EXPORT int hmm_replica_position_set(hmm_t *m, const uint8_t primary_id[16], uint64_t next_seq);
/* The position with the proof of the history it belongs to
 * (docs/PROTOCOL.md §4): digest_seq is the newest record of the primary's
 * log that the map may hold (next_seq - 1, or next_seq while that record
 * is being applied), digest that record's digest as the replication
 * protocol defines it ("Record digest").  A primary restored from a backup
 * is then not resumed from a place where its new log holds other changes.
 * All are stored in one write and read in one read, so a reader never pairs
 * one position with another's proof; a writer killed in the middle makes
 * get answer HMM_BUSY until the next set (docs/FORMAT.md, replica
 * position).  digest 0 means none; the plain set above stores 0, and a
 * position stored by a build before digests reads as 0.  get: HMM_NOTFOUND
 * when never set.
 *
 * Durability (docs/FORMAT.md §13, replica position): the position lives in
 * the map file, whose pages reach the disk in any order, so a position may
 * name only changes already on stable storage: an hmm_sync() that began
 * after the hmm_apply() calls it covers must have returned 0 before a set
 * that raises next_seq.  A set that raises next_seq to N while a change
 * hmm_apply() made through this handle of a record below N (its seq; 0
 * counts as below every N) is not covered by such a sync is still stored,
 * and counted in the "unsynced_positions" counter (after a power loss it
 * could be on disk without the change).  Changes of records N and after
 * may be unsynced.  A set that keeps next_seq (a proof written ahead) or
 * lowers it names nothing new and is never counted. */
HMM_EXPORT int hmm_replica_position_get_with_digest(hmm_t *m, uint8_t primary_id[16], uint64_t *next_seq,
                                                    uint64_t *digest_seq, uint64_t *digest);
HMM_EXPORT int hmm_replica_position_set_with_digest(hmm_t *m, const uint8_t primary_id[16], uint64_t next_seq,
                                                    uint64_t digest_seq, uint64_t digest);
/* Forget the position (a replica whose map was written locally, as a
 * primary, must take a full snapshot before it streams again). */
HMM_EXPORT int hmm_replica_position_clear(hmm_t *m);

/* The epoch of the record hmm_replog_next() returned last: the map's epoch
 * when it was written (0 in logs of builds before epochs). */
HMM_EXPORT uint64_t hmm_replog_epoch(const hmm_replog_reader *r);

/* The map's role, kept in the map file so it holds while no daemon runs
 * (docs/PROTOCOL.md, "Roles and epochs").  A map is a primary (the default,
 * also of maps made before roles existed: epoch 0) or a replica: then only
 * handles opened with HMM_REPLICA_WRITER may change it, every other write
 * fails with HMM_REPLICA, and reads are unaffected.  The epoch (a term, as
 * in Raft) rises by one at each promotion and is stamped on every log
 * record; a replica takes the epoch of the primary it follows.  primary is
 * the replica's primary as HOST:PORT, for messages ("" when unknown). */
#define HMM_ROLE_PRIMARY 0u
#define HMM_ROLE_REPLICA 1u
#define HMM_EPOCH_MAX ((UINT64_C(1) << 32) - 1) /* records keep 32 bits of it */
typedef struct hmm_role_info {
    uint32_t role;           /* HMM_ROLE_PRIMARY or HMM_ROLE_REPLICA */
    uint32_t reserved0;
    uint64_t epoch;
    char primary[104];       /* NUL-terminated HOST:PORT; "" for a primary */
    uint64_t reserved[4];
} hmm_role_info;
HMM_EXPORT int hmm_role_get(hmm_t *m, hmm_role_info *ri);
/* Set role, epoch and primary (NULL: ""; longer than 103 bytes: -EINVAL)
 * together.  Needs a writable handle; the epoch never goes down (-EINVAL)
 * nor beyond HMM_EPOCH_MAX (-EOVERFLOW). */
HMM_EXPORT int hmm_role_set(hmm_t *m, unsigned role, uint64_t epoch, const char *primary);

/* State of a replication daemon working on this map, published by the
 * daemon (hashmmap-replicate) and shown by hashmmap-stat.  Kept in the
 * metrics file; set needs a writable handle, get works read-only and
 * returns HMM_NOTFOUND when no daemon ever reported. */
#define HMM_REPL_ROLE_PRIMARY 1u
#define HMM_REPL_ROLE_REPLICA 2u
#define HMM_REPL_DISCONNECTED 0u
#define HMM_REPL_CONNECTING   1u
#define HMM_REPL_SNAPSHOT     2u  /* a full snapshot is being sent / received */
#define HMM_REPL_STREAMING    3u  /* the log is being shipped / applied */
typedef struct hmm_repl_status {
    uint32_t role;           /* HMM_REPL_ROLE_* */
    uint32_t state;          /* HMM_REPL_* (primary: of its most advanced replica) */
    uint32_t peers;          /* primary: replicas connected now; replica: 1 when connected */
    uint32_t reserved0;
    int64_t  pid;            /* the daemon's pid */
    uint64_t updated_ms;     /* wall clock of this report */
    uint64_t primary_seq;    /* newest sequence number of the primary's log known */
    uint64_t acked_seq;      /* primary: lowest seq acknowledged by connected replicas; replica: last applied */
    uint64_t lag_seqs;       /* primary_seq - acked_seq */
    uint64_t lag_ms;         /* age of the oldest change not yet applied / acknowledged */
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t snapshots;      /* full resyncs sent (primary) or received (replica) */
    uint64_t reconnects;
    uint64_t last_heartbeat_ms; /* wall clock of the last heartbeat seen from the peer */
    uint64_t reserved[8];
} hmm_repl_status;
HMM_EXPORT int hmm_repl_status_set(hmm_t *m, const hmm_repl_status *st);
HMM_EXPORT int hmm_repl_status_get(hmm_t *m, hmm_repl_status *st);

/* ---- errors and versions ---- */

HMM_EXPORT const char *hmm_strerror(int rc);   /* a sentence for every code, never NULL */
HMM_EXPORT const char *hmm_errname(int rc);    /* "HMM_NOTFOUND", "ENOENT", ... */
/* Detail of the calling thread's latest call if it failed
 * ("/d/hashmmap.map: bad magic"); "" if it succeeded or returned an answer
 * (HMM_NOTFOUND, HMM_EXISTS, HMM_MISMATCH, HMM_TOOSMALL), and on a thread
 * that made no call yet.  hmm_open's HMM_EXISTS (HMM_EXCL) and the
 * replication log reader's HMM_MISMATCH do carry one: there the answer
 * needs a path or a window to act on.  hmm_get_batch returns 0 but keeps
 * the detail of the last key whose rcs[i] is a failure.  Per thread;
 * valid until the thread's next call into the library. */
HMM_EXPORT const char *hmm_last_error(void);
/* "0.1.0"; the pointers, if not NULL, receive the numbers. */
HMM_EXPORT const char *hmm_version(int *major, int *minor, int *patch);

#ifdef __cplusplus
}
#endif
#endif /* HASHMMAP_H */
