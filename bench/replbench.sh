#!/bin/sh
# bench/replbench.sh BUILDDIR SRCDIR - replication throughput and lag on
# loopback (issue 19; `make bench-repl`).  P serves R1 and R2 (fan-out), R1
# serves R3 (a chain); bench/replbench writes phases of sustained load to P
# and samples every replica's lag; gnuplot draws bench/repl_lag.png from
# bench/repl_lag.csv.  Knob: REPLBENCH_PHASES (default
# "50000:10 100000:10 200000:10 0:5": changes per second : seconds, 0 = flat out).
set -u
B=$1; SRC=$2
D="$B/hashmmap-replicate"
PY=/usr/bin/python3
dir=$(mktemp -d "${TMPDIR:-/tmp}/replbench.XXXXXX")
pids=""
# REPLBENCH_LOGS=DIR keeps the daemons' logs there.
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; wait 2>/dev/null
      [ -n "${REPLBENCH_LOGS:-}" ] && mkdir -p "$REPLBENCH_LOGS" && cp "$dir"/*.log "$REPLBENCH_LOGS"/; rm -rf "$dir"' EXIT
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
printf 'replbench shared secret, not for production\n' >"$dir/secret"; chmod 600 "$dir/secret"
run() { name=$1; shift; "$D" --secret-file "$dir/secret" --log-level "${REPLBENCH_LOG_LEVEL:-warning}" "$@" 2>>"$dir/$name.log" & pids="$pids $!"; }
"$B/tests/repl_writer" create "$dir/p" 268435456 67108864 || exit 1
pp=$(port); p1=$(port)
run p --serve "$dir/p" --listen "127.0.0.1:$pp"
run r1 --replica "$dir/r1" --primary "127.0.0.1:$pp"
run r2 --replica "$dir/r2" --primary "127.0.0.1:$pp"
i=0; while [ ! -e "$dir/r1/hashmmap.map" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
run r1s --serve "$dir/r1" --listen "127.0.0.1:$p1"
run r3 --replica "$dir/r3" --primary "127.0.0.1:$p1"
i=0; while [ ! -e "$dir/r3/hashmmap.map" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
# shellcheck disable=SC2086
"$B/bench/replbench" "$dir/p" bench/repl_lag.csv 2 ${REPLBENCH_PHASES:-50000:10 100000:10 200000:10 0:5} \
    -- "$dir/r1" "$dir/r2" "$dir/r3"
rc=$?
grep -h 'error\|warning' "$dir"/*.log | head -5
if command -v gnuplot >/dev/null 2>&1; then
    gnuplot -e "csv='bench/repl_lag.csv'; png='bench/repl_lag.png'" "$SRC/bench/repl_plot.gp" && echo "plot: bench/repl_lag.png"
else
    echo "gnuplot not installed (apt-get install gnuplot-nox): no bench/repl_lag.png"
fi
exit $rc
