/*
 * tail_state.h - the position record of hashmmap-tail: where a log file was
 * read up to, and how to recognise that it is still the same file.
 *
 * Key: the file's absolute path.  Value (ASCII, so `hashmmap get` shows it):
 *     "dev=2049 ino=131075 off=5678 fplen=64 fp=0123456789abcdef"
 * dev/ino say which file the offset belongs to (a rotated file keeps them,
 * its successor does not); fp is a hash of the fplen bytes just before off,
 * so a file truncated in place (copytruncate) and grown past the old offset
 * before the next run is recognised too (logtail2 only compares sizes).
 */
#ifndef HMM_TAIL_STATE_H
#define HMM_TAIL_STATE_H

#include <stdint.h>

#include <hashmmap.h>

/* Bytes hashed before the offset: enough that a rewritten file rarely
 * matches by chance, small enough to cost one short read per run. */
#define TAIL_FP_MAX 64u

struct tail_pos {
    uint64_t dev;
    uint64_t ino;
    uint64_t offset;  /* start of the first line not yet printed */
    uint32_t fp_len;  /* bytes hashed, min(offset, TAIL_FP_MAX) */
    uint64_t fp;      /* XXH64 of bytes [offset - fp_len, offset) */
};

/* 0 and *pos; HMM_NOTFOUND when the path has no record; HMM_CORRUPT when
 * the value is not a record (written by something else). */
int tail_state_load(hmm_t *m, const char *key, struct tail_pos *pos);
int tail_state_save(hmm_t *m, const char *key, const struct tail_pos *pos);

/* Hash the bytes before offset in fd into pos->fp_len / pos->fp (pos->offset
 * must be set).  0, or -errno; -ESPIPE when the file is now shorter. */
int tail_fingerprint(int fd, struct tail_pos *pos);

#endif
