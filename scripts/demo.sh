#!/usr/bin/env bash
# The whole system on one machine: a station agent fed by simulated sensors. It prints
# the agent's status and keeps running until Ctrl-C (or for DEMO_SECONDS, for CI).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin
DEMO=tmp/demo
CFG=configs/demo-agent.yaml

rm -rf "$DEMO" && mkdir -p "$DEMO"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$BIN/ph-agent" run --config "$CFG" >"$DEMO/agent.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  "$BIN/ph-agent" status --config "$CFG" >/dev/null 2>&1 && break
  sleep 0.2
done
"$BIN/ph-agent" status --config "$CFG" >/dev/null || { cat "$DEMO/agent.log"; exit 1; }

# Eight simulated probes at Mula-Mutha (Pune), one reading every 2 s each.
"$BIN/ph-sim" mqtt --broker 127.0.0.1:18830 --station MH-PUNE-001 --sensors 8 --rate 0.5 --qos 1 \
  >"$DEMO/sim.log" 2>&1 &
pids+=($!)
sleep 8

echo "== ph-agent status"
"$BIN/ph-agent" status --config "$CFG"
echo
echo "== ph-agent sensors"
"$BIN/ph-agent" sensors --config "$CFG"
echo
echo "== ph-agent wqi"
"$BIN/ph-agent" wqi --config "$CFG"
echo
echo "Logs in $DEMO/. Try: $BIN/ph-agent readings --config $CFG --param do"
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  "$BIN/ph-agent" status --config "$CFG" --json >/dev/null
  echo "demo ran for ${DEMO_SECONDS}s more; stopping"
else
  echo "Press Ctrl-C to stop."
  wait "${pids[0]}"
fi
