/*
 * tail_state.c - load, save and fingerprint hashmmap-tail's position
 * records (format in tail_state.h and hashmmap-tail(1)).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tools/tail_state.h"

#define TAIL_RECORD_MAX 128

int tail_state_load(hmm_t *m, const char *key, struct tail_pos *pos)
{
    char buf[TAIL_RECORD_MAX];
    size_t len = sizeof buf - 1;
    int rc = hmm_get(m, key, strlen(key), buf, &len);
    if (rc == HMM_TOOSMALL)
        return HMM_CORRUPT;
    if (rc)
        return rc;
    buf[len] = '\0';
    int used = 0;
    if (sscanf(buf, "dev=%" SCNu64 " ino=%" SCNu64 " off=%" SCNu64 " fplen=%" SCNu32 " fp=%" SCNx64 "%n",
               &pos->dev, &pos->ino, &pos->offset, &pos->fp_len, &pos->fp, &used) != 5
        || (size_t)used != len || pos->fp_len > TAIL_FP_MAX || pos->fp_len > pos->offset)
        return HMM_CORRUPT;
    return 0;
}

int tail_state_save(hmm_t *m, const char *key, const struct tail_pos *pos)
{
    char buf[TAIL_RECORD_MAX];
    int n = snprintf(buf, sizeof buf, "dev=%" PRIu64 " ino=%" PRIu64 " off=%" PRIu64 " fplen=%" PRIu32
                     " fp=%016" PRIx64, pos->dev, pos->ino, pos->offset, pos->fp_len, pos->fp);
    return hmm_put(m, key, strlen(key), buf, (size_t)n, 0, 0);
}

int tail_fingerprint(int fd, struct tail_pos *pos)
{
    unsigned char buf[TAIL_FP_MAX];
    uint32_t want = pos->offset < TAIL_FP_MAX ? (uint32_t)pos->offset : TAIL_FP_MAX;
    uint32_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, (off_t)(pos->offset - want + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ESPIPE;
        got += (uint32_t)n;
    }
    pos->fp_len = want;
    pos->fp = XXH64(buf, want, 0);
    return 0;
}
