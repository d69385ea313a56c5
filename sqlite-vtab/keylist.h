/*
 * keylist.h - a set of byte-string keys: the right-hand side of
 * `key IN (...)`, collected in xFilter, then looked up one per row.
 * Internal to sqlite-vtab/.
 */
#ifndef HMM_KEYLIST_H
#define HMM_KEYLIST_H

#include <stddef.h>

#include "sqlite-vtab/bytebuf.h"

struct keylist_item {
    const char *bytes;  /* into keylist.keys, set by keylist_finish */
    size_t off, len;
    unsigned classes;   /* the sqlkey classes asked for with these bytes (a mask) */
};

struct keylist {
    struct bytebuf keys; /* all keys, back to back */
    struct keylist_item *items;
    size_t n, capn;
};

/* Append a copy of key, asked for as comparison class cls.  0, or -1 when
 * out of memory. */
int keylist_add(struct keylist *l, const void *key, size_t len, unsigned cls);
/* Sort by bytes and merge duplicates, keeping every class asked for (text
 * 'abc' and blob x'616263' are one entry, found once, which matches the
 * one of them that is its type).  Call once after the last keylist_add. */
void keylist_finish(struct keylist *l);
/* Forget the keys, keep the memory. */
void keylist_clear(struct keylist *l);
void keylist_free(struct keylist *l);

#endif
