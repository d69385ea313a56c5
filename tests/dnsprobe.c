/*
 * dnsprobe - resolve names with getaddrinfo() from forked workers and
 * threads, check that every worker saw the same answers, print them once.
 *
 *     dnsprobe [--fork N] [--threads M] [--repeat R] [--family 4|6]
 *              [--numeric-host] [--canon] [--hints-null] [--parent-first]
 *              [--dlopen LIB] NAME...
 *
 * Run with and without LD_PRELOAD=libhashmmap-dnscache.so, the outputs must
 * be identical (tests/dnscache.test).  --dlopen LIB takes getaddrinfo and
 * freeaddrinfo from LIB instead (the setuid test: the loader ignores
 * LD_PRELOAD in secure execution, a dlopen still runs the shim's checks).
 * Every result is freed with freeaddrinfo, so a result the shim made and
 * one libc made (numeric names) both go through it.
 * Exit: 0 all workers agree, 1 they differ, 2 usage, 3 other failure.
 * Links only libc: the test copies it alone for the setuid run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);
typedef void (*freeaddrinfo_fn)(struct addrinfo *);

static struct {
    int workers, threads, repeat, family, hints_null, flags, parent_first;
    char **names;
    int nnames;
    getaddrinfo_fn resolve;
    freeaddrinfo_fn release;
} opt = { .workers = 1, .threads = 1, .repeat = 1 };

/* A growing string (open_memstream): one per worker or thread. */
struct text {
    char *buf;
    size_t len;
    FILE *out;
};

static void text_open(struct text *t)
{
    t->buf = NULL;
    t->len = 0;
    t->out = open_memstream(&t->buf, &t->len);
    if (!t->out) {
        perror("dnsprobe: open_memstream");
        exit(3);
    }
}

static int text_equal(const struct text *a, const struct text *b)
{
    return a->len == b->len && memcmp(a->buf, b->buf, a->len) == 0;
}

/* Done writing: buf and len are final (buf is never NULL). */
static void text_close(struct text *t)
{
    if (fclose(t->out) != 0) {
        perror("dnsprobe: open_memstream");
        exit(3);
    }
    t->out = NULL;
}

static const char *eai_name(int rc)
{
    switch (rc) {
    case 0: return "0";
    case EAI_NONAME: return "EAI_NONAME";
    case EAI_AGAIN: return "EAI_AGAIN";
    case EAI_FAIL: return "EAI_FAIL";
    case EAI_FAMILY: return "EAI_FAMILY";
    case EAI_SERVICE: return "EAI_SERVICE";
    case EAI_SYSTEM: return "EAI_SYSTEM";
#ifdef EAI_NODATA
    case EAI_NODATA: return "EAI_NODATA";
#endif
    default: return "EAI_other";
    }
}

/* One round over every name, appended to t. */
static void resolve_all(struct text *t)
{
    struct addrinfo hints = { .ai_family = opt.family, .ai_flags = opt.flags };
    for (int i = 0; i < opt.nnames; i++) {
        struct addrinfo *res = NULL;
        int rc = opt.resolve(opt.names[i], NULL, opt.hints_null ? NULL : &hints, &res);
        fprintf(t->out, "%s: rc=%s\n", opt.names[i], eai_name(rc));
        if (rc != 0)
            continue;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            char addr[INET6_ADDRSTRLEN] = "?";
            if (ai->ai_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, addr, sizeof addr);
            else if (ai->ai_family == AF_INET6)
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, addr, sizeof addr);
            fprintf(t->out, "  family=%d socktype=%d protocol=%d addrlen=%u addr=%s canon=%s\n",
                     ai->ai_family, ai->ai_socktype, ai->ai_protocol, (unsigned)ai->ai_addrlen,
                     addr, ai->ai_canonname ? ai->ai_canonname : "-");
        }
        opt.release(res);
    }
}

/* A worker's (or thread's) output: the first round, after checking that
 * every later round said the same. */
static void *run_rounds(void *arg)
{
    struct text *first = arg;
    text_open(first);
    resolve_all(first);
    text_close(first);
    for (int r = 1; r < opt.repeat; r++) {
        struct text again;
        text_open(&again);
        resolve_all(&again);
        text_close(&again);
        if (!text_equal(&again, first)) {
            fprintf(stderr, "dnsprobe: round %d differs from round 1\n", r + 1);
            free(again.buf);
            return (void *)1;
        }
        free(again.buf);
    }
    return NULL;
}

/* Run opt.threads threads; their common output into out; 0, or 1 when they differ. */
static int run_threads(struct text *out)
{
    pthread_t tid[64];
    struct text texts[64];
    int differ = 0;
    memset(texts, 0, sizeof texts);
    for (int i = 0; i < opt.threads; i++)
        if (pthread_create(&tid[i], NULL, run_rounds, &texts[i])) {
            perror("dnsprobe: pthread_create");
            exit(3);
        }
    for (int i = 0; i < opt.threads; i++) {
        void *ret;
        pthread_join(tid[i], &ret);
        differ |= ret != NULL;
        if (i > 0 && !text_equal(&texts[i], &texts[0])) {
            fprintf(stderr, "dnsprobe: thread %d differs from thread 0\n", i);
            differ = 1;
        }
        if (i > 0)
            free(texts[i].buf);
    }
    *out = texts[0];
    return differ;
}

static int run_workers(void)
{
    int fds[64];
    pid_t pids[64];
    if (opt.parent_first) {
        /* The parent resolves before forking: the children inherit the
         * shim's open map (and its once-only state) instead of opening it. */
        struct text scratch;
        text_open(&scratch);
        resolve_all(&scratch);
        text_close(&scratch);
        free(scratch.buf);
    }
    for (int w = 0; w < opt.workers; w++) {
        int p[2];
        if (pipe(p)) {
            perror("dnsprobe: pipe");
            return 3;
        }
        pids[w] = fork();
        if (pids[w] < 0) {
            perror("dnsprobe: fork");
            return 3;
        }
        if (pids[w] == 0) {
            close(p[0]);
            struct text t;
            int differ = run_threads(&t);
            for (size_t off = 0; off < t.len;) {
                ssize_t n = write(p[1], t.buf + off, t.len - off);
                if (n <= 0)
                    _exit(3);
                off += (size_t)n;
            }
            _exit(differ);
        }
        close(p[1]);
        fds[w] = p[0];
    }
    int rc = 0;
    struct text first = { 0 };
    for (int w = 0; w < opt.workers; w++) {
        struct text t;
        text_open(&t);
        char buf[4096];
        ssize_t n;
        while ((n = read(fds[w], buf, sizeof buf)) > 0)
            fwrite(buf, 1, (size_t)n, t.out);
        text_close(&t);
        close(fds[w]);
        int status;
        if (waitpid(pids[w], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "dnsprobe: worker %d failed (status 0x%x)\n", w, status);
            rc = rc ? rc : 1;
        }
        if (w == 0) {
            first = t;
            continue;
        }
        if (!text_equal(&t, &first)) {
            fprintf(stderr, "dnsprobe: worker %d differs from worker 0\n", w);
            rc = 1;
        }
        free(t.buf);
    }
    fwrite(first.buf, 1, first.len, stdout);
    free(first.buf);
    return rc;
}

#if defined(__SANITIZE_ADDRESS__)
#include <sys/auxv.h>
/* LeakSanitizer cannot inspect a setuid process, and ASAN_OPTIONS does not
 * reach one (the sanitizer reads /proc/self/environ, which the new euid may
 * not read): turn leak checks off there only, they run in every other case. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return getauxval(AT_SECURE) ? "detect_leaks=0" : "";
}
#endif

static int usage(void)
{
    fprintf(stderr, "usage: dnsprobe [--fork N] [--threads M] [--repeat R] [--family 4|6] "
                    "[--numeric-host] [--canon] [--hints-null] [--parent-first] [--dlopen LIB] NAME...\n");
    return 2;
}

int main(int argc, char **argv)
{
    alarm(120); /* bounded even if a resolver hangs */
    const char *lib = NULL;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--fork") && v) opt.workers = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) opt.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--repeat") && v) opt.repeat = atoi(argv[++i]);
        else if (!strcmp(a, "--family") && v) {
            i++;
            opt.family = !strcmp(v, "4") ? AF_INET : !strcmp(v, "6") ? AF_INET6 : -1;
            if (opt.family < 0)
                return usage();
        } else if (!strcmp(a, "--numeric-host")) opt.flags |= AI_NUMERICHOST;
        else if (!strcmp(a, "--canon")) opt.flags |= AI_CANONNAME;
        else if (!strcmp(a, "--hints-null")) opt.hints_null = 1;
        else if (!strcmp(a, "--parent-first")) opt.parent_first = 1;
        else if (!strcmp(a, "--dlopen") && v) lib = argv[++i];
        else return usage();
    }
    if (i >= argc || opt.workers < 1 || opt.workers > 64 || opt.threads < 1 || opt.threads > 64 ||
        opt.repeat < 1 || opt.repeat > 100000)
        return usage();
    opt.names = argv + i;
    opt.nnames = argc - i;
    opt.resolve = getaddrinfo;
    opt.release = freeaddrinfo;
    if (lib) {
        void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dnsprobe: %s\n", dlerror());
            return 3;
        }
        opt.resolve = (getaddrinfo_fn)dlsym(h, "getaddrinfo");
        opt.release = (freeaddrinfo_fn)dlsym(h, "freeaddrinfo");
        if (!opt.resolve || !opt.release) {
            fprintf(stderr, "dnsprobe: %s: no getaddrinfo/freeaddrinfo\n", lib);
            return 3;
        }
    }
    fflush(stdout);
    return run_workers();
}
