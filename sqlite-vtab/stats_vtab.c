/*
 * stats_vtab.c - hashmmap_stats(path): the metrics of a map as rows.
 *
 *     SELECT * FROM hashmmap_stats('/var/lib/app/offsets');
 *     SELECT value FROM hashmmap_stats('/var/lib/app/offsets') WHERE name = 'hits';
 *
 * One row (name, value, kind, help) per counter (kind 'counter', summed over
 * all processes, as hashmmap-stat shows them), per gauge (kind 'gauge':
 * items, bytes, sizes, processes) and per slab size class (kind 'class',
 * named class_<chunk bytes>_<what>).  Each query opens the map read-only
 * for the time of xFilter, so it never writes a byte of the map's files.
 */
#include "config.h"

#include <stdbool.h>
#include <string.h>

#include <hashmmap.h>
#include "sqlite-vtab/vtab.h"
#include "tools/errtext.h"

SQLITE_EXTENSION_INIT3

enum { SCOL_NAME, SCOL_VALUE, SCOL_KIND, SCOL_HELP, SCOL_PATH };
#define MAX_CLASSES 256

struct stat_row {
    char *name;                 /* sqlite3_malloc'ed */
    sqlite3_int64 value;
    const char *kind, *help;    /* static */
};

struct stats_vtab {
    sqlite3_vtab base;
    sqlite3 *db;                /* to resolve a relative path as tables do */
};

struct stats_cursor {
    sqlite3_vtab_cursor base;
    char *path;                 /* the argument as given: the hidden column's value */
    struct stat_row *rows;
    size_t nrows, caprows, pos;
};

static int stats_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                         sqlite3_vtab **out, char **err)
{
    int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(name TEXT, value INTEGER, kind TEXT, help TEXT,"
                                      " path HIDDEN)");
    if (rc != SQLITE_OK)
        return rc;
    struct stats_vtab *vt = sqlite3_malloc(sizeof *vt);
    if (!vt)
        return SQLITE_NOMEM;
    memset(vt, 0, sizeof *vt);
    vt->db = db;
    *out = &vt->base;
    return SQLITE_OK;
}

static int stats_disconnect(sqlite3_vtab *vt)
{
    sqlite3_free(vt);
    return SQLITE_OK;
}

/* The path argument is required: without it there is no map to read. */
static int stats_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    bool seen = false;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (c->iColumn != SCOL_PATH || c->op != SQLITE_INDEX_CONSTRAINT_EQ)
            continue;
        seen = true;
        if (!c->usable)
            continue;
        info->aConstraintUsage[i].argvIndex = 1;
        info->aConstraintUsage[i].omit = 1;
        info->estimatedCost = 100;
        info->estimatedRows = 100;
        return SQLITE_OK;
    }
    if (seen)
        return SQLITE_CONSTRAINT; /* usable in another join order: ask for that one */
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf("hashmmap_stats: needs the map's directory: hashmmap_stats('DIR')");
    return SQLITE_ERROR;
}

static void rows_clear(struct stats_cursor *c)
{
    for (size_t i = 0; i < c->nrows; i++)
        sqlite3_free(c->rows[i].name);
    c->nrows = c->pos = 0;
}

static int stats_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    struct stats_cursor *c = sqlite3_malloc(sizeof *c);
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    *out = &c->base;
    return SQLITE_OK;
}

static int stats_close(sqlite3_vtab_cursor *base)
{
    struct stats_cursor *c = (struct stats_cursor *)base;
    rows_clear(c);
    sqlite3_free(c->rows);
    sqlite3_free(c->path);
    sqlite3_free(c);
    return SQLITE_OK;
}

static int row_add(struct stats_cursor *c, char *name, uint64_t value, const char *kind, const char *help)
{
    if (!name)
        return SQLITE_NOMEM;
    if (c->nrows == c->caprows) {
        size_t cap = c->caprows ? c->caprows * 2 : 64;
        struct stat_row *p = sqlite3_realloc64(c->rows, cap * sizeof *p);
        if (!p) {
            sqlite3_free(name);
            return SQLITE_NOMEM;
        }
        c->rows = p;
        c->caprows = cap;
    }
    c->rows[c->nrows++] = (struct stat_row){name, (sqlite3_int64)value, kind, help};
    return SQLITE_OK;
}

static int add_gauges(struct stats_cursor *c, const hmm_stats *st)
{
    const struct { const char *name; uint64_t value; const char *help; } gauges[] = {
        {"items", st->items, "live entries (expired ones not yet reclaimed included)"},
        {"bytes_used", st->bytes_used, "bytes of live entries (header, key and value)"},
        {"bytes_total", st->bytes_total, "bytes of the data area available for entries"},
        {"size", st->size, "configured size at creation"},
        {"max_size", st->max_size, "growth limit"},
        {"file_size", st->file_size, "current size of the map file"},
        {"index_buckets", st->index_buckets, "hash index buckets"},
        {"index_slots", st->index_slots, "hash index slots"},
        {"generation", st->generation, "growth steps taken"},
        {"default_ttl_ms", st->default_ttl_ms, "TTL of puts that give none (0: never expire)"},
        {"max_key", st->max_key, "largest key in bytes"},
        {"max_value", st->max_value, "largest value in bytes"},
        {"page_size", st->page_size, "bytes of a slab page"},
        {"nstripes", st->nstripes, "writer lock stripes"},
        {"nclasses", st->nclasses, "slab size classes"},
        {"nprocs", st->nprocs, "processes that have the map open now"},
        {"format_version", st->format_version, "version of the file format"},
        {"cache_mode", (st->flags & HMM_CACHE) ? 1 : 0, "1 when the map evicts instead of filling up"},
    };
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        int rc = row_add(c, sqlite3_mprintf("%s", gauges[i].name), gauges[i].value, "gauge", gauges[i].help);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static int add_classes(struct stats_cursor *c, hmm_t *m)
{
    hmm_class_stats *cs = sqlite3_malloc64(sizeof(hmm_class_stats) * MAX_CLASSES);
    size_t n = 0;
    int rc = SQLITE_NOMEM;
    if (!cs)
        return rc;
    rc = hmm_stat_classes(m, cs, MAX_CLASSES, &n) ? SQLITE_ERROR : SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < n && i < MAX_CLASSES; i++) {
        rc = row_add(c, sqlite3_mprintf("class_%u_pages", cs[i].chunk_size), cs[i].pages, "class",
                     "slab pages given to the class");
        if (rc == SQLITE_OK)
            rc = row_add(c, sqlite3_mprintf("class_%u_chunks_used", cs[i].chunk_size), cs[i].chunks_used,
                         "class", "chunks holding entries");
        if (rc == SQLITE_OK)
            rc = row_add(c, sqlite3_mprintf("class_%u_chunks_total", cs[i].chunk_size),
                         cs[i].chunks_total, "class", "chunks the class's pages hold");
    }
    sqlite3_free(cs);
    return rc;
}

static int stats_filter(sqlite3_vtab_cursor *base, int plan, const char *plan_str, int argc,
                        sqlite3_value **argv)
{
    struct stats_cursor *c = (struct stats_cursor *)base;
    sqlite3_vtab *vt = base->pVtab;
    hmm_t *m = NULL;
    hmm_stats st;
    rows_clear(c);
    const char *path = argc == 1 ? (const char *)sqlite3_value_text(argv[0]) : NULL;
    if (!path || !*path) {
        sqlite3_free(vt->zErrMsg);
        vt->zErrMsg = sqlite3_mprintf("hashmmap_stats: the path must be a directory name, not NULL or ''");
        return SQLITE_ERROR;
    }
    /* The hidden column answers with the argument, as the table-valued
     * functions of SQLite do (json_each, generate_series): a query may
     * select it or join on it. */
    sqlite3_free(c->path);
    if (!(c->path = sqlite3_mprintf("%s", path)))
        return SQLITE_NOMEM;
    /* A relative path means what it means in a table's path=: beside the
     * main database file. */
    char *dir = vtab_resolve_path(((struct stats_vtab *)vt)->db, "main", path);
    if (!dir)
        return SQLITE_NOMEM;
    hmm_config cfg = {.flags = HMM_RDONLY};
    int hrc = hmm_open(&m, dir, &cfg);
    if (hrc == 0)
        hrc = hmm_stat(m, &st);
    if (hrc) {
        char text[ERRTEXT_MAX];
        sqlite3_free(vt->zErrMsg);
        vt->zErrMsg = sqlite3_mprintf("hashmmap_stats: cannot read map '%s': %s", dir, errtext(hrc, text, sizeof text));
        hmm_close(m);
        sqlite3_free(dir);
        return SQLITE_ERROR;
    }
    sqlite3_free(dir);
    int rc = SQLITE_OK;
    for (int id = 0; rc == SQLITE_OK && id < HMM_COUNTER_COUNT; id++)
        rc = row_add(c, sqlite3_mprintf("%s", hmm_counter_name(id)), st.counters[id], "counter",
                     hmm_counter_help(id));
    if (rc == SQLITE_OK)
        rc = add_gauges(c, &st);
    if (rc == SQLITE_OK)
        rc = add_classes(c, m);
    hmm_close(m);
    return rc;
}

static int stats_next(sqlite3_vtab_cursor *base)
{
    ((struct stats_cursor *)base)->pos++;
    return SQLITE_OK;
}

static int stats_eof(sqlite3_vtab_cursor *base)
{
    struct stats_cursor *c = (struct stats_cursor *)base;
    return c->pos >= c->nrows;
}

static int stats_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col)
{
    struct stats_cursor *c = (struct stats_cursor *)base;
    const struct stat_row *r = &c->rows[c->pos];
    switch (col) {
    case SCOL_NAME: sqlite3_result_text(ctx, r->name, -1, SQLITE_TRANSIENT); break;
    case SCOL_VALUE: sqlite3_result_int64(ctx, r->value); break;
    case SCOL_KIND: sqlite3_result_text(ctx, r->kind, -1, SQLITE_STATIC); break;
    case SCOL_HELP: sqlite3_result_text(ctx, r->help, -1, SQLITE_STATIC); break;
    default: sqlite3_result_text(ctx, c->path, -1, SQLITE_TRANSIENT); break; /* path: hidden, the argument */
    }
    return SQLITE_OK;
}

static int stats_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
    *rowid = (sqlite3_int64)((struct stats_cursor *)base)->pos + 1;
    return SQLITE_OK;
}

/* Eponymous-only (no xCreate): hashmmap_stats exists in every schema. */
static sqlite3_module stats_module = {
    .xConnect = stats_connect,
    .xBestIndex = stats_best_index,
    .xDisconnect = stats_disconnect,
    .xOpen = stats_open,
    .xClose = stats_close,
    .xFilter = stats_filter,
    .xNext = stats_next,
    .xEof = stats_eof,
    .xColumn = stats_column,
    .xRowid = stats_rowid,
};

int stats_vtab_register(sqlite3 *db)
{
    return sqlite3_create_module(db, "hashmmap_stats", &stats_module, NULL);
}
