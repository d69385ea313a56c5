/*
 * store_db.c - the embedded databases a user would otherwise pick: LMDB
 * (one transaction per operation, MDB_NOSYNC) and SQLite (WAL, prepared
 * statements, synchronous=OFF, one autocommit transaction per operation).
 * Each is compiled only when configure found it; otherwise its open()
 * says so and the benchmark goes on.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef HAVE_LMDB
#include <lmdb.h>
#endif
#ifdef HAVE_SQLITE3
#include <sqlite3.h>
#endif

#include "bench/hmmbench.h"

#if !defined(HAVE_LMDB) || !defined(HAVE_SQLITE3)
static void *missing(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    *why = k->arg ? "not found at configure time: install libsqlite3-dev and re-run configure"
                  : "not found at configure time: install liblmdb-dev and re-run configure";
    return NULL;
}
#endif

/* ---- LMDB ---- */
#ifdef HAVE_LMDB
struct lmdb {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *rtxn; /* a read transaction, reset after each get and renewed by the next */
    char dir[512];
};

static void *lmdb_open(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    struct lmdb *l = calloc(1, sizeof *l);
    MDB_txn *txn;
    bench_path(l->dir, sizeof l->dir, "lmdb");
    size_t mapsize = (size_t)(entries * (KEY_LEN + vlen + 64) * 3) + (64u << 20);
    if (mkdir(l->dir, 0700) != 0 || mdb_env_create(&l->env) != 0 || mdb_env_set_mapsize(l->env, mapsize) != 0 ||
        mdb_env_open(l->env, l->dir, MDB_NOSYNC, 0600) != 0 || mdb_txn_begin(l->env, NULL, 0, &txn) != 0 ||
        mdb_dbi_open(txn, NULL, 0, &l->dbi) != 0 || mdb_txn_commit(txn) != 0 ||
        mdb_txn_begin(l->env, NULL, MDB_RDONLY, &l->rtxn) != 0) {
        *why = "LMDB environment cannot be opened";
        return NULL;
    }
    mdb_txn_reset(l->rtxn);
    return l;
}

static int lmdb_get(void *h, const char *key, void *val, size_t *vlen)
{
    struct lmdb *l = h;
    MDB_val k = {KEY_LEN, (void *)key}, v;
    int rc = mdb_txn_renew(l->rtxn);
    if (rc == 0 && (rc = mdb_get(l->rtxn, l->dbi, &k, &v)) == 0) {
        if (v.mv_size > *vlen)
            rc = -1;
        else
            memcpy(val, v.mv_data, *vlen = v.mv_size);
    }
    mdb_txn_reset(l->rtxn);
    return rc;
}

static int lmdb_put_in(struct lmdb *l, MDB_txn *txn, const char *key, const void *val, size_t vlen)
{
    MDB_val k = {KEY_LEN, (void *)key}, v = {vlen, (void *)val};
    return mdb_put(txn, l->dbi, &k, &v, 0);
}

static int lmdb_put(void *h, const char *key, const void *val, size_t vlen)
{
    struct lmdb *l = h;
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc)
        return rc;
    rc = lmdb_put_in(l, txn, key, val, vlen);
    return rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
}

static int lmdb_incr(void *h, const char *key)
{
    struct lmdb *l = h;
    MDB_txn *txn;
    MDB_val k = {KEY_LEN, (void *)key}, v;
    int64_t n = 0;
    char buf[24];
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc)
        return rc;
    rc = mdb_get(txn, l->dbi, &k, &v);
    if (rc == 0)
        rc = counter_parse(v.mv_data, v.mv_size, &n);
    else if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc == 0)
        rc = lmdb_put_in(l, txn, key, buf, counter_format(buf, n + 1));
    return rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
}

/* Bulk fill: 100 000 puts per write transaction (one transaction for a
 * million would overflow LMDB's dirty-page list). */
static int lmdb_load(void *h, const char (*keys)[KEY_LEN], size_t n, const void *val, size_t vlen)
{
    struct lmdb *l = h;
    for (size_t i = 0; i < n;) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
        for (size_t end = i + 100000; rc == 0 && i < n && i < end; i++)
            rc = lmdb_put_in(l, txn, keys[i], val, vlen);
        if (rc || (rc = mdb_txn_commit(txn)) != 0)
            return rc;
    }
    return 0;
}

static void lmdb_close(void *h)
{
    struct lmdb *l = h;
    mdb_txn_abort(l->rtxn);
    mdb_env_close(l->env);
    bench_remove(l->dir);
    free(l);
}

const struct store_kind store_lmdb = {
    .id = "lmdb",
    .name = "LMDB",
    .note = "LMDB: one transaction per operation (read txn reset/renew per get), MDB_NOSYNC",
    .open = lmdb_open,
    .get = lmdb_get,
    .put = lmdb_put,
    .incr = lmdb_incr,
    .close = lmdb_close,
    .load = lmdb_load,
};
#else
const struct store_kind store_lmdb = {.id = "lmdb", .name = "LMDB", .open = missing, .arg = 0};
#endif

/* ---- SQLite ---- */
#ifdef HAVE_SQLITE3
struct sqlite {
    sqlite3 *db;
    sqlite3_stmt *get, *put, *incr;
    char path[512];
};

static void *sqlite_open(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    struct sqlite *s = calloc(1, sizeof *s);
    bench_path(s->path, sizeof s->path, "sqlite.db");
    if (sqlite3_open(s->path, &s->db) != SQLITE_OK ||
        sqlite3_exec(s->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;"
                     "CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT v FROM kv WHERE k = ?1", -1, &s->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)", -1, &s->put, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT INTO kv(k, v) VALUES(?1, 1) "
                           "ON CONFLICT(k) DO UPDATE SET v = CAST(v AS INTEGER) + 1 RETURNING v",
                           -1, &s->incr, NULL) != SQLITE_OK) {
        fprintf(stderr, "hmmbench: SQLite: %s\n", sqlite3_errmsg(s->db));
        *why = "SQLite database cannot be set up";
        return NULL;
    }
    return s;
}

static int sqlite_get(void *h, const char *key, void *val, size_t *vlen)
{
    struct sqlite *s = h;
    sqlite3_bind_blob(s->get, 1, key, KEY_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(s->get);
    if (rc == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(s->get, 0);
        size_t n = (size_t)sqlite3_column_bytes(s->get, 0);
        rc = n > *vlen ? -1 : 0;
        if (rc == 0)
            memcpy(val, p, *vlen = n);
    }
    sqlite3_reset(s->get);
    return rc;
}

static int sqlite_put(void *h, const char *key, const void *val, size_t vlen)
{
    struct sqlite *s = h;
    sqlite3_bind_blob(s->put, 1, key, KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(s->put, 2, val, (int)vlen, SQLITE_STATIC);
    int rc = sqlite3_step(s->put);
    sqlite3_reset(s->put);
    return rc == SQLITE_DONE ? 0 : rc;
}

static int sqlite_incr(void *h, const char *key)
{
    struct sqlite *s = h;
    sqlite3_bind_blob(s->incr, 1, key, KEY_LEN, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(s->incr)) == SQLITE_ROW)
        ;
    sqlite3_reset(s->incr);
    return rc == SQLITE_DONE ? 0 : rc;
}

static int sqlite_load(void *h, const char (*keys)[KEY_LEN], size_t n, const void *val, size_t vlen)
{
    struct sqlite *s = h;
    int rc = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = sqlite_put(s, keys[i], val, vlen);
    return rc ? rc : sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
}

static void sqlite_close(void *h)
{
    struct sqlite *s = h;
    sqlite3_finalize(s->get);
    sqlite3_finalize(s->put);
    sqlite3_finalize(s->incr);
    sqlite3_close(s->db);
    char path[600];
    bench_remove(s->path);
    snprintf(path, sizeof path, "%s-wal", s->path);
    bench_remove(path);
    snprintf(path, sizeof path, "%s-shm", s->path);
    bench_remove(path);
    free(s);
}

const struct store_kind store_sqlite = {
    .id = "sqlite",
    .name = "SQLite",
    .note = "SQLite: WAL, synchronous=OFF, prepared statements, one autocommit transaction per operation,"
            " 256 MiB page cache",
    .open = sqlite_open,
    .get = sqlite_get,
    .put = sqlite_put,
    .incr = sqlite_incr,
    .close = sqlite_close,
    .load = sqlite_load,
};
#else
const struct store_kind store_sqlite = {.id = "sqlite", .name = "SQLite", .open = missing, .arg = 1};
#endif
