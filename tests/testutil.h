/*
 * testutil.h - what every test program needs: temporary map directories,
 * a watchdog, forking and reaping with a time limit, self-checking values.
 */
#ifndef HMM_TESTUTIL_H
#define HMM_TESTUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <sys/types.h>

#include <cmocka.h>

#include <hashmmap.h>

/* Fail the test with the library's detail when rc is not 0. */
#define TU_OK(expr)                                                                                   \
    do {                                                                                              \
        int tu_rc_ = (expr);                                                                          \
        if (tu_rc_ != 0)                                                                              \
            fail_msg("%s -> %s (%s)", #expr, hmm_errname(tu_rc_), hmm_last_error());                \
    } while (0)

/* A fresh empty directory under $TMPDIR (or /tmp); removed by tu_cleanup(). */
char *tu_tmpdir(void);
/* A path inside a directory made by tu_tmpdir(); static buffer per call site is the caller's. */
void tu_path(char *buf, size_t len, const char *dir, const char *name);
void tu_rmtree(const char *dir);
/* Remove every directory tu_tmpdir() made (also called at exit). */
void tu_cleanup(void);

/* Kill the whole test program if it runs longer than seconds. */
void tu_watchdog(unsigned seconds);

/* Fork: the child runs fn(arg) and exits with its return value. */
pid_t tu_fork(int (*fn)(void *), void *arg);
/* In a child just forked from parent: die by SIGKILL when it exits. */
void tu_die_with_parent(pid_t parent);
/* Wait for pid up to timeout_ms; SIGKILL it if it is still running.
 * Returns the wait status. */
int tu_wait(pid_t pid, unsigned timeout_ms);
/* tu_wait for a child that must end by itself: one still running at the
 * timeout has its threads' backtraces printed on stderr first (gdb, when
 * installed), named by what, so a rare hang says where it was. */
int tu_wait_traced(pid_t pid, unsigned timeout_ms, const char *what);
/* Exit status of a child that must have exited normally (-1 otherwise). */
int tu_exit_code(int status);

/* Self-checking values: the value names its key and a sequence number and
 * is padded to len bytes with bytes derived from both, so a torn value or a
 * value of another key is detected.  len >= 24. */
size_t tu_value(char *buf, size_t len, const char *key, uint64_t seq);
/* true and *seq when buf holds a whole value made by tu_value for key. */
bool tu_value_ok(const char *buf, size_t len, const char *key, uint64_t *seq);

/* Entries a cursor walks over m, or the negative error of the cursor's open. */
long tu_cursor_count(hmm_t *m);

/* An entry's header (FORMAT.md §6): a chunk of c bytes holds key + value of c - 32. */
#define TU_ENTRY_HDR 32u

/* Create (HMM_CREATE) or open a map with the given geometry and flags. */
hmm_t *tu_open(const char *dir, uint64_t size, uint64_t max_size, uint32_t flags);
/* HMM_TEST_INLINE=1: the maps this program creates are of format 2 (testutil.c). */
bool tu_inline_maps(void);

uint64_t tu_now_ms(void);

#endif
