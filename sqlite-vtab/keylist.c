/*
 * keylist.c - the keys of `key IN (...)`: collected, sorted, deduplicated
 * (keylist.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "sqlite-vtab/keylist.h"
#include <sqlite3ext.h>

SQLITE_EXTENSION_INIT3

int keylist_add(struct keylist *l, const void *key, size_t len, unsigned cls)
{
    if (l->n == l->capn) {
        size_t capn = l->capn ? l->capn * 2 : 16;
        void *p = sqlite3_realloc64(l->items, capn * sizeof *l->items);
        if (!p)
            return -1;
        l->items = p;
        l->capn = capn;
    }
    size_t off;
    if (bytebuf_append(&l->keys, 256, key, len, &off))
        return -1;
    /* Offsets, not pointers, until the buffer stops moving (keylist_finish). */
    l->items[l->n++] = (struct keylist_item){NULL, off, len, cls};
    return 0;
}

static int item_cmp(const void *a, const void *b)
{
    const struct keylist_item *x = a, *y = b;
    int c = memcmp(x->bytes, y->bytes, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

void keylist_finish(struct keylist *l)
{
    for (size_t i = 0; i < l->n; i++)
        l->items[i].bytes = l->keys.data + l->items[i].off;
    if (l->n < 2)
        return; /* qsort on fewer is pointless (and UBSan dislikes a NULL base) */
    qsort(l->items, l->n, sizeof *l->items, item_cmp);
    size_t kept = 1;
    for (size_t i = 1; i < l->n; i++) {
        if (item_cmp(&l->items[kept - 1], &l->items[i]) != 0)
            l->items[kept++] = l->items[i];
        else
            l->items[kept - 1].classes |= l->items[i].classes;
    }
    l->n = kept;
}

void keylist_clear(struct keylist *l)
{
    bytebuf_clear(&l->keys);
    l->n = 0;
}

void keylist_free(struct keylist *l)
{
    bytebuf_free(&l->keys);
    sqlite3_free(l->items);
    memset(l, 0, sizeof *l);
}
