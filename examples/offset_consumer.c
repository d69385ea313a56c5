/*
 * offset_consumer.c - consumers that keep their committed offsets in a
 * hashmmap map and resume after SIGKILL without skipping a record.
 *
 *     examples/offset-consumer DIR [-p PARTITIONS] [-r RECORDS] [-c CONSUMERS]
 *                              [-k KILLS] [-b BATCH] [-s SEED]
 *
 * DIR (must not hold a previous run) receives a simulated partitioned log:
 * DIR/log.N, one file per partition, each RECORDS fixed-size numbered
 * records.  CONSUMERS forked processes share the partitions (partition p
 * belongs to consumer p % CONSUMERS).  A consumer reads the committed
 * offset of "sim/p" (hmm_offset_get), reads BATCH records from there,
 * processes each, then commits (hmm_offset_commit) and goes on.
 * Processing is idempotent: it puts "done/p/r" into the map (the effect)
 * and counts "seen/p/r" (to measure how often a record was processed).
 *
 * Meanwhile the parent SIGKILLs consumers at random moments (also inside a
 * put or a commit) and starts them again; they resume from the committed
 * offset.  After each kill a "stale owner" process commits old offsets of
 * the victim's partitions (half of the last ones seen), as a consumer that
 * lost them in a rebalance and commits late would.  At the end it checks, exactly:
 *   - every record of every partition is done (none skipped), and every
 *     committed offset equals RECORDS;
 *   - no committed offset was ever seen to move backwards (the parent
 *     samples them all the time, consumers check what each commit returns);
 *   - records processed more than once <= KILLS * BATCH: only the records
 *     of a batch processed but not committed when its consumer died are
 *     processed again (commit after process = at-least-once, made
 *     exactly-once in effect by the idempotent put).
 * Prints one summary line; exits 0 when every check holds, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hashmmap.h>

#define TOPIC "sim"
#define MAX_PARTITIONS 64
#define MAX_CONSUMERS 16
#define RECORD_LEN 19 /* "p=000 r=0000000000\n" (records < 10^10) */
#define RECORD_BUF 48 /* room for any int and uint64 the format could get */

/* Consumer exit codes: what went wrong, for the parent's summary. */
#define CONSUMER_OK 0
#define CONSUMER_MAP_ERROR 10
#define CONSUMER_BACKWARDS 11
#define CONSUMER_SKIPPED 12
#define CONSUMER_BAD_RECORD 13

struct sim {
    const char *dir;
    int partitions;
    uint64_t records;
    int consumers;
    int kills;
    int batch;
    unsigned seed;
    char state_dir[4096];
};

static int format_record(char *buf, int partition, uint64_t record)
{
    return snprintf(buf, RECORD_BUF, "p=%03d r=%010" PRIu64 "\n", partition, record);
}

static int log_open(const struct sim *s, int partition, int flags)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/log.%d", s->dir, partition);
    return open(path, flags | O_CLOEXEC, 0644);
}

/* The simulated log: record r of partition p at byte r * RECORD_LEN. */
static int generate_log(const struct sim *s)
{
    for (int p = 0; p < s->partitions; p++) {
        int fd = log_open(s, p, O_WRONLY | O_CREAT | O_TRUNC);
        if (fd < 0)
            return -errno;
        FILE *f = fdopen(fd, "w");
        if (!f) {
            close(fd);
            return -errno;
        }
        char rec[RECORD_BUF];
        for (uint64_t r = 0; r < s->records; r++) {
            format_record(rec, p, r);
            fputs(rec, f);
        }
        if (fclose(f) != 0)
            return -EIO;
    }
    return 0;
}

static size_t record_key(char *buf, size_t cap, const char *kind, int partition, uint64_t record)
{
    return (size_t)snprintf(buf, cap, "%s/%d/%" PRIu64, kind, partition, record);
}

/* Process one record: the idempotent effect, and a count of deliveries. */
static int process_record(hmm_t *m, int partition, uint64_t record)
{
    char key[64];
    size_t klen = record_key(key, sizeof key, "seen", partition, record);
    int rc = hmm_incr(m, key, klen, 1, NULL);
    if (rc)
        return rc;
    klen = record_key(key, sizeof key, "done", partition, record);
    return hmm_put(m, key, klen, "1", 1, 0, 0);
}

static int record_done(hmm_t *m, int partition, uint64_t record)
{
    char key[64], val[8];
    size_t vlen = sizeof val;
    size_t klen = record_key(key, sizeof key, "done", partition, record);
    return hmm_get(m, key, klen, val, &vlen) == 0;
}

/* Consume partition p from its committed offset: one batch, then commit.
 * Returns 1 when the partition is finished, 0 when more is left. */
static int consume_batch(const struct sim *s, hmm_t *m, int fd, int p, int *status)
{
    char key[128], rec[RECORD_BUF], want[RECORD_BUF];
    size_t klen;
    uint64_t offset = 0, stored;
    hmm_offset_key(key, sizeof key, TOPIC, p, &klen);
    int rc = hmm_offset_get(m, key, klen, &offset);
    if (rc && rc != HMM_NOTFOUND)
        return *status = CONSUMER_MAP_ERROR, 1;
    if (offset > 0 && !record_done(m, p, offset - 1))
        return *status = CONSUMER_SKIPPED, 1; /* committed past an unprocessed record */
    if (offset >= s->records)
        return 1;
    uint64_t end = offset + (uint64_t)s->batch;
    if (end > s->records)
        end = s->records;
    for (uint64_t r = offset; r < end; r++) {
        if (pread(fd, rec, RECORD_LEN, (off_t)(r * RECORD_LEN)) != RECORD_LEN)
            return *status = CONSUMER_BAD_RECORD, 1;
        format_record(want, p, r);
        if (memcmp(rec, want, RECORD_LEN) != 0)
            return *status = CONSUMER_BAD_RECORD, 1;
        if (process_record(m, p, r) != 0)
            return *status = CONSUMER_MAP_ERROR, 1;
    }
    /* Commit only after processing: a kill before this line repeats the
     * batch, never skips it. */
    if (hmm_offset_commit(m, key, klen, end, &stored) != 0)
        return *status = CONSUMER_MAP_ERROR, 1;
    if (stored < end)
        return *status = CONSUMER_BACKWARDS, 1;
    return end >= s->records;
}

static int consumer_main(const struct sim *s, int id)
{
    hmm_t *m;
    int fds[MAX_PARTITIONS];
    int status = CONSUMER_OK, open_left = 0;
    if (hmm_open(&m, s->state_dir, NULL) != 0)
        return CONSUMER_MAP_ERROR;
    for (int p = id; p < s->partitions; p += s->consumers) {
        if ((fds[p] = log_open(s, p, O_RDONLY)) < 0)
            return CONSUMER_BAD_RECORD;
        open_left++;
    }
    /* Round robin over the partitions this consumer owns, a batch each. */
    while (open_left > 0 && status == CONSUMER_OK) {
        for (int p = id; p < s->partitions && status == CONSUMER_OK; p += s->consumers) {
            if (fds[p] < 0)
                continue;
            if (consume_batch(s, m, fds[p], p, &status)) {
                close(fds[p]);
                fds[p] = -1;
                open_left--;
            }
            usleep(50); /* pace the work so the parent's kills land mid-run */
        }
    }
    hmm_close(m);
    return status;
}

/* A consumer that lost its partitions in a rebalance but still commits
 * what it had processed long ago: stale, out-of-order commits of offsets
 * below the current ones.  hmm_offset_commit ignores them; a plain put
 * would move the offset back and make the owner read records again. */
static int stale_committer_main(const struct sim *s, int id, const uint64_t *last)
{
    hmm_t *m;
    if (hmm_open(&m, s->state_dir, NULL) != 0)
        return CONSUMER_MAP_ERROR;
    for (int p = id; p < s->partitions; p += s->consumers) {
        char key[128];
        size_t klen;
        uint64_t stale = last[p] / 2, stored;
        hmm_offset_key(key, sizeof key, TOPIC, p, &klen);
        if (hmm_offset_commit(m, key, klen, stale, &stored) != 0) {
            hmm_close(m);
            return CONSUMER_MAP_ERROR;
        }
    }
    hmm_close(m);
    return CONSUMER_OK;
}

static pid_t start_consumer(const struct sim *s, int id)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(consumer_main(s, id));
    return pid;
}

/* Parent: sample every committed offset; count any that went backwards. */
static int sample_offsets(hmm_t *m, const struct sim *s, uint64_t *last)
{
    int backwards = 0;
    for (int p = 0; p < s->partitions; p++) {
        char key[128];
        size_t klen;
        uint64_t off = 0;
        hmm_offset_key(key, sizeof key, TOPIC, p, &klen);
        if (hmm_offset_get(m, key, klen, &off) != 0)
            continue;
        if (off < last[p])
            backwards++;
        else
            last[p] = off;
    }
    return backwards;
}

static int parse_args(int argc, char **argv, struct sim *s)
{
    int c;
    while ((c = getopt(argc, argv, "p:r:c:k:b:s:")) != -1) {
        long v = strtol(optarg, NULL, 10);
        switch (c) {
        case 'p': s->partitions = (int)v; break;
        case 'r': s->records = (uint64_t)v; break;
        case 'c': s->consumers = (int)v; break;
        case 'k': s->kills = (int)v; break;
        case 'b': s->batch = (int)v; break;
        case 's': s->seed = (unsigned)v; break;
        default: return -1;
        }
    }
    if (optind != argc - 1 || s->partitions < 1 || s->partitions > MAX_PARTITIONS || s->records < 1
        || s->records >= 10000000000ull || s->consumers < 1 || s->consumers > MAX_CONSUMERS || s->kills < 0 || s->batch < 1)
        return -1;
    s->dir = argv[optind];
    snprintf(s->state_dir, sizeof s->state_dir, "%s/state", s->dir);
    return 0;
}

int main(int argc, char **argv)
{
    struct sim s = {.partitions = 4, .records = 2000, .consumers = 3, .kills = 20, .batch = 4,
                    .seed = (unsigned)time(NULL)};
    if (parse_args(argc, argv, &s) != 0) {
        fprintf(stderr, "usage: offset-consumer DIR [-p PARTITIONS<=64] [-r RECORDS] [-c CONSUMERS<=16]"
                        " [-k KILLS] [-b BATCH] [-s SEED]\n");
        return 2;
    }
    srand(s.seed);
    if (mkdir(s.dir, 0755) != 0 && errno != EEXIST) {
        perror(s.dir);
        return 3;
    }
    hmm_t *m;
    hmm_config cfg = {.size = 32u << 20, .max_size = 1ull << 30, .flags = HMM_CREATE | HMM_EXCL};
    int rc = hmm_open(&m, s.state_dir, &cfg);
    if (rc) {
        fprintf(stderr, "offset-consumer: %s: %s\n", s.state_dir, hmm_strerror(rc));
        return 3;
    }
    if ((rc = generate_log(&s)) != 0) {
        fprintf(stderr, "offset-consumer: writing the log: %s\n", strerror(-rc));
        return 3;
    }

    pid_t pids[MAX_CONSUMERS];
    uint64_t last[MAX_PARTITIONS] = {0};
    int running = s.consumers, kills = 0, failures = 0, backwards = 0;
    for (int i = 0; i < s.consumers; i++)
        pids[i] = start_consumer(&s, i);
    while (running > 0) {
        usleep(500 + (useconds_t)(rand() % 4000));
        backwards += sample_offsets(m, &s, last);
        if (kills < s.kills) {
            int victim = rand() % s.consumers;
            if (pids[victim] > 0 && kill(pids[victim], SIGKILL) == 0) {
                int st;
                waitpid(pids[victim], &st, 0);
                /* It may have finished just before the signal landed. */
                if (WIFSIGNALED(st)) {
                    kills++;
                    pids[victim] = start_consumer(&s, victim);
                    /* ... while a stale owner of its partitions commits late. */
                    pid_t stale = fork();
                    if (stale == 0)
                        _exit(stale_committer_main(&s, victim, last));
                    waitpid(stale, &st, 0);
                    failures += !(WIFEXITED(st) && WEXITSTATUS(st) == CONSUMER_OK);
                } else {
                    failures += !(WIFEXITED(st) && WEXITSTATUS(st) == CONSUMER_OK);
                    pids[victim] = -1;
                    running--;
                }
            }
        }
        for (int i = 0; i < s.consumers; i++) {
            int st;
            if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                if (!(WIFEXITED(st) && WEXITSTATUS(st) == CONSUMER_OK)) {
                    fprintf(stderr, "offset-consumer: consumer %d failed (status %d)\n", i,
                            WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
                    failures++;
                }
                pids[i] = -1;
                running--;
            }
        }
    }
    backwards += sample_offsets(m, &s, last);

    uint64_t skipped = 0, reprocessed = 0, short_commits = 0;
    for (int p = 0; p < s.partitions; p++) {
        if (last[p] != s.records)
            short_commits++;
        for (uint64_t r = 0; r < s.records; r++) {
            char key[64];
            int64_t seen = 0;
            skipped += !record_done(m, p, r);
            size_t klen = record_key(key, sizeof key, "seen", p, r);
            if (hmm_incr(m, key, klen, 0, &seen) == 0 && seen > 1)
                reprocessed += (uint64_t)(seen - 1);
        }
    }
    hmm_close(m);
    int ok = failures == 0 && backwards == 0 && skipped == 0 && short_commits == 0
             && reprocessed <= (uint64_t)kills * (uint64_t)s.batch;
    printf("partitions=%d records=%" PRIu64 " consumers=%d kills=%d batch=%d reprocessed=%" PRIu64
           " skipped=%" PRIu64 " backwards=%d unfinished=%" PRIu64 " failures=%d: %s\n",
           s.partitions, s.records, s.consumers, kills, s.batch, reprocessed, skipped, backwards,
           short_commits, failures, ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
