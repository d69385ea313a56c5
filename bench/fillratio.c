/*
 * fillratio.c - how full a map is when it first says HMM_FULL (DESIGN.md
 * §4.9, FORMAT.md §2 and §6).
 *
 *   bench/fillratio              the table below, then the same as CSV
 *   FILLRATIO_QUICK=1 bench/fillratio   maps up to 4 MiB only
 *
 * For each map size (created with max_size = size, so it cannot grow, and
 * HMM_NOREPLOG) and each kind of value (one size, or sizes drawn uniformly
 * from 1..N), fresh keys are put until the first refusal; the figure is the
 * live bytes (hmm_stats.bytes_used: header, key and value) over the data
 * area (bytes_total) at that moment.  What keeps it under 100%: each class
 * in use holds whole pages, the classes round sizes up, a chunk size that
 * does not divide the page leaves a tail, and a value over half a page
 * takes a run of whole pages.  Nothing is timed: the figures are exact.
 */
#include "config.h"

#include <hashmmap.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct values {
    const char *name;
    size_t size; /* one size, or 0: drawn from 1..upto */
    size_t upto;
};

static const struct values kinds[] = {
    {"40", 40, 0},         {"200", 200, 0},       {"1000", 1000, 0},
    {"3000", 3000, 0},     {"10000", 10000, 0},   {"20000", 20000, 0},
    {"1..100", 0, 100},    {"1..2000", 0, 2000},  {"1..30000", 0, 30000},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static const uint64_t map_sizes[] = {256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20};
#define NSIZES (sizeof map_sizes / sizeof map_sizes[0])

/* Fill a fresh map of `size` bytes in dir with values of kind v until the
 * first refusal.  The live bytes over the data area in %, or -1. */
static double fill(const char *dir, uint64_t size, const struct values *v, uint32_t *page_size)
{
    static char val[30000];
    hmm_config cfg = {.size = size, .max_size = size, .flags = HMM_CREATE | HMM_EXCL | HMM_NOREPLOG};
    hmm_t *m;
    int rc = hmm_open(&m, dir, &cfg);
    if (rc) {
        fprintf(stderr, "fillratio: %s: %s (%s)\n", dir, hmm_strerror(rc), hmm_last_error());
        return -1;
    }
    uint64_t rng = 42;
    for (uint64_t n = 0; rc == 0; n++) {
        char key[24];
        int kl = snprintf(key, sizeof key, "k%llu", (unsigned long long)n);
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        size_t len = v->size ? v->size : 1 + (size_t)((rng >> 33) % v->upto);
        rc = hmm_put(m, key, (size_t)kl, val, len, 0, 0);
    }
    double pct = -1;
    hmm_stats st;
    if (rc == HMM_FULL && hmm_stat(m, &st) == 0) {
        pct = 100.0 * (double)st.bytes_used / (double)st.bytes_total;
        *page_size = st.page_size;
    } else {
        fprintf(stderr, "fillratio: %s: a put failed with %s (%s)\n", dir, hmm_strerror(rc), hmm_last_error());
    }
    hmm_close(m);
    return pct;
}

static void remove_map(const char *dir)
{
    char path[512];
    static const char *const files[] = {"hashmmap.map", "hashmmap.metrics"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char root[256];
    snprintf(root, sizeof root, "%s/hmm-fillratio.XXXXXX", tmp);
    if (!mkdtemp(root)) {
        perror("fillratio: mkdtemp");
        return 1;
    }
    size_t nsizes = getenv("FILLRATIO_QUICK") ? 3 : NSIZES;
    static double pct[NSIZES][NKINDS];
    static uint32_t page[NSIZES];
    printf("live bytes over the data area at the first HMM_FULL, %% (map of max_size = size, no log)\n");
    printf("%-10s %7s", "map", "page");
    for (size_t k = 0; k < NKINDS; k++)
        printf(" %9s", kinds[k].name);
    printf("\n");
    int status = 0;
    for (size_t s = 0; s < nsizes; s++) {
        for (size_t k = 0; k < NKINDS; k++) {
            char dir[300];
            snprintf(dir, sizeof dir, "%s/m", root);
            pct[s][k] = fill(dir, map_sizes[s], &kinds[k], &page[s]);
            remove_map(dir);
            status |= pct[s][k] < 0;
        }
        printf("%6llu KiB %6u", (unsigned long long)(map_sizes[s] >> 10), page[s]);
        for (size_t k = 0; k < NKINDS; k++)
            printf(" %9.1f", pct[s][k]);
        printf("\n");
        fflush(stdout);
    }
    printf("\nmap_bytes,page_size,values,fill_pct\n");
    for (size_t s = 0; s < nsizes; s++)
        for (size_t k = 0; k < NKINDS; k++)
            printf("%llu,%u,%s,%.1f\n", (unsigned long long)map_sizes[s], page[s], kinds[k].name, pct[s][k]);
    rmdir(root);
    return status;
}
