/* Open addressing with linear probing; grows at half full. */
#ifdef HAVE_CONFIG_H
#include "config.h" /* _GNU_SOURCE: accept4, getaddrinfo */
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "repl_keyset.h"

struct keyset_slot {
    uint64_t hash;
    size_t klen;
    uint8_t *key; /* NULL: empty */
};

static uint64_t key_hash(const void *key, size_t klen)
{
    /* FNV-1a: keys come from our own authenticated primary, the set is
     * short-lived, and flooding it only slows one snapshot down. */
    const uint8_t *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < klen; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static struct keyset_slot *find(struct keyset_slot *slots, size_t cap, uint64_t h, const void *key, size_t klen)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        struct keyset_slot *s = &slots[i];
        if (!s->key || (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0))
            return s;
    }
}

static int grow(struct repl_keyset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    struct keyset_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].key)
            *find(slots, cap, s->slots[i].hash, s->slots[i].key, s->slots[i].klen) = s->slots[i];
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int repl_keyset_add(struct repl_keyset *s, const void *key, size_t klen)
{
    if ((s->count + 1) * 2 > s->cap && grow(s))
        return -ENOMEM;
    uint64_t h = key_hash(key, klen);
    struct keyset_slot *slot = find(s->slots, s->cap, h, key, klen);
    if (slot->key)
        return 0;
    slot->key = malloc(klen);
    if (!slot->key)
        return -ENOMEM;
    memcpy(slot->key, key, klen);
    slot->klen = klen;
    slot->hash = h;
    s->count++;
    return 0;
}

int repl_keyset_has(const struct repl_keyset *s, const void *key, size_t klen)
{
    if (!s->cap)
        return 0;
    return find(s->slots, s->cap, key_hash(key, klen), key, klen)->key != NULL;
}

void repl_keyset_free(struct repl_keyset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i].key);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

int repl_keyset_foreach(const struct repl_keyset *s, int (*fn)(void *ctx, const void *key, size_t klen), void *ctx)
{
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].key) {
            int rc = fn(ctx, s->slots[i].key, s->slots[i].klen);
            if (rc)
                return rc;
        }
    return 0;
}
