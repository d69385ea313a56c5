/*
 * put_overwrites.c - ROUNDS overwrites of KEYS 16-byte keys with 8-byte
 * values in a new file map under DIR, nothing else: a whole process whose
 * time is almost all puts, for an A/B of two builds of the library with
 * farm-bench (bench/README.md, "put, by part (fourth stop)").
 *
 *   put_overwrites DIR KEYS ROUNDS
 */
#include "config.h"

#include <dirent.h>
#include <hashmmap.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The map's directory holds files only: remove them, then it. */
static int remove_map(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char path[8192];
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    return rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: put_overwrites DIR KEYS ROUNDS\n");
        return 2;
    }
    long keys = atol(argv[2]), rounds = atol(argv[3]);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/put_overwrites.%d", argv[1], (int)getpid());
    hmm_config cfg = {.flags = HMM_CREATE, .size = 64 << 20, .max_size = UINT64_C(1) << 32};
    hmm_t *m = NULL;
    if (hmm_open(&m, dir, &cfg) != 0) {
        fprintf(stderr, "put_overwrites: %s\n", hmm_last_error());
        return 1;
    }
    char key[16] = {0};
    key[15] = 'k';
    uint64_t v = 0;
    for (long r = 0; r < rounds; r++)
        for (long i = 0; i < keys; i++) {
            memcpy(key, &i, sizeof i);
            v++;
            if (hmm_put(m, key, sizeof key, &v, sizeof v, 0, 0) != 0) {
                fprintf(stderr, "put_overwrites: %s\n", hmm_last_error());
                return 1;
            }
        }
    hmm_close(m);
    printf("%" PRIu64 " puts\n", v);
    return remove_map(dir) == 0 ? 0 : 1;
}
