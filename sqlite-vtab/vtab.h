/*
 * vtab.h - what the files of the SQLite extension share.  Internal.
 */
#ifndef HMM_VTAB_H
#define HMM_VTAB_H

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3ext.h>

#include <hashmmap.h>

/* Which options were given (vtab_options.given). */
enum {
    OPT_PATH = 1u << 0, OPT_SIZE = 1u << 1, OPT_MAX_SIZE = 1u << 2, OPT_TTL = 1u << 3,
    OPT_CACHE = 1u << 4, OPT_READONLY = 1u << 5, OPT_MAX_VALUE = 1u << 6,
    OPT_CREATION = OPT_SIZE | OPT_MAX_SIZE | OPT_TTL | OPT_CACHE | OPT_MAX_VALUE,
};

/* The options of CREATE VIRTUAL TABLE ... USING hashmmap(...). */
struct vtab_options {
    char *path;         /* sqlite3_malloc'ed; required */
    uint64_t size, max_size, ttl_ms, max_value;
    bool cache, readonly;
    unsigned given;     /* OPT_* */
};

/* Parse "name=value" arguments (values optionally quoted '...' or "...")
 * and check them against each other.  Returns 0, or -1 with *err set
 * (sqlite3_mprintf) saying what is wrong; opt is then already freed. */
int vtab_parse_options(int argc, const char *const *argv, struct vtab_options *opt, char **err);
void vtab_free_options(struct vtab_options *opt);

/* CREATE VIRTUAL TABLE on a map that exists already: the creation options
 * given must be what the map was created with (they cannot change it).
 * 0, or -1 with *err saying which option differs and how. */
int vtab_check_existing(const struct vtab_options *opt, const hmm_stats *st, const char *path, char **err);

/* The map directory a table's path= names: as given when absolute, else
 * resolved against the directory of the database file that holds the
 * table (schema), so that the table finds the same map whatever the
 * current directory; for an in-memory or temporary database, against the
 * current directory.  sqlite3_malloc'ed; NULL when out of memory. */
char *vtab_resolve_path(sqlite3 *db, const char *schema, const char *path);

/* Open the map of a table.  create: CREATE VIRTUAL TABLE, which may create
 * the map (in a missing or empty directory only) and checks the creation
 * options against an existing one; else (xConnect) the map must exist.
 * Returns SQLITE_OK and *map, or an error code with *err set. */
int vtab_open_map(const struct vtab_options *opt, const char *dir, bool create, hmm_t **map, char **err);

/* A map known to the connection by a name: each hashmmap table (name is
 * the table's), and each map hashmmap_incr() opened by path (name is the
 * path; owned, closed with the connection). */
struct map_link {
    struct map_link *next;
    char *name;
    hmm_t *map;
    bool readonly;
};

/* Per connection: what hashmmap_incr() can name. */
struct vtab_registry {
    struct map_link *tables;
    struct map_link *paths;
};

void vtab_registry_add(struct vtab_registry *reg, struct map_link *link);
void vtab_registry_remove(struct vtab_registry *reg, struct map_link *link);
/* The module's destructor: closes the maps opened by path. */
void vtab_registry_free(void *reg);

/* Register the SQL function hashmmap_incr(table_or_path, key [, delta]). */
int incr_function_register(sqlite3 *db, struct vtab_registry *reg);

/* Register the eponymous table-valued function hashmmap_stats(path). */
int stats_vtab_register(sqlite3 *db);

#endif
