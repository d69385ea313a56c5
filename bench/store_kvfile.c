/*
 * store_kvfile.c - the file-backed hash stores of the distribution, as a
 * user would set them up for this job: Kyoto Cabinet's HashDB (a .kch file,
 * memory-mapped up to its msiz, buckets for all entries) and Tkrzw's
 * HashDBM (a .tkh file through its memory-mapped file class, buckets for
 * all entries).  Neither is shared between processes while written nor
 * crash-safe per entry without its transactions, which are off here: they
 * are the least a shared, crash-safe map must match.  Each is compiled only
 * when configure found it; otherwise its open() says so.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_KYOTOCABINET
#include <kclangc.h>
#endif
#ifdef HAVE_TKRZW
#include <tkrzw_langc.h>
#endif

#include "bench/hmmbench.h"

#if !defined(HAVE_KYOTOCABINET) || !defined(HAVE_TKRZW)
static void *missing(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    *why = k->arg ? "not found at configure time: install libtkrzw-dev and re-run configure"
                  : "not found at configure time: install libkyotocabinet-dev and re-run configure";
    return NULL;
}
#endif

/* ---- Kyoto Cabinet HashDB ---- */
#ifdef HAVE_KYOTOCABINET
struct kc {
    KCDB *db;
    char path[600];
};

static void *kc_open(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    struct kc *s = calloc(1, sizeof *s);
    char dir[512], spec[800];
    bench_path(dir, sizeof dir, "kyoto");
    snprintf(s->path, sizeof s->path, "%s.kch", dir);
    /* Twice the entries in buckets, and the whole file mapped. */
    snprintf(spec, sizeof spec, "%s#bnum=%llu#msiz=%llu", s->path, (unsigned long long)(entries * 2),
             (unsigned long long)(entries * (KEY_LEN + vlen + 64) + (64u << 20)));
    s->db = kcdbnew();
    if (!kcdbopen(s->db, spec, KCOWRITER | KCOCREATE | KCOTRUNCATE)) {
        kcdbdel(s->db);
        free(s);
        *why = "Kyoto Cabinet database cannot be opened";
        return NULL;
    }
    return s;
}

static int kc_get(void *h, const char *key, void *val, size_t *vlen)
{
    int32_t n = kcdbgetbuf(((struct kc *)h)->db, key, KEY_LEN, val, *vlen);
    if (n < 0)
        return -1;
    *vlen = (size_t)n;
    return 0;
}

static int kc_put(void *h, const char *key, const void *val, size_t vlen)
{
    return kcdbset(((struct kc *)h)->db, key, KEY_LEN, val, vlen) ? 0 : -1;
}

static int kc_incr(void *h, const char *key)
{
    char buf[32];
    size_t len = sizeof buf;
    int64_t n = 0;
    if (kc_get(h, key, buf, &len) == 0 && counter_parse(buf, len, &n) != 0)
        return -1;
    return kc_put(h, key, buf, counter_format(buf, n + 1));
}

static void kc_close(void *h)
{
    struct kc *s = h;
    kcdbclose(s->db);
    kcdbdel(s->db);
    bench_remove(s->path);
    free(s);
}
#define KC_OPEN kc_open
#else
#define KC_OPEN missing
#define kc_get NULL
#define kc_put NULL
#define kc_incr NULL
#define kc_close NULL
#endif

const struct store_kind store_kyoto = {
    .id = "kyoto",
    .name = "Kyoto Cabinet HashDB",
    .note = "Kyoto Cabinet HashDB: a .kch file, buckets for twice the entries, memory-mapped whole (msiz),"
            " no transactions",
    .open = KC_OPEN,
    .get = kc_get,
    .put = kc_put,
    .incr = kc_incr,
    .close = kc_close,
    .arg = 0,
};

/* ---- Tkrzw HashDBM ---- */
#ifdef HAVE_TKRZW
struct tk {
    TkrzwDBM *dbm;
    char path[600];
};

static void *tk_open(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    struct tk *s = calloc(1, sizeof *s);
    char dir[512], params[200];
    bench_path(dir, sizeof dir, "tkrzw");
    snprintf(s->path, sizeof s->path, "%s.tkh", dir);
    snprintf(params, sizeof params, "dbm=HashDBM,file=MemoryMapParallelFile,truncate=true,num_buckets=%llu",
             (unsigned long long)(entries * 2));
    s->dbm = tkrzw_dbm_open(s->path, true, params);
    if (!s->dbm) {
        free(s);
        *why = "Tkrzw database cannot be opened";
        return NULL;
    }
    return s;
}

/* The C API returns a copy it allocated; that is what a user of it pays. */
static int tk_get(void *h, const char *key, void *val, size_t *vlen)
{
    int32_t n;
    char *v = tkrzw_dbm_get(((struct tk *)h)->dbm, key, KEY_LEN, &n);
    if (!v)
        return -1;
    int rc = (size_t)n <= *vlen ? 0 : -1;
    if (rc == 0) {
        memcpy(val, v, (size_t)n);
        *vlen = (size_t)n;
    }
    free(v);
    return rc;
}

static int tk_put(void *h, const char *key, const void *val, size_t vlen)
{
    return tkrzw_dbm_set(((struct tk *)h)->dbm, key, KEY_LEN, val, (int32_t)vlen, true) ? 0 : -1;
}

static int tk_incr(void *h, const char *key)
{
    char buf[32];
    size_t len = sizeof buf;
    int64_t n = 0;
    if (tk_get(h, key, buf, &len) == 0 && counter_parse(buf, len, &n) != 0)
        return -1;
    return tk_put(h, key, buf, counter_format(buf, n + 1));
}

static void tk_close(void *h)
{
    struct tk *s = h;
    tkrzw_dbm_close(s->dbm);
    bench_remove(s->path);
    free(s);
}
#define TK_OPEN tk_open
#else
#define TK_OPEN missing
#define tk_get NULL
#define tk_put NULL
#define tk_incr NULL
#define tk_close NULL
#endif

const struct store_kind store_tkrzw = {
    .id = "tkrzw",
    .name = "Tkrzw HashDBM",
    .note = "Tkrzw HashDBM: a .tkh file through MemoryMapParallelFile, buckets for twice the entries",
    .open = TK_OPEN,
    .get = tk_get,
    .put = tk_put,
    .incr = tk_incr,
    .close = tk_close,
    .arg = 1,
};
