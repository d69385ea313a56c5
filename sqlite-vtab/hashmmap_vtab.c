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
 * Options of CREATE VIRTUAL TABLE (name=value, values optionally quoted;
 * a value with a unit must be, SQLite's tokenizer refuses 64M unquoted):
 *     path='DIR'     the map's directory (required).  A relative path is
 *                    resolved against the directory of the database file
 *                    (of the current directory for an in-memory database)
 *                    on every connection, so it names the same map wherever
 *                    the database is opened from.
 *     size='64M'     bytes for entries when the map is created (64M, 1.5GiB, ...:
 *                    the grammar of tools/units.h, as for the hashmmap tool)
 *     max_size='1G'  growth limit when the map is created (not below size)
 *     max_value='4M' largest value when the map is created (1M..2G-1)
 *     cache=1        create the map in cache mode (evicts instead of "full")
 *     ttl='30s'      default TTL of the map when created (500ms, 1.5h, ...; bare = s)
 *     readonly=1     open an existing map read-only (writes fail with SQLITE_READONLY)
 * Only CREATE VIRTUAL TABLE creates a map (in a missing or empty
 * directory); on an existing map the creation options given must be what
 * it has.  A table whose map is gone later is an error when used (and can
 * still be dropped).  Every option at most once; contradictions are errors.
 *
 * Columns: key, value, ttl_ms (remaining milliseconds, NULL when the entry
 * does not expire; settable), and the hidden version (the entry's version,
 * as hmm_getv) and expire_ms (absolute expiry, ms since the epoch).  The
 * table is WITHOUT ROWID with key as its primary key.  Values and keys
 * keep their SQL type (sqlvalue.c, sqlkey.c, docs/FORMAT.md "SQL values"),
 * and `key = v` finds what a normal table with an untyped key would.
 *
 * `key = ?`, `key IS ?` and `key IN (...)` are point lookups; everything
 * else scans the map with its weakly consistent cursor (other processes
 * may write meanwhile: a row changed during the scan may or may not be
 * seen, none is seen twice).  The map has no transactions: every row
 * change is applied at once and stays, whatever later happens to the
 * statement.
 *
 * Writes are optimistic: UPDATE and DELETE change a row only if its entry
 * still has the version the statement read (hmm_cas_tagged,
 * hmm_del_version); else the statement stops with SQLITE_BUSY ("row
 * changed since it was read") and the caller retries it.  An UPDATE may set
 * version to the one an earlier SELECT returned, to apply only if nothing
 * changed since then.  For counters, hashmmap_incr() (incr.c) is atomic.
 *
 * The module is SQLITE_VTAB_DIRECTONLY: its side effects never run from
 * triggers or views in a database schema.  DROP TABLE forgets the table and
 * leaves the map alone.
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
#include "sqlite-vtab/readset.h"
#include "sqlite-vtab/sqlkey.h"
#include "sqlite-vtab/sqlvalue.h"
#include "sqlite-vtab/vtab.h"
#include "tools/clock.h"
#include "tools/errtext.h"

SQLITE_EXTENSION_INIT1

enum { COL_KEY, COL_VALUE, COL_TTL_MS, COL_VERSION, COL_EXPIRE_MS };
#define PLAN_SCAN 0
#define PLAN_KEY_EQ 1
#define PLAN_KEY_IN 2

struct map_vtab {
    sqlite3_vtab base;
    sqlite3 *db;
    struct map_link link;   /* name: the table's, for messages and hashmmap_incr; map */
    struct vtab_registry *reg;
    char *dir;              /* the map directory, as resolved */
    char *missing;          /* why there is no map (connected to a removed one), else NULL */
    bool readonly;
    bool in_write;          /* between xBegin and xCommit/xRollback: note the versions read */
    struct readset read;    /* key -> version read, for DELETE */
};

struct map_cursor {
    sqlite3_vtab_cursor base;
    int plan;
    bool eof;
    struct sqlkey want;     /* PLAN_KEY_EQ: the key asked for (its class) */
    hmm_cursor *scan;   /* PLAN_SCAN */
    struct keylist in;  /* PLAN_KEY_IN: the keys still to look up from in_pos on */
    size_t in_pos;
    struct in_group *group; /* PLAN_KEY_IN: the last hmm_get_batch's answers, allocated on first use */
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

/* key IN (...) looks its keys up IN_GROUP at a time with hmm_get_batch,
 * which overlaps their cache misses; a value over IN_VALUE_CAP bytes
 * answers HMM_TOOSMALL and is read again alone (lookup_bytes). */
#define IN_GROUP 32
#define IN_VALUE_CAP 256
struct in_group {
    size_t first, n, at;    /* items[first..first+n) of the list; at: the next to return */
    int rcs[IN_GROUP];
    size_t vlens[IN_GROUP];
    hmm_entry_info infos[IN_GROUP];
    char vals[IN_GROUP][IN_VALUE_CAP];
};

/* Set the table's error message from a library code and return the SQLite
 * code that fits it. */
static int map_error(sqlite3_vtab *vt, int rc, const char *what)
{
    char text[ERRTEXT_MAX];
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf("hashmmap: %s: %s", what, errtext(rc, text, sizeof text));
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

/* ---- connecting ---- */

static void vtab_free(struct map_vtab *vt)
{
    if (!vt)
        return;
    vtab_registry_remove(vt->reg, &vt->link);
    hmm_close(vt->link.map);
    readset_free(&vt->read);
    sqlite3_free(vt->link.name);
    sqlite3_free(vt->dir);
    sqlite3_free(vt->missing);
    sqlite3_free(vt);
}

/* The columns.  key has no declared type, as in a table whose key takes
 * any type and compares without conversions (sqlkey.c). */
#define TABLE_DECLARATION                                                                    \
    "CREATE TABLE x(key PRIMARY KEY NOT NULL, value, ttl_ms INTEGER, version INTEGER HIDDEN," \
    " expire_ms INTEGER HIDDEN) WITHOUT ROWID"

static int map_declare(sqlite3 *db)
{
    int rc = sqlite3_declare_vtab(db, TABLE_DECLARATION);
    if (rc == SQLITE_OK) {
        /* We honour OR IGNORE / OR REPLACE ourselves (xUpdate). */
        sqlite3_vtab_config(db, SQLITE_VTAB_CONSTRAINT_SUPPORT, 1);
        /* Writes have effects outside the database: never from a trigger
         * or view that a database file brings along. */
        sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
    }
    return rc;
}

/* xCreate (create true) and xConnect.  argv: module name, database name,
 * table name, then our options.  A connect whose map is missing still
 * succeeds, so that DROP TABLE works; every use then fails with why. */
static int map_open_table(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                          char **err, bool create)
{
    struct vtab_options opt;
    if (vtab_parse_options(argc - 3, argv + 3, &opt, err) != 0)
        return SQLITE_ERROR;
    struct map_vtab *vt = sqlite3_malloc(sizeof *vt);
    int rc = SQLITE_NOMEM;
    if (!vt)
        goto fail;
    memset(vt, 0, sizeof *vt);
    vt->db = db;
    vt->reg = aux;
    vt->readonly = opt.readonly;
    vt->link.readonly = opt.readonly;
    vt->link.name = sqlite3_mprintf("%s", argv[2]);
    vt->dir = vtab_resolve_path(db, argv[1], opt.path);
    if (!vt->link.name || !vt->dir)
        goto fail;
    char *why = NULL;
    rc = vtab_open_map(&opt, vt->dir, create, &vt->link.map, &why);
    if (rc != SQLITE_OK && create) {
        *err = why;
        goto fail;
    }
    if (rc != SQLITE_OK) {
        vt->missing = sqlite3_mprintf("%s: table %s cannot be used (DROP TABLE %s, then CREATE VIRTUAL TABLE "
                                      "for a new map)", why ? why : "hashmmap: out of memory", argv[2], argv[2]);
        sqlite3_free(why);
    }
    rc = map_declare(db);
    if (rc != SQLITE_OK)
        goto fail;
    vtab_registry_add(vt->reg, &vt->link);
    vtab_free_options(&opt);
    *out = &vt->base;
    return SQLITE_OK;
fail:
    vtab_free(vt); /* not registered yet: the removal finds nothing */
    vtab_free_options(&opt);
    return rc;
}

static int map_create(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out, char **err)
{
    return map_open_table(db, aux, argc, argv, out, err, true);
}

static int map_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out, char **err)
{
    return map_open_table(db, aux, argc, argv, out, err, false);
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
    sqlite3_free(vt->link.name);
    vt->link.name = copy;
    return SQLITE_OK;
}

/* Every use of a table whose map is gone fails with the reason. */
static int map_missing(struct map_vtab *vt)
{
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = sqlite3_mprintf("%s", vt->missing ? vt->missing : "hashmmap: out of memory");
    return SQLITE_ERROR;
}

/* ---- transactions: only to know when a write statement reads ---- */

static int map_begin(sqlite3_vtab *base)
{
    struct map_vtab *vt = (struct map_vtab *)base;
    readset_clear(&vt->read);
    vt->in_write = true;
    return SQLITE_OK;
}

static int map_sync(sqlite3_vtab *base)
{
    return SQLITE_OK; /* every change is in the map already */
}

static int map_end(sqlite3_vtab *base)
{
    struct map_vtab *vt = (struct map_vtab *)base;
    vt->in_write = false;
    readset_clear(&vt->read);
    return SQLITE_OK;
}

/* ---- planning ---- */

static int map_best_index(sqlite3_vtab *base, sqlite3_index_info *info)
{
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        /* key IS v is key = v: no key is NULL, so IS NULL finds nothing either way. */
        if (!c->usable || c->iColumn != COL_KEY ||
            (c->op != SQLITE_INDEX_CONSTRAINT_EQ && c->op != SQLITE_INDEX_CONSTRAINT_IS))
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
#if SQLITE_VERSION_NUMBER >= 3038000 /* sqlite3_vtab_in() and its iterators */
        if (c->op == SQLITE_INDEX_CONSTRAINT_EQ && sqlite3_vtab_in(info, i, 1)) {
            info->idxNum = PLAN_KEY_IN;
            info->idxStr = "key IN (...)";
            info->estimatedCost = 10.0;
            info->estimatedRows = 10;
            return SQLITE_OK;
        }
#endif
        info->idxNum = PLAN_KEY_EQ;
        info->idxStr = "key=?";
        info->estimatedCost = 1.0;
        info->estimatedRows = 1;
        info->idxFlags = SQLITE_INDEX_SCAN_UNIQUE;
        return SQLITE_OK;
    }
    hmm_stats st;
    struct map_vtab *vt = (struct map_vtab *)base;
    sqlite3_int64 rows = vt->link.map && hmm_stat(vt->link.map, &st) == 0 && st.items ? (sqlite3_int64)st.items : 1000000;
    info->idxNum = PLAN_SCAN;
    info->estimatedCost = (double)rows * 2.0;
    info->estimatedRows = rows;
    return SQLITE_OK;
}

/* ---- reading ---- */

static int map_open(sqlite3_vtab *base, sqlite3_vtab_cursor **out)
{
    struct map_vtab *vt = (struct map_vtab *)base;
    if (!vt->link.map)
        return map_missing(vt);
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
    sqlite3_free(c->group);
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
        int rc = hmm_get_info(vt->link.map, c->buf, klen, (char *)c->buf + klen, &vlen, &c->info);
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

/* The row's key is of the class asked for: then it equals the argument
 * (equal bytes, canonical numbers), as SQLite would compare them. */
static bool row_key_in(const struct map_cursor *c, unsigned classes)
{
    return (sqlkey_class_of(c->key, c->klen, c->info.tag) & classes) != 0;
}

static int lookup_key(struct map_cursor *c, struct map_vtab *vt, sqlite3_value *arg)
{
    c->eof = true;
    if (sqlkey_encode(arg, &c->want) != 0)
        return SQLITE_OK; /* key = NULL matches nothing */
    int rc = lookup_bytes(c, vt, c->want.bytes, c->want.len);
    if (rc == SQLITE_OK && !c->eof && !row_key_in(c, c->want.cls))
        c->eof = true; /* 'abc' asked, x'616263' stored (or the other way round) */
    return rc;
}

/* Look up the next IN_GROUP keys of the IN list in one hmm_get_batch. */
static int in_group_fill(struct map_cursor *c, struct map_vtab *vt)
{
    struct in_group *g = c->group;
    const void *keys[IN_GROUP];
    size_t klens[IN_GROUP];
    void *vals[IN_GROUP];
    size_t n = c->in.n - c->in_pos < IN_GROUP ? c->in.n - c->in_pos : IN_GROUP;
    for (size_t i = 0; i < n; i++) {
        keys[i] = c->in.items[c->in_pos + i].bytes;
        klens[i] = c->in.items[c->in_pos + i].len;
        vals[i] = g->vals[i];
        g->vlens[i] = IN_VALUE_CAP;
    }
    int rc = hmm_get_batch(vt->link.map, n, keys, klens, vals, g->vlens, g->rcs, g->infos);
    if (rc)
        return map_error(&vt->base, rc, "lookup");
    g->first = c->in_pos;
    g->n = n;
    g->at = 0;
    c->in_pos += n;
    return SQLITE_OK;
}

/* The next key of the IN list that is present, or eof. */
static int next_in_key(struct map_cursor *c, struct map_vtab *vt)
{
    c->eof = true;
    if (!c->group) {
        if (!(c->group = sqlite3_malloc(sizeof *c->group)))
            return SQLITE_NOMEM;
        c->group->n = c->group->at = 0;
    }
    struct in_group *g = c->group;
    for (;;) {
        if (g->at == g->n) {
            if (c->in_pos == c->in.n)
                return SQLITE_OK;
            int rc = in_group_fill(c, vt);
            if (rc != SQLITE_OK)
                return rc;
        }
        size_t i = g->at++;
        const struct keylist_item *k = &c->in.items[g->first + i];
        int rc = g->rcs[i];
        if (k->len == 0 || k->len > HMM_MAX_KEY || rc == HMM_NOTFOUND)
            continue; /* '' or an oversize key: no such row, as for key = v */
        if (rc == HMM_TOOSMALL) {
            rc = lookup_bytes(c, vt, k->bytes, k->len);
            if (rc != SQLITE_OK)
                return rc;
            if (c->eof)
                continue; /* deleted meanwhile */
        } else if (rc) {
            return map_error(&vt->base, rc, "lookup");
        } else {
            c->key = k->bytes;
            c->klen = k->len;
            c->val = g->vals[i];
            c->vlen = g->vlens[i];
            c->info = g->infos[i];
        }
        if (row_key_in(c, k->classes)) {
            c->eof = false;
            return SQLITE_OK;
        }
        c->eof = true;
    }
}

/* Collect the right-hand side of key IN (...); NULLs match nothing. */
static int collect_in_keys(struct map_cursor *c, struct map_vtab *vt, sqlite3_value *list)
{
#if SQLITE_VERSION_NUMBER < 3038000
    (void)c, (void)vt, (void)list;
    return SQLITE_INTERNAL; /* never planned (map_best_index) */
#else
    sqlite3_value *v;
    keylist_clear(&c->in);
    c->in_pos = 0;
    if (c->group)
        c->group->n = c->group->at = 0;
    int rc;
    for (rc = sqlite3_vtab_in_first(list, &v); rc == SQLITE_OK && v; rc = sqlite3_vtab_in_next(list, &v)) {
        struct sqlkey k;
        if (sqlkey_encode(v, &k) == 0 && keylist_add(&c->in, k.bytes, k.len, k.cls) != 0)
            return SQLITE_NOMEM;
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE)
        return rc;
    keylist_finish(&c->in);
    return next_in_key(c, vt);
#endif
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
    int rc = hmm_cursor_open(vt->link.map, &c->scan);
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
    struct map_vtab *vt = (struct map_vtab *)base->pVtab;
    switch (col) {
    case COL_KEY:
        /* A write statement reads the key of every row it changes: the
         * version read is what its DELETE checks (map_update). */
        if (vt->in_write && readset_note(&vt->read, c->key, c->klen, c->info.version) != 0)
            return SQLITE_NOMEM;
        sqlkey_result(ctx, c->key, c->klen, c->info.tag);
        break;
    case COL_VALUE:
        sqlvalue_result(ctx, c->val, c->vlen, c->info.tag);
        break;
    case COL_TTL_MS:
        if (c->info.expire_ms) {
            uint64_t now = wall_clock_ms();
            /* Expired since it was read: it still is this row, with 0 left. */
            sqlite3_result_int64(ctx, c->info.expire_ms > now ? (sqlite3_int64)(c->info.expire_ms - now) : 0);
        }
        break; /* no expiry: NULL */
    case COL_VERSION:
        sqlite3_result_int64(ctx, (sqlite3_int64)c->info.version);
        break;
    case COL_EXPIRE_MS:
        /* Left unset when an UPDATE only carries it along: xUpdate then
         * knows the statement did not set it (column_was_set). */
        if (sqlite3_vtab_nochange(ctx))
            break;
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
        /* Name the upper bound too: 1e16 is a positive number of milliseconds. */
        vt->base.zErrMsg = sqlite3_mprintf("hashmmap: ttl_ms must be NULL or a number of milliseconds from 1 to "
                                           "9000000000000000");
        return SQLITE_MISMATCH;
    }
    *ttl_ms = d < 1.0 ? 1 : (uint64_t)d;
    return SQLITE_OK;
}

/* Set the table's error message (msg from sqlite3_mprintf) and return code. */
static int set_error(struct map_vtab *vt, int code, char *msg)
{
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = msg;
    return msg ? code : SQLITE_NOMEM;
}

/* In OR IGNORE mode SQLite turns this into "row skipped, nothing changed"
 * (and does not count it in changes()), as for a normal table. */
static int constraint_error(struct map_vtab *vt)
{
    return set_error(vt, SQLITE_CONSTRAINT, sqlite3_mprintf("UNIQUE constraint failed: %s.key", vt->link.name));
}

/* A key for messages: short text as it is, anything else by its size. */
static char *key_for_message(const struct sqlkey *k)
{
    if (k->len <= 64 && sqlkey_is_clean_utf8(k->bytes, k->len))
        return sqlite3_mprintf("'%.*q'", (int)k->len, (const char *)k->bytes); /* it's -> 'it''s' */
    return sqlite3_mprintf("of %lld bytes", (long long)k->len); /* SQLite's printf has no %zu */
}

/* The optimistic check failed: another writer changed (or deleted) the row
 * after this statement read it.  SQLITE_BUSY: run the statement again. */
static int row_changed(struct map_vtab *vt, const struct sqlkey *k, const char *what_happened)
{
    char *key = key_for_message(k);
    int rc = set_error(vt, SQLITE_BUSY,
                       sqlite3_mprintf("hashmmap: %s: the row with key %s changed since this statement read it "
                                       "(another writer); %s: run the statement again",
                                       vt->link.name, key ? key : "?", what_happened));
    sqlite3_free(key);
    return rc;
}

/* An UPDATE whose expected version did not match.  When the statement
 * set that version itself (SET version = ?, other than the one it read),
 * the row did not change under it: the version given is stale, and the
 * message says so rather than blaming another writer. */
static int version_mismatch(struct map_vtab *vt, const struct sqlkey *k, uint64_t expected, const char *what_happened)
{
    uint64_t read_version;
    if (!readset_find(&vt->read, k->bytes, k->len, &read_version) || read_version == expected)
        return row_changed(vt, k, what_happened);
    char *key = key_for_message(k);
    int rc = set_error(vt, SQLITE_BUSY,
                       sqlite3_mprintf("hashmmap: %s: the row with key %s has version %llu, not the %llu this "
                                       "statement set; %s",
                                       vt->link.name, key ? key : "?", (unsigned long long)read_version,
                                       (unsigned long long)expected, what_happened));
    sqlite3_free(key);
    return rc;
}

/* The key of a written row: NULL, '' and keys over the limit are refused
 * with the code a normal table would give (NOT NULL constraint, TOOBIG). */
static int key_of(struct map_vtab *vt, sqlite3_value *v, struct sqlkey *k)
{
    if (sqlkey_encode(v, k) != 0)
        return set_error(vt, SQLITE_CONSTRAINT, sqlite3_mprintf("NOT NULL constraint failed: %s.key", vt->link.name));
    if (k->len == 0)
        return set_error(vt, SQLITE_CONSTRAINT,
                         sqlite3_mprintf("hashmmap: %s.key must be 1..%u bytes, not empty", vt->link.name, HMM_MAX_KEY));
    if (k->len > HMM_MAX_KEY)
        return set_error(vt, SQLITE_TOOBIG, sqlite3_mprintf("hashmmap: a key of %lld bytes is over the %u-byte limit",
                                                            (long long)k->len, HMM_MAX_KEY));
    return SQLITE_OK;
}

/* Did the statement give this column a value?  NULL counts as not set,
 * and so does the marker SQLite passes for a column an UPDATE leaves alone
 * (map_column answered nothing for it). */
static bool column_was_set(sqlite3_value *v)
{
    return sqlite3_value_type(v) != SQLITE_NULL && !sqlite3_value_nochange(v);
}

/* expire_ms is read-only, version is the map's on INSERT: a statement that
 * sets them would otherwise see its value silently dropped. */
static int check_unsettable(struct map_vtab *vt, sqlite3_value **argv, bool is_insert)
{
    if (column_was_set(argv[2 + COL_EXPIRE_MS]))
        return set_error(vt, SQLITE_CONSTRAINT,
                         sqlite3_mprintf("hashmmap: %s.expire_ms cannot be set: it follows from ttl_ms (set that: "
                                         "milliseconds from now)", vt->link.name));
    if (is_insert && column_was_set(argv[2 + COL_VERSION]))
        return set_error(vt, SQLITE_CONSTRAINT,
                         sqlite3_mprintf("hashmmap: %s.version cannot be set by an INSERT: the map assigns it "
                                         "(UPDATE ... SET version = ? makes an update conditional)", vt->link.name));
    return SQLITE_OK;
}

#define ANY_VERSION UINT64_MAX /* store_row without a version check */

/* Store the row of argv (argv[2 + COL_...]) under key: with expected !=
 * ANY_VERSION only if the entry still has that version (HMM_MISMATCH
 * otherwise), else with put flags (HMM_NX for a new key, 0 to replace).
 * HMM_EXISTS and HMM_MISMATCH go back to the caller, which knows what they
 * mean for the statement. */
static int store_row(struct map_vtab *vt, const struct sqlkey *key, sqlite3_value **argv, unsigned flags,
                     uint64_t expected, bool is_insert, int *hmm_rc)
{
    uint64_t ttl_ms;
    int rc = row_ttl(vt, argv[2 + COL_TTL_MS], is_insert, &ttl_ms);
    if (rc != SQLITE_OK)
        return rc;
    struct sqlvalue_bytes v;
    sqlvalue_encode(argv[2 + COL_VALUE], &v);
    unsigned tag = v.tag | key->type_bits;
    if (expected == ANY_VERSION)
        *hmm_rc = hmm_put_tagged(vt->link.map, key->bytes, key->len, v.bytes, v.len, ttl_ms, flags, tag);
    else
        *hmm_rc = hmm_cas_tagged(vt->link.map, key->bytes, key->len, v.bytes, v.len, ttl_ms, expected, tag);
    if (*hmm_rc == 0 || *hmm_rc == HMM_EXISTS || *hmm_rc == HMM_MISMATCH)
        return SQLITE_OK;
    return map_error(&vt->base, *hmm_rc, "write");
}

static int do_insert(struct map_vtab *vt, sqlite3_value **argv)
{
    struct sqlkey key;
    int hrc, rc = key_of(vt, argv[2 + COL_KEY], &key);
    if (rc == SQLITE_OK)
        rc = check_unsettable(vt, argv, true);
    if (rc != SQLITE_OK)
        return rc;
    int mode = sqlite3_vtab_on_conflict(vt->db);
    rc = store_row(vt, &key, argv, mode == SQLITE_REPLACE ? 0 : HMM_NX, ANY_VERSION, true, &hrc);
    if (rc == SQLITE_OK && hrc == HMM_EXISTS)
        return constraint_error(vt);
    return rc;
}

/* DELETE: only the entry this statement read (its version, noted when the
 * key was read: SQLite passes a DELETE nothing but the key). */
static int do_delete(struct map_vtab *vt, sqlite3_value *old_key)
{
    struct sqlkey key;
    uint64_t version;
    if (sqlkey_encode(old_key, &key) != 0 || key.len == 0 || key.len > HMM_MAX_KEY)
        return SQLITE_OK; /* no such entry can exist */
    if (!readset_find(&vt->read, key.bytes, key.len, &version))
        return set_error(vt, SQLITE_INTERNAL,
                         sqlite3_mprintf("hashmmap: %s: DELETE of a row this statement did not read", vt->link.name));
    int rc = hmm_del_version(vt->link.map, key.bytes, key.len, version);
    if (rc == HMM_MISMATCH)
        return row_changed(vt, &key, "it was not deleted");
    if (rc && rc != HMM_NOTFOUND)
        return map_error(&vt->base, rc, "delete");
    return SQLITE_OK; /* or gone already (another process, or expiry): what DELETE wanted */
}

/* The version an UPDATE expects: the one its row was read with, or the one
 * the statement sets (UPDATE ... SET version = ?). */
static int expected_version(struct map_vtab *vt, sqlite3_value *v, uint64_t *version)
{
    /* The column is INTEGER, but SQLite applies no affinity on the way to
     * xUpdate: take '5' and 5.0 as 5, as a normal table would store them. */
    int t = sqlite3_value_numeric_type(v);
    bool integral = t == SQLITE_INTEGER ||
                    (t == SQLITE_FLOAT && sqlite3_value_double(v) == (double)sqlite3_value_int64(v));
    if (!integral || sqlite3_value_int64(v) < 1)
        return set_error(vt, SQLITE_MISMATCH,
                         sqlite3_mprintf("hashmmap: %s: version must be the positive integer the row was read with",
                                         vt->link.name));
    *version = (uint64_t)sqlite3_value_int64(v);
    return SQLITE_OK;
}

/* UPDATE.  Same key: rewrite the row if its entry is still the one read.
 * New key: store it (as an INSERT would, honouring the conflict mode),
 * then delete the old one if it is still the one read.  Two steps, not
 * atomic: another process may see both keys for a moment, a crash between
 * them leaves both, and when the old row changed in between, both stay
 * (the statement then fails with SQLITE_BUSY and says so).  An old row
 * that changed or went before the first step is not renamed at all: the
 * new key would carry the stale row (or bring back a deleted one). */
static int do_update(struct map_vtab *vt, sqlite3_value **argv)
{
    struct sqlkey old_key, new_key;
    uint64_t version;
    int hrc, rc = key_of(vt, argv[0], &old_key);
    if (rc == SQLITE_OK)
        rc = key_of(vt, argv[2 + COL_KEY], &new_key);
    if (rc == SQLITE_OK)
        rc = expected_version(vt, argv[2 + COL_VERSION], &version);
    if (rc == SQLITE_OK)
        rc = check_unsettable(vt, argv, false);
    if (rc != SQLITE_OK)
        return rc;
    if (old_key.len == new_key.len && memcmp(old_key.bytes, new_key.bytes, old_key.len) == 0) {
        rc = store_row(vt, &new_key, argv, 0, version, false, &hrc);
        return rc == SQLITE_OK && hrc == HMM_MISMATCH ? version_mismatch(vt, &old_key, version, "it was not updated")
                                                      : rc;
    }
    hmm_entry_info now;
    size_t no_value = 0; /* only the version: HMM_TOOSMALL still fills now */
    rc = hmm_get_info(vt->link.map, old_key.bytes, old_key.len, NULL, &no_value, &now);
    if (rc == HMM_NOTFOUND)
        return row_changed(vt, &old_key, "it was not renamed");
    if ((rc == 0 || rc == HMM_TOOSMALL) && now.version != version)
        return version_mismatch(vt, &old_key, version, "it was not renamed");
    if (rc && rc != HMM_TOOSMALL)
        return map_error(&vt->base, rc, "lookup");
    int mode = sqlite3_vtab_on_conflict(vt->db);
    rc = store_row(vt, &new_key, argv, mode == SQLITE_REPLACE ? 0 : HMM_NX, ANY_VERSION, false, &hrc);
    if (rc != SQLITE_OK)
        return rc;
    if (hrc == HMM_EXISTS)
        return constraint_error(vt);
    rc = hmm_del_version(vt->link.map, old_key.bytes, old_key.len, version);
    if (rc == HMM_MISMATCH)
        return row_changed(vt, &old_key, "the new key was written and the old row keeps the other writer's change");
    if (rc == HMM_NOTFOUND)
        return row_changed(vt, &old_key, "the new key was written and the old row is gone (deleted by the other "
                                         "writer, or expired)");
    return rc ? map_error(&vt->base, rc, "delete") : SQLITE_OK;
}

static int map_update(sqlite3_vtab *base, int argc, sqlite3_value **argv, sqlite3_int64 *rowid)
{
    struct map_vtab *vt = (struct map_vtab *)base;
    if (!vt->link.map)
        return map_missing(vt);
    if (vt->readonly)
        return set_error(vt, SQLITE_READONLY,
                         sqlite3_mprintf("hashmmap: %s is read-only (readonly=1): it cannot write map '%s'",
                                         vt->link.name, vt->dir));
    if (argc == 1)
        return do_delete(vt, argv[0]);
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return do_insert(vt, argv);
    return do_update(vt, argv);
}

static sqlite3_module map_module = {
    .iVersion = 1,
    .xCreate = map_create,
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
    .xBegin = map_begin,
    .xSync = map_sync,
    .xCommit = map_end,
    .xRollback = map_end,
    .xRename = map_rename,
};

/* The entry point SQLite derives from the file name hashmmap.so. */
__attribute__((visibility("default")))
int sqlite3_hashmmap_init(sqlite3 *db, char **err, const sqlite3_api_routines *api);
int sqlite3_hashmmap_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
    SQLITE_EXTENSION_INIT2(api);
    struct vtab_registry *reg = sqlite3_malloc(sizeof *reg);
    if (!reg)
        return SQLITE_NOMEM;
    memset(reg, 0, sizeof *reg);
    /* The module owns reg: SQLite frees it with the connection (or at once
     * when registering fails). */
    int rc = sqlite3_create_module_v2(db, "hashmmap", &map_module, reg, vtab_registry_free);
    if (rc == SQLITE_OK)
        rc = incr_function_register(db, reg);
    if (rc == SQLITE_OK)
        rc = stats_vtab_register(db);
    return rc;
}
