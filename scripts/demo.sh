#!/usr/bin/env bash
# The whole system on one machine: a throwaway PostgreSQL, ph-cloud with its dashboard, and
# four station agents fed by simulated probes, forwarding to the cloud. Prints the dashboard
# URL and what to look at, and keeps running until Ctrl-C (or for DEMO_SECONDS, for CI).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin
DEMO=tmp/demo
PGDIR=/tmp/purehealth-demo-pg
PGPORT=55432
CLOUD_CFG=configs/demo-cloud.yaml
# dir:station:mqtt-port; the first three are fed over MQTT, Kolhapur by its own probes.
STATIONS=(pune:MH-PUNE-001:18831 nashik:MH-NASHIK-001:18832 sangli:MH-SANGLI-001:18833)
PROBED=kolhapur:MH-KOLHAPUR-001:18834

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/pgtmp.sh stop "$PGDIR" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/pgtmp.sh stop "$PGDIR" 2>/dev/null || true
rm -rf "$DEMO" "$PGDIR" && mkdir -p "$DEMO"

# Every TCP port the demo listens on must be free: a port answered by something else
# would make the demo talk to it instead of its own process.
for port in "$PGPORT" 18080 18831 18832 18833 18834 18090 19464; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is in use by another program; stop it, or change the port in configs/demo-*.yaml and scripts/demo.sh" >&2
    exit 1
  fi
done

# ours NAME PID LOG: fail, showing the log, unless the demo's own process PID still runs.
ours() {
  if ! kill -0 "$2" 2>/dev/null; then
    echo "demo: $1 exited; its log ($3):" >&2
    tail -n 20 "$3" >&2
    exit 1
  fi
}

echo "== PostgreSQL (throwaway, $PGDIR)"
scripts/pgtmp.sh start "$PGDIR" "$PGPORT"
"$BIN/ph-cloud" migrate --config "$CLOUD_CFG"

for s in "${STATIONS[@]}" "$PROBED"; do
  IFS=: read -r dir id _ <<<"$s"
  name=$(sed -n 's/^  name: "\(.*\)"/\1/p' "configs/demo-agent-$dir.yaml")
  class=$(sed -n 's/^  class: \([A-E]\).*/\1/p' "configs/demo-agent-$dir.yaml")
  lat=$(sed -n 's/^  lat: //p' "configs/demo-agent-$dir.yaml")
  lon=$(sed -n 's/^  lon: //p' "configs/demo-agent-$dir.yaml")
  "$BIN/ph-cloud" station add "$id" --name "$name" --class "$class" --lat "$lat" --lon "$lon" \
    --config "$CLOUD_CFG" >"$DEMO/token-$id"
done

"$BIN/ph-cloud" serve --config "$CLOUD_CFG" >"$DEMO/cloud.log" 2>&1 &
cloud_pid=$!
pids+=($cloud_pid)

wait_for() { # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "demo: $what did not come up" >&2; return 1
}
wait_for "ph-cloud" curl -fsS http://127.0.0.1:18080/health || { cat "$DEMO/cloud.log"; exit 1; }
ours ph-cloud "$cloud_pid" "$DEMO/cloud.log"

for s in "${STATIONS[@]}"; do
  IFS=: read -r dir id port <<<"$s"
  cfg="configs/demo-agent-$dir.yaml"
  "$BIN/ph-agent" run --config "$cfg" >"$DEMO/agent-$dir.log" 2>&1 &
  agent_pid=$!
  pids+=($agent_pid)
  wait_for "ph-agent $id" "$BIN/ph-agent" status --config "$cfg" || { cat "$DEMO/agent-$dir.log"; exit 1; }
  ours "ph-agent $id" "$agent_pid" "$DEMO/agent-$dir.log"
  # Eight simulated probes per station, one reading every 2 s each.
  "$BIN/ph-sim" mqtt --broker "127.0.0.1:$port" --station "$id" --sensors 8 --rate 0.5 --qos 1 \
    >"$DEMO/sim-$dir.log" 2>&1 &
  pids+=($!)
done
# Kolhapur: serial (EZO on pseudo-terminals), CoAP and HTTP probes from one simulated station.
IFS=: read -r dir id _ <<<"$PROBED"
"$BIN/ph-sim" station --scenario configs/demo-station.scenario.yaml >"$DEMO/sim-$dir.log" 2>&1 &
pids+=($!)
wait_for "ph-sim station" test -e "$DEMO/tty-do" || { cat "$DEMO/sim-$dir.log"; exit 1; }
"$BIN/ph-agent" run --config "configs/demo-agent-$dir.yaml" >"$DEMO/agent-$dir.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
wait_for "ph-agent $id" "$BIN/ph-agent" status --config "configs/demo-agent-$dir.yaml" || { cat "$DEMO/agent-$dir.log"; exit 1; }
ours "ph-agent $id" "$agent_pid" "$DEMO/agent-$dir.log"
sleep 8

echo
echo "== ph-agent sensors (Kolhapur: serial, CoAP and HTTP probes)"
"$BIN/ph-agent" sensors --config configs/demo-agent-kolhapur.yaml
echo
echo "== ph-agent status (Pune)"
"$BIN/ph-agent" status --config configs/demo-agent-pune.yaml
echo
echo "== ph-agent wqi (Pune)"
"$BIN/ph-agent" wqi --config configs/demo-agent-pune.yaml
echo
echo "== in the cloud ($(curl -fsS http://127.0.0.1:18080/health | sed -n 's/.*"storage":"\([a-z]*\)".*/\1/p') storage)"
stations=$(curl -fsS http://127.0.0.1:18080/v1/stations)
echo "${stations:0:600}"

# --- The fleet: each agent's health record (sent at start, then every minute), the
# cloud's view of them, and the Pune agent's own Prometheus metrics.
echo
echo "== ph-cloud fleet"
"$BIN/ph-cloud" fleet --config "$CLOUD_CFG"
echo
echo "== the Pune agent's /metrics (a few of them)"
metrics=$(curl -fsS http://127.0.0.1:19464/metrics)
grep -E '^ph_agent_(queue_length|broker_clients|uplink_state\{state="idle"\}|store_commit_seconds_count)' <<<"$metrics" || true
# --- end of the fleet

echo
echo "Dashboard:  http://127.0.0.1:18080/   (live over WebSocket; the Fleet page: http://127.0.0.1:18080/#/fleet)"
echo "Cloud API:  http://127.0.0.1:18080/v1/stations"
echo "Logs:       $DEMO/"
echo "Try:        $BIN/ph-agent probe test ph-1 --config configs/demo-agent-kolhapur.yaml"
echo "            $BIN/ph-agent probe calibrate ph-1 mid 7.00 --config configs/demo-agent-kolhapur.yaml"
echo "            $BIN/ph-agent queue --config configs/demo-agent-nashik.yaml"
echo "            edit configs/demo-agent-pune.yaml (class, alerts, probes), then: kill -HUP <its pid>; $BIN/ph-agent status --config configs/demo-agent-pune.yaml"
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  for s in "${STATIONS[@]}" "$PROBED"; do
    IFS=: read -r dir _ _ <<<"$s"
    "$BIN/ph-agent" status --config "configs/demo-agent-$dir.yaml" --json >/dev/null
  done
  curl -fsS http://127.0.0.1:18080/health >/dev/null
  fleet=$(curl -fsS http://127.0.0.1:18080/v1/fleet)
  grep -q '"version"' <<<"$fleet"
  curl -fsS http://127.0.0.1:19464/metrics >/dev/null
  # Read whole before matching: grep -q stops early, and curl would fail writing the rest.
  page=$(curl -fsS http://127.0.0.1:18080/)
  grep -q "Pure Health" <<<"$page"
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "demo: a process of the demo (pid $pid) exited; logs in $DEMO/" >&2; exit 1; }
  done
  echo "demo ran for ${DEMO_SECONDS}s more; all parts answered; stopping"
else
  echo "Press Ctrl-C to stop."
  wait "${pids[0]}"
fi
