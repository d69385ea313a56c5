/*
 * footprint.c - the targets of DESIGN.md §10 that are not speeds: bytes per
 * entry, time to open an existing map, time to recover after a crash
 * (issue 9).  Public API only (include/hashmmap.h), so the figures are what
 * a user of the library would see.
 *
 * Space: a map filled with `entries` keys (hmmbench's make_key, 8-byte
 * values), measured four ways, from the coarsest to the finest:
 *   file       size of DIR/hashmmap.map (hmm_stats.file_size);
 *   disk       blocks the file really has (it is sparse: pages never
 *              written take none);
 *   allocated  the file minus the entry pages no size class has taken yet
 *              (hmm_stats.bytes_total less the classes' pages);
 *   live       the entries' chunks (hmm_stat_classes: chunks_used x
 *              chunk_size) plus the hash index (buckets x 64 bytes,
 *              FORMAT.md §7), without the fixed part.
 * Each as bytes per entry minus the 24 bytes of key and value.
 *
 * Open: hmm_open of the closed map, several times; no other process has it
 * open, so every one of these is the cold-start open (FORMAT.md §9).
 *
 * Recovery: a forked writer (its own handle) puts in a loop and is
 * SIGKILLed at a random moment, mostly inside a put holding its stripe
 * lock.  While this process keeps the map open ("warm"), the next process
 * to meet the dead writer's work is timed: either a fresh process's
 * hmm_open (hmm__proc_repair_dead locks whatever the dead slot held) or this
 * process's next put on the key the writer was storing (its stripe lock
 * returns EOWNERDEAD).  Rounds alternate, so each figure comes from rounds
 * where it was the first to meet the damage.  Then "cold": the writer is
 * the only process with the map open when it dies, and the next open is a
 * cold start that rebuilds every lock and repairs every intent.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hashmmap.h>

#include "bench/hmmbench.h"

#define VLEN 8
#define BUCKET_BYTES 64 /* one index bucket (FORMAT.md §7); not in the public header */
#define OPENS 9
#define COLD_KILLS 5

/* ---- space ---- */

struct space {
    uint64_t items, file, disk, alloc, live, index, growth_steps;
};

static double per_entry(uint64_t bytes, uint64_t items)
{
    return items ? (double)bytes / (double)items - (KEY_LEN + VLEN) : NAN;
}

static int space_of(hmm_t *m, const char *dir, struct space *sp)
{
    hmm_stats st;
    hmm_class_stats cs[256];
    size_t n;
    char path[600];
    struct stat fs;
    snprintf(path, sizeof path, "%s/hashmmap.map", dir);
    if (hmm_stat(m, &st) || hmm_stat_classes(m, cs, 256, &n) || n > 256 || stat(path, &fs))
        return -1;
    uint64_t class_pages = 0, chunks = 0;
    for (size_t c = 0; c < n; c++) {
        class_pages += cs[c].pages;
        chunks += cs[c].chunks_used * cs[c].chunk_size;
    }
    *sp = (struct space){
        .items = st.items,
        .file = (uint64_t)fs.st_size,
        .disk = (uint64_t)fs.st_blocks * 512,
        .alloc = st.file_size - (st.bytes_total - class_pages * st.page_size),
        .live = chunks + st.index_buckets * BUCKET_BYTES,
        .index = st.index_buckets * BUCKET_BYTES,
        .growth_steps = st.counters[HMM_C_GROWTH_STEPS],
    };
    return 0;
}

/* Keys from..to-1. */
static int fill(hmm_t *m, uint64_t from, uint64_t to)
{
    char k[KEY_LEN];
    for (uint64_t i = from; i < to; i++) {
        make_key(k, i);
        int rc = hmm_put(m, k, KEY_LEN, "10000000", VLEN, 0, 0);
        if (rc) {
            fprintf(stderr, "hmmbench: footprint: put %llu: %s\n", (unsigned long long)i, hmm_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static void file_bytes(const char *dir, const char *name, uint64_t *out)
{
    char path[600];
    struct stat fs;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *out = stat(path, &fs) == 0 ? (uint64_t)fs.st_size : 0;
}

/* Fill a map made with cfg, print its line; the map stays open in *out. */
static int space_row(FILE *csv, const char *label, const char *dir, const hmm_config *cfg, uint64_t entries,
                     struct space *sp, hmm_t **out)
{
    hmm_t *m;
    int rc = hmm_open(&m, dir, cfg);
    if (rc) {
        printf("  %-24s cannot be opened: %s\n", label, hmm_strerror(rc));
        return rc;
    }
    if ((rc = fill(m, 0, entries)) != 0 || (rc = space_of(m, dir, sp)) != 0) {
        hmm_close(m);
        return rc ? rc : -1;
    }
    double index = sp->items ? (double)sp->index / (double)sp->items : NAN;
    printf("  %-24s file %6.1f   disk %6.1f   allocated %6.1f   live %6.1f, of which index %5.1f   (file %llu MiB,"
           " %llu growth steps)\n",
           label, per_entry(sp->file, sp->items), per_entry(sp->disk, sp->items), per_entry(sp->alloc, sp->items),
           per_entry(sp->live, sp->items), index, (unsigned long long)(sp->file >> 20),
           (unsigned long long)sp->growth_steps);
    static const char *const how[] = {"file", "disk", "allocated", "live"};
    const uint64_t bytes[] = {sp->file, sp->disk, sp->alloc, sp->live};
    for (int i = 0; i < 4; i++)
        fprintf(csv, "space,bytes per entry beyond key and value (%s),%llu,%d,fresh,hmm_file,%s,0,0,%.2f,%llu,0\n",
                how[i], (unsigned long long)entries, VLEN, label, per_entry(bytes[i], sp->items),
                (unsigned long long)sp->items);
    fprintf(csv, "space,bytes per entry of the hash index,%llu,%d,fresh,hmm_file,%s,0,0,%.2f,%llu,0\n",
            (unsigned long long)entries, VLEN, label, index, (unsigned long long)sp->items);
    *out = m;
    return 0;
}

/* The file's bytes per entry as the grown map goes on growing, from
 * `entries` to twice as many: the figure at `entries` alone depends on
 * where that count falls between two doublings of the index (12 bytes an
 * entry just before one, 24 just after), so the curve says what a map
 * pays on average. */
static void space_curve(FILE *csv, hmm_t *m, const char *dir, uint64_t entries)
{
    enum { STEPS = 8 };
    double sum = 0;
    int n = 0;
    printf("  %-24s", "the same map, growing on:");
    for (int i = 1; i <= STEPS; i++) {
        uint64_t from = entries + entries * (uint64_t)(i - 1) / STEPS, to = entries + entries * (uint64_t)i / STEPS;
        struct space sp;
        if (fill(m, from, to) != 0 || space_of(m, dir, &sp) != 0)
            break;
        double file = per_entry(sp.file, sp.items);
        printf(" %.2fM %.1f", (double)to / 1e6, file);
        fprintf(csv, "space,bytes per entry beyond key and value (file),%llu,%d,fresh,hmm_file,map grown from 1 MiB,0,0,"
                     "%.2f,%llu,0\n",
                (unsigned long long)to, VLEN, file, (unsigned long long)sp.items);
        sum += file;
        n++;
    }
    printf("   (file, bytes per entry; mean %.1f)\n", n ? sum / n : NAN);
}

/* ---- timings ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double worst(const double *v, size_t n)
{
    double w = n ? v[0] : NAN;
    for (size_t i = 1; i < n; i++)
        w = v[i] > w ? v[i] : w;
    return w;
}

/* Time hmm_open of dir and the first get after it, in ms.  Also the first
 * put of key number `key` when put_ms is not NULL. */
static int timed_open(const char *dir, uint64_t key, double *open_ms, double *get_ms, double *put_ms)
{
    hmm_t *m;
    char k[KEY_LEN], v[VAL_MAX];
    size_t len = sizeof v;
    make_key(k, key);
    double t0 = now_s();
    int rc = hmm_open(&m, dir, &(hmm_config){0});
    double t1 = now_s();
    if (rc) {
        fprintf(stderr, "hmmbench: footprint: open: %s (%s)\n", hmm_strerror(rc), hmm_last_error());
        return rc;
    }
    rc = hmm_get(m, k, KEY_LEN, v, &len);
    double t2 = now_s();
    *open_ms = (t1 - t0) * 1e3;
    *get_ms = (t2 - t1) * 1e3;
    if (rc == 0 && put_ms) {
        rc = hmm_put(m, k, KEY_LEN, "12345678", VLEN, 0, 0);
        *put_ms = (now_s() - t2) * 1e3;
    }
    hmm_close(m);
    return rc;
}

/* The same in a fresh process (a forked child; the times come back through
 * a pipe).  The child inherits this process's handle but does not use it. */
static int timed_open_child(const char *dir, uint64_t key, double *open_ms, double *get_ms)
{
    int p[2];
    double t[2];
    if (pipe(p) != 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -errno;
    }
    if (pid == 0) {
        close(p[0]);
        int rc = timed_open(dir, key, &t[0], &t[1], NULL);
        _exit(rc == 0 && write(p[1], t, sizeof t) == sizeof t ? 0 : 1);
    }
    close(p[1]);
    ssize_t got = read(p[0], t, sizeof t);
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got != sizeof t || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    *open_ms = t[0];
    *get_ms = t[1];
    return 0;
}

/* ---- a writer killed at a random moment ---- */

struct progress {      /* in shared anonymous memory, written by the writer */
    atomic_int started;
    _Atomic uint64_t key; /* the key number it is storing (or just stored) */
};

static _Noreturn void writer(const char *dir, struct progress *pr, uint64_t entries, uint64_t seed)
{
    hmm_t *m;
    char k[KEY_LEN];
    if (hmm_open(&m, dir, &(hmm_config){0}) != 0)
        _exit(3);
    /* Release: the parent's acquire load sees the handle's setup done
     * before it starts its clock to the kill. */
    atomic_store_explicit(&pr->started, 1, memory_order_release);
    uint64_t x = seed | 1;
    for (;;) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t i = x % entries;
        /* Relaxed: the parent reads it after waitpid(), which orders it. */
        atomic_store_explicit(&pr->key, i, memory_order_relaxed);
        make_key(k, i);
        hmm_put(m, k, KEY_LEN, "87654321", VLEN, 0, 0);
    }
}

/* Fork a writer on dir, kill it 1..20 ms after it has the map open.  The
 * key it was storing goes to *key.  0, or -1 when it never started. */
static int kill_writer(const char *dir, struct progress *pr, uint64_t entries, unsigned *seed, uint64_t *key)
{
    atomic_store(&pr->started, 0);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        writer(dir, pr, entries, (uint64_t)rand_r(seed) << 20 | 1);
    int rc = 0;
    double t0 = now_s();
    while (!atomic_load_explicit(&pr->started, memory_order_acquire) && rc == 0) {
        usleep(200);
        rc = now_s() - t0 > 10 || waitpid(pid, NULL, WNOHANG) == pid ? -1 : 0;
    }
    if (rc == 0)
        usleep(1000 + (unsigned)rand_r(seed) % 19000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    *key = atomic_load_explicit(&pr->key, memory_order_relaxed);
    return rc;
}

static uint64_t recoveries(hmm_t *m)
{
    hmm_stats st;
    return hmm_stat(m, &st) == 0 ? st.recoveries : 0;
}

static void csv_time(FILE *csv, const char *section, const char *what, uint64_t entries, const char *store,
                     double ms, size_t n)
{
    if (isnan(ms))
        return;
    double ns = ms * 1e6;
    fprintf(csv, "%s,%s,%llu,%d,,hmm_file,%s,%.0f,%.2f,0,%zu,0\n", section, what, (unsigned long long)entries, VLEN,
            store, ns, ns > 0 ? 1e9 / ns : 0, n);
}

static void print_times(FILE *csv, const char *section, const char *what, uint64_t entries, double *v, size_t n)
{
    double w = worst(v, n), med = median(v, n);
    printf("    %-58s median %8.3f ms   worst %8.3f ms   (%zu rounds)\n", what, med, w, n);
    csv_time(csv, section, what, entries, "pre-sized map (median)", med, n);
    csv_time(csv, section, what, entries, "pre-sized map (worst)", w, n);
}

/* Warm and cold kills on the closed map in dir; the worst time of any
 * recovery goes to *worst_ms. */
static void recovery(FILE *csv, const char *dir, uint64_t entries, unsigned kills, double *worst_ms)
{
    struct progress *pr = mmap(NULL, sizeof *pr, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double *open_t = calloc(kills, sizeof *open_t), *put_t = calloc(kills, sizeof *put_t);
    double cold_open[COLD_KILLS], cold_put[COLD_KILLS], get_ms, ms;
    size_t nopen = 0, nput = 0, ncold = 0, repaired = 0, failed = 0;
    unsigned seed = 12345;
    hmm_t *keep = NULL;
    char k[KEY_LEN];
    if (pr == MAP_FAILED || !open_t || !put_t || hmm_open(&keep, dir, &(hmm_config){0}) != 0) {
        printf("  recovery: skipped (cannot set up)\n");
        goto out;
    }
    /* The usual open: another process has the map open, nobody died. */
    double warm[OPENS];
    size_t nwarm = 0;
    for (int i = 0; i < OPENS; i++)
        nwarm += timed_open_child(dir, (uint64_t)i * 7919 % entries, &warm[nwarm], &get_ms) == 0;
    printf("  a fresh process opens the map while this one has it open (nobody died, no repair), %d times:\n", OPENS);
    print_times(csv, "open", "open", entries, warm, nwarm);
    for (unsigned r = 0; r < kills; r++) {
        uint64_t key, before = recoveries(keep);
        if (kill_writer(dir, pr, entries, &seed, &key) != 0) {
            failed++;
            continue;
        }
        make_key(k, key);
        bool put_first = r % 2 == 0;
        double t0 = now_s();
        int rc = put_first ? hmm_put(keep, k, KEY_LEN, "12345678", VLEN, 0, 0)
                           : timed_open_child(dir, key, &ms, &get_ms);
        if (rc == 0 && put_first)
            put_t[nput++] = (now_s() - t0) * 1e3;
        else if (rc == 0)
            open_t[nopen++] = ms;
        /* The other one too, untimed, so every round starts repaired. */
        rc |= put_first ? timed_open_child(dir, key, &ms, &get_ms) : hmm_put(keep, k, KEY_LEN, "1", 1, 0, 0);
        failed += rc != 0;
        repaired += recoveries(keep) > before;
    }
    hmm_close(keep);
    keep = NULL;
    for (unsigned r = 0; r < COLD_KILLS; r++) {
        uint64_t key;
        if (kill_writer(dir, pr, entries, &seed, &key) != 0 ||
            timed_open(dir, key, &cold_open[ncold], &get_ms, &cold_put[ncold]) != 0)
            failed++;
        else
            ncold++;
    }
    printf("  a writer (its own process and handle) SIGKILLed 1-20 ms into a loop of puts, %u times, while this"
           " process keeps the map open (%zu kills left a repair to do, by hmm_stats.recoveries; %zu rounds"
           " failed):\n",
           kills, repaired, failed);
    print_times(csv, "recovery", "open in a fresh process (repairs the dead writer's locks)", entries, open_t, nopen);
    print_times(csv, "recovery", "put of the dead writer's key (EOWNERDEAD on its stripe)", entries, put_t, nput);
    printf("  cold start: the writer is the only process with the map open when it is killed, %d times:\n",
           COLD_KILLS);
    print_times(csv, "recovery", "next open (rebuilds every lock and repairs every intent)", entries, cold_open, ncold);
    print_times(csv, "recovery", "first put after that open", entries, cold_put, ncold);
    double w[] = {worst(open_t, nopen), worst(put_t, nput), worst(cold_open, ncold), worst(cold_put, ncold)};
    *worst_ms = failed ? NAN : worst(w, 4);
out:
    if (keep)
        hmm_close(keep);
    if (pr != MAP_FAILED)
        munmap(pr, sizeof *pr);
    free(open_t);
    free(put_t);
}

/* ---- the section ---- */

void footprint(FILE *csv, uint64_t entries, unsigned kills, struct footprint_figures *fig)
{
    char gdir[512], sdir[512];
    struct space grown, sized;
    hmm_t *g = NULL, *s = NULL;
    *fig = (struct footprint_figures){.entries = entries, .overhead_file = NAN, .overhead_alloc = NAN,
                                      .open_ms = NAN, .recover_ms = NAN};
    bench_path(gdir, sizeof gdir, "space-grown");
    bench_path(sdir, sizeof sdir, "space-sized");
    /* Pre-sized as a user who knows the entry size would: 64 bytes of data
     * per entry (a 56-byte chunk and some slack), room to grow if short. */
    uint64_t size = entries * 64 + (4u << 20);
    hmm_config gc = {.size = 1 << 20, .max_size = 4ull << 30, .flags = HMM_CREATE};
    hmm_config sc = {.size = size, .max_size = 2 * size, .flags = HMM_CREATE};
    printf("\nspace, open and recovery: %llu entries, %d-byte keys, %d-byte values\n", (unsigned long long)entries,
           KEY_LEN, VLEN);
    printf("  bytes per entry beyond key and value (the %d bytes of both):\n", KEY_LEN + VLEN);
    if (space_row(csv, "map grown from 1 MiB", gdir, &gc, entries, &grown, &g) == 0) {
        fig->overhead_file = per_entry(grown.file, grown.items);
        fig->overhead_alloc = per_entry(grown.alloc, grown.items);
        uint64_t replog, metrics;
        file_bytes(gdir, "hashmmap.replog", &replog);
        file_bytes(gdir, "hashmmap.metrics", &metrics);
        printf("    (file: size of DIR/hashmmap.map; disk: its blocks (sparse); allocated: the file less entry pages"
               " no size class took yet; live: chunks in use (header, key, value) plus the index, no fixed part."
               "  Not counted: hashmmap.replog, %llu KiB, and hashmmap.metrics, %llu KiB, both fixed-size)\n",
               (unsigned long long)(replog >> 10), (unsigned long long)(metrics >> 10));
        space_curve(csv, g, gdir, entries);
        hmm_close(g);
    }
    bench_remove(gdir);
    char label[64];
    snprintf(label, sizeof label, "map pre-sized (%llu MiB)", (unsigned long long)(size >> 20));
    if (space_row(csv, label, sdir, &sc, entries, &sized, &s) != 0) {
        bench_remove(sdir);
        return;
    }
    hmm_close(s);

    /* Open: the map just closed, nobody else has it open. */
    double open_t[OPENS], first = NAN, get_first = NAN, get_ms;
    size_t n = 0;
    for (int i = 0; i < OPENS; i++)
        if (timed_open(sdir, (uint64_t)i * 7919 % entries, &open_t[n], &get_ms, NULL) == 0 && n++ == 0) {
            first = open_t[0];
            get_first = get_ms;
        }
    fig->open_ms = n == OPENS ? median(open_t, n) : NAN;
    printf("  open of the pre-sized map, closed, nobody else has it open (a cold start each time), %d times:"
           " first %.3f ms, median %.3f ms, worst %.3f ms; first get after the first open %.3f ms\n",
           OPENS, first, fig->open_ms, worst(open_t, n), get_first);
    csv_time(csv, "open", "open", entries, "pre-sized map (first)", first, 1);
    csv_time(csv, "open", "open", entries, "pre-sized map (median)", fig->open_ms, n);
    csv_time(csv, "open", "first get after open", entries, "pre-sized map", get_first, 1);
    recovery(csv, sdir, entries, kills, &fig->recover_ms);
    bench_remove(sdir);
}
