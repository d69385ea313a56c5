/*
 * replbench - replication throughput and lag (issue 19), driven by
 * bench/replbench.sh, which starts the daemons on loopback:
 *
 *     P --> R1 --> R3        R1 and R2 replicas of P (fan-out),
 *       \-> R2               R3 a replica of R1 (a chain)
 *
 *   replbench PRIMARY_DIR CSV RATE:SECONDS... -- REPLICA_DIR...
 *
 * A phase RATE:SECONDS writes RATE changes per second (0: as fast as one
 * writer can) to PRIMARY_DIR, 16-byte keys and 8-byte values over 1 M keys,
 * and every 10 ms stores the wall clock in the key "replbench/clock".
 * Every 50 ms the sampler reads that key on each replica: now minus the
 * clock a replica holds is its lag (an upper bound, 10 ms granularity),
 * whatever its place in the topology.  One CSV row per sample: phase, ms
 * since the start, changes written, the lag of each replica.  At the end of
 * each phase it waits (up to 60 s) until every replica holds the last
 * clock, and prints per phase: the rate written, the time the last replica
 * needed to catch up, changes shipped per second end to end, lag
 * percentiles, and bytes per change on the wire (the primary daemon's
 * bytes_sent over changes, per direct replica).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hashmmap.h>

#define MAX_REPLICAS 8
#define SAMPLE_MS 50
#define CLOCK_EVERY_MS 10
#define MAX_SAMPLES 100000
static const char clock_key[] = "replbench/clock";

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

struct bench {
    hmm_t *p;
    hmm_t *r[MAX_REPLICAS];
    int nr;
    FILE *csv;
    uint64_t start_ms, written, rng;
    uint64_t lags[MAX_SAMPLES]; /* worst replica's lag per sample of the phase */
    size_t nlags;
};

/* The clock a replica holds, or 0 when it has none yet. */
static uint64_t replica_clock(hmm_t *m)
{
    char buf[32];
    size_t len = sizeof buf - 1;
    if (hmm_get(m, clock_key, sizeof clock_key - 1, buf, &len) != 0)
        return 0;
    buf[len] = '\0';
    return strtoull(buf, NULL, 10);
}

static void put_clock(struct bench *b, uint64_t t)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%" PRIu64, t);
    if (hmm_put(b->p, clock_key, sizeof clock_key - 1, buf, (size_t)n, 0, 0) == 0)
        b->written++;
}

static void put_one(struct bench *b)
{
    char key[17], val[8];
    b->rng = b->rng * 6364136223846793005ull + 1442695040888963407ull;
    snprintf(key, sizeof key, "k%015" PRIu64, (b->rng >> 33) % 1000000);
    memcpy(val, &b->written, sizeof val);
    int rc = hmm_put(b->p, key, 16, val, sizeof val, 0, 0);
    if (rc) {
        fprintf(stderr, "replbench: put: %s (%s)\n", hmm_strerror(rc), hmm_last_error());
        exit(1);
    }
    b->written++;
}

static void sample(struct bench *b, int phase, uint64_t t)
{
    uint64_t worst = 0;
    fprintf(b->csv, "%d,%" PRIu64 ",%" PRIu64, phase, t - b->start_ms, b->written);
    for (int i = 0; i < b->nr; i++) {
        uint64_t c = replica_clock(b->r[i]);
        uint64_t lag = c && t > c ? t - c : 0;
        fprintf(b->csv, ",%" PRIu64, lag);
        if (lag > worst)
            worst = lag;
    }
    fputc('\n', b->csv);
    if (b->nlags < MAX_SAMPLES)
        b->lags[b->nlags++] = worst;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t primary_bytes_sent(struct bench *b)
{
    hmm_repl_status st;
    return hmm_repl_status_get(b->p, &st) == 0 ? st.bytes_sent : 0;
}

/* Write for seconds at rate (0: flat out), sampling; then wait for every
 * replica to hold the last clock.  Prints the phase's figures. */
static void run_phase(struct bench *b, int phase, uint64_t rate, unsigned seconds, int direct)
{
    uint64_t t0 = now_ms(), w0 = b->written, bytes0 = primary_bytes_sent(b), next_sample = t0, next_clock = t0;
    b->nlags = 0;
    for (uint64_t t = t0; t - t0 < seconds * 1000u; t = now_ms()) {
        uint64_t due = rate ? (t - t0) * rate / 1000 : b->written - w0 + 256;
        while (b->written - w0 < due && now_ms() < next_clock + CLOCK_EVERY_MS)
            put_one(b);
        if (t >= next_clock) {
            put_clock(b, t);
            next_clock += CLOCK_EVERY_MS;
        }
        if (t >= next_sample) {
            sample(b, phase, t);
            next_sample += SAMPLE_MS;
        }
        if (rate)
            sleep_us(500);
    }
    uint64_t t_end = now_ms(), w_end = b->written;
    put_clock(b, t_end);
    uint64_t caught = 0;
    for (uint64_t t = now_ms(); t - t_end < 60000; t = now_ms()) {
        int all = 1;
        for (int i = 0; i < b->nr; i++)
            all &= replica_clock(b->r[i]) >= t_end;
        if (t >= next_sample) {
            sample(b, phase, t);
            next_sample += SAMPLE_MS;
        }
        if (all) {
            caught = t;
            break;
        }
        sleep_us(2000);
    }
    size_t n = b->nlags; /* the idle samples below are plotted, not counted */
    /* Idle for a status round of the primary daemon (500 ms) and then some,
     * the clock still ticking: the lag shown between phases is real. */
    for (uint64_t t = now_ms(), idle0 = t; t - idle0 < 1200; t = now_ms()) {
        if (t >= next_clock) {
            put_clock(b, t);
            next_clock = t + CLOCK_EVERY_MS;
        }
        if (t >= next_sample) {
            sample(b, phase, t);
            next_sample = t + SAMPLE_MS;
        }
        sleep_us(2000);
    }
    uint64_t bytes = primary_bytes_sent(b) - bytes0, changes = w_end - w0 + 1;
    qsort(b->lags, n, sizeof b->lags[0], cmp_u64);
    uint64_t p50 = n ? b->lags[n / 2] : 0, p99 = n ? b->lags[n * 99 / 100] : 0, max = n ? b->lags[n - 1] : 0;
    double secs = (double)(t_end - t0) / 1000.0, total = caught ? (double)(caught - t0) / 1000.0 : 0;
    printf("phase %d: target %s%" PRIu64 "/s, wrote %" PRIu64 " changes in %.1f s (%.0f/s); last replica caught up "
           "%s%" PRIu64 " ms after the writer stopped: %.0f changes/s end to end; lag p50 %" PRIu64 " ms, p99 %" PRIu64
           " ms, max %" PRIu64 " ms; %.1f bytes/change/replica on the wire\n",
           phase, rate ? "" : "flat out ~", rate, changes, secs, (double)changes / secs, caught ? "" : "NOT (60 s) ",
           caught ? caught - t_end : 0, total > 0 ? (double)changes / total : 0, p50, p99, max,
           direct ? (double)bytes / (double)changes / direct : 0);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static struct bench b;
    if (argc < 5) {
        fprintf(stderr, "usage: replbench PRIMARY_DIR CSV DIRECT_REPLICAS RATE:SECONDS... -- REPLICA_DIR...\n");
        return 2;
    }
    hmm_config cfg = {0};
    int rc = hmm_open(&b.p, argv[1], &cfg);
    if (rc) {
        fprintf(stderr, "replbench: %s: %s\n", argv[1], hmm_strerror(rc));
        return 1;
    }
    int direct = atoi(argv[3]), sep = 4;
    while (sep < argc && strcmp(argv[sep], "--") != 0)
        sep++;
    for (int i = sep + 1; i < argc && b.nr < MAX_REPLICAS; i++) {
        hmm_config ro = {.flags = HMM_RDONLY};
        if ((rc = hmm_open(&b.r[b.nr++], argv[i], &ro)) != 0) {
            fprintf(stderr, "replbench: %s: %s\n", argv[i], hmm_strerror(rc));
            return 1;
        }
    }
    b.csv = fopen(argv[2], "w");
    if (!b.csv)
        return 1;
    fprintf(b.csv, "phase,ms,written");
    for (int i = 0; i < b.nr; i++)
        fprintf(b.csv, ",lag_ms_%d", i + 1);
    fputc('\n', b.csv);
    b.start_ms = now_ms();
    b.rng = 42;
    for (int i = 4; i < sep; i++) {
        uint64_t rate = strtoull(argv[i], NULL, 10);
        const char *colon = strchr(argv[i], ':');
        run_phase(&b, i - 3, rate, colon ? (unsigned)atoi(colon + 1) : 10, direct);
    }
    fclose(b.csv);
    for (int i = 0; i < b.nr; i++)
        hmm_close(b.r[i]);
    hmm_close(b.p);
    return 0;
}
