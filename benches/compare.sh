#!/usr/bin/env bash
# minigo (as it is, with GODEBUG=gcgen=0 and with GODEBUG=gcstoptheworld=1) side by side with Go, Boehm GC and
# Box+mimalloc (issues 8, 12, 17): installs the peers' toolchains when missing (Go 1.23 and
# libgc-dev, with apt), builds minigo in release and the peers (benches/peers/go/workloads,
# benches/peers/boehm/workloads.c, benches/peers/mimalloc), then hands over to the `compare`
# binary (benches/src/bin/compare/), which runs, measures and reports.
#
#   benches/compare.sh            the full comparison (6-20 minutes on 2 cores)
#   benches/compare.sh --quick    under a minute: small sizes, 2 rounds, procs 2
#   benches/compare.sh --help     every option (--runs, --procs, --only, --out, --timeout)
#
# Results: a Markdown table on stdout; compare.md, compare.csv, runs.csv and compare.svg
# under target/compare (or --out DIR). GO=/path/to/go picks another Go toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }

TARGET="${CARGO_TARGET_DIR:-target}"
for a in "$@"; do
  if [ "$a" = --help ] || [ "$a" = -h ]; then
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    if [ -x "$TARGET/release/compare" ]; then echo; "$TARGET/release/compare" --help; fi
    exit 0
  fi
done

GO="${GO:-}"
if [ -z "$GO" ]; then
  for g in /usr/lib/go-1.23/bin/go "$(command -v go || true)"; do
    if [ -n "$g" ] && [ -x "$g" ]; then GO="$g"; break; fi
  done
fi
have_gc() { echo '#include <gc.h>' | cc -E -x c - >/dev/null 2>&1; }

if [ -z "$GO" ] || ! have_gc; then
  say "installing Go 1.23 and Boehm GC (golang-1.23-go, libgc-dev)"
  command -v apt-get >/dev/null || die "no apt-get: install Go 1.23 and libgc-dev (Boehm GC) by hand, or set GO=/path/to/go"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "installing the peers needs root (apt-get); run as root or install golang-1.23-go and libgc-dev"
    SUDO=sudo
  fi
  # golang-1.23-go is in Debian bookworm's backports; add that suite when the package
  # has no candidate (the first stanza of the main source, pointed at backports).
  if ! apt-cache policy golang-1.23-go 2>/dev/null | grep -q "Candidate: [0-9]"; then
    src=/etc/apt/sources.list.d/debian.sources
    if [ -f "$src" ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list.d/; then
      awk 'BEGIN{RS="";ORS="\n\n"} NR==1' "$src" | sed 's/^Suites: .*/Suites: bookworm-backports/' \
        | $SUDO tee /etc/apt/sources.list.d/backports.sources >/dev/null
    fi
    $SUDO apt-get update -qq
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-1.23-go libgc-dev >/dev/null
  GO=/usr/lib/go-1.23/bin/go
  [ -x "$GO" ] && have_gc || die "the install did not provide $GO and gc.h"
fi

mkdir -p "$TARGET/peers"
PEERS="$(cd "$TARGET/peers" && pwd)"

say "building minigo and the harness (cargo build --release)"
cargo build --release --quiet -p minigo-examples --bin minigo -p minigo-benches --bin compare

say "building the Go peer ($("$GO" version | awk '{print $3}'))"
(cd benches/peers/go/workloads && GOTOOLCHAIN=local "$GO" build -o "$PEERS/go-workloads" .)

say "building the Boehm GC peer"
cc -O2 -Wall -pthread benches/peers/boehm/workloads.c -o "$PEERS/boehm-workloads" -lgc -lm

say "building the Box+mimalloc peer"
cargo build --release --quiet --manifest-path benches/peers/mimalloc/Cargo.toml --target-dir "$PEERS/mimalloc"
mimalloc_version="$(sed -n '/^name = "libmimalloc-sys"/{n;s/^version = "\(.*\)"/\1/p}' benches/peers/mimalloc/Cargo.lock)"

boehm_version="$(pkg-config --modversion bdw-gc 2>/dev/null || dpkg-query -W -f='${Version}' libgc-dev 2>/dev/null || echo '?')"
exec "$TARGET/release/compare" \
  --minigo "$TARGET/release/minigo" \
  --go "$PEERS/go-workloads" \
  --boehm "$PEERS/boehm-workloads" \
  --mimalloc "$PEERS/mimalloc/release/workloads" \
  --mimalloc-version "${mimalloc_version:-?}" \
  --go-version "$("$GO" version | awk '{print $3}' | sed 's/^go//')" \
  --boehm-version "$boehm_version" \
  "$@"
