#!/usr/bin/env bash
# Runs the benchmarks of design §9 against the programs in bin/ (`make bench` builds them
# first) and prints one BENCH line per comparison, with every peer measured in this run.
# The work dir is removed after a successful run and kept (with the logs) after a failed one.
#
#   BENCH_QUICK=1   a short run (under 2 minutes)
#   BENCH_DIR=DIR   put the agents' data dirs (and so the fsync measurement) on DIR's disk,
#                   e.g. an SD card; the logs are kept there
#   BENCH_KEEP=1    keep the work dir and its logs after a successful run too
#   BENCH_ARGS=...  more flags for the driver (see: go run ./bench/cmd/phbench -h)
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d "${TMPDIR:-/tmp}/phbench.XXXXXX")
pid=
status=1
cleanup() {
  # The driver stops every program it started; this only covers the driver itself.
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -z "${BENCH_KEEP:-}" ] && [ "$status" = 0 ]; then
    rm -rf "$tmp"
  else
    echo "bench: work dir and logs kept in $tmp" >&2
  fi
}
trap cleanup EXIT
trap 'status=130; exit 130' INT
trap 'status=143; exit 143' TERM

"${GO:-go}" build -o "$tmp/phbench" ./bench/cmd/phbench

args=(--bin bin)
if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then args+=(--quick); fi
if [ -n "${BENCH_DIR:-}" ]; then
  mkdir -p "$BENCH_DIR"
  work=$(mktemp -d "$BENCH_DIR/phbench.XXXXXX")
else
  mkdir -p "$tmp/work"
  work="$tmp/work"
fi
args+=(--work "$work")
# shellcheck disable=SC2206 # BENCH_ARGS is split on purpose
args+=(${BENCH_ARGS:-})

# In the background, so that a SIGTERM to this script reaches the trap at once.
"$tmp/phbench" "${args[@]}" &
pid=$!
status=0
wait "$pid" || status=$?
pid=
exit "$status"
