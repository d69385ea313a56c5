/*
 * dnscache_codec.c - serialising getaddrinfo() results into cache values
 * and back into result blocks that our freeaddrinfo() can recognise.
 *
 * How a block is recognised, and why this way.
 *
 * freeaddrinfo(p) receives every result of the program: ours (decoded from
 * the cache) and libc's (misses and bypasses, which we pass through
 * untouched).  libc's glibc layout is one malloc per node with the
 * sockaddr right after the struct addrinfo.  Looking for a magic number in
 * front of p would read memory before a libc allocation: outside the
 * object, possibly unmapped, and a chance match would hand a libc pointer
 * to free() at a wrong offset.  So the marker is never consulted first.
 *
 * Instead every block we hand out is recorded in a small lock-free set of
 * live pointers (dnsc_live).  freeaddrinfo asks the set first; only a
 * pointer found there is ours, and only then do we look at the header in
 * front of it (magic plus a seal that ties the header to its own address),
 * which is memory we allocated.  Removing the pointer from the set with a
 * compare-and-swap also makes a racing double free of the same block lose
 * cleanly instead of freeing twice.  The set is process memory, so after
 * fork() the child holds the same blocks and the same set: it stays right.
 *
 * The set is bounded (DNSC_LIVE_SLOTS, DNSC_LIVE_PROBES per pointer).  When
 * a pointer finds no free slot the block is not handed out: the caller
 * falls back to the real resolver, whose result libc frees.  A program
 * that holds thousands of results at once only loses the cache, never
 * correctness.
 *
 * Known limit: freeaddrinfo() on a node in the middle of one of our lists
 * (legal with glibc, unusual) is not a registered pointer and goes to
 * libc, which cannot free it.  glibc programs free the head they got.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cache/dns/dnscache_codec.h"

#define DNSC_KEY_TAG "dns1"
#define DNSC_VALUE_VERSION 1
#define DNSC_NULL_LEN 0xffffu
#define DNSC_MAX_NODES 4096u   /* far above any real answer; bounds a damaged count */
#define DNSC_NODE_FIXED (4 * 4 + 4 + 2)

/* ---- the key ---- */

static void put_bytes(uint8_t **p, const void *src, size_t n)
{
    memcpy(*p, src, n);
    *p += n;
}

static void put_i32(uint8_t **p, int32_t v) { put_bytes(p, &v, sizeof v); }
static void put_u32(uint8_t **p, uint32_t v) { put_bytes(p, &v, sizeof v); }
static void put_u16(uint8_t **p, uint16_t v) { put_bytes(p, &v, sizeof v); }

static void put_string(uint8_t **p, const char *s)
{
    if (!s) {
        put_u16(p, DNSC_NULL_LEN);
        return;
    }
    size_t n = strlen(s);
    put_u16(p, (uint16_t)n);
    put_bytes(p, s, n);
}

int dnsc_key_build(uint8_t *buf, size_t *klen, const char *node, const char *service,
                   const struct addrinfo *hints)
{
    if ((node && strlen(node) > DNSC_NAME_MAX) || (service && strlen(service) > DNSC_NAME_MAX))
        return -ENAMETOOLONG;
    /* getaddrinfo(3): hints NULL behaves as AF_UNSPEC, any socket type and
     * protocol, ai_flags (AI_V4MAPPED | AI_ADDRCONFIG).  Spelling the
     * defaults out makes NULL and the equivalent hints share one entry. */
    struct addrinfo defaults = { .ai_flags = AI_V4MAPPED | AI_ADDRCONFIG, .ai_family = AF_UNSPEC };
    if (!hints)
        hints = &defaults;
    uint8_t *p = buf;
    put_bytes(&p, DNSC_KEY_TAG, 4);
    put_i32(&p, hints->ai_flags);
    put_i32(&p, hints->ai_family);
    put_i32(&p, hints->ai_socktype);
    put_i32(&p, hints->ai_protocol);
    put_string(&p, node);
    put_string(&p, service);
    *klen = (size_t)(p - buf);
    assert(*klen <= DNSC_KEY_MAX);
    return 0;
}

/* ---- the value ---- */

int dnsc_value_encode(int status, const struct addrinfo *list, uint8_t **val, size_t *vlen)
{
    size_t count = 0, bytes = 4;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        size_t canon = ai->ai_canonname ? strlen(ai->ai_canonname) : 0;
        if (++count > DNSC_MAX_NODES || ai->ai_addrlen > sizeof(struct sockaddr_storage) ||
            canon >= DNSC_NULL_LEN || (ai->ai_addrlen && !ai->ai_addr))
            return -E2BIG;
        bytes += DNSC_NODE_FIXED + ai->ai_addrlen + canon;
    }
    uint8_t *buf = malloc(bytes);
    if (!buf)
        return -ENOMEM;
    uint8_t *p = buf;
    *p++ = DNSC_VALUE_VERSION;
    *p++ = (uint8_t)status;
    put_u16(&p, (uint16_t)count);
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        put_i32(&p, ai->ai_flags);
        put_i32(&p, ai->ai_family);
        put_i32(&p, ai->ai_socktype);
        put_i32(&p, ai->ai_protocol);
        put_u32(&p, (uint32_t)ai->ai_addrlen);
        if (ai->ai_canonname)
            put_u16(&p, (uint16_t)strlen(ai->ai_canonname));
        else
            put_u16(&p, DNSC_NULL_LEN);
        if (ai->ai_addrlen)
            put_bytes(&p, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_canonname)
            put_bytes(&p, ai->ai_canonname, strlen(ai->ai_canonname));
    }
    assert((size_t)(p - buf) == bytes);
    *val = buf;
    *vlen = bytes;
    return 0;
}

/* ---- result blocks and the set of live ones ---- */

/* In front of the addrinfo array of every block we hand out.  seal ties
 * the header to its address, so a stale copy elsewhere never passes. */
struct dnsc_block {
    uint64_t magic;
    uint64_t seal;
    uint64_t total_bytes;
    uint64_t count;
};
#define DNSC_BLOCK_MAGIC 0x68686d6d646e7331ull /* "hhmmdns1" */
_Static_assert(sizeof(struct dnsc_block) % alignof(struct addrinfo) == 0,
               "the addrinfo array must be aligned right after the header");

#define DNSC_LIVE_SLOTS 4096u
#define DNSC_LIVE_PROBES 64u
static _Atomic(uintptr_t) dnsc_live[DNSC_LIVE_SLOTS];

static size_t live_home(uintptr_t p)
{
    /* Fibonacci hashing of the address; malloc results share low bits. */
    return (size_t)(((uint64_t)(p >> 4) * 0x9e3779b97f4a7c15ull) >> 52) % DNSC_LIVE_SLOTS;
}

static int live_insert(uintptr_t p)
{
    size_t home = live_home(p);
    for (size_t i = 0; i < DNSC_LIVE_PROBES; i++) {
        uintptr_t expected = 0;
        /* Release pairs with the acquire in live_remove: a thread that finds
         * p there also sees the block's contents.  (The program's own hand-
         * over of the pointer orders this already; the release makes the
         * set correct on its own.) */
        if (atomic_compare_exchange_strong_explicit(&dnsc_live[(home + i) % DNSC_LIVE_SLOTS],
                                                    &expected, p, memory_order_release,
                                                    memory_order_relaxed))
            return 0;
    }
    return -ENOSPC;
}

/* Take p out of the set; 1 if it was there (and this caller removed it). */
static int live_remove(uintptr_t p)
{
    size_t home = live_home(p);
    for (size_t i = 0; i < DNSC_LIVE_PROBES; i++) {
        _Atomic(uintptr_t) *slot = &dnsc_live[(home + i) % DNSC_LIVE_SLOTS];
        uintptr_t expected = p;
        /* Removal leaves 0 behind, so lookups scan the whole probe window
         * rather than stopping at the first empty slot. */
        if (atomic_load_explicit(slot, memory_order_relaxed) == p &&
            atomic_compare_exchange_strong_explicit(slot, &expected, 0, memory_order_acquire,
                                                    memory_order_relaxed))
            return 1;
    }
    return 0;
}

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

struct dnsc_reader {
    const uint8_t *p, *end;
};

static int take(struct dnsc_reader *r, void *dst, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return -EINVAL;
    if (dst)
        memcpy(dst, r->p, n);
    r->p += n;
    return 0;
}

/* One node's fixed part, read with every length checked. */
struct dnsc_node {
    int32_t flags, family, socktype, protocol;
    uint32_t addrlen;
    uint16_t canon_len;
    const uint8_t *addr, *canon;
};

static int read_node(struct dnsc_reader *r, struct dnsc_node *n)
{
    if (take(r, &n->flags, 4) || take(r, &n->family, 4) || take(r, &n->socktype, 4) ||
        take(r, &n->protocol, 4) || take(r, &n->addrlen, 4) || take(r, &n->canon_len, 2))
        return -EINVAL;
    if (n->addrlen > sizeof(struct sockaddr_storage))
        return -EINVAL;
    n->addr = r->p;
    if (take(r, NULL, n->addrlen))
        return -EINVAL;
    n->canon = r->p;
    if (n->canon_len != DNSC_NULL_LEN && take(r, NULL, n->canon_len))
        return -EINVAL;
    return 0;
}

int dnsc_value_decode(const uint8_t *val, size_t vlen, int *status, struct addrinfo **res)
{
    struct dnsc_reader r = { val, val + vlen };
    uint8_t version, st;
    uint16_t count;
    if (take(&r, &version, 1) || take(&r, &st, 1) || take(&r, &count, 2) ||
        version != DNSC_VALUE_VERSION)
        return -EINVAL;
    if (st == DNSC_STATUS_NONAME) {
        if (count != 0 || r.p != r.end)
            return -EINVAL;
        *status = st;
        return 0;
    }
    if (st != DNSC_STATUS_ANSWER || count == 0 || count > DNSC_MAX_NODES)
        return -EINVAL;

    /* First pass: validate everything and size the block. */
    const size_t addr_align = alignof(struct sockaddr_storage);
    size_t addr_bytes = 0, canon_bytes = 0;
    struct dnsc_reader scan = r;
    for (unsigned i = 0; i < count; i++) {
        struct dnsc_node n;
        if (read_node(&scan, &n))
            return -EINVAL;
        addr_bytes += round_up(n.addrlen, addr_align);
        if (n.canon_len != DNSC_NULL_LEN)
            canon_bytes += (size_t)n.canon_len + 1;
    }
    if (scan.p != scan.end)
        return -EINVAL;

    size_t nodes_bytes = round_up(count * sizeof(struct addrinfo), addr_align);
    size_t total = sizeof(struct dnsc_block) + nodes_bytes + addr_bytes + canon_bytes;
    struct dnsc_block *block = malloc(total);
    if (!block)
        return -ENOMEM;
    struct addrinfo *nodes = (struct addrinfo *)(block + 1);
    uint8_t *addr_area = (uint8_t *)nodes + nodes_bytes;
    char *canon_area = (char *)addr_area + addr_bytes;

    /* Second pass: fill; the reads cannot fail now. */
    for (unsigned i = 0; i < count; i++) {
        struct dnsc_node n;
        int rc = read_node(&r, &n);
        assert(rc == 0);
        (void)rc;
        struct addrinfo *ai = &nodes[i];
        memset(ai, 0, sizeof *ai);
        ai->ai_flags = n.flags;
        ai->ai_family = n.family;
        ai->ai_socktype = n.socktype;
        ai->ai_protocol = n.protocol;
        ai->ai_addrlen = n.addrlen;
        if (n.addrlen) {
            memcpy(addr_area, n.addr, n.addrlen);
            ai->ai_addr = (struct sockaddr *)addr_area;
            addr_area += round_up(n.addrlen, addr_align);
        }
        if (n.canon_len != DNSC_NULL_LEN) {
            memcpy(canon_area, n.canon, n.canon_len);
            canon_area[n.canon_len] = '\0';
            ai->ai_canonname = canon_area;
            canon_area += n.canon_len + 1;
        }
        ai->ai_next = i + 1 < count ? &nodes[i + 1] : NULL;
    }
    assert((uint8_t *)canon_area == (uint8_t *)block + total);

    block->magic = DNSC_BLOCK_MAGIC;
    block->seal = DNSC_BLOCK_MAGIC ^ (uint64_t)(uintptr_t)nodes;
    block->total_bytes = total;
    block->count = count;
    if (live_insert((uintptr_t)nodes)) {
        free(block);
        return -ENOSPC;
    }
    *status = DNSC_STATUS_ANSWER;
    *res = nodes;
    return 0;
}

int dnsc_block_free_if_ours(struct addrinfo *res)
{
    if (!res || !live_remove((uintptr_t)res))
        return 0;
    /* Registered, so the header in front is ours to read. */
    struct dnsc_block *block = (struct dnsc_block *)res - 1;
    assert(block->magic == DNSC_BLOCK_MAGIC);
    assert(block->seal == (DNSC_BLOCK_MAGIC ^ (uint64_t)(uintptr_t)res));
    block->magic = 0; /* a dangling copy of the pointer never looks live */
    free(block);
    return 1;
}
