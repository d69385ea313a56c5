/*
 * The replica: connects to the primary, proves the secret and checks the
 * primary's proof (a peer that fails it writes nothing into our map), asks
 * to continue from its stored position, and applies what comes.  After a
 * lost connection it reconnects with exponential backoff.  The map stays
 * open to local readers the whole time: every change is applied with
 * hmm_apply, one atomic put or delete at a time.
 */
#ifdef HAVE_CONFIG_H
#include "config.h" /* _GNU_SOURCE: accept4, getaddrinfo */
#endif
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hashmmap.h>

#include "repl.h"
#include "tools/errtext.h"
#include "repl_keyset.h"
#include "repl_sync.h"

#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_FIRST_MS 200u
#define ACK_EVERY_MS 100u
#define STATUS_EVERY_MS 500u
/* How often the applied changes are synced and the position naming them
 * stored (docs/FORMAT.md §13, replica position, durability): at most one
 * msync + fsync per interval while changes flow (counted from the end of
 * the last), one more when they stop.  A replica killed (or its host lost)
 * resumes at most this much, plus a sync's time, behind what it had
 * applied; the records are sent again, so the primary's log must hold a
 * few seconds of changes.  Why not shorter: each sync cleans the pages,
 * and the next change to each faults again (0.03-0.04 minor faults per
 * record without syncs, 0.07-0.10 with one a second: bench/README.md). */
#define SYNC_EVERY_MS 1000u
/* While the replica is more than CATCHING_UP_RECORDS behind the primary's
 * last seq (its latest heartbeat), a catch-up after a restart or a lost
 * connection, the interval is longer: the faults after each sync, not the
 * sync, were what a catch-up of 575 000 records still paid once the sync
 * had its own thread (110 000-240 000 records/s with 1 s, 200 000-330 000
 * with 3 s, 280 000-370 000 without syncs: bench/README.md).  What it
 * costs: a daemon killed during a catch-up resumes up to 3 s of applying
 * (and a sync) back; those records are in the primary's log, which the
 * catch-up is reading. */
#define SYNC_EVERY_MS_CATCHING_UP 3000u
#define CATCHING_UP_RECORDS 10000u

enum replica_state { R_CHALLENGE, R_AUTH_OK, R_START, R_SNAPSHOT, R_STREAMING };

struct replica {
    const struct repl_options *o;
    SSL_CTX *tls;
    hmm_t *m;                 /* NULL until the map exists */
    struct repl_conn conn;
    enum replica_state state;
    uint8_t nonce_primary[REPL_NONCE_LEN], nonce_own[REPL_NONCE_LEN];
    int has_position;
    uint8_t primary_id[REPL_ID_LEN];
    uint64_t next_seq;        /* first seq not applied yet */
    uint64_t stored_next_seq; /* the next_seq stored in the map: all before it is synced */
    uint64_t digest_seq;      /* the newest record the map may hold (docs/FORMAT.md §13) */
    uint64_t digest;          /* its digest (docs/PROTOCOL.md §2); 0 none */
    uint64_t epoch;           /* the newest primary epoch seen (kept in the map) */
    int position_dirty;       /* applied changes that no stored position names yet */
    int position_unsynced;    /* a position stored since the last sync began */
    uint64_t last_sync_ms;    /* monotonic_ms of the last sync's end */
    struct repl_sync syncer;  /* the sync thread (repl_sync.h) */
    int sync_names_position;  /* the running sync's noted next_seq is to be stored */
    uint64_t snap_seq;
    struct repl_keyset seen;  /* keys the snapshot carried */
    uint64_t last_ack_ms, acked;
    uint64_t caught_up_ms;
    int local_failure;        /* this connection failed on our side (map full, cannot store) */
    int fatal;                /* stop the daemon (logged) */
    struct repl_file_id map_file; /* the file r->m maps (repl_file_id) */
    hmm_repl_status status;
};

/* Connect with a deadline: a primary that is down must not hang us. */
static int connect_to(const char *spec, char *host, size_t hostcap, char *name, size_t namecap)
{
    char port[32];
    if (repl_split_hostport(spec, host, hostcap, port, sizeof port)) {
        log_error("--primary: '%s' is not HOST:PORT (PORT a number from 1 to 65535)", spec);
        return -2;
    }
    snprintf(name, namecap, "primary %s", spec);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        log_warn("%s: %s", name, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (connect(fd, res->ai_addr, res->ai_addrlen) && errno != EINPROGRESS)
        goto fail;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof err;
    rc = poll(&pfd, 1, CONNECT_TIMEOUT_MS);
    if (rc <= 0) {
        errno = rc == 0 ? ETIMEDOUT : errno;
        goto fail;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
        errno = err ? err : errno;
        goto fail;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    freeaddrinfo(res);
    return fd;
fail:
    log_warn("%s: connect: %s", name, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

static void load_position(struct replica *r)
{
    /* HMM_BUSY (a daemon killed while it stored the position) is no
     * position: a snapshot, never a guess (docs/FORMAT.md §13). */
    r->has_position = r->m && hmm_replica_position_get_with_digest(r->m, r->primary_id, &r->next_seq,
                                                                   &r->digest_seq, &r->digest) == 0;
    if (!r->has_position) {
        memset(r->primary_id, 0, sizeof r->primary_id);
        r->next_seq = r->digest_seq = r->digest = 0;
    }
    r->stored_next_seq = r->next_seq;
}

/* Position and proof in one write (docs/FORMAT.md §13): no interruption
 * pairs a position with another history's proof. */
static int store_position(struct replica *r, uint64_t next_seq, uint64_t digest_seq, uint64_t digest)
{
    int rc = hmm_replica_position_set_with_digest(r->m, r->primary_id, next_seq, digest_seq, digest);
    if (rc) {
        log_error("%s: cannot store the replica position: %s", r->o->dir, hmm_strerror(rc));
        r->local_failure = 1;
        return -1;
    }
    r->stored_next_seq = next_seq;
    r->position_unsynced = 1;
    return 0;
}

/* Store the position as it is in memory.  Callers make sure it names
 * nothing unsynced: it follows sync_applied, or its next_seq is 0. */
static int save_position(struct replica *r)
{
    if (store_position(r, r->next_seq, r->digest_seq, r->digest))
        return -1;
    r->position_dirty = 0;
    r->has_position = 1;
    return 0;
}

/* The end of the checkpoint begun by checkpoint_begin: once its sync has
 * ended (waiting for it if wait), the next_seq noted before it began is
 * stored, with the proof of now (docs/FORMAT.md §13, replica position,
 * checkpoints).  0 (also when no sync is asked for, or it runs on and
 * !wait), or -1 (logged; the connection ends, nothing is stored, and the
 * end-of-connection checkpoint syncs again). */
static int checkpoint_collect(struct replica *r, int wait)
{
    int rc;
    uint64_t synced_next_seq;
    if (!repl_sync_collect(&r->syncer, wait, &rc, &synced_next_seq))
        return 0;
    r->last_sync_ms = monotonic_ms();
    if (rc) {
        log_error("%s: cannot sync the replica map: %s", r->o->dir, hmm_strerror(rc));
        r->local_failure = 1;
        r->position_dirty |= r->sync_names_position;
        r->position_unsynced = 1;
        return -1;
    }
    if (!r->sync_names_position)
        return 0;
    if (store_position(r, synced_next_seq, r->digest_seq, r->digest))
        return -1;
    r->has_position = 1;
    return 0;
}

/* A checkpoint without stopping the apply loop: the sync thread syncs what
 * was applied up to now, and checkpoint_collect stores the next_seq noted
 * here once it has ended; records applied meanwhile wait for the next one.
 * The sync covers every position stored so far, too. */
static void checkpoint_begin(struct replica *r)
{
    r->sync_names_position = r->position_dirty;
    r->position_dirty = 0;
    r->position_unsynced = 0;
    repl_sync_ask(&r->syncer, r->m, r->next_seq);
}

/* Before the map is closed under a running sync (replaced, promoted): its
 * position is not stored (the map it would name is going, or no longer a
 * replica). */
static void checkpoint_abandon(struct replica *r)
{
    int rc;
    uint64_t next_seq;
    (void)repl_sync_collect(&r->syncer, 1, &rc, &next_seq);
}

/* Everything applied so far, and the position stored before, to stable
 * storage (hmm_sync: msync + fsync of the map and its log), in this
 * thread, after the sync thread's checkpoint has ended and been stored.
 * 0, or -1 (logged; the connection ends and the position stays where it
 * was). */
static int sync_applied(struct replica *r)
{
    if (checkpoint_collect(r, 1))
        return -1;
    int rc = hmm_sync(r->m);
    r->last_sync_ms = monotonic_ms();
    if (rc) {
        log_error("%s: cannot sync the replica map: %s", r->o->dir, hmm_strerror(rc));
        r->local_failure = 1;
        return -1;
    }
    r->position_unsynced = 0;
    return 0;
}

/* Sync what was applied, then store the position that names it (docs/
 * FORMAT.md §13, replica position, durability).  The stored position
 * reaches the disk with the next sync, or with the page's writeback,
 * whichever comes first: either way after the changes it names. */
static int checkpoint(struct replica *r)
{
    if (sync_applied(r))
        return -1;
    return r->position_dirty ? save_position(r) : 0;
}

/* A checkpoint is due every SYNC_EVERY_MS (SYNC_EVERY_MS_CATCHING_UP far
 * behind the primary) while changes are applied, and once more after they
 * stop, so the last position stored is synced too; not while one runs. */
static int checkpoint_due(struct replica *r, uint64_t mono_ms)
{
    uint64_t interval_ms =
        r->status.primary_seq > r->next_seq + CATCHING_UP_RECORDS ? SYNC_EVERY_MS_CATCHING_UP : SYNC_EVERY_MS;
    return (r->position_dirty || r->position_unsynced) && mono_ms - r->last_sync_ms >= interval_ms &&
           !repl_sync_pending(&r->syncer);
}

/* Before the connection ends (lost, SIGTERM): the running checkpoint ends,
 * then the position names all that was applied and is on disk, so a
 * restart resumes exactly. */
static void checkpoint_at_end(struct replica *r)
{
    if (!r->m)
        return;
    (void)checkpoint_collect(r, 1);
    if ((r->position_dirty || r->position_unsynced) && checkpoint(r) == 0 && r->position_unsynced)
        (void)sync_applied(r);
}

/* Record in the map that it is a replica of o->primary, so local writers
 * are refused also while this daemon is down.  A map that was a primary
 * (it took local writes) forgets its position: it must take a full
 * snapshot, which drops every write of its own (docs/PROTOCOL.md §11). */
static int take_replica_role(struct replica *r, int fresh)
{
    hmm_role_info ri;
    int rc = hmm_role_get(r->m, &ri);
    if (rc == 0 && ri.role == HMM_ROLE_PRIMARY) {
        rc = hmm_replica_position_clear(r->m);
        if (!fresh)
            log_info("%s: was a primary (epoch %" PRIu64 "); now a replica of %s: it resyncs with a full snapshot and "
                 "keeps none of its own writes", r->o->dir, ri.epoch, r->o->primary);
    }
    if (rc == 0)
        rc = hmm_role_set(r->m, HMM_ROLE_REPLICA, ri.epoch, r->o->primary);
    /* On disk before anything of the primary is applied: after a power
     * loss the map must not come back a primary holding the snapshot. */
    if (rc == 0)
        rc = hmm_sync(r->m);
    if (rc) {
        log_error("%s: cannot record the replica role: %s", r->o->dir, hmm_strerror(rc));
        return -1;
    }
    r->epoch = ri.epoch;
    return 0;
}

/* Take the newer epoch of the primary we follow (Raft: a higher term is
 * adopted on sight), before applying anything written under it. */
static int adopt_epoch(struct replica *r, uint64_t epoch)
{
    if (epoch <= r->epoch)
        return 0;
    int rc = hmm_role_set(r->m, HMM_ROLE_REPLICA, epoch, r->o->primary);
    if (rc) {
        log_error("%s: cannot record epoch %" PRIu64 ": %s", r->o->dir, epoch, hmm_strerror(rc));
        return -1;
    }
    /* Durable before a record of the new epoch can be (rule 1 of
     * docs/PROTOCOL.md §11 also after a power loss); epochs change only at
     * promotions, so this sync is rare. */
    if (sync_applied(r))
        return -1;
    log_info("%s: now at epoch %" PRIu64 " (was %" PRIu64 ")", r->o->dir, epoch, r->epoch);
    r->epoch = epoch;
    return 0;
}

static void publish_status(struct replica *r, int connected);

/* Errors of hmm_open that the next try would meet again: permissions, a
 * read-only file system, a path that is not a directory. */
static int creation_refused_for_good(int rc)
{
    switch (-rc) {
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG:
    case ELOOP:
        return 1;
    default:
        return 0;
    }
}

/* Before the first connection: DIR, or the directory that will hold it,
 * must let us make files (else we would connect, take a snapshot's START
 * and fail, over and over).  access() uses the real ids, as we run.  0, or
 * -1 (logged). */
static int dir_can_hold_a_map(const char *dir)
{
    char parent[4096];
    const char *where = dir;
    if (access(dir, F_OK) != 0) {
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        while (n > 0 && dir[n - 1] != '/')
            n--;
        while (n > 1 && dir[n - 1] == '/')
            n--;
        if (n == 0)
            snprintf(parent, sizeof parent, ".");
        else
            snprintf(parent, sizeof parent, "%.*s", (int)n, dir);
        where = parent;
    }
    if (access(where, W_OK | X_OK) == 0)
        return 0;
    log_error("%s: cannot create the replica map there: %s: %s; stopping", dir, where, strerror(errno));
    return -1;
}

/* The replica's map is made on the first START, alike the primary's. */
static int open_or_create_map(struct replica *r, const struct repl_frame *f)
{
    if (r->m)
        return 0;
    if (f->max_value > REPL_MAX_VALUE) {
        log_error("primary's max value %u exceeds the protocol's limit", f->max_value);
        return -1;
    }
    hmm_config cfg = {
        .size = f->size,
        .max_size = f->max_size,
        .flags = HMM_CREATE | HMM_REPLICA_WRITER | (f->flags & HMM_CACHE),
        .default_ttl_ms = f->default_ttl_ms,
        .replog_size = f->replog_capacity,
        .max_value = f->max_value,
    };
    int rc = hmm_open(&r->m, r->o->dir, &cfg);
    if (rc) {
        char text[ERRTEXT_MAX], prefix[ERRTEXT_MAX];
        /* Retrying cannot fix these; the man page promises exit 3 when the
         * map cannot be used (a full disk, HMM_FULL, may clear: retry). */
        r->fatal = creation_refused_for_good(rc);
        errtext(rc, text, sizeof text);
        log_error("%scannot create the replica map: %s%s", errtext_prefix(r->o->dir, text, prefix, sizeof prefix),
                  text, r->fatal ? "; stopping" : "");
        return -1;
    }
    log_info("%s: replica map created (size %" PRIu64 ", max size %" PRIu64 "%s)", r->o->dir, f->size, f->max_size,
             f->flags & HMM_CACHE ? ", cache mode" : "");
    (void)repl_file_id(r->o->dir, "hashmmap.map", &r->map_file);
    return take_replica_role(r, 1);
}

/* Open the replica map in DIR if there is one (else it is made on the
 * first START) and take the replica role.  0, or -1 (logged). */
static int open_existing_map(struct replica *r)
{
    hmm_config cfg = {.flags = HMM_REPLICA_WRITER};
    int rc = hmm_open(&r->m, r->o->dir, &cfg);
    if (rc && rc != -ENOENT) {
        char text[ERRTEXT_MAX], prefix[ERRTEXT_MAX];
        errtext(rc, text, sizeof text);
        log_error("%s%s", errtext_prefix(r->o->dir, text, prefix, sizeof prefix), text);
        return -1;
    }
    if (!r->m)
        return 0;
    (void)repl_file_id(r->o->dir, "hashmmap.map", &r->map_file);
    return take_replica_role(r, 0);
}

/* --promote made our map a primary while we run (it refuses while our
 * status names us, but a daemon that never reached its primary had not
 * published one).  Applying on would put the deposed primary's snapshot
 * over the new primary's writes: stop instead.  1 (r->fatal set, logged)
 * or 0. */
static int promoted_under_us(struct replica *r)
{
    hmm_role_info ri;
    if (!r->m || hmm_role_get(r->m, &ri) != 0 || ri.role != HMM_ROLE_PRIMARY)
        return 0;
    log_error("%s: promoted to a primary (epoch %" PRIu64 ") while this replica daemon ran; stopping, so that "
              "nothing of %s is applied over its writes", r->o->dir, ri.epoch, r->o->primary);
    checkpoint_abandon(r);
    hmm_close(r->m); /* and no replica status over the new primary's */
    r->m = NULL;
    r->fatal = 1;
    return 1;
}

/* The map in DIR deleted or recreated while we apply (rm -r; a reader's
 * hmm_open then makes an empty writable map there): we went on writing the
 * old file, which nobody reads, and readers never saw a change again.
 * Then open what DIR holds now (none: made on the next START; a map that
 * was a primary forgets its position) and reconnect.  1 when it was
 * replaced, else 0; r->fatal when DIR cannot be opened. */
static int map_replaced(struct replica *r)
{
    struct repl_file_id now;
    if (!r->m || (repl_file_id(r->o->dir, "hashmmap.map", &now) == 0 &&
                  memcmp(&now, &r->map_file, sizeof now) == 0))
        return 0;
    log_warn("%s: the replica map was replaced or deleted under the daemon; opening it again (it resyncs)", r->o->dir);
    publish_status(r, 0);
    checkpoint_abandon(r);
    hmm_close(r->m);
    r->m = NULL;
    r->position_dirty = r->position_unsynced = 0; /* they were the old file's */
    if (open_existing_map(r))
        r->fatal = 1;
    return 1;
}

static int apply(struct replica *r, const struct repl_frame *f)
{
    hmm_replog_record rec = {
        .seq = f->seq, .op = f->op, .tag = f->tag, .expire_ms = f->expire_ms,
        .key = f->key, .klen = f->klen, .val = f->op == REPL_OP_PUT ? f->val : NULL, .vlen = f->vlen,
    };
    int rc = hmm_apply(r->m, &rec);
    if (rc) {
        log_error("%s: cannot apply a change: %s", r->o->dir, hmm_strerror(rc));
        repl_conn_send_error(&r->conn, 6, "replica cannot apply a change");
        r->local_failure = 1;
        return -1;
    }
    return 0;
}

/* The stream cannot go on from here (a gap, an older epoch): forget the
 * position, so the next connection gets a snapshot, and close. */
static int force_resync(struct replica *r, const char *why)
{
    log_error("%s: %s; resyncing with a full snapshot", r->conn.peer, why);
    /* The running checkpoint first: stored after (id, 0), it would undo it. */
    if (checkpoint_collect(r, 1))
        return -1;
    r->next_seq = 0; /* (id, 0): the primary sends a snapshot; it names nothing, so no sync first */
    r->digest_seq = r->digest = 0;
    r->position_dirty = 0;
    if (save_position(r))
        return -1;
    repl_conn_send_error(&r->conn, 8, "replica needs a resync");
    return -1;
}

/* Written ahead of applying record f: from here on the map may hold it, so
 * the stored proof must be its own.  Killed after, the primary re-sends it
 * only if its own record there is the same; a restored primary whose log
 * holds another change there sends a snapshot, which undoes ours
 * (docs/FORMAT.md §13).  next_seq stays the stored one: it may name only
 * synced changes, and this one is not.  A record the proof already covers
 * (sent again after a resume from behind it) keeps the newer proof. */
static int write_proof_ahead(struct replica *r, const struct repl_frame *f)
{
    if (f->seq <= r->digest_seq)
        return 0;
    struct repl_record_head h = {f->seq, f->skipped, f->epoch};
    uint64_t digest = repl_record_digest(&h, f->op, f->tag, f->expire_ms, f->key, f->klen, f->val, f->vlen);
    if (store_position(r, r->stored_next_seq, f->seq, digest))
        return -1;
    r->digest_seq = f->seq;
    r->digest = digest;
    return 0;
}

/* A RECORD while streaming: exactly the next seq (void ones counted in
 * skipped), of an epoch not older than ours; a repeat is skipped. */
static int on_record(struct replica *r, const struct repl_frame *f)
{
    char why[160];
    if (f->seq < r->next_seq)
        return 0; /* already applied (records are whole states; a repeat is harmless but needless) */
    if (f->seq - f->skipped != r->next_seq) {
        snprintf(why, sizeof why, "sequence gap: record %" PRIu64 " (after %u void) where %" PRIu64 " was next",
                 f->seq, f->skipped, r->next_seq);
        return force_resync(r, why);
    }
    if (f->epoch < r->epoch) {
        snprintf(why, sizeof why, "record %" PRIu64 " of epoch %u, older than epoch %" PRIu64 " seen", f->seq,
                 f->epoch, r->epoch);
        return force_resync(r, why);
    }
    if (adopt_epoch(r, f->epoch) || write_proof_ahead(r, f) || apply(r, f))
        return -1;
    r->next_seq = f->seq + 1; /* ≤ 2^62 + 1: the decoder refuses larger seqs */
    r->position_dirty = 1;
    return 0;
}

/* START from a primary of an older epoch than we have seen: a deposed
 * primary that came back; nothing of it is applied. */
static int check_primary_epoch(struct replica *r, const struct repl_frame *f)
{
    if (f->epoch < r->epoch) {
        log_error("%s: refusing this primary: its epoch %u is older than epoch %" PRIu64 " this replica has seen "
                  "(a deposed primary? point --primary at the current one)", r->conn.peer, f->epoch, r->epoch);
        repl_conn_send_error(&r->conn, 7, "stale primary: the replica has seen a newer epoch");
        return -1;
    }
    return adopt_epoch(r, f->epoch);
}

/* Through hmm_apply, as every change of the replica: the library then
 * knows the map holds changes no sync has covered (hmm_sync). */
static int delete_key(void *ctx, const void *key, size_t klen)
{
    hmm_replog_record rec = {.op = HMM_REC_DEL, .key = key, .klen = klen};
    return hmm_apply(ctx, &rec);
}

/* End of a snapshot: whatever the replica holds that the snapshot did not
 * carry was absent on the primary at the snapshot's seq (or changed after
 * it, which the log that follows replays), so it goes. */
static int drop_keys_not_in_snapshot(struct replica *r, size_t *dropped)
{
    hmm_cursor *c;
    struct repl_keyset gone = {0};
    int rc = hmm_cursor_open(r->m, &c);
    if (rc)
        goto fail;
    const void *k, *v;
    size_t kl, vl;
    /* Collect first, delete after: the iteration never races our own deletes. */
    while ((rc = hmm_cursor_next(c, &k, &kl, &v, &vl)) == 0)
        if (!repl_keyset_has(&r->seen, k, kl) && repl_keyset_add(&gone, k, kl)) {
            rc = -ENOMEM;
            break;
        }
    hmm_cursor_close(c);
    if (rc != HMM_NOTFOUND)
        goto fail;
    rc = repl_keyset_foreach(&gone, delete_key, r->m);
    if (rc)
        goto fail;
    *dropped = gone.count;
    repl_keyset_free(&gone);
    return 0;
fail:
    repl_keyset_free(&gone);
    log_error("%s: cannot finish the snapshot: %s", r->o->dir, hmm_strerror(rc));
    return -1;
}

/* The handlers of the frames a primary sends, one per (state, frame type)
 * that the protocol allows (docs/PROTOCOL.md §7); each returns 0, or -1
 * to close the connection. */

/* R_CHALLENGE: answer with our nonce and proof of the secret. */
static int on_challenge(struct replica *r, const struct repl_frame *f)
{
    if (f->version != REPL_PROTOCOL_VERSION) {
        log_error("%s: speaks protocol version %u, we speak %u: run the same hashmmap-replicate release on both "
                  "hosts", r->conn.peer, f->version, REPL_PROTOCOL_VERSION);
        return -1;
    }
    uint8_t mac[REPL_MAC_LEN];
    memcpy(r->nonce_primary, f->nonce, REPL_NONCE_LEN);
    if (repl_random(r->nonce_own, REPL_NONCE_LEN) || repl_auth_mac(r->o, 0, r->nonce_primary, r->nonce_own, mac) ||
        repl_put_auth(&r->conn.out, r->nonce_own, mac))
        return -1;
    r->state = R_AUTH_OK;
    return 0;
}

/* R_AUTH_OK: the primary's proof; then seal and ask to resume. */
static int on_auth_ok(struct replica *r, const struct repl_frame *f)
{
    if (!repl_auth_check(r->o, 1, r->nonce_own, r->nonce_primary, f->mac)) {
        log_error("%s: the primary failed authentication (wrong secret, or not our primary); closing", r->conn.peer);
        return -1;
    }
    /* Only now may the primary send big frames: it proved the secret.
     * From here on every frame either way is sealed. */
    r->conn.max_body = REPL_MAX_BODY;
    uint8_t to_replica[REPL_MAC_LEN], to_primary[REPL_MAC_LEN];
    if (repl_auth_session_keys(r->o, r->nonce_primary, r->nonce_own, to_replica, to_primary))
        return -1;
    repl_conn_start_sealing(&r->conn, to_primary, to_replica);
    load_position(r);
    if (repl_put_resume(&r->conn.out, r->has_position, r->primary_id, r->next_seq, (uint32_t)r->epoch,
                        r->digest_seq, r->digest))
        return -1;
    log_info("%s: authenticated; asking to continue from seq %" PRIu64 "%s", r->conn.peer, r->next_seq,
             r->has_position ? "" : " (no position yet)");
    r->state = R_START;
    return 0;
}

/* START in stream mode: the log from exactly our position. */
static int start_streaming(struct replica *r, const struct repl_frame *f)
{
    if (!r->has_position || memcmp(f->map_id, r->primary_id, REPL_ID_LEN) != 0 || f->seq != r->next_seq) {
        log_error("%s: offers the log from seq %" PRIu64 ", which is not our position; closing", r->conn.peer,
                  f->seq);
        return -1;
    }
    r->state = R_STREAMING;
    log_info("%s: streaming from seq %" PRIu64, r->conn.peer, f->seq);
    return 0;
}

/* START in snapshot mode: until its end our position is (id, 0), so a
 * restart in the middle asks for a new snapshot instead of resuming. */
static int start_snapshot(struct replica *r, const struct repl_frame *f)
{
    if (checkpoint_collect(r, 1)) /* its position is of the id we leave */
        return -1;
    memcpy(r->primary_id, f->map_id, REPL_ID_LEN);
    r->next_seq = r->digest_seq = r->digest = 0;
    r->snap_seq = f->seq;
    repl_keyset_free(&r->seen);
    /* (id, 0) names nothing, so no sync before it; one after it, so that
     * after a power loss too no entry of the snapshot lies under the old
     * position (FORMAT.md §13, replica position, durability). */
    if (save_position(r) || sync_applied(r))
        return -1;
    r->status.snapshots++;
    r->state = R_SNAPSHOT;
    log_info("%s: receiving a full snapshot at seq %" PRIu64, r->conn.peer, f->seq);
    return 0;
}

/* R_START: the map made like the primary's when missing, then the mode. */
static int on_start(struct replica *r, const struct repl_frame *f)
{
    if (promoted_under_us(r) || open_or_create_map(r, f) || check_primary_epoch(r, f))
        return -1;
    return f->mode == REPL_START_STREAM ? start_streaming(r, f) : start_snapshot(r, f);
}

/* R_SNAPSHOT: one entry, applied and remembered for the end. */
static int on_snap_entry(struct replica *r, const struct repl_frame *f)
{
    if (apply(r, f))
        return -1;
    if (repl_keyset_add(&r->seen, f->key, f->klen)) {
        log_error("out of memory for the snapshot's key set");
        return -1;
    }
    return 0;
}

/* R_SNAPSHOT: the end; what the snapshot did not carry goes, then the
 * log follows from the snapshot's seq. */
static int on_snap_end(struct replica *r, const struct repl_frame *f)
{
    const char *peer = r->conn.peer;
    size_t dropped = 0;
    if (f->seq != r->snap_seq) {
        log_error("%s: snapshot ends at seq %" PRIu64 ", began at %" PRIu64 "; closing", peer, f->seq, r->snap_seq);
        return -1;
    }
    if (f->count != r->seen.count)
        log_warn("%s: snapshot announced %" PRIu64 " entries, %zu distinct received", peer, f->count, r->seen.count);
    if (drop_keys_not_in_snapshot(r, &dropped))
        return -1;
    repl_keyset_free(&r->seen);
    r->next_seq = f->seq + 1;
    r->digest_seq = f->seq; /* the primary's digest of record S: our proof until a record follows */
    r->digest = f->digest;
    r->position_dirty = 1;
    if (checkpoint(r)) /* the snapshot's entries synced before the position names them */
        return -1;
    r->state = R_STREAMING;
    log_info("%s: snapshot applied (%" PRIu64 " entries, %zu stale keys dropped); streaming from seq %" PRIu64, peer,
             f->count, dropped, r->next_seq);
    return 0;
}

/* R_SNAPSHOT, R_STREAMING: the primary's last seq, for the lag. */
static int on_heartbeat(struct replica *r, const struct repl_frame *f)
{
    r->status.primary_seq = f->seq;
    r->status.last_heartbeat_ms = wall_clock_ms();
    r->last_ack_ms = 0; /* answer every heartbeat: it is also our keep-alive */
    return 0;
}

static const struct replica_transition {
    enum replica_state state;
    uint8_t type;
    int (*handle)(struct replica *r, const struct repl_frame *f);
} transitions[] = {
    {R_CHALLENGE, REPL_CHALLENGE, on_challenge},  {R_AUTH_OK, REPL_AUTH_OK, on_auth_ok},
    {R_START, REPL_START, on_start},              {R_SNAPSHOT, REPL_SNAP_ENTRY, on_snap_entry},
    {R_SNAPSHOT, REPL_SNAP_END, on_snap_end},     {R_SNAPSHOT, REPL_HEARTBEAT, on_heartbeat},
    {R_STREAMING, REPL_RECORD, on_record},        {R_STREAMING, REPL_HEARTBEAT, on_heartbeat},
};

/* A frame from an authenticated or authenticating primary.  -1 closes. */
static int on_frame(struct replica *r, const struct repl_frame *f)
{
    if (f->type == REPL_ERROR) {
        log_warn("%s: refused us: %.*s (code %u)", r->conn.peer, (int)f->text_len, f->text, f->code);
        return -1;
    }
    for (size_t i = 0; i < sizeof transitions / sizeof transitions[0]; i++)
        if (transitions[i].state == r->state && transitions[i].type == f->type)
            return transitions[i].handle(r, f);
    log_warn("%s: unexpected %s frame; closing", r->conn.peer, repl_frame_name(f->type));
    repl_conn_send_error(&r->conn, 2, "unexpected frame");
    return -1;
}

static void publish_status(struct replica *r, int connected)
{
    if (!r->m)
        return;
    hmm_repl_status *st = &r->status;
    uint64_t now = wall_clock_ms();
    st->role = HMM_REPL_ROLE_REPLICA;
    st->pid = getpid();
    st->updated_ms = now;
    st->peers = connected ? 1 : 0;
    st->state = !connected                ? HMM_REPL_DISCONNECTED
                : r->state == R_SNAPSHOT  ? HMM_REPL_SNAPSHOT
                : r->state == R_STREAMING ? HMM_REPL_STREAMING
                                          : HMM_REPL_CONNECTING;
    st->acked_seq = r->next_seq ? r->next_seq - 1 : 0;
    if (st->primary_seq < st->acked_seq)
        st->primary_seq = st->acked_seq;
    st->lag_seqs = st->primary_seq - st->acked_seq;
    if (st->lag_seqs == 0 || r->caught_up_ms == 0)
        r->caught_up_ms = now;
    st->lag_ms = now - r->caught_up_ms;
    int rc = hmm_repl_status_set(r->m, st);
    if (rc)
        log_debug("cannot publish the status: %s", hmm_strerror(rc));
}

/* One connection, from connect to loss.  1 when it reached streaming (the
 * backoff starts over), 0 otherwise, also when it streamed but ended on a
 * failure of ours: a full map failed the first record of every connection,
 * and starting the backoff over made that 5 reconnects a second, forever. */
static int run_session(struct replica *r, int fd, const char *host)
{
    int streamed = 0;
    uint64_t last_status = 0;
    r->state = R_CHALLENGE;
    r->local_failure = 0;
    if (repl_conn_init(&r->conn, fd, r->tls, 0, host))
        goto out;
    while (!repl_stop) {
        struct pollfd pfd = {.fd = r->conn.fd, .events = repl_conn_events(&r->conn)};
        if (poll(&pfd, 1, 50) < 0 && errno != EINTR)
            break;
        uint64_t in0 = r->conn.bytes_in, out0 = r->conn.bytes_out;
        int lost = repl_conn_pump(&r->conn);
        struct repl_frame f;
        int got;
        while (!lost && (got = repl_conn_next_frame(&r->conn, &f)) != 0)
            if (got < 0 || on_frame(r, &f))
                lost = 1;
        uint64_t mono = monotonic_ms();
        if (!lost && r->m && checkpoint_collect(r, 0))
            lost = 1;
        if (!lost && r->m && checkpoint_due(r, mono))
            checkpoint_begin(r);
        if (!lost && r->state >= R_SNAPSHOT && (r->acked != r->next_seq || r->last_ack_ms == 0) &&
            mono - r->last_ack_ms >= ACK_EVERY_MS) {
            if (repl_put_ack(&r->conn.out, r->next_seq, wall_clock_ms()))
                lost = 1;
            r->acked = r->next_seq;
            r->last_ack_ms = mono;
        }
        if (!lost && mono - r->conn.last_rx_ms > r->o->timeout_ms) {
            log_warn("%s: silent for %u ms; reconnecting", r->conn.peer, r->o->timeout_ms);
            lost = 1;
        }
        if (r->state == R_STREAMING)
            streamed = 1;
        (void)repl_conn_pump(&r->conn); /* flush acks and errors, also on the way out */
        r->status.bytes_received += r->conn.bytes_in - in0;
        r->status.bytes_sent += r->conn.bytes_out - out0;
        uint64_t now = wall_clock_ms();
        if (lost || now - last_status >= STATUS_EVERY_MS) {
            if (!lost && (map_replaced(r) || promoted_under_us(r)))
                lost = 1;
            publish_status(r, !lost);
            last_status = now;
        }
        if (lost)
            break;
    }
out:
    checkpoint_at_end(r);
    repl_conn_close(&r->conn);
    repl_keyset_free(&r->seen);
    return streamed && !r->local_failure;
}

/* Sleep ms, cut short by SIGTERM. */
static void pause_ms(unsigned ms)
{
    uint64_t end = monotonic_ms() + ms;
    while (!repl_stop && monotonic_ms() < end) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int repl_replica_run(const struct repl_options *o)
{
    struct replica r = {.o = o, .conn = {.fd = -1}};
    int ret = -1;
    int rc = repl_sync_init(&r.syncer);
    if (rc) {
        log_error("cannot start the sync thread: %s", strerror(rc));
        return -1;
    }
    if (open_existing_map(&r)) /* else it is made on the first START */
        goto fail;
    if (!r.m && dir_can_hold_a_map(o->dir))
        goto fail;
    publish_status(&r, 0); /* our pid, so --promote refuses while we run, also before a first connection */
    if (repl_tls_context(o, 0, &r.tls))
        goto fail;
    load_position(&r);
    log_info("replicating %s into %s%s", o->primary, o->dir, r.tls ? " over TLS" : "");
    unsigned backoff = BACKOFF_FIRST_MS;
    while (!repl_stop) {
        char host[256], name[80];
        if (promoted_under_us(&r))
            goto fail;
        int fd = connect_to(o->primary, host, sizeof host, name, sizeof name);
        if (fd == -2)
            goto fail;
        if (fd >= 0) {
            memset(&r.conn, 0, sizeof r.conn);
            snprintf(r.conn.peer, sizeof r.conn.peer, "%s", name);
            if (run_session(&r, fd, host))
                backoff = BACKOFF_FIRST_MS;
            if (r.fatal)
                goto fail;
            if (repl_stop)
                break;
            r.status.reconnects++;
        }
        /* Jitter, so replicas of a restarted primary do not return in step. */
        unsigned wait = backoff / 2 + (unsigned)(rand() % (int)(backoff / 2 + 1));
        log_info("reconnecting in %u ms", wait);
        pause_ms(wait);
        backoff = backoff * 2 > o->backoff_max_ms ? o->backoff_max_ms : backoff * 2;
    }
    log_info("shutting down");
    ret = 0;
fail:
    repl_sync_free(&r.syncer); /* every session waited for its checkpoint: none runs */
    if (r.m) {
        publish_status(&r, 0);
        hmm_close(r.m);
    }
    repl_tls_context_free(r.tls);
    return ret;
}
