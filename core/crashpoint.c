/*
 * crashpoint.c - the test-only "die here" seams of FORMAT.md §8.
 * In the shipped library only the names exist (for tools and tests).
 */
#include "config.h"

#include "core/crashpoint.h"

const char *const hmm_crashpoint_names[HMM_CRASHPOINT_COUNT] = {
    "alloc_marked", "alloc", "written", "retired", "published", "free_linked", "freed", "done",
    "grown", "index_grown", "moved", "index_retired", "index_fenced", "evict_retired", "evicted",
    "log_numbered", "log_locked", "log_reserved", "log_written", "log_committed",
    "reclaim_marked", "reclaim_named", "reclaim_taken",
    "page_leaving", "page_unlinked", "page_returned",
    "cold_rebuilt",
    "cell_copying",
};

#ifdef HMM_CRASHPOINTS
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char armed_name[32];
static unsigned armed_left;
static int armed_signal = SIGKILL;

void hmm_crashpoint_arm(const char *name, unsigned nth)
{
    snprintf(armed_name, sizeof armed_name, "%s", name ? name : "");
    armed_left = nth;
    armed_signal = SIGKILL;
}

void hmm_crashpoint_stall(const char *name, unsigned nth)
{
    hmm_crashpoint_arm(name, nth);
    armed_signal = SIGSTOP;
}

/* HASHMMAP_CRASHPOINT=name:nth arms a point in a process the test cannot
 * call into (the CLI tool, an exec'ed child). */
static void arm_from_environment(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    const char *spec = getenv("HASHMMAP_CRASHPOINT");
    if (!spec || armed_name[0])
        return;
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len >= sizeof armed_name)
        return;
    memcpy(armed_name, spec, len);
    armed_name[len] = '\0';
    armed_left = colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 1;
}

void hmm_crashpoint_pass(const char *name)
{
    arm_from_environment();
    if (!armed_left || strcmp(name, armed_name) != 0)
        return;
    if (--armed_left == 0)
        kill(getpid(), armed_signal);
}
#endif
