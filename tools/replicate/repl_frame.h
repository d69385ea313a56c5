/*
 * Frames of the replication protocol (docs/PROTOCOL.md): encoding into a
 * growable buffer and decoding of untrusted bytes.  Pure: no I/O, no
 * allocation while decoding, so the decoder can be fuzzed on its own
 * (tests/fuzz/fuzz_frames.c).  Every length and count that comes from the
 * network is checked here before anything is copied or trusted.
 */
#ifndef REPL_FRAME_H
#define REPL_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* 2: epochs (RESUME, START, RECORD) and the void count of RECORD; 3: record
 * digests in RESUME and SNAP_END, the proof of a replica's history
 * (docs/PROTOCOL.md §2, §4). */
#define REPL_PROTOCOL_VERSION 3u
#define REPL_NONCE_LEN 32u
#define REPL_MAC_LEN 32u   /* HMAC-SHA256 */
#define REPL_ID_LEN 16u
#define REPL_HEADER_LEN 5u /* u32 body length, u8 type */

/* Body limits: before authentication a peer may send only small frames, so
 * an unauthenticated peer cannot make us allocate more than this. */
#define REPL_MAX_BODY_UNAUTH 512u
/* After: one record with the largest key and a value up to 64 MiB. */
#define REPL_MAX_VALUE (64u << 20)
#define REPL_MAX_BODY (REPL_MAX_VALUE + 65535u + 64u)
#define REPL_MAX_ERROR_TEXT 200u
/* Sequence numbers of a log stay below 2^62 (FORMAT.md §13), so a next
 * seq is at most 2^62: larger ones are refused, and next_seq + 1 never wraps. */
#define REPL_MAX_SEQ (UINT64_C(1) << 62)
#define REPL_MAX_EPOCH UINT32_MAX
/* The most a sender puts between two seals: its output high-water mark
 * (1 MiB) plus one frame of the largest size, and change. */
#define REPL_MAX_SEALED ((size_t)REPL_MAX_BODY + (2u << 20))

enum repl_frame_type {
    REPL_CHALLENGE = 1,  /* primary -> replica: version, nonce */
    REPL_AUTH = 2,       /* replica -> primary: version, nonce, mac */
    REPL_AUTH_OK = 3,    /* primary -> replica: mac */
    REPL_RESUME = 4,     /* replica -> primary: has position, map id, next seq, epoch, proof (digest seq, digest) */
    REPL_START = 5,      /* primary -> replica: mode, map id, seq, geometry */
    REPL_RECORD = 6,     /* primary -> replica: one log record */
    REPL_SNAP_ENTRY = 7, /* primary -> replica: one entry of a snapshot */
    REPL_SNAP_END = 8,   /* primary -> replica: snapshot seq, entry count, digest of its record */
    REPL_HEARTBEAT = 9,  /* primary -> replica: last seq, wall clock */
    REPL_ACK = 10,       /* replica -> primary: next seq applied, wall clock */
    REPL_ERROR = 11,     /* either way, then close: code, text */
    REPL_SEAL = 12,      /* either way after AUTH_OK: counter, MAC of the frames since the last seal */
};

#define REPL_START_STREAM 1u
#define REPL_START_SNAPSHOT 2u
#define REPL_OP_PUT 1u /* == HMM_REC_PUT */
#define REPL_OP_DEL 2u /* == HMM_REC_DEL */

/* A decoded frame.  Pointers (key, val, text) point into the input bytes. */
struct repl_frame {
    uint8_t type;
    uint16_t version;
    uint8_t nonce[REPL_NONCE_LEN];
    uint8_t mac[REPL_MAC_LEN]; /* AUTH, AUTH_OK, SEAL */
    uint8_t map_id[REPL_ID_LEN];
    uint8_t has_position; /* RESUME */
    uint8_t mode;         /* START */
    uint8_t op;           /* RECORD */
    uint64_t seq;         /* SEAL counter, RESUME next seq, START seq, RECORD seq, SNAP_END seq, HEARTBEAT last seq, ACK next seq */
    uint32_t epoch;       /* RESUME: the replica's; START: the primary's; RECORD: the record's */
    uint32_t skipped;     /* RECORD: void sequence numbers right before seq (never sent) */
    uint64_t count;       /* SNAP_END entries */
    uint64_t digest_seq;  /* RESUME: the newest record the replica may hold */
    uint64_t digest;      /* RESUME: of record digest_seq; SNAP_END: of record seq; 0 none */
    uint64_t time_ms;     /* HEARTBEAT, ACK */
    /* START: the primary's geometry, so a missing replica map is made alike */
    uint64_t size, max_size, default_ttl_ms, replog_capacity;
    uint32_t flags, max_value;
    /* RECORD, SNAP_ENTRY */
    uint32_t tag;
    uint64_t expire_ms;
    const uint8_t *key;
    uint32_t klen;
    const uint8_t *val;
    uint32_t vlen;
    /* ERROR */
    uint16_t code;
    const char *text; /* not NUL-terminated; text_len bytes, printable ASCII */
    uint32_t text_len;
};

/* A growable byte buffer: data[off, len) is pending.  mark (off <= mark
 * <= len) is kept in place when the buffer is compacted: the transport
 * uses it for the end of the sealed (output) or verified (input) bytes. */
struct repl_buf {
    uint8_t *data;
    size_t off, len, cap;
    size_t mark;
};
int repl_buf_reserve(struct repl_buf *b, size_t more); /* 0 or -ENOMEM */
void repl_buf_consume(struct repl_buf *b, size_t n);
void repl_buf_free(struct repl_buf *b);
static inline size_t repl_buf_pending(const struct repl_buf *b) { return b->len - b->off; }

/* Split one frame off the front of in[0, n).  Returns the frame's total
 * length (header included) and its body in *body / *body_len, 0 when more
 * bytes are needed, or -EMSGSIZE when the announced body exceeds max_body
 * or is empty.  The caller passes the body to repl_frame_decode. */
long repl_frame_split(const uint8_t *in, size_t n, uint32_t max_body, const uint8_t **body, uint32_t *body_len);

/* Decode a frame body (type byte first) into *f.  0, or -EPROTO with a
 * static reason in *why: unknown type, wrong size for the type, a length
 * field that does not match the bytes, a bad op, tag or text. */
int repl_frame_decode(const uint8_t *body, uint32_t body_len, struct repl_frame *f, const char **why);

/* Encoders: append one whole frame to b.  0 or -ENOMEM (or -EINVAL for a
 * record beyond the limits, which the sender must not produce). */
int repl_put_challenge(struct repl_buf *b, const uint8_t nonce[REPL_NONCE_LEN]);
int repl_put_auth(struct repl_buf *b, const uint8_t nonce[REPL_NONCE_LEN], const uint8_t mac[REPL_MAC_LEN]);
int repl_put_auth_ok(struct repl_buf *b, const uint8_t mac[REPL_MAC_LEN]);
int repl_put_resume(struct repl_buf *b, int has_position, const uint8_t map_id[REPL_ID_LEN], uint64_t next_seq,
                    uint32_t epoch, uint64_t digest_seq, uint64_t digest);
int repl_put_start(struct repl_buf *b, const struct repl_frame *start); /* mode, map_id, seq, epoch, geometry */
/* A log record: its seq, how many void seqs precede it unsent, its epoch. */
struct repl_record_head {
    uint64_t seq;
    uint32_t skipped, epoch;
};
int repl_put_record(struct repl_buf *b, const struct repl_record_head *h, unsigned op, uint32_t tag,
                    uint64_t expire_ms, const void *key, size_t klen, const void *val, size_t vlen);
int repl_put_snap_entry(struct repl_buf *b, uint32_t tag, uint64_t expire_ms, const void *key, size_t klen,
                        const void *val, size_t vlen);
int repl_put_snap_end(struct repl_buf *b, uint64_t seq, uint64_t count, uint64_t digest);
int repl_put_heartbeat(struct repl_buf *b, uint64_t last_seq, uint64_t time_ms);
int repl_put_ack(struct repl_buf *b, uint64_t next_seq, uint64_t time_ms);
int repl_put_error(struct repl_buf *b, uint16_t code, const char *text);
int repl_put_seal(struct repl_buf *b, uint64_t counter, const uint8_t mac[REPL_MAC_LEN]);

/* The digest of a record (docs/PROTOCOL.md §2, "Record digest"): XXH3-64
 * of its RECORD body without the type byte and skipped, never 0 (0 means
 * "none").  The replica computes it from what it applies, the primary from
 * its log, and RESUME compares the two at the replica's position. */
uint64_t repl_record_digest(const struct repl_record_head *h, unsigned op, uint32_t tag, uint64_t expire_ms,
                            const void *key, size_t klen, const void *val, size_t vlen);

const char *repl_frame_name(unsigned type); /* "RECORD", or "?" */

#endif
