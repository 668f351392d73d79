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
# dir:station:mqtt-port; the first four are fed over MQTT, Kolhapur by its own probes.
STATIONS=(pune:MH-PUNE-001:18831 mundhwa:MH-PUNE-002:18835 nashik:MH-NASHIK-001:18832 sangli:MH-SANGLI-001:18833)
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
for port in "$PGPORT" 18080 18831 18832 18833 18834 18835 18090; do
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

# --- Analytics: two weeks of history, rivers, forecasts, anomalies -------------------------
# Each MQTT-fed station's simulated sonde first publishes the last DEMO_BACKFILL (two weeks)
# of what it would have measured to its agent's broker, with the past timestamps (ph-sim
# station --backfill): the agent validates and buffers it, its uplink sends the backlog and
# the cloud announces it with backfill notices, as after a real outage. Then it reports
# live. The scenarios' two discharges on the Mula-Mutha (configs/demo-pune.scenario.yaml)
# are timed for a two-week history. The cloud forecasts and looks for anomalies every 30 s
# (configs/demo-cloud.yaml).
DEMO_BACKFILL=${DEMO_BACKFILL:-336h}
RIVERS=(MH-PUNE-001:Mula-Mutha:0.5 MH-PUNE-002:Mula-Mutha:9.5) # station:river:km (downstream)

river_args() { # ID: the --river/--river-km flags of a station on a river, one per line
  local r rid river km
  for r in "${RIVERS[@]}"; do
    IFS=: read -r rid river km <<<"$r"
    if [ "$rid" = "$1" ]; then printf '%s\n' --river "$river" --river-km "$km"; fi
  done
}

HISTORY_START=""
start_station_sim() { # DIR: the station's simulated sonde, its history first
  HISTORY_START=${HISTORY_START:-$SECONDS}
  "$BIN/ph-sim" station --scenario "configs/demo-$1.scenario.yaml" --backfill "$DEMO_BACKFILL" \
    --backfill-step 5m >"$DEMO/sim-$1.log" 2>&1 &
  pids+=($!)
}

# await_history waits until every sonde has delivered its history to its agent and every
# agent has forwarded its backlog to the cloud, then until the cloud has forecast it.
await_history() {
  local start=$HISTORY_START s dir id n backlog
  for s in "${STATIONS[@]}"; do
    IFS=: read -r dir id _ <<<"$s"
    for n in $(seq 600); do
      grep -q '^backfilled \|^ph-sim: ' "$DEMO/sim-$dir.log" && break
      sleep 0.2
    done
    grep '^backfilled ' "$DEMO/sim-$dir.log" >/dev/null || { echo "demo: no history for $id; its log:" >&2; tail -n 20 "$DEMO/sim-$dir.log" >&2; exit 1; }
  done
  local published=$((SECONDS - start))
  for s in "${STATIONS[@]}"; do
    IFS=: read -r dir id _ <<<"$s"
    for n in $(seq 900); do
      backlog=$("$BIN/ph-agent" queue --config "configs/demo-agent-$dir.yaml" --json | sed -n 's/.*"backlog": *\([0-9]*\).*/\1/p' | head -n 1)
      # Live readings keep coming: a backlog of a few seconds' worth is drained.
      [ -n "$backlog" ] && [ "$backlog" -lt 200 ] && break
      sleep 0.2
    done
  done
  echo "== two weeks of history: published to the agents in ${published}s, in the cloud after $((SECONDS - start))s"
  for s in "${STATIONS[@]}"; do
    IFS=: read -r dir _ _ <<<"$s"
    sed -n 's/^backfilled /  '"$dir"': backfilled /p' "$DEMO/sim-$dir.log"
  done
  local forecast=""
  for n in $(seq 300); do
    forecast=$(curl -fsS "http://127.0.0.1:18080/v1/stations/MH-PUNE-001/forecast?param=do")
    grep -q '"model":"none"' <<<"$forecast" || break
    sleep 0.5
  done
  if grep -q '"model":"none"' <<<"$forecast"; then
    echo "demo: no forecast after the history arrived: ${forecast:0:300}" >&2; exit 1
  fi
  echo "== forecasts ready $((SECONDS - start))s after the history started; DO at Sangam:"
  echo "  ${forecast:0:300}..."
}

# show_anomalies prints the cloud's own alerts: anomalies, then a few early warnings.
show_anomalies() {
  local alerts
  alerts=$(curl -fsS 'http://127.0.0.1:18080/v1/alerts?limit=500' | tr '{' '\n')
  sed -n 's/.*"station":"\([^"]*\)","rule":"\(pollution_event\|suspect_sensor\|local_event\)".*"state":"\([a-z]*\)".*"message":"\([^"]*\)".*"origin":"cloud".*/  \2 at \1 (\3): \4/p' <<<"$alerts"
  echo "  $(grep -c '"rule":"forecast_breach".*"state":"active"' <<<"$alerts") early warnings (forecast_breach) active, such as:"
  sed -n 's/.*"station":"\([^"]*\)","rule":"forecast_breach".*"state":"active".*"message":"\([^"]*\)".*/  forecast_breach at \1: \2/p' <<<"$alerts" | head -n 3
}
# -----------------------------------------------------------------------------------------

echo "== PostgreSQL (throwaway, $PGDIR)"
scripts/pgtmp.sh start "$PGDIR" "$PGPORT"
"$BIN/ph-cloud" migrate --config "$CLOUD_CFG"

for s in "${STATIONS[@]}" "$PROBED"; do
  IFS=: read -r dir id _ <<<"$s"
  name=$(sed -n 's/^  name: "\(.*\)"/\1/p' "configs/demo-agent-$dir.yaml")
  class=$(sed -n 's/^  class: \([A-E]\).*/\1/p' "configs/demo-agent-$dir.yaml")
  lat=$(sed -n 's/^  lat: //p' "configs/demo-agent-$dir.yaml")
  lon=$(sed -n 's/^  lon: //p' "configs/demo-agent-$dir.yaml")
  mapfile -t rargs < <(river_args "$id")
  "$BIN/ph-cloud" station add "$id" --name "$name" --class "$class" --lat "$lat" --lon "$lon" "${rargs[@]}" \
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
  # Eight simulated probes per station, one reading every 2 s each, after their history.
  start_station_sim "$dir"
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
await_history

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
echo
echo "== the cloud's early warnings and anomalies"
show_anomalies
echo
echo "Dashboard:  http://127.0.0.1:18080/   (live over WebSocket)"
echo "Cloud API:  http://127.0.0.1:18080/v1/stations"
echo "Logs:       $DEMO/"
echo "Try:        $BIN/ph-agent probe test ph-1 --config configs/demo-agent-kolhapur.yaml"
echo "            $BIN/ph-agent probe calibrate ph-1 mid 7.00 --config configs/demo-agent-kolhapur.yaml"
echo "            $BIN/ph-agent queue --config configs/demo-agent-nashik.yaml"
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  for s in "${STATIONS[@]}" "$PROBED"; do
    IFS=: read -r dir _ _ <<<"$s"
    "$BIN/ph-agent" status --config "configs/demo-agent-$dir.yaml" --json >/dev/null
  done
  curl -fsS http://127.0.0.1:18080/health >/dev/null
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
