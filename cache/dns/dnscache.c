/*
 * dnscache.c - libhashmmap-dnscache.so: a host-wide getaddrinfo() cache
 * for unmodified programs.
 *
 *     LD_PRELOAD=/usr/local/lib/libhashmmap-dnscache.so program ...
 *     hashmmap-stat "$XDG_RUNTIME_DIR/hashmmap-dnscache"    # hits, misses
 *
 * Interposes getaddrinfo() and freeaddrinfo().  Answers live in a cache-mode
 * hashmmap map, so every process of the user (all workers of a prefork
 * server, all short-lived processes of a batch) shares one warm cache.
 *
 * Environment (read once per process):
 *   HASHMMAP_DNSCACHE_DIR           the cache map's directory; default
 *                                   $XDG_RUNTIME_DIR/hashmmap-dnscache, else
 *                                   $XDG_CACHE_HOME/hashmmap-dnscache, else
 *                                   $HOME/.cache/hashmmap-dnscache
 *   HASHMMAP_DNSCACHE_TTL           seconds an answer is kept (default 30;
 *                                   0: answers are not cached)
 *   HASHMMAP_DNSCACHE_NEGATIVE_TTL  seconds an EAI_NONAME is kept (default 5)
 *   HASHMMAP_DNSCACHE_DEBUG=1       one line on stderr for every decision to
 *                                   step aside (and why)
 *
 * What is never cached: EAI_AGAIN, EAI_SYSTEM and every other failure but
 * EAI_NONAME (they are transient or local); numeric hosts, AI_NUMERICHOST
 * and node NULL (no lookup to save).
 *
 * Safety.  A cache that another user can write is a poisoning hole: they
 * would choose where our connections go.  So the shim steps aside (calls the
 * real resolver, touches nothing) unless the directory is a real directory
 * (not a symlink, also when written "link/") owned by the effective user and
 * writable by nobody else, and its parent is owned by root or the user and
 * either writable by nobody else or sticky.  The sticky rule admits a
 * HASHMMAP_DNSCACHE_DIR in /tmp: in a sticky root-owned /tmp other users
 * cannot rename or remove our directory, which is the property that
 * matters; a directory that someone else made first fails the ownership
 * check.  The map files inside must be ours and not writable by others
 * either, and the map there must be one the shim makes (cache mode, no
 * replication log), never an application's map.  In secure execution
 * (setuid, setgid, capabilities: AT_SECURE) the shim never uses the cache:
 * the environment is the invoking user's, not the program's.
 *
 * Where the cache lives.  Never in /tmp by default: any local user can fill
 * /tmp (and take the name first).  $XDG_RUNTIME_DIR is a per-user tmpfs
 * with its own size limit that only the user can fill; without it (cron,
 * daemons, su) the user's cache directory, $XDG_CACHE_HOME or
 * $HOME/.cache, whose parent is the user's own; without a HOME the shim
 * steps aside.  Wherever it is, a full filesystem cannot crash a program:
 * the map's space is allocated when it is created (hmm_open then fails with
 * -ENOSPC and the shim uses libc's resolver, leaving no file behind), and a
 * cache map never grows, so no later store meets an unallocated page.
 *
 * Any failure of the cache (open, get, put, decode, memory) falls through to
 * the real resolver: the shim never breaks a program.  errno is preserved.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "cache/dns/dnscache_codec.h"
#include "hashmmap.h"

#define DNSCACHE_EXPORT __attribute__((visibility("default")))

#define DNSCACHE_DEFAULT_TTL_S 30
#define DNSCACHE_DEFAULT_NEGATIVE_TTL_S 5
#define DNSCACHE_MAP_BYTES (8u << 20)
#define DNSCACHE_VALUE_STACK 2048 /* most answers fit; larger ones are malloc'ed */

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);
typedef void (*freeaddrinfo_fn)(struct addrinfo *);

/* Written once under pthread_once, read-only afterwards (pthread_once
 * orders the writes before every caller's reads). */
static getaddrinfo_fn real_getaddrinfo;
static freeaddrinfo_fn real_freeaddrinfo;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static struct {
    hmm_t *map; /* NULL: the shim stepped aside for this process */
    uint64_t ttl_ms;
    uint64_t negative_ttl_ms;
} cache;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int debug_enabled;

/* One line, one write(): lines of concurrent threads never interleave, and
 * stdio's buffers and locks are left alone. */
__attribute__((format(printf, 1, 2)))
static void step_aside(const char *fmt, ...)
{
    if (!debug_enabled)
        return;
    char line[PATH_MAX + 256];
    int n = snprintf(line, sizeof line, "hashmmap-dnscache[%ld]: stepping aside: ", (long)getpid());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

static void find_real_functions(void)
{
    const char *debug = getenv("HASHMMAP_DNSCACHE_DEBUG");
    debug_enabled = debug && *debug && strcmp(debug, "0") != 0;
    real_getaddrinfo = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    real_freeaddrinfo = (freeaddrinfo_fn)dlsym(RTLD_NEXT, "freeaddrinfo");
}

/* Seconds from the environment, as milliseconds; def when unset or bad. */
static uint64_t env_seconds_ms(const char *name, unsigned long def)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return (uint64_t)def * 1000;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || *s == '-' || v > 86400UL * 365) {
        step_aside("%s=%s is not a number of seconds: using %lu", name, s, def);
        return (uint64_t)def * 1000;
    }
    return (uint64_t)v * 1000;
}

/* The cache directory (see "Where the cache lives" above); *make_parent
 * when its parent is the user's cache directory, which may not exist yet. */
static int cache_dir_path(char *buf, size_t cap, bool *make_parent)
{
    const char *dir = getenv("HASHMMAP_DNSCACHE_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    const char *cache_home = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    *make_parent = false;
    if (dir && *dir) {
        n = snprintf(buf, cap, "%s", dir);
    } else if (xdg && xdg[0] == '/') {
        n = snprintf(buf, cap, "%s/hashmmap-dnscache", xdg);
    } else if (cache_home && cache_home[0] == '/') {
        n = snprintf(buf, cap, "%s/hashmmap-dnscache", cache_home);
        *make_parent = true;
    } else if (home && home[0] == '/' && home[1] != '\0') {
        n = snprintf(buf, cap, "%s/.cache/hashmmap-dnscache", home);
        *make_parent = true;
    } else {
        return -ENOENT;
    }
    if (n <= 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    /* The checks below look at the last component with lstat: with a
     * trailing slash ("link/") or ending in "." or ".." ("link/.") the
     * kernel resolves a symlink there, and the parent checked would be the
     * link's, not the directory's.  So "dir/" is taken as "dir", and a path
     * that does not end in the directory's own name is refused. */
    size_t len = (size_t)n;
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    const char *slash = strrchr(buf, '/');
    const char *last = slash ? slash + 1 : buf;
    if (!*last || strcmp(last, ".") == 0 || strcmp(last, "..") == 0)
        return -EINVAL;
    return 0;
}

/* mkdir -m 0700 of path's parent (the user's cache directory). */
static void make_parent_dir(const char *path)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (mkdir(parent, 0700) != 0 && errno != EEXIST)
            step_aside("%s: cannot create the user's cache directory: %s", parent, strerror(errno));
    }
}

/* The checks of the opening comment; NULL when path is safe, else why not. */
static const char *unsafe_dir_reason(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return "cannot stat the cache directory";
    if (!S_ISDIR(st.st_mode))
        return "the cache directory is not a directory (or is a symlink)";
    if (st.st_uid != geteuid())
        return "the cache directory is not owned by the user";
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return "the cache directory is writable by other users";

    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    size_t len = strlen(parent);
    while (len > 1 && parent[len - 1] == '/')
        parent[--len] = '\0';
    char *slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    if (stat(parent, &st) != 0)
        return "cannot stat the cache directory's parent";
    if (st.st_uid != 0 && st.st_uid != geteuid())
        return "the cache directory's parent is not owned by root or the user";
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
        return "the cache directory's parent is writable by other users (and not sticky)";

    static const char *const files[] = { "hashmmap.map", "hashmmap.metrics" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char file[PATH_MAX];
        if (snprintf(file, sizeof file, "%s/%s", path, files[i]) >= (int)sizeof file)
            return "the cache directory's path is too long";
        if (lstat(file, &st) != 0)
            continue; /* not made yet: hmm_open creates it 0600 */
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
            return "a cache file is not a regular file of the user's, or writable by others";
    }
    return NULL;
}

static void open_cache(void)
{
    if (getauxval(AT_SECURE)) {
        step_aside("secure execution (setuid, setgid or capabilities): cache not used");
        return;
    }
    cache.ttl_ms = env_seconds_ms("HASHMMAP_DNSCACHE_TTL", DNSCACHE_DEFAULT_TTL_S);
    cache.negative_ttl_ms =
        env_seconds_ms("HASHMMAP_DNSCACHE_NEGATIVE_TTL", DNSCACHE_DEFAULT_NEGATIVE_TTL_S);

    char dir[PATH_MAX];
    bool make_parent;
    int where = cache_dir_path(dir, sizeof dir, &make_parent);
    if (where) {
        step_aside("%s", where == -ENOENT ? "no cache directory: none of HASHMMAP_DNSCACHE_DIR, XDG_RUNTIME_DIR, "
                                            "XDG_CACHE_HOME or HOME is set to an absolute path"
                         : where == -EINVAL ? "the cache directory's path does not end in its name "
                                              "(it is /, or ends in . or ..)"
                                            : "the cache directory's path is too long");
        return;
    }
    if (make_parent)
        make_parent_dir(dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        step_aside("%s: cannot create the cache directory: %s", dir, strerror(errno));
        return;
    }
    const char *why = unsafe_dir_reason(dir);
    if (why) {
        step_aside("%s: %s", dir, why);
        return;
    }
    hmm_config cfg = {
        .size = DNSCACHE_MAP_BYTES,
        .flags = HMM_CREATE | HMM_CACHE | HMM_NOREPLOG,
        .mode = 0600,
    };
    int rc = hmm_open(&cache.map, dir, &cfg);
    if (rc) {
        cache.map = NULL;
        step_aside("%s: cannot open the cache map: %s", dir, hmm_strerror(rc));
        return;
    }
    /* HMM_CREATE opens a map that is already there as it is: pointed at an
     * application's map (a HASHMMAP_DNSCACHE_DIR typo), the shim would
     * store its answers among the application's entries, fill a map that
     * never evicts and, through its replication log, ship them to the
     * replicas.  Only a map made as the shim makes it is the cache. */
    hmm_stats st;
    rc = hmm_stat(cache.map, &st);
    if (rc || (st.flags & (HMM_CACHE | HMM_NOREPLOG)) != (HMM_CACHE | HMM_NOREPLOG)) {
        step_aside("%s: %s", dir, rc ? hmm_strerror(rc) :
                   "the map there is not a DNS cache (a cache-mode map without a replication log): not touched");
        hmm_close(cache.map);
        cache.map = NULL;
    }
}

/* Why this call does not use the cache, or NULL when it may. */
static const char *bypass_reason(const char *node, const struct addrinfo *hints,
                                 struct addrinfo **res)
{
    if (!res)
        return "res is NULL";
    if (!node)
        return "no host name (passive or loopback address)";
    if (hints && (hints->ai_flags & AI_NUMERICHOST))
        return "AI_NUMERICHOST";
    struct in_addr a4;
    struct in6_addr a6;
    /* inet_aton, like getaddrinfo, also takes "127.1" and "0x7f.0.0.1";
     * a '%' is an IPv6 scope ("fe80::1%eth0"). */
    if (inet_aton(node, &a4) || inet_pton(AF_INET6, node, &a6) == 1 || strchr(node, '%'))
        return "numeric host";
    return NULL;
}

/* The cached answer for key: 1 and (*rc, *res) on a usable entry, else 0. */
static int cache_lookup(const uint8_t *key, size_t klen, int *rc, struct addrinfo **res)
{
    uint8_t stack_val[DNSCACHE_VALUE_STACK];
    uint8_t *val = stack_val;
    size_t vlen = sizeof stack_val;
    int found = 0;
    int got = hmm_get(cache.map, key, klen, val, &vlen);
    if (got == HMM_TOOSMALL) {
        /* Grown between the two calls?  Then it is a miss, nothing worse. */
        val = malloc(vlen);
        if (!val)
            return 0;
        got = hmm_get(cache.map, key, klen, val, &vlen);
    }
    if (got == 0) {
        int status;
        int dec = dnsc_value_decode(val, vlen, &status, res);
        if (dec == 0) {
            *rc = status == DNSC_STATUS_NONAME ? EAI_NONAME : 0;
            found = 1;
        } else {
            step_aside("cached answer not used (damaged entry or too many live results): %s", hmm_strerror(dec));
        }
    } else if (got != HMM_NOTFOUND) {
        step_aside("cache lookup failed: %s", hmm_strerror(got));
    }
    if (val != stack_val)
        free(val);
    return found;
}

static void cache_store(const uint8_t *key, size_t klen, int rc, const struct addrinfo *list)
{
    int status = rc == 0 ? DNSC_STATUS_ANSWER : DNSC_STATUS_NONAME;
    uint64_t ttl_ms = rc == 0 ? cache.ttl_ms : cache.negative_ttl_ms;
    if (ttl_ms == 0)
        return; /* TTL 0: this kind of answer is not cached */
    uint8_t *val;
    size_t vlen;
    int enc = dnsc_value_encode(status, rc == 0 ? list : NULL, &val, &vlen);
    if (enc) {
        step_aside("answer not cached: %s", hmm_strerror(enc));
        return;
    }
    int put = hmm_put(cache.map, key, klen, val, vlen, ttl_ms, 0);
    if (put)
        step_aside("answer not cached: %s", hmm_strerror(put));
    free(val);
}

DNSCACHE_EXPORT int getaddrinfo(const char *node, const char *service,
                                const struct addrinfo *hints, struct addrinfo **res)
{
    int saved_errno = errno;
    pthread_once(&real_once, find_real_functions);
    if (!real_getaddrinfo) {
        errno = ENOSYS;
        return EAI_SYSTEM;
    }
    const char *why = bypass_reason(node, hints, res);
    if (why) {
        step_aside("%s: %s", node ? node : "(null)", why);
        errno = saved_errno;
        return real_getaddrinfo(node, service, hints, res);
    }
    pthread_once(&cache_once, open_cache);
    if (!cache.map) {
        errno = saved_errno;
        return real_getaddrinfo(node, service, hints, res);
    }

    uint8_t key[DNSC_KEY_MAX];
    size_t klen;
    if (dnsc_key_build(key, &klen, node, service, hints)) {
        step_aside("%.64s...: name too long to cache", node);
        errno = saved_errno;
        return real_getaddrinfo(node, service, hints, res);
    }
    int rc;
    if (cache_lookup(key, klen, &rc, res)) {
        errno = saved_errno;
        return rc;
    }
    errno = saved_errno;
    rc = real_getaddrinfo(node, service, hints, res);
    int real_errno = errno; /* EAI_SYSTEM's detail must reach the caller */
    if (rc == 0 || rc == EAI_NONAME)
        cache_store(key, klen, rc, rc == 0 ? *res : NULL);
    errno = real_errno;
    return rc;
}

DNSCACHE_EXPORT void freeaddrinfo(struct addrinfo *res)
{
    int saved_errno = errno;
    if (!dnsc_block_free_if_ours(res)) {
        pthread_once(&real_once, find_real_functions);
        if (real_freeaddrinfo)
            real_freeaddrinfo(res);
    }
    errno = saved_errno;
}
