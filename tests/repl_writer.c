/*
 * Test helper for tests/replicate.test: makes a map with a chosen log size
 * (the hashmmap CLI has no option for it) and writes a known, varied load:
 * puts, overwrites, deletes and counters, optionally paced so that it runs
 * while daemons are killed and restarted.  Public API only.
 *
 *   repl_writer create DIR SIZE_BYTES REPLOG_BYTES
 *   repl_writer fill DIR PREFIX COUNT [PAUSE_US]
 *   repl_writer churn DIR PREFIX COUNT BYTES    (COUNT puts of BYTES over 10 keys:
 *                                               wraps a log fast without filling the map)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hashmmap.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "repl_writer: %s: %s\n", what, hmm_strerror(rc));
    return 3;
}

int main(int argc, char **argv)
{
    hmm_t *m;
    int rc;
    if (argc == 5 && strcmp(argv[1], "create") == 0) {
        hmm_config cfg = {.size = strtoull(argv[3], NULL, 10), .max_size = 4 * strtoull(argv[3], NULL, 10),
                          .flags = HMM_CREATE | HMM_EXCL, .replog_size = strtoull(argv[4], NULL, 10)};
        rc = hmm_open(&m, argv[2], &cfg);
        if (rc)
            return fail("create", rc);
        hmm_close(m);
        return 0;
    }
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "fill") == 0) {
        long count = atol(argv[4]);
        useconds_t pause = argc == 6 ? (useconds_t)atol(argv[5]) : 0;
        rc = hmm_open(&m, argv[2], NULL);
        if (rc)
            return fail("open", rc);
        char key[128], val[256];
        for (long i = 0; i < count && rc == 0; i++) {
            int kl = snprintf(key, sizeof key, "%s%ld", argv[3], i);
            /* Values of varied length, some empty, binary-safe. */
            int vl = snprintf(val, sizeof val, "value-%ld-%0*d", i, (int)(i % 97), 0);
            rc = hmm_put(m, key, (size_t)kl, val, (size_t)vl, 0, 0);
            if (rc == 0 && i % 5 == 0)     /* overwrite */
                rc = hmm_put(m, key, (size_t)kl, "over", 4, 0, 0);
            if (rc == 0 && i % 7 == 3) {   /* delete an older key */
                kl = snprintf(key, sizeof key, "%s%ld", argv[3], i / 2);
                rc = hmm_del(m, key, (size_t)kl);
                if (rc == HMM_NOTFOUND)
                    rc = 0;
            }
            if (rc == 0 && i % 11 == 0) {  /* a counter */
                kl = snprintf(key, sizeof key, "%scounter%ld", argv[3], i % 13);
                rc = hmm_incr(m, key, (size_t)kl, i, NULL);
            }
            if (pause)
                usleep(pause);
        }
        hmm_close(m);
        return rc ? fail("fill", rc) : 0;
    }
    if (argc == 6 && strcmp(argv[1], "churn") == 0) {
        long count = atol(argv[4]);
        size_t bytes = (size_t)atol(argv[5]);
        char *val = malloc(bytes ? bytes : 1);
        rc = val ? hmm_open(&m, argv[2], NULL) : -ENOMEM;
        if (rc) {
            free(val);
            return fail("open", rc);
        }
        char key[128];
        for (long i = 0; i < count && rc == 0; i++) {
            int kl = snprintf(key, sizeof key, "%s%ld", argv[3], i % 10);
            memset(val, 'a' + (int)(i % 26), bytes);
            rc = hmm_put(m, key, (size_t)kl, val, bytes, 0, 0);
        }
        free(val);
        hmm_close(m);
        return rc ? fail("churn", rc) : 0;
    }
    fprintf(stderr, "usage: repl_writer create DIR SIZE REPLOG | fill DIR PREFIX COUNT [PAUSE_US] | churn DIR PREFIX COUNT BYTES\n");
    return 2;
}
