/*
 * options.c - the arguments of CREATE VIRTUAL TABLE t USING hashmmap(...).
 *
 * SQLite hands each argument over as the raw text between the commas, so
 * quoting is ours to undo.  Sizes and durations take the same unit
 * suffixes as the hashmmap command-line tool.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite-vtab/vtab.h"

SQLITE_EXTENSION_INIT3

struct unit {
    const char *suffix;
    double factor;
};

static const struct unit size_units[] = {
    {"", 1}, {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0},
    {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {NULL, 0}};
static const struct unit duration_units_ms[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3}, {NULL, 0}};

/* A non-negative number with one of units' suffixes (case-insensitive). */
static int parse_with_unit(const char *s, const struct unit *units, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0))
        return -1;
    for (const struct unit *u = units; u->suffix; u++) {
        if (strcasecmp(end, u->suffix) != 0)
            continue;
        double x = v * u->factor;
        if (x >= 1.8e19)
            return -1;
        *out = (uint64_t)llround(x);
        return 0;
    }
    return -1;
}

static int parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0)
        *out = true;
    else if (strcmp(s, "0") == 0 || strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

/* Copy [s, e) without surrounding blanks and one level of '...' or "..."
 * quotes (a doubled quote inside stands for one). */
static char *unquote(const char *s, const char *e)
{
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    char q = (e - s >= 2 && (*s == '\'' || *s == '"') && e[-1] == *s) ? *s : 0;
    if (q) {
        s++;
        e--;
    }
    char *out = sqlite3_malloc64((sqlite3_uint64)(e - s) + 1), *o = out;
    if (!out)
        return NULL;
    for (; s < e; s++) {
        *o++ = *s;
        if (q && *s == q && s + 1 < e && s[1] == q)
            s++;
    }
    *o = '\0';
    return out;
}

void vtab_free_options(struct vtab_options *opt)
{
    sqlite3_free(opt->path);
    opt->path = NULL;
}

static int apply_option(const char *name, const char *value, struct vtab_options *opt)
{
    if (strcmp(name, "path") == 0) {
        if (!*value)
            return -1;
        sqlite3_free(opt->path);
        opt->path = sqlite3_mprintf("%s", value);
        return opt->path ? 0 : -1;
    }
    if (strcmp(name, "size") == 0)
        return parse_with_unit(value, size_units, &opt->size);
    if (strcmp(name, "max_size") == 0)
        return parse_with_unit(value, size_units, &opt->max_size);
    if (strcmp(name, "ttl") == 0)
        return parse_with_unit(value, duration_units_ms, &opt->ttl_ms);
    if (strcmp(name, "cache") == 0)
        return parse_bool(value, &opt->cache);
    if (strcmp(name, "readonly") == 0)
        return parse_bool(value, &opt->readonly);
    return -2;
}

int vtab_parse_options(int argc, const char *const *argv, struct vtab_options *opt, char **err)
{
    char *name = NULL, *value = NULL;
    memset(opt, 0, sizeof *opt);
    for (int i = 0; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq) {
            *err = sqlite3_mprintf("hashmmap: option '%s' is not name=value", argv[i]);
            goto fail;
        }
        name = unquote(argv[i], eq);
        value = unquote(eq + 1, eq + strlen(eq));
        if (!name || !value) {
            *err = sqlite3_mprintf("hashmmap: out of memory");
            goto fail;
        }
        int rc = apply_option(name, value, opt);
        if (rc == -2) {
            *err = sqlite3_mprintf("hashmmap: unknown option '%s' (known: path, size, max_size, cache, "
                                   "ttl, readonly)", name);
            goto fail;
        }
        if (rc) {
            *err = sqlite3_mprintf("hashmmap: bad value '%s' for option %s", value, name);
            goto fail;
        }
        sqlite3_free(name);
        sqlite3_free(value);
        name = value = NULL;
    }
    if (!opt->path) {
        *err = sqlite3_mprintf("hashmmap: missing option path='DIR' (the map's directory)");
        goto fail;
    }
    return 0;
fail:
    sqlite3_free(name);
    sqlite3_free(value);
    vtab_free_options(opt);
    return -1;
}
