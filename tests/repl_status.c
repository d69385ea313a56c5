/*
 * Test helper for tests/prometheus.test: publishes a replication status in
 * a map (as hashmmap-replicate does) so that hashmmap-stat has every metric
 * to print without a daemon running.  Public API only.
 *
 *   repl_status DIR
 */
#include <stdio.h>
#include <unistd.h>

#include <hashmmap.h>

int main(int argc, char **argv)
{
    hmm_t *m;
    if (argc != 2) {
        fprintf(stderr, "usage: repl_status DIR\n");
        return 2;
    }
    int rc = hmm_open(&m, argv[1], NULL);
    if (rc) {
        fprintf(stderr, "repl_status: %s: %s\n", argv[1], hmm_strerror(rc));
        return 3;
    }
    /* Values with a fraction of a second, to exercise the ms -> s output. */
    hmm_repl_status st = {.role = HMM_REPL_ROLE_PRIMARY, .state = HMM_REPL_STREAMING, .peers = 1,
                          .pid = getpid(), .updated_ms = 1700000000123u, .primary_seq = 42,
                          .acked_seq = 40, .lag_seqs = 2, .lag_ms = 1500, .bytes_sent = 4096,
                          .bytes_received = 512, .snapshots = 1, .reconnects = 3,
                          .last_heartbeat_ms = 1700000000001u};
    rc = hmm_repl_status_set(m, &st);
    hmm_close(m);
    if (rc) {
        fprintf(stderr, "repl_status: %s\n", hmm_strerror(rc));
        return 3;
    }
    return 0;
}
