/*
 * prefork-cache - a prefork line server whose workers share one cache.
 *
 * The parent creates an anonymous cache-mode map (hmm_open_anon +
 * HMM_CACHE), opens a listening socket, and forks workers; every worker
 * accepts connections on the same socket and shares the map, as nginx
 * workers share a shared dict.  A request is a line holding a word; the
 * reply is the word's (deliberately slow to compute) digest, from the
 * cache when any worker computed it before:
 *
 *   $ prefork-cache --port 7070 --workers 4 &
 *   listening on 127.0.0.1:7070
 *   $ printf 'alpha\nalpha\nSTATS\n' | nc -q1 127.0.0.1 7070
 *   MISS alpha 9e3779b97f4a7c15 worker 4242
 *   HIT alpha 9e3779b97f4a7c15 worker 4242
 *   STATS hits 1 misses 1 items 1
 *
 * Options: --port N (0: any free port, printed), --workers N, --ttl-ms N.
 * Stops, with its workers, on SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hashmmap.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* The "expensive" computation the cache saves: many rounds of FNV-1a. */
static uint64_t slow_digest(const char *word, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (int round = 0; round < 200000; round++)
        for (size_t i = 0; i < len; i++)
            h = (h ^ (uint8_t)word[i]) * 1099511628211ULL;
    return h;
}

static void answer(hmm_t *cache, FILE *out, char *line)
{
    line[strcspn(line, "\r\n")] = '\0';
    if (strcmp(line, "STATS") == 0) {
        hmm_stats st;
        hmm_stat(cache, &st);
        fprintf(out, "STATS hits %" PRIu64 " misses %" PRIu64 " items %" PRIu64 "\n", st.counters[HMM_C_HITS],
                st.counters[HMM_C_MISSES], st.items);
        return;
    }
    size_t len = strlen(line);
    if (len == 0 || len > 1024) {
        fprintf(out, "ERROR a request is one word of 1 to 1024 bytes\n");
        return;
    }
    char value[32];
    size_t vlen = sizeof value - 1;
    int rc = hmm_get(cache, line, len, value, &vlen);
    const char *how = "HIT";
    if (rc != 0) {
        how = "MISS";
        vlen = (size_t)snprintf(value, sizeof value, "%016" PRIx64, slow_digest(line, len));
        hmm_put(cache, line, len, value, vlen, 0, 0); /* a full cache evicts; a failure only costs a recompute */
    }
    value[vlen] = '\0';
    fprintf(out, "%s %s %s worker %d\n", how, line, value, (int)getpid());
}

static void serve_connection(hmm_t *cache, int fd)
{
    FILE *in = fdopen(fd, "r");
    FILE *out = fdopen(dup(fd), "w");
    if (!in || !out) {
        if (in)
            fclose(in);
        else
            close(fd);
        if (out)
            fclose(out);
        return;
    }
    char line[2048];
    while (!stopping && fgets(line, sizeof line, in)) {
        if (strncmp(line, "QUIT", 4) == 0)
            break;
        answer(cache, out, line);
        fflush(out);
    }
    fclose(in);
    fclose(out);
}

static void worker(hmm_t *cache, int listener)
{
    while (!stopping) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        serve_connection(cache, fd);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    int port = 0, workers = 4;
    uint64_t ttl_ms = 60000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
            workers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ttl-ms") == 0 && i + 1 < argc)
            ttl_ms = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: prefork-cache [--port N] [--workers N] [--ttl-ms N]\n");
            return 2;
        }
    }
    if (workers < 1 || workers > 64 || port < 0 || port > 65535) {
        fprintf(stderr, "prefork-cache: --workers 1..64, --port 0..65535\n");
        return 2;
    }
    hmm_config cfg = {.size = 16 << 20, .flags = HMM_CACHE, .default_ttl_ms = ttl_ms};
    hmm_t *cache;
    int rc = hmm_open_anon(&cache, &cfg);
    if (rc) {
        fprintf(stderr, "prefork-cache: %s\n", hmm_strerror(rc));
        return 1;
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 64) != 0 ||
        getsockname(listener, (struct sockaddr *)&addr, &alen) != 0) {
        perror("prefork-cache: listen");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    pid_t pids[64];
    for (int i = 0; i < workers; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            worker(cache, listener);
    }
    while (!stopping)
        pause();
    for (int i = 0; i < workers; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < workers; i++)
        waitpid(pids[i], NULL, 0);
    close(listener);
    hmm_close(cache);
    return 0;
}
