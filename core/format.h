/*
 * format.h - every structure that lives in the map file (docs/FORMAT.md).
 *
 * Fixed-width fields and offsets only: no pointers, nothing whose layout
 * depends on a build flag.  pthread_mutex_t is the one libc type in here;
 * its size is folded into the header's layout signature, so a libc with
 * another layout refuses the file instead of misreading it.
 */
#ifndef HMM_FORMAT_H
#define HMM_FORMAT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HMM_MAGIC "HASHMMAP"
/* format_version (FORMAT.md §3): the index's layout and the page rule.
 * Versions 1 and 2 are maps made before 2026-12-05 (pages of at least
 * 64 KiB); a library of then refuses 3 and 4 with HMM_INCOMPAT. */
#define HMM_FORMAT_VERSION 3u       /* bucket index (format 1), pages of §2 */
#define HMM_FORMAT_CELLS 4u         /* cell index (format 2, HMM_INLINE), pages of §2 */
#define HMM_FORMAT_OLD_PAGES 1u     /* bucket index, the pages of before 2026-12-05 */
#define HMM_FORMAT_OLD_PAGES_CELLS 2u /* cell index, the pages of before 2026-12-05 */
static inline int hmm__format_known(uint32_t v) { return v >= HMM_FORMAT_OLD_PAGES && v <= HMM_FORMAT_CELLS; }
static inline int hmm__format_cells(uint32_t v) { return v == HMM_FORMAT_CELLS || v == HMM_FORMAT_OLD_PAGES_CELLS; }
static inline int hmm__format_old_pages(uint32_t v) { return v == HMM_FORMAT_OLD_PAGES || v == HMM_FORMAT_OLD_PAGES_CELLS; }
#define HMM_BYTE_ORDER_MARK 0x01020304u
#define HMM_MAP_FILE "hashmmap.map"

#define HMM_HEADER_SIZE 4096u
#define HMM_PROCS 512u          /* process table slots (FORMAT.md §4) */
#define HMM_NSTRIPES 1024u      /* writer stripes (§5); a power of two */
#define HMM_MAX_CLASSES 64u     /* slab size classes (§6) */
#define HMM_BUCKET_SLOTS 7u     /* slots per index bucket (§7) */
#define HMM_MAX_PROBE 64u       /* buckets an insert may walk from home (§7) */
#define HMM_MIN_PAGE (4u << 10)
#define HMM_MAX_PAGE (1u << 20)
#define HMM_ALIGN 8u

typedef _Atomic uint64_t hmm_atomic_u64;
typedef _Atomic uint32_t hmm_atomic_u32;

/* §3 */
struct hmm_header {
    char magic[8];
    uint32_t format_version;
    uint32_t byte_order;
    uint32_t word_size;
    uint32_t layout_sig;
    uint8_t map_id[16];
    uint64_t created_ms;
    uint32_t flags;                 /* HMM_CACHE, HMM_NOREPLOG */
    uint32_t page_size;
    uint64_t size;
    uint64_t max_size;
    uint64_t default_ttl_ms;
    uint64_t replog_size;
    uint32_t max_value;
    uint32_t nstripes;
    uint32_t nclasses;
    uint32_t slab_factor_pct;
    uint64_t proc_off;
    uint64_t stripe_off;
    uint64_t class_off;
    uint64_t pagetab_off;
    uint64_t pagetab_cap;           /* pages the table can describe: the file's largest size */
    uint64_t data_off;              /* first data page; the fixed part ends here */
    hmm_atomic_u64 npages;          /* data pages in the file; only grows */
    hmm_atomic_u64 generation;      /* bumped after each growth step (release) */
    hmm_atomic_u64 index_cur;       /* the hash index: HMM_INDEX_MAKE(head page, buckets) (§7) */
    hmm_atomic_u64 index_old;       /* the index being drained into index_cur, 0 none (§10) */
    hmm_atomic_u64 recoveries;
    uint32_t class_size[HMM_MAX_CLASSES];
    /* The page lock on its own cache line. */
    _Alignas(64) pthread_mutex_t pages_lock;
    hmm_atomic_u32 pages_owner_proc; /* process slot + 1 holding pages_lock */
    hmm_atomic_u64 index_pages;     /* pages held by index runs, current and retired */
    hmm_atomic_u64 migrate_next;    /* next bucket of index_old to drain (§10) */
    /* Starting and finishing an index growth; taken holding no other lock. */
    _Alignas(64) pthread_mutex_t grow_lock;
    hmm_atomic_u32 grow_owner_proc;
    hmm_atomic_u64 page_hand;       /* cache mode: next page to consider taking from its class (§12) */
    /* The index's bucket count at creation; each growth doubles it, so an
     * index word's count must be this times a power of two (§2's range
     * table).  0 in maps made before it (the bytes were zero): unchecked. */
    uint64_t index_buckets0;
};
/* The header occupies a whole block; the rest of it is zero, room for later fields. */
union hmm_header_block {
    struct hmm_header h;
    uint8_t bytes[HMM_HEADER_SIZE];
};

/* §4 */
/* start_time of a process whose start /proc did not tell: any value but 0
 * (a slot being claimed); liveness then rests on the pid alone. */
#define HMM_START_UNKNOWN 1u
struct hmm_proc {
    hmm_atomic_u64 pid;             /* 0: slot free */
    hmm_atomic_u64 start_time;      /* 0: being claimed; HMM_START_UNKNOWN: /proc gave none */
    uint64_t opened_ms;
    /* Inode of the process's pid namespace (/proc/self/ns/pid), written
     * before start_time; 0: unknown (a library before it, or no /proc).
     * Zero in maps made before it existed: the bytes were padding. */
    hmm_atomic_u64 pid_ns;
    uint8_t pad[32];
};

/* §5, §9: what an operation under the stripe lock is doing. */
enum hmm_op { HMM_OP_NONE = 0, HMM_OP_PUT = 1, HMM_OP_DEL = 2, HMM_OP_MOVE = 3 };

struct hmm_intent {
    hmm_atomic_u32 op;
    uint32_t pad;
    hmm_atomic_u64 hash;
    hmm_atomic_u64 new_off;         /* chunk being created (0 none) */
    hmm_atomic_u64 old_off;         /* chunk being retired (0 none) */
};

/* §5: first cache line is what readers touch (seq); the lock and the
 * writer-only fields sit on the second so readers never share a line with
 * the mutex word writers bounce on. */
struct hmm_stripe {
    hmm_atomic_u64 seq;
    uint8_t pad0[56];
    pthread_mutex_t lock;
    hmm_atomic_u32 owner_proc;      /* process slot + 1 of the holder, 0 none */
    uint32_t pad1;
    uint64_t version;               /* last version handed out */
    int64_t items;                  /* gauges, under the lock */
    int64_t bytes_used;
    struct hmm_intent intent;
    /* §13: the log record the holder's operation reserved (seq 0: none);
     * pos is written first, seq last. */
    hmm_atomic_u64 replog_pos;
    hmm_atomic_u64 replog_seq;
    /* §8: a FREE chunk this stripe keeps for its next write, so an
     * overwrite takes no class lock: HMM_SPARE_MAKE(class, offset), 0 none.
     * Zero in maps made before it existed, which reads as "none". */
    hmm_atomic_u64 spare;
};
#define HMM_SPARE_MAKE(cls, off) ((((uint64_t)(cls) + 1) << 56) | (uint64_t)(off))
#define HMM_SPARE_CLASS(w) ((uint32_t)((w) >> 56) - 1)
#define HMM_SPARE_OFF(w) ((w) & ((UINT64_C(1) << 56) - 1))
#define HMM_SPARE_MAX_CHUNK 512u        /* larger chunks go back to their class at once */

/* §6 */
struct hmm_class {
    pthread_mutex_t lock;
    hmm_atomic_u32 owner_proc;
    uint32_t size;                  /* chunk size in bytes */
    hmm_atomic_u64 free_head;       /* offset of the first free chunk, 0 none */
    hmm_atomic_u64 carve_off;       /* next never-used chunk of the newest page */
    hmm_atomic_u64 carve_end;       /* end of that page's chunks */
    hmm_atomic_u64 page_intent;     /* page being added to the class (§9), 0 none */
    uint64_t pages;                 /* pages owned by the class (gauge) */
    uint64_t chunks_used;           /* chunks handed out (gauge) */
    hmm_atomic_u64 hand;            /* cache mode: CLOCK hand, the next chunk to look at (§12) */
    hmm_atomic_u64 evac_page;       /* cache mode: HMM_EVAC_MAKE(pid, page) being taken from this class (§12), 0 none */
    uint64_t pressure;              /* cache mode: evictions since the class last gained a page */
    uint64_t evictions;             /* cache mode: entries evicted from the class (gauge) */
};

/* The evacuator is named by pid (24 bits: Linux pids stay below 2^22), not
 * by process slot, which a new process may take over once it is freed. */
#define HMM_EVAC_MAKE(pid, page) (((uint64_t)(pid) << 40) | ((uint64_t)(page) + 1))
#define HMM_EVAC_PAGE(v) (((v) & ((UINT64_C(1) << 40) - 1)) - 1)
#define HMM_EVAC_PID(v) ((int64_t)((v) >> 40))

/* §6: page table entries */
#define HMM_PAGE_KIND_SHIFT 56
#define HMM_PAGE_KIND(v) ((unsigned)((v) >> HMM_PAGE_KIND_SHIFT))
#define HMM_PAGE_ARG(v) ((v) & ((UINT64_C(1) << HMM_PAGE_KIND_SHIFT) - 1))
#define HMM_PAGE_MAKE(kind, arg) (((uint64_t)(kind) << HMM_PAGE_KIND_SHIFT) | (uint64_t)(arg))
enum hmm_page_kind {
    HMM_PAGE_FREE = 0,
    HMM_PAGE_CLASS = 1,      /* arg: class number */
    HMM_PAGE_RUN_HEAD = 2,   /* arg: pages in the run; the run holds one large chunk */
    HMM_PAGE_RUN_TAIL = 3,   /* arg: page number of the run's head */
    HMM_PAGE_INDEX_HEAD = 4, /* arg: pages in the run; the run holds the hash index */
    HMM_PAGE_INDEX_TAIL = 5, /* arg: page number of the head */
};

/* §6: chunk header */
enum hmm_chunk_state { HMM_CHUNK_FREE = 0, HMM_CHUNK_WRITING = 1, HMM_CHUNK_LIVE = 2, HMM_CHUNK_RETIRING = 3 };

struct hmm_entry {
    _Atomic uint8_t state;
    _Atomic uint8_t access;         /* cache mode recency mark (relaxed) */
    _Atomic uint16_t owner;         /* stripe + 1 working on the chunk, 0 none */
    uint32_t checksum;              /* low 32 bits of XXH3 over klen.. end of value */
    uint16_t klen;
    uint8_t vtype;                  /* the value's tag: HMM_TAG_RAW, HMM_TAG_COUNTER or the application's */
    uint8_t reserved;
    uint32_t vlen;
    uint64_t version;
    uint64_t expire_ms;
    /* key[klen], value[vlen] follow */
};
#define HMM_ENTRY_HDR 32u
/* A free chunk keeps the next free chunk's offset right after its state word. */
#define HMM_FREE_NEXT_OFF 8u

/* §7: an index is a run of pages; one word names it, so a reader loads
 * its place and size in one atomic step. */
#define HMM_INDEX_MAKE(page, buckets) (((uint64_t)(page) << 32) | (uint64_t)(buckets))
#define HMM_INDEX_PAGE(w) ((w) >> 32)
#define HMM_INDEX_BUCKETS(w) ((w) & UINT32_MAX)

struct hmm_bucket {
    hmm_atomic_u64 meta;            /* overflow count: keys that probed past this bucket */
    hmm_atomic_u64 slot[HMM_BUCKET_SLOTS];
};
/* A slot word: tag << 48 | copy shape << 40 | offset >> 3.  Offsets stay
 * below 2^43 (max_size is at most 4 TiB), so the shape byte is 0 in every
 * format-1 slot, and HMM_SLOT_MAKE makes words without a copy. */
#define HMM_SLOT_TAG(s) ((uint16_t)((s) >> 48))
#define HMM_SLOT_OFF(s) (((s) & ((UINT64_C(1) << 40) - 1)) << 3)
#define HMM_SLOT_MAKE(tag, off) (((uint64_t)(tag) << 48) | ((uint64_t)(off) >> 3))
/* The slot word without its copy's shape: what compares of slots compare. */
#define HMM_SLOT_BARE(s) ((s) & ~(UINT64_C(0xff) << 40))

/* §7, format 2 (maps made with HMM_INLINE): a bucket is two cells.  A
 * cell's word is a slot word whose shape byte, when its top bit is set,
 * says that key and val hold a copy of the entry's key (klen bytes, 1-16)
 * and value (vlen bytes, 1-8), zero-padded.  The chunk stays the entry:
 * the copy is set last and cleared first (docs/INLINE.md, "First step").
 * The overflow counts are bytes after the buckets, in the same run. */
#define HMM_CELL_SLOTS 2u
#define HMM_CELL_KEY_MAX 16u
#define HMM_CELL_VAL_MAX 8u
struct hmm_cell {
    hmm_atomic_u64 word;
    hmm_atomic_u64 key[2];
    hmm_atomic_u64 val;
};
struct hmm_cell_bucket {
    struct hmm_cell cell[HMM_CELL_SLOTS];
};
#define HMM_SHAPE_COPY 0x80u
#define HMM_SHAPE_MAKE(klen, vlen) (HMM_SHAPE_COPY | ((unsigned)(klen) - 1) << 3 | ((unsigned)(vlen) - 1))
#define HMM_SLOT_SHAPE(s) ((unsigned)((s) >> 40) & 0xffu)
#define HMM_SHAPE_KLEN(sh) ((((sh) >> 3) & 15u) + 1)
#define HMM_SHAPE_VLEN(sh) (((sh) & 7u) + 1)
#define HMM_SLOT_WITH_SHAPE(s, sh) (HMM_SLOT_BARE(s) | (uint64_t)(sh) << 40)

/* §11: the metrics file.  Slot 0 holds the counts folded in from processes
 * that closed or died, slot 1 those of handles without a process slot, slot
 * 2 + i those of the process in process-table slot i.  Each slot is written
 * (relaxed atomic adds) by one process only, so counting shares no line. */
#define HMM_METRICS_MAGIC "HMMMETRC"
#define HMM_METRICS_FILE "hashmmap.metrics"
#define HMM_METRICS_VERSION 1u
#define HMM_METRICS_SLOTS (HMM_PROCS + 2u)
#define HMM_METRICS_TOTALS 0u
#define HMM_METRICS_UNOWNED 1u
/* Counters in a slot: 32 words are four cache lines, so a process's slot
 * shares no line with another's, and leave room for counters added later
 * (enum hmm_counter has 16) without a new file version. */
#define HMM_METRICS_COUNTERS 32u
#define HMM_REPL_STATUS_OFF 1024u       /* offset of the daemon status in the metrics header */
#define HMM_REPL_STATUS_WORDS 21u       /* sizeof(hmm_repl_status) / 8 */
struct hmm_metrics_header {
    char magic[8];
    uint32_t version;
    uint32_t byte_order;
    uint32_t nslots;
    uint32_t ncounters;
    uint8_t map_id[16];             /* the map these counts belong to */
    uint8_t pad[HMM_REPL_STATUS_OFF - 40];
    /* §11: the replication daemon's status (hmm_repl_status as 8-byte
     * words behind a seqlock: odd while the daemon rewrites it).  Zero in
     * files of older builds: seq 0 and pid 0 read as "never reported". */
    hmm_atomic_u64 repl_seq;
    hmm_atomic_u64 repl_words[HMM_REPL_STATUS_WORDS];
    uint8_t pad2[4096 - HMM_REPL_STATUS_OFF - 8 - 8 * HMM_REPL_STATUS_WORDS];
};
struct hmm_metrics_slot {
    hmm_atomic_u64 c[HMM_METRICS_COUNTERS]; /* indexed by enum hmm_counter */
};
#define HMM_METRICS_SIZE (sizeof(struct hmm_metrics_header) + HMM_METRICS_SLOTS * sizeof(struct hmm_metrics_slot))

_Static_assert(sizeof(struct hmm_metrics_header) == 4096, "metrics header is one block");
_Static_assert(offsetof(struct hmm_metrics_header, repl_seq) == HMM_REPL_STATUS_OFF, "status offset is fixed");

/* §13: the replication log, DIR/hashmmap.replog: a 4096-byte header, then
 * a ring of `capacity` bytes of records.  Positions (head, tail) count
 * bytes ever appended; a record lives at position % capacity. */
#define HMM_REPLOG_MAGIC "HMMRPLOG"
#define HMM_REPLOG_FILE "hashmmap.replog"
#define HMM_REPLOG_VERSION 1u
#define HMM_REPLOG_HDR_SIZE 4096u
#define HMM_REPLOG_LAST_SEQ_OFF 192u /* last_seq: the line after the append lock's fields */
#define HMM_REPLOG_DEFAULT_CAPACITY (UINT64_C(16) << 20)
#define HMM_REPLOG_MAX_CAPACITY HMM_REPLOG_SIZE_MAX /* replog_size above this is refused (§3 range table) */
struct hmm_replog_header {
    char magic[8];
    uint32_t version;
    uint32_t byte_order;
    uint8_t map_id[16];             /* the map this log belongs to */
    uint64_t capacity;              /* bytes of the ring; a multiple of 4096 */
    uint64_t created_ms;
    uint8_t pad0[16];
    /* Guarded by lock (the append lock): head, next_seq, tail, first_seq
     * change only under it; readers load them with acquire. */
    _Alignas(64) pthread_mutex_t lock;
    hmm_atomic_u32 lock_owner_proc; /* process slot + 1 of the holder */
    uint32_t pad1;
    hmm_atomic_u64 head;            /* position of the next record: everything before is reserved */
    hmm_atomic_u64 next_seq;        /* sequence number the next record gets (starts at 1) */
    hmm_atomic_u64 tail;            /* position of the oldest record still whole in the ring */
    hmm_atomic_u64 first_seq;       /* sequence number of the oldest record still in the ring */
    /* Newest committed sequence number (atomic max), on its own line:
     * every commit writes it, no reservation needs it. */
    _Alignas(64) hmm_atomic_u64 last_seq;
    uint8_t pad2[HMM_REPLOG_HDR_SIZE - HMM_REPLOG_LAST_SEQ_OFF - 8]; /* the rest of the block */
};
_Static_assert(sizeof(struct hmm_replog_header) == HMM_REPLOG_HDR_SIZE, "replog header is one block");
_Static_assert(offsetof(struct hmm_replog_header, lock) == 64, "replog lock on its own line");
_Static_assert(offsetof(struct hmm_replog_header, last_seq) == HMM_REPLOG_LAST_SEQ_OFF, "last_seq on its own line");

/* §13: a record.  state is the commit word, in the log's own states
 * (HMM__REC_*, apart from op's public HMM_REC_PUT and HMM_REC_DEL):
 * RESERVED|seq while the writer copies, seq once committed, VOID|seq for a
 * change that did not happen, PAD for filler up to the ring's end. 
 * The checksum (XXH3-64 seeded with
 * seq) covers bytes 16.. end of the value. */
#define HMM__REC_RESERVED (UINT64_C(1) << 63)
#define HMM__REC_VOID (UINT64_C(1) << 62)
#define HMM__REC_PAD (HMM__REC_RESERVED | HMM__REC_VOID)
#define HMM__REC_SEQ(state) ((state) & (HMM__REC_VOID - 1))
struct hmm_replog_rec {
    hmm_atomic_u64 state;
    uint64_t checksum;
    uint32_t len;                   /* bytes of the record, header included, a multiple of 8 */
    uint32_t stripe;                /* stripe of the writer (whose lock it holds until the commit) */
    uint8_t op;                     /* HMM_REC_PUT, HMM_REC_DEL */
    uint8_t tag;
    uint16_t reserved0;
    uint32_t klen;
    uint32_t vlen;
    uint32_t epoch;                 /* §13: the map's epoch when written; 0 in logs of older builds */
    uint64_t expire_ms;
    /* key[klen], value[vlen], padding to a multiple of 8 */
};
#define HMM_REPLOG_REC_HDR 48u
_Static_assert(sizeof(struct hmm_replog_rec) == HMM_REPLOG_REC_HDR, "replog record header");
_Static_assert(offsetof(struct hmm_replog_rec, len) == 16, "checksum covers bytes from 16");

/* §13: a replica's position in its primary's log, in the last line of the
 * map header block (outside struct hmm_header, so the layout signature of
 * maps made before it is unchanged).  seq is a seqlock: odd while written. */
#define HMM_REPLICA_POS_OFF (HMM_HEADER_SIZE - 64u)
struct hmm_replica_pos {
    hmm_atomic_u64 seq;
    hmm_atomic_u64 primary_id[2];
    hmm_atomic_u64 next_seq;
    hmm_atomic_u64 valid;           /* 1 once set */
    hmm_atomic_u64 digest_seq;      /* newest record the map may hold (FORMAT.md §13) */
    hmm_atomic_u64 digest;          /* its digest (PROTOCOL.md §2); 0 none, also in maps of older builds */
    uint8_t pad[8];
};
_Static_assert(sizeof(struct hmm_replica_pos) == 64, "replica position is one line");

/* §3, §13: the map's replication role and epoch, in the two lines before
 * the replica position (outside struct hmm_header: zero in maps made
 * before it existed, which reads as "primary, epoch 0").  role_epoch is
 * one word, HMM_ROLE_MAKE(role, epoch), so a writer's check and the log's
 * stamp load both with one atomic load.  primary names the replica's
 * primary (HOST:PORT, NUL-terminated, for messages only) behind the
 * seqlock seq (odd while written). */
#define HMM_ROLE_OFF (HMM_REPLICA_POS_OFF - 128u)
#define HMM_ROLE_MAKE(role, epoch) (((uint64_t)(epoch) << 8) | (uint64_t)(role))
#define HMM_ROLE_OF(w) ((unsigned)((w) & 0xffu))
#define HMM_EPOCH_OF(w) ((w) >> 8)
#define HMM_ROLE_ADDR_LEN 104u
struct hmm_role_block {
    hmm_atomic_u64 role_epoch;
    hmm_atomic_u64 seq;
    hmm_atomic_u64 addr[HMM_ROLE_ADDR_LEN / 8];
    uint8_t pad[8];
};
_Static_assert(sizeof(struct hmm_role_block) == 128, "role block is two lines");

/* §10: the cold-start mark, the line before the role block (outside
 * struct hmm_header: zero, "none", in maps made before it).  The pid of a
 * cold starter, set before it rebuilds any lock and cleared when every
 * repair is done: found set by a writer holding its shared lock, it says
 * that the cold start it waited for died half done. */
#define HMM_COLD_OFF (HMM_ROLE_OFF - 64u)
_Static_assert(sizeof(struct hmm_header) <= HMM_ROLE_OFF, "role block is outside the header struct");
_Static_assert(sizeof(struct hmm_header) <= HMM_COLD_OFF, "cold-start mark is outside the header struct");
_Static_assert(sizeof(struct hmm_header) <= HMM_REPLICA_POS_OFF, "replica position is outside the header struct");
_Static_assert(sizeof(struct hmm_metrics_slot) == 256, "metrics slot is four cache lines");
_Static_assert(sizeof(union hmm_header_block) == HMM_HEADER_SIZE, "header is one 4 KiB block");

_Static_assert(offsetof(struct hmm_header, class_size) == 192, "header field offsets are fixed");
_Static_assert(sizeof(struct hmm_proc) == 64, "process slot is one cache line");
_Static_assert(sizeof(struct hmm_stripe) == 192, "stripe is three cache lines");
_Static_assert(offsetof(struct hmm_stripe, lock) == 64, "stripe lock on its own line");
_Static_assert(sizeof(struct hmm_class) == 128, "class is two cache lines");
_Static_assert(sizeof(struct hmm_entry) == HMM_ENTRY_HDR, "entry header");
_Static_assert(offsetof(struct hmm_entry, checksum) == 4, "checksum covers bytes from 8");
_Static_assert(offsetof(struct hmm_entry, klen) == 8, "checksum covers bytes from 8");
_Static_assert(sizeof(struct hmm_bucket) == 64, "bucket is one cache line");
_Static_assert(sizeof(struct hmm_cell_bucket) == 64, "a bucket of cells is one cache line");
_Static_assert(sizeof(pthread_mutex_t) <= 40, "pthread_mutex_t fits its slot");

#endif /* HMM_FORMAT_H */
