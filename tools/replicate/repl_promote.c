/*
 * --promote DIR: make a replica's map a writable primary with a new epoch
 * (docs/PROTOCOL.md §11).  The epoch rises by one above every epoch the
 * replica has seen, so the replicas that follow the new primary refuse the
 * old one should it come back as a primary; the position in the old
 * primary's log is forgotten, so should this map ever be made a replica
 * again it takes a full snapshot instead of streaming on top of its own
 * writes.  Refused while a replica daemon still applies changes to the map:
 * two writers of one lineage is the split brain this is meant to prevent.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <hashmmap.h>

#include "repl.h"
#include "tools/errtext.h"

/* The pid of a replica daemon that still runs on the map, or 0.  The
 * status names the daemon; its pid must be alive and still a
 * hashmmap-replicate (so a reused pid does not block promotion). */
static int64_t running_replica_daemon(hmm_t *m)
{
    hmm_repl_status st;
    if (hmm_repl_status_get(m, &st) != 0 || st.role != HMM_REPL_ROLE_REPLICA || st.pid <= 0 ||
        st.pid == getpid())
        return 0;
    if (kill((pid_t)st.pid, 0) != 0 && errno != EPERM)
        return 0;
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/%" PRId64 "/comm", st.pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(comm, sizeof comm, f))
            comm[0] = '\0';
        fclose(f);
    }
    return strstr(comm, "hashmmap-rep") ? st.pid : 0; /* comm keeps 15 bytes: "hashmmap-replic" */
}

int repl_promote(const char *dir)
{
    hmm_t *m;
    hmm_config cfg = {.flags = HMM_REPLICA_WRITER}; /* open only: a missing map is an error */
    int rc = hmm_open(&m, dir, &cfg);
    if (rc) {
        char text[ERRTEXT_MAX], prefix[ERRTEXT_MAX];
        errtext(rc, text, sizeof text);
        fprintf(stderr, "hashmmap-replicate: %s%s\n", errtext_prefix(dir, text, prefix, sizeof prefix), text);
        return -1;
    }
    hmm_role_info ri;
    int64_t daemon;
    rc = hmm_role_get(m, &ri);
    if (rc == 0 && ri.role == HMM_ROLE_PRIMARY) {
        printf("%s: already a primary (epoch %" PRIu64 "); nothing to do\n", dir, ri.epoch);
        goto out;
    }
    if (rc == 0 && (daemon = running_replica_daemon(m)) != 0) {
        fprintf(stderr, "hashmmap-replicate: %s: a replica daemon (pid %" PRId64 ") still applies changes to it; "
                "stop it first\n", dir, daemon);
        rc = -EBUSY;
        goto out;
    }
    if (rc == 0 && ri.epoch >= HMM_EPOCH_MAX)
        rc = -EOVERFLOW;
    /* The position first: once the role says primary, local writes may
     * start, and a stale position must not outlive them. */
    if (rc == 0)
        rc = hmm_replica_position_clear(m);
    if (rc == 0)
        rc = hmm_role_set(m, HMM_ROLE_PRIMARY, ri.epoch + 1, NULL);
    if (rc == 0)
        rc = hmm_sync(m);
    if (rc) {
        char text[ERRTEXT_MAX];
        fprintf(stderr, "hashmmap-replicate: %s: cannot promote: %s\n", dir,
                errtext(rc, text, sizeof text));
        goto out;
    }
    printf("%s: promoted to primary at epoch %" PRIu64 " (was a replica of %s at epoch %" PRIu64 ")\n", dir,
           ri.epoch + 1, ri.primary[0] ? ri.primary : "?", ri.epoch);
out:
    hmm_close(m);
    return rc ? -1 : 0;
}
