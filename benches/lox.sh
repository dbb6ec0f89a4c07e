#!/usr/bin/env bash
# The Lox benchmarks side by side with clox (issue 16): the book's programs
# (../shared/lox/benchmark, string_equality.lox excepted: clox rejects it) and this
# project's (benches/lox), each run RUNS times in turn with every variant (A B A B), wall
# seconds; prints a Markdown table of medians and ratios to clox. zoo_batch.lox counts
# batches in 10 s instead (higher is better).
#
#   benches/lox.sh [RUNS] [PROGRAM...]    default 5 runs, every program
#   NOESCAPE=1 benches/lox.sh ...         adds a column with --no-escape-analysis
#
# Builds `lox` in release and clox (-O3, ../shared/lox/clox/build.sh) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
shift || true
TARGET="${CARGO_TARGET_DIR:-target}"
CLOX="$TARGET/clox"
cargo build --release --bin lox >&2
[ -x "$CLOX" ] || bash ../shared/lox/clox/build.sh "$CLOX" >&2

programs=("$@")
if [ ${#programs[@]} -eq 0 ]; then
  for f in ../shared/lox/benchmark/*.lox benches/lox/*.lox; do
    case "$f" in *string_equality.lox) continue ;; esac
    programs+=("$f")
  done
fi

variants=(minigo clox)
[ -n "${NOESCAPE:-}" ] && variants=(minigo noescape clox)

# One run: wall seconds, or for zoo_batch the batch count it prints.
run() {
  local variant=$1 file=$2 cmd
  case $variant in
    minigo) cmd=("$TARGET/release/lox" "$file") ;;
    noescape) cmd=("$TARGET/release/lox" "$file" --no-escape-analysis) ;;
    clox) cmd=("$CLOX" "$file") ;;
  esac
  local t0 t1 out
  t0=$(date +%s.%N)
  out=$("${cmd[@]}")
  t1=$(date +%s.%N)
  case $file in
    *zoo_batch.lox) echo "$out" | sed -n 2p ;;
    *) echo "$t1 - $t0" | bc -l ;;
  esac
}

median() { sort -g | awk '{a[NR]=$1} END {m=int((NR+1)/2); printf "%.3f", (NR%2 ? a[m] : (a[m]+a[m+1])/2)}'; }

printf '| program |'; for v in "${variants[@]}"; do printf ' %s |' "$v"; done; printf ' minigo / clox |\n'
printf '|---|'; for _ in "${variants[@]}"; do printf -- '---|'; done; printf -- '---|\n'
for f in "${programs[@]}"; do
  declare -A times=()
  for ((i = 0; i < RUNS; i++)); do
    for v in "${variants[@]}"; do times[$v]+="$(run "$v" "$f") "; done
  done
  printf '| %s |' "$(basename "$f")"
  declare -A med=()
  for v in "${variants[@]}"; do
    med[$v]=$(echo "${times[$v]}" | tr ' ' '\n' | grep . | median)
    printf ' %s |' "${med[$v]}"
  done
  printf ' %.2f |\n' "$(echo "${med[minigo]} / ${med[clox]}" | bc -l)"
  unset times med
done
