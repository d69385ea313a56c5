/*
 * store_net.c - Redis and memcached over a unix socket, the servers a user
 * would otherwise run beside the application.
 *
 * open() starts the server itself (redis-server / memcached found on PATH)
 * on a socket in the run's temporary directory and close() stops it, so
 * every measurement begins with an empty server and nothing is left
 * running.  The clients are hiredis and libmemcached when configure found
 * them, else the minimal RESP and memcached text-protocol clients below.
 * Filling a server (setup, not timed) always goes through a pipelined
 * writer on a raw socket: one round trip per key would take minutes.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif
#ifdef HAVE_LIBMEMCACHED
#include <libmemcached/memcached.h>
#endif

#include "bench/hmmbench.h"

/* ---- a buffered unix-socket connection (the minimal clients, the loader) ---- */

struct conn {
    int fd;
    size_t pos, have;
    char buf[16384];
};

static int conn_open(struct conn *c, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    c->pos = c->have = 0;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static int conn_write(struct conn *c, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

static int conn_fill(struct conn *c)
{
    if (c->pos == c->have)
        c->pos = c->have = 0;
    else if (c->pos > 0) {
        memmove(c->buf, c->buf + c->pos, c->have - c->pos);
        c->have -= c->pos;
        c->pos = 0;
    }
    ssize_t r;
    do
        r = read(c->fd, c->buf + c->have, sizeof c->buf - c->have);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return -1;
    c->have += (size_t)r;
    return 0;
}

/* The next line without its CRLF, NUL-terminated in the buffer (valid
 * until the next read), or NULL on a closed connection. */
static char *conn_line(struct conn *c)
{
    for (;;) {
        char *nl = memchr(c->buf + c->pos, '\n', c->have - c->pos);
        if (nl && nl > c->buf + c->pos && nl[-1] == '\r') {
            char *line = c->buf + c->pos;
            nl[-1] = '\0';
            c->pos = (size_t)(nl + 1 - c->buf);
            return line;
        }
        if (c->have - c->pos == sizeof c->buf || conn_fill(c) != 0)
            return NULL;
    }
}

#if !defined(HAVE_HIREDIS) || !defined(HAVE_LIBMEMCACHED)
/* Read n bytes (into out, which may be NULL to skip them) and a CRLF. */
static int conn_bytes(struct conn *c, void *out, size_t n)
{
    n += 2;
    while (n) {
        if (c->pos == c->have && conn_fill(c) != 0)
            return -1;
        size_t k = c->have - c->pos < n ? c->have - c->pos : n;
        size_t data = n > 2 ? (k < n - 2 ? k : n - 2) : 0;
        if (out && data) {
            memcpy(out, c->buf + c->pos, data);
            out = (char *)out + data;
        }
        c->pos += k;
        n -= k;
    }
    return 0;
}
#endif

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* ---- servers: started on a private socket, stopped at close ---- */

#define MAX_SERVERS 4
static pid_t running[MAX_SERVERS];

static void stop_all(void)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (running[i] > 0) {
            kill(running[i], SIGTERM);
            waitpid(running[i], NULL, 0);
            running[i] = 0;
        }
}

static void on_signal(int sig)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (running[i] > 0)
            kill(running[i], SIGTERM);
    signal(sig, SIG_DFL);
    raise(sig);
}

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char dirs[4096], file[4352];
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/usr/bin:/usr/local/bin", path ? path : "");
    for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(file, sizeof file, "%s/%s", d, prog);
        if (access(file, X_OK) == 0)
            return true;
    }
    return false;
}

/* Start argv[0] with output to <dir>/server.log, and wait until sock
 * accepts connections.  The pid, or -1. */
static pid_t server_start(char *const argv[], const char *dir, const char *sock)
{
    static bool hooked;
    if (!hooked) {
        hooked = true;
        atexit(stop_all);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
    int slot = 0;
    while (slot < MAX_SERVERS && running[slot] > 0)
        slot++;
    if (slot == MAX_SERVERS)
        return -1;
    char log[600];
    snprintf(log, sizeof log, "%s/server.log", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    running[slot] = pid;
    struct conn c;
    for (int ms = 0; ms < 5000; ms += 5) {
        if (conn_open(&c, sock) == 0) {
            conn_close(&c);
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            break;
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    fprintf(stderr, "hmmbench: %s did not start; see its log above:\n", argv[0]);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "tail -n 5 '%s' >&2", log);
    if (system(cmd) != 0) {
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    running[slot] = 0;
    return -1;
}

static void server_stop(pid_t pid)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (running[i] == pid) {
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
            running[i] = 0;
        }
}

/* What both servers' adapters hold. */
struct net {
    pid_t pid;
    char dir[512], sock[600];
    struct conn c; /* the minimal client's connection */
#ifdef HAVE_HIREDIS
    redisContext *redis;
#endif
#ifdef HAVE_LIBMEMCACHED
    memcached_st *mc;
#endif
};

static struct net *net_start(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    const char *prog = k->arg ? "memcached" : "redis-server";
    if (!on_path(prog)) {
        *why = k->arg ? "memcached not installed (apt-get install memcached)"
                      : "redis-server not installed (apt-get install redis-server)";
        return NULL;
    }
    struct net *n = calloc(1, sizeof *n);
    n->c.fd = -1;
    bench_path(n->dir, sizeof n->dir, k->id);
    if (mkdir(n->dir, 0700) != 0) {
        *why = "cannot make its directory";
        free(n);
        return NULL;
    }
    snprintf(n->sock, sizeof n->sock, "%s/sock", n->dir);
    char mem[32];
    snprintf(mem, sizeof mem, "%llu", (unsigned long long)(entries * (vlen + KEY_LEN + 96) * 2 >> 20) + 64);
    char *redis[] = {"redis-server", "--port", "0", "--unixsocket", n->sock, "--unixsocketperm", "700",
                     "--save", "", "--appendonly", "no", "--dir", n->dir, NULL};
    char *memcached[] = {"memcached", "-s", n->sock, "-a", "0700", "-m", mem, "-t", "2", "-u", "root", NULL};
    if (getuid() != 0)
        memcached[9] = NULL; /* -u is only allowed (and needed) as root */
    n->pid = server_start(k->arg ? memcached : redis, n->dir, n->sock);
    if (n->pid < 0) {
        *why = "the server did not start";
        bench_remove(n->dir);
        free(n);
        return NULL;
    }
    return n;
}

static void net_close(void *h)
{
    struct net *n = h;
#ifdef HAVE_HIREDIS
    if (n->redis)
        redisFree(n->redis);
#endif
#ifdef HAVE_LIBMEMCACHED
    if (n->mc)
        memcached_free(n->mc);
#endif
    conn_close(&n->c);
    server_stop(n->pid);
    bench_remove(n->dir);
    free(n);
}

/* ---- the pipelined loader (both protocols) ---- */

static size_t redis_set_cmd(char *out, const char *key, const void *val, size_t vlen)
{
    int n = sprintf(out, "*3\r\n$3\r\nSET\r\n$%d\r\n%.*s\r\n$%zu\r\n", KEY_LEN, KEY_LEN, key, vlen);
    memcpy(out + n, val, vlen);
    memcpy(out + n + vlen, "\r\n", 2);
    return (size_t)n + vlen + 2;
}

static size_t mc_set_cmd(char *out, const char *key, const void *val, size_t vlen, bool noreply)
{
    int n = sprintf(out, "set %.*s 0 0 %zu%s\r\n", KEY_LEN, key, vlen, noreply ? " noreply" : "");
    memcpy(out + n, val, vlen);
    memcpy(out + n + vlen, "\r\n", 2);
    return (size_t)n + vlen + 2;
}

static int net_load(void *h, const char (*keys)[KEY_LEN], size_t n, const void *val, size_t vlen, bool memcached)
{
    struct net *nt = h;
    struct conn c;
    if (conn_open(&c, nt->sock) != 0)
        return -1;
    enum { BATCH = 256 };
    static char buf[BATCH * (VAL_MAX + 96)];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i += BATCH) {
        size_t len = 0, batch = n - i < BATCH ? n - i : BATCH;
        for (size_t j = 0; j < batch; j++)
            len += memcached ? mc_set_cmd(buf + len, keys[i + j], val, vlen, true)
                             : redis_set_cmd(buf + len, keys[i + j], val, vlen);
        rc = conn_write(&c, buf, len);
        for (size_t j = 0; rc == 0 && !memcached && j < batch; j++) {
            const char *line = conn_line(&c);
            rc = line && line[0] == '+' ? 0 : -1;
        }
    }
    if (rc == 0 && memcached) { /* noreply sets: a command with a reply tells they are all done */
        const char *line;
        rc = conn_write(&c, "version\r\n", 9) == 0 && (line = conn_line(&c)) && strncmp(line, "VERSION", 7) == 0
                 ? 0
                 : -1;
    }
    conn_close(&c);
    return rc;
}

/* ---- Redis ---- */

static void *redis_open(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    struct net *n = net_start(k, entries, vlen, why);
    if (!n)
        return NULL;
#ifdef HAVE_HIREDIS
    n->redis = redisConnectUnix(n->sock);
    if (!n->redis || n->redis->err) {
#else
    if (conn_open(&n->c, n->sock) != 0) {
#endif
        *why = "cannot connect to redis-server";
        net_close(n);
        return NULL;
    }
    return n;
}

static int redis_load(void *h, const char (*keys)[KEY_LEN], size_t n, const void *val, size_t vlen)
{
    return net_load(h, keys, n, val, vlen, false);
}

#ifdef HAVE_HIREDIS
/* One command, argv style (no format string to parse); the reply's
 * string copied to val when val is not NULL. */
static int redis_do(struct net *n, int argc, const char **argv, const size_t *lens, void *val, size_t *vlen)
{
    redisReply *r = redisCommandArgv(n->redis, argc, argv, lens);
    if (!r)
        return -1;
    int rc = r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_NIL ? -1 : 0;
    if (rc == 0 && val) {
        if (r->type != REDIS_REPLY_STRING || r->len > *vlen)
            rc = -1;
        else
            memcpy(val, r->str, *vlen = r->len);
    }
    freeReplyObject(r);
    return rc;
}
#else
/* The minimal RESP client: send one command, read one reply. */
static int redis_do(struct net *n, int argc, const char **argv, const size_t *lens, void *val, size_t *vlen)
{
    char buf[VAL_MAX + 128];
    size_t len = (size_t)sprintf(buf, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        len += (size_t)sprintf(buf + len, "$%zu\r\n", lens[i]);
        memcpy(buf + len, argv[i], lens[i]);
        memcpy(buf + len + lens[i], "\r\n", 2);
        len += lens[i] + 2;
    }
    const char *line;
    if (conn_write(&n->c, buf, len) != 0 || !(line = conn_line(&n->c)))
        return -1;
    if (line[0] == '$') {
        long size = atol(line + 1);
        if (size < 0)
            return -1;
        if (val && (size_t)size > *vlen)
            return conn_bytes(&n->c, NULL, (size_t)size), -1;
        if (val)
            *vlen = (size_t)size;
        return conn_bytes(&n->c, val, (size_t)size);
    }
    return line[0] == '+' || line[0] == ':' ? 0 : -1;
}
#endif

static int redis_get(void *h, const char *key, void *val, size_t *vlen)
{
    const char *argv[] = {"GET", key};
    const size_t lens[] = {3, KEY_LEN};
    return redis_do(h, 2, argv, lens, val, vlen);
}

static int redis_put(void *h, const char *key, const void *val, size_t vlen)
{
    const char *argv[] = {"SET", key, val};
    const size_t lens[] = {3, KEY_LEN, vlen};
    return redis_do(h, 3, argv, lens, NULL, NULL);
}

static int redis_incr(void *h, const char *key)
{
    const char *argv[] = {"INCR", key};
    const size_t lens[] = {4, KEY_LEN};
    return redis_do(h, 2, argv, lens, NULL, NULL);
}

const struct store_kind store_redis = {
    .id = "redis",
    .name = "Redis (unix socket)",
#ifdef HAVE_HIREDIS
    .note = "Redis: redis-server on a unix socket, no persistence, client hiredis",
#else
    .note = "Redis: redis-server on a unix socket, no persistence, client: bench's minimal RESP client",
#endif
    .open = redis_open,
    .get = redis_get,
    .put = redis_put,
    .incr = redis_incr,
    .close = net_close,
    .load = redis_load,
    .arg = 0,
};

/* ---- memcached ---- */

static void *mc_open(const struct store_kind *k, uint64_t entries, size_t vlen, const char **why)
{
    struct net *n = net_start(k, entries, vlen, why);
    if (!n)
        return NULL;
#ifdef HAVE_LIBMEMCACHED
    n->mc = memcached_create(NULL);
    if (!n->mc || memcached_server_add_unix_socket(n->mc, n->sock) != MEMCACHED_SUCCESS) {
#else
    if (conn_open(&n->c, n->sock) != 0) {
#endif
        *why = "cannot connect to memcached";
        net_close(n);
        return NULL;
    }
    return n;
}

static int mc_load(void *h, const char (*keys)[KEY_LEN], size_t n, const void *val, size_t vlen)
{
    return net_load(h, keys, n, val, vlen, true);
}

#ifdef HAVE_LIBMEMCACHED
static int mc_get(void *h, const char *key, void *val, size_t *vlen)
{
    struct net *n = h;
    size_t len;
    uint32_t flags;
    memcached_return_t rc;
    char *v = memcached_get(n->mc, key, KEY_LEN, &len, &flags, &rc);
    int ret = v && len <= *vlen ? 0 : -1;
    if (ret == 0)
        memcpy(val, v, *vlen = len);
    free(v);
    return ret;
}

static int mc_put(void *h, const char *key, const void *val, size_t vlen)
{
    struct net *n = h;
    return memcached_set(n->mc, key, KEY_LEN, val, vlen, 0, 0) == MEMCACHED_SUCCESS ? 0 : -1;
}

static int mc_incr(void *h, const char *key)
{
    struct net *n = h;
    uint64_t v;
    return memcached_increment(n->mc, key, KEY_LEN, 1, &v) == MEMCACHED_SUCCESS ? 0 : -1;
}
#else
/* The minimal memcached text-protocol client. */
static int mc_get(void *h, const char *key, void *val, size_t *vlen)
{
    struct net *n = h;
    char cmd[KEY_LEN + 8];
    int len = sprintf(cmd, "get %.*s\r\n", KEY_LEN, key);
    const char *line;
    if (conn_write(&n->c, cmd, (size_t)len) != 0 || !(line = conn_line(&n->c)))
        return -1;
    if (strncmp(line, "VALUE ", 6) != 0)
        return -1;
    unsigned flags;
    size_t size;
    if (sscanf(line + 6 + KEY_LEN, " %u %zu", &flags, &size) != 2)
        return -1;
    int rc = size <= *vlen ? conn_bytes(&n->c, val, size) : (conn_bytes(&n->c, NULL, size), -1);
    *vlen = size;
    return (line = conn_line(&n->c)) && strcmp(line, "END") == 0 ? rc : -1;
}

static int mc_put(void *h, const char *key, const void *val, size_t vlen)
{
    struct net *n = h;
    char cmd[VAL_MAX + 64];
    const char *line;
    if (conn_write(&n->c, cmd, mc_set_cmd(cmd, key, val, vlen, false)) != 0 || !(line = conn_line(&n->c)))
        return -1;
    return strcmp(line, "STORED") == 0 ? 0 : -1;
}

static int mc_incr(void *h, const char *key)
{
    struct net *n = h;
    char cmd[KEY_LEN + 16];
    int len = sprintf(cmd, "incr %.*s 1\r\n", KEY_LEN, key);
    const char *line;
    if (conn_write(&n->c, cmd, (size_t)len) != 0 || !(line = conn_line(&n->c)))
        return -1;
    return line[0] >= '0' && line[0] <= '9' ? 0 : -1;
}
#endif

const struct store_kind store_memcached = {
    .id = "memcached",
    .name = "memcached (unix socket)",
#ifdef HAVE_LIBMEMCACHED
    .note = "memcached: on a unix socket, 2 threads, client libmemcached (text protocol)",
#else
    .note = "memcached: on a unix socket, 2 threads, client: bench's minimal text-protocol client",
#endif
    .open = mc_open,
    .get = mc_get,
    .put = mc_put,
    .incr = mc_incr,
    .close = net_close,
    .load = mc_load,
    .arg = 1,
};
