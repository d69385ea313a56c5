/*
 * The replication protocol's frame parser (tools/replicate/repl_frame.c,
 * docs/PROTOCOL.md §2): every layout round-trips, and every kind of
 * malformed input a peer could send is refused with a reason, never read
 * past.  The fuzzer (tests/fuzz/fuzz_frames.c) explores the rest.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tools/replicate/repl_frame.h"

/* A record head with seq n, no voids before it, epoch 0. */
#define REC(n) (&(struct repl_record_head){(n), 0, 0})

/* Split and decode the first frame of b with limit max_body. */
static int decode(const struct repl_buf *b, uint32_t max_body, struct repl_frame *f, const char **why)
{
    const uint8_t *body;
    uint32_t len;
    long n = repl_frame_split(b->data + b->off, b->len - b->off, max_body, &body, &len);
    if (n <= 0)
        return n == 0 ? 1 : -1;
    return repl_frame_decode(body, len, f, why);
}

static void test_record_round_trips(void **state)
{
    struct repl_buf b = {0};
    struct repl_frame f;
    const char *why;
    const struct repl_record_head h = {77, 3, 9};
    assert_int_equal(repl_put_record(&b, &h, REPL_OP_PUT, 5, 123456789, "key", 3, "\0bin\xff", 5), 0);
    assert_int_equal(decode(&b, REPL_MAX_BODY, &f, &why), 0);
    assert_int_equal(f.type, REPL_RECORD);
    assert_int_equal(f.seq, 77);
    assert_int_equal(f.skipped, 3);
    assert_int_equal(f.epoch, 9);
    assert_int_equal(f.op, REPL_OP_PUT);
    assert_int_equal(f.tag, 5);
    assert_int_equal(f.expire_ms, 123456789);
    assert_int_equal(f.klen, 3);
    assert_memory_equal(f.key, "key", 3);
    assert_int_equal(f.vlen, 5);
    assert_memory_equal(f.val, "\0bin\xff", 5);
    repl_buf_free(&b);
}

static void test_start_round_trips_geometry(void **state)
{
    struct repl_buf b = {0};
    struct repl_frame s = {.mode = REPL_START_SNAPSHOT, .seq = 9, .epoch = 4, .size = 1u << 26, .max_size = 1ull << 33,
                           .flags = 8, .max_value = 1u << 20, .default_ttl_ms = 30000, .replog_capacity = 4u << 20};
    memset(s.map_id, 0xab, sizeof s.map_id);
    struct repl_frame f;
    const char *why;
    assert_int_equal(repl_put_start(&b, &s), 0);
    assert_int_equal(decode(&b, REPL_MAX_BODY_UNAUTH, &f, &why), 0);
    assert_int_equal(f.mode, REPL_START_SNAPSHOT);
    assert_memory_equal(f.map_id, s.map_id, sizeof s.map_id);
    assert_true(f.size == s.size && f.max_size == s.max_size && f.flags == s.flags && f.max_value == s.max_value &&
                f.default_ttl_ms == s.default_ttl_ms && f.replog_capacity == s.replog_capacity && f.seq == 9 &&
                f.epoch == 4);
    repl_buf_free(&b);
}

static void test_incomplete_frame_needs_more_bytes(void **state)
{
    struct repl_buf b = {0};
    const uint8_t *body;
    uint32_t len;
    assert_int_equal(repl_put_heartbeat(&b, 1, 2), 0);
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(repl_frame_split(b.data, n, REPL_MAX_BODY, &body, &len), 0);
    assert_int_equal(repl_frame_split(b.data, b.len, REPL_MAX_BODY, &body, &len), (long)b.len);
    repl_buf_free(&b);
}

static void test_oversized_frame_refused_before_authentication(void **state)
{
    struct repl_buf b = {0};
    const uint8_t *body;
    uint32_t len;
    assert_int_equal(repl_put_record(&b, REC(1), REPL_OP_PUT, 0, 0, "k", 1, NULL, 0), 0);
    uint8_t big[600] = {0};
    assert_int_equal(repl_put_snap_entry(&b, 0, 0, "k", 1, big, sizeof big), 0);
    /* the first frame is small: accepted; skip it and the big one is refused */
    long n = repl_frame_split(b.data, b.len, REPL_MAX_BODY_UNAUTH, &body, &len);
    assert_true(n > 0);
    assert_int_equal(repl_frame_split(b.data + n, b.len - (size_t)n, REPL_MAX_BODY_UNAUTH, &body, &len), -EMSGSIZE);
    assert_true(repl_frame_split(b.data + n, b.len - (size_t)n, REPL_MAX_BODY, &body, &len) > 0);
    const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff}, empty[4] = {0, 0, 0, 0};
    assert_int_equal(repl_frame_split(huge, 4, REPL_MAX_BODY, &body, &len), -EMSGSIZE);
    assert_int_equal(repl_frame_split(empty, 4, REPL_MAX_BODY, &body, &len), -EMSGSIZE);
    repl_buf_free(&b);
}

/* Decode body bytes given literally; returns the reason or NULL. */
static const char *refuse(const uint8_t *body, uint32_t len)
{
    struct repl_frame f;
    const char *why = NULL;
    int rc = repl_frame_decode(body, len, &f, &why);
    return rc == 0 ? NULL : why;
}

static void test_every_truncation_of_a_record_is_refused(void **state)
{
    struct repl_buf b = {0};
    assert_int_equal(repl_put_record(&b, REC(3), REPL_OP_PUT, 1, 2, "abc", 3, "defg", 4), 0);
    const uint8_t *body = b.data + 4;
    uint32_t len = (uint32_t)b.len - 4;
    for (uint32_t n = 1; n < len; n++)
        assert_non_null(refuse(body, n));
    assert_null(refuse(body, len));
    repl_buf_free(&b);
}

static void test_trailing_bytes_are_refused(void **state)
{
    struct repl_buf b = {0};
    assert_int_equal(repl_put_ack(&b, 5, 6), 0);
    uint8_t body[64];
    memcpy(body, b.data + 4, b.len - 4);
    body[b.len - 4] = 0;
    assert_non_null(refuse(body, (uint32_t)(b.len - 4 + 1)));
    repl_buf_free(&b);
}

static void test_lengths_that_disagree_with_the_body_are_refused(void **state)
{
    struct repl_buf b = {0};
    assert_int_equal(repl_put_record(&b, REC(3), REPL_OP_PUT, 1, 2, "abc", 3, "defg", 4), 0);
    uint8_t *body = b.data + 4;
    uint32_t len = (uint32_t)b.len - 4;
    size_t klen_at = 1 + 8 + 4 + 4 + 1 + 4 + 8;
    body[klen_at + 3] = 200; /* key length beyond the body */
    assert_string_equal(refuse(body, len), "truncated or oversized frame");
    body[klen_at + 3] = 0;   /* empty key */
    assert_string_equal(refuse(body, len - 3 - 4 - 4), "truncated or oversized frame");
    repl_buf_free(&b);
}

static void test_bad_fields_are_refused_with_a_reason(void **state)
{
    struct repl_buf b = {0};
    assert_int_equal(repl_put_record(&b, REC(3), REPL_OP_DEL, 0, 0, "k", 1, NULL, 0), 0);
    uint8_t *body = b.data + 4;
    uint32_t len = (uint32_t)b.len - 4;
    body[17] = 7; /* op */
    assert_string_equal(refuse(body, len), "bad RECORD op");
    body[17] = REPL_OP_DEL;
    body[18] = 1; /* tag 1 << 24 */
    assert_string_equal(refuse(body, len), "tag out of range");
    body[18] = 0;
    uint8_t unknown[3] = {42, 0, 0};
    assert_string_equal(refuse(unknown, 3), "unknown frame type");
    repl_buf_free(&b);
    /* a DEL that carries a value */
    assert_int_equal(repl_put_snap_entry(&b, 0, 0, "k", 1, "v", 1), 0);
    uint8_t del[64] = {REPL_RECORD, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, REPL_OP_DEL};
    memcpy(del + 18, b.data + 5, b.len - 5); /* tag, expiry, key, value of the entry */
    assert_string_equal(refuse(del, (uint32_t)(18 + b.len - 5)), "DEL record with a value");
    repl_buf_free(&b);
    /* key of 0 bytes */
    assert_int_equal(repl_put_snap_entry(&b, 0, 0, "k", 1, "", 0), 0);
    uint8_t *e = b.data + 4;
    e[1 + 4 + 8 + 3] = 0;
    uint8_t nokey[64];
    size_t at = 1 + 4 + 8 + 4;
    memcpy(nokey, e, at);
    memcpy(nokey + at, e + at + 1, 4);
    assert_string_equal(refuse(nokey, (uint32_t)(at + 4)), "key length out of range");
    repl_buf_free(&b);
}

static void test_error_text_must_be_short_and_printable(void **state)
{
    struct repl_buf b = {0};
    struct repl_frame f;
    const char *why;
    assert_int_equal(repl_put_error(&b, 4, "auth\nfailed"), 0); /* the encoder sanitises */
    assert_int_equal(decode(&b, REPL_MAX_BODY_UNAUTH, &f, &why), 0);
    assert_int_equal(f.text_len, 11);
    assert_memory_equal(f.text, "auth?failed", 11);
    uint8_t raw[] = {REPL_ERROR, 0, 1, 0, 0, 0, 2, 'o', 0x07};
    assert_string_equal(refuse(raw, sizeof raw), "ERROR text not printable");
    uint8_t longer[] = {REPL_ERROR, 0, 1, 0, 0, 1, 0};
    assert_string_equal(refuse(longer, sizeof longer), "ERROR text too long");
    repl_buf_free(&b);
}

static void test_encoder_refuses_what_the_decoder_would(void **state)
{
    struct repl_buf b = {0};
    assert_int_equal(repl_put_record(&b, REC(1), 3, 0, 0, "k", 1, NULL, 0), -EINVAL);
    assert_int_equal(repl_put_record(&b, REC(0), REPL_OP_PUT, 0, 0, "k", 1, NULL, 0), -EINVAL);
    assert_int_equal(repl_put_record(&b, REC(REPL_MAX_SEQ + 1), REPL_OP_PUT, 0, 0, "k", 1, NULL, 0), -EINVAL);
    assert_int_equal(repl_put_record(&b, &(struct repl_record_head){5, 5, 0}, REPL_OP_PUT, 0, 0, "k", 1, NULL, 0),
                     -EINVAL);
    assert_int_equal(repl_put_record(&b, REC(1), REPL_OP_PUT, 256, 0, "k", 1, NULL, 0), -EINVAL);
    assert_int_equal(repl_put_snap_entry(&b, 0, 0, "k", 0, NULL, 0), -EINVAL);
    assert_int_equal(repl_put_snap_entry(&b, 0, 0, "k", 1, "v", (size_t)REPL_MAX_VALUE + 1), -EINVAL);
    assert_int_equal(b.len, 0);
    repl_buf_free(&b);
}

/* Issue 16 item 10: seq 2^64-1 would wrap the replica's next_seq to 0. */
static void test_sequence_numbers_beyond_the_log_range_are_refused(void **state)
{
    struct repl_buf b = {0};
    assert_int_equal(repl_put_record(&b, REC(REPL_MAX_SEQ), REPL_OP_DEL, 0, 0, "k", 1, NULL, 0), 0);
    uint8_t *body = b.data + 4;
    uint32_t len = (uint32_t)b.len - 4;
    assert_null(refuse(body, len));
    memset(body + 1, 0xff, 8); /* seq 2^64-1 */
    assert_string_equal(refuse(body, len), "sequence number beyond 2^62");
    memset(body + 1, 0, 8); /* seq 0 */
    assert_string_equal(refuse(body, len), "RECORD seq 0 or more voids than seqs before it");
    body[8] = 2; /* seq 2 with 2 voids before it: would say seq 0 was void */
    body[12] = 2;
    assert_string_equal(refuse(body, len), "RECORD seq 0 or more voids than seqs before it");
    repl_buf_free(&b);
    for (unsigned type = REPL_RESUME; type <= REPL_ACK; type++) {
        if (type == REPL_RECORD || type == REPL_SNAP_ENTRY)
            continue;
        struct repl_frame s = {.mode = REPL_START_STREAM, .seq = UINT64_MAX};
        uint8_t id[REPL_ID_LEN] = {0};
        int rc = type == REPL_RESUME  ? repl_put_resume(&b, 1, id, UINT64_MAX, 0, 1, 1)
                 : type == REPL_START ? repl_put_start(&b, &s)
                 : type == REPL_SNAP_END ? repl_put_snap_end(&b, UINT64_MAX, 1, 1)
                 : type == REPL_HEARTBEAT ? repl_put_heartbeat(&b, UINT64_MAX, 1)
                                          : repl_put_ack(&b, UINT64_MAX, 1);
        assert_int_equal(rc, 0);
        assert_string_equal(refuse(b.data + 4, (uint32_t)b.len - 4), "sequence number beyond 2^62");
        repl_buf_free(&b);
        b = (struct repl_buf){0};
    }
}

static void test_resume_carries_the_replicas_epoch(void **state)
{
    struct repl_buf b = {0};
    struct repl_frame f;
    const char *why;
    uint8_t id[REPL_ID_LEN];
    memset(id, 0x5a, sizeof id);
    assert_int_equal(repl_put_resume(&b, 1, id, 1234, 77, 1233, 0x0123456789abcdefull), 0);
    assert_int_equal(decode(&b, REPL_MAX_BODY_UNAUTH, &f, &why), 0);
    assert_true(f.type == REPL_RESUME && f.has_position == 1 && f.seq == 1234 && f.epoch == 77);
    assert_memory_equal(f.map_id, id, sizeof id);
    repl_buf_free(&b);
}

static void test_resume_carries_the_proof_of_the_replicas_history(void **state)
{
    struct repl_buf b = {0};
    struct repl_frame f;
    const char *why;
    uint8_t id[REPL_ID_LEN] = {1};
    assert_int_equal(repl_put_resume(&b, 1, id, 1234, 77, 1234, 0xfedcba9876543210ull), 0);
    assert_int_equal(b.len, 4 + 1 + 1 + REPL_ID_LEN + 8 + 4 + 8 + 8);
    assert_int_equal(decode(&b, REPL_MAX_BODY_UNAUTH, &f, &why), 0);
    assert_true(f.digest == 0xfedcba9876543210ull && f.digest_seq == 1234 && f.seq == 1234);
    repl_buf_free(&b);
    b = (struct repl_buf){0};
    assert_int_equal(repl_put_resume(&b, 1, id, 5, 0, UINT64_MAX, 1), 0);
    assert_int_equal(decode(&b, REPL_MAX_BODY_UNAUTH, &f, &why), -EPROTO);
    assert_string_equal(why, "sequence number beyond 2^62");
    repl_buf_free(&b);
}

static void test_snap_end_carries_the_digest_of_its_record(void **state)
{
    struct repl_buf b = {0};
    struct repl_frame f;
    const char *why;
    assert_int_equal(repl_put_snap_end(&b, 41, 7, 99), 0);
    assert_int_equal(decode(&b, REPL_MAX_BODY_UNAUTH, &f, &why), 0);
    assert_true(f.type == REPL_SNAP_END && f.seq == 41 && f.count == 7 && f.digest == 99);
    repl_buf_free(&b);
}

/* A version 2 peer's RESUME (no proof) and SNAP_END (no digest) are 16 and
 * 8 bytes short: refused as truncated, never read as something else.  The
 * handshake refuses such a peer before (its CHALLENGE or AUTH says 2). */
static void test_version_2_layouts_are_refused(void **state)
{
    struct repl_buf b = {0};
    struct repl_frame f;
    const char *why;
    uint8_t id[REPL_ID_LEN] = {0}, nonce[REPL_NONCE_LEN] = {0};
    assert_int_equal(repl_put_resume(&b, 1, id, 5, 0, 4, 1), 0);
    assert_int_equal(repl_frame_decode(b.data + 4, (uint32_t)b.len - 4 - 16, &f, &why), -EPROTO);
    assert_string_equal(why, "truncated or oversized frame");
    repl_buf_free(&b);
    b = (struct repl_buf){0};
    assert_int_equal(repl_put_snap_end(&b, 5, 1, 1), 0);
    assert_int_equal(repl_frame_decode(b.data + 4, (uint32_t)b.len - 4 - 8, &f, &why), -EPROTO);
    repl_buf_free(&b);
    b = (struct repl_buf){0};
    /* A CHALLENGE says its version in its first field, whatever follows. */
    assert_int_equal(repl_put_challenge(&b, nonce), 0);
    b.data[5] = 0, b.data[6] = 2;
    assert_int_equal(decode(&b, REPL_MAX_BODY_UNAUTH, &f, &why), 0);
    assert_int_equal(f.version, 2);
    assert_int_not_equal(f.version, REPL_PROTOCOL_VERSION);
    repl_buf_free(&b);
}

/* The digest covers every field of the record that the replica applies
 * (docs/PROTOCOL.md §2), not skipped, and is never 0 (which means none). */
static void test_record_digest_covers_what_is_applied(void **state)
{
    const struct repl_record_head h = {3, 0, 1};
    uint64_t d = repl_record_digest(&h, REPL_OP_PUT, 0, 0, "key", 3, "v1", 2);
    assert_true(d != 0);
    assert_true(d == repl_record_digest(&(struct repl_record_head){3, 2, 1}, REPL_OP_PUT, 0, 0, "key", 3, "v1", 2));
    assert_true(d != repl_record_digest(&(struct repl_record_head){4, 0, 1}, REPL_OP_PUT, 0, 0, "key", 3, "v1", 2));
    assert_true(d != repl_record_digest(&(struct repl_record_head){3, 0, 2}, REPL_OP_PUT, 0, 0, "key", 3, "v1", 2));
    assert_true(d != repl_record_digest(&h, REPL_OP_PUT, 1, 0, "key", 3, "v1", 2));
    assert_true(d != repl_record_digest(&h, REPL_OP_PUT, 0, 5, "key", 3, "v1", 2));
    assert_true(d != repl_record_digest(&h, REPL_OP_PUT, 0, 0, "kez", 3, "v1", 2));
    assert_true(d != repl_record_digest(&h, REPL_OP_PUT, 0, 0, "key", 3, "v2", 2));
    /* Where the key ends and the value starts is part of it. */
    assert_true(repl_record_digest(&h, REPL_OP_PUT, 0, 0, "ab", 2, "c", 1) !=
                repl_record_digest(&h, REPL_OP_PUT, 0, 0, "a", 1, "bc", 2));
    assert_true(d != repl_record_digest(&h, REPL_OP_DEL, 0, 0, "key", 3, NULL, 0));
    /* A DEL's value is never part of it: the frame carries none. */
    assert_true(repl_record_digest(&h, REPL_OP_DEL, 0, 0, "key", 3, NULL, 0) ==
                repl_record_digest(&h, REPL_OP_DEL, 0, 0, "key", 3, "junk", 4));
}

int main(void)
{
    alarm(30);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_round_trips),
        cmocka_unit_test(test_start_round_trips_geometry),
        cmocka_unit_test(test_incomplete_frame_needs_more_bytes),
        cmocka_unit_test(test_oversized_frame_refused_before_authentication),
        cmocka_unit_test(test_every_truncation_of_a_record_is_refused),
        cmocka_unit_test(test_trailing_bytes_are_refused),
        cmocka_unit_test(test_lengths_that_disagree_with_the_body_are_refused),
        cmocka_unit_test(test_bad_fields_are_refused_with_a_reason),
        cmocka_unit_test(test_error_text_must_be_short_and_printable),
        cmocka_unit_test(test_encoder_refuses_what_the_decoder_would),
        cmocka_unit_test(test_sequence_numbers_beyond_the_log_range_are_refused),
        cmocka_unit_test(test_resume_carries_the_replicas_epoch),
        cmocka_unit_test(test_resume_carries_the_proof_of_the_replicas_history),
        cmocka_unit_test(test_snap_end_carries_the_digest_of_its_record),
        cmocka_unit_test(test_version_2_layouts_are_refused),
        cmocka_unit_test(test_record_digest_covers_what_is_applied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
