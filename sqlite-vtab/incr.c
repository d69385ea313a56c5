/*
 * incr.c - the SQL function hashmmap_incr(table_or_path, key [, delta]):
 * an atomic counter increment (hmm_incr), for the read-modify-write that
 * an optimistic UPDATE would refuse under contention.
 *
 *     SELECT hashmmap_incr('hits', 'page/1');          -- +1, returns the new value
 *     SELECT hashmmap_incr('hits', 'page/1', -5);
 *     SELECT hashmmap_incr('/var/lib/app/hits', 'page/1', 10);
 *
 * The first argument is a hashmmap table of this connection or, when no
 * table has that name, a map directory (resolved like path=; it must
 * exist).  A missing key starts at 0.  Declared SQLITE_DIRECTONLY: a side
 * effect, never from triggers or views of the schema.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sqlite-vtab/sqlkey.h"
#include "sqlite-vtab/vtab.h"
#include "tools/clock.h"
#include "tools/errtext.h"

SQLITE_EXTENSION_INIT3

void vtab_registry_add(struct vtab_registry *reg, struct map_link *link)
{
    link->next = reg->tables;
    reg->tables = link;
}

void vtab_registry_remove(struct vtab_registry *reg, struct map_link *link)
{
    for (struct map_link **p = &reg->tables; *p; p = &(*p)->next) {
        if (*p == link) {
            *p = link->next;
            return;
        }
    }
}

void vtab_registry_free(void *arg)
{
    struct vtab_registry *reg = arg;
    while (reg->paths) {
        struct map_link *l = reg->paths;
        reg->paths = l->next;
        hmm_close(l->map);
        sqlite3_free(l->name);
        sqlite3_free(l);
    }
    sqlite3_free(reg);
}

/* Table names compare as SQL names (case-insensitive), paths as paths. */
static struct map_link *find_link(struct map_link *l, const char *name, bool sql_name)
{
    for (; l; l = l->next)
        if (sql_name ? sqlite3_stricmp(l->name, name) == 0 : strcmp(l->name, name) == 0)
            return l;
    return NULL;
}

/* A table of the connection that is declared but not yet connected (a
 * database opened afresh) connects when a statement names it. */
static struct map_link *find_table(sqlite3 *db, struct vtab_registry *reg, const char *name, bool *is_table)
{
    struct map_link *l = find_link(reg->tables, name, true);
    *is_table = l != NULL;
    if (l)
        return l;
    char *sql = sqlite3_mprintf("SELECT 1 FROM \"%w\" WHERE 0", name);
    sqlite3_stmt *st = NULL;
    *is_table = sql && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    sqlite3_free(sql);
    return *is_table ? find_link(reg->tables, name, true) : NULL;
}

/* A map named by its directory: opened once per connection, kept open. */
static int map_by_path(sqlite3 *db, struct vtab_registry *reg, const char *path, hmm_t **map, char **err)
{
    char *dir = vtab_resolve_path(db, "main", path);
    if (!dir)
        return SQLITE_NOMEM;
    struct map_link *l = find_link(reg->paths, dir, false);
    if (l) {
        sqlite3_free(dir);
        *map = l->map;
        return SQLITE_OK;
    }
    /* Nothing by that name at all: most likely a mistyped table name, so
     * say both what was looked for, not that a map was "removed". */
    struct stat st;
    if (stat(dir, &st) != 0 && errno == ENOENT) {
        *err = sqlite3_mprintf("hashmmap_incr: '%s' is neither a hashmmap table of this connection nor a map "
                               "directory ('%s' does not exist)", path, dir);
        sqlite3_free(dir);
        return *err ? SQLITE_ERROR : SQLITE_NOMEM;
    }
    struct vtab_options opt = {.path = dir};
    int rc = vtab_open_map(&opt, dir, false, map, err);
    if (rc == SQLITE_OK && !(l = sqlite3_malloc(sizeof *l))) {
        hmm_close(*map);
        rc = SQLITE_NOMEM;
    }
    if (rc != SQLITE_OK) {
        sqlite3_free(dir);
        return rc;
    }
    *l = (struct map_link){.next = reg->paths, .name = dir, .map = *map};
    reg->paths = l;
    return SQLITE_OK;
}

static int incr_error(sqlite3_context *ctx, int code, char *msg)
{
    sqlite3_result_error(ctx, msg ? msg : "hashmmap_incr: out of memory", -1);
    sqlite3_result_error_code(ctx, msg ? code : SQLITE_NOMEM);
    sqlite3_free(msg);
    return code;
}

/* The map the first argument names. */
static int incr_target(sqlite3_context *ctx, sqlite3_value *arg, hmm_t **map)
{
    struct vtab_registry *reg = sqlite3_user_data(ctx);
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    const char *name = (const char *)sqlite3_value_text(arg);
    if (!name || !*name)
        return incr_error(ctx, SQLITE_MISUSE, sqlite3_mprintf("hashmmap_incr: the first argument names a "
                                                              "hashmmap table or a map directory"));
    bool is_table;
    struct map_link *l = find_table(db, reg, name, &is_table);
    if (is_table && !l)
        return incr_error(ctx, SQLITE_MISMATCH, sqlite3_mprintf("hashmmap_incr: '%s' is not a hashmmap table",
                                                                name));
    if (l && !l->map)
        return incr_error(ctx, SQLITE_ERROR, sqlite3_mprintf("hashmmap_incr: table '%s' has no map (see SELECT "
                                                             "from it for why)", name));
    if (l && l->readonly)
        return incr_error(ctx, SQLITE_READONLY,
                          sqlite3_mprintf("hashmmap_incr: table '%s' is read-only (readonly=1)", name));
    if (l) {
        *map = l->map;
        return SQLITE_OK;
    }
    char *err = NULL;
    int rc = map_by_path(db, reg, name, map, &err);
    return rc == SQLITE_OK ? rc : incr_error(ctx, rc, err);
}

/* hmm_incr writes the tag HMM_TAG_COUNTER, which clears the key type bits
 * (sqlkey.h): a REAL key 2.5 would read back as TEXT '2.5', the text '42'
 * as INTEGER 42, and `key = v` would no longer find what was counted.  So
 * when the entry has key bits (or is new and its key needs them), count
 * with an optimistic loop that writes them again.  An existing entry keeps
 * its key's type; a new one gets the type given, as an INSERT would.  The
 * loop keeps the entry's expiry to the millisecond it can (hmm_cas_tagged
 * takes a TTL from now).  Entries without key bits take hmm_incr, exact
 * and fast: only a writer storing the same bytes with another key type at
 * that very moment could still lose its bits. */
#define INCR_RETRIES 10000
static int incr_typed(hmm_t *map, const struct sqlkey *key, int64_t delta, int64_t *result)
{
    for (int tries = 0; tries < INCR_RETRIES; tries++) {
        char val[32], num[32];
        size_t vlen = sizeof val - 1;
        hmm_entry_info info;
        int rc = hmm_get_info(map, key->bytes, key->len, val, &vlen, &info);
        if (rc == HMM_NOTFOUND && key->type_bits == SQLKEY_INFERRED)
            return hmm_incr(map, key->bytes, key->len, delta, result);
        if (rc == HMM_NOTFOUND) {
            int n = snprintf(num, sizeof num, "%lld", (long long)delta);
            rc = hmm_put_tagged(map, key->bytes, key->len, num, (size_t)n, 0, HMM_NX,
                                HMM_TAG_COUNTER | key->type_bits);
            if (rc == HMM_EXISTS)
                continue; /* another writer made it meanwhile: count on that one */
            if (rc == 0)
                *result = delta;
            return rc;
        }
        /* No key bits to keep, or a value too long to be a number: the
         * library's own increment (which reports the latter). */
        if (rc == HMM_TOOSMALL || (rc == 0 && sqlkey_bits_of_tag(info.tag) == SQLKEY_INFERRED))
            return hmm_incr(map, key->bytes, key->len, delta, result);
        if (rc)
            return rc;
        /* The counter rule of hmm_incr: a decimal int64, nothing else. */
        val[vlen] = '\0';
        char *end;
        errno = 0;
        long long old = strtoll(val, &end, 10);
        int64_t sum;
        if (vlen == 0 || !(val[0] == '-' || val[0] == '+' || (val[0] >= '0' && val[0] <= '9')) || errno || *end ||
            __builtin_add_overflow((int64_t)old, delta, &sum))
            return hmm_incr(map, key->bytes, key->len, delta, result); /* fails with its HMM_NOTNUM and message */
        int n = snprintf(num, sizeof num, "%lld", (long long)sum);
        uint64_t now = wall_clock_ms();
        uint64_t ttl = info.expire_ms == 0 ? 0 : info.expire_ms > now ? info.expire_ms - now : 1;
        rc = hmm_cas_tagged(map, key->bytes, key->len, num, (size_t)n, ttl, info.version,
                            HMM_TAG_COUNTER | sqlkey_bits_of_tag(info.tag));
        if (rc == HMM_MISMATCH || rc == HMM_NOTFOUND)
            continue; /* changed meanwhile: count on what is there now */
        if (rc == 0)
            *result = sum;
        return rc;
    }
    return HMM_BUSY;
}

static void incr_func(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    hmm_t *map;
    struct sqlkey key = {.len = 0};
    sqlite3_int64 delta = 1;
    if (argc == 3) {
        /* As an INTEGER column would take it: '2' and 2.0 are 2 (a float
         * bound by Python, say), 2.5 is no delta. */
        int t = sqlite3_value_numeric_type(argv[2]);
        if (t != SQLITE_INTEGER &&
            !(t == SQLITE_FLOAT && sqlite3_value_double(argv[2]) == (double)sqlite3_value_int64(argv[2]))) {
            incr_error(ctx, SQLITE_MISMATCH, sqlite3_mprintf("hashmmap_incr: delta must be an integer"));
            return;
        }
        delta = sqlite3_value_int64(argv[2]);
    }
    if (sqlkey_encode(argv[1], &key) != 0 || key.len == 0 || key.len > HMM_MAX_KEY) {
        /* Over the limit: TOOBIG as for the table's keys; NULL or '': no such key. */
        incr_error(ctx, key.len > HMM_MAX_KEY ? SQLITE_TOOBIG : SQLITE_CONSTRAINT,
                   sqlite3_mprintf("hashmmap_incr: the key must be 1..%u bytes, not NULL", HMM_MAX_KEY));
        return;
    }
    if (incr_target(ctx, argv[0], &map) != SQLITE_OK)
        return;
    int64_t result;
    int rc = incr_typed(map, &key, delta, &result);
    if (rc == 0) {
        sqlite3_result_int64(ctx, result);
        return;
    }
    char text[ERRTEXT_MAX];
    incr_error(ctx, rc == HMM_FULL ? SQLITE_FULL : rc == -EBADF ? SQLITE_READONLY : SQLITE_ERROR,
               sqlite3_mprintf("hashmmap_incr: %s", errtext(rc, text, sizeof text)));
}

int incr_function_register(sqlite3 *db, struct vtab_registry *reg)
{
    int rc = SQLITE_OK;
    for (int nargs = 2; nargs <= 3 && rc == SQLITE_OK; nargs++)
        rc = sqlite3_create_function_v2(db, "hashmmap_incr", nargs, SQLITE_UTF8 | SQLITE_DIRECTONLY, reg, incr_func,
                                        NULL, NULL, NULL);
    return rc;
}
