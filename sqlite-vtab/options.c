/*
 * options.c - the arguments of CREATE VIRTUAL TABLE t USING hashmmap(...).
 *
 * SQLite hands each argument over as the raw text between the commas, so
 * quoting is ours to undo.  Sizes and durations go through the parser of
 * the command-line tools (tools/units.h: 64M, 1.5GiB, 500ms, 30s, a bare
 * duration being seconds), so an option means what the tools' flag means.  An option that would not do what it says is an error, never
 * silently adjusted: the library's own clamps (size at least 256K,
 * max_value at least 1M) are refused here with the reason.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite-vtab/vtab.h"
#include "tools/units.h"

#define MIN_SIZE_BYTES HMM_SIZE_MIN /* the library's smallest data area */

SQLITE_EXTENSION_INIT3

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

/* The option called name: its OPT_ bit, or 0 when unknown. */
static unsigned option_bit(const char *name)
{
    static const struct { const char *name; unsigned bit; } known[] = {
        {"path", OPT_PATH}, {"size", OPT_SIZE}, {"max_size", OPT_MAX_SIZE}, {"ttl", OPT_TTL},
        {"cache", OPT_CACHE}, {"readonly", OPT_READONLY}, {"max_value", OPT_MAX_VALUE}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i].name) == 0)
            return known[i].bit;
    return 0;
}

static int apply_option(unsigned bit, const char *value, struct vtab_options *opt)
{
    switch (bit) {
    case OPT_PATH:
        if (!*value)
            return -1;
        opt->path = sqlite3_mprintf("%s", value);
        return opt->path ? 0 : -1;
    case OPT_SIZE: return units_parse_size(value, &opt->size);
    case OPT_MAX_SIZE: return units_parse_size(value, &opt->max_size);
    case OPT_MAX_VALUE: return units_parse_size(value, &opt->max_value);
    case OPT_TTL: return units_parse_duration_ms(value, &opt->ttl_ms);
    case OPT_CACHE: return parse_bool(value, &opt->cache);
    default: return parse_bool(value, &opt->readonly);
    }
}

/* Options that contradict each other, or that the library would quietly
 * change: the message says why. */
static char *options_conflict(const struct vtab_options *o)
{
    if (!o->path)
        return sqlite3_mprintf("hashmmap: missing option path='DIR' (the map's directory)");
    if ((o->given & OPT_SIZE) && o->size < MIN_SIZE_BYTES)
        return sqlite3_mprintf("hashmmap: size=%llu is below the smallest map, 256K",
                               (unsigned long long)o->size);
    if ((o->given & OPT_MAX_SIZE) && o->max_size < (o->given & OPT_SIZE ? o->size : MIN_SIZE_BYTES))
        return sqlite3_mprintf("hashmmap: max_size=%llu is below size=%llu (the map could never grow)",
                               (unsigned long long)o->max_size,
                               (unsigned long long)(o->given & OPT_SIZE ? o->size : MIN_SIZE_BYTES));
    if ((o->given & OPT_MAX_VALUE) && (o->max_value < HMM_MIN_MAX_VALUE || o->max_value > HMM_MAX_VALUE_MAX))
        /* The library's limit is one byte under 2G: say so exactly, or
         * max_value='2G' would be refused as "outside 1M..2G". */
        return sqlite3_mprintf("hashmmap: max_value=%llu is outside 1M..2G-1 (%u..%u bytes)",
                               (unsigned long long)o->max_value, HMM_MIN_MAX_VALUE, HMM_MAX_VALUE_MAX);
    if ((o->given & OPT_TTL) && o->ttl_ms == 0)
        return sqlite3_mprintf("hashmmap: ttl=0 is no TTL: leave the option out");
    if (o->readonly && (o->given & OPT_CREATION))
        return sqlite3_mprintf("hashmmap: readonly=1 opens an existing map: size, max_size, max_value, cache "
                               "and ttl only apply when a map is created");
    return NULL;
}

/* Fail: the option is given a second time. */
static char *repeated(const char *name)
{
    return sqlite3_mprintf("hashmmap: option %s given twice", name);
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
        unsigned bit = option_bit(name);
        if (!bit) {
            *err = sqlite3_mprintf("hashmmap: unknown option '%s' (known: path, size, max_size, max_value, "
                                   "cache, ttl, readonly)", name);
            goto fail;
        }
        if (opt->given & bit) {
            *err = repeated(name);
            goto fail;
        }
        opt->given |= bit;
        if (apply_option(bit, value, opt) != 0) {
            *err = sqlite3_mprintf("hashmmap: bad value '%s' for option %s", value, name);
            goto fail;
        }
        sqlite3_free(name);
        sqlite3_free(value);
        name = value = NULL;
    }
    *err = options_conflict(opt);
    if (*err)
        goto fail;
    return 0;
fail:
    sqlite3_free(name);
    sqlite3_free(value);
    vtab_free_options(opt);
    return -1;
}

/* One creation option against what the map has. */
static char *differs(const char *name, uint64_t asked, uint64_t has, const char *path)
{
    return sqlite3_mprintf("hashmmap: map '%s' exists with %s=%llu, not %llu: creation options cannot change "
                           "an existing map (leave %s out, or give what it has)",
                           path, name, (unsigned long long)has, (unsigned long long)asked, name);
}

int vtab_check_existing(const struct vtab_options *opt, const hmm_stats *st, const char *path, char **err)
{
    unsigned g = opt->given;
    if ((g & OPT_SIZE) && opt->size != st->size)
        *err = differs("size", opt->size, st->size, path);
    else if ((g & OPT_MAX_SIZE) && opt->max_size != st->max_size)
        *err = differs("max_size", opt->max_size, st->max_size, path);
    else if ((g & OPT_MAX_VALUE) && opt->max_value != st->max_value)
        *err = differs("max_value", opt->max_value, st->max_value, path);
    else if ((g & OPT_TTL) && opt->ttl_ms != st->default_ttl_ms)
        *err = sqlite3_mprintf("hashmmap: map '%s' exists with ttl=%llums, not %llums: creation options cannot "
                               "change an existing map (leave ttl out, or give what it has)", path,
                               (unsigned long long)st->default_ttl_ms, (unsigned long long)opt->ttl_ms);
    else if ((g & OPT_CACHE) && opt->cache != !!(st->flags & HMM_CACHE))
        *err = sqlite3_mprintf("hashmmap: map '%s' exists %s cache mode: cache=%d cannot change that", path,
                               (st->flags & HMM_CACHE) ? "in" : "without", opt->cache);
    else
        return 0;
    return -1;
}
