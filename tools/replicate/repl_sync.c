/*
 * The replica's sync thread: see repl_sync.h.  The thread only runs
 * hmm_sync on the handle it is given; every decision about positions stays
 * in the applying thread, which is the only writer of the position.
 */
#include <signal.h>

#include "repl_sync.h"

static void *sync_thread(void *arg)
{
    struct repl_sync *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->state != REPL_SYNC_ASKED && !s->stop)
            pthread_cond_wait(&s->changed, &s->lock);
        if (s->state != REPL_SYNC_ASKED)
            break;
        hmm_t *m = s->m;
        /* Unlocked while it flushes: the applying thread looks in without
         * waiting.  The mutex handed over the request after every change
         * the noted next_seq names, so the sync begins after them. */
        pthread_mutex_unlock(&s->lock);
        int rc = hmm_sync(m);
        pthread_mutex_lock(&s->lock);
        s->rc = rc;
        s->state = REPL_SYNC_ENDED;
        pthread_cond_broadcast(&s->changed);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int repl_sync_init(struct repl_sync *s)
{
    *s = (struct repl_sync){.state = REPL_SYNC_IDLE};
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
    /* SIGTERM and SIGINT must reach the main thread, whose loop checks
     * repl_stop: the new thread inherits this mask. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, sync_thread, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_cond_destroy(&s->changed);
        pthread_mutex_destroy(&s->lock);
    }
    return rc;
}

void repl_sync_free(struct repl_sync *s)
{
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
}

void repl_sync_ask(struct repl_sync *s, hmm_t *m, uint64_t next_seq)
{
    pthread_mutex_lock(&s->lock);
    s->m = m;
    s->next_seq = next_seq;
    s->state = REPL_SYNC_ASKED;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

int repl_sync_pending(struct repl_sync *s)
{
    pthread_mutex_lock(&s->lock);
    int pending = s->state != REPL_SYNC_IDLE;
    pthread_mutex_unlock(&s->lock);
    return pending;
}

int repl_sync_collect(struct repl_sync *s, int wait, int *rc, uint64_t *next_seq)
{
    pthread_mutex_lock(&s->lock);
    while (wait && s->state == REPL_SYNC_ASKED)
        pthread_cond_wait(&s->changed, &s->lock);
    int ended = s->state == REPL_SYNC_ENDED;
    if (ended) {
        *rc = s->rc;
        *next_seq = s->next_seq;
        s->state = REPL_SYNC_IDLE;
        s->m = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    return ended;
}
