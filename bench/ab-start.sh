#!/bin/bash
# Interleaved A/B of start-up figures: for each round, each CLI in turn is started on the
# same spool; prints start -> /readyz 200 and start -> "spool scanned" (bytes and frozen
# complete) in ms, then the medians per CLI. Builds to compare: copy dist/ aside first.
#   bench/ab-start.sh CONFIG ROUNDS CLI [CLI...]     e.g. bench/ab-start.sh c.yml 6 /tmp/a/cli.js dist/cli.js
set -euo pipefail
cfg=$1 rounds=$2
shift 2
port=19938
out=$(mktemp)
log=$(mktemp)
for _ in $(seq 1 "$rounds"); do
  for cli in "$@"; do
    t0=$(date +%s%N)
    node "$cli" run --config "$cfg" --web.listen-address "127.0.0.1:$port" >"$log" 2>&1 &
    pid=$!
    until curl -sf -o /dev/null "127.0.0.1:$port/readyz"; do sleep 0.005; done
    t1=$(date +%s%N)
    until grep -q 'msg="spool scanned"' "$log"; do sleep 0.005; done
    t2=$(date +%s%N)
    echo "$cli $(((t1 - t0) / 1000000)) $(((t2 - t0) / 1000000))" | tee -a "$out"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    sleep 0.5
  done
done
echo "median (ready ms, complete ms):"
for cli in "$@"; do
  r=$(awk -v c="$cli" '$1 == c {print $2}' "$out" | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}')
  k=$(awk -v c="$cli" '$1 == c {print $3}' "$out" | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}')
  echo "$cli $r $k"
done
rm -f "$out" "$log"
