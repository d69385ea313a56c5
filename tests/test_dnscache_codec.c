/*
 * test_dnscache_codec.c - the DNS cache shim's key and value format and its
 * result blocks (cache/dns/dnscache_codec.c), without the interposition.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "cache/dns/dnscache_codec.h"

/* A two-node list as libc would make it: IPv6 with canonname, then IPv4. */
static struct sockaddr_in6 sample_v6;
static struct sockaddr_in sample_v4;
static struct addrinfo sample_node2, sample_node1;

static struct addrinfo *sample_list(void)
{
    memset(&sample_v6, 0, sizeof sample_v6);
    sample_v6.sin6_family = AF_INET6;
    sample_v6.sin6_port = htons(443);
    inet_pton(AF_INET6, "2001:db8::7", &sample_v6.sin6_addr);
    memset(&sample_v4, 0, sizeof sample_v4);
    sample_v4.sin_family = AF_INET;
    sample_v4.sin_port = htons(443);
    inet_pton(AF_INET, "192.0.2.7", &sample_v4.sin_addr);
    sample_node2 = (struct addrinfo){ .ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                                      .ai_protocol = IPPROTO_TCP, .ai_addrlen = sizeof sample_v4,
                                      .ai_addr = (struct sockaddr *)&sample_v4 };
    sample_node1 = (struct addrinfo){ .ai_flags = AI_CANONNAME, .ai_family = AF_INET6,
                                      .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP,
                                      .ai_addrlen = sizeof sample_v6,
                                      .ai_addr = (struct sockaddr *)&sample_v6,
                                      .ai_canonname = "www.example.org", .ai_next = &sample_node2 };
    return &sample_node1;
}

/* The sample list's encoded value (malloc'ed). */
static uint8_t *encode_sample(size_t *vlen)
{
    uint8_t *val;
    assert_int_equal(dnsc_value_encode(DNSC_STATUS_ANSWER, sample_list(), &val, vlen), 0);
    return val;
}

static void assert_same_node(const struct addrinfo *a, const struct addrinfo *b)
{
    assert_int_equal(a->ai_flags, b->ai_flags);
    assert_int_equal(a->ai_family, b->ai_family);
    assert_int_equal(a->ai_socktype, b->ai_socktype);
    assert_int_equal(a->ai_protocol, b->ai_protocol);
    assert_int_equal(a->ai_addrlen, b->ai_addrlen);
    assert_memory_equal(a->ai_addr, b->ai_addr, a->ai_addrlen);
    if (a->ai_canonname)
        assert_string_equal(a->ai_canonname, b->ai_canonname);
    else
        assert_null(b->ai_canonname);
}

static void test_answer_round_trips_into_one_block(void **state)
{
    (void)state;
    size_t vlen;
    uint8_t *val = encode_sample(&vlen);
    int status = -1;
    struct addrinfo *res = NULL;
    assert_int_equal(dnsc_value_decode(val, vlen, &status, &res), 0);
    assert_int_equal(status, DNSC_STATUS_ANSWER);
    assert_non_null(res);
    assert_same_node(&sample_node1, res);
    assert_non_null(res->ai_next);
    assert_same_node(&sample_node2, res->ai_next);
    assert_null(res->ai_next->ai_next);
    /* One allocation: nodes, addresses and names lie inside the same block. */
    uintptr_t lo = (uintptr_t)res, hi = lo + 4096;
    assert_true((uintptr_t)res->ai_addr > lo && (uintptr_t)res->ai_addr < hi);
    assert_true((uintptr_t)res->ai_next->ai_addr > lo && (uintptr_t)res->ai_next->ai_addr < hi);
    assert_true((uintptr_t)res->ai_canonname > lo && (uintptr_t)res->ai_canonname < hi);
    assert_int_equal(dnsc_block_free_if_ours(res), 1);
    free(val);
}

static void test_noname_round_trips_without_a_block(void **state)
{
    (void)state;
    uint8_t *val;
    size_t vlen;
    assert_int_equal(dnsc_value_encode(DNSC_STATUS_NONAME, NULL, &val, &vlen), 0);
    int status = -1;
    struct addrinfo *res = NULL;
    assert_int_equal(dnsc_value_decode(val, vlen, &status, &res), 0);
    assert_int_equal(status, DNSC_STATUS_NONAME);
    assert_null(res);
    free(val);
}

static void test_every_truncation_and_byte_flip_is_refused_or_consistent(void **state)
{
    (void)state;
    size_t vlen;
    uint8_t *val = encode_sample(&vlen);
    for (size_t len = 0; len < vlen; len++) {
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        memcpy(copy, val, len);
        int status;
        struct addrinfo *res = NULL;
        assert_int_equal(dnsc_value_decode(copy, len, &status, &res), -EINVAL);
        free(copy);
    }
    for (size_t at = 0; at < vlen; at++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *copy = malloc(vlen);
            memcpy(copy, val, vlen);
            copy[at] ^= (uint8_t)(1u << bit);
            int status;
            struct addrinfo *res = NULL;
            int rc = dnsc_value_decode(copy, vlen, &status, &res);
            /* A flip in an address byte still decodes; then the block must be whole. */
            assert_true(rc == 0 || rc == -EINVAL);
            if (rc == 0 && status == DNSC_STATUS_ANSWER) {
                for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
                    assert_true(ai->ai_addrlen <= sizeof(struct sockaddr_storage));
                assert_int_equal(dnsc_block_free_if_ours(res), 1);
            }
            free(copy);
        }
    }
    free(val);
}

static void test_foreign_and_freed_pointers_are_not_ours(void **state)
{
    (void)state;
    struct addrinfo *foreign = calloc(1, sizeof *foreign);
    assert_int_equal(dnsc_block_free_if_ours(foreign), 0);
    assert_int_equal(dnsc_block_free_if_ours(NULL), 0);
    free(foreign);

    size_t vlen;
    uint8_t *val = encode_sample(&vlen);
    int status;
    struct addrinfo *res;
    assert_int_equal(dnsc_value_decode(val, vlen, &status, &res), 0);
    assert_int_equal(dnsc_block_free_if_ours(res), 1);
    /* Freed: a second free is not recognised (it would go to libc, as a
     * double free does without the shim). */
    assert_int_equal(dnsc_block_free_if_ours(res), 0);
    free(val);
}

static void test_full_registry_refuses_instead_of_losing_track(void **state)
{
    (void)state;
    size_t vlen;
    uint8_t *val = encode_sample(&vlen);
    enum { MAX_HELD = 8192 };
    struct addrinfo **held = calloc(MAX_HELD, sizeof *held);
    size_t n = 0;
    int rc = 0;
    while (n < MAX_HELD) {
        int status;
        rc = dnsc_value_decode(val, vlen, &status, &held[n]);
        if (rc)
            break;
        n++;
    }
    assert_int_equal(rc, -ENOSPC);
    assert_true(n >= 64);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(dnsc_block_free_if_ours(held[i]), 1);
    /* Room again after the frees. */
    int status;
    struct addrinfo *res;
    assert_int_equal(dnsc_value_decode(val, vlen, &status, &res), 0);
    assert_int_equal(dnsc_block_free_if_ours(res), 1);
    free(held);
    free(val);
}

static void test_key_tells_apart_null_empty_and_hints(void **state)
{
    (void)state;
    uint8_t a[DNSC_KEY_MAX], b[DNSC_KEY_MAX];
    size_t alen, blen;
    struct addrinfo defaults = { .ai_flags = AI_V4MAPPED | AI_ADDRCONFIG, .ai_family = AF_UNSPEC };
    assert_int_equal(dnsc_key_build(a, &alen, "h", NULL, NULL), 0);
    assert_int_equal(dnsc_key_build(b, &blen, "h", NULL, &defaults), 0);
    assert_true(alen == blen && memcmp(a, b, alen) == 0); /* NULL hints = the documented defaults */
    assert_int_equal(dnsc_key_build(b, &blen, "h", "", NULL), 0);
    assert_false(alen == blen && memcmp(a, b, alen) == 0); /* service NULL vs "" */
    struct addrinfo v4 = { .ai_family = AF_INET };
    assert_int_equal(dnsc_key_build(b, &blen, "h", NULL, &v4), 0);
    assert_false(alen == blen && memcmp(a, b, alen) == 0);
    /* node "ab" + service "c" vs node "a" + service "bc": lengths keep them apart */
    assert_int_equal(dnsc_key_build(a, &alen, "ab", "c", NULL), 0);
    assert_int_equal(dnsc_key_build(b, &blen, "a", "bc", NULL), 0);
    assert_false(alen == blen && memcmp(a, b, alen) == 0);
    char *longname = malloc(DNSC_NAME_MAX + 2);
    memset(longname, 'x', DNSC_NAME_MAX + 1);
    longname[DNSC_NAME_MAX + 1] = '\0';
    assert_int_equal(dnsc_key_build(a, &alen, longname, NULL, NULL), -ENAMETOOLONG);
    free(longname);
}

int main(void)
{
    alarm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_round_trips_into_one_block),
        cmocka_unit_test(test_noname_round_trips_without_a_block),
        cmocka_unit_test(test_every_truncation_and_byte_flip_is_refused_or_consistent),
        cmocka_unit_test(test_foreign_and_freed_pointers_are_not_ours),
        cmocka_unit_test(test_full_registry_refuses_instead_of_losing_track),
        cmocka_unit_test(test_key_tells_apart_null_empty_and_hints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
