/*
 * hashmmap-replicate - ship a map's replication log to replicas on other
 * hosts, or keep a replica of a remote map (docs/PROTOCOL.md).
 *
 *   primary:  hashmmap-replicate --serve /var/lib/app/offsets --listen 0.0.0.0:7411 --secret-file /etc/hashmmap/secret
 *   replica:  hashmmap-replicate --replica /var/lib/app/offsets --primary db1:7411 --secret-file /etc/hashmmap/secret
 *   failover: hashmmap-replicate --promote /var/lib/app/offsets
 *
 * Runs in the foreground and logs to stderr, as systemd expects
 * (tools/hashmmap-replicate.service); SIGTERM shuts it down cleanly.
 */
#ifdef HAVE_CONFIG_H
#include "config.h" /* _GNU_SOURCE: accept4, getaddrinfo */
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hashmmap.h>

#include "repl.h"
#include "tools/bus_error.h"
#include "tools/errtext.h"
#include "tools/open_regular.h"

enum { EXIT_OK = 0, EXIT_USAGE = 2, EXIT_ERROR = 3 };

volatile sig_atomic_t repl_stop;

static void on_stop(int sig)
{
    (void)sig;
    repl_stop = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: hashmmap-replicate --serve DIR --listen ADDR:PORT --secret-file FILE [OPTION]...\n"
            "       hashmmap-replicate --replica DIR --primary HOST:PORT --secret-file FILE [OPTION]...\n"
            "       hashmmap-replicate --promote DIR\n"
            "Ship the replication log of the map in DIR to replicas (--serve), or keep the map in DIR\n"
            "a replica of a primary's (--replica; the map is created like the primary's when missing).\n"
            "A replica's map refuses local writes (HMM_REPLICA), also while no daemon runs, until\n"
            "--promote makes it a writable primary with a new epoch.\n"
            "\n"
            "  -s, --serve DIR          be the primary for the map in DIR\n"
            "  -l, --listen ADDR:PORT   where the primary accepts replicas\n"
            "  -r, --replica DIR        be a replica into DIR\n"
            "  -p, --primary HOST:PORT  the primary to follow\n"
            "      --promote DIR        make the replica in DIR a primary at a new epoch (stop its daemon first)\n"
            "  -k, --secret-file FILE   the shared secret (16 to 256 bytes; mode 0600 or stricter)\n"
            "      --tls-cert FILE      PEM certificate (primary: required for TLS; replica: client cert)\n"
            "      --tls-key FILE       its private key\n"
            "      --tls-ca FILE        CA to verify the peer (replica: turns TLS on; primary: demands client certs)\n"
            "      --heartbeat MS       heartbeat and idle ack interval (default 1000)\n"
            "      --timeout MS         drop a peer silent this long (default 10000)\n"
            "      --max-replicas N     primary: authenticated replicas served at once (default 16)\n"
            "      --auth-timeout MS    primary: a connection must authenticate within this (default 3000)\n"
            "      --backoff-max MS     replica: longest pause between reconnects (default 10000)\n"
            "      --log-level LEVEL    error, warning, info (default) or debug\n"
            "  -v, --verbose            same as --log-level debug\n"
            "  -f, --foreground         stay in the foreground (the default; for systemd)\n"
            "  -h, --help               this help\n"
            "  -V, --version            the version\n"
            "\n"
            "Examples:\n"
            "  head -c 32 /dev/urandom | base64 > /etc/hashmmap/secret; chmod 600 /etc/hashmmap/secret\n"
            "  hashmmap-replicate --serve /var/lib/app/offsets --listen 0.0.0.0:7411 --secret-file /etc/hashmmap/secret\n"
            "  hashmmap-replicate --replica /var/lib/app/offsets --primary db1:7411 --secret-file /etc/hashmmap/secret\n"
            "  hashmmap-stat /var/lib/app/offsets      # role, epoch, lag, bytes, resyncs, connection state\n"
            "  hashmmap-replicate --promote /var/lib/app/offsets   # failover: the replica takes over\n"
            "\n"
            "Exit status: 0 stopped by SIGTERM/SIGINT, 2 usage error, 3 the map, the address or TLS setup failed.\n");
}

/* The secret must be ours and readable by nobody else: it is all that
 * keeps a stranger from reading the map or writing into a replica.  A file
 * another user owns (even 0600: root can read it) could be theirs to
 * rewrite, so a root daemon would trust a secret a user chose.  A FIFO
 * would block the open or the read: refused at once (open_regular.h). */
static int read_secret(const char *path, struct repl_options *o)
{
    struct stat sb;
    char why[96] = "";
    int fd = hmm__open_regular_at(AT_FDCWD, path, O_RDONLY, &sb, why, sizeof why);
    if (fd < 0) {
        fprintf(stderr, "hashmmap-replicate: --secret-file %s: %s\n", path, fd == -EINVAL ? why : strerror(-fd));
        return -1;
    }
    if ((sb.st_mode & 077) || sb.st_uid != geteuid()) {
        fprintf(stderr, "hashmmap-replicate: --secret-file %s: must be a regular file of user %lu (owner %lu) "
                "that only its owner can read (chmod 600)\n", path, (unsigned long)geteuid(),
                (unsigned long)sb.st_uid);
        goto fail;
    }
    ssize_t n = read(fd, o->secret, sizeof o->secret);
    char extra;
    if (n < 0 || (n == (ssize_t)sizeof o->secret && read(fd, &extra, 1) > 0)) {
        fprintf(stderr, "hashmmap-replicate: --secret-file %s: %s\n", path, n < 0 ? strerror(errno) : "longer than 256 bytes");
        goto fail;
    }
    while (n > 0 && (o->secret[n - 1] == '\n' || o->secret[n - 1] == '\r'))
        n--;
    if (n < 16) {
        fprintf(stderr, "hashmmap-replicate: --secret-file %s: shorter than 16 bytes\n", path);
        goto fail;
    }
    o->secret_len = (size_t)n;
    close(fd);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

int repl_file_id(const char *dir, const char *name, struct repl_file_id *id)
{
    char path[4096];
    struct stat sb;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path || stat(path, &sb))
        return -1;
    id->dev = (uint64_t)sb.st_dev;
    id->ino = (uint64_t)sb.st_ino;
    return 0;
}

static int parse_number(const char *opt, const char *arg, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    /* A digit first: strtoul skips blanks and negates a '-' number, so
     * "-18446744073709551615" read as 1. */
    if (arg[0] < '0' || arg[0] > '9' || errno || *end || v < min || v > max) {
        fprintf(stderr, "hashmmap-replicate: --%s: '%s' is not a number from %u to %u\n", opt, arg, min, max);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

enum { OPT_TLS_CERT = 256, OPT_TLS_KEY, OPT_TLS_CA, OPT_HEARTBEAT, OPT_TIMEOUT, OPT_MAX_REPLICAS,
       OPT_BACKOFF_MAX, OPT_LOG_LEVEL, OPT_PROMOTE, OPT_AUTH_TIMEOUT };

static const struct option long_options[] = {
    {"serve", required_argument, NULL, 's'},      {"listen", required_argument, NULL, 'l'},
    {"replica", required_argument, NULL, 'r'},    {"primary", required_argument, NULL, 'p'},
    {"secret-file", required_argument, NULL, 'k'}, {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY}, {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"heartbeat", required_argument, NULL, OPT_HEARTBEAT}, {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"max-replicas", required_argument, NULL, OPT_MAX_REPLICAS},
    {"backoff-max", required_argument, NULL, OPT_BACKOFF_MAX},
    {"promote", required_argument, NULL, OPT_PROMOTE},
    {"auth-timeout", required_argument, NULL, OPT_AUTH_TIMEOUT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL}, {"verbose", no_argument, NULL, 'v'},
    {"foreground", no_argument, NULL, 'f'},       {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},          {NULL, 0, NULL, 0},
};

/* The command line: the options of the role, and which role. */
struct command_line {
    struct repl_options o;
    const char *serve, *replica, *secret_file, *promote;
    int other_than_promote; /* the first option given besides --promote (its val), 0 none */
};

/* What the option parsers return to go on; anything else is the exit
 * status to stop with. */
#define CONTINUE (-1)

/* The numeric options: name, range, where each goes. */
static int parse_numeric_option(int opt, const char *arg, struct repl_options *o)
{
    const struct { int opt; const char *name; unsigned min, max; unsigned *dst; } numeric[] = {
        {OPT_HEARTBEAT, "heartbeat", 10, 60000, &o->heartbeat_ms},
        {OPT_TIMEOUT, "timeout", 100, 3600000, &o->timeout_ms},
        {OPT_MAX_REPLICAS, "max-replicas", 1, 1024, &o->max_replicas},
        {OPT_BACKOFF_MAX, "backoff-max", 200, 3600000, &o->backoff_max_ms},
        {OPT_AUTH_TIMEOUT, "auth-timeout", 100, 60000, &o->auth_timeout_ms},
    };
    for (unsigned i = 0; i < sizeof numeric / sizeof numeric[0]; i++)
        if (numeric[i].opt == opt &&
            parse_number(numeric[i].name, arg, numeric[i].min, numeric[i].max, numeric[i].dst))
            return EXIT_USAGE;
    return CONTINUE;
}

static int parse_log_level(const char *arg)
{
    int level = repl_log_level_parse(arg);
    if (level < 0) {
        fprintf(stderr, "hashmmap-replicate: --log-level: '%s' is not error, warning, info or debug\n", arg);
        return EXIT_USAGE;
    }
    repl_log_threshold = level;
    return CONTINUE;
}

static int apply_option(int opt, const char *arg, struct command_line *cl)
{
    switch (opt) {
    case 's': cl->serve = arg; return CONTINUE;
    case 'l': cl->o.listen = arg; return CONTINUE;
    case 'r': cl->replica = arg; return CONTINUE;
    case 'p': cl->o.primary = arg; return CONTINUE;
    case 'k': cl->secret_file = arg; return CONTINUE;
    case OPT_PROMOTE: cl->promote = arg; return CONTINUE;
    case OPT_TLS_CERT: cl->o.tls_cert = arg; return CONTINUE;
    case OPT_TLS_KEY: cl->o.tls_key = arg; return CONTINUE;
    case OPT_TLS_CA: cl->o.tls_ca = arg; return CONTINUE;
    case OPT_HEARTBEAT:
    case OPT_TIMEOUT:
    case OPT_MAX_REPLICAS:
    case OPT_AUTH_TIMEOUT:
    case OPT_BACKOFF_MAX: return parse_numeric_option(opt, arg, &cl->o);
    case OPT_LOG_LEVEL: return parse_log_level(arg);
    case 'v': repl_log_threshold = REPL_LOG_DEBUG; return CONTINUE;
    case 'f': return CONTINUE; /* the foreground is the only mode: systemd supervises, no double fork */
    case 'h': usage(stdout); return EXIT_OK;
    case 'V': printf("hashmmap-replicate %s\n", hmm_version(NULL, NULL, NULL)); return EXIT_OK;
    default: usage(stderr); return EXIT_USAGE;
    }
}

/* A usage error: the line, then exit status 2. */
static int refuse(const char *why)
{
    fprintf(stderr, "hashmmap-replicate: %s\n", why);
    return EXIT_USAGE;
}

/* getopt_long's refusal (opterr off) as one line: errtext_option(). */
static int refuse_option(int opt, char **argv)
{
    char text[ERRTEXT_MAX];
    fprintf(stderr, "hashmmap-replicate: %s (try --help)\n", errtext_option(opt, argv, long_options, text, sizeof text));
    return EXIT_USAGE;
}

/* An argument that is no option's: every directory belongs to one. */
static int refuse_argument(const char *arg)
{
    fprintf(stderr, "hashmmap-replicate: '%s' is not an option: a directory goes after --serve, --replica or "
                    "--promote (try --help)\n", arg);
    return EXIT_USAGE;
}

/* --promote DIR and nothing else: it runs no daemon, so any other option
 * would be ignored, which is worse than refused. */
static int check_promote_alone(const struct command_line *cl)
{
    if (!cl->other_than_promote)
        return CONTINUE;
    const struct option *lo = long_options;
    while (lo->name && lo->val != cl->other_than_promote)
        lo++;
    fprintf(stderr, "hashmmap-replicate: --promote DIR goes alone, without --%s (try --help)\n", lo->name);
    return EXIT_USAGE;
}

/* The options of --serve and --replica, which exclude each other. */
static int check_role_options(const struct command_line *cl)
{
    if (cl->serve && cl->replica)
        return refuse("--serve and --replica exclude each other (try --help)");
    if (!cl->serve && !cl->replica)
        return refuse("give either --serve DIR or --replica DIR (try --help)");
    if (cl->serve && (!cl->o.listen || cl->o.primary))
        return refuse("--serve needs --listen ADDR:PORT (and no --primary)");
    if (cl->replica && (!cl->o.primary || cl->o.listen))
        return refuse("--replica needs --primary HOST:PORT (and no --listen)");
    if (!cl->secret_file)
        return refuse("--secret-file FILE is required");
    if (cl->o.timeout_ms <= cl->o.heartbeat_ms)
        return refuse("--timeout must exceed --heartbeat");
    return CONTINUE;
}

/* Run the role until SIGTERM or SIGINT. */
static int run_role(struct command_line *cl)
{
    struct repl_options *o = &cl->o;
    if (read_secret(cl->secret_file, o))
        return EXIT_ERROR;
    o->dir = cl->serve ? cl->serve : cl->replica;

    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: poll returns at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* SSL_write uses write(): a closed peer is an error code, not a death */
    srand((unsigned)(getpid() ^ time(NULL)));

    int rc = cl->serve ? repl_primary_run(o) : repl_replica_run(o);
    OPENSSL_cleanse(o->secret, sizeof o->secret);
    return rc ? EXIT_ERROR : EXIT_OK;
}

int main(int argc, char **argv)
{
    tool_report_bus_errors("hashmmap-replicate");
    struct command_line cl = {.o = {.heartbeat_ms = 1000, .timeout_ms = 10000, .max_replicas = 16,
                                    .backoff_max_ms = 10000, .auth_timeout_ms = 3000}};
    int opt, status;
    opterr = 0; /* its message, then the whole usage: forty lines */
    while ((opt = getopt_long(argc, argv, ":s:l:r:p:k:vfhV", long_options, NULL)) != -1) {
        if (opt == '?' || opt == ':')
            return refuse_option(opt, argv);
        if (opt != OPT_PROMOTE && !cl.other_than_promote)
            cl.other_than_promote = opt;
        if ((status = apply_option(opt, optarg, &cl)) != CONTINUE)
            return status;
    }
    if (optind != argc)
        return refuse_argument(argv[optind]);
    if (cl.promote) {
        if ((status = check_promote_alone(&cl)) != CONTINUE)
            return status;
        return repl_promote(cl.promote) ? EXIT_ERROR : EXIT_OK;
    }
    status = check_role_options(&cl);
    if (status != CONTINUE)
        return status;
    return run_role(&cl);
}
