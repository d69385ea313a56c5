/*
 * hashmmap-replicate internals shared by its files: logging, the transport
 * (a nonblocking socket, optionally TLS, with input and output buffers),
 * challenge-response authentication, and the two roles.  Only the public
 * hashmmap.h is used to reach the map.
 */
#ifndef REPL_H
#define REPL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "repl_frame.h"
#include "tools/clock.h"

/* ---- logging (repl_log.c) ---- */
enum repl_level { REPL_LOG_ERROR = 3, REPL_LOG_WARN = 4, REPL_LOG_INFO = 6, REPL_LOG_DEBUG = 7 };
extern int repl_log_threshold; /* messages above this level are dropped */
void repl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) repl_log(REPL_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) repl_log(REPL_LOG_WARN, __VA_ARGS__)
#define log_info(...) repl_log(REPL_LOG_INFO, __VA_ARGS__)
#define log_debug(...) repl_log(REPL_LOG_DEBUG, __VA_ARGS__)
int repl_log_level_parse(const char *name); /* level, or -1 */

/* Clocks: wall_clock_ms() and monotonic_ms() (tools/clock.h). */

/* ---- options (hashmmap-replicate.c) ---- */
struct repl_options {
    const char *dir;
    const char *listen;     /* primary: ADDR:PORT */
    const char *primary;    /* replica: HOST:PORT */
    uint8_t secret[256];
    size_t secret_len;
    const char *tls_cert, *tls_key, *tls_ca;
    unsigned heartbeat_ms;  /* interval of heartbeats and acks when idle */
    unsigned timeout_ms;    /* silence after which a peer is dropped */
    unsigned max_replicas;
    unsigned backoff_max_ms;
    unsigned auth_timeout_ms; /* primary: a connection must prove the secret within this */
};
extern volatile sig_atomic_t repl_stop; /* set by SIGTERM / SIGINT */

/* ---- transport (repl_conn.c) ---- */
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

struct repl_conn {
    int fd;
    SSL *ssl;
    int tls_pending;        /* TLS handshake not finished */
    int want_write;         /* TLS needs the socket writable to go on */
    struct repl_buf in, out;
    uint32_t max_body;      /* largest frame body accepted now */
    char peer[80];          /* "127.0.0.1:4567", for logs */
    uint64_t bytes_in, bytes_out;
    uint64_t last_rx_ms;    /* monotonic */
    /* Sealing after the handshake (docs/PROTOCOL.md §3): every chunk of
     * frames is followed by a SEAL with its HMAC under a session key. */
    int sealing;
    uint8_t key_tx[REPL_MAC_LEN], key_rx[REPL_MAC_LEN];
    uint64_t seals_tx, seals_rx;
};

/* TLS context from the options: NULL with *ctx NULL when TLS is not asked
 * for.  server: the primary.  0 or -1 (logged). */
int repl_tls_context(const struct repl_options *o, int server, SSL_CTX **ctx);
void repl_tls_context_free(SSL_CTX *ctx);

/* Start a connection on a connected nonblocking fd (takes it over).
 * server: accept TLS, else connect (host checked against the certificate). */
int repl_conn_init(struct repl_conn *c, int fd, SSL_CTX *ctx, int server, const char *host);
void repl_conn_close(struct repl_conn *c);
/* Move bytes: read what is there (up to a budget), write what is pending.
 * 0, or -1 when the connection is finished (reason logged). */
int repl_conn_pump(struct repl_conn *c);
/* poll() events this connection waits for. */
short repl_conn_events(const struct repl_conn *c);
/* Next whole frame from the input: 1 and *f (valid until the next call),
 * 0 when none is complete yet, -1 on a malformed frame (reason logged). */
int repl_conn_next_frame(struct repl_conn *c, struct repl_frame *f);
/* From now on seal what we send and deliver only what the peer sealed.
 * Called right after the handshake frames, on both sides. */
void repl_conn_start_sealing(struct repl_conn *c, const uint8_t key_tx[REPL_MAC_LEN],
                             const uint8_t key_rx[REPL_MAC_LEN]);
/* Queue an ERROR frame so the peer learns why we close. */
void repl_conn_send_error(struct repl_conn *c, uint16_t code, const char *text);

/* Address parsing: "HOST:PORT" or "[V6]:PORT" into host and port strings. */
int repl_split_hostport(const char *s, char *host, size_t hostcap, char *port, size_t portcap);

/* ---- authentication (repl_auth.c) ---- */
int repl_random(void *buf, size_t n); /* 0 or -1 */
/* mac = HMAC-SHA256(secret, label || first || second), label naming the
 * side that proves itself, so a reply cannot be reflected back. */
int repl_auth_mac(const struct repl_options *o, int from_primary, const uint8_t first[REPL_NONCE_LEN],
                  const uint8_t second[REPL_NONCE_LEN], uint8_t mac[REPL_MAC_LEN]);
/* Session keys for sealing, one per direction, from the secret and both
 * nonces of this connection. */
int repl_auth_session_keys(const struct repl_options *o, const uint8_t nonce_primary[REPL_NONCE_LEN],
                           const uint8_t nonce_replica[REPL_NONCE_LEN], uint8_t to_replica[REPL_MAC_LEN],
                           uint8_t to_primary[REPL_MAC_LEN]);
/* mac = HMAC-SHA256(key, u64 counter || data). */
int repl_seal_mac(const uint8_t key[REPL_MAC_LEN], uint64_t counter, const uint8_t *data, size_t len,
                  uint8_t mac[REPL_MAC_LEN]);
/* 1 when mac is the right one (constant time), else 0. */
int repl_auth_check(const struct repl_options *o, int from_primary, const uint8_t first[REPL_NONCE_LEN],
                    const uint8_t second[REPL_NONCE_LEN], const uint8_t mac[REPL_MAC_LEN]);

/* ---- the map's files (hashmmap-replicate.c) ---- */
/* Which file DIR/name is now (dev, ino): 0, or -1 when it is not there.
 * A file the handle maps keeps its inode, which no new file can reuse
 * while mapped, so a change tells a map recreated or a log deleted under
 * a running daemon (which would go on with the old files, unseen). */
struct repl_file_id {
    uint64_t dev, ino;
};
int repl_file_id(const char *dir, const char *name, struct repl_file_id *id);

/* ---- the roles ---- */
int repl_primary_run(const struct repl_options *o);  /* returns at SIGTERM: 0, or -1 */
int repl_replica_run(const struct repl_options *o);
int repl_promote(const char *dir);                  /* 0, or -1 (said on stderr) */

#endif
