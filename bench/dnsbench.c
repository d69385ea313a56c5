/*
 * dnsbench - getaddrinfo() latency: libc's resolver against the DNS cache
 * shim (libhashmmap-dnscache.so) answering from a warm cache, for names in
 * /etc/hosts (no network: the figure is the cost of the lookup path itself,
 * a lower bound of what the shim saves on names that need DNS).
 *
 *     make bench-dns                      # or:
 *     bench/dnsbench [SHIM.so] [NAME...]  # default .libs/libhashmmap-dnscache.so, localhost
 *
 * The shim is dlopen'ed (RTLD_LOCAL), so one process calls both the real
 * functions (its own getaddrinfo binds to libc) and the shim's, which find
 * libc's through RTLD_NEXT exactly as under LD_PRELOAD.  The cache lives in
 * a fresh private directory.  Each call is a getaddrinfo + freeaddrinfo
 * pair, as a program does it.  HMMBENCH_QUICK=1: a short run.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);
typedef void (*freeaddrinfo_fn)(struct addrinfo *);

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Mean ns per getaddrinfo+freeaddrinfo of name; -1 when a call fails. */
static double time_lookups(getaddrinfo_fn resolve, freeaddrinfo_fn release, const char *name,
                           long iterations)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    double start = now_ns();
    for (long i = 0; i < iterations; i++) {
        struct addrinfo *res;
        if (resolve(name, "80", &hints, &res) != 0)
            return -1;
        release(res);
    }
    return (now_ns() - start) / (double)iterations;
}

int main(int argc, char **argv)
{
    const char *shim_path = argc > 1 ? argv[1] : ".libs/libhashmmap-dnscache.so";
    char *default_names[] = { "localhost", NULL };
    char **names = argc > 2 ? argv + 2 : default_names;
    int nnames = argc > 2 ? argc - 2 : 1;
    long iterations = getenv("HMMBENCH_QUICK") ? 2000 : 20000;

    char dir[] = "/tmp/hmm-dnsbench.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("dnsbench: mkdtemp");
        return 3;
    }
    setenv("HASHMMAP_DNSCACHE_DIR", dir, 1);
    setenv("HASHMMAP_DNSCACHE_TTL", "3600", 1); /* no expiry inside the run */
    void *shim = dlopen(shim_path, RTLD_NOW | RTLD_LOCAL);
    getaddrinfo_fn shim_resolve = shim ? (getaddrinfo_fn)dlsym(shim, "getaddrinfo") : NULL;
    freeaddrinfo_fn shim_release = shim ? (freeaddrinfo_fn)dlsym(shim, "freeaddrinfo") : NULL;
    if (!shim_resolve || !shim_release) {
        fprintf(stderr, "dnsbench: %s: %s\n", shim_path, shim ? "no getaddrinfo" : dlerror());
        rmdir(dir);
        return 3;
    }

    int rc = 0;
    printf("%-24s %12s %12s %8s   (%ld lookups each)\n", "name", "libc ns", "shim hit ns",
           "speedup", iterations);
    for (int i = 0; i < nnames; i++) {
        /* One call through the shim stores the answer: the timed ones hit. */
        double warm = time_lookups(shim_resolve, shim_release, names[i], 1);
        double real_ns = time_lookups(getaddrinfo, freeaddrinfo, names[i], iterations);
        double shim_ns = time_lookups(shim_resolve, shim_release, names[i], iterations);
        if (warm < 0 || real_ns < 0 || shim_ns < 0) {
            fprintf(stderr, "dnsbench: %s does not resolve\n", names[i]);
            rc = 1;
            continue;
        }
        printf("%-24s %12.0f %12.0f %7.1fx\n", names[i], real_ns, shim_ns, real_ns / shim_ns);
    }
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/hashmmap.map", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/hashmmap.metrics", dir);
    unlink(path);
    rmdir(dir);
    return rc;
}
