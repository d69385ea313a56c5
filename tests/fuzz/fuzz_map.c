/*
 * fuzz_map.c - libFuzzer harness: a valid map file, damaged by the input,
 * opened and used.  The input is a list of 5-byte patches (4-byte offset,
 * taken modulo the file size, and the byte to write there), so the fuzzer
 * explores damage to a real map instead of random megabytes.  Any return
 * code is fine; a crash, a hang or a sanitizer report is a bug.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hashmmap.h>

enum { KEYS = 200 };

static char dir[] = "/tmp/hmm-fuzz-map.XXXXXX";
static char path[256], metrics[256];
static uint8_t *pristine;
static size_t pristine_len;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/hashmmap.map", dir);
    snprintf(metrics, sizeof metrics, "%s/hashmmap.metrics", dir);
    hmm_config cfg = {.size = 256 << 10, .flags = HMM_CREATE};
    hmm_t *m;
    if (hmm_open(&m, dir, &cfg) != 0)
        abort();
    char key[32];
    for (int i = 0; i < KEYS; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        hmm_put(m, key, (size_t)kl, key, (size_t)kl * (size_t)(i % 5), 0, 0);
    }
    hmm_close(m);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    pristine_len = (size_t)ftell(f);
    rewind(f);
    pristine = malloc(pristine_len);
    if (fread(pristine, 1, pristine_len, f) != pristine_len)
        abort();
    fclose(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(pristine_len);
    memcpy(copy, pristine, pristine_len);
    for (size_t i = 0; i + 5 <= size; i += 5) {
        uint32_t at;
        memcpy(&at, data + i, 4);
        copy[at % pristine_len] = data[i + 4];
    }
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0 || write(fd, copy, pristine_len) != (ssize_t)pristine_len)
        abort();
    close(fd);
    free(copy);
    unlink(metrics);

    hmm_t *m;
    if (hmm_open(&m, dir, NULL) != 0)
        return 0;
    char key[32], val[256];
    for (int i = 0; i < KEYS; i += 3) {
        int kl = snprintf(key, sizeof key, "key-%d", i);
        size_t len = sizeof val;
        hmm_get(m, key, (size_t)kl, val, &len);
        if (i % 9 == 0)
            hmm_put(m, key, (size_t)kl, "x", 1, 0, 0);
    }
    hmm_cursor *c;
    if (hmm_cursor_open(m, &c) == 0) {
        const void *k, *v;
        size_t kl, vl;
        for (int n = 0; n < 4 * KEYS && hmm_cursor_next(c, &k, &kl, &v, &vl) == 0; n++)
            ;
        hmm_cursor_close(c);
    }
    hmm_check(m, HMM_CHECK_REPAIR, NULL);
    hmm_close(m);
    return 0;
}
