/*
 * bytebuf.h - keys copied back to back into one growing buffer, addressed
 * by offset (the buffer moves when it grows): the keys of `key IN (...)`
 * (keylist.c) and of the rows a write statement read (readset.c).
 * Internal to sqlite-vtab/.
 */
#ifndef HMM_BYTEBUF_H
#define HMM_BYTEBUF_H

#include <stddef.h>

struct bytebuf {
    char *data; /* sqlite3_malloc'ed */
    size_t used, cap;
};

/* Copy len bytes of src to the end, growing the buffer (first_cap bytes at
 * first, then doubling).  0 with the copy's offset in *off, or -1 when out
 * of memory (nothing changed). */
int bytebuf_append(struct bytebuf *b, size_t first_cap, const void *src, size_t len, size_t *off);
/* Forget the bytes, keep the memory. */
void bytebuf_clear(struct bytebuf *b);
void bytebuf_free(struct bytebuf *b);

#endif
