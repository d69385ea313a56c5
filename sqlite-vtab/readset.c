/*
 * readset.c - key -> version of the rows a write statement has read
 * (readset.h): an open-addressing hash table whose keys are copied into
 * one growing buffer.
 */
#include "config.h"

#include <string.h>

#include "sqlite-vtab/readset.h"
#include <sqlite3ext.h>

SQLITE_EXTENSION_INIT3

/* FNV-1a: keys are few per statement, a simple hash does. Never 0 (empty). */
static uint64_t key_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h ? h : 1;
}

static struct readset_slot *slot_for(const struct readset *rs, uint64_t h, const void *key, size_t len)
{
    size_t mask = rs->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct readset_slot *s = &rs->slots[i];
        if (!s->hash || (s->hash == h && s->len == len && memcmp(rs->keys.data + s->off, key, len) == 0))
            return s; /* the load stays under 1/2: an empty slot is always reached */
    }
}

static int grow_slots(struct readset *rs)
{
    size_t nslots = rs->nslots ? rs->nslots * 2 : 64;
    struct readset_slot *old = rs->slots, *slots = sqlite3_malloc64(nslots * sizeof *slots);
    if (!slots)
        return -1;
    memset(slots, 0, nslots * sizeof *slots);
    size_t old_n = rs->nslots;
    rs->slots = slots;
    rs->nslots = nslots;
    for (size_t i = 0; i < old_n; i++)
        if (old[i].hash)
            *slot_for(rs, old[i].hash, rs->keys.data + old[i].off, old[i].len) = old[i];
    sqlite3_free(old);
    return 0;
}

int readset_note(struct readset *rs, const void *key, size_t len, uint64_t version)
{
    if ((rs->n + 1) * 2 > rs->nslots && grow_slots(rs) != 0)
        return -1;
    uint64_t h = key_hash(key, len);
    struct readset_slot *s = slot_for(rs, h, key, len);
    if (!s->hash) {
        size_t off;
        if (bytebuf_append(&rs->keys, 4096, key, len, &off) != 0)
            return -1;
        *s = (struct readset_slot){h, off, len, 0};
        rs->n++;
    }
    s->version = version;
    return 0;
}

bool readset_find(const struct readset *rs, const void *key, size_t len, uint64_t *version)
{
    if (!rs->n)
        return false;
    const struct readset_slot *s = slot_for(rs, key_hash(key, len), key, len);
    if (!s->hash)
        return false;
    *version = s->version;
    return true;
}

void readset_clear(struct readset *rs)
{
    if (rs->n)
        memset(rs->slots, 0, rs->nslots * sizeof *rs->slots);
    rs->n = 0;
    bytebuf_clear(&rs->keys);
}

void readset_free(struct readset *rs)
{
    sqlite3_free(rs->slots);
    bytebuf_free(&rs->keys);
    memset(rs, 0, sizeof *rs);
}
