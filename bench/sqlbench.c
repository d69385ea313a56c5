/*
 * sqlbench.c - point lookups per second through SQL: the hashmmap virtual
 * table (sqlite-vtab/) against the same lookups in a plain SQLite table,
 * with hmm_get itself as the floor.
 *
 *     bench/sqlbench [--keys N] [--lookups N] EXTENSION
 *     make bench-sql     (builds hashmmap.so and this, runs it)
 *
 * Every store holds the same N keys of 16 bytes with an integer value; the
 * lookups are one prepared `SELECT value FROM t WHERE key = ?` per key, in
 * the same uniform random key order for every store, single thread; then
 * the same keys IN_KEYS at a time through `key IN (...)`.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <hashmmap.h>

#define KEY_BYTES 16

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void key_of(char out[32], uint64_t i) /* 16 bytes for i < 10^12 */
{
    snprintf(out, 32, "key:%012" PRIu64, i);
}

static int exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "sqlbench: %s: %s\n", sql, err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static int fill(sqlite3 *db, const char *table, uint64_t keys)
{
    char sql[128], key[32];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof sql, "INSERT INTO %s(key, value) VALUES (?, ?)", table);
    if (exec(db, "BEGIN") || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        goto fail;
    for (uint64_t i = 0; i < keys; i++) {
        key_of(key, i);
        sqlite3_bind_text(st, 1, key, KEY_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
        if (sqlite3_step(st) != SQLITE_DONE)
            goto fail;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return exec(db, "COMMIT");
fail:
    fprintf(stderr, "sqlbench: filling %s: %s\n", table, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return -1;
}

/* Lookups per second of `SELECT value FROM table WHERE key = ?` over the
 * key order in order[]; the sum of the values found guards against a
 * store that answers wrongly (every key is present, so sum is known). */
static double lookups_sql(sqlite3 *db, const char *table, const uint64_t *order, uint64_t n)
{
    char sql[128], key[32];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof sql, "SELECT value FROM %s WHERE key = ?", table);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlbench: %s: %s\n", sql, sqlite3_errmsg(db));
        return -1;
    }
    uint64_t sum = 0, want = 0;
    double t0 = now_sec();
    for (uint64_t i = 0; i < n; i++) {
        key_of(key, order[i]);
        sqlite3_bind_text(st, 1, key, KEY_BYTES, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            sum += (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        want += order[i];
    }
    double t = now_sec() - t0;
    sqlite3_finalize(st);
    if (sum != want) {
        fprintf(stderr, "sqlbench: %s answered wrongly (sum %" PRIu64 ", expected %" PRIu64 ")\n", table, sum, want);
        return -1;
    }
    return (double)n / t;
}

/* Keys per second of `SELECT sum(value) FROM table WHERE key IN (?, ... ?)`
 * with IN_KEYS keys a statement, over the same order; *sum gets the total,
 * which the caller compares between tables (a group may repeat a key, and
 * IN is a set, so the total is not simply the sum of the order). */
#define IN_KEYS 32
static double lookups_sql_in(sqlite3 *db, const char *table, const uint64_t *order, uint64_t n, uint64_t *sum)
{
    char sql[512], key[IN_KEYS][32];
    int at = snprintf(sql, sizeof sql, "SELECT sum(value) FROM %s WHERE key IN (?", table);
    for (int i = 1; i < IN_KEYS; i++)
        at += snprintf(sql + at, sizeof sql - (size_t)at, ", ?");
    snprintf(sql + at, sizeof sql - (size_t)at, ")");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlbench: %s: %s\n", sql, sqlite3_errmsg(db));
        return -1;
    }
    *sum = 0;
    n -= n % IN_KEYS;
    double t0 = now_sec();
    for (uint64_t i = 0; i < n; i += IN_KEYS) {
        for (int j = 0; j < IN_KEYS; j++) {
            key_of(key[j], order[i + (uint64_t)j]);
            sqlite3_bind_text(st, j + 1, key[j], KEY_BYTES, SQLITE_STATIC);
        }
        if (sqlite3_step(st) == SQLITE_ROW)
            *sum += (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    double t = now_sec() - t0;
    sqlite3_finalize(st);
    return (double)n / t;
}

static double lookups_api(hmm_t *m, const uint64_t *order, uint64_t n)
{
    char key[32], val[32];
    uint64_t found = 0;
    double t0 = now_sec();
    for (uint64_t i = 0; i < n; i++) {
        key_of(key, order[i]);
        size_t vlen = sizeof val;
        found += hmm_get(m, key, KEY_BYTES, val, &vlen) == 0;
    }
    double t = now_sec() - t0;
    if (found != n) {
        fprintf(stderr, "sqlbench: hmm_get found %" PRIu64 " of %" PRIu64 "\n", found, n);
        return -1;
    }
    return (double)n / t;
}

static int usage(void)
{
    fprintf(stderr, "usage: sqlbench [--keys N] [--lookups N] EXTENSION\n"
                    "  e.g. bench/sqlbench .libs/hashmmap\n");
    return 2;
}

int main(int argc, char **argv)
{
    uint64_t keys = 100000, lookups = 1000000;
    const char *ext = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc)
            keys = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--lookups") == 0 && i + 1 < argc)
            lookups = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !ext)
            ext = argv[i];
        else
            return usage();
    }
    if (!ext || keys == 0 || keys > 1000000000000ull || lookups == 0)
        return usage();

    char dir[] = "/tmp/sqlbench.XXXXXX", map[64], sql[160];
    if (!mkdtemp(dir)) {
        perror("sqlbench: mkdtemp");
        return 3;
    }
    snprintf(map, sizeof map, "%s/map", dir);
    int rc = 3;
    sqlite3 *db = NULL;
    hmm_t *m = NULL;
    uint64_t *order = malloc(lookups * sizeof *order);
    if (!order || sqlite3_open(":memory:", &db) != SQLITE_OK)
        goto out;
    char *err = NULL;
    sqlite3_enable_load_extension(db, 1);
    if (sqlite3_load_extension(db, ext, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "sqlbench: cannot load %s: %s\n", ext, err ? err : "?");
        sqlite3_free(err);
        goto out;
    }
    snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE h USING hashmmap(path='%s', size='%" PRIu64 "')", map,
             keys * 256 + (64u << 20));
    if (exec(db, sql) || exec(db, "CREATE TABLE p(key TEXT PRIMARY KEY, value) WITHOUT ROWID") ||
        fill(db, "h", keys) || fill(db, "p", keys))
        goto out;
    hmm_config cfg = {.flags = HMM_NOMETRICS};
    if (hmm_open(&m, map, &cfg) != 0) {
        fprintf(stderr, "sqlbench: cannot open %s\n", map);
        goto out;
    }
    uint64_t x = 88172645463325252ull; /* xorshift64: the same order every run */
    for (uint64_t i = 0; i < lookups; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        order[i] = x % keys;
    }
    double vtab = lookups_sql(db, "h", order, lookups);
    double plain = lookups_sql(db, "p", order, lookups);
    double api = lookups_api(m, order, lookups);
    uint64_t vtab_in_sum, plain_in_sum;
    double vtab_in = lookups_sql_in(db, "h", order, lookups, &vtab_in_sum);
    double plain_in = lookups_sql_in(db, "p", order, lookups, &plain_in_sum);
    if (vtab < 0 || plain < 0 || api < 0 || vtab_in < 0 || plain_in < 0)
        goto out;
    if (vtab_in_sum != plain_in_sum) {
        fprintf(stderr, "sqlbench: key IN (...) answered wrongly (sum %" PRIu64 ", the plain table's %" PRIu64 ")\n",
                vtab_in_sum, plain_in_sum);
        goto out;
    }
    printf("point lookups, %" PRIu64 " keys of %d bytes, %" PRIu64 " random lookups, one thread:\n",
           keys, KEY_BYTES, lookups);
    printf("  %-44s %12.0f /s\n", "SQL on the hashmmap virtual table", vtab);
    printf("  %-44s %12.0f /s\n", "SQL on a plain SQLite table (in memory)", plain);
    printf("  %-44s %12.0f /s\n", "hmm_get (no SQL)", api);
    printf("  virtual table / plain table: %.2fx\n", vtab / plain);
    printf("keys looked up through key IN (%d keys a statement), per second:\n", IN_KEYS);
    printf("  %-44s %12.0f /s\n", "the hashmmap virtual table (hmm_get_batch)", vtab_in);
    printf("  %-44s %12.0f /s\n", "a plain SQLite table (in memory)", plain_in);
    printf("  virtual table / plain table: %.2fx\n", vtab_in / plain_in);
    rc = 0;
out:
    hmm_close(m);
    sqlite3_close(db);
    free(order);
    char rm[96];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (system(rm) != 0)
        fprintf(stderr, "sqlbench: could not remove %s\n", dir);
    return rc;
}
