/*
 * libFuzzer harness for the replication protocol's frame parser
 * (tools/replicate/repl_frame.c): the input is a byte stream as a peer
 * could send it.  Frames are split and decoded until the stream ends or a
 * frame is refused, with both the unauthenticated and the full size limit.
 * A decoded frame is re-encoded and decoded again, which must give the
 * same fields: the encoder and the decoder agree on every layout.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/replicate/repl_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reencode(const struct repl_frame *f)
{
    struct repl_buf b = {0};
    int rc;
    switch (f->type) {
    case REPL_RECORD:
        rc = repl_put_record(&b, &(struct repl_record_head){f->seq, f->skipped, f->epoch}, f->op, f->tag,
                             f->expire_ms, f->key, f->klen, f->val, f->vlen);
        break;
    case REPL_SNAP_ENTRY:
        rc = repl_put_snap_entry(&b, f->tag, f->expire_ms, f->key, f->klen, f->val, f->vlen);
        break;
    case REPL_START:
        rc = repl_put_start(&b, f);
        break;
    case REPL_AUTH:
        rc = repl_put_auth(&b, f->nonce, f->mac);
        break;
    case REPL_RESUME:
        rc = repl_put_resume(&b, f->has_position, f->map_id, f->seq, f->epoch, f->digest_seq, f->digest);
        break;
    case REPL_SNAP_END:
        rc = repl_put_snap_end(&b, f->seq, f->count, f->digest);
        break;
    default:
        return;
    }
    assert(rc == 0);
    const uint8_t *body;
    uint32_t len;
    long n = repl_frame_split(b.data, b.len, REPL_MAX_BODY, &body, &len);
    assert(n == (long)b.len);
    struct repl_frame g;
    const char *why;
    rc = repl_frame_decode(body, len, &g, &why);
    assert(rc == 0);
    assert(g.type == f->type && g.seq == f->seq && g.klen == f->klen && g.vlen == f->vlen && g.tag == f->tag &&
           g.expire_ms == f->expire_ms && g.size == f->size && g.epoch == f->epoch && g.skipped == f->skipped &&
           g.digest == f->digest && g.digest_seq == f->digest_seq && g.count == f->count && g.has_position == f->has_position);
    assert(g.klen == 0 || memcmp(g.key, f->key, g.klen) == 0);
    assert(g.vlen == 0 || memcmp(g.val, f->val, g.vlen) == 0);
    repl_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* The first byte picks the limit, as the connection's state would. */
    uint32_t max_body = data[0] & 1 ? REPL_MAX_BODY : REPL_MAX_BODY_UNAUTH;
    data++;
    size--;
    while (size > 0) {
        const uint8_t *body;
        uint32_t len;
        long n = repl_frame_split(data, size, max_body, &body, &len);
        if (n <= 0)
            break;
        assert((size_t)n <= size && body + len == data + n);
        struct repl_frame f;
        const char *why;
        if (repl_frame_decode(body, len, &f, &why)) {
            assert(why != NULL);
            break;
        }
        if (f.key)
            assert(f.key >= body && f.key + f.klen <= body + len);
        if (f.val)
            assert(f.val >= body && f.val + f.vlen <= body + len);
        reencode(&f);
        data += n;
        size -= (size_t)n;
    }
    return 0;
}
