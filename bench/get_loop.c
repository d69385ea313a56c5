/*
 * get_loop.c - ROUNDS passes of hmm_get over KEYS 16-byte keys (8-byte
 * values) of the file map in DIR, nothing else: a whole process whose time
 * is almost all gets, for an A/B of two builds of the library
 * (bench/README.md, "get, by part (fifth stop)").  The map is made and
 * filled by the first run and kept, so later runs (of either build: the
 * format is the same) time gets, not puts; remove DIR afterwards.
 * Prints the nanoseconds per get of the get passes alone and a sum of the
 * values read, which must be equal for both builds.
 *
 *   get_loop DIR KEYS ROUNDS [inline]
 *
 * "inline": a new map is made with HMM_INLINE (format 2).
 */
#include "config.h"

#include <hashmmap.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void key_of(char key[16], uint64_t i)
{
    memset(key, 0, 16);
    memcpy(key, &i, sizeof i);
    key[15] = 'k';
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: get_loop DIR KEYS ROUNDS\n");
        return 2;
    }
    uint64_t keys = strtoull(argv[2], NULL, 10), rounds = strtoull(argv[3], NULL, 10);
    if (keys == 0) {
        fprintf(stderr, "get_loop: KEYS must be at least 1\n");
        return 2;
    }
    hmm_config cfg = {.flags = HMM_CREATE, .size = 64 << 20, .max_size = UINT64_C(1) << 34};
    if (argc > 4 && strcmp(argv[4], "inline") == 0)
        cfg.flags |= HMM_INLINE;
    hmm_t *m = NULL;
    if (hmm_open(&m, argv[1], &cfg) != 0) {
        fprintf(stderr, "get_loop: %s\n", hmm_last_error());
        return 1;
    }
    char key[16];
    uint64_t v;
    size_t len = sizeof v;
    key_of(key, keys - 1);
    if (hmm_get(m, key, sizeof key, &v, &len) == HMM_NOTFOUND) /* a new map: fill it */
        for (uint64_t i = 0; i < keys; i++) {
            key_of(key, i);
            v = i * 3;
            if (hmm_put(m, key, sizeof key, &v, sizeof v, 0, 0) != 0) {
                fprintf(stderr, "get_loop: %s\n", hmm_last_error());
                return 1;
            }
        }
    uint64_t sum = 0;
    double t0 = now_s();
    for (uint64_t r = 0; r < rounds; r++)
        for (uint64_t i = 0; i < keys; i++) {
            key_of(key, i);
            len = sizeof v;
            if (hmm_get(m, key, sizeof key, &v, &len) != 0) {
                fprintf(stderr, "get_loop: key %" PRIu64 ": %s\n", i, hmm_last_error());
                return 1;
            }
            sum += v;
        }
    double t = now_s() - t0;
    hmm_close(m);
    printf("%.1f ns per get, sum %" PRIu64 "\n", t * 1e9 / (double)(keys * rounds), sum);
    return 0;
}
