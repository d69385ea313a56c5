/*
 * proc.c - the process table (FORMAT.md §4): who has the map open, and the
 * open-time repair of what dead processes left behind.
 *
 * A process is dead only when the kernel says so: kill(pid, 0) fails with
 * ESRCH, or the pid now belongs to a process with another start time.  We
 * never infer death from silence or timeouts, nor from a pid of another
 * pid namespace, which names some other process here, or none.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"

/* Bumped in every child after fork(), so a handle notices it is now used by
 * another process without a getpid() system call on every write. */
_Atomic uint64_t hmm__fork_epoch = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add(&hmm__fork_epoch, 1);
    hmm__metrics_forget_thread();
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

/* Field 22 of /proc/PID/stat: start time in clock ticks since boot.  0 when
 * it cannot be read. */
uint64_t hmm__proc_start_time(int64_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields
     * are counted from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long long start = 0;
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    if (field == 22 && sscanf(p, "%llu", &start) == 1)
        return start;
    return 0;
}

/* The inode of this process's pid namespace; 0 when /proc cannot say.
 * Read on each call: the slow paths that ask are rare, and a process that
 * called unshare(CLONE_NEWPID) forks children into another namespace. */
static uint64_t self_pid_ns(void)
{
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* May a pid recorded in namespace ns be checked from here?  Not when both
 * are known and differ; a slot of a library before pid_ns (0) is checked
 * as it always was. */
static bool pid_checkable(uint64_t ns, uint64_t self_ns)
{
    return ns == 0 || ns == self_ns;
}

/* 1 alive, 0 dead.  Presumed alive when it cannot be checked. */
static int pid_alive(int64_t pid, uint64_t start_time)
{
    if (pid <= 0 || pid > INT32_MAX)
        return 0;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 0;
    if (start_time != 0) {
        uint64_t now = hmm__proc_start_time(pid);
        if (now != 0 && now != start_time)
            return 0;
    }
    return 1;
}

/* Is the process of slot p alive?  1 also when it cannot be checked from
 * here (another pid namespace); 0 for a free slot. */
static int slot_alive(const struct hmm_proc *p, uint64_t self_ns)
{
    uint64_t pid = atomic_load(&p->pid);
    uint64_t start = atomic_load(&p->start_time);
    if (pid == 0)
        return 0;
    if (!pid_checkable(atomic_load(&p->pid_ns), self_ns))
        return 1;
    return pid_alive((int64_t)pid, start == HMM_START_UNKNOWN ? 0 : start);
}

int hmm__proc_slot_alive(hmm_t *m, uint32_t tag)
{
    return tag >= 1 && tag <= HMM_PROCS && slot_alive(&m->procs[tag - 1], self_pid_ns());
}

int hmm__proc_pid_alive(hmm_t *m, int64_t pid)
{
    uint64_t self_ns = self_pid_ns();
    for (uint32_t i = 0; i < HMM_PROCS; i++) {
        const struct hmm_proc *p = &m->procs[i];
        if (atomic_load(&p->pid) == (uint64_t)pid && !pid_checkable(atomic_load(&p->pid_ns), self_ns))
            return 1;
    }
    return pid_alive(pid, 0);
}

static int claim_slot_locked(hmm_t *m)
{
    int64_t pid = getpid();
    uint64_t start = hmm__proc_start_time(pid), ns = self_pid_ns();
    for (uint32_t i = 0; i < HMM_PROCS; i++) {
        struct hmm_proc *p = &m->procs[i];
        uint64_t expect = 0;
        if (atomic_load_explicit(&p->pid, memory_order_relaxed) != 0)
            continue;
        if (!atomic_compare_exchange_strong(&p->pid, &expect, (uint64_t)pid))
            continue;
        p->opened_ms = hmm_now_ms();
        atomic_store(&p->pid_ns, ns); /* before start_time: a claimed slot shows both */
        atomic_store(&p->start_time, start ? start : HMM_START_UNKNOWN);
        atomic_store(&m->proc_slot, i + 1);
        hmm__metrics_bind(m, i + 1);
        return 0;
    }
    /* A full table does not stop the process: it is just not listed. */
    atomic_store(&m->proc_slot, 0);
    hmm__metrics_bind(m, 0);
    return 0;
}

int hmm__proc_slot_claim(hmm_t *m)
{
    /* Before the epoch is read: a fork after this bumps it in the child. */
    pthread_once(&atfork_once, register_atfork);
    uint64_t epoch = atomic_load_explicit(&hmm__fork_epoch, memory_order_relaxed);
    if (atomic_load_explicit(&m->slot_epoch, memory_order_acquire) == epoch)
        return 0;
    pthread_mutex_lock(&m->slot_mutex);
    if (atomic_load(&m->slot_epoch) != epoch) {
        /* After fork the inherited slot still names the parent; we take our own. */
        claim_slot_locked(m);
        atomic_store_explicit(&m->slot_epoch, epoch, memory_order_release);
    }
    pthread_mutex_unlock(&m->slot_mutex);
    return 0;
}

void hmm__proc_slot_release(hmm_t *m)
{
    uint32_t tag = atomic_load(&m->proc_slot);
    if (tag == 0 || atomic_load(&m->slot_epoch) != atomic_load(&hmm__fork_epoch))
        return;
    struct hmm_proc *p = &m->procs[tag - 1];
    uint64_t pid = (uint64_t)getpid();
    if (atomic_load(&p->pid) != pid)
        return;
    atomic_store(&m->mslot, NULL);
    hmm__metrics_fold(m, tag - 1);
    atomic_store(&p->start_time, 0);
    atomic_store(&p->pid, 0);
    atomic_store(&m->proc_slot, 0);
}

/* Lock and unlock every lock whose recorded holder is the dead slot: taking
 * it returns EOWNERDEAD and lock.c runs the repair. */
static void repair_locks_of(hmm_t *m, uint32_t tag)
{
    for (uint32_t s = 0; s <= m->stripe_mask; s++)
        if (atomic_load(&m->stripes[s].owner_proc) == tag && hmm__lock_stripe(m, s) == 0)
            hmm__unlock_stripe(m, s);
    for (uint32_t c = 0; c < m->nclasses; c++)
        if (atomic_load(&m->classes[c].owner_proc) == tag && hmm__lock_class(m, c) == 0)
            hmm__unlock_class(m, c);
    if (atomic_load(&m->hdr->pages_owner_proc) == tag && hmm__lock_pages(m) == 0)
        hmm__unlock_pages(m);
    hmm__replog_repair_dead(m, tag);
}

/* Repair the work of every process found dead; reap: also free its slot
 * (folding its counters into the totals). */
static void scan_dead(hmm_t *m, bool reap)
{
    uint32_t self = hmm__proc_self_tag(m);
    uint64_t self_ns = self_pid_ns();
    for (uint32_t i = 0; i < HMM_PROCS; i++) {
        struct hmm_proc *p = &m->procs[i];
        uint64_t pid = atomic_load(&p->pid);
        if (pid == 0 || i + 1 == self || slot_alive(p, self_ns))
            continue;
        repair_locks_of(m, i + 1);
        if (!reap)
            continue;
        hmm__metrics_fold(m, i);
        /* Only the slot's pid is compared, so two repairers free it once. */
        if (atomic_compare_exchange_strong(&p->pid, &pid, 0))
            atomic_store(&p->start_time, 0);
    }
}

void hmm__proc_repair_dead(hmm_t *m)
{
    scan_dead(m, true);
}

void hmm__proc_repair_dead_locks(hmm_t *m)
{
    scan_dead(m, false);
}

uint32_t hmm__procs_alive(hmm_t *m)
{
    uint32_t count = 0;
    uint64_t self_ns = self_pid_ns();
    for (uint32_t i = 0; i < HMM_PROCS; i++)
        count += slot_alive(&m->procs[i], self_ns);
    return count;
}

HMM_EXPORT int hmm_procs(hmm_t *m, hmm_proc_info *out, size_t cap, size_t *n)
{
    hmm__error_clear();
    if (!m || (!out && cap) || !n)
        return hmm_fail(-EINVAL, "hmm_procs: NULL handle or count, or NULL array with a capacity");
    size_t count = 0;
    uint64_t self_ns = self_pid_ns();
    for (uint32_t i = 0; i < HMM_PROCS; i++) {
        struct hmm_proc *p = &m->procs[i];
        uint64_t pid = atomic_load(&p->pid);
        if (pid == 0)
            continue;
        uint64_t start = atomic_load(&p->start_time);
        if (count < cap) {
            out[count].pid = (int64_t)pid;
            out[count].start_time = start;
            out[count].opened_ms = p->opened_ms;
            out[count].alive = slot_alive(p, self_ns);
        }
        count++;
    }
    *n = count;
    return 0;
}
