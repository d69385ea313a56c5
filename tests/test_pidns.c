/*
 * test_pidns.c - processes of another pid namespace (DESIGN.md §6: pid
 * namespaces must not fool the process table).  A map opened in a
 * container shares its table with the host, but a pid recorded there
 * means nothing here.  Needs CAP_SYS_ADMIN for unshare(CLONE_NEWPID):
 * skipped without it (CI runs as root).
 */
#include "config.h"

#include "tests/testutil.h"
#include "core/internal.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct foreign {
    const char *dir;
    int ready, release; /* pipe ends: it writes its pid when open, waits for a byte */
};

/* In the new namespace's first process (its init, pid 1): fork until a
 * child's pid is one our namespace does not have (/proc is still ours),
 * so that kill(pid, 0) from outside says ESRCH of a live process.  That
 * child opens the map and holds it until released. */
static int foreign_init(struct foreign *f)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* its parent is outside: getppid() says 0 */
    for (int tries = 0; tries < 4000; tries++) {
        pid_t c = fork();
        if (c < 0)
            return 2;
        if (c == 0) {
            char path[64];
            snprintf(path, sizeof path, "/proc/%d", (int)getpid());
            if (access(path, F_OK) == 0)
                _exit(0); /* a pid both namespaces have: not what we need */
            hmm_config cfg = {0};
            hmm_t *m = NULL;
            if (hmm_open(&m, f->dir, &cfg) != 0)
                _exit(4);
            int64_t pid = getpid();
            char byte;
            if (write(f->ready, &pid, sizeof pid) != (ssize_t)sizeof pid || read(f->release, &byte, 1) != 1)
                _exit(5);
            hmm_close(m);
            _exit(3);
        }
        int status = 0;
        if (waitpid(c, &status, 0) != c)
            return 2;
        if (tu_exit_code(status) != 0)
            return tu_exit_code(status) == 3 ? 0 : tu_exit_code(status);
    }
    return 6; /* every pid tried exists outside too */
}

static int foreign_outer(void *arg)
{
    struct foreign *f = arg;
    if (unshare(CLONE_NEWPID) != 0) {
        fprintf(stderr, "unshare(CLONE_NEWPID): %s\n", strerror(errno));
        return 77; /* not allowed here (no CAP_SYS_ADMIN, a seccomp profile): skipped */
    }
    pid_t init = fork(); /* the first child is the new namespace's pid 1 */
    if (init < 0)
        return 1;
    if (init == 0)
        _exit(foreign_init(f));
    int status = 0;
    waitpid(init, &status, 0);
    return tu_exit_code(status);
}

/* kill(pid, 0) of a pid of another namespace says ESRCH of a live
 * process: an open's scan took it for dead (its slot reaped, its locks
 * "repaired"), and so did a class repair of a page it was emptying
 * (forgotten: the data loss of the 2026-12-04 live-mover finding).  A pid
 * of another namespace is now presumed alive. */
static void test_a_process_of_another_pid_namespace_is_not_taken_for_dead(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir();
    hmm_t *m = tu_open(dir, 1 << 20, 0, 0);
    int ready[2], release[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(release), 0);
    struct foreign f = {.dir = dir, .ready = ready[1], .release = release[0]};
    pid_t outer = tu_fork(foreign_outer, &f);
    close(ready[1]);
    close(release[0]);
    int64_t fpid = 0;
    struct pollfd pfd = {.fd = ready[0], .events = POLLIN};
    bool opened = poll(&pfd, 1, 20000) == 1 && read(ready[0], &fpid, sizeof fpid) == (ssize_t)sizeof fpid;
    if (!opened) {
        int code = tu_exit_code(tu_wait(outer, 1000));
        hmm_close(m);
        if (code == 77)
            skip(); /* no CAP_SYS_ADMIN: no new pid namespace here */
        fail_msg("the process in a new pid namespace did not open the map (exit %d)", code);
    }
    assert_int_not_equal(kill((pid_t)fpid, 0), 0); /* the premise: its pid is none of ours */
    hmm_t *again = tu_open(dir, 1 << 20, 0, 0); /* an open scans the table for the dead */
    hmm_proc_info procs[8];
    size_t n = 0;
    TU_OK(hmm_procs(again, procs, 8, &n));
    bool listed = false;
    for (size_t i = 0; i < n && i < 8; i++)
        if (procs[i].pid == fpid) {
            listed = true;
            assert_int_equal(procs[i].alive, 1);
        }
    if (!listed)
        fail_msg("an open reaped the slot of live pid %lld of another pid namespace", (long long)fpid);
    /* A page it were emptying (FORMAT.md §6): a class repair forgets a
     * move only of a dead mover, and this one lives.  The move is
     * pretended, on a class with no page: forgetting it harms nothing. */
    const uint32_t cls = 0;
    uint64_t move = HMM_EVAC_MAKE(fpid, 0);
    TU_OK(hmm__lock_class(again, cls));
    uint64_t was = atomic_exchange(&again->classes[cls].evac_page, move);
    hmm__compact_check_owner_locked(again, cls);
    uint64_t after = atomic_exchange(&again->classes[cls].evac_page, was);
    hmm__unlock_class(again, cls);
    if (after != move)
        fail_msg("a class repair forgot the move of live pid %lld of another pid namespace", (long long)fpid);
    hmm_close(again);
    assert_int_equal(write(release[1], "x", 1), 1);
    assert_int_equal(tu_exit_code(tu_wait(outer, 20000)), 0);
    close(ready[0]);
    close(release[1]);
    hmm_close(m);
}

int main(void)
{
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_process_of_another_pid_namespace_is_not_taken_for_dead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
