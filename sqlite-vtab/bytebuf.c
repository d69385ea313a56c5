/*
 * bytebuf.c - one growing buffer of keys (bytebuf.h).
 */
#include "config.h"

#include <string.h>

#include "sqlite-vtab/bytebuf.h"
#include <sqlite3ext.h>

SQLITE_EXTENSION_INIT3

int bytebuf_append(struct bytebuf *b, size_t first_cap, const void *src, size_t len, size_t *off)
{
    if (len > b->cap - b->used) {
        size_t cap = b->cap ? b->cap : first_cap;
        while (len > cap - b->used)
            cap *= 2;
        char *p = sqlite3_realloc64(b->data, cap);
        if (!p)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    if (len) /* an empty key may come without a pointer */
        memcpy(b->data + b->used, src, len);
    *off = b->used;
    b->used += len;
    return 0;
}

void bytebuf_clear(struct bytebuf *b)
{
    b->used = 0;
}

void bytebuf_free(struct bytebuf *b)
{
    sqlite3_free(b->data);
    memset(b, 0, sizeof *b);
}
