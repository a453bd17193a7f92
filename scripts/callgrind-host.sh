#!/usr/bin/env bash
# Instructions per sale of the host's writer and of a connection task, counted by callgrind
# (steady from run to run, unlike wall time on a shared VM). Needs valgrind.
#   scripts/callgrind-host.sh [groups of 100 sales, default 100] [sales, default 5000]
# Under valgrind SHA-256 runs without its CPU extensions, so the connection figure
# overstates the HMAC and the request hash.
set -euo pipefail
cd "$(dirname "$0")/.."
groups="${1:-100}"
sales="${2:-5000}"
bin=$(cargo bench -p poskit-host --bench host --no-run 2>&1 | grep -oE 'target/release/deps/host-[0-9a-f]+' | head -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() { # env var, count, function, per what
  env "$1=$2" valgrind --tool=callgrind --collect-atstart=no --toggle-collect="*$3*" \
    --callgrind-out-file="$out/$3.out" "$bin" 2>&1 |
    awk -v n="$4" -v what="$3" '/Collected/ { printf "%s: %.0f instructions per sale\n", what, $4 / n }'
}
count POSKIT_BENCH_GROUPS "$groups" writer_group "$((groups * 100))"
count POSKIT_BENCH_PRECHECKS "$sales" connection_work "$sales"
