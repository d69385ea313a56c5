/*
 * hmmbench.h - what the benchmark driver (hmmbench.c) and the store
 * adapters (store_*.c) share.
 *
 * Every store is one `struct store_kind`: a name and five function
 * pointers (open, get, put, incr, close), plus an optional bulk loader used
 * only to fill a store before a measurement and an optional batched get.  The driver knows nothing else
 * about any store, so adding a peer is writing one adapter.
 */
#ifndef HMMBENCH_H
#define HMMBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KEY_LEN 16   /* every key is 16 printable bytes (no NUL) */
#define VAL_MAX 256  /* the largest value a workload stores */
#define BATCH_MAX 32 /* keys per batched lookup */

struct store_kind {
    const char *id;   /* short, for the CSV and the plot: "local", "hmm-file", "lmdb" */
    const char *name; /* for the table */
    const char *note; /* printed once under the table: what the figures mean; NULL = nothing */
    /* Open an empty store that will hold up to `entries` values of vlen
     * bytes.  NULL when the store cannot be had; *why then says why (a
     * static string, e.g. "redis-server not installed"). */
    void *(*open)(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why);
    /* 0 on success, anything else is counted as an error by the driver. */
    int (*get)(void *h, const char *key, void *val, size_t *vlen); /* *vlen in: capacity */
    int (*put)(void *h, const char *key, const void *val, size_t vlen);
    int (*incr)(void *h, const char *key); /* add 1 to a decimal counter; NULL: not measured */
    void (*close)(void *h);                /* also removes the store's files, stops its server */
    /* Optional (NULL: the driver calls put n times).  Store keys[0..n) with
     * val in bulk (one transaction, a pipeline): setup, never timed. */
    int (*load)(void *h, const char (*keys)[KEY_LEN], size_t n, const void *val, size_t vlen);
    /* Optional (NULL: the store has no batched lookup): look up keys[0..n),
     * n <= BATCH_MAX, values into vals[i] (VAL_MAX bytes each), lengths into
     * vlens[i]; returns how many keys failed. */
    int (*get_batch)(void *h, const char *const keys[], size_t n, char (*vals)[VAL_MAX], size_t vlens[]);
    /* Optional: what the filled store looks like, printed under the table
     * (hashmmap: how full its index is, which moves its gets). */
    void (*describe)(void *h, char *buf, size_t cap);
    uint32_t arg; /* the adapter's own parameter (hashmmap: hmm_config flags) */
    bool opt_in;  /* run only when HMMBENCH_STORES names it (an experiment, not a peer) */
};

/* The stores, in the order of the table (store_*.c).  A kind whose
 * library was not found at configure time is still listed: its open()
 * fails with the reason, so the output says what was skipped. */
extern const struct store_kind store_local, store_local_locked;
extern const struct store_kind store_hmm_file, store_hmm_anon, store_hmm_cache, store_hmm_noreplog,
    store_hmm_nometrics, store_hmm_inline;
extern const struct store_kind store_lmdb, store_sqlite, store_kyoto, store_tkrzw;
extern const struct store_kind store_redis, store_memcached;
extern const struct store_kind store_inline; /* store_inline.c: a design experiment (opt_in) */

/* The run's private temporary directory (hmmbench.c); adapters put their
 * files and sockets under it. */
extern const char *bench_tmpdir;

/* A fresh path under bench_tmpdir: "<tmpdir>/<what>-<n>". */
void bench_path(char *buf, size_t cap, const char *what);
/* rm -rf path (adapters' close). */
void bench_remove(const char *path);

/* Key number i as KEY_LEN printable bytes (hmmbench.c), and a monotonic
 * clock in seconds. */
void make_key(char *k, uint64_t i);
double now_s(void);

/* Space, open and recovery (footprint.c): the DESIGN.md §10 targets that
 * are not speeds.  NAN where a figure could not be measured. */
struct footprint_figures {
    uint64_t entries;
    double overhead_file;  /* bytes per entry beyond key and value: whole map file, map grown from small */
    double overhead_alloc; /* the same, the file less entry pages no size class has taken */
    double open_ms;        /* median hmm_open of the existing map */
    double recover_ms;     /* worst time of any recovery measured */
};
void footprint(FILE *csv, uint64_t entries, unsigned kills, struct footprint_figures *fig);

/* Decimal counters, shared by the adapters that implement incr by hand. */
int counter_parse(const void *val, size_t len, int64_t *out);
size_t counter_format(char *buf, int64_t v); /* buf has >= 21 bytes; no NUL needed */

#endif /* HMMBENCH_H */
