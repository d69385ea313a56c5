/*
 * hashmmap_vtab.c - a hashmmap map as an SQLite virtual table.
 *
 * Usage, from the sqlite3 shell or any program that uses SQLite:
 *
 *     .load /usr/local/lib/sqlite3/hashmmap
 *     CREATE VIRTUAL TABLE offsets USING hashmmap(path='/var/lib/app/offsets');
 *     INSERT INTO offsets(key, value) VALUES ('orders/3', 1042);
 *     UPDATE offsets SET value = value + 1 WHERE key = 'orders/3';
 *     INSERT OR REPLACE INTO offsets(key, value, ttl_ms) VALUES ('lease', 'me', 30000);
 *     SELECT key, value, ttl_ms FROM offsets WHERE key IN ('orders/3', 'lease');
 *     DELETE FROM offsets WHERE key = 'lease';
 *     SELECT * FROM hashmmap_stats('/var/lib/app/offsets');
 *
 * Options of CREATE VIRTUAL TABLE (name=value, values optionally quoted):
 *     path='DIR'     the map's directory (required); created when missing
 *     size=64M       bytes for entries when the map is created (K, M, G suffixes)
 *     max_size=1G    growth limit when the map is created
 *     cache=1        create the map in cache mode (evicts instead of "full")
 *     ttl=30s        default TTL of the map when created (ms, s, m, h, d; bare = s)
 *     readonly=1     open the map read-only (writes fail with SQLITE_READONLY)
 * An existing map keeps what it was created with; only readonly matters then.
 *
 * Columns: key, value, ttl_ms (remaining milliseconds, NULL when the entry
 * does not expire; settable), and the hidden version (the entry's version,
 * as hmm_getv) and expire_ms (absolute expiry, ms since the epoch), both
 * read-only (values written to them are ignored).  The table is WITHOUT
 * ROWID with key as its primary key.  Values keep their
 * SQL type (sqlvalue.c, docs/FORMAT.md "SQL values").
 *
 * `key = ?` and `key IN (...)` are point lookups; everything else scans
 * the map with its weakly consistent cursor (other processes may write
 * meanwhile: a row changed during the scan may or may not be seen, none is
 * seen twice).  The map has no transactions: every row change is applied
 * at once and stays, whatever later happens to the statement.
 *
 * DROP TABLE forgets the table and leaves the map alone.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hashmmap.h>
#include "sqlite-vtab/keylist.h"
#include "sqlite-vtab/sqlvalue.h"
#include "sqlite-vtab/vtab.h"

SQLITE_EXTENSION_INIT1

enum { COL_KEY, COL_VALUE, COL_TTL_MS, COL_VERSION, COL_EXPIRE_MS };
#define PLAN_SCAN 0
#define PLAN_KEY_EQ 1
#define PLAN_KEY_IN 2

struct map_vtab {
    sqlite3_vtab base;
    sqlite3 *db;
    hmm_t *map;
    char *table;        /* for constraint messages */
};

struct map_cursor {
    sqlite3_vtab_cursor base;
    int plan;
    bool eof;
    hmm_cursor *scan;   /* PLAN_SCAN */
    struct keylist in;  /* PLAN_KEY_IN: the keys still to look up from in_pos on */
    size_t in_pos;
    /* the current row: pointers into the scan cursor's copy or into buf */
    const void *key, *val;
    size_t klen, vlen;
    hmm_entry_info info;
    void *buf;          /* PLAN_KEY_EQ: the key, then the value; small or sqlite3_malloc'ed */
    size_t bufcap;
    /* Most rows fit here: a lookup then allocates nothing (SQLite opens a
     * cursor per execution of a statement, so this is the hot path). */
    char small[512];
};

/* Set the table's error message from a library code and return the SQLite
 * code that fits it. */
static int map_error(sqlite3_vtab *vt, int rc, const char *what)
{
    sqlite3_free(vt->zErrMsg);
    const char *detail = hmm_last_error();
    vt->zErrMsg = sqlite3_mprintf("hashmmap: %s: %s%s%s%s", what, hmm_strerror(rc),
                                  *detail ? " (" : "", detail, *detail ? ")" : "");
    switch (rc) {
    case HMM_FULL: return SQLITE_FULL;
    case HMM_TOOBIG: return SQLITE_TOOBIG;
    case HMM_BUSY: return SQLITE_BUSY;
    case HMM_CORRUPT: return SQLITE_CORRUPT;
    case -EBADF: case -EROFS: return SQLITE_READONLY;
    case -ENOMEM: return SQLITE_NOMEM;
    default: return SQLITE_ERROR;
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- connecting ---- */

static void vtab_free(struct map_vtab *vt)
{
    if (!vt)
        return;
    hmm_close(vt->map);
    sqlite3_free(vt->table);
    sqlite3_free(vt);
}

static int map_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                       sqlite3_vtab **out, char **err)
{
    struct vtab_options opt;
    hmm_t *map = NULL;
    struct map_vtab *vt = NULL;
    /* argv: module name, database name, table name, then our options. */
    if (vtab_parse_options(argc - 3, argv + 3, &opt, err) != 0)
        return SQLITE_ERROR;
    hmm_config cfg = {.size = opt.size, .max_size = opt.max_size,
                      .default_ttl_ms = opt.ttl_ms,
                      .flags = opt.readonly ? HMM_RDONLY : HMM_CREATE | (opt.cache ? HMM_CACHE : 0)};
    int rc = hmm_open(&map, opt.path, &cfg);
    if (rc) {
        const char *detail = hmm_last_error();
        *err = sqlite3_mprintf("hashmmap: cannot open map '%s': %s%s%s%s", opt.path, hmm_strerror(rc),
                               *detail ? " (" : "", detail, *detail ? ")" : "");
        rc = SQLITE_ERROR;
        goto fail;
    }
    rc = sqlite3_declare_vtab(db, "CREATE TABLE x(key PRIMARY KEY NOT NULL, value, ttl_ms INTEGER,"
                                  " version INTEGER HIDDEN, expire_ms INTEGER HIDDEN) WITHOUT ROWID");
    if (rc != SQLITE_OK)
        goto fail;
    /* We honour OR IGNORE / OR REPLACE ourselves (xUpdate). */
    sqlite3_vtab_config(db, SQLITE_VTAB_CONSTRAINT_SUPPORT, 1);
    vt = sqlite3_malloc(sizeof *vt);
    if (!vt) {
        rc = SQLITE_NOMEM;
        goto fail;
    }
    memset(vt, 0, sizeof *vt);
    vt->db = db;
    vt->map = map;
    vt->table = sqlite3_mprintf("%s", argv[2]);
    if (!vt->table) {
        rc = SQLITE_NOMEM;
        goto fail;
    }
    vtab_free_options(&opt);
    *out = &vt->base;
    return SQLITE_OK;
fail:
    if (vt)
        vtab_free(vt);
    else
        hmm_close(map);
    vtab_free_options(&opt);
    return rc;
}

static int map_disconnect(sqlite3_vtab *base)
{
    vtab_free((struct map_vtab *)base);
    return SQLITE_OK;
}

/* The map does not know the table's name; only our messages do. */
static int map_rename(sqlite3_vtab *base, const char *name)
{
    struct map_vtab *vt = (struct map_vtab *)base;
    char *copy = sqlite3_mprintf("%s", name);
    if (!copy)
        return SQLITE_NOMEM;
    sqlite3_free(vt->table);
    vt->table = copy;
    return SQLITE_OK;
}

/* ---- planning ---- */

static int map_best_index(sqlite3_vtab *base, sqlite3_index_info *info)
{
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (!c->usable || c->iColumn != COL_KEY || c->op != SQLITE_INDEX_CONSTRAINT_EQ)
            continue;
        /* Keys compare as bytes: another collation would match other keys. */
        const char *coll = sqlite3_vtab_collation(info, i);
        if (coll && sqlite3_stricmp(coll, "BINARY") != 0)
            continue;
        info->aConstraintUsage[i].argvIndex = 1;
        info->aConstraintUsage[i].omit = 1;
        /* key IN (...) arrives here as EQ too.  We take the whole list in
         * one xFilter, so that keys with the same bytes ('abc' and
         * x'616263') give one row, then look the keys up one per row. */
        if (sqlite3_vtab_in(info, i, 1)) {
            info->idxNum = PLAN_KEY_IN;
            info->idxStr = "key IN (...)";
            info->estimatedCost = 10.0;
            info->estimatedRows = 10;
            return SQLITE_OK;
        }
        info->idxNum = PLAN_KEY_EQ;
        info->idxStr = "key=?";
        info->estimatedCost = 1.0;
        info->estimatedRows = 1;
        info->idxFlags = SQLITE_INDEX_SCAN_UNIQUE;
        return SQLITE_OK;
    }
    hmm_stats st;
    struct map_vtab *vt = (struct map_vtab *)base;
    sqlite3_int64 rows = hmm_stat(vt->map, &st) == 0 && st.items ? (sqlite3_int64)st.items : 1000000;
    info->idxNum = PLAN_SCAN;
    info->estimatedCost = (double)rows * 2.0;
    info->estimatedRows = rows;
    return SQLITE_OK;
}

/* ---- reading ---- */

static int map_open(sqlite3_vtab *base, sqlite3_vtab_cursor **out)
{
    struct map_cursor *c = sqlite3_malloc(sizeof *c);
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, offsetof(struct map_cursor, small));
    c->eof = true;
    c->buf = c->small;
    c->bufcap = sizeof c->small;
    *out = &c->base;
    return SQLITE_OK;
}

static int map_close(sqlite3_vtab_cursor *base)
{
    struct map_cursor *c = (struct map_cursor *)base;
    hmm_cursor_close(c->scan);
    keylist_free(&c->in);
    if (c->buf != c->small)
        sqlite3_free(c->buf);
    sqlite3_free(c);
    return SQLITE_OK;
}

/* Point lookup: the key goes to the front of buf, the value after it.  The
 * value may grow between our tries (another process writes it): a few
 * retries with the size the library reports, then give up loudly. */
static int lookup_bytes(struct map_cursor *c, struct map_vtab *vt, const void *key, size_t klen)
{
    c->eof = true;
    if (klen == 0 || klen > HMM_MAX_KEY)
        return SQLITE_OK; /* key = '' or an oversize key: no such row */
    size_t want = klen + 256;
    for (int tries = 0; tries < 8; tries++) {
        if (want > c->bufcap) {
            /* Keeps the key copied before (realloc, or the copy from small). */
            void *p = c->buf == c->small ? sqlite3_malloc64(want) : sqlite3_realloc64(c->buf, want);
            if (!p)
                return SQLITE_NOMEM;
            if (c->buf == c->small)
                memcpy(p, c->small, tries ? klen : 0);
            c->buf = p;
            c->bufcap = want;
        }
        if (tries == 0)
            memcpy(c->buf, key, klen);
        size_t vlen = c->bufcap - klen;
        int rc = hmm_get_info(vt->map, c->buf, klen, (char *)c->buf + klen, &vlen, &c->info);
        if (rc == HMM_NOTFOUND)
            return SQLITE_OK;
        if (rc == HMM_TOOSMALL) {
            want = klen + vlen + 64;
            continue;
        }
        if (rc)
            return map_error(&vt->base, rc, "lookup");
        c->key = c->buf;
        c->klen = klen;
        c->val = (char *)c->buf + klen;
        c->vlen = vlen;
        c->eof = false;
        return SQLITE_OK;
    }
    return map_error(&vt->base, HMM_BUSY, "lookup (the value kept growing)");
}

static int lookup_key(struct map_cursor *c, struct map_vtab *vt, sqlite3_value *arg)
{
    const void *key;
    size_t klen;
    c->eof = true;
    if (sqlvalue_key(arg, &key, &klen) != 0)
        return SQLITE_OK; /* key = NULL matches nothing */
    return lookup_bytes(c, vt, key, klen);
}

/* The next key of the IN list that is present, or eof. */
static int next_in_key(struct map_cursor *c, struct map_vtab *vt)
{
    c->eof = true;
    while (c->in_pos < c->in.n) {
        const struct keylist_item *k = &c->in.items[c->in_pos++];
        int rc = lookup_bytes(c, vt, k->bytes, k->len);
        if (rc != SQLITE_OK || !c->eof)
            return rc;
    }
    return SQLITE_OK;
}

/* Collect the right-hand side of key IN (...); NULLs match nothing. */
static int collect_in_keys(struct map_cursor *c, struct map_vtab *vt, sqlite3_value *list)
{
    sqlite3_value *v;
    keylist_clear(&c->in);
    c->in_pos = 0;
    int rc;
    for (rc = sqlite3_vtab_in_first(list, &v); rc == SQLITE_OK && v; rc = sqlite3_vtab_in_next(list, &v)) {
        const void *key;
        size_t klen;
        if (sqlvalue_key(v, &key, &klen) == 0 && keylist_add(&c->in, key, klen) != 0)
            return SQLITE_NOMEM;
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE)
        return rc;
    keylist_finish(&c->in);
    return next_in_key(c, vt);
}

static int map_next(sqlite3_vtab_cursor *base)
{
    struct map_cursor *c = (struct map_cursor *)base;
    if (c->plan == PLAN_KEY_IN)
        return next_in_key(c, (struct map_vtab *)base->pVtab);
    if (c->plan != PLAN_SCAN || c->eof) {
        c->eof = true;
        return SQLITE_OK;
    }
    int rc = hmm_cursor_next(c->scan, &c->key, &c->klen, &c->val, &c->vlen);
    if (rc == HMM_NOTFOUND) {
        c->eof = true;
        return SQLITE_OK;
    }
    if (rc == 0)
        rc = hmm_cursor_info(c->scan, &c->info);
    if (rc)
        return map_error(base->pVtab, rc, "scan");
    return SQLITE_OK;
}

static int map_filter(sqlite3_vtab_cursor *base, int plan, const char *plan_str, int argc,
                      sqlite3_value **argv)
{
    struct map_cursor *c = (struct map_cursor *)base;
    struct map_vtab *vt = (struct map_vtab *)base->pVtab;
    hmm_cursor_close(c->scan);
    c->scan = NULL;
    c->plan = plan;
    c->eof = true;
    if (plan == PLAN_KEY_EQ && argc == 1)
        return lookup_key(c, vt, argv[0]);
    if (plan == PLAN_KEY_IN && argc == 1)
        return collect_in_keys(c, vt, argv[0]);
    c->plan = PLAN_SCAN;
    int rc = hmm_cursor_open(vt->map, &c->scan);
    if (rc)
        return map_error(&vt->base, rc, "scan");
    c->eof = false;
    return map_next(base);
}

static int map_eof(sqlite3_vtab_cursor *base)
{
    return ((struct map_cursor *)base)->eof;
}

static int map_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col)
{
    struct map_cursor *c = (struct map_cursor *)base;
    switch (col) {
    case COL_KEY:
        sqlvalue_key_result(ctx, c->key, c->klen);
        break;
    case COL_VALUE:
        sqlvalue_result(ctx, c->val, c->vlen, c->info.tag);
        break;
    case COL_TTL_MS:
        if (c->info.expire_ms) {
            uint64_t now = now_ms();
            /* Expired since it was read: it still is this row, with 0 left. */
            sqlite3_result_int64(ctx, c->info.expire_ms > now ? (sqlite3_int64)(c->info.expire_ms - now) : 0);
        }
        break; /* no expiry: NULL */
    case COL_VERSION:
        sqlite3_result_int64(ctx, (sqlite3_int64)c->info.version);
        break;
    case COL_EXPIRE_MS:
        if (c->info.expire_ms)
            sqlite3_result_int64(ctx, (sqlite3_int64)c->info.expire_ms);
        break;
    }
    return SQLITE_OK;
}

static int map_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
    return SQLITE_MISUSE; /* WITHOUT ROWID: SQLite never asks */
}

/* ---- writing ---- */

/* ttl_ms of a written row: NULL means the map's default (none unless the
 * map was created with ttl=); a positive number the milliseconds left.  On
 * INSERT anything else is an error; on UPDATE a row that was about to
 * expire carries 0 here, and expires at once. */
static int row_ttl(struct map_vtab *vt, sqlite3_value *v, bool is_insert, uint64_t *ttl_ms)
{
    *ttl_ms = 0;
    if (sqlite3_value_type(v) == SQLITE_NULL)
        return SQLITE_OK;
    int t = sqlite3_value_numeric_type(v);
    double d = sqlite3_value_double(v);
    if ((t != SQLITE_INTEGER && t != SQLITE_FLOAT) || (is_insert && d < 1.0) || d > 9.0e15) {
        sqlite3_free(vt->base.zErrMsg);
        vt->base.zErrMsg = sqlite3_mprintf("hashmmap: ttl_ms must be NULL or a positive number of milliseconds");
        return SQLITE_MISMATCH;
    }
    *ttl_ms = d < 1.0 ? 1 : (uint64_t)d;
    return SQLITE_OK;
}

static int constraint_error(struct map_vtab *vt)
{
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = sqlite3_mprintf("UNIQUE constraint failed: %s.key", vt->table);
    return SQLITE_CONSTRAINT;
}

/* Store the row of argv (argv[2 + COL_...]) under key.  flags: HMM_NX for
 * a new key, HMM_XX for a row that must still be there, 0 to replace.
 * HMM_EXISTS goes back to the caller, which knows the conflict mode. */
static int store_row(struct map_vtab *vt, const void *key, size_t klen, sqlite3_value **argv,
                     unsigned flags, bool is_insert, int *hmm_rc)
{
    uint64_t ttl_ms;
    int rc = row_ttl(vt, argv[2 + COL_TTL_MS], is_insert, &ttl_ms);
    if (rc != SQLITE_OK)
        return rc;
    struct sqlvalue_bytes v;
    sqlvalue_encode(argv[2 + COL_VALUE], &v);
    *hmm_rc = hmm_put_tagged(vt->map, key, klen, v.bytes, v.len, ttl_ms, flags, v.tag);
    if (*hmm_rc == 0 || *hmm_rc == HMM_EXISTS || *hmm_rc == HMM_NOTFOUND)
        return SQLITE_OK;
    return map_error(&vt->base, *hmm_rc, "write");
}

static int key_of(struct map_vtab *vt, sqlite3_value *v, const void **key, size_t *klen)
{
    if (sqlvalue_key(v, key, klen) == 0 && *klen > 0 && *klen <= HMM_MAX_KEY)
        return SQLITE_OK;
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = sqlite3_mprintf("hashmmap: key must be 1..%u bytes, not NULL", HMM_MAX_KEY);
    return SQLITE_CONSTRAINT;
}

static int do_insert(struct map_vtab *vt, sqlite3_value **argv)
{
    const void *key;
    size_t klen;
    int hrc, rc = key_of(vt, argv[2 + COL_KEY], &key, &klen);
    if (rc != SQLITE_OK)
        return rc;
    int mode = sqlite3_vtab_on_conflict(vt->db);
    rc = store_row(vt, key, klen, argv, mode == SQLITE_REPLACE ? 0 : HMM_NX, true, &hrc);
    if (rc == SQLITE_OK && hrc == HMM_EXISTS && mode != SQLITE_IGNORE)
        return constraint_error(vt);
    return rc;
}

static int do_delete(struct map_vtab *vt, sqlite3_value *old_key)
{
    const void *key;
    size_t klen;
    if (sqlvalue_key(old_key, &key, &klen) != 0 || klen == 0 || klen > HMM_MAX_KEY)
        return SQLITE_OK;
    int rc = hmm_del(vt->map, key, klen);
    if (rc && rc != HMM_NOTFOUND)
        return map_error(&vt->base, rc, "delete");
    return SQLITE_OK; /* gone already (another process, or expiry): fine */
}

/* UPDATE.  Same key: rewrite the row if it is still there.  New key: store
 * it (as an INSERT would, honouring the conflict mode), then delete the old
 * one.  Two steps, not atomic: another process may see both keys for a
 * moment, and a crash between them leaves both. */
static int do_update(struct map_vtab *vt, sqlite3_value **argv)
{
    const void *old_key, *new_key;
    size_t old_klen, new_klen;
    int hrc, rc = key_of(vt, argv[0], &old_key, &old_klen);
    if (rc == SQLITE_OK)
        rc = key_of(vt, argv[2 + COL_KEY], &new_key, &new_klen);
    if (rc != SQLITE_OK)
        return rc;
    if (old_klen == new_klen && memcmp(old_key, new_key, old_klen) == 0)
        return store_row(vt, new_key, new_klen, argv, HMM_XX, false, &hrc);
    int mode = sqlite3_vtab_on_conflict(vt->db);
    rc = store_row(vt, new_key, new_klen, argv, mode == SQLITE_REPLACE ? 0 : HMM_NX, false, &hrc);
    if (rc != SQLITE_OK)
        return rc;
    if (hrc == HMM_EXISTS)
        return mode == SQLITE_IGNORE ? SQLITE_OK : constraint_error(vt);
    return do_delete(vt, argv[0]);
}

static int map_update(sqlite3_vtab *base, int argc, sqlite3_value **argv, sqlite3_int64 *rowid)
{
    struct map_vtab *vt = (struct map_vtab *)base;
    if (argc == 1)
        return do_delete(vt, argv[0]);
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return do_insert(vt, argv);
    return do_update(vt, argv);
}

static sqlite3_module map_module = {
    .iVersion = 1,
    .xCreate = map_connect,
    .xConnect = map_connect,
    .xBestIndex = map_best_index,
    .xDisconnect = map_disconnect,
    .xDestroy = map_disconnect,
    .xOpen = map_open,
    .xClose = map_close,
    .xFilter = map_filter,
    .xNext = map_next,
    .xEof = map_eof,
    .xColumn = map_column,
    .xRowid = map_rowid,
    .xUpdate = map_update,
    .xRename = map_rename,
};

/* The entry point SQLite derives from the file name hashmmap.so. */
__attribute__((visibility("default")))
int sqlite3_hashmmap_init(sqlite3 *db, char **err, const sqlite3_api_routines *api);
int sqlite3_hashmmap_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
    SQLITE_EXTENSION_INIT2(api);
    int rc = sqlite3_create_module(db, "hashmmap", &map_module, NULL);
    if (rc == SQLITE_OK)
        rc = stats_vtab_register(db);
    return rc;
}
