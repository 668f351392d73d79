#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a bounded budget each.
# Usage: scripts/fuzz.sh [BUDGET]   (default 200000x executions per target; a duration such as
# 30s works too). Counts are the default because a duration budget can end in a spurious
# "context deadline exceeded" from Go's fuzz coordinator on a loaded machine (go.dev/issue/75804).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-200000x}
status=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/' | sort -u || true)
  for t in $targets; do
    echo "fuzz $pkg $t ($fuzztime)"
    if ! go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/fuzz.$$.log 2>&1; then
      cat /tmp/fuzz.$$.log; status=1
    fi
  done
done
rm -f /tmp/fuzz.$$.log
exit $status
