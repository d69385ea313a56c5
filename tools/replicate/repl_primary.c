/*
 * The primary: one poll() loop serves every replica (docs/PROTOCOL.md,
 * "States").  A session goes AUTH -> RESUME -> SNAPSHOT -> STREAMING (or
 * straight to STREAMING when the replica's position is still in the log).
 * Sessions are fed a bounded amount per round (output high-water mark), so
 * a snapshot of a large map or a slow replica never stalls the others, and
 * the log is polled every tick for newly committed records.
 */
#ifdef HAVE_CONFIG_H
#include "config.h" /* _GNU_SOURCE: accept4, getaddrinfo */
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hashmmap.h>

#include "repl.h"
#include "tools/errtext.h"

#define OUT_HIGH_WATER (1u << 20) /* bytes queued per session before we stop producing */
/* Connections that have not proved the secret yet are cheap and limited on
 * their own (docs/PROTOCOL.md §8): at most PREAUTH_MAX at once and
 * PREAUTH_PER_ADDR per peer address.  A new one is never refused: it
 * replaces the oldest unauthenticated one of its address (or, when all are
 * taken, of the address holding the most), so idle or flooding peers cannot
 * keep a replica from getting in; only --max-replicas counts replicas that
 * proved the secret. */
#define PREAUTH_MAX 64u
#define PREAUTH_PER_ADDR 8u
#define TICK_MS 20
#define STATUS_EVERY_MS 500u
/* Out of descriptors (EMFILE, ENFILE) the pending connection stays in the
 * backlog and the listening socket stays readable: polling it again at once
 * spun the loop and logged a line per try (40 000 in 3 s).  Leave it out
 * of the poll set this long instead, and say so at most every 10 s. */
#define ACCEPT_PAUSE_MS 100u
#define ACCEPT_WARN_EVERY_MS 10000u
/* A map recreated as "rm -r DIR; hashmmap create DIR" is missing for a
 * moment: wait this long for DIR to hold one again before giving up. */
#define REOPEN_GRACE_MS 2000u

enum session_state { S_AUTH, S_RESUME, S_SNAPSHOT, S_STREAMING, S_CLOSING };

struct session {
    struct repl_conn conn;
    enum session_state state;
    uint8_t nonce[REPL_NONCE_LEN];
    char addr[64];               /* the peer's address without the port */
    uint64_t accepted_ms;
    hmm_cursor *cursor;          /* S_SNAPSHOT */
    uint64_t snap_seq, snap_count;
    uint64_t snap_digest;        /* of record snap_seq, sent in SNAP_END (0: none) */
    hmm_replog_reader *reader;   /* S_STREAMING */
    uint64_t next_seq;           /* next record to send */
    uint64_t acked_next;         /* replica applied everything below this */
    uint64_t caught_up_ms;       /* wall clock when it last had everything */
    uint64_t last_hb_ms;         /* monotonic, last heartbeat sent */
    uint64_t closing_ms;         /* monotonic, when S_CLOSING began */
};

struct primary {
    const struct repl_options *o;
    hmm_t *m;
    SSL_CTX *tls;
    int listen_fd;
    struct session **sessions;
    size_t nsessions;
    struct hmm_replog_info log;
    hmm_repl_status status;
    struct repl_file_id map_file, log_file; /* what the handle maps (repl_file_id) */
    uint64_t accept_paused_until; /* monotonic; 0: accepting */
    uint64_t accept_warned_ms;    /* monotonic, the last "out of descriptors" line */
};

static int listen_on(const char *spec)
{
    char host[256], port[32];
    if (repl_split_hostport(spec, host, sizeof host, port, sizeof port)) {
        log_error("--listen: '%s' is not ADDR:PORT (PORT a number from 1 to 65535)", spec);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        log_error("--listen %s: %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 16)) {
        log_error("--listen %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void peer_name(const struct sockaddr_storage *sa, socklen_t len, char *out, size_t cap, char *addr,
                      size_t addrcap)
{
    char h[64], p[16];
    if (getnameinfo((const struct sockaddr *)sa, len, h, sizeof h, p, sizeof p, NI_NUMERICHOST | NI_NUMERICSERV)) {
        snprintf(out, cap, "?");
        snprintf(addr, addrcap, "?");
    } else {
        snprintf(out, cap, "%s:%s", h, p);
        snprintf(addr, addrcap, "%s", h);
    }
}

static void session_free(struct session *s)
{
    hmm_cursor_close(s->cursor);
    hmm_replog_close(s->reader);
    repl_conn_close(&s->conn);
    free(s);
}

/* Of the sessions still in S_AUTH: how many from addr, the oldest of those,
 * and the address with the most (its oldest in *busiest). */
static size_t preauth_count(const struct primary *p, const char *addr, size_t *oldest, size_t *total,
                            size_t *busiest)
{
    size_t n = 0, best = 0;
    *oldest = *busiest = SIZE_MAX;
    *total = 0;
    for (size_t i = 0; i < p->nsessions; i++) {
        const struct session *s = p->sessions[i];
        if (s->state != S_AUTH)
            continue;
        (*total)++;
        size_t same = 0, first = i;
        for (size_t j = 0; j < p->nsessions; j++) /* n ≤ 64 + max-replicas: quadratic is fine */
            if (p->sessions[j]->state == S_AUTH && strcmp(p->sessions[j]->addr, s->addr) == 0) {
                same++;
                if (p->sessions[j]->accepted_ms < p->sessions[first]->accepted_ms)
                    first = j;
            }
        if (same > best) {
            best = same;
            *busiest = first;
        }
        if (strcmp(s->addr, addr) == 0) {
            n++;
            if (*oldest == SIZE_MAX || s->accepted_ms < p->sessions[*oldest]->accepted_ms)
                *oldest = i;
        }
    }
    return n;
}

/* Make room for one more unauthenticated connection from addr. */
static void preauth_admit(struct primary *p, const char *addr)
{
    size_t oldest, total, busiest;
    size_t same = preauth_count(p, addr, &oldest, &total, &busiest);
    size_t victim = same >= PREAUTH_PER_ADDR ? oldest : total >= PREAUTH_MAX ? busiest : SIZE_MAX;
    if (victim == SIZE_MAX)
        return;
    struct session *s = p->sessions[victim];
    log_info("%s: dropped before authenticating: %s", s->conn.peer,
             same >= PREAUTH_PER_ADDR ? "too many unauthenticated connections from its address"
                                      : "too many unauthenticated connections");
    session_free(s);
    p->sessions[victim] = p->sessions[--p->nsessions];
}

static size_t authenticated_sessions(const struct primary *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nsessions; i++)
        n += p->sessions[i]->state != S_AUTH && p->sessions[i]->state != S_CLOSING;
    return n;
}

static void accept_replicas(struct primary *p)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        int fd = accept4(p->listen_fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                uint64_t mono = monotonic_ms();
                p->accept_paused_until = mono + ACCEPT_PAUSE_MS;
                if (!p->accept_warned_ms || mono - p->accept_warned_ms >= ACCEPT_WARN_EVERY_MS) {
                    log_warn("accept: %s: new connections wait (%zu open; raise the descriptor limit, ulimit -n "
                             "or LimitNOFILE, or lower --max-replicas)", strerror(err), p->nsessions);
                    p->accept_warned_ms = mono;
                }
            } else if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
                log_warn("accept: %s", strerror(err));
            }
            return;
        }
        char name[80], addr[64];
        peer_name(&sa, len, name, sizeof name, addr, sizeof addr);
        preauth_admit(p, addr);
        struct session *s = calloc(1, sizeof *s);
        struct session **grown = realloc(p->sessions, (p->nsessions + 1) * sizeof *grown);
        if (!s || !grown) {
            free(s);
            if (grown)
                p->sessions = grown;
            close(fd);
            log_error("%s: out of memory", name);
            continue;
        }
        p->sessions = grown;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        snprintf(s->conn.peer, sizeof s->conn.peer, "%s", name);
        snprintf(s->addr, sizeof s->addr, "%s", addr);
        s->accepted_ms = monotonic_ms();
        if (repl_conn_init(&s->conn, fd, p->tls, 1, NULL) || repl_random(s->nonce, sizeof s->nonce) ||
            repl_put_challenge(&s->conn.out, s->nonce)) {
            session_free(s);
            continue;
        }
        p->sessions[p->nsessions++] = s;
        log_info("%s: connected", name);
    }
}

/* Refuse a session with a reason the replica will log; it is closed once
 * the ERROR frame is out (or at once if the socket is unusable). */
static void session_refuse(struct session *s, uint16_t code, const char *why)
{
    repl_conn_send_error(&s->conn, code, why);
    s->state = S_CLOSING;
    s->closing_ms = monotonic_ms();
}

static int fill_start(struct primary *p, struct repl_frame *st, unsigned mode, uint64_t seq)
{
    hmm_stats hs;
    hmm_role_info ri;
    int rc = hmm_stat(p->m, &hs);
    if (rc || (rc = hmm_role_get(p->m, &ri)) != 0)
        return rc;
    memset(st, 0, sizeof *st);
    st->epoch = (uint32_t)ri.epoch;
    st->mode = (uint8_t)mode;
    memcpy(st->map_id, p->log.map_id, REPL_ID_LEN);
    st->seq = seq;
    st->size = hs.size;
    st->max_size = hs.max_size;
    st->flags = hs.flags & HMM_CACHE;
    st->max_value = hs.max_value;
    st->default_ttl_ms = hs.default_ttl_ms;
    st->replog_capacity = p->log.capacity;
    return 0;
}

/* The digest of record seq in our log (docs/PROTOCOL.md §2), read with a
 * reader *rd opened at seq (the caller closes it).  0 and
 * *digest: the record is there; HMM_MISMATCH: the log no longer holds seq
 * (or never did); HMM_NOTFOUND: seq is void or not committed, so it cannot
 * be the record a replica applied; another code: the log cannot be read. */
static int log_record_digest(struct primary *p, uint64_t seq, hmm_replog_reader **rd, uint64_t *digest)
{
    hmm_replog_record rec;
    int rc = hmm_replog_open(p->m, seq, rd);
    if (rc == 0)
        rc = hmm_replog_next(*rd, &rec);
    if (rc == 0 && rec.seq != seq)
        rc = HMM_NOTFOUND; /* seq was void: the reader passed it */
    if (rc == 0) {
        struct repl_record_head h = {rec.seq, 0, (uint32_t)hmm_replog_epoch(*rd)};
        *digest = repl_record_digest(&h, rec.op, rec.tag, rec.expire_ms, rec.key, rec.klen, rec.val, rec.vlen);
    }
    return rc;
}

/* Whether the replica's proof (RESUME's digest_seq and digest) is in our
 * log: 0 when our record digest_seq has that digest; else HMM_NOTFOUND (the
 * histories differ, logged), HMM_MISMATCH (the log no longer holds it), 1
 * (no proof to check) or another code (cannot read the log).  *why says
 * why a snapshot follows. */
static int check_history(struct primary *p, struct session *s, const struct repl_frame *f, const char **why)
{
    hmm_replog_reader *rd = NULL;
    uint64_t digest = 0;
    int rc;
    /* Our replicas prove record next_seq - 1 (applied), next_seq (being
     * applied when it stopped), or a later one: a replica stores next_seq
     * only after a sync, so it may hold records up to a second past it
     * (FORMAT.md §13).  Older proofs leave records unproven. */
    if (f->digest == 0 || f->digest_seq + 1 < f->seq || f->digest_seq == 0) {
        *why = "its position carries no proof of its history (a daemon before protocol 3?)";
        return 1;
    }
    if (f->digest_seq > p->log.last_seq)
        rc = HMM_NOTFOUND; /* it may hold a record we never wrote */
    else
        rc = log_record_digest(p, f->digest_seq, &rd, &digest);
    hmm_replog_close(rd);
    if (rc == 0 && digest != f->digest)
        rc = HMM_NOTFOUND;
    if (rc == HMM_NOTFOUND) {
        log_warn("%s: replica's history differs from this map's (restored from a backup?): full resync", s->conn.peer);
        *why = "history differs";
    } else if (rc == HMM_MISMATCH) {
        *why = "the log no longer covers its position";
    }
    return rc;
}

/* Stream from the replica's position if it is in this map's history
 * (check_history).  1: streaming; 0: a snapshot is needed (*why says why);
 * -1: the session was refused. */
static int resume_stream(struct primary *p, struct session *s, const struct repl_frame *f, const char **why)
{
    struct repl_frame st;
    int rc = check_history(p, s, f, why);
    if (rc == 0) {
        rc = hmm_replog_open(p->m, f->seq, &s->reader);
        if (rc == HMM_MISMATCH)
            *why = "the log no longer covers its position";
    }
    if (rc == 1 || rc == HMM_NOTFOUND || rc == HMM_MISMATCH)
        return 0;
    if (rc) {
        log_error("%s: cannot read the log at seq %" PRIu64 ": %s", s->conn.peer, f->seq, hmm_strerror(rc));
        session_refuse(s, 1, "primary cannot read its log");
        return -1;
    }
    if (fill_start(p, &st, REPL_START_STREAM, f->seq) || repl_put_start(&s->conn.out, &st)) {
        session_refuse(s, 1, "primary cannot describe its map");
        return -1;
    }
    s->next_seq = f->seq;
    s->acked_next = f->seq;
    s->state = S_STREAMING;
    s->caught_up_ms = wall_clock_ms();
    log_info("%s: streaming the log from seq %" PRIu64, s->conn.peer, f->seq);
    return 1;
}

/* Snapshot: S first, then the cursor, so every change after S is in the
 * log we stream afterwards and anything the cursor misses either was absent
 * at S or changed after it (docs/PROTOCOL.md, "Snapshot").  The digest of
 * record S goes with SNAP_END, the replica's proof of this history. */
static void start_snapshot(struct primary *p, struct session *s, const char *why)
{
    struct repl_frame st;
    hmm_replog_reader *rd = NULL;
    s->snap_seq = p->log.last_seq;
    s->snap_count = 0;
    s->snap_digest = 0;
    if (s->snap_seq == 0 || log_record_digest(p, s->snap_seq, &rd, &s->snap_digest) != 0)
        s->snap_digest = 0; /* no record S (void, or none): the replica resyncs if it reconnects before a record */
    hmm_replog_close(rd);
    int rc = hmm_cursor_open(p->m, &s->cursor);
    if (rc || fill_start(p, &st, REPL_START_SNAPSHOT, s->snap_seq) || repl_put_start(&s->conn.out, &st)) {
        session_refuse(s, 1, "primary cannot start a snapshot");
        return;
    }
    s->acked_next = 0;
    s->state = S_SNAPSHOT;
    s->caught_up_ms = wall_clock_ms();
    p->status.snapshots++;
    log_info("%s: %s: sending a full snapshot at seq %" PRIu64, s->conn.peer, why, s->snap_seq);
}

/* The replica asked to continue from (id, next seq, digest): stream from
 * there if the log still holds it and the replica followed this history,
 * else a snapshot, then the log after it (docs/PROTOCOL.md §4). */
static void session_resume(struct primary *p, struct session *s, const struct repl_frame *f)
{
    int rc = hmm_replog_info(p->m, &p->log);
    if (rc) {
        log_error("replication log: %s", hmm_strerror(rc));
        session_refuse(s, 1, "primary cannot read its log");
        return;
    }
    /* A replica that has seen a newer epoch follows a newer primary: this
     * one was deposed and must not feed it (docs/PROTOCOL.md §11). */
    hmm_role_info ri;
    if (hmm_role_get(p->m, &ri) == 0 && f->epoch > ri.epoch) {
        log_warn("%s: the replica has seen epoch %u, this map is at epoch %" PRIu64 ": this node is no longer the "
                 "primary (promoted elsewhere); refusing it", s->conn.peer, f->epoch, ri.epoch);
        session_refuse(s, 7, "stale primary: the replica has seen a newer epoch");
        return;
    }
    int same_map = f->has_position && memcmp(f->map_id, p->log.map_id, REPL_ID_LEN) == 0;
    const char *why = !f->has_position ? "new replica"
                      : !same_map      ? "replica of another map"
                      : f->seq == 0    ? "interrupted snapshot" /* next_seq 0 marks a snapshot cut short */
                      : f->seq > p->log.last_seq + 1 ? "replica ahead of the log"
                                                     : NULL;
    if (!why) {
        rc = resume_stream(p, s, f, &why);
        if (rc != 0)
            return;
    }
    start_snapshot(p, s, why);
}

static void session_on_frame(struct primary *p, struct session *s, const struct repl_frame *f)
{
    switch (s->state) {
    case S_AUTH:
        if (f->type != REPL_AUTH) {
            log_warn("%s: expected AUTH, got %s; closing", s->conn.peer, repl_frame_name(f->type));
            session_refuse(s, 2, "expected AUTH");
            return;
        }
        if (f->version != REPL_PROTOCOL_VERSION) {
            log_warn("%s: protocol version %u, we speak %u: run the same hashmmap-replicate release on both hosts; "
                     "closing", s->conn.peer, f->version, REPL_PROTOCOL_VERSION);
            session_refuse(s, 3, "unsupported protocol version");
            return;
        }
        if (!repl_auth_check(p->o, 0, s->nonce, f->nonce, f->mac)) {
            log_warn("%s: authentication failed (wrong secret?); closing", s->conn.peer);
            session_refuse(s, 4, "authentication failed");
            return;
        }
        if (authenticated_sessions(p) >= p->o->max_replicas) {
            log_warn("%s: refused: already %u replicas (--max-replicas)", s->conn.peer, p->o->max_replicas);
            session_refuse(s, 1, "primary serves its maximum of replicas");
            return;
        }
        uint8_t mac[REPL_MAC_LEN], to_replica[REPL_MAC_LEN], to_primary[REPL_MAC_LEN];
        if (repl_auth_mac(p->o, 1, f->nonce, s->nonce, mac) || repl_put_auth_ok(&s->conn.out, mac) ||
            repl_auth_session_keys(p->o, s->nonce, f->nonce, to_replica, to_primary)) {
            session_refuse(s, 1, "internal error");
            return;
        }
        repl_conn_start_sealing(&s->conn, to_replica, to_primary);
        s->state = S_RESUME;
        log_info("%s: authenticated", s->conn.peer);
        return;
    case S_RESUME:
        if (f->type != REPL_RESUME) {
            log_warn("%s: expected RESUME, got %s; closing", s->conn.peer, repl_frame_name(f->type));
            session_refuse(s, 2, "expected RESUME");
            return;
        }
        session_resume(p, s, f);
        return;
    case S_SNAPSHOT:
    case S_STREAMING:
        if (f->type == REPL_ACK) {
            /* An ack may not run ahead of what we sent: a peer claiming
             * more would fake the lag figures. */
            uint64_t sent = s->state == S_STREAMING ? s->next_seq : s->snap_seq + 1;
            if (f->seq > sent) {
                log_warn("%s: ACK of seq %" PRIu64 " beyond what was sent; closing", s->conn.peer, f->seq);
                session_refuse(s, 2, "ACK beyond what was sent");
                return;
            }
            if (f->seq > s->acked_next)
                s->acked_next = f->seq;
            p->status.last_heartbeat_ms = wall_clock_ms(); /* acks are the replicas' heartbeats */
            return;
        }
        if (f->type == REPL_ERROR) {
            log_warn("%s: replica reports error %u: %.*s", s->conn.peer, f->code, (int)f->text_len, f->text);
            s->state = S_CLOSING;
            s->closing_ms = monotonic_ms();
            return;
        }
        log_warn("%s: unexpected %s; closing", s->conn.peer, repl_frame_name(f->type));
        session_refuse(s, 2, "unexpected frame");
        return;
    case S_CLOSING:
        return;
    }
}

/* Queue snapshot entries until the output is full or the cursor ends. */
static int produce_snapshot(struct primary *p, struct session *s)
{
    while (repl_buf_pending(&s->conn.out) < OUT_HIGH_WATER) {
        const void *k, *v;
        size_t kl, vl;
        hmm_entry_info info;
        int rc = hmm_cursor_next(s->cursor, &k, &kl, &v, &vl);
        if (rc == HMM_NOTFOUND) {
            hmm_cursor_close(s->cursor);
            s->cursor = NULL;
            if (repl_put_snap_end(&s->conn.out, s->snap_seq, s->snap_count, s->snap_digest))
                return -1;
            rc = hmm_replog_open(p->m, s->snap_seq + 1, &s->reader);
            if (rc) {
                log_warn("%s: the log wrapped past seq %" PRIu64 " during the snapshot (%s); the replica will "
                         "ask again (a larger --replog size helps)", s->conn.peer, s->snap_seq + 1, hmm_strerror(rc));
                session_refuse(s, 5, "log wrapped during the snapshot; reconnect");
                return 0;
            }
            s->next_seq = s->snap_seq + 1;
            s->state = S_STREAMING;
            log_info("%s: snapshot of %" PRIu64 " entries sent; streaming from seq %" PRIu64, s->conn.peer,
                     s->snap_count, s->next_seq);
            return 0;
        }
        if (rc == 0)
            rc = hmm_cursor_info(s->cursor, &info);
        if (rc) {
            log_error("%s: snapshot cursor: %s", s->conn.peer, hmm_strerror(rc));
            return -1;
        }
        if (vl > REPL_MAX_VALUE) {
            log_error("%s: a value of %zu bytes exceeds the protocol's limit; cannot replicate", s->conn.peer, vl);
            return -1;
        }
        if (repl_put_snap_entry(&s->conn.out, info.tag, info.expire_ms, k, kl, v, vl))
            return -1;
        s->snap_count++;
    }
    return 0;
}

/* Queue log records until the output is full or nothing new is committed. */
static int produce_stream(struct session *s)
{
    while (repl_buf_pending(&s->conn.out) < OUT_HIGH_WATER) {
        hmm_replog_record rec;
        int rc = hmm_replog_next(s->reader, &rec);
        if (rc == HMM_NOTFOUND)
            return 0;
        if (rc == HMM_MISMATCH) {
            log_warn("%s: the log wrapped past seq %" PRIu64 " before it was sent; forcing a resync", s->conn.peer,
                     s->next_seq);
            session_refuse(s, 5, "log wrapped before it was sent; reconnect");
            return 0;
        }
        if (rc) {
            log_error("%s: reading the log: %s", s->conn.peer, hmm_strerror(rc));
            return -1;
        }
        /* Void records are never sent: the replica learns how many came
         * right before this one, so any other gap is an error it catches. */
        struct repl_record_head head = {rec.seq, 0, (uint32_t)hmm_replog_epoch(s->reader)};
        if (rec.seq - s->next_seq > UINT32_MAX) {
            log_error("%s: more than 2^32 void records before seq %" PRIu64, s->conn.peer, rec.seq);
            return -1;
        }
        head.skipped = (uint32_t)(rec.seq - s->next_seq);
        if (rec.vlen > REPL_MAX_VALUE ||
            repl_put_record(&s->conn.out, &head, rec.op, rec.tag, rec.expire_ms, rec.key, rec.klen, rec.val,
                            rec.vlen)) {
            log_error("%s: cannot encode record %" PRIu64, s->conn.peer, rec.seq);
            return -1;
        }
        s->next_seq = rec.seq + 1;
    }
    return 0;
}

/* One round for a session: I/O, frames, production, heartbeat, timeouts.
 * Returns -1 when it is to be dropped. */
static int session_round(struct primary *p, struct session *s, uint64_t mono)
{
    if (repl_conn_pump(&s->conn))
        return -1;
    /* Now, not the round's start: the pump stamps last_rx_ms, and a stamp
     * newer than mono would wrap mono - last_rx_ms into "silent for ages"
     * (it dropped live replicas on a loaded machine). */
    mono = monotonic_ms();
    /* A closing peer gets a moment to read why, not forever. */
    if (s->state == S_CLOSING)
        return repl_buf_pending(&s->conn.out) == 0 || mono - s->closing_ms > 2000 ? -1 : 0;
    struct repl_frame f;
    int r;
    while (s->state != S_CLOSING && (r = repl_conn_next_frame(&s->conn, &f)) != 0) {
        if (r < 0)
            return -1; /* malformed: closed without another word */
        session_on_frame(p, s, &f);
    }
    if (s->state == S_AUTH || s->state == S_RESUME) {
        if (mono - s->accepted_ms > p->o->auth_timeout_ms) {
            log_warn("%s: no handshake within %u ms; closing", s->conn.peer, p->o->auth_timeout_ms);
            return -1;
        }
    } else if (mono - s->conn.last_rx_ms > p->o->timeout_ms) {
        log_warn("%s: silent for %u ms; closing", s->conn.peer, p->o->timeout_ms);
        return -1;
    }
    if (s->state == S_SNAPSHOT && produce_snapshot(p, s))
        return -1;
    if (s->state == S_STREAMING && produce_stream(s))
        return -1;
    if ((s->state == S_SNAPSHOT || s->state == S_STREAMING) && mono - s->last_hb_ms >= p->o->heartbeat_ms) {
        if (repl_put_heartbeat(&s->conn.out, p->log.last_seq, wall_clock_ms()))
            return -1;
        s->last_hb_ms = mono;
    }
    return repl_conn_pump(&s->conn) ? -1 : 0;
}

/* The daemon's view for hashmmap-stat: the slowest connected replica. */
static void publish_status(struct primary *p, uint64_t now)
{
    hmm_repl_status *st = &p->status;
    hmm_role_info ri;
    /* Serving a replica's map (a chain): the status slot is its replica
     * daemon's, which says how far behind its own primary it is. */
    if (hmm_role_get(p->m, &ri) == 0 && ri.role == HMM_ROLE_REPLICA)
        return;
    st->role = HMM_REPL_ROLE_PRIMARY;
    st->pid = getpid();
    st->updated_ms = now;
    st->primary_seq = p->log.last_seq;
    st->peers = 0;
    st->state = HMM_REPL_DISCONNECTED;
    uint64_t acked = UINT64_MAX, lag_ms = 0;
    for (size_t i = 0; i < p->nsessions; i++) {
        struct session *s = p->sessions[i];
        if (s->state != S_SNAPSHOT && s->state != S_STREAMING)
            continue;
        st->peers++;
        unsigned state = s->state == S_SNAPSHOT ? HMM_REPL_SNAPSHOT : HMM_REPL_STREAMING;
        if (state > st->state)
            st->state = state;
        uint64_t a = s->acked_next ? s->acked_next - 1 : 0;
        if (a >= p->log.last_seq)
            s->caught_up_ms = now;
        if (a < acked)
            acked = a;
        if (s->caught_up_ms && now - s->caught_up_ms > lag_ms)
            lag_ms = now - s->caught_up_ms;
    }
    if (st->peers) {
        st->acked_seq = acked;
        st->lag_seqs = p->log.last_seq > acked ? p->log.last_seq - acked : 0;
        st->lag_ms = lag_ms;
    }
    int rc = hmm_repl_status_set(p->m, st);
    if (rc)
        log_debug("cannot publish the status: %s", hmm_strerror(rc));
}

/* Open the map to serve (it must exist, with a log).  0, or -1 (logged). */
static int open_map(struct primary *p)
{
    const char *dir = p->o->dir;
    hmm_config cfg = {0}; /* open only: the map to serve must exist */
    int rc = hmm_open(&p->m, dir, &cfg);
    if (rc) {
        char text[ERRTEXT_MAX], prefix[ERRTEXT_MAX];
        errtext(rc, text, sizeof text);
        log_error("%s%s", errtext_prefix(dir, text, prefix, sizeof prefix), text);
        return -1;
    }
    rc = hmm_replog_info(p->m, &p->log);
    if (rc) {
        log_error("%s: no replication log: %s", dir, hmm_strerror(rc));
        return -1;
    }
    if (repl_file_id(dir, "hashmmap.map", &p->map_file) || repl_file_id(dir, "hashmmap.replog", &p->log_file)) {
        log_error("%s: the map's files went away while it was opened", dir);
        return -1;
    }
    return 0;
}

/* The map recreated (rm -r and create) or its log deleted while we serve:
 * the handle still reads the old files, which no writer uses any more, so
 * replicas got no change and looked caught up.  Then close every session
 * and serve the files in DIR now (a new map has a new identity, a new log
 * starts beyond the old numbers: replicas resync).  0, or -1 when DIR no
 * longer holds a map to serve (logged). */
static int check_files(struct primary *p)
{
    struct repl_file_id now;
    const char *dir = p->o->dir;
    int map_same = repl_file_id(dir, "hashmmap.map", &now) == 0 && memcmp(&now, &p->map_file, sizeof now) == 0;
    int log_same = repl_file_id(dir, "hashmmap.replog", &now) == 0 && memcmp(&now, &p->log_file, sizeof now) == 0;
    if (map_same && log_same)
        return 0;
    log_warn("%s: the map %s was replaced or deleted while being served; closing %zu connections and opening "
             "it again (replicas resync)", dir, map_same ? "log" : "file", p->nsessions);
    for (size_t i = 0; i < p->nsessions; i++)
        session_free(p->sessions[i]);
    p->nsessions = 0;
    hmm_close(p->m);
    p->m = NULL;
    /* A new map's file appears whole (linked in when complete, core/fileio.c). */
    uint64_t give_up = monotonic_ms() + REOPEN_GRACE_MS;
    while (repl_file_id(dir, "hashmmap.map", &now) != 0 && monotonic_ms() < give_up && !repl_stop)
        usleep(50000);
    if (open_map(p))
        return -1;
    log_info("serving %s again (log seq %" PRIu64 "..%" PRIu64 ")", dir, p->log.first_seq, p->log.last_seq);
    return 0;
}

/* Open the map to serve, and listen.  0, or -1 (logged). */
static int primary_start(struct primary *p)
{
    const struct repl_options *o = p->o;
    if (open_map(p))
        return -1;
    if (repl_tls_context(o, 1, &p->tls))
        return -1;
    p->listen_fd = listen_on(o->listen);
    if (p->listen_fd < 0)
        return -1;
    log_info("serving %s on %s%s (log seq %" PRIu64 "..%" PRIu64 ")", o->dir, o->listen, p->tls ? " with TLS" : "",
             p->log.first_seq, p->log.last_seq);
    return 0;
}

/* Wait for the listening socket and the sessions' (*pfds grows with
 * them).  0, or -1 (logged). */
static int wait_for_sockets(struct primary *p, struct pollfd **pfds)
{
    struct pollfd *grown = realloc(*pfds, (p->nsessions + 1) * sizeof **pfds);
    if (!grown)
        return -1;
    *pfds = grown;
    uint64_t mono = monotonic_ms();
    int paused = p->accept_paused_until > mono;
    /* A negative fd is skipped by poll(): no wake-ups for a backlog we cannot take yet. */
    grown[0] = (struct pollfd){.fd = paused ? -1 : p->listen_fd, .events = POLLIN};
    int busy = 0;
    for (size_t i = 0; i < p->nsessions; i++) {
        grown[i + 1] = (struct pollfd){.fd = p->sessions[i]->conn.fd, .events = repl_conn_events(&p->sessions[i]->conn)};
        busy |= p->sessions[i]->state >= S_SNAPSHOT;
    }
    /* With replicas streaming we poll the log every tick; idle, we wait for sockets. */
    int timeout = busy ? TICK_MS : 200;
    if (paused && p->accept_paused_until - mono < (uint64_t)timeout)
        timeout = (int)(p->accept_paused_until - mono);
    if (poll(grown, p->nsessions + 1, timeout) < 0 && errno != EINTR) {
        log_error("poll: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* One round of every session; the finished ones are dropped. */
static void serve_sessions(struct primary *p)
{
    uint64_t mono = monotonic_ms();
    for (size_t i = 0; i < p->nsessions;) {
        struct session *s = p->sessions[i];
        uint64_t in0 = s->conn.bytes_in, out0 = s->conn.bytes_out;
        int drop = session_round(p, s, mono);
        p->status.bytes_received += s->conn.bytes_in - in0;
        p->status.bytes_sent += s->conn.bytes_out - out0;
        if (drop) {
            log_info("%s: disconnected", s->conn.peer);
            session_free(s);
            p->sessions[i] = p->sessions[--p->nsessions];
            continue;
        }
        i++;
    }
}

/* Close every session, publish the last status, release everything. */
static void primary_stop(struct primary *p)
{
    for (size_t i = 0; i < p->nsessions; i++)
        session_free(p->sessions[i]);
    p->nsessions = 0;
    if (p->m) {
        publish_status(p, wall_clock_ms());
        hmm_close(p->m);
    }
    free(p->sessions);
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    repl_tls_context_free(p->tls);
}

int repl_primary_run(const struct repl_options *o)
{
    struct primary p = {.o = o, .listen_fd = -1};
    struct pollfd *pfds = NULL;
    int ret = primary_start(&p);
    uint64_t last_status = 0;
    while (ret == 0 && !repl_stop) {
        if (wait_for_sockets(&p, &pfds)) {
            ret = -1;
            break;
        }
        if (pfds[0].revents & POLLIN)
            accept_replicas(&p);
        if (hmm_replog_info(p.m, &p.log) == 0)
            p.status.primary_seq = p.log.last_seq;
        serve_sessions(&p);
        uint64_t now = wall_clock_ms();
        if (now - last_status >= STATUS_EVERY_MS) {
            if (check_files(&p)) {
                ret = -1;
                break;
            }
            publish_status(&p, now);
            last_status = now;
        }
    }
    if (ret == 0)
        log_info("shutting down (%zu replicas connected)", p.nsessions);
    primary_stop(&p);
    free(pfds);
    return ret;
}
