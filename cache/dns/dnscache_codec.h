/*
 * dnscache_codec.h - the DNS cache shim's key and value format, and the
 * result blocks it hands out (internal to libhashmmap-dnscache.so).
 *
 * Key:   "dns1" | i32 ai_flags | i32 ai_family | i32 ai_socktype |
 *        i32 ai_protocol | u16 node_len | node | u16 service_len | service
 *        (native byte order: the cache is host-local; a length of 0xffff
 *        stands for a NULL string, so NULL and "" never share a key).
 * Value: u8 version (1) | u8 status (0 answer, 1 EAI_NONAME) | u16 count |
 *        count x { i32 flags | i32 family | i32 socktype | i32 protocol |
 *                  u32 addrlen | u16 canon_len | addr bytes | canon bytes }
 *        (canon_len 0xffff: ai_canonname is NULL).
 * Decoding checks every length against the value's size: a damaged entry
 * is refused (-EINVAL), never trusted.
 */
#ifndef HASHMMAP_DNSCACHE_CODEC_H
#define HASHMMAP_DNSCACHE_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <netdb.h>

/* Longest node or service name the shim caches; longer ones bypass it
 * (a DNS name is at most 253 characters). */
#define DNSC_NAME_MAX 1024
#define DNSC_KEY_MAX (4 + 4 * 4 + 2 * (2 + DNSC_NAME_MAX))

#define DNSC_STATUS_ANSWER 0
#define DNSC_STATUS_NONAME 1

/* Build the cache key of a getaddrinfo() call into buf (DNSC_KEY_MAX bytes).
 * hints NULL means the defaults of getaddrinfo(3).  Returns 0 and *klen,
 * or -ENAMETOOLONG when node or service is longer than DNSC_NAME_MAX. */
int dnsc_key_build(uint8_t *buf, size_t *klen, const char *node, const char *service,
                   const struct addrinfo *hints);

/* Serialise a result into a malloc'ed value (*val, *vlen; free() it):
 * status DNSC_STATUS_ANSWER with the list, or DNSC_STATUS_NONAME with
 * list NULL.  Returns 0, -ENOMEM, or -E2BIG (a list the format cannot hold). */
int dnsc_value_encode(int status, const struct addrinfo *list, uint8_t **val, size_t *vlen);

/* Parse a value.  On 0: *status; for DNSC_STATUS_ANSWER *res is a new
 * result block (one allocation, registered as ours: release it with
 * dnsc_block_free_if_ours).  Returns -EINVAL for a damaged value, -ENOMEM,
 * or -ENOSPC when the registry of live blocks is full (the caller then
 * uses the real resolver). */
int dnsc_value_decode(const uint8_t *val, size_t vlen, int *status, struct addrinfo **res);

/* Free res if it is a block that dnsc_value_decode handed out and that is
 * still live; returns 1 then, else 0 (the caller gives res to libc). */
int dnsc_block_free_if_ours(struct addrinfo *res);

#endif
