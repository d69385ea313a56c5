/*
 * hashmmap - command-line access to a hashmmap map.
 *
 *   hashmmap create DIR [--size 64M] [--max-size 1G] [--cache] [--ttl 30s]
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
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hashmmap.h>

#include "tools/bus_error.h"
#include "tools/jsonl.h"

enum { EXIT_OK = 0, EXIT_NOTFOUND = 1, EXIT_USAGE = 2, EXIT_ERROR = 3 };

static const char *command = "hashmmap";

struct options {
    uint64_t size, max_size, ttl_ms, max_value, replog_size;
    unsigned mode;
    bool cache, nx, xx, json, repair, no_replog;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: hashmmap COMMAND DIR [ARGS] [OPTIONS]\n"
            "Use the hashmmap map kept in directory DIR.\n"
            "\n"
            "Commands:\n"
            "  create DIR [--size 64M] [--max-size 1G] [--cache] [--ttl 30s] [--mode 0600] [--max-value 1M]\n"
            "             [--replog-size 16M | --no-replog]\n"
            "                          create a map (sizes take K, M, G; TTLs ms, s, m, h, d; bare = seconds)\n"
            "  put DIR KEY VALUE [--ttl 10s] [--nx | --xx]   store a value (--nx: only if absent, --xx: only if present)\n"
            "  get DIR KEY...          print the value; with several keys (looked up in one batch),\n"
            "                          a line KEY<tab>VALUE per key found\n"
            "  del DIR KEY             delete a key\n"
            "  incr DIR KEY [DELTA]    add DELTA (default 1) to a counter and print it\n"
            "  dump DIR                print every entry as a JSON line {\"key\":...,\"value\":...}\n"
            "  load DIR                store the JSON lines of a dump read from standard input\n"
            "  info DIR [--json]       sizes, fill, format, and the processes that have the map open\n"
            "  check DIR [--repair]    verify every entry; --repair drops damaged ones\n"
            "\n"
            "Examples:\n"
            "  hashmmap create /var/lib/app/offsets --size 16M --max-size 1G\n"
            "  hashmmap put /var/lib/app/offsets orders/3 1042\n"
            "  hashmmap incr /var/lib/app/offsets hits\n"
            "  hashmmap get /var/lib/app/offsets orders/1 orders/2 orders/3\n"
            "  hashmmap dump /var/lib/app/offsets | hashmmap load /srv/copy\n"
            "\n"
            "Exit status: 0 success, 1 key not found or problems found, 2 usage error, 3 other errors.\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "hashmmap: %s: ", command);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try 'hashmmap --help')\n");
    return EXIT_USAGE;
}

/* One line: what failed, the library's sentence and its detail. */
static int fail(const char *what, int rc)
{
    const char *detail = hmm_last_error();
    fprintf(stderr, "hashmmap: %s: %s: %s", command, what, hmm_strerror(rc));
    if (*detail && !strstr(hmm_strerror(rc), detail))
        fprintf(stderr, " (%s)", detail);
    fputc('\n', stderr);
    return rc == HMM_NOTFOUND ? EXIT_NOTFOUND : EXIT_ERROR;
}

static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return false;
    uint64_t mult = 1;
    switch (*end) {
    case 'k': case 'K': mult = 1ULL << 10; end++; break;
    case 'm': case 'M': mult = 1ULL << 20; end++; break;
    case 'g': case 'G': mult = 1ULL << 30; end++; break;
    case 't': case 'T': mult = 1ULL << 40; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end || (v && mult > UINT64_MAX / v))
        return false;
    *out = v * mult;
    return true;
}

static bool parse_ttl(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return false;
    double mult = 1000; /* bare number: seconds */
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60e3;
    else if (strcmp(end, "h") == 0)
        mult = 3600e3;
    else if (strcmp(end, "d") == 0)
        mult = 86400e3;
    else
        return false;
    /* inf, nan and anything past 2^64 ms have no uint64_t value: the cast
     * would be undefined behaviour, so they are refused before it. */
    double ms = v * mult + 0.5;
    if (!isfinite(ms) || ms >= 18446744073709551616.0)
        return false;
    *out = (uint64_t)ms;
    return true;
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

/* ---- dump and load (the JSON lines format is in jsonl.c) ---- */

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
        char *big = NULL;
        while (rcs[i] == HMM_TOOSMALL) { /* larger than CAP: again, alone, with room */
            char *nb = realloc(big, vlens[i]);
            if (!nb) {
                rcs[i] = -ENOMEM;
                break;
            }
            big = nb;
            rcs[i] = hmm_get(m, keys[i], klens[i], big, &vlens[i]);
        }
        if (rcs[i] == 0) {
            printf("%s\t", keys[i]);
            fwrite(big ? big : vals[i], 1, vlens[i], stdout);
            putchar('\n');
        } else {
            int st = fail(keys[i], rcs[i]);
            if (status != EXIT_ERROR)
                status = st;
        }
        free(big);
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

static int cmd_dump(hmm_t *m)
{
    hmm_cursor *c;
    int rc = hmm_cursor_open(m, &c);
    if (rc)
        return fail("dump", rc);
    const void *k, *v;
    size_t kl, vl;
    uint64_t now_ms = (uint64_t)time(NULL) * 1000;
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

static int cmd_load(hmm_t *m)
{
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

static int cmd_info(hmm_t *m, const char *dir, bool json)
{
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
            printf("],\"replog\":{\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"capacity\":%" PRIu64 "}}\n",
                   log.first_seq, log.last_seq, log.capacity);
        else
            printf("],\"replog\":null}\n");
        return EXIT_OK;
    }
    printf("map            %s\n", dir);
    printf("format         version %u%s\n", st.format_version, st.flags & HMM_CACHE ? ", cache mode" : "");
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
    if (has_log)
        printf("replog         sequence numbers %" PRIu64 "..%" PRIu64 " in a %" PRIu64 "-byte ring\n", log.first_seq,
               log.last_seq, log.capacity);
    else
        printf("replog         none%s\n", st.flags & HMM_NOREPLOG ? " (created with HMM_NOREPLOG)" : "");
    printf("open by        %zu process%s", np, np == 1 ? "" : "es");
    for (size_t i = 0; i < np; i++)
        printf("%s %" PRId64 "%s", i ? "," : ":", procs[i].pid, procs[i].alive ? "" : " (dead)");
    putchar('\n');
    return EXIT_OK;
}

static int cmd_check(hmm_t *m, bool repair)
{
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
        return EXIT_NOTFOUND;
    }
    return fail("check", rc);
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"size", required_argument, NULL, 's'},  {"max-size", required_argument, NULL, 'S'},
        {"cache", no_argument, NULL, 'c'},       {"ttl", required_argument, NULL, 't'},
        {"mode", required_argument, NULL, 'm'},  {"max-value", required_argument, NULL, 'V'},
        {"nx", no_argument, NULL, 'n'},          {"xx", no_argument, NULL, 'x'},
        {"json", no_argument, NULL, 'j'},        {"repair", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},        {"version", no_argument, NULL, 'v'},
        {"replog-size", required_argument, NULL, 'L'}, {"no-replog", no_argument, NULL, 'N'},
        {NULL, 0, NULL, 0},
    };
    tool_report_bus_errors("hashmmap");
    struct options o = {0};
    int opt;
    while ((opt = getopt_long(argc, argv, "+hv", long_options, NULL)) != -1 && opt != '?') {
        if (opt == 'h') {
            usage(stdout);
            return EXIT_OK;
        }
        if (opt == 'v') {
            printf("hashmmap %s\n", hmm_version(NULL, NULL, NULL));
            return EXIT_OK;
        }
        return usage_error("options go after the command: %s", argv[optind - 1]);
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    command = argv[optind++];
    /* Options may come before or after the arguments of the command. */
    char *args[argc > 4 ? argc : 4]; /* get takes any number of keys */
    int nargs = 0;
    optind--;
    argv[optind] = (char *)command;
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 1;
    bool options_ended = false;
    while (optind < sub_argc) {
        const char *a = sub_argv[optind];
        if (!options_ended && strcmp(a, "--") == 0) {
            options_ended = true;
            optind++;
            continue;
        }
        /* "-17" is a value or a delta, not an option: keys and values
         * may be negative numbers without needing "--". */
        bool is_arg = options_ended || a[0] != '-' || a[1] == '\0' || (a[1] >= '0' && a[1] <= '9');
        opt = is_arg ? -1 : getopt_long(sub_argc, sub_argv, "+h", long_options, NULL);
        if (opt == -1) {
            if (optind >= sub_argc)
                break;
            args[nargs++] = sub_argv[optind++];
            continue;
        }
        switch (opt) {
        case 's':
            if (!parse_size(optarg, &o.size))
                return usage_error("--size: '%s' is not a size like 64M", optarg);
            break;
        case 'S':
            if (!parse_size(optarg, &o.max_size))
                return usage_error("--max-size: '%s' is not a size like 1G", optarg);
            break;
        case 'V':
            if (!parse_size(optarg, &o.max_value) || o.max_value > UINT32_MAX)
                return usage_error("--max-value: '%s' is not a size like 1M", optarg);
            break;
        case 't':
            if (!parse_ttl(optarg, &o.ttl_ms))
                return usage_error("--ttl: '%s' is not a duration like 30s or 500ms", optarg);
            break;
        case 'm': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 8);
            if (*end || v > 07777)
                return usage_error("--mode: '%s' is not an octal mode like 0600", optarg);
            o.mode = (unsigned)v;
            break;
        }
        case 'L':
            if (!parse_size(optarg, &o.replog_size))
                return usage_error("--replog-size: '%s' is not a size like 16M", optarg);
            break;
        case 'N': o.no_replog = true; break;
        case 'c': o.cache = true; break;
        case 'n': o.nx = true; break;
        case 'x': o.xx = true; break;
        case 'j': o.json = true; break;
        case 'r': o.repair = true; break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            return usage_error("%s", "unknown option");
        }
    }
    static const struct {
        const char *name;
        int min, max;
        bool writes;
    } commands[] = {
        {"create", 1, 1, true}, {"put", 3, 3, true},  {"get", 2, 1 << 20, false},  {"del", 2, 2, true},
        {"incr", 2, 3, true},   {"dump", 1, 1, false}, {"load", 1, 1, true}, {"info", 1, 1, false},
        {"check", 1, 1, false},
    };
    int which = -1;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(command, commands[i].name) == 0)
            which = (int)i;
    if (which < 0)
        return usage_error("unknown command '%s'", command);
    if (nargs < commands[which].min || nargs > commands[which].max)
        return usage_error("wrong number of arguments (%s)", nargs < commands[which].min ? "too few" : "too many");
    if (o.nx && o.xx)
        return usage_error("%s", "--nx and --xx exclude each other");
    const char *dir = args[0];

    if (strcmp(command, "create") == 0) {
        hmm_config cfg = {.size = o.size, .max_size = o.max_size, .mode = o.mode, .default_ttl_ms = o.ttl_ms,
                          .max_value = (uint32_t)o.max_value, .replog_size = o.replog_size,
                          .flags = HMM_CREATE | HMM_EXCL | (o.cache ? HMM_CACHE : 0) |
                                   (o.no_replog ? HMM_NOREPLOG : 0)};
        hmm_t *m;
        int rc = hmm_open(&m, dir, &cfg);
        if (rc)
            return fail(dir, rc);
        hmm_stats st;
        hmm_stat(m, &st);
        printf("created %s: %" PRIu64 " bytes for entries%s%s\n", dir, st.size,
               st.max_size > st.size ? ", growing as needed" : "", o.cache ? ", cache mode" : "");
        hmm_close(m);
        return EXIT_OK;
    }
    bool rdonly = !commands[which].writes && !(strcmp(command, "check") == 0 && o.repair);
    hmm_t *m;
    if (open_map(&m, dir, rdonly) != 0)
        return EXIT_ERROR;
    int status = EXIT_OK, rc = 0;
    if (strcmp(command, "put") == 0) {
        rc = hmm_put(m, args[1], strlen(args[1]), args[2], strlen(args[2]), o.ttl_ms,
                     o.nx ? HMM_NX : o.xx ? HMM_XX : 0);
        if (rc)
            status = rc == HMM_EXISTS ? (fail(args[1], rc), EXIT_NOTFOUND) : fail(args[1], rc);
    } else if (strcmp(command, "get") == 0 && nargs > 2) {
        status = cmd_get_many(m, args + 1, (size_t)nargs - 1);
    } else if (strcmp(command, "get") == 0) {
        size_t len = 4096;
        char *buf = malloc(len);
        while (buf && (rc = hmm_get(m, args[1], strlen(args[1]), buf, &len)) == HMM_TOOSMALL) {
            char *nb = realloc(buf, len);
            if (!nb)
                break;
            buf = nb;
        }
        if (rc == 0) {
            fwrite(buf, 1, len, stdout);
            putchar('\n');
        } else {
            status = fail(args[1], rc);
        }
        free(buf);
    } else if (strcmp(command, "del") == 0) {
        rc = hmm_del(m, args[1], strlen(args[1]));
        if (rc)
            status = fail(args[1], rc);
    } else if (strcmp(command, "incr") == 0) {
        int64_t delta = 1, result;
        if (nargs == 3) {
            char *end;
            errno = 0;
            delta = strtoll(args[2], &end, 10);
            if (errno || *end || end == args[2]) {
                hmm_close(m);
                return usage_error("DELTA '%s' is not a 64-bit integer", args[2]);
            }
        }
        rc = hmm_incr(m, args[1], strlen(args[1]), delta, &result);
        if (rc == 0)
            printf("%" PRId64 "\n", result);
        else
            status = fail(args[1], rc);
    } else if (strcmp(command, "dump") == 0) {
        status = cmd_dump(m);
    } else if (strcmp(command, "load") == 0) {
        status = cmd_load(m);
    } else if (strcmp(command, "info") == 0) {
        status = cmd_info(m, dir, o.json);
    } else {
        status = cmd_check(m, o.repair);
    }
    hmm_close(m);
    if (fflush(stdout) != 0 && status == EXIT_OK)
        status = EXIT_ERROR;
    return status;
}
