#!/bin/sh
# deadline.sh COMMAND [ARGS...]: run one test under a deadline (the test
# harness's LOG_COMPILER).  Each test bounds its own waits; this is the
# backstop for the wait nobody bounded.  When the deadline passes, print
# what every process of the test was doing (a backtrace with gdb when it is
# installed, else the kernel's wait channel), kill them all, and fail, so a
# hang shows up in the test's log instead of stalling the whole suite.
#
# HMM_TEST_DEADLINE: seconds (default 600).  HMM_TEST_TIME_SCALE stretches it.
limit=${HMM_TEST_DEADLINE:-600}
scale=${HMM_TEST_TIME_SCALE:-1}
limit=$((limit * scale))

# Its own session, so that everything the test forks can be found and killed
# by session id.  Not a process-group leader here, so setsid execs in place
# and $! is the test itself.
setsid "$@" &
test_pid=$!

report_and_kill() {
    echo "deadline.sh: $* still running after ${limit}s; its processes:" >&2
    procs=$(ps -e -o sid= -o pid= | awk -v s="$test_pid" '$1 == s { print $2 }')
    ps -o pid,ppid,stat,wchan:24,etime,args -p "$(echo $procs | tr ' ' ,)" >&2 2>/dev/null
    for p in $procs; do
        echo "---- process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" >&2
        if command -v gdb >/dev/null 2>&1; then
            gdb -q -batch -nx -p "$p" -ex 'thread apply all bt' 2>&1 </dev/null |
                grep -v '^\[\|^$\|^warning: \|^Using host\|No such file or directory' >&2
        else
            echo "wait channel: $(cat "/proc/$p/wchan" 2>/dev/null)" >&2
        fi
    done
    for p in $procs; do kill -KILL "$p" 2>/dev/null; done
}

(
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "$limit" &
    sleeper=$!
    wait "$sleeper"
    report_and_kill "$@"
) &
watcher=$!

wait "$test_pid"
rc=$?
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
exit $rc
