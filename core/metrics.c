/*
 * metrics.c - event counters in DIR/hashmmap.metrics (FORMAT.md §11).
 *
 * Each process counts into the slot of its process-table entry: the line is
 * written by that process alone, so counting never bounces a cache line
 * between processes.  Within the process, one thread of a handle (the
 * first that counts after the slot is bound) owns the slot and adds with
 * a plain load and store: a locked add (lock xadd) costs ~20 cycles and,
 * being a full barrier, holds back the next get's loads, which is what
 * lets consecutive gets overlap their cache misses.  A plain add is still
 * exact across SIGKILL: the store is in the coherent cache once the
 * instruction retires, and the killed process executes no half of it.
 * Other threads of a handle shared between threads add atomically into
 * slot HMM_METRICS_UNOWNED (never folded, written only with atomic adds),
 * so no count is lost to a race with the owner; they pay the lock and a
 * line shared with other processes' such threads, which a handle used by
 * one thread (the common case: a process per core) never does.  Counting
 * in per-thread lanes of the file would avoid that, at the cost of a
 * format change (more slots per process).  When a process closes the map, or is found dead, its slot is folded
 * into the totals slot with atomic exchanges, so nothing counted is lost and
 * a reader that sums every slot sees each count once (a fold in progress may
 * hide a process's counts from a concurrent reader for an instant, never
 * show them twice).  hits is not counted: it is gets - misses.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"

static const char *const counter_names[] = {
#define HMM_COUNTER_NAME(id, name, help) #name,
    HMM_COUNTER_MAP(HMM_COUNTER_NAME)
#undef HMM_COUNTER_NAME
};
static const char *const counter_help[] = {
#define HMM_COUNTER_HELP(id, name, help) help,
    HMM_COUNTER_MAP(HMM_COUNTER_HELP)
#undef HMM_COUNTER_HELP
};
_Static_assert(HMM_COUNTER_COUNT <= HMM_METRICS_COUNTERS, "counters fit a metrics slot");
_Static_assert(HMM_METRICS_COUNTERS <= HMM_COUNTERS_MAX, "a slot's counters fit hmm_stats");

HMM_EXPORT const char *hmm_counter_name(int id)
{
    return id >= 0 && id < HMM_COUNTER_COUNT ? counter_names[id] : NULL;
}

HMM_EXPORT const char *hmm_counter_help(int id)
{
    return id >= 0 && id < HMM_COUNTER_COUNT ? counter_help[id] : NULL;
}

static void init_metrics(struct hmm_metrics_header *h, const uint8_t *map_id)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, HMM_METRICS_MAGIC, 8);
    h->version = HMM_METRICS_VERSION;
    h->byte_order = HMM_BYTE_ORDER_MARK;
    h->nslots = HMM_METRICS_SLOTS;
    h->ncounters = HMM_METRICS_COUNTERS;
    memcpy(h->map_id, map_id, sizeof h->map_id);
}

static bool metrics_valid(const struct hmm_metrics_header *h, const uint8_t *map_id)
{
    return memcmp(h->magic, HMM_METRICS_MAGIC, 8) == 0 && h->version == HMM_METRICS_VERSION &&
           h->byte_order == HMM_BYTE_ORDER_MARK && h->nslots == HMM_METRICS_SLOTS &&
           h->ncounters == HMM_METRICS_COUNTERS && memcmp(h->map_id, map_id, sizeof h->map_id) == 0;
}

/* Write a fresh metrics file where nobody sees it, allocated (counting
 * into a hole of a full disk would be SIGBUS), with the map file's mode
 * and owner, and move it into place (rename: it also replaces a file that
 * belongs to another map or is damaged; counts in it could not be trusted
 * anyway). */
static int create_metrics_file(hmm_t *m, const char *dir, const char *path, unsigned mode)
{
    struct hmm__newfile nf;
    int rc = hmm__newfile_open(&nf, dir, HMM_METRICS_FILE);
    if (rc)
        return rc;
    struct hmm_metrics_header h;
    init_metrics(&h, m->hdr->map_id);
    rc = hmm__sibling_access(nf.fd, m->fd, mode);
    if (rc == 0)
        rc = hmm__allocate(nf.fd, 0, HMM_METRICS_SIZE);
    if (rc == 0 && pwrite(nf.fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        rc = -errno;
    if (rc == 0)
        rc = hmm__newfile_publish(&nf, path, true);
    hmm__newfile_close(&nf);
    return rc;
}

/* Map the metrics file (len: HMM_METRICS_SIZE) into the handle. */
static int map_metrics(hmm_t *m, int fd, uint64_t len)
{
    int prot = m->rdonly ? PROT_READ : PROT_READ | PROT_WRITE;
    void *p = mmap(NULL, len, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    m->mfd = fd;
    m->mslots = (struct hmm_metrics_slot *)((uint8_t *)p + sizeof(struct hmm_metrics_header));
    return 0;
}

/* Metrics are an aid, not the map: a failure here leaves the map usable
 * with counting off (hmm_stat's counters stay 0) and is no failure of
 * hmm_open, so it leaves no detail either: a success never does. */
int hmm__metrics_open(hmm_t *m, const char *dir, unsigned mode)
{
    m->mfd = -1;
    if (m->anon) {
        int fd = memfd_create("hashmmap-metrics", MFD_CLOEXEC);
        struct hmm_metrics_header h;
        init_metrics(&h, m->hdr->map_id);
        if (fd < 0 || hmm__file_allocate(fd, HMM_METRICS_SIZE) != 0 ||
            pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || map_metrics(m, fd, HMM_METRICS_SIZE) != 0) {
            if (fd >= 0)
                close(fd);
            return 0;
        }
        return 0;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, HMM_METRICS_FILE) >= (int)sizeof path)
        return 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        /* Not a regular file (a FIFO planted here): replaced like a
         * damaged one, never waited on. */
        int fd = hmm__open_regular(path, m->rdonly ? O_RDONLY : O_RDWR);
        struct stat st;
        struct hmm_metrics_header h;
        if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size >= HMM_METRICS_SIZE &&
            pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h && metrics_valid(&h, m->hdr->map_id) &&
            map_metrics(m, fd, HMM_METRICS_SIZE) == 0)
            return 0;
        if (fd >= 0)
            close(fd);
        if (m->rdonly || attempt > 0)
            break;
        /* Failing (or losing the race to another opener) shows as the
         * second open's outcome. */
        (void)create_metrics_file(m, dir, path, mode);
    }
    return 0;
}

/* An anonymous map's metrics memfd received from another process
 * (hmm_open_fd): counts must land where every sharer sums them, so the
 * received file is mapped, never a new one made.  fd -1: counting off. */
int hmm__metrics_adopt(hmm_t *m, int fd)
{
    m->mfd = -1;
    if (fd < 0)
        return 0;
    struct stat st;
    struct hmm_metrics_header h;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < HMM_METRICS_SIZE ||
        pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || !metrics_valid(&h, m->hdr->map_id))
        return hmm_fail(-EINVAL, "fd %d is not the metrics of this map", fd);
    return hmm__adopt_fd(m, fd, "metrics", map_metrics, HMM_METRICS_SIZE);
}

void hmm__metrics_close(hmm_t *m)
{
    if (m->mslots)
        munmap((uint8_t *)m->mslots - sizeof(struct hmm_metrics_header), HMM_METRICS_SIZE);
    if (m->mfd >= 0)
        close(m->mfd);
    m->mslots = NULL;
    m->mfd = -1;
    atomic_store(&m->mslot, NULL);
}

_Thread_local uint64_t hmm__thread_id __attribute__((tls_model("initial-exec")));
/* counting_thread when the slot has no owner yet: no thread's number (they
 * count up from 1, and 0 is a thread's before it has one, which must match
 * no slot); UINT64_MAX: the slot may never be owned. */
#define COUNTING_UNCLAIMED (UINT64_MAX - 1)
static _Atomic uint64_t last_thread_id;

void hmm__metrics_bind(hmm_t *m, uint32_t proc_slot_tag)
{
    if (!m->mslots || m->rdonly || m->nometrics)
        return;
    uint32_t slot = proc_slot_tag ? 2 + proc_slot_tag - 1 : HMM_METRICS_UNOWNED;
    /* A new slot (first open, or the child's after fork) has no owner yet:
     * the next thread that counts claims it.  Slot HMM_METRICS_UNOWNED is
     * shared between processes: nobody may own it (UINT64_MAX is no
     * thread's number), all add atomically. */
    atomic_store_explicit(&m->counting_thread, slot == HMM_METRICS_UNOWNED ? UINT64_MAX : COUNTING_UNCLAIMED,
                          memory_order_relaxed);
    atomic_store_explicit(&m->mslot, &m->mslots[slot], memory_order_relaxed);
}

/* metrics_add() from a thread that does not own the slot.  In a fork's
 * child (whose threads all start without a number) the handle still names
 * the parent's slot: take the child's own first, which unbinds the owner.
 * Then claim the slot if nobody owns it (a CAS: never two owners), else
 * add atomically into the unowned slot.  A thread that exits keeps the
 * slot owned; later threads count through the unowned slot, exact still. */
void hmm__metrics_add_other(hmm_t *m, enum hmm_counter c, uint64_t n)
{
    if (hmm__thread_id == 0) {
        hmm__thread_id = atomic_fetch_add_explicit(&last_thread_id, 1, memory_order_relaxed) + 1;
        hmm__proc_slot_ensure(m);
    }
    struct hmm_metrics_slot *s = atomic_load_explicit(&m->mslot, memory_order_relaxed);
    if (!s)
        return;
    uint64_t none = COUNTING_UNCLAIMED;
    if (atomic_compare_exchange_strong_explicit(&m->counting_thread, &none, hmm__thread_id, memory_order_relaxed,
                                                memory_order_relaxed)) {
        metrics_add(m, c, n);
        return;
    }
    atomic_fetch_add_explicit(&m->mslots[HMM_METRICS_UNOWNED].c[c], n, memory_order_relaxed);
}

/* The child of a fork: its one thread is a copy of the forking one, whose
 * number may own a handle's slot in the parent. */
void hmm__metrics_forget_thread(void)
{
    hmm__thread_id = 0;
}

void hmm__metrics_fold(hmm_t *m, uint32_t proc_slot_index)
{
    if (!m->mslots || m->rdonly || proc_slot_index >= HMM_PROCS)
        return;
    struct hmm_metrics_slot *from = &m->mslots[2 + proc_slot_index];
    struct hmm_metrics_slot *to = &m->mslots[HMM_METRICS_TOTALS];
    for (unsigned c = 0; c < HMM_METRICS_COUNTERS; c++) {
        uint64_t v = atomic_exchange(&from->c[c], 0);
        if (v)
            atomic_fetch_add(&to->c[c], v);
    }
}

void hmm__metrics_sum(hmm_t *m, uint64_t *counters)
{
    memset(counters, 0, HMM_COUNTERS_MAX * sizeof *counters);
    if (!m->mslots)
        return;
    for (unsigned s = 0; s < HMM_METRICS_SLOTS; s++)
        for (unsigned c = 0; c < HMM_METRICS_COUNTERS; c++)
            counters[c] += atomic_load_explicit(&m->mslots[s].c[c], memory_order_relaxed);
}
