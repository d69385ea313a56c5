#!/bin/sh
# bench/replcatchup.sh BUILDDIR [DAEMON...] - how fast a replica catches up
# on a log (`make bench-repl-catchup`; docs/PROTOCOL.md §9).  A primary P
# (256 MiB map, 128 MiB log) is served on loopback; one replica per DAEMON
# (hashmmap-replicate binaries, default BUILDDIR's) follows it and is
# stopped (SIGTERM: its exact position stored); then each round
# tests/repl_writer fills P with REPLCATCHUP_KEYS keys (default 400 000:
# about 575 000 records of puts, overwrites, deletes and counters) and the
# replicas are started one after the other, each alone, and timed until it
# holds the round's last key.  Several daemons in one run are an A/B on the
# same records under the same load: compare their ratio, not the figures of
# two runs on a shared machine.
#
# Per round and daemon: records applied (the replica's acked_seq before and
# after), seconds from start to the last key, records per second, syncs of
# the map (the "syncs" counter), minor faults of the daemon (/proc/PID/stat)
# in all and per record, its CPU seconds (user, system), and unsynced_positions (must stay
# 0: docs/FORMAT.md §13, replica position, durability).
# Knobs: REPLCATCHUP_KEYS, REPLCATCHUP_ROUNDS (default 3).
set -u
B=$1; shift
[ $# -gt 0 ] || set -- "$B/hashmmap-replicate"
W="$B/tests/repl_writer"
H="$B/hashmmap"
S="$B/hashmmap-stat"
PY=/usr/bin/python3
keys=${REPLCATCHUP_KEYS:-400000}
rounds=${REPLCATCHUP_ROUNDS:-3}
dir=$(mktemp -d "${TMPDIR:-/tmp}/replcatchup.XXXXXX")
pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM
printf 'replcatchup shared secret, not for production\n' >"$dir/secret"; chmod 600 "$dir/secret"
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
now_ms() { echo $(($(date +%s%N) / 1000000)); }
counter() { "$S" --json "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; } # counter DIR NAME
# wait_key DIR KEY VALUE SECONDS: 0 once DIR holds KEY = VALUE
wait_key() {
    end=$(($(now_ms) + $4 * 1000))
    while [ "$(now_ms)" -lt $end ]; do
        [ "$("$H" get "$1" "$2" 2>/dev/null)" = "$3" ] && return 0
        sleep 0.01
    done
    return 1
}
# replica N DAEMON: start replica N in the background, its pid in $rpid
replica() {
    "$2" --secret-file "$dir/secret" --log-level warning --replica "$dir/r$1" --primary "127.0.0.1:$port" \
        2>>"$dir/r$1.log" &
    rpid=$!
}
stop() { kill -TERM "$1"; wait "$1"; }
# proc_stat PID: "minflt user_ticks system_ticks" of a live process (fields 10, 14, 15)
proc_stat() { awk '{print $10, $14, $15}' "/proc/$1/stat"; }

"$W" create "$dir/p" 268435456 134217728 || exit 1
"$B/hashmmap-replicate" --secret-file "$dir/secret" --log-level warning --serve "$dir/p" \
    --listen "127.0.0.1:$port" 2>>"$dir/p.log" &
pids="$pids $!"
"$H" put "$dir/p" replcatchup/round 0 >/dev/null || exit 1
n=0
for d in "$@"; do
    n=$((n + 1))
    replica $n "$d"
    wait_key "$dir/r$n" replcatchup/round 0 30 || { echo "replica $n ($d) did not start"; exit 1; }
    stop $rpid
done
hz=$(getconf CLK_TCK)
echo "round daemon records seconds records/s syncs minflt minflt/record user_s sys_s unsynced_positions"
round=1
while [ $round -le "$rounds" ]; do
    "$W" fill "$dir/p" k "$keys" || exit 1
    "$H" put "$dir/p" replcatchup/round $round >/dev/null || exit 1
    n=0
    for d in "$@"; do
        n=$((n + 1)); r="$dir/r$n"
        seq0=$(counter "$r" acked_seq); syncs0=$(counter "$r" syncs)
        t0=$(now_ms)
        replica $n "$d"
        wait_key "$r" replcatchup/round $round 600 || { echo "replica $n ($d) did not catch up"; exit 1; }
        t1=$(now_ms)
        st=$(proc_stat $rpid)
        stop $rpid
        seq1=$(counter "$r" acked_seq); syncs1=$(counter "$r" syncs)
        echo "$round $d $((seq1 - seq0)) $t0 $t1 $st $((syncs1 - syncs0)) $(counter "$r" unsynced_positions)" |
            awk -v hz="$hz" '{ s = ($5 - $4) / 1000
                printf "%d %s %d %.2f %.0f %d %d %.3f %.2f %.2f %d\n", $1, $2, $3, s, $3 / s, $9, $6, $6 / $3,
                       $7 / hz, $8 / hz, $10 }'
    done
    round=$((round + 1))
done
grep -h 'error\|warning' "$dir"/*.log | head -5
exit 0
