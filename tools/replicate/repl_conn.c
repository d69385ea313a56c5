/*
 * The transport: one nonblocking TCP socket, optionally wrapped in TLS
 * (libssl), with an input buffer that frames are split from and an output
 * buffer that encoders append to.  The event loops call repl_conn_pump()
 * on every round: it reads what is there and writes what it can, never
 * blocking, so one slow peer does not hold up the others.
 */
#ifdef HAVE_CONFIG_H
#include "config.h" /* _GNU_SOURCE: accept4, getaddrinfo */
#endif
#include <errno.h>
#include <netdb.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "repl.h"

#define READ_CHUNK (64u << 10)
#define READ_BUDGET (1u << 20) /* per pump, so one busy peer cannot starve the rest */

static void log_tls_errors(const char *peer, const char *what)
{
    unsigned long e;
    char buf[256];
    int any = 0;
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        log_warn("%s: %s: %s", peer, what, buf);
        any = 1;
    }
    if (!any)
        log_warn("%s: %s", peer, what);
}

int repl_tls_context(const struct repl_options *o, int server, SSL_CTX **out)
{
    *out = NULL;
    if (!o->tls_cert && !o->tls_key && !o->tls_ca)
        return 0;
    if (server && (!o->tls_cert || !o->tls_key)) {
        log_error("TLS on the primary needs both --tls-cert and --tls-key");
        return -1;
    }
    if (!server && !o->tls_ca) {
        log_error("TLS on the replica needs --tls-ca to verify the primary");
        return -1;
    }
    if (!!o->tls_cert != !!o->tls_key) {
        log_error("--tls-cert and --tls-key go together");
        return -1;
    }
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Partial writes: the output buffer may move between retries of SSL_write. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o->tls_cert && (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1 ||
                        SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1 ||
                        SSL_CTX_check_private_key(ctx) != 1))
        goto fail;
    if (o->tls_ca) {
        if (SSL_CTX_load_verify_locations(ctx, o->tls_ca, NULL) != 1)
            goto fail;
        /* The primary with a CA demands client certificates; the replica
         * always verifies the primary's. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    }
    *out = ctx;
    return 0;
fail:
    log_tls_errors("tls", "cannot set up the TLS context");
    SSL_CTX_free(ctx);
    return -1;
}

void repl_tls_context_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

int repl_conn_init(struct repl_conn *c, int fd, SSL_CTX *ctx, int server, const char *host)
{
    c->fd = fd;
    c->max_body = REPL_MAX_BODY_UNAUTH;
    c->last_rx_ms = monotonic_ms();
    if (!ctx)
        return 0;
    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1)
        goto fail;
    if (!server && host) {
        X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
        /* An address is matched against the certificate's IP names, a name against DNS names. */
        if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
            if (X509_VERIFY_PARAM_set1_host(param, host, 0) != 1)
                goto fail;
            SSL_set_tlsext_host_name(c->ssl, host);
        }
    }
    if (server)
        SSL_set_accept_state(c->ssl);
    else
        SSL_set_connect_state(c->ssl);
    c->tls_pending = 1;
    return 0;
fail:
    log_tls_errors(c->peer, "cannot start TLS");
    return -1;
}

void repl_conn_close(struct repl_conn *c)
{
    if (c->ssl) {
        if (!c->tls_pending)
            SSL_shutdown(c->ssl); /* best effort close_notify; the socket is nonblocking */
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    repl_buf_free(&c->in);
    repl_buf_free(&c->out);
    c->fd = -1;
    c->ssl = NULL;
}

/* For SSL_* results: 1 progress, 0 would block, -1 finished. */
static int tls_result(struct repl_conn *c, int ret, const char *what)
{
    int err = SSL_get_error(c->ssl, ret);
    if (err == SSL_ERROR_WANT_READ)
        return 0;
    if (err == SSL_ERROR_WANT_WRITE) {
        c->want_write = 1;
        return 0;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
        log_info("%s: peer closed the TLS session", c->peer);
        return -1;
    }
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        log_info("%s: connection closed (%s)", c->peer, errno ? strerror(errno) : "end of stream");
        return -1;
    }
    log_tls_errors(c->peer, what);
    return -1;
}

static int conn_write(struct repl_conn *c)
{
    c->want_write = 0;
    while (repl_buf_pending(&c->out) > 0) {
        size_t n = repl_buf_pending(&c->out);
        const uint8_t *p = c->out.data + c->out.off;
        ssize_t w;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
            if (r <= 0)
                return tls_result(c, r, "TLS write failed") < 0 ? -1 : 0;
            w = r;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return 0;
                log_info("%s: send: %s", c->peer, strerror(errno));
                return -1;
            }
        }
        repl_buf_consume(&c->out, (size_t)w);
        c->bytes_out += (uint64_t)w;
    }
    return 0;
}

static int conn_read(struct repl_conn *c)
{
    size_t total = 0;
    while (total < READ_BUDGET) {
        if (repl_buf_reserve(&c->in, READ_CHUNK)) {
            log_error("%s: out of memory for the input buffer", c->peer);
            return -1;
        }
        uint8_t *p = c->in.data + c->in.len;
        ssize_t r;
        if (c->ssl) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, p, READ_CHUNK);
            if (n <= 0)
                return tls_result(c, n, "TLS read failed") < 0 ? -1 : 0;
            r = n;
        } else {
            r = recv(c->fd, p, READ_CHUNK, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return 0;
                log_info("%s: recv: %s", c->peer, strerror(errno));
                return -1;
            }
            if (r == 0) {
                log_info("%s: connection closed by peer", c->peer);
                return -1;
            }
        }
        c->in.len += (size_t)r;
        c->bytes_in += (uint64_t)r;
        c->last_rx_ms = monotonic_ms();
        total += (size_t)r;
        /* Stop reading while more than one whole frame (sealed: one whole
         * sealed chunk) is buffered: the caller consumes frames first
         * (back-pressure through TCP). */
        if (repl_buf_pending(&c->in) > (c->sealing ? REPL_MAX_SEALED : c->max_body) + 2 * READ_CHUNK)
            break;
    }
    return 0;
}

/* Seal what was queued since the last seal: a SEAL frame with the HMAC of
 * those bytes under this direction's session key and a counter, so the
 * peer can tell a frame was neither forged, changed, dropped, replayed nor
 * reordered on the way, also without TLS. */
static int conn_seal(struct repl_conn *c)
{
    if (!c->sealing || c->out.len == c->out.mark)
        return 0;
    uint8_t mac[REPL_MAC_LEN];
    if (repl_seal_mac(c->key_tx, c->seals_tx, c->out.data + c->out.mark, c->out.len - c->out.mark, mac) ||
        repl_put_seal(&c->out, c->seals_tx, mac)) {
        log_error("%s: cannot seal the output", c->peer);
        return -1;
    }
    c->seals_tx++;
    c->out.mark = c->out.len;
    return 0;
}

void repl_conn_start_sealing(struct repl_conn *c, const uint8_t key_tx[REPL_MAC_LEN],
                             const uint8_t key_rx[REPL_MAC_LEN])
{
    memcpy(c->key_tx, key_tx, REPL_MAC_LEN);
    memcpy(c->key_rx, key_rx, REPL_MAC_LEN);
    c->seals_tx = c->seals_rx = 0;
    c->out.mark = c->out.len; /* the handshake frames queued so far go unsealed */
    c->in.mark = c->in.off;   /* and so did the peer's, up to the one just read */
    c->sealing = 1;
}

/* With sealing on and nothing verified left: find the next SEAL, check it
 * against the bytes before it, and cut it out so that those frames become
 * deliverable.  1 when a chunk was verified, 0 when its SEAL has not
 * arrived yet, -1 on a bad or missing seal. */
static int conn_verify(struct repl_conn *c)
{
    size_t q = c->in.mark;
    for (;;) {
        const uint8_t *body;
        uint32_t body_len;
        long n = repl_frame_split(c->in.data + q, c->in.len - q, c->max_body, &body, &body_len);
        if (n == 0) {
            if (c->in.len - c->in.mark > REPL_MAX_SEALED) {
                log_warn("%s: more than %zu bytes without a seal; closing", c->peer, REPL_MAX_SEALED);
                return -1;
            }
            return 0;
        }
        if (n < 0) {
            log_warn("%s: malformed frame: length over the limit of %u bytes now; closing", c->peer, c->max_body);
            return -1;
        }
        if (body[0] != REPL_SEAL) {
            q += (size_t)n;
            continue;
        }
        struct repl_frame f;
        const char *why;
        if (repl_frame_decode(body, body_len, &f, &why)) {
            log_warn("%s: malformed SEAL frame: %s; closing", c->peer, why);
            return -1;
        }
        uint8_t want[REPL_MAC_LEN];
        if (f.seq != c->seals_rx ||
            repl_seal_mac(c->key_rx, c->seals_rx, c->in.data + c->in.mark, q - c->in.mark, want) ||
            CRYPTO_memcmp(want, f.mac, REPL_MAC_LEN) != 0) {
            log_warn("%s: seal %" PRIu64 " does not match the frames before it (changed on the way, or not from the "
                     "authenticated peer); closing without using them", c->peer, c->seals_rx);
            return -1;
        }
        c->seals_rx++;
        memmove(c->in.data + q, c->in.data + q + n, c->in.len - q - (size_t)n);
        c->in.len -= (size_t)n;
        c->in.mark = q;
        return 1;
    }
}

int repl_conn_pump(struct repl_conn *c)
{
    if (c->tls_pending) {
        ERR_clear_error();
        c->want_write = 0;
        int r = SSL_do_handshake(c->ssl);
        if (r != 1)
            return tls_result(c, r, "TLS handshake failed") < 0 ? -1 : 0;
        c->tls_pending = 0;
        log_debug("%s: TLS %s established", c->peer, SSL_get_version(c->ssl));
    }
    if (conn_read(c) || conn_seal(c) || conn_write(c))
        return -1;
    return 0;
}

short repl_conn_events(const struct repl_conn *c)
{
    return (short)(POLLIN | (c->want_write || repl_buf_pending(&c->out) ? POLLOUT : 0));
}

int repl_conn_next_frame(struct repl_conn *c, struct repl_frame *f)
{
    const uint8_t *body;
    uint32_t body_len;
    size_t end = c->in.len;
    if (c->sealing) {
        /* Deliver only verified bytes: a forged or changed frame is never used. */
        while (c->in.off == c->in.mark) {
            int v = conn_verify(c);
            if (v <= 0)
                return v;
        }
        end = c->in.mark;
    }
    long n = repl_frame_split(c->in.data + c->in.off, end - c->in.off, c->max_body, &body, &body_len);
    if (n == 0) {
        if (c->sealing) { /* a seal always follows whole frames */
            log_warn("%s: a seal cuts a frame; closing", c->peer);
            return -1;
        }
        return 0;
    }
    if (n < 0) {
        log_warn("%s: malformed frame: length over the limit of %u bytes now; closing", c->peer, c->max_body);
        return -1;
    }
    const char *why;
    if (repl_frame_decode(body, body_len, f, &why)) {
        log_warn("%s: malformed %s frame: %s; closing", c->peer, repl_frame_name(body[0]), why);
        return -1;
    }
    /* The frame points into the buffer: consumed now, still valid until
     * the next read, which only happens after the caller is done with it. */
    c->in.off += (size_t)n;
    return 1;
}

void repl_conn_send_error(struct repl_conn *c, uint16_t code, const char *text)
{
    (void)repl_put_error(&c->out, code, text);
}

int repl_split_hostport(const char *s, char *host, size_t hostcap, char *port, size_t portcap)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= hostcap || strlen(colon + 1) == 0 || strlen(colon + 1) >= portcap)
        return -1;
    /* A port is a number from 1 to 65535: getaddrinfo() takes 99999 as
     * 99999 mod 65536 (34463) and 0 as "any free port", so the daemon
     * listened or connected somewhere else than its log line said. */
    unsigned long pn = 0;
    for (const char *d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9' || pn > 65535)
            return -1;
        pn = pn * 10 + (unsigned long)(*d - '0');
    }
    if (pn == 0 || pn > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    strcpy(port, colon + 1);
    return 0;
}
