/*
 * vtab.h - what the files of the SQLite extension share.  Internal.
 */
#ifndef HMM_VTAB_H
#define HMM_VTAB_H

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3ext.h>

/* The options of CREATE VIRTUAL TABLE ... USING hashmmap(...). */
struct vtab_options {
    char *path;         /* sqlite3_malloc'ed; required */
    uint64_t size, max_size, ttl_ms;
    bool cache, readonly;
};

/* Parse "name=value" arguments (values optionally quoted '...' or "...").
 * Returns 0, or -1 with *err set (sqlite3_mprintf) naming the bad option;
 * opt is then already freed. */
int vtab_parse_options(int argc, const char *const *argv, struct vtab_options *opt, char **err);
void vtab_free_options(struct vtab_options *opt);

/* Register the eponymous table-valued function hashmmap_stats(path). */
int stats_vtab_register(sqlite3 *db);

#endif
