/*
 * The replica's sync thread (docs/FORMAT.md §13, replica position,
 * checkpoints).  hmm_sync writes every page dirtied since the last one and
 * waits for the disk; run in the applying thread it stopped the apply loop
 * for all of that, every second.  Here it runs beside it.  The applying
 * thread asks for a sync with the next_seq it had applied up to then, goes
 * on applying, and stores that next_seq only once the sync has ended well.
 * One sync at a time; only the thread that asks collects the result.
 */
#ifndef REPL_SYNC_H
#define REPL_SYNC_H

#include <pthread.h>
#include <stdint.h>

#include <hashmmap.h>

struct repl_sync {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;   /* a sync asked for, ended, or the thread told to stop */
    enum { REPL_SYNC_IDLE, REPL_SYNC_ASKED, REPL_SYNC_ENDED } state;
    hmm_t *m;                 /* the map the sync asked for flushes */
    uint64_t next_seq;        /* what was applied when it was asked for */
    int rc;                   /* hmm_sync's result, once ended */
    int stop;
};

/* Start the thread (signals blocked in it: they stay the main thread's).
 * 0, or an errno value. */
int repl_sync_init(struct repl_sync *s);
/* Stop and join the thread; a sync asked for is finished first. */
void repl_sync_free(struct repl_sync *s);
/* Ask for an hmm_sync of m, noting next_seq.  Only while none is pending. */
void repl_sync_ask(struct repl_sync *s, hmm_t *m, uint64_t next_seq);
/* Whether a sync is asked for and not collected yet. */
int repl_sync_pending(struct repl_sync *s);
/* Collect the sync asked for: waiting for its end if wait, else only if it
 * has ended.  1 and its result in *rc and the noted next_seq in *next_seq,
 * or 0 (none asked for, or still running and !wait). */
int repl_sync_collect(struct repl_sync *s, int wait, int *rc, uint64_t *next_seq);

#endif
