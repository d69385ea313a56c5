/*
 * test_prefork.c - drives examples/prefork-cache: its forked workers share
 * one anonymous cache map, so a word computed by one worker is a hit for
 * the others.
 */
#include "config.h"

#include "tests/testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t server;
static int port;

static int start_server(void **state)
{
    (void)state;
    char path[4096];
    const char *b = getenv("builddir");
    snprintf(path, sizeof path, "%s/examples/prefork-cache", b && *b ? b : ".");
    int out[2];
    assert_int_equal(pipe(out), 0);
    pid_t parent = getpid();
    server = fork();
    if (server == 0) {
        tu_die_with_parent(parent);
        dup2(out[1], 1);
        close(out[0]);
        execl(path, path, "--port", "0", "--workers", "3", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char line[128] = "";
    if (!fgets(line, sizeof line, f) || sscanf(line, "listening on 127.0.0.1:%d", &port) != 1)
        return -1;
    fclose(f);
    return 0;
}

static int stop_server(void **state)
{
    (void)state;
    kill(server, SIGTERM);
    return tu_exit_code(tu_wait(server, 10000)) == 0 ? 0 : -1;
}

/* One connection, one request; the reply line in reply. */
static void ask(const char *word, char *reply, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    FILE *io = fdopen(fd, "r+");
    fprintf(io, "%s\n", word);
    fflush(io);
    assert_non_null(fgets(reply, (int)len, io));
    fprintf(io, "QUIT\n");
    fclose(io);
}

static void test_a_word_computed_by_one_worker_is_a_hit_for_all(void **state)
{
    char reply[256], first[256];
    ask("alpha", first, sizeof first);
    assert_memory_equal(first, "MISS alpha ", 11);
    int hits = 0, asked = 0;
    char workers[8][32] = {{0}};
    int nworkers = 0;
    /* Which worker accepts is the kernel's choice, and under a sanitizer
     * the others may still be starting: ask until two have answered (at
     * least 30 asks, at most 600, pausing a little once past 30). */
    for (; asked < 30 || (nworkers < 2 && asked < 600); asked++) {
        if (asked >= 30) {
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        ask("alpha", reply, sizeof reply);
        if (strncmp(reply, "HIT alpha ", 10) == 0)
            hits++;
        /* same digest from every worker */
        assert_memory_equal(reply + 4, first + 5, 27);
        const char *w = strstr(reply, "worker ");
        assert_non_null(w);
        bool known = false;
        for (int k = 0; k < nworkers; k++)
            known |= strcmp(workers[k], w) == 0;
        if (!known && nworkers < 8)
            snprintf(workers[nworkers++], sizeof workers[0], "%s", w);
    }
    assert_int_equal(hits, asked);
    assert_true(nworkers >= 2); /* the hits came from more than one process */
    ask("STATS", reply, sizeof reply);
    unsigned long h = 0, m = 0;
    assert_int_equal(sscanf(reply, "STATS hits %lu misses %lu", &h, &m), 2);
    assert_true(h >= 30 && m >= 1);
}

static void test_many_distinct_words_are_each_computed_once(void **state)
{
    char reply[256], word[32];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 50; i++) {
            snprintf(word, sizeof word, "w%d", i);
            ask(word, reply, sizeof reply);
            assert_memory_equal(reply, round ? "HIT" : "MISS", round ? 3 : 4);
        }
}

int main(void)
{
    tu_watchdog(120);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_word_computed_by_one_worker_is_a_hit_for_all),
        cmocka_unit_test(test_many_distinct_words_are_each_computed_once),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
