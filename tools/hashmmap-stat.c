/*
 * hashmmap-stat - show a map's metrics: a table, JSON, Prometheus text, or
 * rates per second like vmstat.
 *
 *   hashmmap-stat /var/lib/app/offsets
 *   hashmmap-stat --json /var/lib/app/offsets
 *   hashmmap-stat --prometheus /var/lib/app/offsets > /var/lib/node_exporter/hashmmap.prom
 *   hashmmap-stat --watch 1 /var/lib/app/offsets
 *
 * Opens the map read-only: it never writes a byte of the map's files, and
 * works while other processes write.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hashmmap.h>

#include "tools/bus_error.h"
#include "tools/clock.h"
#include "tools/errtext.h"
#include "tools/units.h"

enum { EXIT_OK = 0, EXIT_USAGE = 2, EXIT_ERROR = 3 };
enum format { FORMAT_TABLE, FORMAT_JSON, FORMAT_PROMETHEUS };

struct snapshot {
    hmm_stats st;
    hmm_class_stats classes[64];
    size_t nclasses;
    hmm_repl_status repl; /* replication daemon's report; valid when has_repl */
    hmm_role_info role;   /* the map's own role and epoch (issue 19) */
    int has_repl;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: hashmmap-stat [--json | --prometheus] [OPTION]... DIR\n"
            "Show the metrics of the hashmmap map kept in DIR (opened read-only).\n"
            "\n"
            "  -j, --json           one JSON object\n"
            "  -p, --prometheus     Prometheus text exposition format (names prefixed hashmmap_)\n"
            "  -w, --watch SECONDS  a line of rates per second every SECONDS, like vmstat;\n"
            "                       with --json, a JSON object (the snapshot) per line\n"
            "  -c, --count N        with --watch: stop after N lines (1 to 1000000000)\n"
            "  -h, --help           this help\n"
            "  -V, --version        the library version\n"
            "\n"
            "Examples:\n"
            "  hashmmap-stat /var/lib/app/offsets\n"
            "  hashmmap-stat --json /var/lib/app/offsets | jq .hits\n"
            "  hashmmap-stat --watch 1 --count 10 /var/lib/app/offsets\n"
            "\n"
            "Exit status: 0 success, 2 usage error, 3 the map cannot be read.\n");
}

static int take_snapshot(hmm_t *m, struct snapshot *s)
{
    int rc = hmm_stat(m, &s->st);
    if (rc == 0)
        rc = hmm_stat_classes(m, s->classes, sizeof s->classes / sizeof s->classes[0], &s->nclasses);
    if (s->nclasses > sizeof s->classes / sizeof s->classes[0])
        s->nclasses = sizeof s->classes / sizeof s->classes[0];
    s->has_repl = rc == 0 && hmm_repl_status_get(m, &s->repl) == 0; /* replication (issue 6) */
    if (rc == 0)
        rc = hmm_role_get(m, &s->role);
    return rc;
}

static const char *human_bytes(uint64_t v, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    unsigned u = 0;
    while (d >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        d /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", d, units[u]);
    return buf;
}

static double percent(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* ---- replication (issue 6): what hashmmap-replicate reports ---- */
static const char *repl_role_name(uint32_t role)
{
    return role == HMM_REPL_ROLE_PRIMARY ? "primary" : role == HMM_REPL_ROLE_REPLICA ? "replica" : "unknown";
}

static const char *repl_state_name(uint32_t state)
{
    static const char *const names[] = {"disconnected", "connecting", "snapshot", "streaming"};
    return state < sizeof names / sizeof names[0] ? names[state] : "unknown";
}

/* The numeric fields, named once for the JSON output (Prometheus gives them
 * names of its conventions in print_repl_prometheus). */
#define REPL_FIELDS(XX)                                                                  \
    XX(peers, "gauge", "replicas connected (primary) or 1 when connected (replica)")     \
    XX(primary_seq, "gauge", "newest sequence number of the primary's log known")        \
    XX(acked_seq, "gauge", "sequence number applied (replica) or acknowledged by the slowest replica") \
    XX(lag_seqs, "gauge", "changes not yet applied / acknowledged")                      \
    XX(lag_ms, "gauge", "age in ms of the oldest change not yet applied / acknowledged") \
    XX(bytes_sent, "counter", "bytes sent by the daemon")                                \
    XX(bytes_received, "counter", "bytes received by the daemon")                        \
    XX(snapshots, "counter", "full resyncs sent (primary) or received (replica)")        \
    XX(reconnects, "counter", "reconnections to the primary")                            \
    XX(last_heartbeat_ms, "gauge", "wall clock (ms) of the last heartbeat from the peer") \
    XX(updated_ms, "gauge", "wall clock (ms) of the daemon's last report")

static void print_repl_table(const hmm_repl_status *r)
{
    printf("\nreplication  %s, %s, pid %" PRId64 ", %u peer%s\n", repl_role_name(r->role), repl_state_name(r->state),
           r->pid, r->peers, r->peers == 1 ? "" : "s");
    printf("  lag        %" PRIu64 " changes, %.1f s (seq %" PRIu64 " of %" PRIu64 ")\n", r->lag_seqs,
           (double)r->lag_ms / 1000.0, r->acked_seq, r->primary_seq);
    printf("  traffic    %" PRIu64 " bytes sent, %" PRIu64 " received, %" PRIu64 " snapshots, %" PRIu64
           " reconnects\n", r->bytes_sent, r->bytes_received, r->snapshots, r->reconnects);
}

static void print_repl_json(const hmm_repl_status *r)
{
    printf(",\"replication\":{\"role\":\"%s\",\"state\":\"%s\",\"pid\":%" PRId64, repl_role_name(r->role),
           repl_state_name(r->state), r->pid);
#define REPL_JSON(name, type, help) printf(",\"%s\":%" PRIu64, #name, (uint64_t)r->name);
    REPL_FIELDS(REPL_JSON)
#undef REPL_JSON
    printf("}");
}

static void prom_metric(const char *dir, const char *name, const char *type, const char *help, uint64_t value);
static void prom_label(const char *s);

/* Prometheus names follow its conventions (promtool check metrics): base
 * units (seconds, bytes) as the last word, _total only on counters,
 * timestamps as _timestamp_seconds.  The table and JSON keep the fields'
 * own names. */
static void prom_seconds(const char *dir, const char *name, const char *help, uint64_t ms)
{
    printf("# HELP hashmmap_%s %s\n# TYPE hashmmap_%s gauge\nhashmmap_%s{map=\"", name, help, name, name);
    prom_label(dir);
    printf("\"} %" PRIu64 ".%03u\n", ms / 1000, (unsigned)(ms % 1000));
}

static void print_repl_prometheus(const char *dir, const hmm_repl_status *r)
{
    prom_metric(dir, "replication_peers", "gauge", "replicas connected (primary) or 1 when connected (replica)",
                r->peers);
    prom_metric(dir, "replication_primary_seq", "gauge", "newest sequence number of the primary's log known",
                r->primary_seq);
    prom_metric(dir, "replication_acked_seq", "gauge",
                "sequence number applied (replica) or acknowledged by the slowest replica", r->acked_seq);
    prom_metric(dir, "replication_lag_seqs", "gauge", "changes not yet applied / acknowledged", r->lag_seqs);
    prom_seconds(dir, "replication_lag_seconds", "age of the oldest change not yet applied / acknowledged",
                 r->lag_ms);
    prom_metric(dir, "replication_sent_bytes_total", "counter", "bytes sent by the daemon", r->bytes_sent);
    prom_metric(dir, "replication_received_bytes_total", "counter", "bytes received by the daemon",
                r->bytes_received);
    prom_metric(dir, "replication_snapshots_total", "counter", "full resyncs sent (primary) or received (replica)",
                r->snapshots);
    prom_metric(dir, "replication_reconnects_total", "counter", "reconnections to the primary", r->reconnects);
    prom_seconds(dir, "replication_last_heartbeat_timestamp_seconds",
                 "wall clock of the last heartbeat from the peer", r->last_heartbeat_ms);
    prom_seconds(dir, "replication_updated_timestamp_seconds", "wall clock of the daemon's last report",
                 r->updated_ms);
    prom_metric(dir, "replication_streaming", "gauge", "1 when the daemon is streaming the log",
                r->state == HMM_REPL_STREAMING);
}
/* ---- end of replication ---- */

/* A map whose metrics file is missing or damaged has no counters: they are
 * unknown, and shown as missing, never as zeros (a cache that looks unused). */
static int counters_known(const struct snapshot *s)
{
    return !(s->st.flags & HMM_STAT_NOMETRICS);
}

/* Said once on stderr, so that a script reading stdout learns it too. */
static void warn_no_counters(const char *dir, const struct snapshot *s)
{
    if (!counters_known(s))
        fprintf(stderr, "hashmmap-stat: %s/hashmmap.metrics is missing or damaged: no counters shown "
                        "(the next process that opens the map for writing makes it anew)\n", dir);
}

static void print_table(const char *dir, const struct snapshot *s)
{
    const hmm_stats *st = &s->st;
    char a[32], b[32], c[32];
    printf("map          %s\n", dir);
    printf("format       version %u, %s%s\n", st->format_version, st->flags & HMM_CACHE ? "cache mode" : "plain map",
           st->flags & HMM_NOREPLOG ? ", no replication log" : "");
    printf("size         %s (grows to %s), file %s, generation %" PRIu64 "\n", human_bytes(st->size, a, sizeof a),
           human_bytes(st->max_size, b, sizeof b), human_bytes(st->file_size, c, sizeof c), st->generation);
    printf("items        %" PRIu64 " (index: %" PRIu64 " slots, %.1f%% full)\n", st->items, st->index_slots,
           percent(st->items, st->index_slots));
    printf("bytes        %s used of %s (%.1f%%)\n", human_bytes(st->bytes_used, a, sizeof a),
           human_bytes(st->bytes_total, b, sizeof b), percent(st->bytes_used, st->bytes_total));
    printf("processes    %u with the map open\n", st->nprocs);
    printf("role         %s%s%s, epoch %" PRIu64 "\n", s->role.role == HMM_ROLE_REPLICA ? "replica" : "primary",
           s->role.role == HMM_ROLE_REPLICA ? " of " : "", s->role.role == HMM_ROLE_REPLICA ? s->role.primary : "",
           s->role.epoch);
    if (counters_known(s)) {
        printf("\ncounters\n");
        for (int i = 0; i < HMM_COUNTER_COUNT; i++)
            printf("  %-14s %14" PRIu64 "   %s\n", hmm_counter_name(i), st->counters[i], hmm_counter_help(i));
    } else {
        printf("\ncounters     unknown: %s/hashmmap.metrics is missing or damaged\n", dir);
    }
    printf("\nsize classes   chunk      pages     used chunks    of total\n");
    for (size_t i = 0; i < s->nclasses; i++) {
        const hmm_class_stats *k = &s->classes[i];
        if (k->pages == 0)
            continue;
        printf("  %21u %10" PRIu64 " %15" PRIu64 " %11" PRIu64 "\n", k->chunk_size, k->pages, k->chunks_used,
               k->chunks_total);
    }
    if (s->has_repl) /* replication (issue 6) */
        print_repl_table(&s->repl);
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json(const char *dir, const struct snapshot *s)
{
    const hmm_stats *st = &s->st;
    printf("{\"map\":");
    json_string(dir);
    printf(",\"items\":%" PRIu64 ",\"bytes_used\":%" PRIu64 ",\"bytes_total\":%" PRIu64
           ",\"size\":%" PRIu64 ",\"max_size\":%" PRIu64 ",\"file_size\":%" PRIu64 ",\"generation\":%" PRIu64
           ",\"index_slots\":%" PRIu64 ",\"processes\":%u,\"format_version\":%u,\"cache\":%s",
           st->items, st->bytes_used, st->bytes_total, st->size, st->max_size, st->file_size, st->generation,
           st->index_slots, st->nprocs, st->format_version, st->flags & HMM_CACHE ? "true" : "false");
    printf(",\"role\":\"%s\",\"epoch\":%" PRIu64 ",\"primary\":", s->role.role == HMM_ROLE_REPLICA ? "replica" : "primary",
           s->role.epoch);
    json_string(s->role.primary);
    printf(",\"metrics\":%s", counters_known(s) ? "true" : "false");
    for (int i = 0; i < HMM_COUNTER_COUNT && counters_known(s); i++)
        printf(",\"%s\":%" PRIu64, hmm_counter_name(i), st->counters[i]);
    if (s->has_repl) /* replication (issue 6) */
        print_repl_json(&s->repl);
    printf(",\"classes\":[");
    const char *sep = "";
    for (size_t i = 0; i < s->nclasses; i++) {
        const hmm_class_stats *k = &s->classes[i];
        if (k->pages == 0)
            continue;
        printf("%s{\"chunk_size\":%u,\"pages\":%" PRIu64 ",\"chunks_used\":%" PRIu64 ",\"chunks_total\":%" PRIu64 "}",
               sep, k->chunk_size, k->pages, k->chunks_used, k->chunks_total);
        sep = ",";
    }
    printf("]}\n");
}

/* A label value in the exposition format: backslash, quote and newline escaped. */
static void prom_label(const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            printf("\\%c", *s);
        else if (*s == '\n')
            printf("\\n");
        else
            putchar(*s);
    }
}

static void prom_metric(const char *dir, const char *name, const char *type, const char *help, uint64_t value)
{
    printf("# HELP hashmmap_%s %s\n# TYPE hashmmap_%s %s\nhashmmap_%s{map=\"", name, help, name, type, name);
    prom_label(dir);
    printf("\"} %" PRIu64 "\n", value);
}

static void print_prometheus(const char *dir, const struct snapshot *s)
{
    const hmm_stats *st = &s->st;
    char name[64];
    for (int i = 0; i < HMM_COUNTER_COUNT && counters_known(s); i++) {
        snprintf(name, sizeof name, "%s_total", hmm_counter_name(i));
        prom_metric(dir, name, "counter", hmm_counter_help(i), st->counters[i]);
    }
    prom_metric(dir, "items", "gauge", "entries in the map", st->items);
    prom_metric(dir, "used_bytes", "gauge", "bytes of live entries (header, key and value)", st->bytes_used);
    prom_metric(dir, "data_bytes", "gauge", "bytes of the data area", st->bytes_total);
    prom_metric(dir, "file_bytes", "gauge", "size of the map file", st->file_size);
    prom_metric(dir, "max_bytes", "gauge", "size the map may grow to", st->max_size);
    prom_metric(dir, "index_slots", "gauge", "slots of the hash index", st->index_slots);
    prom_metric(dir, "processes", "gauge", "processes that have the map open", st->nprocs);
    prom_metric(dir, "generation", "gauge", "growth generation of the map", st->generation);
    prom_metric(dir, "replica", "gauge", "1 when the map is a replica (read-only but for its daemon)",
                s->role.role == HMM_ROLE_REPLICA);
    prom_metric(dir, "epoch", "gauge", "replication epoch of the map (rises at each promotion)", s->role.epoch);
    if (s->has_repl) /* replication (issue 6) */
        print_repl_prometheus(dir, &s->repl);
    static const char *const class_metrics[][2] = {
        {"class_pages", "pages given to the size class"},
        {"class_chunks_used", "chunks of the size class holding entries"},
        {"class_chunks", "chunks the size class's pages hold"},
    };
    for (unsigned k = 0; k < 3; k++) {
        printf("# HELP hashmmap_%s %s\n# TYPE hashmmap_%s gauge\n", class_metrics[k][0], class_metrics[k][1],
               class_metrics[k][0]);
        for (size_t i = 0; i < s->nclasses; i++) {
            const hmm_class_stats *c = &s->classes[i];
            if (c->pages == 0)
                continue;
            uint64_t v = k == 0 ? c->pages : k == 1 ? c->chunks_used : c->chunks_total;
            printf("hashmmap_%s{map=\"", class_metrics[k][0]);
            prom_label(dir);
            printf("\",chunk_size=\"%u\"} %" PRIu64 "\n", c->chunk_size, v);
        }
    }
}

/* What to show, from the command line. */
struct stat_options {
    enum format format;
    double interval; /* --watch: seconds between lines; 0 = once */
    long count;      /* --count: lines, 0 = until interrupted (COUNT_MAX at most) */
    const char *dir;
};

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double now_s(void)
{
    return (double)monotonic_ms() / 1e3;
}

/* The counters a --watch line shows as rates. */
static const int watch_cols[] = {HMM_C_GETS, HMM_C_HITS, HMM_C_MISSES, HMM_C_PUTS, HMM_C_DELETES,
                                 HMM_C_INCRS, HMM_C_EVICTIONS, HMM_C_EXPIRATIONS};
#define WATCH_NCOLS (sizeof watch_cols / sizeof watch_cols[0])

static void print_rates_header(void)
{
    printf("%8s", "time");
    char name[32];
    for (size_t i = 0; i < WATCH_NCOLS; i++) {
        snprintf(name, sizeof name, "%s/s", hmm_counter_name(watch_cols[i]));
        printf(" %13s", name);
    }
    printf(" %11s %6s\n", "items", "used%");
}

/* One line of rates per second between prev and cur, dt seconds apart. */
static void print_rates(const struct snapshot *prev, const struct snapshot *cur, double dt)
{
    time_t wall = time(NULL);
    struct tm tm;
    char clock[16];
    strftime(clock, sizeof clock, "%H:%M:%S", localtime_r(&wall, &tm));
    printf("%8s", clock);
    for (size_t i = 0; i < WATCH_NCOLS; i++) {
        uint64_t a = prev->st.counters[watch_cols[i]], b = cur->st.counters[watch_cols[i]];
        if (!counters_known(prev) || !counters_known(cur))
            printf(" %13s", "-");
        else
            printf(" %13.0f", b >= a ? (double)(b - a) / dt : 0.0);
    }
    printf(" %11" PRIu64 " %6.1f\n", cur->st.items, percent(cur->st.bytes_used, cur->st.bytes_total));
}

/* vmstat-style: a header, then one line of rates per interval; with
 * --json, the whole snapshot as one JSON object per line instead (a
 * consumer takes the rates from the counters). */
static int watch(hmm_t *m, const struct stat_options *o)
{
    struct snapshot prev, cur;
    int rc = take_snapshot(m, &prev);
    if (rc)
        return rc;
    warn_no_counters(o->dir, &prev);
    double t0 = now_s(), interval = o->interval;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (long line = 0; !stop && (o->count <= 0 || line < o->count); line++) {
        if (line % 20 == 0 && o->format != FORMAT_JSON)
            print_rates_header();
        struct timespec pause = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR && !stop)
            ;
        rc = take_snapshot(m, &cur);
        if (rc)
            return rc;
        double t1 = now_s(), dt = t1 - t0 > 0 ? t1 - t0 : interval;
        if (o->format == FORMAT_JSON)
            print_json(o->dir, &cur);
        else
            print_rates(&prev, &cur, dt);
        fflush(stdout);
        prev = cur;
        t0 = t1;
    }
    return 0;
}

/* CONTINUE, or the exit status to stop with. */
#define CONTINUE (-1)

/* --count's largest N: a billion lines is 31 years at --watch 1; more is
 * no count at all, which is what leaving --count out says. */
#define COUNT_MAX 1000000000L

static int parse_count(const char *arg, struct stat_options *o)
{
    char *end;
    errno = 0;
    long n = strtol(arg, &end, 10);
    if (arg[0] < '0' || arg[0] > '9' || errno || *end || n < 1 || n > COUNT_MAX) {
        fprintf(stderr, "hashmmap-stat: --count: '%s' is not a number from 1 to %ld\n", arg, COUNT_MAX);
        return EXIT_USAGE;
    }
    o->count = n;
    return CONTINUE;
}

/* The options that only make sense together, checked once all are read. */
static int check_stat_options(const struct stat_options *o)
{
    if (o->count && o->interval <= 0) {
        fprintf(stderr, "hashmmap-stat: --count goes with --watch (try --help)\n");
        return EXIT_USAGE;
    }
    if (o->interval > 0 && o->format == FORMAT_PROMETHEUS) {
        fprintf(stderr, "hashmmap-stat: --watch prints lines of rates or, with --json, of JSON objects: "
                        "not Prometheus text\n");
        return EXIT_USAGE;
    }
    return CONTINUE;
}

static int parse_stat_options(int argc, char **argv, struct stat_options *o)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},    {"prometheus", no_argument, NULL, 'p'},
        {"watch", required_argument, NULL, 'w'}, {"count", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},    {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    uint64_t interval_ms;
    opterr = 0; /* its message and our usage were two lines or more */
    while ((opt = getopt_long(argc, argv, ":jpw:c:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'j':
        case 'p': {
            enum format asked = opt == 'j' ? FORMAT_JSON : FORMAT_PROMETHEUS;
            if (o->format != FORMAT_TABLE && o->format != asked) { /* the last one won, silently */
                fprintf(stderr, "hashmmap-stat: --json and --prometheus exclude each other (try --help)\n");
                return EXIT_USAGE;
            }
            o->format = asked;
            break;
        }
        case 'w':
            if (units_parse_interval_ms(optarg, &interval_ms) != 0) {
                fprintf(stderr, "hashmmap-stat: --watch: '%s' is not %s\n", optarg, UNITS_INTERVAL_TEXT);
                return EXIT_USAGE;
            }
            o->interval = (double)interval_ms / 1e3;
            break;
        case 'c':
            if (parse_count(optarg, o) != CONTINUE)
                return EXIT_USAGE;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("hashmmap-stat %s\n", hmm_version(NULL, NULL, NULL));
            return EXIT_OK;
        default: {
            char text[ERRTEXT_MAX];
            fprintf(stderr, "hashmmap-stat: %s (try 'hashmmap-stat --help')\n",
                    errtext_option(opt, argv, options, text, sizeof text));
            return EXIT_USAGE;
        }
        }
    }
    if (optind + 1 != argc) {
        if (optind + 1 < argc)
            fprintf(stderr, "hashmmap-stat: expected one map directory, not also '%s' (try --help)\n", argv[optind + 1]);
        else
            fprintf(stderr, "hashmmap-stat: expected one map directory (try --help)\n");
        return EXIT_USAGE;
    }
    o->dir = argv[optind];
    return check_stat_options(o);
}

/* One snapshot in the format asked for. */
static int show_once(hmm_t *m, const struct stat_options *o)
{
    struct snapshot s;
    int rc = take_snapshot(m, &s);
    if (rc)
        return rc;
    warn_no_counters(o->dir, &s);
    if (o->format == FORMAT_JSON)
        print_json(o->dir, &s);
    else if (o->format == FORMAT_PROMETHEUS)
        print_prometheus(o->dir, &s);
    else
        print_table(o->dir, &s);
    return 0;
}

/* The map's failure as one line that names DIR once. */
static int fail(const char *dir, int rc)
{
    char text[ERRTEXT_MAX];
    errtext(rc, text, sizeof text);
    if (strstr(text, dir))
        fprintf(stderr, "hashmmap-stat: %s\n", text);
    else
        fprintf(stderr, "hashmmap-stat: %s: %s\n", dir, text);
    return EXIT_ERROR;
}

int main(int argc, char **argv)
{
    tool_report_bus_errors("hashmmap-stat");
    struct stat_options o = {.format = FORMAT_TABLE};
    int status = parse_stat_options(argc, argv, &o);
    if (status != CONTINUE)
        return status;
    hmm_config cfg = {.flags = HMM_RDONLY};
    hmm_t *m;
    int rc = hmm_open(&m, o.dir, &cfg);
    if (rc)
        return fail(o.dir, rc);
    rc = o.interval > 0 ? watch(m, &o) : show_once(m, &o);
    hmm_close(m);
    if (rc)
        return fail(o.dir, rc);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_ERROR;
}
