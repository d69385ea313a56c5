/*
 * testutil.c - helpers shared by the test programs (see testutil.h).
 */
#include "config.h"

#include "tests/testutil.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TU_MAX_DIRS 1024 /* test_crashpoints: 17 points x 5 ops x 3 paths, plus fills */

static char *made[TU_MAX_DIRS];
static int nmade;
static pid_t owner_pid;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_rmtree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_cleanup(void)
{
    /* Only the process that made them: forked children exit with _exit. */
    if (getpid() != owner_pid)
        return;
    for (int i = 0; i < nmade; i++) {
        tu_rmtree(made[i]);
        free(made[i]);
    }
    nmade = 0;
}

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/hmmtest.XXXXXX", base && *base ? base : "/tmp");
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    if (nmade == 0) {
        owner_pid = getpid();
        atexit(tu_cleanup);
    }
    assert_true(nmade < TU_MAX_DIRS);
    made[nmade] = strdup(dir);
    return made[nmade++];
}

void tu_path(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

/* Only async-signal-safe calls: the alarm may interrupt malloc, and
 * removing the temporary directories here (nftw, free) could then hang on
 * the allocator's lock instead of failing.  They are left for inspection. */
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test watchdog: time limit exceeded (temporary directories kept)\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(99);
}

/* HMM_TEST_TIME_SCALE stretches every time limit (valgrind runs 20x slower). */
static unsigned time_scale(void)
{
    const char *s = getenv("HMM_TEST_TIME_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? (unsigned)v : 1;
}

void tu_watchdog(unsigned seconds)
{
    signal(SIGALRM, on_alarm);
    alarm(seconds * time_scale());
}

/* A test's child never outlives the test: the watchdog's _exit(99), or a
 * kill of the test process alone (timeout(1) in a loop; deadline.sh kills
 * the test's whole session), ended only the test process, and its writers
 * and readers went on spinning (four such orphans once held a 2-core
 * machine at load 12 for half an hour and made timing-bound tests of the
 * next run fail).  Survives exec. */
void tu_die_with_parent(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(98); /* or the parent was gone before the prctl */
}

pid_t tu_fork(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(0);
        tu_die_with_parent(parent);
        _exit(fn(arg));
    }
    return pid;
}

/* Wait for pid up to timeout_ms (scaled): true with *status once it has
 * ended, false if it still runs. */
static bool wait_up_to(pid_t pid, unsigned timeout_ms, int *status)
{
    timeout_ms *= time_scale();
    for (unsigned waited = 0;; waited++) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR) {
            *status = -1;
            return true;
        }
        if (waited >= timeout_ms)
            return false;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

static int kill_and_reap(pid_t pid)
{
    int status = 0;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

int tu_wait(pid_t pid, unsigned timeout_ms)
{
    int status = 0;
    return wait_up_to(pid, timeout_ms, &status) ? status : kill_and_reap(pid);
}

int tu_wait_traced(pid_t pid, unsigned timeout_ms, const char *what)
{
    int status = 0;
    if (wait_up_to(pid, timeout_ms, &status))
        return status;
    fprintf(stderr, "# %s (pid %d) still runs after %u ms; where its threads are:\n", what, (int)pid,
            timeout_ms * time_scale());
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "command -v gdb >/dev/null 2>&1 && gdb -q -batch -nx -p %d -ex 'thread apply all bt' </dev/null 2>&1 "
             "| grep -v '^\\[\\|^$\\|^warning: \\|^Using host' >&2",
             (int)pid);
    fflush(NULL);
    if (system(cmd) != 0)
        fprintf(stderr, "# (no backtrace: gdb is not installed or could not attach)\n");
    return kill_and_reap(pid);
}

int tu_exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static uint8_t pad_byte(uint64_t seq, size_t i)
{
    return (uint8_t)('a' + (seq * 31 + i * 7) % 26);
}

size_t tu_value(char *buf, size_t len, const char *key, uint64_t seq)
{
    int n = snprintf(buf, len, "%s|%llu|%zu|", key, (unsigned long long)seq, len);
    for (size_t i = (size_t)n; i < len; i++)
        buf[i] = (char)pad_byte(seq, i);
    return len;
}

long tu_cursor_count(hmm_t *m)
{
    hmm_cursor *c;
    int rc = hmm_cursor_open(m, &c);
    if (rc)
        return rc < 0 ? rc : -rc;
    const void *k, *v;
    size_t kl, vl;
    long n = 0;
    while (hmm_cursor_next(c, &k, &kl, &v, &vl) == 0)
        n++;
    hmm_cursor_close(c);
    return n;
}

bool tu_value_ok(const char *buf, size_t len, const char *key, uint64_t *seq)
{
    char head[256];
    size_t klen = strlen(key);
    if (len < klen + 6 || memcmp(buf, key, klen) != 0 || buf[klen] != '|')
        return false;
    size_t hl = len < sizeof head - 1 ? len : sizeof head - 1;
    memcpy(head, buf, hl);
    head[hl] = '\0';
    unsigned long long s;
    size_t l;
    int used = 0;
    if (sscanf(head + klen + 1, "%llu|%zu|%n", &s, &l, &used) != 2 || used == 0 || l != len)
        return false;
    for (size_t i = klen + 1 + (size_t)used; i < len; i++)
        if ((uint8_t)buf[i] != pad_byte(s, i))
            return false;
    if (seq)
        *seq = s;
    return true;
}

hmm_t *tu_open(const char *dir, uint64_t size, uint64_t max_size, uint32_t flags)
{
    hmm_config cfg = {.size = size, .max_size = max_size, .flags = flags | HMM_CREATE};
    hmm_t *m = NULL;
    TU_OK(hmm_open(&m, dir, &cfg));
    return m;
}

uint64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* HMM_TEST_INLINE=1 runs a test program on maps of format 2: every map it
 * creates, except a cache (which format 2 does not offer), is made with
 * HMM_INLINE.  The programs are linked with --wrap for hmm_open and
 * hmm_open_anon (tests/local.mk), so their own calls come here; the
 * library's own opens are not touched. */
int __real_hmm_open(hmm_t **m, const char *dir, const hmm_config *cfg);
int __real_hmm_open_anon(hmm_t **m, const hmm_config *cfg);
int __wrap_hmm_open(hmm_t **m, const char *dir, const hmm_config *cfg);
int __wrap_hmm_open_anon(hmm_t **m, const hmm_config *cfg);

static const hmm_config *inline_config(const hmm_config *cfg, hmm_config *copy)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("HMM_TEST_INLINE");
        on = e && strcmp(e, "0") != 0;
    }
    if (!on || !cfg || (cfg->flags & HMM_CACHE))
        return cfg;
    *copy = *cfg;
    copy->flags |= HMM_INLINE;
    return copy;
}

int __wrap_hmm_open(hmm_t **m, const char *dir, const hmm_config *cfg)
{
    hmm_config copy;
    return __real_hmm_open(m, dir, inline_config(cfg, &copy));
}

int __wrap_hmm_open_anon(hmm_t **m, const hmm_config *cfg)
{
    hmm_config copy;
    return __real_hmm_open_anon(m, inline_config(cfg, &copy));
}

bool tu_inline_maps(void)
{
    hmm_config c = {0}, copy;
    return inline_config(&c, &copy) != &c;
}
