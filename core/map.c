/*
 * map.c - creating, validating, mapping and closing a map (FORMAT.md §1-3).
 *
 * A new map is written completely into a temporary file and then linked
 * into place, so no process ever sees a half-made one.  Opening validates
 * every header field the rest of the code trusts (offsets, geometry, class
 * sizes) before anything is dereferenced: after hmm_open succeeds, the only
 * values read from the file that still need a check are those that change
 * (slots, free lists, entry lengths), and those go through hmm_at().
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_NOACCESS(addr, len) ((void)0)
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void)0)
#endif
#include "core/internal.h"

#define DEFAULT_SIZE (UINT64_C(64) << 20)
/* Average entry the index is sized for: a 56-byte chunk plus slack. */
#define INDEX_BYTES_PER_ENTRY 64u
#define INDEX_FILL_PCT 80u
#define INDEX_BUCKETS_FOR(size) ((size) / INDEX_BYTES_PER_ENTRY * 100 / (HMM_BUCKET_SLOTS * INDEX_FILL_PCT) + 1)
_Static_assert(INDEX_BUCKETS_FOR(HMM_SIZE_MAX) <= UINT32_MAX && INDEX_BUCKETS_FOR(HMM_SIZE_MAX + 1) > UINT32_MAX,
               "HMM_SIZE_MAX is the largest size whose index has at most 2^32 - 1 buckets");
/* Format 2 (HMM_INLINE): a cell is 32 bytes where a slot is 8, so an index
 * sized as format 1's would take 60% of the map, and most of it would be
 * empty when entries are larger than 64 bytes (a 1 M-key map of 256-byte
 * values then read a 250 MiB index, 2 us a get).  It starts sized for
 * 256-byte entries and grows with the keys (FORMAT.md §10). */
#define INDEX_CELL_BYTES_PER_ENTRY 256u
#define INDEX_CELL_BUCKETS_FOR(size) \
    ((size) / INDEX_CELL_BYTES_PER_ENTRY * 100 / (HMM_CELL_SLOTS * INDEX_FILL_PCT) + 1)
/* A slot word keeps offset >> 3 in 40 bits, under the copy's shape byte. */
_Static_assert(HMM_MAX_SIZE_MAX <= (UINT64_C(1) << 42), "every chunk offset stays below 2^43 (FORMAT.md §7)");

uint64_t hmm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t hmm__layout_signature(void)
{
    uint32_t sig = 2166136261u;
    const uint32_t parts[] = {
        sizeof(union hmm_header_block), sizeof(struct hmm_proc),  sizeof(struct hmm_stripe),
        sizeof(struct hmm_class),       sizeof(struct hmm_entry), sizeof(struct hmm_bucket),
        sizeof(pthread_mutex_t),        offsetof(struct hmm_header, pages_lock),
        offsetof(struct hmm_stripe, lock), offsetof(struct hmm_stripe, intent),
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        sig = (sig ^ parts[i]) * 16777619u;
    return sig;
}

static uint64_t round_up(uint64_t v, uint64_t align)
{
    return (v + align - 1) / align * align;
}

/* Pages (FORMAT.md §2): at least PAGES_TARGET of them in the data area,
 * since every class in use holds at least one page.  With 64 (the rule
 * until 2026-12-05, format versions 1 and 2) a 1 MiB map of values of
 * 1..2 000 bytes was full at 13% of its data area and a 64 MiB one at
 * 63%; with 512, at 70% and 86% (bench/fillratio).  More pages cost values
 * of one large size: one over half a page takes a whole one (bench/README.md
 * has the table).  At most PAGES_MAX for max_size: the page table, which
 * also reserves entries for every index a growth may retire, lies in the
 * file's fixed part and is allocated; at 2^22 a map grown from 1 MiB
 * towards 4 GiB took 55 bytes an entry at 1 M entries, not 47. */
#define PAGES_TARGET 512u
#define PAGES_MAX (UINT64_C(1) << 16)

static uint32_t page_size_for(uint64_t size, uint64_t max_size)
{
    uint32_t p = HMM_MIN_PAGE;
    while (p < HMM_MAX_PAGE && ((uint64_t)p * 2 * PAGES_TARGET <= size || max_size / p > PAGES_MAX))
        p *= 2;
    return p;
}

uint32_t hmm__page_size_before_20261205(uint64_t size)
{
    uint32_t p = 64u << 10;
    while (p < HMM_MAX_PAGE && (uint64_t)p * 2 * 64 <= size)
        p *= 2;
    return p;
}

int hmm__plan_geometry(const hmm_config *cfg, uint32_t page_size, struct hmm_geometry *g)
{
    memset(g, 0, sizeof *g);
    g->size = cfg->size ? cfg->size : DEFAULT_SIZE;
    if (g->size < HMM_SIZE_MIN)
        g->size = HMM_SIZE_MIN;
    g->max_size = cfg->max_size > g->size ? cfg->max_size : g->size;
    if (g->size > HMM_SIZE_MAX)
        return hmm_fail(-EINVAL, "size over the limit of %llu bytes (HMM_SIZE_MAX)",
                        (unsigned long long)HMM_SIZE_MAX);
    if (g->max_size > HMM_MAX_SIZE_MAX)
        return hmm_fail(-EINVAL, "max_size over the 4 TiB limit (HMM_MAX_SIZE_MAX)");
    g->max_value = cfg->max_value > HMM_MIN_MAX_VALUE ? cfg->max_value : HMM_MIN_MAX_VALUE;
    if (g->max_value > HMM_MAX_VALUE_MAX)
        return hmm_fail(-EINVAL, "max_value over 2 GiB - 1 byte (HMM_MAX_VALUE_MAX)");
    if (cfg->replog_size > HMM_REPLOG_SIZE_MAX)
        return hmm_fail(-EINVAL, "replog_size over the 64 GiB limit (HMM_REPLOG_SIZE_MAX)");
    if ((cfg->flags & (HMM_INLINE | HMM_CACHE)) == (HMM_INLINE | HMM_CACHE))
        return hmm_fail(-EINVAL, "HMM_INLINE cannot be combined with HMM_CACHE (a cache's gets mark the entry itself)");
    g->factor_pct = cfg->slab_factor_pct ? cfg->slab_factor_pct : 125;
    if (g->factor_pct < 105 || g->factor_pct > 400)
        return hmm_fail(-EINVAL, "slab_factor_pct must be within 105..400");

    g->page_size = page_size ? page_size : page_size_for(g->size, g->max_size);
    g->page_shift = (uint32_t)__builtin_ctz(g->page_size);

    bool cells = cfg->flags & HMM_INLINE;
    g->index_buckets = cells ? INDEX_CELL_BUCKETS_FOR(g->size) : INDEX_BUCKETS_FOR(g->size);
    if (g->index_buckets < HMM_MAX_PROBE)
        g->index_buckets = HMM_MAX_PROBE;
    if (g->index_buckets > UINT32_MAX)
        return hmm_fail(-EINVAL, "size too large for the index");
    g->index_pages = round_up(hmm__index_run_bytes(g->index_buckets, cells), g->page_size) >> g->page_shift;
    g->entry_pages = round_up(g->size, g->page_size) >> g->page_shift;
    uint64_t max_entry_pages = round_up(g->max_size, g->page_size) >> g->page_shift;
    /* Room for the index to double as the data grows, with every retired
     * index still allocated (they are freed at the next cold start). */
    g->pagetab_cap = max_entry_pages + 8 * g->index_pages * (max_entry_pages / g->entry_pages + 1) + 64;

    g->proc_off = HMM_HEADER_SIZE;
    g->stripe_off = g->proc_off + (uint64_t)HMM_PROCS * sizeof(struct hmm_proc);
    g->class_off = g->stripe_off + (uint64_t)HMM_NSTRIPES * sizeof(struct hmm_stripe);
    g->pagetab_off = g->class_off + (uint64_t)HMM_MAX_CLASSES * sizeof(struct hmm_class);
    g->data_off = round_up(g->pagetab_off + g->pagetab_cap * 8, 4096);
    g->file_size = g->data_off + ((g->index_pages + g->entry_pages) << g->page_shift);
    return 0;
}

/* What hmm__plan_geometry decided, as header.c checks it again at every
 * open (FORMAT.md §3). */
static void header_write_geometry(struct hmm_header *h, const struct hmm_geometry *g)
{
    h->page_size = g->page_size;
    h->size = g->size;
    h->max_size = g->max_size;
    h->index_buckets0 = g->index_buckets;
    h->max_value = g->max_value;
    h->slab_factor_pct = g->factor_pct;
    h->nstripes = HMM_NSTRIPES;
    h->nclasses = hmm__slab_compute_classes(g->page_size, g->factor_pct, h->class_size);
    h->proc_off = g->proc_off;
    h->stripe_off = g->stripe_off;
    h->class_off = g->class_off;
    h->pagetab_off = g->pagetab_off;
    h->pagetab_cap = g->pagetab_cap;
    h->data_off = g->data_off;
}

/* The header of a new map: what it is, its identity, its geometry, the
 * settings it was created with, and the run-time fields' first values. */
static void header_write(struct hmm_header *h, const struct hmm_geometry *g, const hmm_config *cfg)
{
    memcpy(h->magic, HMM_MAGIC, 8);
    h->format_version = cfg->flags & HMM_INLINE ? HMM_FORMAT_CELLS : HMM_FORMAT_VERSION;
    h->byte_order = HMM_BYTE_ORDER_MARK;
    h->word_size = sizeof(void *);
    h->layout_sig = hmm__layout_signature();
    if (getrandom(h->map_id, sizeof h->map_id, 0) != (ssize_t)sizeof h->map_id) {
        uint64_t t = hmm_now_ms() ^ ((uint64_t)getpid() << 32);
        memcpy(h->map_id, &t, sizeof t);
    }
    h->created_ms = hmm_now_ms();
    header_write_geometry(h, g);
    h->flags = cfg->flags & (HMM_CACHE | HMM_NOREPLOG | HMM_INLINE);
    h->default_ttl_ms = cfg->default_ttl_ms;
    h->replog_size = cfg->replog_size;
    atomic_store(&h->npages, g->index_pages + g->entry_pages);
    atomic_store(&h->generation, 1);
    atomic_store(&h->index_cur, HMM_INDEX_MAKE(0, g->index_buckets));
    atomic_store(&h->index_pages, g->index_pages);
}

/* The process-shared locks (header, stripes, size classes) and each
 * class's chunk size.  0, or the first lock's error. */
static int init_locks(uint8_t *base, struct hmm_header *h, const struct hmm_geometry *g)
{
    int rc = hmm__lock_init_shared(&h->pages_lock);
    if (rc == 0)
        rc = hmm__lock_init_shared(&h->grow_lock);
    struct hmm_stripe *stripes = (struct hmm_stripe *)(base + g->stripe_off);
    for (uint32_t i = 0; rc == 0 && i < HMM_NSTRIPES; i++)
        rc = hmm__lock_init_shared(&stripes[i].lock);
    struct hmm_class *classes = (struct hmm_class *)(base + g->class_off);
    for (uint32_t i = 0; rc == 0 && i < h->nclasses; i++) {
        rc = hmm__lock_init_shared(&classes[i].lock);
        classes[i].size = h->class_size[i];
    }
    return rc;
}

/* Write a complete, fresh map into fd (already sized). */
static int init_map(int fd, const struct hmm_geometry *g, const hmm_config *cfg)
{
    uint8_t *base = mmap(NULL, g->file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return hmm_fail(-errno, "mmap of new map: %s", strerror(errno));
    struct hmm_header *h = (struct hmm_header *)base;
    header_write(h, g, cfg);
    int rc = init_locks(base, h, g);
    /* The index is a run of pages at the start of the data area. */
    hmm_atomic_u64 *pagetab = (hmm_atomic_u64 *)(base + g->pagetab_off);
    atomic_store(&pagetab[0], HMM_PAGE_MAKE(HMM_PAGE_INDEX_HEAD, g->index_pages));
    for (uint64_t p = 1; p < g->index_pages; p++)
        atomic_store(&pagetab[p], HMM_PAGE_MAKE(HMM_PAGE_INDEX_TAIL, 0));
    munmap(base, g->file_size);
    if (rc)
        return hmm_fail(rc, "cannot initialise process-shared robust mutexes");
    return 0;
}

static int size_and_init(int fd, const struct hmm_geometry *g, const hmm_config *cfg, const char *what)
{
    int rc = hmm__file_allocate(fd, g->file_size);
    if (rc)
        return hmm_fail(rc, "%s: cannot allocate %llu bytes for the map: %s", what,
                        (unsigned long long)g->file_size, strerror(-rc));
    return init_map(fd, g, cfg);
}

static int attach(hmm_t *m)
{
    /* The header first, then the size, as hmm__map_refresh_limit(): a
     * grower makes the file longer before it publishes npages, so the size
     * read after the header covers the pages it names.  The other order
     * called a file that grew in between truncated, and an opener racing a
     * growth failed with HMM_CORRUPT (seen once in test_multiproc). */
    union hmm_header_block blk;
    ssize_t got = pread(m->fd, &blk, sizeof blk, 0);
    struct stat st;
    if (fstat(m->fd, &st) != 0)
        return hmm_fail(-errno, "%s: %s", m->path, strerror(errno));
    if ((uint64_t)st.st_size < sizeof blk)
        return hmm_fail(HMM_CORRUPT, "%s: truncated: %lld bytes is shorter than a header", m->path,
                        (long long)st.st_size);
    if (got != (ssize_t)sizeof blk)
        return hmm_fail(-EIO, "%s: cannot read the header", m->path);
    int rc = hmm__header_validate(m, &blk, (uint64_t)st.st_size);
    if (rc)
        return rc;
    int prot = m->rdonly ? PROT_READ : PROT_READ | PROT_WRITE;
    /* A map made sparse (by an older build, or a copy) gets its blocks
     * before a writer can store into a hole (fileio.c). */
    if (!m->rdonly && (rc = hmm__file_allocate(m->fd, (uint64_t)st.st_size)) != 0)
        return hmm_fail(rc, "%s: cannot allocate the map's %lld bytes: %s", m->path, (long long)st.st_size,
                        strerror(-rc));
    /* One reservation for the largest the file may become: growth never
     * remaps, so no lock ever changes address (FORMAT.md §2). */
    void *base = mmap(NULL, m->reserve, prot, MAP_SHARED, m->fd, 0);
    if (base == MAP_FAILED)
        return hmm_fail(-errno, "%s: mmap of %zu bytes: %s", m->path, m->reserve, strerror(errno));
    m->base = base;
    m->hdr = base;
    /* Past the file's end the reservation is no memory (a load there is
     * SIGBUS); under valgrind, say so.  Else memcheck's leak check reads
     * it as memory that may hold pointers, faulting on every word: over
     * two minutes for the DNS cache's 32 MiB (tests/dnscache.test).
     * hmm__map_refresh_limit gives it back as the file grows.  A few
     * no-op instructions when not under valgrind. */
    if ((uint64_t)st.st_size < m->reserve)
        VALGRIND_MAKE_MEM_NOACCESS(m->base + st.st_size, m->reserve - (uint64_t)st.st_size);
    m->procs = (struct hmm_proc *)(m->base + m->hdr->proc_off);
    m->stripes = (struct hmm_stripe *)(m->base + m->hdr->stripe_off);
    m->classes = (struct hmm_class *)(m->base + m->hdr->class_off);
    m->pagetab = (hmm_atomic_u64 *)(m->base + m->hdr->pagetab_off);
    rc = hmm__header_validate_mapped(m);
    if (rc)
        return rc;
    struct hmm_ix cur, old;
    return index_views(m, &cur, &old);
}

void *hmm_at_slow(hmm_t *m, uint64_t off, uint64_t len)
{
    if (off >= m->reserve || len > m->reserve - off || hmm__map_refresh_limit(m) != 0)
        return NULL;
    uint64_t limit = atomic_load_explicit(&m->limit, memory_order_relaxed);
    if (off > limit || len > limit - off)
        return NULL;
    return m->base + off;
}

int hmm__map_refresh_limit(hmm_t *m)
{
    /* The page count first: a grower makes the file longer before it
     * publishes the count (grow.c), so the size read after it covers it.
     * The other order calls a file that grew in between truncated. */
    uint64_t npages = map_npages(m);
    struct stat st;
    if (m->fd < 0 || fstat(m->fd, &st) != 0)
        return -EIO;
    uint64_t need = m->data_off + (npages << m->page_shift);
    if (npages > m->pagetab_cap || need > m->reserve)
        return hmm_fail(HMM_CORRUPT, "%s: the header's page count %llu is beyond the map's limits", m->path,
                        (unsigned long long)npages);
    if ((uint64_t)st.st_size < need)
        return hmm_fail(HMM_CORRUPT, "%s: the file is %lld bytes, shorter than the %llu its pages need "
                        "(truncated under the map?)", m->path, (long long)st.st_size, (unsigned long long)need);
    /* Only ever raised: the file never shrinks. */
    uint64_t cur = atomic_load_explicit(&m->limit, memory_order_relaxed);
    if (cur < need) /* grown: memory again for memcheck (see attach) */
        VALGRIND_MAKE_MEM_DEFINED(m->base, (uint64_t)st.st_size < m->reserve ? (uint64_t)st.st_size : m->reserve);
    while (cur < need && !atomic_compare_exchange_weak(&m->limit, &cur, need))
        ;
    return 0;
}

static hmm_t *handle_new(const char *path, uint32_t flags, bool anon)
{
    hmm_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->fd = -1;
    m->mfd = -1;
    m->rfd = -1;
    m->rdonly = (flags & HMM_RDONLY) != 0;
    m->nometrics = (flags & HMM_NOMETRICS) != 0;
    m->replica_writer = (flags & HMM_REPLICA_WRITER) != 0;
    m->anon = anon;
    m->path = strdup(path);
    pthread_mutex_init(&m->slot_mutex, NULL);
    pthread_mutex_init(&m->unsynced.mutex, NULL);
    m->unsynced.open_low = m->unsynced.flushing_low = UINT64_MAX;
    if (!m->path) {
        free(m);
        return NULL;
    }
    return m;
}

static void handle_free(hmm_t *m)
{
    hmm__metrics_close(m);
    hmm__replog_close(m);
    if (m->base)
        munmap(m->base, m->reserve);
    if (m->fd >= 0)
        close(m->fd);
    pthread_mutex_destroy(&m->slot_mutex);
    pthread_mutex_destroy(&m->unsynced.mutex);
    free(m->path);
    free(m);
}

/* The end of every open: the caller gets the handle, or nothing. */
static int hand_over(hmm_t *m, int rc, hmm_t **out)
{
    if (rc) {
        handle_free(m);
        return rc;
    }
    *out = m;
    return hmm__result(0); /* no detail of a repair made or a metrics file missed on the way */
}

/* Make DIR/hashmmap.map atomically: write a complete map into a file
 * nobody can see (fileio.c), then link() it into place.  Returns 0, or
 * -EEXIST if another process created it first.  Every failure, and a kill
 * at any point where the filesystem has O_TMPFILE, leaves nothing behind;
 * the space is allocated before the first store into it, so a full disk
 * is -ENOSPC here rather than SIGBUS in init_map. */
static int create_map_file(const char *dir, const char *path, const hmm_config *cfg, mode_t mode)
{
    struct hmm_geometry g;
    int rc = hmm__plan_geometry(cfg, 0, &g);
    if (rc)
        return rc;
    struct hmm__newfile nf;
    rc = hmm__newfile_open(&nf, dir, HMM_MAP_FILE);
    if (rc)
        return hmm_fail(rc, "%s: cannot create a file: %s", dir, strerror(-rc));
    if (fchmod(nf.fd, mode) != 0)
        rc = hmm_fail(-errno, "%s: chmod: %s", path, strerror(errno));
    if (rc == 0 && (rc = hmm__allocate(nf.fd, 0, g.file_size)) != 0)
        rc = hmm_fail(rc, "%s: cannot allocate %llu bytes for a new map: %s", path,
                      (unsigned long long)g.file_size, strerror(-rc));
    if (rc == 0)
        rc = size_and_init(nf.fd, &g, cfg, path);
    if (rc == 0 && fsync(nf.fd) != 0)
        rc = hmm_fail(-errno, "%s: fsync: %s", path, strerror(errno));
    if (rc == 0 && (rc = hmm__newfile_publish(&nf, path, false)) != 0 && rc != -EEXIST)
        rc = hmm_fail(rc, "%s: %s", path, strerror(-rc));
    hmm__newfile_close(&nf);
    return rc;
}

static int ensure_dir(const char *dir, mode_t mode, bool create)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return hmm_fail(-ENOTDIR, "%s: not a directory", dir);
        return 0;
    }
    if (errno != ENOENT || !create)
        return hmm_fail(-errno, "%s: %s", dir, strerror(errno));
    /* Search permission wherever the files get read permission. */
    mode_t dmode = mode | ((mode & 0444) >> 2);
    if (mkdir(dir, dmode) != 0 && errno != EEXIST)
        return hmm_fail(-errno, "%s: cannot create directory: %s", dir, strerror(errno));
    return 0;
}

/* Every writable opener holds a shared open-file-description lock on byte 0
 * of the map file for as long as it has the map open.  One that gets it
 * exclusively is the only writer: lock words and intents in the file
 * may be left over from a reboot, a copy, or a crash of the whole host, where
 * no robust-list cleanup ever ran, and nobody else can be holding a lock.
 * That opener rebuilds the locks and repairs every intent
 * (hmm__recover_cold_start), then converts its lock to shared, atomically, which
 * lets the other writers in.  Readers are not waited for: they never lock a
 * mutex and the repair keeps the protocol they rely on.  They do hold byte 1
 * shared, like every opener, so that retired index runs (which a slow reader
 * might still be probing) are freed only when nobody has the map open. */
static int ofd_lock(int fd, short type, off_t byte, bool wait)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) != 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

#define OPENER_BYTE 1 /* every opener, readers too: freeing retired index runs waits for none */
#define WRITER_BYTE 0 /* every writable opener */

/* A writer that gets its shared lock and finds the cold-start mark set
 * (FORMAT.md §10) was let in by the death of a cold starter that had
 * rebuilt the lock words but not repaired every intent: the dead owners'
 * locks no longer say EOWNERDEAD, so nothing else would repair them.  No
 * writer runs (every one let in since saw the mark), so it lets go and
 * tries to become the cold starter again, after a backoff that keeps two
 * such writers from taking turns in lockstep.  A mark that never clears
 * (a damaged file while writers run) ends in HMM_BUSY after ~10 s. */
#define COLD_REDO_TRIES 20000u

static int join_as_writer(hmm_t *m)
{
    for (unsigned tries = 0;; tries++) {
        if (ofd_lock(m->fd, F_WRLCK, WRITER_BYTE, false) == 0) {
            bool alone = ofd_lock(m->fd, F_WRLCK, OPENER_BYTE, false) == 0;
            hmm__recover_cold_start(m, alone);
        }
        int rc = ofd_lock(m->fd, F_RDLCK, WRITER_BYTE, true);
        if (rc || atomic_load_explicit(hmm__cold_mark(m), memory_order_acquire) == 0)
            return rc;
        ofd_lock(m->fd, F_UNLCK, WRITER_BYTE, false);
        if (tries == COLD_REDO_TRIES)
            return hmm_fail(HMM_BUSY, "%s: a cold start (pid %llu) did not finish and the map stays busy", m->path,
                            (unsigned long long)atomic_load(hmm__cold_mark(m)));
        usleep(100 + ((unsigned)getpid() * 7919u + tries * 104729u) % 900u);
    }
}

static int join_openers(hmm_t *m)
{
    if (m->anon)
        return 0;
    int rc = 0;
    if (!m->rdonly && (rc = join_as_writer(m)) == HMM_BUSY)
        return rc;
    if (rc == 0)
        rc = ofd_lock(m->fd, F_RDLCK, OPENER_BYTE, true);
    if (rc)
        return hmm_fail(rc, "%s: cannot lock the map file: %s", m->path, strerror(-rc));
    return 0;
}

/* The last step of every open: a writable handle claims its process slot
 * and repairs the work of processes found dead. */
static int register_opener(hmm_t *m, int rc)
{
    if (rc == 0 && !m->rdonly) {
        rc = hmm__proc_slot_ensure(m);
        if (rc == 0)
            hmm__proc_repair_dead(m);
    }
    if (m->rdonly)
        m->flags |= HMM_RDONLY;
    m->recency_marks = (m->flags & (HMM_CACHE | HMM_RDONLY)) == HMM_CACHE;
    return rc;
}

static int finish_open(hmm_t *m, const char *dir, unsigned mode)
{
    int rc = attach(m);
    if (rc == 0)
        rc = hmm__metrics_open(m, dir, mode);
    if (rc == 0)
        rc = hmm__replog_open(m, dir, mode); /* before a cold start, which repairs it too */
    if (rc == 0)
        rc = join_openers(m);
    return register_opener(m, rc);
}

HMM_EXPORT int hmm_open(hmm_t **out, const char *dir, const hmm_config *cfg)
{
    hmm__error_clear();
    if (!out || !dir || !*dir)
        return hmm_fail(-EINVAL, "hmm_open: NULL handle pointer or empty directory");
    *out = NULL;
    hmm_config defaults = {.flags = HMM_CREATE};
    if (!cfg)
        cfg = &defaults;
    bool rdonly = (cfg->flags & HMM_RDONLY) != 0;
    bool create = (cfg->flags & HMM_CREATE) && !rdonly;
    mode_t mode = cfg->mode ? (mode_t)(cfg->mode & 07777) : 0600;

    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, HMM_MAP_FILE) >= (int)sizeof path)
        return hmm_fail(-ENAMETOOLONG, "%s: path too long", dir);
    int rc = ensure_dir(dir, mode, create);
    if (rc)
        return rc;

    hmm_t *m = handle_new(path, cfg->flags, false);
    if (!m)
        return hmm_fail(-ENOMEM, "%s: no memory for a handle", path);
    bool created = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        /* Only a regular file: a FIFO planted here must not hang us. */
        m->fd = hmm__open_regular(path, rdonly ? O_RDONLY : O_RDWR);
        if (m->fd == -EINVAL) {
            m->fd = -1;
            rc = -EINVAL; /* the detail names the file type */
            goto fail;
        }
        if (m->fd >= 0) {
            if (create && (cfg->flags & HMM_EXCL) && !created) {
                rc = hmm_fail(HMM_EXISTS, "%s: map already exists", path);
                goto fail;
            }
            break;
        }
        int open_err = -m->fd;
        m->fd = -1;
        if (open_err != ENOENT || !create) {
            rc = open_err == ENOENT ? hmm_fail(-ENOENT, "%s: no map here", path)
                                    : hmm_fail(-open_err, "%s: %s", path, strerror(open_err));
            goto fail;
        }
        rc = create_map_file(dir, path, cfg, mode);
        if (rc == -EEXIST && (cfg->flags & HMM_EXCL)) {
            rc = hmm_fail(HMM_EXISTS, "%s: map already exists", path);
            goto fail;
        }
        if (rc && rc != -EEXIST)
            goto fail;
        created = rc == 0;
    }
    if (m->fd < 0) {
        rc = hmm_fail(-ENOENT, "%s: map vanished while it was being opened", path);
        goto fail;
    }
    rc = finish_open(m, dir, mode);
fail:
    return hand_over(m, rc, out);
}

HMM_EXPORT int hmm_open_anon(hmm_t **out, const hmm_config *cfg)
{
    hmm__error_clear();
    if (!out)
        return hmm_fail(-EINVAL, "hmm_open_anon: NULL handle pointer");
    *out = NULL;
    hmm_config defaults = {0};
    if (!cfg)
        cfg = &defaults;
    if (cfg->flags & HMM_RDONLY)
        return hmm_fail(-EINVAL, "an anonymous map cannot be read-only");
    struct hmm_geometry g;
    int rc = hmm__plan_geometry(cfg, 0, &g);
    if (rc)
        return rc;
    hmm_t *m = handle_new("(anonymous map)", cfg->flags, true);
    if (!m)
        return hmm_fail(-ENOMEM, "hmm_open_anon: no memory for a handle");
    m->fd = memfd_create("hashmmap", MFD_CLOEXEC);
    if (m->fd < 0) {
        rc = hmm_fail(-errno, "memfd_create: %s", strerror(errno));
        goto fail;
    }
    rc = size_and_init(m->fd, &g, cfg, m->path);
    if (rc == 0)
        rc = finish_open(m, NULL, 0600);
fail:
    return hand_over(m, rc, out);
}

HMM_EXPORT void hmm_close(hmm_t *m)
{
    if (!m)
        return;
    if (!m->rdonly)
        hmm__proc_slot_release(m);
    handle_free(m);
}

/* ---- passing an anonymous map to another process (issue 20) ----
 *
 * An anonymous map is a memfd plus the memfds of its metrics and its
 * replication log.  All three travel: the log because stripe intents and
 * sequence numbers refer to one ring that every writer must share, the
 * metrics because a process's counts, and the folding of a dead one's,
 * must land where every sharer sums them.  The receiver then joins the map
 * like a forked child: it claims a process slot of its own, and the
 * process table (pid plus start time) tells it from the sender. */

HMM_EXPORT int hmm_fd(hmm_t *m, int fds[HMM_FD_COUNT])
{
    hmm__error_clear();
    if (!m || !fds)
        return hmm_fail(-EINVAL, "hmm_fd: NULL handle or array");
    if (!m->anon)
        return hmm_fail(-EINVAL, "%s: not an anonymous map: other processes open its directory", m->path);
    fds[HMM_FD_MAP] = m->fd;
    fds[HMM_FD_METRICS] = m->mfd;
    fds[HMM_FD_REPLOG] = m->rfd;
    return 0;
}

HMM_EXPORT int hmm_open_fd(hmm_t **out, const int fds[HMM_FD_COUNT], unsigned flags)
{
    hmm__error_clear();
    if (!out || !fds || fds[HMM_FD_MAP] < 0)
        return hmm_fail(-EINVAL, "hmm_open_fd: NULL handle pointer or no map fd");
    *out = NULL;
    if (flags & ~(HMM_RDONLY | HMM_NOMETRICS))
        return hmm_fail(-EINVAL, "hmm_open_fd: only HMM_RDONLY and HMM_NOMETRICS apply");
    hmm_t *m = handle_new("(anonymous map)", flags, true);
    if (!m)
        return hmm_fail(-ENOMEM, "hmm_open_fd: no memory for a handle");
    int rc = 0;
    /* Our own descriptors: the caller may close theirs at once. */
    m->fd = fcntl(fds[HMM_FD_MAP], F_DUPFD_CLOEXEC, 0);
    if (m->fd < 0)
        rc = hmm_fail(-errno, "dup of the map fd %d: %s", fds[HMM_FD_MAP], strerror(errno));
    if (rc == 0)
        rc = attach(m); /* validates the header as for a file */
    if (rc == 0)
        rc = hmm__metrics_adopt(m, fds[HMM_FD_METRICS]);
    if (rc == 0)
        rc = hmm__replog_adopt(m, fds[HMM_FD_REPLOG]);
    return hand_over(m, register_opener(m, rc), out);
}
