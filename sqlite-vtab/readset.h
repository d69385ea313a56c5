/*
 * readset.h - the versions of the rows a write statement has read, by key.
 * Internal to sqlite-vtab/.
 *
 * SQLite hands a DELETE to xUpdate with the row's key only; the version
 * the row was read with (to delete it only if nobody changed it since:
 * hmm_del_version) is remembered here when the cursor returns the key.
 */
#ifndef HMM_READSET_H
#define HMM_READSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqlite-vtab/bytebuf.h"

struct readset_slot {
    uint64_t hash;      /* 0: empty */
    size_t off, len;    /* the key in readset.keys */
    uint64_t version;
};

struct readset {
    struct readset_slot *slots;
    size_t nslots, n;   /* nslots a power of two (or 0), n used */
    struct bytebuf keys; /* every key noted, back to back */
};

/* Remember that key was read with version (a later read replaces it).
 * 0, or -1 when out of memory. */
int readset_note(struct readset *rs, const void *key, size_t len, uint64_t version);
/* The version key was read with, if it was. */
bool readset_find(const struct readset *rs, const void *key, size_t len, uint64_t *version);
/* Forget every key, keep the memory (at the end of a write statement). */
void readset_clear(struct readset *rs);
void readset_free(struct readset *rs);

#endif
