#!/usr/bin/env bash
# What heap profiling costs (issue 13): each workload run with profiling at Go's default
# rate (one sample per 512 KiB) and with it off (GODEBUG=memprofilerate=0), alternating
# (off, on, off, on, ...), on the same release binary; prints the median wall and CPU
# seconds of each and their ratio.
#
#   benches/memprofile.sh              7 rounds of churn 100M and binary-trees 19
#   ROUNDS=11 benches/memprofile.sh    more rounds
#   benches/memprofile.sh "churn 20000000 10000"   other workloads (one per argument)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-7}
PROCS=${PROCS:-2}
if [ $# -eq 0 ]; then
  set -- "churn 100000000 10000" "binary-trees 19"
fi
cargo build --release --bin minigo >&2
BIN=target/release/minigo

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

printf '| workload | procs | off: wall s | on: wall s | on / off | off: CPU s | on: CPU s | on / off |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for w in "$@"; do
  off_wall=() on_wall=() off_cpu=() on_cpu=()
  for _ in $(seq "$ROUNDS"); do
    for mode in off on; do
      if [ "$mode" = off ]; then rate=0; else rate=524288; fi
      # shellcheck disable=SC2086
      json=$(GODEBUG=memprofilerate=$rate "$BIN" $w --procs "$PROCS" --json)
      wall=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["wall_s"])')
      cpu=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu_s"])')
      if [ "$mode" = off ]; then off_wall+=("$wall"); off_cpu+=("$cpu"); else on_wall+=("$wall"); on_cpu+=("$cpu"); fi
    done
  done
  ow=$(printf '%s\n' "${off_wall[@]}" | median); nw=$(printf '%s\n' "${on_wall[@]}" | median)
  oc=$(printf '%s\n' "${off_cpu[@]}" | median); nc=$(printf '%s\n' "${on_cpu[@]}" | median)
  awk -v w="$w" -v p="$PROCS" -v ow="$ow" -v nw="$nw" -v oc="$oc" -v nc="$nc" 'BEGIN {
    printf "| %s | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", w, p, ow, nw, nw / ow, oc, nc, nc / oc }'
done
echo
echo "Medians of $ROUNDS alternating runs each; wall and CPU from minigo --json (the workload only)."
