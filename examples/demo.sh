#!/bin/sh
# The main job, shown: two processes share one map.  A "consumer" commits
# offsets per partition while a second process reads them live; then both
# exit and a restart finds the offsets where they were left.
set -eu
HASHMMAP=${HASHMMAP:-./hashmmap}
dir=$(mktemp -d "${TMPDIR:-/tmp}/hashmmap-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT

$HASHMMAP create "$dir" --size 4M >/dev/null
echo "map: $dir"

# Process 1: a consumer committing offsets for three partitions.
(
    for offset in 100 200 300 400 500; do
        for p in 0 1 2; do
            $HASHMMAP put "$dir" "orders/$p" $((offset + p)) >/dev/null
        done
        $HASHMMAP incr "$dir" commits >/dev/null
        sleep 0.2
    done
) &
writer=$!

# Process 2: a monitor reading the same map at the same time.
for i in 1 2 3 4; do
    sleep 0.25
    printf 'monitor sees: orders/0=%s orders/1=%s orders/2=%s (commits %s)\n' \
        "$($HASHMMAP get "$dir" orders/0 2>/dev/null || echo -)" \
        "$($HASHMMAP get "$dir" orders/1 2>/dev/null || echo -)" \
        "$($HASHMMAP get "$dir" orders/2 2>/dev/null || echo -)" \
        "$($HASHMMAP get "$dir" commits 2>/dev/null || echo 0)"
done
wait "$writer"

echo "both processes are gone; a restarted consumer resumes from:"
$HASHMMAP dump "$dir" | sort
$HASHMMAP info "$dir" | sed -n '1,4p'
