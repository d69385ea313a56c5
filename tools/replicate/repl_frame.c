/*
 * Frame encoding and decoding (docs/PROTOCOL.md, "Frames").  All integers
 * are big-endian.  A frame is: u32 body length, then the body, whose first
 * byte is the type.  Each type has a fixed layout; variable parts (keys,
 * values, error text) carry their own u32 length, which must agree exactly
 * with the body length.  Nothing read from the network is trusted before
 * the check that covers it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h" /* _GNU_SOURCE: accept4, getaddrinfo */
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL /* header-only, as in the library (configure checks for it) */
#include <xxhash.h>

#include "repl_frame.h"

int repl_buf_reserve(struct repl_buf *b, size_t more)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = b->mark = 0; /* drained: start over at the front */
    if (b->cap - b->len >= more)
        return 0;
    if (b->off > 0) { /* compact before growing */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->mark = b->mark > b->off ? b->mark - b->off : 0;
        b->off = 0;
        if (b->cap - b->len >= more)
            return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

void repl_buf_consume(struct repl_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = b->mark = 0;
}

void repl_buf_free(struct repl_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- decoding ---- */

/* A cursor over untrusted bytes: reads past the end set bad and yield 0. */
struct rd {
    const uint8_t *p;
    size_t left;
    int bad;
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t rd_uint(struct rd *r, unsigned bytes)
{
    const uint8_t *p = rd_take(r, bytes);
    uint64_t v = 0;
    for (unsigned i = 0; p && i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static void rd_copy(struct rd *r, void *dst, size_t n)
{
    const uint8_t *p = rd_take(r, n);
    if (p)
        memcpy(dst, p, n);
}

long repl_frame_split(const uint8_t *in, size_t n, uint32_t max_body, const uint8_t **body, uint32_t *body_len)
{
    if (n < 4)
        return 0;
    uint32_t len = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
    if (len == 0 || len > max_body)
        return -EMSGSIZE;
    if (n - 4 < len)
        return 0;
    *body = in + 4;
    *body_len = len;
    return (long)len + 4;
}

static int check_key_value(const struct repl_frame *f, const char **why)
{
    if (f->klen == 0 || f->klen > 65535u) {
        *why = "key length out of range";
        return -EPROTO;
    }
    if (f->vlen > REPL_MAX_VALUE) {
        *why = "value length out of range";
        return -EPROTO;
    }
    if (f->tag > 255u) {
        *why = "tag out of range";
        return -EPROTO;
    }
    return 0;
}

/* Where a RESUME or START stands in a log: map id, seq, epoch. */
static void rd_position(struct rd *r, struct repl_frame *f)
{
    rd_copy(r, f->map_id, REPL_ID_LEN);
    f->seq = rd_uint(r, 8);
    f->epoch = (uint32_t)rd_uint(r, 4);
}

/* The decoders, one per frame type: each reads the fields after the type
 * byte and checks what the layout alone cannot.  0, or -EPROTO with *why.
 * A read past the end only sets r->bad, and a field read from a short
 * frame is not checked: repl_frame_decode refuses the frame as truncated. */

static int decode_challenge(struct rd *r, struct repl_frame *f, const char **why)
{
    (void)why;
    f->version = (uint16_t)rd_uint(r, 2);
    rd_copy(r, f->nonce, REPL_NONCE_LEN);
    return 0;
}

static int decode_auth(struct rd *r, struct repl_frame *f, const char **why)
{
    decode_challenge(r, f, why);
    rd_copy(r, f->mac, REPL_MAC_LEN);
    return 0;
}

static int decode_auth_ok(struct rd *r, struct repl_frame *f, const char **why)
{
    (void)why;
    rd_copy(r, f->mac, REPL_MAC_LEN);
    return 0;
}

static int decode_seal(struct rd *r, struct repl_frame *f, const char **why)
{
    (void)why;
    f->seq = rd_uint(r, 8);
    rd_copy(r, f->mac, REPL_MAC_LEN);
    return 0;
}

static int decode_resume(struct rd *r, struct repl_frame *f, const char **why)
{
    f->has_position = (uint8_t)rd_uint(r, 1);
    rd_position(r, f);
    f->digest_seq = rd_uint(r, 8);
    f->digest = rd_uint(r, 8);
    if (!r->bad && f->has_position > 1) {
        *why = "bad RESUME flag";
        return -EPROTO;
    }
    if (!r->bad && f->digest_seq > REPL_MAX_SEQ) {
        *why = "sequence number beyond 2^62";
        return -EPROTO;
    }
    return 0;
}

static int decode_start(struct rd *r, struct repl_frame *f, const char **why)
{
    f->mode = (uint8_t)rd_uint(r, 1);
    rd_position(r, f);
    f->size = rd_uint(r, 8);
    f->max_size = rd_uint(r, 8);
    f->flags = (uint32_t)rd_uint(r, 4);
    f->max_value = (uint32_t)rd_uint(r, 4);
    f->default_ttl_ms = rd_uint(r, 8);
    f->replog_capacity = rd_uint(r, 8);
    if (!r->bad && f->mode != REPL_START_STREAM && f->mode != REPL_START_SNAPSHOT) {
        *why = "bad START mode";
        return -EPROTO;
    }
    return 0;
}

/* Tag, expiry, key and value: the tail of RECORD and SNAP_ENTRY. */
static int decode_entry(struct rd *r, struct repl_frame *f, const char **why)
{
    f->tag = (uint32_t)rd_uint(r, 4);
    f->expire_ms = rd_uint(r, 8);
    f->klen = (uint32_t)rd_uint(r, 4);
    f->key = rd_take(r, f->klen);
    f->vlen = (uint32_t)rd_uint(r, 4);
    f->val = rd_take(r, f->vlen);
    return r->bad ? 0 : check_key_value(f, why);
}

/* Checks in the order of the fields, so a frame wrong in several ways is
 * named for its first fault. */
static int decode_record(struct rd *r, struct repl_frame *f, const char **why)
{
    f->seq = rd_uint(r, 8);
    f->skipped = (uint32_t)rd_uint(r, 4);
    f->epoch = (uint32_t)rd_uint(r, 4);
    f->op = (uint8_t)rd_uint(r, 1);
    const char *entry_why = NULL;
    int entry_rc = decode_entry(r, f, &entry_why);
    if (r->bad)
        return 0;
    if (f->op != REPL_OP_PUT && f->op != REPL_OP_DEL)
        *why = "bad RECORD op";
    else if (f->seq == 0 || f->skipped >= f->seq)
        *why = "RECORD seq 0 or more voids than seqs before it";
    else if (f->op == REPL_OP_DEL && f->vlen != 0)
        *why = "DEL record with a value";
    else if (entry_rc)
        *why = entry_why;
    else
        return 0;
    return -EPROTO;
}

static int decode_snap_entry(struct rd *r, struct repl_frame *f, const char **why)
{
    f->op = REPL_OP_PUT;
    return decode_entry(r, f, why);
}

static int decode_snap_end(struct rd *r, struct repl_frame *f, const char **why)
{
    (void)why;
    f->seq = rd_uint(r, 8);
    f->count = rd_uint(r, 8);
    f->digest = rd_uint(r, 8);
    return 0;
}

static int decode_heartbeat(struct rd *r, struct repl_frame *f, const char **why)
{
    (void)why;
    f->seq = rd_uint(r, 8);
    f->time_ms = rd_uint(r, 8);
    return 0;
}

static int decode_error(struct rd *r, struct repl_frame *f, const char **why)
{
    f->code = (uint16_t)rd_uint(r, 2);
    f->text_len = (uint32_t)rd_uint(r, 4);
    if (!r->bad && f->text_len > REPL_MAX_ERROR_TEXT) {
        *why = "ERROR text too long";
        return -EPROTO;
    }
    f->text = (const char *)rd_take(r, f->text_len);
    for (uint32_t i = 0; !r->bad && i < f->text_len; i++)
        if (f->text[i] < 0x20 || f->text[i] > 0x7e) {
            *why = "ERROR text not printable";
            return -EPROTO;
        }
    return 0;
}

typedef int (*frame_decoder)(struct rd *r, struct repl_frame *f, const char **why);

static const frame_decoder decoders[] = {
    [REPL_CHALLENGE] = decode_challenge, [REPL_AUTH] = decode_auth,
    [REPL_AUTH_OK] = decode_auth_ok,     [REPL_RESUME] = decode_resume,
    [REPL_START] = decode_start,         [REPL_RECORD] = decode_record,
    [REPL_SNAP_ENTRY] = decode_snap_entry, [REPL_SNAP_END] = decode_snap_end,
    [REPL_HEARTBEAT] = decode_heartbeat, [REPL_ACK] = decode_heartbeat,
    [REPL_ERROR] = decode_error,         [REPL_SEAL] = decode_seal,
};

int repl_frame_decode(const uint8_t *body, uint32_t body_len, struct repl_frame *f, const char **why)
{
    struct rd r = {body, body_len, 0};
    memset(f, 0, sizeof *f);
    *why = "truncated or oversized frame";
    f->type = (uint8_t)rd_uint(&r, 1);
    if (f->type >= sizeof decoders / sizeof decoders[0] || !decoders[f->type]) {
        *why = "unknown frame type";
        return -EPROTO;
    }
    if (decoders[f->type](&r, f, why))
        return -EPROTO;
    /* Exactly the bytes the layout says: no short frame, no trailing junk. */
    if (r.bad || r.left != 0)
        return -EPROTO;
    /* A seq past the log's range would wrap next_seq (the SEAL counter is no seq). */
    if (f->type != REPL_SEAL && f->seq > REPL_MAX_SEQ) {
        *why = "sequence number beyond 2^62";
        return -EPROTO;
    }
    *why = NULL;
    return 0;
}

/* ---- encoding ---- */

static void wr_uint(uint8_t **p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        (*p)[i] = (uint8_t)(v >> 8 * (bytes - 1 - i));
    *p += bytes;
}

static void wr_bytes(uint8_t **p, const void *src, size_t n)
{
    if (n)
        memcpy(*p, src, n);
    *p += n;
}

/* Reserve room for a frame whose body is body_len bytes, write the header
 * and type; the caller writes the rest and must fill exactly body_len. */
static uint8_t *frame_begin(struct repl_buf *b, uint8_t type, size_t body_len)
{
    if (body_len > REPL_MAX_BODY || repl_buf_reserve(b, REPL_HEADER_LEN - 1 + body_len))
        return NULL;
    uint8_t *p = b->data + b->len;
    wr_uint(&p, body_len, 4);
    wr_uint(&p, type, 1);
    b->len += 4 + body_len;
    return p;
}

/* A frame of one integer (ubytes wide) and n bytes: CHALLENGE, SEAL. */
static int put_uint_bytes(struct repl_buf *b, uint8_t type, uint64_t v, unsigned ubytes, const uint8_t *bytes,
                          size_t n)
{
    uint8_t *p = frame_begin(b, type, 1 + ubytes + n);
    if (!p)
        return -ENOMEM;
    wr_uint(&p, v, ubytes);
    wr_bytes(&p, bytes, n);
    return 0;
}

int repl_put_challenge(struct repl_buf *b, const uint8_t nonce[REPL_NONCE_LEN])
{
    return put_uint_bytes(b, REPL_CHALLENGE, REPL_PROTOCOL_VERSION, 2, nonce, REPL_NONCE_LEN);
}

int repl_put_auth(struct repl_buf *b, const uint8_t nonce[REPL_NONCE_LEN], const uint8_t mac[REPL_MAC_LEN])
{
    uint8_t *p = frame_begin(b, REPL_AUTH, 1 + 2 + REPL_NONCE_LEN + REPL_MAC_LEN);
    if (!p)
        return -ENOMEM;
    wr_uint(&p, REPL_PROTOCOL_VERSION, 2);
    wr_bytes(&p, nonce, REPL_NONCE_LEN);
    wr_bytes(&p, mac, REPL_MAC_LEN);
    return 0;
}

int repl_put_auth_ok(struct repl_buf *b, const uint8_t mac[REPL_MAC_LEN])
{
    uint8_t *p = frame_begin(b, REPL_AUTH_OK, 1 + REPL_MAC_LEN);
    if (!p)
        return -ENOMEM;
    wr_bytes(&p, mac, REPL_MAC_LEN);
    return 0;
}

int repl_put_resume(struct repl_buf *b, int has_position, const uint8_t map_id[REPL_ID_LEN], uint64_t next_seq,
                    uint32_t epoch, uint64_t digest_seq, uint64_t digest)
{
    uint8_t *p = frame_begin(b, REPL_RESUME, 1 + 1 + REPL_ID_LEN + 8 + 4 + 8 + 8);
    if (!p)
        return -ENOMEM;
    wr_uint(&p, has_position ? 1 : 0, 1);
    wr_bytes(&p, map_id, REPL_ID_LEN);
    wr_uint(&p, next_seq, 8);
    wr_uint(&p, epoch, 4);
    wr_uint(&p, digest_seq, 8);
    wr_uint(&p, digest, 8);
    return 0;
}

int repl_put_start(struct repl_buf *b, const struct repl_frame *s)
{
    uint8_t *p = frame_begin(b, REPL_START, 1 + 1 + REPL_ID_LEN + 8 + 4 + 8 * 2 + 4 * 2 + 8 * 2);
    if (!p)
        return -ENOMEM;
    wr_uint(&p, s->mode, 1);
    wr_bytes(&p, s->map_id, REPL_ID_LEN);
    wr_uint(&p, s->seq, 8);
    wr_uint(&p, s->epoch, 4);
    wr_uint(&p, s->size, 8);
    wr_uint(&p, s->max_size, 8);
    wr_uint(&p, s->flags, 4);
    wr_uint(&p, s->max_value, 4);
    wr_uint(&p, s->default_ttl_ms, 8);
    wr_uint(&p, s->replog_capacity, 8);
    return 0;
}

static int put_entry(struct repl_buf *b, uint8_t type, const struct repl_record_head *h, unsigned op, uint32_t tag,
                     uint64_t expire_ms, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (klen == 0 || klen > 65535u || vlen > REPL_MAX_VALUE || tag > 255u)
        return -EINVAL;
    size_t head = type == REPL_RECORD ? 8 + 4 + 4 + 1 : 0;
    uint8_t *p = frame_begin(b, type, 1 + head + 4 + 8 + 4 + klen + 4 + vlen);
    if (!p)
        return -ENOMEM;
    if (type == REPL_RECORD) {
        wr_uint(&p, h->seq, 8);
        wr_uint(&p, h->skipped, 4);
        wr_uint(&p, h->epoch, 4);
        wr_uint(&p, op, 1);
    }
    wr_uint(&p, tag, 4);
    wr_uint(&p, expire_ms, 8);
    wr_uint(&p, klen, 4);
    wr_bytes(&p, key, klen);
    wr_uint(&p, vlen, 4);
    wr_bytes(&p, val, vlen);
    return 0;
}

int repl_put_record(struct repl_buf *b, const struct repl_record_head *h, unsigned op, uint32_t tag,
                    uint64_t expire_ms, const void *key, size_t klen, const void *val, size_t vlen)
{
    if ((op != REPL_OP_PUT && op != REPL_OP_DEL) || h->seq == 0 || h->seq > REPL_MAX_SEQ || h->skipped >= h->seq)
        return -EINVAL;
    return put_entry(b, REPL_RECORD, h, op, tag, expire_ms, key, klen, val, op == REPL_OP_DEL ? 0 : vlen);
}

int repl_put_snap_entry(struct repl_buf *b, uint32_t tag, uint64_t expire_ms, const void *key, size_t klen,
                        const void *val, size_t vlen)
{
    static const struct repl_record_head none = {0, 0, 0};
    return put_entry(b, REPL_SNAP_ENTRY, &none, REPL_OP_PUT, tag, expire_ms, key, klen, val, vlen);
}

static int put_two(struct repl_buf *b, uint8_t type, uint64_t x, uint64_t y)
{
    uint8_t *p = frame_begin(b, type, 1 + 16);
    if (!p)
        return -ENOMEM;
    wr_uint(&p, x, 8);
    wr_uint(&p, y, 8);
    return 0;
}

int repl_put_snap_end(struct repl_buf *b, uint64_t seq, uint64_t count, uint64_t digest)
{
    uint8_t *p = frame_begin(b, REPL_SNAP_END, 1 + 8 * 3);
    if (!p)
        return -ENOMEM;
    wr_uint(&p, seq, 8);
    wr_uint(&p, count, 8);
    wr_uint(&p, digest, 8);
    return 0;
}
int repl_put_heartbeat(struct repl_buf *b, uint64_t last_seq, uint64_t time_ms)
{
    return put_two(b, REPL_HEARTBEAT, last_seq, time_ms);
}
int repl_put_ack(struct repl_buf *b, uint64_t next_seq, uint64_t time_ms) { return put_two(b, REPL_ACK, next_seq, time_ms); }

int repl_put_error(struct repl_buf *b, uint16_t code, const char *text)
{
    size_t n = strlen(text);
    if (n > REPL_MAX_ERROR_TEXT)
        n = REPL_MAX_ERROR_TEXT;
    uint8_t *p = frame_begin(b, REPL_ERROR, 1 + 2 + 4 + n);
    if (!p)
        return -ENOMEM;
    wr_uint(&p, code, 2);
    wr_uint(&p, n, 4);
    for (size_t i = 0; i < n; i++) /* printable only, as the decoder demands */
        *p++ = text[i] >= 0x20 && text[i] <= 0x7e ? (uint8_t)text[i] : '?';
    return 0;
}

int repl_put_seal(struct repl_buf *b, uint64_t counter, const uint8_t mac[REPL_MAC_LEN])
{
    return put_uint_bytes(b, REPL_SEAL, counter, 8, mac, REPL_MAC_LEN);
}

uint64_t repl_record_digest(const struct repl_record_head *h, unsigned op, uint32_t tag, uint64_t expire_ms,
                            const void *key, size_t klen, const void *val, size_t vlen)
{
    /* The RECORD layout from seq to klen, skipped left out: a replica
     * that was told another void count still holds the same record. */
    uint8_t head[8 + 4 + 1 + 4 + 8 + 4], *p = head, len_be[4];
    wr_uint(&p, h->seq, 8);
    wr_uint(&p, h->epoch, 4);
    wr_uint(&p, op, 1);
    wr_uint(&p, tag, 4);
    wr_uint(&p, expire_ms, 8);
    wr_uint(&p, klen, 4);
    if (op == REPL_OP_DEL)
        vlen = 0;
    p = len_be;
    wr_uint(&p, vlen, 4);
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, head, sizeof head);
    XXH3_64bits_update(&st, key, klen);
    XXH3_64bits_update(&st, len_be, sizeof len_be);
    if (vlen)
        XXH3_64bits_update(&st, val, vlen);
    uint64_t d = XXH3_64bits_digest(&st);
    return d ? d : 1;
}

const char *repl_frame_name(unsigned type)
{
    static const char *const names[] = {"?",      "CHALLENGE",  "AUTH",     "AUTH_OK",   "RESUME", "START",
                                        "RECORD", "SNAP_ENTRY", "SNAP_END", "HEARTBEAT", "ACK",    "ERROR",
                                        "SEAL"};
    return type < sizeof names / sizeof names[0] ? names[type] : "?";
}
