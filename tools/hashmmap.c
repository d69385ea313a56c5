/*
 * hashmmap - command-line access to a hashmmap map.
 *
 *   hashmmap create DIR [--size 64M] [--max-size 1G] [--cache | --inline] [--ttl 30s]
 *   hashmmap put DIR KEY VALUE [--ttl 10s] [--nx|--xx]
 *   hashmmap get DIR KEY...       hashmmap del DIR KEY
 *   hashmmap incr DIR KEY [DELTA] hashmmap dump DIR > file
 *   hashmmap load DIR < file      hashmmap info DIR [--json]
 *   hashmmap check DIR [--repair]
 *
 * Exit status: 0 success; 1 key not found (get, del) or problems found
 * (check); 2 usage error; 3 any other error.  Errors are one line on stderr.
 * Read-only commands open the map read-only and never write its files.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hashmmap.h>

#include "tools/bus_error.h"
#include "tools/clock.h"
#include "tools/errtext.h"
#include "tools/jsonl.h"
#include "tools/units.h"

enum { EXIT_OK = 0, EXIT_NOTFOUND = 1, EXIT_USAGE = 2, EXIT_ERROR = 3 };

/* What the checks and parsers return to go on; anything else is the exit
 * status to stop with. */
#define CONTINUE (-1)

/* The command being run, for messages; NULL before it is known. */
static const char *command;

struct options {
    uint64_t size, max_size, ttl_ms, max_value, replog_size;
    unsigned mode;
    bool cache, nx, xx, json, repair, no_replog, inline_copies;
};

static void usage(FILE *out);
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hashmmap: ", stderr);
    if (command)
        fprintf(stderr, "%s: ", command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try 'hashmmap --help')\n");
    va_end(ap);
    return EXIT_USAGE;
}

/* One line: what failed, the library's sentence and its detail. */
static int fail(const char *what, int rc)
{
    char text[ERRTEXT_MAX];
    fprintf(stderr, "hashmmap: %s: %s: %s\n", command, what, errtext(rc, text, sizeof text));
    return rc == HMM_NOTFOUND ? EXIT_NOTFOUND : EXIT_ERROR;
}

/* fail() about a key, shortened to what a message line can show. */
static int fail_key(const char *key, int rc)
{
    char shown[ERRTEXT_KEY_MAX];
    return fail(errtext_key(key, strlen(key), shown, sizeof shown), rc);
}

static int open_map(hmm_t **m, const char *dir, bool rdonly)
{
    hmm_config cfg = {.flags = rdonly ? HMM_RDONLY : 0};
    int rc = hmm_open(m, dir, &cfg);
    if (rc == -ENOENT)
        fprintf(stderr, "hashmmap: %s: %s: no map here (create it with 'hashmmap create %s')\n", command, dir, dir);
    else if (rc)
        fail(dir, rc);
    return rc;
}

/* What a command works on: the map (opened by the table's access; create
 * opens its own), DIR and the arguments after it, and the options. */
struct invocation {
    hmm_t *m;
    const char *dir;
    char **args; /* args[0] is DIR */
    int nargs;
    struct options o;
    const char *given[128]; /* by option letter: the argument that gave it, NULL not given */
};

/* The value of key, however long, in a buffer of its own (free it): tried
 * first with *vlen bytes of room, then with the room the value needs. */
static int get_whole_value(hmm_t *m, const char *key, char **val, size_t *vlen)
{
    char *buf = NULL;
    int rc;
    do {
        char *nb = realloc(buf, *vlen ? *vlen : 1);
        if (!nb) {
            rc = -ENOMEM;
            break;
        }
        buf = nb;
        rc = hmm_get(m, key, strlen(key), buf, vlen);
    } while (rc == HMM_TOOSMALL);
    if (rc) {
        free(buf);
        buf = NULL;
    }
    *val = buf;
    return rc;
}

static int cmd_get_one(hmm_t *m, const char *key)
{
    char *val;
    size_t len = 4096;
    int rc = get_whole_value(m, key, &val, &len);
    if (rc)
        return fail_key(key, rc);
    fwrite(val, 1, len, stdout);
    putchar('\n');
    free(val);
    return EXIT_OK;
}

/* One key's line of a batch: KEY<tab>VALUE, or its failure on stderr. */
static int print_batch_result(hmm_t *m, const char *key, int rc, const void *val, size_t vlen)
{
    char *big = NULL;
    if (rc == HMM_TOOSMALL) /* larger than the batch's room: again, alone */
        rc = get_whole_value(m, key, &big, &vlen);
    if (rc)
        return fail_key(key, rc);
    printf("%s\t", key);
    fwrite(big ? big : val, 1, vlen, stdout);
    putchar('\n');
    free(big);
    return EXIT_OK;
}

/* get DIR KEY KEY...: one hmm_get_batch, then a line KEY<tab>VALUE per key
 * found, in the order given; a missing key is a line on stderr and makes
 * the exit status 1. */
static int cmd_get_many(hmm_t *m, char **keys, size_t n)
{
    enum { CAP = 4096 };
    size_t *klens = calloc(n, sizeof *klens), *vlens = calloc(n, sizeof *vlens);
    void **vals = calloc(n, sizeof *vals);
    int *rcs = calloc(n, sizeof *rcs);
    char *bufs = malloc(n * CAP);
    int status = EXIT_OK, rc = -ENOMEM;
    if (klens && vlens && vals && rcs && bufs) {
        for (size_t i = 0; i < n; i++) {
            klens[i] = strlen(keys[i]);
            vals[i] = bufs + i * CAP;
            vlens[i] = CAP;
        }
        rc = hmm_get_batch(m, n, (const void *const *)keys, klens, vals, vlens, rcs, NULL);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int st = print_batch_result(m, keys[i], rcs[i], vals[i], vlens[i]);
        if (status != EXIT_ERROR && st != EXIT_OK)
            status = st;
    }
    if (rc)
        status = fail("get", rc);
    free(klens);
    free(vlens);
    free(vals);
    free(rcs);
    free(bufs);
    return status;
}

static int cmd_get(const struct invocation *in)
{
    if (in->nargs > 2)
        return cmd_get_many(in->m, in->args + 1, (size_t)in->nargs - 1);
    return cmd_get_one(in->m, in->args[1]);
}

/* hmm_config.size when --size is left out (hashmmap.h: "0 = 64 MiB"). */
#define CREATE_DEFAULT_SIZE (UINT64_C(64) << 20)

/* What the library would silently replace or ignore is refused rather
 * than done behind the user's back; a --max-value under the minimum, which
 * hashmmap.h documents as raised, is done and said. */
static int check_create_options(const struct options *o)
{
    uint64_t size = o->size ? o->size : CREATE_DEFAULT_SIZE;
    if (o->max_size && o->max_size < size) /* the library would make it the size */
        return usage_error("--max-size (%" PRIu64 " bytes) is smaller than %s (%" PRIu64 " bytes)", o->max_size,
                           o->size ? "--size" : "the default size", size);
    if (o->no_replog && o->replog_size)
        return usage_error("%s", "--no-replog and --replog-size exclude each other");
    if (o->cache && o->inline_copies)
        return usage_error("%s", "--cache and --inline exclude each other (a cache's gets mark the entry itself)");
    if (o->max_value && o->max_value < HMM_MIN_MAX_VALUE)
        fprintf(stderr, "hashmmap: create: note: --max-value %" PRIu64
                        " bytes is under the minimum: values may be up to %u bytes\n", o->max_value, HMM_MIN_MAX_VALUE);
    return CONTINUE;
}

static int cmd_create(const struct invocation *in)
{
    const struct options *o = &in->o;
    int status = check_create_options(o);
    if (status != CONTINUE)
        return status;
    hmm_config cfg = {.size = o->size, .max_size = o->max_size, .mode = o->mode, .default_ttl_ms = o->ttl_ms,
                      .max_value = (uint32_t)o->max_value, .replog_size = o->replog_size,
                      .flags = HMM_CREATE | HMM_EXCL | (o->cache ? HMM_CACHE : 0) | (o->no_replog ? HMM_NOREPLOG : 0) |
                               (o->inline_copies ? HMM_INLINE : 0)};
    hmm_t *m;
    int rc = hmm_open(&m, in->dir, &cfg);
    if (rc == HMM_EXISTS) { /* its sentence, "key already exists", is about keys */
        fprintf(stderr, "hashmmap: create: %s already holds a map\n", in->dir);
        return EXIT_ERROR;
    }
    if (rc)
        return fail(in->dir, rc);
    hmm_stats st;
    hmm_stat(m, &st);
    printf("created %s: %" PRIu64 " bytes for entries%s%s\n", in->dir, st.size,
           st.max_size > st.size ? ", growing as needed" : "",
           o->cache ? ", cache mode" : o->inline_copies ? ", short entries copied into the index (format 2)" : "");
    hmm_close(m);
    return EXIT_OK;
}

static int cmd_put(const struct invocation *in)
{
    const char *key = in->args[1], *val = in->args[2];
    int rc = hmm_put(in->m, key, strlen(key), val, strlen(val), in->o.ttl_ms,
                     in->o.nx ? HMM_NX : in->o.xx ? HMM_XX : 0);
    if (rc == 0)
        return EXIT_OK;
    int status = fail_key(key, rc);
    return rc == HMM_EXISTS ? EXIT_NOTFOUND : status; /* --nx meeting a key exits as --xx meeting none */
}

static int cmd_del(const struct invocation *in)
{
    int rc = hmm_del(in->m, in->args[1], strlen(in->args[1]));
    return rc ? fail_key(in->args[1], rc) : EXIT_OK;
}

/* The counter under key, when its value is one: the decimal int64 in
 * ASCII that hmm_incr takes (hashmmap.h), a sign or a digit first and
 * nothing after the digits, so at most 20 characters. */
static bool read_counter(hmm_t *m, const char *key, int64_t *value)
{
    char text[24], *end;
    size_t len = sizeof text - 1; /* a longer value (HMM_TOOSMALL) is no counter */
    if (hmm_get(m, key, strlen(key), text, &len) != 0)
        return false;
    text[len] = '\0';
    bool signed_or_digit = text[0] == '-' || text[0] == '+' || (text[0] >= '0' && text[0] <= '9');
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!signed_or_digit || errno || *end)
        return false;
    *value = v;
    return true;
}

/* hmm_incr says HMM_NOTNUM both for a value that is no counter and for a
 * sum past 64 bits; the value, read again, tells which.  (A writer in
 * between can make the wording stale, never the exit status.) */
static int fail_incr(const struct invocation *in, int64_t delta, int rc)
{
    char shown[ERRTEXT_KEY_MAX];
    int64_t old;
    if (rc != HMM_NOTNUM || !read_counter(in->m, in->args[1], &old))
        return fail_key(in->args[1], rc);
    fprintf(stderr, "hashmmap: incr: %s: the counter would overflow: %" PRId64 " %s %" PRIu64
            " is outside the 64-bit range\n", errtext_key(in->args[1], strlen(in->args[1]), shown, sizeof shown),
            old, delta < 0 ? "-" : "+", delta < 0 ? -(uint64_t)delta : (uint64_t)delta);
    return EXIT_ERROR;
}

static int cmd_incr(const struct invocation *in)
{
    int64_t delta = 1, result;
    if (in->nargs == 3) {
        const char *text = in->args[2];
        char *end;
        errno = 0;
        delta = strtoll(text, &end, 10);
        /* A sign or a digit first: strtoll also skips blanks. */
        bool signed_or_digit = text[0] == '-' || text[0] == '+' || (text[0] >= '0' && text[0] <= '9');
        if (!signed_or_digit || errno || *end || end == text)
            return usage_error("DELTA '%s' is not a 64-bit integer", in->args[2]);
    }
    int rc = hmm_incr(in->m, in->args[1], strlen(in->args[1]), delta, &result);
    if (rc)
        return fail_incr(in, delta, rc);
    printf("%" PRId64 "\n", result);
    return EXIT_OK;
}

/* ---- dump and load (the JSON lines format is in jsonl.c) ---- */

static int cmd_dump(const struct invocation *in)
{
    hmm_t *m = in->m;
    hmm_cursor *c;
    int rc = hmm_cursor_open(m, &c);
    if (rc)
        return fail("dump", rc);
    const void *k, *v;
    size_t kl, vl;
    uint64_t now_ms = wall_clock_ms();
    while ((rc = hmm_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
        hmm_entry_info info;
        hmm_cursor_info(c, &info);
        putchar('{');
        jsonl_put_field(stdout, "key", k, kl);
        putchar(',');
        jsonl_put_field(stdout, "value", v, vl);
        if (info.expire_ms)
            printf(",\"ttl_ms\":%" PRIu64, info.expire_ms > now_ms ? info.expire_ms - now_ms : 1);
        if (info.tag)
            printf(",\"tag\":%u", info.tag);
        fputs("}\n", stdout);
    }
    hmm_cursor_close(c);
    if (rc != HMM_NOTFOUND)
        return fail("dump", rc);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_ERROR;
}

static int cmd_load(const struct invocation *in)
{
    hmm_t *m = in->m;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long lineno = 0, loaded = 0;
    struct jsonl_parser ps = {0};
    int status = EXIT_OK;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        if (n == 1 && line[0] == '\n')
            continue;
        struct jsonl_record r = {0};
        if (!jsonl_parse_record(line, &r, &ps)) {
            fprintf(stderr, "hashmmap: load: line %lu: not a dump record: %s\n", lineno, ps.error);
            status = EXIT_ERROR;
        } else {
            int rc = hmm_put_tagged(m, r.key, r.klen, r.val, r.vlen, r.ttl_ms, 0, r.tag);
            if (rc) {
                char what[64];
                snprintf(what, sizeof what, "line %lu", lineno);
                status = fail(what, rc);
            } else {
                loaded++;
            }
        }
        jsonl_record_free(&r);
        if (status != EXIT_OK)
            break;
    }
    free(line);
    free(ps.buf);
    fprintf(stderr, "hashmmap: load: %lu entries loaded\n", loaded);
    return status;
}

/* Processes `info` lists: a screenful (the map's table holds 512). */
#define INFO_PROCS_MAX 64

/* ms since the epoch as "2026-12-03 10:05:07 UTC". */
static const char *utc_text(char *buf, size_t cap, uint64_t ms)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    if (!ms || !gmtime_r(&sec, &tm) || !strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, cap, "unknown");
    return buf;
}

/* info's lines on when the map and its log were made. */
static void print_replog(const hmm_stats *st, const struct hmm_replog_info *log)
{
    char made[32], log_made[32];
    printf("created        %s\n", utc_text(made, sizeof made, st->created_ms));
    if (log) {
        printf("replog         sequence numbers %" PRIu64 "..%" PRIu64 " in a %" PRIu64 "-byte ring, made %s\n",
               log->first_seq, log->last_seq, log->capacity, utc_text(log_made, sizeof log_made, log->created_ms));
        /* A log made after its map replaced a lost or damaged one (FORMAT.md
         * §13): a replica that was behind it cannot catch up from it. */
        if (log->created_ms > st->created_ms + 1000)
            printf("               made after the map: the log was replaced, and replicas behind it resync\n");
    } else if (st->flags & HMM_NOREPLOG) {
        printf("replog         none (created with HMM_NOREPLOG)\n");
    } else {
        printf("replog         missing or damaged: the next writer makes a new one, and replicas resync\n");
    }
}

static int cmd_info(const struct invocation *in)
{
    hmm_t *m = in->m;
    const char *dir = in->dir;
    bool json = in->o.json;
    hmm_stats st;
    int rc = hmm_stat(m, &st);
    if (rc)
        return fail("info", rc);
    hmm_proc_info procs[INFO_PROCS_MAX];
    size_t np = 0;
    hmm_procs(m, procs, INFO_PROCS_MAX, &np);
    if (np > INFO_PROCS_MAX)
        np = INFO_PROCS_MAX;
    double fill = st.bytes_total ? 100.0 * (double)st.bytes_used / (double)st.bytes_total : 0;
    double ifill = st.index_slots ? 100.0 * (double)st.items / (double)st.index_slots : 0;
    struct hmm_replog_info log;
    bool has_log = hmm_replog_info(m, &log) == 0;
    hmm_role_info role; /* replication role (issue 19) */
    if (hmm_role_get(m, &role))
        memset(&role, 0, sizeof role);
    if (json) {
        printf("{\"dir\":\"%s\",\"format_version\":%u,\"cache\":%s,\"items\":%" PRIu64 ",\"bytes_used\":%" PRIu64
               ",\"bytes_total\":%" PRIu64 ",\"fill_pct\":%.1f,\"size\":%" PRIu64 ",\"max_size\":%" PRIu64
               ",\"file_size\":%" PRIu64 ",\"index_slots\":%" PRIu64 ",\"page_size\":%u,\"stripes\":%u"
               ",\"classes\":%u,\"generation\":%" PRIu64 ",\"recoveries\":%" PRIu64 ",\"max_value\":%u"
               ",\"default_ttl_ms\":%" PRIu64 ",\"role\":\"%s\",\"epoch\":%" PRIu64 ",\"primary\":\"%s\""
               ",\"processes\":[",
               dir, st.format_version, st.flags & HMM_CACHE ? "true" : "false", st.items, st.bytes_used,
               st.bytes_total, fill, st.size, st.max_size, st.file_size, st.index_slots, st.page_size, st.nstripes,
               st.nclasses, st.generation, st.recoveries, st.max_value, st.default_ttl_ms,
               role.role == HMM_ROLE_REPLICA ? "replica" : "primary", role.epoch, role.primary);
        for (size_t i = 0; i < np; i++)
            printf("%s{\"pid\":%" PRId64 ",\"alive\":%s}", i ? "," : "", procs[i].pid,
                   procs[i].alive ? "true" : "false");
        if (has_log)
            printf("],\"created_ms\":%" PRIu64 ",\"replog\":{\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
                   ",\"capacity\":%" PRIu64 ",\"created_ms\":%" PRIu64 "}}\n",
                   st.created_ms, log.first_seq, log.last_seq, log.capacity, log.created_ms);
        else
            printf("],\"created_ms\":%" PRIu64 ",\"replog\":null,\"replog_missing\":%s}\n", st.created_ms,
                   st.flags & HMM_NOREPLOG ? "false" : "true");
        return EXIT_OK;
    }
    printf("map            %s\n", dir);
    printf("format         version %u%s\n", st.format_version,
           st.flags & HMM_CACHE    ? ", cache mode"
           : st.flags & HMM_INLINE ? ", short entries copied into the index (HMM_INLINE)"
                                   : "");
    printf("entries        %" PRIu64 "\n", st.items);
    printf("fill           %.1f%% of the data area (%" PRIu64 " of %" PRIu64 " bytes), index %.1f%% of %" PRIu64
           " slots\n", fill, st.bytes_used, st.bytes_total, ifill, st.index_slots);
    printf("size           %" PRIu64 " bytes at creation, grows to %" PRIu64 ", file now %" PRIu64 "\n", st.size,
           st.max_size, st.file_size);
    printf("layout         %u-byte pages, %u size classes, %u lock stripes, generation %" PRIu64 "\n",
           st.page_size, st.nclasses, st.nstripes, st.generation);
    printf("limits         keys up to %u bytes, values up to %u bytes, default TTL %" PRIu64 " ms\n", st.max_key,
           st.max_value, st.default_ttl_ms);
    printf("recoveries     %" PRIu64 "\n", st.recoveries);
    if (role.role == HMM_ROLE_REPLICA)
        printf("role           replica of %s, epoch %" PRIu64 " (read-only but for its daemon)\n",
               role.primary[0] ? role.primary : "?", role.epoch);
    else
        printf("role           primary, epoch %" PRIu64 "\n", role.epoch);
    print_replog(&st, has_log ? &log : NULL);
    printf("open by        %zu process%s", np, np == 1 ? "" : "es");
    for (size_t i = 0; i < np; i++)
        printf("%s %" PRId64 "%s", i ? "," : ":", procs[i].pid, procs[i].alive ? "" : " (dead)");
    putchar('\n');
    return EXIT_OK;
}

static int cmd_check(const struct invocation *in)
{
    hmm_t *m = in->m;
    bool repair = in->o.repair;
    hmm_check_result r;
    int rc = hmm_check(m, repair ? HMM_CHECK_REPAIR : 0, &r);
    printf("entries        %" PRIu64 "\nbad entries    %" PRIu64 "\nbad slots      %" PRIu64
           "\nunreachable    %" PRIu64 "\nfree chunks    %" PRIu64 "\nrepaired       %" PRIu64 "\n",
           r.entries, r.bad_entries, r.bad_slots, r.unreachable, r.free_chunks, r.repaired);
    if (rc == 0) {
        printf("the map is sound\n");
        return EXIT_OK;
    }
    if (rc == HMM_CORRUPT) {
        printf("problems remain%s\n", repair ? "" : " (run 'hashmmap check --repair DIR')");
        if (repair) /* why: what could not be repaired, or a repair refused */
            fprintf(stderr, "hashmmap: check: %s\n", hmm_last_error());
        return EXIT_NOTFOUND;
    }
    return fail("check", rc);
}


/* ---- the command table ---- */

enum access {
    ACCESS_NONE,      /* the command opens the map itself (create) */
    ACCESS_READ,      /* opened read-only: never writes a byte of the files */
    ACCESS_WRITE,
    ACCESS_REPAIR,    /* read-only, unless --repair asks to drop damaged entries */
};

static const struct command {
    const char *name;
    const char *synopsis, *summary; /* for --help */
    int min_args, max_args;         /* DIR included */
    int nkeys;                      /* arguments after DIR that are keys */
    const char *options;            /* the letters of long_options it takes (--help ends the parse first) */
    enum access access;
    int (*run)(const struct invocation *in);
} commands[] = {
    {"create", "create DIR [--size 64M] [--max-size 1G] [--cache | --inline] [--ttl 30s] [--mode 0600]\n"
               "             [--max-value 1M] [--replog-size 16M | --no-replog]",
     "create a map (sizes like 64M or 1.5GiB, durations like 30s or 500ms, bare = seconds; --inline: gets of\n"
     "             keys up to 16 bytes with values up to 8 read one cache line, for about 30 bytes more an entry)",
     1, 1, 0, "sSctmMLNi",
     ACCESS_NONE, cmd_create},
    {"put", "put DIR KEY VALUE [--ttl 10s] [--nx | --xx]",
     "store a value (--nx: only if absent, --xx: only if present)", 3, 3, 1, "tnx", ACCESS_WRITE, cmd_put},
    {"get", "get DIR KEY...",
     "print the value; with several keys (looked up in one batch),\n"
     "                          a line KEY<tab>VALUE per key found", 2, INT_MAX, INT_MAX, "", ACCESS_READ, cmd_get},
    {"del", "del DIR KEY", "delete a key", 2, 2, 1, "", ACCESS_WRITE, cmd_del},
    {"incr", "incr DIR KEY [DELTA]", "add DELTA (default 1) to a counter and print it", 2, 3, 1, "", ACCESS_WRITE,
     cmd_incr},
    {"dump", "dump DIR", "print every entry as a JSON line {\"key\":...,\"value\":...}", 1, 1, 0, "", ACCESS_READ,
     cmd_dump},
    {"load", "load DIR", "store the JSON lines of a dump read from standard input", 1, 1, 0, "", ACCESS_WRITE,
     cmd_load},
    {"info", "info DIR [--json]", "sizes, fill, format, and the processes that have the map open", 1, 1,
     0, "j", ACCESS_READ, cmd_info},
    {"check", "check DIR [--repair]", "verify every entry; --repair drops damaged ones", 1, 1, 0, "r",
     ACCESS_REPAIR, cmd_check},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "Usage: hashmmap COMMAND DIR [ARGS] [OPTIONS]\n"
                 "Use the hashmmap map kept in directory DIR.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *c = &commands[i];
        if (strlen(c->synopsis) < 24)
            fprintf(out, "  %-23s %s\n", c->synopsis, c->summary);
        else
            fprintf(out, "  %s\n%26s%s\n", c->synopsis, "", c->summary);
    }
    fprintf(out, "\n"
                 "Examples:\n"
                 "  hashmmap create /var/lib/app/offsets --size 16M --max-size 1G\n"
                 "  hashmmap put /var/lib/app/offsets orders/3 1042\n"
                 "  hashmmap incr /var/lib/app/offsets hits\n"
                 "  hashmmap get /var/lib/app/offsets orders/1 orders/2 orders/3\n"
                 "  hashmmap dump /var/lib/app/offsets | hashmmap load /srv/copy\n"
                 "\n"
                 "Exit status: 0 success, 1 key not found or problems found, 2 usage error, 3 other errors.\n");
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(name, commands[i].name) == 0)
            return &commands[i];
    return NULL;
}

/* An empty or overlong key is bad input: the library refuses it, but as
 * a failure (exit 3), and an empty one in words about NULL pointers. */
static int check_keys(const struct command *c, const struct invocation *in)
{
    for (int i = 1; i <= c->nkeys && i < in->nargs; i++) {
        size_t len = strlen(in->args[i]);
        if (len == 0)
            return usage_error("the key is empty: keys are 1 to %u bytes", HMM_MAX_KEY);
        if (len > HMM_MAX_KEY)
            return usage_error("the key is %zu bytes: keys are 1 to %u bytes", len, HMM_MAX_KEY);
    }
    return CONTINUE;
}

/* Open DIR as the command needs it, run the command, close. */
static int run_command(const struct command *c, struct invocation *in)
{
    if (c->access == ACCESS_NONE)
        return c->run(in);
    bool rdonly = c->access == ACCESS_READ || (c->access == ACCESS_REPAIR && !in->o.repair);
    if (open_map(&in->m, in->dir, rdonly) != 0)
        return EXIT_ERROR;
    int status = c->run(in);
    hmm_close(in->m);
    in->m = NULL;
    if (fflush(stdout) != 0 && status == EXIT_OK)
        status = EXIT_ERROR;
    return status;
}

/* ---- the command line ---- */


static const struct option long_options[] = {
    {"size", required_argument, NULL, 's'},  {"max-size", required_argument, NULL, 'S'},
    {"cache", no_argument, NULL, 'c'},       {"ttl", required_argument, NULL, 't'},
    {"mode", required_argument, NULL, 'm'},  {"max-value", required_argument, NULL, 'M'},
    {"nx", no_argument, NULL, 'n'},          {"xx", no_argument, NULL, 'x'},
    {"json", no_argument, NULL, 'j'},        {"repair", no_argument, NULL, 'r'},
    {"help", no_argument, NULL, 'h'},        {"version", no_argument, NULL, 'v'},
    {"replog-size", required_argument, NULL, 'L'}, {"no-replog", no_argument, NULL, 'N'},
    {"inline", no_argument, NULL, 'i'},
    {NULL, 0, NULL, 0},
};

/* The options that take a size (units.h): where each goes, the example its
 * error suggests, and the largest value hmm_open takes (hashmmap.h's
 * HMM_*_MAX), so that a value past it is refused as bad input naming the
 * limit, before anything is created.  Zero is refused: the library reads
 * it as "the default". */
static const struct size_option {
    int opt;
    const char *name, *example;
    size_t offset;
    uint64_t min, max;          /* min 0: any size over 0 */
    const char *max_text;
} size_options[] = {
    /* The library raises a smaller --size to HMM_SIZE_MIN without a word. */
    {'s', "--size", "64M", offsetof(struct options, size), HMM_SIZE_MIN, HMM_SIZE_MAX, "1.4 TiB (1539316278527 bytes)"},
    {'S', "--max-size", "1G", offsetof(struct options, max_size), 0, HMM_MAX_SIZE_MAX, "4 TiB"},
    {'M', "--max-value", "1M", offsetof(struct options, max_value), 0, HMM_MAX_VALUE_MAX,
     "2 GiB - 1 byte (2147483647 bytes)"},
    {'L', "--replog-size", "16M", offsetof(struct options, replog_size), 0, HMM_REPLOG_SIZE_MAX, "64 GiB"},
};
/* The texts above name these values. */
_Static_assert(HMM_SIZE_MAX == UINT64_C(1539316278527) && HMM_MAX_SIZE_MAX == UINT64_C(1) << 42 &&
                   HMM_MAX_VALUE_MAX == 2147483647u && HMM_REPLOG_SIZE_MAX == UINT64_C(64) << 30,
               "size_options' limit texts match hashmmap.h");

static int parse_size_option(const struct size_option *so, const char *arg, struct options *o)
{
    uint64_t v;
    int rc = units_parse_size(arg, &v);
    if (rc == -ERANGE || (rc == 0 && v > so->max))
        return usage_error("%s: '%s' is too large: the limit is %s", so->name, arg, so->max_text);
    if (rc)
        return usage_error("%s: '%s' is not a size like %s", so->name, arg, so->example);
    if (v == 0)
        return usage_error("%s: '%s' is zero: give a size over 0, or leave %s out for the default", so->name, arg,
                           so->name);
    if (v < so->min)
        return usage_error("%s: '%s' is too small: the minimum is %" PRIu64 " KiB", so->name, arg, so->min >> 10);
    memcpy((char *)o + so->offset, &v, sizeof v);
    return CONTINUE;
}

/* Octal digits only: strtoul would take "", " 600" and "-0" as well.  A
 * mode of 0 is refused: hmm_config reads it as "the default", 0600. */
static int parse_mode(const char *arg, struct options *o)
{
    unsigned long v = strtoul(arg, NULL, 8); /* past ULONG_MAX: ULONG_MAX */
    if (!*arg || arg[strspn(arg, "01234567")] || v > 07777)
        return usage_error("--mode: '%s' is not an octal mode like 0600", arg);
    if (v == 0)
        return usage_error("--mode: '%s' gives no one access: give a mode like 0600, or leave --mode out for 0600", arg);
    o->mode = (unsigned)v;
    return CONTINUE;
}

static int apply_option(int opt, const char *arg, struct options *o)
{
    for (size_t i = 0; i < sizeof size_options / sizeof size_options[0]; i++)
        if (size_options[i].opt == opt)
            return parse_size_option(&size_options[i], arg, o);
    switch (opt) {
    case 't':
        if (units_parse_duration_ms(arg, &o->ttl_ms) != 0)
            return usage_error("--ttl: '%s' is not a duration like 30s or 500ms", arg);
        return CONTINUE;
    case 'm': return parse_mode(arg, o);
    case 'N': o->no_replog = true; return CONTINUE;
    case 'i': o->inline_copies = true; return CONTINUE;
    case 'c': o->cache = true; return CONTINUE;
    case 'n': o->nx = true; return CONTINUE;
    case 'x': o->xx = true; return CONTINUE;
    case 'j': o->json = true; return CONTINUE;
    case 'r': o->repair = true; return CONTINUE;
    case 'h':
        usage(stdout);
        return EXIT_OK;
    default: /* --version, known but only before the command */
        return usage_error("%s", "--version goes before the command");
    }
}

/* getopt's refusal (opterr off) as one line: errtext_option(). */
static int option_error(int opt, char **argv)
{
    char text[ERRTEXT_MAX];
    return usage_error("%s", errtext_option(opt, argv, long_options, text, sizeof text));
}

/* The arguments of the command (DIR first) into in->args, its options into
 * in->o.  argv[0] is the command.  Options may come before or after the
 * arguments; "--" ends them. */
static int parse_command_line(int argc, char **argv, struct invocation *in)
{
    bool options_ended = false;
    optind = 1;
    opterr = 0; /* its messages are two lines and name the command as the program */
    while (optind < argc) {
        const char *a = argv[optind];
        if (!options_ended && strcmp(a, "--") == 0) {
            options_ended = true;
            optind++;
            continue;
        }
        /* "-17" is a value or a delta, not an option: keys and values
         * may be negative numbers without needing "--". */
        bool is_arg = options_ended || a[0] != '-' || a[1] == '\0' || (a[1] >= '0' && a[1] <= '9');
        int at = optind;
        int opt = is_arg ? -1 : getopt_long(argc, argv, "+:h", long_options, NULL);
        if (opt == -1) {
            if (optind >= argc)
                break;
            in->args[in->nargs++] = argv[optind++];
            continue;
        }
        if (opt == '?' || opt == ':')
            return option_error(opt, argv);
        if (opt > 0 && opt < 128)
            in->given[opt] = argv[at];
        int status = apply_option(opt, optarg, &in->o);
        if (status != CONTINUE)
            return status;
    }
    return CONTINUE;
}

/* The options before the command: only --help and --version (-V, as
 * in hashmmap-stat, or -v). */
static int parse_leading_options(int argc, char **argv)
{
    opterr = 0;
    int at = optind, opt = getopt_long(argc, argv, "+:hvV", long_options, NULL);
    if (opt == 'h') {
        usage(stdout);
        return EXIT_OK;
    }
    if (opt == 'v' || opt == 'V') {
        printf("hashmmap %s\n", hmm_version(NULL, NULL, NULL));
        return EXIT_OK;
    }
    if (opt == '?' || opt == ':')
        return option_error(opt, argv);
    if (opt != -1)
        return usage_error("options go after the command: %.*s", (int)strcspn(argv[at], "="), argv[at]);
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    return CONTINUE;
}

/* Too few arguments, or too many (naming the first extra one), with what
 * the command takes: its synopsis up to its options. */
static int check_argument_count(const struct command *c, const struct invocation *in)
{
    const char *takes = c->synopsis + strlen(c->name) + 1, *options = strstr(takes, " [--");
    int takes_len = options ? (int)(options - takes) : (int)strlen(takes);
    if (in->nargs < c->min_args)
        return usage_error("%s takes %.*s: too few arguments", c->name, takes_len, takes);
    if (in->nargs > c->max_args)
        return usage_error("%s takes %.*s: '%s' is one argument too many", c->name, takes_len, takes,
                           in->args[c->max_args]);
    return CONTINUE;
}

/* An option the command does not use is refused, not ignored: "put --size
 * 2M" would otherwise look as if it had done something. */
static int check_options_taken(const struct command *c, const struct invocation *in)
{
    for (int opt = 1; opt < 128; opt++) {
        if (!in->given[opt] || strchr(c->options, opt))
            continue;
        char list[160] = "";
        for (const struct option *lo = long_options; lo->name; lo++)
            if (strchr(c->options, lo->val))
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s--%s", *list ? ", " : "", lo->name);
        int len = (int)strcspn(in->given[opt], "=");
        if (!*list)
            return usage_error("%.*s: %s takes no options", len, in->given[opt], c->name);
        return usage_error("%.*s: %s takes only %s", len, in->given[opt], c->name, list);
    }
    return CONTINUE;
}

int main(int argc, char **argv)
{
    tool_report_bus_errors("hashmmap");
    int status = parse_leading_options(argc, argv);
    if (status != CONTINUE)
        return status;
    command = argv[optind];
    char *args[argc]; /* get takes any number of keys */
    struct invocation in = {.args = args};
    status = parse_command_line(argc - optind, argv + optind, &in);
    if (status != CONTINUE)
        return status;
    const struct command *c = find_command(command);
    if (!c)
        return usage_error("unknown command '%s'", command);
    if ((status = check_argument_count(c, &in)) != CONTINUE)
        return status;
    if ((status = check_options_taken(c, &in)) != CONTINUE)
        return status;
    if (in.o.nx && in.o.xx)
        return usage_error("%s", "--nx and --xx exclude each other");
    if ((status = check_keys(c, &in)) != CONTINUE)
        return status;
    in.dir = args[0];
    return run_command(c, &in);
}
