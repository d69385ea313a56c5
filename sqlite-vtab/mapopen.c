/*
 * mapopen.c - which map a table names, and opening it (vtab.h).
 *
 * Only CREATE VIRTUAL TABLE creates a map.  A table that is only connected
 * (a database opened again, from wherever) opens the map its path= names,
 * resolved against the database file's directory, and never creates one:
 * a map removed or moved is an error, not a new empty map.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlite-vtab/vtab.h"
#include "tools/errtext.h"

SQLITE_EXTENSION_INIT3

char *vtab_resolve_path(sqlite3 *db, const char *schema, const char *path)
{
    if (path[0] == '/')
        return sqlite3_mprintf("%s", path);
    const char *file = sqlite3_db_filename(db, schema);
    if (file && *file) {
        /* SQLite gives the file's full path name. */
        const char *slash = strrchr(file, '/');
        if (slash)
            return sqlite3_mprintf("%.*s/%s", (int)(slash - file), file, path);
    }
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return sqlite3_mprintf("%s", path); /* no better anchor: as given */
    return sqlite3_mprintf("%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
}

/* Could a map be made at dir?  Missing, or an empty directory: yes.  A
 * directory with other files in it is somebody else's. */
static int dir_is_free(const char *dir, char **err)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? 0 : -1; /* other errors: hmm_open says which */
    if (!S_ISDIR(st.st_mode))
        return 0; /* hmm_open reports "not a directory" */
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            *err = sqlite3_mprintf("hashmmap: '%s' is a directory with other files and no map in it: "
                                   "a new map goes into a new or empty directory", dir);
            closedir(d);
            return 1;
        }
    }
    closedir(d);
    return 0;
}

static char *open_error(const char *what, const char *dir, int rc)
{
    char text[ERRTEXT_MAX];
    return sqlite3_mprintf("hashmmap: %s '%s': %s", what, dir, errtext(rc, text, sizeof text));
}

/* CREATE VIRTUAL TABLE on an existing map: creation options must agree. */
static int check_existing(const struct vtab_options *opt, const char *dir, hmm_t *map, char **err)
{
    hmm_stats st;
    if (!(opt->given & OPT_CREATION))
        return SQLITE_OK;
    int rc = hmm_stat(map, &st);
    if (rc) {
        *err = open_error("cannot read the settings of map", dir, rc);
        return SQLITE_ERROR;
    }
    return vtab_check_existing(opt, &st, dir, err) == 0 ? SQLITE_OK : SQLITE_ERROR;
}

static int create_map(const struct vtab_options *opt, const char *dir, hmm_t **map, char **err)
{
    if (dir_is_free(dir, err) > 0)
        return SQLITE_ERROR;
    hmm_config cfg = {.size = opt->size, .max_size = opt->max_size, .default_ttl_ms = opt->ttl_ms,
                      .max_value = (uint32_t)opt->max_value,
                      .flags = HMM_CREATE | (opt->cache ? HMM_CACHE : 0)};
    int rc = hmm_open(map, dir, &cfg);
    if (rc) {
        *err = open_error("cannot create map", dir, rc);
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

int vtab_open_map(const struct vtab_options *opt, const char *dir, bool create, hmm_t **map, char **err)
{
    hmm_config cfg = {.flags = opt->readonly ? HMM_RDONLY : 0};
    int rc = hmm_open(map, dir, &cfg);
    if (rc == 0) {
        rc = create ? check_existing(opt, dir, *map, err) : SQLITE_OK;
        if (rc != SQLITE_OK) {
            hmm_close(*map);
            *map = NULL;
        }
        return rc;
    }
    if (rc == -ENOENT && create && !opt->readonly)
        return create_map(opt, dir, map, err);
    if (rc == -ENOENT)
        *err = sqlite3_mprintf("hashmmap: map '%s' does not exist%s", dir,
                               create ? " (readonly=1 opens an existing map, it never creates one)"
                                      : " (removed or moved?): only CREATE VIRTUAL TABLE makes a map");
    else
        *err = open_error("cannot open map", dir, rc);
    return SQLITE_ERROR;
}
