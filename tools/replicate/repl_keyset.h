/*
 * A process-local set of keys (whole copies, no hashes alone: a collision
 * must never make the replica keep a key the primary deleted).  Used to
 * remember which keys a snapshot carried.
 */
#ifndef REPL_KEYSET_H
#define REPL_KEYSET_H

#include <stddef.h>
#include <stdint.h>

struct repl_keyset {
    struct keyset_slot *slots;
    size_t cap, count;
};
int repl_keyset_add(struct repl_keyset *s, const void *key, size_t klen); /* 0 or -ENOMEM */
int repl_keyset_has(const struct repl_keyset *s, const void *key, size_t klen);
void repl_keyset_free(struct repl_keyset *s);
/* Call fn for every key until it returns nonzero, which is returned. */
int repl_keyset_foreach(const struct repl_keyset *s, int (*fn)(void *ctx, const void *key, size_t klen), void *ctx);

#endif
